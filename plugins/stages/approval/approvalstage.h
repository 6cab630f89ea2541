// SPDX-License-Identifier: Apache-2.0
#pragma once

// The approval stage: nothing runs; the task waits for one explicit human signal.
// See docs/plugins/approval.md.

#include <sluice/plugin.h>
#include <sluice/stage.h>

#include <QObject>
#include <QString>
#include <QStringList>
#include <QVariantMap>

#include <memory>

namespace Sluice {
namespace Stages {

/// The checked settings of one approval stage instance.
struct ApprovalRule {
    QString signal;       ///< The one accepted signal.
    QString instructions; ///< For the person asked; may be empty.

    /// Checks settings the host validated against approval.json (defaults filled).
    [[nodiscard]] static Result<ApprovalRule> fromSettings(const QVariantMap &settings);
};

/// Waits for its signal; accepts no other.
class ApprovalStage final : public Stage
{
    Q_OBJECT
public:
    ApprovalStage(const PluginContext &context, ApprovalRule rule, QObject *parent = nullptr);
    ~ApprovalStage() override;

    [[nodiscard]] std::unique_ptr<StageRun> run(const StageRequest &request) override;
    [[nodiscard]] QStringList acceptedSignals() const override;

private:
    ApprovalRule m_rule;
};

/// The factory the plugin library exports.
class ApprovalStageFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "approval.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;

    [[nodiscard]] Result<std::unique_ptr<PluginInstance>>
    create(const PluginContext &context) override;
};

} // namespace Stages
} // namespace Sluice
