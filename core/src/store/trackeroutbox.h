// SPDX-License-Identifier: Apache-2.0
#pragma once

// The writes Sluice owes a tracker (comments and states), kept in the store until the tracker
// took them, so a write that failed is tried again later instead of being lost
// (docs/adr/0011-tracker-signals-and-best-effort-notifications.md).

#include "store/taskstore.h"

#include <QDateTime>
#include <QList>
#include <QString>

#include <optional>

namespace Sluice {

/// One comment or state for one tracker issue.
struct TrackerWrite {
    qint64 id = 0;
    QString project;
    qint64 taskId = 0;
    qint64 taskVersion = 0; ///< The task's version when the write was asked for (its stage visit).
    QString trackerRef;
    QString action;         ///< "comment" or "state".
    QString value;          ///< The comment's text, or the logical state.
    QString event;          ///< The notification that asked for it ("approval-requested").
    QString stage;          ///< The stage the notification was about; may be empty.
    QString key;            ///< Idempotency key (a comment posted once per key where the tracker can).
    int attempts = 0;       ///< Failed attempts so far.
    QDateTime createdAt;
    QDateTime nextAt;       ///< Not tried again before.
    QString lastError;
    QDateTime doneAt;       ///< Invalid while open.
    QString outcome;        ///< "ok", "superseded" or "abandoned" once done.
};

/**
 * The tracker_writes table. A write is claimed by one node while it is being sent (add()
 * claims it for the caller; claimDue() for the one that retries it), so two nodes never send
 * the same write at once; a claim that outlives its holder expires. Usable from any thread.
 */
class TrackerOutbox
{
public:
    explicit TrackerOutbox(Store &store);
    ~TrackerOutbox();
    TrackerOutbox(const TrackerOutbox &) = delete;
    TrackerOutbox &operator=(const TrackerOutbox &) = delete;

    /**
     * Keeps @p write (its id, attempts, outcome and times are set here), claimed by @p node
     * until @p claimUntil. A state write supersedes the open state writes of the same issue
     * (they end "superseded": only the newest state matters). Returns the id.
     */
    [[nodiscard]] Result<qint64> add(const TrackerWrite &write, const QString &node, const QDateTime &now, const QDateTime &claimUntil);
    /// Ends write @p id with @p outcome; false when it had ended already (superseded meanwhile).
    [[nodiscard]] Result<bool> finish(qint64 id, const QString &outcome, const QString &error, const QDateTime &now);
    /// Counts a failed attempt of @p id, keeps @p error and releases it until @p nextAt; false when it had ended.
    [[nodiscard]] Result<bool> defer(qint64 id, const QDateTime &nextAt, const QString &error);
    /// Claims for @p node up to @p max open writes due at @p now and not claimed by a live claim, oldest first.
    [[nodiscard]] Result<QList<TrackerWrite>> claimDue(const QString &node, const QDateTime &now, const QDateTime &claimUntil, int max);
    /// Releases every claim of @p node (its previous process ended): its writes are due at once.
    [[nodiscard]] Result<int> releaseClaims(const QString &node);
    /// The newest state write asked for task @p taskId of @p project, done or not.
    [[nodiscard]] Result<std::optional<TrackerWrite>> latestStateWrite(const QString &project, qint64 taskId);
    /// Writes still open (of @p project, or all), oldest first.
    [[nodiscard]] Result<QList<TrackerWrite>> open(const QString &project = QString());
    /// Deletes writes done before @p before; returns how many.
    [[nodiscard]] Result<int> prune(const QDateTime &before);

private:
    PreparedStatements m_statements;
};

} // namespace Sluice
