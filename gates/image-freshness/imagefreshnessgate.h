// SPDX-License-Identifier: Apache-2.0
#pragma once

// The image-freshness gate: the image about to be promoted carries the OCI revision and
// source labels of this change. See docs/gates/image-freshness.md.

#include "ociimage.h"

#include <sluice/gate.h>
#include <sluice/secrets.h>

#include <chrono>

namespace Sluice::ImageFreshness {

/// The checked settings of one instance.
struct FreshnessRule {
    enum class ReadFrom { Registry, OciLayout, SkopeoJson };
    ReadFrom readFrom = ReadFrom::Registry;
    QString image;         ///< Placeholders unexpanded; may be empty.
    QString imageArtifact; ///< Placeholders unexpanded; may be empty.
    QString layout;        ///< Placeholders unexpanded.
    QString skopeoOutput;  ///< Placeholders unexpanded.
    QStringList skopeoCommand; ///< Placeholders unexpanded; empty: read skopeoOutput.
    QString expectedSource;
    Platform platform;
    bool plainHttp = false;
    QString username;
    SecretRef password;
    std::chrono::milliseconds timeout{30'000};

    /// Checks settings the host validated against image-freshness.json (defaults filled).
    [[nodiscard]] static Result<FreshnessRule> fromSettings(const QVariantMap &settings, const QString &projectRepository);
};

class ImageFreshnessGate final : public Gate
{
    Q_OBJECT
public:
    ImageFreshnessGate(const PluginContext &context, FreshnessRule rule, QObject *parent = nullptr);
    [[nodiscard]] std::unique_ptr<GateRun> evaluate(const GateRequest &request) override;

private:
    FreshnessRule m_rule;
};

class ImageFreshnessGateFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "image-freshness.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::ImageFreshness
