// SPDX-License-Identifier: Apache-2.0
// Crash anywhere: the quickstart pipeline with real child-process agents, the daemon killed
// with SIGKILL (and, between, an agent) at random moments many times, restarted, and the
// invariants checked after each restart:
//
//  - no task lost;
//  - no task advanced twice for one finished job (every transition out of a stage names the
//    job that finished it; no job is named twice);
//  - no job stuck running past the restart: once a restarted daemon is ready, every running
//    job was claimed by it or keeps a living, adopted agent;
//  - no lease held by a dead holder after reclaim (each killed daemon held one);
//  - no finished work lost: no job whose agent's exit recorder wrote 0 is ever failed or run
//    again (the agents keep their own ledger of starts; the recorder's files say how they ended);
//  - at the end every task is done or blocked.
//
// It runs twice: with max_attempts 20 (every crash may cost an attempt) and with max_attempts 1,
// where a retry cannot hide a recovery that throws finished work away.
//
// SLUICE_CRASH_KILLS sets the number of kills of each run (default 30, the CI run; 500 on
// demand), SLUICE_CRASH_SEED the random seed (printed, so a failing run can be replayed).
#include "daemonprocess.h"
#include "testdaemon.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtTest>

#include <csignal>

using namespace Sluice;

namespace {

// The sluice under test; tests/bench/crash.sh points it at a private copy of the build, so a
// rebuild during a long run does not pull the binary from under it.
QString sluiceExecutable()
{
    return qEnvironmentVariable("SLUICE_CRASH_EXECUTABLE", QStringLiteral(SLUICE_EXECUTABLE));
}

bool processAlive(qint64 pid)
{
    QFile stat(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!stat.open(QIODevice::ReadOnly))
        return false;
    const QByteArray text = stat.readAll();
    const int close = text.lastIndexOf(')');
    return close > 0 && text.size() > close + 2 && text.at(close + 2) != 'Z' && text.at(close + 2) != 'X';
}

quint64 startTicks(qint64 pid)
{
    QFile stat(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!stat.open(QIODevice::ReadOnly))
        return 0;
    const QByteArray text = stat.readAll();
    const QList<QByteArray> fields = text.mid(text.lastIndexOf(')') + 2).split(' ');
    return fields.size() > 19 ? fields.at(19).toULongLong() : 0;
}

} // namespace

class tst_CrashAnywhere : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void cleanup();
    void killAnywhereLosesNothing_data();
    void killAnywhereLosesNothing();

private:
    bool setUp(int maxAttempts);
    bool startDaemon();
    void killDaemon();
    QSqlDatabase db();
    void checkInvariants(const QDateTime &restartedAt, const QString &when);
    void checkRecordedWorkKept(const QString &when);
    bool submit(int count);

    std::unique_ptr<Test::TemporaryConfig> m_config;
    Test::DaemonProcess m_daemon{sluiceExecutable()};
    QString m_connection; // this run's connection to the daemon's SQLite file
    QString m_ledger;     // the agents' own record of their starts
    int m_tasks = 0;      // submitted so far
    int m_leasesPlanted = 0; // one per killed daemon; pids repeat over many restarts, so counted, not named
};

bool tst_CrashAnywhere::setUp(int maxAttempts)
{
    const QString top = QStringLiteral(SLUICE_SOURCE_DIR);
    m_config = std::make_unique<Test::TemporaryConfig>();
    m_tasks = 0;
    m_leasesPlanted = 0;
    // The quickstart's host file, with the self-healing made quick enough for a test.
    m_config->writeHostFile("node: crash-node\nstate_dir: state\nworker: {concurrency: 3, poll_interval: 200ms}\n"
                            "http: {port: 0}\n"
                            "reaper: {interval: 1s, finalize_grace: 3s, ceiling: 10m, kill_grace: 1s}\n"
                            "reconciler: {interval: 1s, settle: 3s}\n");
    // The quickstart project, its demo agent slowed down at random so kills land everywhere.
    // Each agent writes its start (with its log, which names its job and attempt) to a ledger
    // of its own before anything else: the store's records are what is being tested.
    QFile project(top + QStringLiteral("/resources/examples/quickstart/projects/quickstart.yaml"));
    if (!project.open(QIODevice::ReadOnly))
        return false;
    QByteArray yaml = project.readAll();
    m_ledger = m_config->path() + QStringLiteral("/agent-ledger");
    const QString agent = m_config->writeFile(QStringLiteral("slow-agent.sh"),
                                              "#!/bin/sh\necho \"start $SLUICE_LOG\" >> " + m_ledger.toUtf8() + "\n"
                                              "sleep $(( $(od -An -N1 -tu1 /dev/urandom) % 3 )).$(( $(od -An -N1 -tu1 /dev/urandom) % 10 ))\n"
                                              "exec /bin/sh " + top.toUtf8() + "/resources/examples/quickstart/demo-agent.sh \"$@\"\n");
    yaml.replace("@DEMO_AGENT@", agent.toUtf8());
    // 20: every crash may cost an attempt, and 30 crashes must not exhaust them. 1: nothing
    // may hide behind a retry.
    yaml.replace("max_attempts: 2", "max_attempts: " + QByteArray::number(maxAttempts));
    yaml.replace("retry_backoff: 2s", "retry_backoff: 1s");
    m_config->writeProject(QStringLiteral("quickstart"), yaml);
    if (!Test::seededBareRepository(m_config->path() + QStringLiteral("/work/quickstart.git")))
        return false;
    m_connection = QStringLiteral("crash-check-%1").arg(maxAttempts);
    return submit(6);
}

bool tst_CrashAnywhere::submit(int count)
{
    for (int i = 0; i < count; ++i) {
        QProcess submit;
        submit.start(sluiceExecutable(), {QStringLiteral("submit"), QStringLiteral("--config"), m_config->path(),
                                          QStringLiteral("--project"), QStringLiteral("quickstart"),
                                          QStringLiteral("--title"), QStringLiteral("Say hello %1").arg(m_tasks + 1)});
        if (!submit.waitForFinished(30000) || submit.exitCode() != 0) {
            qWarning("sluice submit failed: %s", submit.readAllStandardError().constData());
            return false;
        }
        ++m_tasks;
    }
    return true;
}

void tst_CrashAnywhere::cleanup()
{
    if (m_daemon.state() != QProcess::NotRunning) {
        m_daemon.terminate();
        m_daemon.waitForFinished(20000);
    }
    if (!m_config)
        return;
    // Agents of the last life, if any.
    {
        QSqlDatabase d = db();
        QSqlQuery q(d);
        if (q.exec(QStringLiteral("SELECT pid FROM agent_runs WHERE finished_at IS NULL"))) {
            while (q.next())
                ::kill(-pid_t(q.value(0).toLongLong()), SIGKILL);
        }
    }
    QSqlDatabase::removeDatabase(m_connection);
    m_config.reset();
}

QSqlDatabase tst_CrashAnywhere::db()
{
    const QString name = m_connection;
    if (QSqlDatabase::contains(name))
        return QSqlDatabase::database(name);
    QSqlDatabase d = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
    d.setDatabaseName(m_config->path() + QStringLiteral("/state/sluice.db"));
    d.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=10000"));
    d.open();
    return d;
}

bool tst_CrashAnywhere::startDaemon()
{
    return m_daemon.serve(m_config->path());
}

void tst_CrashAnywhere::killDaemon()
{
    // Before it dies the daemon holds a lease (as the merge gate would): a dead holder.
    const qint64 pid = m_daemon.processId();
    QSqlDatabase d = db();
    QSqlQuery lease(d);
    const QString resource = QStringLiteral("crash:%1").arg(pid);
    lease.prepare(QStringLiteral("INSERT INTO leases (resource, holder_node, holder_pid, holder_start_ticks, acquired_at, expires_at) "
                                 "VALUES (?, 'crash-node', ?, ?, ?, ?)"));
    lease.addBindValue(resource);
    lease.addBindValue(pid);
    lease.addBindValue(qint64(startTicks(pid)));
    lease.addBindValue(QDateTime::currentMSecsSinceEpoch());
    lease.addBindValue(QDateTime::currentMSecsSinceEpoch() + 3600000);
    if (lease.exec())
        ++m_leasesPlanted;
    ::kill(pid_t(pid), SIGKILL);
    m_daemon.waitForFinished(10000);
}

void tst_CrashAnywhere::checkInvariants(const QDateTime &restartedAt, const QString &when)
{
    QSqlDatabase d = db();
    QSqlQuery q(d);
    // No task lost.
    QVERIFY(q.exec(QStringLiteral("SELECT COUNT(*) FROM tasks")));
    QVERIFY(q.next());
    QVERIFY2(q.value(0).toInt() == m_tasks, qPrintable(when + QStringLiteral(": tasks lost")));
    // No job named by two transitions: one finished job, one advance.
    QVERIFY(q.exec(QStringLiteral("SELECT task_id, action, details FROM audit WHERE actor = 'engine' "
                                  "AND action IN ('advance', 'done', 'rollback', 'blocked') ORDER BY id")));
    QHash<qint64, QString> byJob;
    static const QRegularExpression jobInCause(QStringLiteral("\\bjob (\\d+)\\b"));
    while (q.next()) {
        const QJsonObject details = QJsonDocument::fromJson(q.value(2).toString().toUtf8()).object();
        const QString cause = details.value(QLatin1String("cause")).toString();
        const auto m = jobInCause.match(cause);
        if (!m.hasMatch())
            continue;
        const qint64 job = m.captured(1).toLongLong();
        QVERIFY2(!byJob.contains(job), qPrintable(QStringLiteral("%1: job %2 moved task %3 twice: '%4' then '%5'")
                                                      .arg(when).arg(job).arg(q.value(0).toLongLong()).arg(byJob.value(job), cause)));
        byJob.insert(job, cause);
    }
    // Once the daemon is ready nothing runs from before its start, unless its living agent was
    // adopted by this start.
    QSet<qint64> adoptedJobs;
    QVERIFY(q.exec(QStringLiteral("SELECT details FROM audit WHERE actor = 'reaper' AND action = 'adopt-agent' AND at >= %1")
                       .arg(restartedAt.toMSecsSinceEpoch())));
    while (q.next())
        adoptedJobs.insert(QJsonDocument::fromJson(q.value(0).toString().toUtf8()).object().value(QLatin1String("job")).toVariant().toLongLong());
    QVERIFY(q.exec(QStringLiteral("SELECT id, claimed_at FROM jobs WHERE status = 'running'")));
    while (q.next()) {
        const bool fresh = q.value(1).toLongLong() >= restartedAt.toMSecsSinceEpoch();
        const bool adopted = adoptedJobs.contains(q.value(0).toLongLong());
        QVERIFY2(fresh || adopted, qPrintable(QStringLiteral("%1: job %2 is still running from before the restart, with no living agent")
                                                  .arg(when).arg(q.value(0).toLongLong())));
    }
    // No lease of a dead holder survives the restart's reclaim.
    QVERIFY(q.exec(QStringLiteral("SELECT resource, holder_pid FROM leases")));
    while (q.next())
        QVERIFY2(processAlive(q.value(1).toLongLong()), qPrintable(QStringLiteral("%1: lease %2 of dead pid %3 kept")
                                                                        .arg(when, q.value(0).toString()).arg(q.value(1).toLongLong())));
    checkRecordedWorkKept(when);
}

// Work an agent finished is never thrown away: once its exit recorder wrote 0 for an attempt,
// the job is not failed, not claimed again and no agent starts for it again. What the agents
// wrote themselves (their ledger of starts, the recorder's files beside their logs) is the
// truth here, not the store.
void tst_CrashAnywhere::checkRecordedWorkKept(const QString &when)
{
    QFile ledger(m_ledger);
    if (!ledger.open(QIODevice::ReadOnly))
        return; // no agent started yet
    static const QRegularExpression attemptOfLog(QStringLiteral("-job(\\d+)-attempt(\\d+)\\.log$"));
    QHash<qint64, QList<int>> starts; // job -> attempts that started an agent, in order
    QHash<QString, QPair<qint64, int>> logs;
    for (const QByteArray &line : ledger.readAll().split('\n')) {
        if (!line.startsWith("start "))
            continue;
        const QString log = QString::fromUtf8(line.mid(6)).trimmed();
        const auto m = attemptOfLog.match(log);
        QVERIFY2(m.hasMatch(), qPrintable(QStringLiteral("%1: the ledger names no job in '%2'").arg(when, log)));
        const qint64 job = m.captured(1).toLongLong();
        const int attempt = m.captured(2).toInt();
        starts[job].append(attempt);
        logs.insert(log, {job, attempt});
    }
    QSqlDatabase d = db();
    for (auto it = logs.cbegin(); it != logs.cend(); ++it) {
        QFile exit(it.key() + QStringLiteral(".exit"));
        if (!exit.open(QIODevice::ReadOnly) || exit.readAll().trimmed() != "0")
            continue;
        const auto [job, attempt] = it.value();
        const QList<int> started = starts.value(job);
        QVERIFY2(started.count(attempt) == 1 && started.last() == attempt,
                 qPrintable(QStringLiteral("%1: job %2 recorded exit 0 in attempt %3, yet agents started for attempts %4")
                                .arg(when).arg(job).arg(attempt)
                                .arg([&] { QStringList l; for (int a : started) l << QString::number(a); return l.join(QLatin1Char(',')); }())));
        QSqlQuery q(d);
        QVERIFY(q.exec(QStringLiteral("SELECT status, attempts, last_error FROM jobs WHERE id = %1").arg(job)) && q.next());
        QVERIFY2(q.value(0).toString() != QLatin1String("failed"),
                 qPrintable(QStringLiteral("%1: job %2 recorded exit 0 in attempt %3 and was failed: %4")
                                .arg(when).arg(job).arg(attempt).arg(q.value(2).toString())));
        QVERIFY2(q.value(1).toInt() == attempt,
                 qPrintable(QStringLiteral("%1: job %2 recorded exit 0 in attempt %3 and was claimed again (attempt %4): %5")
                                .arg(when).arg(job).arg(attempt).arg(q.value(1).toInt()).arg(q.value(2).toString())));
    }
}

void tst_CrashAnywhere::killAnywhereLosesNothing_data()
{
    QTest::addColumn<int>("maxAttempts");
    QTest::newRow("max_attempts 20") << 20;
    QTest::newRow("max_attempts 1") << 1;
}

void tst_CrashAnywhere::killAnywhereLosesNothing()
{
    QFETCH(int, maxAttempts);
    QVERIFY(setUp(maxAttempts));
    const int kills = qEnvironmentVariableIsSet("SLUICE_CRASH_KILLS") ? qEnvironmentVariableIntValue("SLUICE_CRASH_KILLS") : 30;
    const quint32 seed = qEnvironmentVariableIsSet("SLUICE_CRASH_SEED") ? quint32(qEnvironmentVariableIntValue("SLUICE_CRASH_SEED"))
                                                                         : QRandomGenerator::global()->generate();
    qInfo("crash-anywhere: max_attempts %d, %d kills, seed %u (SLUICE_CRASH_SEED=%u replays it)", maxAttempts, kills, seed, seed);
    QRandomGenerator random(seed);
    QElapsedTimer clock;
    clock.start();
    int daemonKills = 0;
    int agentKills = 0;
    for (int i = 0; i < kills; ++i) {
        const QDateTime restartedAt = QDateTime::currentDateTimeUtc();
        QVERIFY2(startDaemon(), m_daemon.log().constData());
        checkInvariants(restartedAt, QStringLiteral("after restart %1").arg(i));
        if (QTest::currentTestFailed())
            return;
        // Kills land on work: while fewer than three tasks are active, more are submitted.
        {
            QSqlQuery active(db());
            if (active.exec(QStringLiteral("SELECT COUNT(*) FROM tasks WHERE status = 'active'")) && active.next()
                && active.value(0).toInt() < 3)
                QVERIFY(submit(3));
        }
        QTest::qWait(int(random.bounded(200, 2500)));
        if (random.bounded(4) == 0) {
            // Kill an agent instead, then the daemon a moment later.
            QSqlQuery q(db());
            if (q.exec(QStringLiteral("SELECT pid FROM agent_runs WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1")) && q.next()
                && processAlive(q.value(0).toLongLong())) {
                ::kill(-pid_t(q.value(0).toLongLong()), SIGKILL); // the agent and its wrapper: the whole group
                ++agentKills;
                QTest::qWait(int(random.bounded(100, 1500)));
            }
        }
        killDaemon();
        ++daemonKills;
    }
    // The last life: no more kills; the pipeline heals and finishes.
    const QDateTime restartedAt = QDateTime::currentDateTimeUtc();
    QVERIFY2(startDaemon(), m_daemon.log().constData());
    checkInvariants(restartedAt, QStringLiteral("after the last restart"));
    QSqlDatabase d = db();
    const bool settled = QTest::qWaitFor([&] {
        QSqlQuery q(d);
        return q.exec(QStringLiteral("SELECT COUNT(*) FROM tasks WHERE status IN ('done', 'blocked')")) && q.next()
               && q.value(0).toInt() == m_tasks;
    }, 240000);
    if (!settled) {
        // Say where it stands: tasks, open jobs, and what the daemon said last.
        QSqlQuery q(d);
        q.exec(QStringLiteral("SELECT id, stage, status FROM tasks ORDER BY id"));
        while (q.next())
            qWarning("task %lld in %s: %s", q.value(0).toLongLong(), qPrintable(q.value(1).toString()), qPrintable(q.value(2).toString()));
        q.exec(QStringLiteral("SELECT id, task_id, stage, status, attempts, available_at - %1, last_error FROM jobs WHERE status IN ('queued', 'running')")
                   .arg(QDateTime::currentMSecsSinceEpoch()));
        while (q.next())
            qWarning("job %lld of task %lld in %s: %s, attempt %d, available in %lld ms, last error: %s", q.value(0).toLongLong(),
                     q.value(1).toLongLong(), qPrintable(q.value(2).toString()), qPrintable(q.value(3).toString()), q.value(4).toInt(),
                     q.value(5).toLongLong(), qPrintable(q.value(6).toString()));
        for (const QByteArray &line : m_daemon.log().split('\n')) {
            if (!line.contains(": debug:"))
                qWarning("daemon: %s", line.constData());
        }
    }
    QVERIFY(settled);
    QTRY_VERIFY_WITH_TIMEOUT(([&] {
                                 QSqlQuery q(d);
                                 return q.exec(QStringLiteral("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")) && q.next()
                                        && q.value(0).toInt() == 0;
                             }()),
                             60000);
    checkInvariants(restartedAt, QStringLiteral("at the end"));
    {
        QSqlQuery q(d);
        QVERIFY(q.exec(QStringLiteral("SELECT COUNT(*) FROM leases WHERE resource LIKE 'crash:%'")) && q.next());
        QCOMPARE(q.value(0).toInt(), 0);
    }

    // What the operator sees: the reaper's block in `sluice queue`, from another process.
    QProcess queue;
    queue.start(sluiceExecutable(), {QStringLiteral("queue"), QStringLiteral("--config"), m_config->path(), QStringLiteral("--json")});
    QVERIFY(queue.waitForFinished(30000));
    const QJsonObject report = QJsonDocument::fromJson(queue.readAllStandardOutput()).object();
    const QJsonArray reaperBlock = report.value(QLatin1String("reaper")).toArray();
    QCOMPARE(reaperBlock.size(), 1);
    const QJsonObject reaperStatus = reaperBlock.first().toObject();
    QCOMPARE(reaperStatus.value(QLatin1String("node")).toString(), QStringLiteral("crash-node"));
    QVERIFY(reaperStatus.value(QLatin1String("enabled")).toBool());
    QCOMPARE(reaperStatus.value(QLatin1String("leasesReclaimedTotal")).toInt(), m_leasesPlanted);
    QVERIFY(!reaperStatus.value(QLatin1String("lastRun")).toString().isEmpty());
    QCOMPARE(report.value(QLatin1String("reconciler")).toArray().size(), 1);
    queue.start(sluiceExecutable(), {QStringLiteral("queue"), QStringLiteral("--config"), m_config->path()});
    QVERIFY(queue.waitForFinished(30000));
    const QByteArray text = queue.readAllStandardOutput();
    QVERIFY2(text.contains("reaper on crash-node: on, every 1 s") && text.contains("leases reclaimed"), text.constData());

    // The figures.
    auto count = [&](const QString &sql) {
        QSqlQuery q(d);
        return q.exec(sql) && q.next() ? q.value(0).toInt() : -1;
    };
    const int done = count(QStringLiteral("SELECT COUNT(*) FROM tasks WHERE status = 'done'"));
    const int blocked = count(QStringLiteral("SELECT COUNT(*) FROM tasks WHERE status = 'blocked'"));
    QString reaps;
    QSqlQuery byTier(d);
    QVERIFY(byTier.exec(QStringLiteral("SELECT action, details FROM audit WHERE actor = 'reaper' ORDER BY id")));
    QMap<QString, int> tally;
    while (byTier.next()) {
        const QJsonObject o = QJsonDocument::fromJson(byTier.value(1).toString().toUtf8()).object();
        const QString action = byTier.value(0).toString();
        const QString key = action == QLatin1String("reap") || action == QLatin1String("recover-job")
                                ? QStringLiteral("%1 tier %2 -> %3").arg(action).arg(o.value(QLatin1String("tier")).toInt()).arg(o.value(QLatin1String("outcome")).toString())
                                : action;
        ++tally[key];
    }
    for (auto it = tally.cbegin(); it != tally.cend(); ++it)
        reaps += QStringLiteral("\n  %1: %2").arg(it.key()).arg(it.value());
    qInfo().noquote() << QStringLiteral("crash-anywhere figures (max_attempts %1): ").arg(maxAttempts)
                      + QStringLiteral("%1 daemon kills, %2 agent kills, %3 restarts in %4 s; "
                                        "tasks %5 done, %6 blocked of %7; jobs %8; agent runs %9; engine transitions %10; reconciler actions %11; "
                                        "leases of killed daemons %12 (all reclaimed); reaper:%13")
                             .arg(daemonKills).arg(agentKills).arg(daemonKills + 1).arg(clock.elapsed() / 1000)
                             .arg(done).arg(blocked).arg(m_tasks)
                             .arg(count(QStringLiteral("SELECT COUNT(*) FROM jobs")))
                             .arg(count(QStringLiteral("SELECT COUNT(*) FROM agent_runs")))
                             .arg(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE actor = 'engine' AND action IN ('advance', 'done', 'rollback', 'blocked')")))
                             .arg(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE actor = 'reconciler'")))
                             .arg(m_leasesPlanted)
                             .arg(reaps);
    QCOMPARE(done + blocked, m_tasks);
    QVERIFY2(done > 0, "not one task made it through the pipeline");
}

QTEST_GUILESS_MAIN(tst_CrashAnywhere)
#include "tst_crashanywhere.moc"
