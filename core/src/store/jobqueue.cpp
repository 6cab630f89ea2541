// SPDX-License-Identifier: Apache-2.0
#include "store/jobqueue.h"

#include <QJsonDocument>
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
 * The claim: the oldest available queued job whose project runs fewer jobs than its limit,
 * while fewer than the global limit run in total. The per-project limits travel as one JSON
 * parameter, so the text never changes and is prepared once per connection.
 *
 * The counts are index lookups, built so that no engine needs a temporary table per claim:
 * the running jobs of one project come from (project, status), the total from the partial
 * index of running jobs (SQLite, without statistics, would otherwise scan the whole
 * (project, status) index, finished jobs included). On PostgreSQL SKIP LOCKED passes over a
 * row another writer holds.
 *
 * Parameters: :node, :now, :limits (JSON object), :global, :project_default; on PostgreSQL
 * $1..$5 in that order, for PREPARE, with ClaimParameterTypes.
 */
QString claimStatement(bool postgresql)
{
    const QString projectLimit = postgresql
        ? QStringLiteral("SELECT CAST(l.value AS INTEGER) FROM json_each_text(CAST(:limits AS json)) l WHERE l.key = c.project")
        : QStringLiteral("SELECT l.value FROM json_each(:limits) l WHERE l.key = c.project");
    QString sql = QStringLiteral(
                      "UPDATE jobs SET status = 'running', claimed_by = :node, claimed_at = :now, updated_at = :now, "
                      "attempts = attempts + 1 "
                      "WHERE status = 'queued' AND id = ("
                      "SELECT c.id FROM jobs c WHERE c.status = 'queued' AND c.available_at <= :now "
                      "AND (SELECT COUNT(*) FROM jobs g%1 WHERE g.status = 'running') < :global "
                      "AND (SELECT COUNT(*) FROM jobs r WHERE r.project = c.project AND r.status = 'running') "
                      "< COALESCE((%2), :project_default) "
                      "ORDER BY c.available_at, c.id LIMIT 1%3) "
                      "RETURNING %4")
                      .arg(postgresql ? QString() : QStringLiteral(" INDEXED BY jobs_running_by_node"), projectLimit,
                           postgresql ? QStringLiteral(" FOR UPDATE SKIP LOCKED") : QString(), jobColumns());
    if (postgresql) {
        sql.replace(QLatin1String(":node"), QLatin1String("$1"));
        sql.replace(QLatin1String(":now"), QLatin1String("$2"));
        sql.replace(QLatin1String(":limits"), QLatin1String("$3"));
        sql.replace(QLatin1String(":global"), QLatin1String("$4"));
        sql.replace(QLatin1String(":project_default"), QLatin1String("$5"));
    }
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
         {QStringLiteral(":payload"), QString::fromUtf8(QJsonDocument(job.payload).toJson(QJsonDocument::Compact))},
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
    if (node.isEmpty() || !now.isValid())
        return Sluice::fail(ErrorCode::InvalidArgument, QStringLiteral("claiming a job needs a node name and a valid time"));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());

    QJsonObject perProject;
    for (auto it = limits.perProject.cbegin(); it != limits.perProject.cend(); ++it)
        perProject.insert(it.key(), it.value());
    const QString limitsJson = QString::fromUtf8(QJsonDocument(perProject).toJson(QJsonDocument::Compact));
    const QString what = QStringLiteral("claiming a job for node %1").arg(node);

    if (session->isPostgresql()) {
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
        if (Result<void> prepared = session->prepareOnServer(QStringLiteral("preparing the claim statement"),
                                                             ClaimStatementName, ClaimParameterTypes,
                                                             claimStatement(true));
            !prepared)
            return std::unexpected(prepared.error());
        Result<ExecutedQuery> query = session->execScript(
            what, QStringLiteral("SET LOCAL enable_sort = off; SELECT pg_advisory_xact_lock(%1); "
                                 "EXECUTE %2 (%3, %4, %5, %6, %7)")
                      .arg(ClaimLockKey)
                      .arg(ClaimStatementName, session->literal(node), session->literal(now.toMSecsSinceEpoch()),
                           session->literal(limitsJson), session->literal(limits.global),
                           session->literal(limits.perProjectDefault)));
        if (!query)
            return std::unexpected(query.error());
        // From the SET past the lock to the claim's rows.
        for (int skip = 0; skip < 2; ++skip) {
            if (!(*query)->nextResult())
                return std::unexpected(session->error(what, (*query)->lastError().text()));
        }
        std::optional<JobRecord> claimed;
        if ((*query)->next())
            claimed = jobFromRow(**query);
        // The implicit commit follows the claim's rows; had it failed, its error would come
        // as one more result.
        if ((*query)->nextResult() || (*query)->lastError().isValid())
            return std::unexpected(session->error(QStringLiteral("committing the claim for node %1").arg(node),
                                                  (*query)->lastError().text()));
        return claimed;
    }

    // SQLite: the claim is a write from its first step, so it holds the write lock before it
    // counts; BEGIN IMMEDIATE makes that explicit and waits out other writers (busy timeout).
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    std::optional<JobRecord> claimed;
    {
        Result<ExecutedQuery> query = session->exec(what, claimStatement(false),
                                                    {{QStringLiteral(":limits"), limitsJson},
                                                     {QStringLiteral(":node"), node},
                                                     {QStringLiteral(":now"), now.toMSecsSinceEpoch()},
                                                     {QStringLiteral(":global"), limits.global},
                                                     {QStringLiteral(":project_default"), limits.perProjectDefault}});
        if (!query)
            return std::unexpected(query.error());
        if ((*query)->next())
            claimed = jobFromRow(**query);
    }
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    return claimed;
}

Result<bool> JobQueue::complete(qint64 jobId, const QString &node)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    Result<int> rows = session->execWrite(
        QStringLiteral("completing job %1 of node %2").arg(jobId).arg(node),
        QStringLiteral("UPDATE jobs SET status = 'done', finished_at = :now, updated_at = :now "
                       "WHERE id = :id AND status = 'running' AND claimed_by = :node"),
        {{QStringLiteral(":now"), now}, {QStringLiteral(":id"), jobId}, {QStringLiteral(":node"), node}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
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
         {QStringLiteral(":error"), error},
         {QStringLiteral(":id"), jobId},
         {QStringLiteral(":node"), node}});
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return FailOutcome::Lost;
    return (*query)->value(0).toString() == QLatin1String("queued") ? FailOutcome::Requeued : FailOutcome::Failed;
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
        {{QStringLiteral(":now"), now}, {QStringLiteral(":reason"), reason}, {QStringLiteral(":node"), node}});
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
