// SPDX-License-Identifier: Apache-2.0
#pragma once

// The agent stage: launches a coding agent with a role through the project's agent launcher.
// See docs/plugins/agent.md.

#include <sluice/agentlauncher.h>
#include <sluice/plugin.h>
#include <sluice/stage.h>
#include <sluice/pluginfactory.h>

#include <QObject>
#include <QString>
#include <QVariantMap>

#include <chrono>
#include <memory>

namespace Sluice {
namespace Stages {

/// The checked settings of one agent stage instance.
struct AgentRule {
    QString role;
    std::chrono::milliseconds timeout{0};

    /// Checks settings the host validated against agent.json (defaults filled).
    [[nodiscard]] static Result<AgentRule> fromSettings(const QVariantMap &settings);
};

/// Launches one agent per stage run and maps how it ended to the stage outcome.
class AgentStage final : public Stage
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    AgentStage(const PluginContext &context, AgentRule rule, AgentLauncher &launcher, QObject *parent = nullptr);
    ~AgentStage() override;

    [[nodiscard]] std::unique_ptr<StageRun> run(const StageRequest &request) override;

private:
    AgentRule m_rule;
    AgentLauncher &m_launcher;
};

/// The factory the plugin library exports.
SLUICE_PLUGIN_CLASS_WITH_JSON(AgentStage, "agent.json")

} // namespace Stages
} // namespace Sluice
