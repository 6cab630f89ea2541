// SPDX-License-Identifier: Apache-2.0
#pragma once

// One judgement of the required CI checks on one commit, as the ci gate makes it: resolve the
// required contexts, read every status, judge each context. Shared by the ci gate and the
// merge gate (which waits for the checks on the head it pushed).

#include "requiredsource.h"
#include "statuscheck.h"

#include <sluice/verdict.h>

namespace Sluice::Ci {

/// The required contexts of one commit, each judged on its latest status.
struct RequiredCheck {
    QString sha;
    QString workflow;
    QList<ContextJudgement> contexts;
    int statusesRead = 0;

    /// Every required context's latest status is success.
    [[nodiscard]] bool green() const;
    /// Some required context ended badly (failure, error, cancelled, skipped, warning):
    /// waiting longer will not make this commit green.
    [[nodiscard]] bool red() const;
    /// The ci gate's verdict: pass when green, else fail with one finding per context.
    [[nodiscard]] GateVerdict verdict() const;
};

/**
 * Judges the required checks of @p sha (see resolveRequired() for where the contexts come
 * from); @p done gets the judgement once, or an Error when the contexts or the statuses
 * cannot be read. Nothing is called if @p owner is destroyed first.
 */
void checkRequired(Forge &forge, const RequiredSpec &spec, const QString &sha, const QString &targetBranch,
                   QObject *owner, std::function<void(Result<RequiredCheck>)> done);

} // namespace Sluice::Ci
