// SPDX-License-Identifier: Apache-2.0
#pragma once

// The agent stage: launches a coding agent with a role through the project's agent launcher.
// See docs/plugins/agent.md.

#include <sluice/agentlauncher.h>
#include <sluice/plugin.h>
#include <sluice/stage.h>

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
    AgentStage(const PluginContext &context, AgentRule rule, AgentLauncher &launcher, QObject *parent = nullptr);
    ~AgentStage() override;

    [[nodiscard]] std::unique_ptr<StageRun> run(const StageRequest &request) override;

private:
    AgentRule m_rule;
    AgentLauncher &m_launcher;
};

/// The factory the plugin library exports.
class AgentStageFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "agent.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;

    [[nodiscard]] Result<std::unique_ptr<PluginInstance>>
    create(const PluginContext &context) override;
};

} // namespace Stages
} // namespace Sluice
