// SPDX-License-Identifier: Apache-2.0
#pragma once

// The drift report between the workflow and branch protection, as a read-only sweeper:
// `sluice sweep <instance> --project P` prints it, the daemon checks it on a timer.

#include "requiredsource.h"

#include <sluice/sweeper.h>

namespace Sluice::Ci {

/// One line of the drift report.
struct DriftFinding {
    QString context;
    QString problem; ///< "stale", "unprotected", "ok-umbrella", "ok-derived", "not-required", "semantics-stricter", "semantics-as-forge"
    QString reason;
    bool drift = false;
};

/**
 * Compares what the workflow requires (@p derived) with what protection requires
 * (@p protectedContexts): a protected context nobody posts is stale drift; protection that
 * requires neither the umbrella nor every derived context leaves the branch unprotected.
 */
[[nodiscard]] QList<DriftFinding> compareWithProtection(const RequiredContexts &derived, const QStringList &protectedContexts);

/**
 * How Sluice's `required_semantics` differs from what the forge's protection accepts (a forge
 * with check runs, GitHub, also takes skipped and neutral ones): "semantics-stricter" or
 * "semantics-as-forge", never drift (the default is deliberately stricter). Empty problem:
 * nothing to say.
 */
[[nodiscard]] DriftFinding compareSemantics(Semantics semantics, bool forgeHasCheckRuns);

class DriftSweeper final : public Sweeper
{
    Q_OBJECT
public:
    DriftSweeper(const PluginContext &context, RequiredSpec spec, QString branch, QObject *parent = nullptr);
    [[nodiscard]] std::chrono::seconds defaultInterval() const override;
    [[nodiscard]] std::unique_ptr<SweepRun> sweep(const SweepOptions &options) override;

private:
    RequiredSpec m_spec;
    QString m_branch;
};

class DriftSweeperFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "ci-drift.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::Ci
