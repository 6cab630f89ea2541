// SPDX-License-Identifier: Apache-2.0
// The process agent launcher as the host sees it: the real plugin library, instances created
// from YAML settings validated against its schema, and real child processes as agents.
#include <sluice/agentlauncher.h>
#include <sluice/testsupport.h>

#include <KArchive>
#include <KArchiveDirectory>
#include <KArchiveFile>
#include <KTar>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QSignalSpy>
#include <QSysInfo>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <optional>

#include <cerrno>
#include <signal.h>
#include <unistd.h>

using namespace Sluice;

namespace {

QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

qint64 readPid(const QString &path)
{
    return readAll(path).trimmed().toLongLong();
}

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

// Gone, or a zombie waiting for an init that may not reap: either way it runs no more.
bool processIsGone(qint64 pid)
{
    if (::kill(pid_t(pid), 0) == -1 && errno == ESRCH)
        return true;
    const auto stat = statOf(pid);
    return !stat || stat->state == 'Z' || stat->state == 'X';
}

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
    QCOMPARE(schema.keyNames().size(), 5);
    for (const auto &[name, entry] : schema.entries())
        QVERIFY2(!entry.description().isEmpty(), qPrintable(name));
    QVERIFY(schema.entry(QStringLiteral("command"))->isRequired());
    QCOMPARE(schema.entry(QStringLiteral("timeout"))->defaultValue().toLongLong(), 3600000);
    QCOMPARE(schema.entry(QStringLiteral("kill_grace"))->defaultValue().toLongLong(), 10000);
    QCOMPARE(schema.entry(QStringLiteral("inherit_environment"))->defaultValue().toList(),
             QVariantList({QStringLiteral("PATH"), QStringLiteral("HOME"), QStringLiteral("LANG")}));
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
    // The wrapper is killed right after it recorded the agent's 0 (its `mv` kills it): the
    // agent had finished, and the record says so.
    QTest::newRow("wrapper killed after recording 0")
        << QByteArray("environment: {PATH: '{worktree}/bin:/usr/bin:/bin'}")
        << QByteArray("mkdir -p bin\nprintf '#!/bin/sh\\n/bin/mv \"$@\"\\nkill -KILL $PPID\\n' > bin/mv\nchmod +x bin/mv\necho done")
        << 30000 << 0 << false << false;
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

QTEST_GUILESS_MAIN(tst_ProcessLauncher)

#include "tst_processlauncher.moc"
