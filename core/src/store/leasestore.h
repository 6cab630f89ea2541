// SPDX-License-Identifier: Apache-2.0
#pragma once

// Leases: exclusive, expiring holds on named resources ("merge:<project>:<branch>"), on
// SQLite and on PostgreSQL shared by several nodes.

#include "store/taskstore.h"

#include <sluice/services.h>

#include <QDateTime>
#include <QList>
#include <QString>

#include <chrono>
#include <optional>

namespace Sluice {

/// Who holds a lease: a process on a node, for a task (and the job that took it).
struct LeaseHolder {
    QString node;
    qint64 pid = 0;
    quint64 startTicks = 0; ///< Kernel start time of @p pid; 0 when unknown.
    qint64 taskId = 0;      ///< 0: a lease about no task.
    qint64 jobId = 0;       ///< Informational.

    /**
     * Whether @p other is the same holder: the same task on the same node when this holder
     * names one (any job or process of the task on that node holds the task's leases; another
     * node evaluating the same task does not), else the same node and process.
     */
    [[nodiscard]] bool sameHolder(const LeaseHolder &other) const;
};

/// One row of the leases table.
struct LeaseRecord {
    QString resource;
    LeaseHolder holder;
    QDateTime acquiredAt;
    QDateTime expiresAt;
    /// The holder node's claim generation when it took or last renewed the lease (0: unknown):
    /// a node claimed anew since (restarted, or taken over) no longer holds it.
    qint64 fenceToken = 0;
};

/**
 * The leases table. Every change is conditional, so of two nodes acting on one lease exactly
 * one succeeds: acquire() takes a free resource or renews the caller's own hold; renew() and
 * release() touch only the caller's own hold; reclaim() removes exactly the hold the caller
 * looked at, so a holder that renewed meanwhile keeps its lease. With a node fence on the
 * store, acquire(), renew() and release() change nothing once the fence is lost (the node
 * was taken over), and a hold records the generation of the node claim that took it.
 *
 * Usable from any thread, like the JobQueue.
 */
class LeaseStore
{
public:
    explicit LeaseStore(Store &store);
    ~LeaseStore();

    LeaseStore(const LeaseStore &) = delete;
    LeaseStore &operator=(const LeaseStore &) = delete;

    struct Acquired {
        bool held = false;  ///< The caller holds the lease now.
        LeaseRecord lease;  ///< The lease as it is now (the caller's, or the other holder's).
        qint64 aheadTask = 0; ///< Not held, the lease free: the task it is promised to (asked first).
    };
    /**
     * Takes @p resource for @p holder until @p now + @p ttl. Idempotent for the same holder:
     * a second acquire renews (and moves the hold to the caller's process). Never takes a
     * lease from another holder, live or dead: reclaim() does that, logged and audited.
     *
     * For a task holder, first come, first served: a task that does not get the lease is
     * queued (lease_queue) and keeps its place while it asks again within @p ttl; a free
     * lease goes to the task that asked first among those still asking, and the others are
     * told who is ahead (Acquired::aheadTask). Best effort across nodes: two nodes asking in
     * the same instant may both see no one ahead, and the lease itself still has one holder.
     */
    [[nodiscard]] Result<Acquired> acquire(const QString &resource, const LeaseHolder &holder,
                                           std::chrono::milliseconds ttl, const QDateTime &now);
    /// Extends the caller's own hold; false when @p holder does not hold @p resource.
    [[nodiscard]] Result<bool> renew(const QString &resource, const LeaseHolder &holder,
                                     std::chrono::milliseconds ttl, const QDateTime &now);
    /// Releases the caller's own hold; false when @p holder does not hold @p resource.
    [[nodiscard]] Result<bool> release(const QString &resource, const LeaseHolder &holder);
    /**
     * Removes @p seen if the lease is still exactly that hold (holder, acquired and expiry
     * times): false when it was released, renewed or taken over meanwhile.
     */
    [[nodiscard]] Result<bool> reclaim(const LeaseRecord &seen);

    [[nodiscard]] Result<std::optional<LeaseRecord>> lease(const QString &resource) const;
    /// Every lease, by resource.
    [[nodiscard]] Result<QList<LeaseRecord>> leases() const;

    /// A task waiting for a lease.
    struct Waiter {
        QString resource;
        qint64 taskId = 0;
        QDateTime firstAsked;
        QDateTime lastAsked;
    };
    /// Every queued waiter, by resource and turn.
    [[nodiscard]] Result<QList<Waiter>> waiters() const;

private:
    // The lease itself: insert when free, renew when the caller's; no queue.
    [[nodiscard]] Result<Acquired> take(const QString &resource, const LeaseHolder &holder, std::chrono::milliseconds ttl,
                                        const QDateTime &now);

    PreparedStatements m_statements;
};

/// The SDK's LeaseService on the store: holds taken by this process on @p node.
class StoreLeaseService final : public LeaseService
{
public:
    StoreLeaseService(Store &store, const QString &node);
    ~StoreLeaseService() override;

    [[nodiscard]] Result<Hold> acquire(const QString &resource, qint64 taskId, std::chrono::milliseconds ttl) override;
    [[nodiscard]] Result<bool> renew(const QString &resource, qint64 taskId, std::chrono::milliseconds ttl) override;
    [[nodiscard]] Result<bool> release(const QString &resource, qint64 taskId) override;

private:
    [[nodiscard]] LeaseHolder holder(qint64 taskId) const;

    LeaseStore m_leases;
    QString m_node;
    quint64 m_startTicks = 0;
};

} // namespace Sluice
