// SPDX-License-Identifier: Apache-2.0
#pragma once

// The CI-umbrella compensation sweeper. See docs/runbooks/ci-umbrella-stale.md.

#include "requiredsource.h"

#include <sluice/secrets.h>
#include <sluice/sweeper.h>

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
    UmbrellaSweeper(const PluginContext &context, UmbrellaSettings settings, QObject *parent = nullptr);
    [[nodiscard]] std::chrono::seconds defaultInterval() const override;
    [[nodiscard]] std::unique_ptr<SweepRun> sweep(const SweepOptions &options) override;

private:
    UmbrellaSettings m_settings;
};

class UmbrellaSweeperFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "ci-umbrella.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::Ci
