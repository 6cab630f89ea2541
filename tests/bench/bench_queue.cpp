// SPDX-License-Identifier: Apache-2.0
//
// Job queue throughput on SQLite and PostgreSQL: claim + complete of N queued jobs on one
// thread, against a floor measured in the same run on the same table (one bare
// "UPDATE jobs SET updated_at = ? WHERE id = ?" per job, the least a claim could write).
// Also prints enqueue throughput and a run with several threads claiming at once (two
// Stores, as two nodes), for information.
//
//   bench_queue [--jobs N] [--threads T] [--engine sqlite|postgresql|all]
//
// SQLite uses a file in a temporary directory. PostgreSQL uses a fresh database on the
// server described by the file $SLUICE_TEST_PG_CONNINFO (tests/support/pg-test-server.sh
// writes one); without it the PostgreSQL rows are skipped. Exit status 1 when a target is
// missed, 2 when anything fails.

#include "store/jobqueue.h"
#include "store/store.h"
#include "store/taskstore.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QHash>
#include <QLoggingCategory>
#include <QSqlError>
#include <QSqlQuery>
#include <QTemporaryDir>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

using namespace Sluice;

namespace {

struct Figures {
    QString engine;
    double enqueuePerSecond = 0;
    double floorPerSecond = 0;
    double claimCompletePerSecond = 0; // one at a time
    double batchedPerSecond = 0;       // as the worker claims and completes: up to its concurrency at once
    double threadedPerSecond = 0;
    double target = 0;
};

QString errorText(const Error &error)
{
    return errorCodeName(error.code) + QLatin1String(": ") + error.toString();
}

[[noreturn]] void die(const QString &message)
{
    std::fprintf(stderr, "bench_queue: %s\n", qPrintable(message));
    std::exit(2);
}

double perSecond(qint64 count, qint64 nsecs)
{
    return nsecs > 0 ? double(count) * 1e9 / double(nsecs) : 0;
}

bool exec(QSqlDatabase db, const QString &sql, QString *failure)
{
    QSqlQuery query(db);
    if (query.exec(sql))
        return true;
    *failure = query.lastError().text();
    return false;
}

// N tasks in one transaction (set-up, not measured): jobs belong to tasks, so the queue's
// indexes (one open job per task, stage and kind) work as in service.
QList<qint64> createTasks(Store &store, int count, int projects)
{
    Result<QSqlDatabase> db = store.connection();
    if (!db)
        die(errorText(db.error()));
    QString failure;
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    if (!db->transaction())
        die(db->lastError().text());
    QSqlQuery insert(*db);
    if (!insert.prepare(QStringLiteral("INSERT INTO tasks (project, title, branch, stage, created_at, updated_at) "
                                       "VALUES (?, ?, ?, 'development', ?, ?)")))
        die(insert.lastError().text());
    for (int i = 0; i < count; ++i) {
        insert.addBindValue(QStringLiteral("project-%1").arg(i % projects));
        insert.addBindValue(QStringLiteral("task %1").arg(i));
        insert.addBindValue(QStringLiteral("bench/%1").arg(i));
        insert.addBindValue(now);
        insert.addBindValue(now);
        if (!insert.exec())
            die(insert.lastError().text());
    }
    if (!db->commit())
        die(db->lastError().text());
    QList<qint64> ids;
    QSqlQuery select(*db);
    if (!select.exec(QStringLiteral("SELECT id FROM tasks ORDER BY id")))
        die(select.lastError().text());
    while (select.next())
        ids.append(select.value(0).toLongLong());
    return ids;
}

// Enqueues one job per task for @p stage; returns the nanoseconds it took.
qint64 enqueueAll(JobQueue &queue, const QList<qint64> &taskIds, int projects, const QString &stage, QList<qint64> *jobIds)
{
    QElapsedTimer timer;
    timer.start();
    for (qsizetype i = 0; i < taskIds.size(); ++i) {
        NewJob job;
        job.taskId = taskIds.at(i);
        job.project = QStringLiteral("project-%1").arg(i % projects);
        job.stage = stage;
        job.payload = {{QStringLiteral("role"), QStringLiteral("developer")}};
        Result<std::optional<qint64>> id = queue.enqueue(job);
        if (!id || !id->has_value())
            die(id ? QStringLiteral("job of task %1 was not enqueued").arg(taskIds.at(i)) : errorText(id.error()));
        if (jobIds)
            jobIds->append(**id);
    }
    return timer.nsecsElapsed();
}

// The floor: one prepared bare UPDATE per job, each its own transaction, as complete() is.
qint64 floorRun(Store &store, const QList<qint64> &jobIds)
{
    Result<QSqlDatabase> db = store.connection();
    if (!db)
        die(errorText(db.error()));
    QSqlQuery update(*db);
    if (!update.prepare(QStringLiteral("UPDATE jobs SET updated_at = ? WHERE id = ?")))
        die(update.lastError().text());
    QElapsedTimer timer;
    timer.start();
    for (qint64 id : jobIds) {
        update.bindValue(0, QDateTime::currentMSecsSinceEpoch());
        update.bindValue(1, id);
        if (!update.exec())
            die(update.lastError().text());
        if (update.numRowsAffected() != 1)
            die(QStringLiteral("the floor update of job %1 changed %2 rows").arg(id).arg(update.numRowsAffected()));
    }
    return timer.nsecsElapsed();
}

// Claims and completes until nothing is claimable; returns how many. @p batch 1: one job per
// call. Otherwise as the worker does with worker.concurrency @p batch: a claim fills the
// room, and the jobs that ended together are completed and their room refilled in one call.
qint64 drain(JobQueue &queue, const QString &node, const ConcurrencyLimits &limits, int batch, QString *failure)
{
    qint64 count = 0;
    if (batch == 1) {
        for (;;) {
            Result<std::optional<JobRecord>> claimed = queue.claimNext(node, limits, QDateTime::currentDateTimeUtc());
            if (!claimed) {
                *failure = errorText(claimed.error());
                return count;
            }
            if (!claimed->has_value())
                return count;
            Result<bool> completed = queue.complete((*claimed)->id, node);
            if (!completed || !*completed) {
                *failure = completed ? QStringLiteral("job %1 was lost").arg((*claimed)->id) : errorText(completed.error());
                return count;
            }
            ++count;
        }
    }
    // The worker's way: the first claim fills the room; from then on the jobs that ended
    // are completed and the room they left refilled in one call.
    Result<QList<JobRecord>> claimed = queue.claim(node, limits, QDateTime::currentDateTimeUtc(), batch);
    if (!claimed) {
        *failure = errorText(claimed.error());
        return count;
    }
    QList<JobRecord> held = *claimed;
    while (!held.isEmpty()) {
        QList<qint64> ids;
        for (const JobRecord &job : std::as_const(held))
            ids.append(job.id);
        Result<JobQueue::Turnover> turnover = queue.completeAndClaim(ids, node, limits, QDateTime::currentDateTimeUtc(), batch);
        if (!turnover || turnover->completed.size() != ids.size()) {
            *failure = turnover ? QStringLiteral("%1 of %2 jobs were lost").arg(ids.size() - turnover->completed.size()).arg(ids.size())
                                : errorText(turnover.error());
            return count;
        }
        count += ids.size();
        held = turnover->claimed;
    }
    return count;
}

void checkAllDone(JobQueue &queue, qint64 expected)
{
    Result<QHash<QString, int>> counts = queue.countsByStatus();
    if (!counts)
        die(errorText(counts.error()));
    if (counts->value(QStringLiteral("done")) != expected || counts->value(QStringLiteral("queued")) != 0
        || counts->value(QStringLiteral("running")) != 0)
        die(QStringLiteral("after the run: %1 done (expected %2), %3 queued, %4 running")
                .arg(counts->value(QStringLiteral("done"))).arg(expected)
                .arg(counts->value(QStringLiteral("queued"))).arg(counts->value(QStringLiteral("running"))));
}

Figures measure(const QString &engine, const StoreSettings &settings, int jobs, int threads, int batch, double target)
{
    constexpr int projects = 10;
    Figures figures;
    figures.engine = engine;
    figures.target = target;

    auto opened = Store::open(settings);
    if (!opened)
        die(errorText(opened.error()));
    Store &store = **opened;
    JobQueue queue(store);
    // Room for every thread; one thread never has more than one job running anyway.
    ConcurrencyLimits limits;
    limits.global = std::max(threads * 2, batch);
    limits.perProjectDefault = limits.global;

    const QList<qint64> taskIds = createTasks(store, jobs, projects);
    QList<qint64> jobIds;
    figures.enqueuePerSecond = perSecond(jobs, enqueueAll(queue, taskIds, projects, QStringLiteral("development"), &jobIds));
    figures.floorPerSecond = perSecond(jobs, floorRun(store, jobIds));

    QString failure;
    QElapsedTimer timer;
    timer.start();
    qint64 drained = drain(queue, QStringLiteral("bench-node"), limits, 1, &failure);
    qint64 nsecs = timer.nsecsElapsed();
    if (!failure.isEmpty())
        die(failure);
    if (drained != jobs)
        die(QStringLiteral("claimed %1 of %2 jobs").arg(drained).arg(jobs));
    figures.claimCompletePerSecond = perSecond(jobs, nsecs);
    checkAllDone(queue, jobs);

    enqueueAll(queue, taskIds, projects, QStringLiteral("testing"), nullptr);
    timer.restart();
    drained = drain(queue, QStringLiteral("bench-node"), limits, batch, &failure);
    nsecs = timer.nsecsElapsed();
    if (!failure.isEmpty())
        die(failure);
    if (drained != jobs)
        die(QStringLiteral("claimed %1 of %2 jobs in batches").arg(drained).arg(jobs));
    figures.batchedPerSecond = perSecond(jobs, nsecs);
    checkAllDone(queue, qint64(jobs) * 2);

    // Several claimers at once, over two Stores (two nodes). Not a target: what contention costs.
    auto second = Store::open(settings);
    if (!second)
        die(errorText(second.error()));
    JobQueue otherQueue(**second);
    enqueueAll(queue, taskIds, projects, QStringLiteral("review"), nullptr);
    std::atomic<qint64> total{0};
    std::vector<QString> failures(threads);
    std::vector<std::thread> workers;
    timer.restart();
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            JobQueue &q = t % 2 == 0 ? queue : otherQueue;
            total += drain(q, QStringLiteral("bench-node-%1").arg(t % 2), limits, 1, &failures[t]);
        });
    }
    for (std::thread &worker : workers)
        worker.join();
    const qint64 threadedNsecs = timer.nsecsElapsed();
    for (const QString &f : failures) {
        if (!f.isEmpty())
            die(f);
    }
    if (total != jobs)
        die(QStringLiteral("%1 threads claimed %2 of %3 jobs").arg(threads).arg(total.load()).arg(jobs));
    figures.threadedPerSecond = perSecond(jobs, threadedNsecs);
    checkAllDone(queue, qint64(jobs) * 3);
    return figures;
}

QHash<QString, QString> readConninfo(const QString &path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        die(QStringLiteral("cannot read %1").arg(path));
    QHash<QString, QString> values;
    const QStringList lines = QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    for (const QString &line : lines)
        values.insert(line.section(QLatin1Char('='), 0, 0).trimmed(), line.section(QLatin1Char('='), 1).trimmed());
    return values;
}

} // namespace

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Job queue claim+complete throughput on SQLite and PostgreSQL."));
    parser.addHelpOption();
    const QCommandLineOption jobsOption(QStringLiteral("jobs"), QStringLiteral("Jobs per run (default 20000)."),
                                        QStringLiteral("n"), QStringLiteral("20000"));
    const QCommandLineOption threadsOption(QStringLiteral("threads"),
                                           QStringLiteral("Claimer threads of the contended run (default 4)."),
                                           QStringLiteral("n"), QStringLiteral("4"));
    const QCommandLineOption engineOption(QStringLiteral("engine"), QStringLiteral("sqlite, postgresql or all (default)."),
                                          QStringLiteral("engine"), QStringLiteral("all"));
    const QCommandLineOption batchOption(QStringLiteral("batch"),
                                         QStringLiteral("Jobs claimed and completed per call in the batched run, as a worker "
                                                        "with this worker.concurrency does (default 4, the default)."),
                                         QStringLiteral("n"), QStringLiteral("4"));
    parser.addOptions({jobsOption, threadsOption, engineOption, batchOption});
    parser.process(app);
    const int jobs = parser.value(jobsOption).toInt();
    const int threads = parser.value(threadsOption).toInt();
    const QString engine = parser.value(engineOption);
    const int batch = parser.value(batchOption).toInt();
    if (jobs <= 0 || threads <= 0 || batch <= 0)
        die(QStringLiteral("--jobs, --threads and --batch need positive numbers"));
    // The store's per-connection info lines would drown the table.
    QLoggingCategory::setFilterRules(QStringLiteral("sluice.*.info=false\nsluice.*.debug=false"));

    QList<Figures> results;
    QTemporaryDir tmp;
    if (engine == QLatin1String("sqlite") || engine == QLatin1String("all")) {
        StoreSettings settings;
        settings.driver = StoreSettings::Driver::Sqlite;
        settings.sqlitePath = tmp.filePath(QStringLiteral("bench.db"));
        settings.busyTimeoutMs = 60000;
        results.append(measure(QStringLiteral("sqlite"), settings, jobs, threads, batch, 10000));
    }

    QString pgDatabase;
    QSqlDatabase admin;
    const QString conninfo = qEnvironmentVariable("SLUICE_TEST_PG_CONNINFO");
    if (engine == QLatin1String("postgresql") || engine == QLatin1String("all")) {
        if (conninfo.isEmpty()) {
            if (engine == QLatin1String("postgresql"))
                die(QStringLiteral("SLUICE_TEST_PG_CONNINFO is not set (tests/support/pg-test-server.sh start DIR writes DIR/conninfo)"));
            std::printf("postgresql: skipped, SLUICE_TEST_PG_CONNINFO is not set\n");
        } else {
            const QHash<QString, QString> server = readConninfo(conninfo);
            admin = QSqlDatabase::addDatabase(QStringLiteral("QPSQL"), QStringLiteral("bench-admin"));
            admin.setHostName(server.value(QStringLiteral("host")));
            admin.setPort(server.value(QStringLiteral("port")).toInt());
            admin.setDatabaseName(server.value(QStringLiteral("dbname")));
            admin.setUserName(server.value(QStringLiteral("user")));
            if (!admin.open())
                die(QStringLiteral("cannot connect to PostgreSQL: %1").arg(admin.lastError().text()));
            pgDatabase = QStringLiteral("sluice_bench_%1").arg(QCoreApplication::applicationPid());
            QString failure;
            if (!exec(admin, QStringLiteral("CREATE DATABASE \"%1\"").arg(pgDatabase), &failure))
                die(failure);
            StoreSettings settings;
            settings.driver = StoreSettings::Driver::Postgresql;
            settings.host = server.value(QStringLiteral("host"));
            settings.port = server.value(QStringLiteral("port")).toInt();
            settings.user = server.value(QStringLiteral("user"));
            settings.database = pgDatabase;
            results.append(measure(QStringLiteral("postgresql"), settings, jobs, threads, batch, 2000));
        }
    }

    std::printf("\nsluice job queue: %d jobs per run, %u cores; floor = one bare UPDATE per job, in its own transaction\n",
                jobs, std::thread::hardware_concurrency());
    std::printf("one/s: claim+complete one job per call; batch/s: up to %d per call, as a worker with "
                "worker.concurrency %d claims and completes (the target applies to this)\n", batch, batch);
    std::printf("%-11s %10s %10s %10s %10s %9s %9s %7s %14s\n", "engine", "enqueue/s", "floor/s", "one/s", "batch/s",
                "x_floor", "target", "result", QStringLiteral("%1 threads/s").arg(threads).toUtf8().constData());
    bool missed = false;
    for (const Figures &f : results) {
        const bool pass = f.batchedPerSecond >= f.target;
        missed = missed || !pass;
        // x_floor: the batched rate against the floor (above 1: cheaper per job than one bare write).
        std::printf("%-11s %10.0f %10.0f %10.0f %10.0f %9.2f %9.0f %7s %14.0f\n", qPrintable(f.engine), f.enqueuePerSecond,
                    f.floorPerSecond, f.claimCompletePerSecond, f.batchedPerSecond, f.batchedPerSecond / f.floorPerSecond,
                    f.target, pass ? "PASS" : "MISS", f.threadedPerSecond);
    }

    if (!pgDatabase.isEmpty()) {
        QString failure;
        if (!exec(admin, QStringLiteral("DROP DATABASE IF EXISTS \"%1\" WITH (FORCE)").arg(pgDatabase), &failure))
            std::fprintf(stderr, "bench_queue: cannot drop %s: %s\n", qPrintable(pgDatabase), qPrintable(failure));
        admin.close();
    }
    admin = QSqlDatabase();
    QSqlDatabase::removeDatabase(QStringLiteral("bench-admin"));
    return missed ? 1 : 0;
}
