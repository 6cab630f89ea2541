// SPDX-License-Identifier: Apache-2.0
// `sluice serve` as a real process: drive a project over HTTP and the CLI, webhooks with
// signatures and de-duplication, SIGHUP with a broken file, SIGTERM during work and the
// recovery at the next start.

#include "daemonprocess.h"
#include "testdaemon.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMessageAuthenticationCode>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtTest>

#include <csignal>

using namespace Sluice;

namespace {

const QByteArray secret = "webhook-secret-for-tests-7c1d";

using Reply = Sluice::Test::HttpReply;

QByteArray sign(const QByteArray &body)
{
    return "sha256=" + QMessageAuthenticationCode::hash(body, secret, QCryptographicHash::Sha256).toHex();
}

using Run = Sluice::Test::CliRun;

Run cli(const QStringList &arguments)
{
    return Sluice::Test::runCli(QStringLiteral(SLUICE_EXECUTABLE), arguments);
}

bool git(const QStringList &args)
{
    return Sluice::Test::runGit(args).code == 0;
}

} // namespace

class tst_Daemon : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanup();
    void drivesAProjectOverHttpAndCli();
    void approveFromTheCliReportsWhereTheTaskIs();
    void sigtermStopsRunningWorkAndGivesItBack();
    void agentLeftByACrashIsAdoptedNotDoubled();

private:
    bool startDaemon();
    Reply request(const QByteArray &method, const QString &path, const QByteArray &body = {},
                  const QList<QPair<QByteArray, QByteArray>> &headers = {})
    {
        return m_daemon.request(method, path, body, headers);
    }
    QJsonObject task(qint64 id) { return request("GET", QStringLiteral("/api/tasks/%1").arg(id)).json(); }
    int eventRows();
    qint64 waitForStagePid(qint64 taskId);

    Test::PluginDirectory m_plugins;
    Test::TemporaryConfig m_config;
    Test::DaemonProcess m_daemon{QStringLiteral(SLUICE_EXECUTABLE)};
};

void tst_Daemon::initTestCase()
{
    for (const char *plugin : {"test-gate", "test-stage", "test-tracker"})
        m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QLatin1String(plugin));
    m_config.writeHostFile("node: test-node\nstate_dir: state\nplugin_dirs: [" + m_plugins.path().toUtf8()
                           + "]\nworker: {poll_interval: 100ms}\nhttp: {port: 0, max_body: 4096}\n");
    m_config.writeFile(QStringLiteral("secrets/hooks"), secret + '\n');
    const QString repo = m_config.path() + QStringLiteral("/repo.git");
    const QString seed = m_config.path() + QStringLiteral("/seed");
    m_config.writeFile(QStringLiteral("seed/README"), "seed\n");
    QVERIFY(git({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), repo}));
    QVERIFY(git({QStringLiteral("-C"), seed, QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}));
    QVERIFY(git({QStringLiteral("-C"), seed, QStringLiteral("add"), QStringLiteral("README")}));
    QVERIFY(git({QStringLiteral("-C"), seed, QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
                 QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")}));
    QVERIFY(git({QStringLiteral("-C"), seed, QStringLiteral("push"), QStringLiteral("-q"), repo, QStringLiteral("main")}));
    m_config.writeProject(QStringLiteral("p"), R"(id: p
repository: {path: ../repo.git}
tracker: hooks
stages:
  - name: development
    run: dev
  - name: review
    run: rev
    exit_gates: [g]
  - name: deploy
    run: confirm
  - name: done
instances:
  hooks: {plugin: test-tracker, settings: {secret: {file: ../secrets/hooks}}}
  dev: {plugin: test-stage, settings: {role: developer}}
  rev: {plugin: test-stage, settings: {role: reviewer}}
  g: {plugin: test-gate, settings: {result: pass}}
  confirm: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [confirm-deploy]}}
)");
    m_config.writeProject(QStringLiteral("gatekeep"), R"(id: gatekeep
repository: {path: ../repo.git}
red_policy: {max_retries: 0}
stages:
  - name: hold
    run: wait
    exit_gates: [nope]
  - name: done
instances:
  wait: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [approve]}}
  nope: {plugin: test-gate, settings: {result: fail}}
)");
    m_config.writeProject(QStringLiteral("agentic"), R"(id: agentic
repository: {path: ../repo.git}
agent_launcher: launcher
jobs: {retry_backoff: 1s}
stages:
  - name: work
    run: worker
  - name: done
instances:
  launcher:
    plugin: process
    settings:
      command: [/bin/sh, -c, "echo $PPID > {worktree}.agent.pid; exec sleep 300"]
      kill_grace: 1s
  worker: {plugin: agent, settings: {role: developer, timeout: 10m}}
)");
    m_config.writeProject(QStringLiteral("slow"), R"(id: slow
repository: {path: ../repo.git}
stages:
  - name: work
    run: sleepy
  - name: done
instances:
  sleepy:
    plugin: command
    settings:
      command: [/bin/sh, -c, "echo $$ > {artifacts}/stage.pid; exec sleep 300"]
      kill_grace: 2s
)");
}

void tst_Daemon::cleanup()
{
    if (m_daemon.state() != QProcess::NotRunning) {
        m_daemon.kill();
        m_daemon.waitForFinished(5000);
    }
}

bool tst_Daemon::startDaemon()
{
    return m_daemon.serve(m_config.path()) && m_daemon.port() != 0;
}

int tst_Daemon::eventRows()
{
    QSqlDatabase db = QSqlDatabase::contains(QStringLiteral("peek")) ? QSqlDatabase::database(QStringLiteral("peek"))
                                                                      : QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("peek"));
    db.setDatabaseName(m_config.path() + QStringLiteral("/state/sluice.db"));
    if (!db.isOpen() && !db.open())
        return -1;
    QSqlQuery q(db);
    return q.exec(QStringLiteral("SELECT COUNT(*) FROM events")) && q.next() ? q.value(0).toInt() : -1;
}

void tst_Daemon::drivesAProjectOverHttpAndCli()
{
    QVERIFY(startDaemon());
    QCOMPARE(request("GET", QStringLiteral("/healthz")).status, 200);
    QCOMPARE(request("GET", QStringLiteral("/readyz")).json().value(QLatin1String("status")).toString(), QStringLiteral("ready"));

    const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), m_config.path(), QStringLiteral("--project"),
                            QStringLiteral("p"), QStringLiteral("--title"), QStringLiteral("Ship it"), QStringLiteral("--json")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const qint64 id = QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    QVERIFY(id > 0);

    // The worker (woken by its poll: the task came from another process) runs development and
    // review; the gate passes; the task waits for a deploy confirmation.
    QTRY_VERIFY_WITH_TIMEOUT(task(id).value(QLatin1String("waiting")).toString().startsWith(QLatin1String("waiting for a signal in stage deploy")), 20000);
    const QJsonObject waiting = task(id);
    QCOMPARE(waiting.value(QLatin1String("stage")).toString(), QStringLiteral("deploy"));
    const QJsonArray verdicts = waiting.value(QLatin1String("verdicts")).toArray();
    QCOMPARE(verdicts.size(), 1);
    QCOMPARE(verdicts[0].toObject().value(QLatin1String("gate")).toString(), QStringLiteral("g"));
    QCOMPARE(verdicts[0].toObject().value(QLatin1String("result")).toString(), QStringLiteral("pass"));
    QVERIFY(verdicts[0].toObject().value(QLatin1String("reason")).toString().contains(QLatin1String("test gate says pass")));

    // A webhook with a bad signature: 401 and nothing stored.
    const int eventsBefore = eventRows();
    QVERIFY(eventsBefore >= 0);
    auto hook = [&](const QByteArray &delivery, const QByteArray &signal, bool goodSignature) {
        const QByteArray body = "{\"delivery\":\"" + delivery + "\",\"task\":" + QByteArray::number(id) + ",\"stage\":\"deploy\",\"signal\":\"" + signal + "\"}";
        return request("POST", QStringLiteral("/webhooks/p/hooks"), body,
                       {{"X-Sluice-Signature", goodSignature ? sign(body) : sign(body + "tampered")}});
    };
    QCOMPARE(hook("d-1", "confirm-deploy", false).status, 401);
    QCOMPARE(request("POST", QStringLiteral("/webhooks/p/hooks"), "{}").status, 401); // no signature at all
    QCOMPARE(eventRows(), eventsBefore);
    QCOMPARE(task(id).value(QLatin1String("stage")).toString(), QStringLiteral("deploy"));

    // "approve" is not what the deploy stage waits for: answered 200 once recorded (a sender
    // counts anything else as a failed delivery), then handled: a logged no-op.
    const Reply approve = hook("d-2", "approve", true);
    QCOMPARE(approve.status, 200);
    QCOMPARE(approve.json().value(QLatin1String("delivery")).toString(), QStringLiteral("d-2"));
    const auto ignored = [&] {
        for (const QJsonValue &h : task(id).value(QLatin1String("history")).toArray()) {
            const QJsonObject o = h.toObject();
            if (o.value(QLatin1String("action")).toString() == QLatin1String("signal-ignored")
                && o.value(QLatin1String("details")).toObject().value(QLatin1String("reason")).toString()
                       .startsWith(QLatin1String("stage 'deploy' waits for 'confirm-deploy'")))
                return true;
        }
        return false;
    };
    QTRY_VERIFY_WITH_TIMEOUT(ignored(), 10000);
    QCOMPARE(task(id).value(QLatin1String("stage")).toString(), QStringLiteral("deploy"));

    // The explicit confirmation moves it; the same delivery again is a duplicate.
    QCOMPARE(hook("d-3", "confirm-deploy", true).status, 200);
    QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("status")).toString(), QStringLiteral("done"), 10000);
    const Reply duplicate = hook("d-3", "confirm-deploy", true);
    QCOMPARE(duplicate.status, 200);
    QCOMPARE(duplicate.json().value(QLatin1String("duplicate")).toBool(), true);
    QCOMPARE(eventRows(), eventsBefore + 2);

    // Too large a body is refused before the connector sees it.
    QCOMPARE(request("POST", QStringLiteral("/webhooks/p/hooks"), QByteArray(8192, 'x')).status, 413);
    QCOMPARE(request("GET", QStringLiteral("/api/tasks/999")).status, 404);

    const QByteArray metrics = request("GET", QStringLiteral("/metrics")).body;
    QVERIFY2(metrics.contains("sluice_gate_verdicts_total{gate=\"g\",result=\"pass\"} 1"), metrics.constData());
    QVERIFY(metrics.contains("sluice_tasks_done_total 1"));
    // The sweeper schedule counts into the same metrics (no sweeper in this project: families only).
    QVERIFY(metrics.contains("# TYPE sluice_sweeps_total counter"));
    QVERIFY(metrics.contains("# HELP sluice_sweep_writes_total "));
    QVERIFY(metrics.contains("sluice_webhooks_total{result=\"unauthorized\"} 2"));
    QVERIFY(metrics.contains("sluice_webhooks_total{result=\"duplicate\"} 1"));
    QVERIFY(metrics.contains("sluice_jobs{state=\"done\"} 3"));

    const QJsonObject queue = request("GET", QStringLiteral("/api/queue")).json();
    QCOMPARE(queue.value(QLatin1String("counts")).toObject().value(QLatin1String("done")).toInt(), 3);
    QCOMPARE(queue.value(QLatin1String("worker")).toObject().value(QLatin1String("node")).toString(), QStringLiteral("test-node"));

    // The CLI sees the same store.
    const Run show = cli({QStringLiteral("task"), QStringLiteral("--config"), m_config.path(), QString::number(id)});
    QCOMPARE(show.exitCode, 0);
    QVERIFY2(show.out.contains(QLatin1String("stage done, done, 0 rollback(s)")), qPrintable(show.out));
    QVERIFY(show.out.contains(QLatin1String("review (exit)  g: pass")));
    const Run status = cli({QStringLiteral("status"), QStringLiteral("--config"), m_config.path()});
    QVERIFY(status.out.contains(QLatin1String("Ship it")));

    // SIGHUP with a broken project file: refused, the running version stays.
    m_config.writeProject(QStringLiteral("p"), "id: p\nstages: nonsense\n");
    ::kill(pid_t(m_daemon.processId()), SIGHUP);
    QTRY_VERIFY_WITH_TIMEOUT(m_daemon.log().contains("the previous version of p keeps running"), 10000);
    QVERIFY(request("GET", QStringLiteral("/api/status")).json().value(QLatin1String("projects")).toArray().contains(QStringLiteral("p")));

    // SIGHUP after the file was removed: the project is unloaded, the others keep running.
    QVERIFY(QFile::remove(m_config.path() + QStringLiteral("/projects/p.yaml")));
    m_daemon.clearLog();
    ::kill(pid_t(m_daemon.processId()), SIGHUP);
    QTRY_VERIFY_WITH_TIMEOUT(m_daemon.log().contains("unloaded project p - its file"), 10000);
    const QJsonArray projects = request("GET", QStringLiteral("/api/status")).json().value(QLatin1String("projects")).toArray();
    QVERIFY(!projects.contains(QStringLiteral("p")));
    QVERIFY(projects.contains(QStringLiteral("slow")));

    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(10000));
    QCOMPARE(m_daemon.exitStatus(), QProcess::NormalExit);
    QCOMPARE(m_daemon.exitCode(), 0);
    QVERIFY(m_daemon.log().contains("stopping: signal 15"));
}

void tst_Daemon::approveFromTheCliReportsWhereTheTaskIs()
{
    QVERIFY(startDaemon());
    const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), m_config.path(), QStringLiteral("--project"),
                            QStringLiteral("gatekeep"), QStringLiteral("--title"), QStringLiteral("Needs a yes"), QStringLiteral("--json")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const qint64 id = QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    QTRY_VERIFY_WITH_TIMEOUT(task(id).value(QLatin1String("waiting")).toString().startsWith(QLatin1String("waiting for a signal in stage hold")), 20000);

    // A signal the stage does not wait for changes nothing, and says so.
    const Run wrong = cli({QStringLiteral("approve"), QStringLiteral("--config"), m_config.path(), QString::number(id),
                           QStringLiteral("hold"), QStringLiteral("--signal"), QStringLiteral("confirm-deploy")});
    QCOMPARE(wrong.exitCode, 1);
    QVERIFY2(wrong.out.startsWith(QLatin1String("not accepted: ")), qPrintable(wrong.out));
    QCOMPARE(task(id).value(QLatin1String("stage")).toString(), QStringLiteral("hold"));

    // The approval is accepted, the exit gate fails, and with no retries left the task is
    // blocked where it is: the CLI says so, not the stage the move aimed at.
    const Run approve = cli({QStringLiteral("approve"), QStringLiteral("--config"), m_config.path(), QString::number(id),
                             QStringLiteral("hold"), QStringLiteral("--json")});
    QCOMPARE(approve.exitCode, 0);
    const QJsonObject out = QJsonDocument::fromJson(approve.out.toUtf8()).object();
    QCOMPARE(out.value(QLatin1String("accepted")).toBool(), true);
    QCOMPARE(out.value(QLatin1String("outcome")).toString(), QStringLiteral("blocked"));
    QCOMPARE(out.value(QLatin1String("stage")).toString(), QStringLiteral("hold"));
    QCOMPARE(out.value(QLatin1String("status")).toString(), QStringLiteral("blocked"));
    QCOMPARE(task(id).value(QLatin1String("status")).toString(), QStringLiteral("blocked"));

    // The daemon's metrics show the store's tasks, moved by the CLI process included.
    const QByteArray metrics = request("GET", QStringLiteral("/metrics")).body;
    QVERIFY2(metrics.contains("sluice_tasks{project=\"gatekeep\",status=\"blocked\"} 1"), metrics.constData());
    QVERIFY(metrics.contains("sluice_tasks{project=\"gatekeep\",status=\"active\"} 0"));
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(10000));
}

qint64 tst_Daemon::waitForStagePid(qint64 taskId)
{
    const QString pidFile = m_config.path() + QStringLiteral("/state/artifacts/slow/task-%1/stage.pid").arg(taskId);
    qint64 pid = 0;
    QDeadlineTimer deadline(20000);
    while (pid <= 0 && !deadline.hasExpired()) {
        QFile file(pidFile);
        if (file.open(QIODevice::ReadOnly))
            pid = file.readAll().trimmed().toLongLong();
        if (pid <= 0)
            QTest::qWait(50);
    }
    QFile::remove(pidFile); // the next run writes its own
    return pid;
}

static bool processAlive(qint64 pid)
{
    // Exists and is not a zombie (the state follows the parenthesised command name).
    if (::kill(pid_t(pid), 0) != 0)
        return false;
    QFile stat(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!stat.open(QIODevice::ReadOnly))
        return false;
    const QByteArray line = stat.readAll();
    const qsizetype close = line.lastIndexOf(')');
    return close > 0 && close + 2 < line.size() && line.at(close + 2) != 'Z' && line.at(close + 2) != 'X';
}

void tst_Daemon::sigtermStopsRunningWorkAndGivesItBack()
{
    QVERIFY(startDaemon());
    const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), m_config.path(), QStringLiteral("--project"),
                            QStringLiteral("slow"), QStringLiteral("--title"), QStringLiteral("Takes a while"), QStringLiteral("--json")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const qint64 id = QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    const qint64 stagePid = waitForStagePid(id);
    QVERIFY2(stagePid > 0, m_daemon.log().constData());
    QVERIFY(processAlive(stagePid));

    // SIGTERM in the middle of the stage: the daemon stops the stage's process group, gives
    // the job back without counting the attempt, and exits cleanly. Nothing keeps working on
    // the task while no sluice watches it.
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
    QCOMPARE(m_daemon.exitCode(), 0);
    QVERIFY2(m_daemon.log().contains("given back to the queue (attempt not counted)"), m_daemon.log().constData());
    QTRY_VERIFY_WITH_TIMEOUT(!processAlive(stagePid), 5000);
    Run queue = cli({QStringLiteral("queue"), QStringLiteral("--config"), m_config.path(), QStringLiteral("--json")});
    QJsonObject report = QJsonDocument::fromJson(queue.out.toUtf8()).object();
    QCOMPARE(report.value(QLatin1String("counts")).toObject().value(QLatin1String("running")).toInt(), 0);
    QCOMPARE(report.value(QLatin1String("counts")).toObject().value(QLatin1String("queued")).toInt(), 1);
    const QJsonObject given = report.value(QLatin1String("recent")).toArray().first().toObject();
    QCOMPARE(given.value(QLatin1String("attempts")).toInt(), 0);

    // The next start has nothing to recover and runs the job again as its first attempt.
    QVERIFY(startDaemon());
    QVERIFY2(!m_daemon.log().contains("interrupted by the last stop"), m_daemon.log().constData());
    QTRY_VERIFY_WITH_TIMEOUT(request("GET", QStringLiteral("/api/queue")).json().value(QLatin1String("running")).toArray().size() == 1, 20000);
    QJsonObject job = request("GET", QStringLiteral("/api/queue")).json().value(QLatin1String("running")).toArray().first().toObject();
    QCOMPARE(job.value(QLatin1String("task")).toVariant().toLongLong(), id);
    QCOMPARE(job.value(QLatin1String("attempts")).toInt(), 1);

    // A crash is not a graceful stop: the next start recovers the job it left running and
    // counts the interrupted attempt, so a job that brings its node down cannot loop forever.
    const qint64 secondPid = waitForStagePid(id);
    QVERIFY(secondPid > 0);
    ::kill(pid_t(m_daemon.processId()), SIGKILL);
    QVERIFY(m_daemon.waitForFinished(10000));
    // The command's run does not outlive its crashed host: its supervisor stops it when the
    // daemon's end of the pipe closes (SIGTERM, SIGKILL after the 2 s grace), so the recovered
    // job never runs beside an orphan of itself.
    QTRY_VERIFY_WITH_TIMEOUT(!processAlive(secondPid), 10000);
    queue = cli({QStringLiteral("queue"), QStringLiteral("--config"), m_config.path(), QStringLiteral("--json")});
    report = QJsonDocument::fromJson(queue.out.toUtf8()).object();
    QCOMPARE(report.value(QLatin1String("counts")).toObject().value(QLatin1String("running")).toInt(), 1);
    QVERIFY(startDaemon());
    QVERIFY2(m_daemon.log().contains("settled 1 job(s) interrupted by the last stop of node test-node"), m_daemon.log().constData());
    QTRY_VERIFY_WITH_TIMEOUT(request("GET", QStringLiteral("/api/queue")).json().value(QLatin1String("running")).toArray().size() == 1, 20000);
    job = request("GET", QStringLiteral("/api/queue")).json().value(QLatin1String("running")).toArray().first().toObject();
    QCOMPARE(job.value(QLatin1String("attempts")).toInt(), 2);
    const QJsonArray history = task(id).value(QLatin1String("history")).toArray();
    QCOMPARE(history.first().toObject().value(QLatin1String("action")).toString(), QStringLiteral("submit"));
    const qint64 thirdPid = waitForStagePid(id);
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
    QTRY_VERIFY_WITH_TIMEOUT(!processAlive(thirdPid), 5000);
}

void tst_Daemon::agentLeftByACrashIsAdoptedNotDoubled()
{
    QVERIFY(startDaemon());
    const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), m_config.path(), QStringLiteral("--project"),
                            QStringLiteral("agentic"), QStringLiteral("--title"), QStringLiteral("Agent at work"), QStringLiteral("--json")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const qint64 id = QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    const QString pidFile = m_config.path() + QStringLiteral("/state/worktrees/agentic/task-%1.agent.pid").arg(id);
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo(pidFile).size() > 0, 20000);
    const auto readPid = [&] {
        QFile file(pidFile);
        return file.open(QIODevice::ReadOnly) ? file.readAll().trimmed().toLongLong() : 0;
    };
    const qint64 agent = readPid();
    QVERIFY(agent > 0);
    QVERIFY(processAlive(agent));
    QVERIFY(QFile::remove(pidFile));

    // The daemon dies without a word: the agent, detached in its own session, keeps running.
    ::kill(pid_t(m_daemon.processId()), SIGKILL);
    QVERIFY(m_daemon.waitForFinished(10000));
    QVERIFY(processAlive(agent));

    // The next start adopts it (recorded pid and start time): it keeps working, watched by the
    // new daemon, and no second agent starts beside it.
    QVERIFY(startDaemon());
    QVERIFY2(m_daemon.log().contains(QStringLiteral("adopts agent pid %1 started before the restart").arg(agent).toUtf8()), m_daemon.log().constData());
    QTest::qWait(1500);
    QVERIFY(processAlive(agent));
    QVERIFY(!QFileInfo::exists(pidFile)); // no second agent
    QJsonObject running = request("GET", QStringLiteral("/api/queue")).json().value(QLatin1String("running")).toArray().first().toObject();
    QCOMPARE(running.value(QLatin1String("attempts")).toInt(), 1);

    // The adopted agent ends; it is not our child, so its exit code is unknown — never made
    // up: the attempt is over and the job goes back to the queue for a fresh one.
    ::kill(-pid_t(agent), SIGTERM);
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo(pidFile).size() > 0, 30000);
    const qint64 second = readPid();
    QVERIFY(second > 0 && second != agent);
    QVERIFY(processAlive(second));

    // The store has both runs: the first ended with no exit code invented, the second running.
    QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("agent-runs"));
    db.setDatabaseName(m_config.path() + QStringLiteral("/state/sluice.db"));
    QVERIFY(db.open());
    // The agent may write its pid file before the daemon's event loop has recorded it.
    QTRY_VERIFY_WITH_TIMEOUT(([&] {
                                 QSqlQuery count(db);
                                 return count.exec(QStringLiteral("SELECT COUNT(*) FROM agent_runs r JOIN jobs j ON j.id = r.job_id "
                                                                  "WHERE j.task_id = %1").arg(id))
                                     && count.next() && count.value(0).toInt() == 2;
                             }()),
                             10000);
    {
        QSqlQuery q(db);
        QVERIFY2(q.exec(QStringLiteral("SELECT r.pid, r.finished_at IS NOT NULL, r.exit_code IS NULL FROM agent_runs r "
                                       "JOIN jobs j ON j.id = r.job_id WHERE j.task_id = %1 ORDER BY r.id").arg(id)),
                 qPrintable(q.lastError().text()));
        QVERIFY(q.next());
        QCOMPARE(q.value(0).toLongLong(), agent);
        QVERIFY(q.value(1).toBool());
        QVERIFY(q.value(2).toBool());
        QVERIFY(q.next());
        QCOMPARE(q.value(0).toLongLong(), second);
        QVERIFY(!q.value(1).toBool());
        QVERIFY(!q.next());
    }
    db.close();
    db = QSqlDatabase();
    QSqlDatabase::removeDatabase(QStringLiteral("agent-runs"));

    // A graceful stop stops the second agent too.
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
    QTRY_VERIFY_WITH_TIMEOUT(!processAlive(second), 5000);
}

QTEST_GUILESS_MAIN(tst_Daemon)
#include "tst_daemon.moc"
