// SPDX-License-Identifier: Apache-2.0
#include "config/projectconfig.h"

#include "config/hostconfig.h"
#include "config/yamlvalidator.h"

#include <QRegularExpression>
#include <QUrl>
#include <QSet>

namespace Sluice {

namespace {

const QRegularExpression &namePattern()
{
    static const QRegularExpression re(QStringLiteral("^[a-z0-9][a-z0-9_-]{0,63}$"));
    return re;
}

YAML::Node item(const YAML::Node &sequence, std::size_t index)
{
    if (!sequence.IsSequence() || index >= sequence.size())
        return YAML::Node();
    return sequence[index];
}

ConfigPosition positionOf(const YAML::Node &node)
{
    if (!node.IsDefined() || node.Mark().line < 0)
        return {};
    return {node.Mark().line + 1, node.Mark().column + 1};
}

// The index of the stage named @p name in @p project, -1 when it has none.
int stageIndex(const ProjectConfig &project, const QString &name)
{
    for (int i = 0; i < project.stages.size(); ++i) {
        if (project.stages[i].name == name)
            return i;
    }
    return -1;
}

class ProjectLoader
{
public:
    ProjectLoader(const QString &file, const PluginLookup &plugins, Diagnostics &diagnostics)
        : m_plugins(plugins), m_diagnostics(diagnostics), m_validator(file, diagnostics)
    {
    }

    std::optional<ProjectConfig> load(const YAML::Node &root);

private:
    // Each section of the file, in the order load() reads them; @p v is the file validated
    // against the project schema, @p root the YAML it came from (for positions).
    void loadInstances(const YAML::Node &root, ProjectConfig &project);
    void loadIdentity(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    // repository (with its forge), tracker, agent_launcher.
    void loadServices(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    void loadStages(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    void loadEdges(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    // timeouts and jobs.
    void loadLimits(const QVariantMap &v, ProjectConfig &project);
    void loadRedPolicy(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    void loadNotifications(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    void loadTrackerStates(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project);
    // A present forge_feedback / forge_approvals section (@p node), validated as @p f / @p a.
    void loadForgeFeedback(const YAML::Node &node, const QVariantMap &f, ProjectConfig &project);
    void loadForgeApprovals(const YAML::Node &node, const QVariantMap &a, ProjectConfig &project);
    // Checks a stage's exit_gates or an edge's gates (@p key, at @p gatesNode): each a gate
    // instance, none twice.
    void expectGates(const ProjectConfig &project, const QStringList &gates, const YAML::Node &gatesNode, const QString &key);
    // Checks that @p name (at @p node) is an instance of @p kind.
    void expectInstance(const ProjectConfig &project, const QString &name, PluginKind kind, const YAML::Node &node,
                        const QString &key);
    void report(const YAML::Node &node, const QString &key, const QString &message)
    {
        m_validator.report(node, key, message);
    }

    const PluginLookup &m_plugins;
    Diagnostics &m_diagnostics;
    YamlValidator m_validator;
};

void ProjectLoader::expectInstance(const ProjectConfig &project, const QString &name, PluginKind kind,
                                   const YAML::Node &node, const QString &key)
{
    const auto it = project.instances.constFind(name);
    if (it == project.instances.cend()) {
        report(node, key, QStringLiteral("no instance named '%1' in instances").arg(name));
        return;
    }
    if (it->pluginKnown && it->kind != kind)
        report(node, key, QStringLiteral("instance '%1' is a %2 (plugin '%3'), a %4 is needed here")
                              .arg(name, pluginKindName(it->kind), it->pluginId, pluginKindName(kind)));
}

void ProjectLoader::loadInstances(const YAML::Node &root, ProjectConfig &project)
{
    const YAML::Node instances = yamlChild(root, "instances");
    if (!instances.IsDefined() || instances.IsNull())
        return;
    if (!instances.IsMap()) {
        report(instances, QStringLiteral("instances"), QStringLiteral("expected a mapping of instance names"));
        return;
    }
    for (auto it = instances.begin(); it != instances.end(); ++it) {
        const QString name = yamlScalar(it->first);
        const QString path = QStringLiteral("instances.%1").arg(name);
        const YAML::Node body = it->second;
        if (!namePattern().match(name).hasMatch()) {
            report(it->first, path, QStringLiteral("instance names are lower-case letters, digits, '_' and '-'"));
            continue;
        }
        if (project.instances.contains(name)) {
            report(it->first, path, QStringLiteral("duplicate instance"));
            continue;
        }
        if (!body.IsMap()) {
            report(body.IsNull() ? it->first : body, path, QStringLiteral("expected a mapping with 'plugin' and 'settings'"));
            continue;
        }
        for (auto k = body.begin(); k != body.end(); ++k) {
            const QString key = yamlScalar(k->first);
            if (key != QLatin1String("plugin") && key != QLatin1String("settings"))
                report(k->first, path + QLatin1Char('.') + key, QStringLiteral("unknown key (an instance has 'plugin' and 'settings')"));
        }
        const YAML::Node pluginNode = yamlChild(body, "plugin");
        if (!pluginNode.IsDefined() || !pluginNode.IsScalar() || pluginNode.Scalar().empty()) {
            report(pluginNode.IsDefined() ? pluginNode : it->first, path + QStringLiteral(".plugin"),
                   QStringLiteral("required: the id of the plugin this instance uses"));
            continue;
        }
        InstanceConfig instance;
        instance.name = name;
        instance.pluginId = yamlScalar(pluginNode);
        instance.position = positionOf(it->first);
        const PluginAvailability plugin = m_plugins.availability(instance.pluginId);
        // Known by name from here on, so references to it do not cascade into more errors.
        project.instances.insert(name, instance);
        if (plugin.state == PluginAvailability::State::Unknown) {
            report(pluginNode, path + QStringLiteral(".plugin"),
                   QStringLiteral("unknown plugin '%1' (searched: %2)")
                       .arg(instance.pluginId, m_plugins.searchDirectories().join(QStringLiteral(", "))));
            continue;
        }
        if (plugin.state == PluginAvailability::State::Rejected) {
            report(pluginNode, path + QStringLiteral(".plugin"),
                   QStringLiteral("plugin '%1' was rejected: %2").arg(instance.pluginId, plugin.reason));
            continue;
        }
        if (plugin.state == PluginAvailability::State::Failed) {
            report(pluginNode, path + QStringLiteral(".plugin"),
                   QStringLiteral("plugin '%1' failed to load: %2").arg(instance.pluginId, plugin.reason));
            continue;
        }
        instance.kind = plugin.metaData->kind();
        instance.pluginKnown = true;
        const ConfigSchema &schema = plugin.metaData->configSchema();
        const YAML::Node settings = yamlChild(body, "settings");
        if (settings.IsDefined() && !settings.IsNull()) {
            instance.settings = m_validator.validateObject(settings, schema, path + QStringLiteral(".settings"));
        } else {
            for (const auto &[key, entry] : schema.entries()) {
                if (entry.isRequired()) {
                    report(it->first, QStringLiteral("%1.settings.%2").arg(path, key),
                           QStringLiteral("required setting of plugin '%1' is missing").arg(instance.pluginId));
                }
            }
            instance.settings = m_validator.resolvedDefaults(schema);
        }
        // Kept even when its settings are wrong, so references to it resolve; the file is refused anyway.
        project.instances.insert(name, instance);
    }
}

std::optional<ProjectConfig> ProjectLoader::load(const YAML::Node &root)
{
    const int before = int(m_diagnostics.size());
    ProjectConfig project;
    project.file = m_validator.file();
    if (!root.IsMap()) {
        report(root, QString(), QStringLiteral("a project file is a mapping"));
        return std::nullopt;
    }
    const QVariantMap v = m_validator.validateObject(root, embeddedSchema(QStringLiteral("project")), QString(),
                                                     {QStringLiteral("instances")});
    loadInstances(root, project);
    loadIdentity(root, v, project);
    loadServices(root, v, project);
    loadStages(root, v, project);
    loadEdges(root, v, project);
    loadLimits(v, project);
    loadRedPolicy(root, v, project);
    loadNotifications(root, v, project);
    loadTrackerStates(root, v, project);
    // The forge loop (docs/forge-loop.md): both sections speak for the project's forge.
    // An absent section is filled with defaults by the validator: presence is read from the file.
    if (const YAML::Node node = yamlChild(root, "forge_feedback"); node.IsMap())
        loadForgeFeedback(node, v.value(QStringLiteral("forge_feedback")).toMap(), project);
    if (const YAML::Node node = yamlChild(root, "forge_approvals"); node.IsMap())
        loadForgeApprovals(node, v.value(QStringLiteral("forge_approvals")).toMap(), project);

    if (m_diagnostics.size() != before)
        return std::nullopt;
    return project;
}

void ProjectLoader::loadIdentity(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    project.id = v.value(QStringLiteral("id")).toString();
    if (!project.id.isEmpty() && !namePattern().match(project.id).hasMatch())
        report(yamlChild(root, "id"), QStringLiteral("id"), QStringLiteral("project ids are lower-case letters, digits, '_' and '-'"));
    project.description = v.value(QStringLiteral("description")).toString();
}

void ProjectLoader::loadServices(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    const QVariantMap repo = v.value(QStringLiteral("repository")).toMap();
    const YAML::Node repoNode = yamlChild(root, "repository");
    project.repositoryPath = repo.value(QStringLiteral("path")).toString();
    project.repositoryUrl = repo.value(QStringLiteral("url")).toString();
    project.targetBranch = repo.value(QStringLiteral("target_branch")).toString();
    project.forgeInstance = repo.value(QStringLiteral("forge")).toString();
    project.repositoryRemote = repo.value(QStringLiteral("remote")).toString();
    project.adoptOutsidePushes = repo.value(QStringLiteral("outside_pushes"), QStringLiteral("adopt")).toString() != QLatin1String("block");
    if (repoNode.IsMap() && project.repositoryPath.isEmpty() && project.repositoryUrl.isEmpty())
        report(repoNode, QStringLiteral("repository"), QStringLiteral("give the repository's path or url"));
    if (!project.forgeInstance.isEmpty())
        expectInstance(project, project.forgeInstance, PluginKind::Forge, yamlChild(repoNode, "forge"),
                       QStringLiteral("repository.forge"));
    project.trackerInstance = v.value(QStringLiteral("tracker")).toString();
    if (!project.trackerInstance.isEmpty())
        expectInstance(project, project.trackerInstance, PluginKind::Tracker, yamlChild(root, "tracker"),
                       QStringLiteral("tracker"));

    project.agentLauncherInstance = v.value(QStringLiteral("agent_launcher")).toString();
    if (!project.agentLauncherInstance.isEmpty())
        expectInstance(project, project.agentLauncherInstance, PluginKind::AgentLauncher, yamlChild(root, "agent_launcher"),
                       QStringLiteral("agent_launcher"));
}

void ProjectLoader::loadStages(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    const YAML::Node stagesNode = yamlChild(root, "stages");
    const QVariantList stages = v.value(QStringLiteral("stages")).toList();
    QSet<QString> stageNames;
    for (int i = 0; i < stages.size(); ++i) {
        const QVariantMap s = stages.at(i).toMap();
        const YAML::Node node = item(stagesNode, std::size_t(i));
        const QString key = QStringLiteral("stages[%1]").arg(i);
        StageConfig stage;
        stage.name = s.value(QStringLiteral("name")).toString();
        stage.run = s.value(QStringLiteral("run")).toString();
        stage.position = positionOf(node);
        for (const QVariant &g : s.value(QStringLiteral("exit_gates")).toList())
            stage.exitGates.append(g.toString());
        if (stage.name.isEmpty())
            continue; // already reported
        if (!namePattern().match(stage.name).hasMatch())
            report(yamlChild(node, "name"), key + QStringLiteral(".name"),
                   QStringLiteral("stage names are lower-case letters, digits, '_' and '-'"));
        if (stageNames.contains(stage.name))
            report(yamlChild(node, "name"), key + QStringLiteral(".name"), QStringLiteral("duplicate stage '%1'").arg(stage.name));
        stageNames.insert(stage.name);
        if (!stage.run.isEmpty())
            expectInstance(project, stage.run, PluginKind::Stage, yamlChild(node, "run"), key + QStringLiteral(".run"));
        expectGates(project, stage.exitGates, yamlChild(node, "exit_gates"), key + QStringLiteral(".exit_gates"));
        project.stages.append(stage);
    }
    if (stagesNode.IsSequence() && project.stages.size() < 2)
        report(stagesNode, QStringLiteral("stages"), QStringLiteral("a pipeline needs at least two stages"));
    if (project.stages.size() >= 2) {
        const StageConfig &last = project.stages.last();
        if (!last.run.isEmpty() || !last.exitGates.isEmpty())
            report(item(stagesNode, std::size_t(project.stages.size() - 1)),
                   QStringLiteral("stages[%1]").arg(project.stages.size() - 1),
                   QStringLiteral("the last stage ('%1') ends the pipeline: it takes no run and no exit_gates").arg(last.name));
    }
}

void ProjectLoader::expectGates(const ProjectConfig &project, const QStringList &gates, const YAML::Node &gatesNode,
                                const QString &key)
{
    QSet<QString> gatesSeen;
    for (int g = 0; g < gates.size(); ++g) {
        const YAML::Node gateNode = item(gatesNode, std::size_t(g));
        const QString gateKey = QStringLiteral("%1[%2]").arg(key).arg(g);
        if (gatesSeen.contains(gates[g]))
            report(gateNode, gateKey, QStringLiteral("gate '%1' is listed twice").arg(gates[g]));
        gatesSeen.insert(gates[g]);
        expectInstance(project, gates[g], PluginKind::Gate, gateNode, gateKey);
    }
}

void ProjectLoader::loadEdges(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    const YAML::Node edgesNode = yamlChild(root, "edges");
    const QVariantList edges = v.value(QStringLiteral("edges")).toList();
    QSet<QString> edgeKeys;
    for (int i = 0; i < edges.size(); ++i) {
        const QVariantMap e = edges.at(i).toMap();
        const YAML::Node node = item(edgesNode, std::size_t(i));
        const QString key = QStringLiteral("edges[%1]").arg(i);
        EdgeConfig edge;
        edge.from = e.value(QStringLiteral("from")).toString();
        edge.to = e.value(QStringLiteral("to")).toString();
        edge.position = positionOf(node);
        for (const QVariant &g : e.value(QStringLiteral("gates")).toList())
            edge.gates.append(g.toString());
        if (edge.from.isEmpty() || edge.to.isEmpty())
            continue;
        const int from = stageIndex(project, edge.from);
        const int to = stageIndex(project, edge.to);
        if (from < 0)
            report(yamlChild(node, "from"), key + QStringLiteral(".from"), QStringLiteral("no stage named '%1'").arg(edge.from));
        if (to < 0)
            report(yamlChild(node, "to"), key + QStringLiteral(".to"), QStringLiteral("no stage named '%1'").arg(edge.to));
        if (from >= 0 && to >= 0 && to != from + 1)
            report(node, key, QStringLiteral("'%1' is not followed by '%2': a task never crosses this edge").arg(edge.from, edge.to));
        const QString edgeKey = edge.from + QLatin1String("->") + edge.to;
        if (edgeKeys.contains(edgeKey))
            report(node, key, QStringLiteral("duplicate edge %1 -> %2").arg(edge.from, edge.to));
        edgeKeys.insert(edgeKey);
        if (edge.gates.isEmpty())
            report(yamlChild(node, "gates"), key + QStringLiteral(".gates"), QStringLiteral("an edge needs at least one gate"));
        expectGates(project, edge.gates, yamlChild(node, "gates"), key + QStringLiteral(".gates"));
        project.edges.append(edge);
    }
}

void ProjectLoader::loadLimits(const QVariantMap &v, ProjectConfig &project)
{
    const QVariantMap timeouts = v.value(QStringLiteral("timeouts")).toMap();
    project.stageTimeoutMs = timeouts.value(QStringLiteral("stage")).toLongLong();
    project.gateTimeoutMs = timeouts.value(QStringLiteral("gate")).toLongLong();
    const QVariantMap jobs = v.value(QStringLiteral("jobs")).toMap();
    project.jobMaxAttempts = int(jobs.value(QStringLiteral("max_attempts")).toLongLong());
    project.jobRetryBackoffMs = jobs.value(QStringLiteral("retry_backoff")).toLongLong();
    project.jobConcurrency = int(jobs.value(QStringLiteral("concurrency")).toLongLong());
}

void ProjectLoader::loadRedPolicy(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    const QVariantMap red = v.value(QStringLiteral("red_policy")).toMap();
    project.maxRetries = int(red.value(QStringLiteral("max_retries"), 3).toLongLong());
    project.rollbackTo = red.value(QStringLiteral("rollback_to")).toString();
    if (project.rollbackTo.isEmpty() && !project.stages.isEmpty()) {
        project.rollbackTo = project.stages.first().name;
    } else if (!project.rollbackTo.isEmpty()) {
        const YAML::Node node = yamlChild(yamlChild(root, "red_policy"), "rollback_to");
        const int index = stageIndex(project, project.rollbackTo);
        if (index < 0)
            report(node, QStringLiteral("red_policy.rollback_to"), QStringLiteral("no stage named '%1'").arg(project.rollbackTo));
        else if (index == project.stages.size() - 1)
            report(node, QStringLiteral("red_policy.rollback_to"), QStringLiteral("cannot roll back to the last stage"));
    }
}

void ProjectLoader::loadNotifications(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    // Each rule names a notifier instance, each event at most once per rule.
    const YAML::Node notificationsNode = yamlChild(root, "notifications");
    const QVariantList rules = v.value(QStringLiteral("notifications")).toList();
    for (int i = 0; i < rules.size(); ++i) {
        const QVariantMap r = rules.at(i).toMap();
        const YAML::Node node = item(notificationsNode, std::size_t(i));
        const QString key = QStringLiteral("notifications[%1]").arg(i);
        NotificationRule rule;
        rule.notifier = r.value(QStringLiteral("notifier")).toString();
        rule.events = r.value(QStringLiteral("events")).toStringList();
        rule.position = positionOf(node);
        if (rule.notifier.isEmpty())
            continue; // already reported
        expectInstance(project, rule.notifier, PluginKind::Notifier, yamlChild(node, "notifier"), key + QStringLiteral(".notifier"));
        if (yamlChild(node, "events").IsSequence() && yamlChild(node, "events").size() == 0)
            report(yamlChild(node, "events"), key + QStringLiteral(".events"), QStringLiteral("name at least one event"));
        QSet<QString> seen;
        for (int e = 0; e < rule.events.size(); ++e) {
            if (seen.contains(rule.events[e]))
                report(item(yamlChild(node, "events"), std::size_t(e)), QStringLiteral("%1.events[%2]").arg(key).arg(e),
                       QStringLiteral("event '%1' is listed twice").arg(rule.events[e]));
            seen.insert(rule.events[e]);
        }
        project.notifications.append(rule);
    }
}

void ProjectLoader::loadTrackerStates(const YAML::Node &root, const QVariantMap &v, ProjectConfig &project)
{
    const QVariantMap trackerStates = v.value(QStringLiteral("tracker_states")).toMap();
    const YAML::Node trackerStatesNode = yamlChild(root, "tracker_states");
    for (auto it = trackerStates.cbegin(); it != trackerStates.cend(); ++it) {
        if (stageIndex(project, it.key()) < 0) {
            YAML::Node keyNode = trackerStatesNode;
            for (auto k = trackerStatesNode.begin(); trackerStatesNode.IsMap() && k != trackerStatesNode.end(); ++k) {
                if (yamlScalar(k->first) == it.key())
                    keyNode = k->first;
            }
            report(keyNode, QStringLiteral("tracker_states.%1").arg(it.key()), QStringLiteral("no stage named '%1'").arg(it.key()));
        }
        project.trackerStates.insert(it.key(), it.value().toString());
    }
    if (!project.trackerStates.isEmpty() && project.trackerInstance.isEmpty())
        report(trackerStatesNode, QStringLiteral("tracker_states"), QStringLiteral("the project names no tracker"));
}

void ProjectLoader::loadForgeFeedback(const YAML::Node &node, const QVariantMap &f, ProjectConfig &project)
{
    ForgeFeedbackConfig &feedback = project.forgeFeedback;
    feedback.enabled = true;
    feedback.token = f.value(QStringLiteral("token")).toMap();
    feedback.statuses = f.value(QStringLiteral("statuses"), true).toBool();
    feedback.comments = f.value(QStringLiteral("comments"), true).toBool();
    feedback.targetUrl = f.value(QStringLiteral("target_url")).toString();
    feedback.openPullRequest = f.value(QStringLiteral("open_pull_request"), true).toBool();
    feedback.pullRequestStage = f.value(QStringLiteral("pull_request_stage")).toString();
    if (project.forgeInstance.isEmpty())
        report(node, QStringLiteral("forge_feedback"), QStringLiteral("the project names no forge (repository.forge)"));
    if (!feedback.pullRequestStage.isEmpty() && stageIndex(project, feedback.pullRequestStage) < 0)
        report(yamlChild(node, "pull_request_stage"), QStringLiteral("forge_feedback.pull_request_stage"),
               QStringLiteral("no stage named '%1'").arg(feedback.pullRequestStage));
    const QUrl target(feedback.targetUrl.isEmpty() ? QStringLiteral("http://x/") : feedback.targetUrl);
    if (!target.isValid() || (target.scheme() != QLatin1String("http") && target.scheme() != QLatin1String("https")))
        report(yamlChild(node, "target_url"), QStringLiteral("forge_feedback.target_url"), QStringLiteral("expected an http(s) URL"));
}

void ProjectLoader::loadForgeApprovals(const YAML::Node &node, const QVariantMap &a, ProjectConfig &project)
{
    ForgeApprovalsConfig &approvals = project.forgeApprovals;
    approvals.enabled = true;
    approvals.users = a.value(QStringLiteral("users")).toStringList();
    approvals.teams = a.value(QStringLiteral("teams")).toStringList();
    approvals.reviewSignal = a.value(QStringLiteral("review_signal"), QStringLiteral("approve")).toString();
    approvals.dismissStale = a.value(QStringLiteral("dismiss_stale"), true).toBool();
    const QVariantMap commands = a.value(QStringLiteral("commands")).toMap();
    for (auto it = commands.cbegin(); it != commands.cend(); ++it) {
        if (it.key().trimmed().isEmpty() || it.key().contains(QLatin1Char(' ')) || it.value().toString().isEmpty())
            report(yamlChild(node, "commands"), QStringLiteral("forge_approvals.commands"),
                   QStringLiteral("a command is one word and names a signal"));
        approvals.commands.insert(it.key(), it.value().toString());
    }
    if (project.forgeInstance.isEmpty())
        report(node, QStringLiteral("forge_approvals"), QStringLiteral("the project names no forge (repository.forge)"));
    if (approvals.users.isEmpty() && approvals.teams.isEmpty())
        report(node, QStringLiteral("forge_approvals"), QStringLiteral("name the users or teams who may give signals"));
}

} // namespace

ProjectInfo ProjectConfig::info() const
{
    ProjectInfo info;
    info.id = id;
    info.repository = repositoryPath.isEmpty() ? repositoryUrl : repositoryPath;
    info.targetBranch = targetBranch;
    for (const StageConfig &s : stages)
        info.stages.append(s.name);
    info.configFile = file;
    return info;
}

QStringList ProjectConfig::notifiersFor(const QString &event) const
{
    QStringList out;
    for (const NotificationRule &rule : notifications) {
        if (rule.events.contains(event) && !out.contains(rule.notifier))
            out.append(rule.notifier);
    }
    return out;
}

QString ProjectConfig::trackerStateFor(const QString &stage) const
{
    if (const auto it = trackerStates.constFind(stage); it != trackerStates.cend())
        return *it;
    if (!stages.isEmpty() && stages.last().name == stage)
        return QStringLiteral("done");
    return QStringLiteral("in-progress");
}

const StageConfig *ProjectConfig::stage(const QString &name) const
{
    for (const StageConfig &s : stages) {
        if (s.name == name)
            return &s;
    }
    return nullptr;
}

std::optional<ProjectConfig> ProjectConfig::load(const QString &file, const PluginLookup &plugins,
                                                 Diagnostics &diagnostics)
{
    const auto root = loadYamlFile(file, diagnostics);
    if (!root)
        return std::nullopt;
    ProjectLoader loader(file, plugins, diagnostics);
    return loader.load(*root);
}

ProjectSet ProjectSet::load(const QStringList &files, const PluginLookup &plugins)
{
    ProjectSet set;
    QHash<QString, QString> fileById;
    for (const QString &file : files) {
        Entry entry;
        entry.file = file;
        entry.project = ProjectConfig::load(file, plugins, entry.diagnostics);
        if (entry.project) {
            const auto other = fileById.constFind(entry.project->id);
            if (other != fileById.cend()) {
                entry.diagnostics.append(Diagnostic{file, 0, 0, QStringLiteral("id"),
                                                    QStringLiteral("project id '%1' is already used by %2")
                                                        .arg(entry.project->id, *other)});
                entry.project.reset();
            } else {
                fileById.insert(entry.project->id, file);
            }
        }
        set.entries.append(std::move(entry));
    }
    return set;
}

QList<const ProjectConfig *> ProjectSet::validProjects() const
{
    QList<const ProjectConfig *> out;
    for (const Entry &e : entries) {
        if (e.project)
            out.append(&*e.project);
    }
    return out;
}

} // namespace Sluice
