// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file pluginmetadata.h
 * The metadata a plugin embeds with Q_PLUGIN_METADATA, parsed and checked.
 *
 * @code
 * {
 *   "id": "licence",                 // [a-z0-9][a-z0-9-]*, unique on the host
 *   "kind": "gate",                  // see pluginKindName()
 *   "version": "1.2.0",              // MAJOR.MINOR.PATCH of the plugin itself
 *   "apiVersion": "2.0",             // SDK MAJOR.MINOR it was built against
 *   "description": "Checks licence headers",
 *   "dependencies": ["gitea"],       // plugin ids that must load first
 *   "config": { ... }                // ConfigSchema of its settings
 * }
 * @endcode
 */

#include <sluice/configschema.h>
#include <sluice/plugin.h>

#include <QJsonObject>
#include <QStringList>
#include <QVersionNumber>

namespace Sluice {

/// Checked plugin metadata.
class SLUICE_EXPORT PluginMetaData
{
public:
    /**
     * Checks the object QPluginLoader::metaData() returns: the IID, then the "MetaData"
     * object. Does not load the library. Errors say which key is wrong.
     */
    [[nodiscard]] static Result<PluginMetaData> fromLoaderMetaData(const QJsonObject &loaderMetaData);
    /// Checks the plugin's own metadata object (the content of its JSON file).
    [[nodiscard]] static Result<PluginMetaData> fromJson(const QJsonObject &metaData);

    [[nodiscard]] QString id() const { return m_id; }
    [[nodiscard]] PluginKind kind() const { return m_kind; }
    [[nodiscard]] QVersionNumber version() const { return m_version; }
    [[nodiscard]] QVersionNumber apiVersion() const { return m_apiVersion; }
    [[nodiscard]] QString description() const { return m_description; }
    [[nodiscard]] QStringList dependencies() const { return m_dependencies; }
    [[nodiscard]] const ConfigSchema &configSchema() const { return m_schema; }
    [[nodiscard]] QJsonObject raw() const { return m_raw; }

    /// True when a plugin built against @p apiVersion can run on this host.
    [[nodiscard]] static bool isApiCompatible(const QVersionNumber &apiVersion);

private:
    QString m_id;
    PluginKind m_kind = PluginKind::Gate;
    QVersionNumber m_version;
    QVersionNumber m_apiVersion;
    QString m_description;
    QStringList m_dependencies;
    ConfigSchema m_schema;
    QJsonObject m_raw;
};

} // namespace Sluice
