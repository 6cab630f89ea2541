// SPDX-License-Identifier: Apache-2.0
// The job reaper, leases and the reconciler on real stores, with real processes: each tier,
// the rules that keep them from taking living work, the race between startup recovery, a
// late monitor and the reaper, lease reclaim for dead, silent, expired and live holders, and
// every switch turned off.
#include "engine/engine.h"
#include "engine/hostruntime.h"
#include "procstat.h"
#include "engine/reaper.h"
#include "engine/reconciler.h"
#include "engine/worker.h"
#include "pluginhost/pluginloader.h"
#include "store/leasestore.h"
#include "store/taskstore.h"

#include "daemonprocess.h"
#include "testdaemon.h"
#include "testprojects.h"
#include "storefixture.h"

#include <sluice/testsupport.h>

#include <QProcess>
#include <QSignalSpy>
#include <QSqlQuery>
#include <QThread>
#include <QtTest>

#include <csignal>

using namespace Sluice;
using namespace std::chrono_literals;

namespace {

const QByteArray Project = R"(id: p
repository: {path: /nonexistent/p.git}
jobs: {max_attempts: 2, retry_backoff: 1s}
stages:
  - name: a
    run: s
  - name: b
    run: s
  - name: wait
    run: approve
  - name: c
instances:
  s: {plugin: test-stage, settings: {role: r}}
  approve: {plugin: test-stage, settings: {role: r, signals: [approve]}}
)";

// A process that leads a process group of its own, as agents do.
qint64 startAgent(const QString &seconds = QStringLiteral("60"))
{
    qint64 pid = 0;
    if (!QProcess::startDetached(QStringLiteral("setsid"), {QStringLiteral("sleep"), seconds}, QString(), &pid))
        return 0;
    // setsid execs sleep in the same process once it runs.
    for (int i = 0; i < 100; ++i) {
        const auto stat = readProcStat(pid);
        if (stat && stat->processGroup == pid)
            return pid;
        QThread::msleep(10);
    }
    return pid;
}

// The pid of a process that ran @p program and has ended (and was reaped).
qint64 endedAgent(const QString &program)
{
    QProcess p;
    p.start(program, QStringList());
    if (!p.waitForStarted())
        return 0;
    const qint64 pid = p.processId();
    p.waitForFinished();
    return pid;
}

bool alive(qint64 pid)
{
    const auto stat = readProcStat(pid);
    return stat && stat->state != 'Z' && stat->state != 'X';
}

ReaperSettings fastReaper()
{
    ReaperSettings s;
    s.interval = 100ms;
    s.deadTicks = 2;
    s.finalizeGrace = 300ms;
    s.ceiling = 1h;
    s.killGrace = 1s;
    s.nodeTimeout = 30s;
    return s;
}

ReaperPass runTick(Reaper &reaper)
{
    QSignalSpy spy(&reaper, &Reaper::passFinished);
    reaper.tick();
    if (!spy.wait(20000))
        return {};
    return spy.first().first().value<ReaperPass>();
}

} // namespace

class tst_Reaper : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void leaseAcquireRenewRelease_data() { Test::addEngineRows(); }
    void leaseAcquireRenewRelease();
    void leaseQueueIsFirstComeFirstServed_data() { Test::addEngineRows(); }
    void leaseQueueIsFirstComeFirstServed();
    void taskLeaseIsItsNodes_data() { Test::addEngineRows(); }
    void taskLeaseIsItsNodes();
    void anEndedTaskHoldsNoPlaceInTheQueue_data() { Test::addEngineRows(); }
    void anEndedTaskHoldsNoPlaceInTheQueue();
    void leaseReclaimDeadSilentExpiredButNeverLive_data() { Test::addEngineRows(); }
    void leaseReclaimDeadSilentExpiredButNeverLive();
    void tier1DeadPidAfterConsecutiveTicks();
    void tier1PidlessJobWithoutMonitor();
    void liveAgentIsNeverReaped();
    void monitorInsideGraceIsNotReaped();
    void recordedExitIsReadBeforeJudging_data();
    void recordedExitIsReadBeforeJudging();
    void agentStoppedAtStartupIsNeverCompleted();
    void unrecordedAgentIsFoundThroughItsLog_data() { Test::addEngineRows(); }
    void unrecordedAgentIsFoundThroughItsLog();
    void killedDaemonKeepsWhatItsAgentRecorded_data();
    void killedDaemonKeepsWhatItsAgentRecorded();
    void tier2ExitZeroGoesToTheGatesOnce();
    void tier2NonZeroRequeuesThenFailsAndBlocks();
    void tier3StopsTheLivingAgentFirst();
    void pidReuseIsNotALiveAgent();
    void startupRecoveryMonitorAndReaperRace();
    void switchesOff();
    void reconcilerRedrivesWhatAnEdgeLeftBehind();
    void reconcilerLeavesWaitingBusyAndUnsettledTasksAlone();
    void reconcilerAsksAgainWhenTheRequestWasLost();
    void ceilingBelowStageTimeoutRefusesTheProject();
    void retryBackoffDoublesWithinItsCaps();

private:
    bool openStore(const QString &engine = QStringLiteral("sqlite"));
    std::shared_ptr<ProjectRuntime> loadProject(Engine &engine, const QByteArray &yaml = Project);
    // A task in stage @p stage with a running job claimed by "node-a"; returns the job.
    JobRecord runningJob(Engine &engine, const QString &stage = QStringLiteral("a"), int maxAttempts = 2);
    qint64 recordAgent(Engine &engine, const JobRecord &job, qint64 pid, const QString &logPath = QString());

    Test::PluginDirectory m_plugins;
    std::unique_ptr<PluginCatalog> m_catalog;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<Store> m_store;
    QList<qint64> m_agents;
};

void tst_Reaper::initTestCase()
{
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-stage"));
    m_catalog = Test::loadedCatalog(m_plugins.path());
}

void tst_Reaper::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
}

void tst_Reaper::cleanup()
{
    for (const qint64 pid : std::exchange(m_agents, {}))
        ::kill(pid_t(pid), SIGKILL);
    m_store.reset();
    m_dir.reset();
}

bool tst_Reaper::openStore(const QString &engine)
{
    StoreSettings settings;
    if (!Test::freshStore(engine, m_dir->path(), &settings))
        return false;
    auto store = Store::open(settings);
    if (!store) {
        QTest::qFail(qPrintable(store.error().toString()), __FILE__, __LINE__);
        return false;
    }
    m_store = std::move(*store);
    return true;
}

std::shared_ptr<ProjectRuntime> tst_Reaper::loadProject(Engine &engine, const QByteArray &yaml)
{
    const QString file = m_dir->filePath(QStringLiteral("projects/p.yaml"));
    QDir().mkpath(QFileInfo(file).absolutePath());
    QFile f(file);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return nullptr;
    f.write(yaml);
    f.close();
    return Test::loadProjectInto(engine, file, *m_catalog, m_store.get());
}

JobRecord tst_Reaper::runningJob(Engine &engine, const QString &stage, int maxAttempts)
{
    static int counter = 0;
    auto task = engine.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), {}, QStringLiteral("b%1").arg(++counter), stage, {}});
    if (!task)
        return {};
    NewJob job;
    job.taskId = *task;
    job.project = QStringLiteral("p");
    job.stage = stage;
    job.maxAttempts = maxAttempts;
    if (!engine.jobs().enqueue(job))
        return {};
    auto claimed = engine.jobs().claimNext(QStringLiteral("node-a"), ConcurrencyLimits{}, QDateTime::currentDateTimeUtc());
    return claimed && *claimed ? **claimed : JobRecord();
}

qint64 tst_Reaper::recordAgent(Engine &engine, const JobRecord &job, qint64 pid, const QString &logPath)
{
    JobQueue::AgentRunRecord run;
    run.jobId = job.id;
    run.attempt = job.attempts;
    run.node = engine.node();
    run.pid = pid;
    run.logPath = logPath;
    const auto stat = readProcStat(pid);
    run.startTicks = stat ? stat->startTicks : 12345;
    auto id = engine.jobs().recordAgentStart(run);
    return id ? *id : 0;
}

// Two nodes evaluating the same task's edge at once (one re-driven by the reconciler while the
// other still merges): the lease is the task's on the node that took it. The other node's
// evaluation does not get it, cannot renew or release it, and gets it once it is free; a new
// process of the holding node (a restart) holds it. (Before, both held it and both rebased the
// task branch of the shared repository at once: found by tst_nodeflow via nodes.sh.)
void tst_Reaper::taskLeaseIsItsNodes()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    LeaseStore leases(*m_store);
    const QString r = QStringLiteral("merge:p:main");
    const QDateTime t0 = QDateTime::currentDateTimeUtc();
    const LeaseHolder onA{QStringLiteral("node-a"), 101, 0, 8, 0};
    const LeaseHolder onB{QStringLiteral("node-b"), 202, 0, 8, 0};
    const LeaseHolder restartedA{QStringLiteral("node-a"), 303, 0, 8, 0};
    QVERIFY(leases.acquire(r, onA, 60s, t0)->held);
    auto other = leases.acquire(r, onB, 60s, t0.addSecs(1));
    QVERIFY(other);
    QVERIFY(!other->held);
    QCOMPARE(other->lease.holder.node, QStringLiteral("node-a"));
    QVERIFY(!leases.release(r, onB).value_or(true));
    auto held = leases.lease(r);
    QVERIFY(held && *held);
    QCOMPARE((*held)->holder.node, QStringLiteral("node-a"));
    auto again = leases.acquire(r, restartedA, 60s, t0.addSecs(2));
    QVERIFY(again && again->held);
    QCOMPARE(again->lease.holder.pid, qint64(303));
    QVERIFY(leases.release(r, restartedA).value_or(false));
    auto free = leases.acquire(r, onB, 60s, t0.addSecs(3));
    QVERIFY(free && free->held);
    QCOMPARE(free->lease.holder.node, QStringLiteral("node-b"));
}

// A task's lease is its node's, so its ask from another node while it held the lease (a
// reconciler's re-drive) queued it. Once it had merged and ended, that entry still stood
// first in line: every other task was "promised to task N" for lease_ttl (tests/bench/nodes.sh,
// 13 tasks stuck for minutes). An ended task's leftover place counts for nothing.
void tst_Reaper::anEndedTaskHoldsNoPlaceInTheQueue()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    TaskStore tasks(*m_store);
    auto newTask = [&](const QString &branch) {
        NewTask t;
        t.project = QStringLiteral("p");
        t.title = branch;
        t.branch = branch;
        t.stage = QStringLiteral("review");
        return tasks.create(t).value_or(0);
    };
    const qint64 first = newTask(QStringLiteral("one"));
    const qint64 second = newTask(QStringLiteral("two"));
    const qint64 third = newTask(QStringLiteral("three"));
    QVERIFY(first > 0 && second > 0 && third > 0);
    LeaseStore leases(*m_store);
    const QString r = QStringLiteral("merge:p:main");
    const QDateTime t0 = QDateTime::currentDateTimeUtc();
    const LeaseHolder firstOnA{QStringLiteral("node-a"), 101, 0, first, 0};
    const LeaseHolder firstOnB{QStringLiteral("node-b"), 202, 0, first, 0};
    const LeaseHolder secondOnB{QStringLiteral("node-b"), 202, 0, second, 0};
    const LeaseHolder thirdOnB{QStringLiteral("node-b"), 202, 0, third, 0};
    QVERIFY(leases.acquire(r, firstOnA, 60s, t0)->held);
    QVERIFY(!leases.acquire(r, firstOnB, 60s, t0.addSecs(1))->held); // the re-drive on node b queues it
    QVERIFY(!leases.acquire(r, secondOnB, 60s, t0.addSecs(2))->held);
    // The first merges on node a, ends and gives the lease back: the second is next, not the
    // first's leftover place.
    TaskChange done;
    done.status = QStringLiteral("done");
    QVERIFY(tasks.claimTransition(first, QStringLiteral("review"), QStringLiteral("done"), done).value_or(false));
    QVERIFY(leases.release(r, firstOnA).value_or(false));
    auto next = leases.acquire(r, secondOnB, 60s, t0.addSecs(3));
    QVERIFY(next);
    QVERIFY2(next->held, qPrintable(QStringLiteral("promised to task %1").arg(next->aheadTask)));
    QVERIFY(leases.release(r, secondOnB).value_or(false));

    // A leftover place of a task that has ended (blocked here) counts for nothing either.
    QVERIFY(leases.acquire(r, firstOnA, 60s, t0.addSecs(4))->held);
    QVERIFY(!leases.acquire(r, secondOnB, 60s, t0.addSecs(5))->held); // queued behind nobody
    QVERIFY(!leases.acquire(r, thirdOnB, 60s, t0.addSecs(6))->held);
    TaskChange blocked;
    blocked.status = QStringLiteral("blocked");
    blocked.blockedReason = QStringLiteral("a person said no");
    QVERIFY(tasks.claimTransition(second, QStringLiteral("review"), QStringLiteral("review"), blocked).value_or(false));
    QVERIFY(leases.release(r, firstOnA).value_or(false));
    auto after = leases.acquire(r, thirdOnB, 60s, t0.addSecs(7));
    QVERIFY(after);
    QVERIFY2(after->held, qPrintable(QStringLiteral("promised to task %1").arg(after->aheadTask)));
}

// Waiting tasks get a free lease in the order they first asked, as long as they keep asking
// within their TTL; a task sent back or blocked gives up its place.
void tst_Reaper::leaseQueueIsFirstComeFirstServed()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    LeaseStore leases(*m_store);
    const QString r = QStringLiteral("merge:p:main");
    const QDateTime t0 = QDateTime::currentDateTimeUtc();
    auto task = [](qint64 id) { return LeaseHolder{QStringLiteral("node-a"), 100 + id, 0, id, 0}; };

    QVERIFY(leases.acquire(r, task(1), 60s, t0)->held);
    auto two = leases.acquire(r, task(2), 60s, t0.addSecs(1));
    QVERIFY(two && !two->held);
    QCOMPARE(two->lease.holder.taskId, qint64(1));
    QVERIFY(!leases.acquire(r, task(3), 60s, t0.addSecs(2))->held);
    QVERIFY(leases.release(r, task(1)).value_or(false));

    // Task 3 looks first after the release, but task 2 asked first: the lease waits for it.
    auto early = leases.acquire(r, task(3), 60s, t0.addSecs(3));
    QVERIFY(early && !early->held);
    QCOMPARE(early->aheadTask, qint64(2));
    QCOMPARE(early->lease.holder.taskId, qint64(2));
    QVERIFY(!*leases.lease(r)); // promised, not taken
    auto turn = leases.acquire(r, task(2), 60s, t0.addSecs(4));
    QVERIFY(turn && turn->held);
    auto queue = leases.waiters();
    QVERIFY(queue);
    QCOMPARE(queue->size(), 1);
    QCOMPARE(queue->first().taskId, qint64(3));
    QCOMPARE(queue->first().firstAsked, t0.addSecs(2)); // asking again kept its place
    QVERIFY(leases.release(r, task(2)).value_or(false));
    QVERIFY(leases.acquire(r, task(3), 60s, t0.addSecs(5))->held);
    QVERIFY(leases.waiters()->isEmpty());
    QVERIFY(leases.release(r, task(3)).value_or(false));

    // A waiter that stops asking for longer than its TTL loses its place.
    QVERIFY(leases.acquire(r, task(4), 60s, t0.addSecs(10))->held);
    QVERIFY(!leases.acquire(r, task(5), 60s, t0.addSecs(11))->held);
    QVERIFY(!leases.acquire(r, task(6), 60s, t0.addSecs(12))->held);
    QVERIFY(leases.release(r, task(4)).value_or(false));
    QCOMPARE(leases.acquire(r, task(6), 60s, t0.addSecs(30))->aheadTask, qint64(5)); // 5 still counts
    QVERIFY(leases.acquire(r, task(6), 60s, t0.addSecs(72))->held);                   // 5 silent for 61 s
    QVERIFY(leases.waiters()->isEmpty());

    // A task sent back (or blocked) gives up its place: the engine releases its leases and its queue rows.
    QVERIFY(!leases.acquire(r, task(7), 60s, t0.addSecs(73))->held);
    QCOMPARE(leases.waiters()->size(), 1);
    QVERIFY(m_store->releaseTaskLeases(7));
    QVERIFY(leases.waiters()->isEmpty());
    QVERIFY(leases.release(r, task(6)).value_or(false));

    // What a plugin sees (LeaseService): promised to the task ahead, no node, no expiry.
    StoreLeaseService service(*m_store, QStringLiteral("node-a"));
    QVERIFY(service.acquire(QStringLiteral("merge:p:next"), 8, 60s)->held);
    QVERIFY(!service.acquire(QStringLiteral("merge:p:next"), 9, 60s)->held);
    QVERIFY(!service.acquire(QStringLiteral("merge:p:next"), 10, 60s)->held);
    QVERIFY(service.release(QStringLiteral("merge:p:next"), 8).value_or(false));
    auto promised = service.acquire(QStringLiteral("merge:p:next"), 10, 60s);
    QVERIFY(promised && !promised->held);
    QCOMPARE(promised->holderTask, qint64(9));
    QVERIFY(promised->holderNode.isEmpty());
    QVERIFY(!promised->expiresAt.isValid());
    QVERIFY(service.acquire(QStringLiteral("merge:p:next"), 9, 60s)->held);
}

void tst_Reaper::leaseAcquireRenewRelease()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    LeaseStore leases(*m_store);
    const QDateTime now = QDateTime::currentDateTimeUtc();
    const LeaseHolder first{QStringLiteral("node-a"), 100, 7, 11, 1};
    const LeaseHolder second{QStringLiteral("node-b"), 200, 8, 12, 2};

    auto a = leases.acquire(QStringLiteral("merge:p:main"), first, 60s, now);
    QVERIFY2(a, qPrintable(a ? QString() : a.error().toString()));
    QVERIFY(a->held);
    // Idempotent for the same holder (the same task, from a restarted process): renewed, moved.
    const LeaseHolder firstRestarted{QStringLiteral("node-a"), 101, 9, 11, 3};
    auto again = leases.acquire(QStringLiteral("merge:p:main"), firstRestarted, 120s, now);
    QVERIFY(again && again->held);
    QCOMPARE(again->lease.holder.pid, qint64(101));
    QCOMPARE(again->lease.acquiredAt, a->lease.acquiredAt);
    QCOMPARE(again->lease.expiresAt, now.addSecs(120));
    // Another holder is refused and told who holds it.
    auto other = leases.acquire(QStringLiteral("merge:p:main"), second, 60s, now);
    QVERIFY(other && !other->held);
    QCOMPARE(other->lease.holder.taskId, qint64(11));
    // Renew and release are holder-checked.
    QCOMPARE(leases.renew(QStringLiteral("merge:p:main"), second, 60s, now).value_or(true), false);
    QCOMPARE(leases.release(QStringLiteral("merge:p:main"), second).value_or(true), false);
    QCOMPARE(leases.renew(QStringLiteral("merge:p:main"), first, 300s, now).value_or(false), true);
    QCOMPARE((*leases.lease(QStringLiteral("merge:p:main")))->expiresAt, now.addSecs(300));
    QCOMPARE(leases.release(QStringLiteral("merge:p:main"), first).value_or(false), true);
    QVERIFY(!*leases.lease(QStringLiteral("merge:p:main")));
    // Free again: the other holder gets it.
    auto taken = leases.acquire(QStringLiteral("merge:p:main"), second, 60s, now);
    QVERIFY(taken && taken->held);
    // Leases about no task belong to a node and process.
    const LeaseHolder process{QStringLiteral("node-a"), 300, 0, 0, 0};
    QVERIFY(leases.acquire(QStringLiteral("image:push"), process, 10s, now)->held);
    QVERIFY(!leases.acquire(QStringLiteral("image:push"), LeaseHolder{QStringLiteral("node-a"), 301, 0, 0, 0}, 10s, now)->held);
    // Bad arguments are errors, not silent holds.
    QVERIFY(!leases.acquire(QString(), first, 10s, now));
    QVERIFY(!leases.acquire(QStringLiteral("x"), first, 0s, now));

    // The plugins' view (LeaseService): holds belong to a task on its node. The same task
    // evaluated on another node while the hold is live waits (a live holder within its TTL is
    // never touched); it gets the lease once it is released (or reclaimed: its node silent).
    StoreLeaseService here(*m_store, QStringLiteral("node-a"));
    StoreLeaseService there(*m_store, QStringLiteral("node-b"));
    auto hold = here.acquire(QStringLiteral("merge:p:release"), 21, 60s);
    QVERIFY(hold && hold->held);
    QCOMPARE(hold->holderNode, QStringLiteral("node-a"));
    auto redrive = there.acquire(QStringLiteral("merge:p:release"), 21, 60s); // the same task, elsewhere, meanwhile
    QVERIFY(redrive && !redrive->held);
    QCOMPARE(redrive->holderNode, QStringLiteral("node-a"));
    QCOMPARE(there.release(QStringLiteral("merge:p:release"), 21).value_or(true), false);
    auto contender = here.acquire(QStringLiteral("merge:p:release"), 22, 60s);
    QVERIFY(contender && !contender->held);
    QCOMPARE(contender->holderTask, qint64(21));
    QCOMPARE(here.release(QStringLiteral("merge:p:release"), 22).value_or(true), false);
    QCOMPARE(here.renew(QStringLiteral("merge:p:release"), 21, 60s).value_or(false), true);
    QCOMPARE(here.release(QStringLiteral("merge:p:release"), 21).value_or(false), true);
    auto freed = there.acquire(QStringLiteral("merge:p:release"), 21, 60s); // it asked first
    QVERIFY(freed && freed->held);
    QCOMPARE(freed->holderNode, QStringLiteral("node-b"));
    QCOMPARE(there.release(QStringLiteral("merge:p:release"), 21).value_or(false), true);
    QVERIFY(here.acquire(QStringLiteral("merge:p:release"), 22, 60s)->held);
    QVERIFY(!here.acquire(QStringLiteral("merge:p:release"), 0, 60s)); // a hold needs its task
}

void tst_Reaper::leaseReclaimDeadSilentExpiredButNeverLive()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    LeaseStore leases(*m_store);
    const QDateTime now = QDateTime::currentDateTimeUtc();
    // A holder process on this node that has died.
    QProcess dead;
    dead.start(QStringLiteral("sleep"), {QStringLiteral("60")});
    QVERIFY(dead.waitForStarted());
    const qint64 deadPid = dead.processId();
    const quint64 deadTicks = readProcStat(deadPid)->startTicks;
    dead.kill();
    QVERIFY(dead.waitForFinished());
    const quint64 ownTicks = readProcStat(QCoreApplication::applicationPid())->startTicks;
    QVERIFY(m_store->heartbeat(QStringLiteral("node-live"), 1, now));
    QVERIFY(m_store->heartbeat(QStringLiteral("node-silent"), 1, now.addSecs(-600)));
    const qint64 self = QCoreApplication::applicationPid();
    QVERIFY(leases.acquire(QStringLiteral("dead"), LeaseHolder{QStringLiteral("node-a"), deadPid, deadTicks, 1, 0}, 1h, now)->held);
    QVERIFY(leases.acquire(QStringLiteral("silent"), LeaseHolder{QStringLiteral("node-silent"), 5, 0, 2, 0}, 1h, now)->held);
    QVERIFY(leases.acquire(QStringLiteral("expired"), LeaseHolder{QStringLiteral("node-a"), self, ownTicks, 3, 0}, 1s, now.addSecs(-10))->held);
    QVERIFY(leases.acquire(QStringLiteral("live-here"), LeaseHolder{QStringLiteral("node-a"), self, ownTicks, 4, 0}, 1h, now)->held);
    QVERIFY(leases.acquire(QStringLiteral("live-there"), LeaseHolder{QStringLiteral("node-live"), 5, 0, 5, 0}, 1h, now)->held);
    // Our own pid with other start ticks: a reused pid, not the holder.
    QVERIFY(leases.acquire(QStringLiteral("reused"), LeaseHolder{QStringLiteral("node-a"), self, ownTicks + 1, 6, 0}, 1h, now)->held);

    Reaper reaper(e, fastReaper());
    QList<Notification> told;
    connect(&e, &Engine::notification, this, [&](const Notification &n) { told.append(n); });
    const ReaperPass pass = runTick(reaper);
    QVERIFY2(pass.ok, qPrintable(pass.errors.join(QLatin1Char(';'))));
    QHash<QString, QString> reasons;
    for (const ReclaimedLease &r : pass.reclaimed)
        reasons.insert(r.lease.resource, r.reason);
    QCOMPARE(reasons.value(QStringLiteral("dead")), QStringLiteral("holder-dead"));
    QCOMPARE(reasons.value(QStringLiteral("silent")), QStringLiteral("node-silent"));
    QCOMPARE(reasons.value(QStringLiteral("expired")), QStringLiteral("expired"));
    QCOMPARE(reasons.value(QStringLiteral("reused")), QStringLiteral("holder-dead"));
    QCOMPARE(reasons.size(), 4);
    QVERIFY(*leases.lease(QStringLiteral("live-here")));
    QVERIFY(*leases.lease(QStringLiteral("live-there")));
    QCOMPARE(told.size(), 4);
    QCOMPARE(told.first().event, QStringLiteral("lease-reclaimed"));
    // Audited and counted in the status.
    QSqlQuery audit(*m_store->connection());
    QVERIFY(audit.exec(QStringLiteral("SELECT COUNT(*) FROM audit WHERE actor = 'reaper' AND action = 'lease-reclaim'")));
    QVERIFY(audit.next());
    QCOMPARE(audit.value(0).toInt(), 4);
    QCOMPARE(reaper.status().value(QLatin1String("leasesReclaimedTotal")).toInt(), 4);
    // A holder that renewed after it was looked at keeps its lease.
    const auto seen = *leases.lease(QStringLiteral("live-here"));
    QVERIFY(leases.renew(QStringLiteral("live-here"), seen->holder, 2h, now).value_or(false));
    QCOMPARE(leases.reclaim(*seen).value_or(true), false);
    QVERIFY(*leases.lease(QStringLiteral("live-here")));
}

void tst_Reaper::tier1DeadPidAfterConsecutiveTicks()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e);
    QVERIFY(job.id > 0);
    QProcess agent;
    agent.start(QStringLiteral("sleep"), {QStringLiteral("60")});
    QVERIFY(agent.waitForStarted());
    const qint64 runId = recordAgent(e, job, agent.processId());
    agent.kill();
    QVERIFY(agent.waitForFinished());

    Reaper reaper(e, fastReaper());
    ReaperPass pass = runTick(reaper);
    QCOMPARE(pass.reaped.size(), 0); // one dead tick is not enough
    QCOMPARE((*e.jobs().job(job.id))->status, QStringLiteral("running"));
    pass = runTick(reaper);
    QCOMPARE(pass.reaped.size(), 1);
    QCOMPARE(pass.reaped.first().tier, 1);
    QCOMPARE(pass.reaped.first().outcome, QStringLiteral("requeued"));
    QCOMPARE((*e.jobs().job(job.id))->status, QStringLiteral("queued"));
    QVERIFY((*e.jobs().job(job.id))->lastError.startsWith(QLatin1String("reaped:")));
    // The agent's end is recorded with no exit code: unknown, not invented.
    QSqlQuery q(*m_store->connection());
    QVERIFY(q.exec(QStringLiteral("SELECT finished_at IS NOT NULL, exit_code IS NULL, dead_ticks FROM agent_runs WHERE id = %1").arg(runId)));
    QVERIFY(q.next());
    QVERIFY(q.value(0).toBool());
    QVERIFY(q.value(1).toBool());
    QCOMPARE(q.value(2).toInt(), 2);
    QCOMPARE(reaper.status().value(QLatin1String("reapedTotal")).toInt(), 1);
    QCOMPARE(reaper.status().value(QLatin1String("lastReaped")).toObject().value(QLatin1String("job")).toInt(), int(job.id));
}

void tst_Reaper::tier1PidlessJobWithoutMonitor()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord watched = runningJob(e);
    const JobRecord orphan = runningJob(e);
    Reaper reaper(e, fastReaper());
    reaper.setMonitor([&] { return QSet<qint64>{watched.id}; }, [](qint64, const QString &) { QFAIL("nothing to abandon"); });
    QCOMPARE(runTick(reaper).reaped.size(), 0);
    const ReaperPass pass = runTick(reaper);
    QCOMPARE(pass.reaped.size(), 1);
    QCOMPARE(pass.reaped.first().jobId, orphan.id);
    QCOMPARE((*e.jobs().job(watched.id))->status, QStringLiteral("running"));
}

void tst_Reaper::liveAgentIsNeverReaped()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e);
    const qint64 pid = startAgent();
    QVERIFY(pid > 0);
    m_agents.append(pid);
    recordAgent(e, job, pid);
    // Not watched by any monitor, running long, but alive and below the ceiling: left alone.
    Reaper reaper(e, fastReaper());
    for (int i = 0; i < 4; ++i)
        QCOMPARE(runTick(reaper).reaped.size(), 0);
    QVERIFY(alive(pid));
    QCOMPARE((*e.jobs().job(job.id))->status, QStringLiteral("running"));
}

void tst_Reaper::monitorInsideGraceIsNotReaped()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e);
    const qint64 runId = recordAgent(e, job, endedAgent(QStringLiteral("true")));
    QVERIFY(e.jobs().recordAgentEnd(runId, 0));
    ReaperSettings settings = fastReaper();
    settings.finalizeGrace = 1h;
    Reaper reaper(e, settings);
    reaper.setMonitor([&] { return QSet<qint64>{job.id}; }, [](qint64, const QString &) {});
    QCOMPARE(runTick(reaper).reaped.size(), 0);
    QCOMPARE(runTick(reaper).reaped.size(), 0);
    // The monitor finishes its work: it alone acts.
    QCOMPARE(e.jobs().complete(job.id, QStringLiteral("node-a")).value_or(false), true);
}

void tst_Reaper::recordedExitIsReadBeforeJudging_data()
{
    QTest::addColumn<QString>("engine");
    QTest::addColumn<bool>("startup");
    QTest::addColumn<QByteArray>("recorded"); // what the exit recorder left in <log>.exit; null: no file
    QTest::addColumn<QString>("outcome");
    QTest::addColumn<int>("exitCode");        // -1: unknown
    QTest::addColumn<QString>("said");        // in the reason, the job's last error and the block
    for (const QString &engine : Test::engineNames()) {
        for (const bool startup : {true, false}) {
            const QByteArray mode = startup ? "startup" : "tick";
            auto row = [&](const char *name) { return &QTest::newRow((engine.toLatin1() + ' ' + mode + ' ' + name).constData()); };
            *row("exit 0") << engine << startup << QByteArray("0\n") << QStringLiteral("advance") << 0
                           << QStringLiteral("exit code 0");
            *row("exit 3") << engine << startup << QByteArray("3\n") << QStringLiteral("failed") << 3
                           << QStringLiteral("exit code 3");
            *row("killed") << engine << startup << QByteArray("137\n") << QStringLiteral("failed") << 137
                           << QStringLiteral("signal 9 (status 137)");
            *row("nothing") << engine << startup << QByteArray() << QStringLiteral("failed") << -1
                            << QStringLiteral("nothing recorded its end");
            *row("garbage") << engine << startup << QByteArray("zero\n") << QStringLiteral("failed") << -1
                            << QStringLiteral("nothing recorded its end");
        }
    }
}

// An agent that ended while no monitor watched it (the daemon was killed, or its worker lost
// the job): the status its exit recorder wrote beside the log decides, never a guess. A
// recorded 0 completes the job and the gates move the task on once; a recorded failure fails
// with its real code; only nothing (or garbage) recorded is unknown. max_attempts 1, so
// nothing can hide behind a retry.
void tst_Reaper::recordedExitIsReadBeforeJudging()
{
    QFETCH(QString, engine);
    QFETCH(bool, startup);
    QFETCH(QByteArray, recorded);
    QFETCH(QString, outcome);
    QFETCH(int, exitCode);
    QFETCH(QString, said);
    if (!openStore(engine))
        return;
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    QList<Notification> told;
    connect(&e, &Engine::notification, this, [&](const Notification &n) { told.append(n); });
    const JobRecord job = runningJob(e, QStringLiteral("a"), 1);
    QVERIFY(job.id > 0);
    const QString log = m_dir->filePath(QStringLiteral("agent-r-job%1-attempt1.log").arg(job.id));
    const qint64 runId = recordAgent(e, job, endedAgent(QStringLiteral("true")), log);
    QVERIFY(runId > 0);
    if (!recorded.isNull()) {
        QFile exit(exitStatusFile(log));
        QVERIFY(exit.open(QIODevice::WriteOnly));
        QVERIFY(exit.write(recorded) == recorded.size());
    }

    Reaper reaper(e, fastReaper());
    ReaperPass pass;
    if (startup) {
        pass = reaper.recoverAtStartup();
    } else {
        // No monitor watches the job: tier 1, after dead_ticks consecutive ticks.
        QCOMPARE(runTick(reaper).reaped.size(), 0);
        pass = runTick(reaper);
    }
    QVERIFY2(pass.ok, qPrintable(pass.errors.join(QLatin1Char(';'))));
    QCOMPARE(pass.reaped.size(), 1);
    const ReapedJob &reaped = pass.reaped.first();
    QCOMPARE(reaped.tier, startup ? 0 : 1);
    QCOMPARE(reaped.outcome, outcome);
    QCOMPARE(reaped.exitCode.value_or(-1), exitCode);
    QVERIFY2(reaped.reason.contains(said), qPrintable(reaped.reason));
    // The store keeps the code the recorder wrote, or none.
    QSqlQuery q(*m_store->connection());
    QVERIFY(q.exec(QStringLiteral("SELECT finished_at IS NOT NULL, exit_code FROM agent_runs WHERE id = %1").arg(runId)));
    QVERIFY(q.next());
    QVERIFY(q.value(0).toBool());
    QCOMPARE(q.value(1).isNull() ? -1 : q.value(1).toInt(), exitCode);

    const JobRecord after = **e.jobs().job(job.id);
    if (outcome == QLatin1String("advance")) {
        QCOMPARE(after.status, QStringLiteral("done"));
        // Through the one advance path, once: the task is in b with b's job queued.
        QTRY_COMPARE((*e.tasks().task(job.taskId))->stage, QStringLiteral("b"));
        QTRY_VERIFY(e.runsInFlight() == 0);
        const auto jobs = e.jobs().jobsForTask(job.taskId);
        QCOMPARE(jobs->size(), 2);
        QCOMPARE(jobs->last().stage, QStringLiteral("b"));
        QCOMPARE(jobs->last().status, QStringLiteral("queued"));
        QCOMPARE((*e.tasks().task(job.taskId))->status, QStringLiteral("active"));
    } else {
        QCOMPARE(after.status, QStringLiteral("failed"));
        QVERIFY2(after.lastError.contains(said), qPrintable(after.lastError));
        const TaskRecord task = **e.tasks().task(job.taskId);
        QCOMPARE(task.status, QStringLiteral("blocked"));
        QCOMPARE(task.stage, QStringLiteral("a"));
        QVERIFY2(task.blockedReason.contains(said), qPrintable(task.blockedReason));
    }
    // A second look finds nothing left to settle.
    QCOMPARE(runTick(reaper).reaped.size(), 0);
    QTRY_VERIFY(e.runsInFlight() == 0);
    QStringList events;
    for (const Notification &n : std::as_const(told))
        events << n.event;
    QVERIFY2(events.contains(QStringLiteral("reaped")), qPrintable(events.join(QLatin1Char(','))));
    QCOMPARE(events.contains(QStringLiteral("blocked")), outcome == QLatin1String("failed"));
}

// A living agent the startup recovery cannot adopt is stopped; whatever its recorder writes
// after that stop (a TERM handler exiting 0 included) is recorded but never completes the job.
void tst_Reaper::agentStoppedAtStartupIsNeverCompleted()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e, QStringLiteral("a"), 1);
    const QString log = m_dir->filePath(QStringLiteral("agent-r-job%1-attempt1.log").arg(job.id));
    // An agent that answers SIGTERM by writing exit 0 as its status and leaving; it says when
    // its trap is set.
    qint64 pid = 0;
    QVERIFY(QProcess::startDetached(QStringLiteral("setsid"),
                                    {QStringLiteral("sh"), QStringLiteral("-c"),
                                     QStringLiteral("trap 'echo 0 > \"$0\"; exit 0' TERM; : > \"$0.ready\"; while :; do sleep 0.1; done"),
                                     exitStatusFile(log)},
                                    QString(), &pid));
    m_agents.append(pid);
    QTRY_VERIFY(QFile::exists(exitStatusFile(log) + QStringLiteral(".ready")));
    QTRY_VERIFY(readProcStat(pid) && readProcStat(pid)->processGroup == pid);
    recordAgent(e, job, pid, log);
    Reaper reaper(e, fastReaper());
    reaper.setAdopter([](const JobQueue::RunningJob &) { return false; });
    const ReaperPass pass = reaper.recoverAtStartup();
    QCOMPARE(pass.reaped.size(), 1);
    QVERIFY(pass.reaped.first().terminated);
    QCOMPARE(pass.reaped.first().outcome, QStringLiteral("failed"));
    QVERIFY(!alive(pid));
    QCOMPARE(recordedExitStatus(exitStatusFile(log)).value_or(-1), 0); // it did write 0, after the stop
    QCOMPARE((*e.tasks().task(job.taskId))->status, QStringLiteral("blocked"));
}

// The daemon died between starting an agent and recording it: the job's artifacts tell.
// An attempt's log with a recorded 0 completes the job; a log its living agent still writes
// makes recovery record that agent and adopt it — a reader of the log is not taken for it.
void tst_Reaper::unrecordedAgentIsFoundThroughItsLog()
{
    QFETCH(QString, engine);
    if (!openStore(engine))
        return;
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    auto logOf = [&](const JobRecord &job) {
        const QString artifacts = e.workspace().artifactsPath(job.project, job.taskId);
        QDir().mkpath(artifacts);
        return QDir(artifacts).filePath(QStringLiteral("agent-r-job%1-attempt%2.log").arg(job.id).arg(job.attempts));
    };
    // 1. It ran and ended with 0; nothing in the store knows of it.
    const JobRecord ended = runningJob(e, QStringLiteral("a"), 1);
    const QString endedLog = logOf(ended);
    QFile(endedLog).open(QIODevice::WriteOnly);
    QFile status(exitStatusFile(endedLog));
    QVERIFY(status.open(QIODevice::WriteOnly) && status.write("0\n") == 2);
    status.close();
    // 2. It still runs: its recorder leads its group and writes the log; someone reads it too.
    const JobRecord running = runningJob(e, QStringLiteral("a"), 1);
    const QString runningLog = logOf(running);
    qint64 writer = 0;
    qint64 reader = 0;
    QVERIFY(QProcess::startDetached(QStringLiteral("setsid"),
                                    {QStringLiteral("sh"), QStringLiteral("-c"),
                                     QStringLiteral("exec >> \"$0\" 2>&1; : > \"$0.ready\"; while :; do sleep 0.1; done"), runningLog},
                                    QString(), &writer));
    m_agents.append(writer);
    QTRY_VERIFY(QFile::exists(runningLog + QStringLiteral(".ready")));
    QVERIFY(QProcess::startDetached(QStringLiteral("setsid"),
                                    {QStringLiteral("sh"), QStringLiteral("-c"),
                                     QStringLiteral("exec 3< \"$0\"; : > \"$0.reading\"; while :; do sleep 0.1; done"), runningLog},
                                    QString(), &reader));
    m_agents.append(reader);
    QTRY_VERIFY(QFile::exists(runningLog + QStringLiteral(".reading")));
    QTRY_VERIFY(readProcStat(writer) && readProcStat(writer)->processGroup == writer);
    QCOMPARE(processesWritingTo(runningLog).contains(reader), false);

    Reaper recovery(e, fastReaper());
    QList<JobQueue::RunningJob> offered;
    recovery.setAdopter([&](const JobQueue::RunningJob &r) {
        offered.append(r);
        return true;
    });
    const ReaperPass pass = recovery.recoverAtStartup();
    QVERIFY2(pass.ok, qPrintable(pass.errors.join(QLatin1Char(';'))));
    QCOMPARE(pass.reaped.size(), 1);
    QCOMPARE(pass.reaped.first().jobId, ended.id);
    QCOMPARE(pass.reaped.first().outcome, QStringLiteral("advance"));
    QCOMPARE(pass.reaped.first().exitCode.value_or(-1), 0);
    QVERIFY2(pass.reaped.first().reason.contains(QLatin1String("never recorded, ended with exit code 0")), qPrintable(pass.reaped.first().reason));
    QTRY_COMPARE((*e.tasks().task(ended.taskId))->stage, QStringLiteral("b"));

    QCOMPARE(pass.adopted, QList<qint64>{running.id});
    QCOMPARE(offered.size(), 1);
    QVERIFY(offered.first().agent);
    QCOMPARE(offered.first().agent->pid, writer);
    QCOMPARE(offered.first().agent->startTicks, readProcStat(writer)->startTicks);
    QCOMPARE(offered.first().agent->logPath, runningLog);
    QVERIFY(offered.first().agent->id > 0);
    QCOMPARE((*e.jobs().job(running.id))->status, QStringLiteral("running"));
    QVERIFY(alive(writer));
    // Recorded for good: the next look sees an ordinary agent of this job.
    auto unfinished = e.jobs().unfinishedAgentRuns(QStringLiteral("node-a"));
    QVERIFY(unfinished);
    QCOMPARE(unfinished->size(), 1);
    QCOMPARE(unfinished->first().jobId, running.id);
    QSqlQuery audit(*m_store->connection());
    QVERIFY(audit.exec(QStringLiteral("SELECT COUNT(*) FROM audit WHERE action = 'record-unrecorded-agent'")) && audit.next());
    QCOMPARE(audit.value(0).toInt(), 1);
    audit.finish();
    QTRY_VERIFY(e.runsInFlight() == 0);
}

void tst_Reaper::killedDaemonKeepsWhatItsAgentRecorded_data()
{
    QTest::addColumn<QString>("engine");
    QTest::addColumn<int>("agentExit");
    for (const QString &engine : Test::engineNames()) {
        QTest::newRow((engine.toLatin1() + " exit 0").constData()) << engine << 0;
        QTest::newRow((engine.toLatin1() + " exit 3").constData()) << engine << 3;
    }
}

// Issue 23's reproduction with the real executable: `sluice serve` is killed with SIGKILL while
// the development agent runs, the agent finishes on its own (its exit recorder writes the
// status beside its log), and `sluice serve --exit-when-idle` starts again with max_attempts 1.
// A recorded 0 completes the job and the task moves on, with no second agent run; a recorded 3
// fails the job with that code and blocks the task saying so.
void tst_Reaper::killedDaemonKeepsWhatItsAgentRecorded()
{
    QFETCH(QString, engine);
    QFETCH(int, agentExit);
    StoreSettings settings;
    if (!Test::freshStore(engine, m_dir->path(), &settings))
        return;
    Test::TemporaryConfig config;
    config.writeHostFile("node: recovery-node\nstate_dir: state\nworker: {concurrency: 1, poll_interval: 200ms}\nhttp: {port: 0}\n"
                         "reaper: {interval: 1s}\n" + Test::hostStoreSection(settings));
    const QString repo = config.path() + QStringLiteral("/work/p.git");
    QVERIFY(Test::seededBareRepository(repo));
    const QString ledger = config.path() + QStringLiteral("/ledger");
    const QString go = config.path() + QStringLiteral("/go");
    // The agent: says it started, waits for the test's go, does the demo developer's work, exits.
    const QString agent = config.writeFile(QStringLiteral("agent.sh"),
        "#!/bin/sh\necho \"start $SLUICE_LOG\" >> " + ledger.toUtf8() + "\n"
        "while [ ! -e " + go.toUtf8() + " ]; do sleep 0.05; done\n"
        "/bin/sh " SLUICE_SOURCE_DIR "/resources/examples/quickstart/demo-agent.sh \"$@\" || exit $?\n"
        "exit " + QByteArray::number(agentExit) + "\n");
    config.writeProject(QStringLiteral("p"),
        "id: p\nrepository: {path: " + repo.toUtf8() + ", target_branch: main}\nagent_launcher: launcher\n"
        "stages:\n  - name: development\n    run: developer\n  - name: done\n"
        "jobs: {max_attempts: 1, retry_backoff: 1s}\n"
        "instances:\n"
        "  launcher: {plugin: process, settings: {command: [/bin/sh, " + agent.toUtf8() + ", \"{role}\", \"{task_file}\"]}}\n"
        "  developer: {plugin: agent, settings: {role: developer, timeout: 2m}}\n");
    auto sluice = [&](const QStringList &arguments, QByteArray *output = nullptr) {
        QProcess p;
        p.setProcessChannelMode(QProcess::MergedChannels);
        p.start(QStringLiteral(SLUICE_EXECUTABLE), arguments);
        const bool finished = p.waitForFinished(120000);
        const QByteArray out = p.readAll();
        if (output)
            *output = out;
        if (!finished || p.exitStatus() != QProcess::NormalExit || p.exitCode() != 0)
            qWarning("sluice %s: %s", qPrintable(arguments.join(QLatin1Char(' '))), out.constData());
        return finished && p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    };
    QCOMPARE(sluice({QStringLiteral("submit"), QStringLiteral("--config"), config.path(), QStringLiteral("--project"), QStringLiteral("p"),
                     QStringLiteral("--title"), QStringLiteral("Say hello")}), 0);
    auto opened = Store::open(settings);
    QVERIFY2(opened, qPrintable(opened ? QString() : opened.error().toString()));
    m_store = std::move(*opened);
    JobQueue jobs(*m_store);
    TaskStore tasks(*m_store);

    Test::DaemonProcess daemon{QStringLiteral(SLUICE_EXECUTABLE)};
    QVERIFY(daemon.serve(config.path()));
    std::optional<JobQueue::AgentRunRecord> agentRun;
    JobRecord job;
    QTRY_VERIFY_WITH_TIMEOUT(([&] {
                                 auto running = jobs.runningOn(QStringLiteral("recovery-node"));
                                 if (!running || running->isEmpty() || !running->first().agent)
                                     return false;
                                 job = running->first().job;
                                 agentRun = running->first().agent;
                                 return QFile::exists(ledger);
                             }()),
                             30000);
    QCOMPARE(job.stage, QStringLiteral("development"));
    daemon.kill(); // SIGKILL: nothing of the daemon finishes its work
    QVERIFY(daemon.waitForFinished(10000));
    QVERIFY(QFile(go).open(QIODevice::WriteOnly));
    // The agent ends on its own, watched by nobody; only its exit recorder sees it.
    QTRY_VERIFY_WITH_TIMEOUT(recordedExitStatus(exitStatusFile(agentRun->logPath)).has_value(), 30000);
    QCOMPARE(*recordedExitStatus(exitStatusFile(agentRun->logPath)), agentExit);
    QTRY_VERIFY(!isSameLiveProcess(agentRun->pid, agentRun->startTicks)); // its recorder exits right after writing

    QByteArray log;
    QCOMPARE(sluice({QStringLiteral("serve"), QStringLiteral("--config"), config.path(), QStringLiteral("--exit-when-idle")}, &log), 0);
    const JobRecord after = **jobs.job(job.id);
    const TaskRecord task = **tasks.task(job.taskId);
    QSqlQuery q(*m_store->connection());
    QVERIFY(q.exec(QStringLiteral("SELECT exit_code FROM agent_runs WHERE job_id = %1").arg(job.id)));
    QVERIFY(q.next());
    QCOMPARE(q.value(0).isNull() ? -1 : q.value(0).toInt(), agentExit);
    QVERIFY2(!q.next(), "the job's agent ran a second time");
    QFile ledgerFile(ledger);
    QVERIFY(ledgerFile.open(QIODevice::ReadOnly));
    QCOMPARE(ledgerFile.readAll().count("start "), 1);
    if (agentExit == 0) {
        QVERIFY2(log.contains(QByteArray("recovered job ") + QByteArray::number(job.id)) && log.contains("ended with exit code 0")
                     && log.contains("-> advance"),
                 log.constData());
        QCOMPARE(after.status, QStringLiteral("done"));
        QCOMPARE(task.status, QStringLiteral("done"));
        QCOMPARE(task.stage, QStringLiteral("done"));
    } else {
        QCOMPARE(after.status, QStringLiteral("failed"));
        QVERIFY2(after.lastError.contains(QLatin1String("exit code 3")), qPrintable(after.lastError));
        QCOMPARE(task.status, QStringLiteral("blocked"));
        QVERIFY2(task.blockedReason.contains(QLatin1String("exit code 3")), qPrintable(task.blockedReason));
    }
}

void tst_Reaper::tier2ExitZeroGoesToTheGatesOnce()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e);
    const qint64 runId = recordAgent(e, job, endedAgent(QStringLiteral("true")));
    QVERIFY(e.jobs().recordAgentEnd(runId, 0));
    Reaper reaper(e, fastReaper());
    QList<qint64> abandoned;
    reaper.setMonitor([&] { return QSet<qint64>{job.id}; }, [&](qint64 id, const QString &) { abandoned.append(id); });
    QTest::qWait(400); // past the finalisation grace
    QSignalSpy changed(&e, &Engine::taskChanged);
    const ReaperPass pass = runTick(reaper);
    QCOMPARE(pass.reaped.size(), 1);
    QCOMPARE(pass.reaped.first().tier, 2);
    QCOMPARE(pass.reaped.first().outcome, QStringLiteral("advance"));
    QCOMPARE(abandoned, QList<qint64>{job.id}); // the stuck monitor let go first
    QTRY_COMPARE((*e.tasks().task(job.taskId))->stage, QStringLiteral("b"));
    QCOMPARE(changed.size(), 1);
    // The late monitor finds the job settled; a second tick finds nothing to do.
    QCOMPARE(e.jobs().complete(job.id, QStringLiteral("node-a")).value_or(true), false);
    QCOMPARE(runTick(reaper).reaped.size(), 0);
    auto jobs = e.jobs().jobsForTask(job.taskId);
    QCOMPARE(jobs->size(), 2); // a's job done, b's job queued: advanced exactly once
}

void tst_Reaper::tier2NonZeroRequeuesThenFailsAndBlocks()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    QList<Notification> told;
    connect(&e, &Engine::notification, this, [&](const Notification &n) { told.append(n); });
    const JobRecord job = runningJob(e, QStringLiteral("a"), 2);
    Reaper reaper(e, fastReaper());
    for (int attempt = 1; attempt <= 2; ++attempt) {
        auto current = e.jobs().job(job.id);
        if (attempt == 2) {
            // Requeued with a back-off: claim it again once available.
            QVERIFY(QTest::qWaitFor([&] {
                auto c = e.jobs().claimNext(QStringLiteral("node-a"), ConcurrencyLimits{}, QDateTime::currentDateTimeUtc());
                return c && *c;
            }, 5000));
            current = e.jobs().job(job.id);
        }
        const qint64 runId = recordAgent(e, **current, endedAgent(QStringLiteral("false")));
        QVERIFY(e.jobs().recordAgentEnd(runId, 1));
        QTest::qWait(400);
        const ReaperPass pass = runTick(reaper);
        QCOMPARE(pass.reaped.size(), 1);
        QCOMPARE(pass.reaped.first().outcome, attempt == 1 ? QStringLiteral("requeued") : QStringLiteral("failed"));
        QCOMPARE(*pass.reaped.first().exitCode, 1);
    }
    QCOMPARE((*e.tasks().task(job.taskId))->status, QStringLiteral("blocked"));
    // Two reaps, and the block the second one caused (published by the engine).
    QStringList events;
    for (const Notification &n : std::as_const(told))
        events << n.event;
    QCOMPARE(events, QStringList({QStringLiteral("reaped"), QStringLiteral("blocked"), QStringLiteral("reaped")}));
}

void tst_Reaper::tier3StopsTheLivingAgentFirst()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e);
    const qint64 pid = startAgent();
    QVERIFY(pid > 0);
    m_agents.append(pid);
    recordAgent(e, job, pid);
    ReaperSettings settings = fastReaper();
    settings.ceiling = 300ms;
    Reaper reaper(e, settings);
    QList<qint64> abandoned;
    reaper.setMonitor([&] { return QSet<qint64>{job.id}; }, [&](qint64 id, const QString &) { abandoned.append(id); });
    QTest::qWait(500);
    const ReaperPass pass = runTick(reaper);
    QCOMPARE(pass.reaped.size(), 1);
    QCOMPARE(pass.reaped.first().tier, 3);
    QVERIFY(pass.reaped.first().terminated);
    QCOMPARE(pass.reaped.first().outcome, QStringLiteral("requeued"));
    QVERIFY(!alive(pid)); // stopped before the job went back
    QCOMPARE(abandoned, QList<qint64>{job.id});
}

void tst_Reaper::pidReuseIsNotALiveAgent()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e);
    // A pid that runs (this test) but with other start ticks: the recorded agent is gone.
    JobQueue::AgentRunRecord run;
    run.jobId = job.id;
    run.attempt = job.attempts;
    run.node = e.node();
    run.pid = QCoreApplication::applicationPid();
    run.startTicks = readProcStat(run.pid)->startTicks + 7;
    QVERIFY(e.jobs().recordAgentStart(run));
    Reaper reaper(e, fastReaper());
    QCOMPARE(runTick(reaper).reaped.size(), 0);
    const ReaperPass pass = runTick(reaper);
    QCOMPARE(pass.reaped.size(), 1);
    QVERIFY(!pass.reaped.first().terminated); // nothing was signalled: the pid is someone else's
}

void tst_Reaper::startupRecoveryMonitorAndReaperRace()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    // Each round: a job whose agent exited 0, settled at once by three parties — a late
    // monitor (another thread), a startup recovery and a reaper tick. Exactly one acts.
    for (int round = 0; round < 15; ++round) {
        const JobRecord job = runningJob(e);
        const qint64 runId = recordAgent(e, job, endedAgent(QStringLiteral("true")));
        QVERIFY(e.jobs().recordAgentEnd(runId, 0));
        ReaperSettings settings = fastReaper();
        settings.finalizeGrace = 1ms;
        Reaper recovery(e, settings);
        Reaper reaper(e, settings);
        std::atomic<bool> monitorWon = false;
        std::unique_ptr<QThread> monitor(QThread::create([&] {
            JobQueue queue(*m_store);
            monitorWon = queue.complete(job.id, QStringLiteral("node-a")).value_or(false);
        }));
        QSignalSpy tickDone(&reaper, &Reaper::passFinished);
        monitor->start();
        reaper.tick();
        const ReaperPass recovered = recovery.recoverAtStartup();
        QVERIFY(monitor->wait(10000));
        QVERIFY(tickDone.count() == 1 || tickDone.wait(10000));
        const ReaperPass ticked = tickDone.first().first().value<ReaperPass>();
        const int acted = int(monitorWon) + int(recovered.reaped.size()) + int(ticked.reaped.size());
        QVERIFY2(acted == 1, qPrintable(QStringLiteral("round %1: monitor %2, recovery %3, reaper %4")
                                            .arg(round).arg(bool(monitorWon)).arg(recovered.reaped.size()).arg(ticked.reaped.size())));
        QTRY_VERIFY(e.runsInFlight() == 0);
    }
}

void tst_Reaper::switchesOff()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord job = runningJob(e); // no agent, no monitor: tier 1 material
    ReaperSettings off = fastReaper();
    off.enabled = false;
    Reaper reaper(e, off);
    QSignalSpy passes(&reaper, &Reaper::passFinished);
    reaper.start();
    QTest::qWait(600);
    QCOMPARE(passes.count(), 0);
    QCOMPARE((*e.jobs().job(job.id))->status, QStringLiteral("running"));
    QCOMPARE(reaper.status().value(QLatin1String("enabled")).toBool(), false);

    // A task left behind by an edge: the reconciler turned off leaves it.
    auto task = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("x"), {}, QStringLiteral("x"), QStringLiteral("b"), {}});
    ReconcilerSettings quiet;
    quiet.enabled = false;
    quiet.interval = 100ms;
    quiet.settle = 0ms;
    Reconciler reconciler(e, quiet);
    QSignalSpy reconciled(&reconciler, &Reconciler::passFinished);
    reconciler.start();
    QTest::qWait(500);
    QCOMPARE(reconciled.count(), 0);
    QCOMPARE(e.jobs().jobsForTask(*task)->size(), 0);
    // Turned on, the same state is acted on: the switch is what kept them still.
    ReaperSettings on = fastReaper();
    Reaper working(e, on);
    working.start();
    QTRY_COMPARE_WITH_TIMEOUT((*e.jobs().job(job.id))->status, QStringLiteral("queued"), 5000);
}

void tst_Reaper::reconcilerRedrivesWhatAnEdgeLeftBehind()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    // 1. The job finished but the advance after it never happened (a crash in between).
    const JobRecord finished = runningJob(e);
    QVERIFY(e.jobs().complete(finished.id, QStringLiteral("node-a")).value_or(false));
    // 2. The task moved into stage b but its job was never enqueued.
    auto entered = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("e"), {}, QStringLiteral("e"), QStringLiteral("b"), {}});
    QVERIFY(entered);
    // 3. The job failed for good and the task was not blocked.
    const JobRecord failing = runningJob(e, QStringLiteral("a"), 1);
    QCOMPARE(e.jobs().fail(failing.id, QStringLiteral("node-a"), QStringLiteral("boom"), 0ms, QDateTime::currentDateTimeUtc()).value_or(JobQueue::FailOutcome::Lost),
             JobQueue::FailOutcome::Failed);

    ReconcilerSettings settings;
    settings.settle = 0ms;
    Reconciler reconciler(e, settings);
    QSignalSpy spy(&reconciler, &Reconciler::passFinished);
    reconciler.tick();
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    const ReconcilerPass pass = spy.first().first().value<ReconcilerPass>();
    QVERIFY2(pass.ok, qPrintable(pass.errors.join(QLatin1Char(';'))));
    QCOMPARE(pass.advanced, 1);
    QCOMPARE(pass.entered, 1);
    QCOMPARE(pass.blocked, 1);
    QTRY_COMPARE((*e.tasks().task(finished.taskId))->stage, QStringLiteral("b"));
    QCOMPARE((*e.tasks().task(failing.taskId))->status, QStringLiteral("blocked"));
    auto jobs = e.jobs().jobsForTask(*entered);
    QCOMPARE(jobs->size(), 1);
    QCOMPARE(jobs->first().stage, QStringLiteral("b"));
    // Level-triggered, and idempotent: the next pass finds nothing left to do.
    QTRY_VERIFY(e.runsInFlight() == 0);
    spy.clear();
    reconciler.tick();
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    const ReconcilerPass second = spy.first().first().value<ReconcilerPass>();
    QCOMPARE(second.advanced + second.entered + second.blocked, 0);
    QCOMPARE(reconciler.status().value(QLatin1String("actedTotal")).toInt(), 3);
}

void tst_Reaper::reconcilerLeavesWaitingBusyAndUnsettledTasksAlone()
{
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    // Waiting for people in an approval-like stage, its job done and the request made: never
    // moved from here.
    const JobRecord waiting = runningJob(e, QStringLiteral("wait"));
    QVERIFY(e.jobs().complete(waiting.id, QStringLiteral("node-a")).value_or(false));
    QVERIFY(e.recordApprovalRequest(waiting, QStringLiteral("waiting for approve")).has_value());
    // Busy: a running job.
    const JobRecord busy = runningJob(e, QStringLiteral("a"));
    Q_UNUSED(busy)
    ReconcilerSettings settings;
    settings.settle = 0ms;
    Reconciler reconciler(e, settings);
    QSignalSpy spy(&reconciler, &Reconciler::passFinished);
    reconciler.tick();
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    ReconcilerPass pass = spy.first().first().value<ReconcilerPass>();
    QCOMPARE(pass.advanced + pass.entered + pass.blocked, 0);
    QCOMPARE(pass.skipped, 2);
    QCOMPARE((*e.tasks().task(waiting.taskId))->stage, QStringLiteral("wait"));

    // Not settled yet: a task that just changed is left to whoever is moving it.
    auto fresh = e.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("f"), {}, QStringLiteral("f"), QStringLiteral("b"), {}});
    QVERIFY(fresh);
    ReconcilerSettings patient;
    patient.settle = 1h;
    Reconciler later(e, patient);
    QSignalSpy laterSpy(&later, &Reconciler::passFinished);
    later.tick();
    QVERIFY(laterSpy.count() == 1 || laterSpy.wait(10000));
    pass = laterSpy.first().first().value<ReconcilerPass>();
    QCOMPARE(pass.entered, 0);
    QCOMPARE(e.jobs().jobsForTask(*fresh)->size(), 0);
}

void tst_Reaper::reconcilerAsksAgainWhenTheRequestWasLost()
{
    // The stage's job finished waiting, but the process died before the request for people
    // was recorded: no signal would ever be taken. The reconciler runs the stage again (a new
    // job for the same visit), whose request is then recorded; nothing moves the task.
    QVERIFY(openStore());
    Engine e(*m_store, QStringLiteral("node-a"), m_dir->path());
    QVERIFY(loadProject(e));
    const JobRecord lost = runningJob(e, QStringLiteral("wait"));
    QVERIFY(e.jobs().complete(lost.id, QStringLiteral("node-a")).value_or(false));
    const auto task = e.tasks().task(lost.taskId);
    QVERIFY(task && *task);
    QCOMPARE(e.approvalRequested(**task, QStringLiteral("wait")).value_or(true), false);
    ReconcilerSettings settings;
    settings.settle = 0ms;
    Reconciler reconciler(e, settings);
    QSignalSpy spy(&reconciler, &Reconciler::passFinished);
    reconciler.tick();
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    const ReconcilerPass pass = spy.first().first().value<ReconcilerPass>();
    QVERIFY2(pass.ok, qPrintable(pass.errors.join(QLatin1String("; "))));
    QCOMPARE(pass.entered, 1);
    QCOMPARE(pass.advanced, 0);
    const auto jobs = e.jobs().jobsForTask(lost.taskId);
    QVERIFY(jobs.has_value());
    QCOMPARE(jobs->size(), 2);
    QCOMPARE(jobs->last().stage, QStringLiteral("wait"));
    QCOMPARE(jobs->last().status, QStringLiteral("queued"));
    QCOMPARE((*e.tasks().task(lost.taskId))->stage, QStringLiteral("wait"));
    // Once asked, the stage is left alone again.
    QSqlQuery done((*m_store->connection()));
    QVERIFY(done.exec(QStringLiteral("UPDATE jobs SET status = 'done', finished_at = 1 WHERE id = %1").arg(jobs->last().id)));
    JobRecord again = jobs->last();
    QVERIFY(e.recordApprovalRequest(again, QStringLiteral("waiting for approve")).has_value());
    Reconciler second(e, settings);
    QSignalSpy secondSpy(&second, &Reconciler::passFinished);
    second.tick();
    QVERIFY(secondSpy.count() == 1 || secondSpy.wait(10000));
    QCOMPARE(secondSpy.first().first().value<ReconcilerPass>().entered, 0);
    QCOMPARE(e.jobs().jobsForTask(lost.taskId)->size(), 2);
}

void tst_Reaper::ceilingBelowStageTimeoutRefusesTheProject()
{
    // Through the host: a project whose stage timeout does not fit under the ceiling is
    // refused with the file, line and key; the host keeps running the others.
    const QString config = m_dir->filePath(QStringLiteral("etc"));
    QDir().mkpath(config + QStringLiteral("/projects"));
    auto write = [](const QString &path, const QByteArray &content) {
        QFile f(path);
        return f.open(QIODevice::WriteOnly) && f.write(content) == content.size();
    };
    QVERIFY(write(config + QStringLiteral("/sluice.yaml"),
                  "state_dir: " + m_dir->filePath(QStringLiteral("state")).toUtf8() + "\nplugin_dirs: [" + m_plugins.path().toUtf8()
                      + "]\nservice_user: ''\nreaper: {ceiling: 2h, finalize_grace: 1m}\n"));
    QByteArray tooLong = Project;
    tooLong.replace("jobs: {", "timeouts:\n  stage: 2h\njobs: {");
    QVERIFY(write(config + QStringLiteral("/projects/p.yaml"), tooLong));
    QByteArray fits = Project;
    fits.replace("id: p", "id: q");
    fits.replace("jobs: {", "timeouts: {stage: 1h}\njobs: {");
    QVERIFY(write(config + QStringLiteral("/projects/q.yaml"), fits));
    Diagnostics diagnostics;
    const HostConfig host = HostConfig::load(config, diagnostics);
    QVERIFY(diagnostics.isEmpty());
    QCOMPARE(host.reaper.ceiling, std::chrono::milliseconds(2h));
    auto runtime = HostRuntime::open(config, diagnostics);
    QVERIFY2(runtime, qPrintable(runtime ? QString() : runtime.error().toString()));
    const Diagnostics problems = (*runtime)->loadProjects();
    for (const Diagnostic &d : problems)
        qWarning().noquote() << d.toString();
    QCOMPARE(problems.size(), 1);
    QCOMPARE(problems.first().key, QStringLiteral("timeouts.stage"));
    QCOMPARE(problems.first().line, 4);
    QVERIFY(problems.first().file.endsWith(QLatin1String("p.yaml")));
    QVERIFY2(problems.first().message.contains(QLatin1String("reaper.ceiling")), qPrintable(problems.first().message));
    QCOMPARE((*runtime)->engine().projectIds(), QStringList{QStringLiteral("q")});
}

void tst_Reaper::retryBackoffDoublesWithinItsCaps()
{
    ProjectRuntime runtime;
    runtime.config.jobRetryBackoffMs = 1000;
    QCOMPARE(retryBackoff(&runtime, 1), 1000ms);
    QCOMPARE(retryBackoff(&runtime, 2), 2000ms);
    QCOMPARE(retryBackoff(&runtime, 7), 64000ms);
    QCOMPARE(retryBackoff(&runtime, 20), 64000ms); // the factor stops at 64
    runtime.config.jobRetryBackoffMs = 30000;
    QCOMPARE(retryBackoff(&runtime, 3), 120000ms);
    QCOMPARE(retryBackoff(&runtime, 12), 15min); // and the wait at 15 minutes
    runtime.config.jobRetryBackoffMs = 3600000;
    QCOMPARE(retryBackoff(&runtime, 5), 1h); // unless the base itself is longer
    QCOMPARE(retryBackoff(nullptr, 1), 30s);
}

QTEST_GUILESS_MAIN(tst_Reaper)
#include "tst_reaper.moc"
