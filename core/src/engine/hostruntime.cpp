// SPDX-License-Identifier: Apache-2.0
#include "engine/hostruntime.h"

#include "config/yamlvalidator.h"

#include "logging.h"
#include "store/leasestore.h"
#include "pluginhost/projectinstances.h"

#include <QJsonArray>
#include <QLoggingCategory>

namespace Sluice {

Q_LOGGING_CATEGORY(lcHost, "sluice.core.host", QtInfoMsg)

HostRuntime::~HostRuntime()
{
    // The engine's projects hold plugin instances: they go before the store and the catalog.
    m_engine.reset();
}

Result<std::unique_ptr<HostRuntime>> HostRuntime::open(const QString &configDir, Diagnostics &diagnostics,
                                                       StoreAccess access)
{
    std::unique_ptr<HostRuntime> host(new HostRuntime);
    Diagnostics hostProblems;
    host->m_config = HostConfig::load(HostConfig::resolveConfigDir(configDir), hostProblems);
    diagnostics.append(hostProblems);
    if (!hostProblems.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("the host file %1 is invalid").arg(host->m_config.file));
    Logging::applyRules(host->m_config.loggingRules);

    host->m_catalog = std::make_unique<PluginCatalog>(PluginSearchPath::standard(host->m_config.pluginDirs),
                                                      TrustedOwners::forServiceUser(host->m_config.serviceUser));
    host->m_catalog->discover();
    host->m_catalog->loadAll();
    for (const RefusedDirectory &d : host->m_catalog->refusedDirectories())
        diagnostics.append(Diagnostic{d.path, 0, 0, QString(), QStringLiteral("plugin directory refused: %1").arg(d.reason)});
    for (const PluginRecord &r : host->m_catalog->plugins()) {
        if (r.state == PluginRecord::State::Rejected || r.state == PluginRecord::State::Failed)
            diagnostics.append(Diagnostic{r.path, 0, 0, QString(),
                                          QStringLiteral("plugin %1: %2").arg(PluginRecord::stateName(r.state), r.reason)});
    }

    auto store = access == StoreAccess::Migrate ? Store::open(host->m_config.store) : Store::openExisting(host->m_config.store);
    if (!store)
        return std::unexpected(store.error());
    host->m_store = std::move(*store);
    host->m_engine = std::make_unique<Engine>(*host->m_store, host->m_config.node, host->m_config.stateDir);
    return host;
}

namespace {
/**
 * The reaper's ceiling must exceed the longest a project's job can legitimately run (its
 * stage timeout, then the monitor's grace to finalise), or the reaper would take living work.
 */
std::optional<Diagnostic> checkReaperCeiling(const QString &file, const ProjectConfig &project, const ReaperSettings &reaper)
{
    if (!reaper.enabled || project.stageTimeoutMs + qint64(reaper.finalizeGrace.count()) < qint64(reaper.ceiling.count()))
        return std::nullopt;
    Diagnostic d{file, 0, 0, QStringLiteral("timeouts.stage"), QString()};
    Diagnostics ignored;
    if (auto root = loadYamlFile(file, ignored); root && root->IsMap()) {
        const YAML::Node timeouts = (*root)["timeouts"];
        const YAML::Node stage = timeouts && timeouts.IsMap() ? timeouts["stage"] : YAML::Node();
        const YAML::Mark mark = stage ? stage.Mark() : timeouts ? timeouts.Mark() : YAML::Mark();
        if (!stage)
            d.message = QStringLiteral("(not set, so its default) ");
        if (mark.line >= 0) {
            d.line = mark.line + 1;
            d.column = mark.column + 1;
        }
    }
    d.message = QStringLiteral("the stage timeout %4(%1 s) plus reaper.finalize_grace (%2 s) must stay below reaper.ceiling (%3 s) "
                               "of the host file, or the reaper would stop jobs that are still within their time")
                    .arg(project.stageTimeoutMs / 1000)
                    .arg(reaper.finalizeGrace.count() / 1000)
                    .arg(reaper.ceiling.count() / 1000)
                    .arg(d.message);
    return d;
}
} // namespace

namespace {
// The secret references under @p schema in @p settings, nested objects, lists and maps included.
void collectSecretRefs(const ConfigSchema &schema, const QVariantMap &settings, QList<SecretRef> &out);

void collectSecretRefs(const SchemaEntry &entry, const QVariant &value, QList<SecretRef> &out)
{
    if (!value.isValid())
        return;
    if (entry.isSecret()) {
        const SecretRef ref = SecretRef::fromVariant(value);
        if (!ref.isNull())
            out.append(ref);
        return;
    }
    switch (entry.type()) {
    case SchemaEntry::Type::Object:
        if (entry.keys())
            collectSecretRefs(*entry.keys(), value.toMap(), out);
        break;
    case SchemaEntry::Type::List:
        if (entry.element()) {
            for (const QVariant &item : value.toList())
                collectSecretRefs(*entry.element(), item, out);
        }
        break;
    case SchemaEntry::Type::Map:
        if (entry.element()) {
            const QVariantMap map = value.toMap();
            for (auto it = map.cbegin(); it != map.cend(); ++it)
                collectSecretRefs(*entry.element(), it.value(), out);
        }
        break;
    default:
        break;
    }
}

void collectSecretRefs(const ConfigSchema &schema, const QVariantMap &settings, QList<SecretRef> &out)
{
    for (const auto &[key, entry] : schema.entries())
        collectSecretRefs(entry, settings.value(key), out);
}
} // namespace

int HostRuntime::registerSecretsOf(const ProjectConfig &project)
{
    int read = 0;
    for (const InstanceConfig &instance : project.instances) {
        const PluginRecord *plugin = m_catalog->plugin(instance.pluginId);
        if (!plugin || !plugin->metaData)
            continue;
        QList<SecretRef> refs;
        collectSecretRefs(plugin->metaData->configSchema(), instance.settings, refs);
        for (const SecretRef &ref : std::as_const(refs)) {
            // Reading registers the value for redaction; the value itself is not kept.
            if (ref.read())
                ++read;
        }
    }
    return read;
}

int HostRuntime::registerProjectSecrets()
{
    int read = 0;
    Diagnostics listing; // reported by loadProjects(); here only the readable files count
    const ProjectSet set = ProjectSet::load(m_config.projectFiles(listing), *m_catalog);
    for (const ProjectConfig *project : set.validProjects())
        read += registerSecretsOf(*project);
    return read;
}

Diagnostics HostRuntime::loadProjects()
{
    Diagnostics all;
    const QStringList files = m_config.projectFiles(all);
    // A directory that cannot be listed says nothing about which files are gone.
    const bool listed = all.isEmpty();
    for (const Diagnostic &d : std::as_const(all))
        qCWarning(lcHost).noquote() << d.toString() << "- the running projects keep running";
    ProjectSet set = ProjectSet::load(files, *m_catalog);
    QSet<QString> present;
    for (ProjectSet::Entry &entry : set.entries) {
        present.insert(entry.file);
        // Every secret the file references is known to redaction before anything of the
        // project runs, also one a plugin would read only later.
        if (entry.project)
            registerSecretsOf(*entry.project);
        if (entry.project) {
            if (auto tooLong = checkReaperCeiling(entry.file, *entry.project, m_config.reaper)) {
                entry.diagnostics.append(*tooLong);
                entry.project.reset();
            }
        }
        if (entry.project) {
            auto runtime = std::make_shared<ProjectRuntime>();
            runtime->config = *entry.project;
            auto instances = ProjectInstances::create(runtime->config, *m_catalog, m_store.get(), entry.diagnostics, m_config.node,
                                                      m_config.stateDir);
            if (instances) {
                runtime->instances = std::move(*instances);
                if (auto ready = runtime->instances.initialize(); !ready) {
                    entry.diagnostics.append(Diagnostic{entry.file, 0, 0, QString(), ready.error().toString()});
                } else {
                    const QString previous = m_projectByFile.value(entry.file);
                    if (!previous.isEmpty() && previous != runtime->config.id) {
                        m_engine->removeProject(previous);
                        qCInfo(lcHost).noquote() << "unloaded project" << previous << "-" << entry.file
                                                 << "now declares project" << runtime->config.id;
                    }
                    m_engine->setProject(runtime);
                    m_projectByFile.insert(entry.file, runtime->config.id);
                    qCInfo(lcHost).noquote() << (previous.isEmpty() ? "loaded project" : "reloaded project") << runtime->config.id
                                             << "from" << entry.file;
                }
            }
        }
        if (!entry.diagnostics.isEmpty()) {
            const QString running = m_projectByFile.value(entry.file);
            qCWarning(lcHost).noquote() << "refused" << entry.file
                                        << (running.isEmpty() ? QStringLiteral("(not running)")
                                                              : QStringLiteral("(the previous version of %1 keeps running)").arg(running));
            for (const Diagnostic &d : std::as_const(entry.diagnostics))
                qCWarning(lcHost).noquote() << d.toString();
            all.append(entry.diagnostics);
        }
    }
    // A project whose file is gone is unloaded: its tasks and jobs stay in the store and run
    // again when the file comes back.
    for (auto it = m_projectByFile.begin(); it != m_projectByFile.end();) {
        if (!listed || present.contains(it.key())) {
            ++it;
            continue;
        }
        const QString id = it.value();
        const QString file = it.key();
        it = m_projectByFile.erase(it);
        if (std::find(m_projectByFile.cbegin(), m_projectByFile.cend(), id) != m_projectByFile.cend())
            continue; // another file now runs this project
        m_engine->removeProject(id);
        qCInfo(lcHost).noquote() << "unloaded project" << id << "- its file" << file << "is gone";
    }
    return all;
}

namespace {
qint64 ms(const QDateTime &t)
{
    return t.isValid() ? t.toMSecsSinceEpoch() : 0;
}

QJsonObject jobJson(const JobRecord &j)
{
    return QJsonObject{{QStringLiteral("id"), j.id},
                       {QStringLiteral("task"), j.taskId},
                       {QStringLiteral("project"), j.project},
                       {QStringLiteral("stage"), j.stage},
                       {QStringLiteral("status"), j.status},
                       {QStringLiteral("attempts"), j.attempts},
                       {QStringLiteral("maxAttempts"), j.maxAttempts},
                       {QStringLiteral("node"), j.claimedBy},
                       {QStringLiteral("availableAt"), ms(j.availableAt)},
                       {QStringLiteral("claimedAt"), ms(j.claimedAt)},
                       {QStringLiteral("finishedAt"), ms(j.finishedAt)},
                       {QStringLiteral("lastError"), j.lastError}};
}

QJsonObject taskJson(const TaskRecord &t)
{
    return QJsonObject{{QStringLiteral("id"), t.id},
                       {QStringLiteral("project"), t.project},
                       {QStringLiteral("title"), t.title},
                       {QStringLiteral("branch"), t.branch},
                       {QStringLiteral("stage"), t.stage},
                       {QStringLiteral("status"), t.status},
                       {QStringLiteral("blockedReason"), t.blockedReason},
                       {QStringLiteral("retries"), t.retries},
                       // The task branch's commit the host took after the last job (every gate
                       // judges it), what the forge has of it, and its pull request.
                       {QStringLiteral("head"), t.headSha},
                       {QStringLiteral("pushed"), t.pushedSha},
                       {QStringLiteral("pullRequest"), t.pullRequest},
                       {QStringLiteral("createdAt"), ms(t.createdAt)},
                       {QStringLiteral("updatedAt"), ms(t.updatedAt)}};
}
} // namespace

Result<QJsonObject> taskReport(Engine &engine, qint64 taskId)
{
    auto task = engine.tasks().task(taskId);
    if (!task)
        return std::unexpected(task.error());
    if (!*task)
        return fail(ErrorCode::NotFound, QStringLiteral("no task %1").arg(taskId));
    QJsonObject out = taskJson(**task);
    out.insert(QStringLiteral("description"), (*task)->description);
    auto jobs = engine.jobs().jobsForTask(taskId);
    auto verdicts = engine.tasks().gateRuns(taskId);
    auto history = engine.tasks().history(taskId);
    if (!jobs || !verdicts || !history)
        return std::unexpected(!jobs ? jobs.error() : !verdicts ? verdicts.error() : history.error());
    QJsonArray jobArray;
    for (const JobRecord &j : *jobs)
        jobArray.append(jobJson(j));
    QJsonArray verdictArray;
    for (const GateRunRecord &g : *verdicts) {
        QJsonObject v = g.verdict.toJson();
        v.insert(QStringLiteral("gate"), g.gate);
        v.insert(QStringLiteral("stage"), g.stage);
        v.insert(QStringLiteral("toStage"), g.toStage);
        v.insert(QStringLiteral("durationMs"), g.durationMs);
        v.insert(QStringLiteral("at"), ms(g.createdAt));
        verdictArray.append(v);
    }
    QJsonArray historyArray;
    for (const AuditRecord &a : *history) {
        historyArray.append(QJsonObject{{QStringLiteral("at"), ms(a.at)},
                                        {QStringLiteral("actor"), a.actor},
                                        {QStringLiteral("action"), a.action},
                                        {QStringLiteral("details"), a.details}});
    }
    out.insert(QStringLiteral("jobs"), jobArray);
    out.insert(QStringLiteral("verdicts"), verdictArray);
    out.insert(QStringLiteral("history"), historyArray);
    // The one-line answer to "why is this task waiting".
    QString waiting;
    if ((*task)->status == QLatin1String("blocked")) {
        waiting = QStringLiteral("blocked: %1").arg((*task)->blockedReason);
    } else if ((*task)->status == QLatin1String("done")) {
        waiting = QStringLiteral("done");
    } else {
        for (const JobRecord &j : *jobs) {
            if (j.stage == (*task)->stage && (j.status == QLatin1String("queued") || j.status == QLatin1String("running")))
                waiting = QStringLiteral("job %1 is %2 for stage %3").arg(j.id).arg(j.status, j.stage);
        }
        if (waiting.isEmpty() && !historyArray.isEmpty()) {
            const QJsonObject last = historyArray.last().toObject();
            if (last.value(QLatin1String("action")).toString() == QLatin1String("approval-requested"))
                waiting = QStringLiteral("waiting for a signal in stage %1: %2")
                              .arg((*task)->stage, last.value(QLatin1String("details")).toObject().value(QLatin1String("summary")).toString());
            else if (last.value(QLatin1String("action")).toString() == QLatin1String("gate-wait"))
                waiting = QStringLiteral("gate %1 asked to wait in stage %2: %3")
                              .arg(last.value(QLatin1String("details")).toObject().value(QLatin1String("gate")).toString(), (*task)->stage,
                                   last.value(QLatin1String("details")).toObject().value(QLatin1String("reason")).toString());
        }
        if (waiting.isEmpty())
            waiting = QStringLiteral("in stage %1").arg((*task)->stage);
    }
    out.insert(QStringLiteral("waiting"), waiting);
    return out;
}

Result<QJsonObject> queueReport(Engine &engine, const HostConfig &config)
{
    auto counts = engine.jobs().countsByStatus();
    auto running = engine.jobs().running();
    auto recent = engine.jobs().recent(10);
    if (!counts || !running || !recent)
        return std::unexpected(!counts ? counts.error() : !running ? running.error() : recent.error());
    QJsonObject countObject;
    for (auto it = counts->cbegin(); it != counts->cend(); ++it)
        countObject.insert(it.key(), it.value());
    QJsonArray runningArray;
    for (const JobRecord &j : *running)
        runningArray.append(jobJson(j));
    QJsonArray recentArray;
    for (const JobRecord &j : *recent)
        recentArray.append(jobJson(j));
    QJsonObject report{{QStringLiteral("counts"), countObject},
                       {QStringLiteral("running"), runningArray},
                       {QStringLiteral("recent"), recentArray}};
    // The core sweepers as each node last reported them; this node's settings when it has
    // not run them yet.
    const QJsonObject fallback[] = {
        QJsonObject{{QStringLiteral("enabled"), config.reaper.enabled},
                    {QStringLiteral("intervalSeconds"), double(config.reaper.interval.count()) / 1000.0},
                    {QStringLiteral("lastRun"), QString()},
                    {QStringLiteral("reapedTotal"), 0},
                    {QStringLiteral("leasesReclaimedTotal"), 0}},
        QJsonObject{{QStringLiteral("enabled"), config.reconciler.enabled},
                    {QStringLiteral("intervalSeconds"), double(config.reconciler.interval.count()) / 1000.0},
                    {QStringLiteral("lastRun"), QString()},
                    {QStringLiteral("actedTotal"), 0}}};
    const QString names[] = {QStringLiteral("reaper"), QStringLiteral("reconciler")};
    for (int i = 0; i < 2; ++i) {
        auto rows = engine.store().sweeperStatus(names[i]);
        if (!rows)
            return std::unexpected(rows.error());
        QJsonArray nodes;
        bool self = false;
        for (const auto &[node, status] : std::as_const(*rows)) {
            QJsonObject entry = status;
            entry.insert(QStringLiteral("node"), node);
            nodes.append(entry);
            self = self || node == engine.node();
        }
        if (!self) {
            QJsonObject entry = fallback[i];
            entry.insert(QStringLiteral("node"), engine.node());
            nodes.append(entry);
        }
        report.insert(names[i], nodes);
    }
    LeaseStore leaseStore(engine.store());
    auto leases = leaseStore.leases();
    if (!leases)
        return std::unexpected(leases.error());
    QJsonArray leaseArray;
    for (const LeaseRecord &lease : std::as_const(*leases))
        leaseArray.append(QJsonObject{{QStringLiteral("resource"), lease.resource},
                                      {QStringLiteral("node"), lease.holder.node},
                                      {QStringLiteral("pid"), lease.holder.pid},
                                      {QStringLiteral("task"), lease.holder.taskId},
                                      {QStringLiteral("acquiredAt"), lease.acquiredAt.toString(Qt::ISODateWithMs)},
                                      {QStringLiteral("expiresAt"), lease.expiresAt.toString(Qt::ISODateWithMs)}});
    report.insert(QStringLiteral("leases"), leaseArray);
    auto waiters = leaseStore.waiters();
    if (!waiters)
        return std::unexpected(waiters.error());
    QJsonArray waiterArray;
    for (const LeaseStore::Waiter &w : std::as_const(*waiters))
        waiterArray.append(QJsonObject{{QStringLiteral("resource"), w.resource},
                                       {QStringLiteral("task"), w.taskId},
                                       {QStringLiteral("firstAsked"), w.firstAsked.toString(Qt::ISODateWithMs)},
                                       {QStringLiteral("lastAsked"), w.lastAsked.toString(Qt::ISODateWithMs)}});
    report.insert(QStringLiteral("leaseWaiters"), waiterArray);
    auto nodes = nodesReport(engine, config);
    if (!nodes)
        return std::unexpected(nodes.error());
    report.insert(QStringLiteral("nodes"), *nodes);
    return report;
}

Result<QJsonArray> nodesReport(Engine &engine, const HostConfig &config)
{
    auto nodes = engine.store().nodes();
    if (!nodes)
        return std::unexpected(nodes.error());
    QJsonArray out;
    for (const NodeRecord &n : std::as_const(*nodes)) {
        QJsonObject o{{QStringLiteral("name"), n.name},
                      {QStringLiteral("host"), n.host},
                      {QStringLiteral("pid"), double(n.pid)},
                      {QStringLiteral("state"), n.state(config.reaper.nodeTimeout)},
                      {QStringLiteral("heartbeatAgeSeconds"), double(n.heartbeatAgeMs) / 1000.0},
                      {QStringLiteral("heartbeatAt"), n.heartbeatAt.toString(Qt::ISODateWithMs)},
                      {QStringLiteral("startedAt"), n.startedAt.toString(Qt::ISODateWithMs)},
                      {QStringLiteral("runningJobs"), n.runningJobs},
                      {QStringLiteral("generation"), double(n.generation)},
                      {QStringLiteral("self"), n.name == engine.node()}};
        if (n.stoppedAt.isValid())
            o.insert(QStringLiteral("stoppedAt"), n.stoppedAt.toString(Qt::ISODateWithMs));
        if (!n.takenOverBy.isEmpty()) {
            o.insert(QStringLiteral("takenOverBy"), n.takenOverBy);
            o.insert(QStringLiteral("takenOverAt"), n.takenOverAt.toString(Qt::ISODateWithMs));
        }
        out.append(o);
    }
    return out;
}

Result<QJsonObject> statusReport(Engine &engine, const HostConfig &config)
{
    auto report = statusReport(engine);
    if (!report)
        return report;
    auto nodes = nodesReport(engine, config);
    if (!nodes)
        return std::unexpected(nodes.error());
    report->insert(QStringLiteral("nodes"), *nodes);
    return report;
}

Result<QJsonObject> statusReport(Engine &engine)
{
    auto tasks = engine.tasks().tasks(QString(), {});
    if (!tasks)
        return std::unexpected(tasks.error());
    QJsonArray out;
    for (const TaskRecord &t : *tasks)
        out.append(taskJson(t));
    return QJsonObject{{QStringLiteral("projects"), QJsonArray::fromStringList(engine.projectIds())},
                       {QStringLiteral("tasks"), out}};
}

} // namespace Sluice
