// SPDX-License-Identifier: Apache-2.0
// The one advance path on real stores: claim-before-act under concurrent callers, the red
// policy and its cap, edge gates in order with short-circuit, signals, and the worker.

#include "engine/engine.h"
#include "engine/hostruntime.h"
#include "engine/worker.h"
#include "pluginhost/pluginloader.h"
#include "testprojects.h"
#include "testpipeline.h"
#include "storefixture.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QProcess>
#include <QScopeGuard>
#include <QSemaphore>
#include <QSqlQuery>
#include <QThread>
#include <QThreadPool>
#include <QtTest>

using namespace Sluice;

using Sluice::Test::makeRepository;
using Sluice::Test::wait;
using Sluice::Test::writeFile;

class tst_Engine : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();
    void concurrentAdvanceHasOneWinner_data() { Test::addEngineRows(); }
    void concurrentAdvanceHasOneWinner();
    void redPolicyRollsBackThenBlocks_data() { Test::addEngineRows(); }
    void redPolicyRollsBackThenBlocks();
    void edgeGatesInOrderStopAtFirstNonPass_data();
    void edgeGatesInOrderStopAtFirstNonPass();
    void signalsOnlyTheRightOneAdvances_data() { Test::addEngineRows(); }
    void signalsOnlyTheRightOneAdvances();
    void rejectAppliesTheRedPolicy_data() { Test::addEngineRows(); }
    void rejectAppliesTheRedPolicy();
    void signalRacingTheStageRunIsRefused_data() { Test::addEngineRows(); }
    void signalRacingTheStageRunIsRefused();
    void feedbackCarriesTheFindingsAndGoesWhenTheStagePasses();
    void feedbackIsCappedAndMasked();
    void workerDrivesTaskToDone_data() { Test::addEngineRows(); }
    void workerDrivesTaskToDone();
    void passiveStageIsDecidedByItsGates();
    void failingStageRetriesThenBlocks();
    void staleJobIsNotRun();
    void recoveredJobOutOfAttemptsBlocksItsTask();
    void submitRefusesABranchInUse();
    void degradedGateIsNotifiedEvenWhenItPasses();
    void gateThatMovesTheHeadIsSeenByTheNextGates();
    void waitVerdictKeepsTheTaskAndLooksAgain_data() { Test::addEngineRows(); }
    void waitVerdictKeepsTheTaskAndLooksAgain();
    void wokenTaskGoesAheadOfQueuedBulkWork();

private:
    // Writes @p yaml as project "p" and loads it into @p engine.
    std::shared_ptr<ProjectRuntime> loadProject(const QByteArray &yaml, Engine &engine);
    // Loads the project file written before (safe from several threads).
    std::shared_ptr<ProjectRuntime> loadProjectFile(Engine &engine);
    bool openStore(const QString &engine);
    // What the worker does when a stage's run ends waiting: the stage asks for its signals.
    static bool stageAsked(Engine &engine, qint64 taskId);

    Test::PluginDirectory m_plugins;
    std::unique_ptr<PluginCatalog> m_catalog;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<Store> m_store;
    StoreSettings m_settings;
};

void tst_Engine::initTestCase()
{
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-gate"));
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-stage"));
    m_catalog = Test::loadedCatalog(m_plugins.path());
    QCOMPARE(m_catalog->plugin(QStringLiteral("test-gate"))->state, PluginRecord::State::Loaded);
}

void tst_Engine::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
}

void tst_Engine::cleanup()
{
    m_store.reset();
    m_dir.reset();
}

bool tst_Engine::stageAsked(Engine &engine, qint64 taskId)
{
    const auto task = engine.tasks().task(taskId);
    if (!task || !*task)
        return false;
    JobRecord job;
    job.taskId = taskId;
    job.stage = (*task)->stage;
    job.payload = QJsonObject{{QStringLiteral("taskVersion"), double((*task)->version)}};
    return engine.recordApprovalRequest(job, QStringLiteral("waiting for a person")).has_value();
}

bool tst_Engine::openStore(const QString &engine)
{
    if (!Test::freshStore(engine, m_dir->path(), &m_settings))
        return false;
    auto store = Store::open(m_settings);
    if (!store) {
        QTest::qFail(qPrintable(store.error().toString()), __FILE__, __LINE__);
        return false;
    }
    m_store = std::move(*store);
    return true;
}

std::shared_ptr<ProjectRuntime> tst_Engine::loadProject(const QByteArray &yaml, Engine &engine)
{
    const QString file = m_dir->filePath(QStringLiteral("projects/p.yaml"));
    QDir().mkpath(QFileInfo(file).absolutePath());
    writeFile(file, yaml);
    return loadProjectFile(engine);
}

std::shared_ptr<ProjectRuntime> tst_Engine::loadProjectFile(Engine &engine)
{
    return Test::loadProjectInto(engine, m_dir->filePath(QStringLiteral("projects/p.yaml")), *m_catalog, m_store.get());
}

void tst_Engine::concurrentAdvanceHasOneWinner()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    const QByteArray project = R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: a
    exit_gates: [g]
  - name: b
    run: s
  - name: c
instances:
  g: {plugin: test-gate, settings: {delay: 20ms}}
  s: {plugin: test-stage, settings: {role: r}}
)";
    qint64 taskId = 0;
    {
        Engine setup(*m_store, QStringLiteral("node-a"), m_dir->path());
        QVERIFY(loadProject(project, setup));
        auto id = setup.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("race"), {}, QStringLiteral("race"), QStringLiteral("a"), {}});
        QVERIFY(id.has_value());
        taskId = *id;
    }
    // Eight threads, each with its own engine and plugin instances, advance the same task.
    constexpr int racers = 8;
    QList<AdvanceRun::Outcome> outcomes;
    QMutex mutex;
    std::vector<std::unique_ptr<QThread>> threads;
    for (int i = 0; i < racers; ++i) {
        threads.push_back(std::unique_ptr<QThread>(QThread::create([&, i] {
            Engine racer(*m_store, QStringLiteral("node-%1").arg(i), m_dir->path());
            if (!loadProjectFile(racer))
                return;
            const AdvanceRun::Outcome outcome = wait(racer.advance(taskId, QStringLiteral("a"), QStringLiteral("racer %1").arg(i)));
            QMutexLocker lock(&mutex);
            outcomes.append(outcome);
        })));
    }
    for (auto &t : threads)
        t->start();
    for (auto &t : threads)
        QVERIFY(t->wait(60000));
    QCOMPARE(outcomes.size(), racers);
    QCOMPARE(outcomes.count(AdvanceRun::Outcome::Advanced), 1);
    QCOMPARE(outcomes.count(AdvanceRun::Outcome::Lost), racers - 1);

    Engine check(*m_store, QStringLiteral("check"), m_dir->path());
    auto task = check.tasks().task(taskId);
    QCOMPARE((*task)->stage, QStringLiteral("b"));
    auto jobs = check.jobs().jobsForTask(taskId);
    QCOMPARE(jobs->size(), 1); // exactly one next job
    QCOMPARE(jobs->first().stage, QStringLiteral("b"));
    auto history = check.tasks().history(taskId);
    int advances = 0;
    for (const AuditRecord &a : *history)
        advances += a.action == QLatin1String("advance") ? 1 : 0;
    QCOMPARE(advances, 1); // only the winner acted
}

void tst_Engine::redPolicyRollsBackThenBlocks()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    const QString verdict = m_dir->filePath(QStringLiteral("verdict"));
    writeFile(verdict, "fail");
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: development
    run: dev
  - name: review
    exit_gates: [review-gate]
  - name: done
red_policy: {rollback_to: development, max_retries: 2}
instances:
  dev: {plugin: test-stage, settings: {role: developer}}
  review-gate: {plugin: test-gate, settings: {verdict_file: )") + verdict.toUtf8() + "}}\n", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), QStringLiteral("Build the thing."), QStringLiteral("b"), QStringLiteral("review"), {}});
    QVERIFY(id.has_value());

    for (int round = 1; round <= 2; ++round) {
        // A lease held by one of the task's jobs must not survive the rollback.
        auto job = e.jobs().enqueue(NewJob{*id, QStringLiteral("p"), QStringLiteral("review"), QStringLiteral("lease-holder"), 3, {}, {}});
        QVERIFY(job && *job);
        QSqlQuery lease((*m_store->connection()));
        QVERIFY(lease.exec(QStringLiteral("INSERT INTO leases (resource, holder_node, holder_pid, holder_job, acquired_at, expires_at) "
                                          "VALUES ('merge:p:main', 'n', 1, %1, 0, 9999999999999)").arg(**job)));

        QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::RolledBack);
        auto task = e.tasks().task(*id);
        QCOMPARE((*task)->stage, QStringLiteral("development"));
        QCOMPARE((*task)->retries, round);
        QCOMPARE((*task)->status, QStringLiteral("active"));
        // The findings reach the developer verbatim, once (not accumulated).
        QVERIFY((*task)->description.startsWith(QLatin1String("Build the thing.")));
        QVERIFY2((*task)->description.contains(QStringLiteral("Sent back by gate 'review-gate' (rollback %1 of 2)").arg(round)),
                 qPrintable((*task)->description));
        QVERIFY((*task)->description.contains(QLatin1String("- [test] planted finding")));
        QCOMPARE((*task)->description.count(QLatin1String("Sent back by gate")), 1);
        QSqlQuery leases((*m_store->connection()));
        QVERIFY(leases.exec(QStringLiteral("SELECT COUNT(*) FROM leases")) && leases.next());
        QCOMPARE(leases.value(0).toInt(), 0);
        // The development job is queued again.
        auto jobs = e.jobs().jobsForTask(*id);
        int devQueued = 0;
        for (const JobRecord &j : *jobs)
            devQueued += (j.stage == QLatin1String("development") && j.status == QLatin1String("queued")) ? 1 : 0;
        QCOMPARE(devQueued, 1);
        // Clear the way for the next round: finish the jobs, move the task back to review.
        QSqlQuery finish((*m_store->connection()));
        QVERIFY(finish.exec(QStringLiteral("UPDATE jobs SET status = 'done' WHERE task_id = %1").arg(*id)));
        QVERIFY(*e.tasks().claimTransition(*id, QStringLiteral("development"), QStringLiteral("review")));
    }
    // The third failure reaches the cap: blocked, not another bounce.
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::Blocked);
    auto task = e.tasks().task(*id);
    QCOMPARE((*task)->status, QStringLiteral("blocked"));
    QCOMPARE((*task)->stage, QStringLiteral("review"));
    QVERIFY((*task)->blockedReason.contains(QLatin1String("gate 'review-gate' failed after 2 rollback(s)")));
    auto counts = e.jobs().countsByStatus();
    QCOMPARE(counts->value(QStringLiteral("queued")), 0);
    // A blocked task does not move, whoever asks.
    writeFile(verdict, "pass");
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::NotActive);
    auto runs = e.tasks().gateRuns(*id);
    QCOMPARE(runs->size(), 3);
    for (const GateRunRecord &r : *runs) {
        QCOMPARE(r.verdict.result(), GateVerdict::Result::Fail);
        QCOMPARE(r.gate, QStringLiteral("review-gate"));
        QCOMPARE(r.verdict.findings().size(), 1);
    }
    QCOMPARE(e.stats().rollbacks, 2);
    QCOMPARE(e.stats().blocked, 1);
}

void tst_Engine::edgeGatesInOrderStopAtFirstNonPass_data()
{
    QTest::addColumn<QStringList>("results"); // exit gate, then edge gates 1..3
    QTest::addColumn<int>("evaluated");
    QTest::addColumn<int>("outcome");
    const int advanced = int(AdvanceRun::Outcome::Advanced);
    const int rolledBack = int(AdvanceRun::Outcome::RolledBack);
    QTest::newRow("all pass") << QStringList{QStringLiteral("pass"), QStringLiteral("pass"), QStringLiteral("pass"), QStringLiteral("pass")} << 4 << advanced;
    QTest::newRow("skip passes") << QStringList{QStringLiteral("skip"), QStringLiteral("pass"), QStringLiteral("skip"), QStringLiteral("pass")} << 4 << advanced;
    QTest::newRow("exit gate fails first") << QStringList{QStringLiteral("fail"), QStringLiteral("pass"), QStringLiteral("pass"), QStringLiteral("pass")} << 1 << rolledBack;
    QTest::newRow("second edge gate fails") << QStringList{QStringLiteral("pass"), QStringLiteral("pass"), QStringLiteral("fail"), QStringLiteral("pass")} << 3 << rolledBack;
    QTest::newRow("error is a fail") << QStringList{QStringLiteral("pass"), QStringLiteral("error"), QStringLiteral("pass"), QStringLiteral("pass")} << 2 << rolledBack;
    QTest::newRow("timeout is a fail") << QStringList{QStringLiteral("pass"), QStringLiteral("pass"), QStringLiteral("pass"), QStringLiteral("hang")} << 4 << rolledBack;
}

void tst_Engine::edgeGatesInOrderStopAtFirstNonPass()
{
    QFETCH(QStringList, results);
    QFETCH(int, evaluated);
    QFETCH(int, outcome);
    if (!openStore(QStringLiteral("sqlite")))
        return;
    QByteArray instances;
    const QStringList names{QStringLiteral("exit"), QStringLiteral("edge-1"), QStringLiteral("edge-2"), QStringLiteral("edge-3")};
    for (int i = 0; i < 4; ++i) {
        instances += "  " + names[i].toUtf8() + ": {plugin: test-gate, settings: {"
                     + (results[i] == QLatin1String("hang") ? QByteArray("never_finish: true") : "result: " + results[i].toUtf8()) + "}}\n";
    }
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
timeouts: {gate: 300ms}
stages:
  - name: a
  - name: b
    exit_gates: [exit]
  - name: c
  - name: done
edges:
  - from: b
    to: c
    gates: [edge-1, edge-2, edge-3]
red_policy: {rollback_to: a, max_retries: 3}
instances:
)" + instances, e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("b"), QStringLiteral("b"), {}});
    QCOMPARE(int(wait(e.advance(*id, QString(), QStringLiteral("test")))), outcome);
    auto runs = e.tasks().gateRuns(*id);
    QCOMPARE(int(runs->size()), evaluated);
    for (int i = 0; i < evaluated; ++i) {
        QCOMPARE(runs->at(i).gate, names[i]);                         // configured order
        QCOMPARE(runs->at(i).toStage, i == 0 ? QString() : QStringLiteral("c")); // exit gate vs edge gate
        const QString expected = results[i] == QLatin1String("hang") ? QStringLiteral("error") : results[i];
        QCOMPARE(GateVerdict::resultName(runs->at(i).verdict.result()), expected);
    }
    auto task = e.tasks().task(*id);
    QCOMPARE((*task)->stage, outcome == int(AdvanceRun::Outcome::Advanced) ? QStringLiteral("c") : QStringLiteral("a"));
}

void tst_Engine::signalsOnlyTheRightOneAdvances()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: staging
    run: approve-stage
  - name: deploy
    run: confirm-stage
  - name: done
instances:
  approve-stage: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [approve]}}
  confirm-stage: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [confirm-deploy]}}
)", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("b"), QStringLiteral("deploy"), {}});
    const QString source = QStringLiteral("test");

    // "Approved" on the deploy-confirmation stage is a logged no-op.
    auto approve = e.signal(*id, QStringLiteral("deploy"), QStringLiteral("approve"), source, QStringLiteral("d1"));
    QVERIFY(approve.has_value());
    QCOMPARE(approve->kind, SignalResult::Kind::Ignored);
    QVERIFY2(approve->reason.contains(QLatin1String("waits for 'confirm-deploy', not 'approve'")), qPrintable(approve->reason));
    // The right signal for a stage the task is not in: no-op.
    auto wrongStage = e.signal(*id, QStringLiteral("staging"), QStringLiteral("approve"), source, QStringLiteral("d2"));
    QCOMPARE(wrongStage->kind, SignalResult::Kind::Ignored);
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("deploy"));
    // The right signal before the stage asked for it: no-op.
    auto early = e.signal(*id, QStringLiteral("deploy"), QStringLiteral("confirm-deploy"), source, QStringLiteral("d2b"));
    QCOMPARE(early->kind, SignalResult::Kind::Ignored);
    QVERIFY2(early->reason.contains(QLatin1String("stage 'deploy' has not asked for 'confirm-deploy' yet")), qPrintable(early->reason));
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("deploy"));

    QVERIFY(stageAsked(e, *id));
    auto confirm = e.signal(*id, QStringLiteral("deploy"), QStringLiteral("confirm-deploy"), source, QStringLiteral("d3"));
    QCOMPARE(confirm->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(confirm->advance), AdvanceRun::Outcome::Done);
    QCOMPARE((*e.tasks().task(*id))->status, QStringLiteral("done"));

    // The same delivery again is dropped before anything happens.
    auto again = e.signal(*id, QStringLiteral("deploy"), QStringLiteral("confirm-deploy"), source, QStringLiteral("d3"));
    QCOMPARE(again->kind, SignalResult::Kind::Duplicate);
    auto history = e.tasks().history(*id);
    QStringList actions;
    for (const AuditRecord &a : *history)
        actions << a.action;
    QCOMPARE(actions, QStringList({QStringLiteral("signal-ignored"), QStringLiteral("signal-ignored"), QStringLiteral("signal-ignored"),
                                   QStringLiteral("approval-requested"), QStringLiteral("signal"), QStringLiteral("done")}));
}

void tst_Engine::rejectAppliesTheRedPolicy()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: development
    run: dev
  - name: approval
    run: approve-stage
  - name: done
red_policy: {rollback_to: development, max_retries: 1}
instances:
  dev: {plugin: test-stage, settings: {role: developer}}
  approve-stage: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [approve]}}
)", e));
    QList<Notification> told;
    connect(&e, &Engine::notification, this, [&told](const Notification &n) { told.append(n); });
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("Say hello"), QStringLiteral("Greet."), QStringLiteral("b"),
                                       QStringLiteral("approval"), QStringLiteral("issue-7")});
    QVERIFY(id.has_value());
    const QString source = QStringLiteral("p/plane");

    // A reject where a person was asked: sent back, counted as a rollback, with the reason.
    QVERIFY(stageAsked(e, *id));
    told.clear();
    auto reject = e.signal(*id, QStringLiteral("approval"), QStringLiteral("reject"), source, QStringLiteral("r1"));
    QVERIFY(reject.has_value());
    QCOMPARE(reject->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(reject->advance), AdvanceRun::Outcome::RolledBack);
    auto task = e.tasks().task(*id);
    QCOMPARE((*task)->stage, QStringLiteral("development"));
    QCOMPARE((*task)->retries, 1);
    QVERIFY((*task)->description.contains(QLatin1String("rejected by a person")));
    QCOMPARE(told.size(), 1);
    QCOMPARE(told[0].event, QStringLiteral("rolled-back"));
    QCOMPARE(told[0].taskId, *id);
    QCOMPARE(told[0].projectId, QStringLiteral("p"));
    QCOMPARE(told[0].data.value(QLatin1String("gate")).toString(), QStringLiteral("reject"));
    QCOMPARE(told[0].data.value(QLatin1String("stage")).toString(), QStringLiteral("development"));
    QCOMPARE(told[0].data.value(QLatin1String("tracker_ref")).toString(), QStringLiteral("issue-7"));
    QVERIFY(told[0].at.isValid());

    // A reject for a stage that waits for no signal is a no-op.
    auto notWaiting = e.signal(*id, QStringLiteral("development"), QStringLiteral("reject"), source, QStringLiteral("r2"));
    QCOMPARE(notWaiting->kind, SignalResult::Kind::Ignored);
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("development"));

    // Past the cap a reject blocks, as a failed gate would.
    QSqlQuery finish((*m_store->connection()));
    QVERIFY(finish.exec(QStringLiteral("UPDATE jobs SET status = 'done' WHERE task_id = %1").arg(*id)));
    QVERIFY(*e.tasks().claimTransition(*id, QStringLiteral("development"), QStringLiteral("approval")));
    // Back in the stage: the request of the earlier visit does not count.
    auto unasked = e.signal(*id, QStringLiteral("approval"), QStringLiteral("reject"), source, QStringLiteral("r2b"));
    QCOMPARE(unasked->kind, SignalResult::Kind::Ignored);
    QVERIFY(stageAsked(e, *id));
    told.clear();
    auto again = e.signal(*id, QStringLiteral("approval"), QStringLiteral("reject"), source, QStringLiteral("r3"));
    QCOMPARE(again->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(again->advance), AdvanceRun::Outcome::Blocked);
    QCOMPARE((*e.tasks().task(*id))->status, QStringLiteral("blocked"));
    QCOMPARE(told.size(), 1);
    QCOMPARE(told[0].event, QStringLiteral("blocked"));
    QVERIFY(told[0].text.contains(QLatin1String("rejected by a person")));
}

void tst_Engine::signalRacingTheStageRunIsRefused()
{
    // `sluice approve N staging` followed at once by the deploy stage's signal: the deploy
    // stage's run has not ended waiting (nobody was asked), so its signal is refused; once
    // the worker ran it, the same signal moves the task. A reject sends it back; back in the
    // first stage, that stage's earlier request does not count for the new visit.
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    const QString repo = m_dir->filePath(QStringLiteral("repo.git"));
    QVERIFY(makeRepository(repo));
    Engine e(*m_store, QStringLiteral("n"), m_dir->filePath(QStringLiteral("state")));
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: )") + repo.toUtf8() + R"(}
stages:
  - name: staging
    run: approve-stage
  - name: deploy
    run: confirm-stage
  - name: done
red_policy: {rollback_to: staging, max_retries: 2}
instances:
  approve-stage: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [approve]}}
  confirm-stage: {plugin: test-stage, settings: {role: human, outcome: waiting, signals: [confirm-deploy]}}
)", e));
    QStringList asked; // approval-requested notifications, by stage
    connect(&e, &Engine::notification, this, [&asked](const Notification &n) {
        if (n.event == QLatin1String("approval-requested"))
            asked.append(n.data.value(QLatin1String("stage")).toString());
    });
    auto id = e.submit(QStringLiteral("p"), QStringLiteral("Release"), {}, QString(), QStringLiteral("test"));
    QVERIFY(id.has_value());
    const QString source = QStringLiteral("cli:approve");
    int delivery = 0;
    auto send = [&](const QString &stage, const QString &signal) {
        return e.signal(*id, stage, signal, source, QStringLiteral("d%1").arg(++delivery));
    };
    Worker worker(e);
    worker.setPollInterval(std::chrono::milliseconds(50));
    QSignalSpy jobs(&worker, &Worker::jobFinished);
    worker.start();
    QTRY_COMPARE_WITH_TIMEOUT(jobs.count(), 1, 20000);
    QCOMPARE(asked, QStringList{QStringLiteral("staging")});
    worker.stop(); // nothing runs between the two signals

    auto approve = send(QStringLiteral("staging"), QStringLiteral("approve"));
    QCOMPARE(approve->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(approve->advance), AdvanceRun::Outcome::Advanced);
    auto racing = send(QStringLiteral("deploy"), QStringLiteral("confirm-deploy"));
    QCOMPARE(racing->kind, SignalResult::Kind::Ignored);
    QVERIFY2(racing->reason.contains(QLatin1String("has not asked")), qPrintable(racing->reason));
    auto racingReject = send(QStringLiteral("deploy"), QStringLiteral("reject"));
    QCOMPARE(racingReject->kind, SignalResult::Kind::Ignored);
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("deploy"));
    QCOMPARE((*e.tasks().task(*id))->status, QStringLiteral("active"));

    worker.start();
    QTRY_COMPARE_WITH_TIMEOUT(jobs.count(), 2, 20000);
    worker.stop();
    QCOMPARE(asked, QStringList({QStringLiteral("staging"), QStringLiteral("deploy")}));
    // Asked: a reject now applies the red policy, back to staging (a new visit).
    auto reject = send(QStringLiteral("deploy"), QStringLiteral("reject"));
    QCOMPARE(reject->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(reject->advance), AdvanceRun::Outcome::RolledBack);
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("staging"));
    auto stale = send(QStringLiteral("staging"), QStringLiteral("approve"));
    QCOMPARE(stale->kind, SignalResult::Kind::Ignored);
    QVERIFY2(stale->reason.contains(QLatin1String("has not asked")), qPrintable(stale->reason));

    worker.start();
    QTRY_COMPARE_WITH_TIMEOUT(jobs.count(), 3, 20000);
    auto again = send(QStringLiteral("staging"), QStringLiteral("approve"));
    QCOMPARE(again->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(again->advance), AdvanceRun::Outcome::Advanced);
    QTRY_COMPARE_WITH_TIMEOUT(jobs.count(), 4, 20000);
    worker.stop();
    auto confirm = send(QStringLiteral("deploy"), QStringLiteral("confirm-deploy"));
    QCOMPARE(confirm->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(confirm->advance), AdvanceRun::Outcome::Done);
    QCOMPARE(asked, QStringList({QStringLiteral("staging"), QStringLiteral("deploy"), QStringLiteral("staging"), QStringLiteral("deploy")}));
    // Each request names its visit.
    QList<qint64> visits;
    const auto history = e.tasks().history(*id);
    QVERIFY(history.has_value());
    for (const AuditRecord &a : *history)
        if (a.action == QLatin1String("approval-requested"))
            visits.append(qint64(a.details.value(QLatin1String("visit")).toDouble()));
    QCOMPARE(visits.size(), 4);
    QVERIFY(visits[0] < visits[1] && visits[1] < visits[2] && visits[2] < visits[3]);
}

void tst_Engine::feedbackCarriesTheFindingsAndGoesWhenTheStagePasses()
{
    // A failing verdict that hands on a document (a reviewer's findings): the rollback puts
    // the document into the description with the file it came from; passing the stage whose
    // gate sent the task back takes the feedback out again.
    if (!openStore(QStringLiteral("sqlite")))
        return;
    const QString verdict = m_dir->filePath(QStringLiteral("verdict.json"));
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: development
  - name: review
    exit_gates: [review-gate]
  - name: testing
  - name: done
red_policy: {rollback_to: development, max_retries: 2}
instances:
  review-gate:
    plugin: test-gate
    settings:
      verdict_file: )") + verdict.toUtf8() + R"(
      feedback_file: .sluice/review.md
      feedback_text: "Rename foo to bar.\n\nThe test misses the empty case."
)", e));
    writeFile(verdict, "fail");
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), QStringLiteral("Build the thing."), QStringLiteral("b"),
                                       QStringLiteral("review"), {}});
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::RolledBack);
    const QString sentBack = (*e.tasks().task(*id))->description;
    QVERIFY2(sentBack.startsWith(QLatin1String("Build the thing.\n\n<!-- sluice:feedback from=review -->\n")), qPrintable(sentBack));
    QVERIFY2(sentBack.contains(QLatin1String("### Findings in .sluice/review.md\n\nAs written in .sluice/review.md in your worktree, below its front matter:\n\n"
                                             "Rename foo to bar.\n\nThe test misses the empty case.\n")),
             qPrintable(sentBack));

    // Development passes: the feedback stays (the review has not passed yet).
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::Advanced);
    QCOMPARE((*e.tasks().task(*id))->description, sentBack);
    // The review passes: the feedback goes, the description is the task's own again.
    writeFile(verdict, "pass");
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::Advanced);
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("testing"));
    QCOMPARE((*e.tasks().task(*id))->description, QStringLiteral("Build the thing."));

    // Feedback written by an older Sluice (no stage in its marker) goes at the first stage passed.
    QCOMPARE(descriptionWithoutFeedback(QStringLiteral("Do it.\n\n<!-- sluice:feedback -->\n## Sent back by gate 'g'\n"), QStringLiteral("x")),
             QStringLiteral("Do it."));
    QCOMPARE(descriptionWithoutFeedback(QStringLiteral("Do it."), QStringLiteral("x")), QStringLiteral("Do it."));
}

void tst_Engine::feedbackIsCappedAndMasked()
{
    Redaction::registerSecret("registered-hook-key-5521");
    const QString line = QStringLiteral("A finding line that goes on for a while, to fill the room.\n");
    QString longText;
    while (longText.size() < 3 * MaxFeedbackChars)
        longText += line;
    const GateVerdict verdict = GateVerdict::fail(
        QStringLiteral("changes requested"), {},
        QJsonObject{{QStringLiteral("feedback"),
                     QJsonArray{QJsonObject{{QStringLiteral("file"), QStringLiteral("a.md")},
                                            {QStringLiteral("text"), QStringLiteral("The key registered-hook-key-5521 is in the log.\n") + longText}},
                                QJsonObject{{QStringLiteral("file"), QStringLiteral("b.md")}, {QStringLiteral("text"), QStringLiteral("More.")}}}}});
    const QString out = descriptionWithFeedback(QStringLiteral("Task."), QStringLiteral("review-gate"), verdict, 1, 3, QStringLiteral("review"));
    Redaction::clearForTests();
    QVERIFY2(!out.contains(QLatin1String("registered-hook-key-5521")), qPrintable(out.left(500)));
    QVERIFY(out.contains(QLatin1String("The key [REDACTED] is in the log.")));
    QVERIFY2(out.size() < MaxFeedbackChars + 2000, qPrintable(QString::number(out.size())));
    QVERIFY(out.contains(QLatin1String("The beginning of the findings; the whole text is in a.md in your worktree")));
    QVERIFY(out.contains(QLatin1String("[... cut here; read the rest in a.md]")));
    // The second document has no room left: the description says where it is.
    QVERIFY(out.contains(QLatin1String("### Findings in b.md")));
    QVERIFY(!out.contains(QLatin1String("More.")));
    // Cut at a line's end, not in the middle of one.
    const qsizetype cutAt = out.indexOf(QLatin1String("\n[... cut here"));
    QCOMPARE(out.mid(cutAt - line.size(), line.size()), line); // a whole line, then the note
}

void tst_Engine::workerDrivesTaskToDone()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    const QString repo = m_dir->filePath(QStringLiteral("repo.git"));
    QVERIFY(makeRepository(repo));
    const QString markers = m_dir->filePath(QStringLiteral("markers"));
    Engine e(*m_store, QStringLiteral("n"), m_dir->filePath(QStringLiteral("state")));
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: )") + repo.toUtf8() + R"(}
stages:
  - name: development
    run: dev
  - name: review
    run: rev
    exit_gates: [g]
  - name: done
instances:
  dev: {plugin: test-stage, settings: {role: developer, marker_dir: )" + markers.toUtf8() + R"(}}
  rev: {plugin: test-stage, settings: {role: reviewer, marker_dir: )" + markers.toUtf8() + R"(}}
  g: {plugin: test-gate, settings: {result: pass}}
)", e));
    auto id = e.submit(QStringLiteral("p"), QStringLiteral("Do a thing"), QStringLiteral("details"), QString(), QStringLiteral("test"));
    QVERIFY2(id.has_value(), qPrintable(id ? QString() : id.error().toString()));
    Worker worker(e);
    worker.setPollInterval(std::chrono::milliseconds(100));
    worker.start();
    QTRY_COMPARE_WITH_TIMEOUT((*e.tasks().task(*id))->status, QStringLiteral("done"), 20000);
    const auto task = *e.tasks().task(*id);
    QCOMPARE(task->stage, QStringLiteral("done"));
    QCOMPARE(task->branch, QStringLiteral("sluice/do-a-thing"));
    // Each stage ran once, in its own worktree created from the repository.
    QFile runs(markers + QStringLiteral("/runs.log"));
    QVERIFY(runs.open(QIODevice::ReadOnly));
    QCOMPARE(runs.readAll(), QStringLiteral("%1 development 1\n%1 review 1\n").arg(*id).toUtf8());
    // The finished task's checkout is removed; its branch stays in the repository.
    QTRY_VERIFY_WITH_TIMEOUT(!QFileInfo::exists(e.workspace().worktreePath(QStringLiteral("p"), *id)), 10000);
    {
        QProcess branch;
        branch.start(QStringLiteral("git"), {QStringLiteral("-C"), repo, QStringLiteral("rev-parse"), QStringLiteral("--verify"),
                                             QStringLiteral("refs/heads/sluice/do-a-thing")});
        QVERIFY(branch.waitForFinished(30000));
        QCOMPARE(branch.exitCode(), 0);
        QProcess list;
        list.start(QStringLiteral("git"), {QStringLiteral("-C"), repo, QStringLiteral("worktree"), QStringLiteral("list")});
        QVERIFY(list.waitForFinished(30000));
        QVERIFY(!list.readAll().contains("task-"));
    }
    QFile taskFile(e.workspace().taskFilePath(QStringLiteral("p"), *id));
    QVERIFY(taskFile.open(QIODevice::ReadOnly));
    QCOMPARE(taskFile.readAll(), QByteArray("# Do a thing\n\ndetails\n"));
    auto jobs = e.jobs().jobsForTask(*id);
    QCOMPARE(jobs->size(), 2);
    for (const JobRecord &j : *jobs) {
        QCOMPARE(j.status, QStringLiteral("done"));
        QCOMPARE(j.attempts, 1);
    }
    QCOMPARE(e.tasks().gateRuns(*id)->size(), 1);
    worker.stop();
}

void tst_Engine::passiveStageIsDecidedByItsGates()
{
    if (!openStore(QStringLiteral("sqlite")))
        return;
    const QString repo = m_dir->filePath(QStringLiteral("repo.git"));
    QVERIFY(makeRepository(repo));
    // The task enters the passive first stage from one engine (as `sluice submit` does) and
    // a different engine's worker (the daemon) picks the decision up from the queue.
    qint64 id = 0;
    const QByteArray project = QByteArray(R"(id: p
repository: {path: )") + repo.toUtf8() + R"(}
stages:
  - name: checkpoint
    exit_gates: [g]
  - name: work
    run: s
  - name: done
instances:
  g: {plugin: test-gate, settings: {result: pass}}
  s: {plugin: test-stage, settings: {role: r}}
)";
    {
        Engine submitter(*m_store, QStringLiteral("cli"), m_dir->filePath(QStringLiteral("state")));
        QVERIFY(loadProject(project, submitter));
        auto submitted = submitter.submit(QStringLiteral("p"), QStringLiteral("Passive"), {}, QString(), QStringLiteral("test"));
        QVERIFY(submitted.has_value());
        id = *submitted;
    }
    auto queued = Engine(*m_store, QStringLiteral("peek"), m_dir->path()).jobs().jobsForTask(id);
    QCOMPARE(queued->size(), 1);
    QCOMPARE(queued->first().kind, QStringLiteral("advance"));
    Engine daemon(*m_store, QStringLiteral("daemon"), m_dir->filePath(QStringLiteral("state")));
    QVERIFY(loadProjectFile(daemon));
    Worker worker(daemon);
    worker.setPollInterval(std::chrono::milliseconds(50));
    worker.start();
    QTRY_COMPARE_WITH_TIMEOUT((*daemon.tasks().task(id))->status, QStringLiteral("done"), 20000);
    auto runs = daemon.tasks().gateRuns(id);
    QCOMPARE(runs->size(), 1);
    QCOMPARE(runs->first().stage, QStringLiteral("checkpoint"));
}

void tst_Engine::failingStageRetriesThenBlocks()
{
    if (!openStore(QStringLiteral("sqlite")))
        return;
    const QString repo = m_dir->filePath(QStringLiteral("repo.git"));
    QVERIFY(makeRepository(repo));
    const QString outcome = m_dir->filePath(QStringLiteral("outcome"));
    writeFile(outcome, "failed");
    Engine e(*m_store, QStringLiteral("n"), m_dir->filePath(QStringLiteral("state")));
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: )") + repo.toUtf8() + R"(}
jobs: {max_attempts: 2, retry_backoff: 100ms}
stages:
  - name: development
    run: dev
  - name: done
instances:
  dev: {plugin: test-stage, settings: {role: developer, outcome_file: )" + outcome.toUtf8() + R"(}}
)", e));
    auto id = e.submit(QStringLiteral("p"), QStringLiteral("Fail"), {}, QString(), QStringLiteral("test"));
    QVERIFY(id.has_value());
    Worker worker(e);
    worker.setPollInterval(std::chrono::milliseconds(50));
    QSignalSpy finished(&worker, &Worker::jobFinished);
    worker.start();
    QTRY_COMPARE_WITH_TIMEOUT((*e.tasks().task(*id))->status, QStringLiteral("blocked"), 20000);
    QCOMPARE(finished.count(), 2);
    QCOMPARE(finished.at(0).at(1).toString(), QStringLiteral("requeued"));
    QCOMPARE(finished.at(1).at(1).toString(), QStringLiteral("failed"));
    const auto jobs = *e.jobs().jobsForTask(*id);
    QCOMPARE(jobs.size(), 1);
    QCOMPARE(jobs.first().status, QStringLiteral("failed"));
    QCOMPARE(jobs.first().attempts, 2);
    QVERIFY((*e.tasks().task(*id))->blockedReason.contains(QLatin1String("stage 'development' failed 2 time(s)")));
}

void tst_Engine::staleJobIsNotRun()
{
    if (!openStore(QStringLiteral("sqlite")))
        return;
    const QString repo = m_dir->filePath(QStringLiteral("repo.git"));
    QVERIFY(makeRepository(repo));
    const QString markers = m_dir->filePath(QStringLiteral("markers"));
    Engine e(*m_store, QStringLiteral("n"), m_dir->filePath(QStringLiteral("state")));
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: )") + repo.toUtf8() + R"(}
stages:
  - name: a
    run: s
  - name: b
    run: s
  - name: done
instances:
  s: {plugin: test-stage, settings: {role: r, outcome: waiting, marker_dir: )" + markers.toUtf8() + R"(}}
)", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("b"), QStringLiteral("a"), {}});
    QVERIFY(e.jobs().enqueue(NewJob{*id, QStringLiteral("p"), QStringLiteral("a"), QStringLiteral("stage"), 3, {}, {}}).has_value());
    // The task moves on before the worker gets to the job (say, a signal on another node).
    QVERIFY(*e.tasks().claimTransition(*id, QStringLiteral("a"), QStringLiteral("b")));
    Worker worker(e);
    QSignalSpy finished(&worker, &Worker::jobFinished);
    worker.start();
    QVERIFY(finished.wait(10000));
    QCOMPARE(finished.first().at(1).toString(), QStringLiteral("stale"));
    QVERIFY(!QFileInfo::exists(markers + QStringLiteral("/runs.log")));
}

void tst_Engine::recoveredJobOutOfAttemptsBlocksItsTask()
{
    if (!openStore(QStringLiteral("sqlite")))
        return;
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: a
    run: s
  - name: done
instances:
  s: {plugin: test-stage, settings: {role: r}}
)", e));
    auto last = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("last try"), {}, QStringLiteral("b1"), QStringLiteral("a"), {}});
    auto spare = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("tries left"), {}, QStringLiteral("b2"), QStringLiteral("a"), {}});
    QVERIFY(e.jobs().enqueue(NewJob{*last, QStringLiteral("p"), QStringLiteral("a"), QStringLiteral("stage"), 1, {}, {}}).has_value());
    QVERIFY(e.jobs().enqueue(NewJob{*spare, QStringLiteral("p"), QStringLiteral("a"), QStringLiteral("stage"), 3, {}, {}}).has_value());
    ConcurrencyLimits limits;
    QVERIFY(*e.jobs().claimNext(QStringLiteral("n"), limits, QDateTime::currentDateTimeUtc()));
    QVERIFY(*e.jobs().claimNext(QStringLiteral("n"), limits, QDateTime::currentDateTimeUtc()));
    // The node died with both jobs running; the one without attempts left is failed by recovery.
    QCOMPARE(*e.jobs().recoverRunning(QStringLiteral("n"), QStringLiteral("node restarted")), 2);
    QCOMPARE(*e.blockTasksWithFailedJobs(QStringLiteral("test")), 1);
    QCOMPARE((*e.tasks().task(*last))->status, QStringLiteral("blocked"));
    QVERIFY((*e.tasks().task(*last))->blockedReason.contains(QLatin1String("failed after 1 attempt(s)")));
    QCOMPARE((*e.tasks().task(*spare))->status, QStringLiteral("active")); // requeued, still has its job
    QCOMPARE(*e.blockTasksWithFailedJobs(QStringLiteral("test")), 0);
}

void tst_Engine::submitRefusesABranchInUse()
{
    if (!openStore(QStringLiteral("sqlite")))
        return;
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: a
    run: s
  - name: done
instances:
  s: {plugin: test-stage, settings: {role: r}}
)", e));
    QVERIFY(e.submit(QStringLiteral("p"), QStringLiteral("Same"), {}, QString(), QStringLiteral("test")).has_value());
    auto second = e.submit(QStringLiteral("p"), QStringLiteral("Same"), {}, QString(), QStringLiteral("test"));
    QVERIFY(!second.has_value());
    QCOMPARE(second.error().code, ErrorCode::Conflict);
    QVERIFY(!e.submit(QStringLiteral("nope"), QStringLiteral("x"), {}, QString(), QStringLiteral("test")).has_value());
}

void tst_Engine::degradedGateIsNotifiedEvenWhenItPasses()
{
    QVERIFY(openStore(QStringLiteral("sqlite")));
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: a
    exit_gates: [partial, full]
  - name: b
instances:
  partial: {plugin: test-gate, settings: {result: pass, degraded: 2}}
  full: {plugin: test-gate, settings: {result: pass}}
)", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("t"), QStringLiteral("a"), {}});
    QVERIFY(id);
    QList<Notification> told;
    connect(&e, &Engine::notification, this, [&](const Notification &n) { told.append(n); });
    QCOMPARE(wait(e.advance(*id, QStringLiteral("a"), QStringLiteral("test"))), AdvanceRun::Outcome::Done);
    QStringList events;
    for (const Notification &n : std::as_const(told))
        events << n.event;
    // Only the gate that ran degraded raises "audit-degraded"; the task still moved.
    QCOMPARE(events.count(QStringLiteral("audit-degraded")), 1);
    const Notification degraded = told.at(events.indexOf(QStringLiteral("audit-degraded")));
    QCOMPARE(degraded.data.value(QLatin1String("gate")).toString(), QStringLiteral("partial"));
    QCOMPARE(degraded.data.value(QLatin1String("degraded")).toInt(), 2);
    QCOMPARE(degraded.taskId, *id);
}

void tst_Engine::gateThatMovesTheHeadIsSeenByTheNextGates()
{
    QVERIFY(openStore(QStringLiteral("sqlite")));
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QVERIFY(loadProject(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: staging
  - name: live
  - name: done
edges:
  - from: staging
    to: live
    gates: [before, mover, after]
instances:
  before: {plugin: test-gate, settings: {result: pass}}
  mover: {plugin: test-gate, settings: {result: pass, head: 4a5b6c7d8e9f}}
  after: {plugin: test-gate, settings: {result: pass}}
)", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("t"), QStringLiteral("staging"), {}});
    QVERIFY(id);
    QCOMPARE(wait(e.advance(*id, QStringLiteral("staging"), QStringLiteral("test"))), AdvanceRun::Outcome::Advanced);
    // The gates after the mover judged the new head, and the task records it.
    auto runs = e.tasks().gateRuns(*id);
    QVERIFY(runs);
    QCOMPARE(runs->size(), 3);
    QHash<QString, QString> headByGate;
    for (const GateRunRecord &r : *runs)
        headByGate.insert(r.gate, r.headSha);
    QCOMPARE(headByGate.value(QStringLiteral("before")), QString());
    QCOMPARE(headByGate.value(QStringLiteral("after")), QStringLiteral("4a5b6c7d8e9f"));
    QCOMPARE((*e.tasks().task(*id))->headSha, QStringLiteral("4a5b6c7d8e9f"));
}

// "Not yet" (a merge lease another task holds): nothing moves, nothing is rolled back, no
// retry is spent, nobody hears of a failure; the engine looks again after the verdict's
// retryAfter by itself, once per task however many runs ended waiting, and then the task goes on.
void tst_Engine::waitVerdictKeepsTheTaskAndLooksAgain()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    const QString verdict = m_dir->filePath(QStringLiteral("verdict"));
    writeFile(verdict, "wait");
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    QList<Notification> heard;
    connect(&e, &Engine::notification, this, [&heard](const Notification &n) { heard.append(n); });
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: development
    run: dev
  - name: review
  - name: done
edges:
  - from: review
    to: done
    gates: [first, busy]
red_policy: {rollback_to: development, max_retries: 0}
instances:
  dev: {plugin: test-stage, settings: {role: developer}}
  first: {plugin: test-gate, settings: {result: pass}}
  busy: {plugin: test-gate, settings: {retry_ms: 1000, verdict_file: )") + verdict.toUtf8() + "}}\n", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("b"), QStringLiteral("review"), {}});
    QVERIFY(id);
    const qint64 version = (*e.tasks().task(*id))->version;

    // Two runs end waiting (as when the reconciler re-drives a waiting task): one look is scheduled.
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::Waiting);
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::Waiting);
    QVERIFY(e.isWaiting(*id));
    auto task = e.tasks().task(*id);
    QCOMPARE((*task)->stage, QStringLiteral("review"));
    QCOMPARE((*task)->status, QStringLiteral("active")); // max_retries 0: a failure would have blocked it
    QCOMPARE((*task)->retries, 0);
    QCOMPARE((*task)->version, version);
    QCOMPARE(e.stats().rollbacks, 0);
    // Not a decision: only the passing gate's runs are recorded; the wait is audited.
    auto runs = e.tasks().gateRuns(*id);
    QCOMPARE(runs->size(), 2);
    for (const GateRunRecord &r : *runs)
        QCOMPARE(r.gate, QStringLiteral("first"));
    QSqlQuery audit((*m_store->connection()));
    QVERIFY(audit.exec(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(*id)) && audit.next());
    QCOMPARE(audit.value(0).toInt(), 2);
    for (const Notification &n : std::as_const(heard))
        QVERIFY2(n.event != QLatin1String("gate-failed"), qPrintable(n.title));
    // `sluice task` answers "why is it sitting there".
    auto report = taskReport(e, *id);
    QVERIFY(report);
    QVERIFY2(report->value(QStringLiteral("waiting")).toString().startsWith(QLatin1String("gate busy asked to wait in stage review: test gate says wait")),
             qPrintable(report->value(QStringLiteral("waiting")).toString()));

    // The holder lets go: the engine's own look (no one calls advance) moves the task on, once.
    writeFile(verdict, "pass");
    QTRY_COMPARE_WITH_TIMEOUT((*e.tasks().task(*id))->status, QStringLiteral("done"), 10000);
    QVERIFY(!e.isWaiting(*id));
    QCOMPARE(e.stats().done, 1);
    QTest::qWait(1500); // a second scheduled look would have run by now
    QVERIFY(audit.exec(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action IN ('done', 'advance')").arg(*id)) && audit.next());
    QCOMPARE(audit.value(0).toInt(), 1);
    QCOMPARE(e.tasks().gateRuns(*id)->size(), 4); // first ×3 (two waits, one pass) + busy's pass
}

// A forge event wakes a task whose gate waits (its CI turned green) while the thread pool is
// busy and has bulk work queued (other tasks' working copies and first evaluations): the woken
// task's host steps go ahead of that queue instead of behind it. Before, at 200 tasks submitted
// at once, a woken task waited ~11 s for the pool (bench_forgeloop, docs/forge-loop.md).
void tst_Engine::wokenTaskGoesAheadOfQueuedBulkWork()
{
    QVERIFY(openStore(QStringLiteral("sqlite")));
    const QString verdict = m_dir->filePath(QStringLiteral("verdict"));
    writeFile(verdict, "wait");
    Engine e(*m_store, QStringLiteral("n"), m_dir->path());
    // A repository path: the working copy step runs (on the pool) before the gates.
    QVERIFY(loadProject(QByteArray(R"(id: p
repository: {path: /nonexistent/p.git}
stages:
  - name: testing
  - name: done
edges:
  - from: testing
    to: done
    gates: [ci]
instances:
  ci: {plugin: test-gate, settings: {retry_ms: 600000, verdict_file: )") + verdict.toUtf8() + "}}\n", e));
    auto id = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("b"), QStringLiteral("testing"), {}});
    QVERIFY(id);
    QCOMPARE(wait(e.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::Waiting);
    QVERIFY(e.isWaiting(*id));

    // Every thread of the pool busy, and as much bulk work queued behind as there are threads:
    // in first-come order the bulk work would take every thread (and hold it until released).
    QThreadPool *pool = QThreadPool::globalInstance();
    const int threads = pool->maxThreadCount();
    QSemaphore running, busy, bulk;
    // Whatever the outcome, nothing is left blocking the pool.
    const auto unblock = qScopeGuard([&] {
        busy.release(threads);
        bulk.release(threads);
        pool->waitForDone();
    });
    for (int i = 0; i < threads; ++i)
        pool->start([&running, &busy] { running.release(); busy.acquire(); });
    QVERIFY(running.tryAcquire(threads, 10000));
    for (int i = 0; i < threads; ++i)
        pool->start([&bulk] { bulk.acquire(); });

    writeFile(verdict, "pass");
    QCOMPARE(e.wake(*id, QStringLiteral("forge: status 'ci/test' success")), Engine::Wake::Woken);
    // The woken run queues its first step on the event loop's next turn (advance() is always
    // asynchronous); the pool's threads come free only after that, in a later posted call.
    QMetaObject::invokeMethod(this, [&busy, threads] { busy.release(threads); }, Qt::QueuedConnection);
    QTRY_COMPARE_WITH_TIMEOUT((*e.tasks().task(*id))->status, QStringLiteral("done"), 10000);
}

QTEST_GUILESS_MAIN(tst_Engine)
#include "tst_engine.moc"
