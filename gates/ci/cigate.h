// SPDX-License-Identifier: Apache-2.0
#pragma once

// The ci gate: every required CI context's latest status (and check run) on the task's head
// commit is success; while CI is still running it waits, up to ci_timeout. See docs/gates/ci.md.

#include "requiredcheck.h"
#include "requiredsource.h"

#include <sluice/gate.h>
#include <sluice/pluginfactory.h>

namespace Sluice::Ci {

class CiGate final : public Gate
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    CiGate(const PluginContext &context, RequiredSpec spec, WaitPolicy policy, QObject *parent = nullptr);
    [[nodiscard]] std::unique_ptr<GateRun> evaluate(const GateRequest &request) override;

private:
    RequiredSpec m_spec;
    WaitPolicy m_policy;
    // First-judged times when the host gives no state store (tests); the store keeps them otherwise.
    std::shared_ptr<QHash<QString, QDateTime>> m_firstJudged = std::make_shared<QHash<QString, QDateTime>>();
};

SLUICE_PLUGIN_CLASS_WITH_JSON(CiGate, "ci.json")

} // namespace Sluice::Ci
