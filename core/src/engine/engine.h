// SPDX-License-Identifier: Apache-2.0
#pragma once

// The pipeline engine: the one way a task moves.
//
// Every caller — a finished job, a human signal, an operator command, later the reconciler
// and the reaper — moves a task with advance(). Advancing is claim-before-act: the gates
// decide read-only, the transition is claimed with a conditional update, and only the
// winner enqueues the next job, audits and notifies.

#include "config/projectconfig.h"
#include "engine/workspace.h"
#include "pluginhost/projectinstances.h"
#include "store/jobqueue.h"
#include "store/taskstore.h"

#include <sluice/notifier.h>
#include <sluice/verdict.h>

#include <QHash>
#include <QMutex>
#include <QSet>
#include <QObject>
#include <QTimer>

#include <functional>
#include <memory>

namespace Sluice {

class GateEvaluation;
class Store;
struct ForgeHeadRead;

/// A project as the engine runs it: its validated file and its live plugin instances.
struct SLUICE_EXPORT ProjectRuntime {
    ProjectConfig config;
    ProjectInstances instances;
};

/// Counters for /metrics; read with Engine::stats().
struct SLUICE_EXPORT EngineStats {
    qint64 advances = 0;
    qint64 rollbacks = 0;
    qint64 blocked = 0;
    qint64 done = 0;
    qint64 lostClaims = 0;
    QHash<QPair<QString, QString>, qint64> verdicts; ///< (gate instance, result) → count
};

/// One run of the advance path for one task. Owned by the engine; deletes itself after finished().
class SLUICE_EXPORT AdvanceRun : public QObject
{
    Q_OBJECT
public:
    enum class Outcome {
        Advanced,   ///< Claimed the move to the next stage.
        Done,       ///< Claimed the move into the last stage: the task is done.
        RolledBack, ///< A gate failed; the task went back to the red policy's stage.
        Blocked,    ///< A gate failed and the retry cap is reached; the task is blocked.
        Lost,       ///< Someone else moved the task first; this run did nothing.
        NotActive,  ///< The task is blocked, done or gone; nothing to do.
        Failed,     ///< The engine could not complete the step (store error); the task did not move.
        Waiting,    ///< A gate said "not yet" (GateVerdict::Result::Wait): the task stays, no retry spent; evaluated again later.
    };
    Q_ENUM(Outcome)
    ~AdvanceRun() override;

    [[nodiscard]] qint64 taskId() const { return m_taskId; }
    [[nodiscard]] Outcome outcome() const { return m_outcome; }
    [[nodiscard]] QString detail() const { return m_detail; }
    [[nodiscard]] QString fromStage() const { return m_from; }
    [[nodiscard]] QString toStage() const { return m_to; }
    [[nodiscard]] bool isFinished() const { return m_finished; }
    [[nodiscard]] static QString outcomeName(Outcome outcome);

Q_SIGNALS:
    void finished(Sluice::AdvanceRun *run);

private:
    friend class Engine;
    AdvanceRun(qint64 taskId, QObject *parent);

    qint64 m_taskId;
    Outcome m_outcome = Outcome::Failed;
    QString m_detail;
    QString m_from;
    QString m_to;
    QString m_cause;
    bool m_finished = false;
    // Evaluation state.
    std::shared_ptr<ProjectRuntime> m_runtime;
    TaskRecord m_task;
    QList<std::pair<QString, QString>> m_gates; // (instance, toStage or empty for exit gates)
    bool m_headMoved = false;                   // a gate moved the branch (the merge gate's rebase)
    // Woken by a change a waiting gate depends on (wake()): its host steps go ahead of the
    // thread pool's queued bulk work (working copies, first evaluations).
    bool m_woken = false;
    int m_next = 0;
    std::unique_ptr<GateEvaluation> m_evaluation;
};

/// How a human or tracker signal was taken.
struct SLUICE_EXPORT SignalResult {
    enum class Kind { Accepted, Duplicate, Ignored };
    Kind kind = Kind::Ignored;
    QString reason;
    AdvanceRun *advance = nullptr; ///< Set when Accepted.
};

/// What Engine::retry() did.
struct SLUICE_EXPORT RetryResult {
    QString stage;     ///< The stage the task was blocked in and runs again.
    qint64 jobId = 0;  ///< The stage's job that runs now (0 for a last stage, which has none).
};

class SLUICE_EXPORT Engine : public QObject
{
    Q_OBJECT
public:
    /// The host's step before a task's gates, named like a gate in verdicts: fetch the target,
    /// scan the task's new commits for secrets, push the task branch to the forge.
    static const QString PublishStep;
    /// The host's step before the gates that read the task's working copy: this node's copy
    /// holds the task's head and what its last job left in .sluice/ (kept in the store), on
    /// whichever node the job ran. Named like a gate in verdicts when it stops a task.
    static const QString WorkspaceStep;
    /**
     * Scans the commits of @p repository in @p base..@p head for secrets (the security gate's
     * scanner, installed by the executable): the findings, masked. Called off the event loop.
     */
    using CommitScanner = std::function<Result<QList<Finding>>(const QString &repository, const QString &base, const QString &head)>;

    Engine(Store &store, const QString &node, const QString &stateDir, QObject *parent = nullptr);
    ~Engine() override;

    /// Installs or replaces a project's runtime (start, SIGHUP). Runs in flight keep the old one.
    void setProject(std::shared_ptr<ProjectRuntime> runtime);
    /// Unloads a project: its tasks stay in the store, its queued jobs are no longer claimed
    /// here, and runs in progress finish with the instances they started with.
    bool removeProject(const QString &id);
    [[nodiscard]] std::shared_ptr<ProjectRuntime> project(const QString &id) const;
    [[nodiscard]] QStringList projectIds() const;

    /**
     * Creates a task in the project's first stage and enqueues that stage's job. @p branch
     * empty: "sluice/<slug of the title>".
     */
    [[nodiscard]] Result<qint64> submit(const QString &projectId, const QString &title, const QString &description,
                                        const QString &branch, const QString &actor, const QString &trackerRef = QString());

    /**
     * THE advance path. Decides read-only (the current stage's exit gates, then the edge
     * gates to the next stage, in order, stopping at the first non-pass), claims the
     * transition, and only then acts. A failed gate applies the red policy.
     * @p fromStage is the stage the caller saw the task in (the finished job's stage, the
     * signal's stage): if the task is elsewhere by now, the caller is late and nothing
     * happens (Lost). Empty: whatever stage it is in (operator commands).
     * @p cause says who asked ("job 12 completed", "signal approve", "cli").
     */
    AdvanceRun *advance(qint64 taskId, const QString &fromStage, const QString &cause);

    /**
     * A signal (approve, confirm-deploy, ...) for @p taskId waiting in @p stage. Duplicates
     * (same @p source and @p deliveryId) are dropped; a signal the stage does not wait for,
     * or for a stage the task is not in, is a logged no-op. So is a signal for a stage that
     * has not asked yet: only after its run ended waiting and its approval request was
     * recorded for the task's current visit of the stage (recordApprovalRequest()) is a
     * signal taken — a signal sent the moment the task entered the stage, before anyone was
     * asked, changes nothing. "reject" for a task waiting in a stage that waits for a signal
     * (and has asked) applies the red policy (rollback, or block at the cap), unless the
     * stage itself waits for "reject".
     */
    [[nodiscard]] Result<SignalResult> signal(qint64 taskId, const QString &stage, const QString &signal,
                                              const QString &source, const QString &deliveryId);

    /**
     * A run of @p job left changes to the project's references that Sluice did not make
     * (Workspace::takeWork()): logs them, audits `repository-changed` with them, and returns
     * the reason to fail the job and block the task with — the references, their old and new
     * values, and the commands that undo them. Nothing is undone here.
     */
    [[nodiscard]] QString reportRepositoryChanged(const JobRecord &job, const QList<RefChange> &changes);

    /// Blocks an active task in @p stage (a job that ran out of attempts). False: the task moved.
    [[nodiscard]] Result<bool> block(qint64 taskId, const QString &stage, const QString &reason, const QString &actor);

    /**
     * An operator's retry of a blocked task from the stage it was blocked in. Claim before act:
     * blocked → active in that stage, conditional on the status, stage and version read here
     * (TaskStore::claimUnblock); only the winner acts. It enqueues the stage's job afresh (a
     * new job, so its attempts start again; the task's rollback count is kept), audits
     * "retry" as @p actor with @p operatorName and @p reason, and publishes "unblocked" —
     * from a process that routes nothing (the CLI), through the store's outbox.
     * InvalidArgument without a reason; NotFound for no task; Conflict when the task is not
     * blocked, or was retried or moved meanwhile; InvalidConfig when its project is not
     * loaded here or has no such stage any more.
     */
    [[nodiscard]] Result<RetryResult> retry(qint64 taskId, const QString &operatorName, const QString &reason,
                                            const QString &actor);

    /**
     * Blocks every active task whose job for its current stage has failed for good while no
     * job of the task is open (startup recovery fails a job that had no attempts left).
     * Returns how many tasks were blocked.
     */
    [[nodiscard]] Result<int> blockTasksWithFailedJobs(const QString &actor);

    /// Enqueues the job of @p stage for @p task: a "stage" job that runs its plugin, or for a
    /// passive stage (no run) an "advance" job that lets its gates decide.
    [[nodiscard]] Result<void> enterStage(const ProjectRuntime &runtime, const TaskRecord &task, const QString &stage,
                                          const QString &cause);

    [[nodiscard]] Store &store() { return m_store; }
    [[nodiscard]] TaskStore &tasks() { return m_tasks; }
    [[nodiscard]] JobQueue &jobs() { return m_jobs; }
    [[nodiscard]] const Workspace &workspace() const { return m_workspace; }
    [[nodiscard]] QString node() const { return m_node; }
    [[nodiscard]] EngineStats stats() const;
    /// Advance runs still evaluating.
    [[nodiscard]] int runsInFlight() const { return m_inFlight; }
    /// Whether an advance of @p taskId is evaluating in this process.
    [[nodiscard]] bool isAdvancing(qint64 taskId) const { return m_advancing.contains(taskId); }
    /// Whether this process will evaluate @p taskId's edge again because a gate said "wait".
    [[nodiscard]] bool isWaiting(qint64 taskId) const { return m_waiting.contains(taskId); }

    /// What wake() did.
    enum class Wake {
        Woken,      ///< The task waited here after a "wait" verdict: it is evaluated again now.
        Deferred,   ///< An advance of the task is evaluating: it looks again as soon as that one waits.
        NotWaiting, ///< Nothing of the task is waiting or evaluating in this process.
    };
    /**
     * Something the waiting gate depends on changed (a forge event): evaluate the task again now
     * instead of after its retryAfter. An advance under way may have read the old state, so when
     * it ends waiting the task is looked at once more at once. Never moves a task by itself: the
     * advance path decides.
     */
    Wake wake(qint64 taskId, const QString &cause);

    /**
     * Publishes @p notification (event, project, task, masked text) to whoever routes
     * notifications; sets its time when unset. Never blocks and never fails the caller.
     */
    void notify(Notification notification);
    /**
     * In a process that routes nothing (the CLI), notify() keeps each notification in the
     * store's outbox instead of emitting it, for the daemon to route (Daemon: the outbox
     * timer). Off by default.
     */
    void setNotificationOutbox(bool on) { m_outbox = on; }
    /**
     * A push to @p taskId's branch at the forge that Sluice did not make (a push delivery):
     * reads the branch there off the event loop and, as the publish step does before every
     * judgement, takes the pushed head as the task's head (secret-scanned, audited
     * `head-adopted` as the pusher) or blocks the task (repository.outside_pushes: block, a
     * head that diverged from the task's unpushed work, secrets in the pushed commits). Lets a
     * task that waits for people judge approvals against the head the forge has. Moves no
     * stage; nothing happens for a task that is not active or a project without a forge remote.
     */
    void lookAtForgeHead(qint64 taskId, const QString &cause);
    /// Installs the scanner that checks a task's commits before they are pushed. Without one,
    /// nothing is pushed (an error verdict says why).
    void setCommitScanner(CommitScanner scanner) { m_commitScanner = std::move(scanner); }

    /**
     * The run of @p job ended waiting for people (an approval, a deploy confirmation): the
     * stage asks. Publishes "approval-requested" (the signals the stage waits for in
     * data["signals"], @p summary — the stage's request — as text), then records the request
     * for this visit of the stage (audit "approval-requested" with the stage, the summary and
     * the visit: the task version the job was enqueued for). From then on, and only then,
     * signal() takes the stage's signals.
     */
    [[nodiscard]] Result<void> recordApprovalRequest(const JobRecord &job, const QString &summary);
    /// Whether @p stage asked for a signal in @p task's current visit of it (see recordApprovalRequest()).
    [[nodiscard]] Result<bool> approvalRequested(const TaskRecord &task, const QString &stage) const;

Q_SIGNALS:
    /// A job was enqueued: the worker should look now rather than at its next poll.
    void jobEnqueued();
    /// A task changed: "advanced", "done", "rolled-back", "blocked", "unblocked".
    void taskChanged(qint64 taskId, const QString &event, const QString &stage);
    /// An event worth telling people about (see notify()).
    void notification(const Sluice::Notification &notification);
    /// The publish step pushed @p sha to the task's branch at the forge.
    void published(qint64 taskId, const QString &sha);

private:
    void evaluateNextGate(AdvanceRun *run);
    // What became of a read of the task's branch at the forge (takeForgeHead()).
    enum class ForgeHeadOutcome { Ours, Adopted, Blocked, Lost, Failed };
    // Applies @p read to @p task in @p stage (updated in place when the head is taken): records
    // the forge's head (a compare-and-swap) and audits it, or blocks the task with @p verdict
    // recorded as the publish step's. @p how says who looked ("publish step", a push delivery).
    // @p onlyIdle: only while no job of the task is open (a push delivery's look).
    ForgeHeadOutcome takeForgeHead(TaskRecord &task, const QString &stage, const ForgeHeadRead &read, const GateVerdict &verdict,
                                   const QString &how, bool onlyIdle = false);
    // Who pushed @p head to @p task's branch, as the push delivery told ("forge" when unknown).
    [[nodiscard]] QString outsidePusher(const TaskRecord &task, const QString &head) const;
    // The publish step (PublishStep), off the event loop.
    void publish(AdvanceRun *run);
    // The working copy step (WorkspaceStep), off the event loop.
    void prepareWorkspace(AdvanceRun *run);
    // Records one verdict (audit, notifications) and goes on to the next gate or decides.
    void recordVerdict(AdvanceRun *run, const QString &instance, const QString &toStage, const GateVerdict &verdict, qint64 durationMs);
    void decide(AdvanceRun *run, const QString &failedGate, const GateVerdict &failure);
    // A gate said "not yet": nothing moves; the edge is evaluated again after the verdict's retryAfter.
    void waitFor(AdvanceRun *run, const QString &gate, const GateVerdict &verdict);
    void finish(AdvanceRun *run, AdvanceRun::Outcome outcome, const QString &detail);
    // Publishes a notification about @p task (title "task N (title): @p what").
    void notifyTask(const QString &event, const TaskRecord &task, const QString &what, const QString &text, QJsonObject data);
    void auditAction(const QString &actor, const QString &action, const TaskRecord &task, const QJsonObject &details);

    Store &m_store;
    TaskStore m_tasks;
    JobQueue m_jobs;
    Workspace m_workspace;
    QString m_node;
    QHash<QString, std::shared_ptr<ProjectRuntime>> m_projects;
    mutable QMutex m_statsMutex;
    EngineStats m_stats;
    int m_inFlight = 0;
    QHash<qint64, int> m_advancing; // task → advance runs evaluating
    struct WaitingLook {
        QTimer *timer = nullptr; // the scheduled re-evaluation (a child of the engine)
        QString from;            // the stage the task waits in
        QString gate;
    };
    QHash<qint64, WaitingLook> m_waiting; // tasks with a re-evaluation scheduled after a "wait" verdict
    QHash<qint64, QString> m_lookAgain;   // tasks woken while an advance evaluated: the cause
    bool m_outbox = false;          // notify() queues in the store instead of emitting
    QSet<QString> m_publishing;     // projects whose repository has the forge as a remote
    CommitScanner m_commitScanner;
};

/// At most this much of the findings a verdict hands on (its evidence's "feedback") goes into
/// a task description; the rest stays in the file the description names.
inline constexpr int MaxFeedbackChars = 16 * 1024;

/**
 * The task description with the feedback of @p gate, which failed leaving @p fromStage,
 * replacing any earlier feedback: the verdict's reason and findings, and the documents its
 * evidence hands on under "feedback" (a list of {file, text, cut}: a reviewer's findings),
 * each saying which file holds it, together capped at MaxFeedbackChars. Everything added is
 * masked (Redaction::mask).
 */
[[nodiscard]] SLUICE_EXPORT QString descriptionWithFeedback(const QString &description, const QString &gate,
                                                            const GateVerdict &verdict, int rollback, int maxRetries,
                                                            const QString &fromStage = QString());
/// @p description without the feedback that a gate leaving @p passedStage put there (it is
/// stale once the task passed that stage); the description unchanged when it holds none.
[[nodiscard]] SLUICE_EXPORT QString descriptionWithoutFeedback(const QString &description, const QString &passedStage);

} // namespace Sluice
