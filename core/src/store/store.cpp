// SPDX-License-Identifier: Apache-2.0
#include "store/store.h"

#include "store/connections.h"
#include "store/migrations.h"
#include "store/pluginstate.h"
#include "store/taskstore.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>

#include <QMutex>

#include <algorithm>

namespace Sluice {

namespace {
QVariant msOrNull(const QDateTime &at)
{
    return at.isValid() ? QVariant(at.toMSecsSinceEpoch()) : QVariant();
}

QDateTime fromMs(const QVariant &value)
{
    return value.isNull() ? QDateTime() : QDateTime::fromMSecsSinceEpoch(value.toLongLong(), Qt::UTC);
}

const QString NodeColumns = QStringLiteral("name, host, pid, instance, generation, heartbeat_at, started_at, stopped_at, "
                                           "taken_over_by, taken_over_at");

NodeRecord nodeFromRow(const QSqlQuery &q, int ageColumn)
{
    NodeRecord n;
    n.name = q.value(0).toString();
    n.host = q.value(1).toString();
    n.pid = q.value(2).toLongLong();
    n.instance = q.value(3).toString();
    n.generation = q.value(4).toLongLong();
    n.heartbeatAt = fromMs(q.value(5));
    n.startedAt = fromMs(q.value(6));
    n.stoppedAt = fromMs(q.value(7));
    n.takenOverBy = q.value(8).toString();
    n.takenOverAt = fromMs(q.value(9));
    if (ageColumn >= 0)
        n.heartbeatAgeMs = std::max<qint64>(0, q.value(ageColumn).toLongLong() - q.value(5).toLongLong());
    return n;
}
} // namespace

QString storeClockSql(StoreSettings::Driver driver)
{
    // The database's clock, not each node's: nodes on several machines judge each other's
    // silence by one clock. SQLite is one machine's file anyway.
    return driver == StoreSettings::Driver::Postgresql ? QStringLiteral("CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
                                                       : QStringLiteral("CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)");
}

QString NodeRecord::state(std::chrono::milliseconds timeout) const
{
    if (!takenOverBy.isEmpty() && instance.isEmpty())
        return QStringLiteral("taken-over");
    if (stoppedAt.isValid())
        return QStringLiteral("stopped");
    if (heartbeatAgeMs > qint64(timeout.count()))
        return QStringLiteral("silent");
    return QStringLiteral("up");
}

struct Store::Data {
    std::shared_ptr<StoreConnections> connections;
    mutable QMutex fenceMutex;
    NodeFence fence;
    // The store's own hot statements (webhook de-duplication); destroyed before the
    // connections they were prepared on.
    std::unique_ptr<PreparedStatements> statements;
};

Store::Store()
    : d(std::make_unique<Data>())
{
}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const StoreSettings &settings)
{
    return openWithMigrations(settings, builtInMigrationsDirectory());
}

Result<std::unique_ptr<Store>> Store::openWithMigrations(const StoreSettings &settings,
                                                         const QString &migrationsDirectory)
{
    const QString description = describeDatabase(settings);
    QByteArray password;
    if (settings.driver == StoreSettings::Driver::Sqlite) {
        if (settings.sqlitePath.isEmpty() || settings.sqlitePath == QLatin1String(":memory:"))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("store: the SQLite database needs a file path (each thread opens its own connection)"));
        const QString directory = QFileInfo(settings.sqlitePath).absolutePath();
        if (!QDir().mkpath(directory))
            return fail(ErrorCode::Io, QStringLiteral("cannot open %1: cannot create the directory %2")
                                           .arg(description, QDir::toNativeSeparators(directory)));
    } else {
        if (settings.database.isEmpty())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("store: the PostgreSQL database name is missing"));
        if (settings.port <= 0 || settings.port > 65535)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("store: %1 is not a valid PostgreSQL port").arg(settings.port));
        // Read once: every thread's connection uses it. SecretRef registers it for redaction.
        if (!settings.password.isNull()) {
            Result<QByteArray> secret = settings.password.read();
            if (!secret)
                return fail(secret.error().code,
                            QStringLiteral("cannot open %1: %2").arg(description, secret.error().message),
                            secret.error().detail);
            password = *secret;
        }
    }

    Result<QList<Migration>> migrations = loadMigrations(migrationsDirectory);
    if (!migrations)
        return std::unexpected(migrations.error());

    std::unique_ptr<Store> store(new Store);
    store->d->connections = std::make_shared<StoreConnections>(settings, password);
    store->d->statements = std::make_unique<PreparedStatements>(*store);
    Result<int> applied = applyMigrations(*store->d->connections, *migrations);
    if (!applied)
        return std::unexpected(applied.error());
    qCInfo(lcStore).noquote() << "opened" << description << "at schema version" << migrations->last().version
                              << QStringLiteral("(migrations applied now: %1)").arg(*applied);
    return store;
}

Result<std::unique_ptr<Store>> Store::openExisting(const StoreSettings &settings)
{
    const QString description = describeDatabase(settings);
    if (settings.driver == StoreSettings::Driver::Sqlite && !QFileInfo::exists(settings.sqlitePath))
        return fail(ErrorCode::NotFound, QStringLiteral("%1 does not exist yet: `sluice serve` or `sluice submit` creates it")
                                             .arg(description));
    QByteArray password;
    if (settings.driver == StoreSettings::Driver::Postgresql && !settings.password.isNull()) {
        Result<QByteArray> secret = settings.password.read();
        if (!secret)
            return fail(secret.error().code, QStringLiteral("cannot open %1: %2").arg(description, secret.error().message),
                        secret.error().detail);
        password = *secret;
    }
    std::unique_ptr<Store> store(new Store);
    store->d->connections = std::make_shared<StoreConnections>(settings, password);
    store->d->statements = std::make_unique<PreparedStatements>(*store);
    Result<QSqlDatabase> db = store->d->connections->connection();
    if (!db)
        return std::unexpected(db.error());
    const int latest = latestSchemaVersion();
    int version = 0;
    if (db->tables().contains(QStringLiteral("schema_migrations"))) {
        Result<int> read = store->schemaVersion();
        if (!read)
            return std::unexpected(read.error());
        version = *read;
    }
    if (version < latest)
        return fail(ErrorCode::Incompatible,
                    QStringLiteral("%1 has schema version %2, this sluice needs %3; a read-only command does not migrate it "
                                   "(`sluice serve` does, at its next start)")
                        .arg(description).arg(version).arg(latest));
    return store;
}

std::shared_ptr<StoreConnections> Store::sharedConnections() const
{
    return d->connections;
}

StoreSettings::Driver Store::driver() const
{
    return d->connections->settings().driver;
}

Result<int> Store::schemaVersion() const
{
    Result<QSqlQuery> query = d->connections->run(QStringLiteral("reading the schema version"),
                                                  QStringLiteral("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    if (!query)
        return std::unexpected(query.error());
    if (!query->next())
        return fail(ErrorCode::Storage, QStringLiteral("reading the schema version of %1 returned no row")
                                            .arg(d->connections->databaseDescription()));
    return query->value(0).toInt();
}

int Store::latestSchemaVersion()
{
    Result<QList<Migration>> migrations = loadMigrations(builtInMigrationsDirectory());
    return migrations ? migrations->last().version : 0;
}

Result<QSqlDatabase> Store::connection() const
{
    return d->connections->connection();
}

Result<bool> Store::recordEvent(const QString &source, const QString &deliveryId, const QString &kind,
                                const QJsonObject &payload)
{
    if (source.isEmpty() || deliveryId.isEmpty())
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("an event needs a source and a delivery id (got '%1' and '%2')").arg(source, deliveryId));
    // The unique (source, delivery_id) decides, atomically, even between nodes: the loser of
    // a race inserts nothing and sees 0 rows affected.
    Result<PreparedStatements::Session> session = d->statements->session();
    if (!session)
        return std::unexpected(session.error());
    // A webhook is handled after it is answered: processed_at waits for the node that takes it
    // (claimEvent()). Anything else (a signal's delivery id) is handled by its caller at once.
    // (Bound as a value, not a CASE on the parameter: PostgreSQL would type that as text.)
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    Result<int> rows = session->execWrite(
        QStringLiteral("recording event %1 from %2").arg(deliveryId, source),
        QStringLiteral("INSERT INTO events (source, delivery_id, kind, payload, received_at, processed_at) "
                       "VALUES (:source, :delivery_id, :kind, :payload, :received_at, :processed_at) "
                       "ON CONFLICT (source, delivery_id) DO NOTHING"),
        {{QStringLiteral(":source"), source},
         {QStringLiteral(":delivery_id"), deliveryId},
         {QStringLiteral(":kind"), kind},
         // A delivery's content comes from outside (a tracker issue, a comment): masked on the way in.
         {QStringLiteral(":payload"), QString::fromUtf8(QJsonDocument(Redaction::maskJson(payload)).toJson(QJsonDocument::Compact))},
         {QStringLiteral(":received_at"), now},
         {QStringLiteral(":processed_at"), kind == QLatin1String("webhook") ? QVariant() : QVariant(now)}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows > 0;
}

Result<bool> Store::claimEvent(const QString &source, const QString &deliveryId)
{
    Result<PreparedStatements::Session> session = d->statements->session();
    if (!session)
        return std::unexpected(session.error());
    // Conditional on processed_at: of two nodes taking the same delivery, one changes the row.
    Result<int> rows = session->execWrite(
        QStringLiteral("taking event %1 from %2").arg(deliveryId, source),
        QStringLiteral("UPDATE events SET processed_at = :now WHERE source = :source AND delivery_id = :delivery_id AND processed_at IS NULL"),
        {{QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
         {QStringLiteral(":source"), source},
         {QStringLiteral(":delivery_id"), deliveryId}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows > 0;
}

Result<QList<Store::RecordedEvent>> Store::unclaimedEvents(const QString &kind, const QDateTime &receivedBefore, int max) const
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("reading the %1 events nobody handled").arg(kind),
        QStringLiteral("SELECT source, delivery_id, payload, received_at FROM events "
                       "WHERE kind = :kind AND processed_at IS NULL AND received_at < :before ORDER BY id LIMIT :max"),
        {{QStringLiteral("kind"), kind}, {QStringLiteral("before"), receivedBefore.toMSecsSinceEpoch()}, {QStringLiteral("max"), std::max(1, max)}});
    if (!query)
        return std::unexpected(query.error());
    QList<RecordedEvent> out;
    while (query->next())
        out.append(RecordedEvent{query->value(0).toString(), query->value(1).toString(),
                                 QJsonDocument::fromJson(query->value(2).toString().toUtf8()).object(),
                                 QDateTime::fromMSecsSinceEpoch(query->value(3).toLongLong(), Qt::UTC)});
    return out;
}

Result<void> Store::heartbeat(const QString &node, qint64 pid, const QDateTime &at)
{
    if (node.isEmpty() || !at.isValid())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a heartbeat needs a node name and a valid time"));
    // started_at moves only when the pid changes: the node's process was restarted.
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("writing the heartbeat of node %1").arg(node),
        QStringLiteral("INSERT INTO nodes (name, pid, heartbeat_at, started_at) "
                       "VALUES (:name, :pid, :heartbeat_at, :started_at) "
                       "ON CONFLICT (name) DO UPDATE SET "
                       "started_at = CASE WHEN nodes.pid = excluded.pid THEN nodes.started_at ELSE excluded.started_at END, "
                       "pid = excluded.pid, heartbeat_at = excluded.heartbeat_at"),
        {{QStringLiteral("name"), node},
         {QStringLiteral("pid"), pid},
         {QStringLiteral("heartbeat_at"), at.toMSecsSinceEpoch()},
         {QStringLiteral("started_at"), at.toMSecsSinceEpoch()}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

Result<QDateTime> Store::lastHeartbeat(const QString &node) const
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("reading the heartbeat of node %1").arg(node),
        QStringLiteral("SELECT heartbeat_at FROM nodes WHERE name = :name"),
        {{QStringLiteral("name"), node}});
    if (!query)
        return std::unexpected(query.error());
    if (!query->next())
        return QDateTime();
    return QDateTime::fromMSecsSinceEpoch(query->value(0).toLongLong(), Qt::UTC);
}

Result<NodeRecord> Store::claimNode(const QString &node, const QString &host, qint64 pid, const QString &instance,
                                    std::chrono::milliseconds timeout, const std::function<bool(const NodeRecord &)> &holderGone)
{
    if (node.isEmpty() || instance.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("claiming a node name needs the name and the instance"));
    const QString now = storeClockSql(driver());
    for (int attempt = 0; attempt < 5; ++attempt) {
        // A name never claimed: inserted, generation 1. The unique name decides between two
        // daemons starting at once.
        Result<QSqlQuery> inserted = d->connections->run(
            QStringLiteral("claiming node %1").arg(node),
            QStringLiteral("INSERT INTO nodes (name, pid, heartbeat_at, started_at, host, instance, generation) "
                           "VALUES (:name, :pid, %1, %1, :host, :instance, 1) ON CONFLICT (name) DO NOTHING RETURNING %2, %1")
                .arg(now, NodeColumns),
            {{QStringLiteral("name"), node}, {QStringLiteral("pid"), pid}, {QStringLiteral("host"), host},
             {QStringLiteral("instance"), instance}});
        if (!inserted)
            return std::unexpected(inserted.error());
        if (inserted->next())
            return nodeFromRow(*inserted, 10);
        Result<QSqlQuery> read = d->connections->run(QStringLiteral("reading the claim of node %1").arg(node),
                                                     QStringLiteral("SELECT %1, %2 FROM nodes WHERE name = :name").arg(NodeColumns, now),
                                                     {{QStringLiteral("name"), node}});
        if (!read)
            return std::unexpected(read.error());
        if (!read->next())
            continue; // deleted between the two statements: insert again
        const NodeRecord seen = nodeFromRow(*read, 10);
        const bool mine = seen.instance == instance;
        const bool live = !seen.stoppedAt.isValid() && seen.heartbeatAgeMs <= qint64(timeout.count()) && !seen.instance.isEmpty()
                          && !(holderGone && holderGone(seen));
        if (live && !mine)
            return fail(ErrorCode::Conflict,
                        QStringLiteral("node '%1' is held by another sluice serve: pid %2 on host %3, last heartbeat %4 s ago "
                                       "(started %5). Two daemons with one node name would each take the other's running jobs "
                                       "for a crash's; stop that one first, or give this one its own `node:` in sluice.yaml")
                            .arg(node).arg(seen.pid).arg(seen.host.isEmpty() ? QStringLiteral("(unknown)") : seen.host)
                            .arg(double(seen.heartbeatAgeMs) / 1000.0, 0, 'f', 1)
                            .arg(seen.startedAt.toString(Qt::ISODate)));
        // Stopped, silent, taken over, or ours: a new generation for a new instance, exactly
        // over the claim that was read (a beat in between means it was alive after all).
        Result<QSqlQuery> taken = d->connections->run(
            QStringLiteral("claiming node %1").arg(node),
            QStringLiteral("UPDATE nodes SET pid = :pid, host = :host, instance = :instance, "
                           "generation = generation + CASE WHEN instance = :instance THEN 0 ELSE 1 END, "
                           "heartbeat_at = %1, started_at = CASE WHEN instance = :instance THEN started_at ELSE %1 END, "
                           "stopped_at = NULL, taken_over_by = '', taken_over_at = NULL "
                           "WHERE name = :name AND generation = :generation AND heartbeat_at = :beat RETURNING %2, %1")
                .arg(now, NodeColumns),
            {{QStringLiteral("pid"), pid}, {QStringLiteral("host"), host}, {QStringLiteral("instance"), instance},
             {QStringLiteral("name"), node}, {QStringLiteral("generation"), seen.generation},
             {QStringLiteral("beat"), msOrNull(seen.heartbeatAt)}});
        if (!taken)
            return std::unexpected(taken.error());
        if (taken->next())
            return nodeFromRow(*taken, 10);
    }
    return fail(ErrorCode::Conflict, QStringLiteral("node '%1' changed hands while it was being claimed; start again").arg(node));
}

Result<bool> Store::heartbeat(const QString &node, const QString &instance, qint64 pid)
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("writing the heartbeat of node %1").arg(node),
        QStringLiteral("UPDATE nodes SET heartbeat_at = %1, pid = :pid WHERE name = :name AND instance = :instance").arg(storeClockSql(driver())),
        {{QStringLiteral("pid"), pid}, {QStringLiteral("name"), node}, {QStringLiteral("instance"), instance}});
    if (!query)
        return std::unexpected(query.error());
    return query->numRowsAffected() == 1;
}

Result<void> Store::releaseNode(const QString &node, const QString &instance)
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("marking node %1 stopped").arg(node),
        QStringLiteral("UPDATE nodes SET stopped_at = %1 WHERE name = :name AND instance = :instance").arg(storeClockSql(driver())),
        {{QStringLiteral("name"), node}, {QStringLiteral("instance"), instance}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

Result<bool> Store::revokeNode(const NodeRecord &seen, const QString &by)
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("taking over node %1").arg(seen.name),
        QStringLiteral("UPDATE nodes SET instance = '', generation = generation + 1, taken_over_by = :by, taken_over_at = %1 "
                       "WHERE name = :name AND generation = :generation AND heartbeat_at = :beat").arg(storeClockSql(driver())),
        {{QStringLiteral("by"), by}, {QStringLiteral("name"), seen.name}, {QStringLiteral("generation"), seen.generation},
         {QStringLiteral("beat"), msOrNull(seen.heartbeatAt)}});
    if (!query)
        return std::unexpected(query.error());
    return query->numRowsAffected() == 1;
}

Result<QList<NodeRecord>> Store::nodes() const
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("listing nodes"),
        QStringLiteral("SELECT %1, %2, (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' AND j.claimed_by = nodes.name) "
                       "FROM nodes ORDER BY name").arg(NodeColumns, storeClockSql(driver())));
    if (!query)
        return std::unexpected(query.error());
    QList<NodeRecord> out;
    while (query->next()) {
        NodeRecord n = nodeFromRow(*query, 10);
        n.runningJobs = query->value(11).toInt();
        out.append(n);
    }
    return out;
}

void Store::setNodeFence(const NodeFence &fence)
{
    QMutexLocker lock(&d->fenceMutex);
    d->fence = fence;
}

NodeFence Store::nodeFence() const
{
    QMutexLocker lock(&d->fenceMutex);
    return d->fence;
}

Result<void> Store::setSweeperStatus(const QString &node, const QString &name, const QJsonObject &status)
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("writing the %1 status of node %2").arg(name, node),
        QStringLiteral("INSERT INTO sweeper_status (node, name, status, updated_at) VALUES (:node, :name, :status, :at) "
                       "ON CONFLICT (node, name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at"),
        {{QStringLiteral("node"), node},
         {QStringLiteral("name"), name},
         // Sluice's own report (counts, times, its own reasons): registered values redacted.
         // Not scanned: the reaper writes it at every start, before the scanner's rules are
         // compiled, and nothing in it comes from an agent.
         {QStringLiteral("status"), QString::fromUtf8(QJsonDocument(Redaction::redactJson(status)).toJson(QJsonDocument::Compact))},
         {QStringLiteral("at"), QDateTime::currentMSecsSinceEpoch()}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

Result<QList<std::pair<QString, QJsonObject>>> Store::sweeperStatus(const QString &name) const
{
    Result<QSqlQuery> query = d->connections->run(QStringLiteral("reading the %1 status").arg(name),
                                                  QStringLiteral("SELECT node, status FROM sweeper_status WHERE name = :name ORDER BY node"),
                                                  {{QStringLiteral("name"), name}});
    if (!query)
        return std::unexpected(query.error());
    QList<std::pair<QString, QJsonObject>> out;
    while (query->next())
        out.append({query->value(0).toString(), QJsonDocument::fromJson(query->value(1).toString().toUtf8()).object()});
    return out;
}

Result<void> Store::audit(const AuditEntry &entry)
{
    if (entry.actor.isEmpty() || entry.action.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("an audit entry needs an actor and an action"));
    // An invalid QVariant binds as SQL NULL on both drivers.
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("writing the audit entry %1 by %2").arg(entry.action, entry.actor),
        QStringLiteral("INSERT INTO audit (at, actor, action, project, task_id, details) "
                       "VALUES (:at, :actor, :action, :project, :task_id, :details)"),
        {{QStringLiteral("at"), QDateTime::currentMSecsSinceEpoch()},
         {QStringLiteral("actor"), entry.actor},
         {QStringLiteral("action"), entry.action},
         {QStringLiteral("project"), entry.projectId.isEmpty() ? QVariant() : QVariant(entry.projectId)},
         {QStringLiteral("task_id"), entry.taskId == 0 ? QVariant() : QVariant(entry.taskId)},
         // Details quote reasons, summaries and verdicts: masked on the way in.
         {QStringLiteral("details"), QString::fromUtf8(QJsonDocument(Redaction::maskJson(entry.details)).toJson(QJsonDocument::Compact))}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

Result<int> Store::releaseTaskLeases(qint64 taskId)
{
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("releasing the leases of task %1").arg(taskId),
        QStringLiteral("DELETE FROM leases WHERE holder_task = :task OR holder_job IN (SELECT id FROM jobs WHERE task_id = :task)"),
        {{QStringLiteral("task"), taskId}});
    if (!query)
        return std::unexpected(query.error());
    const int released = query->numRowsAffected();
    // A task sent back or blocked gives up its place in every lease queue too.
    Result<QSqlQuery> unqueued = d->connections->run(QStringLiteral("taking task %1 off the lease queues").arg(taskId),
                                                     QStringLiteral("DELETE FROM lease_queue WHERE holder_task = :task"),
                                                     {{QStringLiteral("task"), taskId}});
    if (!unqueued)
        return std::unexpected(unqueued.error());
    return released;
}

Result<void> Store::queueNotification(const Notification &n, const QString &raisedBy)
{
    if (n.event.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a notification needs an event"));
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("queueing the %1 notification of task %2").arg(n.event).arg(n.taskId),
        QStringLiteral("INSERT INTO notification_outbox (event, project, task_id, title, body, data, raised_at, raised_by) "
                       "VALUES (:event, :project, :task, :title, :body, :data, :at, :by)"),
        // A null QString binds as SQL NULL: empty text is stored as ''.
        {{QStringLiteral("event"), n.event},
         {QStringLiteral("project"), n.projectId.isNull() ? QStringLiteral("") : n.projectId},
         {QStringLiteral("task"), n.taskId > 0 ? QVariant(n.taskId) : QVariant()},
         {QStringLiteral("title"), n.title.isNull() ? QStringLiteral("") : Redaction::mask(n.title)},
         {QStringLiteral("body"), n.text.isNull() ? QStringLiteral("") : Redaction::mask(n.text)},
         {QStringLiteral("data"), QString::fromUtf8(QJsonDocument(Redaction::maskJson(n.data)).toJson(QJsonDocument::Compact))},
         {QStringLiteral("at"), (n.at.isValid() ? n.at : QDateTime::currentDateTimeUtc()).toMSecsSinceEpoch()},
         {QStringLiteral("by"), raisedBy}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

Result<QList<Notification>> Store::claimNotifications(const QString &node, int max)
{
    // The outer condition is checked again on each row after a concurrent claim (PostgreSQL
    // row locks; SQLite has one writer): a row goes to one node.
    Result<QSqlQuery> query = d->connections->run(
        QStringLiteral("claiming queued notifications for node %1").arg(node),
        QStringLiteral("UPDATE notification_outbox SET claimed_by = :node, claimed_at = :now "
                       "WHERE claimed_by IS NULL AND id IN (SELECT id FROM notification_outbox WHERE claimed_by IS NULL ORDER BY id LIMIT :max) "
                       "RETURNING id, event, project, task_id, title, body, data, raised_at"),
        {{QStringLiteral("node"), node}, {QStringLiteral("now"), QDateTime::currentMSecsSinceEpoch()}, {QStringLiteral("max"), std::max(1, max)}});
    if (!query)
        return std::unexpected(query.error());
    QList<std::pair<qint64, Notification>> rows;
    while (query->next()) {
        Notification n;
        n.event = query->value(1).toString();
        n.projectId = query->value(2).toString();
        n.taskId = query->value(3).toLongLong();
        n.title = query->value(4).toString();
        n.text = query->value(5).toString();
        n.data = QJsonDocument::fromJson(query->value(6).toString().toUtf8()).object();
        n.at = QDateTime::fromMSecsSinceEpoch(query->value(7).toLongLong(), Qt::UTC);
        rows.append({query->value(0).toLongLong(), n});
    }
    std::sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    QList<Notification> out;
    for (const auto &[id, n] : std::as_const(rows))
        out.append(n);
    return out;
}

Result<int> Store::pruneNotifications(const QDateTime &before)
{
    Result<QSqlQuery> query = d->connections->run(QStringLiteral("deleting routed notifications"),
                                                  QStringLiteral("DELETE FROM notification_outbox WHERE claimed_at IS NOT NULL AND claimed_at < :before"),
                                                  {{QStringLiteral("before"), before.toMSecsSinceEpoch()}});
    if (!query)
        return std::unexpected(query.error());
    return query->numRowsAffected();
}

std::unique_ptr<StateStore> Store::pluginState(const QString &projectId, const QString &instanceName)
{
    return std::make_unique<PluginStateStore>(d->connections, projectId, instanceName);
}

} // namespace Sluice
