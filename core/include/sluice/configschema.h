// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file configschema.h
 * The schema language for configuration: plugin settings, the host file and project files
 * are all described by it and validated alike.
 *
 * A schema is a JSON object mapping key names to entries:
 *
 * @code
 * {
 *   "artifact": { "type": "string", "required": true, "description": "..." },
 *   "timeout":  { "type": "duration", "default": "30s" },
 *   "token":    { "type": "string", "secret": true },
 *   "passing":  { "type": "list", "items": { "type": "string" }, "default": ["APPROVED"] },
 *   "method":   { "type": "string", "enum": ["merge", "rebase", "squash"], "default": "merge" }
 * }
 * @endcode
 *
 * Types: string, integer, number, boolean, duration ("90s", "5m", "2h", "1d", "250ms"),
 * path, list (with "items"), object (with "keys", a nested schema) and map (free keys, with
 * "values"). Entry attributes: type, description, required, default, secret (strings
 * only: the value must be a reference {file: PATH} or {credential: NAME}, never inline),
 * enum (strings), minimum and maximum (integers, numbers, durations).
 * Anything else in a schema is an error, so typos in schemas fail as loudly as in configs.
 */

#include <sluice/error.h>

#include <QJsonObject>
#include <QList>
#include <QString>
#include <QStringList>
#include <QVariant>

#include <memory>
#include <optional>
#include <utility>

namespace Sluice {

class ConfigSchema;

/// One entry of a schema: the rules for one key.
class SLUICE_EXPORT SchemaEntry
{
public:
    enum class Type { String, Integer, Number, Boolean, Duration, Path, List, Object, Map };

    SchemaEntry();
    SchemaEntry(const SchemaEntry &other);
    SchemaEntry &operator=(const SchemaEntry &other);
    ~SchemaEntry();

    [[nodiscard]] Type type() const;
    [[nodiscard]] QString description() const;
    [[nodiscard]] bool isRequired() const;
    [[nodiscard]] bool isSecret() const;
    /// The default in validated form (see PluginContext::settings()); invalid when none.
    [[nodiscard]] QVariant defaultValue() const;
    [[nodiscard]] QStringList allowedValues() const;
    [[nodiscard]] std::optional<double> minimum() const;
    [[nodiscard]] std::optional<double> maximum() const;
    /// For lists: the entry every item follows. For maps: the entry every value follows.
    [[nodiscard]] const SchemaEntry *element() const;
    /// For objects: the nested schema.
    [[nodiscard]] const ConfigSchema *keys() const;

    /// "string", "integer", ...
    [[nodiscard]] static QString typeName(Type type);

private:
    friend class ConfigSchema;
    static Result<SchemaEntry> parse(const QJsonValue &json, const QString &path);
    struct Data;
    std::unique_ptr<Data> d;
};

/// An ordered set of schema entries.
class SLUICE_EXPORT ConfigSchema
{
public:
    ConfigSchema();
    ConfigSchema(const ConfigSchema &other);
    ConfigSchema &operator=(const ConfigSchema &other);
    ~ConfigSchema();

    /**
     * Parses a schema. Errors name the offending entry by its dotted path
     * ("config.passing.items.type: unknown type 'strng'").
     */
    [[nodiscard]] static Result<ConfigSchema> fromJson(const QJsonObject &schema,
                                                       const QString &path = QStringLiteral("config"));

    [[nodiscard]] bool isEmpty() const;
    [[nodiscard]] QStringList keyNames() const;
    [[nodiscard]] const SchemaEntry *entry(const QString &key) const;
    /// Entries sorted by key name.
    [[nodiscard]] const QList<std::pair<QString, SchemaEntry>> &entries() const;

    /// A JSON form for documentation and `sluice plugins --json`.
    [[nodiscard]] QJsonObject toJson() const;

private:
    QList<std::pair<QString, SchemaEntry>> m_entries;
    QJsonObject m_source;
};

/**
 * Parses a duration: an integer followed by ms, s, m, h or d ("90s"), or a plain integer
 * number of seconds. Returns milliseconds.
 */
[[nodiscard]] SLUICE_EXPORT std::optional<qint64> parseDuration(const QString &text);

} // namespace Sluice
