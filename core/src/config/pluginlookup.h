// SPDX-License-Identifier: Apache-2.0
#pragma once

// What loading a project file needs to know of the plugins its instances name: whether each
// is there, and if so its kind and settings schema. The plugin host's catalog answers it;
// the interface lives here so that the configuration, the lowest layer, does not include the
// plugin host, which builds on it (docs/architecture.md, "Layering").

#include <sluice/pluginmetadata.h>

#include <QString>
#include <QStringList>

namespace Sluice {

/// What the plugins found at startup say of one plugin id.
struct PluginAvailability {
    enum class State {
        Unknown,  ///< No plugin file declares this id.
        Rejected, ///< A file declares it, but was refused before loading (reason says why).
        Failed,   ///< Accepted, but loading it failed (reason says why).
        Usable,   ///< Accepted (resolved or loaded): metaData is set.
    };
    State state = State::Unknown;
    QString reason;
    const PluginMetaData *metaData = nullptr; ///< Usable: owned by the lookup, valid while it lives.
};

class PluginLookup
{
public:
    virtual ~PluginLookup() = default;
    /// What is known of the plugin with @p id.
    [[nodiscard]] virtual PluginAvailability availability(const QString &id) const = 0;
    /// The directories searched for plugins, in order (named when a plugin is unknown).
    [[nodiscard]] virtual QStringList searchDirectories() const = 0;

protected:
    PluginLookup() = default;
    PluginLookup(const PluginLookup &) = default;
    PluginLookup &operator=(const PluginLookup &) = default;
};

} // namespace Sluice
