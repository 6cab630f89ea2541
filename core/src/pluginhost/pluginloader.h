// SPDX-License-Identifier: Apache-2.0
#pragma once

// Finding, checking and loading plugin libraries.
//
// Lifecycle (after Qt Creator's extension system): read metadata without loading → check
// IID, API version, kind, schema → resolve duplicates and dependencies (a cycle is an
// error) → load in dependency order. Plugins never unload while the host runs.

#include "config/pluginlookup.h"

#include "pathsecurity.h"

#include <sluice/pluginmetadata.h>

#include <QJsonObject>
#include <QList>
#include <QLoggingCategory>
#include <QString>
#include <QStringList>

#include <memory>
#include <optional>

class QPluginLoader;

namespace Sluice {

/// Where plugins are searched, in order.
struct PluginSearchPath {
    QStringList configuredDirs;  ///< From the host file.
    QStringList environmentDirs; ///< From $SLUICE_PLUGIN_PATH (colon-separated).
    QString installDir;          ///< The installed plugin directory, next to the executable.

    /// Configured dirs, then $SLUICE_PLUGIN_PATH, then the install directory.
    [[nodiscard]] static PluginSearchPath standard(const QStringList &configuredDirs);
    /// The installed plugin directory, derived from the executable's location.
    [[nodiscard]] static QString defaultInstallDir();
    /// All directories in search order, duplicates removed.
    [[nodiscard]] QStringList directories() const;
};

/// One plugin file the catalog looked at.
struct PluginRecord {
    enum class State {
        Rejected, ///< Refused before loading (unsafe file, bad metadata, duplicate, dependency).
        Resolved, ///< Accepted, not loaded yet.
        Loaded,   ///< Library loaded and factory available.
        Failed,   ///< Accepted, but loading failed (not a plugin, missing symbols, ...).
    };

    QString path;
    QString directory;
    QString declaredId;              ///< The id its metadata claims, even when the metadata was refused.
    std::optional<PluginMetaData> metaData;
    State state = State::Rejected;
    QString reason;                  ///< Why it was rejected or failed.
    PluginFactory *factory = nullptr; ///< Set when Loaded.

    [[nodiscard]] QString id() const { return metaData ? metaData->id() : QString(); }
    [[nodiscard]] static QString stateName(State state);
    [[nodiscard]] QJsonObject toJson() const;
};

/// A plugin directory that was refused as a whole.
struct RefusedDirectory {
    QString path;
    QString reason;
};

/// The plugins on the search path; project files are checked against it (PluginLookup).
class PluginCatalog : public PluginLookup
{
public:
    PluginCatalog(const PluginSearchPath &searchPath, const TrustedOwners &owners);
    ~PluginCatalog() override;
    PluginCatalog(const PluginCatalog &) = delete;
    PluginCatalog &operator=(const PluginCatalog &) = delete;

    /// Scans the search path, checks files and metadata, resolves dependencies. Loads nothing.
    void discover();
    /// Loads every resolved plugin in dependency order.
    void loadAll();

    [[nodiscard]] const QList<PluginRecord> &plugins() const { return m_records; }
    [[nodiscard]] const QList<RefusedDirectory> &refusedDirectories() const { return m_refusedDirs; }
    [[nodiscard]] QStringList searchDirectories() const override { return m_searchPath.directories(); }
    /// The accepted plugin with @p id (Resolved, Loaded or Failed), or null.
    [[nodiscard]] const PluginRecord *plugin(const QString &id) const;
    /// plugin(@p id) for a project file: usable, failed, or else rejected (the first refused
    /// file that declares @p id) or unknown.
    [[nodiscard]] PluginAvailability availability(const QString &id) const override;

private:
    void resolveDependencies();
    PluginSearchPath m_searchPath;
    TrustedOwners m_owners;
    QList<PluginRecord> m_records;
    QList<RefusedDirectory> m_refusedDirs;
    QStringList m_loadOrder; // ids
    std::vector<std::unique_ptr<QPluginLoader>> m_loaders;
};

/// The logging category of a plugin: "sluice.<kind>.<id>". Lives until the process ends.
[[nodiscard]] const QLoggingCategory *pluginLoggingCategory(PluginKind kind, const QString &id);

} // namespace Sluice
