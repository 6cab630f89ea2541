// SPDX-License-Identifier: Apache-2.0
#pragma once

// The job reaper and lease reclaim: the core sweeper that finds jobs whose run is gone or
// stuck and leases whose holder is gone, and settles them — conditionally, so that of the
// reaper, a late monitor and startup recovery exactly one acts. See docs/runbooks/reaper.md.

#include "config/hostsettings.h"
#include "store/jobqueue.h"
#include "store/leasestore.h"

#include <QDateTime>
#include <QFutureWatcher>
#include <QHash>
#include <QJsonObject>
#include <QObject>
#include <QSet>
#include <QTimer>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace Sluice {

class Engine;
struct ProjectRuntime;

/// What the reaper did to one job.
struct ReapedJob {
    qint64 jobId = 0;
    qint64 taskId = 0;
    QString project;
    QString stage;
    int tier = 0;            ///< 1 dead pid/monitor, 2 exit recorded, 3 ceiling; 0 startup recovery and takeovers.
    QString outcome;         ///< "advance", "requeued", "failed", "lost", "adopted" (a takeover).
    QString takenFrom;       ///< A takeover: the silent node the job was taken from; empty otherwise.
    QString reason;
    bool terminated = false; ///< A living agent's process group was stopped first.
    std::optional<int> exitCode;
    QDateTime at;

    [[nodiscard]] QJsonObject toJson() const;
};

/// A lease the reaper took back.
struct ReclaimedLease {
    LeaseRecord lease;
    QString reason; ///< "holder-dead", "node-silent", "node-reclaimed", "expired"
};

/// A silent node whose claim survivors took away, with what became of its jobs.
struct TakenNode {
    QString node;
    qint64 silentForMs = 0;
    bool revokedHere = false; ///< This node revoked its claim (another survivor may have first).
};

/// One pass.
struct ReaperPass {
    bool ok = true;
    QStringList errors;
    int examined = 0;
    QList<ReapedJob> reaped;
    QList<ReclaimedLease> reclaimed;
    QList<qint64> adopted; ///< Jobs whose living agent a monitor watches again (startup, takeover).
    QList<TakenNode> takenNodes; ///< Silent nodes whose work this pass took over.
    QDateTime at;
};

/**
 * Why a lease's holder no longer holds it, seen from @p node at @p now: "holder-dead" (the
 * holder process on this node is gone or its pid was reused), "node-silent" (the holder's
 * node has not beaten its heartbeat for @p nodeTimeout), "expired" (past its TTL); empty for
 * a live holder within its TTL. @p heartbeat is the holder node's last beat (invalid: never).
 */
[[nodiscard]] QString leaseReclaimReason(const LeaseRecord &lease, const QString &node, const QDateTime &now,
                                                       const QDateTime &heartbeat, std::chrono::milliseconds nodeTimeout);
/**
 * leaseReclaimReason() with the holder node's record: also "node-reclaimed" when the lease was
 * taken under an earlier claim of the holder's node name than the one that holds it now (the
 * node restarted or was taken over since: the process that took it is gone), and the
 * silence judged by the store's clock (@p holder's heartbeat age). @p holder null: unknown node.
 */
[[nodiscard]] QString leaseReclaimReason(const LeaseRecord &lease, const QString &node, const QDateTime &now,
                                                       const NodeRecord *holder, std::chrono::milliseconds nodeTimeout);

class Reaper : public QObject
{
    Q_OBJECT
public:
    Reaper(Engine &engine, const ReaperSettings &settings, QObject *parent = nullptr);
    ~Reaper() override;

    /**
     * What the worker of this process watches (jobs it runs or is finalising) and how to make
     * it let go of a job the reaper settles. Unset: nothing is watched (startup, `sluice`).
     */
    void setMonitor(std::function<QSet<qint64>()> monitored, std::function<void(qint64 jobId, const QString &why)> abandon);
    /**
     * At startup, a job whose agent still runs (same pid and start ticks) is offered to
     * @p adopt first: true means a monitor watches it again, and the job is left running.
     * Unset, or false: the agent is stopped and the job settled.
     */
    void setAdopter(std::function<bool(const JobQueue::RunningJob &job)> adopt);

    /**
     * Startup recovery, before the worker starts: every job this node left running is
     * settled at once (the monitor is certainly gone): a living agent is stopped first, a
     * recorded exit 0 goes to the gates, anything else is requeued or failed. Leases whose
     * holder is gone are reclaimed. Blocks while agents are stopped.
     */
    ReaperPass recoverAtStartup();

    /// Starts the ticks (when enabled).
    void start();
    void stop();
    /// Starts a pass now unless one runs (tests, operators). Emits passFinished().
    void tick();

    [[nodiscard]] const ReaperSettings &settings() const { return m_settings; }
    [[nodiscard]] bool isPassRunning() const { return m_watcher != nullptr; }
    /// The status block of /api/queue and `sluice queue`.
    [[nodiscard]] QJsonObject status() const;

Q_SIGNALS:
    void passFinished(const Sluice::ReaperPass &pass);

private:
    struct Decision;
    enum class Mode { Startup, Tick };
    QList<Decision> assess(Mode mode, const QSet<qint64> &monitored, QHash<qint64, int> &pidless, ReaperPass &pass);
    // assess() of a job with an agent process: what to do with it, or nothing (it runs on,
    // was adopted, or its monitor still has time).
    [[nodiscard]] std::optional<Decision> assessAgent(Mode mode, const JobQueue::RunningJob &r, bool watched, qint64 runningMs,
                                                      const QDateTime &now, ReaperPass &pass);
    // Records the agent @p found of @p r that its start never recorded (@p r then has it).
    // False when the store refused (in @p pass).
    [[nodiscard]] bool recordUnrecordedAgent(JobQueue::RunningJob &r, const JobQueue::AgentRunRecord &found, ReaperPass &pass);
    // The jobs of nodes silent past node_timeout (off the event loop): their claims revoked,
    // each job judged by the restart rules as seen from this machine.
    QList<Decision> assessTakeovers(ReaperPass &pass);
    // A job that ended with 0 counts once its work is in the project's repository: taken
    // from the working copy it was done in (off the event loop), or the job is run again.
    using Projects = QHash<QString, std::shared_ptr<ProjectRuntime>>;
    [[nodiscard]] Projects loadedProjects() const;
    void takeWork(Decision &d, const Projects &projects);
    // Removes the working copies this node keeps of tasks that are done (off the event loop).
    void removeFinishedWorkingCopies(const Projects &projects);
    void settle(const QList<Decision> &decisions, const QSet<qint64> &monitored, ReaperPass &pass);
    void settleOne(const Decision &d, const QSet<qint64> &monitored, ReaperPass &pass);
    // How settleOne() writes a decision to the store, by what it is: the outcome
    // ("adopted", "advance", "requeued", "failed", "lost"), or nothing when there is nothing
    // more to do (an error in @p pass, a job someone else took first).
    [[nodiscard]] std::optional<QString> adoptTakenJob(const Decision &d, const JobClaim &claim, ReaperPass &pass);
    [[nodiscard]] std::optional<QString> completeJob(const Decision &d, const JobClaim &claim, ReaperPass &pass);
    [[nodiscard]] std::optional<QString> failJob(const Decision &d, const JobClaim &claim, const QString &failure, ReaperPass &pass);
    // What follows a settled job: the advance, or the block, and the "reaped" notification.
    void followReaped(const Decision &d, const ReapedJob &reaped, const QString &failure, bool blockAfter, ReaperPass &pass);
    void reclaimLeases(ReaperPass &pass);
    void finishPass(ReaperPass &pass, bool startup);
    void loadStatus();

    Engine &m_engine;
    ReaperSettings m_settings;
    LeaseStore m_leases;
    std::function<QSet<qint64>()> m_monitored;
    std::function<void(qint64, const QString &)> m_abandon;
    std::function<bool(const JobQueue::RunningJob &)> m_adopt;
    QTimer m_timer;
    QHash<qint64, int> m_pidlessTicks; // running jobs with no agent and no monitor, by job
    QHash<qint64, QString> m_pendingAdvance; // task → stage whose advance failed after a reap: retried each tick
    QFutureWatcher<void> *m_watcher = nullptr;
    quint64 m_ticks = 0;
    // Status.
    QDateTime m_lastRun;
    qint64 m_reapedTotal = 0;
    qint64 m_reclaimedTotal = 0;
    QJsonObject m_lastReaped;
    QJsonObject m_lastReclaim;
    bool m_lastOk = true;
};

} // namespace Sluice

Q_DECLARE_METATYPE(Sluice::ReaperPass)
