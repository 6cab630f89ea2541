// SPDX-License-Identifier: Apache-2.0
#pragma once

// `sluice serve`: the host lifecycle. Start: store (opened and migrated by HostRuntime) →
// plugins → projects → recover this node's interrupted jobs → HTTP → worker → READY=1.
// SIGTERM: stop taking work, stop the worker, close HTTP, STOPPING=1, exit. SIGHUP: reload
// project files (an invalid new file keeps the running version).

#include "daemon/statedirlock.h"
#include "engine/hostruntime.h"

#include <QElapsedTimer>
#include <QJsonArray>
#include <QObject>
#include <QTimer>

#include <memory>
#include <optional>

namespace Sluice {

class ForgeFeedback;
class ForgeListener;
class HttpServer;
class Reaper;
struct ReaperPass;
class Reconciler;
class Metrics;
class NotificationRouter;
class TrackerUpdates;
class SignalPipe;
class StoreListener;
class SweepSchedule;
class SystemdNotifier;
class Worker;
struct HttpRequest;
struct HttpResponse;
struct WebhookEvent;

class Daemon : public QObject
{
    Q_OBJECT
public:
    struct Options {
        bool exitWhenIdle = false; ///< Quit once no job is queued or running and nothing is in flight.
    };

    Daemon(HostRuntime &host, const Options &options, QObject *parent = nullptr);
    ~Daemon() override;

    /// Runs the start sequence. An Error means the daemon must not run (exit non-zero).
    [[nodiscard]] Result<void> start();
    /// Orderly stop; emits stopped() when done.
    void stop(const QString &why);
    /// Reloads project files.
    void reload();

    [[nodiscard]] quint16 httpPort() const;
    [[nodiscard]] Worker &worker() { return *m_worker; }

    /// Forge events of answered deliveries still being handled (a pull request read back, a
    /// signal's reads): what tests wait for before they look at what a delivery did.
    [[nodiscard]] int forgeEventsInFlight() const;

    /// The random id of this daemon's claim of its node name.
    [[nodiscard]] QString instance() const { return m_instance; }

Q_SIGNALS:
    void stopped();
    /**
     * This daemon's claim of its node name is gone: survivors took its work over while it was
     * silent (paused, cut off). It must end at once without writing anything, as after a crash
     * (`sluice serve` exits with status 75); a new start claims the name anew.
     */
    void takenOver(const QString &why);

private:
    // The start sequence, one step a subsystem, in the order start() runs them.
    [[nodiscard]] Result<void> claimNode();
    void startProjects();
    void createFeedbackLoops();
    [[nodiscard]] Result<ReaperPass> recoverInterruptedWork();
    [[nodiscard]] Result<void> startHeartbeat();
    void startOutbox();
    void describeMetrics();
    [[nodiscard]] Result<void> startHttp(const HostConfig &config);
    void startWorker();
    void startCoreSweepers(const ReaperPass &recovered);
    void startProjectSweepers();
    [[nodiscard]] Result<void> installSignalPipe();
    void announceReady();

    void installRoutes();
    HttpResponse handleWebhook(const HttpRequest &request);
    // A recorded delivery's events, handled once (the store decides who takes it).
    void handleDelivery(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instanceName, const QString &source,
                        const QString &deliveryId, const QJsonArray &events);
    // Deliveries recorded and answered by a process that ended before it handled them.
    void handleUnclaimedDeliveries();
    void takeSignal(const std::shared_ptr<ProjectRuntime> &runtime, const QString &source, const WebhookEvent &event);
    // Reads a tracker issue a delivery moved to a state its receiver did not know, and takes
    // its signal; a failed read is tried again a few times.
    void readTrackerIssue(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instanceName, const QString &source,
                          const QString &issueId, int attempt);
    // The task a webhook event's subject names: a task id, or a tracker issue linked to one.
    [[nodiscard]] Result<std::optional<TaskRecord>> taskForSubject(const ProjectRuntime &runtime, const QString &subject);
    HttpResponse handleTask(const HttpRequest &request);
    QByteArray renderMetrics();
    void countWebhook(const QString &result);
    void checkIdle();
    // Claims the notifications CLI processes kept in the store and routes them like our own.
    void routeOutbox();
    void finishStop();
    void beat();
    Result<void> stopOrphanedAgents(const QList<qint64> &adoptedJobs);

    HostRuntime &m_host;
    Options m_options;
    std::unique_ptr<HttpServer> m_http;
    std::unique_ptr<Worker> m_worker;
    std::unique_ptr<SignalPipe> m_signals;
    std::unique_ptr<SystemdNotifier> m_systemd;
    std::unique_ptr<Metrics> m_metrics;
    std::unique_ptr<SweepSchedule> m_sweeps;
    std::unique_ptr<Reaper> m_reaper;
    std::unique_ptr<Reconciler> m_reconciler;
    std::unique_ptr<NotificationRouter> m_notifications;
    std::unique_ptr<TrackerUpdates> m_trackerUpdates;
    std::unique_ptr<StoreListener> m_listener; // PostgreSQL: LISTEN for claimable jobs
    StateDirLock m_stateLock;
    QString m_instance;
    std::unique_ptr<ForgeFeedback> m_forgeFeedback;
    std::unique_ptr<ForgeListener> m_forgeListener;
    QTimer m_idleCheck;
    QTimer m_heartbeat;
    QTimer m_outbox;        // routes what CLI processes raised (Store::claimNotifications)
    int m_outboxPasses = 0; // routed notifications are pruned every so many passes
    int m_idleTicks = 0;
    int m_webhookReads = 0; // tracker reads (and their retry waits) for deliveries under way
    bool m_ready = false;
    bool m_stopping = false;
    bool m_finished = false;
    QElapsedTimer m_uptime;
};

} // namespace Sluice
