// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the engine's notifications go: to the notifier instances a project's `notifications`
// rules name (NotificationRouter), and, for tasks linked to a tracker issue, back to the
// tracker as comments and states (TrackerUpdates). Neither holds up the pipeline: a call runs
// under a host deadline, its failure is logged and counted, and the caller never waits for it.
// Notifiers are best effort; tracker writes are kept and tried again until the tracker took them.

#include "store/trackeroutbox.h"

#include <sluice/notifier.h>

#include <QHash>
#include <QObject>
#include <QSet>

#include <chrono>
#include <functional>
#include <memory>

namespace Sluice {

class Engine;
class MetricsRecorder;
struct ProjectRuntime;

/// Runs one plugin call under a deadline and tells the outcome once: "ok", "failed" (with
/// the error) or "timeout". Owns the call and deletes itself afterwards.
class BestEffortCall : public QObject
{
    Q_OBJECT
public:
    using Done = std::function<void(const QString &result, const QString &error)>;

    /// Starts @p call; @p keepAlive holds the instances the call belongs to until it ends.
    static void run(std::unique_ptr<PluginJob> call, std::function<QString(PluginJob *)> errorOf,
                    std::chrono::milliseconds deadline, std::shared_ptr<ProjectRuntime> keepAlive, QObject *owner, Done done);

private:
    explicit BestEffortCall(QObject *owner) : QObject(owner) {}
    void conclude(const QString &result, const QString &error);

    std::unique_ptr<PluginJob> m_call;
    std::shared_ptr<ProjectRuntime> m_keepAlive;
    std::function<QString(PluginJob *)> m_errorOf;
    Done m_done;
    bool m_concluded = false;
};

/// Sends each notification to the notifiers its project's rules name for its event.
class NotificationRouter : public QObject
{
    Q_OBJECT
public:
    explicit NotificationRouter(Engine &engine, QObject *parent = nullptr);
    ~NotificationRouter() override;

    /// Counts deliveries in sluice_notifications_total{notifier,event,result} (may be null).
    void setMetrics(MetricsRecorder *metrics) { m_metrics = metrics; }
    /// Longest one delivery may take, retries included (default 60 s).
    void setDeadline(std::chrono::milliseconds deadline) { m_deadline = deadline; }
    /// Deliveries under way.
    [[nodiscard]] int inFlight() const { return m_inFlight; }

    /// Routes @p notification (connected to Engine::notification).
    void route(const Notification &notification);

Q_SIGNALS:
    /// One delivery ended: @p result is "sent", "failed", "timeout" or "unavailable".
    void delivered(const QString &project, const QString &notifier, const QString &event, const QString &result);

private:
    Engine &m_engine;
    MetricsRecorder *m_metrics = nullptr;
    std::chrono::milliseconds m_deadline{60'000};
    int m_inFlight = 0;
};

/**
 * Tells the tracker what happened to tasks linked to one of its issues: a comment for each
 * move (with the gate's reasons for a rollback or a block, and for an approval request the
 * exact status to set), and the state (in-progress, in-review, needs-input,
 * blocked, done; see ProjectConfig::trackerStateFor()).
 *
 * Every write is kept in the store's tracker outbox before it is sent (TrackerOutbox), and
 * stays there until the tracker took it: one that failed — the tracker down, a 500 after the
 * connector's own retries, no answer within the deadline — is tried again with back-off
 * (retryDue(), called periodically by the daemon), also after a restart or by another node.
 * Only the newest state of an issue is owed: a newer state write supersedes the older ones.
 * A write the tracker refuses for good (the issue or the state does not exist) is abandoned
 * after a few attempts, logged, counted and audited. Comments go through
 * IdempotentComments::commentOnce() where the tracker has it, so a retry posts once.
 */
class TrackerUpdates : public QObject
{
    Q_OBJECT
public:
    explicit TrackerUpdates(Engine &engine, QObject *parent = nullptr);
    ~TrackerUpdates() override;

    /// Counts calls in sluice_tracker_updates_total{project,action,result} (may be null).
    void setMetrics(MetricsRecorder *metrics) { m_metrics = metrics; }
    /// Longest one call may take, the connector's retries included (default 60 s).
    void setDeadline(std::chrono::milliseconds deadline) { m_deadline = deadline; }
    /// Wait before a failed write is tried again, doubling per failure up to @p max (default 5 s, 10 min).
    void setRetryBackoff(std::chrono::milliseconds first, std::chrono::milliseconds max);
    /// Writes queued or running in this process.
    [[nodiscard]] int inFlight() const { return m_inFlight; }

    /// Handles @p notification (connected to Engine::notification).
    void route(const Notification &notification);
    /// Claims the writes that are due again (failed before, or left by a process that ended)
    /// and sends them, in order per issue.
    void retryDue();

    /// The comment posted for @p notification; @p statesFor names the tracker states that
    /// send a signal (empty when the tracker does not say).
    [[nodiscard]] static QString commentFor(const Notification &notification,
                                            const std::function<QStringList(const QString &)> &statesFor);

    /// Attempts after which a write the tracker refuses for good is abandoned.
    static constexpr int MaxRefusals = 3;

Q_SIGNALS:
    /**
     * One tracker call ended: @p action "comment" or "state", @p result "ok", "failed" or
     * "timeout" (kept and tried again later), or "abandoned" (refused for good).
     */
    void updated(const QString &project, qint64 taskId, const QString &action, const QString &result);

private:
    struct Pending {
        std::shared_ptr<ProjectRuntime> runtime;
        TrackerWrite write;
    };
    // Calls for one issue run one after another, in the order the events happened.
    void enqueue(const QString &key, Pending pending);
    void runNext(const QString &key);
    void settle(const QString &key, const Pending &pending, const QString &result, const QString &error, ErrorCode code);
    [[nodiscard]] std::unique_ptr<PluginJob> callFor(const Pending &pending) const;
    [[nodiscard]] std::chrono::milliseconds backoff(int attempts) const;

    QHash<QString, QList<Pending>> m_queues; // by project + issue; the head is running
    QSet<qint64> m_queued;                   // outbox ids in m_queues
    Engine &m_engine;
    std::unique_ptr<TrackerOutbox> m_outbox;
    MetricsRecorder *m_metrics = nullptr;
    std::chrono::milliseconds m_deadline{60'000};
    std::chrono::milliseconds m_retryFirst{5'000};
    std::chrono::milliseconds m_retryMax{600'000};
    int m_inFlight = 0;
    int m_retryPasses = 0;
};

} // namespace Sluice
