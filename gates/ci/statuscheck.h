// SPDX-License-Identifier: Apache-2.0
#pragma once

// Judging commit statuses: the latest status per context, whether each required context
// passes, and the CI-umbrella compensation decision. Pure functions: every input is given,
// the clock included, so the decision matrix is testable as a table.

#include <sluice/forge.h>

#include <QDateTime>
#include <QHash>
#include <QJsonObject>
#include <QSet>
#include <QStringList>

#include <optional>

namespace Sluice::Ci {

/// The latest status of each context: the greatest update time, then the greatest id.
[[nodiscard]] QHash<QString, CommitStatus> latestByContext(const QList<CommitStatus> &statuses);

/// One required context as judged.
struct ContextJudgement {
    QString context;
    std::optional<CommitStatus> latest; ///< Empty: no status at all.
    bool passes = false;                ///< Only a latest state of success passes.
    QString reason;                     ///< Names the context: "'CI / lint (pull_request)' failed".

    [[nodiscard]] QJsonObject toJson() const;
};

/// Judges every context of @p required against the latest statuses.
[[nodiscard]] QList<ContextJudgement> judgeRequired(const QStringList &required, const QHash<QString, CommitStatus> &latest);

/// What the compensator decides for one pull request.
enum class Decision {
    Compensate,         ///< Post one compensating success on the umbrella.
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
    QString umbrella;               ///< The umbrella context.
    QStringList required;           ///< Required sub-job contexts (the umbrella is ignored here).
    QDateTime now;
    qint64 thresholdMs = 5 * 60 * 1000;
    QSet<qint64> compensatedUmbrellaIds; ///< Umbrella status ids compensated before.
};

struct CompensationDecision {
    Decision decision = Decision::SubJobNotGreen;
    QString reason;
    std::optional<CommitStatus> umbrella;
    QList<ContextJudgement> subJobs;

    /// The evidence: the umbrella status and every sub-job status seen.
    [[nodiscard]] QJsonObject evidence() const;
};

[[nodiscard]] CompensationDecision decideCompensation(const CompensationInput &input);

} // namespace Sluice::Ci
