// SPDX-License-Identifier: Apache-2.0
#pragma once

// Validates YAML documents against a ConfigSchema, the same way for the host file, project
// files and plugin settings: types, required keys, defaults, unknown keys and inline
// secrets, every problem with FILE:LINE:COLUMN and the key.

#include "config/diagnostic.h"

#include <sluice/configschema.h>

#include <yaml-cpp/yaml.h>

#include <QSet>
#include <QVariant>

#include <optional>

namespace Sluice {

/// Reads and parses a YAML file; a syntax error becomes a diagnostic with its position.
[[nodiscard]] SLUICE_EXPORT std::optional<YAML::Node> loadYamlFile(const QString &path, Diagnostics &diagnostics);
/// Parses YAML text attributed to @p fileName.
[[nodiscard]] SLUICE_EXPORT std::optional<YAML::Node> parseYaml(const QByteArray &text, const QString &fileName,
                                                                Diagnostics &diagnostics);

class SLUICE_EXPORT YamlValidator
{
public:
    /// @p file names the document in diagnostics; relative `path` values resolve against its directory.
    YamlValidator(const QString &file, Diagnostics &diagnostics);

    /**
     * Validates the mapping @p node against @p schema. Keys in @p passThrough are left to the
     * caller. Returns the validated map with defaults filled.
     */
    QVariantMap validateObject(const YAML::Node &node, const ConfigSchema &schema, const QString &path,
                               const QSet<QString> &passThrough = {});
    /// Validates one value against @p entry.
    QVariant validateValue(const YAML::Node &node, const SchemaEntry &entry, const QString &path);
    /// Defaults of @p schema, recursively (absent optional objects get theirs), paths resolved.
    [[nodiscard]] QVariantMap resolvedDefaults(const ConfigSchema &schema) const;

    /// Reports a problem at @p node's position.
    void report(const YAML::Node &node, const QString &key, const QString &message);
    /// Reports a problem at @p mark.
    void report(const YAML::Mark &mark, const QString &key, const QString &message);

    [[nodiscard]] const QString &file() const { return m_file; }

private:
    /// The default of @p entry, with relative `path` defaults resolved like written values.
    [[nodiscard]] QVariant resolvedDefault(const SchemaEntry &entry) const;

    QString m_file;
    Diagnostics &m_diagnostics;
};

/// The text of a scalar node, as UTF-8.
[[nodiscard]] SLUICE_EXPORT QString yamlScalar(const YAML::Node &node);

} // namespace Sluice
