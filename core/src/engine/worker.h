// SPDX-License-Identifier: Apache-2.0
#pragma once

// The job worker: claims queued stage jobs within the concurrency limits, runs the stage
// plugin with the host's deadline, and hands a completed stage to the engine's advance path.

#include "engine/workspace.h"
#include "store/jobqueue.h"

#include <sluice/stage.h>

#include <QElapsedTimer>
#include <QHash>
#include <QObject>
#include <QSet>
#include <QTimer>

#include <memory>

namespace Sluice {

class Engine;
struct ProjectRuntime;

/**
 * How long a failed attempt waits before its retry: the project's jobs.retry_backoff doubled
 * per attempt (at most 64 times), and never more than 15 minutes unless the base itself is
 * longer — a job that failed often must not sleep for hours.
 */
[[nodiscard]] std::chrono::milliseconds retryBackoff(const ProjectRuntime *runtime, int attempts);

class Worker : public QObject
{
    Q_OBJECT
public:
    struct Running {
        JobRecord job;
        QString plugin;
        QDateTime startedAt;
    };

    explicit Worker(Engine &engine, QObject *parent = nullptr);
    ~Worker() override;

    void setGlobalConcurrency(int limit) { m_globalLimit = limit; }
    void setPollInterval(std::chrono::milliseconds interval);
    [[nodiscard]] int globalConcurrency() const { return m_globalLimit; }
    [[nodiscard]] ConcurrencyLimits limits() const;

    /// Starts claiming: now, on every enqueue signal, and at each poll.
    void start();
    /// Looks for work soon (a job became claimable: another process enqueued one, LISTEN/NOTIFY).
    void wake();
    /// Stops claiming. Runs in progress are left alone (their jobs stay running in the store
    /// and are recovered at the next start).
    void stop();
    /**
     * A graceful shutdown: stops claiming and cancels every run in progress (an agent's or a
     * command's whole process group is terminated, then killed after its grace). Each
     * interrupted job goes back to the queue with its attempt not counted. Emits drained()
     * once no run is left — at once when none runs.
     */
    void shutdown();

    [[nodiscard]] bool isRunning() const { return m_started; }
    [[nodiscard]] QList<Running> running() const;
    [[nodiscard]] int runningCount() const { return int(m_runs.size()); }
    /// The jobs this worker watches: running here, or finished and waiting to be recorded.
    [[nodiscard]] QSet<qint64> monitoredJobs() const;
    /**
     * Lets go of @p jobId, which the reaper settles: its run is cancelled (an agent's or a
     * command's process group is terminated) and whatever it reports later is dropped.
     */
    void abandon(qint64 jobId, const QString &why);
    /**
     * Startup, before start(): re-attaches to the agent @p agent that the job @p job (running
     * on this node) started before the restart and that still runs. The job's stage watches it
     * to its end instead of launching a second agent. False when the job's stage cannot be
     * run here (project unloaded, no stage plugin): the caller settles the job instead.
     */
    bool adopt(const JobRecord &job, const JobQueue::AgentRunRecord &agent);
    /**
     * Lets go of every run without stopping any process or writing anything: this node was
     * taken over (its claim of the node name is gone), so its runs are other nodes' now.
     */
    void forsake();

Q_SIGNALS:
    /// A job ended here: "completed", "waiting", "requeued", "failed", "stale", "lost",
    /// "interrupted" (given back by shutdown()), "fenced" (taken over by another node: nothing
    /// of it recorded here).
    void jobFinished(qint64 jobId, const QString &outcome);
    /// After shutdown(): every run has ended and its job was given back or finalised.
    void drained();

private:
    struct Run;
    /// What follows a job's completion once the store has it done.
    enum class Followup {
        Advance, ///< the stage completed (or a passive stage was entered): the gates decide
        Wait,    ///< the stage waits for a signal
        Stale,   ///< the task had moved on; nothing follows
    };
    struct Completion {
        JobRecord job;
        Followup followup;
        QString summary;
    };
    void drain();
    void completeLater(const JobRecord &job, Followup followup, const QString &summary = {});
    void flushCompletions();
    void checkDrained();
    struct Prepared;
    struct Finished;
    void execute(const JobRecord &job, const std::optional<JobQueue::AgentRunRecord> &adopted = std::nullopt);
    void startStage(qint64 jobId, const TaskRecord &record, const Result<Prepared> &prepared);
    void conclude(qint64 jobId);
    // After a run that had a working copy: what it did to the project's repository, and the
    // task branch taken from it (off the event loop), then the job's outcome.
    void settle(const std::shared_ptr<Run> &run, const StageOutcome &outcome, const Finished &finished);
    void failJob(const JobRecord &job, const ProjectRuntime *runtime, const QString &error);

    Engine &m_engine;
    int m_globalLimit = 4;
    bool m_started = false;
    bool m_draining = false;
    QTimer m_poll;
    bool m_shuttingDown = false;
    QHash<qint64, std::shared_ptr<Run>> m_runs;
    QSet<qint64> m_settling; // ended runs whose working copy is being looked at
    // Completions are written in one transaction per event-loop turn: jobs that end together
    // (a burst of passive stages, stale jobs, agents finishing at once) cost one commit.
    QList<Completion> m_completions;
    QTimer m_flush;
};

} // namespace Sluice
