// SPDX-License-Identifier: Apache-2.0
#pragma once

// A project file: one repository, its stages, the gates on stage exits and on edges, its
// red policy and its plugin instances with their settings.

#include "config/diagnostic.h"
#include "config/pluginlookup.h"

#include <sluice/plugin.h>
#include <sluice/project.h>

#include <QList>
#include <QMap>
#include <QString>
#include <QStringList>
#include <QVariantMap>

namespace Sluice {

/// A position in a project file.
struct ConfigPosition {
    int line = 0;
    int column = 0;
};

struct StageConfig {
    QString name;
    QString run;            ///< Stage plugin instance; empty for a passive stage.
    QStringList exitGates;  ///< Gate instances, in order.
    ConfigPosition position;
};

struct EdgeConfig {
    QString from;
    QString to;
    QStringList gates;      ///< Gate instances, in order; the first non-pass stops the edge.
    ConfigPosition position;
};

struct InstanceConfig {
    QString name;
    QString pluginId;
    PluginKind kind = PluginKind::Gate;
    bool pluginKnown = false; ///< False when the plugin is missing or broken (already reported).
    QVariantMap settings;   ///< Validated against the plugin's schema, defaults filled.
    ConfigPosition position;
};

/// One rule of the project's `notifications` list: these events go to that notifier.
struct NotificationRule {
    QString notifier;       ///< Notifier instance name.
    QStringList events;     ///< Event names ("stage-changed", "gate-failed", ...).
    ConfigPosition position;
};

/// The project's `forge_feedback` section: what Sluice posts on the task's pull request.
struct ForgeFeedbackConfig {
    bool enabled = false;        ///< The section is present.
    QVariantMap token;           ///< The secret reference (SecretRef::fromVariant()).
    bool statuses = true;
    bool comments = true;
    QString targetUrl;           ///< With "{task}"; empty: the daemon's own task page.
    bool openPullRequest = true;
    QString pullRequestStage;    ///< Empty: at the first push.
};

/// The project's `forge_approvals` section: reviews and comment commands as signals.
struct ForgeApprovalsConfig {
    bool enabled = false;        ///< The section is present.
    QStringList users;
    QStringList teams;
    QString reviewSignal = QStringLiteral("approve");
    QMap<QString, QString> commands; ///< command word → signal
    bool dismissStale = true;
};

struct ProjectConfig {
    QString file;
    QString id;
    QString description;
    QString repositoryPath;
    QString repositoryUrl;
    QString targetBranch;
    QString repositoryRemote; ///< The remote of repositoryPath that is the forge ("origin").
    /// repository.outside_pushes: a push to a task branch at the forge that Sluice did not make
    /// is adopted as the task's head (true, the default) or blocks the task (false).
    bool adoptOutsidePushes = true;
    QString forgeInstance;
    QString trackerInstance;
    QString agentLauncherInstance;
    QList<StageConfig> stages;
    QList<EdgeConfig> edges;
    QString rollbackTo;
    int maxRetries = 3;
    qint64 stageTimeoutMs = 2 * 3600 * 1000;
    qint64 gateTimeoutMs = 10 * 60 * 1000;
    int jobMaxAttempts = 3;
    qint64 jobRetryBackoffMs = 30 * 1000;
    int jobConcurrency = 2;
    QMap<QString, InstanceConfig> instances;
    QList<NotificationRule> notifications;
    QMap<QString, QString> trackerStates; ///< stage → logical tracker state
    ForgeFeedbackConfig forgeFeedback;
    ForgeApprovalsConfig forgeApprovals;

    /// The notifier instances that want @p event, in rule order, each once.
    [[nodiscard]] QStringList notifiersFor(const QString &event) const;
    /// The logical tracker state of a task that enters @p stage.
    [[nodiscard]] QString trackerStateFor(const QString &stage) const;

    /// The project as plugins see it.
    [[nodiscard]] ProjectInfo info() const;
    /// The stage named @p name, or null.
    [[nodiscard]] const StageConfig *stage(const QString &name) const;

    /**
     * Loads and validates @p file against the project schema and the plugins in @p plugins
     * (the plugin host's PluginCatalog). Returns std::nullopt when anything is wrong; every
     * problem is in @p diagnostics.
     */
    [[nodiscard]] static std::optional<ProjectConfig> load(const QString &file, const PluginLookup &plugins,
                                                           Diagnostics &diagnostics);
};

/// The outcome of loading every project file of a configuration directory.
struct ProjectSet {
    struct Entry {
        QString file;
        std::optional<ProjectConfig> project; ///< Set when the file is valid.
        Diagnostics diagnostics;
    };
    QList<Entry> entries;

    /// Loads each file on its own: an invalid file is refused, the others stay usable.
    [[nodiscard]] static ProjectSet load(const QStringList &files, const PluginLookup &plugins);
    [[nodiscard]] QList<const ProjectConfig *> validProjects() const;
};

} // namespace Sluice
