// SPDX-License-Identifier: Apache-2.0
//
// TaskStore on both engines: a real SQLite file in a temporary directory, and a real
// PostgreSQL server started by the CTest fixture "postgres" (tests/postgres.cmake), one fresh
// database per test function. The claim races run on threads of one Store, on separate
// Store objects, and in separate child processes (this executable started with
// --claim-child).
//
// Without $SLUICE_TEST_PG_CONNINFO the PostgreSQL rows fail; SLUICE_TEST_NO_PG=1 turns
// that into a skip, for a deliberate SQLite-only run.

#include "storefixture.h"
#include "store/store.h"
#include "store/jobqueue.h"
#include "store/taskstore.h"

#include <QFile>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QProcess>
#include <QSqlError>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QTemporaryDir>
#include <QtTest>

#include <barrier>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace Sluice;
using Sluice::Test::errorText;
using Sluice::Test::select;

namespace {

NewTask newTask(const QString &project, const QString &branch, const QString &stage = QStringLiteral("development"))
{
    NewTask task;
    task.project = project;
    task.title = QStringLiteral("Task on ") + branch;
    task.description = QStringLiteral("Do the thing on ") + branch;
    task.branch = branch;
    task.stage = stage;
    return task;
}

// The stages a raced task walks through, round after round.
QString stageOfRound(int round)
{
    return QStringLiteral("stage-%1").arg(round);
}

/*
 * Child process mode: open the Store given on the command line, then for every "go <id>
 * <from> <to>" line on stdin claim the transition and answer "won", "lost" or "error ...".
 * Prints "ready" once the store is open.
 */
int runClaimChild(const QStringList &arguments)
{
    // --claim-child sqlite <path> | --claim-child postgresql <host> <port> <database> <user>
    StoreSettings settings;
    if (arguments.value(2) == QLatin1String("sqlite")) {
        settings.driver = StoreSettings::Driver::Sqlite;
        settings.sqlitePath = arguments.value(3);
        settings.busyTimeoutMs = 30000;
    } else {
        settings.driver = StoreSettings::Driver::Postgresql;
        settings.host = arguments.value(3);
        settings.port = arguments.value(4).toInt();
        settings.database = arguments.value(5);
        settings.user = arguments.value(6);
    }
    auto store = Store::open(settings);
    if (!store) {
        std::cout << "error " << errorText(store.error()).toStdString() << std::endl;
        return 1;
    }
    TaskStore tasks(**store);
    std::cout << "ready" << std::endl;
    std::string line;
    while (std::getline(std::cin, line)) {
        const QStringList words = QString::fromStdString(line).split(QLatin1Char(' '));
        if (words.size() != 4 || words.first() != QLatin1String("go"))
            break;
        auto won = tasks.claimTransition(words.at(1).toLongLong(), words.at(2), words.at(3));
        if (!won)
            std::cout << "error " << errorText(won.error()).toStdString() << std::endl;
        else
            std::cout << (*won ? "won" : "lost") << std::endl;
    }
    return 0;
}

} // namespace

class tst_TaskStore : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void createAndRead_data() { Test::addEngineRows(); }
    void createAndRead();
    void createRefusesIncompleteTasks_data() { Test::addEngineRows(); }
    void createRefusesIncompleteTasks();
    void filterTasks_data() { Test::addEngineRows(); }
    void filterTasks();
    void openBranchConflicts_data() { Test::addEngineRows(); }
    void openBranchConflicts();
    void findByTrackerRef_data() { Test::addEngineRows(); }
    void findByTrackerRef();
    void claimWinnerAndLoser_data() { Test::addEngineRows(); }
    void claimWinnerAndLoser();
    void claimAppliesChanges_data() { Test::addEngineRows(); }
    void claimAppliesChanges();
    void blockedOrDoneTaskCannotMove_data() { Test::addEngineRows(); }
    void blockedOrDoneTaskCannotMove();
    void claimRaceOnThreads_data() { Test::addEngineRows(); }
    void claimRaceOnThreads();
    void claimRaceOnSeparateStores_data() { Test::addEngineRows(); }
    void claimRaceOnSeparateStores();
    void claimRaceInChildProcesses_data() { Test::addEngineRows(); }
    void claimRaceInChildProcesses();
    void gateRunsRoundTrip_data() { Test::addEngineRows(); }
    void gateRunsRoundTrip();
    void adoptForgeHeadIsACompareAndSwap_data() { Test::addEngineRows(); }
    void adoptForgeHeadIsACompareAndSwap();
    void historyIsTheTasksAudit_data() { Test::addEngineRows(); }
    void historyIsTheTasksAudit();
    void destroyedAfterTheStore_data() { Test::addEngineRows(); }
    void destroyedAfterTheStore();
    void postgresqlRecoversAfterLosingTheServer();

private:
    // Generous SQLite busy timeout: the races pile many writers onto one file.
    Test::StoreFixture m_stores{QStringLiteral("sluice_ts"), 30000};
};

void tst_TaskStore::init()
{
    QVERIFY(m_stores.init());
}

void tst_TaskStore::cleanup()
{
    m_stores.cleanup();
}

void tst_TaskStore::createAndRead()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    NewTask first = newTask(QStringLiteral("shop"), QStringLiteral("feature/cart"));
    first.trackerRef = QStringLiteral("SHOP-12");
    auto id = tasks.create(first);
    VERIFY_OK(id);
    QVERIFY(*id > 0);
    auto second = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/pay"), QStringLiteral("analysis")));
    VERIFY_OK(second);
    QVERIFY(*second > *id);
    const qint64 after = QDateTime::currentMSecsSinceEpoch();

    auto read = tasks.task(*id);
    VERIFY_OK(read);
    QVERIFY(read->has_value());
    const TaskRecord &task = **read;
    QCOMPARE(task.id, *id);
    QCOMPARE(task.project, QStringLiteral("shop"));
    QCOMPARE(task.title, QStringLiteral("Task on feature/cart"));
    QCOMPARE(task.description, QStringLiteral("Do the thing on feature/cart"));
    QCOMPARE(task.branch, QStringLiteral("feature/cart"));
    QCOMPARE(task.stage, QStringLiteral("development"));
    QCOMPARE(task.status, QStringLiteral("active"));
    QCOMPARE(task.blockedReason, QString());
    QCOMPARE(task.headSha, QString());
    QCOMPARE(task.trackerRef, QStringLiteral("SHOP-12"));
    QCOMPARE(task.pullRequest, 0);
    QCOMPARE(task.retries, 0);
    QCOMPARE(task.version, 1);
    QVERIFY(task.createdAt.toMSecsSinceEpoch() >= before);
    QVERIFY(task.createdAt.toMSecsSinceEpoch() <= after);
    QCOMPARE(task.updatedAt, task.createdAt);
    QCOMPARE(task.createdAt.timeSpec(), Qt::UTC);

    const TaskInfo info = task.toInfo();
    QCOMPARE(info.id, task.id);
    QCOMPARE(info.projectId, task.project);
    QCOMPARE(info.branch, task.branch);
    QCOMPARE(info.stage, task.stage);
    QCOMPARE(info.trackerRef, task.trackerRef);
    QCOMPARE(info.createdAt, task.createdAt);

    auto other = tasks.task(*second);
    VERIFY_OK(other);
    QVERIFY(other->has_value());
    QCOMPARE((*other)->stage, QStringLiteral("analysis"));

    auto missing = tasks.task(*second + 1000);
    VERIFY_OK(missing);
    QVERIFY(!missing->has_value());

    // Text survives as it is: quotes, backslashes, non-ASCII.
    NewTask odd = newTask(QStringLiteral("shop"), QStringLiteral("fix/o'brien\\x"));
    odd.description = QStringLiteral("Ünïcödé 'quoted' \"double\" -- ; DROP TABLE tasks;");
    auto oddId = tasks.create(odd);
    VERIFY_OK(oddId);
    auto oddRead = tasks.task(*oddId);
    VERIFY_OK(oddRead);
    QVERIFY(oddRead->has_value());
    QCOMPARE((*oddRead)->branch, odd.branch);
    QCOMPARE((*oddRead)->description, odd.description);
}

void tst_TaskStore::createRefusesIncompleteTasks()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    auto noProject = tasks.create(newTask(QString(), QStringLiteral("b")));
    QVERIFY(!noProject);
    QCOMPARE(noProject.error().code, ErrorCode::InvalidArgument);
    auto noStage = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("b"), QString()));
    QVERIFY(!noStage);
    QCOMPARE(noStage.error().code, ErrorCode::InvalidArgument);
    auto all = tasks.tasks({}, {});
    VERIFY_OK(all);
    QCOMPARE(all->size(), 0);
}

void tst_TaskStore::filterTasks()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    // shop: active, blocked, done; blog: active, done.
    QList<qint64> ids;
    const std::pair<const char *, const char *> specs[] = {{"shop", "a"}, {"shop", "b"}, {"shop", "c"}, {"blog", "a"}, {"blog", "b"}};
    for (const auto &[project, branch] : specs) {
        auto id = tasks.create(newTask(QLatin1String(project), QLatin1String(branch)));
        VERIFY_OK(id);
        ids.append(*id);
    }
    TaskChange block;
    block.status = QStringLiteral("blocked");
    block.blockedReason = QStringLiteral("retries exhausted");
    auto blocked = tasks.claimTransition(ids[1], QStringLiteral("development"), QStringLiteral("development"), block);
    VERIFY_OK(blocked);
    QVERIFY(*blocked);
    TaskChange finish;
    finish.status = QStringLiteral("done");
    for (qint64 id : {ids[2], ids[4]}) {
        auto done = tasks.claimTransition(id, QStringLiteral("development"), QStringLiteral("done"), finish);
        VERIFY_OK(done);
        QVERIFY(*done);
    }

    const auto idsOf = [&](const QString &project, const QStringList &statuses) {
        QList<qint64> found;
        auto list = tasks.tasks(project, statuses);
        if (!list) {
            qWarning() << errorText(list.error());
            return QList<qint64>{-1};
        }
        for (const TaskRecord &task : *list)
            found.append(task.id);
        return found;
    };
    QCOMPARE(idsOf({}, {}), ids);
    QCOMPARE(idsOf(QStringLiteral("shop"), {}), (QList<qint64>{ids[0], ids[1], ids[2]}));
    QCOMPARE(idsOf(QStringLiteral("blog"), {}), (QList<qint64>{ids[3], ids[4]}));
    QCOMPARE(idsOf({}, {QStringLiteral("active")}), (QList<qint64>{ids[0], ids[3]}));
    QCOMPARE(idsOf({}, {QStringLiteral("active"), QStringLiteral("blocked")}), (QList<qint64>{ids[0], ids[1], ids[3]}));
    QCOMPARE(idsOf(QStringLiteral("shop"), {QStringLiteral("done")}), (QList<qint64>{ids[2]}));
    QCOMPARE(idsOf(QStringLiteral("blog"), {QStringLiteral("blocked")}), QList<qint64>());
    QCOMPARE(idsOf(QStringLiteral("nope"), {}), QList<qint64>());

    auto list = tasks.tasks(QStringLiteral("shop"), {QStringLiteral("blocked")});
    VERIFY_OK(list);
    QCOMPARE(list->size(), 1);
    QCOMPARE(list->first().status, QStringLiteral("blocked"));
    QCOMPARE(list->first().blockedReason, QStringLiteral("retries exhausted"));

    auto invalid = tasks.tasks({}, {QStringLiteral("active"), QStringLiteral("paused")});
    QVERIFY(!invalid);
    QCOMPARE(invalid.error().code, ErrorCode::InvalidArgument);
    QVERIFY2(invalid.error().message.contains(QLatin1String("paused")), qPrintable(invalid.error().message));
}

void tst_TaskStore::openBranchConflicts()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    auto first = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(first);
    auto clash = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    QVERIFY(!clash);
    QCOMPARE(clash.error().code, ErrorCode::Conflict);
    QVERIFY2(clash.error().message.contains(QStringLiteral("task %1").arg(*first)), qPrintable(clash.error().message));
    QVERIFY2(clash.error().message.contains(QLatin1String("feature/cart")), qPrintable(clash.error().message));

    // Another project may use the same branch name; tasks without a branch never clash.
    VERIFY_OK(tasks.create(newTask(QStringLiteral("blog"), QStringLiteral("feature/cart"))));
    VERIFY_OK(tasks.create(newTask(QStringLiteral("shop"), QString())));
    VERIFY_OK(tasks.create(newTask(QStringLiteral("shop"), QString())));

    // A blocked task still holds its branch; a done one frees it.
    TaskChange block;
    block.status = QStringLiteral("blocked");
    auto blocked = tasks.claimTransition(*first, QStringLiteral("development"), QStringLiteral("development"), block);
    VERIFY_OK(blocked);
    QVERIFY(*blocked);
    auto stillHeld = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    QVERIFY(!stillHeld);
    QCOMPARE(stillHeld.error().code, ErrorCode::Conflict);

    auto db = (*store)->connection();
    VERIFY_OK(db);
    QSqlQuery finish(*db);
    QVERIFY2(finish.exec(QStringLiteral("UPDATE tasks SET status = 'done' WHERE id = %1").arg(*first)),
             qPrintable(finish.lastError().text()));
    auto reused = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(reused);
    QVERIFY(*reused > *first);
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM tasks WHERE branch = 'feature/cart'")).first().first().toInt(), 3);
}

void tst_TaskStore::findByTrackerRef()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    NewTask old = newTask(QStringLiteral("shop"), QStringLiteral("feature/v1"));
    old.trackerRef = QStringLiteral("SHOP-7");
    auto oldId = tasks.create(old);
    VERIFY_OK(oldId);
    NewTask elsewhere = newTask(QStringLiteral("blog"), QStringLiteral("feature/v1"));
    elsewhere.trackerRef = QStringLiteral("SHOP-7");
    VERIFY_OK(tasks.create(elsewhere));

    auto found = tasks.findByTrackerRef(QStringLiteral("shop"), QStringLiteral("SHOP-7"));
    VERIFY_OK(found);
    QVERIFY(found->has_value());
    QCOMPARE((*found)->id, *oldId);

    // The first task finished; it was reopened as a new task: the open one is found,
    // even though it is not the newest row.
    TaskChange finish;
    finish.status = QStringLiteral("done");
    auto done = tasks.claimTransition(*oldId, QStringLiteral("development"), QStringLiteral("done"), finish);
    VERIFY_OK(done);
    QVERIFY(*done);
    NewTask reopened = newTask(QStringLiteral("shop"), QStringLiteral("feature/v2"));
    reopened.trackerRef = QStringLiteral("SHOP-7");
    auto reopenedId = tasks.create(reopened);
    VERIFY_OK(reopenedId);
    NewTask later = newTask(QStringLiteral("shop"), QStringLiteral("feature/v3"));
    later.trackerRef = QStringLiteral("SHOP-7");
    auto laterId = tasks.create(later);
    VERIFY_OK(laterId);
    auto finishLater = tasks.claimTransition(*laterId, QStringLiteral("development"), QStringLiteral("done"), finish);
    VERIFY_OK(finishLater);
    QVERIFY(*finishLater);
    found = tasks.findByTrackerRef(QStringLiteral("shop"), QStringLiteral("SHOP-7"));
    VERIFY_OK(found);
    QVERIFY(found->has_value());
    QCOMPARE((*found)->id, *reopenedId);

    // Only done ones: the newest.
    auto finishReopened = tasks.claimTransition(*reopenedId, QStringLiteral("development"), QStringLiteral("done"), finish);
    VERIFY_OK(finishReopened);
    QVERIFY(*finishReopened);
    found = tasks.findByTrackerRef(QStringLiteral("shop"), QStringLiteral("SHOP-7"));
    VERIFY_OK(found);
    QVERIFY(found->has_value());
    QCOMPARE((*found)->id, *laterId);

    auto none = tasks.findByTrackerRef(QStringLiteral("shop"), QStringLiteral("SHOP-8"));
    VERIFY_OK(none);
    QVERIFY(!none->has_value());
    auto empty = tasks.findByTrackerRef(QStringLiteral("shop"), QString());
    QVERIFY(!empty);
    QCOMPARE(empty.error().code, ErrorCode::InvalidArgument);
}

void tst_TaskStore::claimWinnerAndLoser()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);
    auto before = tasks.task(*id);
    VERIFY_OK(before);
    QVERIFY(before->has_value());

    auto won = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("review"));
    VERIFY_OK(won);
    QCOMPARE(*won, true);
    auto after = tasks.task(*id);
    VERIFY_OK(after);
    QVERIFY(after->has_value());
    QCOMPARE((*after)->stage, QStringLiteral("review"));
    QCOMPARE((*after)->version, (*before)->version + 1);
    QVERIFY((*after)->updatedAt >= (*before)->updatedAt);
    QCOMPARE((*after)->createdAt, (*before)->createdAt);
    QCOMPARE((*after)->status, QStringLiteral("active"));
    QCOMPARE((*after)->description, (*before)->description); // no change asked: none made

    // The same move again: the task is no longer in development. Losing is not an error.
    auto lost = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("review"));
    VERIFY_OK(lost);
    QCOMPARE(*lost, false);
    // A wrong from-stage changes nothing, not even the version.
    auto wrong = tasks.claimTransition(*id, QStringLiteral("testing"), QStringLiteral("deploy"));
    VERIFY_OK(wrong);
    QCOMPARE(*wrong, false);
    auto unchanged = tasks.task(*id);
    VERIFY_OK(unchanged);
    QCOMPARE((*unchanged)->stage, QStringLiteral("review"));
    QCOMPARE((*unchanged)->version, (*after)->version);

    // Onwards, and a rollback, each bumping the version.
    auto next = tasks.claimTransition(*id, QStringLiteral("review"), QStringLiteral("testing"));
    VERIFY_OK(next);
    QCOMPARE(*next, true);
    auto back = tasks.claimTransition(*id, QStringLiteral("testing"), QStringLiteral("development"));
    VERIFY_OK(back);
    QCOMPARE(*back, true);
    auto latest = tasks.task(*id);
    VERIFY_OK(latest);
    QCOMPARE((*latest)->stage, QStringLiteral("development"));
    QCOMPARE((*latest)->version, (*before)->version + 3);

    // No such task: lost, not an error.
    auto ghost = tasks.claimTransition(*id + 1000, QStringLiteral("development"), QStringLiteral("review"));
    VERIFY_OK(ghost);
    QCOMPARE(*ghost, false);

    auto noTarget = tasks.claimTransition(*id, QStringLiteral("development"), QString());
    QVERIFY(!noTarget);
    QCOMPARE(noTarget.error().code, ErrorCode::InvalidArgument);
}

// A push someone else made at the forge becomes the task's head and pushed head only while the
// task still has the head and pushed head the caller read (a job's new work, another node's
// adoption win), is active, and — for a push delivery's look — has no job queued or running.
void tst_TaskStore::adoptForgeHeadIsACompareAndSwap()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);
    const QString ours = QStringLiteral("1111111111111111111111111111111111111111");
    const QString theirs = QStringLiteral("2222222222222222222222222222222222222222");
    const QString again = QStringLiteral("3333333333333333333333333333333333333333");
    auto recorded = tasks.recordHead(*id, QStringLiteral("development"), ours);
    VERIFY_OK(recorded);
    VERIFY_OK(tasks.recordPublication(*id, ours));
    auto adopted = tasks.adoptForgeHead(*id, ours, ours, theirs);
    VERIFY_OK(adopted);
    QVERIFY(*adopted);
    auto task = tasks.task(*id);
    VERIFY_OK(task);
    QCOMPARE((*task)->headSha, theirs);
    QCOMPARE((*task)->pushedSha, theirs);
    // A caller that read the old heads loses, and writes nothing.
    adopted = tasks.adoptForgeHead(*id, ours, ours, again);
    VERIFY_OK(adopted);
    QVERIFY(!*adopted);
    // With a job queued, a push delivery's look (onlyIdle) changes nothing; the publish step's does.
    JobQueue jobs(**store);
    NewJob job;
    job.taskId = *id;
    job.project = QStringLiteral("shop");
    job.stage = QStringLiteral("development");
    VERIFY_OK(jobs.enqueue(job));
    adopted = tasks.adoptForgeHead(*id, theirs, theirs, again, true);
    VERIFY_OK(adopted);
    QVERIFY(!*adopted);
    adopted = tasks.adoptForgeHead(*id, theirs, theirs, again);
    VERIFY_OK(adopted);
    QVERIFY(*adopted);
    // A blocked task keeps its head.
    TaskChange block;
    block.status = QStringLiteral("blocked");
    block.blockedReason = QStringLiteral("stop");
    VERIFY_OK(tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("development"), block));
    adopted = tasks.adoptForgeHead(*id, again, again, ours);
    VERIFY_OK(adopted);
    QVERIFY(!*adopted);
    task = tasks.task(*id);
    VERIFY_OK(task);
    QCOMPARE((*task)->headSha, again);
}

void tst_TaskStore::claimAppliesChanges()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);

    // A red gate's rollback: back to development with the findings and a retry counted.
    TaskChange rollback;
    rollback.description = QStringLiteral("Do the thing.\n\nReview found:\n- 'x' is unused");
    rollback.headSha = QStringLiteral("0123456789abcdef0123456789abcdef01234567");
    rollback.retries = 1;
    auto moved = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("development"), rollback);
    VERIFY_OK(moved);
    QVERIFY(*moved);
    auto task = tasks.task(*id);
    VERIFY_OK(task);
    QCOMPARE((*task)->description, *rollback.description);
    QCOMPARE((*task)->headSha, *rollback.headSha);
    QCOMPARE((*task)->retries, 1);
    QCOMPARE((*task)->status, QStringLiteral("active"));
    QCOMPARE((*task)->blockedReason, QString());
    QCOMPARE((*task)->version, 2);
    QCOMPARE((*task)->title, QStringLiteral("Task on feature/cart")); // untouched

    // Retries exhausted: blocked, with the reason; fields not named keep their values.
    TaskChange block;
    block.status = QStringLiteral("blocked");
    block.blockedReason = QStringLiteral("3 rollbacks: review keeps failing");
    block.retries = 3;
    moved = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("review"), block);
    VERIFY_OK(moved);
    QVERIFY(*moved);
    task = tasks.task(*id);
    VERIFY_OK(task);
    QCOMPARE((*task)->stage, QStringLiteral("review"));
    QCOMPARE((*task)->status, QStringLiteral("blocked"));
    QCOMPARE((*task)->blockedReason, *block.blockedReason);
    QCOMPARE((*task)->retries, 3);
    QCOMPARE((*task)->description, *rollback.description);
    QCOMPARE((*task)->headSha, *rollback.headSha);
    QCOMPARE((*task)->version, 3);

    // Invalid changes are refused before the database sees them.
    auto other = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/other")));
    VERIFY_OK(other);
    TaskChange badStatus;
    badStatus.status = QStringLiteral("paused");
    auto refused = tasks.claimTransition(*other, QStringLiteral("development"), QStringLiteral("review"), badStatus);
    QVERIFY(!refused);
    QCOMPARE(refused.error().code, ErrorCode::InvalidArgument);
    TaskChange badRetries;
    badRetries.retries = -1;
    refused = tasks.claimTransition(*other, QStringLiteral("development"), QStringLiteral("review"), badRetries);
    QVERIFY(!refused);
    QCOMPARE(refused.error().code, ErrorCode::InvalidArgument);
    auto untouched = tasks.task(*other);
    VERIFY_OK(untouched);
    QCOMPARE((*untouched)->stage, QStringLiteral("development"));
    QCOMPARE((*untouched)->version, 1);
}

void tst_TaskStore::blockedOrDoneTaskCannotMove()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);

    for (const QString &status : {QStringLiteral("blocked"), QStringLiteral("done")}) {
        auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/") + status));
        VERIFY_OK(id);
        TaskChange change;
        change.status = status;
        auto stopped = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("development"), change);
        VERIFY_OK(stopped);
        QVERIFY(*stopped);
        auto version = tasks.task(*id);
        VERIFY_OK(version);

        // Right from-stage, but not active: lost, nothing changes.
        auto moved = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("review"));
        VERIFY_OK(moved);
        QCOMPARE(*moved, false);
        TaskChange reactivate;
        reactivate.status = QStringLiteral("active");
        moved = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("review"), reactivate);
        VERIFY_OK(moved);
        QCOMPARE(*moved, false);
        auto task = tasks.task(*id);
        VERIFY_OK(task);
        QCOMPARE((*task)->stage, QStringLiteral("development"));
        QCOMPARE((*task)->status, status);
        QCOMPARE((*task)->version, (*version)->version);
    }
}

void tst_TaskStore::claimRaceOnThreads()
{
    OPEN_STORE(m_stores, settings, store);
    // One TaskStore shared by every thread, as the engine shares it; each thread gets its
    // own connection and its own prepared statements.
    TaskStore tasks(**store);
    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/race"), stageOfRound(0)));
    VERIFY_OK(id);

    // Every round all threads try to move the task from the round's stage to the next one.
    constexpr int threads = 8;
    constexpr int rounds = 40;
    std::vector<std::vector<int>> outcome(rounds, std::vector<int>(threads, -1)); // 1 won, 0 lost, -1 error
    std::vector<QString> errors(threads);
    std::barrier start(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int round = 0; round < rounds; ++round) {
                start.arrive_and_wait();
                auto won = tasks.claimTransition(*id, stageOfRound(round), stageOfRound(round + 1));
                if (won)
                    outcome[round][t] = *won ? 1 : 0;
                else if (errors[t].isEmpty())
                    errors[t] = errorText(won.error());
                // Nobody starts the next round before everyone has tried this one.
                start.arrive_and_wait();
            }
        });
    }
    for (std::thread &worker : workers)
        worker.join();

    for (const QString &error : errors)
        QVERIFY2(error.isEmpty(), qPrintable(error));
    for (int round = 0; round < rounds; ++round) {
        QVERIFY2(std::count(outcome[round].cbegin(), outcome[round].cend(), 1) == 1,
                 qPrintable(QStringLiteral("round %1 has %2 winners").arg(round)
                                .arg(std::count(outcome[round].cbegin(), outcome[round].cend(), 1))));
        QCOMPARE(std::count(outcome[round].cbegin(), outcome[round].cend(), 0), threads - 1);
    }
    auto task = tasks.task(*id);
    VERIFY_OK(task);
    QCOMPARE((*task)->stage, stageOfRound(rounds));
    QCOMPARE((*task)->version, 1 + rounds);
}

void tst_TaskStore::claimRaceOnSeparateStores()
{
    QFETCH(QString, engine);
    STORE_SETTINGS(m_stores, settings, engine);
    // Each Store stands for another process or node: its own connections on the same database.
    constexpr int stores = 4;
    std::vector<std::unique_ptr<Store>> opened;
    std::vector<std::unique_ptr<TaskStore>> taskStores;
    for (int s = 0; s < stores; ++s) {
        auto store = Store::open(settings);
        VERIFY_OK(store);
        opened.push_back(std::move(*store));
        taskStores.push_back(std::make_unique<TaskStore>(*opened.back()));
    }
    auto id = taskStores.front()->create(newTask(QStringLiteral("shop"), QStringLiteral("feature/race"), stageOfRound(0)));
    VERIFY_OK(id);

    constexpr int rounds = 40;
    std::vector<std::vector<int>> outcome(rounds, std::vector<int>(stores, -1));
    std::vector<QString> errors(stores);
    std::barrier start(stores);
    std::vector<std::thread> workers;
    for (int s = 0; s < stores; ++s) {
        workers.emplace_back([&, s] {
            for (int round = 0; round < rounds; ++round) {
                start.arrive_and_wait();
                auto won = taskStores[s]->claimTransition(*id, stageOfRound(round), stageOfRound(round + 1));
                if (won)
                    outcome[round][s] = *won ? 1 : 0;
                else if (errors[s].isEmpty())
                    errors[s] = errorText(won.error());
                start.arrive_and_wait();
            }
        });
    }
    for (std::thread &worker : workers)
        worker.join();

    for (const QString &error : errors)
        QVERIFY2(error.isEmpty(), qPrintable(error));
    for (int round = 0; round < rounds; ++round) {
        QCOMPARE(std::count(outcome[round].cbegin(), outcome[round].cend(), 1), 1);
        QCOMPARE(std::count(outcome[round].cbegin(), outcome[round].cend(), 0), stores - 1);
    }
    auto task = taskStores.back()->task(*id);
    VERIFY_OK(task);
    QCOMPARE((*task)->stage, stageOfRound(rounds));
    QCOMPARE((*task)->version, 1 + rounds);
}

void tst_TaskStore::claimRaceInChildProcesses()
{
    QFETCH(QString, engine);
    STORE_SETTINGS(m_stores, settings, engine);
    qint64 id = 0;
    {
        auto store = Store::open(settings);
        VERIFY_OK(store);
        TaskStore tasks(**store);
        auto created = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/race"), stageOfRound(0)));
        VERIFY_OK(created);
        id = *created;
    }

    QStringList arguments = {QStringLiteral("--claim-child")};
    if (settings.driver == StoreSettings::Driver::Sqlite)
        arguments << QStringLiteral("sqlite") << settings.sqlitePath;
    else
        arguments << QStringLiteral("postgresql") << settings.host << QString::number(settings.port)
                  << settings.database << settings.user;

    constexpr int children = 3;
    constexpr int rounds = 30;
    std::vector<std::unique_ptr<QProcess>> processes;
    for (int c = 0; c < children; ++c) {
        auto process = std::make_unique<QProcess>();
        process->setProcessChannelMode(QProcess::ForwardedErrorChannel);
        // Only warnings from the children: their stores' open messages are noise here.
        QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
        environment.insert(QStringLiteral("QT_LOGGING_RULES"), QStringLiteral("sluice.*.debug=false;sluice.*.info=false"));
        process->setProcessEnvironment(environment);
        process->start(QCoreApplication::applicationFilePath(), arguments);
        QVERIFY2(process->waitForStarted(10000), qPrintable(process->errorString()));
        processes.push_back(std::move(process));
    }
    const auto readLine = [](QProcess &process) -> QString {
        while (!process.canReadLine()) {
            if (!process.waitForReadyRead(30000))
                return QStringLiteral("<no answer: %1>").arg(process.errorString());
        }
        return QString::fromUtf8(process.readLine()).trimmed();
    };
    for (auto &process : processes)
        QCOMPARE(readLine(*process), QStringLiteral("ready"));

    for (int round = 0; round < rounds; ++round) {
        // Each child is blocked reading stdin: one write each releases them together.
        const QByteArray go = QStringLiteral("go %1 %2 %3\n").arg(id).arg(stageOfRound(round), stageOfRound(round + 1)).toUtf8();
        for (auto &process : processes)
            process->write(go);
        int won = 0;
        QStringList answers;
        for (auto &process : processes) {
            const QString answer = readLine(*process);
            answers << answer;
            won += answer == QLatin1String("won") ? 1 : 0;
            QVERIFY2(answer == QLatin1String("won") || answer == QLatin1String("lost"), qPrintable(answer));
        }
        QVERIFY2(won == 1, qPrintable(QStringLiteral("round %1: %2").arg(round).arg(answers.join(QLatin1String(", ")))));
    }
    for (auto &process : processes) {
        process->closeWriteChannel();
        QVERIFY(process->waitForFinished(30000));
        QCOMPARE(process->exitStatus(), QProcess::NormalExit);
        QCOMPARE(process->exitCode(), 0);
    }

    auto store = Store::open(settings);
    VERIFY_OK(store);
    TaskStore tasks(**store);
    auto task = tasks.task(id);
    VERIFY_OK(task);
    QCOMPARE((*task)->stage, stageOfRound(rounds));
    QCOMPARE((*task)->version, 1 + rounds);
}

void tst_TaskStore::gateRunsRoundTrip()
{
    OPEN_STORE(m_stores, settings, store);
    TaskStore tasks(**store);
    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);
    auto otherId = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/other")));
    VERIFY_OK(otherId);
    auto db = (*store)->connection();
    VERIFY_OK(db);
    QSqlQuery job(*db);
    QVERIFY2(job.exec(QStringLiteral("INSERT INTO jobs (task_id, project, stage, kind, available_at, created_at, updated_at) "
                                     "VALUES (%1, 'shop', 'review', 'stage', 0, 0, 0)").arg(*id)),
             qPrintable(job.lastError().text()));
    const qint64 jobId = select(*db, QStringLiteral("SELECT MAX(id) FROM jobs")).first().first().toLongLong();

    const QDateTime t0 = QDateTime::fromMSecsSinceEpoch(Q_INT64_C(1700000000000), Qt::UTC);
    // An exit gate that failed with findings and nested evidence, recorded second but earlier.
    GateRunRecord failed;
    failed.taskId = *id;
    failed.jobId = jobId;
    failed.project = QStringLiteral("shop");
    failed.stage = QStringLiteral("review");
    failed.gate = QStringLiteral("review-verdict");
    failed.headSha = QStringLiteral("abc123");
    failed.verdict = GateVerdict::fail(
        QStringLiteral("review says CHANGES_REQUESTED"),
        {Finding{QStringLiteral("verdict"), QStringLiteral("verdict: CHANGES_REQUESTED"), QStringLiteral(".sluice/review.md"), 3,
                 QStringLiteral("blocking")},
         Finding{QStringLiteral("note"), QStringLiteral("ünïcode 'and' \"quotes\""), {}, 0, {}}},
        QJsonObject{{QStringLiteral("artifact"), QStringLiteral(".sluice/review.md")},
                    {QStringLiteral("keys"), QJsonArray{QStringLiteral("verdict"), 2, true}},
                    {QStringLiteral("nested"), QJsonObject{{QStringLiteral("depth"), 2.5}}}});
    failed.durationMs = 1234;
    failed.createdAt = t0.addSecs(10);
    // An edge gate that passed, without a job.
    GateRunRecord passed;
    passed.taskId = *id;
    passed.project = QStringLiteral("shop");
    passed.stage = QStringLiteral("deploy-staging");
    passed.toStage = QStringLiteral("deploy");
    passed.gate = QStringLiteral("security");
    passed.verdict = GateVerdict::pass(QStringLiteral("no secrets"), {{QStringLiteral("scanned"), 42}});
    passed.durationMs = 7;
    passed.createdAt = t0;
    GateRunRecord skipped = passed;
    skipped.gate = QStringLiteral("image-freshness");
    skipped.verdict = GateVerdict::skip(QStringLiteral("no image"));
    skipped.createdAt = t0.addSecs(20);
    GateRunRecord foreign = passed;
    foreign.taskId = *otherId;

    VERIFY_OK(tasks.recordGateRun(failed));
    VERIFY_OK(tasks.recordGateRun(passed));
    VERIFY_OK(tasks.recordGateRun(skipped));
    VERIFY_OK(tasks.recordGateRun(foreign));

    auto runs = tasks.gateRuns(*id);
    VERIFY_OK(runs);
    QCOMPARE(runs->size(), 3);
    // Oldest first, by when the gate ran.
    QCOMPARE(runs->at(0).gate, QStringLiteral("security"));
    QCOMPARE(runs->at(1).gate, QStringLiteral("review-verdict"));
    QCOMPARE(runs->at(2).gate, QStringLiteral("image-freshness"));

    const GateRunRecord &edge = runs->at(0);
    QVERIFY(edge.id > 0);
    QCOMPARE(edge.taskId, *id);
    QCOMPARE(edge.jobId, 0);
    QCOMPARE(edge.stage, QStringLiteral("deploy-staging"));
    QCOMPARE(edge.toStage, QStringLiteral("deploy"));
    QCOMPARE(edge.verdict.result(), GateVerdict::Result::Pass);
    QCOMPARE(edge.verdict.toJson(), passed.verdict.toJson());
    QCOMPARE(edge.durationMs, 7);
    QCOMPARE(edge.createdAt, t0);

    const GateRunRecord &exit = runs->at(1);
    QCOMPARE(exit.jobId, jobId);
    QCOMPARE(exit.project, QStringLiteral("shop"));
    QCOMPARE(exit.stage, QStringLiteral("review"));
    QCOMPARE(exit.toStage, QString());
    QCOMPARE(exit.headSha, QStringLiteral("abc123"));
    QCOMPARE(exit.verdict.result(), GateVerdict::Result::Fail);
    QCOMPARE(exit.verdict.reason(), failed.verdict.reason());
    QCOMPARE(exit.verdict.findings(), failed.verdict.findings());
    QCOMPARE(exit.verdict.evidence(), failed.verdict.evidence());
    QCOMPARE(exit.durationMs, 1234);
    QCOMPARE(exit.createdAt, t0.addSecs(10));
    QCOMPARE(runs->at(2).verdict.result(), GateVerdict::Result::Skip);

    // An exit gate stores NULL, not '': "to_stage IS NULL" finds the exit gates.
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE to_stage IS NULL")).first().first().toInt(), 1);
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE job_id IS NULL")).first().first().toInt(), 3);

    // The recording time defaults to now.
    GateRunRecord now = passed;
    now.createdAt = QDateTime();
    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    VERIFY_OK(tasks.recordGateRun(now));
    runs = tasks.gateRuns(*id);
    VERIFY_OK(runs);
    QCOMPARE(runs->size(), 4);
    QVERIFY(runs->last().createdAt.toMSecsSinceEpoch() >= before);

    auto none = tasks.gateRuns(*otherId + 1000);
    VERIFY_OK(none);
    QCOMPARE(none->size(), 0);

    GateRunRecord incomplete = passed;
    incomplete.gate.clear();
    auto refused = tasks.recordGateRun(incomplete);
    QVERIFY(!refused);
    QCOMPARE(refused.error().code, ErrorCode::InvalidArgument);
    // A task that does not exist: the foreign key refuses it.
    GateRunRecord orphan = passed;
    orphan.taskId = *otherId + 1000;
    auto orphaned = tasks.recordGateRun(orphan);
    QVERIFY(!orphaned);
    QCOMPARE(orphaned.error().code, ErrorCode::Storage);
    // The failed statement does not spoil the next call on this connection.
    VERIFY_OK(tasks.recordGateRun(passed));
}

void tst_TaskStore::historyIsTheTasksAudit()
{
    OPEN_STORE(m_stores, settings, store);
    Store &s = **store;
    TaskStore tasks(s);
    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);

    auto empty = tasks.history(*id);
    VERIFY_OK(empty);
    QCOMPARE(empty->size(), 0);

    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    VERIFY_OK(s.audit(AuditEntry{QStringLiteral("engine"), QStringLiteral("advance"), QStringLiteral("shop"), *id,
                                 {{QStringLiteral("from"), QStringLiteral("development")},
                                  {QStringLiteral("to"), QStringLiteral("review")}}}));
    VERIFY_OK(s.audit(AuditEntry{QStringLiteral("reaper"), QStringLiteral("reap"), QString(), 0, {}}));
    VERIFY_OK(s.audit(AuditEntry{QStringLiteral("engine"), QStringLiteral("advance"), QStringLiteral("shop"), *id + 1, {}}));
    VERIFY_OK(s.audit(AuditEntry{QStringLiteral("cli:approve"), QStringLiteral("approve"), QString(), *id,
                                 {{QStringLiteral("by"), QStringLiteral("alice")}}}));
    const qint64 after = QDateTime::currentMSecsSinceEpoch();

    auto history = tasks.history(*id);
    VERIFY_OK(history);
    QCOMPARE(history->size(), 2);
    QCOMPARE(history->at(0).actor, QStringLiteral("engine"));
    QCOMPARE(history->at(0).action, QStringLiteral("advance"));
    QCOMPARE(history->at(0).project, QStringLiteral("shop"));
    QCOMPARE(history->at(0).taskId, *id);
    QCOMPARE(history->at(0).details.value(QLatin1String("to")).toString(), QStringLiteral("review"));
    QVERIFY(history->at(0).at.toMSecsSinceEpoch() >= before);
    QVERIFY(history->at(0).at.toMSecsSinceEpoch() <= after);
    QCOMPARE(history->at(1).actor, QStringLiteral("cli:approve"));
    QCOMPARE(history->at(1).project, QString());
    QCOMPARE(history->at(1).details, (QJsonObject{{QStringLiteral("by"), QStringLiteral("alice")}}));
    QVERIFY(history->at(0).id < history->at(1).id);
}

void tst_TaskStore::destroyedAfterTheStore()
{
    OPEN_STORE(m_stores, settings, opened);
    std::unique_ptr<Store> store = std::move(*opened);
    auto tasks = std::make_unique<TaskStore>(*store);
    auto id = tasks->create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);
    // Statements prepared on a thread's connection that is gone with its thread...
    QString threadError;
    std::thread([&] {
        auto task = tasks->task(*id);
        if (!task)
            threadError = errorText(task.error());
    }).join();
    QVERIFY2(threadError.isEmpty(), qPrintable(threadError));
    // ...are dropped when the next thread comes, and those of this thread when the Store goes:
    // neither a new thread's call nor destroying the TaskStore afterwards touches a dead driver.
    std::thread([&] {
        auto task = tasks->task(*id);
        if (!task)
            threadError = errorText(task.error());
    }).join();
    QVERIFY2(threadError.isEmpty(), qPrintable(threadError));
    const QString mainConnection = (*store->connection()).connectionName();
    store.reset();
    QVERIFY(!QSqlDatabase::contains(mainConnection));
    tasks.reset();
}

void tst_TaskStore::postgresqlRecoversAfterLosingTheServer()
{
    STORE_SETTINGS(m_stores, settings, QStringLiteral("postgresql"));
    auto store = Store::open(settings);
    VERIFY_OK(store);
    TaskStore tasks(**store);
    auto id = tasks.create(newTask(QStringLiteral("shop"), QStringLiteral("feature/cart")));
    VERIFY_OK(id);
    VERIFY_OK(tasks.task(*id)); // prepared on this connection

    // What a server restart or pg_terminate_backend does to the connection and, with it,
    // to every statement prepared on it.
    QString failure;
    QSqlDatabase admin = m_stores.admin(&failure);
    QVERIFY2(admin.isOpen(), qPrintable(failure));
    QSqlQuery kill(admin);
    QVERIFY2(kill.exec(QStringLiteral("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                                      "WHERE datname = '%1' AND pid <> pg_backend_pid()").arg(settings.database)),
             qPrintable(kill.lastError().text()));
    QVERIFY(kill.next());
    QVERIFY(kill.value(0).toBool());

    auto lost = tasks.task(*id);
    QVERIFY(!lost);
    QCOMPARE(lost.error().code, ErrorCode::Storage);
    // The next call reconnects and prepares its statements again.
    auto again = tasks.task(*id);
    VERIFY_OK(again);
    QVERIFY(again->has_value());
    auto moved = tasks.claimTransition(*id, QStringLiteral("development"), QStringLiteral("review"));
    VERIFY_OK(moved);
    QVERIFY(*moved);
}

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    if (argc > 1 && qstrcmp(argv[1], "--claim-child") == 0)
        return runClaimChild(app.arguments());
    tst_TaskStore test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "tst_taskstore.moc"
