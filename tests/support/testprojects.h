// SPDX-License-Identifier: Apache-2.0
#pragma once

// Loading a project file into an engine the way the host does, for engine-level tests.

#include "engine/engine.h"
#include "pluginhost/pluginloader.h"

#include <QDebug>

#include <memory>

namespace Sluice::Test {

/// A plugin catalog that has discovered and loaded the plugins of @p directory.
inline std::unique_ptr<PluginCatalog> loadedCatalog(const QString &directory)
{
    PluginSearchPath path;
    path.configuredDirs = QStringList{directory};
    auto catalog = std::make_unique<PluginCatalog>(path, TrustedOwners::forServiceUser(QString()));
    catalog->discover();
    catalog->loadAll();
    return catalog;
}

/// Loads @p file with the plugins of @p catalog, creates and initializes its instances on
/// @p store, and installs it in @p engine; null (diagnostics logged) when anything fails.
inline std::shared_ptr<ProjectRuntime> loadProjectInto(Engine &engine, const QString &file, const PluginCatalog &catalog,
                                                       Store *store)
{
    Diagnostics diagnostics;
    auto config = ProjectConfig::load(file, catalog, diagnostics);
    for (const Diagnostic &d : diagnostics)
        qWarning() << d.toString();
    if (!config)
        return nullptr;
    auto runtime = std::make_shared<ProjectRuntime>();
    runtime->config = *config;
    auto instances = ProjectInstances::create(runtime->config, catalog, store, diagnostics);
    if (!instances || !instances->initialize())
        return nullptr;
    runtime->instances = std::move(*instances);
    engine.setProject(runtime);
    return runtime;
}

} // namespace Sluice::Test
