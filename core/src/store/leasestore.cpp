// SPDX-License-Identifier: Apache-2.0
#include "store/leasestore.h"

#include "procstat.h"

#include <QCoreApplication>

namespace Sluice {

namespace {

const QString Columns = QStringLiteral("resource, holder_node, holder_pid, holder_start_ticks, holder_task, holder_job, "
                                       "acquired_at, expires_at, fence_token");

// The same holder: the same task when the caller names one, else the same node and process.
// A task's lease is the task's on one node: any process of that node (a re-drive after a
// restart) holds it, another node's evaluation of the same task does not — it waits, as
// for any holder, until the lease is released or reclaimed (its node silent).
const QString SameHolder = QStringLiteral(
    "((CAST(:task AS BIGINT) IS NOT NULL AND holder_task = CAST(:task AS BIGINT) AND holder_node = :node) OR "
    "(CAST(:task AS BIGINT) IS NULL AND holder_task IS NULL AND holder_node = :node AND holder_pid = :pid))");

QVariant nullIfZero(qint64 value)
{
    return value > 0 ? QVariant(value) : QVariant();
}

LeaseRecord readLease(const QSqlQuery &q)
{
    LeaseRecord lease;
    lease.resource = q.value(0).toString();
    lease.holder.node = q.value(1).toString();
    lease.holder.pid = q.value(2).toLongLong();
    lease.holder.startTicks = quint64(q.value(3).toLongLong());
    lease.holder.taskId = q.value(4).toLongLong();
    lease.holder.jobId = q.value(5).toLongLong();
    lease.acquiredAt = QDateTime::fromMSecsSinceEpoch(q.value(6).toLongLong(), Qt::UTC);
    lease.expiresAt = QDateTime::fromMSecsSinceEpoch(q.value(7).toLongLong(), Qt::UTC);
    lease.fenceToken = q.value(8).toLongLong();
    return lease;
}

StatementBinds holderBinds(const LeaseHolder &holder)
{
    return {{QStringLiteral(":task"), nullIfZero(holder.taskId)},
            {QStringLiteral(":node"), holder.node},
            {QStringLiteral(":pid"), holder.pid}};
}

Result<void> checkArguments(const QString &resource, const LeaseHolder &holder, std::chrono::milliseconds ttl,
                            const QDateTime &now)
{
    if (resource.isEmpty() || holder.node.isEmpty() || holder.pid <= 0)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a lease needs a resource and a holder (node and pid)"));
    if (ttl.count() <= 0 || !now.isValid())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("lease %1 needs a positive TTL and a valid time").arg(resource));
    return {};
}

// Whether the store's node fence still holds its node.
bool fenceHolds(PreparedStatements::Session &session)
{
    StatementBinds binds;
    const QString fence = session.fenceCondition(binds);
    Result<ExecutedQuery> query = session.exec(QStringLiteral("checking the claim of node %1").arg(session.fence().node),
                                               QStringLiteral("SELECT 1 WHERE 1 = 1") + fence, binds);
    return query && (*query)->next();
}

} // namespace

bool LeaseHolder::sameHolder(const LeaseHolder &other) const
{
    if (taskId > 0 || other.taskId > 0)
        return taskId == other.taskId && node == other.node;
    return node == other.node && pid == other.pid;
}

LeaseStore::LeaseStore(Store &store)
    : m_statements(store)
{
}

LeaseStore::~LeaseStore() = default;

Result<LeaseStore::Acquired> LeaseStore::acquire(const QString &resource, const LeaseHolder &holder,
                                                 std::chrono::milliseconds ttl, const QDateTime &now)
{
    if (auto ok = checkArguments(resource, holder, ttl, now); !ok)
        return std::unexpected(ok.error());
    if (holder.taskId <= 0)
        return take(resource, holder, ttl, now);
    // A task that holds it renews; one that does not queues (or keeps its place) and gets it
    // only when it is free and no task that asked earlier still asks.
    auto current = lease(resource);
    if (!current)
        return std::unexpected(current.error());
    if (*current && (*current)->holder.sameHolder(holder))
        return take(resource, holder, ttl, now);
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 at = now.toMSecsSinceEpoch();
    const qint64 fresh = at - qint64(ttl.count());
    const StatementBinds mine{{QStringLiteral(":resource"), resource}, {QStringLiteral(":task"), holder.taskId},
                              {QStringLiteral(":now"), at}, {QStringLiteral(":fresh"), fresh}};
    Result<int> pruned = session->execWrite(QStringLiteral("pruning the waiters of lease %1").arg(resource),
                                            QStringLiteral("DELETE FROM lease_queue WHERE resource = :resource AND last_asked < :fresh"),
                                            {{QStringLiteral(":resource"), resource}, {QStringLiteral(":fresh"), fresh}});
    if (!pruned)
        return std::unexpected(pruned.error());
    Result<ExecutedQuery> queued = session->exec(
        QStringLiteral("queueing task %1 for lease %2").arg(holder.taskId).arg(resource),
        QStringLiteral("INSERT INTO lease_queue (resource, holder_task, first_asked, last_asked) VALUES (:resource, :task, :now, :now) "
                       "ON CONFLICT (resource, holder_task) DO UPDATE SET last_asked = excluded.last_asked RETURNING first_asked"),
        {{QStringLiteral(":resource"), resource}, {QStringLiteral(":task"), holder.taskId}, {QStringLiteral(":now"), at}});
    if (!queued)
        return std::unexpected(queued.error());
    if (!(*queued)->next())
        return fail(ErrorCode::Storage, QStringLiteral("queueing task %1 for lease %2 returned no row").arg(holder.taskId).arg(resource));
    const qint64 firstAsked = (*queued)->value(0).toLongLong();
    if (*current)
        return Acquired{false, **current, 0};
    StatementBinds ahead = mine;
    ahead.append({QStringLiteral(":first"), firstAsked});
    Result<ExecutedQuery> before = session->exec(
        QStringLiteral("looking for tasks ahead of task %1 for lease %2").arg(holder.taskId).arg(resource),
        // A waiter whose task has ended (done, blocked, cancelled) waits for nothing: a queue
        // entry it left — its ask from another node while it held the lease, say — must not
        // hold the lease for it until the entry ages out (tests/bench/nodes.sh: every other
        // task waited for a done task's place for lease_ttl).
        QStringLiteral("SELECT holder_task FROM lease_queue WHERE resource = :resource AND holder_task <> :task AND last_asked >= :fresh "
                       "AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = lease_queue.holder_task AND tasks.status <> 'active') "
                       "AND (first_asked < :first OR (first_asked = :first AND holder_task < :task)) ORDER BY first_asked, holder_task LIMIT 1"),
        ahead);
    if (!before)
        return std::unexpected(before.error());
    if ((*before)->next()) {
        LeaseRecord promised;
        promised.resource = resource;
        promised.holder.taskId = (*before)->value(0).toLongLong();
        return Acquired{false, promised, promised.holder.taskId};
    }
    auto taken = take(resource, holder, ttl, now);
    if (taken && taken->held) {
        Result<int> left = session->execWrite(QStringLiteral("taking task %1 off the queue of lease %2").arg(holder.taskId).arg(resource),
                                              QStringLiteral("DELETE FROM lease_queue WHERE resource = :resource AND holder_task = :task"),
                                              {{QStringLiteral(":resource"), resource}, {QStringLiteral(":task"), holder.taskId}});
        if (!left)
            return std::unexpected(left.error());
    }
    return taken;
}

Result<LeaseStore::Acquired> LeaseStore::take(const QString &resource, const LeaseHolder &holder, std::chrono::milliseconds ttl,
                                              const QDateTime &now)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const qint64 at = now.toMSecsSinceEpoch();
    // Free: inserted. Ours: renewed and moved to the calling process (a re-drive after a
    // restart holds it from its new pid). Another holder's: untouched, no row returned. The
    // hold carries the generation of the holder's node claim; with a node fence, a node that
    // was taken over takes and renews nothing (the SELECT yields no row).
    StatementBinds binds{{QStringLiteral(":resource"), resource},
                         {QStringLiteral(":node"), holder.node},
                         {QStringLiteral(":pid"), holder.pid},
                         {QStringLiteral(":ticks"), holder.startTicks > 0 ? QVariant(qint64(holder.startTicks)) : QVariant()},
                         {QStringLiteral(":task"), nullIfZero(holder.taskId)},
                         {QStringLiteral(":job"), nullIfZero(holder.jobId)},
                         {QStringLiteral(":now"), at},
                         {QStringLiteral(":expires"), at + qint64(ttl.count())}};
    const QString fence = session->fenceCondition(binds);
    // SQLite needs a WHERE in an INSERT ... SELECT followed by ON CONFLICT.
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("acquiring lease %1 for node %2 pid %3").arg(resource, holder.node).arg(holder.pid),
        QStringLiteral("INSERT INTO leases (%1) SELECT :resource, :node, CAST(:pid AS BIGINT), CAST(:ticks AS BIGINT), CAST(:task AS BIGINT), "
                       "CAST(:job AS BIGINT), CAST(:now AS BIGINT), CAST(:expires AS BIGINT), "
                       "COALESCE((SELECT generation FROM nodes WHERE name = :node), 0) WHERE 1 = 1%2 "
                       "ON CONFLICT (resource) DO UPDATE SET holder_node = excluded.holder_node, "
                       "holder_pid = excluded.holder_pid, holder_start_ticks = excluded.holder_start_ticks, "
                       "holder_job = excluded.holder_job, expires_at = excluded.expires_at, fence_token = excluded.fence_token "
                       "WHERE (excluded.holder_task IS NOT NULL AND leases.holder_task = excluded.holder_task "
                       "AND leases.holder_node = excluded.holder_node) OR "
                       "(excluded.holder_task IS NULL AND leases.holder_task IS NULL AND "
                       "leases.holder_node = excluded.holder_node AND leases.holder_pid = excluded.holder_pid) "
                       "RETURNING %1")
            .arg(Columns, fence),
        binds);
    if (!query)
        return std::unexpected(query.error());
    if ((*query)->next())
        return Acquired{true, readLease(**query)};
    auto current = lease(resource);
    if (!current)
        return std::unexpected(current.error());
    if (!*current) {
        // Nothing inserted into a free resource: this node's fence is lost.
        if (session->fence().isSet() && !fenceHolds(*session))
            return fail(ErrorCode::Conflict, QStringLiteral("node %1 no longer holds its name (taken over); it takes no lease")
                                                 .arg(session->fence().node));
        return take(resource, holder, ttl, now); // released between the two statements: once more
    }
    return Acquired{false, **current, 0};
}

Result<bool> LeaseStore::renew(const QString &resource, const LeaseHolder &holder, std::chrono::milliseconds ttl,
                               const QDateTime &now)
{
    if (auto ok = checkArguments(resource, holder, ttl, now); !ok)
        return std::unexpected(ok.error());
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StatementBinds binds = holderBinds(holder);
    binds.append({QStringLiteral(":resource"), resource});
    binds.append({QStringLiteral(":expires"), now.toMSecsSinceEpoch() + qint64(ttl.count())});
    const QString fence = session->fenceCondition(binds);
    Result<int> rows = session->execWrite(QStringLiteral("renewing lease %1").arg(resource),
                                          QStringLiteral("UPDATE leases SET expires_at = :expires WHERE resource = :resource AND ") + SameHolder + fence,
                                          binds);
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<bool> LeaseStore::release(const QString &resource, const LeaseHolder &holder)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StatementBinds binds = holderBinds(holder);
    binds.append({QStringLiteral(":resource"), resource});
    const QString fence = session->fenceCondition(binds);
    Result<int> rows = session->execWrite(QStringLiteral("releasing lease %1").arg(resource),
                                          QStringLiteral("DELETE FROM leases WHERE resource = :resource AND ") + SameHolder + fence, binds);
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<bool> LeaseStore::reclaim(const LeaseRecord &seen)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<int> rows = session->execWrite(
        QStringLiteral("reclaiming lease %1 of node %2 pid %3").arg(seen.resource, seen.holder.node).arg(seen.holder.pid),
        QStringLiteral("DELETE FROM leases WHERE resource = :resource AND holder_node = :node AND holder_pid = :pid "
                       "AND acquired_at = :acquired AND expires_at = :expires"),
        {{QStringLiteral(":resource"), seen.resource},
         {QStringLiteral(":node"), seen.holder.node},
         {QStringLiteral(":pid"), seen.holder.pid},
         {QStringLiteral(":acquired"), seen.acquiredAt.toMSecsSinceEpoch()},
         {QStringLiteral(":expires"), seen.expiresAt.toMSecsSinceEpoch()}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<std::optional<LeaseRecord>> LeaseStore::lease(const QString &resource) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(QStringLiteral("reading lease %1").arg(resource),
                                                QStringLiteral("SELECT %1 FROM leases WHERE resource = :resource").arg(Columns),
                                                {{QStringLiteral(":resource"), resource}});
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return std::optional<LeaseRecord>();
    return std::optional<LeaseRecord>(readLease(**query));
}

Result<QList<LeaseRecord>> LeaseStore::leases() const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(QStringLiteral("listing leases"),
                                                QStringLiteral("SELECT %1 FROM leases ORDER BY resource").arg(Columns));
    if (!query)
        return std::unexpected(query.error());
    QList<LeaseRecord> out;
    while ((*query)->next())
        out.append(readLease(**query));
    return out;
}

Result<QList<LeaseStore::Waiter>> LeaseStore::waiters() const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(QStringLiteral("listing lease waiters"),
                                                QStringLiteral("SELECT resource, holder_task, first_asked, last_asked FROM lease_queue "
                                                               "ORDER BY resource, first_asked, holder_task"));
    if (!query)
        return std::unexpected(query.error());
    QList<Waiter> out;
    while ((*query)->next()) {
        out.append(Waiter{(*query)->value(0).toString(), (*query)->value(1).toLongLong(),
                          QDateTime::fromMSecsSinceEpoch((*query)->value(2).toLongLong(), Qt::UTC),
                          QDateTime::fromMSecsSinceEpoch((*query)->value(3).toLongLong(), Qt::UTC)});
    }
    return out;
}

StoreLeaseService::StoreLeaseService(Store &store, const QString &node)
    : m_leases(store)
    , m_node(node)
{
    if (const auto stat = readProcStat(QCoreApplication::applicationPid()))
        m_startTicks = stat->startTicks;
}

StoreLeaseService::~StoreLeaseService() = default;

LeaseHolder StoreLeaseService::holder(qint64 taskId) const
{
    return LeaseHolder{m_node, QCoreApplication::applicationPid(), m_startTicks, taskId, 0};
}

Result<LeaseService::Hold> StoreLeaseService::acquire(const QString &resource, qint64 taskId, std::chrono::milliseconds ttl)
{
    if (taskId <= 0)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("lease %1 needs the task that holds it").arg(resource));
    auto acquired = m_leases.acquire(resource, holder(taskId), ttl, QDateTime::currentDateTimeUtc());
    if (!acquired)
        return std::unexpected(acquired.error());
    // Free but promised to a task that asked first: that task, no node, no expiry.
    return Hold{acquired->held, acquired->lease.holder.taskId, acquired->lease.holder.node, acquired->lease.expiresAt};
}

Result<bool> StoreLeaseService::renew(const QString &resource, qint64 taskId, std::chrono::milliseconds ttl)
{
    return m_leases.renew(resource, holder(taskId), ttl, QDateTime::currentDateTimeUtc());
}

Result<bool> StoreLeaseService::release(const QString &resource, qint64 taskId)
{
    return m_leases.release(resource, holder(taskId));
}

} // namespace Sluice
