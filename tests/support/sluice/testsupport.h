// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file testsupport.h
 * What plugin tests need: a temporary configuration directory, a temporary store, a fake
 * project, loading a plugin library by path exactly as the host does, settings validated
 * from YAML exactly as the host does, and running a gate with the host's deadline.
 *
 * Link Sluice::TestSupport (installed with the SDK) or, in this tree, sluice-testsupport.
 */

#include <sluice/gate.h>
#include <sluice/pluginmetadata.h>
#include <sluice/repository.h>
#include <sluice/services.h>

#include <QTemporaryDir>

#include <chrono>
#include <memory>

#if defined(SLUICE_TESTSUPPORT_BUILDING)
#  define SLUICE_TESTSUPPORT_EXPORT Q_DECL_EXPORT
#else
#  define SLUICE_TESTSUPPORT_EXPORT Q_DECL_IMPORT
#endif

namespace Sluice::Test {

/// A configuration directory (sluice.yaml + projects/) that disappears with the object.
class SLUICE_TESTSUPPORT_EXPORT TemporaryConfig
{
public:
    TemporaryConfig();
    [[nodiscard]] bool isValid() const { return m_dir.isValid(); }
    [[nodiscard]] QString path() const { return m_dir.path(); }
    /// Writes sluice.yaml; returns its path.
    QString writeHostFile(const QByteArray &yaml);
    /// Writes projects/@p name.yaml; returns its path.
    QString writeProject(const QString &name, const QByteArray &yaml);
    /// Writes any file below the directory (parents created); returns its path.
    QString writeFile(const QString &relativePath, const QByteArray &content);

private:
    QTemporaryDir m_dir;
};

/// A temporary plugin directory holding copies of chosen plugin files.
class SLUICE_TESTSUPPORT_EXPORT PluginDirectory
{
public:
    PluginDirectory();
    [[nodiscard]] QString path() const { return m_dir.path(); }
    /// Copies @p sourceDir/@p name.so (or @p name as given) in; returns the copy's path.
    QString add(const QString &sourceDir, const QString &name);

private:
    QTemporaryDir m_dir;
};

/// A real SQLite store in a temporary directory, migrated (the host's store; plugins reach it
/// through the state and lease services it hands out).
class SLUICE_TESTSUPPORT_EXPORT TemporaryStore
{
public:
    TemporaryStore();
    ~TemporaryStore();
    /// False if the store could not be opened; error() says why.
    [[nodiscard]] bool isValid() const;
    [[nodiscard]] QString error() const { return m_error; }
    [[nodiscard]] QString databasePath() const;
    /// A state store scoped like the host scopes it for (project, instance).
    [[nodiscard]] std::unique_ptr<StateStore> state(const QString &projectId, const QString &instance);
    /// The host's lease service on this store, holding for tasks as a process on @p node.
    [[nodiscard]] std::unique_ptr<LeaseService> leases(const QString &node = QStringLiteral("test-node"));

private:
    friend struct TemporaryStoreAccess; // tests in the Sluice tree: testsupport_host.h
    struct Data;
    QTemporaryDir m_dir;
    std::unique_ptr<Data> d;
    QString m_error;
};

/// A plugin library loaded as the host loads it.
struct SLUICE_TESTSUPPORT_EXPORT LoadedPlugin {
    QString path;
    PluginMetaData metaData;
    PluginFactory *factory = nullptr;
};

/// Checks the metadata (IID, API version, kind, schema), then loads @p path.
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT Result<LoadedPlugin> loadPlugin(const QString &path);

/// Validates settings YAML against the plugin's schema as the host does; the error lists every problem.
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT Result<QVariantMap> validateSettings(const PluginMetaData &metaData,
                                                                             const QByteArray &yaml);

/// A project to hand to instances: id "test-project", stages development → review → done.
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT ProjectInfo fakeProject(const QString &id = QStringLiteral("test-project"));

/// Validates @p settingsYaml and creates an instance named after the plugin id.
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT Result<std::unique_ptr<PluginInstance>>
createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml, const ProjectInfo &project = fakeProject(),
               StateStore *state = nullptr);

/// As above, with @p forge as the project's forge connector in the instance's context.
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT Result<std::unique_ptr<PluginInstance>>
createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml, const ProjectInfo &project,
               StateStore *state, Forge *forge);

/// As above, with @p leases as the instance's lease service (see TemporaryStore::leases()).
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT Result<std::unique_ptr<PluginInstance>>
createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml, const ProjectInfo &project,
               StateStore *state, Forge *forge, LeaseService *leases);

/// As above, with @p repository as the project's repository (PluginContext::repository()).
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT Result<std::unique_ptr<PluginInstance>>
createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml, const ProjectInfo &project,
               StateStore *state, Forge *forge, LeaseService *leases, std::shared_ptr<RepositoryService> repository);

/**
 * The git repository at @p path as the host hands it to plugins (PluginContext::repository()):
 * @p targetBranch is the target, @p remote the remote that is the forge (empty, or a remote the
 * repository does not have: the repository is its own forge), scratch space per task under
 * @p stateDir.
 */
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT std::shared_ptr<RepositoryService>
hostRepository(const QString &path, const QString &targetBranch, const QString &remote, const QString &stateDir,
               const QString &projectId = QStringLiteral("project"));

/// What one git command did.
struct SLUICE_TESTSUPPORT_EXPORT GitOut {
    int code = -1; ///< Exit code; -1 when git crashed or did not finish in time.
    QString out;   ///< Standard output, trimmed.
    QString err;   ///< Standard error, trimmed.
};

/// Runs git with @p args in @p dir (empty: the current directory) as a test user would, with a
/// fixed author and committer identity, and waits for it (at most a minute).
SLUICE_TESTSUPPORT_EXPORT GitOut runGit(const QStringList &args, const QString &dir = QString());

/// Evaluates @p gate with the host's deadline enforcement and waits for the verdict.
[[nodiscard]] SLUICE_TESTSUPPORT_EXPORT GateVerdict
evaluateGate(Gate &gate, const GateRequest &request, std::chrono::milliseconds timeout = std::chrono::seconds(30));

} // namespace Sluice::Test
