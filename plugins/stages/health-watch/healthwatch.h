// SPDX-License-Identifier: Apache-2.0
#pragma once

// The health-watch stage: after a deploy, probes the service's health URL for a window and
// records HEALTHY or DEGRADED; on degradation alerts only or runs a rollback command. See
// docs/plugins/health-watch.md and docs/adr/0009-post-deploy-health-watch.md.

#include "supervisedprocess.h"

#include <sluice/plugin.h>
#include <sluice/stage.h>

#include <QList>
#include <QString>
#include <QStringList>

#include <chrono>

namespace Sluice::HealthWatch {

/// The checked settings of one instance.
struct WatchRule {
    enum class Mode { Alert, Rollback };
    QString url; ///< Placeholders unexpanded.
    std::chrono::milliseconds interval{0};
    std::chrono::milliseconds window{0};
    std::chrono::milliseconds probeTimeout{0};
    QList<int> expectedStatus;
    int maxFailures = 0;
    Mode mode = Mode::Alert;
    bool self = false;
    QStringList rollbackCommand; ///< Placeholders unexpanded; may be empty in alert mode.
    std::chrono::milliseconds rollbackTimeout{0};
    std::chrono::milliseconds rollbackKillGrace{0};
    Processes::EnvironmentList environment;
    QStringList inheritEnvironment;
    QString report; ///< Placeholders unexpanded.

    /// Whether a degradation runs the rollback: mode rollback and not self.
    [[nodiscard]] bool rollsBack() const { return mode == Mode::Rollback && !self; }

    /// Checks settings the host validated against health-watch.json (defaults filled).
    [[nodiscard]] static Result<WatchRule> fromSettings(const QVariantMap &settings);
};

class HealthWatchStage final : public Stage
{
    Q_OBJECT
public:
    HealthWatchStage(const PluginContext &context, WatchRule rule, QObject *parent = nullptr);
    [[nodiscard]] std::unique_ptr<StageRun> run(const StageRequest &request) override;

private:
    WatchRule m_rule;
};

class HealthWatchStageFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "health-watch.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::HealthWatch
