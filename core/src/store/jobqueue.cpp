// SPDX-License-Identifier: Apache-2.0
#include "store/jobqueue.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QSet>
#include <QSqlError>
#include <QSqlQuery>

namespace Sluice {

namespace {

// Key of the transaction-scoped advisory lock that serialises claimers on one PostgreSQL
// database ("jobclaim" in ASCII; the migrations use another key).
constexpr qint64 ClaimLockKey = 0x6a6f62636c61696d;

const QStringList JobStatuses = {QStringLiteral("queued"), QStringLiteral("running"), QStringLiteral("done"),
                                 QStringLiteral("failed")};

QLatin1String jobColumns()
{
    return QLatin1String("id, task_id, project, stage, kind, status, attempts, max_attempts, available_at, "
                         "claimed_by, claimed_at, finished_at, last_error, payload, created_at, updated_at");
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

// Our own server-side prepared statement of the claim (PostgreSQL), per connection.
const QString ClaimStatementName = QStringLiteral("sluice_claim_job");
const QString ClaimParameterTypes = QStringLiteral("text, bigint, text, integer, integer");

/*
 * The PostgreSQL claim: the oldest available queued job whose project runs fewer jobs on
 * this node than its limit, while fewer than the node's limit run on it in total. The
 * per-project limits travel as one JSON parameter, so the text never changes and is prepared
 * once per connection. Both counts come from the partial index of running jobs by node and
 * project; SKIP LOCKED passes over a row another writer holds.
 *
 * Parameters $1..$5: node, now, limits (JSON object), global, project default, with
 * ClaimParameterTypes.
 */
QString postgresqlClaimStatement()
{
    const QString projectLimit =
        QStringLiteral("SELECT CAST(l.value AS INTEGER) FROM json_each_text(CAST(:limits AS json)) l WHERE l.key = c.project");
    QString sql = QStringLiteral(
                      "UPDATE jobs SET status = 'running', claimed_by = :node, claimed_at = :now, updated_at = :now, "
                      "attempts = attempts + 1 "
                      "WHERE status = 'queued' AND id = ("
                      "SELECT c.id FROM jobs c WHERE c.status = 'queued' AND c.available_at <= :now "
                      "AND (SELECT COUNT(*) FROM jobs g WHERE g.status = 'running' AND g.claimed_by = :node) < :global "
                      "AND (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.claimed_by = :node "
                      "AND r.project = c.project) < COALESCE((%1), :project_default) "
                      "ORDER BY c.available_at, c.id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                      "RETURNING %2")
                      .arg(projectLimit, jobColumns());
    sql.replace(QLatin1String(":node"), QLatin1String("$1"));
    sql.replace(QLatin1String(":now"), QLatin1String("$2"));
    sql.replace(QLatin1String(":limits"), QLatin1String("$3"));
    sql.replace(QLatin1String(":global"), QLatin1String("$4"));
    sql.replace(QLatin1String(":project_default"), QLatin1String("$5"));
    return sql;
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
    // The partial unique index jobs_one_open_per_task_stage decides, also between nodes: the
    // loser inserts nothing. A NULL task_id never conflicts.
    Result<ExecutedQuery> inserted = session->exec(
        QStringLiteral("enqueueing a %1 job of task %2 for stage '%3'").arg(job.kind).arg(job.taskId).arg(job.stage),
        QStringLiteral("INSERT INTO jobs (task_id, project, stage, kind, status, attempts, max_attempts, available_at, "
                       "payload, created_at, updated_at) "
                       "VALUES (:task_id, :project, :stage, :kind, 'queued', 0, :max_attempts, :available_at, "
                       ":payload, :now, :now) "
                       "ON CONFLICT DO NOTHING RETURNING id"),
        {{QStringLiteral(":task_id"), job.taskId > 0 ? QVariant(job.taskId) : QVariant()},
         {QStringLiteral(":project"), job.project},
         {QStringLiteral(":stage"), job.stage},
         {QStringLiteral(":kind"), job.kind},
         {QStringLiteral(":max_attempts"), job.maxAttempts},
         {QStringLiteral(":available_at"), job.availableAt.isValid() ? job.availableAt.toMSecsSinceEpoch() : now},
         {QStringLiteral(":payload"), QString::fromUtf8(QJsonDocument(Redaction::maskJson(job.payload)).toJson(QJsonDocument::Compact))},
         {QStringLiteral(":now"), now}});
    if (!inserted)
        return std::unexpected(inserted.error());
    if (!(*inserted)->next())
        return std::optional<qint64>();
    return std::optional<qint64>((*inserted)->value(0).toLongLong());
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
    if (session->isPostgresql()) {
        QList<JobRecord> claimed;
        while (claimed.size() < max) {
            Result<std::optional<JobRecord>> one = claimOnPostgresql(*session, node, limits, now);
            if (!one)
                return claimed.isEmpty() ? Result<QList<JobRecord>>(std::unexpected(one.error())) : claimed;
            if (!*one)
                break;
            claimed.append(**one);
        }
        return claimed;
    }
    return claimOnSqlite(*session, node, limits, now, max);
}

Result<std::optional<JobRecord>> JobQueue::claimOnPostgresql(PreparedStatements::Session &session, const QString &node,
                                                             const ConcurrencyLimits &limits, const QDateTime &now)
{
    QJsonObject perProject;
    for (auto it = limits.perProject.cbegin(); it != limits.perProject.cend(); ++it)
        perProject.insert(it.key(), it.value());
    const QString limitsJson = QString::fromUtf8(QJsonDocument(perProject).toJson(QJsonDocument::Compact));
    const QString what = QStringLiteral("claiming a job for node %1").arg(node);

    /*
     * One round trip, one transaction: the advisory lock and the claim go as one script,
     * which the server runs as one implicit transaction. The lock serialises claimers
     * across nodes until that transaction commits, and the claim statement takes its
     * snapshot after the lock was granted, so it counts every claim committed before.
     * (In one statement the snapshot would predate the lock; in separate round trips
     * the lock would be held across the network.)
     *
     * enable_sort = off for this transaction pins the plan to walking jobs_claimable in
     * order: with statistics that undercount the queued jobs (a new table, a burst of
     * enqueues since the last autoanalyze) the planner would rather sort every
     * available job for each claim, measured at 20 ms a claim with 1,500 queued.
     */
    if (Result<void> prepared = session.prepareOnServer(QStringLiteral("preparing the claim statement"),
                                                        ClaimStatementName, ClaimParameterTypes, postgresqlClaimStatement());
        !prepared)
        return std::unexpected(prepared.error());
    Result<ExecutedQuery> query = session.execScript(
        what, QStringLiteral("SET LOCAL enable_sort = off; SELECT pg_advisory_xact_lock(%1); "
                             "EXECUTE %2 (%3, %4, %5, %6, %7)")
                  .arg(ClaimLockKey)
                  .arg(ClaimStatementName, session.literal(node), session.literal(now.toMSecsSinceEpoch()),
                       session.literal(limitsJson), session.literal(limits.global),
                       session.literal(limits.perProjectDefault)));
    if (!query)
        return std::unexpected(query.error());
    // From the SET past the lock to the claim's rows.
    for (int skip = 0; skip < 2; ++skip) {
        if (!(*query)->nextResult())
            return std::unexpected(session.error(what, (*query)->lastError().text()));
    }
    std::optional<JobRecord> claimed;
    if ((*query)->next())
        claimed = jobFromRow(**query);
    // The implicit commit follows the claim's rows; had it failed, its error would come
    // as one more result.
    if ((*query)->nextResult() || (*query)->lastError().isValid())
        return std::unexpected(session.error(QStringLiteral("committing the claim for node %1").arg(node),
                                             (*query)->lastError().text()));
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
            Result<ExecutedQuery> query = session.exec(
                what, QStringLiteral("UPDATE jobs SET status = 'running', claimed_by = :node, claimed_at = :now, "
                                     "updated_at = :now, attempts = attempts + 1 "
                                     "WHERE id = :id AND status = 'queued' RETURNING %1")
                          .arg(jobColumns()),
                {{QStringLiteral(":node"), node}, {QStringLiteral(":now"), at}, {QStringLiteral(":id"), id}});
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
    Result<QList<qint64>> completed = complete(QList<qint64>{jobId}, node);
    if (!completed)
        return std::unexpected(completed.error());
    return !completed->isEmpty();
}

Result<QList<qint64>> JobQueue::complete(const QList<qint64> &jobIds, const QString &node)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const QString what = jobIds.size() == 1 ? QStringLiteral("completing job %1 of node %2").arg(jobIds.constFirst()).arg(node)
                                            : QStringLiteral("completing %1 jobs of node %2").arg(jobIds.size()).arg(node);
    if (jobIds.size() == 1)
        return completeInTransaction(*session, what, jobIds, node);
    // One transaction for all of them: one commit, each touched page written once.
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    Result<QList<qint64>> completed = completeInTransaction(*session, what, jobIds, node);
    if (!completed)
        return completed;
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    return completed;
}

Result<JobQueue::Turnover> JobQueue::completeAndClaim(const QList<qint64> &jobIds, const QString &node,
                                                      const ConcurrencyLimits &limits, const QDateTime &now, int max)
{
    if (node.isEmpty() || !now.isValid())
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("completing and claiming jobs needs a node name and a valid time"));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Turnover turnover;
    if (session->isPostgresql() || max < 1) {
        // PostgreSQL claims one job per advisory-locked transaction anyway.
        Result<QList<qint64>> completed = complete(jobIds, node);
        if (!completed)
            return std::unexpected(completed.error());
        turnover.completed = *completed;
        if (max >= 1) {
            Result<QList<JobRecord>> claimed = claim(node, limits, now, max);
            if (!claimed)
                return std::unexpected(claimed.error());
            turnover.claimed = *claimed;
        }
        return turnover;
    }
    const QString what = QStringLiteral("completing %1 and claiming up to %2 job(s) for node %3")
                             .arg(jobIds.size()).arg(max).arg(node);
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    Result<QList<qint64>> completed = completeInTransaction(*session, what, jobIds, node);
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
                                                      const QList<qint64> &jobIds, const QString &node)
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    QList<qint64> completed;
    for (const qint64 id : jobIds) {
        Result<int> rows = session.execWrite(
            what,
            QStringLiteral("UPDATE jobs SET status = 'done', finished_at = :now, updated_at = :now "
                           "WHERE id = :id AND status = 'running' AND claimed_by = :node"),
            {{QStringLiteral(":now"), now}, {QStringLiteral(":id"), id}, {QStringLiteral(":node"), node}});
        if (!rows)
            return std::unexpected(rows.error());
        if (*rows == 1)
            completed.append(id);
    }
    return completed;
}

Result<JobQueue::FailOutcome> JobQueue::fail(qint64 jobId, const QString &node, const QString &error,
                                             std::chrono::milliseconds backoff, const QDateTime &now)
{
    if (!now.isValid() || backoff.count() < 0)
        return Sluice::fail(ErrorCode::InvalidArgument,
                            QStringLiteral("failing job %1 needs a valid time and a back-off of at least 0").arg(jobId));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 at = now.toMSecsSinceEpoch();
    // One statement decides requeue or failed from the row itself. The casts give
    // PostgreSQL a type for parameters that only meet NULL in a CASE.
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("failing job %1 of node %2").arg(jobId).arg(node),
        QStringLiteral("UPDATE jobs SET "
                       "status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, "
                       "available_at = CASE WHEN attempts < max_attempts THEN CAST(:retry_at AS BIGINT) "
                       "ELSE available_at END, "
                       "finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE CAST(:now AS BIGINT) END, "
                       "last_error = :error, updated_at = :now "
                       "WHERE id = :id AND status = 'running' AND claimed_by = :node "
                       "RETURNING status"),
        {{QStringLiteral(":retry_at"), at + qint64(backoff.count())},
         {QStringLiteral(":now"), at},
         // A stage's failure summary carries its output's tail: masked on the way in.
         {QStringLiteral(":error"), Redaction::mask(error)},
         {QStringLiteral(":id"), jobId},
         {QStringLiteral(":node"), node}});
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return FailOutcome::Lost;
    return (*query)->value(0).toString() == QLatin1String("queued") ? FailOutcome::Requeued : FailOutcome::Failed;
}

Result<bool> JobQueue::release(qint64 jobId, const QString &node, const QString &reason)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    Result<int> rows = session->execWrite(
        QStringLiteral("releasing job %1 of node %2").arg(jobId).arg(node),
        QStringLiteral("UPDATE jobs SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
                       "available_at = :now, last_error = :reason, updated_at = :now "
                       "WHERE id = :id AND status = 'running' AND claimed_by = :node"),
        {{QStringLiteral(":now"), now}, {QStringLiteral(":reason"), Redaction::mask(reason)}, {QStringLiteral(":id"), jobId},
         {QStringLiteral(":node"), node}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
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
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("recording the agent process %1 of job %2").arg(run.pid).arg(run.jobId),
        QStringLiteral("INSERT INTO agent_runs (job_id, attempt, node, pid, start_ticks, started_at, log_path) "
                       "VALUES (:job, :attempt, :node, :pid, :ticks, :now, :log) RETURNING id"),
        {{QStringLiteral(":job"), run.jobId},
         {QStringLiteral(":attempt"), run.attempt},
         {QStringLiteral(":node"), run.node},
         {QStringLiteral(":pid"), run.pid},
         {QStringLiteral(":ticks"), qint64(run.startTicks)},
         {QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
         {QStringLiteral(":log"), run.logPath}});
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return Sluice::fail(ErrorCode::Storage, QStringLiteral("recording the agent process of job %1 returned no id").arg(run.jobId));
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
        QStringLiteral("SELECT id, job_id, attempt, node, pid, start_ticks, log_path FROM agent_runs "
                       "WHERE node = :node AND finished_at IS NULL ORDER BY id"),
        {{QStringLiteral(":node"), node}});
    if (!query)
        return std::unexpected(query.error());
    QList<AgentRunRecord> runs;
    while ((*query)->next()) {
        runs.append(AgentRunRecord{(*query)->value(0).toLongLong(), (*query)->value(1).toLongLong(), (*query)->value(2).toInt(),
                                   (*query)->value(3).toString(), (*query)->value(4).toLongLong(),
                                   quint64((*query)->value(5).toLongLong()), (*query)->value(6).toString()});
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
            QStringLiteral("SELECT id, job_id, attempt, node, pid, start_ticks, log_path, finished_at, exit_code, dead_ticks "
                           "FROM agent_runs WHERE job_id = :job AND attempt = :attempt AND node = :node "
                           "ORDER BY id DESC LIMIT 1"),
            {{QStringLiteral(":job"), job.id}, {QStringLiteral(":attempt"), job.attempts}, {QStringLiteral(":node"), node}});
        if (!query)
            return std::unexpected(query.error());
        if ((*query)->next()) {
            const QSqlQuery &q = **query;
            running.agent = AgentRunRecord{q.value(0).toLongLong(), q.value(1).toLongLong(), q.value(2).toInt(),
                                           q.value(3).toString(), q.value(4).toLongLong(),
                                           quint64(q.value(5).toLongLong()), q.value(6).toString()};
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
