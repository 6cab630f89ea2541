// SPDX-License-Identifier: Apache-2.0
#pragma once

// One judgement of the required CI checks on one commit, as the ci gate makes it: resolve the
// required contexts, read every commit status (and every check run, where the forge has them),
// judge each context and the umbrella. Shared by the ci gate and the merge gate (which waits for
// the checks on the head it pushed), with the waiting rules both follow.

#include "requiredsource.h"
#include "statuscheck.h"

#include <sluice/services.h>
#include <sluice/verdict.h>

#include <chrono>

namespace Sluice::Ci {

/// The required contexts of one commit, each judged on its latest status and check run.
struct RequiredCheck {
    QString sha;
    QString workflow;
    QList<ContextJudgement> contexts;     ///< The required sub-jobs (or listed contexts).
    std::optional<ContextJudgement> umbrella; ///< The umbrella, when there is one: the forge requires it too.
    Semantics semantics = Semantics::Strict;
    int statusesRead = 0;
    int checkRunsRead = 0;

    /// Green: every required context and the umbrella pass. Red: some required context ended
    /// badly (waiting will not help). Pending otherwise, including an umbrella that failed while
    /// no required context did (a stale umbrella: the ci-umbrella sweeper or a re-run repairs it).
    [[nodiscard]] Outcome outcome() const;
    [[nodiscard]] bool green() const { return outcome() == Outcome::Passes; }
    [[nodiscard]] bool red() const { return outcome() == Outcome::Red; }
    /// The judgements that do not pass yet, umbrella included ("'X' is pending").
    [[nodiscard]] QStringList notPassing() const;
    /// The evidence: sha, workflow, every context with what decided it, the umbrella.
    [[nodiscard]] QJsonObject evidence() const;
    /// Pass when green, else fail with one finding per context that does not pass.
    [[nodiscard]] GateVerdict verdict() const;
};

/// How long a commit's checks may stay pending, and how often to look again.
struct WaitPolicy {
    std::chrono::milliseconds ciTimeout{std::chrono::hours(2)};
    std::chrono::milliseconds retryAfter{std::chrono::minutes(1)};

    /// `ci_timeout` and `retry_after` from settings (durations in ms); errors name the key.
    [[nodiscard]] static Result<WaitPolicy> fromSettings(const QVariantMap &settings);
};

/**
 * When @p sha was first judged, from @p state (key "first-judged/<sha>"), recording @p now the
 * first time, so a restart does not reset the timeout. Without a state store, @p memory keeps it
 * for the life of the instance.
 */
[[nodiscard]] Result<QDateTime> firstJudged(StateStore *state, QHash<QString, QDateTime> &memory, const QString &sha, const QDateTime &now);
/// Forgets @p sha's first-judged time (the judgement is final: pass, red or timed out).
void forgetJudged(StateStore *state, QHash<QString, QDateTime> &memory, const QString &sha);

/**
 * The ci gate's verdict on @p check: pass when green, fail when red, and while pending a wait
 * (retry after @p policy.retryAfter) until @p policy.ciTimeout has passed since @p since, then a
 * fail naming the contexts still pending.
 */
[[nodiscard]] GateVerdict waitingVerdict(const RequiredCheck &check, const WaitPolicy &policy, const QDateTime &since, const QDateTime &now);

/**
 * Judges the required checks of @p sha (see resolveRequired() for where the contexts come
 * from); @p done gets the judgement once, or an Error when the contexts, the statuses or the
 * check runs cannot be read. Nothing is called if @p owner is destroyed first.
 */
void checkRequired(Forge &forge, const RequiredSpec &spec, const QString &sha, const QString &targetBranch,
                   QObject *owner, std::function<void(Result<RequiredCheck>)> done);

} // namespace Sluice::Ci
