// SPDX-License-Identifier: Apache-2.0
#pragma once

// The store: every table of Sluice behind one class, on SQLite or PostgreSQL.

#include <sluice/error.h>
#include <sluice/notifier.h>
#include <sluice/secrets.h>
#include <sluice/services.h>

#include <QDateTime>
#include <QJsonObject>
#include <QSqlDatabase>
#include <QString>

#include <memory>

namespace Sluice {

/// How to reach the database. Filled from the host file's `store:` section.
struct SLUICE_EXPORT StoreSettings {
    enum class Driver { Sqlite, Postgresql };
    Driver driver = Driver::Sqlite;
    QString sqlitePath;        ///< SQLite database file (created if missing).
    int busyTimeoutMs = 5000;  ///< SQLite busy_timeout.
    QString host;              ///< PostgreSQL host name or Unix socket directory.
    int port = 5432;
    QString database;
    QString user;
    SecretRef password;        ///< PostgreSQL password reference; may be null.
    QString options;           ///< Extra libpq connect options ("sslmode=require").
};

/// One entry of the audit table.
struct SLUICE_EXPORT AuditEntry {
    QString actor;     ///< Who acted: "engine", "reaper", "cli:approve", a plugin instance.
    QString action;    ///< What was done: "advance", "reap", "lease-reclaim", ...
    QString projectId; ///< May be empty.
    qint64 taskId = 0; ///< 0 when not about a task.
    QJsonObject details;
};

/**
 * The database. Open it once per process; it is safe to use from any thread: each thread
 * gets its own named connection, looked up per call.
 *
 * open() applies pending migrations from resources/migrations in one transaction
 * (serialised between processes: BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL).
 *
 * A thread's connection is removed when that thread exits. Destroying the Store removes the
 * connections that are left, those of the destroying thread and of threads still running;
 * so no thread may use the Store (or a StateStore from pluginState()) while it is destroyed.
 * A StateStore used after its Store is gone fails with ErrorCode::Storage.
 */
class SLUICE_EXPORT Store
{
public:
    ~Store();

    /// Connects and migrates. Errors name the database, never a password.
    [[nodiscard]] static Result<std::unique_ptr<Store>> open(const StoreSettings &settings);

    /**
     * Connects without changing anything, for commands that only read: a SQLite file that
     * does not exist is not created, and a store whose schema is older than this build's is
     * refused (ErrorCode::Incompatible) instead of migrated — migrating is for the daemon and
     * the commands that move tasks.
     */
    [[nodiscard]] static Result<std::unique_ptr<Store>> openExisting(const StoreSettings &settings);

    /**
     * Tests only: like open(), but takes the migrations from the NNNN_name.sql files of
     * @p migrationsDirectory instead of those built into sluice-core, so a test can show
     * that a broken migration rolls back. The service always calls open().
     */
    [[nodiscard]] static Result<std::unique_ptr<Store>> openWithMigrations(const StoreSettings &settings,
                                                                           const QString &migrationsDirectory);

    [[nodiscard]] StoreSettings::Driver driver() const;
    /// Highest applied migration version.
    [[nodiscard]] Result<int> schemaVersion() const;
    /// Highest migration version this build ships.
    [[nodiscard]] static int latestSchemaVersion();

    /// This thread's connection (opened on first use).
    [[nodiscard]] Result<QSqlDatabase> connection() const;

    /**
     * Records a delivery (webhook or command) by its id. Returns true when it is new,
     * false when the same source already delivered that id (a duplicate to drop). A delivery
     * of @p kind "webhook" waits to be taken (claimEvent()); any other counts as handled.
     */
    [[nodiscard]] Result<bool> recordEvent(const QString &source, const QString &deliveryId,
                                           const QString &kind, const QJsonObject &payload);

    /// A recorded delivery (see recordEvent()).
    struct RecordedEvent {
        QString source;
        QString deliveryId;
        QJsonObject payload;
        QDateTime receivedAt;
    };
    /**
     * Takes the delivery @p deliveryId of @p source to handle it (sets processed_at): true for
     * the one caller that took it, false when it was taken already (by this node or another).
     */
    [[nodiscard]] Result<bool> claimEvent(const QString &source, const QString &deliveryId);
    /**
     * Up to @p max deliveries of @p kind recorded before @p receivedBefore that nobody took,
     * oldest first (the process that answered them ended before handling them). Each must
     * still be taken with claimEvent() before it is handled.
     */
    [[nodiscard]] Result<QList<RecordedEvent>> unclaimedEvents(const QString &kind, const QDateTime &receivedBefore, int max) const;

    /// Writes or refreshes this node's heartbeat.
    [[nodiscard]] Result<void> heartbeat(const QString &node, qint64 pid, const QDateTime &at);
    /// Last heartbeat of @p node, invalid when it never beat.
    [[nodiscard]] Result<QDateTime> lastHeartbeat(const QString &node) const;

    /// Replaces what the core sweeper @p name ("reaper", "reconciler") of @p node last reported.
    [[nodiscard]] Result<void> setSweeperStatus(const QString &node, const QString &name, const QJsonObject &status);
    /// What sweeper @p name reported, by node (the status of nodes that never ran it is absent).
    [[nodiscard]] Result<QList<std::pair<QString, QJsonObject>>> sweeperStatus(const QString &name) const;

    /// Appends to the audit table.
    [[nodiscard]] Result<void> audit(const AuditEntry &entry);

    /**
     * Releases every lease held by a job of @p taskId (a rollback or block must never leave
     * one behind). Returns how many were released.
     */
    [[nodiscard]] Result<int> releaseTaskLeases(qint64 taskId);

    /**
     * Keeps @p notification (already masked) for a daemon to route: how a process that routes
     * nothing itself (the CLI) still reaches the notifiers and the tracker. @p raisedBy names
     * the process ("node/cli").
     */
    [[nodiscard]] Result<void> queueNotification(const Notification &notification, const QString &raisedBy);
    /**
     * Claims up to @p max queued notifications for @p node, oldest first. A notification is
     * claimed by one node only, also when several claim at once.
     */
    [[nodiscard]] Result<QList<Notification>> claimNotifications(const QString &node, int max);
    /// Deletes notifications claimed before @p before; returns how many.
    [[nodiscard]] Result<int> pruneNotifications(const QDateTime &before);

    /// A key-value store scoped to one plugin instance of one project.
    [[nodiscard]] std::unique_ptr<StateStore> pluginState(const QString &projectId,
                                                          const QString &instanceName);

private:
    Store();
    struct Data;
    std::unique_ptr<Data> d;
};

} // namespace Sluice
