// SPDX-License-Identifier: Apache-2.0
#pragma once

// The image-freshness gate: the image about to be promoted carries the OCI revision and
// source labels of this change. See docs/gates/image-freshness.md.

#include "ociimage.h"

#include <sluice/gate.h>
#include <sluice/secrets.h>
#include <sluice/pluginfactory.h>

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
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    ImageFreshnessGate(const PluginContext &context, FreshnessRule rule, QObject *parent = nullptr);
    [[nodiscard]] std::unique_ptr<GateRun> evaluate(const GateRequest &request) override;

private:
    FreshnessRule m_rule;
};

SLUICE_PLUGIN_CLASS_WITH_JSON(ImageFreshnessGate, "image-freshness.json")

} // namespace Sluice::ImageFreshness
