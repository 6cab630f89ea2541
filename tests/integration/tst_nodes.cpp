// SPDX-License-Identifier: Apache-2.0
// Several `sluice serve` on one store (issue 15), each a real process on a shared SQLite file
// or a fresh database on the PostgreSQL test server: one daemon per node name, a restart after
// kill -9 claiming its name again, and the takeover of a silent (SIGSTOPped) node's job under
// fencing — the resumed node takes nothing of its run into the project's repository and ends.

#include "daemonprocess.h"
#include "testdaemon.h"
#include "storefixture.h"

#include <sluice/testsupport.h>

#include <QHostInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QSysInfo>
#include <QtTest>

#include <csignal>
#include <memory>

using namespace Sluice;

namespace {

using Run = Sluice::Test::CliRun;

Run cli(const QStringList &arguments)
{
    return Sluice::Test::runCli(QStringLiteral(SLUICE_EXECUTABLE), arguments);
}

// One node's configuration directory: its host file (its node name, its state directory, the
// shared store) and the project, whose repository every node shares.
struct NodeConfig {
    Test::TemporaryConfig dir;
    QString path() const { return dir.path(); }
};

} // namespace

class tst_Nodes : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanup();
    void secondDaemonOfANodeIsRefused_data();
    void secondDaemonOfANodeIsRefused();
    void restartAfterKill9ClaimsItsNameAtOnce_data();
    void restartAfterKill9ClaimsItsNameAtOnce();
    void silentNodeIsTakenOverAndDoesNothingWhenResumed_data();
    void silentNodeIsTakenOverAndDoesNothingWhenResumed();
    void newJobWakesAnIdleWorkerOnPostgresql();

private:
    // A node's configuration on @p store: node @p node, state directory @p stateDir
    // ("state", or an absolute path), the shared project.
    std::unique_ptr<NodeConfig> nodeConfig(const QByteArray &node, const QByteArray &stateDir, const QByteArray &nodeTimeout,
                                           const QByteArray &pollInterval = "100ms");
    std::unique_ptr<Test::DaemonProcess> daemon();

    QTemporaryDir m_shared;   // the repository, the SQLite store, the stage's ledger
    StoreSettings m_store;
    QByteArray m_project;
    std::vector<std::unique_ptr<Test::DaemonProcess>> m_daemons;
};

void tst_Nodes::initTestCase()
{
    QVERIFY(m_shared.isValid());
}

void tst_Nodes::cleanup()
{
    for (auto &d : m_daemons) {
        if (d->state() != QProcess::NotRunning) {
            ::kill(pid_t(d->processId()), SIGCONT);
            d->kill();
            d->waitForFinished(5000);
        }
    }
    m_daemons.clear();
}

std::unique_ptr<NodeConfig> tst_Nodes::nodeConfig(const QByteArray &node, const QByteArray &stateDir, const QByteArray &nodeTimeout,
                                              const QByteArray &pollInterval)
{
    auto config = std::make_unique<NodeConfig>();
    config->dir.writeHostFile("node: " + node + "\nstate_dir: " + stateDir
                              + "\nworker: {poll_interval: " + pollInterval + "}\nhttp: {port: 0}\nreaper: {interval: 1s, node_timeout: "
                              + nodeTimeout + "}\n" + Test::hostStoreSection(m_store));
    config->dir.writeProject(QStringLiteral("p"), m_project);
    return config;
}

std::unique_ptr<Test::DaemonProcess> tst_Nodes::daemon()
{
    return std::make_unique<Test::DaemonProcess>(QStringLiteral(SLUICE_EXECUTABLE));
}

void tst_Nodes::secondDaemonOfANodeIsRefused_data()
{
    QTest::addColumn<QString>("engine");
    QTest::addColumn<bool>("sameStateDir");
    QTest::addColumn<QString>("refusal");
    for (const QString &engine : Test::engineNames()) {
        // The same state directory: its lock refuses before the store is asked.
        QTest::addRow("%s, same state directory", qPrintable(engine)) << engine << true << QStringLiteral("is in use by another sluice serve");
        // Another state directory (another machine, or a copy): the store's claim refuses.
        QTest::addRow("%s, other state directory", qPrintable(engine)) << engine << false << QStringLiteral("is held by another sluice serve");
    }
}

void tst_Nodes::secondDaemonOfANodeIsRefused()
{
    QFETCH(QString, engine);
    QFETCH(bool, sameStateDir);
    QFETCH(QString, refusal);
    QVERIFY(Test::freshStore(engine, m_shared.path(), &m_store));
    static int repos = 0;
    const QString repo = m_shared.path() + QStringLiteral("/repo-refused-%1.git").arg(++repos);
    QVERIFY(Test::seededBareRepository(repo));
    m_project = "id: p\nrepository: {path: " + repo.toUtf8() + "}\nstages:\n  - name: work\n    run: hold\n  - name: done\n"
                "instances:\n  hold: {plugin: command, settings: {command: [/bin/true]}}\n";

    const auto first = nodeConfig("n1", "state", "60s");
    m_daemons.push_back(daemon());
    Test::DaemonProcess &one = *m_daemons.back();
    QVERIFY(one.serve(first->path()));

    const QByteArray stateDir = sameStateDir ? (first->path() + QStringLiteral("/state")).toUtf8() : QByteArray("state");
    const auto second = nodeConfig("n1", stateDir, "60s");
    const Run refused = cli({QStringLiteral("serve"), QStringLiteral("--config"), second->path()});
    QVERIFY2(refused.exitCode != 0, qPrintable(refused.err));
    // The refusal names the running daemon: its pid and its machine.
    const QString expected = QStringLiteral("pid %1 on host %2").arg(one.processId()).arg(QSysInfo::machineHostName());
    QVERIFY2(refused.err.contains(refusal), qPrintable(refused.err));
    QVERIFY2(refused.err.contains(expected), qPrintable(refused.err));
    QVERIFY2(!refused.err.contains(QLatin1String("ready: node")), qPrintable(refused.err));

    // The first one is untouched: still its node's, still serving.
    QCOMPARE(one.state(), QProcess::Running);
    QCOMPARE(one.request("GET", QStringLiteral("/healthz")).status, 200);
    const QJsonObject nodes = one.request("GET", QStringLiteral("/api/nodes")).json();
    const QJsonArray list = nodes.value(QLatin1String("nodes")).toArray();
    QCOMPARE(list.size(), 1);
    QCOMPARE(list.at(0).toObject().value(QLatin1String("pid")).toVariant().toLongLong(), one.processId());
    QCOMPARE(list.at(0).toObject().value(QLatin1String("state")).toString(), QStringLiteral("up"));
}

void tst_Nodes::restartAfterKill9ClaimsItsNameAtOnce_data()
{
    Test::addEngineRows();
}

void tst_Nodes::restartAfterKill9ClaimsItsNameAtOnce()
{
    QFETCH(QString, engine);
    QVERIFY(Test::freshStore(engine, m_shared.path(), &m_store));
    const QString repo = m_shared.path() + QStringLiteral("/repo-restart-%1.git").arg(engine);
    QVERIFY(Test::seededBareRepository(repo));
    m_project = "id: p\nrepository: {path: " + repo.toUtf8() + "}\nstages:\n  - name: work\n    run: hold\n  - name: done\n"
                "instances:\n  hold: {plugin: command, settings: {command: [/bin/true]}}\n";
    // node_timeout far longer than the test: the name is claimed again because the holder's
    // process is gone from this machine, not because its claim aged out.
    const auto config = nodeConfig("n1", "state", "1h");
    m_daemons.push_back(daemon());
    Test::DaemonProcess &first = *m_daemons.back();
    QVERIFY(first.serve(config->path()));
    const qint64 firstPid = first.processId();
    first.kill();
    QVERIFY(first.waitForFinished(10000));

    m_daemons.push_back(daemon());
    Test::DaemonProcess &again = *m_daemons.back();
    QVERIFY2(again.serve(config->path()), again.log().constData());
    const QJsonArray nodes = again.request("GET", QStringLiteral("/api/nodes")).json().value(QLatin1String("nodes")).toArray();
    QCOMPARE(nodes.size(), 1);
    const QJsonObject n = nodes.at(0).toObject();
    QCOMPARE(n.value(QLatin1String("pid")).toVariant().toLongLong(), again.processId());
    QVERIFY(again.processId() != firstPid);
    QCOMPARE(n.value(QLatin1String("generation")).toInt(), 2);
    QCOMPARE(n.value(QLatin1String("state")).toString(), QStringLiteral("up"));
}

void tst_Nodes::silentNodeIsTakenOverAndDoesNothingWhenResumed_data()
{
    Test::addEngineRows();
}

void tst_Nodes::silentNodeIsTakenOverAndDoesNothingWhenResumed()
{
    QFETCH(QString, engine);
    QVERIFY(Test::freshStore(engine, m_shared.path(), &m_store));
    const QString repo = m_shared.path() + QStringLiteral("/repo-takeover-%1.git").arg(engine);
    QVERIFY(Test::seededBareRepository(repo));
    const QString ledger = m_shared.path() + QStringLiteral("/ledger-%1").arg(engine);
    const QString go = m_shared.path() + QStringLiteral("/go-%1").arg(engine);
    // The stage records its start and end in a ledger, waits for the test's go, and commits in
    // its working copy a change that names the node's state directory ({artifacts} lies in
    // it): the host takes that commit into the shared repository when the job completes — the
    // side effect a node that lost the job must not have.
    m_project = "id: p\nrepository: {path: " + repo.toUtf8() + "}\njobs: {max_attempts: 3, retry_backoff: 1s}\nstages:\n"
                "  - name: work\n    run: hold\n  - name: done\n"
                "instances:\n  hold:\n    plugin: command\n    settings:\n      command: [/bin/sh, -c, \"echo start {artifacts} >> "
                + ledger.toUtf8() + "; while [ ! -e " + go.toUtf8()
                + " ]; do sleep 0.1; done; echo '{artifacts}' > by.txt && git add by.txt && git -c user.name=t -c user.email=t@t "
                  "commit -q -m 'by {artifacts}'; echo end {artifacts} >> "
                + ledger.toUtf8() + "\"]\n";

    const auto configA = nodeConfig("a", "state", "2s");
    const auto configB = nodeConfig("b", "state", "2s");
    m_daemons.push_back(daemon());
    Test::DaemonProcess &a = *m_daemons.back();
    QVERIFY(a.serve(configA->path()));
    const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), configA->path(), QStringLiteral("--project"),
                            QStringLiteral("p"), QStringLiteral("--title"), QStringLiteral("taken over"), QStringLiteral("--json")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const qint64 id = QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    const auto task = [&a, id](Test::DaemonProcess &on) {
        Q_UNUSED(a);
        return on.request("GET", QStringLiteral("/api/tasks/%1").arg(id)).json();
    };
    const auto ledgerLines = [&ledger] {
        QFile f(ledger);
        return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts) : QStringList();
    };
    // Node a runs the stage.
    QTRY_COMPARE_WITH_TIMEOUT(ledgerLines().size(), 1, 30000);
    QVERIFY(ledgerLines().at(0).contains(configA->path()));

    // Node b joins; node a is paused past node_timeout (its stage's process runs on).
    m_daemons.push_back(daemon());
    Test::DaemonProcess &b = *m_daemons.back();
    QVERIFY(b.serve(configB->path()));
    QCOMPARE(::kill(pid_t(a.processId()), SIGSTOP), 0);
    const auto nodeState = [&b](const QString &name) {
        for (const QJsonValue &v : b.request("GET", QStringLiteral("/api/nodes")).json().value(QLatin1String("nodes")).toArray()) {
            if (v.toObject().value(QLatin1String("name")).toString() == name)
                return v.toObject();
        }
        return QJsonObject();
    };
    QTRY_COMPARE_WITH_TIMEOUT(nodeState(QStringLiteral("a")).value(QLatin1String("state")).toString(), QStringLiteral("taken-over"), 30000);
    QCOMPARE(nodeState(QStringLiteral("a")).value(QLatin1String("takenOverBy")).toString(), QStringLiteral("b"));
    QCOMPARE(nodeState(QStringLiteral("b")).value(QLatin1String("state")).toString(), QStringLiteral("up"));
    // Where an operator looks: `sluice status`, `sluice queue` and the metrics say so too.
    for (const QString &command : {QStringLiteral("status"), QStringLiteral("queue")}) {
        const Run shown = cli({command, QStringLiteral("--config"), configB->path()});
        QVERIFY2(shown.exitCode == 0, qPrintable(shown.err));
        QRegularExpression line(QStringLiteral("^a\\s+\\S+\\s+%1\\s+taken-over\\s.*taken over by b at ").arg(a.processId()),
                                QRegularExpression::MultilineOption);
        QVERIFY2(line.match(shown.out).hasMatch(), qPrintable(shown.out));
        QVERIFY2(QRegularExpression(QStringLiteral("^b\\*?\\s+\\S+\\s+%1\\s+up\\s").arg(b.processId()), QRegularExpression::MultilineOption)
                     .match(shown.out).hasMatch(),
                 qPrintable(shown.out));
    }
    const QByteArray metrics = b.request("GET", QStringLiteral("/metrics")).body;
    QVERIFY2(metrics.contains("sluice_node_up{node=\"a\"} 0"), metrics.constData());
    QVERIFY2(metrics.contains("sluice_node_up{node=\"b\"} 1"), metrics.constData());
    QVERIFY2(metrics.contains("sluice_node_heartbeat_age_seconds{node=\"a\"}"), metrics.constData());
    QVERIFY2(metrics.contains("sluice_nodes_taken_over_total 1"), metrics.constData());
    // The job is b's now: b runs the stage anew.
    QTRY_COMPARE_WITH_TIMEOUT(ledgerLines().size(), 2, 30000);
    QVERIFY(ledgerLines().at(1).contains(configB->path()));

    // Both runs end; b's completes the task while a is still paused.
    QFile goFile(go);
    QVERIFY(goFile.open(QIODevice::WriteOnly));
    goFile.close();
    QTRY_COMPARE_WITH_TIMEOUT(task(b).value(QLatin1String("status")).toString(), QStringLiteral("done"), 30000);
    const QString head = task(b).value(QLatin1String("head")).toString();
    QVERIFY(!head.isEmpty());
    QTRY_COMPARE_WITH_TIMEOUT(ledgerLines().size(), 4, 30000); // a's stage process ended too

    // a resumes: it finds its node taken over, takes nothing and ends (status 75).
    // (Its end is checked after the repository: a node that kept running would have had its
    // chance to take its run's work by then.)
    QCOMPARE(::kill(pid_t(a.processId()), SIGCONT), 0);
    const bool ended = a.waitForFinished(30000);

    // Nothing of a's run reached the shared repository: the task branch holds b's commit
    // only, and the recorded head is b's.
    const QString branch = task(b).value(QLatin1String("branch")).toString();
    const auto log = Test::runGit({QStringLiteral("-C"), repo, QStringLiteral("log"), QStringLiteral("--format=%s"), branch});
    QCOMPARE(log.code, 0);
    const QString subjects = log.out;
    QVERIFY2(subjects.contains(configB->path()), qPrintable(subjects));
    QVERIFY2(!subjects.contains(configA->path()), qPrintable(subjects));
    const auto all = Test::runGit({QStringLiteral("-C"), repo, QStringLiteral("log"), QStringLiteral("--all"), QStringLiteral("--reflog"),
                                   QStringLiteral("--format=%s")});
    QVERIFY2(!all.out.contains(configA->path()), qPrintable(all.out));
    const auto tip = Test::runGit({QStringLiteral("-C"), repo, QStringLiteral("rev-parse"), branch});
    QCOMPARE(tip.out, head);
    // The task stays done, with one completed job for its stage, completed by b.
    const QJsonObject done = task(b);
    QCOMPARE(done.value(QLatin1String("status")).toString(), QStringLiteral("done"));
    int completed = 0;
    for (const QJsonValue &v : done.value(QLatin1String("jobs")).toArray()) {
        const QJsonObject j = v.toObject();
        if (j.value(QLatin1String("stage")).toString() == QLatin1String("work") && j.value(QLatin1String("status")).toString() == QLatin1String("done")) {
            ++completed;
            QCOMPARE(j.value(QLatin1String("node")).toString(), QStringLiteral("b"));
        }
    }
    QCOMPARE(completed, 1);

    QVERIFY2(ended, a.log().constData());
    QCOMPARE(a.exitStatus(), QProcess::NormalExit);
    QCOMPARE(a.exitCode(), 75);
    QVERIFY2(a.log().contains("taken over by"), a.log().constData());
}

void tst_Nodes::newJobWakesAnIdleWorkerOnPostgresql()
{
    // The poll is an hour: only the notification of the enqueue (LISTEN/NOTIFY) can make the
    // idle worker claim the job within the test's wait.
    QVERIFY(Test::freshStore(QStringLiteral("postgresql"), m_shared.path(), &m_store));
    const QString repo = m_shared.path() + QStringLiteral("/repo-wake.git");
    QVERIFY(Test::seededBareRepository(repo));
    m_project = "id: p\nrepository: {path: " + repo.toUtf8() + "}\nstages:\n  - name: work\n    run: hold\n  - name: done\n"
                "instances:\n  hold: {plugin: command, settings: {command: [/bin/true]}}\n";
    const auto config = nodeConfig("n1", "state", "60s", "1h");
    m_daemons.push_back(daemon());
    Test::DaemonProcess &one = *m_daemons.back();
    QVERIFY(one.serve(config->path()));
    QVERIFY2(one.log().contains("listening for new jobs"), one.log().constData());
    const auto runTask = [&](const QString &title) -> qint64 {
        const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), config->path(), QStringLiteral("--project"),
                                QStringLiteral("p"), QStringLiteral("--title"), title, QStringLiteral("--json")});
        if (submit.exitCode != 0)
            return 0;
        return QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    };
    // The first task may meet the worker's look for work at its start; once it is done the
    // worker is idle, and the second one is the measure.
    qint64 id = runTask(QStringLiteral("first"));
    QVERIFY(id > 0);
    const auto task = [&one, &id] { return one.request("GET", QStringLiteral("/api/tasks/%1").arg(id)).json(); };
    QTRY_COMPARE_WITH_TIMEOUT(task().value(QLatin1String("status")).toString(), QStringLiteral("done"), 30000);
    id = runTask(QStringLiteral("second"));
    QVERIFY(id > 0);
    QTRY_COMPARE_WITH_TIMEOUT(task().value(QLatin1String("status")).toString(), QStringLiteral("done"), 30000);
    // For the record (the bench measures it): enqueued → claimed.
    for (const QJsonValue &v : task().value(QLatin1String("jobs")).toArray()) {
        const QJsonObject j = v.toObject();
        qInfo("job %lld claimed %lld ms after it became available", j.value(QLatin1String("id")).toVariant().toLongLong(),
              j.value(QLatin1String("claimedAt")).toVariant().toLongLong() - j.value(QLatin1String("availableAt")).toVariant().toLongLong());
    }
}

QTEST_GUILESS_MAIN(tst_Nodes)
#include "tst_nodes.moc"
