// SPDX-License-Identifier: Apache-2.0
#pragma once

// The CI-umbrella compensation sweeper. See docs/runbooks/ci-umbrella-stale.md.

#include "requiredsource.h"

#include <sluice/secrets.h>
#include <sluice/sweeper.h>
#include <sluice/pluginfactory.h>

namespace Sluice::Ci {

struct UmbrellaSettings {
    bool enabled = false;
    SecretRef token;
    qint64 thresholdMs = 5 * 60 * 1000;
    qint64 intervalMs = 10 * 60 * 1000;
    bool inDaemon = true;
    QString targetUrl;
    RequiredSpec required;

    [[nodiscard]] static Result<UmbrellaSettings> fromSettings(const QVariantMap &settings, const SecretRef &token);
};

class UmbrellaSweeper final : public Sweeper
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    UmbrellaSweeper(const PluginContext &context, UmbrellaSettings settings, QObject *parent = nullptr);
    [[nodiscard]] std::chrono::seconds defaultInterval() const override;
    [[nodiscard]] std::unique_ptr<SweepRun> sweep(const SweepOptions &options) override;

private:
    UmbrellaSettings m_settings;
};

SLUICE_PLUGIN_CLASS_WITH_JSON(UmbrellaSweeper, "ci-umbrella.json")

} // namespace Sluice::Ci
