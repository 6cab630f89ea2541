// SPDX-License-Identifier: Apache-2.0
#pragma once

// The store: every table of Sluice behind one class, on SQLite or PostgreSQL.

#include "config/hostsettings.h"

#include <sluice/error.h>
#include <sluice/notifier.h>
#include <sluice/secrets.h>
#include <sluice/services.h>

#include <QDateTime>
#include <QJsonObject>
#include <QSqlDatabase>
#include <QString>

#include <chrono>
#include <functional>
#include <memory>

namespace Sluice {

/// One entry of the audit table.
struct AuditEntry {
    QString actor;     ///< Who acted: "engine", "reaper", "cli:approve", a plugin instance.
    QString action;    ///< What was done: "advance", "reap", "lease-reclaim", ...
    QString projectId; ///< May be empty.
    qint64 taskId = 0; ///< 0 when not about a task.
    QJsonObject details;
};

/**
 * One daemon's claim of a node name (Store::claimNode()). While a Store has one, every write
 * it makes on behalf of the node — job claims and their outcomes, task moves and heads,
 * leases — requires the claim to be still this instance's, in the same statement: a daemon
 * whose node was taken over (it was silent past node_timeout) writes nothing of the kind.
 */
struct NodeFence {
    QString node;
    QString instance; ///< Random per process.
    [[nodiscard]] bool isSet() const { return !node.isEmpty() && !instance.isEmpty(); }
};

/// One row of the nodes table, as the store's clock sees it.
struct NodeRecord {
    QString name;
    QString host;          ///< Machine of the daemon that claimed it last.
    qint64 pid = 0;
    QString instance;      ///< Empty once taken over (or never claimed by this version).
    qint64 generation = 0; ///< Bumped by every claim and every takeover.
    QDateTime heartbeatAt;
    QDateTime startedAt;
    QDateTime stoppedAt;   ///< Set by an orderly stop; invalid while it runs.
    QString takenOverBy;   ///< The node that took its work, when one did.
    QDateTime takenOverAt;
    qint64 heartbeatAgeMs = 0; ///< Now minus the last beat, by the store's clock.
    int runningJobs = 0;       ///< Jobs in the store running under this node name.

    /// "up", "stopped", "silent" (no beat for @p timeout) or "taken-over".
    [[nodiscard]] QString state(std::chrono::milliseconds timeout) const;
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
class Store
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

    /// Writes or refreshes @p node's heartbeat at @p at, unconditionally (tests, old rows).
    [[nodiscard]] Result<void> heartbeat(const QString &node, qint64 pid, const QDateTime &at);
    /// Last heartbeat of @p node, invalid when it never beat.
    [[nodiscard]] Result<QDateTime> lastHeartbeat(const QString &node) const;

    /**
     * Claims the node name @p node for the daemon instance @p instance (pid @p pid on
     * @p host) and beats its first heartbeat, by the store's clock. Refused with
     * ErrorCode::Conflict — the message naming the other daemon's pid, host and last beat —
     * while another instance holds the name: it has not stopped and has beaten within
     * @p timeout. A name whose holder stopped, went silent or was taken over is claimed anew,
     * with the next generation. The same instance claiming again only beats. @p holderGone,
     * when given, may say that a holder that still looks live is gone for certain (its
     * process does not exist on this machine, whose state directory lock the caller holds):
     * its name is then claimed at once instead of after @p timeout.
     */
    [[nodiscard]] Result<NodeRecord> claimNode(const QString &node, const QString &host, qint64 pid, const QString &instance,
                                               std::chrono::milliseconds timeout,
                                               const std::function<bool(const NodeRecord &)> &holderGone = {});
    /// The heartbeat of @p instance's claim of @p node; false when the claim is not its own any more.
    [[nodiscard]] Result<bool> heartbeat(const QString &node, const QString &instance, qint64 pid);
    /// An orderly stop: the claim stays, marked stopped, so the name can be claimed at once.
    [[nodiscard]] Result<void> releaseNode(const QString &node, const QString &instance);
    /**
     * Survivors take a silent node's claim away: its instance is cleared and its generation
     * bumped, conditional on the claim being exactly @p seen (generation and last beat), so a
     * node that beat meanwhile keeps it. From then on none of that instance's fenced writes
     * succeed. True when this call revoked it.
     */
    [[nodiscard]] Result<bool> revokeNode(const NodeRecord &seen, const QString &by);
    /// Every node that ever claimed a name or beat, by name.
    [[nodiscard]] Result<QList<NodeRecord>> nodes() const;

    /// Makes every fenced write of this Store require @p fence (see NodeFence). Thread-safe.
    void setNodeFence(const NodeFence &fence);
    [[nodiscard]] NodeFence nodeFence() const;

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
    friend class StoreListener;
    Store();
    [[nodiscard]] std::shared_ptr<class StoreConnections> sharedConnections() const;
    struct Data;
    std::unique_ptr<Data> d;
};

} // namespace Sluice
