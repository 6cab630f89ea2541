// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file stage.h
 * Stage plugins: what happens while a task is in a stage (launch an agent, wait for a
 * human, run a command). Whether the task may leave is decided by gates, not by the stage.
 */

#include <sluice/agentlauncher.h>
#include <sluice/job.h>
#include <sluice/plugin.h>
#include <sluice/task.h>

#include <QStringList>

namespace Sluice {

/// What a stage is asked to do for one task.
struct SLUICE_EXPORT StageRequest {
    TaskInfo task;        ///< The task entering or re-running the stage.
    QString stage;        ///< Stage name.
    QString worktree;     ///< Absolute path of the task's worktree; may be empty.
    QString artifactsDir; ///< Where the stage writes artifacts read by gates.
    QString taskFile;     ///< File holding the task description the agent reads.
    int attempt = 1;      ///< 1-based attempt of this stage's job.
    qint64 job = 0;       ///< Store id of the job; a rollback's re-run of the stage is another job.
    /**
     * Set after a host restart: the agent this job's attempt started is still running. A
     * stage that launches agents re-attaches to it (AgentLauncher::adopt()) instead of
     * starting a second one; it must not emit processStarted() again (the host has the record).
     */
    std::optional<AgentProcess> adopt;
};

/// How a stage run ended.
struct SLUICE_EXPORT StageOutcome {
    enum class Status {
        Completed, ///< The work ran to its end; exit gates decide what follows.
        Failed,    ///< The work failed (non-zero exit, launch error).
        Waiting,   ///< Nothing to run: the stage waits for a signal (approval stages).
    };
    Status status = Status::Failed;
    std::optional<int> exitCode; ///< Exit code when a process ran and its code is known.
    QString summary;             ///< One line for people and the audit.
    QString logPath;             ///< Captured output, if any.
};

/// One run of a stage for a task. The host owns it and enforces its deadline.
class SLUICE_EXPORT StageRun : public PluginJob
{
    Q_OBJECT
public:
    using PluginJob::PluginJob;
    ~StageRun() override;

    [[nodiscard]] const StageOutcome &outcome() const { return m_outcome; }
    /// Records @p outcome and emits finished(). Later calls are ignored.
    void finishWith(const StageOutcome &outcome);

Q_SIGNALS:
    /**
     * The run started a process that may outlive the host (an agent): emit it as soon as the
     * process exists. The host records it (node, pid, start time, log) before anything else,
     * so a host that crashes never loses track of it: the next start stops such a process
     * before its job runs again, and never runs two agents on one task.
     */
    void processStarted(const Sluice::AgentProcess &process, const QString &logPath);

private:
    StageOutcome m_outcome;
};

/// A stage plugin instance.
class SLUICE_EXPORT Stage : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::Stage; }

    /// Returns the run the host starts, watches and owns.
    [[nodiscard]] virtual std::unique_ptr<StageRun> run(const StageRequest &request) = 0;

    /**
     * Signals that move a task out of this stage when it waits ("approve",
     * "confirm-deploy"). Any other signal for a waiting task is a logged no-op.
     * Default: none.
     */
    [[nodiscard]] virtual QStringList acceptedSignals() const;
};

} // namespace Sluice
