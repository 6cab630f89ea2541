// SPDX-License-Identifier: Apache-2.0
#pragma once

// The verdict gate: a stage artifact's YAML front matter decides whether a task may leave
// its stage. See docs/gates/verdict.md.

#include <sluice/gate.h>
#include <sluice/plugin.h>
#include <sluice/pluginfactory.h>

#include <QObject>
#include <QString>
#include <QStringList>
#include <QVariantMap>

#include <memory>

namespace Sluice {
namespace Gates {

/// The checked settings of one verdict gate instance.
struct VerdictRule {
    QString artifact;      ///< Path pattern relative to the worktree, placeholders unexpanded.
    QString key;           ///< Top-level front-matter key that holds the verdict.
    QStringList passValues;
    QStringList failValues;
    Qt::CaseSensitivity valueCase = Qt::CaseInsensitive;

    /// Checks settings the host validated against verdict.json (defaults filled).
    [[nodiscard]] static Result<VerdictRule> fromSettings(const QVariantMap &settings);
};

/// Reads the artifact(s) on the thread pool and judges their front matter.
class VerdictGate final : public Gate
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    VerdictGate(const PluginContext &context, VerdictRule rule, QObject *parent = nullptr);
    ~VerdictGate() override;

    [[nodiscard]] std::unique_ptr<GateRun> evaluate(const GateRequest &request) override;

private:
    VerdictRule m_rule;
};

/// The factory the plugin library exports.
SLUICE_PLUGIN_CLASS_WITH_JSON(VerdictGate, "verdict.json")

} // namespace Gates
} // namespace Sluice
