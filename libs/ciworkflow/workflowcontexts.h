// SPDX-License-Identifier: Apache-2.0
#pragma once

// Required CI contexts derived from the workflow file itself: the umbrella (aggregator) job's
// `needs`, each mapped to the status context the forge posts for it. The workflow is the
// single source of truth; nothing here keeps a hand-written list that could drift.

#include <sluice/error.h>

#include <QByteArray>
#include <QHash>
#include <QString>
#include <QStringList>

namespace Sluice::Ci {

/// How the forge names a job's status context.
enum class Naming {
    Gitea,  ///< Gitea/Forgejo Actions: "<workflow> / <job> (<event>)", matrix keys sorted.
    GitHub, ///< GitHub check runs: "<job>", matrix values in key order, include keys last.
};

struct WorkflowOptions {
    QString workflowPath;  ///< Path in the repository; names the file in errors, defaults the workflow name.
    QString umbrellaJob;   ///< Id of the umbrella job.
    Naming naming = Naming::Gitea;
    QString event = QStringLiteral("pull_request"); ///< Event suffix (Gitea naming).
    bool transitive = false; ///< Also require what the needs need, to the leaves.
    /// Display names per job id, for jobs whose names cannot be derived statically
    /// (a matrix from an expression, a remote reusable workflow). Wrapped like derived names.
    QHash<QString, QStringList> jobNames;
};

struct RequiredContexts {
    QString workflowName;
    QString umbrellaContext;
    QStringList jobIds;    ///< The needs taken, in file order (transitive ones after).
    QStringList contexts;  ///< One per job or matrix cell, in file order, without duplicates.
};

/**
 * Paths (repository-relative, "./" removed) of the local reusable workflows called by the
 * jobs the umbrella needs: they must be read at the same ref and given to derive().
 */
[[nodiscard]] Result<QStringList> calledWorkflows(const QByteArray &yaml, const WorkflowOptions &options);

/**
 * Derives the umbrella's context and its required contexts. @p callees maps the paths
 * calledWorkflows() returned to their content. Errors name the file, line and key; an
 * unreadable file, a missing umbrella or an umbrella without needs is an error, never an
 * empty list.
 */
[[nodiscard]] Result<RequiredContexts> deriveRequiredContexts(const QByteArray &yaml, const WorkflowOptions &options,
                                                              const QHash<QString, QByteArray> &callees = {});

} // namespace Sluice::Ci
