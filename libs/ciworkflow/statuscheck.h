// SPDX-License-Identifier: Apache-2.0
#pragma once

// Judging commit statuses and check runs: the latest of each kind per name, whether each
// required context passes, waits or is red, and the CI-umbrella compensation decision. Pure
// functions: every input is given, the clock included, so the decision matrix is testable as a
// table.
//
// A commit status and a check run of the same name are two requirements (GitHub requires both
// when that name is required): each kind is judged on its own latest entry, ordered within its
// own id space, and a name passes only when every kind present passes.

#include <sluice/checkruns.h>
#include <sluice/forge.h>

#include <QDateTime>
#include <QHash>
#include <QJsonObject>
#include <QSet>
#include <QStringList>

#include <optional>

namespace Sluice::Ci {

/// The latest status of each context: the one posted last (the greatest id), as the forge judges
/// it, whatever the timestamps say.
[[nodiscard]] QHash<QString, CommitStatus> latestByContext(const QList<CommitStatus> &statuses);
/// The latest check run of each name: the greatest check-run id (a re-run is a newer id).
[[nodiscard]] QHash<QString, CheckRun> latestRunByName(const QList<CheckRun> &runs);

/// What a required check accepts besides success.
enum class Semantics {
    Strict, ///< Only success passes (the default): skipped, neutral, cancelled … are red.
    Forge,  ///< As GitHub's branch protection: a check run concluded skipped or neutral passes too.
};
/// "strict" or "forge" from the setting; nullopt for anything else.
[[nodiscard]] std::optional<Semantics> semanticsFromName(const QString &name);

/// Where a required context stands.
enum class Outcome {
    Passes,  ///< Every kind present passed.
    Pending, ///< Nothing red, but something is pending or not reported yet.
    Red,     ///< Some kind ended badly: waiting will not make it pass.
};

/// One required context as judged.
struct ContextJudgement {
    QString context;
    std::optional<CommitStatus> latest;   ///< The latest commit status; empty: none.
    std::optional<CheckRun> checkRun;     ///< The latest check run; empty: none.
    Outcome outcome = Outcome::Pending;
    bool passes = false;                  ///< outcome == Passes.
    /// Passes only under Semantics::Forge (a skipped or neutral check run): what ci-drift reports.
    bool passesOnlyAsForge = false;
    QString reason;                       ///< Names the context: "'CI / lint (pull_request)' failed".

    [[nodiscard]] QJsonObject toJson() const;
};

/// Judges every context of @p required against the latest statuses and check runs.
[[nodiscard]] QList<ContextJudgement> judgeRequired(const QStringList &required, const QHash<QString, CommitStatus> &latest,
                                                    const QHash<QString, CheckRun> &runs = {}, Semantics semantics = Semantics::Strict);
/// Judges one context.
[[nodiscard]] ContextJudgement judgeContext(const QString &context, const QHash<QString, CommitStatus> &latest,
                                            const QHash<QString, CheckRun> &runs, Semantics semantics);

/// What the compensator decides for one pull request.
enum class Decision {
    Compensate,         ///< Post one compensating success on the umbrella status, or re-run the umbrella check run.
    UmbrellaMissing,    ///< The umbrella has no status: nothing to compensate.
    UmbrellaSuccess,    ///< The umbrella is already success.
    UmbrellaNotFailure, ///< The umbrella is pending, error, skipped...: only a failure is compensated.
    AlreadyCompensated, ///< This umbrella status was compensated before.
    SubJobNotGreen,     ///< A required sub-job is missing, pending or not success.
    TooYoung,           ///< The umbrella failure is younger than the threshold.
};
[[nodiscard]] QString decisionName(Decision decision);

struct CompensationInput {
    QList<CommitStatus> statuses;   ///< Every status of the head commit.
    QList<CheckRun> checkRuns;      ///< Every check run of the head commit (GitHub); empty elsewhere.
    QString umbrella;               ///< The umbrella context.
    QStringList required;           ///< Required sub-job contexts (the umbrella is ignored here).
    QDateTime now;
    qint64 thresholdMs = 5 * 60 * 1000;
    QSet<qint64> compensatedUmbrellaIds; ///< Umbrella status ids compensated before.
    QSet<qint64> rerunUmbrellaRunIds;    ///< Umbrella check-run ids re-run before.
};

struct CompensationDecision {
    Decision decision = Decision::SubJobNotGreen;
    QString reason;
    std::optional<CommitStatus> umbrella;   ///< The umbrella's latest commit status.
    std::optional<CheckRun> umbrellaRun;    ///< The umbrella's latest check run.
    /// For Compensate: the failure to repair is the check run (re-run its job), never covered by a status.
    bool rerun = false;
    QList<ContextJudgement> subJobs;

    /// The evidence: the umbrella status and every sub-job status seen.
    [[nodiscard]] QJsonObject evidence() const;
};

[[nodiscard]] CompensationDecision decideCompensation(const CompensationInput &input);

} // namespace Sluice::Ci
