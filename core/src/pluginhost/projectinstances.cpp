// SPDX-License-Identifier: Apache-2.0
#include "pluginhost/projectinstances.h"

#include "store/leasestore.h"

#include "pluginhost/pluginloader.h"
#include "repository/projectrepository.h"
#include "store/store.h"

#include <sluice/agentlauncher.h>
#include <sluice/forge.h>
#include <sluice/tracker.h>

namespace Sluice {

ProjectInstances::ProjectInstances() = default;
ProjectInstances::~ProjectInstances()
{
    shutdown();
}
ProjectInstances::ProjectInstances(ProjectInstances &&other) noexcept
    : m_entries(std::move(other.m_entries))
    , m_initialized(std::exchange(other.m_initialized, 0))
{
}
ProjectInstances &ProjectInstances::operator=(ProjectInstances &&other) noexcept
{
    if (this != &other) {
        shutdown();
        m_entries = std::move(other.m_entries);
        m_initialized = std::exchange(other.m_initialized, 0);
    }
    return *this;
}

namespace {
// Instances other instances are handed through their context: created first.
bool isService(PluginKind kind)
{
    return kind == PluginKind::Forge || kind == PluginKind::Tracker || kind == PluginKind::AgentLauncher;
}
} // namespace

std::optional<ProjectInstances> ProjectInstances::create(const ProjectConfig &project, const PluginCatalog &catalog,
                                                         Store *store, Diagnostics &diagnostics, const QString &node,
                                                         const QString &stateDir)
{
    ProjectInstances out;
    if (!project.repositoryPath.isEmpty())
        out.m_repository = std::make_shared<HostRepositoryService>(ProjectRepository(project, stateDir));
    const int before = int(diagnostics.size());
    QList<const InstanceConfig *> ordered;
    for (const InstanceConfig &i : project.instances) {
        if (isService(i.kind))
            ordered.append(&i);
    }
    for (const InstanceConfig &i : project.instances) {
        if (!isService(i.kind))
            ordered.append(&i);
    }

    Forge *forge = nullptr;
    Tracker *tracker = nullptr;
    AgentLauncher *launcher = nullptr;
    for (const InstanceConfig *config : std::as_const(ordered)) {
        auto report = [&](const QString &message) {
            diagnostics.append(Diagnostic{project.file, config->position.line, config->position.column,
                                          QStringLiteral("instances.%1").arg(config->name), message});
        };
        const PluginRecord *record = catalog.plugin(config->pluginId);
        if (!record || record->state != PluginRecord::State::Loaded) {
            report(QStringLiteral("plugin '%1' is not loaded").arg(config->pluginId));
            continue;
        }
        PluginContext context;
        context.setInstanceName(config->name);
        context.setPluginId(config->pluginId);
        context.setProject(project.info());
        context.setSettings(config->settings);
        context.setLogging(pluginLoggingCategory(config->kind, config->pluginId));
        context.setForge(forge);
        context.setTracker(tracker);
        context.setAgentLauncher(launcher);
        context.setRepository(out.m_repository);
        Entry entry;
        entry.name = config->name;
        if (store) {
            entry.state = store->pluginState(project.id, config->name);
            context.setState(entry.state.get());
            if (!node.isEmpty()) {
                entry.leases = std::make_unique<StoreLeaseService>(*store, node);
                context.setLeases(entry.leases.get());
            }
        }
        auto created = record->factory->create(context);
        if (!created) {
            report(QStringLiteral("plugin '%1' refused its settings: %2").arg(config->pluginId, created.error().message));
            continue;
        }
        if (!*created) {
            report(QStringLiteral("plugin '%1' created no instance").arg(config->pluginId));
            continue;
        }
        if ((*created)->kind() != config->kind) {
            report(QStringLiteral("plugin '%1' declares kind %2 but created a %3")
                       .arg(config->pluginId, pluginKindName(config->kind), pluginKindName((*created)->kind())));
            continue;
        }
        entry.instance = std::move(*created);
        if (config->name == project.forgeInstance)
            forge = qobject_cast<Forge *>(entry.instance.get());
        if (config->name == project.trackerInstance)
            tracker = qobject_cast<Tracker *>(entry.instance.get());
        if (config->name == project.agentLauncherInstance)
            launcher = qobject_cast<AgentLauncher *>(entry.instance.get());
        out.m_entries.push_back(std::move(entry));
    }
    if (diagnostics.size() != before)
        return std::nullopt;
    return out;
}

Result<void> ProjectInstances::initialize()
{
    for (; m_initialized < int(m_entries.size()); ++m_initialized) {
        Entry &e = m_entries[std::size_t(m_initialized)];
        if (auto r = e.instance->initialize(); !r) {
            const Error error = r.error();
            shutdown();
            return fail(error.code, QStringLiteral("instance '%1': %2").arg(e.name, error.message), error.detail);
        }
    }
    return {};
}

void ProjectInstances::shutdown()
{
    while (m_initialized > 0) {
        --m_initialized;
        m_entries[std::size_t(m_initialized)].instance->shutdown();
    }
}

PluginInstance *ProjectInstances::instance(const QString &name) const
{
    for (const Entry &e : m_entries) {
        if (e.name == name)
            return e.instance.get();
    }
    return nullptr;
}

QStringList ProjectInstances::names() const
{
    QStringList out;
    for (const Entry &e : m_entries)
        out.append(e.name);
    return out;
}

} // namespace Sluice
