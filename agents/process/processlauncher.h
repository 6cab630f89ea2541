// SPDX-License-Identifier: Apache-2.0
#pragma once

// The process agent launcher: starts any CLI coding agent as a child process and reports
// how it ended; adopts an agent a previous host process started. See docs/agents/process.md.

#include "supervisedprocess.h"

#include <sluice/agentlauncher.h>
#include <sluice/plugin.h>
#include <sluice/pluginfactory.h>

#include <QObject>
#include <QString>
#include <QStringList>
#include <QVariantMap>

#include <chrono>
#include <memory>

namespace Sluice {
namespace Agents {

/// The checked settings of one process launcher instance.
struct ProcessAgentRule {
    QStringList command;                    ///< Program and arguments, placeholders unexpanded.
    std::chrono::milliseconds timeout{0};   ///< Used when a request carries no timeout.
    std::chrono::milliseconds killGrace{0};
    Processes::EnvironmentList environment; ///< Values unexpanded.
    QStringList inheritEnvironment;
    Processes::ResourceLimits limits;       ///< Enforced through the run's cgroup, or the run is refused.
    Processes::RunAsSetting runAs;          ///< Resolved at each launch; unset: the daemon's user.
    qint64 logLimit = 0;                    ///< Bytes the run's log keeps at most (the latest).

    /// Checks settings the host validated against process.json (defaults filled).
    [[nodiscard]] static Result<ProcessAgentRule> fromSettings(const QVariantMap &settings);
};

/**
 * Launches agents as child processes in their own session.
 *
 * A launch destroyed while its agent runs leaves the agent running (unless it was being
 * stopped): the host records pid and start ticks at started(), and adopt() re-attaches
 * after a restart. An adopted launch does not emit started() again; the host has the record.
 */
class ProcessLauncher final : public AgentLauncher
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    ProcessLauncher(const PluginContext &context, ProcessAgentRule rule, QObject *parent = nullptr);
    ~ProcessLauncher() override;

    /// Keeps capabilities the daemon holds for run_as out of what else it starts.
    [[nodiscard]] Result<void> initialize() override;

    [[nodiscard]] std::unique_ptr<AgentLaunch> launch(const AgentRequest &request) override;
    [[nodiscard]] std::unique_ptr<AgentLaunch> adopt(const AgentProcess &process,
                                                     const AgentRequest &request) override;

private:
    ProcessAgentRule m_rule;
};

/// The factory the plugin library exports.
SLUICE_PLUGIN_CLASS_WITH_JSON(ProcessLauncher, "process.json")

} // namespace Agents
} // namespace Sluice
