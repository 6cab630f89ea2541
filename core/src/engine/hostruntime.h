// SPDX-License-Identifier: Apache-2.0
#pragma once

// Everything a process needs to run the pipeline: the host file, the plugins, the store,
// the engine and the loaded projects. `sluice serve` and the CLI commands that act on
// tasks build one of these, so an operator command goes through the same advance path as
// the daemon.

#include "config/hostconfig.h"
#include "engine/engine.h"
#include "pluginhost/pluginloader.h"
#include "store/store.h"

#include <QHash>

#include <memory>

namespace Sluice {

class SLUICE_EXPORT HostRuntime
{
public:
    ~HostRuntime();

    /**
     * Loads the host file, discovers and loads plugins, opens (and migrates) the store and
     * creates the engine. Problems with the host file are fatal; problems with plugins are
     * reported in @p diagnostics and the rest goes on. Projects are not loaded yet.
     */
    /// How the store is opened: migrated (the daemon, commands that move tasks) or only read.
    enum class StoreAccess { Migrate, ReadExisting };
    [[nodiscard]] static Result<std::unique_ptr<HostRuntime>> open(const QString &configDir, Diagnostics &diagnostics,
                                                                   StoreAccess access = StoreAccess::Migrate);

    /**
     * Loads or reloads every project file. A valid file replaces the running version of its
     * project; an invalid one is refused and its running version (if any) stays. Returns the
     * problems found, per file.
     */
    Diagnostics loadProjects();
    /**
     * Reads every secret the project files reference — the settings their plugins' schemas
     * mark secret, of every valid project file — so that redaction knows the values, without
     * loading the projects (the CLI commands that only read the store). A reference that
     * cannot be read is skipped silently: the instance that uses it reports that when it
     * starts. loadProjects() does the same for the projects it loads. Returns how many values
     * were read.
     */
    int registerProjectSecrets();

    [[nodiscard]] const HostConfig &config() const { return m_config; }
    [[nodiscard]] PluginCatalog &catalog() { return *m_catalog; }
    [[nodiscard]] Store &store() { return *m_store; }
    [[nodiscard]] Engine &engine() { return *m_engine; }

private:
    HostRuntime() = default;
    int registerSecretsOf(const ProjectConfig &project);
    HostConfig m_config;
    std::unique_ptr<PluginCatalog> m_catalog;
    std::unique_ptr<Store> m_store;
    std::unique_ptr<Engine> m_engine;
    QHash<QString, QString> m_projectByFile; // file → id of the version that runs
};

/// Task, stage, jobs, every gate verdict and the history: "why is this task waiting".
[[nodiscard]] SLUICE_EXPORT Result<QJsonObject> taskReport(Engine &engine, qint64 taskId);
/// Job counts, running and recent jobs.
[[nodiscard]] SLUICE_EXPORT Result<QJsonObject> queueReport(Engine &engine, const HostConfig &config);
/// Active, blocked and recent tasks per project.
[[nodiscard]] SLUICE_EXPORT Result<QJsonObject> statusReport(Engine &engine);
/// statusReport() with the nodes (nodesReport()).
[[nodiscard]] SLUICE_EXPORT Result<QJsonObject> statusReport(Engine &engine, const HostConfig &config);
/**
 * Every node the store knows: name, host, pid, state ("up", "stopped", "silent" — no beat
 * for reaper.node_timeout —, "taken-over"), heartbeat age by the store's clock, jobs running
 * under its name, generation, start, and who took it over when.
 */
[[nodiscard]] SLUICE_EXPORT Result<QJsonArray> nodesReport(Engine &engine, const HostConfig &config);

} // namespace Sluice
