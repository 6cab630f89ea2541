// SPDX-License-Identifier: Apache-2.0
#pragma once

// The command stage: runs a configured command with an exit-code contract (a deploy hook,
// a build script). See docs/plugins/command.md.

#include "supervisedprocess.h"

#include <sluice/plugin.h>
#include <sluice/stage.h>

#include <QList>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QVariantMap>

#include <chrono>
#include <memory>

namespace Sluice {
namespace Stages {

/// The checked settings of one command stage instance.
struct CommandRule {
    QStringList command;          ///< Program and arguments, placeholders unexpanded.
    std::chrono::milliseconds timeout{0};
    std::chrono::milliseconds killGrace{0};
    QString workingDirectory;     ///< Placeholders unexpanded.
    Processes::EnvironmentList environment; ///< Values unexpanded.
    QStringList inheritEnvironment;
    QString output;               ///< Placeholders unexpanded.
    /// Run at most once per task, job and head: an initiated marker in the state store before
    /// the start, the exit status recorded beside the output (docs/plugins/command.md#once).
    bool once = false;
    QList<int> retryExitCodes;    ///< With once: temporary failures that clear the marker.
    Processes::ResourceLimits limits; ///< Enforced through the run's cgroup, or the run is refused.
    qint64 logLimit = 0;          ///< Bytes the output file keeps at most (the latest).

    /// Checks settings the host validated against command.json (defaults filled).
    [[nodiscard]] static Result<CommandRule> fromSettings(const QVariantMap &settings);
};

/// Runs the command once per stage run.
class CommandStage final : public Stage
{
    Q_OBJECT
public:
    CommandStage(const PluginContext &context, CommandRule rule, QObject *parent = nullptr);
    ~CommandStage() override;

    /// Refuses once: true without a state store to keep the marker in.
    [[nodiscard]] Result<void> initialize() override;
    [[nodiscard]] std::unique_ptr<StageRun> run(const StageRequest &request) override;

private:
    CommandRule m_rule;
};

/// The factory the plugin library exports.
class CommandStageFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "command.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;

    [[nodiscard]] Result<std::unique_ptr<PluginInstance>>
    create(const PluginContext &context) override;
};

} // namespace Stages
} // namespace Sluice
