// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file plugin.h
 * The plugin factory every plugin library exports, the instances it creates and the
 * context an instance is created with.
 *
 * A plugin library exports exactly one factory object:
 *
 * @code
 * class LicenceGateFactory : public QObject, public Sluice::PluginFactory
 * {
 *     Q_OBJECT
 *     Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "licence.json")
 *     Q_INTERFACES(Sluice::PluginFactory)
 * public:
 *     Sluice::Result<std::unique_ptr<Sluice::PluginInstance>>
 *     create(const Sluice::PluginContext &context) override;
 * };
 * @endcode
 *
 * For the common case (create one class with the context) SLUICE_PLUGIN_CLASS_WITH_JSON
 * in sluice/pluginfactory.h writes this class in one line.
 *
 * The host reads the embedded metadata (see docs/plugins.md for its keys) and refuses an
 * incompatible plugin before it loads the library. The factory's constructor and statics
 * must do nothing: no I/O, no threads, no network.
 */

#include <sluice/error.h>
#include <sluice/project.h>

#include <QLoggingCategory>
#include <QObject>
#include <QVariantMap>

#include <memory>
#include <optional>

namespace Sluice {

class AgentLauncher;
class Clock;
class Forge;
class SecretRef;
class StateStore;
class LeaseService;
class RepositoryService;
class Tracker;

/// The kinds of plugin. A library declares its kind in metadata and creates only that kind.
enum class PluginKind {
    Stage,         ///< What happens in a stage (sluice/stage.h).
    Gate,          ///< Whether a task may leave a stage or cross an edge (sluice/gate.h).
    AgentLauncher, ///< Starts coding agents (sluice/agentlauncher.h).
    Forge,         ///< Talks to a git forge (sluice/forge.h).
    Tracker,       ///< Talks to an issue tracker (sluice/tracker.h).
    Notifier,      ///< Tells people what happened (sluice/notifier.h).
    Sweeper,       ///< Periodic maintenance (sluice/sweeper.h).
};

/// "stage", "gate", "agent-launcher", "forge", "tracker", "notifier" or "sweeper".
[[nodiscard]] SLUICE_EXPORT QString pluginKindName(PluginKind kind);
/// The kind named @p name, std::nullopt for an unknown name.
[[nodiscard]] SLUICE_EXPORT std::optional<PluginKind> pluginKindFromName(const QString &name);

/**
 * The services and settings one plugin instance is created with.
 *
 * The host builds it; plugins only read it (the SDK has no setters: a context a plugin
 * creates itself is empty, and copies keep what the host filled in). Pointers it hands out
 * stay valid for the instance's lifetime. Services a project does not configure are null.
 */
class SLUICE_EXPORT PluginContext
{
public:
    PluginContext();
    PluginContext(const PluginContext &other);
    PluginContext &operator=(const PluginContext &other);
    ~PluginContext();

    /// Name of this instance in the project file ("review-verdict").
    [[nodiscard]] QString instanceName() const;
    /// Id of the plugin ("verdict").
    [[nodiscard]] QString pluginId() const;
    /// The project this instance serves.
    [[nodiscard]] const ProjectInfo &project() const;
    /**
     * Settings validated against the plugin's schema, defaults filled. Values are QString,
     * qlonglong, double, bool, QVariantList (lists; toStringList() works for lists of
     * strings), QVariantMap (objects and maps); durations are qlonglong milliseconds; paths
     * are absolute (relative ones resolve against the project file's directory); secrets
     * are maps readable with secret().
     */
    [[nodiscard]] const QVariantMap &settings() const;
    /// The secret reference under settings key @p key (null when unset).
    [[nodiscard]] SecretRef secret(const QString &key) const;
    /// The logging category of this plugin ("sluice.gate.verdict").
    [[nodiscard]] const QLoggingCategory &logging() const;
    /// The clock to use for every time decision.
    [[nodiscard]] const Clock &clock() const;
    /// State store scoped to this instance; null when the host runs without a store.
    [[nodiscard]] StateStore *state() const;
    /// Leases shared by every node of the store, or null (a host without a store, some tests).
    [[nodiscard]] LeaseService *leases() const;
    /// The project's forge connector, or null.
    [[nodiscard]] Forge *forge() const;
    /// The project's tracker connector, or null.
    [[nodiscard]] Tracker *tracker() const;
    /// The project's agent launcher (project key `agent_launcher`), or null.
    [[nodiscard]] AgentLauncher *agentLauncher() const;
    /**
     * The project's repository as the host keeps it (repository.path), or null when the
     * project has none. Gates that judge commits use it rather than an agent's working copy.
     * Shared, so work on the thread pool may keep it while it runs.
     * @since 1.2
     */
    [[nodiscard]] std::shared_ptr<RepositoryService> repository() const;

private:
    // The host fills the context in through PluginContextWriter (a host-side header that
    // is not part of the SDK); plugins only read it.
    friend class PluginContextWriter;
    struct Data;
    std::unique_ptr<Data> d;
};

/**
 * Base of every plugin instance. One instance serves one use in one project.
 *
 * The host calls initialize() once after create() and shutdown() once before destroying
 * the instance: service instances (forge, tracker, agent launcher) first, because other
 * instances are handed them through their context, then the rest; shutdown in reverse.
 */
class SLUICE_EXPORT PluginInstance : public QObject
{
    Q_OBJECT
public:
    explicit PluginInstance(const PluginContext &context, QObject *parent = nullptr);
    ~PluginInstance() override;

    /// The kind this instance implements; must equal the kind in the plugin's metadata.
    [[nodiscard]] virtual PluginKind kind() const = 0;
    /// Prepares the instance (open files, check settings further). An Error refuses it.
    [[nodiscard]] virtual Result<void> initialize();
    /// Releases what initialize() acquired. Default: nothing.
    virtual void shutdown();

    [[nodiscard]] const PluginContext &context() const { return m_context; }

private:
    PluginContext m_context;
};

/// The one object a plugin library exports.
class SLUICE_EXPORT PluginFactory
{
public:
    virtual ~PluginFactory();
    /**
     * Creates an instance for one project use with already validated settings. Must not
     * start work; the host calls PluginInstance::initialize() next.
     */
    [[nodiscard]] virtual Result<std::unique_ptr<PluginInstance>>
    create(const PluginContext &context) = 0;
};

} // namespace Sluice

Q_DECLARE_INTERFACE(Sluice::PluginFactory, SLUICE_PLUGIN_FACTORY_IID)
