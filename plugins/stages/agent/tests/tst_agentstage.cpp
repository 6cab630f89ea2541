// SPDX-License-Identifier: Apache-2.0
// The agent stage as the host sees it: the real plugin library, created with YAML settings
// validated against its schema and the project's agent launcher in its context; the
// launcher is the real process launcher plugin, and the agents are real child processes.
#include <sluice/agentlauncher.h>
#include <sluice/stage.h>
#include <sluice/testsupport.h>

#include <KArchive>
#include <KArchiveDirectory>
#include <KArchiveFile>
#include <KTar>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLoggingCategory>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <optional>

#include <cerrno>
#include <signal.h>

using namespace Sluice;

namespace {

// The category the host gives the agent stage.
Q_LOGGING_CATEGORY(lcAgentStage, "sluice.stage.agent")

QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

bool processIsGone(qint64 pid)
{
    if (::kill(pid_t(pid), 0) == -1 && errno == ESRCH)
        return true;
    const QByteArray stat = readAll(QStringLiteral("/proc/%1/stat").arg(pid));
    const int close = stat.lastIndexOf(')');
    return close > 0 && stat.size() > close + 2 && (stat.at(close + 2) == 'Z' || stat.at(close + 2) == 'X');
}

QByteArray archivedFile(const QString &archive, const QString &name)
{
    KTar tar(archive);
    if (!tar.open(QIODevice::ReadOnly))
        return {};
    const KArchiveEntry *entry = tar.directory()->entry(name);
    if (!entry || !entry->isFile())
        return {};
    return static_cast<const KArchiveFile *>(entry)->data();
}

struct Workspace {
    QTemporaryDir root;
    QString worktree;
    QString artifacts;
    QString taskFile;

    Workspace()
    {
        worktree = root.filePath(QStringLiteral("worktree"));
        artifacts = root.filePath(QStringLiteral("artifacts"));
        taskFile = root.filePath(QStringLiteral("task.md"));
        QDir().mkpath(worktree);
        QDir().mkpath(artifacts);
        QFile file(taskFile);
        if (file.open(QIODevice::WriteOnly))
            file.write("# Fix the parser\n");
    }

    StageRequest request() const
    {
        StageRequest r;
        r.task.id = 42;
        r.task.projectId = QStringLiteral("test-project");
        r.task.branch = QStringLiteral("sluice/42-fix-parser");
        r.task.stage = QStringLiteral("development");
        r.stage = QStringLiteral("development");
        r.worktree = worktree;
        r.artifactsDir = artifacts;
        r.taskFile = taskFile;
        r.attempt = 2;
        r.job = 17;
        return r;
    }

    // Writes worktree/agent.sh; returns its path.
    QString script(const QByteArray &body) const
    {
        const QString path = QDir(worktree).filePath(QStringLiteral("agent.sh"));
        QFile file(path);
        if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate))
            return {};
        file.write("#!/bin/sh\n" + body + "\n");
        file.close();
        file.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
        return path;
    }
};

// The agent reads its task file and says which role it plays.
const QByteArray Launcher = "command: [\"{worktree}/agent.sh\", \"{role}\", \"{task_file}\"]\nkill_grace: 1s\n";

} // namespace

class tst_AgentStage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void metadata();
    void needsAgentLauncher();
    void refusedSettings_data();
    void refusedSettings();
    void outcome_data();
    void outcome();
    void logArchived();
    void startedIsRelayed();
    void cancel();
    void runOutlivesStageAndLauncher();

private:
    Result<std::unique_ptr<AgentLauncher>> createLauncher(const QByteArray &yaml);
    Result<std::unique_ptr<Stage>> createStage(const QByteArray &yaml, AgentLauncher *launcher);
    static StageOutcome runToEnd(StageRun &run, int timeoutMs = 30000);

    std::optional<Test::LoadedPlugin> m_agent;
    std::optional<Test::LoadedPlugin> m_process;
};

void tst_AgentStage::initTestCase()
{
    auto agent = Test::loadPlugin(QStringLiteral(AGENT_PLUGIN_FILE));
    QVERIFY2(agent, qPrintable(agent ? QString() : agent.error().toString()));
    m_agent = *agent;
    auto process = Test::loadPlugin(QStringLiteral(PROCESS_PLUGIN_FILE));
    QVERIFY2(process, qPrintable(process ? QString() : process.error().toString()));
    m_process = *process;
}

Result<std::unique_ptr<AgentLauncher>> tst_AgentStage::createLauncher(const QByteArray &yaml)
{
    auto instance = Test::createInstance(*m_process, yaml);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<AgentLauncher *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create an agent launcher"));
    return std::unique_ptr<AgentLauncher>(static_cast<AgentLauncher *>(instance->release()));
}

// As the host does for a project with `agent_launcher: <instance>`: the launcher goes into
// the stage's context.
Result<std::unique_ptr<Stage>> tst_AgentStage::createStage(const QByteArray &yaml, AgentLauncher *launcher)
{
    auto settings = Test::validateSettings(m_agent->metaData, yaml);
    if (!settings)
        return std::unexpected(settings.error());
    PluginContext context;
    context.setInstanceName(QStringLiteral("develop"));
    context.setPluginId(QStringLiteral("agent"));
    context.setProject(Test::fakeProject());
    context.setSettings(*settings);
    context.setLogging(&lcAgentStage());
    context.setAgentLauncher(launcher);
    auto instance = m_agent->factory->create(context);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<Stage *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create a stage"));
    if (auto initialized = (*instance)->initialize(); !initialized)
        return std::unexpected(initialized.error());
    return std::unique_ptr<Stage>(static_cast<Stage *>(instance->release()));
}

StageOutcome tst_AgentStage::runToEnd(StageRun &run, int timeoutMs)
{
    QSignalSpy finished(&run, &PluginJob::finished);
    run.start();
    if (!run.isFinished() && !finished.wait(timeoutMs))
        return StageOutcome{StageOutcome::Status::Failed, std::nullopt, QStringLiteral("test: the run did not finish"), {}};
    if (finished.count() != 1)
        return StageOutcome{StageOutcome::Status::Failed, std::nullopt,
                            QStringLiteral("test: finished was emitted %1 times").arg(finished.count()), {}};
    return run.outcome();
}

void tst_AgentStage::metadata()
{
    const PluginMetaData &meta = m_agent->metaData;
    QCOMPARE(meta.id(), QStringLiteral("agent"));
    QCOMPARE(meta.kind(), PluginKind::Stage);
    const ConfigSchema &schema = meta.configSchema();
    QCOMPARE(schema.keyNames(), QStringList({QStringLiteral("role"), QStringLiteral("timeout")}));
    QVERIFY(schema.entry(QStringLiteral("role"))->isRequired());
    QCOMPARE(schema.entry(QStringLiteral("timeout"))->defaultValue().toLongLong(), 3600000);
    for (const auto &[name, entry] : schema.entries())
        QVERIFY2(!entry.description().isEmpty(), qPrintable(name));
}

void tst_AgentStage::needsAgentLauncher()
{
    // Created as for a project without `agent_launcher`: refused, naming the key.
    auto instance = Test::createInstance(*m_agent, "role: developer");
    QVERIFY(!instance);
    QCOMPARE(instance.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(instance.error().message.contains(QLatin1String("'agent_launcher'")), qPrintable(instance.error().message));
    QVERIFY2(instance.error().message.contains(QLatin1String("test-project")), qPrintable(instance.error().message));
}

void tst_AgentStage::refusedSettings_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("messageContains");

    QTest::newRow("no role") << QByteArray("timeout: 5m") << QStringLiteral("role");
    QTest::newRow("role with a space") << QByteArray("role: code reviewer") << QStringLiteral("'code reviewer'");
    QTest::newRow("role with a slash") << QByteArray("role: ../developer") << QStringLiteral("'../developer'");
    QTest::newRow("timeout below the minimum") << QByteArray("role: developer\ntimeout: 500ms")
                                               << QStringLiteral("below the minimum");
    QTest::newRow("unknown key") << QByteArray("role: developer\nmodel: big") << QStringLiteral("unknown key");
}

void tst_AgentStage::refusedSettings()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, messageContains);
    auto launcher = createLauncher(Launcher);
    QVERIFY(launcher);
    auto stage = createStage(yaml, launcher->get());
    QVERIFY(!stage);
    QCOMPARE(stage.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(stage.error().message.contains(messageContains), qPrintable(stage.error().message));
}

void tst_AgentStage::outcome_data()
{
    QTest::addColumn<QByteArray>("launcher");
    QTest::addColumn<QByteArray>("stage");
    QTest::addColumn<QByteArray>("script"); // empty: no script
    QTest::addColumn<bool>("worktreeExists");
    QTest::addColumn<int>("status");
    QTest::addColumn<int>("exitCode"); // -1: none
    QTest::addColumn<QString>("summary");

    const QByteArray developer = "role: developer";
    const int completed = int(StageOutcome::Status::Completed);
    const int failed = int(StageOutcome::Status::Failed);

    QTest::newRow("exit 0 completes") << Launcher << developer << QByteArray("echo \"$1 read $2\"\nexit 0") << true
                                      << completed << 0 << QStringLiteral("agent 'developer' exited with code 0");
    QTest::newRow("exit 1 fails") << Launcher << developer << QByteArray("echo stuck >&2\nexit 1") << true << failed << 1
                                  << QStringLiteral("agent 'developer' exited with code 1");
    QTest::newRow("timeout fails") << Launcher << QByteArray("role: developer\ntimeout: 1s")
                                   << QByteArray("echo thinking\nsleep 300") << true << failed << -1
                                   << QStringLiteral("agent 'developer' timed out after 1s");
    QTest::newRow("crash fails") << Launcher << developer << QByteArray("kill -SEGV $$") << true << failed << -1
                                 << QStringLiteral("agent 'developer' crashed");
    QTest::newRow("launch error fails with its message")
        << QByteArray("command: [no-such-agent-for-sluice-tests]") << QByteArray("role: reviewer") << QByteArray() << true
        << failed << -1 << QStringLiteral("agent 'reviewer': cannot start: 'no-such-agent-for-sluice-tests' is not found");
    QTest::newRow("missing worktree fails") << Launcher << developer << QByteArray() << false << failed << -1
                                            << QStringLiteral("does not exist");
    QTest::newRow("a cut log is said in the summary")
        << Launcher + "log_limit: 64K\n" << developer << QByteArray("i=0\nwhile [ $i -lt 20000 ]; do echo \"working on step $i\"; i=$((i+1)); done")
        << true << completed << 0 << QStringLiteral("agent 'developer' exited with code 0; log cut: the first ");
}

void tst_AgentStage::outcome()
{
    QFETCH(QByteArray, launcher);
    QFETCH(QByteArray, stage);
    QFETCH(QByteArray, script);
    QFETCH(bool, worktreeExists);
    QFETCH(int, status);
    QFETCH(int, exitCode);
    QFETCH(QString, summary);

    Workspace ws;
    QVERIFY(ws.root.isValid());
    if (!script.isEmpty())
        QVERIFY(!ws.script(script).isEmpty());
    StageRequest request = ws.request();
    if (!worktreeExists)
        request.worktree = QDir(ws.worktree).filePath(QStringLiteral("not-created"));
    auto agentLauncher = createLauncher(launcher);
    QVERIFY2(agentLauncher, qPrintable(agentLauncher ? QString() : agentLauncher.error().toString()));
    auto agentStage = createStage(stage, agentLauncher->get());
    QVERIFY2(agentStage, qPrintable(agentStage ? QString() : agentStage.error().toString()));
    QVERIFY((*agentStage)->acceptedSignals().isEmpty());

    std::unique_ptr<StageRun> run = (*agentStage)->run(request);
    QVERIFY(run);
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(int(outcome.status), status);
    if (exitCode < 0)
        QVERIFY2(!outcome.exitCode.has_value(), qPrintable(outcome.summary));
    else
        QCOMPARE(outcome.exitCode, std::optional<int>(exitCode));
    QVERIFY2(outcome.summary.contains(summary), qPrintable(outcome.summary));
}

void tst_AgentStage::logArchived()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("echo \"$1 reads $(cat \"$2\")\"\necho \"role $SLUICE_ROLE\" >&2").isEmpty());
    auto launcher = createLauncher(Launcher);
    QVERIFY(launcher);
    auto stage = createStage("role: reviewer", launcher->get());
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Completed);

    // artifactsDir/agent-{role}-job{job}-attempt{attempt}.log, kept plain, and archived next to it.
    const QString log = QDir(ws.artifacts).filePath(QStringLiteral("agent-reviewer-job17-attempt2.log"));
    QCOMPARE(outcome.logPath, log);
    const QByteArray expected = "reviewer reads # Fix the parser\nrole reviewer\n";
    QCOMPARE(readAll(log), expected);
    QCOMPARE(archivedFile(log + QStringLiteral(".tar.gz"), QStringLiteral("agent-reviewer-job17-attempt2.log")), expected);
}

void tst_AgentStage::startedIsRelayed()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("exit 0").isEmpty());
    auto launcher = createLauncher(Launcher);
    QVERIFY(launcher);
    auto stage = createStage("role: developer", launcher->get());
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    // The stage logs where the agent runs the moment the launcher reports it.
    QTest::ignoreMessage(QtInfoMsg, QRegularExpression(QStringLiteral(
        "^task 42 stage development agent developer runs on .+ pid [0-9]+ start ticks [1-9][0-9]* log .+agent-developer-job17-attempt2\\.log$")));
    QCOMPARE(runToEnd(*run).status, StageOutcome::Status::Completed);
}

void tst_AgentStage::cancel()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("echo $$ > \"$SLUICE_WORKTREE/pid\"\nsleep 300").isEmpty());
    auto launcher = createLauncher(Launcher);
    QVERIFY(launcher);
    auto stage = createStage("role: developer", launcher->get());
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->start();
    const QString pidFile = QDir(ws.worktree).filePath(QStringLiteral("pid"));
    QTRY_VERIFY_WITH_TIMEOUT(readAll(pidFile).trimmed().toLongLong() > 1, 10000);
    const qint64 pid = readAll(pidFile).trimmed().toLongLong();
    run->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
    QCOMPARE(run->outcome().status, StageOutcome::Status::Failed);
    QVERIFY2(run->outcome().summary.contains(QLatin1String("cancelled")), qPrintable(run->outcome().summary));
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(pid), 5000);

    // A run cancelled before it started finishes at once.
    std::unique_ptr<StageRun> unstarted = (*stage)->run(ws.request());
    QSignalSpy unstartedFinished(unstarted.get(), &PluginJob::finished);
    unstarted->cancel();
    QCOMPARE(unstartedFinished.count(), 1);
    QCOMPARE(unstarted->outcome().status, StageOutcome::Status::Failed);
}

void tst_AgentStage::runOutlivesStageAndLauncher()
{
    // A project reload replaces the stage and its launcher while a run is out.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("sleep 0.2\nexit 0").isEmpty());
    auto launcher = createLauncher(Launcher);
    QVERIFY(launcher);
    auto stage = createStage("role: developer", launcher->get());
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    stage->reset();
    launcher->reset();
    QCOMPARE(runToEnd(*run).status, StageOutcome::Status::Completed);
}

QTEST_GUILESS_MAIN(tst_AgentStage)

#include "tst_agentstage.moc"
