// SPDX-License-Identifier: Apache-2.0
#pragma once

// The job queue: queued → running → done | failed, claimed atomically under a global and a
// per-project concurrency limit, on SQLite and on PostgreSQL shared by several nodes.

#include "store/taskstore.h"

#include <QDateTime>
#include <QHash>
#include <QJsonObject>
#include <QList>
#include <QString>

#include <chrono>
#include <optional>

namespace Sluice {

/// One row of the jobs table.
struct JobRecord {
    qint64 id = 0;
    qint64 taskId = 0;   ///< 0 for a job that is about no task.
    QString project;
    QString stage;
    QString kind;
    QString status;      ///< "queued", "running", "done" or "failed".
    QString claimedBy;   ///< Node of the last claim; kept when the job is requeued.
    QString lastError;   ///< Why the last attempt failed or was interrupted; may be empty.
    int attempts = 0;    ///< Claims so far (counted at claim).
    int maxAttempts = 0;
    QDateTime availableAt;
    QDateTime claimedAt; ///< Time of the last claim; invalid before the first.
    QDateTime finishedAt;
    QDateTime createdAt;
    QDateTime updatedAt;
    QJsonObject payload;
    qint64 claimToken = 0; ///< The fencing token of the current claim: bumped by every claim and takeover.

    /// The claim as the node that holds it writes with it.
    [[nodiscard]] JobClaim claim() const { return JobClaim{id, claimedBy, claimToken}; }
};

/// What enqueue() needs.
struct NewJob {
    qint64 taskId = 0;  ///< 0: a job about no task (never de-duplicated).
    QString project;    ///< Required; the per-project limit applies to it.
    QString stage;
    QString kind = QStringLiteral("stage");
    int maxAttempts = 3;
    QJsonObject payload;
    QDateTime availableAt; ///< Invalid = now.
};

/// How many jobs may run at once on one node: in total, and per project.
struct ConcurrencyLimits {
    int global = 4;
    /// The limit of projects not in perProject. 0: only the listed projects' jobs are claimed
    /// (a node claims jobs only of the projects it has loaded).
    int perProjectDefault = 2;
    QHash<QString, int> perProject; ///< Overrides of perProjectDefault.

    /// The limit of @p project: its override, else perProjectDefault.
    [[nodiscard]] int limitFor(const QString &project) const;
};

/**
 * The jobs table as a queue. Usable from any thread (each thread uses its own connection of
 * the Store and its own prepared statements) and from several processes and nodes on one
 * database. Every call needs the Store alive; destroying the JobQueue after the Store is
 * fine. Destroy it, like the Store, only while no other thread uses it.
 *
 * Every transition is conditional on the state it leaves (status, and for a running job the
 * node that claimed it), so of a late monitor, the reaper and the startup recovery acting on
 * one job exactly one succeeds; the others see false or Lost.
 */
class JobQueue
{
public:
    explicit JobQueue(Store &store);
    ~JobQueue();

    JobQueue(const JobQueue &) = delete;
    JobQueue &operator=(const JobQueue &) = delete;

    /**
     * Enqueues @p job and returns its id; std::nullopt (not an error) when its task already
     * has an open (queued or running) job for the same stage and kind: enqueueing is
     * idempotent. Once that job is done or failed, the same job can be enqueued again.
     */
    [[nodiscard]] Result<std::optional<qint64>> enqueue(const NewJob &job);

    /**
     * Atomically claims up to @p max jobs, oldest available first (by available_at, then id):
     * each only while its project runs fewer jobs on @p node than its limit and fewer than
     * limits.global jobs run on @p node in total. Claimed jobs are running, claimed by
     * @p node at @p now, with the attempt counted. An empty list when nothing is claimable.
     *
     * The limits are per node: jobs that other nodes run do not count against this one.
     * Never exceeds a limit, also with several processes claiming for one node at once: on
     * SQLite the counts and the claims are one BEGIN IMMEDIATE transaction (one commit for the
     * whole batch); on PostgreSQL the claim of the whole batch is one statement (candidates
     * locked with FOR UPDATE SKIP LOCKED, so other nodes' claimers pass over them) after a
     * transaction-scoped advisory lock of this node (so a second claimer for the same node
     * counts what the first claimed), lock and claim sent as one script: one round trip, one
     * transaction. Each claimed job gets a new claim token (JobRecord::claimToken); with a
     * node fence on the store, nothing is claimed once the fence is lost.
     */
    [[nodiscard]] Result<QList<JobRecord>> claim(const QString &node, const ConcurrencyLimits &limits,
                                                 const QDateTime &now, int max);
    /// claim() of one job; std::nullopt when nothing is claimable.
    [[nodiscard]] Result<std::optional<JobRecord>> claimNext(const QString &node, const ConcurrencyLimits &limits,
                                                             const QDateTime &now);

    /// running → done, conditional on running + @p node; false when it was not (Lost).
    [[nodiscard]] Result<bool> complete(qint64 jobId, const QString &node);
    /// complete() of several jobs in one transaction; returns the ids that were completed.
    [[nodiscard]] Result<QList<qint64>> complete(const QList<qint64> &jobIds, const QString &node);
    /// complete() of the jobs @p claims hold, each only while its claim (node and token) holds it.
    [[nodiscard]] Result<QList<qint64>> complete(const QList<JobClaim> &claims);
    /**
     * Whether @p claim still holds its job (running, its node, its token, and the store's
     * node fence holds): what a node checks right before a side effect outside the store
     * (taking the task branch into the project's repository).
     */
    [[nodiscard]] Result<bool> holds(const JobClaim &claim) const;

    struct Turnover {
        QList<qint64> completed;  ///< The jobs of the call that were completed.
        QList<JobRecord> claimed; ///< The jobs claimed after them.
    };
    /**
     * complete() of @p jobIds, then claim() of up to @p max jobs (none when @p max < 1) in
     * the room they left: the worker's turnover when jobs end. On SQLite both are one
     * transaction; on PostgreSQL they follow one another.
     */
    [[nodiscard]] Result<Turnover> completeAndClaim(const QList<qint64> &jobIds, const QString &node,
                                                    const ConcurrencyLimits &limits, const QDateTime &now, int max);
    /// completeAndClaim() with the claims' tokens checked. On PostgreSQL one round trip.
    [[nodiscard]] Result<Turnover> completeAndClaim(const QList<JobClaim> &claims, const QString &node,
                                                    const ConcurrencyLimits &limits, const QDateTime &now, int max);

    enum class FailOutcome {
        Requeued, ///< Back to queued, available after the back-off.
        Failed,   ///< Out of attempts: failed for good.
        Lost,     ///< Not running on @p node any more; nothing changed.
    };
    /**
     * An attempt failed: running → queued with available_at = now + backoff while
     * attempts < max_attempts, else → failed; @p error is stored as last_error.
     * Conditional on running + @p node; Lost otherwise.
     */
    [[nodiscard]] Result<FailOutcome> fail(qint64 jobId, const QString &node, const QString &error,
                                           std::chrono::milliseconds backoff, const QDateTime &now);
    /// fail() conditional on @p claim (its node and token).
    [[nodiscard]] Result<FailOutcome> fail(const JobClaim &claim, const QString &error, std::chrono::milliseconds backoff,
                                           const QDateTime &now);

    /**
     * Gives a running job back because this node interrupted it (a graceful shutdown): queued,
     * available now, and the attempt not counted — the job did nothing wrong. Conditional on
     * running + @p node; false when it was not. Crashes are not releases: startup recovery
     * counts the interrupted attempt.
     */
    [[nodiscard]] Result<bool> release(qint64 jobId, const QString &node, const QString &reason);
    /// release() conditional on @p claim.
    [[nodiscard]] Result<bool> release(const JobClaim &claim, const QString &reason);

    /**
     * Takeover: @p toNode takes the running job @p claim holds (another node's, silent past
     * node_timeout) as it is — same attempt, its agent adopted — with a new token, and the
     * agent run @p agentRunId (when > 0) is recorded as @p toNode's from now on. Conditional on
     * @p claim; std::nullopt when it does not hold the job any more. The taken job is returned.
     */
    [[nodiscard]] Result<std::optional<JobRecord>> transfer(const JobClaim &claim, const QString &toNode, qint64 agentRunId);

    /**
     * Startup recovery: the jobs that @p node left running are put back, with @p reason as
     * last_error: queued and available now while attempts remain, else failed (the
     * interrupted attempt counted, so a job that brings its node down cannot loop forever).
     * Other nodes' jobs are never touched. Returns how many jobs were recovered.
     */
    [[nodiscard]] Result<int> recoverRunning(const QString &node, const QString &reason);

    /// The job @p id, std::nullopt when there is none.
    /// A process a job's run started (an agent), as agent_runs records it.
    struct AgentRunRecord {
        qint64 id = 0;
        qint64 jobId = 0;
        int attempt = 0;
        QString node;
        qint64 pid = 0;
        quint64 startTicks = 0;
        QString logPath;
        QString host;     ///< The machine it runs on (a pid means something only there).
        QString worktree; ///< The working copy it works in.
    };
    /// Records that @p run's process exists; returns the agent_runs id.
    [[nodiscard]] Result<qint64> recordAgentStart(const AgentRunRecord &run);
    /**
     * recordAgentStart() for a job @p claim holds: ErrorCode::Conflict, and nothing recorded,
     * when the claim does not hold the job any more (the run must stop: its job was taken).
     */
    [[nodiscard]] Result<qint64> recordAgentStart(const AgentRunRecord &run, const JobClaim &claim);
    /// Records how it ended; @p exitCode only when known (never invented).
    [[nodiscard]] Result<void> recordAgentEnd(qint64 agentRunId, std::optional<int> exitCode);
    /// The agent runs of @p node that have no end recorded.
    [[nodiscard]] Result<QList<AgentRunRecord>> unfinishedAgentRuns(const QString &node) const;

    /// A running job of one node with the latest agent run of its current attempt, if any.
    struct RunningJob {
        JobRecord job;
        std::optional<AgentRunRecord> agent;
        QDateTime agentFinishedAt;    ///< Invalid while the agent's end is not recorded.
        std::optional<int> exitCode;  ///< Only when known.
        int deadTicks = 0;            ///< Consecutive reaper ticks that found the agent's pid dead.
    };
    /// The jobs @p node runs, longest running first, each with its agent run (the reaper's view).
    [[nodiscard]] Result<QList<RunningJob>> runningOn(const QString &node) const;
    /// Stores the reaper's count of consecutive dead ticks of an agent run.
    [[nodiscard]] Result<void> setDeadTicks(qint64 agentRunId, int deadTicks);

    [[nodiscard]] Result<std::optional<JobRecord>> job(qint64 id) const;
    /// The jobs of a task, oldest first.
    [[nodiscard]] Result<QList<JobRecord>> jobsForTask(qint64 taskId) const;
    /// "queued", "running", "done", "failed" → how many jobs have that status (all four present).
    [[nodiscard]] Result<QHash<QString, int>> countsByStatus() const;
    /// The running jobs, longest running first.
    [[nodiscard]] Result<QList<JobRecord>> running() const;
    /// The @p limit newest jobs, newest first.
    [[nodiscard]] Result<QList<JobRecord>> recent(int limit) const;
    /// The earliest available_at of the queued jobs (when a sleeping worker should look
    /// again); invalid when nothing is queued.
    [[nodiscard]] Result<QDateTime> nextAvailableAt() const;

    /// The PostgreSQL channel on which enqueues and requeues wake idle workers (LISTEN).
    [[nodiscard]] static QString wakeChannel();

private:
    // PostgreSQL: tells listening workers a job became claimable now (NOTIFY); nothing on SQLite.
    Result<void> wakeWorkers(PreparedStatements::Session &session);
    Result<QList<JobRecord>> claimOnPostgresql(PreparedStatements::Session &session, const QList<JobClaim> &completing,
                                               QList<qint64> *completed, const QString &node, const ConcurrencyLimits &limits,
                                               const QDateTime &now, int max);
    Result<QList<JobRecord>> claimInTransaction(PreparedStatements::Session &session, const QString &what,
                                                const QString &node, const ConcurrencyLimits &limits,
                                                const QDateTime &now, int max);
    Result<QList<qint64>> completeInTransaction(PreparedStatements::Session &session, const QString &what,
                                                const QList<JobClaim> &claims);
    Result<QList<JobRecord>> claimOnSqlite(PreparedStatements::Session &session, const QString &node,
                                           const ConcurrencyLimits &limits, const QDateTime &now, int max);

    PreparedStatements m_statements;
};

} // namespace Sluice
