// SPDX-License-Identifier: Apache-2.0
#pragma once

// The host's side of Sluice::PluginContext: what a context holds and how the host fills it
// in. Not installed and not part of the SDK: plugins only read a context (sluice/plugin.h).
// Everything here is inline, so the SDK library exports no setter; what includes this header
// (the host, TestSupport, tests that create plugin classes directly) writes the fields itself.
// libsluice-core and its includers are built from one tree, so they agree on the layout.

#include <sluice/plugin.h>

#include <QLoggingCategory>
#include <QVariantMap>

#include <memory>

namespace Sluice {

struct PluginContext::Data {
    QString instanceName;
    QString pluginId;
    ProjectInfo project;
    QVariantMap settings;
    const QLoggingCategory *logging = nullptr;
    const Clock *clock = nullptr;
    StateStore *state = nullptr;
    LeaseService *leases = nullptr;
    std::shared_ptr<RepositoryService> repository;
    Forge *forge = nullptr;
    Tracker *tracker = nullptr;
    AgentLauncher *agentLauncher = nullptr;
};

/// Fills in the PluginContext it was made for; the context must outlive the writer.
class PluginContextWriter
{
public:
    explicit PluginContextWriter(PluginContext &context)
        : d(*context.d)
    {
    }

    void setInstanceName(const QString &name) { d.instanceName = name; }
    void setPluginId(const QString &id) { d.pluginId = id; }
    void setProject(const ProjectInfo &project) { d.project = project; }
    void setSettings(const QVariantMap &settings) { d.settings = settings; }
    /// The category the plugin logs to; must outlive every copy of the context.
    void setLogging(const QLoggingCategory *category) { d.logging = category; }
    void setClock(const Clock *clock) { d.clock = clock; }
    void setState(StateStore *store) { d.state = store; }
    void setLeases(LeaseService *leases) { d.leases = leases; }
    void setForge(Forge *forge) { d.forge = forge; }
    void setTracker(Tracker *tracker) { d.tracker = tracker; }
    void setAgentLauncher(AgentLauncher *launcher) { d.agentLauncher = launcher; }
    void setRepository(std::shared_ptr<RepositoryService> repository) { d.repository = std::move(repository); }

private:
    PluginContext::Data &d;
};

} // namespace Sluice
