// SPDX-License-Identifier: Apache-2.0
// The process agent launcher as the host sees it: the real plugin library, instances created
// from YAML settings validated against its schema, and real child processes as agents.
#include <sluice/agentlauncher.h>
#include <sluice/testsupport.h>

#include "childprocess.h"

#include <KArchive>
#include <KArchiveDirectory>
#include <KArchiveFile>
#include <KTar>

#include <QDir>
#include <QCoreApplication>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QScopeGuard>
#include <QSignalSpy>
#include <QSysInfo>
#include <QTemporaryDir>
#include <QTemporaryFile>
#include <QTest>
#include <QUuid>

#include <memory>
#include <optional>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

using namespace Sluice;

namespace {

using Test::readAll;
using Test::readPid;

struct Stat {
    char state = '?';
    quint64 startTicks = 0;
};

// /proc/<pid>/stat read independently of the plugin: state (field 3) and start time (field 22).
std::optional<Stat> statOf(qint64 pid)
{
    const QByteArray content = readAll(QStringLiteral("/proc/%1/stat").arg(pid));
    const int close = content.lastIndexOf(')');
    if (close < 0)
        return std::nullopt;
    const QList<QByteArray> fields = content.mid(close + 2).split(' ');
    if (fields.size() < 20)
        return std::nullopt;
    return Stat{fields.at(0).at(0), fields.at(19).toULongLong()};
}

// Clock ticks since boot, now (rounded up).
quint64 ticksNow()
{
    const double seconds = readAll(QStringLiteral("/proc/uptime")).split(' ').value(0).toDouble();
    return quint64(seconds * double(::sysconf(_SC_CLK_TCK))) + 1;
}

using Test::processIsGone;

// The entries of a tar.gz and the content of one of them.
QStringList archiveEntries(const QString &archive)
{
    KTar tar(archive);
    if (!tar.open(QIODevice::ReadOnly))
        return {QStringLiteral("<cannot open %1>").arg(archive)};
    return tar.directory()->entries();
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
            file.write("# Fix the parser\n\nThe parser drops the last line.\n");
    }

    AgentRequest request(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const
    {
        AgentRequest r;
        r.task.id = 42;
        r.task.projectId = QStringLiteral("test-project");
        r.task.branch = QStringLiteral("sluice/42-fix-parser");
        r.task.stage = QStringLiteral("development");
        r.role = QStringLiteral("developer");
        r.worktree = worktree;
        r.taskFile = taskFile;
        r.logPath = QDir(artifacts).filePath(QStringLiteral("agent-developer-1.log"));
        r.timeout = timeout;
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

    QString artifact(const QString &name) const { return QDir(artifacts).filePath(name); }
};

const QByteArray RunScript = "command: [\"{worktree}/agent.sh\"]\n";

} // namespace

class tst_ProcessLauncher : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void metadata();
    void refusedSettings_data();
    void refusedSettings();
    void exits_data();
    void exits();
    void startedRecordsTheProcess();
    void placeholdersAndEnvironment();
    void launchErrors_data();
    void launchErrors();
    void cancel();
    void destroyedLaunchLeavesAgentRunning();
    void adoptWatchesUntilExit();
    void adoptRefused_data();
    void adoptRefused();
    void adoptAfterItsEndReadsTheRecord_data();
    void adoptAfterItsEndReadsTheRecord();
    void adoptedDeadline();
    void adoptedCancel();
    void containment_data();
    void containment();
    void descriptorsNotInherited();
    void limitsRefusedWithoutCgroup_data();
    void limitsRefusedWithoutCgroup();
    void limitsApplied_data();
    void limitsApplied();
    void logCut();
    void runAs();
    void runAsRefused_data();
    void runAsRefused();
    void killedSupervisorTakesItsAgent();
    void leftoversOfADeadSupervisorAreKilled();
    void delegatedCgroup();
    void helperLeavingItsCgroupIsStillKilled();

private:
    Result<std::unique_ptr<AgentLauncher>> createLauncher(const QByteArray &yaml);
    static Result<AgentExit> runToEnd(AgentLaunch &launch, int timeoutMs = 30000);

    std::optional<Test::LoadedPlugin> m_plugin;
};

void tst_ProcessLauncher::initTestCase()
{
    qRegisterMetaType<AgentProcess>();
    auto plugin = Test::loadPlugin(QStringLiteral(PROCESS_PLUGIN_FILE));
    QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
    m_plugin = *plugin;
}

Result<std::unique_ptr<AgentLauncher>> tst_ProcessLauncher::createLauncher(const QByteArray &yaml)
{
    auto instance = Test::createInstance(*m_plugin, yaml);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<AgentLauncher *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create an agent launcher"));
    if (auto initialized = (*instance)->initialize(); !initialized)
        return std::unexpected(initialized.error());
    return std::unique_ptr<AgentLauncher>(static_cast<AgentLauncher *>(instance->release()));
}

Result<AgentExit> tst_ProcessLauncher::runToEnd(AgentLaunch &launch, int timeoutMs)
{
    QSignalSpy finished(&launch, &PluginJob::finished);
    launch.start();
    if (!launch.isFinished() && !finished.wait(timeoutMs))
        return fail(ErrorCode::Timeout, QStringLiteral("test: the launch did not finish"));
    if (finished.count() != 1)
        return fail(ErrorCode::Unknown, QStringLiteral("test: finished was emitted %1 times").arg(finished.count()));
    return launch.result();
}

void tst_ProcessLauncher::metadata()
{
    const PluginMetaData &meta = m_plugin->metaData;
    QCOMPARE(meta.id(), QStringLiteral("process"));
    QCOMPARE(meta.kind(), PluginKind::AgentLauncher);
    const ConfigSchema &schema = meta.configSchema();
    QCOMPARE(schema.keyNames().size(), 8);
    for (const auto &[name, entry] : schema.entries())
        QVERIFY2(!entry.description().isEmpty(), qPrintable(name));
    QVERIFY(schema.entry(QStringLiteral("command"))->isRequired());
    QCOMPARE(schema.entry(QStringLiteral("timeout"))->defaultValue().toLongLong(), 3600000);
    QCOMPARE(schema.entry(QStringLiteral("kill_grace"))->defaultValue().toLongLong(), 10000);
    QCOMPARE(schema.entry(QStringLiteral("inherit_environment"))->defaultValue().toList(),
             QVariantList({QStringLiteral("PATH"), QStringLiteral("HOME"), QStringLiteral("LANG")}));
    QCOMPARE(schema.entry(QStringLiteral("log_limit"))->defaultValue().toString(), QStringLiteral("64M"));
    QCOMPARE(schema.entry(QStringLiteral("limits"))->keys()->keyNames(),
             (QStringList{QStringLiteral("cpu"), QStringLiteral("memory"), QStringLiteral("pids")}));
    QCOMPARE(schema.entry(QStringLiteral("run_as"))->keys()->keyNames(), (QStringList{QStringLiteral("group"), QStringLiteral("user")}));
}

void tst_ProcessLauncher::refusedSettings_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("messageContains");

    QTest::newRow("no command") << QByteArray("timeout: 5m") << QStringLiteral("command");
    QTest::newRow("empty command") << QByteArray("command: []") << QStringLiteral("needs a program");
    QTest::newRow("reserved variable") << QByteArray("command: [x]\nenvironment: {SLUICE_ROLE: admin}")
                                       << QStringLiteral("'SLUICE_ROLE'");
    QTest::newRow("bad variable name") << QByteArray("command: [x]\nenvironment: {\"A B\": x}") << QStringLiteral("'A B'");
    QTest::newRow("timeout too long") << QByteArray("command: [x]\ntimeout: 30d") << QStringLiteral("above the maximum");
    QTest::newRow("unknown key") << QByteArray("command: [x]\nshell: true") << QStringLiteral("unknown key");
    QTest::newRow("unknown limit") << QByteArray("command: [x]\nlimits: {swap: 1G}") << QStringLiteral("unknown key");
    QTest::newRow("memory not a size") << QByteArray("command: [x]\nlimits: {memory: lots}") << QStringLiteral("'limits.memory' is 'lots'");
    QTest::newRow("memory too small") << QByteArray("command: [x]\nlimits: {memory: 1K}") << QStringLiteral("'limits.memory' must lie between 4M");
    QTest::newRow("cpu zero") << QByteArray("command: [x]\nlimits: {cpu: 0}") << QStringLiteral("below the minimum");
    QTest::newRow("pids zero") << QByteArray("command: [x]\nlimits: {pids: 0}") << QStringLiteral("below the minimum");
    QTest::newRow("log limit too small") << QByteArray("command: [x]\nlog_limit: 1K") << QStringLiteral("'log_limit' must lie between 64K");
    QTest::newRow("log limit not a size") << QByteArray("command: [x]\nlog_limit: big") << QStringLiteral("'log_limit' is 'big'");
}

void tst_ProcessLauncher::refusedSettings()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, messageContains);
    auto launcher = createLauncher(yaml);
    QVERIFY(!launcher);
    QCOMPARE(launcher.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(launcher.error().message.contains(messageContains), qPrintable(launcher.error().message));
}

void tst_ProcessLauncher::exits_data()
{
    QTest::addColumn<QByteArray>("settings"); // beyond the command
    QTest::addColumn<QByteArray>("script");
    QTest::addColumn<int>("requestTimeoutMs"); // 0: the launcher's default
    QTest::addColumn<int>("exitCode");         // -1: none
    QTest::addColumn<bool>("crashed");
    QTest::addColumn<bool>("timedOut");

    QTest::newRow("exit 0") << QByteArray() << QByteArray("echo working\necho done") << 30000 << 0 << false << false;
    QTest::newRow("exit 0 at once") << QByteArray("command: [/bin/echo, done]") << QByteArray("echo unused") << 30000 << 0
                                    << false << false;
    QTest::newRow("exit 7") << QByteArray() << QByteArray("echo failing >&2\nexit 7") << 30000 << 7 << false << false;
    QTest::newRow("killed by a signal") << QByteArray() << QByteArray("echo bye\nkill -KILL $$") << 30000 << -1 << true
                                        << false;
    QTest::newRow("request deadline") << QByteArray() << QByteArray("echo thinking\nsleep 300") << 1000 << -1 << false
                                      << true;
    QTest::newRow("launcher default deadline") << QByteArray("timeout: 1s") << QByteArray("echo thinking\nsleep 300")
                                               << 0 << -1 << false << true;
    QTest::newRow("SIGTERM ignored, killed after the grace")
        << QByteArray("kill_grace: 1s") << QByteArray("trap '' TERM\necho stubborn\nsleep 300") << 1000 << -1 << false
        << true;
    QTest::newRow("SIGTERM handled with exit 0 still timed out")
        << QByteArray() << QByteArray("trap 'echo cleaning up; exit 0' TERM\necho waiting\nsleep 300 & wait") << 1000 << 0
        << false << true;
}

void tst_ProcessLauncher::exits()
{
    QFETCH(QByteArray, settings);
    QFETCH(QByteArray, script);
    QFETCH(int, requestTimeoutMs);
    QFETCH(int, exitCode);
    QFETCH(bool, crashed);
    QFETCH(bool, timedOut);

    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script(script).isEmpty());
    auto launcher = createLauncher(settings.startsWith("command:") ? settings : RunScript + settings);
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    const AgentRequest request = ws.request(std::chrono::milliseconds(requestTimeoutMs));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    QVERIFY(launch);
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    const QDateTime before = QDateTime::currentDateTimeUtc();
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QCOMPARE(started.count(), 1);
    // Known even for an agent that is gone before started() is delivered: it started after
    // this test process and before now.
    const AgentProcess process = qvariant_cast<AgentProcess>(started.at(0).at(0));
    QVERIFY(process.pid > 1);
    QVERIFY2(process.startTicks >= statOf(::getpid())->startTicks && process.startTicks <= ticksNow(),
             qPrintable(QString::number(process.startTicks)));

    if (exitCode < 0)
        QVERIFY(!result->exitCode.has_value());
    else
        QCOMPARE(result->exitCode, std::optional<int>(exitCode));
    QCOMPARE(result->crashed, crashed);
    QCOMPARE(result->timedOut, timedOut);
    QVERIFY(result->finishedAt.isValid() && result->finishedAt >= before.addSecs(-1));

    // The plain log stays; the archive next to it holds exactly that log.
    const QByteArray log = readAll(request.logPath);
    QVERIFY(!log.isEmpty());
    QCOMPARE(result->logArchive, request.logPath + QStringLiteral(".tar.gz"));
    QVERIFY(QFileInfo(result->logArchive).isFile());
    QCOMPARE(archiveEntries(result->logArchive), QStringList{QStringLiteral("agent-developer-1.log")});
    QCOMPARE(archivedFile(result->logArchive, QStringLiteral("agent-developer-1.log")), log);
}

void tst_ProcessLauncher::startedRecordsTheProcess()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    // The agent runs under the launcher's exit-status wrapper, the process recorded: its parent.
    QVERIFY(!ws.script("echo $PPID > \"$SLUICE_WORKTREE/pid\"\nsleep 1\nexit 0").isEmpty());
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request());

    std::optional<AgentProcess> recorded;
    std::optional<Stat> statAtStart;
    bool finishedFirst = false;
    connect(launch.get(), &AgentLaunch::started, this, [&](const AgentProcess &process) {
        finishedFirst = launch->isFinished();
        recorded = process;
        statAtStart = statOf(process.pid); // the process exists while started() is delivered
    });
    const QDateTime before = QDateTime::currentDateTimeUtc();
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY(result);
    QCOMPARE(result->exitCode, std::optional<int>(0));
    QVERIFY(recorded);
    QVERIFY(!finishedFirst);
    QCOMPARE(recorded->node, QSysInfo::machineHostName());
    QCOMPARE(recorded->pid, readPid(QDir(ws.worktree).filePath(QStringLiteral("pid"))));
    QVERIFY(statAtStart);
    QVERIFY(recorded->startTicks > 0);
    QCOMPARE(recorded->startTicks, statAtStart->startTicks);
    QVERIFY(recorded->startedAt.isValid());
    QVERIFY(recorded->startedAt >= before.addSecs(-1) && recorded->startedAt <= result->finishedAt);
}

void tst_ProcessLauncher::placeholdersAndEnvironment()
{
    qputenv("SLUICE_TEST_SECRET", "do-not-leak");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("pwd\nfor a in \"$@\"; do echo \"arg $a\"; done\nenv | sort").isEmpty());
    auto launcher = createLauncher("command: ['{worktree}/agent.sh', '{task_file}', '{role}', '{branch}', '{task}',\n"
                                   "          '{project}', '{log}', '--message=Do {task_file} as {role}', '${HOME}']\n"
                                   "environment: {AGENT_MODEL: 'model-for-{role}'}\n");
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    const AgentRequest request = ws.request();
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY(result);
    QCOMPARE(result->exitCode, std::optional<int>(0));

    const QStringList lines = QString::fromUtf8(readAll(request.logPath)).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QVERIFY(lines.size() > 9);
    QCOMPARE(lines.at(0), ws.worktree); // runs in the worktree
    const QStringList arguments = lines.mid(1, 8);
    QCOMPARE(arguments, (QStringList{QStringLiteral("arg ") + ws.taskFile, QStringLiteral("arg developer"),
                                     QStringLiteral("arg sluice/42-fix-parser"), QStringLiteral("arg 42"),
                                     QStringLiteral("arg test-project"), QStringLiteral("arg ") + request.logPath,
                                     QStringLiteral("arg --message=Do %1 as developer").arg(ws.taskFile),
                                     QStringLiteral("arg ${HOME}")}));

    QMap<QString, QString> environment;
    for (const QString &line : lines.mid(9)) {
        const int eq = line.indexOf(QLatin1Char('='));
        if (eq > 0)
            environment.insert(line.left(eq), line.mid(eq + 1));
    }
    // sh adds its own PWD (and on some systems SHLVL and OLDPWD); nothing else may appear.
    environment.remove(QStringLiteral("PWD"));
    environment.remove(QStringLiteral("SHLVL"));
    environment.remove(QStringLiteral("OLDPWD"));
    QMap<QString, QString> expected{
        {QStringLiteral("SLUICE_TASK_ID"), QStringLiteral("42")},
        {QStringLiteral("SLUICE_PROJECT"), QStringLiteral("test-project")},
        {QStringLiteral("SLUICE_STAGE"), QStringLiteral("development")},
        {QStringLiteral("SLUICE_BRANCH"), QStringLiteral("sluice/42-fix-parser")},
        {QStringLiteral("SLUICE_WORKTREE"), ws.worktree},
        {QStringLiteral("SLUICE_TASK_FILE"), ws.taskFile},
        {QStringLiteral("SLUICE_ROLE"), QStringLiteral("developer")},
        {QStringLiteral("SLUICE_LOG"), request.logPath},
        {QStringLiteral("AGENT_MODEL"), QStringLiteral("model-for-developer")},
    };
    for (const char *name : {"PATH", "HOME", "LANG"}) {
        if (qEnvironmentVariableIsSet(name))
            expected.insert(QString::fromLatin1(name), qEnvironmentVariable(name));
    }
    QCOMPARE(environment, expected);
    QVERIFY(!environment.contains(QStringLiteral("SLUICE_TEST_SECRET")));
    qunsetenv("SLUICE_TEST_SECRET");
}

void tst_ProcessLauncher::launchErrors_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("worktree"); // "ok" or "missing"
    QTest::addColumn<int>("code");
    QTest::addColumn<QString>("messageContains");

    QTest::newRow("worktree missing") << QByteArray("command: [/bin/true]") << QStringLiteral("missing")
                                      << int(ErrorCode::InvalidArgument) << QStringLiteral("does not exist");
    QTest::newRow("program not in PATH") << QByteArray("command: [no-such-agent-for-sluice-tests, -p]")
                                         << QStringLiteral("ok") << int(ErrorCode::NotFound)
                                         << QStringLiteral("'no-such-agent-for-sluice-tests' is not found");
    QTest::newRow("program missing") << QByteArray("command: [/nonexistent/agent]") << QStringLiteral("ok")
                                     << int(ErrorCode::Io) << QStringLiteral("cannot start '/nonexistent/agent'");
}

void tst_ProcessLauncher::launchErrors()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, worktree);
    QFETCH(int, code);
    QFETCH(QString, messageContains);

    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto launcher = createLauncher(yaml);
    QVERIFY(launcher);
    AgentRequest request = ws.request();
    if (worktree == QLatin1String("missing"))
        request.worktree = QDir(ws.worktree).filePath(QStringLiteral("not-created"));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY(!result);
    QCOMPARE(int(result.error().code), code);
    QVERIFY2(result.error().message.contains(messageContains), qPrintable(result.error().message));
    QCOMPARE(started.count(), 0);
}

void tst_ProcessLauncher::cancel()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("echo started\nsleep 300 &\necho $! > \"$SLUICE_WORKTREE/grandchild\"\nwait").isEmpty());
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    const AgentRequest request = ws.request(std::chrono::minutes(10));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    const QString grandchildFile = QDir(ws.worktree).filePath(QStringLiteral("grandchild"));
    QTRY_VERIFY_WITH_TIMEOUT(readPid(grandchildFile) > 1, 10000);
    launch->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
    QVERIFY(!launch->result());
    QCOMPARE(launch->result().error().code, ErrorCode::Cancelled);
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(readPid(grandchildFile)), 5000);
    // The log is archived for a cancelled run too.
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(request.logPath + QStringLiteral(".tar.gz")), 5000);
}

void tst_ProcessLauncher::destroyedLaunchLeavesAgentRunning()
{
    // The host goes down while the agent works: the agent carries on, and the next host
    // adopts it by pid and start ticks.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    const QString stopFile = QDir(ws.worktree).filePath(QStringLiteral("stop"));
    QVERIFY(!ws.script("echo working\nwhile [ ! -e \"$SLUICE_WORKTREE/stop\" ]; do sleep 0.1; done\necho finished\nexit 3")
                 .isEmpty());
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    const AgentRequest request = ws.request(std::chrono::minutes(10));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    launch->start();
    QVERIFY(started.count() == 1 || started.wait(10000));
    const AgentProcess process = qvariant_cast<AgentProcess>(started.at(0).at(0));
    launch.reset();
    launcher->reset();

    QVERIFY(!processIsGone(process.pid));
    QCOMPARE(statOf(process.pid)->startTicks, process.startTicks);

    auto next = createLauncher(RunScript);
    QVERIFY(next);
    std::unique_ptr<AgentLaunch> adopted = (*next)->adopt(process, request);
    QVERIFY(adopted);
    QSignalSpy finished(adopted.get(), &PluginJob::finished);
    adopted->start();
    QVERIFY(!adopted->isFinished());
    QFile stop(stopFile);
    QVERIFY(stop.open(QIODevice::WriteOnly));
    stop.close();
    QVERIFY(finished.count() == 1 || finished.wait(10000));
    QVERIFY(adopted->result());
    // Not our child, but its wrapper recorded how it ended.
    QCOMPARE(adopted->result()->exitCode, std::optional<int>(3));
    QVERIFY(!adopted->result()->timedOut);
    QVERIFY(!adopted->result()->crashed);
    QTRY_VERIFY_WITH_TIMEOUT(readAll(request.logPath).contains("finished"), 5000);
    QCOMPARE(archivedFile(adopted->result()->logArchive, QStringLiteral("agent-developer-1.log")),
             QByteArray("working\nfinished\n"));
}

namespace {

// An agent started by someone else (a previous host): not a child of this process.
struct DetachedAgent {
    qint64 pid = 0;
    AgentProcess process;

    bool start(const Workspace &ws, const QByteArray &body)
    {
        const QString script = ws.script(body);
        // setsid(1) makes it a session leader, as the launcher makes its agents.
        if (script.isEmpty()
            || !QProcess::startDetached(QStringLiteral("/usr/bin/setsid"), {QStringLiteral("/bin/sh"), script},
                                        ws.worktree, &pid))
            return false;
        const auto stat = statOf(pid);
        if (!stat)
            return false;
        process.node = QSysInfo::machineHostName();
        process.pid = pid;
        process.startTicks = stat->startTicks;
        process.startedAt = QDateTime::currentDateTimeUtc();
        return true;
    }

    ~DetachedAgent()
    {
        // The whole group: the script's children (its sleep) must not outlive the test
        // with the test's output pipe open.
        if (pid > 0)
            ::kill(-pid_t(pid), SIGKILL);
    }
};

} // namespace

void tst_ProcessLauncher::adoptWatchesUntilExit()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    const AgentRequest request = ws.request(std::chrono::minutes(10));
    DetachedAgent agent;
    QVERIFY(agent.start(ws, "exec >> '" + request.logPath.toUtf8() + "' 2>&1\necho adopted agent\n"
                            "while [ ! -e stop ]; do sleep 0.1; done\nexit 9"));
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> adopted = (*launcher)->adopt(agent.process, request);
    QVERIFY(adopted);
    QSignalSpy started(adopted.get(), &AgentLaunch::started);
    QSignalSpy finished(adopted.get(), &PluginJob::finished);
    adopted->start();
    QVERIFY(!finished.wait(1500)); // still running: watched, not finished
    QFile stop(QDir(ws.worktree).filePath(QStringLiteral("stop")));
    QVERIFY(stop.open(QIODevice::WriteOnly));
    stop.close();
    QVERIFY(finished.wait(10000));
    QCOMPARE(finished.count(), 1);
    QCOMPARE(started.count(), 0); // the host already has the record
    const Result<AgentExit> &result = adopted->result();
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QVERIFY(!result->exitCode.has_value()); // exited 9, which nobody here can know
    QVERIFY(!result->crashed);
    QVERIFY(!result->timedOut);
    QVERIFY(result->finishedAt.isValid());
    QCOMPARE(archivedFile(result->logArchive, QStringLiteral("agent-developer-1.log")), QByteArray("adopted agent\n"));
}

void tst_ProcessLauncher::adoptRefused_data()
{
    QTest::addColumn<QString>("situation");
    QTest::newRow("no start ticks recorded") << QStringLiteral("no ticks");
    QTest::newRow("another node") << QStringLiteral("node");
    QTest::newRow("no pid") << QStringLiteral("no pid");
}

void tst_ProcessLauncher::adoptRefused()
{
    QFETCH(QString, situation);

    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    DetachedAgent agent;
    QVERIFY(agent.start(ws, "sleep 300"));
    AgentProcess process = agent.process;
    if (situation == QLatin1String("no ticks"))
        process.startTicks = 0;
    else if (situation == QLatin1String("node"))
        process.node = QStringLiteral("another-") + process.node;
    else if (situation == QLatin1String("no pid"))
        process.pid = 0;
    QVERIFY(!(*launcher)->adopt(process, ws.request()));
    QVERIFY(!processIsGone(agent.pid)); // refusing never touches the process
}

void tst_ProcessLauncher::adoptAfterItsEndReadsTheRecord_data()
{
    QTest::addColumn<QString>("situation");
    QTest::addColumn<QByteArray>("recorded"); // what its wrapper left in <log>.exit; null: nothing
    QTest::addColumn<int>("exitCode");        // -1: unknown
    QTest::newRow("ended, recorded 0") << QStringLiteral("dead") << QByteArray("0\n") << 0;
    QTest::newRow("ended, recorded 3") << QStringLiteral("dead") << QByteArray("3\n") << 3;
    QTest::newRow("ended, nothing recorded") << QStringLiteral("dead") << QByteArray() << -1;
    QTest::newRow("pid reused, recorded 0") << QStringLiteral("ticks") << QByteArray("0\n") << 0;
}

// The host saw the agent running and adopts it, but it ends before the launcher looks (or its
// pid goes to another process): its end is what its wrapper recorded, and nothing is signalled.
void tst_ProcessLauncher::adoptAfterItsEndReadsTheRecord()
{
    QFETCH(QString, situation);
    QFETCH(QByteArray, recorded);
    QFETCH(int, exitCode);
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    const AgentRequest request = ws.request(std::chrono::minutes(10));
    DetachedAgent agent;
    AgentProcess process;
    if (situation == QLatin1String("dead")) {
        QVERIFY(agent.start(ws, "while [ ! -e stop ]; do sleep 0.1; done"));
        process = agent.process;
        QFile stop(QDir(ws.worktree).filePath(QStringLiteral("stop")));
        QVERIFY(stop.open(QIODevice::WriteOnly));
        stop.close();
        QTRY_VERIFY_WITH_TIMEOUT(processIsGone(process.pid), 10000);
    } else {
        QVERIFY(agent.start(ws, "sleep 300"));
        process = agent.process;
        process.startTicks += 1; // the same pid, but not the process that was recorded
    }
    if (!recorded.isNull()) {
        QFile status(request.logPath + QStringLiteral(".exit"));
        QVERIFY(status.open(QIODevice::WriteOnly));
        QCOMPARE(status.write(recorded), qint64(recorded.size()));
    }
    std::unique_ptr<AgentLaunch> adopted = (*launcher)->adopt(process, request);
    QVERIFY(adopted);
    const Result<AgentExit> result = runToEnd(*adopted);
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QCOMPARE(result->exitCode.value_or(-1), exitCode);
    QVERIFY(!result->timedOut);
    QVERIFY(!result->crashed);
    if (situation == QLatin1String("ticks"))
        QVERIFY(!processIsGone(agent.pid)); // the process that has the pid now is not touched
}

void tst_ProcessLauncher::adoptedDeadline()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    DetachedAgent agent;
    QVERIFY(agent.start(ws, "trap '' TERM\nsleep 300 &\necho $! > grandchild\nwait"));
    QTRY_VERIFY_WITH_TIMEOUT(readPid(QDir(ws.worktree).filePath(QStringLiteral("grandchild"))) > 1, 10000);
    auto launcher = createLauncher(RunScript + "kill_grace: 1s\n");
    QVERIFY(launcher);
    AgentProcess process = agent.process;
    process.startedAt = QDateTime::currentDateTimeUtc().addSecs(-3600); // started an hour ago
    std::unique_ptr<AgentLaunch> adopted = (*launcher)->adopt(process, ws.request(std::chrono::minutes(30)));
    QVERIFY(adopted);
    const Result<AgentExit> result = runToEnd(*adopted);
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QVERIFY(result->timedOut);
    QVERIFY(!result->exitCode.has_value());
    QVERIFY(processIsGone(agent.pid));
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(readPid(QDir(ws.worktree).filePath(QStringLiteral("grandchild")))), 5000);
}

void tst_ProcessLauncher::adoptedCancel()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    DetachedAgent agent;
    QVERIFY(agent.start(ws, "sleep 300"));
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> adopted = (*launcher)->adopt(agent.process, ws.request(std::chrono::minutes(30)));
    QVERIFY(adopted);
    QSignalSpy finished(adopted.get(), &PluginJob::finished);
    adopted->start();
    QVERIFY(!adopted->isFinished());
    adopted->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(10000));
    QVERIFY(!adopted->result());
    QCOMPARE(adopted->result().error().code, ErrorCode::Cancelled);
    QVERIFY(processIsGone(agent.pid));
}

namespace {

// Sets SLUICE_CONTAINMENT for one test: "cgroup" requires a cgroup per run (a run is refused
// without one), "process-group" forces the fallback.
struct ContainmentMode {
    explicit ContainmentMode(const QByteArray &mode) { qputenv("SLUICE_CONTAINMENT", mode); }
    ~ContainmentMode() { qunsetenv("SLUICE_CONTAINMENT"); }
};

// An agent that starts the helpers real agents leave behind, each deaf to SIGTERM: a language
// server in a session of its own (setsid), a double-forked helper (orphaned, still in the
// agent's process group) and a daemonised dev server (double fork and setsid). Each writes its
// pid; the agent then says "ready" and waits.
void writeEscapingAgent(const Workspace &ws)
{
    QFile helper(QDir(ws.worktree).filePath(QStringLiteral("helper.sh")));
    QVERIFY(helper.open(QIODevice::WriteOnly));
    helper.write("#!/bin/sh\ntrap '' TERM\necho $$ > \"$1\"\nexec sleep 300\n");
    helper.close();
    QVERIFY(helper.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner));
    QVERIFY(!ws.script("w=\"$SLUICE_WORKTREE\"\n"
                       "setsid \"$w/helper.sh\" \"$w/setsid.pid\" &\n"
                       "sh -c '\"$1/helper.sh\" \"$1/double.pid\" &' fork \"$w\"\n"
                       "sh -c 'setsid \"$1/helper.sh\" \"$1/daemon.pid\" &' fork \"$w\"\n"
                       "while [ ! -s \"$w/setsid.pid\" ] || [ ! -s \"$w/double.pid\" ] || [ ! -s \"$w/daemon.pid\" ]; do sleep 0.05; done\n"
                       "echo ready > \"$w/ready\"\n"
                       "exec sleep 300").isEmpty());
}

} // namespace

void tst_ProcessLauncher::containment_data()
{
    QTest::addColumn<QByteArray>("mode");
    QTest::addColumn<bool>("cancel"); // else the deadline ends the run

    QTest::newRow("cgroup, deadline") << QByteArray("cgroup") << false;
    QTest::newRow("cgroup, cancel") << QByteArray("cgroup") << true;
    QTest::newRow("process group and subreaper, deadline") << QByteArray("process-group") << false;
    QTest::newRow("process group and subreaper, cancel") << QByteArray("process-group") << true;
}

void tst_ProcessLauncher::containment()
{
    QFETCH(QByteArray, mode);
    QFETCH(bool, cancel);

    const ContainmentMode containment(mode);
    Workspace ws;
    QVERIFY(ws.root.isValid());
    writeEscapingAgent(ws);
    const auto pidFile = [&](const char *name) { return QDir(ws.worktree).filePath(QString::fromLatin1(name)); };
    const Test::KillOnExit cleanup{{pidFile("setsid.pid"), pidFile("double.pid"), pidFile("daemon.pid")}};
    // Every process of the run inherits the marker with the agent's environment.
    const QByteArray marker = "run-" + QUuid::createUuid().toByteArray(QUuid::WithoutBraces);
    auto launcher = createLauncher(RunScript + "kill_grace: 1s\nenvironment: {SLUICE_TEST_MARKER: '" + marker + "'}\n");
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    const AgentRequest request = ws.request(cancel ? std::chrono::milliseconds(std::chrono::minutes(10))
                                                   : std::chrono::milliseconds(std::chrono::seconds(5)));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(pidFile("ready")) || launch->isFinished(), 20000);
    if (!QFileInfo::exists(pidFile("ready"))) {
        const QString error = launch->result() ? QStringLiteral("finished early") : launch->result().error().message;
        if (mode == "cgroup" && error.contains(QLatin1String("no cgroup")))
            QSKIP(qPrintable(QStringLiteral("no usable cgroup v2 on this machine: ") + error));
        QFAIL(qPrintable(QStringLiteral("the agent never got its helpers started: ") + error));
    }
    const qint64 helper = readPid(pidFile("setsid.pid"));
    const QString cgroup = Test::cgroupOf(helper);
    if (mode == "cgroup")
        QVERIFY2(cgroup.contains(QLatin1String("/run-")), qPrintable(cgroup)); // a cgroup of its own
    // The helpers run, each with the run's marker in its environment.
    for (const char *name : {"setsid.pid", "double.pid", "daemon.pid"}) {
        const qint64 pid = readPid(pidFile(name));
        QVERIFY2(!processIsGone(pid), name);
        QVERIFY2(readAll(QStringLiteral("/proc/%1/environ").arg(pid)).contains(marker), name);
    }

    if (cancel)
        launch->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(30000));
    if (cancel) {
        QVERIFY(!launch->result());
        QCOMPARE(launch->result().error().code, ErrorCode::Cancelled);
    } else {
        QVERIFY2(launch->result(), qPrintable(launch->result() ? QString() : launch->result().error().toString()));
        QVERIFY(launch->result()->timedOut);
    }
    // At once, not after a while: nothing of the run is left, whatever session, process group
    // or parent its processes had.
    const QStringList left = Test::processesOfRun(marker, mode == "cgroup" ? cgroup : QString());
    QVERIFY2(left.isEmpty(), qPrintable(left.join(QLatin1String("; "))));
    for (const char *name : {"setsid.pid", "double.pid", "daemon.pid"})
        QVERIFY2(processIsGone(readPid(pidFile(name))), name);
    if (mode == "cgroup") {
        // The run's cgroup is gone too.
        QVERIFY(!Test::cgroupRoot().isEmpty());
        QVERIFY2(!QFileInfo::exists(Test::cgroupRoot() + cgroup), qPrintable(cgroup));
    }
}

void tst_ProcessLauncher::descriptorsNotInherited()
{
    // A descriptor the daemon has open without close-on-exec, as one inherited from the shell
    // that started it: fd 77 on a file only this test knows.
    QTemporaryFile secret;
    QVERIFY(secret.open());
    const int fd = ::open(QFile::encodeName(secret.fileName()).constData(), O_RDONLY);
    QVERIFY(fd >= 0);
    QVERIFY(::dup2(fd, 77) == 77);
    ::close(fd);
    const auto closeLeak = qScopeGuard([] { ::close(77); });

    Workspace ws;
    QVERIFY(ws.root.isValid());
    const QString pidFile = QDir(ws.worktree).filePath(QStringLiteral("agent.pid"));
    QVERIFY(!ws.script("echo $$ > \"$SLUICE_WORKTREE/agent.pid\"\nexec sleep 300").isEmpty());
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request(std::chrono::minutes(10)));
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    QTRY_VERIFY_WITH_TIMEOUT(readPid(pidFile) > 1 && Test::readAll(QStringLiteral("/proc/%1/comm").arg(readPid(pidFile))).startsWith("sleep"), 20000);
    QVERIFY(started.count() == 1);

    const QStringList agentFds = Test::descriptorsOf(readPid(pidFile));
    QStringList numbers;
    for (const QString &entry : agentFds)
        numbers.append(entry.section(QLatin1Char(' '), 0, 0));
    numbers.sort();
    QVERIFY2(numbers == (QStringList{QStringLiteral("0"), QStringLiteral("1"), QStringLiteral("2")}),
             qPrintable(agentFds.join(QLatin1String("; "))));
    // Nor does the process the host recorded (the agent's supervisor) hold it.
    const qint64 recorded = qvariant_cast<AgentProcess>(started.at(0).at(0)).pid;
    for (const QString &entry : Test::descriptorsOf(recorded))
        QVERIFY2(!entry.startsWith(QLatin1String("77 ")) && !entry.endsWith(secret.fileName()), qPrintable(entry));
    for (const QString &entry : agentFds)
        QVERIFY2(!entry.endsWith(secret.fileName()), qPrintable(entry));

    launch->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
}

void tst_ProcessLauncher::limitsRefusedWithoutCgroup_data()
{
    QTest::addColumn<QByteArray>("limits");
    QTest::addColumn<QString>("setting");
    QTest::newRow("memory") << QByteArray("{memory: 256M}") << QStringLiteral("'limits.memory' (256M)");
    QTest::newRow("cpu") << QByteArray("{cpu: 0.5}") << QStringLiteral("'limits.cpu' (0.5)");
    QTest::newRow("pids") << QByteArray("{pids: 64}") << QStringLiteral("'limits.pids' (64)");
}

void tst_ProcessLauncher::limitsRefusedWithoutCgroup()
{
    // A limit that cannot be enforced is never silently ignored: the run is refused, naming
    // the setting, and the agent never starts.
    QFETCH(QByteArray, limits);
    QFETCH(QString, setting);
    const ContainmentMode containment("process-group");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("touch \"$SLUICE_WORKTREE/ran\"").isEmpty());
    auto launcher = createLauncher(RunScript + "limits: " + limits + "\n");
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request());
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY(!result);
    QVERIFY2(result.error().message.contains(QStringLiteral("process setting ") + setting + QStringLiteral(" cannot be enforced")),
             qPrintable(result.error().message));
    QVERIFY2(result.error().message.contains(QLatin1String("SLUICE_CONTAINMENT=process-group")), qPrintable(result.error().message));
    QCOMPARE(started.count(), 0);
    QVERIFY(!QFileInfo::exists(QDir(ws.worktree).filePath(QStringLiteral("ran"))));
}

void tst_ProcessLauncher::limitsApplied_data()
{
    QTest::addColumn<QByteArray>("limits");
    QTest::addColumn<QString>("controller");
    QTest::addColumn<QString>("file");
    QTest::addColumn<QByteArray>("value");
    QTest::newRow("memory") << QByteArray("{memory: 256M}") << QStringLiteral("memory") << QStringLiteral("memory.max")
                            << QByteArray("268435456");
    QTest::newRow("cpu") << QByteArray("{cpu: 0.5}") << QStringLiteral("cpu") << QStringLiteral("cpu.max") << QByteArray("50000 100000");
    QTest::newRow("pids") << QByteArray("{pids: 64}") << QStringLiteral("pids") << QStringLiteral("pids.max") << QByteArray("64");
}

void tst_ProcessLauncher::limitsApplied()
{
    QFETCH(QByteArray, limits);
    QFETCH(QString, controller);
    QFETCH(QString, file);
    QFETCH(QByteArray, value);
    const ContainmentMode containment("cgroup");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    const QString pidFile = QDir(ws.worktree).filePath(QStringLiteral("agent.pid"));
    QVERIFY(!ws.script("echo $$ > \"$SLUICE_WORKTREE/agent.pid\"\nexec sleep 300").isEmpty());
    auto launcher = createLauncher(RunScript + "limits: " + limits + "\n");
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request(std::chrono::minutes(10)));
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    QTRY_VERIFY_WITH_TIMEOUT(readPid(pidFile) > 1 || launch->isFinished(), 20000);
    if (launch->isFinished()) {
        QVERIFY(!launch->result());
        const QString error = launch->result().error().message;
        if (error.contains(QLatin1String("no cgroup")))
            QSKIP(qPrintable(QStringLiteral("no usable cgroup v2 on this machine: ") + error));
        // Refused: only where the hierarchy really lacks the controller, and naming the setting.
        const QByteArray available = readAll(Test::cgroupRoot() + QStringLiteral("/cgroup.controllers"));
        QVERIFY2(!available.split(' ').contains(controller.toUtf8()) && !available.contains(controller.toUtf8() + '\n'),
                 qPrintable(QStringLiteral("refused although the cgroup v2 root has %1: %2").arg(controller, error)));
        QVERIFY2(error.contains(QStringLiteral("process setting 'limits.%1'").arg(controller)) && error.contains(QLatin1String("cannot be enforced")),
                 qPrintable(error));
        QVERIFY2(error.contains(QStringLiteral("the %1 controller is not available").arg(controller)), qPrintable(error));
        return;
    }
    // While it runs, its cgroup carries the limit.
    const QString cgroup = Test::cgroupOf(readPid(pidFile));
    QVERIFY2(cgroup.contains(QLatin1String("/run-")), qPrintable(cgroup));
    QCOMPARE(readAll(Test::cgroupRoot() + cgroup + QLatin1Char('/') + file).trimmed(), value);
    launch->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
}

void tst_ProcessLauncher::logCut()
{
    // An agent that writes about 600 KB into a log capped at 64K: the newest output stays, the
    // log starts with a line saying how much went, and nothing is lost unaccounted.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("i=1\nwhile [ $i -le 20000 ]; do echo \"line $i of the agent's chatter\"; i=$((i+1)); done\necho the end").isEmpty());
    QByteArray produced;
    for (int i = 1; i <= 20000; ++i)
        produced += "line " + QByteArray::number(i) + " of the agent's chatter\n";
    produced += "the end\n";
    auto launcher = createLauncher(RunScript + "log_limit: 64K\n");
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    const AgentRequest request = ws.request();
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QCOMPARE(result->exitCode, std::optional<int>(0));

    const QByteArray log = readAll(request.logPath);
    QVERIFY2(log.size() <= 64 * 1024, qPrintable(QString::number(log.size())));
    const int firstLine = log.indexOf('\n');
    const QByteArray notice = log.left(firstLine + 1);
    const QByteArray kept = log.mid(firstLine + 1);
    QVERIFY2(notice.startsWith("[sluice] output cut: "), notice.constData());
    const qint64 dropped = notice.mid(21, notice.indexOf(' ', 21) - 21).toLongLong();
    QCOMPARE(dropped + kept.size(), qint64(produced.size()));
    QVERIFY(produced.endsWith(kept));
    QVERIFY(kept.startsWith("line ")); // the cut falls between lines
    QVERIFY(kept.endsWith("line 20000 of the agent's chatter\nthe end\n"));
    QVERIFY(kept.size() > 16 * 1024);
    // The archive holds the same capped log.
    QCOMPARE(archivedFile(result->logArchive, QStringLiteral("agent-developer-1.log")), log);
}

namespace {

// A throwaway system user (and its group) for one test; removed again afterwards.
struct ThrowawayUser {
    QString name;
    uint uid = 0;
    uint gid = 0;
    bool created = false;

    bool create()
    {
        name = QStringLiteral("sluicet") + QUuid::createUuid().toString(QUuid::Id128).left(8);
        QProcess useradd;
        useradd.start(QStringLiteral("useradd"), {QStringLiteral("--system"), QStringLiteral("--user-group"),
                                                   QStringLiteral("--no-create-home"), QStringLiteral("--home-dir"),
                                                   QStringLiteral("/nonexistent"), QStringLiteral("--shell"),
                                                   QStringLiteral("/usr/sbin/nologin"), name});
        if (!useradd.waitForFinished(30000) || useradd.exitCode() != 0)
            return false;
        created = true;
        QProcess id;
        id.start(QStringLiteral("id"), {QStringLiteral("-u"), name});
        id.waitForFinished(10000);
        uid = id.readAllStandardOutput().trimmed().toUInt();
        id.start(QStringLiteral("id"), {QStringLiteral("-g"), name});
        id.waitForFinished(10000);
        gid = id.readAllStandardOutput().trimmed().toUInt();
        return uid > 0 && gid > 0;
    }

    ~ThrowawayUser()
    {
        if (created)
            QProcess::execute(QStringLiteral("userdel"), {name});
    }
};

int git(const QString &directory, const QStringList &arguments, QByteArray *output = nullptr)
{
    QProcess process;
    process.setWorkingDirectory(directory);
    process.start(QStringLiteral("git"), arguments);
    if (!process.waitForFinished(30000))
        return -1;
    if (output)
        *output = process.readAllStandardOutput();
    return process.exitCode();
}

} // namespace

void tst_ProcessLauncher::runAs()
{
    if (::geteuid() != 0)
        QSKIP("run_as needs root here: the test creates a throwaway user with useradd and the launcher switches to it "
              "(CI runs the suite as root)");
    ThrowawayUser user;
    QVERIFY2(user.create(), "useradd failed");

    Workspace ws;
    QVERIFY(ws.root.isValid());
    // A file only the daemon's user may read, as its database or credentials are.
    const QString secret = ws.root.filePath(QStringLiteral("daemon-secret"));
    {
        QFile file(secret);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("top secret\n");
        QVERIFY(file.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner));
    }
    qputenv("SLUICE_TEST_DAEMON_SECRET", "in-the-daemon-environment");
    const auto unset = qScopeGuard([] { qunsetenv("SLUICE_TEST_DAEMON_SECRET"); });
    // The task's repository, made by the daemon's user.
    QVERIFY(!ws.script("id -u > uid\nid -g > gid\necho \"$HOME\" > home\n"
                       "if cat \"$SECRET\" > secret-read 2>&1; then echo read > secret-verdict; else echo denied > secret-verdict; fi\n"
                       "if cat /proc/$DAEMON_PID/environ > environ-read 2>&1; then echo read > environ-verdict; else echo denied > environ-verdict; fi\n"
                       "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status > status\n"
                       "cat \"$SLUICE_TASK_FILE\" > task-copy\n"
                       "echo 'changed by the agent' >> README.md\n"
                       "echo 'new from the agent' > work.txt\n"
                       "git add README.md work.txt && git -c user.name=agent -c user.email=agent@example.org commit -q -m 'agent work'\n"
                       "echo $? > committed").isEmpty());
    QCOMPARE(git(ws.worktree, {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}), 0);
    QFile readme(QDir(ws.worktree).filePath(QStringLiteral("README.md")));
    QVERIFY(readme.open(QIODevice::WriteOnly));
    readme.write("# project\n");
    readme.close();
    QCOMPARE(git(ws.worktree, {QStringLiteral("add"), QStringLiteral("README.md")}), 0);
    QCOMPARE(git(ws.worktree, {QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
                               QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("start")}), 0);

    auto launcher = createLauncher(RunScript + "run_as: {user: " + user.name.toUtf8() + "}\n"
                                   "environment: {SECRET: '" + secret.toUtf8() + "', DAEMON_PID: '" + QByteArray::number(::getpid()) + "'}\n");
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    const AgentRequest request = ws.request();
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(request);
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QCOMPARE(result->exitCode, std::optional<int>(0));
    const auto inWorktree = [&](const char *name) { return readAll(QDir(ws.worktree).filePath(QString::fromLatin1(name))).trimmed(); };

    // It ran as that user, in its group, with its home.
    QCOMPARE(inWorktree("uid").toUInt(), user.uid);
    QCOMPARE(inWorktree("gid").toUInt(), user.gid);
    QCOMPARE(inWorktree("home"), QByteArray("/nonexistent"));
    // What belongs to the daemon's user stays out of reach.
    QCOMPARE(inWorktree("secret-verdict"), QByteArray("denied"));
    QVERIFY(!inWorktree("secret-read").contains("top secret"));
    QCOMPARE(inWorktree("environ-verdict"), QByteArray("denied"));
    QVERIFY(!inWorktree("environ-read").contains("in-the-daemon-environment"));
    // No capability in any set, and no way to gain one.
    const QList<QByteArray> status = inWorktree("status").split('\n');
    QCOMPARE(status.size(), 6);
    for (const QByteArray &line : status) {
        if (line.startsWith("NoNewPrivs"))
            QCOMPARE(line.simplified(), QByteArray("NoNewPrivs: 1"));
        else
            QVERIFY2(line.simplified().endsWith(" 0000000000000000"), line.constData());
    }
    // It read its task and did its work in the worktree.
    QCOMPARE(inWorktree("task-copy"), readAll(ws.taskFile).trimmed());
    QCOMPARE(inWorktree("committed"), QByteArray("0"));

    // The daemon reads the work back: the worktree and the task file are its own again (git
    // needs no safe.directory for it), and the agent's commit is there.
    QByteArray subject;
    QCOMPARE(git(ws.worktree, {QStringLiteral("log"), QStringLiteral("-1"), QStringLiteral("--format=%s")}, &subject), 0);
    QCOMPARE(subject.trimmed(), QByteArray("agent work"));
    QByteArray files;
    QCOMPARE(git(ws.worktree, {QStringLiteral("show"), QStringLiteral("--name-only"), QStringLiteral("--format=")}, &files), 0);
    QCOMPARE(files.trimmed(), QByteArray("README.md\nwork.txt"));
    QDirIterator entries(ws.worktree, QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot, QDirIterator::Subdirectories);
    int checked = 0;
    while (entries.hasNext()) {
        const QString entry = entries.next();
        struct stat info{};
        QVERIFY(::lstat(QFile::encodeName(entry).constData(), &info) == 0);
        QVERIFY2(info.st_uid == ::geteuid() && info.st_gid == ::getegid(), qPrintable(entry));
        ++checked;
    }
    QVERIFY(checked > 10); // .git and its objects included
    struct stat task{};
    QVERIFY(::stat(QFile::encodeName(ws.taskFile).constData(), &task) == 0);
    QCOMPARE(task.st_uid, ::geteuid());
    // The log was written where the daemon reads it.
    QVERIFY(QFileInfo(request.logPath).isFile());
}

void tst_ProcessLauncher::runAsRefused_data()
{
    QTest::addColumn<QByteArray>("runAs");
    QTest::addColumn<bool>("atCreation"); // else the launch fails
    QTest::addColumn<QString>("messageContains");
    QTest::newRow("root") << QByteArray("{user: root}") << true << QStringLiteral("'run_as.user' must name an unprivileged user");
    QTest::newRow("group without user") << QByteArray("{group: nogroup}") << true << QStringLiteral("'run_as.group' needs 'run_as.user'");
    QTest::newRow("not a name") << QByteArray("{user: 'a b'}") << true << QStringLiteral("not a user or group name");
    QTest::newRow("no such user") << QByteArray("{user: no-such-user-for-sluice-tests}") << false
                                  << QStringLiteral("'run_as.user' names 'no-such-user-for-sluice-tests', which is not a user");
    QTest::newRow("no such group") << QByteArray("{user: nobody, group: no-such-group-for-sluice-tests}") << false
                                   << QStringLiteral("'run_as.group' names 'no-such-group-for-sluice-tests', which is not a group");
}

void tst_ProcessLauncher::runAsRefused()
{
    QFETCH(QByteArray, runAs);
    QFETCH(bool, atCreation);
    QFETCH(QString, messageContains);
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("touch \"$SLUICE_WORKTREE/ran\"").isEmpty());
    auto launcher = createLauncher(RunScript + "run_as: " + runAs + "\n");
    if (atCreation) {
        QVERIFY(!launcher);
        QVERIFY2(launcher.error().message.contains(messageContains), qPrintable(launcher.error().message));
        return;
    }
    QVERIFY2(launcher, qPrintable(launcher ? QString() : launcher.error().toString()));
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request());
    const Result<AgentExit> result = runToEnd(*launch);
    QVERIFY(!result);
    QVERIFY2(result.error().message.contains(messageContains), qPrintable(result.error().message));
    QVERIFY(!QFileInfo::exists(QDir(ws.worktree).filePath(QStringLiteral("ran"))));
}

void tst_ProcessLauncher::killedSupervisorTakesItsAgent()
{
    // Unsupervised, an agent would run on with nobody to record its end: it dies with its
    // supervisor (parent-death signal), even one that ignores SIGTERM.
    const ContainmentMode containment("process-group");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    const QString pidFile = QDir(ws.worktree).filePath(QStringLiteral("agent.pid"));
    QVERIFY(!ws.script("trap '' TERM\necho $$ > \"$SLUICE_WORKTREE/agent.pid\"\nwhile :; do sleep 1; done").isEmpty());
    const Test::KillOnExit cleanup{{pidFile}};
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request(std::chrono::minutes(10)));
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    QTRY_VERIFY_WITH_TIMEOUT(readPid(pidFile) > 1, 20000);
    QCOMPARE(started.count(), 1);
    const qint64 supervisor = qvariant_cast<AgentProcess>(started.at(0).at(0)).pid;
    QVERIFY(::kill(pid_t(supervisor), SIGKILL) == 0);
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(readPid(pidFile)), 5000);
    QVERIFY(finished.count() == 1 || finished.wait(10000));
    QVERIFY(launch->result());
    QVERIFY(launch->result()->crashed);
}

void tst_ProcessLauncher::leftoversOfADeadSupervisorAreKilled()
{
    // A supervisor killed with SIGKILL cannot clean up; its run's cgroup still holds a helper
    // the agent detached. The next run's start kills it and removes the cgroup.
    //
    // Any Sluice process on the machine starting a run sweeps the dead runs beside its own
    // (ctest -j runs other suites that start agents), so this case would find its orphan swept
    // by a stranger. As root in the root cgroup it runs again in a child process placed in a
    // cgroup of its own, where the runs go beside it and no one else sweeps.
    const QString root = Test::cgroupRoot();
    if (::geteuid() == 0 && !root.isEmpty() && qEnvironmentVariableIsEmpty("SLUICE_TEST_PRIVATE_CGROUP")
        && QFileInfo(root + QStringLiteral("/cgroup.procs")).isWritable()) {
        const QString unit = root + QStringLiteral("/sluice-test-leftovers-%1").arg(QCoreApplication::applicationPid());
        QVERIFY(QDir().mkpath(unit));
        const auto removeUnit = qScopeGuard([&] {
            for (const QString &child : QDir(unit).entryList(QDir::Dirs | QDir::NoDotAndDotDot))
                QDir().rmdir(unit + QLatin1Char('/') + child);
            QDir().rmdir(unit);
        });
        QProcess suite;
        QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
        environment.insert(QStringLiteral("SLUICE_TEST_PRIVATE_CGROUP"), unit);
        suite.setProcessEnvironment(environment);
        suite.setProcessChannelMode(QProcess::MergedChannels);
        suite.start(QStringLiteral("/bin/sh"), {QStringLiteral("-c"), QStringLiteral("echo $$ > \"$1/cgroup.procs\" && exec \"$2\" leftoversOfADeadSupervisorAreKilled"),
                                                QStringLiteral("sh"), unit, QCoreApplication::applicationFilePath()});
        QVERIFY(suite.waitForFinished(300000));
        const QString output = QString::fromUtf8(suite.readAll());
        QVERIFY2(suite.exitStatus() == QProcess::NormalExit && suite.exitCode() == 0, qPrintable(output));
        QVERIFY2(output.contains(QStringLiteral("PASS   : tst_ProcessLauncher::leftoversOfADeadSupervisorAreKilled()")), qPrintable(output));
        return;
    }
    const ContainmentMode containment("cgroup");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    writeEscapingAgent(ws);
    const auto pidFile = [&](const char *name) { return QDir(ws.worktree).filePath(QString::fromLatin1(name)); };
    const Test::KillOnExit cleanup{{pidFile("setsid.pid"), pidFile("double.pid"), pidFile("daemon.pid")}};
    auto launcher = createLauncher(RunScript);
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request(std::chrono::minutes(10)));
    QSignalSpy started(launch.get(), &AgentLaunch::started);
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(pidFile("ready")) || launch->isFinished(), 20000);
    if (!QFileInfo::exists(pidFile("ready")) && !launch->result() && launch->result().error().message.contains(QLatin1String("no cgroup")))
        QSKIP(qPrintable(QStringLiteral("no usable cgroup v2 on this machine: ") + launch->result().error().message));
    QVERIFY(QFileInfo::exists(pidFile("ready")));
    const qint64 helper = readPid(pidFile("setsid.pid"));
    const QString cgroup = Test::cgroupOf(helper);
    QVERIFY2(cgroup.contains(QLatin1String("/run-")), qPrintable(cgroup));
    QVERIFY(::kill(pid_t(qvariant_cast<AgentProcess>(started.at(0).at(0)).pid), SIGKILL) == 0);
    QVERIFY(finished.count() == 1 || finished.wait(10000));
    // The daemon that saw its supervisor die kills the rest of the run itself.
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(helper), 5000);
    QTRY_VERIFY_WITH_TIMEOUT(Test::processesOfRun({}, cgroup).isEmpty(), 5000);

    // Had the daemon died too (nobody watched): the next run's start cleans up.
    Workspace second;
    writeEscapingAgent(second);
    const auto secondPid = [&](const char *name) { return QDir(second.worktree).filePath(QString::fromLatin1(name)); };
    const Test::KillOnExit secondCleanup{{secondPid("setsid.pid"), secondPid("double.pid"), secondPid("daemon.pid")}};
    std::unique_ptr<AgentLaunch> orphaned = (*launcher)->launch(second.request(std::chrono::minutes(10)));
    QSignalSpy orphanedStarted(orphaned.get(), &AgentLaunch::started);
    orphaned->start();
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(secondPid("ready")), 20000);
    const qint64 orphanHelper = readPid(secondPid("setsid.pid"));
    const QString orphanCgroup = Test::cgroupOf(orphanHelper);
    QVERIFY2(orphanCgroup.contains(QLatin1String("/run-")), qPrintable(orphanCgroup));
    orphaned.reset(); // detached: the daemon goes away without a word
    const qint64 orphanedSupervisor = qvariant_cast<AgentProcess>(orphanedStarted.at(0).at(0)).pid;
    QVERIFY(::kill(pid_t(orphanedSupervisor), SIGKILL) == 0);
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(orphanedSupervisor), 5000);
    // Nobody watches that run any more: its helper lives on in its cgroup.
    QVERIFY2(!processIsGone(orphanHelper), "the detached helper should outlive its killed supervisor");
    QVERIFY(QFileInfo::exists(Test::cgroupRoot() + orphanCgroup));

    Workspace third;
    QVERIFY(!third.script("exit 0").isEmpty());
    std::unique_ptr<AgentLaunch> next = (*launcher)->launch(third.request());
    const Result<AgentExit> result = runToEnd(*next);
    QVERIFY2(result, qPrintable(result ? QString() : result.error().toString()));
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(orphanHelper), 5000);
    QTRY_VERIFY_WITH_TIMEOUT(!QFileInfo::exists(Test::cgroupRoot() + orphanCgroup), 5000);
}

void tst_ProcessLauncher::delegatedCgroup()
{
    // The path of a daemon under systemd with Delegate=yes, played without systemd: a cgroup
    // owned by an unprivileged user (as systemd chowns a delegated one) holds this suite,
    // run again as that user with the containment tests. The launcher must move itself into
    // <cgroup>/daemon and give each run a cgroup beside it.
    if (::geteuid() != 0)
        QSKIP("needs root to make a cgroup, give it to a throwaway user and run the suite as that user there "
              "(CI runs the suite as root)");
    const QString root = Test::cgroupRoot();
    if (root.isEmpty() || !QFileInfo(root + QStringLiteral("/cgroup.procs")).isWritable())
        QSKIP("no writable cgroup v2 hierarchy here");
    ThrowawayUser user;
    QVERIFY2(user.create(), "useradd failed");
    const QString unit = root + QStringLiteral("/sluice-test-") + user.name + QStringLiteral(".service");
    QVERIFY(QDir().mkpath(unit));
    const auto removeUnit = qScopeGuard([&] {
        for (const QString &child : QDir(unit).entryList(QDir::Dirs | QDir::NoDotAndDotDot))
            QDir().rmdir(unit + QLatin1Char('/') + child);
        QDir().rmdir(unit);
    });
    for (const char *file : {"", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"})
        QVERIFY(::chown(QFile::encodeName(unit + QLatin1String(file)).constData(), user.uid, user.gid) == 0);

    QProcess suite;
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.insert(QStringLiteral("QT_LOGGING_RULES"), QStringLiteral("sluice.*.info=true"));
    environment.insert(QStringLiteral("HOME"), QDir::tempPath());
    suite.setProcessEnvironment(environment);
    suite.setProcessChannelMode(QProcess::MergedChannels);
    suite.start(QStringLiteral("/bin/sh"), {QStringLiteral("-c"), QStringLiteral("echo $$ > \"$1/cgroup.procs\" && exec runuser -u \"$2\" -- \"$3\" containment descriptorsNotInherited exits"),
                                            QStringLiteral("sh"), unit, user.name, QCoreApplication::applicationFilePath()});
    QVERIFY(suite.waitForFinished(300000));
    const QString output = QString::fromUtf8(suite.readAll());
    QVERIFY2(suite.exitStatus() == QProcess::NormalExit && suite.exitCode() == 0, qPrintable(output));
    QVERIFY2(output.contains(QStringLiteral("moved the daemon into the cgroup %1/daemon").arg(unit)), qPrintable(output));
    QVERIFY2(output.contains(QStringLiteral("containment cgroup %1/run-").arg(unit)), qPrintable(output));
    QVERIFY2(!output.contains(QLatin1String("SKIP")), qPrintable(output));
    // Every run's cgroup is gone again; only the daemon's leaf is left.
    QCOMPARE(QDir(unit).entryList(QDir::Dirs | QDir::NoDotAndDotDot), QStringList{QStringLiteral("daemon")});
}

void tst_ProcessLauncher::helperLeavingItsCgroupIsStillKilled()
{
    // An agent that may write cgroups (here: root) moves a helper out of its run's cgroup,
    // to the top of the hierarchy. cgroup.kill misses it; the supervisor, its subreaper,
    // still finds it among its descendants.
    const ContainmentMode containment("cgroup");
    const QString root = Test::cgroupRoot();
    if (::geteuid() != 0 || root.isEmpty() || !QFileInfo(root + QStringLiteral("/cgroup.procs")).isWritable())
        QSKIP("needs a cgroup v2 root this test may write (root)");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    const QString pidFile = QDir(ws.worktree).filePath(QStringLiteral("helper.pid"));
    QVERIFY(!ws.script("setsid sh -c 'trap \"\" TERM; echo $$ > \"$SLUICE_WORKTREE/helper.pid\"; exec sleep 300' &\n"
                       "while [ ! -s \"$SLUICE_WORKTREE/helper.pid\" ]; do sleep 0.05; done\n"
                       "echo \"$(cat \"$SLUICE_WORKTREE/helper.pid\")\" > \"$CGROUP_ROOT/cgroup.procs\" && echo moved > \"$SLUICE_WORKTREE/moved\"\n"
                       "exec sleep 300").isEmpty());
    const Test::KillOnExit cleanup{{pidFile}};
    auto launcher = createLauncher(RunScript + "environment: {CGROUP_ROOT: '" + root.toUtf8() + "'}\n");
    QVERIFY(launcher);
    std::unique_ptr<AgentLaunch> launch = (*launcher)->launch(ws.request(std::chrono::minutes(10)));
    QSignalSpy finished(launch.get(), &PluginJob::finished);
    launch->start();
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(QDir(ws.worktree).filePath(QStringLiteral("moved"))) || launch->isFinished(), 20000);
    if (launch->isFinished() && !launch->result() && launch->result().error().message.contains(QLatin1String("no cgroup")))
        QSKIP(qPrintable(launch->result().error().message));
    const qint64 helper = readPid(pidFile);
    QCOMPARE(Test::cgroupOf(helper), QStringLiteral("/")); // out of its run's cgroup
    launch->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
    QVERIFY2(processIsGone(helper), "the helper that left its cgroup survived the run");
}

QTEST_GUILESS_MAIN(tst_ProcessLauncher)

#include "tst_processlauncher.moc"
