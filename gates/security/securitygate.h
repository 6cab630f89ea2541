// SPDX-License-Identifier: Apache-2.0
#pragma once

// The security gate: secrets in what the task's branch adds, and a dependency audit.
// See docs/gates/security.md.

#include "dependencyaudit.h"

#include <sluice/gate.h>
#include <sluice/plugin.h>
#include <sluice/pluginfactory.h>

#include <QMutex>
#include <QObject>
#include <QString>
#include <QVariantMap>

#include <memory>

namespace Sluice {
namespace Security {
class SecretScanner;
}

namespace Gates {

/// The checked settings of one security gate instance.
struct SecuritySettings {
    bool enabled = true;
    bool secretsBlock = true;
    QString rulesFile;       ///< Absolute; empty: the built-in rules.
    QString projectRules;    ///< Relative path in the repository.
    QString ignoreFile;      ///< Relative path in the repository.
    qint64 maxFileBytes = 10 * 1024 * 1024;
    int threads = 0;
    qint64 gitTimeoutMs = 300000;
    Security::Severity threshold = Security::Severity::High;
    bool strictAudit = false;
    bool unscannableFails = false; ///< `unscannable: fail`
    QList<Security::AuditorConfig> auditors;
    QList<Security::AuditIgnore> ignores;
    QString reportName;

    [[nodiscard]] static Result<SecuritySettings> fromSettings(const QVariantMap &settings);
};

/// Compiled rule sets by their text, so a gate compiles the same rules once.
class CompiledRulesCache
{
public:
    std::shared_ptr<const Security::SecretScanner> find(const QByteArray &key);
    void insert(const QByteArray &key, std::shared_ptr<const Security::SecretScanner> scanner);

private:
    QMutex m_mutex;
    QByteArray m_key;
    std::shared_ptr<const Security::SecretScanner> m_scanner;
};

class SecurityGate final : public Gate
{
    Q_OBJECT
public:
    /// The instance for @p context, its settings read and checked (an Error refuses them).
    [[nodiscard]] static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context);

    SecurityGate(const PluginContext &context, SecuritySettings settings, QObject *parent = nullptr);
    ~SecurityGate() override;

    [[nodiscard]] std::unique_ptr<GateRun> evaluate(const GateRequest &request) override;

private:
    SecuritySettings m_settings;
    std::shared_ptr<CompiledRulesCache> m_cache;
};

SLUICE_PLUGIN_CLASS_WITH_JSON(SecurityGate, "security.json")

} // namespace Gates
} // namespace Sluice
