// SPDX-License-Identifier: Apache-2.0
// The command stage as the host sees it: the real plugin library, instances created from YAML
// settings validated against its schema, and real child processes (shell scripts written
// into temporary directories).
#include <sluice/stage.h>
#include <sluice/testsupport.h>

#include "childprocess.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QSignalSpy>
#include <QScopeGuard>
#include <QTemporaryDir>
#include <QTemporaryFile>
#include <QTest>
#include <QUuid>

#include <memory>
#include <optional>

#include <cerrno>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

using namespace Sluice;
using Sluice::Test::processIsGone;
using Sluice::Test::readAll;
using Sluice::Test::readPid;

namespace {

// A worktree, an artifacts directory and a task file, as the host prepares them.
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
        r.task.title = QStringLiteral("Fix the parser");
        r.task.branch = QStringLiteral("sluice/42-fix-parser");
        r.task.stage = QStringLiteral("deploy");
        r.stage = QStringLiteral("deploy");
        r.worktree = worktree;
        r.artifactsDir = artifacts;
        r.taskFile = taskFile;
        r.attempt = 2;
        r.job = 17;
        return r;
    }

    // Writes worktree/run.sh with @p body; returns its path.
    QString script(const QByteArray &body, bool executable = true) const
    {
        const QString path = QDir(worktree).filePath(QStringLiteral("run.sh"));
        QFile file(path);
        if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate))
            return {};
        file.write("#!/bin/sh\n" + body + "\n");
        file.close();
        QFile::Permissions permissions = QFileDevice::ReadOwner | QFileDevice::WriteOwner;
        if (executable)
            permissions |= QFileDevice::ExeOwner;
        file.setPermissions(permissions);
        return path;
    }

    QString artifact(const QString &name) const { return QDir(artifacts).filePath(name); }
};

// Parses `env` output into a map.
QMap<QString, QString> environmentOf(const QByteArray &output)
{
    QMap<QString, QString> out;
    const QList<QByteArray> lines = output.split('\n');
    for (const QByteArray &line : lines) {
        const int eq = line.indexOf('=');
        if (eq > 0)
            out.insert(QString::fromUtf8(line.left(eq)), QString::fromUtf8(line.mid(eq + 1)));
    }
    return out;
}

} // namespace

class tst_CommandStage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void metadata();
    void refusedSettings_data();
    void refusedSettings();
    void outcome_data();
    void outcome();
    void outputCaptured();
    void placeholders();
    void workingDirectoryAndEnvironmentValues();
    void environmentLimited_data();
    void environmentLimited();
    void timeoutKillsGroup_data();
    void timeoutKillsGroup();
    void leftoversKilledAtTheEnd();
    void cancel();
    void destroyingRunKillsGroup();
    void runOutlivesStage();
    void missingWorkingDirectory();
    void containment_data();
    void containment();
    void descriptorsNotInherited();
    void limitsRefusedWithoutCgroup();
    void limitsApplied_data();
    void limitsApplied();
    void logCut();

private:
    Result<std::unique_ptr<Stage>> createStage(const QByteArray &yaml);
    static StageOutcome runToEnd(StageRun &run, int timeoutMs = 30000);

    std::optional<Test::LoadedPlugin> m_plugin;
};

void tst_CommandStage::initTestCase()
{
    auto plugin = Test::loadPlugin(QStringLiteral(COMMAND_PLUGIN_FILE));
    QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
    m_plugin = *plugin;
}

Result<std::unique_ptr<Stage>> tst_CommandStage::createStage(const QByteArray &yaml)
{
    auto instance = Test::createInstance(*m_plugin, yaml);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<Stage *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create a stage"));
    if (auto initialized = (*instance)->initialize(); !initialized)
        return std::unexpected(initialized.error());
    return std::unique_ptr<Stage>(static_cast<Stage *>(instance->release()));
}

StageOutcome tst_CommandStage::runToEnd(StageRun &run, int timeoutMs)
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

void tst_CommandStage::metadata()
{
    const PluginMetaData &meta = m_plugin->metaData;
    QCOMPARE(meta.id(), QStringLiteral("command"));
    QCOMPARE(meta.kind(), PluginKind::Stage);
    QVERIFY(PluginMetaData::isApiCompatible(meta.apiVersion()));
    const ConfigSchema &schema = meta.configSchema();
    QCOMPARE(schema.keyNames().size(), 11);
    for (const auto &[name, entry] : schema.entries())
        QVERIFY2(!entry.description().isEmpty(), qPrintable(name));
    QVERIFY(schema.entry(QStringLiteral("command"))->isRequired());
    QCOMPARE(schema.entry(QStringLiteral("timeout"))->defaultValue().toLongLong(), 600000);
    QCOMPARE(schema.entry(QStringLiteral("kill_grace"))->defaultValue().toLongLong(), 10000);
    QCOMPARE(schema.entry(QStringLiteral("working_directory"))->defaultValue().toString(), QStringLiteral("{worktree}"));
    QCOMPARE(schema.entry(QStringLiteral("output"))->defaultValue().toString(),
             QStringLiteral("{artifacts}/{stage}-job{job}-attempt{attempt}.log"));
    QCOMPARE(schema.entry(QStringLiteral("inherit_environment"))->defaultValue().toList(),
             QVariantList({QStringLiteral("PATH"), QStringLiteral("HOME"), QStringLiteral("LANG")}));
    QCOMPARE(schema.entry(QStringLiteral("environment"))->type(), SchemaEntry::Type::Map);
    QCOMPARE(schema.entry(QStringLiteral("once"))->defaultValue().toBool(), false); // opt-in
    QCOMPARE(schema.entry(QStringLiteral("retry_exit_codes"))->defaultValue().toList(), QVariantList({75}));
    QCOMPARE(schema.entry(QStringLiteral("log_limit"))->defaultValue().toString(), QStringLiteral("64M"));
    QCOMPARE(schema.entry(QStringLiteral("limits"))->keys()->keyNames(),
             (QStringList{QStringLiteral("cpu"), QStringLiteral("memory"), QStringLiteral("pids")}));

    // Defaults filled as the host fills them.
    auto settings = Test::validateSettings(meta, "command: [true]");
    QVERIFY2(settings, qPrintable(settings ? QString() : settings.error().toString()));
    QCOMPARE(settings->value(QStringLiteral("timeout")).toLongLong(), 600000);
    QCOMPARE(settings->value(QStringLiteral("environment")).toMap(), QVariantMap());
}

void tst_CommandStage::refusedSettings_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("messageContains");

    QTest::newRow("no command") << QByteArray("timeout: 5m") << QStringLiteral("command");
    QTest::newRow("empty command") << QByteArray("command: []") << QStringLiteral("needs a program");
    QTest::newRow("empty program") << QByteArray("command: [\"\", x]") << QStringLiteral("needs a program");
    QTest::newRow("command is a string") << QByteArray("command: make deploy") << QStringLiteral("expected a list");
    QTest::newRow("unknown key") << QByteArray("command: [true]\ncomand: [x]") << QStringLiteral("unknown key");
    QTest::newRow("timeout below the minimum") << QByteArray("command: [true]\ntimeout: 0s")
                                               << QStringLiteral("below the minimum");
    QTest::newRow("timeout not a duration") << QByteArray("command: [true]\ntimeout: ten minutes")
                                            << QStringLiteral("duration");
    QTest::newRow("bad variable name") << QByteArray("command: [true]\nenvironment: {1BAD: x}")
                                       << QStringLiteral("'1BAD'");
    QTest::newRow("reserved variable") << QByteArray("command: [true]\nenvironment: {SLUICE_STAGE: x}")
                                       << QStringLiteral("'SLUICE_STAGE'");
    QTest::newRow("bad inherited name") << QByteArray("command: [true]\ninherit_environment: [BAD-NAME]")
                                        << QStringLiteral("'BAD-NAME'");
    QTest::newRow("retry exit code 0") << QByteArray("command: [true]\nonce: true\nretry_exit_codes: [0]")
                                       << QStringLiteral("below the minimum");
    QTest::newRow("retry exit code of a signal") << QByteArray("command: [true]\nonce: true\nretry_exit_codes: [143]")
                                                 << QStringLiteral("above the maximum");
    QTest::newRow("once not a boolean") << QByteArray("command: [true]\nonce: sometimes") << QStringLiteral("once");
    QTest::newRow("empty output") << QByteArray("command: [true]\noutput: \"\"") << QStringLiteral("'output'");
    QTest::newRow("empty working directory") << QByteArray("command: [true]\nworking_directory: \" \"")
                                             << QStringLiteral("'working_directory'");
    QTest::newRow("memory not a size") << QByteArray("command: [true]\nlimits: {memory: 2 gigs}") << QStringLiteral("'limits.memory' is '2 gigs'");
    QTest::newRow("pids negative") << QByteArray("command: [true]\nlimits: {pids: -1}") << QStringLiteral("below the minimum");
    QTest::newRow("log limit too large") << QByteArray("command: [true]\nlog_limit: 2T") << QStringLiteral("'log_limit' must lie between 64K and 1T");
}

void tst_CommandStage::refusedSettings()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, messageContains);
    auto stage = createStage(yaml);
    QVERIFY(!stage);
    QCOMPARE(stage.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(stage.error().message.contains(messageContains), qPrintable(stage.error().message));
}

void tst_CommandStage::outcome_data()
{
    QTest::addColumn<QByteArray>("command"); // YAML flow list
    QTest::addColumn<QByteArray>("script");  // body of worktree/run.sh; empty: none
    QTest::addColumn<bool>("executable");
    QTest::addColumn<int>("status");
    QTest::addColumn<int>("exitCode");       // -1: no exit code
    QTest::addColumn<QStringList>("summaryContains");

    const QByteArray runScript = "[\"{worktree}/run.sh\"]";
    const int completed = int(StageOutcome::Status::Completed);
    const int failed = int(StageOutcome::Status::Failed);

    QTest::newRow("exit 0 completes") << runScript << QByteArray("echo all good\nexit 0") << true << completed << 0
                                      << QStringList{QStringLiteral("'run.sh' exited with code 0")};
    QTest::newRow("exit 3 fails with the code and the last lines")
        << runScript << QByteArray("echo step one\necho \"disk full\" >&2\nexit 3") << true << failed << 3
        << QStringList{QStringLiteral("'run.sh' exited with code 3"), QStringLiteral("step one | disk full")};
    QTest::newRow("exit 1 through a shell")
        << QByteArray("[/bin/sh, -c, \"echo nope; exit 1\"]") << QByteArray() << true << failed << 1
        << QStringList{QStringLiteral("'sh' exited with code 1"), QStringLiteral("nope")};
    QTest::newRow("killed by a signal") << runScript << QByteArray("echo going down\nkill -KILL $$") << true << failed
                                        << -1
                                        << QStringList{QStringLiteral("killed by signal 9 (SIGKILL)"),
                                                       QStringLiteral("going down")};
    QTest::newRow("segmentation fault") << runScript << QByteArray("kill -SEGV $$") << true << failed << -1
                                        << QStringList{QStringLiteral("killed by signal 11 (SIGSEGV)")};
    QTest::newRow("missing executable") << QByteArray("[/nonexistent/deploy-hook, --now]") << QByteArray() << true
                                        << failed << -1
                                        << QStringList{QStringLiteral("cannot start 'deploy-hook'")};
    QTest::newRow("name not in PATH") << QByteArray("[no-such-tool-for-sluice-tests]") << QByteArray() << true
                                      << failed << -1
                                      << QStringList{QStringLiteral("cannot start: 'no-such-tool-for-sluice-tests' is not found")};
    QTest::newRow("not executable") << runScript << QByteArray("exit 0") << false << failed << -1
                                    << QStringList{QStringLiteral("cannot start 'run.sh'")};
    QTest::newRow("name found in the command's PATH") << QByteArray("[\"true\"]") << QByteArray() << true << completed
                                                      << 0 << QStringList{QStringLiteral("'true' exited with code 0")};
}

void tst_CommandStage::outcome()
{
    QFETCH(QByteArray, command);
    QFETCH(QByteArray, script);
    QFETCH(bool, executable);
    QFETCH(int, status);
    QFETCH(int, exitCode);
    QFETCH(QStringList, summaryContains);

    Workspace ws;
    QVERIFY(ws.root.isValid());
    if (!script.isEmpty())
        QVERIFY(!ws.script(script, executable).isEmpty());
    auto stage = createStage("command: " + command);
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    QVERIFY((*stage)->acceptedSignals().isEmpty());

    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    QVERIFY(run);
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(int(outcome.status), status);
    if (exitCode < 0)
        QVERIFY2(!outcome.exitCode.has_value(), qPrintable(outcome.summary));
    else
        QCOMPARE(outcome.exitCode, std::optional<int>(exitCode));
    for (const QString &part : std::as_const(summaryContains))
        QVERIFY2(outcome.summary.contains(part), qPrintable(outcome.summary));
    QVERIFY2(!outcome.summary.contains(QLatin1Char('\n')), qPrintable(outcome.summary));
}

void tst_CommandStage::outputCaptured()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    // Many lines, stdout and stderr interleaved: all in the file, only the last few in the summary.
    QVERIFY(!ws.script("i=1\nwhile [ $i -le 40 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done\n"
                       "printf 'no newline at the end'\nexit 4").isEmpty());
    auto stage = createStage("command: [\"{worktree}/run.sh\"]");
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Failed);
    QCOMPARE(outcome.exitCode, std::optional<int>(4));

    const QString log = ws.artifact(QStringLiteral("deploy-job17-attempt2.log")); // {artifacts}/{stage}-job{job}-attempt{attempt}.log
    QCOMPARE(outcome.logPath, log);
    const QByteArray content = readAll(log);
    QVERIFY(content.startsWith("out 1\nerr 1\nout 2\n"));
    QVERIFY(content.contains("err 40\n"));
    QVERIFY(content.endsWith("no newline at the end"));
    QVERIFY2(outcome.summary.contains(QLatin1String("out 40 | err 40 | no newline at the end")), qPrintable(outcome.summary));
    QVERIFY2(!outcome.summary.contains(QLatin1String("out 1 ")), qPrintable(outcome.summary));
    QVERIFY(outcome.summary.size() < 600);

    // A second run of the same attempt replaces the log rather than appending to it.
    QVERIFY(!ws.script("echo second run").isEmpty());
    std::unique_ptr<StageRun> again = (*stage)->run(ws.request());
    QCOMPARE(runToEnd(*again).status, StageOutcome::Status::Completed);
    QCOMPARE(readAll(log), QByteArray("second run\n"));

    // A configured output file, relative to the artifacts directory.
    auto custom = createStage("command: [/bin/echo, hello]\noutput: \"logs/{task}/{stage}.txt\"");
    QVERIFY(custom);
    std::unique_ptr<StageRun> third = (*custom)->run(ws.request());
    const StageOutcome thirdOutcome = runToEnd(*third);
    QCOMPARE(thirdOutcome.status, StageOutcome::Status::Completed);
    QCOMPARE(thirdOutcome.logPath, ws.artifact(QStringLiteral("logs/42/deploy.txt")));
    QCOMPARE(readAll(thirdOutcome.logPath), QByteArray("hello\n"));
}

void tst_CommandStage::placeholders()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/usr/bin/printf, '%s\\n', '{worktree}', '{artifacts}', '{task}', '{stage}',\n"
                             "          '{branch}', '{task_file}', '{attempt}', '{job}', '{project}',\n"
                             "          '${HOME}', '{unknown}', \"awk '{print}'\", '{task}-{attempt}', '{{task}}']");
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Completed);
    const QStringList lines = QString::fromUtf8(readAll(outcome.logPath)).split(QLatin1Char('\n'));
    const QStringList expected{ws.worktree,  ws.artifacts, QStringLiteral("42"), QStringLiteral("deploy"),
                               QStringLiteral("sluice/42-fix-parser"), ws.taskFile, QStringLiteral("2"),
                               QStringLiteral("17"), QStringLiteral("test-project"), QStringLiteral("${HOME}"), QStringLiteral("{unknown}"),
                               QStringLiteral("awk '{print}'"), QStringLiteral("42-2"), QStringLiteral("{42}"),
                               QString()};
    QCOMPARE(lines, expected);
}

void tst_CommandStage::workingDirectoryAndEnvironmentValues()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(QDir().mkpath(QDir(ws.worktree).filePath(QStringLiteral("deploy"))));
    auto stage = createStage("command: [/bin/sh, -c, 'pwd; echo \"$WHERE\"; echo \"$LABEL\"']\n"
                             "working_directory: deploy\n"
                             "environment:\n"
                             "  WHERE: '{artifacts}/out'\n"
                             "  LABEL: '{project}-{task}-{stage}'\n");
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Completed);
    QCOMPARE(QString::fromUtf8(readAll(outcome.logPath)),
             QDir(ws.worktree).filePath(QStringLiteral("deploy")) + QLatin1Char('\n') + ws.artifacts
                 + QStringLiteral("/out\ntest-project-42-deploy\n"));
}

void tst_CommandStage::environmentLimited_data()
{
    QTest::addColumn<QByteArray>("settings");   // beyond the command
    QTest::addColumn<QStringList>("inherited"); // names expected from the host, if the host has them
    QTest::addColumn<QVariantMap>("extra");     // exact values expected besides

    QTest::newRow("defaults") << QByteArray() << QStringList{QStringLiteral("PATH"), QStringLiteral("HOME"), QStringLiteral("LANG")}
                              << QVariantMap();
    QTest::newRow("inherited on request")
        << QByteArray("inherit_environment: [PATH, SLUICE_TEST_SECRET]")
        << QStringList{QStringLiteral("PATH"), QStringLiteral("SLUICE_TEST_SECRET")} << QVariantMap();
    QTest::newRow("nothing inherited") << QByteArray("inherit_environment: []") << QStringList() << QVariantMap();
    QTest::newRow("extra variables override inherited ones")
        << QByteArray("inherit_environment: [PATH, HOME]\nenvironment: {HOME: /srv/deploy, DEPLOY_ENV: staging}")
        << QStringList{QStringLiteral("PATH")}
        << QVariantMap{{QStringLiteral("HOME"), QStringLiteral("/srv/deploy")},
                       {QStringLiteral("DEPLOY_ENV"), QStringLiteral("staging")}};
}

void tst_CommandStage::environmentLimited()
{
    QFETCH(QByteArray, settings);
    QFETCH(QStringList, inherited);
    QFETCH(QVariantMap, extra);

    // Set in the host (this test process): must not reach the child unless inherited.
    qputenv("SLUICE_TEST_SECRET", "do-not-leak");
    qputenv("SLUICE_TEST_OTHER", "neither");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/usr/bin/env]\n" + settings);
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Completed);
    const QMap<QString, QString> environment = environmentOf(readAll(outcome.logPath));

    QMap<QString, QString> expected{
        {QStringLiteral("SLUICE_TASK_ID"), QStringLiteral("42")},
        {QStringLiteral("SLUICE_PROJECT"), QStringLiteral("test-project")},
        {QStringLiteral("SLUICE_STAGE"), QStringLiteral("deploy")},
        {QStringLiteral("SLUICE_BRANCH"), QStringLiteral("sluice/42-fix-parser")},
        {QStringLiteral("SLUICE_WORKTREE"), ws.worktree},
        {QStringLiteral("SLUICE_ARTIFACTS"), ws.artifacts},
        {QStringLiteral("SLUICE_TASK_FILE"), ws.taskFile},
        {QStringLiteral("SLUICE_ATTEMPT"), QStringLiteral("2")},
        {QStringLiteral("SLUICE_JOB_ID"), QStringLiteral("17")},
    };
    for (const QString &name : std::as_const(inherited)) {
        if (qEnvironmentVariableIsSet(name.toUtf8().constData()))
            expected.insert(name, qEnvironmentVariable(name.toUtf8().constData()));
    }
    for (auto it = extra.begin(); it != extra.end(); ++it)
        expected.insert(it.key(), it.value().toString());
    QCOMPARE(environment, expected);
    qunsetenv("SLUICE_TEST_SECRET");
    qunsetenv("SLUICE_TEST_OTHER");
}

void tst_CommandStage::timeoutKillsGroup_data()
{
    QTest::addColumn<QByteArray>("script");
    QTest::addColumn<QByteArray>("killGrace");
    QTest::addColumn<bool>("forced");

    // A grandchild in the background, the script itself waiting in the foreground.
    const QByteArray body = "sleep 300 &\necho $! > \"$SLUICE_ARTIFACTS/grandchild.pid\"\n"
                            "echo $$ > \"$SLUICE_ARTIFACTS/child.pid\"\necho waiting\nsleep 300\n";
    QTest::newRow("the group obeys SIGTERM") << body << QByteArray("60s") << false;
    // Ignored SIGTERM is inherited by the children: only SIGKILL after the grace ends them.
    QTest::newRow("the group ignores SIGTERM") << "trap '' TERM\n" + body << QByteArray("1s") << true;
}

void tst_CommandStage::timeoutKillsGroup()
{
    QFETCH(QByteArray, script);
    QFETCH(QByteArray, killGrace);
    QFETCH(bool, forced);

    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script(script).isEmpty());
    auto stage = createStage("command: [\"{worktree}/run.sh\"]\ntimeout: 2s\nkill_grace: " + killGrace);
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run, 60000);

    QCOMPARE(outcome.status, StageOutcome::Status::Failed);
    QVERIFY2(outcome.summary.contains(QLatin1String("timed out after 2s")), qPrintable(outcome.summary));
    QCOMPARE(outcome.summary.contains(QLatin1String("SIGKILL after the 1s grace")), forced);
    QVERIFY2(outcome.summary.contains(QLatin1String("waiting")), qPrintable(outcome.summary));
    const qint64 child = readPid(ws.artifact(QStringLiteral("child.pid")));
    const qint64 grandchild = readPid(ws.artifact(QStringLiteral("grandchild.pid")));
    QVERIFY(child > 1 && grandchild > 1);
    QVERIFY(processIsGone(child));
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(grandchild), 5000);
}

void tst_CommandStage::leftoversKilledAtTheEnd()
{
    // The command exits at once and leaves a background process in its group.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/bin/sh, -c, 'sleep 300 & echo $! > \"$SLUICE_ARTIFACTS/leftover.pid\"']");
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Completed);
    const qint64 leftover = readPid(ws.artifact(QStringLiteral("leftover.pid")));
    QVERIFY(leftover > 1);
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(leftover), 5000);
}

void tst_CommandStage::cancel()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("sleep 300 &\necho $! > \"$SLUICE_ARTIFACTS/grandchild.pid\"\nsleep 300").isEmpty());
    auto stage = createStage("command: [\"{worktree}/run.sh\"]\nkill_grace: 30s");
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->start();
    QTRY_VERIFY_WITH_TIMEOUT(readPid(ws.artifact(QStringLiteral("grandchild.pid"))) > 1, 10000);
    QVERIFY(!run->isFinished());
    run->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
    QCOMPARE(finished.count(), 1);
    QCOMPARE(run->outcome().status, StageOutcome::Status::Failed);
    QVERIFY2(run->outcome().summary.contains(QLatin1String("was cancelled")), qPrintable(run->outcome().summary));
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(readPid(ws.artifact(QStringLiteral("grandchild.pid")))), 5000);

    // Cancelling a run that never started finishes it too.
    std::unique_ptr<StageRun> unstarted = (*stage)->run(ws.request());
    QSignalSpy unstartedFinished(unstarted.get(), &PluginJob::finished);
    unstarted->cancel();
    QCOMPARE(unstartedFinished.count(), 1);
    QCOMPARE(unstarted->outcome().status, StageOutcome::Status::Failed);
}

void tst_CommandStage::destroyingRunKillsGroup()
{
    // The host drops a run it gave up on: nothing of the command may stay behind.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("trap '' TERM\nsleep 300 &\necho $! > \"$SLUICE_ARTIFACTS/grandchild.pid\"\nsleep 300").isEmpty());
    auto stage = createStage("command: [\"{worktree}/run.sh\"]");
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    run->start();
    QTRY_VERIFY_WITH_TIMEOUT(readPid(ws.artifact(QStringLiteral("grandchild.pid"))) > 1, 10000);
    run.reset();
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(readPid(ws.artifact(QStringLiteral("grandchild.pid")))), 5000);
}

void tst_CommandStage::runOutlivesStage()
{
    // The host may drop a stage (project reload) while a run it started is still out.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("sleep 0.2\necho done").isEmpty());
    auto stage = createStage("command: [\"{worktree}/run.sh\"]");
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    stage->reset();
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Completed);
    QCOMPARE(readAll(outcome.logPath), QByteArray("done\n"));
}

void tst_CommandStage::missingWorkingDirectory()
{
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/bin/true]\nworking_directory: '{worktree}/missing'");
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Failed);
    QVERIFY2(outcome.summary.contains(QLatin1String("does not exist")), qPrintable(outcome.summary));

    // No worktree in the request: the default working directory cannot be used.
    StageRequest request = ws.request();
    request.worktree.clear();
    auto plain = createStage("command: [/bin/true]");
    QVERIFY(plain);
    std::unique_ptr<StageRun> second = (*plain)->run(request);
    const StageOutcome secondOutcome = runToEnd(*second);
    QCOMPARE(secondOutcome.status, StageOutcome::Status::Failed);
    QVERIFY2(secondOutcome.summary.contains(QLatin1String("no worktree")), qPrintable(secondOutcome.summary));
}

namespace {

// Sets SLUICE_CONTAINMENT for one test: "cgroup" requires a cgroup per run (a run is refused
// without one), "process-group" forces the fallback.
struct ContainmentMode {
    explicit ContainmentMode(const QByteArray &mode) { qputenv("SLUICE_CONTAINMENT", mode); }
    ~ContainmentMode() { qunsetenv("SLUICE_CONTAINMENT"); }
};

} // namespace

void tst_CommandStage::containment_data()
{
    QTest::addColumn<QByteArray>("mode");
    QTest::addColumn<bool>("cancel"); // else the timeout ends the run

    QTest::newRow("cgroup, timeout") << QByteArray("cgroup") << false;
    QTest::newRow("cgroup, cancel") << QByteArray("cgroup") << true;
    QTest::newRow("process group and subreaper, timeout") << QByteArray("process-group") << false;
    QTest::newRow("process group and subreaper, cancel") << QByteArray("process-group") << true;
}

void tst_CommandStage::containment()
{
    // A build script that starts what real tool chains leave behind, each deaf to SIGTERM: a
    // server in a session of its own (setsid), a double-forked helper (orphaned, still in the
    // command's process group) and a daemonised one (double fork and setsid).
    QFETCH(QByteArray, mode);
    QFETCH(bool, cancel);

    const ContainmentMode containment(mode);
    Workspace ws;
    QVERIFY(ws.root.isValid());
    const auto inWorktree = [&](const char *name) { return QDir(ws.worktree).filePath(QString::fromLatin1(name)); };
    QFile helper(inWorktree("helper.sh"));
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
    const Test::KillOnExit cleanup{{inWorktree("setsid.pid"), inWorktree("double.pid"), inWorktree("daemon.pid")}};
    const QByteArray marker = "run-" + QUuid::createUuid().toByteArray(QUuid::WithoutBraces);
    auto stage = createStage("command: [\"{worktree}/run.sh\"]\nkill_grace: 1s\ntimeout: " + QByteArray(cancel ? "10m" : "5s")
                             + "\nenvironment: {SLUICE_TEST_MARKER: '" + marker + "'}\n");
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->start();
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(inWorktree("ready")) || run->isFinished(), 20000);
    if (!QFileInfo::exists(inWorktree("ready"))) {
        const QString summary = run->outcome().summary;
        if (mode == "cgroup" && summary.contains(QLatin1String("no cgroup")))
            QSKIP(qPrintable(QStringLiteral("no usable cgroup v2 on this machine: ") + summary));
        QFAIL(qPrintable(QStringLiteral("the command never got its helpers started: ") + summary));
    }
    const QString cgroup = Test::cgroupOf(readPid(inWorktree("setsid.pid")));
    if (mode == "cgroup")
        QVERIFY2(cgroup.contains(QLatin1String("/run-")), qPrintable(cgroup));
    // The helpers run, each with the run's marker in its environment.
    for (const char *name : {"setsid.pid", "double.pid", "daemon.pid"}) {
        const qint64 pid = readPid(inWorktree(name));
        QVERIFY2(!processIsGone(pid), name);
        QVERIFY2(readAll(QStringLiteral("/proc/%1/environ").arg(pid)).contains(marker), name);
    }

    if (cancel)
        run->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(30000));
    QCOMPARE(run->outcome().status, StageOutcome::Status::Failed);
    QVERIFY2(run->outcome().summary.contains(cancel ? QLatin1String("was cancelled") : QLatin1String("timed out after 5s")),
             qPrintable(run->outcome().summary));
    // At once: nothing of the run is left, whatever session, group or parent it had.
    const QStringList left = Test::processesOfRun(marker, mode == "cgroup" ? cgroup : QString());
    QVERIFY2(left.isEmpty(), qPrintable(left.join(QLatin1String("; "))));
    for (const char *name : {"setsid.pid", "double.pid", "daemon.pid"})
        QVERIFY2(processIsGone(readPid(inWorktree(name))), name);
    if (mode == "cgroup")
        QVERIFY2(!QFileInfo::exists(Test::cgroupRoot() + cgroup), qPrintable(cgroup));
}

void tst_CommandStage::descriptorsNotInherited()
{
    // A descriptor the host has open without close-on-exec (say, inherited from the shell that
    // started it): fd 77 on a file only this test knows. The command must not get it.
    QTemporaryFile secret;
    QVERIFY(secret.open());
    const int fd = ::open(QFile::encodeName(secret.fileName()).constData(), O_RDONLY);
    QVERIFY(fd >= 0);
    QVERIFY(::dup2(fd, 77) == 77);
    ::close(fd);
    const auto closeLeak = qScopeGuard([] { ::close(77); });

    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/bin/sh, -c, 'echo $$ > \"$SLUICE_ARTIFACTS/command.pid\"; exec sleep 300']");
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->start();
    const QString pidFile = ws.artifact(QStringLiteral("command.pid"));
    QTRY_VERIFY_WITH_TIMEOUT(readPid(pidFile) > 1 && readAll(QStringLiteral("/proc/%1/comm").arg(readPid(pidFile))).startsWith("sleep"), 20000);
    const QStringList fds = Test::descriptorsOf(readPid(pidFile));
    QStringList numbers;
    for (const QString &entry : fds) {
        numbers.append(entry.section(QLatin1Char(' '), 0, 0));
        QVERIFY2(!entry.endsWith(secret.fileName()), qPrintable(entry));
    }
    numbers.sort();
    QVERIFY2(numbers == (QStringList{QStringLiteral("0"), QStringLiteral("1"), QStringLiteral("2")}),
             qPrintable(fds.join(QLatin1String("; "))));
    run->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
}

void tst_CommandStage::limitsRefusedWithoutCgroup()
{
    // A limit that cannot be enforced fails the run, naming the setting; the command never runs.
    const ContainmentMode containment("process-group");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/bin/sh, -c, 'touch \"$SLUICE_WORKTREE/ran\"']\nlimits: {memory: 1G, pids: 100}");
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Failed);
    QVERIFY2(outcome.summary.contains(QLatin1String("command setting 'limits.memory' (1G) cannot be enforced")), qPrintable(outcome.summary));
    QVERIFY(!QFileInfo::exists(QDir(ws.worktree).filePath(QStringLiteral("ran"))));
}

void tst_CommandStage::limitsApplied_data()
{
    QTest::addColumn<QByteArray>("limits");
    QTest::addColumn<QString>("controller");
    QTest::addColumn<QString>("file");
    QTest::addColumn<QByteArray>("value");
    QTest::newRow("memory") << QByteArray("{memory: 1G}") << QStringLiteral("memory") << QStringLiteral("memory.max")
                            << QByteArray("1073741824");
    QTest::newRow("cpu") << QByteArray("{cpu: 2}") << QStringLiteral("cpu") << QStringLiteral("cpu.max") << QByteArray("200000 100000");
    QTest::newRow("pids") << QByteArray("{pids: 100}") << QStringLiteral("pids") << QStringLiteral("pids.max") << QByteArray("100");
}

void tst_CommandStage::limitsApplied()
{
    QFETCH(QByteArray, limits);
    QFETCH(QString, controller);
    QFETCH(QString, file);
    QFETCH(QByteArray, value);
    const ContainmentMode containment("cgroup");
    Workspace ws;
    QVERIFY(ws.root.isValid());
    auto stage = createStage("command: [/bin/sh, -c, 'echo $$ > \"$SLUICE_ARTIFACTS/command.pid\"; exec sleep 300']\nlimits: " + limits);
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->start();
    const QString pidFile = ws.artifact(QStringLiteral("command.pid"));
    QTRY_VERIFY_WITH_TIMEOUT(readPid(pidFile) > 1 || run->isFinished(), 20000);
    if (run->isFinished()) {
        const QString summary = run->outcome().summary;
        if (summary.contains(QLatin1String("no cgroup")))
            QSKIP(qPrintable(QStringLiteral("no usable cgroup v2 on this machine: ") + summary));
        const QByteArray available = readAll(Test::cgroupRoot() + QStringLiteral("/cgroup.controllers"));
        QVERIFY2(!available.split(' ').contains(controller.toUtf8()) && !available.contains(controller.toUtf8() + '\n'),
                 qPrintable(QStringLiteral("refused although the cgroup v2 root has %1: %2").arg(controller, summary)));
        QVERIFY2(summary.contains(QStringLiteral("command setting 'limits.%1'").arg(controller)), qPrintable(summary));
        return;
    }
    const QString cgroup = Test::cgroupOf(readPid(pidFile));
    QVERIFY2(cgroup.contains(QLatin1String("/run-")), qPrintable(cgroup));
    QCOMPARE(readAll(Test::cgroupRoot() + cgroup + QLatin1Char('/') + file).trimmed(), value);
    run->cancel();
    QVERIFY(finished.count() == 1 || finished.wait(20000));
}

void tst_CommandStage::logCut()
{
    // A build that prints about 600 KB into an output file capped at 64K: the end stays, the
    // file and the summary say what was cut, and the numbers add up.
    Workspace ws;
    QVERIFY(ws.root.isValid());
    QVERIFY(!ws.script("i=1\nwhile [ $i -le 20000 ]; do echo \"compiling unit $i\"; i=$((i+1)); done\necho 'error: the build failed'\nexit 2").isEmpty());
    QByteArray produced;
    for (int i = 1; i <= 20000; ++i)
        produced += "compiling unit " + QByteArray::number(i) + "\n";
    produced += "error: the build failed\n";
    auto stage = createStage("command: [\"{worktree}/run.sh\"]\nlog_limit: 64K");
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    std::unique_ptr<StageRun> run = (*stage)->run(ws.request());
    const StageOutcome outcome = runToEnd(*run);
    QCOMPARE(outcome.status, StageOutcome::Status::Failed);
    QCOMPARE(outcome.exitCode, std::optional<int>(2));
    const QByteArray log = readAll(outcome.logPath);
    QVERIFY2(log.size() <= 64 * 1024, qPrintable(QString::number(log.size())));
    const int firstLine = log.indexOf('\n');
    const QByteArray notice = log.left(firstLine + 1);
    const QByteArray kept = log.mid(firstLine + 1);
    QVERIFY2(notice.startsWith("[sluice] output cut: "), notice.constData());
    const qint64 dropped = notice.mid(21, notice.indexOf(' ', 21) - 21).toLongLong();
    QCOMPARE(dropped + kept.size(), qint64(produced.size()));
    QVERIFY(produced.endsWith(kept));
    QVERIFY(kept.startsWith("compiling unit "));
    QVERIFY2(outcome.summary.contains(QStringLiteral("log cut: the first %1 bytes of output were dropped (log_limit)").arg(dropped)),
             qPrintable(outcome.summary));
    QVERIFY2(outcome.summary.contains(QLatin1String("compiling unit 20000 | error: the build failed")), qPrintable(outcome.summary));
}

QTEST_GUILESS_MAIN(tst_CommandStage)

#include "tst_commandstage.moc"
