// SPDX-License-Identifier: Apache-2.0
#include <sluice/testsupport.h>
#include <sluice/forge.h>

#include "config/yamlvalidator.h"
#include "engine/gateevaluation.h"
#include "pluginhost/pluginloader.h"
#include "repository/projectrepository.h"
#include "store/leasestore.h"
#include "store/store.h"

#include <QDir>
#include <QEventLoop>
#include <QFile>
#include <QProcess>
#include <QFileInfo>
#include <QPluginLoader>

namespace Sluice::Test {

namespace {
QString writeAt(const QString &path, const QByteArray &content)
{
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(content) != content.size())
        qFatal("testsupport: cannot write %s", qPrintable(path));
    return path;
}
} // namespace

TemporaryConfig::TemporaryConfig() = default;

QString TemporaryConfig::writeHostFile(const QByteArray &yaml)
{
    return writeAt(m_dir.filePath(QStringLiteral("sluice.yaml")), yaml);
}

QString TemporaryConfig::writeProject(const QString &name, const QByteArray &yaml)
{
    return writeAt(m_dir.filePath(QStringLiteral("projects/%1.yaml").arg(name)), yaml);
}

QString TemporaryConfig::writeFile(const QString &relativePath, const QByteArray &content)
{
    return writeAt(m_dir.filePath(relativePath), content);
}

PluginDirectory::PluginDirectory()
{
    // QTemporaryDir creates 0700; plugin directories are checked for group/other write only.
    QFile::setPermissions(m_dir.path(), QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner
                                            | QFileDevice::ReadGroup | QFileDevice::ExeGroup
                                            | QFileDevice::ReadOther | QFileDevice::ExeOther);
}

QString PluginDirectory::add(const QString &sourceDir, const QString &name)
{
    const QString file = name.endsWith(QLatin1String(".so")) ? name : name + QStringLiteral(".so");
    const QString target = m_dir.filePath(file);
    QFile::remove(target);
    if (!QFile::copy(QDir(sourceDir).filePath(file), target))
        qFatal("testsupport: cannot copy plugin %s from %s", qPrintable(file), qPrintable(sourceDir));
    return target;
}

TemporaryStore::TemporaryStore()
{
    StoreSettings settings;
    settings.sqlitePath = databasePath();
    auto store = Store::open(settings);
    if (store)
        m_store = std::move(*store);
    else
        m_error = store.error().toString();
}

TemporaryStore::~TemporaryStore() = default;

QString TemporaryStore::databasePath() const
{
    return m_dir.filePath(QStringLiteral("sluice.db"));
}

std::unique_ptr<StateStore> TemporaryStore::state(const QString &projectId, const QString &instance)
{
    return m_store ? m_store->pluginState(projectId, instance) : nullptr;
}

std::unique_ptr<LeaseService> TemporaryStore::leases(const QString &node)
{
    if (!m_store)
        return nullptr;
    return std::make_unique<StoreLeaseService>(*m_store, node);
}

Result<LoadedPlugin> loadPlugin(const QString &path)
{
    QPluginLoader *loader = new QPluginLoader(path); // never unloaded, like the host's
    auto meta = PluginMetaData::fromLoaderMetaData(loader->metaData());
    if (!meta) {
        const Error e = meta.error();
        delete loader;
        return fail(e.code, QStringLiteral("%1: %2").arg(path, e.message));
    }
    loader->setLoadHints(QLibrary::ResolveAllSymbolsHint);
    QObject *root = loader->instance();
    if (!root)
        return fail(ErrorCode::Io, QStringLiteral("%1: cannot load: %2").arg(path, loader->errorString()));
    auto *factory = qobject_cast<PluginFactory *>(root);
    if (!factory)
        return fail(ErrorCode::Incompatible, QStringLiteral("%1: not a Sluice::PluginFactory").arg(path));
    return LoadedPlugin{path, std::move(*meta), factory};
}

Result<QVariantMap> validateSettings(const PluginMetaData &metaData, const QByteArray &yaml)
{
    Diagnostics diagnostics;
    const QString name = QStringLiteral("<settings of %1>").arg(metaData.id());
    auto root = parseYaml(yaml.isEmpty() ? QByteArray("{}") : yaml, name, diagnostics);
    QVariantMap settings;
    if (root) {
        YamlValidator validator(QDir::current().filePath(name), diagnostics);
        settings = validator.validateObject(*root, metaData.configSchema(), QString());
    }
    if (!diagnostics.isEmpty()) {
        QStringList lines;
        for (const Diagnostic &d : std::as_const(diagnostics))
            lines.append(d.toString());
        return fail(ErrorCode::InvalidConfig, lines.join(QLatin1Char('\n')));
    }
    return settings;
}

ProjectInfo fakeProject(const QString &id)
{
    ProjectInfo p;
    p.id = id;
    p.repository = QStringLiteral("/nonexistent/%1.git").arg(id);
    p.targetBranch = QStringLiteral("main");
    p.stages = QStringList{QStringLiteral("development"), QStringLiteral("review"), QStringLiteral("done")};
    return p;
}

Result<std::unique_ptr<PluginInstance>> createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml,
                                                       const ProjectInfo &project, StateStore *state)
{
    return createInstance(plugin, settingsYaml, project, state, nullptr);
}

Result<std::unique_ptr<PluginInstance>> createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml,
                                                       const ProjectInfo &project, StateStore *state, Forge *forge)
{
    return createInstance(plugin, settingsYaml, project, state, forge, nullptr);
}

Result<std::unique_ptr<PluginInstance>> createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml,
                                                       const ProjectInfo &project, StateStore *state, Forge *forge,
                                                       LeaseService *leases)
{
    return createInstance(plugin, settingsYaml, project, state, forge, leases, nullptr);
}

std::shared_ptr<RepositoryService> hostRepository(const QString &path, const QString &targetBranch, const QString &remote,
                                                  const QString &stateDir, const QString &projectId)
{
    ProjectConfig config;
    config.id = projectId;
    config.repositoryPath = path;
    config.targetBranch = targetBranch;
    config.repositoryRemote = remote;
    return std::make_shared<HostRepositoryService>(ProjectRepository(config, stateDir));
}

Result<std::unique_ptr<PluginInstance>> createInstance(const LoadedPlugin &plugin, const QByteArray &settingsYaml,
                                                       const ProjectInfo &project, StateStore *state, Forge *forge,
                                                       LeaseService *leases, std::shared_ptr<RepositoryService> repository)
{
    auto settings = validateSettings(plugin.metaData, settingsYaml);
    if (!settings)
        return std::unexpected(settings.error());
    PluginContext context;
    context.setInstanceName(plugin.metaData.id());
    context.setPluginId(plugin.metaData.id());
    context.setProject(project);
    context.setSettings(*settings);
    context.setLogging(pluginLoggingCategory(plugin.metaData.kind(), plugin.metaData.id()));
    context.setState(state);
    context.setForge(forge);
    context.setLeases(leases);
    context.setRepository(std::move(repository));
    auto instance = plugin.factory->create(context);
    if (instance && *instance && (*instance)->kind() != plugin.metaData.kind())
        return fail(ErrorCode::Incompatible, QStringLiteral("plugin '%1' declares kind %2 but created a %3")
                                                 .arg(plugin.metaData.id(), pluginKindName(plugin.metaData.kind()),
                                                      pluginKindName((*instance)->kind())));
    return instance;
}

GateVerdict evaluateGate(Gate &gate, const GateRequest &request, std::chrono::milliseconds timeout)
{
    GateEvaluation evaluation(gate, request, timeout);
    QEventLoop loop;
    QObject::connect(&evaluation, &GateEvaluation::finished, &loop, &QEventLoop::quit);
    evaluation.start();
    if (!evaluation.isFinished())
        loop.exec();
    return evaluation.verdict();
}

GitOut runGit(const QStringList &args, const QString &dir)
{
    QProcess p;
    if (!dir.isEmpty())
        p.setWorkingDirectory(dir);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("GIT_AUTHOR_NAME"), QStringLiteral("t"));
    env.insert(QStringLiteral("GIT_AUTHOR_EMAIL"), QStringLiteral("t@example.invalid"));
    env.insert(QStringLiteral("GIT_COMMITTER_NAME"), QStringLiteral("t"));
    env.insert(QStringLiteral("GIT_COMMITTER_EMAIL"), QStringLiteral("t@example.invalid"));
    p.setProcessEnvironment(env);
    p.start(QStringLiteral("git"), args);
    const bool finished = p.waitForFinished(60000);
    if (!finished)
        p.kill();
    return GitOut{finished && p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1,
                  QString::fromUtf8(p.readAllStandardOutput()).trimmed(), QString::fromUtf8(p.readAllStandardError()).trimmed()};
}

} // namespace Sluice::Test
