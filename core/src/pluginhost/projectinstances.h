// SPDX-License-Identifier: Apache-2.0
#pragma once

// The plugin instances of one project, created by their factories with validated settings.

#include "config/projectconfig.h"

#include <sluice/plugin.h>

#include <QHash>

#include <memory>
#include <vector>

namespace Sluice {

class PluginCatalog;
class StateStore;
class Store;

class SLUICE_EXPORT ProjectInstances
{
public:
    ProjectInstances();
    ~ProjectInstances();
    ProjectInstances(ProjectInstances &&) noexcept;
    ProjectInstances &operator=(ProjectInstances &&) noexcept;

    /**
     * Creates every instance of @p project. Services (forge, tracker, agent launcher) are created first so
     * other instances can be given them. With a @p store, each instance gets its scoped state,
     * and with a @p node as well the store's leases, held by this process on that node.
     * Factory errors and kind mismatches are reported at the instance's line. A project with
     * a repository path gets its RepositoryService, with scratch space under @p stateDir.
     */
    [[nodiscard]] static std::optional<ProjectInstances> create(const ProjectConfig &project,
                                                                const PluginCatalog &catalog, Store *store,
                                                                Diagnostics &diagnostics, const QString &node = QString(),
                                                                const QString &stateDir = QString());

    /// Calls initialize() in creation order; on the first error, shuts down what was initialized.
    [[nodiscard]] Result<void> initialize();
    /// Calls shutdown() in reverse order of initialization.
    void shutdown();

    [[nodiscard]] PluginInstance *instance(const QString &name) const;
    template<typename T>
    [[nodiscard]] T *as(const QString &name) const { return qobject_cast<T *>(instance(name)); }
    [[nodiscard]] QStringList names() const;

private:
    struct Entry {
        QString name;
        std::unique_ptr<StateStore> state;
        std::unique_ptr<LeaseService> leases;
        std::unique_ptr<PluginInstance> instance;
    };
    std::vector<Entry> m_entries;
    std::shared_ptr<RepositoryService> m_repository;
    int m_initialized = 0;
};

} // namespace Sluice
