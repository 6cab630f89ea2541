// SPDX-License-Identifier: Apache-2.0
#pragma once

// Validates YAML documents against a ConfigSchema, the same way for the host file, project
// files and plugin settings: types, required keys, defaults, unknown keys and inline
// secrets, every problem with FILE:LINE:COLUMN and the key.

#include "config/diagnostic.h"

#include <sluice/configschema.h>
#include <sluice/error.h>

#include <yaml-cpp/yaml.h>

#include <QSet>
#include <QVariant>

#include <optional>

namespace Sluice {

/// Bounds on what a configuration file may cost to read, validate and report.
struct YamlLimits {
    static constexpr qint64 maxFileBytes = 4 * 1024 * 1024;
    /// Scalar bytes of the document with every alias expanded.
    static constexpr quint64 maxExpandedBytes = 8 * 1024 * 1024;
    /// Nodes (scalars, lists, mappings) of the document with every alias expanded.
    static constexpr quint64 maxExpandedNodes = 200000;
    /// Longest mapping key.
    static constexpr quint64 maxKeyBytes = 1024;
    /// Problems listed per file; one more line says that there were more.
    static constexpr int maxDiagnosticsPerFile = 100;
    /// Characters of a key or a quoted value shown in one message.
    static constexpr int maxShownBytes = 200;
};

/**
 * Reads a configuration file: a regular file (symbolic links followed) of at most
 * YamlLimits::maxFileBytes; never more than that plus one byte is read. FIFOs, devices,
 * directories, dangling links and link loops are refused with a message saying which.
 */
[[nodiscard]] Result<QByteArray> readConfigFile(const QString &path);
/// Reads and parses a YAML file; a syntax error becomes a diagnostic with its position.
[[nodiscard]] std::optional<YAML::Node> loadYamlFile(const QString &path, Diagnostics &diagnostics);
/**
 * Parses YAML text attributed to @p fileName. Refused with a FILE:LINE:COLUMN diagnostic: a
 * NUL byte, a document whose aliases expand past YamlLimits, a recursive alias, a key longer
 * than YamlLimits::maxKeyBytes.
 */
[[nodiscard]] std::optional<YAML::Node> parseYaml(const QByteArray &text, const QString &fileName,
                                                                Diagnostics &diagnostics);

class YamlValidator
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
    int m_reported = 0;
};

/// @p text, cut after @p maxCharacters with a note of its length.
[[nodiscard]] QString elided(const QString &text, int maxCharacters);

/// The text of a scalar node, as UTF-8.
[[nodiscard]] QString yamlScalar(const YAML::Node &node);

/// The value under @p key of mapping @p node (an undefined node when there is none), found by
/// iteration so that nothing is inserted into a node read from a file.
[[nodiscard]] YAML::Node yamlChild(const YAML::Node &node, const char *key);

} // namespace Sluice
