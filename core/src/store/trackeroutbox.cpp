// SPDX-License-Identifier: Apache-2.0
#include "store/trackeroutbox.h"

namespace Sluice {

namespace {

const QString Columns = QStringLiteral("id, project, task_id, task_version, tracker_ref, action, value, event, stage, write_key, "
                                       "attempts, created_at, next_at, last_error, done_at, outcome");

QDateTime timeOf(const QVariant &ms)
{
    return ms.isNull() ? QDateTime() : QDateTime::fromMSecsSinceEpoch(ms.toLongLong(), Qt::UTC);
}

TrackerWrite readWrite(const QSqlQuery &q)
{
    TrackerWrite w;
    w.id = q.value(0).toLongLong();
    w.project = q.value(1).toString();
    w.taskId = q.value(2).toLongLong();
    w.taskVersion = q.value(3).toLongLong();
    w.trackerRef = q.value(4).toString();
    w.action = q.value(5).toString();
    w.value = q.value(6).toString();
    w.event = q.value(7).toString();
    w.stage = q.value(8).toString();
    w.key = q.value(9).toString();
    w.attempts = q.value(10).toInt();
    w.createdAt = timeOf(q.value(11));
    w.nextAt = timeOf(q.value(12));
    w.lastError = q.value(13).toString();
    w.doneAt = timeOf(q.value(14));
    w.outcome = q.value(15).toString();
    return w;
}

} // namespace

TrackerOutbox::TrackerOutbox(Store &store)
    : m_statements(store)
{
}

TrackerOutbox::~TrackerOutbox() = default;

Result<qint64> TrackerOutbox::add(const TrackerWrite &write, const QString &node, const QDateTime &now, const QDateTime &claimUntil)
{
    if (write.project.isEmpty() || write.trackerRef.isEmpty() || write.key.isEmpty()
        || (write.action != QLatin1String("comment") && write.action != QLatin1String("state")))
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a tracker write needs a project, an issue, a key and the action comment or state"));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const QString what = QStringLiteral("keeping the %1 for issue %2 of task %3").arg(write.action, write.trackerRef).arg(write.taskId);
    qint64 id = 0;
    {
        Result<ExecutedQuery> inserted = session->exec(
            what,
            QStringLiteral("INSERT INTO tracker_writes (project, task_id, task_version, tracker_ref, action, value, event, stage, "
                           "write_key, created_at, next_at, claimed_by, claimed_until) "
                           "VALUES (:project, :task, :version, :ref, :action, :value, :event, :stage, :key, :now, :now, :node, :until) "
                           "RETURNING id"),
            {{QStringLiteral(":project"), write.project},
             {QStringLiteral(":task"), write.taskId},
             {QStringLiteral(":version"), write.taskVersion},
             {QStringLiteral(":ref"), write.trackerRef},
             {QStringLiteral(":action"), write.action},
             {QStringLiteral(":value"), write.value},
             {QStringLiteral(":event"), write.event},
             {QStringLiteral(":stage"), write.stage},
             {QStringLiteral(":key"), write.key},
             {QStringLiteral(":now"), now.toMSecsSinceEpoch()},
             {QStringLiteral(":node"), node},
             {QStringLiteral(":until"), claimUntil.toMSecsSinceEpoch()}});
        if (!inserted)
            return std::unexpected(inserted.error());
        if (!(*inserted)->next())
            return fail(ErrorCode::Storage, QStringLiteral("%1: no id came back").arg(what));
        id = (*inserted)->value(0).toLongLong();
    }
    if (write.action == QLatin1String("state")) {
        Result<int> superseded = session->execWrite(
            QStringLiteral("superseding the older state writes for issue %1").arg(write.trackerRef),
            QStringLiteral("UPDATE tracker_writes SET done_at = :now, outcome = 'superseded', claimed_by = NULL, claimed_until = NULL "
                           "WHERE project = :project AND tracker_ref = :ref AND action = 'state' AND done_at IS NULL AND id < :id"),
            {{QStringLiteral(":now"), now.toMSecsSinceEpoch()},
             {QStringLiteral(":project"), write.project},
             {QStringLiteral(":ref"), write.trackerRef},
             {QStringLiteral(":id"), id}});
        if (!superseded)
            return std::unexpected(superseded.error());
    }
    return id;
}

Result<bool> TrackerOutbox::finish(qint64 id, const QString &outcome, const QString &error, const QDateTime &now)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<int> rows = session->execWrite(
        QStringLiteral("ending tracker write %1").arg(id),
        QStringLiteral("UPDATE tracker_writes SET done_at = :now, outcome = :outcome, last_error = :error, claimed_by = NULL, "
                       "claimed_until = NULL WHERE id = :id AND done_at IS NULL"),
        {{QStringLiteral(":now"), now.toMSecsSinceEpoch()},
         {QStringLiteral(":outcome"), outcome},
         {QStringLiteral(":error"), error},
         {QStringLiteral(":id"), id}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<bool> TrackerOutbox::defer(qint64 id, const QDateTime &nextAt, const QString &error)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<int> rows = session->execWrite(
        QStringLiteral("deferring tracker write %1").arg(id),
        QStringLiteral("UPDATE tracker_writes SET attempts = attempts + 1, next_at = :next, last_error = :error, claimed_by = NULL, "
                       "claimed_until = NULL WHERE id = :id AND done_at IS NULL"),
        {{QStringLiteral(":next"), nextAt.toMSecsSinceEpoch()}, {QStringLiteral(":error"), error}, {QStringLiteral(":id"), id}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<QList<TrackerWrite>> TrackerOutbox::claimDue(const QString &node, const QDateTime &now, const QDateTime &claimUntil, int max)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    // The outer condition is checked again on each row after a concurrent claim (PostgreSQL
    // row locks; SQLite has one writer): a write goes to one node.
    const QString due = QStringLiteral("done_at IS NULL AND next_at <= :now AND (claimed_until IS NULL OR claimed_until < :now)");
    Result<ExecutedQuery> claimed = session->exec(
        QStringLiteral("claiming tracker writes for node %1").arg(node),
        QStringLiteral("UPDATE tracker_writes SET claimed_by = :node, claimed_until = :until WHERE %1 AND id IN "
                       "(SELECT id FROM tracker_writes WHERE %1 ORDER BY id LIMIT :max) RETURNING %2").arg(due, Columns),
        {{QStringLiteral(":node"), node},
         {QStringLiteral(":until"), claimUntil.toMSecsSinceEpoch()},
         {QStringLiteral(":now"), now.toMSecsSinceEpoch()},
         {QStringLiteral(":max"), std::max(1, max)}});
    if (!claimed)
        return std::unexpected(claimed.error());
    QList<TrackerWrite> out;
    while ((*claimed)->next())
        out.append(readWrite(**claimed));
    std::sort(out.begin(), out.end(), [](const TrackerWrite &a, const TrackerWrite &b) { return a.id < b.id; });
    return out;
}

Result<int> TrackerOutbox::releaseClaims(const QString &node)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return session->execWrite(QStringLiteral("releasing the tracker writes claimed by node %1").arg(node),
                              QStringLiteral("UPDATE tracker_writes SET claimed_by = NULL, claimed_until = NULL "
                                             "WHERE claimed_by = :node AND done_at IS NULL"),
                              {{QStringLiteral(":node"), node}});
}

Result<std::optional<TrackerWrite>> TrackerOutbox::latestStateWrite(const QString &project, qint64 taskId)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("reading the last state write of task %1").arg(taskId),
        QStringLiteral("SELECT %1 FROM tracker_writes WHERE task_id = :task AND action = 'state' AND project = :project "
                       "ORDER BY id DESC LIMIT 1").arg(Columns),
        {{QStringLiteral(":task"), taskId}, {QStringLiteral(":project"), project}});
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return std::optional<TrackerWrite>();
    return std::optional<TrackerWrite>(readWrite(**query));
}

Result<QList<TrackerWrite>> TrackerOutbox::open(const QString &project)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("reading the open tracker writes"),
        QStringLiteral("SELECT %1 FROM tracker_writes WHERE done_at IS NULL AND (:project = '' OR project = :project) ORDER BY id").arg(Columns),
        {{QStringLiteral(":project"), project}});
    if (!query)
        return std::unexpected(query.error());
    QList<TrackerWrite> out;
    while ((*query)->next())
        out.append(readWrite(**query));
    return out;
}

Result<int> TrackerOutbox::prune(const QDateTime &before)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return session->execWrite(QStringLiteral("deleting tracker writes done before %1").arg(before.toString(Qt::ISODate)),
                              QStringLiteral("DELETE FROM tracker_writes WHERE done_at IS NOT NULL AND done_at < :before"),
                              {{QStringLiteral(":before"), before.toMSecsSinceEpoch()}});
}

} // namespace Sluice
