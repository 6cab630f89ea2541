// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the engine's notifications go: to the notifier instances a project's `notifications`
// rules name (NotificationRouter), and, for tasks linked to a tracker issue, back to the
// tracker as comments and states (TrackerUpdates). Both are best effort: a call runs under a
// host deadline, its failure is logged and counted, and the caller never waits for it.

#include <sluice/notifier.h>

#include <QHash>
#include <QObject>

#include <chrono>
#include <functional>
#include <memory>

namespace Sluice {

class Engine;
class Metrics;
struct ProjectRuntime;

/// Runs one plugin call under a deadline and tells the outcome once: "ok", "failed" (with
/// the error) or "timeout". Owns the call and deletes itself afterwards.
class SLUICE_EXPORT BestEffortCall : public QObject
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
class SLUICE_EXPORT NotificationRouter : public QObject
{
    Q_OBJECT
public:
    explicit NotificationRouter(Engine &engine, QObject *parent = nullptr);
    ~NotificationRouter() override;

    /// Counts deliveries in sluice_notifications_total{notifier,event,result} (may be null).
    void setMetrics(Metrics *metrics) { m_metrics = metrics; }
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
    Metrics *m_metrics = nullptr;
    std::chrono::milliseconds m_deadline{60'000};
    int m_inFlight = 0;
};

/**
 * Tells the tracker what happened to tasks linked to one of its issues: a comment for each
 * move (with the gate's reasons for a rollback or a block, and for an approval request the
 * exact status to set), and the state (in-progress, in-review, needs-input,
 * blocked, done; see ProjectConfig::trackerStateFor()).
 */
class SLUICE_EXPORT TrackerUpdates : public QObject
{
    Q_OBJECT
public:
    explicit TrackerUpdates(Engine &engine, QObject *parent = nullptr);
    ~TrackerUpdates() override;

    /// Counts calls in sluice_tracker_updates_total{project,action,result} (may be null).
    void setMetrics(Metrics *metrics) { m_metrics = metrics; }
    void setDeadline(std::chrono::milliseconds deadline) { m_deadline = deadline; }
    [[nodiscard]] int inFlight() const { return m_inFlight; }

    /// Handles @p notification (connected to Engine::notification).
    void route(const Notification &notification);

    /// The comment posted for @p notification; @p statesFor names the tracker states that
    /// send a signal (empty when the tracker does not say).
    [[nodiscard]] static QString commentFor(const Notification &notification,
                                            const std::function<QStringList(const QString &)> &statesFor);

Q_SIGNALS:
    /// One tracker call ended: @p action "comment" or "state", @p result "ok", "failed" or "timeout".
    void updated(const QString &project, qint64 taskId, const QString &action, const QString &result);

private:
    using Step = std::function<std::unique_ptr<PluginJob>()>;
    struct Pending {
        std::shared_ptr<ProjectRuntime> runtime;
        qint64 taskId = 0;
        QString action;
        Step make;
    };
    // Calls for one issue run one after another, in the order the events happened.
    void enqueue(const QString &key, Pending pending);
    void runNext(const QString &key);

    QHash<QString, QList<Pending>> m_queues; // by project + issue; the head is running
    Engine &m_engine;
    Metrics *m_metrics = nullptr;
    std::chrono::milliseconds m_deadline{60'000};
    int m_inFlight = 0;
};

} // namespace Sluice
