// SPDX-License-Identifier: Apache-2.0
//
// JobQueue on both engines: a real SQLite file in a temporary directory, and a real
// PostgreSQL server started by the CTest fixture "postgres" (tests/postgres.cmake), one fresh
// database per test function. The claim storm runs many threads over two Store objects
// (two nodes) on the same database.
//
// Without $SLUICE_TEST_PG_CONNINFO the PostgreSQL rows fail; SLUICE_TEST_NO_PG=1 turns
// that into a skip, for a deliberate SQLite-only run.

#include "storefixture.h"
#include "store/jobqueue.h"
#include "store/store.h"
#include "store/taskstore.h"

#include <QDeadlineTimer>
#include <QFile>
#include <QHash>
#include <QJsonArray>
#include <QSet>
#include <QSqlError>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QTemporaryDir>
#include <QtTest>

#include <atomic>
#include <barrier>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace Sluice;
using Sluice::Test::errorText;
using Sluice::Test::select;
using namespace std::chrono_literals;

namespace {

NewJob newJob(qint64 taskId, const QString &project, const QString &stage = QStringLiteral("development"))
{
    NewJob job;
    job.taskId = taskId;
    job.project = project;
    job.stage = stage;
    return job;
}

QDateTime at(qint64 msecs)
{
    return QDateTime::fromMSecsSinceEpoch(msecs, Qt::UTC);
}

// Limits loose enough not to matter.
ConcurrencyLimits unlimited()
{
    ConcurrencyLimits limits;
    limits.global = 1000;
    limits.perProjectDefault = 1000;
    return limits;
}

} // namespace

// Claims with @p limits at @p now and checks a job came back; declares @p var.
#define CLAIM(var, queue, node, limits, now)                                                                   \
    auto var##Result = (queue).claimNext(node, limits, now);                                                   \
    VERIFY_OK(var##Result);                                                                                    \
    QVERIFY2(var##Result->has_value(), "nothing was claimable");                                              \
    const JobRecord var = **var##Result

class tst_JobQueue : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void enqueueAndRead_data() { Test::addEngineRows(); }
    void enqueueAndRead();
    void enqueueIsIdempotentWhileOpen_data() { Test::addEngineRows(); }
    void enqueueIsIdempotentWhileOpen();
    void enqueueRefusesIncompleteJobs_data() { Test::addEngineRows(); }
    void enqueueRefusesIncompleteJobs();
    void claimOrderIsAvailableAtThenId_data() { Test::addEngineRows(); }
    void claimOrderIsAvailableAtThenId();
    void futureJobsAreNotClaimable_data() { Test::addEngineRows(); }
    void futureJobsAreNotClaimable();
    void attemptsCountAtClaimAndBackOff_data() { Test::addEngineRows(); }
    void attemptsCountAtClaimAndBackOff();
    void onlyTheClaimingNodeFinalises_data() { Test::addEngineRows(); }
    void onlyTheClaimingNodeFinalises();
    void globalAndProjectLimits_data() { Test::addEngineRows(); }
    void globalAndProjectLimits();
    void claimStormRespectsLimits_data() { Test::addEngineRows(); }
    void batchClaimSkipsProjectsAtTheirLimit();
    void batchClaimSkipsProjectsAtTheirLimit_data() { Test::addEngineRows(); }
    void withoutDefaultOnlyListedProjectsAreClaimed();
    void withoutDefaultOnlyListedProjectsAreClaimed_data() { Test::addEngineRows(); }
    void releaseGivesTheAttemptBack();
    void releaseGivesTheAttemptBack_data() { Test::addEngineRows(); }
    void transferHandsARunningJobOver();
    void transferHandsARunningJobOver_data() { Test::addEngineRows(); }
    void claimStormRespectsLimits();
    void recoverRunningTouchesOnlyThisNode_data() { Test::addEngineRows(); }
    void recoverRunningTouchesOnlyThisNode();
    void countsAndListings_data() { Test::addEngineRows(); }
    void countsAndListings();
    void postgresqlClaimSurvivesLosingTheServer();

private:
    /// Creates @p count tasks of @p project (branches b0..bN) and returns their ids.
    [[nodiscard]] static QList<qint64> makeTasks(TaskStore &tasks, const QString &project, int count,
                                                  const QString &branchPrefix = QStringLiteral("b"));

    // Generous SQLite busy timeout: the storm piles many writers onto one file.
    Test::StoreFixture m_stores{QStringLiteral("sluice_jq"), 30000};
};

void tst_JobQueue::init()
{
    QVERIFY(m_stores.init());
}

void tst_JobQueue::cleanup()
{
    m_stores.cleanup();
}

QList<qint64> tst_JobQueue::makeTasks(TaskStore &tasks, const QString &project, int count, const QString &branchPrefix)
{
    QList<qint64> ids;
    for (int i = 0; i < count; ++i) {
        NewTask task;
        task.project = project;
        task.branch = branchPrefix + QString::number(i);
        task.stage = QStringLiteral("development");
        auto id = tasks.create(task);
        if (!id) {
            qWarning() << errorText(id.error());
            return {};
        }
        ids.append(*id);
    }
    return ids;
}

void tst_JobQueue::enqueueAndRead()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 1);
    QCOMPARE(taskIds.size(), 1);

    NewJob job = newJob(taskIds[0], QStringLiteral("shop"), QStringLiteral("review"));
    job.kind = QStringLiteral("gate");
    job.maxAttempts = 5;
    job.payload = {{QStringLiteral("role"), QStringLiteral("reviewer")},
                   {QStringLiteral("findings"), QJsonArray{QStringLiteral("'quoted'"), 3}}};
    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    auto id = queue.enqueue(job);
    VERIFY_OK(id);
    QVERIFY(id->has_value());
    const qint64 after = QDateTime::currentMSecsSinceEpoch();

    auto read = queue.job(**id);
    VERIFY_OK(read);
    QVERIFY(read->has_value());
    const JobRecord &record = **read;
    QCOMPARE(record.id, **id);
    QCOMPARE(record.taskId, taskIds[0]);
    QCOMPARE(record.project, QStringLiteral("shop"));
    QCOMPARE(record.stage, QStringLiteral("review"));
    QCOMPARE(record.kind, QStringLiteral("gate"));
    QCOMPARE(record.status, QStringLiteral("queued"));
    QCOMPARE(record.attempts, 0);
    QCOMPARE(record.maxAttempts, 5);
    QCOMPARE(record.payload, job.payload);
    QCOMPARE(record.claimedBy, QString());
    QVERIFY(!record.claimedAt.isValid());
    QVERIFY(!record.finishedAt.isValid());
    QCOMPARE(record.lastError, QString());
    // No availableAt given: available now.
    QVERIFY(record.availableAt.toMSecsSinceEpoch() >= before);
    QVERIFY(record.availableAt.toMSecsSinceEpoch() <= after);
    QCOMPARE(record.createdAt, record.updatedAt);
    QCOMPARE(record.availableAt.timeSpec(), Qt::UTC);

    // A job about no task: task_id NULL.
    auto free = queue.enqueue(newJob(0, QStringLiteral("shop"), QStringLiteral("sweep")));
    VERIFY_OK(free);
    QVERIFY(free->has_value());
    auto freeRead = queue.job(**free);
    VERIFY_OK(freeRead);
    QCOMPARE((*freeRead)->taskId, 0);
    auto db = (*store)->connection();
    VERIFY_OK(db);
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM jobs WHERE task_id IS NULL")).first().first().toInt(), 1);

    auto missing = queue.job(**free + 1000);
    VERIFY_OK(missing);
    QVERIFY(!missing->has_value());
}

void tst_JobQueue::enqueueIsIdempotentWhileOpen()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 2);
    QCOMPARE(taskIds.size(), 2);
    const QDateTime now = QDateTime::currentDateTimeUtc().addSecs(1);

    auto first = queue.enqueue(newJob(taskIds[0], QStringLiteral("shop")));
    VERIFY_OK(first);
    QVERIFY(first->has_value());
    // The same (task, stage, kind) while queued: nothing new, not an error.
    auto again = queue.enqueue(newJob(taskIds[0], QStringLiteral("shop")));
    VERIFY_OK(again);
    QVERIFY(!again->has_value());
    // Another stage, kind or task is another job.
    auto otherStage = queue.enqueue(newJob(taskIds[0], QStringLiteral("shop"), QStringLiteral("review")));
    VERIFY_OK(otherStage);
    QVERIFY(otherStage->has_value());
    NewJob gate = newJob(taskIds[0], QStringLiteral("shop"));
    gate.kind = QStringLiteral("gate");
    auto otherKind = queue.enqueue(gate);
    VERIFY_OK(otherKind);
    QVERIFY(otherKind->has_value());
    auto otherTask = queue.enqueue(newJob(taskIds[1], QStringLiteral("shop")));
    VERIFY_OK(otherTask);
    QVERIFY(otherTask->has_value());
    // Jobs about no task are never folded together.
    VERIFY_OK(queue.enqueue(newJob(0, QStringLiteral("shop"))));
    auto freeAgain = queue.enqueue(newJob(0, QStringLiteral("shop")));
    VERIFY_OK(freeAgain);
    QVERIFY(freeAgain->has_value());

    // Still refused while it runs.
    CLAIM(running, queue, QStringLiteral("node-a"), unlimited(), now);
    QCOMPARE(running.id, **first);
    again = queue.enqueue(newJob(taskIds[0], QStringLiteral("shop")));
    VERIFY_OK(again);
    QVERIFY(!again->has_value());

    // Done: the same job may be enqueued again.
    auto completed = queue.complete(running.id, QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QVERIFY(*completed);
    auto afterDone = queue.enqueue(newJob(taskIds[0], QStringLiteral("shop")));
    VERIFY_OK(afterDone);
    QVERIFY(afterDone->has_value());
    QVERIFY(**afterDone > **first);

    // Failed for good: likewise.
    NewJob once = newJob(taskIds[1], QStringLiteral("shop"), QStringLiteral("deploy"));
    once.maxAttempts = 1;
    auto onceId = queue.enqueue(once);
    VERIFY_OK(onceId);
    QVERIFY(onceId->has_value());
    auto db = (*store)->connection();
    VERIFY_OK(db);
    // Park everything else so the claim takes this one.
    QSqlQuery park(*db);
    QVERIFY2(park.exec(QStringLiteral("UPDATE jobs SET available_at = available_at + 3600000 WHERE status = 'queued' AND id <> %1")
                           .arg(**onceId)),
             qPrintable(park.lastError().text()));
    CLAIM(deploy, queue, QStringLiteral("node-a"), unlimited(), now);
    QCOMPARE(deploy.id, **onceId);
    auto failed = queue.fail(deploy.id, QStringLiteral("node-a"), QStringLiteral("boom"), 0ms, now);
    VERIFY_OK(failed);
    QCOMPARE(*failed, JobQueue::FailOutcome::Failed);
    auto afterFailed = queue.enqueue(once);
    VERIFY_OK(afterFailed);
    QVERIFY(afterFailed->has_value());

    auto jobs = queue.jobsForTask(taskIds[0]);
    VERIFY_OK(jobs);
    QCOMPARE(jobs->size(), 4); // development (done), review, gate, development again
}

void tst_JobQueue::enqueueRefusesIncompleteJobs()
{
    OPEN_STORE(m_stores, settings, store);
    JobQueue queue(**store);

    auto noProject = queue.enqueue(newJob(0, QString()));
    QVERIFY(!noProject);
    QCOMPARE(noProject.error().code, ErrorCode::InvalidArgument);
    NewJob noKind = newJob(0, QStringLiteral("shop"));
    noKind.kind.clear();
    QCOMPARE(queue.enqueue(noKind).error().code, ErrorCode::InvalidArgument);
    NewJob noAttempts = newJob(0, QStringLiteral("shop"));
    noAttempts.maxAttempts = 0;
    QCOMPARE(queue.enqueue(noAttempts).error().code, ErrorCode::InvalidArgument);
    // A task that does not exist: the foreign key refuses it.
    auto orphan = queue.enqueue(newJob(4242, QStringLiteral("shop")));
    QVERIFY(!orphan);
    QCOMPARE(orphan.error().code, ErrorCode::Storage);
    // ...and the connection carries on.
    auto fine = queue.enqueue(newJob(0, QStringLiteral("shop")));
    VERIFY_OK(fine);
    QVERIFY(fine->has_value());
    auto counts = queue.countsByStatus();
    VERIFY_OK(counts);
    QCOMPARE(counts->value(QStringLiteral("queued")), 1);
}

void tst_JobQueue::claimOrderIsAvailableAtThenId()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 4);
    QCOMPARE(taskIds.size(), 4);

    const qint64 t0 = QDateTime::currentMSecsSinceEpoch() - 60000;
    // Enqueued in id order 0..3; available at t0+20s, t0, t0+10s, t0.
    const qint64 offsets[] = {20000, 0, 10000, 0};
    QList<qint64> ids;
    for (int i = 0; i < 4; ++i) {
        NewJob job = newJob(taskIds[i], QStringLiteral("shop"));
        job.availableAt = at(t0 + offsets[i]);
        auto id = queue.enqueue(job);
        VERIFY_OK(id);
        QVERIFY(id->has_value());
        ids.append(**id);
    }
    auto next = queue.nextAvailableAt();
    VERIFY_OK(next);
    QCOMPARE(*next, at(t0));

    QList<qint64> order;
    for (int i = 0; i < 4; ++i) {
        CLAIM(job, queue, QStringLiteral("node-a"), unlimited(), at(t0 + 60000));
        order.append(job.id);
    }
    QCOMPARE(order, (QList<qint64>{ids[1], ids[3], ids[2], ids[0]}));
    auto none = queue.claimNext(QStringLiteral("node-a"), unlimited(), at(t0 + 60000));
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
    next = queue.nextAvailableAt();
    VERIFY_OK(next);
    QVERIFY(!next->isValid());
}

void tst_JobQueue::futureJobsAreNotClaimable()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 1);
    QCOMPARE(taskIds.size(), 1);

    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch());
    NewJob later = newJob(taskIds[0], QStringLiteral("shop"));
    later.availableAt = now.addSecs(3600);
    auto id = queue.enqueue(later);
    VERIFY_OK(id);

    auto none = queue.claimNext(QStringLiteral("node-a"), unlimited(), now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
    none = queue.claimNext(QStringLiteral("node-a"), unlimited(), now.addSecs(3600).addMSecs(-1));
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
    auto next = queue.nextAvailableAt();
    VERIFY_OK(next);
    QCOMPARE(*next, now.addSecs(3600));
    auto job = queue.job(**id);
    VERIFY_OK(job);
    QCOMPARE((*job)->status, QStringLiteral("queued"));
    QCOMPARE((*job)->attempts, 0);

    // Exactly at available_at it is claimable.
    CLAIM(claimed, queue, QStringLiteral("node-a"), unlimited(), now.addSecs(3600));
    QCOMPARE(claimed.id, **id);
}

void tst_JobQueue::attemptsCountAtClaimAndBackOff()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 1);
    QCOMPARE(taskIds.size(), 1);
    auto id = queue.enqueue(newJob(taskIds[0], QStringLiteral("shop"))); // 3 attempts
    VERIFY_OK(id);

    const QDateTime t1 = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    CLAIM(first, queue, QStringLiteral("node-a"), unlimited(), t1);
    QCOMPARE(first.id, **id);
    QCOMPARE(first.status, QStringLiteral("running"));
    QCOMPARE(first.attempts, 1); // counted at claim, before anything ran
    QCOMPARE(first.claimedBy, QStringLiteral("node-a"));
    QCOMPARE(first.claimedAt, t1);
    QCOMPARE(first.updatedAt, t1);
    auto stored = queue.job(**id);
    VERIFY_OK(stored);
    QCOMPARE((*stored)->attempts, 1);
    QCOMPARE((*stored)->status, QStringLiteral("running"));

    // Attempt 1 fails: back to queued, not before the back-off.
    auto outcome = queue.fail(first.id, QStringLiteral("node-a"), QStringLiteral("agent exited 1"), 30s, t1);
    VERIFY_OK(outcome);
    QCOMPARE(*outcome, JobQueue::FailOutcome::Requeued);
    stored = queue.job(**id);
    VERIFY_OK(stored);
    QCOMPARE((*stored)->status, QStringLiteral("queued"));
    QCOMPARE((*stored)->availableAt, t1.addSecs(30));
    QCOMPARE((*stored)->lastError, QStringLiteral("agent exited 1"));
    QCOMPARE((*stored)->attempts, 1);
    QVERIFY(!(*stored)->finishedAt.isValid());
    auto early = queue.claimNext(QStringLiteral("node-b"), unlimited(), t1.addSecs(30).addMSecs(-1));
    VERIFY_OK(early);
    QVERIFY(!early->has_value());

    const QDateTime t2 = t1.addSecs(30);
    CLAIM(second, queue, QStringLiteral("node-b"), unlimited(), t2);
    QCOMPARE(second.attempts, 2);
    QCOMPARE(second.claimedBy, QStringLiteral("node-b"));
    outcome = queue.fail(second.id, QStringLiteral("node-b"), QStringLiteral("gate red"), 1min, t2);
    VERIFY_OK(outcome);
    QCOMPARE(*outcome, JobQueue::FailOutcome::Requeued);

    const QDateTime t3 = t2.addSecs(60);
    CLAIM(third, queue, QStringLiteral("node-a"), unlimited(), t3);
    QCOMPARE(third.attempts, 3);
    // The last attempt fails: failed for good, finished, no further claim.
    outcome = queue.fail(third.id, QStringLiteral("node-a"), QStringLiteral("timeout"), 1min, t3);
    VERIFY_OK(outcome);
    QCOMPARE(*outcome, JobQueue::FailOutcome::Failed);
    stored = queue.job(**id);
    VERIFY_OK(stored);
    QCOMPARE((*stored)->status, QStringLiteral("failed"));
    QCOMPARE((*stored)->attempts, 3);
    QCOMPARE((*stored)->lastError, QStringLiteral("timeout"));
    QCOMPARE((*stored)->finishedAt, t3);
    QCOMPARE((*stored)->availableAt, t3); // not moved by the back-off
    auto none = queue.claimNext(QStringLiteral("node-a"), unlimited(), t3.addDays(1));
    VERIFY_OK(none);
    QVERIFY(!none->has_value());

    // A failed job is not running: finalising it again is lost.
    outcome = queue.fail(third.id, QStringLiteral("node-a"), QStringLiteral("again"), 1min, t3);
    VERIFY_OK(outcome);
    QCOMPARE(*outcome, JobQueue::FailOutcome::Lost);
    auto completed = queue.complete(third.id, QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QCOMPARE(*completed, false);
    stored = queue.job(**id);
    VERIFY_OK(stored);
    QCOMPARE((*stored)->lastError, QStringLiteral("timeout"));

    auto invalid = queue.fail(third.id, QStringLiteral("node-a"), QStringLiteral("x"), -1ms, t3);
    QVERIFY(!invalid);
    QCOMPARE(invalid.error().code, ErrorCode::InvalidArgument);
}

void tst_JobQueue::onlyTheClaimingNodeFinalises()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 1);
    QCOMPARE(taskIds.size(), 1);
    VERIFY_OK(queue.enqueue(newJob(taskIds[0], QStringLiteral("shop"))));
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    CLAIM(job, queue, QStringLiteral("node-a"), unlimited(), now);

    auto wrongComplete = queue.complete(job.id, QStringLiteral("node-b"));
    VERIFY_OK(wrongComplete);
    QCOMPARE(*wrongComplete, false);
    auto wrongFail = queue.fail(job.id, QStringLiteral("node-b"), QStringLiteral("not mine"), 0ms, now);
    VERIFY_OK(wrongFail);
    QCOMPARE(*wrongFail, JobQueue::FailOutcome::Lost);
    auto stored = queue.job(job.id);
    VERIFY_OK(stored);
    QCOMPARE((*stored)->status, QStringLiteral("running"));
    QCOMPARE((*stored)->lastError, QString());

    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    auto completed = queue.complete(job.id, QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QCOMPARE(*completed, true);
    stored = queue.job(job.id);
    VERIFY_OK(stored);
    QCOMPARE((*stored)->status, QStringLiteral("done"));
    QVERIFY((*stored)->finishedAt.toMSecsSinceEpoch() >= before);
    QCOMPARE((*stored)->attempts, 1);

    // Completing twice: the second is lost.
    completed = queue.complete(job.id, QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QCOMPARE(*completed, false);
    completed = queue.complete(job.id + 1000, QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QCOMPARE(*completed, false);
}

void tst_JobQueue::globalAndProjectLimits()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);

    // In id (and availability) order: a1 a2 a3 b1 b2 c1.
    QHash<QString, QList<qint64>> jobs;
    for (const auto &[project, count] : {std::pair{"a", 3}, std::pair{"b", 2}, std::pair{"c", 1}}) {
        const QList<qint64> taskIds = makeTasks(tasks, QLatin1String(project), count);
        QCOMPARE(taskIds.size(), count);
        for (qint64 taskId : taskIds) {
            auto id = queue.enqueue(newJob(taskId, QLatin1String(project)));
            VERIFY_OK(id);
            jobs[QLatin1String(project)].append(**id);
        }
    }
    ConcurrencyLimits limits;
    limits.global = 4;
    limits.perProjectDefault = 2;
    limits.perProject.insert(QStringLiteral("c"), 0); // paused project
    QCOMPARE(limits.limitFor(QStringLiteral("a")), 2);
    QCOMPARE(limits.limitFor(QStringLiteral("c")), 0);
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);

    QList<qint64> claimed;
    for (int i = 0; i < 4; ++i) {
        CLAIM(job, queue, QStringLiteral("node-a"), limits, now);
        claimed.append(job.id);
    }
    // a3 waits for project a (2 running), c1 for its limit of 0.
    QCOMPARE(claimed, (QList<qint64>{jobs[QStringLiteral("a")][0], jobs[QStringLiteral("a")][1], jobs[QStringLiteral("b")][0], jobs[QStringLiteral("b")][1]}));
    // Global limit reached: nothing, though a3 and c1 are queued.
    auto none = queue.claimNext(QStringLiteral("node-a"), limits, now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());

    // One of b finishes: a3 still waits for a, c1 for its limit, so nothing.
    auto completed = queue.complete(jobs[QStringLiteral("b")][0], QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QVERIFY(*completed);
    none = queue.claimNext(QStringLiteral("node-a"), limits, now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
    // One of a finishes: a3 goes.
    completed = queue.complete(jobs[QStringLiteral("a")][0], QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QVERIFY(*completed);
    CLAIM(a3, queue, QStringLiteral("node-a"), limits, now);
    QCOMPARE(a3.id, jobs[QStringLiteral("a")][2]);
    // The limits are per node: node-a runs a2, b2, a3, and node-b is not held back by them.
    limits.perProject.insert(QStringLiteral("c"), 1);
    limits.global = 3;
    none = queue.claimNext(QStringLiteral("node-a"), limits, now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value()); // node-a: 3 running, its limit
    CLAIM(c1, queue, QStringLiteral("node-b"), limits, now);
    QCOMPARE(c1.id, jobs[QStringLiteral("c")][0]);

    // Project a runs 2 on node-a, at its limit there; node-b may run 2 of its own.
    const QList<qint64> moreA = makeTasks(tasks, QStringLiteral("a"), 3, QStringLiteral("more-"));
    QCOMPARE(moreA.size(), 3);
    QList<qint64> moreAJobs;
    for (qint64 taskId : moreA) {
        auto id = queue.enqueue(newJob(taskId, QStringLiteral("a")));
        VERIFY_OK(id);
        moreAJobs.append(**id);
    }
    none = queue.claimNext(QStringLiteral("node-a"), limits, now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
    auto batch = queue.claim(QStringLiteral("node-b"), limits, now, 10);
    VERIFY_OK(batch);
    QCOMPARE(batch->size(), 2); // node-b: c1 + two of a = its limit of 3
    QCOMPARE(batch->at(0).id, moreAJobs.at(0));
    QCOMPARE(batch->at(1).id, moreAJobs.at(1));
    for (const JobRecord &job : std::as_const(*batch)) {
        QCOMPARE(job.status, QStringLiteral("running"));
        QCOMPARE(job.claimedBy, QStringLiteral("node-b"));
        QCOMPARE(job.attempts, 1);
    }

    // A global limit of 0 claims nothing at all.
    VERIFY_OK(queue.enqueue(newJob(0, QStringLiteral("d"))));
    limits.global = 0;
    none = queue.claimNext(QStringLiteral("node-c"), limits, now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
}

void tst_JobQueue::batchClaimSkipsProjectsAtTheirLimit()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);

    // The head of the queue is five jobs of project a (limit 1), then two of b and one of c:
    // one batch must take a1, b1, b2 and c1, reading past a's jobs, and stop at the global
    // limit; completing them in one call finishes exactly those.
    QHash<QString, QList<qint64>> jobs;
    for (const auto &[project, count] : {std::pair{"a", 5}, std::pair{"b", 2}, std::pair{"c", 3}}) {
        for (qint64 taskId : makeTasks(tasks, QLatin1String(project), count)) {
            auto id = queue.enqueue(newJob(taskId, QLatin1String(project)));
            VERIFY_OK(id);
            jobs[QLatin1String(project)].append(**id);
        }
    }
    ConcurrencyLimits limits;
    limits.global = 4;
    limits.perProjectDefault = 2;
    limits.perProject.insert(QStringLiteral("a"), 1);
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    auto batch = queue.claim(QStringLiteral("node-a"), limits, now, 100);
    VERIFY_OK(batch);
    QList<qint64> ids;
    for (const JobRecord &job : std::as_const(*batch))
        ids.append(job.id);
    QCOMPARE(ids, (QList<qint64>{jobs[QStringLiteral("a")][0], jobs[QStringLiteral("b")][0], jobs[QStringLiteral("b")][1],
                                 jobs[QStringLiteral("c")][0]}));
    auto more = queue.claim(QStringLiteral("node-a"), limits, now, 100);
    VERIFY_OK(more);
    QVERIFY(more->isEmpty());

    // Completing several at once: only the ones running on this node are completed.
    auto completed = queue.complete(QList<qint64>{ids[0], ids[1], jobs[QStringLiteral("a")][1]}, QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QCOMPARE(*completed, (QList<qint64>{ids[0], ids[1]}));
    auto notMine = queue.complete(QList<qint64>{ids[2]}, QStringLiteral("node-b"));
    VERIFY_OK(notMine);
    QVERIFY(notMine->isEmpty());
    // Room again for one of a and one of c.
    more = queue.claim(QStringLiteral("node-a"), limits, now, 100);
    VERIFY_OK(more);
    QCOMPARE(more->size(), 2);
    QCOMPARE(more->at(0).id, jobs[QStringLiteral("a")][1]);
    QCOMPARE(more->at(1).id, jobs[QStringLiteral("c")][1]);

    // The worker's turnover: completing a's job and c1 makes room for a3 and c3 (a job of
    // another node in the list is left alone) in the same call.
    auto turnover = queue.completeAndClaim(QList<qint64>{jobs[QStringLiteral("a")][1], ids[3], 999999},
                                           QStringLiteral("node-a"), limits, now, 100);
    VERIFY_OK(turnover);
    QCOMPARE(turnover->completed, (QList<qint64>{jobs[QStringLiteral("a")][1], ids[3]}));
    QCOMPARE(turnover->claimed.size(), 2);
    QCOMPARE(turnover->claimed.at(0).id, jobs[QStringLiteral("a")][2]);
    QCOMPARE(turnover->claimed.at(1).id, jobs[QStringLiteral("c")][2]);
    // Without room nothing is claimed, only completed.
    turnover = queue.completeAndClaim(QList<qint64>{ids[2]}, QStringLiteral("node-a"), limits, now, 0);
    VERIFY_OK(turnover);
    QCOMPARE(turnover->completed, (QList<qint64>{ids[2]}));
    QVERIFY(turnover->claimed.isEmpty());
    auto counts = queue.countsByStatus();
    VERIFY_OK(counts);
    QCOMPARE(counts->value(QStringLiteral("running")), 3); // c2, a3, c3
    QCOMPARE(counts->value(QStringLiteral("done")), 5);
}

void tst_JobQueue::withoutDefaultOnlyListedProjectsAreClaimed()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    // Six jobs of a project this node does not run at the head of the queue, then two of b:
    // b's are claimed (a's do not hide them), a's never.
    QHash<QString, QList<qint64>> jobs;
    for (const auto &[project, count] : {std::pair{"other", 6}, std::pair{"b", 2}}) {
        for (qint64 taskId : makeTasks(tasks, QLatin1String(project), count)) {
            auto id = queue.enqueue(newJob(taskId, QLatin1String(project)));
            VERIFY_OK(id);
            jobs[QLatin1String(project)].append(**id);
        }
    }
    ConcurrencyLimits limits;
    limits.global = 4;
    limits.perProjectDefault = 0;
    limits.perProject.insert(QStringLiteral("b"), 2);
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    auto claimed = queue.claim(QStringLiteral("node-a"), limits, now, 2);
    VERIFY_OK(claimed);
    QCOMPARE(claimed->size(), 2);
    QCOMPARE(claimed->at(0).id, jobs[QStringLiteral("b")][0]);
    QCOMPARE(claimed->at(1).id, jobs[QStringLiteral("b")][1]);
    auto none = queue.claimNext(QStringLiteral("node-a"), limits, now);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
}

void tst_JobQueue::releaseGivesTheAttemptBack()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("p"), 1);
    auto id = queue.enqueue(newJob(taskIds.first(), QStringLiteral("p")));
    VERIFY_OK(id);
    ConcurrencyLimits limits;
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    CLAIM(job, queue, QStringLiteral("node-a"), limits, now);
    QCOMPARE(job.attempts, 1);
    // Only the claiming node can give it back.
    auto released = queue.release(job.id, QStringLiteral("node-b"), QStringLiteral("not mine"));
    VERIFY_OK(released);
    QVERIFY(!*released);
    released = queue.release(job.id, QStringLiteral("node-a"), QStringLiteral("interrupted: sluice stopped"));
    VERIFY_OK(released);
    QVERIFY(*released);
    auto record = queue.job(job.id);
    VERIFY_OK(record);
    QCOMPARE((*record)->status, QStringLiteral("queued"));
    QCOMPARE((*record)->attempts, 0);
    QCOMPARE((*record)->lastError, QStringLiteral("interrupted: sluice stopped"));
    CLAIM(again, queue, QStringLiteral("node-a"), limits, now);
    QCOMPARE(again.id, job.id);
    QCOMPARE(again.attempts, 1);
}

// A survivor adopting a silent node's job (the reaper's takeover): the job becomes its own,
// same attempt, a new token; the old claim holds nothing any more, and a second taker loses.
// (On SQLite the commit failed while the UPDATE ... RETURNING was still open — "SQL
// statements in progress" — so an adoption never took: found by tst_nodeflow.)
void tst_JobQueue::transferHandsARunningJobOver()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("p"), 1);
    auto id = queue.enqueue(newJob(taskIds.first(), QStringLiteral("p")));
    VERIFY_OK(id);
    ConcurrencyLimits limits;
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    CLAIM(job, queue, QStringLiteral("node-a"), limits, now);
    auto taken = queue.transfer(job.claim(), QStringLiteral("node-b"), 0);
    VERIFY_OK(taken);
    QVERIFY(taken->has_value());
    QCOMPARE((*taken)->claimedBy, QStringLiteral("node-b"));
    QCOMPARE((*taken)->attempts, 1);
    QCOMPARE((*taken)->claimToken, job.claimToken + 1);
    auto record = queue.job(job.id);
    VERIFY_OK(record);
    QCOMPARE((*record)->status, QStringLiteral("running"));
    QCOMPARE((*record)->claimedBy, QStringLiteral("node-b"));
    auto oldHolds = queue.holds(job.claim());
    VERIFY_OK(oldHolds);
    QVERIFY(!*oldHolds);
    auto newHolds = queue.holds((*taken)->claim());
    VERIFY_OK(newHolds);
    QVERIFY(*newHolds);
    // A second survivor with the old claim takes nothing.
    auto again = queue.transfer(job.claim(), QStringLiteral("node-c"), 0);
    VERIFY_OK(again);
    QVERIFY(!again->has_value());
    // The store is usable afterwards on the same connection (no transaction left open).
    auto completed = queue.complete(QList<JobClaim>{(*taken)->claim()});
    VERIFY_OK(completed);
    QCOMPARE(completed->size(), 1);
}

void tst_JobQueue::claimStormRespectsLimits()
{
    QFETCH(QString, engine);
    STORE_SETTINGS(m_stores, settings, engine);
    // Two nodes: two Stores, each with its own connections and its own JobQueue.
    auto storeA = Store::open(settings);
    VERIFY_OK(storeA);
    auto storeB = Store::open(settings);
    VERIFY_OK(storeB);
    TaskStore tasks(**storeA);
    JobQueue queueA(**storeA);
    JobQueue queueB(**storeB);

    const QStringList projects = {QStringLiteral("p1"), QStringLiteral("p2"), QStringLiteral("p3")};
    ConcurrencyLimits limits;
    limits.global = 4;
    limits.perProjectDefault = 2;
    limits.perProject.insert(QStringLiteral("p3"), 1);
    constexpr int perProject = 40;
    QHash<QString, QList<qint64>> taskIds;
    for (const QString &project : projects) {
        taskIds[project] = makeTasks(tasks, project, perProject);
        QCOMPARE(taskIds[project].size(), perProject);
    }
    // Interleaved, so every project always has work at the head of the queue.
    QSet<qint64> enqueued;
    for (int i = 0; i < perProject; ++i) {
        for (const QString &project : projects) {
            auto id = queueA.enqueue(newJob(taskIds[project][i], project));
            VERIFY_OK(id);
            QVERIFY(id->has_value());
            enqueued.insert(**id);
        }
    }
    const int total = int(enqueued.size());

    /*
     * Phase 1: every thread claims until it is refused, completing nothing. However the
     * claims interleave, exactly the global limit of jobs must end up running (the
     * per-project limits add up to more, and every project has work queued).
     * Phase 2: every thread claims greedily and completes one of its jobs whenever it is
     * refused, so claims and completions overlap until every job is done.
     * After each successful claim the thread reads the running counts from the table.
     */
    constexpr int threads = 8;
    std::atomic<int> completedCount{0};
    std::mutex mutex;
    QStringList violations;
    QList<qint64> claimedIds;
    QStringList errors;
    QList<QVariantList> afterPhase1;
    std::barrier sync(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            const bool onA = t % 2 == 0;
            JobQueue &queue = onA ? queueA : queueB;
            Store &store = onA ? **storeA : **storeB;
            const QString node = onA ? QStringLiteral("node-a") : QStringLiteral("node-b");
            bool failed = false;
            const auto failWith = [&](const QString &error) {
                std::lock_guard lock(mutex);
                errors << QStringLiteral("thread %1: %2").arg(t).arg(error);
                failed = true;
            };
            const auto runningCounts = [&]() -> QList<QVariantList> {
                auto db = store.connection();
                if (!db) {
                    failWith(errorText(db.error()));
                    return {};
                }
                QString failure;
                QList<QVariantList> rows = select(
                    *db, QStringLiteral("SELECT claimed_by, project, COUNT(*) FROM jobs WHERE status = 'running' "
                                        "GROUP BY claimed_by, project"),
                    &failure);
                if (!failure.isEmpty())
                    failWith(failure);
                return rows;
            };
            // Claims one job (half the threads a batch of up to three); records and checks
            // them. False when refused or failed.
            const auto claimOne = [&](QList<qint64> *held) {
                auto claimed = queue.claim(node, limits, QDateTime::currentDateTimeUtc().addSecs(1), t % 4 >= 2 ? 3 : 1);
                if (!claimed) {
                    failWith(errorText(claimed.error()));
                    return false;
                }
                if (claimed->isEmpty())
                    return false;
                for (const JobRecord &job : std::as_const(*claimed))
                    held->append(job.id);
                const QList<QVariantList> rows = runningCounts();
                std::lock_guard lock(mutex);
                for (const JobRecord &job : std::as_const(*claimed))
                    claimedIds.append(job.id);
                QHash<QString, int> runningOnNode;
                for (const QVariantList &row : rows) {
                    const QString onNode = row.at(0).toString();
                    const QString project = row.at(1).toString();
                    const int count = row.at(2).toInt();
                    runningOnNode[onNode] += count;
                    if (count > limits.limitFor(project))
                        violations << QStringLiteral("%1 running in %2 on %3 (limit %4)")
                                          .arg(count).arg(project, onNode).arg(limits.limitFor(project));
                }
                for (auto it = runningOnNode.cbegin(); it != runningOnNode.cend(); ++it) {
                    if (it.value() > limits.global)
                        violations << QStringLiteral("%1 running on %2 (limit %3)").arg(it.value()).arg(it.key()).arg(limits.global);
                }
                return true;
            };

            QList<qint64> held;
            sync.arrive_and_wait();
            while (!failed && claimOne(&held)) {
            }
            sync.arrive_and_wait();
            if (t == 0)
                afterPhase1 = runningCounts();
            sync.arrive_and_wait();

            QDeadlineTimer deadline(120s);
            while (!failed && completedCount.load() < total) {
                if (deadline.hasExpired()) {
                    failWith(QStringLiteral("the storm did not finish in time"));
                    return;
                }
                if (claimOne(&held) || failed)
                    continue;
                if (held.isEmpty()) {
                    std::this_thread::yield();
                    continue;
                }
                const qint64 id = held.takeFirst();
                auto completed = queue.complete(id, node);
                if (!completed || !*completed) {
                    failWith(completed ? QStringLiteral("job %1 was lost").arg(id) : errorText(completed.error()));
                    return;
                }
                completedCount.fetch_add(1);
            }
        });
    }
    for (std::thread &worker : workers)
        worker.join();

    QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));
    QVERIFY2(violations.isEmpty(), qPrintable(violations.mid(0, 10).join(QLatin1Char('\n'))));
    // Phase 1 filled each node's global limit exactly, each project within its own.
    QHash<QString, int> runningAfterPhase1;
    for (const QVariantList &row : std::as_const(afterPhase1)) {
        runningAfterPhase1[row.at(0).toString()] += row.at(2).toInt();
        QVERIFY(row.at(2).toInt() <= limits.limitFor(row.at(1).toString()));
    }
    QCOMPARE(runningAfterPhase1.value(QStringLiteral("node-a")), limits.global);
    QCOMPARE(runningAfterPhase1.value(QStringLiteral("node-b")), limits.global);
    // Every job claimed exactly once, by one of the nodes, and done.
    QCOMPARE(int(claimedIds.size()), total);
    QCOMPARE(QSet<qint64>(claimedIds.cbegin(), claimedIds.cend()), enqueued);
    auto counts = queueA.countsByStatus();
    VERIFY_OK(counts);
    QCOMPARE(counts->value(QStringLiteral("done")), total);
    QCOMPARE(counts->value(QStringLiteral("queued")), 0);
    QCOMPARE(counts->value(QStringLiteral("running")), 0);
    auto db = (*storeA)->connection();
    VERIFY_OK(db);
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM jobs WHERE attempts <> 1")).first().first().toInt(), 0);
}

void tst_JobQueue::recoverRunningTouchesOnlyThisNode()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 4);
    QCOMPARE(taskIds.size(), 4);

    // a: two running (one on its last attempt) and one done; b: one running.
    QList<qint64> ids;
    for (int i = 0; i < 4; ++i) {
        NewJob job = newJob(taskIds[i], QStringLiteral("shop"));
        job.maxAttempts = i == 1 ? 1 : 3;
        auto id = queue.enqueue(job);
        VERIFY_OK(id);
        ids.append(**id);
    }
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    const QString nodes[] = {QStringLiteral("node-a"), QStringLiteral("node-a"), QStringLiteral("node-a"),
                             QStringLiteral("node-b")};
    for (int i = 0; i < 4; ++i) {
        CLAIM(job, queue, nodes[i], unlimited(), now);
        QCOMPARE(job.id, ids[i]);
    }
    auto completed = queue.complete(ids[2], QStringLiteral("node-a"));
    VERIFY_OK(completed);
    QVERIFY(*completed);

    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    auto recovered = queue.recoverRunning(QStringLiteral("node-a"), QStringLiteral("node-a restarted"));
    VERIFY_OK(recovered);
    QCOMPARE(*recovered, 2);

    auto requeued = queue.job(ids[0]);
    VERIFY_OK(requeued);
    QCOMPARE((*requeued)->status, QStringLiteral("queued"));
    QCOMPARE((*requeued)->lastError, QStringLiteral("node-a restarted"));
    QCOMPARE((*requeued)->attempts, 1); // the interrupted attempt counted
    QVERIFY((*requeued)->availableAt.toMSecsSinceEpoch() >= before);
    QVERIFY((*requeued)->availableAt.toMSecsSinceEpoch() <= QDateTime::currentMSecsSinceEpoch());
    auto exhausted = queue.job(ids[1]);
    VERIFY_OK(exhausted);
    QCOMPARE((*exhausted)->status, QStringLiteral("failed"));
    QCOMPARE((*exhausted)->lastError, QStringLiteral("node-a restarted"));
    QVERIFY((*exhausted)->finishedAt.isValid());
    auto done = queue.job(ids[2]);
    VERIFY_OK(done);
    QCOMPARE((*done)->status, QStringLiteral("done"));
    QCOMPARE((*done)->lastError, QString());
    auto other = queue.job(ids[3]);
    VERIFY_OK(other);
    QCOMPARE((*other)->status, QStringLiteral("running"));
    QCOMPARE((*other)->claimedBy, QStringLiteral("node-b"));
    QCOMPARE((*other)->lastError, QString());

    // Available at once, and a late monitor of the old run has lost the job.
    auto stale = queue.complete(ids[0], QStringLiteral("node-a"));
    VERIFY_OK(stale);
    QCOMPARE(*stale, false);
    CLAIM(again, queue, QStringLiteral("node-a"), unlimited(), at(QDateTime::currentMSecsSinceEpoch()));
    QCOMPARE(again.id, ids[0]);
    QCOMPARE(again.attempts, 2);

    auto nothing = queue.recoverRunning(QStringLiteral("node-c"), QStringLiteral("restart"));
    VERIFY_OK(nothing);
    QCOMPARE(*nothing, 0);
}

void tst_JobQueue::countsAndListings()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    JobQueue queue(**store);

    const QHash<QString, int> zero = {{QStringLiteral("queued"), 0}, {QStringLiteral("running"), 0},
                                      {QStringLiteral("done"), 0}, {QStringLiteral("failed"), 0}};
    auto counts = queue.countsByStatus();
    VERIFY_OK(counts);
    QCOMPARE(*counts, zero);
    auto recent = queue.recent(10);
    VERIFY_OK(recent);
    QCOMPARE(recent->size(), 0);

    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 6);
    QCOMPARE(taskIds.size(), 6);
    QList<qint64> ids;
    for (qint64 taskId : taskIds) {
        NewJob job = newJob(taskId, QStringLiteral("shop"));
        job.maxAttempts = 1;
        auto id = queue.enqueue(job);
        VERIFY_OK(id);
        ids.append(**id);
    }
    // 0 done, 1 failed, 2 and 3 running, 4 and 5 queued.
    const qint64 base = QDateTime::currentMSecsSinceEpoch() + 1000;
    for (int i = 0; i < 4; ++i) {
        CLAIM(job, queue, QStringLiteral("node-a"), unlimited(), at(base + i));
        QCOMPARE(job.id, ids[i]);
    }
    VERIFY_OK(queue.complete(ids[0], QStringLiteral("node-a")));
    VERIFY_OK(queue.fail(ids[1], QStringLiteral("node-a"), QStringLiteral("x"), 0ms, at(base)));

    counts = queue.countsByStatus();
    VERIFY_OK(counts);
    QCOMPARE(*counts, (QHash<QString, int>{{QStringLiteral("queued"), 2}, {QStringLiteral("running"), 2},
                                            {QStringLiteral("done"), 1}, {QStringLiteral("failed"), 1}}));

    auto running = queue.running();
    VERIFY_OK(running);
    QCOMPARE(running->size(), 2);
    QCOMPARE(running->at(0).id, ids[2]); // longest running first
    QCOMPARE(running->at(1).id, ids[3]);
    QCOMPARE(running->at(0).claimedAt, at(base + 2));

    recent = queue.recent(3);
    VERIFY_OK(recent);
    QCOMPARE(recent->size(), 3);
    QCOMPARE(recent->at(0).id, ids[5]);
    QCOMPARE(recent->at(1).id, ids[4]);
    QCOMPARE(recent->at(2).id, ids[3]);
    recent = queue.recent(100);
    VERIFY_OK(recent);
    QCOMPARE(recent->size(), 6);
    QVERIFY(!queue.recent(-1));

    auto forTask = queue.jobsForTask(taskIds[1]);
    VERIFY_OK(forTask);
    QCOMPARE(forTask->size(), 1);
    QCOMPARE(forTask->first().status, QStringLiteral("failed"));
    QCOMPARE(forTask->first().lastError, QStringLiteral("x"));
    auto noTask = queue.jobsForTask(taskIds.last() + 1000);
    VERIFY_OK(noTask);
    QCOMPARE(noTask->size(), 0);
}

void tst_JobQueue::postgresqlClaimSurvivesLosingTheServer()
{
    STORE_SETTINGS(m_stores, settings, QStringLiteral("postgresql"));
    auto store = Store::open(settings);
    VERIFY_OK(store);
    TaskStore tasks(**store);
    // Two queues on one connection: the claim statement they prepare on the server is shared.
    JobQueue queue(**store);
    JobQueue sameConnection(**store);
    const QList<qint64> taskIds = makeTasks(tasks, QStringLiteral("shop"), 4);
    QCOMPARE(taskIds.size(), 4);
    for (qint64 taskId : taskIds)
        VERIFY_OK(queue.enqueue(newJob(taskId, QStringLiteral("shop"))));
    const QDateTime now = at(QDateTime::currentMSecsSinceEpoch() + 1000);
    CLAIM(first, queue, QStringLiteral("node-a"), unlimited(), now);
    CLAIM(second, sameConnection, QStringLiteral("node-a"), unlimited(), now);
    QVERIFY(second.id != first.id);

    // A server restart or pg_terminate_backend takes the connection and every statement
    // prepared on it.
    QString failure;
    QSqlDatabase admin = m_stores.admin(&failure);
    QVERIFY2(admin.isOpen(), qPrintable(failure));
    QSqlQuery kill(admin);
    QVERIFY2(kill.exec(QStringLiteral("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                                      "WHERE datname = '%1' AND pid <> pg_backend_pid()").arg(settings.database)),
             qPrintable(kill.lastError().text()));
    QVERIFY(kill.next());
    QVERIFY(kill.value(0).toBool());

    auto lost = queue.claimNext(QStringLiteral("node-a"), unlimited(), now);
    QVERIFY(!lost);
    QCOMPARE(lost.error().code, ErrorCode::Storage);
    // The next claim reconnects and prepares again; nothing was claimed by the failed one.
    CLAIM(third, queue, QStringLiteral("node-a"), unlimited(), now);
    CLAIM(fourth, sameConnection, QStringLiteral("node-a"), unlimited(), now);
    auto counts = queue.countsByStatus();
    VERIFY_OK(counts);
    QCOMPARE(counts->value(QStringLiteral("running")), 4);
    QCOMPARE(counts->value(QStringLiteral("queued")), 0);
    QCOMPARE(QSet<qint64>({first.id, second.id, third.id, fourth.id}).size(), 4);
}

QTEST_GUILESS_MAIN(tst_JobQueue)
#include "tst_jobqueue.moc"
