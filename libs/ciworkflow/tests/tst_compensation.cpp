// SPDX-License-Identifier: Apache-2.0
// The compensation decision matrix and the latest-status rule, as a table.
#include "statuscheck.h"

#include <QJsonArray>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Ci;

namespace {

const QDateTime Now = QDateTime(QDate(2026, 5, 24), QTime(12, 0), Qt::UTC);

// "context=state@minutesAgo" entries in posting order: ids grow with the position. A
// "#" suffix ("A=success@5#") gives the entry the same timestamp as the previous one.
QList<CommitStatus> statuses(const QStringList &entries)
{
    QList<CommitStatus> out;
    qint64 id = 100;
    for (const QString &e : entries) {
        CommitStatus s;
        s.id = ++id;
        s.context = e.section(QLatin1Char('='), 0, 0);
        const QString rest = e.section(QLatin1Char('='), 1);
        s.state = *statusStateFromName(rest.section(QLatin1Char('@'), 0, 0));
        s.updatedAt = s.createdAt = Now.addSecs(-60 * rest.section(QLatin1Char('@'), 1).remove(QLatin1Char('#')).toInt());
        out.append(s);
    }
    return out;
}

QStringList L(std::initializer_list<const char *> items)
{
    QStringList out;
    for (const char *i : items)
        out.append(QString::fromUtf8(i));
    return out;
}

} // namespace

class tst_Compensation : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void matrix_data()
    {
        QTest::addColumn<QStringList>("seen");
        QTest::addColumn<QStringList>("compensated"); // umbrella status ids compensated before
        QTest::addColumn<QString>("decision");
        QTest::addColumn<QString>("reason");

        const QStringList none;
        QTest::newRow("stale failure, all green, old enough")
            << L({"A=success@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("compensate") << QStringLiteral("all 2 required");
        QTest::newRow("exactly at the threshold")
            << L({"A=success@20", "B=success@19", "U=failure@5"}) << none << QStringLiteral("compensate") << QString();
        QTest::newRow("too young")
            << L({"A=success@20", "B=success@19", "U=failure@4"}) << none << QStringLiteral("too-young") << QStringLiteral("under the 300 s threshold");
        QTest::newRow("no umbrella status")
            << L({"A=success@20", "B=success@19"}) << none << QStringLiteral("umbrella-missing") << QStringLiteral("'U' has no status");
        QTest::newRow("umbrella already success")
            << L({"A=success@20", "B=success@19", "U=success@10"}) << none << QStringLiteral("umbrella-success") << QStringLiteral("already success");
        QTest::newRow("umbrella pending")
            << L({"A=success@20", "B=success@19", "U=pending@10"}) << none << QStringLiteral("umbrella-not-failure") << QStringLiteral("is pending");
        QTest::newRow("umbrella error is not compensated")
            << L({"A=success@20", "B=success@19", "U=error@10"}) << none << QStringLiteral("umbrella-not-failure") << QStringLiteral("is error");
        QTest::newRow("umbrella failure after an older success")
            << L({"U=success@30", "A=success@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("compensate") << QString();
        QTest::newRow("umbrella success after an older failure")
            << L({"U=failure@30", "A=success@20", "B=success@19", "U=success@10"}) << none << QStringLiteral("umbrella-success") << QString();
        QTest::newRow("sub-job missing")
            << L({"A=success@20", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'B' has no status");
        QTest::newRow("sub-job pending")
            << L({"A=success@20", "B=pending@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'B' is pending");
        QTest::newRow("sub-job failed")
            << L({"A=failure@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' failed");
        QTest::newRow("sub-job error")
            << L({"A=error@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' errored");
        QTest::newRow("sub-job skipped")
            << L({"A=skipped@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' was skipped");
        QTest::newRow("sub-job cancelled")
            << L({"A=cancelled@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' was cancelled");
        QTest::newRow("sub-job warning")
            << L({"A=warning@20", "B=success@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' ended with a warning");
        QTest::newRow("two sub-jobs failing, both named")
            << L({"A=failure@20", "B=pending@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' failed; 'B' is pending");
        QTest::newRow("old success hides a newer failure: not green")
            << L({"A=success@30", "B=success@19", "A=failure@15", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' failed");
        QTest::newRow("old failure, newer success: green")
            << L({"A=failure@30", "B=success@19", "A=success@15", "U=failure@10"}) << none << QStringLiteral("compensate") << QString();
        QTest::newRow("same second: the higher id is the latest (failure)")
            << L({"A=success@15", "A=failure@15#", "B=success@19", "U=failure@10"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' failed");
        QTest::newRow("same second: the higher id is the latest (success)")
            << L({"A=failure@15", "A=success@15#", "B=success@19", "U=failure@10"}) << none << QStringLiteral("compensate") << QString();
        QTest::newRow("unrelated contexts do not matter")
            << L({"A=success@20", "B=success@19", "lint=failure@18", "U=failure@10"}) << none << QStringLiteral("compensate") << QString();
        QTest::newRow("already compensated this umbrella status")
            << L({"A=success@20", "B=success@19", "U=failure@10"}) << L({"103"}) << QStringLiteral("already-compensated") << QStringLiteral("never twice");
        QTest::newRow("a newer umbrella failure after a compensation")
            << L({"A=success@20", "B=success@19", "U=failure@15", "U=success@12", "U=failure@10"}) << L({"103"}) << QStringLiteral("compensate") << QString();
        QTest::newRow("too young and sub-job red: red wins")
            << L({"A=failure@20", "B=success@19", "U=failure@1"}) << none << QStringLiteral("sub-job-not-green") << QStringLiteral("'A' failed");
    }

    void matrix()
    {
        QFETCH(QStringList, seen);
        QFETCH(QStringList, compensated);
        QFETCH(QString, decision);
        QFETCH(QString, reason);
        CompensationInput input;
        input.statuses = statuses(seen);
        input.umbrella = QStringLiteral("U");
        input.required = QStringList{QStringLiteral("A"), QStringLiteral("B")};
        input.now = Now;
        input.thresholdMs = 5 * 60 * 1000;
        for (const QString &id : compensated)
            input.compensatedUmbrellaIds.insert(id.toLongLong());
        const CompensationDecision d = decideCompensation(input);
        QCOMPARE(decisionName(d.decision), decision);
        QVERIFY2(d.reason.contains(reason), qPrintable(d.reason));
        // The evidence names every sub-job seen.
        QCOMPARE(d.evidence().value(QStringLiteral("subJobs")).toArray().size(), 2);
    }

    void noRequiredSubJobsNeverCompensates()
    {
        CompensationInput input;
        input.statuses = statuses(L({"U=failure@10"}));
        input.umbrella = QStringLiteral("U");
        input.required = QStringList{QStringLiteral("U")}; // only the umbrella itself
        input.now = Now;
        QCOMPARE(decideCompensation(input).decision, Decision::SubJobNotGreen);
    }

    // A failed umbrella check run is repaired by a re-run, never by a status: a success status
    // of the same name (or a compensation posted earlier) changes nothing about it (24.2).
    void umbrellaCheckRunIsReRunNeverCoveredByAStatus()
    {
        CompensationInput input;
        input.statuses = statuses(L({"A=success@20", "B=success@19", "U=success@5"}));
        CheckRun run;
        run.id = 5;
        run.name = QStringLiteral("U");
        run.status = QStringLiteral("completed");
        run.conclusion = QStringLiteral("failure");
        run.state = StatusState::Failure;
        run.completedAt = Now.addSecs(-600);
        input.checkRuns = {run};
        input.umbrella = QStringLiteral("U");
        input.required = QStringList{QStringLiteral("A"), QStringLiteral("B")};
        input.now = Now;
        CompensationDecision d = decideCompensation(input);
        QCOMPARE(d.decision, Decision::Compensate);
        QVERIFY(d.rerun);
        QCOMPARE(d.umbrellaRun->id, qint64(5));
        QCOMPARE(d.evidence().value(QStringLiteral("repair")).toString(), QStringLiteral("re-run the umbrella check run"));
        input.rerunUmbrellaRunIds = {5};
        QCOMPARE(decideCompensation(input).decision, Decision::AlreadyCompensated);
        // A status id equal to the check run's id is another thing altogether.
        input.rerunUmbrellaRunIds.clear();
        input.compensatedUmbrellaIds = {5};
        QCOMPARE(decideCompensation(input).decision, Decision::Compensate);
        // The re-run queued: a newer id, pending, is the latest.
        CheckRun again = run;
        again.id = 6;
        again.status = QStringLiteral("queued");
        again.conclusion.clear();
        again.state = StatusState::Pending;
        again.completedAt = QDateTime();
        input.checkRuns = {run, again};
        QCOMPARE(decideCompensation(input).decision, Decision::UmbrellaNotFailure);
    }

    // Each kind on its own latest; a name passes only when every kind present passes; ids of a
    // status and a check run are never compared (24.1).
    void statusAndCheckRunOfOneName_data()
    {
        QTest::addColumn<QString>("status");   // empty: none
        QTest::addColumn<QString>("run");      // state name; empty: none
        QTest::addColumn<int>("outcome");
        QTest::newRow("both success") << "success" << "success" << int(Outcome::Passes);
        QTest::newRow("status success, run failure") << "success" << "failure" << int(Outcome::Red);
        QTest::newRow("status failure, run success") << "failure" << "success" << int(Outcome::Red);
        QTest::newRow("status success, run pending") << "success" << "pending" << int(Outcome::Pending);
        QTest::newRow("run only, skipped, strict") << "" << "skipped" << int(Outcome::Red);
        QTest::newRow("status only, pending") << "pending" << "" << int(Outcome::Pending);
        QTest::newRow("neither") << "" << "" << int(Outcome::Pending);
    }

    void statusAndCheckRunOfOneName()
    {
        QFETCH(QString, status);
        QFETCH(QString, run);
        QFETCH(int, outcome);
        QHash<QString, CommitStatus> latest;
        QHash<QString, CheckRun> runs;
        if (!status.isEmpty()) {
            CommitStatus s;
            s.id = 7; // the same number as the check run's id: nothing follows from that
            s.context = QStringLiteral("X");
            s.state = *statusStateFromName(status);
            s.updatedAt = Now;
            latest.insert(s.context, s);
        }
        if (!run.isEmpty()) {
            CheckRun r;
            r.id = 7;
            r.name = QStringLiteral("X");
            r.state = *statusStateFromName(run);
            runs.insert(r.name, r);
        }
        const ContextJudgement j = judgeContext(QStringLiteral("X"), latest, runs, Semantics::Strict);
        QCOMPARE(int(j.outcome), outcome);
        QCOMPARE(j.passes, outcome == int(Outcome::Passes));
    }

    void latestCheckRunIsTheGreatestId()
    {
        CheckRun older, newer;
        older.id = 10;
        older.name = newer.name = QStringLiteral("X");
        older.state = StatusState::Success;
        older.completedAt = Now; // a later time does not make it newer: a re-run is a new id
        newer.id = 11;
        newer.state = StatusState::Pending;
        const auto latest = latestRunByName({newer, older});
        QCOMPARE(latest.value(QStringLiteral("X")).id, qint64(11));
    }

    // The status posted last is the latest, whatever its timestamp: Gitea and GitHub judge a
    // context by the one they received last, and a forge node's clock may run behind another's
    // (the fault campaign's seed 0x66fde0224af86756 failed a green head on this).
    void latestByContext_data()
    {
        QTest::addColumn<QStringList>("posted"); // in posting order: ids grow
        QTest::addColumn<QString>("latest");
        QTest::newRow("times in order") << L({"A=failure@30", "A=success@10"}) << QStringLiteral("success");
        QTest::newRow("a later status with an earlier clock") << L({"A=failure@30", "A=success@40"}) << QStringLiteral("success");
        QTest::newRow("a later failure with an earlier clock") << L({"A=success@10", "A=failure@20"}) << QStringLiteral("failure");
        QTest::newRow("three, the last in the middle of the times") << L({"A=failure@30", "A=success@10", "A=pending@20"}) << QStringLiteral("pending");
        QTest::newRow("same second") << L({"A=success@10", "A=failure@10#"}) << QStringLiteral("failure");
    }

    void latestByContext()
    {
        QFETCH(QStringList, posted);
        QFETCH(QString, latest);
        const auto judged = Ci::latestByContext(statuses(posted));
        QCOMPARE(judged.size(), 1);
        QCOMPARE(statusStateName(judged.value(QStringLiteral("A")).state), latest);
    }
};

QTEST_GUILESS_MAIN(tst_Compensation)
#include "tst_compensation.moc"
