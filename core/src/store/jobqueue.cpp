// SPDX-License-Identifier: Apache-2.0
#include "store/jobqueue.h"

#include <QJsonArray>
#include <QJsonObject>
#include <QJsonDocument>
#include <QSet>
#include <QSqlError>
#include <QSqlQuery>

#include <algorithm>

namespace Sluice {

namespace {

// Key of the transaction-scoped advisory lock that serialises the claimers of one node on a
// PostgreSQL database ("jobc" in ASCII; the second key is the node name's hash). Claimers of
// different nodes do not wait for each other: SKIP LOCKED keeps them apart.
constexpr int ClaimLockKey = 0x6a6f6263;

// The channel a PostgreSQL worker listens on: a job became claimable now.
const QString WakeChannel = QStringLiteral("sluice_jobs");

const QStringList JobStatuses = {QStringLiteral("queued"), QStringLiteral("running"), QStringLiteral("done"),
                                 QStringLiteral("failed")};

QLatin1String jobColumns()
{
    return QLatin1String("id, task_id, project, stage, kind, status, attempts, max_attempts, available_at, "
                         "claimed_by, claimed_at, finished_at, last_error, payload, created_at, updated_at, claim_token");
}

// The same columns of a row named "jobs" in a statement that also reads others.
QString qualifiedJobColumns()
{
    QStringList columns = QString(jobColumns()).split(QStringLiteral(", "));
    for (QString &c : columns)
        c.prepend(QStringLiteral("jobs."));
    return columns.join(QStringLiteral(", "));
}

QDateTime fromMsecs(const QVariant &value)
{
    return value.isNull() ? QDateTime() : QDateTime::fromMSecsSinceEpoch(value.toLongLong(), Qt::UTC);
}

JobRecord jobFromRow(const QSqlQuery &query)
{
    JobRecord job;
    job.id = query.value(0).toLongLong();
    job.taskId = query.value(1).toLongLong(); // NULL reads as 0
    job.project = query.value(2).toString();
    job.stage = query.value(3).toString();
    job.kind = query.value(4).toString();
    job.status = query.value(5).toString();
    job.attempts = query.value(6).toInt();
    job.maxAttempts = query.value(7).toInt();
    job.availableAt = fromMsecs(query.value(8));
    job.claimedBy = query.value(9).toString();
    job.claimedAt = fromMsecs(query.value(10));
    job.finishedAt = fromMsecs(query.value(11));
    job.lastError = query.value(12).toString();
    job.payload = QJsonDocument::fromJson(query.value(13).toString().toUtf8()).object();
    job.createdAt = fromMsecs(query.value(14));
    job.updatedAt = fromMsecs(query.value(15));
    job.claimToken = query.value(16).toLongLong();
    return job;
}

Result<QList<JobRecord>> jobList(Result<ExecutedQuery> query)
{
    if (!query)
        return std::unexpected(query.error());
    QList<JobRecord> jobs;
    while ((*query)->next())
        jobs.append(jobFromRow(**query));
    return jobs;
}

// Oldest available first, as claim() promises (a statement's RETURNING has no order).
void sortByAvailability(QList<JobRecord> &jobs)
{
    std::sort(jobs.begin(), jobs.end(), [](const JobRecord &a, const JobRecord &b) {
        return a.availableAt != b.availableAt ? a.availableAt < b.availableAt : a.id < b.id;
    });
}

// The PostgreSQL fence as parameters of a server-side statement: '' (no fence) or the node
// and instance that must still hold the name.
QString postgresqlFence(const QString &node, const QString &instance)
{
    return QStringLiteral("(COALESCE(%1, '') = '' OR EXISTS (SELECT 1 FROM nodes f WHERE f.name = %1 AND f.instance = %2))").arg(node, instance);
}

// Our own server-side prepared statements (PostgreSQL), per connection.
const QString ClaimStatementName = QStringLiteral("sluice_claim_jobs");
const QString ClaimParameterTypes = QStringLiteral("text, bigint, text, integer, integer, integer, text, text");
const QString ClaimOneStatementName = QStringLiteral("sluice_claim_one_job");
const QString ClaimOneParameterTypes = QStringLiteral("text, bigint, text, integer, integer, text, text");
const QString CompleteStatementName = QStringLiteral("sluice_complete_jobs");
const QString CompleteParameterTypes = QStringLiteral("text, bigint, text, text");

/*
 * The PostgreSQL claim: up to $6 of the oldest available queued jobs in one statement, each
 * only while its project runs fewer jobs on this node than its limit and while fewer than
 * the node's limit run on it in total. The per-project limits travel as one JSON parameter,
 * so the text never changes and is prepared once per connection. The running counts come
 * from the partial index of running jobs by node and project; the candidates — up to four
 * times the room, read in the order of the partial index of queued jobs, projects already at
 * their limit left out — are locked with FOR UPDATE SKIP LOCKED, so claimers of other nodes
 * pass over them; of those, the oldest within each project's remaining room are claimed, up
 * to the room. (A project with more queued jobs than four times the room ahead of the
 * others can hide them from one call; it is at its limit by then, and the next call skips it.)
 *
 * Parameters $1..$8: node, now, limits (JSON object), global, project default, max, fence
 * node, fence instance, with ClaimParameterTypes.
 */
QString postgresqlClaimStatement()
{
    return QStringLiteral(
               "WITH running AS (SELECT project, COUNT(*) AS n FROM jobs WHERE status = 'running' AND claimed_by = $1 GROUP BY project), "
               "limits AS (SELECT l.key AS project, CAST(l.value AS INTEGER) AS n FROM json_each_text(CAST($3 AS json)) l), "
               "room AS (SELECT CAST(GREATEST(0, LEAST($6, $4 - COALESCE((SELECT SUM(n) FROM running), 0))) AS BIGINT) AS n), "
               "locked AS (SELECT c.id, c.project, c.available_at FROM jobs c "
               "WHERE c.status = 'queued' AND c.available_at <= $2 "
               "AND COALESCE((SELECT n FROM limits WHERE limits.project = c.project), $5) "
               "> COALESCE((SELECT n FROM running WHERE running.project = c.project), 0) AND %2 "
               "ORDER BY c.available_at, c.id LIMIT (SELECT 4 * n FROM room) FOR UPDATE SKIP LOCKED), "
               "ranked AS (SELECT l.id, l.project, l.available_at, row_number() OVER (PARTITION BY l.project ORDER BY l.available_at, l.id) AS rank "
               "FROM locked l), "
               "chosen AS (SELECT r.id FROM ranked r WHERE r.rank <= COALESCE((SELECT n FROM limits WHERE limits.project = r.project), $5) "
               "- COALESCE((SELECT n FROM running WHERE running.project = r.project), 0) ORDER BY r.available_at, r.id LIMIT (SELECT n FROM room)) "
               "UPDATE jobs SET status = 'running', claimed_by = $1, claimed_at = $2, updated_at = $2, attempts = attempts + 1, "
               "claim_token = claim_token + 1 FROM chosen WHERE jobs.id = chosen.id AND jobs.status = 'queued' RETURNING %1")
        .arg(qualifiedJobColumns(), postgresqlFence(QStringLiteral("$7"), QStringLiteral("$8")));
}

/*
 * The PostgreSQL claim of one job (the fast path of claim() with max 1: a worker with
 * concurrency 1, claimNext()): the oldest available queued job whose project runs fewer jobs
 * on this node than its limit, while fewer than the node's limit run on it in total. No
 * window and no sort: with enable_sort = off for its transaction the plan walks the partial
 * index of queued jobs in order and stops at the first row it can lock (SKIP LOCKED), where
 * the batch statement ranks its candidates per project first — that costs a one-job claim
 * half its speed (1,560 against 3,358 claims+completions a second).
 *
 * Parameters $1..$7: node, now, limits (JSON object), global, project default, fence node,
 * fence instance, with ClaimOneParameterTypes.
 */
QString postgresqlClaimOneStatement()
{
    return QStringLiteral(
               "UPDATE jobs SET status = 'running', claimed_by = $1, claimed_at = $2, updated_at = $2, attempts = attempts + 1, "
               "claim_token = claim_token + 1 "
               "WHERE status = 'queued' AND id = ("
               "SELECT c.id FROM jobs c WHERE c.status = 'queued' AND c.available_at <= $2 "
               "AND (SELECT COUNT(*) FROM jobs g WHERE g.status = 'running' AND g.claimed_by = $1) < $4 "
               "AND (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.claimed_by = $1 AND r.project = c.project) "
               "< COALESCE((SELECT CAST(l.value AS INTEGER) FROM json_each_text(CAST($3 AS json)) l WHERE l.key = c.project), $5) "
               "AND %2 "
               "ORDER BY c.available_at, c.id LIMIT 1 FOR UPDATE SKIP LOCKED) "
               "RETURNING %1")
        .arg(jobColumns(), postgresqlFence(QStringLiteral("$6"), QStringLiteral("$7")));
}

/*
 * The PostgreSQL completion of several jobs in one statement: each only while its claim (node
 * and token, 0: any token) holds it. Parameters $1..$4: the claims as a JSON array of
 * {"id", "node", "token"}, now, fence node, fence instance.
 */
QString postgresqlCompleteStatement()
{
    return QStringLiteral("UPDATE jobs SET status = 'done', finished_at = $2, updated_at = $2 "
                          "FROM json_to_recordset(CAST($1 AS json)) AS c(id BIGINT, node TEXT, token BIGINT) "
                          "WHERE jobs.id = c.id AND jobs.status = 'running' AND jobs.claimed_by = c.node "
                          "AND (c.token = 0 OR jobs.claim_token = c.token) AND %1 RETURNING jobs.id")
        .arg(postgresqlFence(QStringLiteral("$3"), QStringLiteral("$4")));
}

QString claimsJson(const QList<JobClaim> &claims)
{
    QJsonArray array;
    for (const JobClaim &c : claims)
        array.append(QJsonObject{{QStringLiteral("id"), double(c.jobId)}, {QStringLiteral("node"), c.node},
                                 {QStringLiteral("token"), double(c.token)}});
    return QString::fromUtf8(QJsonDocument(array).toJson(QJsonDocument::Compact));
}

QList<JobClaim> claimsOf(const QList<qint64> &jobIds, const QString &node)
{
    QList<JobClaim> claims;
    for (const qint64 id : jobIds)
        claims.append(JobClaim{id, node, 0});
    return claims;
}

} // namespace

int ConcurrencyLimits::limitFor(const QString &project) const
{
    return perProject.value(project, perProjectDefault);
}

JobQueue::JobQueue(Store &store)
    : m_statements(store)
{
}

JobQueue::~JobQueue() = default;

QString JobQueue::wakeChannel()
{
    return WakeChannel;
}

Result<std::optional<qint64>> JobQueue::enqueue(const NewJob &job)
{
    if (job.project.isEmpty() || job.kind.isEmpty())
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("a job needs a project and a kind (got '%1' and '%2')")
                                                    .arg(job.project, job.kind));
    if (job.maxAttempts < 1)
        return Sluice::fail(ErrorCode::InvalidArgument,
                    QStringLiteral("a job needs at least one attempt (max attempts %1)").arg(job.maxAttempts));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());

    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    const qint64 availableAt = job.availableAt.isValid() ? job.availableAt.toMSecsSinceEpoch() : now;
    // The partial unique index jobs_one_open_per_task_stage decides, also between nodes: the
    // loser inserts nothing. A NULL task_id never conflicts.
    QString insert = QStringLiteral("INSERT INTO jobs (task_id, project, stage, kind, status, attempts, max_attempts, available_at, "
                                    "payload, created_at, updated_at) "
                                    "VALUES (:task_id, :project, :stage, :kind, 'queued', 0, :max_attempts, :available_at, "
                                    ":payload, :now, :now) "
                                    "ON CONFLICT DO NOTHING RETURNING id");
    // On PostgreSQL the insert wakes idle workers of every node (LISTEN/NOTIFY), in the same
    // statement: the notification is delivered when the row is committed, and only then.
    if (session->isPostgresql() && availableAt <= now)
        insert = QStringLiteral("WITH inserted AS (%1) SELECT id, pg_notify('%2', '') FROM inserted").arg(insert, WakeChannel);
    Result<ExecutedQuery> inserted = session->exec(
        QStringLiteral("enqueueing a %1 job of task %2 for stage '%3'").arg(job.kind).arg(job.taskId).arg(job.stage), insert,
        {{QStringLiteral(":task_id"), job.taskId > 0 ? QVariant(job.taskId) : QVariant()},
         {QStringLiteral(":project"), job.project},
         {QStringLiteral(":stage"), job.stage},
         {QStringLiteral(":kind"), job.kind},
         {QStringLiteral(":max_attempts"), job.maxAttempts},
         {QStringLiteral(":available_at"), availableAt},
         {QStringLiteral(":payload"), QString::fromUtf8(QJsonDocument(Redaction::maskJson(job.payload)).toJson(QJsonDocument::Compact))},
         {QStringLiteral(":now"), now}});
    if (!inserted)
        return std::unexpected(inserted.error());
    if (!(*inserted)->next())
        return std::optional<qint64>();
    return std::optional<qint64>((*inserted)->value(0).toLongLong());
}

Result<void> JobQueue::wakeWorkers(PreparedStatements::Session &session)
{
    if (!session.isPostgresql())
        return {};
    Result<ExecutedQuery> notified = session.exec(QStringLiteral("waking idle workers"),
                                                  QStringLiteral("SELECT pg_notify('%1', '')").arg(WakeChannel));
    if (!notified)
        return std::unexpected(notified.error());
    return {};
}

Result<std::optional<JobRecord>> JobQueue::claimNext(const QString &node, const ConcurrencyLimits &limits,
                                                     const QDateTime &now)
{
    Result<QList<JobRecord>> claimed = claim(node, limits, now, 1);
    if (!claimed)
        return std::unexpected(claimed.error());
    if (claimed->isEmpty())
        return std::optional<JobRecord>();
    return std::optional<JobRecord>(claimed->constFirst());
}

Result<QList<JobRecord>> JobQueue::claim(const QString &node, const ConcurrencyLimits &limits, const QDateTime &now,
                                         int max)
{
    if (node.isEmpty() || !now.isValid() || max < 1)
        return Sluice::fail(ErrorCode::InvalidArgument,
                            QStringLiteral("claiming jobs needs a node name, a valid time and a count of at least 1"));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    if (session->isPostgresql())
        return claimOnPostgresql(*session, {}, nullptr, node, limits, now, max);
    return claimOnSqlite(*session, node, limits, now, max);
}

Result<QList<JobRecord>> JobQueue::claimOnPostgresql(PreparedStatements::Session &session, const QList<JobClaim> &completing,
                                                     QList<qint64> *completed, const QString &node,
                                                     const ConcurrencyLimits &limits, const QDateTime &now, int max)
{
    QJsonObject perProject;
    for (auto it = limits.perProject.cbegin(); it != limits.perProject.cend(); ++it)
        perProject.insert(it.key(), it.value());
    const QString limitsJson = QString::fromUtf8(QJsonDocument(perProject).toJson(QJsonDocument::Compact));
    const QString what = completing.isEmpty()
                             ? QStringLiteral("claiming up to %1 job(s) for node %2").arg(max).arg(node)
                             : QStringLiteral("completing %1 and claiming up to %2 job(s) for node %3").arg(completing.size()).arg(max).arg(node);
    // Without a fence (a CLI process, a test): '' — a null string would be SQL NULL.
    const QString fenceNode = session.fence().isSet() ? session.fence().node : QStringLiteral("");
    const QString fenceInstance = session.fence().isSet() ? session.fence().instance : QStringLiteral("");

    /*
     * One round trip, one transaction: the advisory lock, the completions and the claim go as
     * one script, which the server runs as one implicit transaction. The lock serialises the
     * claimers of this node until that transaction commits (so the counts of a second process
     * claiming for the same node include what the first claimed: each statement of the script
     * takes its snapshot after the lock was granted); claimers of other nodes do not wait for
     * it, and SKIP LOCKED keeps them off each other's rows.
     *
     * No enable_sort = off here: the batch statement ranks its candidates per project (a
     * window, which needs a sort), and with sorts priced out the planner chose plans measured
     * at 500-800 ms a claim on a table of ten jobs (tst_jobqueue's limits test ran 6 s instead
     * of 0.25 s, and its claim storm timed out).
     */
    const bool one = max == 1;
    if (Result<void> prepared = one ? session.prepareOnServer(QStringLiteral("preparing the claim statement"), ClaimOneStatementName,
                                                              ClaimOneParameterTypes, postgresqlClaimOneStatement())
                                    : session.prepareOnServer(QStringLiteral("preparing the claim statement"), ClaimStatementName,
                                                              ClaimParameterTypes, postgresqlClaimStatement());
        !prepared)
        return std::unexpected(prepared.error());
    // One job: enable_sort = off pins the plan to the index walk (see postgresqlClaimOneStatement).
    QString script = QStringLiteral("%3SELECT pg_advisory_xact_lock(%1, hashtext(%2)); ")
                         .arg(ClaimLockKey).arg(session.literal(node), one ? QStringLiteral("SET LOCAL enable_sort = off; ") : QString());
    if (!completing.isEmpty()) {
        if (Result<void> prepared = session.prepareOnServer(QStringLiteral("preparing the completion statement"),
                                                            CompleteStatementName, CompleteParameterTypes,
                                                            postgresqlCompleteStatement());
            !prepared)
            return std::unexpected(prepared.error());
        script += QStringLiteral("EXECUTE %1 (%2, %3, %4, %5); ")
                      .arg(CompleteStatementName, session.literal(claimsJson(completing)), session.literal(QDateTime::currentMSecsSinceEpoch()),
                           session.literal(fenceNode), session.literal(fenceInstance));
    }
    if (one)
        script += QStringLiteral("EXECUTE %1 (%2, %3, %4, %5, %6, %7, %8)")
                      .arg(ClaimOneStatementName, session.literal(node), session.literal(now.toMSecsSinceEpoch()),
                           session.literal(limitsJson), session.literal(limits.global), session.literal(limits.perProjectDefault),
                           session.literal(fenceNode), session.literal(fenceInstance));
    else
        script += QStringLiteral("EXECUTE %1 (%2, %3, %4, %5, %6, %7, %8, %9)")
                      .arg(ClaimStatementName, session.literal(node), session.literal(now.toMSecsSinceEpoch()),
                           session.literal(limitsJson), session.literal(limits.global), session.literal(limits.perProjectDefault),
                           session.literal(std::max(0, max)), session.literal(fenceNode), session.literal(fenceInstance));
    Result<ExecutedQuery> query = session.execScript(what, script);
    if (!query)
        return std::unexpected(query.error());
    // Past the SET (one job) and the lock to the completions' rows.
    for (int skip = 0; skip < (one ? 2 : 1); ++skip) {
        if (!(*query)->nextResult())
            return std::unexpected(session.error(what, (*query)->lastError().text()));
    }
    if (!completing.isEmpty()) {
        QList<qint64> done;
        while ((*query)->next())
            done.append((*query)->value(0).toLongLong());
        if (completed)
            *completed = done;
        if (!(*query)->nextResult())
            return std::unexpected(session.error(what, (*query)->lastError().text()));
    }
    QList<JobRecord> claimed;
    while ((*query)->next())
        claimed.append(jobFromRow(**query));
    // The implicit commit follows the claim's rows; had it failed, its error would come
    // as one more result.
    if ((*query)->nextResult() || (*query)->lastError().isValid())
        return std::unexpected(session.error(QStringLiteral("committing the claim for node %1").arg(node),
                                             (*query)->lastError().text()));
    sortByAvailability(claimed);
    return claimed;
}

Result<QList<JobRecord>> JobQueue::claimOnSqlite(PreparedStatements::Session &session, const QString &node,
                                                 const ConcurrencyLimits &limits, const QDateTime &now, int max)
{
    /*
     * BEGIN IMMEDIATE takes the database's write lock before anything is counted, so the
     * counts, the choice and the claims are one atomic step for every process on the file.
     * Inside it, the choice is plain code: count this node's running jobs per project (the
     * partial index of running jobs by node), read the oldest available queued jobs of the
     * projects still under their limit (the partial index of queued jobs, in order), and
     * claim them one by one while the limits allow; a project that reaches its limit on the
     * way is left out of the next read. Several claims share one transaction, which is what
     * makes a batch cheap: the pages they touch are written to the WAL once.
     */
    const QString what = QStringLiteral("claiming up to %1 job(s) for node %2").arg(max).arg(node);
    Result<StoreTransaction> transaction = StoreTransaction::begin(session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    Result<QList<JobRecord>> claimed = claimInTransaction(session, what, node, limits, now, max);
    if (!claimed)
        return claimed;
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    return claimed;
}

Result<QList<JobRecord>> JobQueue::claimInTransaction(PreparedStatements::Session &session, const QString &what,
                                                      const QString &node, const ConcurrencyLimits &limits,
                                                      const QDateTime &now, int max)
{
    const qint64 at = now.toMSecsSinceEpoch();
    QHash<QString, int> running;
    int total = 0;
    {
        Result<ExecutedQuery> counts = session.exec(
            what, QStringLiteral("SELECT project, COUNT(*) FROM jobs WHERE status = 'running' AND claimed_by = :node "
                                 "GROUP BY project"),
            {{QStringLiteral(":node"), node}});
        if (!counts)
            return std::unexpected(counts.error());
        while ((*counts)->next()) {
            const int count = (*counts)->value(1).toInt();
            running.insert((*counts)->value(0).toString(), count);
            total += count;
        }
    }
    int room = std::min(max, limits.global - total);
    QList<JobRecord> claimed;
    while (room > 0) {
        // Projects at their limit are left out of the read, so their jobs at the head of the
        // queue cannot hide others'. With no default limit (a project the node does not run
        // has limit 0) the read names the projects that may still run a job instead.
        QSet<QString> known(limits.perProject.keyBegin(), limits.perProject.keyEnd());
        for (auto it = running.cbegin(); it != running.cend(); ++it)
            known.insert(it.key());
        QJsonArray listed;
        for (const QString &project : std::as_const(known)) {
            const bool full = running.value(project) >= limits.limitFor(project);
            if (full == (limits.perProjectDefault > 0))
                listed.append(project);
        }
        const QString filter = limits.perProjectDefault > 0 ? QStringLiteral("NOT IN") : QStringLiteral("IN");
        const int asked = room;
        QList<std::pair<qint64, QString>> candidates;
        {
            Result<ExecutedQuery> query = session.exec(
                what, QStringLiteral("SELECT id, project FROM jobs WHERE status = 'queued' AND available_at <= :now "
                                     "AND project %1 (SELECT value FROM json_each(:projects)) "
                                     "ORDER BY available_at, id LIMIT :room").arg(filter),
                {{QStringLiteral(":now"), at},
                 {QStringLiteral(":projects"), QString::fromUtf8(QJsonDocument(listed).toJson(QJsonDocument::Compact))},
                 {QStringLiteral(":room"), room}});
            if (!query)
                return std::unexpected(query.error());
            while ((*query)->next())
                candidates.append({(*query)->value(0).toLongLong(), (*query)->value(1).toString()});
        }
        bool progressed = false;
        for (const auto &[id, project] : std::as_const(candidates)) {
            if (room == 0)
                break;
            int &projectRunning = running[project];
            if (projectRunning >= limits.limitFor(project))
                continue; // reached its limit within this batch
            StatementBinds binds{{QStringLiteral(":node"), node}, {QStringLiteral(":now"), at}, {QStringLiteral(":id"), id}};
            const QString fence = session.fenceCondition(binds);
            Result<ExecutedQuery> query = session.exec(
                what, QStringLiteral("UPDATE jobs SET status = 'running', claimed_by = :node, claimed_at = :now, "
                                     "updated_at = :now, attempts = attempts + 1, claim_token = claim_token + 1 "
                                     "WHERE id = :id AND status = 'queued'%2 RETURNING %1")
                          .arg(jobColumns(), fence),
                binds);
            if (!query)
                return std::unexpected(query.error());
            if (!(*query)->next())
                continue;
            claimed.append(jobFromRow(**query));
            ++projectRunning;
            --room;
            progressed = true;
        }
        if (!progressed || candidates.size() < asked)
            break; // nothing claimable left: every available job of an open project was read
    }
    return claimed;
}

Result<bool> JobQueue::complete(qint64 jobId, const QString &node)
{
    Result<QList<qint64>> completed = complete(QList<JobClaim>{JobClaim{jobId, node, 0}});
    if (!completed)
        return std::unexpected(completed.error());
    return !completed->isEmpty();
}

Result<QList<qint64>> JobQueue::complete(const QList<qint64> &jobIds, const QString &node)
{
    return complete(claimsOf(jobIds, node));
}

Result<QList<qint64>> JobQueue::complete(const QList<JobClaim> &claims)
{
    if (claims.isEmpty())
        return QList<qint64>();
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const QString what = claims.size() == 1
                             ? QStringLiteral("completing job %1 of node %2").arg(claims.constFirst().jobId).arg(claims.constFirst().node)
                             : QStringLiteral("completing %1 jobs").arg(claims.size());
    if (claims.size() == 1 || session->isPostgresql())
        return completeInTransaction(*session, what, claims); // one statement
    // One transaction for all of them: one commit, each touched page written once.
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    Result<QList<qint64>> completed = completeInTransaction(*session, what, claims);
    if (!completed)
        return completed;
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    return completed;
}

Result<bool> JobQueue::holds(const JobClaim &claim) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StatementBinds binds{{QStringLiteral(":id"), claim.jobId}, {QStringLiteral(":node"), claim.node}, {QStringLiteral(":token"), claim.token}};
    const QString fence = session->fenceCondition(binds);
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("checking that node %1 still holds job %2").arg(claim.node).arg(claim.jobId),
        QStringLiteral("SELECT 1 FROM jobs WHERE id = :id AND status = 'running' AND claimed_by = :node "
                       "AND (CAST(:token AS BIGINT) = 0 OR claim_token = CAST(:token AS BIGINT))") + fence,
        binds);
    if (!query)
        return std::unexpected(query.error());
    return (*query)->next();
}

Result<JobQueue::Turnover> JobQueue::completeAndClaim(const QList<qint64> &jobIds, const QString &node,
                                                      const ConcurrencyLimits &limits, const QDateTime &now, int max)
{
    return completeAndClaim(claimsOf(jobIds, node), node, limits, now, max);
}

Result<JobQueue::Turnover> JobQueue::completeAndClaim(const QList<JobClaim> &claims, const QString &node,
                                                      const ConcurrencyLimits &limits, const QDateTime &now, int max)
{
    if (node.isEmpty() || !now.isValid())
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("completing and claiming jobs needs a node name and a valid time"));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Turnover turnover;
    if (max < 1) {
        Result<QList<qint64>> completed = complete(claims);
        if (!completed)
            return std::unexpected(completed.error());
        turnover.completed = *completed;
        return turnover;
    }
    if (session->isPostgresql()) {
        // The completions and the claim in one script: one round trip, one transaction.
        Result<QList<JobRecord>> claimed = claimOnPostgresql(*session, claims, &turnover.completed, node, limits, now, max);
        if (!claimed)
            return std::unexpected(claimed.error());
        turnover.claimed = *claimed;
        return turnover;
    }
    const QString what = QStringLiteral("completing %1 and claiming up to %2 job(s) for node %3")
                             .arg(claims.size()).arg(max).arg(node);
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    Result<QList<qint64>> completed = completeInTransaction(*session, what, claims);
    if (!completed)
        return std::unexpected(completed.error());
    Result<QList<JobRecord>> claimed = claimInTransaction(*session, what, node, limits, now, max);
    if (!claimed)
        return std::unexpected(claimed.error());
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    turnover.completed = *completed;
    turnover.claimed = *claimed;
    return turnover;
}

Result<QList<qint64>> JobQueue::completeInTransaction(PreparedStatements::Session &session, const QString &what,
                                                      const QList<JobClaim> &claims)
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    QList<qint64> completed;
    if (session.isPostgresql()) {
        if (Result<void> prepared = session.prepareOnServer(QStringLiteral("preparing the completion statement"), CompleteStatementName,
                                                            CompleteParameterTypes, postgresqlCompleteStatement());
            !prepared)
            return std::unexpected(prepared.error());
        const QString fenceNode = session.fence().isSet() ? session.fence().node : QStringLiteral("");
        const QString fenceInstance = session.fence().isSet() ? session.fence().instance : QStringLiteral("");
        Result<ExecutedQuery> query = session.execScript(
            what, QStringLiteral("EXECUTE %1 (%2, %3, %4, %5)")
                      .arg(CompleteStatementName, session.literal(claimsJson(claims)), session.literal(now),
                           session.literal(fenceNode), session.literal(fenceInstance)));
        if (!query)
            return std::unexpected(query.error());
        while ((*query)->next())
            completed.append((*query)->value(0).toLongLong());
        // Read to the end: the script's implicit commit (or its error) follows the rows.
        if ((*query)->nextResult() || (*query)->lastError().isValid())
            return std::unexpected(session.error(what, (*query)->lastError().text()));
        return completed;
    }
    for (const JobClaim &claim : claims) {
        StatementBinds binds{{QStringLiteral(":now"), now}, {QStringLiteral(":id"), claim.jobId},
                             {QStringLiteral(":node"), claim.node}, {QStringLiteral(":token"), claim.token}};
        const QString fence = session.fenceCondition(binds);
        Result<int> rows = session.execWrite(
            what,
            QStringLiteral("UPDATE jobs SET status = 'done', finished_at = :now, updated_at = :now "
                           "WHERE id = :id AND status = 'running' AND claimed_by = :node AND (CAST(:token AS BIGINT) = 0 OR claim_token = CAST(:token AS BIGINT))") + fence,
            binds);
        if (!rows)
            return std::unexpected(rows.error());
        if (*rows == 1)
            completed.append(claim.jobId);
    }
    return completed;
}

Result<JobQueue::FailOutcome> JobQueue::fail(qint64 jobId, const QString &node, const QString &error,
                                             std::chrono::milliseconds backoff, const QDateTime &now)
{
    return fail(JobClaim{jobId, node, 0}, error, backoff, now);
}

Result<JobQueue::FailOutcome> JobQueue::fail(const JobClaim &claim, const QString &error, std::chrono::milliseconds backoff,
                                             const QDateTime &now)
{
    if (!now.isValid() || backoff.count() < 0)
        return Sluice::fail(ErrorCode::InvalidArgument,
                            QStringLiteral("failing job %1 needs a valid time and a back-off of at least 0").arg(claim.jobId));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 at = now.toMSecsSinceEpoch();
    StatementBinds binds{{QStringLiteral(":retry_at"), at + qint64(backoff.count())},
                         {QStringLiteral(":now"), at},
                         // A stage's failure summary carries its output's tail: masked on the way in.
                         {QStringLiteral(":error"), Redaction::mask(error)},
                         {QStringLiteral(":id"), claim.jobId},
                         {QStringLiteral(":node"), claim.node},
                         {QStringLiteral(":token"), claim.token}};
    const QString fence = session->fenceCondition(binds);
    // One statement decides requeue or failed from the row itself. The casts give
    // PostgreSQL a type for parameters that only meet NULL in a CASE.
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("failing job %1 of node %2").arg(claim.jobId).arg(claim.node),
        QStringLiteral("UPDATE jobs SET "
                       "status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, "
                       "available_at = CASE WHEN attempts < max_attempts THEN CAST(:retry_at AS BIGINT) "
                       "ELSE available_at END, "
                       "finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE CAST(:now AS BIGINT) END, "
                       "last_error = :error, updated_at = :now "
                       "WHERE id = :id AND status = 'running' AND claimed_by = :node AND (CAST(:token AS BIGINT) = 0 OR claim_token = CAST(:token AS BIGINT))")
            + fence + QStringLiteral(" RETURNING status"),
        binds);
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return FailOutcome::Lost;
    const bool requeued = (*query)->value(0).toString() == QLatin1String("queued");
    if (requeued && backoff.count() == 0)
        (void)wakeWorkers(*session); // best effort: the poll finds it otherwise
    return requeued ? FailOutcome::Requeued : FailOutcome::Failed;
}

Result<bool> JobQueue::release(qint64 jobId, const QString &node, const QString &reason)
{
    return release(JobClaim{jobId, node, 0}, reason);
}

Result<bool> JobQueue::release(const JobClaim &claim, const QString &reason)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    StatementBinds binds{{QStringLiteral(":now"), now}, {QStringLiteral(":reason"), Redaction::mask(reason)}, {QStringLiteral(":id"), claim.jobId},
                         {QStringLiteral(":node"), claim.node}, {QStringLiteral(":token"), claim.token}};
    const QString fence = session->fenceCondition(binds);
    Result<int> rows = session->execWrite(
        QStringLiteral("releasing job %1 of node %2").arg(claim.jobId).arg(claim.node),
        QStringLiteral("UPDATE jobs SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
                       "available_at = :now, last_error = :reason, updated_at = :now "
                       "WHERE id = :id AND status = 'running' AND claimed_by = :node AND (CAST(:token AS BIGINT) = 0 OR claim_token = CAST(:token AS BIGINT))") + fence,
        binds);
    if (!rows)
        return std::unexpected(rows.error());
    if (*rows == 1)
        (void)wakeWorkers(*session);
    return *rows == 1;
}

Result<std::optional<JobRecord>> JobQueue::transfer(const JobClaim &claim, const QString &toNode, qint64 agentRunId)
{
    if (toNode.isEmpty())
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("taking over job %1 needs the node that takes it").arg(claim.jobId));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const QString what = QStringLiteral("node %1 taking over job %2 of node %3").arg(toNode).arg(claim.jobId).arg(claim.node);
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    StatementBinds binds{{QStringLiteral(":to"), toNode}, {QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
                         {QStringLiteral(":id"), claim.jobId}, {QStringLiteral(":node"), claim.node},
                         {QStringLiteral(":token"), claim.token}};
    const QString fence = session->fenceCondition(binds);
    // claimed_at stays: the attempt goes on (its deadline and the reaper's ceiling count from it).
    Result<ExecutedQuery> taken = session->exec(
        what,
        QStringLiteral("UPDATE jobs SET claimed_by = :to, claim_token = claim_token + 1, updated_at = :now "
                       "WHERE id = :id AND status = 'running' AND claimed_by = :node AND (CAST(:token AS BIGINT) = 0 OR claim_token = CAST(:token AS BIGINT))%2 "
                       "RETURNING %1").arg(jobColumns(), fence),
        binds);
    if (!taken)
        return std::unexpected(taken.error());
    if (!(*taken)->next())
        return std::optional<JobRecord>();
    const JobRecord job = jobFromRow(**taken);
    // The UPDATE ... RETURNING is done once its row is read; on SQLite an unfinished statement
    // would make the commit fail ("SQL statements in progress") and the adoption never take.
    (*taken)->finish();
    if (agentRunId > 0) {
        Result<int> moved = session->execWrite(what, QStringLiteral("UPDATE agent_runs SET node = :to, dead_ticks = 0 WHERE id = :agent"),
                                               {{QStringLiteral(":to"), toNode}, {QStringLiteral(":agent"), agentRunId}});
        if (!moved)
            return std::unexpected(moved.error());
    }
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    return std::optional<JobRecord>(job);
}

Result<int> JobQueue::recoverRunning(const QString &node, const QString &reason)
{
    if (node.isEmpty())
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("recovering running jobs needs a node name"));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    return session->execWrite(
        QStringLiteral("recovering the running jobs of node %1").arg(node),
        QStringLiteral("UPDATE jobs SET "
                       "status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, "
                       "available_at = CASE WHEN attempts < max_attempts THEN CAST(:now AS BIGINT) "
                       "ELSE available_at END, "
                       "finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE CAST(:now AS BIGINT) END, "
                       "last_error = :reason, updated_at = :now "
                       "WHERE status = 'running' AND claimed_by = :node"),
        {{QStringLiteral(":now"), now}, {QStringLiteral(":reason"), Redaction::mask(reason)}, {QStringLiteral(":node"), node}});
}

Result<qint64> JobQueue::recordAgentStart(const AgentRunRecord &run)
{
    return recordAgentStart(run, JobClaim{});
}

Result<qint64> JobQueue::recordAgentStart(const AgentRunRecord &run, const JobClaim &claim)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StatementBinds binds{{QStringLiteral(":job"), run.jobId},
                         {QStringLiteral(":attempt"), run.attempt},
                         {QStringLiteral(":node"), run.node},
                         {QStringLiteral(":pid"), run.pid},
                         {QStringLiteral(":ticks"), qint64(run.startTicks)},
                         {QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
                         {QStringLiteral(":log"), run.logPath},
                         {QStringLiteral(":host"), run.host},
                         {QStringLiteral(":worktree"), run.worktree}};
    QString condition;
    if (claim.jobId > 0) {
        // Only for a job the caller still holds: a run whose job was taken over records nothing.
        binds.append({QStringLiteral(":claim_job"), claim.jobId});
        binds.append({QStringLiteral(":claim_node"), claim.node});
        binds.append({QStringLiteral(":claim_token"), claim.token});
        condition = QStringLiteral(" WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.id = :claim_job AND j.status = 'running' "
                                   "AND j.claimed_by = :claim_node AND (CAST(:claim_token AS BIGINT) = 0 OR j.claim_token = CAST(:claim_token AS BIGINT)))")
                    + session->fenceCondition(binds);
    }
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("recording the agent process %1 of job %2").arg(run.pid).arg(run.jobId),
        QStringLiteral("INSERT INTO agent_runs (job_id, attempt, node, pid, start_ticks, started_at, log_path, host, worktree) "
                       "SELECT CAST(:job AS BIGINT), CAST(:attempt AS INTEGER), :node, CAST(:pid AS BIGINT), CAST(:ticks AS BIGINT), "
                       "CAST(:now AS BIGINT), :log, :host, :worktree%1 RETURNING id").arg(condition),
        binds);
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next()) {
        if (claim.jobId > 0)
            return Sluice::fail(ErrorCode::Conflict, QStringLiteral("job %1 is no longer held by node %2 (taken over); its agent pid %3 "
                                                                    "was not recorded").arg(run.jobId).arg(claim.node).arg(run.pid));
        return Sluice::fail(ErrorCode::Storage, QStringLiteral("recording the agent process of job %1 returned no id").arg(run.jobId));
    }
    return (*query)->value(0).toLongLong();
}

Result<void> JobQueue::recordAgentEnd(qint64 agentRunId, std::optional<int> exitCode)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<int> rows = session->execWrite(
        QStringLiteral("recording the end of agent run %1").arg(agentRunId),
        QStringLiteral("UPDATE agent_runs SET finished_at = :now, exit_code = :code WHERE id = :id AND finished_at IS NULL"),
        {{QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
         {QStringLiteral(":code"), exitCode ? QVariant(*exitCode) : QVariant()},
         {QStringLiteral(":id"), agentRunId}});
    if (!rows)
        return std::unexpected(rows.error());
    return {};
}

Result<QList<JobQueue::AgentRunRecord>> JobQueue::unfinishedAgentRuns(const QString &node) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("listing the unfinished agent runs of node %1").arg(node),
        QStringLiteral("SELECT id, job_id, attempt, node, pid, start_ticks, log_path, host, worktree FROM agent_runs "
                       "WHERE node = :node AND finished_at IS NULL ORDER BY id"),
        {{QStringLiteral(":node"), node}});
    if (!query)
        return std::unexpected(query.error());
    QList<AgentRunRecord> runs;
    while ((*query)->next()) {
        runs.append(AgentRunRecord{(*query)->value(0).toLongLong(), (*query)->value(1).toLongLong(), (*query)->value(2).toInt(),
                                   (*query)->value(3).toString(), (*query)->value(4).toLongLong(),
                                   quint64((*query)->value(5).toLongLong()), (*query)->value(6).toString(),
                                   (*query)->value(7).toString(), (*query)->value(8).toString()});
    }
    return runs;
}

Result<std::optional<JobRecord>> JobQueue::job(qint64 id) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(QStringLiteral("reading job %1").arg(id),
                                                QStringLiteral("SELECT %1 FROM jobs WHERE id = :id").arg(jobColumns()),
                                                {{QStringLiteral(":id"), id}});
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return std::optional<JobRecord>();
    return std::optional<JobRecord>(jobFromRow(**query));
}

Result<QList<JobRecord>> JobQueue::jobsForTask(qint64 taskId) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return jobList(session->exec(QStringLiteral("reading the jobs of task %1").arg(taskId),
                                 QStringLiteral("SELECT %1 FROM jobs WHERE task_id = :task_id ORDER BY id").arg(jobColumns()),
                                 {{QStringLiteral(":task_id"), taskId}}));
}

Result<QHash<QString, int>> JobQueue::countsByStatus() const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(QStringLiteral("counting jobs by status"),
                                                QStringLiteral("SELECT status, COUNT(*) FROM jobs GROUP BY status"));
    if (!query)
        return std::unexpected(query.error());
    QHash<QString, int> counts;
    for (const QString &status : JobStatuses)
        counts.insert(status, 0);
    while ((*query)->next())
        counts.insert((*query)->value(0).toString(), (*query)->value(1).toInt());
    return counts;
}

Result<QList<JobQueue::RunningJob>> JobQueue::runningOn(const QString &node) const
{
    auto jobs = [&]() -> Result<QList<JobRecord>> {
        Result<PreparedStatements::Session> session = m_statements.session();
        if (!session)
            return std::unexpected(session.error());
        return jobList(session->exec(QStringLiteral("listing the running jobs of node %1").arg(node),
                                     QStringLiteral("SELECT %1 FROM jobs WHERE status = 'running' AND claimed_by = :node "
                                                    "ORDER BY claimed_at, id")
                                         .arg(jobColumns()),
                                     {{QStringLiteral(":node"), node}}));
    }();
    if (!jobs)
        return std::unexpected(jobs.error());
    QList<RunningJob> out;
    for (const JobRecord &job : std::as_const(*jobs)) {
        RunningJob running{job, std::nullopt, {}, std::nullopt, 0};
        Result<PreparedStatements::Session> session = m_statements.session();
        if (!session)
            return std::unexpected(session.error());
        // The newest agent run of this attempt on this node: an older attempt's process is
        // not this run's.
        Result<ExecutedQuery> query = session->exec(
            QStringLiteral("reading the agent run of job %1").arg(job.id),
            QStringLiteral("SELECT id, job_id, attempt, node, pid, start_ticks, log_path, finished_at, exit_code, dead_ticks, host, worktree "
                           "FROM agent_runs WHERE job_id = :job AND attempt = :attempt AND node = :node "
                           "ORDER BY id DESC LIMIT 1"),
            {{QStringLiteral(":job"), job.id}, {QStringLiteral(":attempt"), job.attempts}, {QStringLiteral(":node"), node}});
        if (!query)
            return std::unexpected(query.error());
        if ((*query)->next()) {
            const QSqlQuery &q = **query;
            running.agent = AgentRunRecord{q.value(0).toLongLong(), q.value(1).toLongLong(), q.value(2).toInt(),
                                           q.value(3).toString(), q.value(4).toLongLong(),
                                           quint64(q.value(5).toLongLong()), q.value(6).toString(),
                                           q.value(10).toString(), q.value(11).toString()};
            if (!q.value(7).isNull())
                running.agentFinishedAt = QDateTime::fromMSecsSinceEpoch(q.value(7).toLongLong(), Qt::UTC);
            if (!q.value(8).isNull())
                running.exitCode = q.value(8).toInt();
            running.deadTicks = q.value(9).toInt();
        }
        out.append(running);
    }
    return out;
}

Result<void> JobQueue::setDeadTicks(qint64 agentRunId, int deadTicks)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<int> rows = session->execWrite(QStringLiteral("counting dead ticks of agent run %1").arg(agentRunId),
                                          QStringLiteral("UPDATE agent_runs SET dead_ticks = :ticks WHERE id = :id"),
                                          {{QStringLiteral(":ticks"), deadTicks}, {QStringLiteral(":id"), agentRunId}});
    if (!rows)
        return std::unexpected(rows.error());
    return {};
}

Result<QList<JobRecord>> JobQueue::running() const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return jobList(session->exec(
        QStringLiteral("listing the running jobs"),
        QStringLiteral("SELECT %1 FROM jobs WHERE status = 'running' ORDER BY claimed_at, id").arg(jobColumns())));
}

Result<QList<JobRecord>> JobQueue::recent(int limit) const
{
    if (limit < 0)
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("cannot list %1 recent jobs").arg(limit));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return jobList(session->exec(QStringLiteral("listing the %1 newest jobs").arg(limit),
                                 QStringLiteral("SELECT %1 FROM jobs ORDER BY id DESC LIMIT :limit").arg(jobColumns()),
                                 {{QStringLiteral(":limit"), limit}}));
}

Result<QDateTime> JobQueue::nextAvailableAt() const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("reading when the next queued job is available"),
        QStringLiteral("SELECT MIN(available_at) FROM jobs WHERE status = 'queued'"));
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return QDateTime();
    return fromMsecs((*query)->value(0));
}

} // namespace Sluice
