// SPDX-License-Identifier: Apache-2.0
// The command stage with `once: true` (a deploy hook): the real plugin library, a real SQLite
// state store, and a real hook script that counts its runs in a file. A repeated run of the
// same job for the same head never runs the hook again; it finalises from the exit status the
// wrapper recorded — also after the run and the instance were destroyed while the hook ran
// (a host restart) — and fails as "outcome unknown" when nothing was recorded.
#include <sluice/services.h>
#include <sluice/stage.h>
#include <sluice/testsupport.h>

#include "childprocess.h"

#include <QDir>
#include <QFile>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <optional>

#include <cerrno>
#include <signal.h>
#include <unistd.h>

using namespace Sluice;
using Sluice::Test::processIsGone;
using Sluice::Test::readAll;

namespace {

bool writeFile(const QString &path, const QByteArray &content)
{
    QFile file(path);
    return file.open(QIODevice::WriteOnly | QIODevice::Truncate) && file.write(content) == content.size();
}

// A task's worktree and artifacts, and a deploy hook that appends a line to runs.log each
// time it starts, writes its pid, waits for the file `release` when told to, and exits with
// the code in the file `code`.
struct DeployWorkspace {
    QTemporaryDir root;
    QString worktree;
    QString artifacts;

    DeployWorkspace()
    {
        worktree = root.filePath(QStringLiteral("worktree"));
        artifacts = root.filePath(QStringLiteral("artifacts"));
        QDir().mkpath(worktree);
        QDir().mkpath(artifacts);
        const QString hook = QDir(worktree).filePath(QStringLiteral("deploy-hook.sh"));
        writeFile(hook, "#!/bin/sh\n"
                        "echo \"run $SLUICE_JOB_ID\" >> \"$DEPLOY_RUNS\"\n"
                        "echo $$ > \"$DEPLOY_PID\"\n"
                        "echo deploying\n"
                        "while [ -n \"$DEPLOY_WAIT\" ] && [ ! -e \"$DEPLOY_WAIT\" ]; do sleep 0.05; done\n"
                        "exit $(cat \"$DEPLOY_CODE\")\n");
        QFile::setPermissions(hook, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
        setCode(0);
    }

    QString path(const QString &name) const { return root.filePath(name); }
    void setCode(int code) const { writeFile(path(QStringLiteral("code")), QByteArray::number(code) + '\n'); }
    int runs() const { return readAll(path(QStringLiteral("runs.log"))).count('\n'); }
    qint64 hookPid() const { return readAll(path(QStringLiteral("pid"))).trimmed().toLongLong(); }

    QByteArray settings(bool wait, bool once = true) const
    {
        return QByteArray("command: [\"{worktree}/deploy-hook.sh\"]\n")
               + (once ? "once: true\n" : "")
               + "environment:\n"
               + "  DEPLOY_RUNS: " + path(QStringLiteral("runs.log")).toUtf8() + "\n"
               + "  DEPLOY_PID: " + path(QStringLiteral("pid")).toUtf8() + "\n"
               + "  DEPLOY_CODE: " + path(QStringLiteral("code")).toUtf8() + "\n"
               + "  DEPLOY_WAIT: \"" + (wait ? path(QStringLiteral("release")).toUtf8() : QByteArray()) + "\"\n";
    }

    StageRequest request(qint64 job = 31, const QString &head = QStringLiteral("9fceb02d0ae598e95dc970b74767f19372d61af8"),
                         int attempt = 1) const
    {
        StageRequest r;
        r.task.id = 12;
        r.task.projectId = QStringLiteral("test-project");
        r.task.branch = QStringLiteral("sluice/12-release");
        r.task.stage = QStringLiteral("deploy");
        r.task.headSha = head;
        r.stage = QStringLiteral("deploy");
        r.worktree = worktree;
        r.artifactsDir = artifacts;
        r.taskFile = root.filePath(QStringLiteral("task.md"));
        r.attempt = attempt;
        r.job = job;
        return r;
    }
};

} // namespace

class tst_CommandOnce : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void needsStateStore();
    void exitCodeContract_data();
    void exitCodeContract();
    void markerIsPerJobAndHead();
    void ordinaryStageRunsEveryTime();
    void restartWhileHookRuns_data();
    void restartWhileHookRuns();
    void restartWithoutRecordedStatus();

private:
    Result<std::unique_ptr<Stage>> createStage(const QByteArray &yaml, StateStore *state);
    static StageOutcome runToEnd(StageRun &run, int timeoutMs = 30000);

    std::optional<Test::LoadedPlugin> m_plugin;
};

void tst_CommandOnce::initTestCase()
{
    auto plugin = Test::loadPlugin(QStringLiteral(COMMAND_PLUGIN_FILE));
    QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
    m_plugin = *plugin;
}

Result<std::unique_ptr<Stage>> tst_CommandOnce::createStage(const QByteArray &yaml, StateStore *state)
{
    auto instance = Test::createInstance(*m_plugin, yaml, Test::fakeProject(), state);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<Stage *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create a stage"));
    if (auto initialized = (*instance)->initialize(); !initialized)
        return std::unexpected(initialized.error());
    return std::unique_ptr<Stage>(static_cast<Stage *>(instance->release()));
}

StageOutcome tst_CommandOnce::runToEnd(StageRun &run, int timeoutMs)
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

void tst_CommandOnce::needsStateStore()
{
    DeployWorkspace ws;
    auto stage = createStage(ws.settings(false), nullptr);
    QVERIFY(!stage);
    QCOMPARE(stage.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(stage.error().message.contains(QLatin1String("'once' needs the host's state store")),
             qPrintable(stage.error().message));
    // Without once, no store is needed.
    QVERIFY(createStage(ws.settings(false, false), nullptr));
}

void tst_CommandOnce::exitCodeContract_data()
{
    QTest::addColumn<int>("code");
    QTest::addColumn<int>("status");
    QTest::addColumn<QString>("summaryContains");
    QTest::addColumn<int>("runsAfterRepeat"); // hook runs after the same job runs a second time

    const int completed = int(StageOutcome::Status::Completed);
    const int failed = int(StageOutcome::Status::Failed);
    QTest::newRow("0 deployed") << 0 << completed << QStringLiteral("exited with code 0") << 1;
    QTest::newRow("1 failed") << 1 << failed << QStringLiteral("exited with code 1") << 1;
    QTest::newRow("2 refused") << 2 << failed << QStringLiteral("exited with code 2") << 1;
    QTest::newRow("75 temporary failure") << 75 << failed << QStringLiteral("temporary failure: the next attempt runs it again") << 2;
}

void tst_CommandOnce::exitCodeContract()
{
    QFETCH(int, code);
    QFETCH(int, status);
    QFETCH(QString, summaryContains);
    QFETCH(int, runsAfterRepeat);

    Test::TemporaryStore store;
    QVERIFY2(store.store(), qPrintable(store.error()));
    auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
    DeployWorkspace ws;
    ws.setCode(code);
    auto stage = createStage(ws.settings(false), state.get());
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));

    auto first = (*stage)->run(ws.request(31, QStringLiteral("9fceb02d0ae598e95dc970b74767f19372d61af8"), 1));
    const StageOutcome outcome = runToEnd(*first);
    QCOMPARE(int(outcome.status), status);
    QVERIFY2(outcome.summary.contains(summaryContains), qPrintable(outcome.summary));
    QVERIFY2(!outcome.summary.contains(QLatin1String("earlier run")), qPrintable(outcome.summary));
    QCOMPARE(ws.runs(), 1);
    // The wrapper recorded the hook's status beside its output.
    QCOMPARE(readAll(outcome.logPath + QStringLiteral(".exit")).trimmed().toInt(), code);
    QVERIFY(readAll(outcome.logPath).contains("deploying"));

    // The same job again (a retry, or a repeated confirmation re-driving it): a temporary
    // failure is run again (now succeeding); every other outcome comes from the record.
    ws.setCode(0);
    auto second = (*stage)->run(ws.request(31, QStringLiteral("9fceb02d0ae598e95dc970b74767f19372d61af8"), 2));
    const StageOutcome repeated = runToEnd(*second);
    QCOMPARE(ws.runs(), runsAfterRepeat);
    if (runsAfterRepeat == 1) {
        QCOMPARE(int(repeated.status), status);
        QVERIFY2(repeated.summary.contains(QStringLiteral("exited with code %1 (recorded by an earlier run; not run again)").arg(code)),
                 qPrintable(repeated.summary));
        if (code != 0)
            QCOMPARE(repeated.exitCode, std::optional<int>(code));
    } else {
        QCOMPARE(repeated.status, StageOutcome::Status::Completed);
        QVERIFY2(!repeated.summary.contains(QLatin1String("earlier run")), qPrintable(repeated.summary));
    }
    // And a third time: still no new run.
    auto third = (*stage)->run(ws.request(31, QStringLiteral("9fceb02d0ae598e95dc970b74767f19372d61af8"), 3));
    const StageOutcome again = runToEnd(*third);
    QCOMPARE(ws.runs(), runsAfterRepeat);
    QVERIFY2(again.summary.contains(QLatin1String("recorded by an earlier run")), qPrintable(again.summary));
}

void tst_CommandOnce::markerIsPerJobAndHead()
{
    Test::TemporaryStore store;
    QVERIFY2(store.store(), qPrintable(store.error()));
    auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
    DeployWorkspace ws;
    auto stage = createStage(ws.settings(false), state.get());
    QVERIFY(stage);
    const QString headA = QStringLiteral("1111111111111111111111111111111111111111");
    const QString headB = QStringLiteral("2222222222222222222222222222222222222222");

    QCOMPARE(runToEnd(*(*stage)->run(ws.request(40, headA))).status, StageOutcome::Status::Completed);
    QCOMPARE(ws.runs(), 1);
    QCOMPARE(runToEnd(*(*stage)->run(ws.request(40, headA, 2))).status, StageOutcome::Status::Completed);
    QCOMPARE(ws.runs(), 1); // same job, same head
    QCOMPARE(runToEnd(*(*stage)->run(ws.request(40, headB))).status, StageOutcome::Status::Completed);
    QCOMPARE(ws.runs(), 2); // a new head is a new deploy
    QCOMPARE(runToEnd(*(*stage)->run(ws.request(41, headB))).status, StageOutcome::Status::Completed);
    QCOMPARE(ws.runs(), 3); // another job (a rollback's re-run) is a new deploy
    QCOMPARE(readAll(ws.path(QStringLiteral("runs.log"))), QByteArray("run 40\nrun 40\nrun 41\n"));
}

void tst_CommandOnce::ordinaryStageRunsEveryTime()
{
    Test::TemporaryStore store;
    QVERIFY2(store.store(), qPrintable(store.error()));
    auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
    DeployWorkspace ws;
    auto stage = createStage(ws.settings(false, false), state.get());
    QVERIFY(stage);
    QCOMPARE(runToEnd(*(*stage)->run(ws.request())).status, StageOutcome::Status::Completed);
    QCOMPARE(runToEnd(*(*stage)->run(ws.request())).status, StageOutcome::Status::Completed);
    QCOMPARE(ws.runs(), 2);
    QVERIFY(!QFileInfo::exists(ws.artifacts + QStringLiteral("/deploy-job31-attempt1.log.exit")));
}

void tst_CommandOnce::restartWhileHookRuns_data()
{
    QTest::addColumn<bool>("cancelFirst"); // an orderly shutdown cancels the run first
    QTest::addColumn<bool>("endsBeforeRerun");
    QTest::addColumn<int>("code");
    QTest::newRow("hook ended while the host was down, exit 0") << false << true << 0;
    QTest::newRow("hook ended while the host was down, exit 1") << false << true << 1;
    QTest::newRow("hook still running at the re-run, exit 0") << false << false << 0;
    QTest::newRow("hook still running at the re-run, exit 3") << false << false << 3;
    QTest::newRow("shutdown cancelled the run, hook still running, exit 0") << true << false << 0;
    QTest::newRow("shutdown cancelled the run, hook ended, exit 1") << true << true << 1;
}

void tst_CommandOnce::restartWhileHookRuns()
{
    QFETCH(bool, cancelFirst);
    QFETCH(bool, endsBeforeRerun);
    QFETCH(int, code);

    Test::TemporaryStore store;
    QVERIFY2(store.store(), qPrintable(store.error()));
    DeployWorkspace ws;
    ws.setCode(code);
    const QString release = ws.path(QStringLiteral("release"));
    qint64 hookPid = 0;
    {
        // The first host process: starts the hook, then goes away while it runs.
        auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
        auto stage = createStage(ws.settings(true), state.get());
        QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
        auto run = (*stage)->run(ws.request());
        QSignalSpy finished(run.get(), &PluginJob::finished);
        run->start();
        QTRY_COMPARE_WITH_TIMEOUT(ws.runs(), 1, 20000);
        QTRY_VERIFY_WITH_TIMEOUT(ws.hookPid() > 0, 20000);
        hookPid = ws.hookPid();
        QCOMPARE(finished.count(), 0);
        if (cancelFirst) {
            run->cancel();
            QCOMPARE(finished.count(), 1);
            QCOMPARE(run->outcome().status, StageOutcome::Status::Failed);
            QVERIFY2(run->outcome().summary.contains(QLatin1String("was left running")), qPrintable(run->outcome().summary));
        }
        run.reset();
        stage->reset();
    }
    QVERIFY2(!processIsGone(hookPid), "the deploy hook was killed with the run");
    if (endsBeforeRerun) {
        QVERIFY(writeFile(release, "go\n"));
        QTRY_VERIFY_WITH_TIMEOUT(processIsGone(hookPid), 20000);
    }

    // The restarted host: a new instance over the same store runs the same job again.
    auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
    auto stage = createStage(ws.settings(true), state.get());
    QVERIFY(stage);
    auto rerun = (*stage)->run(ws.request(31, QStringLiteral("9fceb02d0ae598e95dc970b74767f19372d61af8"), 2));
    QSignalSpy finished(rerun.get(), &PluginJob::finished);
    rerun->start();
    if (!endsBeforeRerun) {
        QVERIFY(!rerun->isFinished()); // it waits for the hook it did not start
        QVERIFY(writeFile(release, "go\n"));
    }
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 20000);
    const StageOutcome outcome = rerun->outcome();
    QCOMPARE(outcome.status, code == 0 ? StageOutcome::Status::Completed : StageOutcome::Status::Failed);
    QVERIFY2(outcome.summary.contains(QStringLiteral("exited with code %1 (recorded by an earlier run; not run again)").arg(code)),
             qPrintable(outcome.summary));
    QCOMPARE(ws.runs(), 1);
    // The first run's output, not a new one.
    QCOMPARE(outcome.logPath, QDir(ws.artifacts).filePath(QStringLiteral("deploy-job31-attempt1.log")));
}

void tst_CommandOnce::restartWithoutRecordedStatus()
{
    Test::TemporaryStore store;
    QVERIFY2(store.store(), qPrintable(store.error()));
    DeployWorkspace ws;
    qint64 hookPid = 0;
    {
        auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
        auto stage = createStage(ws.settings(true), state.get());
        QVERIFY(stage);
        auto run = (*stage)->run(ws.request());
        run->start();
        QTRY_VERIFY_WITH_TIMEOUT(ws.hookPid() > 0, 20000);
        hookPid = ws.hookPid();
        run.reset();
        stage->reset();
    }
    // The machine went down with the hook and its wrapper: nothing recorded how it ended.
    const pid_t group = ::getpgid(pid_t(hookPid));
    QVERIFY(group > 1);
    QVERIFY(group != ::getpgrp());
    QCOMPARE(::kill(-group, SIGKILL), 0);
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(hookPid), 20000);
    QTRY_VERIFY_WITH_TIMEOUT(processIsGone(group), 20000);
    QVERIFY(!QFileInfo::exists(QDir(ws.artifacts).filePath(QStringLiteral("deploy-job31-attempt1.log.exit"))));

    auto state = store.state(QStringLiteral("test-project"), QStringLiteral("command"));
    auto stage = createStage(ws.settings(true), state.get());
    QVERIFY(stage);
    for (int attempt = 2; attempt <= 3; ++attempt) {
        auto rerun = (*stage)->run(ws.request(31, QStringLiteral("9fceb02d0ae598e95dc970b74767f19372d61af8"), attempt));
        const StageOutcome outcome = runToEnd(*rerun);
        QCOMPARE(outcome.status, StageOutcome::Status::Failed);
        QVERIFY2(outcome.summary.startsWith(QLatin1String("deploy outcome unknown, check manually")), qPrintable(outcome.summary));
        QVERIFY2(outcome.summary.contains(QLatin1String("it is not run again")), qPrintable(outcome.summary));
        QVERIFY(!outcome.exitCode.has_value());
        QCOMPARE(ws.runs(), 1);
    }
}

QTEST_GUILESS_MAIN(tst_CommandOnce)

#include "tst_commandonce.moc"
