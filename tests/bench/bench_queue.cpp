// SPDX-License-Identifier: Apache-2.0
//
// Job queue throughput on SQLite and PostgreSQL: claim + complete of N queued jobs, against a
// floor measured in the same run on the same table (one bare "UPDATE jobs SET updated_at = ?
// WHERE id = ?" per job, the least a claim could write):
//
//   one/s      one job per call (claimNext: on PostgreSQL the one-job statement)
//   via_batch/s one job per call through the batch claim statement (claim() asked for two
//              with room for one), the path one/s took before the one-job statement came
//              back; x_batch is one/s over it, both measured in this run
//   batch/s    one node claiming and completing up to --batch jobs per call, as a worker with
//              that worker.concurrency does (one statement claims the batch)
//   nodes/s    --nodes nodes at once (each a thread with a Store of its own and its own node
//              name), each claiming as batch/s does; x_1node is its ratio to batch/s
//
// and the claim latency of an idle worker (enqueued -> running) with polling every
// --poll-ms and, on PostgreSQL, woken by LISTEN/NOTIFY, for --latency-jobs jobs enqueued by
// another connection at random intervals.
//
//   bench_queue [--jobs N] [--batch B] [--nodes K] [--engine sqlite|postgresql|all]
//
// SQLite uses a file in a temporary directory. PostgreSQL uses a fresh database on the
// server described by the file $SLUICE_TEST_PG_CONNINFO (tests/support/pg-test-server.sh
// writes one); without it the PostgreSQL rows are skipped. Exit status 1 when a target is
// missed, 2 when anything fails.

#include "store/jobqueue.h"
#include "store/store.h"
#include "store/storelistener.h"
#include "store/taskstore.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QFile>
#include <QHash>
#include <QLoggingCategory>
#include <QSqlError>
#include <QSqlQuery>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QTimer>

#include <algorithm>
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
    double viaBatchPerSecond = 0;      // one at a time through the batch statement
    double batchedPerSecond = 0;       // one node, as the worker claims and completes: up to its concurrency at once
    double nodesPerSecond = 0;         // several nodes at once, each batched
    double target = 0;                 // batch/s
    double nodesTarget = 0;            // nodes/s over batch/s; 0: none
    // Claim latency of an idle worker, milliseconds: p50, p99 (polling; LISTEN/NOTIFY).
    double pollP50 = 0, pollP99 = 0, listenP50 = -1, listenP99 = -1;
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
    if (batch == 0) {
        // One job per call through the batch statement: asked for two, room for one.
        ConcurrencyLimits one = limits;
        one.global = 1;
        for (;;) {
            Result<QList<JobRecord>> claimed = queue.claim(node, one, QDateTime::currentDateTimeUtc(), 2);
            if (!claimed) {
                *failure = errorText(claimed.error());
                return count;
            }
            if (claimed->isEmpty())
                return count;
            if (claimed->size() != 1) {
                *failure = QStringLiteral("claimed %1 jobs with room for one").arg(claimed->size());
                return count;
            }
            Result<bool> completed = queue.complete(claimed->constFirst().id, node);
            if (!completed || !*completed) {
                *failure = completed ? QStringLiteral("job %1 was lost").arg(claimed->constFirst().id) : errorText(completed.error());
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

double percentile(QList<double> values, double p)
{
    if (values.isEmpty())
        return 0;
    std::sort(values.begin(), values.end());
    return values.at(std::min<qsizetype>(values.size() - 1, qsizetype(p * double(values.size()))));
}

/*
 * The claim latency of an idle worker: @p count jobs enqueued through another Store (another
 * process's connection) at random intervals, claimed by a worker that looks when its poll
 * fires (every @p pollMs) or, with @p listen, also when LISTEN/NOTIFY wakes it. Latency: from
 * the job's creation to its claim, in milliseconds.
 */
QList<double> claimLatency(const StoreSettings &settings, const QList<qint64> &taskIds, int count, int pollMs, bool listen,
                           const QString &stage)
{
    auto opened = Store::open(settings);
    if (!opened)
        die(errorText(opened.error()));
    Store &store = **opened;
    JobQueue queue(store);
    ConcurrencyLimits limits;
    limits.global = 64;
    limits.perProjectDefault = 64;
    QList<double> latencies;
    QEventLoop loop;
    const auto claimAll = [&] {
        for (;;) {
            Result<QList<JobRecord>> claimed = queue.claim(QStringLiteral("latency-node"), limits, QDateTime::currentDateTimeUtc(), 64);
            if (!claimed)
                die(errorText(claimed.error()));
            if (claimed->isEmpty())
                break;
            QList<JobClaim> claims;
            for (const JobRecord &job : std::as_const(*claimed)) {
                latencies.append(double(job.createdAt.msecsTo(job.claimedAt)));
                claims.append(job.claim());
            }
            if (auto done = queue.complete(claims); !done)
                die(errorText(done.error()));
        }
        if (latencies.size() >= count)
            loop.quit();
    };
    QTimer poll;
    QObject::connect(&poll, &QTimer::timeout, &loop, claimAll);
    poll.start(pollMs);
    std::unique_ptr<StoreListener> listener;
    if (listen) {
        auto listening = StoreListener::listen(store, JobQueue::wakeChannel());
        if (!listening)
            die(errorText(listening.error()));
        listener = std::move(*listening);
        QObject::connect(listener.get(), &StoreListener::notified, &loop, claimAll);
    }
    std::thread producer([&] {
        auto other = Store::open(settings);
        if (!other)
            die(errorText(other.error()));
        JobQueue enqueuer(**other);
        for (int i = 0; i < count; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20 + QRandomGenerator::global()->bounded(100)));
            NewJob job;
            job.taskId = taskIds.at(i);
            job.project = QStringLiteral("project-%1").arg(i % 10);
            job.stage = stage;
            if (auto id = enqueuer.enqueue(job); !id || !id->has_value())
                die(id ? QStringLiteral("latency job %1 was not enqueued").arg(i) : errorText(id.error()));
        }
    });
    QTimer::singleShot(120000, &loop, [&] { die(QStringLiteral("the latency run did not claim %1 jobs in 2 minutes").arg(count)); });
    loop.exec();
    producer.join();
    return latencies;
}

Figures measure(const QString &engine, const StoreSettings &settings, int jobs, int nodes, int batch, double target, double nodesTarget,
                int latencyCount, int pollMs)
{
    constexpr int projects = 10;
    Figures figures;
    figures.engine = engine;
    figures.target = target;
    figures.nodesTarget = nodesTarget;

    auto opened = Store::open(settings);
    if (!opened)
        die(errorText(opened.error()));
    Store &store = **opened;
    JobQueue queue(store);
    // Room for a whole batch on every node.
    ConcurrencyLimits limits;
    limits.global = batch;
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

    enqueueAll(queue, taskIds, projects, QStringLiteral("analysis"), nullptr);
    timer.restart();
    drained = drain(queue, QStringLiteral("bench-node"), limits, 0, &failure);
    nsecs = timer.nsecsElapsed();
    if (!failure.isEmpty())
        die(failure);
    if (drained != jobs)
        die(QStringLiteral("claimed %1 of %2 jobs one by one through the batch statement").arg(drained).arg(jobs));
    figures.viaBatchPerSecond = perSecond(jobs, nsecs);
    checkAllDone(queue, qint64(jobs) * 2);

    enqueueAll(queue, taskIds, projects, QStringLiteral("testing"), nullptr);
    timer.restart();
    drained = drain(queue, QStringLiteral("bench-node"), limits, batch, &failure);
    nsecs = timer.nsecsElapsed();
    if (!failure.isEmpty())
        die(failure);
    if (drained != jobs)
        die(QStringLiteral("claimed %1 of %2 jobs in batches").arg(drained).arg(jobs));
    figures.batchedPerSecond = perSecond(jobs, nsecs);
    checkAllDone(queue, qint64(jobs) * 3);

    // Several nodes at once, each a Store of its own (its own connections) with its own node
    // name, each claiming and completing as the batched run does.
    std::vector<std::unique_ptr<Store>> nodeStores;
    for (int n = 0; n < nodes; ++n) {
        auto opened = Store::open(settings);
        if (!opened)
            die(errorText(opened.error()));
        nodeStores.push_back(std::move(*opened));
    }
    enqueueAll(queue, taskIds, projects, QStringLiteral("review"), nullptr);
    std::atomic<qint64> total{0};
    std::vector<QString> failures(nodes);
    std::vector<std::thread> workers;
    timer.restart();
    for (int n = 0; n < nodes; ++n) {
        workers.emplace_back([&, n] {
            JobQueue q(*nodeStores[n]);
            total += drain(q, QStringLiteral("bench-node-%1").arg(n), limits, batch, &failures[n]);
        });
    }
    for (std::thread &worker : workers)
        worker.join();
    const qint64 nodesNsecs = timer.nsecsElapsed();
    for (const QString &f : failures) {
        if (!f.isEmpty())
            die(f);
    }
    if (total != jobs)
        die(QStringLiteral("%1 nodes claimed %2 of %3 jobs").arg(nodes).arg(total.load()).arg(jobs));
    figures.nodesPerSecond = perSecond(jobs, nodesNsecs);
    checkAllDone(queue, qint64(jobs) * 4);
    nodeStores.clear();

    // Claim latency, before (polling) and after (LISTEN/NOTIFY, PostgreSQL only).
    const int latencyJobs = std::min(jobs, latencyCount);
    const QList<double> polled = claimLatency(settings, taskIds, latencyJobs, pollMs, false, QStringLiteral("latency-poll"));
    figures.pollP50 = percentile(polled, 0.5);
    figures.pollP99 = percentile(polled, 0.99);
    if (settings.driver == StoreSettings::Driver::Postgresql) {
        const QList<double> woken = claimLatency(settings, taskIds, latencyJobs, pollMs, true, QStringLiteral("latency-listen"));
        figures.listenP50 = percentile(woken, 0.5);
        figures.listenP99 = percentile(woken, 0.99);
    }
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
    const QCommandLineOption nodesOption(QStringLiteral("nodes"), QStringLiteral("Nodes of the several-nodes run (default 3)."),
                                         QStringLiteral("n"), QStringLiteral("3"));
    const QCommandLineOption engineOption(QStringLiteral("engine"), QStringLiteral("sqlite, postgresql or all (default)."),
                                          QStringLiteral("engine"), QStringLiteral("all"));
    const QCommandLineOption batchOption(QStringLiteral("batch"),
                                         QStringLiteral("Jobs claimed and completed per call in the batched runs, as a worker "
                                                        "with this worker.concurrency does (default 64)."),
                                         QStringLiteral("n"), QStringLiteral("64"));
    const QCommandLineOption latencyOption(QStringLiteral("latency-jobs"),
                                           QStringLiteral("Jobs of each claim latency run (default 100)."), QStringLiteral("n"),
                                           QStringLiteral("100"));
    const QCommandLineOption pollOption(QStringLiteral("poll-ms"), QStringLiteral("The idle worker's poll interval (default 500)."),
                                        QStringLiteral("ms"), QStringLiteral("500"));
    parser.addOptions({jobsOption, nodesOption, engineOption, batchOption, latencyOption, pollOption});
    parser.process(app);
    const int jobs = parser.value(jobsOption).toInt();
    const int nodes = parser.value(nodesOption).toInt();
    const QString engine = parser.value(engineOption);
    const int batch = parser.value(batchOption).toInt();
    const int latencyJobs = parser.value(latencyOption).toInt();
    const int pollMs = parser.value(pollOption).toInt();
    if (jobs <= 0 || nodes <= 0 || batch <= 0 || latencyJobs <= 0 || pollMs <= 0)
        die(QStringLiteral("--jobs, --nodes, --batch, --latency-jobs and --poll-ms need positive numbers"));
    // The store's per-connection info lines would drown the table.
    QLoggingCategory::setFilterRules(QStringLiteral("sluice.*.info=false\nsluice.*.debug=false"));

    QList<Figures> results;
    QTemporaryDir tmp;
    if (engine == QLatin1String("sqlite") || engine == QLatin1String("all")) {
        StoreSettings settings;
        settings.driver = StoreSettings::Driver::Sqlite;
        settings.sqlitePath = tmp.filePath(QStringLiteral("bench.db"));
        settings.busyTimeoutMs = 60000;
        // One file has one writer at a time: several nodes on it share, not add, throughput.
        results.append(measure(QStringLiteral("sqlite"), settings, jobs, nodes, batch, 10000, 0, latencyJobs, pollMs));
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
            results.append(measure(QStringLiteral("postgresql"), settings, jobs, nodes, batch, 10000, 1.5, latencyJobs, pollMs));
        }
    }

    std::printf("\nsluice job queue: %d jobs per run, %u cores; floor = one bare UPDATE per job, in its own transaction\n",
                jobs, std::thread::hardware_concurrency());
    std::printf("one/s: claim+complete one job per call; batch/s: one node, up to %d per call, as a worker with "
                "worker.concurrency %d claims and completes; %d nodes/s: that many nodes at once, each batched\n",
                batch, batch, nodes);
    std::printf("via_batch/s: one job per call through the batch statement (the path of one/s before its own statement); "
                "x_batch: one/s over via_batch/s\n");
    std::printf("%-11s %10s %10s %10s %12s %8s %10s %9s %9s %12s %9s %9s %7s\n", "engine", "enqueue/s", "floor/s", "one/s", "via_batch/s",
                "x_batch", "batch/s", "x_floor", "target", QStringLiteral("%1nodes/s").arg(nodes).toUtf8().constData(), "x_1node", "target",
                "result");
    bool missed = false;
    for (const Figures &f : results) {
        const double ratio = f.batchedPerSecond > 0 ? f.nodesPerSecond / f.batchedPerSecond : 0;
        const bool pass = f.batchedPerSecond >= f.target && (f.nodesTarget <= 0 || ratio >= f.nodesTarget);
        missed = missed || !pass;
        std::printf("%-11s %10.0f %10.0f %10.0f %12.0f %8.2f %10.0f %9.2f %9.0f %12.0f %9.2f %9s %7s\n", qPrintable(f.engine),
                    f.enqueuePerSecond, f.floorPerSecond, f.claimCompletePerSecond, f.viaBatchPerSecond,
                    f.viaBatchPerSecond > 0 ? f.claimCompletePerSecond / f.viaBatchPerSecond : 0, f.batchedPerSecond, f.batchedPerSecond / f.floorPerSecond, f.target,
                    f.nodesPerSecond, ratio, f.nodesTarget > 0 ? qPrintable(QStringLiteral(">=%1").arg(f.nodesTarget)) : "-",
                    pass ? "PASS" : "MISS");
    }
    std::printf("\nclaim latency of an idle worker (enqueued -> running), %d jobs enqueued by another connection, poll every %d ms:\n",
                latencyJobs, pollMs);
    std::printf("%-11s %12s %12s %14s %14s\n", "engine", "poll_p50_ms", "poll_p99_ms", "listen_p50_ms", "listen_p99_ms");
    for (const Figures &f : results) {
        std::printf("%-11s %12.1f %12.1f %14s %14s\n", qPrintable(f.engine), f.pollP50, f.pollP99,
                    f.listenP50 < 0 ? "-" : qPrintable(QString::number(f.listenP50, 'f', 1)),
                    f.listenP99 < 0 ? "-" : qPrintable(QString::number(f.listenP99, 'f', 1)));
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
