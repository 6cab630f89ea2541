// SPDX-License-Identifier: Apache-2.0
#pragma once

// The merge gate: under the merge lease of the target branch, rebase the task's branch when
// it is behind, push, wait for the required checks on the new head, merge through the forge.
// See docs/gates/merge.md.

#include "requiredsource.h"

#include <sluice/gate.h>
#include <sluice/pluginfactory.h>

#include <chrono>
#include <optional>

namespace Sluice::Merge {

/// The checked settings of one merge gate instance.
struct MergeSettings {
    QString method;
    QString remote;
    std::chrono::milliseconds leaseTtl{};
    std::chrono::milliseconds leaseWait{};
    std::chrono::milliseconds waitRetry{};
    std::chrono::milliseconds pollInterval{};
    std::chrono::milliseconds checksTimeout{};
    std::chrono::milliseconds ciTimeout{std::chrono::hours(2)};
    std::optional<Ci::RequiredSpec> checks; ///< Empty when retest is off.
    QString git;
    int gitTimeoutMs = 0;

    [[nodiscard]] static Result<MergeSettings> fromSettings(const QVariantMap &settings);
};

class MergeGate final : public Gate
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    MergeGate(const PluginContext &context, MergeSettings settings, QObject *parent = nullptr);
    [[nodiscard]] std::unique_ptr<GateRun> evaluate(const GateRequest &request) override;

private:
    MergeSettings m_settings;
};

SLUICE_PLUGIN_CLASS_WITH_JSON(MergeGate, "merge.json")

} // namespace Sluice::Merge
