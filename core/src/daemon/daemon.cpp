// SPDX-License-Identifier: Apache-2.0
#include "daemon/daemon.h"

#include "daemon/httpserver.h"
#include "daemon/metrics.h"
#include "daemon/signalpipe.h"
#include "daemon/systemdnotifier.h"
#include "engine/forgefeedback.h"
#include "engine/forgelistener.h"
#include "engine/notifications.h"
#include "procstat.h"
#include "engine/reaper.h"
#include "engine/reconciler.h"
#include "engine/sweeps.h"
#include "engine/worker.h"
#include "store/storelistener.h"

#include <sluice/forgeevents.h>
#include <sluice/tracker.h>
#include <sluice/webhook.h>

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QSysInfo>
#include <QUuid>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <unistd.h>

namespace Sluice {

Q_LOGGING_CATEGORY(lcDaemon, "sluice.core.daemon", QtInfoMsg)

namespace {
// What the API serves is masked as it leaves, every string of it: the store holds text
// masked at write, and this catches rows written before that and secrets registered since.
HttpResponse apiJson(const QJsonObject &report)
{
    return HttpResponse::json(QJsonDocument(Redaction::maskJson(report)));
}
} // namespace

Daemon::Daemon(HostRuntime &host, const Options &options, QObject *parent)
    : QObject(parent)
    , m_host(host)
    , m_options(options)
{
    m_uptime.start();
}

Daemon::~Daemon() = default;

quint16 Daemon::httpPort() const
{
    return m_http ? m_http->port() : 0;
}

int Daemon::forgeEventsInFlight() const
{
    return m_forgeListener ? m_forgeListener->inFlight() : 0;
}

Result<void> Daemon::start()
{
    const HostConfig &config = m_host.config();
    Engine &engine = m_host.engine();
    m_systemd = std::make_unique<SystemdNotifier>();
    m_systemd->status(QStringLiteral("starting"));

    // One daemon per node: its state directory, then its node name in the store. Both before
    // anything touches the node's jobs: a second daemon would take the first one's running
    // jobs for a crash's.
    if (auto locked = m_stateLock.acquire(config.stateDir, config.node); !locked)
        return std::unexpected(locked.error());
    m_instance = QUuid::createUuid().toString(QUuid::WithoutBraces);
    const QString host = QSysInfo::machineHostName();
    // A holder on this machine whose process is gone (kill -9, a power cut) holds nothing: the
    // restart need not wait node_timeout. A live pid — even a reused one — is taken for live.
    // A zombie counts as gone: killed, it waits for its parent (or init) to reap it.
    const auto holderGone = [host](const NodeRecord &holder) {
        if (holder.host != host || holder.pid <= 0)
            return false;
        if (::kill(pid_t(holder.pid), 0) != 0)
            return errno == ESRCH;
        QFile stat(QStringLiteral("/proc/%1/stat").arg(holder.pid));
        if (!stat.open(QIODevice::ReadOnly))
            return false;
        const QByteArray line = stat.readAll();
        const qsizetype close = line.lastIndexOf(')');
        return close > 0 && close + 2 < line.size() && (line.at(close + 2) == 'Z' || line.at(close + 2) == 'X');
    };
    auto claimed = m_host.store().claimNode(config.node, host, QCoreApplication::applicationPid(), m_instance,
                                            config.reaper.nodeTimeout, holderGone);
    if (!claimed)
        return std::unexpected(claimed.error());
    // From now on every write made for this node requires this claim.
    m_host.store().setNodeFence(NodeFence{config.node, m_instance});
    qCInfo(lcDaemon).noquote() << "node" << config.node << "claimed by this daemon (generation" << claimed->generation << ")";

    // Projects (the store is open and migrated, plugins are loaded).
    const Diagnostics problems = m_host.loadProjects();
    qCInfo(lcDaemon).noquote() << "projects running:" << engine.projectIds().join(QStringLiteral(", "))
                               << QStringLiteral("(%1 problem(s) in project files)").arg(problems.size());

    // Notifications and tracker updates: best effort, before anything can move a task (the
    // startup recovery may). Counted once the metrics exist.
    m_notifications = std::make_unique<NotificationRouter>(engine);
    m_trackerUpdates = std::make_unique<TrackerUpdates>(engine);
    // The forge loop: what Sluice says on pull requests, and what the forge's webhooks wake.
    m_forgeFeedback = std::make_unique<ForgeFeedback>(engine);
    m_forgeListener = std::make_unique<ForgeListener>(engine, m_forgeFeedback.get());

    // This node's jobs that were running when it stopped are settled before the worker
    // starts, so nothing is both recovered and claimed: an agent that outlived the daemon is
    // stopped before its job goes back to the queue (a re-run never works beside it on the
    // same worktree), a recorded exit 0 goes to the gates. Leases of dead holders are reclaimed.
    m_reaper = std::make_unique<Reaper>(engine, config.reaper);
    // The worker exists before the recovery, so it can adopt living agents; it claims nothing
    // until it is started below.
    m_worker = std::make_unique<Worker>(engine);
    m_reaper->setAdopter([this](const JobQueue::RunningJob &r) { return r.agent && m_worker->adopt(r.job, *r.agent); });
    const ReaperPass recovered = m_reaper->recoverAtStartup();
    if (!recovered.ok)
        return fail(ErrorCode::Storage, QStringLiteral("cannot recover the jobs interrupted by the last stop: %1")
                                            .arg(recovered.errors.join(QStringLiteral("; "))));
    if (!recovered.reaped.isEmpty())
        qCWarning(lcDaemon).noquote() << "settled" << recovered.reaped.size() << "job(s) interrupted by the last stop of node" << config.node;
    if (!recovered.adopted.isEmpty())
        qCWarning(lcDaemon).noquote() << "adopted" << recovered.adopted.size() << "running agent(s) left by the last stop of node" << config.node;
    // Agent runs of earlier attempts that never saw their end.
    if (auto stopped = stopOrphanedAgents(recovered.adopted); !stopped)
        return std::unexpected(stopped.error());
    // A job that had no attempts left is failed by the recovery: its task must not wait forever.
    if (auto blocked = engine.blockTasksWithFailedJobs(QStringLiteral("daemon")); !blocked)
        return fail(blocked.error().code, QStringLiteral("cannot settle tasks of failed jobs: %1").arg(blocked.error().message));
    else if (*blocked > 0)
        qCWarning(lcDaemon).noquote() << "blocked" << *blocked << "task(s) whose job failed for good before this start";
    if (auto beat = m_host.store().heartbeat(config.node, m_instance, QCoreApplication::applicationPid()); !beat)
        return std::unexpected(beat.error());
    else if (!*beat)
        return fail(ErrorCode::Conflict, QStringLiteral("node %1 was claimed by another daemon while this one started").arg(config.node));
    connect(&m_heartbeat, &QTimer::timeout, this, &Daemon::beat);
    m_heartbeat.start(int(config.reaper.heartbeatInterval().count()));
    // Notifications raised by `sluice submit` / `approve` / `sweep` wait in the store: routed
    // at every worker poll.
    connect(&m_outbox, &QTimer::timeout, this, &Daemon::routeOutbox);
    m_outbox.start(int(std::clamp<qint64>(config.pollIntervalMs, 100, 10000)));

    m_metrics = std::make_unique<Metrics>();
    const std::pair<const char *, const char *> counters[] = {
        {"sluice_jobs_finished_total", "Stage jobs that ended on this node, by outcome."},
        {"sluice_task_changes_total", "Task moves made by this daemon, by kind."},
        {"sluice_webhooks_total", "Webhook deliveries received, by result."},
        {"sluice_advances_total", "Tasks moved to their next stage by this daemon."},
        {"sluice_rollbacks_total", "Tasks sent back by the red policy by this daemon."},
        {"sluice_tasks_blocked_total", "Tasks blocked by this daemon (retry cap or failed jobs)."},
        {"sluice_tasks_done_total", "Tasks that reached their last stage by this daemon."},
        {"sluice_claims_lost_total", "Advances that found the task already moved."},
        {"sluice_gate_verdicts_total", "Gate verdicts of this daemon, by gate instance and result."},
        {"sluice_notifications_total", "Notifications handed to notifiers, by notifier instance, event and result."},
        {"sluice_tracker_updates_total", "Comments and state changes sent to trackers, by project, action and result."},
        {"sluice_reaps_total", "Jobs settled by the reaper of this daemon, by tier (0: startup recovery) and outcome."},
        {"sluice_leases_reclaimed_total", "Leases reclaimed by this daemon, by reason (holder-dead, node-silent, expired)."},
        {"sluice_reaper_passes_total", "Reaper ticks of this daemon, by result."},
        {"sluice_reconciler_passes_total", "Reconciler passes of this daemon, by result."},
        {"sluice_reconciler_actions_total", "Tasks re-driven by the reconciler of this daemon, by action."},
        {"sluice_forge_events_total", "Forge webhook events handled, by project, kind and result."},
        {"sluice_forge_feedback_total", "Statuses, comments and pull requests Sluice wrote on the forge, by project, action and result."},
        {"sluice_forge_signals_total", "Reviews and comment commands taken as signals, by project and result."},
    };
    for (const auto &[name, help] : counters)
        m_metrics->describe(QLatin1String(name), Metrics::Type::Counter, QLatin1String(help));
    m_metrics->describe(QStringLiteral("sluice_jobs"), Metrics::Type::Gauge, QStringLiteral("Jobs in the store, by state."));
    m_metrics->describe(QStringLiteral("sluice_tasks"), Metrics::Type::Gauge,
                        QStringLiteral("Tasks in the store of each loaded project, by status (whoever moved them)."));
    m_metrics->describe(QStringLiteral("sluice_worker_running"), Metrics::Type::Gauge, QStringLiteral("Jobs running on this node."));
    m_metrics->describe(QStringLiteral("sluice_uptime_seconds"), Metrics::Type::Gauge, QStringLiteral("Seconds since this daemon started."));
    m_metrics->describe(QStringLiteral("sluice_node_heartbeat_age_seconds"), Metrics::Type::Gauge,
                        QStringLiteral("Seconds since each node's last heartbeat, by the store's clock."));
    m_metrics->describe(QStringLiteral("sluice_node_jobs_running"), Metrics::Type::Gauge, QStringLiteral("Jobs running under each node's name."));
    m_metrics->describe(QStringLiteral("sluice_node_up"), Metrics::Type::Gauge,
                        QStringLiteral("1 while a node holds its name and beats within node_timeout, else 0 (stopped, silent, taken over)."));
    m_metrics->describe(QStringLiteral("sluice_takeovers_total"), Metrics::Type::Counter,
                        QStringLiteral("Jobs of silent nodes this daemon took over, by outcome (adopted, requeued, failed, advance)."));
    m_metrics->describe(QStringLiteral("sluice_nodes_taken_over_total"), Metrics::Type::Counter,
                        QStringLiteral("Claims of silent nodes this daemon revoked."));
    if (config.httpEnabled) {
        m_http = std::make_unique<HttpServer>();
        m_http->setMaxBodySize(config.httpMaxBody);
        m_http->setConnectionLimit(config.httpMaxConnections);
        m_http->setPerClientConnectionLimit(config.httpMaxConnectionsPerClient);
        m_http->setHeaderTimeout(std::chrono::milliseconds(config.httpHeaderTimeoutMs));
        m_http->setRequestTimeout(std::chrono::milliseconds(config.httpRequestTimeoutMs));
        m_http->setConnectionTimeout(std::chrono::seconds(std::max<qint64>(1, config.httpIdleTimeoutMs / 1000)));
        installRoutes();
        // A webhook body over the limit is refused by the server before any route sees it:
        // counted here with the other webhook outcomes. The metrics are thread-safe.
        m_http->setTooLargeObserver([metrics = m_metrics.get()](const QString &path) {
            if (path.startsWith(QLatin1String("/webhooks/")))
                metrics->increment(QStringLiteral("sluice_webhooks_total"), {{QStringLiteral("result"), QStringLiteral("too-large")}});
        });
        const QHostAddress address = config.httpAddress == QLatin1String("localhost") ? QHostAddress(QHostAddress::LocalHost)
                                                                                      : QHostAddress(config.httpAddress);
        if (address.isNull())
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("http.address '%1' in %2 is not an IP address").arg(config.httpAddress, config.file));
        auto port = m_http->listen(address, quint16(config.httpPort));
        if (!port)
            return std::unexpected(port.error());
        qCInfo(lcDaemon).noquote() << "HTTP on" << config.httpAddress << "port" << *port;
        m_forgeFeedback->setDefaultTargetBase(QStringLiteral("http://%1:%2/api/tasks/")
                                                  .arg(address.protocol() == QAbstractSocket::IPv6Protocol ? QLatin1Char('[') + address.toString() + QLatin1Char(']')
                                                                                                          : address.toString())
                                                  .arg(*port));
        QDir().mkpath(config.stateDir);
        QFile portFile(QDir(config.stateDir).filePath(QStringLiteral("http.port")));
        if (portFile.open(QIODevice::WriteOnly | QIODevice::Truncate))
            portFile.write(QByteArray::number(*port) + '\n');
    }

    m_notifications->setMetrics(m_metrics.get());
    m_trackerUpdates->setMetrics(m_metrics.get());
    m_forgeFeedback->setMetrics(m_metrics.get());
    m_forgeListener->setMetrics(m_metrics.get());
    m_worker->setGlobalConcurrency(config.workerConcurrency);
    m_worker->setPollInterval(std::chrono::milliseconds(config.pollIntervalMs));
    // PostgreSQL wakes idle workers when a job becomes claimable (any node's enqueue, a
    // requeue); the poll stays as the backstop. SQLite polls.
    if (m_host.store().driver() == StoreSettings::Driver::Postgresql) {
        auto listener = StoreListener::listen(m_host.store(), JobQueue::wakeChannel());
        if (!listener) {
            qCWarning(lcDaemon).noquote() << "cannot listen for new jobs, polling every" << config.pollIntervalMs << "ms:"
                                          << listener.error().toString();
        } else {
            m_listener = std::move(*listener);
            connect(m_listener.get(), &StoreListener::notified, m_worker.get(), &Worker::wake);
            qCInfo(lcDaemon).noquote() << "listening for new jobs (PostgreSQL LISTEN); the poll every" << config.pollIntervalMs
                                       << "ms stays the fallback";
        }
    }
    connect(m_worker.get(), &Worker::jobFinished, this, [this](qint64, const QString &outcome) {
        m_metrics->increment(QStringLiteral("sluice_jobs_finished_total"), {{QStringLiteral("outcome"), outcome}});
    });
    connect(&engine, &Engine::taskChanged, this, [this](qint64, const QString &event, const QString &) {
        m_metrics->increment(QStringLiteral("sluice_task_changes_total"), {{QStringLiteral("event"), event}});
    });
    m_worker->start();

    // The core sweepers: the reaper watches what the worker does not, the reconciler re-drives
    // what an edge left behind.
    m_reaper->setMonitor([this] { return m_worker ? m_worker->monitoredJobs() : QSet<qint64>(); },
                         [this](qint64 jobId, const QString &why) {
                             if (m_worker)
                                 m_worker->abandon(jobId, why);
                         });
    connect(m_reaper.get(), &Reaper::passFinished, this, [this](const ReaperPass &pass) {
        for (const ReapedJob &r : pass.reaped) {
            if (!r.takenFrom.isEmpty()) {
                m_metrics->increment(QStringLiteral("sluice_takeovers_total"), {{QStringLiteral("outcome"), r.outcome}});
                continue;
            }
            m_metrics->increment(QStringLiteral("sluice_reaps_total"),
                                 {{QStringLiteral("tier"), QString::number(r.tier)}, {QStringLiteral("outcome"), r.outcome}});
        }
        for (const TakenNode &n : pass.takenNodes) {
            if (n.revokedHere)
                m_metrics->increment(QStringLiteral("sluice_nodes_taken_over_total"));
        }
        for (const ReclaimedLease &l : pass.reclaimed)
            m_metrics->increment(QStringLiteral("sluice_leases_reclaimed_total"), {{QStringLiteral("reason"), l.reason}});
        m_metrics->increment(QStringLiteral("sluice_reaper_passes_total"),
                             {{QStringLiteral("result"), pass.ok ? QStringLiteral("ok") : QStringLiteral("failed")}});
    });
    for (const ReapedJob &r : recovered.reaped)
        m_metrics->increment(QStringLiteral("sluice_reaps_total"),
                             {{QStringLiteral("tier"), QString::number(r.tier)}, {QStringLiteral("outcome"), r.outcome}});
    for (const ReclaimedLease &l : recovered.reclaimed)
        m_metrics->increment(QStringLiteral("sluice_leases_reclaimed_total"), {{QStringLiteral("reason"), l.reason}});
    m_reaper->start();
    m_reconciler = std::make_unique<Reconciler>(engine, config.reconciler);
    connect(m_reconciler.get(), &Reconciler::passFinished, this, [this](const ReconcilerPass &pass) {
        m_metrics->increment(QStringLiteral("sluice_reconciler_passes_total"),
                             {{QStringLiteral("result"), pass.ok ? QStringLiteral("ok") : QStringLiteral("failed")}});
        for (const QJsonValue &a : pass.actions)
            m_metrics->increment(QStringLiteral("sluice_reconciler_actions_total"),
                                 {{QStringLiteral("action"), a.toObject().value(QLatin1String("action")).toString()}});
    });
    m_reconciler->start();

    // Sweepers last: each project's sweeper instances on their own timers.
    m_sweeps = std::make_unique<SweepSchedule>(engine, m_host.store());
    m_sweeps->setMetrics(m_metrics.get());
    m_sweeps->start();

    m_signals = std::make_unique<SignalPipe>();
    if (auto installed = m_signals->install(); !installed)
        return std::unexpected(installed.error());
    connect(m_signals.get(), &SignalPipe::signalReceived, this, [this](int signal) {
        if (signal == SIGHUP)
            reload();
        else
            stop(QStringLiteral("signal %1").arg(signal));
    });

    if (m_options.exitWhenIdle) {
        connect(&m_idleCheck, &QTimer::timeout, this, &Daemon::checkIdle);
        m_idleCheck.start(250);
    }
    m_systemd->startWatchdog();
    m_systemd->ready();
    m_systemd->status(QStringLiteral("running %1 project(s)").arg(engine.projectIds().size()));
    m_ready = true;
    qCInfo(lcDaemon).noquote() << "ready: node" << config.node << "pid" << QCoreApplication::applicationPid();
    return {};
}

Result<void> Daemon::stopOrphanedAgents(const QList<qint64> &adoptedJobs)
{
    Engine &engine = m_host.engine();
    const QString node = m_host.config().node;
    auto runs = engine.jobs().unfinishedAgentRuns(node);
    if (!runs)
        return fail(runs.error().code, QStringLiteral("cannot read the agent runs of node %1: %2").arg(node, runs.error().message),
                    runs.error().detail);
    for (const JobQueue::AgentRunRecord &run : std::as_const(*runs)) {
        if (adoptedJobs.contains(run.jobId))
            continue; // watched again
        const bool stopped = stopProcessGroup(run.pid, run.startTicks, std::chrono::seconds(10));
        if (stopped) {
            qCWarning(lcDaemon).noquote() << "stopped agent pid" << run.pid << "of job" << run.jobId
                                          << "left running by the last stop of node" << node;
            (void)m_host.store().audit(AuditEntry{QStringLiteral("daemon"), QStringLiteral("stop-orphaned-agent"), QString(), 0,
                                                  QJsonObject{{QStringLiteral("node"), node},
                                                              {QStringLiteral("job"), run.jobId},
                                                              {QStringLiteral("pid"), run.pid},
                                                              {QStringLiteral("log"), run.logPath}}});
        }
        // Its exit code is not known, and is not invented.
        if (auto ended = engine.jobs().recordAgentEnd(run.id, std::nullopt); !ended)
            return std::unexpected(ended.error());
    }
    return {};
}

void Daemon::stop(const QString &why)
{
    if (m_stopping)
        return;
    m_stopping = true;
    m_ready = false;
    qCInfo(lcDaemon).noquote() << "stopping:" << why;
    m_systemd->stopping();
    m_idleCheck.stop();
    // Reverse order of start: no new work first, then the interfaces.
    if (m_sweeps)
        m_sweeps->stop();
    if (m_reconciler)
        m_reconciler->stop();
    if (m_reaper)
        m_reaper->stop();
    if (m_worker)
        m_worker->stop();
    if (m_http)
        m_http->close();
    m_heartbeat.stop();
    m_outbox.stop();
    if (!m_worker || m_worker->runningCount() == 0) {
        finishStop();
        return;
    }
    // Running agents and commands are stopped (process group TERM, then KILL after their
    // grace) and their jobs given back, attempt not counted: nothing keeps working on a
    // task while no sluice watches it, and the next start does not run a second agent.
    qCInfo(lcDaemon).noquote() << "stopping" << m_worker->runningCount() << "running job(s); waiting up to"
                               << m_host.config().stopTimeoutMs / 1000 << "s";
    m_systemd->status(QStringLiteral("stopping %1 running job(s)").arg(m_worker->runningCount()));
    connect(m_worker.get(), &Worker::drained, this, &Daemon::finishStop, Qt::UniqueConnection);
    QTimer::singleShot(int(std::min<qint64>(m_host.config().stopTimeoutMs, std::numeric_limits<int>::max())), this, [this] {
        if (m_worker && m_worker->runningCount() > 0)
            qCWarning(lcDaemon).noquote() << m_worker->runningCount()
                                          << "job(s) did not end in time; they are recovered at the next start";
        finishStop();
    });
    m_worker->shutdown();
}

void Daemon::finishStop()
{
    if (m_finished)
        return;
    m_finished = true;
    // The name is free at once for the next start, here or elsewhere.
    if (!m_instance.isEmpty()) {
        if (auto released = m_host.store().releaseNode(m_host.config().node, m_instance); !released)
            qCWarning(lcDaemon).noquote() << "cannot mark node" << m_host.config().node << "stopped:" << released.error().toString();
    }
    Q_EMIT stopped();
}

void Daemon::beat()
{
    const HostConfig &config = m_host.config();
    auto beat = m_host.store().heartbeat(config.node, m_instance, QCoreApplication::applicationPid());
    if (!beat) {
        // The store does not answer: the claim is not lost by that; survivors take over only
        // after node_timeout without a beat.
        qCWarning(lcDaemon).noquote() << "heartbeat failed:" << beat.error().toString();
        return;
    }
    if (*beat)
        return;
    // The claim is gone: this daemon was silent past node_timeout and survivors took its work.
    QString by;
    if (auto nodes = m_host.store().nodes()) {
        for (const NodeRecord &n : std::as_const(*nodes)) {
            if (n.name == config.node)
                by = n.takenOverBy.isEmpty() ? QStringLiteral("another daemon of node %1 (pid %2 on %3)").arg(n.name).arg(n.pid).arg(n.host)
                                             : QStringLiteral("node %1 at %2").arg(n.takenOverBy, n.takenOverAt.toString(Qt::ISODateWithMs));
        }
    }
    const QString why = QStringLiteral("node %1 was taken over by %2 while this daemon was silent; its work is theirs now, and this "
                                       "daemon ends without touching it")
                            .arg(config.node, by.isEmpty() ? QStringLiteral("another node") : by);
    qCCritical(lcDaemon).noquote() << why;
    (void)m_host.store().audit(AuditEntry{QStringLiteral("daemon"), QStringLiteral("fenced"), QString(), 0,
                                          QJsonObject{{QStringLiteral("node"), config.node}, {QStringLiteral("instance"), m_instance},
                                                      {QStringLiteral("reason"), why}}});
    m_heartbeat.stop();
    if (m_worker)
        m_worker->forsake();
    Q_EMIT takenOver(why);
}

void Daemon::reload()
{
    qCInfo(lcDaemon).noquote() << "reloading project files";
    m_systemd->reloading();
    m_systemd->status(QStringLiteral("reloading"));
    const Diagnostics problems = m_host.loadProjects();
    if (m_sweeps)
        m_sweeps->start();
    (void)m_host.store().audit(AuditEntry{QStringLiteral("daemon"), QStringLiteral("reload"), QString(), 0,
                                          QJsonObject{{QStringLiteral("problems"), int(problems.size())}}});
    m_systemd->ready();
    m_systemd->status(QStringLiteral("running %1 project(s)").arg(m_host.engine().projectIds().size()));
}

void Daemon::routeOutbox()
{
    Store &store = m_host.store();
    auto claimed = store.claimNotifications(m_host.config().node, 100);
    if (!claimed) {
        qCWarning(lcDaemon).noquote() << "cannot read the notifications other processes raised:" << claimed.error().toString();
        return;
    }
    for (const Notification &n : std::as_const(*claimed)) {
        qCDebug(lcDaemon).noquote() << "routing the" << n.event << "notification of task" << n.taskId << "raised by another process";
        m_host.engine().notify(n);
    }
    // Tracker writes that failed before, or that an ended process left: tried again when due.
    m_trackerUpdates->retryDue();
    handleUnclaimedDeliveries();
    if (++m_outboxPasses % 1000 == 1) {
        if (auto pruned = store.pruneNotifications(QDateTime::currentDateTimeUtc().addDays(-7)); !pruned)
            qCWarning(lcDaemon).noquote() << "cannot prune routed notifications:" << pruned.error().toString();
    }
}

void Daemon::checkIdle()
{
    auto counts = m_host.engine().jobs().countsByStatus();
    const bool idle = counts && counts->value(QStringLiteral("queued")) == 0 && counts->value(QStringLiteral("running")) == 0
                      && m_worker->runningCount() == 0 && m_host.engine().runsInFlight() == 0
                      && m_notifications->inFlight() == 0 && m_trackerUpdates->inFlight() == 0 && m_webhookReads == 0
                      && m_forgeFeedback->inFlight() == 0 && m_forgeListener->inFlight() == 0;
    m_idleTicks = idle ? m_idleTicks + 1 : 0;
    if (m_idleTicks >= 4)
        stop(QStringLiteral("idle (--exit-when-idle)"));
}

void Daemon::installRoutes()
{
    HttpServer &http = *m_http;
    http.route("GET", QStringLiteral("/healthz"), [](const HttpRequest &) {
        return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("status"), QStringLiteral("ok")}}));
    });
    http.route("GET", QStringLiteral("/readyz"), [this](const HttpRequest &) {
        // Ready means: started, and the store answers.
        auto counts = m_host.engine().jobs().countsByStatus();
        if (!m_ready || !counts)
            return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("status"), QStringLiteral("not ready")},
                                                                {QStringLiteral("store"), counts.has_value()}}),
                                      503);
        return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("status"), QStringLiteral("ready")}}));
    });
    http.route("GET", QStringLiteral("/metrics"), [this](const HttpRequest &) {
        return HttpResponse::text(renderMetrics(), 200, Metrics::contentType);
    });
    http.route("GET", QStringLiteral("/api/queue"), [this](const HttpRequest &) {
        auto report = queueReport(m_host.engine(), m_host.config());
        if (!report)
            return HttpResponse::error(500, Redaction::mask(report.error().message));
        QJsonObject out = *report;
        QJsonArray local;
        for (const Worker::Running &r : m_worker->running())
            local.append(QJsonObject{{QStringLiteral("job"), r.job.id}, {QStringLiteral("plugin"), r.plugin},
                                     {QStringLiteral("startedAt"), r.startedAt.toMSecsSinceEpoch()}});
        out.insert(QStringLiteral("worker"), QJsonObject{{QStringLiteral("node"), m_host.config().node},
                                                          {QStringLiteral("running"), local},
                                                          {QStringLiteral("concurrency"), m_worker->globalConcurrency()}});
        return apiJson(out);
    });
    http.route("GET", QStringLiteral("/api/nodes"), [this](const HttpRequest &) {
        auto report = nodesReport(m_host.engine(), m_host.config());
        if (!report)
            return HttpResponse::error(500, Redaction::mask(report.error().message));
        return apiJson(QJsonObject{{QStringLiteral("node"), m_host.config().node}, {QStringLiteral("nodes"), *report}});
    });
    http.route("GET", QStringLiteral("/api/status"), [this](const HttpRequest &) {
        auto report = statusReport(m_host.engine(), m_host.config());
        return report ? apiJson(*report) : HttpResponse::error(500, Redaction::mask(report.error().message));
    });
    http.route("GET", QStringLiteral("/api/tasks/"), [this](const HttpRequest &request) { return handleTask(request); });
    http.route("POST", QStringLiteral("/webhooks/"), [this](const HttpRequest &request) { return handleWebhook(request); });
}

HttpResponse Daemon::handleTask(const HttpRequest &request)
{
    bool ok = false;
    const qint64 id = request.path.section(QLatin1Char('/'), 3, 3).toLongLong(&ok);
    if (!ok)
        return HttpResponse::error(400, QStringLiteral("expected /api/tasks/<id>"));
    auto report = taskReport(m_host.engine(), id);
    if (!report)
        return HttpResponse::error(report.error().code == ErrorCode::NotFound ? 404 : 500, Redaction::mask(report.error().message));
    return apiJson(*report);
}

HttpResponse Daemon::handleWebhook(const HttpRequest &request)
{
    // /webhooks/<project>/<instance>, or /webhooks/<instance> when that name is unique.
    const QStringList parts = request.path.mid(QStringLiteral("/webhooks/").size()).split(QLatin1Char('/'), Qt::SkipEmptyParts);
    Engine &engine = m_host.engine();
    std::shared_ptr<ProjectRuntime> runtime;
    QString instanceName;
    if (parts.size() == 2) {
        runtime = engine.project(parts[0]);
        instanceName = parts[1];
    } else if (parts.size() == 1) {
        instanceName = parts[0];
        for (const QString &id : engine.projectIds()) {
            auto candidate = engine.project(id);
            if (candidate->instances.instance(instanceName)) {
                if (runtime)
                    return HttpResponse::error(404, QStringLiteral("instance '%1' exists in several projects: use /webhooks/<project>/%1").arg(instanceName));
                runtime = candidate;
            }
        }
    }
    PluginInstance *instance = runtime ? runtime->instances.instance(instanceName) : nullptr;
    auto *receiver = dynamic_cast<WebhookReceiver *>(instance);
    if (!receiver) {
        countWebhook(QStringLiteral("unknown"));
        return HttpResponse::error(404, QStringLiteral("no webhook receiver at %1").arg(request.path));
    }
    WebhookRequest incoming{request.body, request.headers, request.remoteAddress.toString()};
    auto delivery = receiver->acceptWebhook(incoming);
    if (!delivery) {
        const ErrorCode code = delivery.error().code;
        const bool denied = code == ErrorCode::PermissionDenied;
        // The connector could not decide now (e.g. it is re-reading tracker data): the
        // sender may deliver again.
        const bool later = code == ErrorCode::Network || code == ErrorCode::Timeout;
        qCWarning(lcDaemon).noquote() << "webhook for" << runtime->config.id << instanceName << "refused:" << delivery.error().message;
        countWebhook(denied ? QStringLiteral("unauthorized") : later ? QStringLiteral("unavailable") : QStringLiteral("malformed"));
        return HttpResponse::error(denied ? 401 : later ? 503 : 400, delivery.error().message);
    }
    if (delivery->deliveryId.isEmpty()) {
        countWebhook(QStringLiteral("malformed"));
        return HttpResponse::error(400, QStringLiteral("the delivery has no id; it cannot be de-duplicated"));
    }
    if (delivery->events.isEmpty() && dynamic_cast<Forge *>(instance)) {
        // Verified, but nothing in it concerns Sluice (an event type it does not use, another
        // repository): answered 202, nothing stored, as handling it again would change nothing.
        // (A tracker's empty delivery is recorded and answered 200 below, as Plane expects.)
        countWebhook(QStringLiteral("ignored"));
        return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("delivery"), delivery->deliveryId}, {QStringLiteral("ignored"), true}}), 202);
    }
    const QString source = QStringLiteral("%1/%2").arg(runtime->config.id, instanceName);
    QJsonArray events;
    for (const WebhookEvent &e : delivery->events) {
        QJsonObject data = e.data;
        // A tracker does not know the stage: a signal is meant for the stage its task is in
        // when the person acts, which is now. Kept with the delivery, so handling it later
        // (or again after a restart) never applies it to a stage the task reached since.
        if (e.kind == QLatin1String("signal") && !data.contains(QLatin1String("stage"))) {
            if (auto task = taskForSubject(*runtime, e.subject); task && *task)
                data.insert(QStringLiteral("stage"), (*task)->stage);
        }
        events.append(QJsonObject{{QStringLiteral("kind"), e.kind}, {QStringLiteral("subject"), e.subject},
                                  {QStringLiteral("value"), e.value}, {QStringLiteral("data"), data}});
    }
    auto fresh = m_host.store().recordEvent(source, delivery->deliveryId, QStringLiteral("webhook"),
                                            QJsonObject{{QStringLiteral("events"), events}});
    if (!fresh)
        return HttpResponse::error(503, QStringLiteral("cannot record the delivery: %1").arg(fresh.error().message));
    if (!*fresh) {
        countWebhook(QStringLiteral("duplicate"));
        return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("duplicate"), true}}));
    }
    countWebhook(QStringLiteral("accepted"));
    // Answered 200 now that it is recorded, handled right after: a sender counts anything else
    // as a failed delivery (Plane does not deliver again after an answer), and handling may
    // need the tracker (a state not known yet is read again). A delivery this process does
    // not get to is handled by the next start (handleUnclaimedDeliveries()).
    const QString deliveryId = delivery->deliveryId;
    QTimer::singleShot(0, this, [this, runtime, instanceName, source, deliveryId, events] {
        handleDelivery(runtime, instanceName, source, deliveryId, events);
    });
    return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("delivery"), deliveryId},
                                                        {QStringLiteral("events"), int(events.size())}}));
}

Result<std::optional<TaskRecord>> Daemon::taskForSubject(const ProjectRuntime &runtime, const QString &subject)
{
    Engine &engine = m_host.engine();
    bool numeric = false;
    const qint64 taskId = subject.toLongLong(&numeric);
    if (numeric)
        return engine.tasks().task(taskId);
    return engine.tasks().findByTrackerRef(runtime.config.id, subject);
}

void Daemon::handleUnclaimedDeliveries()
{
    // Deliveries answered by a process that ended before it handled them. Recent ones are left
    // to the process that answered them (it does within milliseconds).
    auto left = m_host.store().unclaimedEvents(QStringLiteral("webhook"), QDateTime::currentDateTimeUtc().addSecs(-10), 50);
    if (!left) {
        qCWarning(lcDaemon).noquote() << "cannot read the webhook deliveries nobody handled:" << left.error().toString();
        return;
    }
    for (const Store::RecordedEvent &e : std::as_const(*left)) {
        const QString project = e.source.section(QLatin1Char('/'), 0, 0);
        const QString instance = e.source.section(QLatin1Char('/'), 1);
        auto runtime = m_host.engine().project(project);
        if (!runtime)
            continue; // its project is not loaded here: left for a node that has it
        qCWarning(lcDaemon).noquote() << "handling webhook delivery" << e.deliveryId << "from" << e.source << "received at"
                                      << e.receivedAt.toString(Qt::ISODate) << "and not handled before";
        handleDelivery(runtime, instance, e.source, e.deliveryId, e.payload.value(QLatin1String("events")).toArray());
    }
}

void Daemon::handleDelivery(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instanceName, const QString &source,
                            const QString &deliveryId, const QJsonArray &events)
{
    // Taken first: of two nodes (or a late timer and the start-up pass) one handles it.
    auto taken = m_host.store().claimEvent(source, deliveryId);
    if (!taken) {
        qCWarning(lcDaemon).noquote() << "cannot take webhook delivery" << deliveryId << "from" << source << "to handle it:"
                                      << taken.error().toString() << "- the next pass tries again";
        return;
    }
    if (!*taken)
        return;
    for (const QJsonValue &v : events) {
        const QJsonObject o = v.toObject();
        const WebhookEvent e{o.value(QLatin1String("kind")).toString(), o.value(QLatin1String("subject")).toString(),
                             o.value(QLatin1String("value")).toString(), o.value(QLatin1String("data")).toObject()};
        if (const std::optional<ForgeEvent> forgeEvent = forgeEventFromWebhook(e)) {
            // Counted and logged by the listener (sluice_forge_events_total).
            const QString result = m_forgeListener->handle(runtime, instanceName, deliveryId, *forgeEvent);
            qCDebug(lcDaemon).noquote() << "delivery" << deliveryId << "from" << source << e.kind << "->" << result;
            continue;
        }
        if (e.kind == QLatin1String("signal"))
            takeSignal(runtime, source, e);
        else if (e.kind == QLatin1String("tracker-issue"))
            readTrackerIssue(runtime, instanceName, source, e.subject, 1);
    }
}

void Daemon::readTrackerIssue(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instanceName, const QString &source,
                              const QString &issueId, int attempt)
{
    // The receiver moved an issue to a state it did not know yet: the tracker's own read of the
    // issue (which reads its states again) says what it means now.
    auto *tracker = runtime->instances.as<Tracker>(instanceName);
    if (!tracker) {
        qCWarning(lcDaemon).noquote() << "delivery from" << source << "asks to read issue" << issueId << "but" << instanceName << "is no tracker";
        return;
    }
    std::shared_ptr<AsyncCall<TrackerIssue>> call(tracker->issue(issueId).release());
    if (!call)
        return;
    ++m_webhookReads;
    connect(call.get(), &PluginJob::finished, this, [this, call, runtime, instanceName, source, issueId, attempt] {
        --m_webhookReads;
        const Result<TrackerIssue> &issue = call->result();
        if (!issue) {
            constexpr int MaxReads = 6;
            if (attempt >= MaxReads) {
                qCWarning(lcDaemon).noquote() << "cannot read issue" << issueId << "for a delivery from" << source << "after" << attempt
                                              << "attempts:" << issue.error().message << "- the reconciler compares it later";
                return;
            }
            const int wait = 1000 << std::min(attempt, 8); // 2 s, 4 s, ... about a minute in all
            qCInfo(lcDaemon).noquote() << "reading issue" << issueId << "for a delivery from" << source << "failed:"
                                       << issue.error().message << "- again in" << wait / 1000 << "s";
            ++m_webhookReads;
            QTimer::singleShot(wait, this, [this, runtime, instanceName, source, issueId, attempt] {
                --m_webhookReads;
                readTrackerIssue(runtime, instanceName, source, issueId, attempt + 1);
            });
            return;
        }
        if (issue->signal.isEmpty()) {
            qCInfo(lcDaemon).noquote() << "issue" << (issue->key.isEmpty() ? issueId : issue->key) << "is in state" << issue->state
                                       << "- it sends no signal";
            return;
        }
        QJsonObject data{{QStringLiteral("title"), issue->title},
                         {QStringLiteral("description"), issue->description},
                         {QStringLiteral("key"), issue->key},
                         {QStringLiteral("state"), issue->state},
                         {QStringLiteral("url"), issue->url}};
        // A task made for a tracker issue is named after the issue's key.
        if (!issue->key.isEmpty())
            data.insert(QStringLiteral("branch"), QStringLiteral("sluice/%1").arg(issue->key.toLower()));
        takeSignal(runtime, source, WebhookEvent{QStringLiteral("signal"), issue->id, issue->signal, data});
    });
    call->start();
}

void Daemon::takeSignal(const std::shared_ptr<ProjectRuntime> &runtime, const QString &source, const WebhookEvent &e)
{
    Engine &engine = m_host.engine();
    auto task = taskForSubject(*runtime, e.subject);
    if (!task) {
        qCWarning(lcDaemon).noquote() << "signal" << e.value << "from" << source << "for" << e.subject << "- cannot read its task:" << task.error().message;
        return;
    }
    if (!*task) {
        bool numeric = false;
        e.subject.toLongLong(&numeric);
        if (e.value == QLatin1String("start") && !numeric) {
            // An issue moved to the start state with no task yet: that is how a task begins.
            auto created = engine.submit(runtime->config.id, e.data.value(QLatin1String("title")).toString(),
                                         e.data.value(QLatin1String("description")).toString(),
                                         e.data.value(QLatin1String("branch")).toString(), source, e.subject);
            if (!created)
                qCWarning(lcDaemon).noquote() << "cannot create a task for" << e.subject << "from" << source << "-" << created.error().message;
            return;
        }
        qCInfo(lcDaemon).noquote() << "signal" << e.value << "from" << source << "for" << e.subject << "ignored: no task is linked to it";
        return;
    }
    // The stage the task was in when the delivery came (kept with it), else the one it is in now.
    const QString stage = e.data.contains(QLatin1String("stage")) ? e.data.value(QLatin1String("stage")).toString() : (*task)->stage;
    // Already de-duplicated by delivery id: no second event row.
    auto taken = engine.signal((*task)->id, stage, e.value, source, QString());
    if (!taken)
        qCWarning(lcDaemon).noquote() << "signal" << e.value << "from" << source << "for task" << (*task)->id << "failed:" << taken.error().message;
}

void Daemon::countWebhook(const QString &result)
{
    m_metrics->increment(QStringLiteral("sluice_webhooks_total"), {{QStringLiteral("result"), result}});
}

QByteArray Daemon::renderMetrics()
{
    Engine &engine = m_host.engine();
    if (auto counts = engine.jobs().countsByStatus()) {
        for (auto it = counts->cbegin(); it != counts->cend(); ++it)
            m_metrics->set(QStringLiteral("sluice_jobs"), {{QStringLiteral("state"), it.key()}}, double(it.value()));
    }
    // Tasks as the store has them: moves made by `sluice approve`, `sluice submit` and other
    // nodes show here, while the counters below count this process's own moves.
    if (auto tasks = engine.tasks().countsByProjectAndStatus()) {
        for (const QString &project : engine.projectIds()) {
            for (const QString &status : {QStringLiteral("active"), QStringLiteral("blocked"), QStringLiteral("done")})
                m_metrics->set(QStringLiteral("sluice_tasks"), {{QStringLiteral("project"), project}, {QStringLiteral("status"), status}},
                               double(tasks->value({project, status})));
        }
    }
    // The engine keeps these counts; the exported counters mirror them.
    const EngineStats stats = engine.stats();
    m_metrics->set(QStringLiteral("sluice_advances_total"), {}, double(stats.advances));
    m_metrics->set(QStringLiteral("sluice_rollbacks_total"), {}, double(stats.rollbacks));
    m_metrics->set(QStringLiteral("sluice_tasks_blocked_total"), {}, double(stats.blocked));
    m_metrics->set(QStringLiteral("sluice_tasks_done_total"), {}, double(stats.done));
    m_metrics->set(QStringLiteral("sluice_claims_lost_total"), {}, double(stats.lostClaims));
    for (auto it = stats.verdicts.cbegin(); it != stats.verdicts.cend(); ++it)
        m_metrics->set(QStringLiteral("sluice_gate_verdicts_total"),
                       {{QStringLiteral("gate"), it.key().first}, {QStringLiteral("result"), it.key().second}}, double(it.value()));
    m_metrics->set(QStringLiteral("sluice_worker_running"), {}, double(m_worker->runningCount()));
    // Every node the store knows, as this daemon sees it: a silent node shows here on the
    // nodes that are left.
    if (auto nodes = m_host.store().nodes()) {
        for (const NodeRecord &n : std::as_const(*nodes)) {
            const Metrics::Labels labels{{QStringLiteral("node"), n.name}};
            m_metrics->set(QStringLiteral("sluice_node_heartbeat_age_seconds"), labels, double(n.heartbeatAgeMs) / 1000.0);
            m_metrics->set(QStringLiteral("sluice_node_jobs_running"), labels, double(n.runningJobs));
            m_metrics->set(QStringLiteral("sluice_node_up"), labels, n.state(m_host.config().reaper.nodeTimeout) == QLatin1String("up") ? 1 : 0);
        }
    }
    m_metrics->set(QStringLiteral("sluice_uptime_seconds"), {}, double(m_uptime.elapsed()) / 1000.0);
    return m_metrics->render();
}

} // namespace Sluice
