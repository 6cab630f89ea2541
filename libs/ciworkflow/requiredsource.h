// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the required contexts of a commit come from: the settings the ci gate and the
// ci-umbrella sweeper share, and the asynchronous read of the workflow through the forge.

#include "statuscheck.h"
#include "workflowcontexts.h"

#include <sluice/forge.h>

#include <QObject>
#include <QVariantMap>

#include <functional>

namespace Sluice::Ci {

/// The checked settings that say which contexts are required.
struct RequiredSpec {
    QString workflow;        ///< Workflow path in the repository; empty when contexts are listed.
    QString workflowRef;     ///< "head" (the commit judged) or "target" (the project's target branch).
    WorkflowOptions options;
    QStringList listed;      ///< Explicit contexts instead of the workflow.
    QString umbrellaContext; ///< Override of the derived umbrella context.
    QStringList extra;       ///< Added to the derived contexts.
    QStringList excluded;    ///< Removed; each must be among the derived ones.
    Semantics semantics = Semantics::Strict; ///< `required_semantics`: what passes besides success.

    /// Reads the keys both plugins declare; errors name the key.
    [[nodiscard]] static Result<RequiredSpec> fromSettings(const QVariantMap &settings);
};

/**
 * Starts @p call, owned by @p owner, and runs @p done with its result once on this thread
 * (not at all if @p owner is destroyed first). The call is deleted after.
 */
template<typename T>
void runAsync(std::unique_ptr<AsyncCall<T>> call, QObject *owner, std::function<void(const Result<T> &)> done)
{
    AsyncCall<T> *raw = call.release();
    raw->setParent(owner);
    QObject::connect(raw, &PluginJob::finished, owner, [raw, done = std::move(done)] {
        raw->deleteLater();
        done(raw->result());
    });
    raw->start();
}

/**
 * Reads the workflow (and the local workflows it calls) at @p commit or the target branch
 * and derives the required contexts with @p spec's additions and exclusions. A listed
 * set needs no read. Any failure is an Error, never an empty list.
 */
void resolveRequired(Forge &forge, const RequiredSpec &spec, const QString &commit, const QString &targetBranch,
                     QObject *owner, std::function<void(Result<RequiredContexts>)> done);

} // namespace Sluice::Ci
