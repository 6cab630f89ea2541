// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file services.h
 * The narrow services the host hands to a plugin instance: a clock and a scoped state store.
 */

#include <sluice/error.h>

#include <QByteArray>
#include <QDateTime>
#include <QString>

#include <chrono>
#include <optional>

namespace Sluice {

/// The time source plugins must use, so tests can move time.
class SLUICE_EXPORT Clock
{
public:
    virtual ~Clock();
    /// The current time in UTC.
    [[nodiscard]] virtual QDateTime now() const = 0;
    /// The process-wide wall clock.
    [[nodiscard]] static const Clock &system();
};

/**
 * A key-value store scoped to one plugin instance of one project.
 *
 * Keys of different instances never collide. Values are opaque bytes; keep them small
 * (markers, cursors, cached ids). Never store secrets here.
 */
class SLUICE_EXPORT StateStore
{
public:
    virtual ~StateStore();
    /// The value of @p key, std::nullopt when it was never set.
    [[nodiscard]] virtual Result<std::optional<QByteArray>> value(const QString &key) = 0;
    /// Sets @p key to @p value, replacing what was there.
    [[nodiscard]] virtual Result<void> setValue(const QString &key, const QByteArray &value) = 0;
    /// Removes @p key; removing a missing key succeeds.
    [[nodiscard]] virtual Result<void> remove(const QString &key) = 0;
};

/**
 * Leases: exclusive, expiring holds on named resources ("merge:<project>:<branch>"), shared by
 * every node of the store. A hold belongs to a task: any job of the task, in any process,
 * holds the task's leases, so a re-drive after a crash finds its own lease. Nothing here
 * takes a lease from another holder; the host's reaper reclaims holds whose holder died, whose
 * node went silent or whose TTL passed (docs/runbooks/reaper.md).
 */
class SLUICE_EXPORT LeaseService
{
public:
    virtual ~LeaseService();

    /// The state of a resource after acquire().
    struct Hold {
        bool held = false;      ///< The caller's task holds it now.
        qint64 holderTask = 0;  ///< Who holds it (the caller's task when held), or the task it is promised to.
        QString holderNode;     ///< Empty when the resource is free but promised to @ref holderTask.
        QDateTime expiresAt;    ///< Invalid when promised, not held.
    };
    /**
     * Takes @p resource for @p taskId until now + @p ttl, or renews the task's own hold.
     * First come, first served: a task that does not get it keeps its place in the queue
     * while it asks again within @p ttl; a free resource goes to the task that asked first
     * among those still asking (holderTask names it for the others).
     */
    [[nodiscard]] virtual Result<Hold> acquire(const QString &resource, qint64 taskId, std::chrono::milliseconds ttl) = 0;
    /// Extends the task's own hold; false when the task does not hold @p resource.
    [[nodiscard]] virtual Result<bool> renew(const QString &resource, qint64 taskId, std::chrono::milliseconds ttl) = 0;
    /// Releases the task's own hold; false when the task did not hold it.
    [[nodiscard]] virtual Result<bool> release(const QString &resource, qint64 taskId) = 0;
};

} // namespace Sluice
