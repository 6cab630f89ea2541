// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file agentlauncher.h
 * Agent launchers: start a coding agent for a task and report how it ended.
 */

#include <sluice/job.h>
#include <sluice/plugin.h>
#include <sluice/task.h>

#include <QDateTime>

#include <chrono>

namespace Sluice {

/// What to launch.
struct SLUICE_EXPORT AgentRequest {
    TaskInfo task;
    QString role;       ///< The agent's role in this stage ("developer", "reviewer").
    QString worktree;   ///< Absolute path of the task's worktree.
    QString taskFile;   ///< File with the task description the agent reads.
    QString logPath;    ///< Where to capture the agent's output.
    std::chrono::milliseconds timeout{0}; ///< Host deadline; 0 means the launcher default.
};

/// A running agent process, as recorded in the store the moment it exists.
struct SLUICE_EXPORT AgentProcess {
    QString node;            ///< Node (machine) the process runs on.
    qint64 pid = 0;          ///< Process id on that node.
    quint64 startTicks = 0;  ///< Kernel start time of the process, to tell pid reuse apart.
    QDateTime startedAt;
};

/// How an agent run ended. An unknown exit code is never invented.
struct SLUICE_EXPORT AgentExit {
    std::optional<int> exitCode; ///< Known exit code, if the process exited normally.
    bool timedOut = false;       ///< Terminated by the deadline.
    bool crashed = false;        ///< Ended by a signal.
    QDateTime finishedAt;
    QString logArchive;          ///< Archived log of the run, if any.
};

/// One launched agent. Emits started() as soon as a pid exists.
class SLUICE_EXPORT AgentLaunch : public PluginJob
{
    Q_OBJECT
public:
    using PluginJob::PluginJob;
    ~AgentLaunch() override;

    [[nodiscard]] const Result<AgentExit> &result() const { return m_result; }
    /// Records the outcome and emits finished(). Later calls are ignored.
    void finishWith(const Result<AgentExit> &result);

Q_SIGNALS:
    /// The process exists; the host records it before anything else happens.
    void started(const Sluice::AgentProcess &process);

private:
    Result<AgentExit> m_result = fail(ErrorCode::Cancelled, QStringLiteral("agent did not finish"));
};

/// An agent launcher plugin instance.
class SLUICE_EXPORT AgentLauncher : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::AgentLauncher; }

    /// Returns a launch the host starts, watches and owns.
    [[nodiscard]] virtual std::unique_ptr<AgentLaunch> launch(const AgentRequest &request) = 0;
    /**
     * Re-attaches to an agent started before a host restart, if @p process is still the
     * same process (pid and start ticks). Returns null when it cannot be adopted. The host
     * adopts only agents it saw running; one that has ended before the launcher looks should
     * be returned as a launch that finishes at once with the end the agent recorded (no exit
     * code when nothing was), so finished work is not thrown away.
     */
    [[nodiscard]] virtual std::unique_ptr<AgentLaunch> adopt(const AgentProcess &process,
                                                             const AgentRequest &request) = 0;
};

} // namespace Sluice

Q_DECLARE_METATYPE(Sluice::AgentProcess)
