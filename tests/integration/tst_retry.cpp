// SPDX-License-Identifier: Apache-2.0
// `sluice retry N --reason TEXT`: an operator's retry of a blocked task from its stage, with the
// real executable on SQLite and PostgreSQL — with no daemon running (the job waits in the
// queue for the next start) and with one running (it takes the job at its next poll). The
// claim is a conditional update: of two retries at once exactly one wins; only a blocked task
// is retried; the retry is audited with the operator and the reason and notified through the
// store's outbox; `sluice task` tells how to use it.
#include "daemonprocess.h"
#include "engine/engine.h"
#include "testdaemon.h"
#include "storefixture.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QtTest>

#include <pwd.h>
#include <unistd.h>

using namespace Sluice;

namespace {

struct Run {
    int code = -1;
    QByteArray out; ///< stdout
    QByteArray err; ///< stderr
};

Run sluice(const QStringList &arguments)
{
    QProcess p;
    p.start(QStringLiteral(SLUICE_EXECUTABLE), arguments);
    Run run;
    if (!p.waitForFinished(120000) || p.exitStatus() != QProcess::NormalExit) {
        p.kill();
        p.waitForFinished();
    } else {
        run.code = p.exitCode();
    }
    run.out = p.readAllStandardOutput();
    run.err = p.readAllStandardError();
    return run;
}

QString currentUser()
{
    const struct passwd *user = ::getpwuid(::geteuid());
    return user ? QString::fromLocal8Bit(user->pw_name) : QString();
}

} // namespace

class tst_Retry : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void retryFromTheBlockedStage_data();
    void retryFromTheBlockedStage();

private:
    bool setUp(const QString &engine);
    Run cli(QStringList arguments) const
    {
        arguments.insert(1, QStringLiteral("--config"));
        arguments.insert(2, m_config->path());
        return sluice(arguments);
    }
    QJsonObject task(qint64 id) const
    {
        const Run run = cli({QStringLiteral("task"), QString::number(id), QStringLiteral("--json")});
        return QJsonDocument::fromJson(run.out).object();
    }
    // Every row of @p sql. The query is finished before this returns: on SQLite a statement
    // left open would keep this connection's read snapshot and hide the daemon's writes.
    QList<QVariantList> rows(const QString &sql) const
    {
        QList<QVariantList> out;
        QSqlQuery q(*m_store->connection());
        if (!q.exec(sql))
            qWarning() << "query failed:" << sql;
        while (q.next()) {
            QVariantList row;
            for (int i = 0; i < q.record().count(); ++i)
                row.append(q.value(i));
            out.append(row);
        }
        return out;
    }

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<Test::TemporaryConfig> m_config;
    std::unique_ptr<Store> m_store;
    QString m_fixed; // the file the stage's check wants
};

void tst_Retry::retryFromTheBlockedStage_data()
{
    Test::addEngineRows();
}

bool tst_Retry::setUp(const QString &engine)
{
    m_dir = std::make_unique<QTemporaryDir>();
    m_config = std::make_unique<Test::TemporaryConfig>();
    StoreSettings settings;
    if (!Test::freshStore(engine, m_dir->path(), &settings))
        return false;
    m_config->writeHostFile("node: retry-node\nstate_dir: state\nworker: {concurrency: 2, poll_interval: 200ms}\nhttp: {port: 0}\n"
                            + Test::hostStoreSection(settings));
    const QString repo = m_config->path() + QStringLiteral("/work/p.git");
    if (!Test::seededBareRepository(repo))
        return false;
    m_fixed = m_config->path() + QStringLiteral("/fixed");
    // One stage that passes only once the operator fixed its cause; one attempt per job.
    m_config->writeProject(QStringLiteral("p"),
        "id: p\nrepository: {path: " + repo.toUtf8() + ", target_branch: main}\n"
        "stages:\n  - name: check\n    run: check\n  - name: done\n"
        "jobs: {max_attempts: 1, retry_backoff: 1s}\n"
        "instances:\n"
        "  check: {plugin: command, settings: {command: [/bin/sh, -c, \"test -e " + m_fixed.toUtf8() + "\"], timeout: 1m}}\n");
    auto store = Store::open(settings);
    if (!store) {
        QTest::qFail(qPrintable(store.error().toString()), __FILE__, __LINE__);
        return false;
    }
    m_store = std::move(*store);
    return true;
}

void tst_Retry::retryFromTheBlockedStage()
{
    QFETCH(QString, engine);
    if (!setUp(engine))
        return;
    JobQueue jobs(*m_store);
    TaskStore tasks(*m_store);
    auto status = [&](qint64 id) {
        const auto found = tasks.task(id);
        return found && *found ? (*found)->status : QString();
    };
    auto submit = [&](const QString &title) {
        const Run run = cli({QStringLiteral("submit"), QStringLiteral("--project"), QStringLiteral("p"), QStringLiteral("--title"), title,
                             QStringLiteral("--json")});
        return run.code == 0 ? qint64(QJsonDocument::fromJson(run.out).object().value(QLatin1String("task")).toDouble()) : 0;
    };

    // 1. Blocked: the check fails and max_attempts is 1.
    const qint64 first = submit(QStringLiteral("First"));
    QVERIFY(first > 0);
    Run serve = cli({QStringLiteral("serve"), QStringLiteral("--exit-when-idle")});
    QVERIFY2(serve.code == 0, serve.err.constData());
    QCOMPARE(status(first), QStringLiteral("blocked"));

    // `sluice task` says how to unblock it.
    const Run shown = cli({QStringLiteral("task"), QString::number(first)});
    QCOMPARE(shown.code, 0);
    const QByteArray hint = "to retry it from stage check once the cause is fixed: sluice retry " + QByteArray::number(first)
                            + " --config " + m_config->path().toUtf8() + " --reason";
    QVERIFY2(shown.out.contains(hint), shown.out.constData());
    QVERIFY(task(first).value(QLatin1String("retryCommand")).toString().startsWith(QStringLiteral("sluice retry %1").arg(first)));

    // 2. What is refused changes nothing.
    Run refused = cli({QStringLiteral("retry"), QString::number(first)});
    QCOMPARE(refused.code, 2);
    QVERIFY2(refused.err.contains("--reason TEXT is required"), refused.err.constData());
    refused = cli({QStringLiteral("retry"), QStringLiteral("999"), QStringLiteral("--reason"), QStringLiteral("x")});
    QCOMPARE(refused.code, 1);
    QVERIFY2(refused.err.contains("no task 999"), refused.err.constData());
    QCOMPARE(jobs.jobsForTask(first)->size(), 1);

    // 3. Two operators retry at once: one claim wins, the other is told; one new job.
    QFile(m_fixed).open(QIODevice::WriteOnly);
    QProcess a;
    QProcess b;
    const QStringList retry{QStringLiteral("retry"), QStringLiteral("--config"), m_config->path(), QString::number(first),
                            QStringLiteral("--reason"), QStringLiteral("the file the check wants is there now"), QStringLiteral("--json")};
    a.start(QStringLiteral(SLUICE_EXECUTABLE), retry);
    b.start(QStringLiteral(SLUICE_EXECUTABLE), retry);
    QVERIFY(a.waitForFinished(60000) && b.waitForFinished(60000));
    QCOMPARE(a.exitCode() + b.exitCode(), 1);
    QProcess &winner = a.exitCode() == 0 ? a : b;
    QProcess &loser = a.exitCode() == 0 ? b : a;
    const QByteArray loserSaid = loser.readAllStandardError();
    QVERIFY2(loserSaid.contains("only a blocked task can be retried") || loserSaid.contains("changed while it was being retried"),
             loserSaid.constData());
    const QJsonObject retried = QJsonDocument::fromJson(winner.readAllStandardOutput()).object();
    QCOMPARE(retried.value(QLatin1String("stage")).toString(), QStringLiteral("check"));
    QCOMPARE(retried.value(QLatin1String("operator")).toString(), currentUser());
    const qint64 newJob = qint64(retried.value(QLatin1String("job")).toDouble());
    auto firstJobs = jobs.jobsForTask(first);
    QCOMPARE(firstJobs->size(), 2);
    QCOMPARE(firstJobs->first().status, QStringLiteral("failed")); // the failed job keeps its history
    QCOMPARE(firstJobs->last().id, newJob);
    QCOMPARE(firstJobs->last().status, QStringLiteral("queued"));
    QCOMPARE(firstJobs->last().attempts, 0);
    const TaskRecord active = **tasks.task(first);
    QCOMPARE(active.status, QStringLiteral("active"));
    QCOMPARE(active.stage, QStringLiteral("check"));
    QVERIFY(active.blockedReason.isEmpty());
    // Audited with who and why; notified through the outbox (no daemon runs to route it).
    const auto audit = rows(QStringLiteral("SELECT actor, details FROM audit WHERE action = 'retry' AND task_id = %1").arg(first));
    QCOMPARE(audit.size(), 1);
    QCOMPARE(audit.first().at(0).toString(), QStringLiteral("cli:retry"));
    const QJsonObject details = QJsonDocument::fromJson(audit.first().at(1).toString().toUtf8()).object();
    QCOMPARE(details.value(QLatin1String("operator")).toString(), currentUser());
    QCOMPARE(details.value(QLatin1String("reason")).toString(), QStringLiteral("the file the check wants is there now"));
    QVERIFY(details.value(QLatin1String("blockedReason")).toString().contains(QLatin1String("failed 1 time(s)")));
    const QString unblocked = QStringLiteral("SELECT claimed_by FROM notification_outbox WHERE event = 'unblocked' AND task_id = %1");
    auto outbox = rows(unblocked.arg(first));
    QCOMPARE(outbox.size(), 1);
    QVERIFY(outbox.first().at(0).isNull());

    // 4. Without a daemon the job waited; the next start runs it and routes the notification.
    serve = cli({QStringLiteral("serve"), QStringLiteral("--exit-when-idle")});
    QVERIFY2(serve.code == 0, serve.err.constData());
    QCOMPARE(status(first), QStringLiteral("done"));
    outbox = rows(unblocked.arg(first));
    QCOMPARE(outbox.size(), 1);
    QCOMPARE(outbox.first().at(0).toString(), QStringLiteral("retry-node"));
    // The history says who retried and why.
    const Run history = cli({QStringLiteral("task"), QString::number(first)});
    QVERIFY2(history.out.contains("retry") && history.out.contains("by " + currentUser().toUtf8() + ": the file the check wants is there now"),
             history.out.constData());
    QVERIFY(!history.out.contains("to retry it"));

    // 5. With a daemon running: blocked while it runs, retried from the CLI, run by that daemon.
    QFile::remove(m_fixed);
    const qint64 second = submit(QStringLiteral("Second"));
    QVERIFY(second > 0);
    Test::DaemonProcess daemon{QStringLiteral(SLUICE_EXECUTABLE)};
    QVERIFY(daemon.serve(m_config->path()));
    QTRY_VERIFY2_WITH_TIMEOUT(status(second) == QLatin1String("blocked"), daemon.log().constData(), 30000);
    QFile(m_fixed).open(QIODevice::WriteOnly);
    const Run live = cli({QStringLiteral("retry"), QString::number(second), QStringLiteral("--reason"), QStringLiteral("fixed while it runs")});
    QVERIFY2(live.code == 0, live.err.constData());
    QVERIFY2(live.out.contains("retried from stage check"), live.out.constData());
    QTRY_VERIFY2_WITH_TIMEOUT(status(second) == QLatin1String("done"), daemon.log().constData(), 30000);
    QTRY_VERIFY_WITH_TIMEOUT(([&] {
                                 const auto claimed = rows(unblocked.arg(second));
                                 return claimed.size() == 1 && claimed.first().at(0).toString() == QLatin1String("retry-node");
                             }()),
                             30000);
    // A task that is not blocked is not retried.
    refused = cli({QStringLiteral("retry"), QString::number(second), QStringLiteral("--reason"), QStringLiteral("again")});
    QCOMPARE(refused.code, 1);
    QVERIFY2(refused.err.contains("task " + QByteArray::number(second) + " is done in stage done; only a blocked task can be retried"),
             refused.err.constData());
    daemon.terminate();
    QVERIFY(daemon.waitForFinished(30000));
}

QTEST_GUILESS_MAIN(tst_Retry)
#include "tst_retry.moc"
