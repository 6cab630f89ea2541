// SPDX-License-Identifier: Apache-2.0
#pragma once

// The merge gate's progress markers: how far the merge of one task's head got, kept in the
// instance's state store under "progress/<task>/<head>" so a re-drive after a crash skips
// what is done. The outside state (the pull request, the remote branch) is always read
// again; a marker only saves work, it never decides that a merge happened.

#include <sluice/services.h>

#include <QJsonObject>
#include <QString>

#include <optional>

namespace Sluice::Merge {

/// How far the merge of one head got, in order.
enum class MergeStep {
    Rebased, ///< The worktree's branch is on top of the target commit @ref MergeProgress::base.
    Pushed,  ///< The remote branch is at the head.
    Checked, ///< The required checks on the head were green.
    Merging, ///< The merge call is about to be sent (it may or may not have reached the forge).
    Merged,  ///< The forge shows the pull request merged.
};

[[nodiscard]] QString mergeStepName(MergeStep step);

struct MergeProgress {
    MergeStep step = MergeStep::Rebased;
    QString head;       ///< The task's head this marker is about (after any rebase).
    QString base;       ///< The target commit the head was checked to be on top of.
    QString previous;   ///< The head before the rebase; equal to @ref head when none was needed.
    qint64 pullRequest = 0;

    [[nodiscard]] QJsonObject toJson() const;
    /// Malformed for anything that is not a marker this code wrote.
    [[nodiscard]] static Result<MergeProgress> fromJson(const QByteArray &bytes);
};

/// "progress/<task>/<head>".
[[nodiscard]] QString progressKey(qint64 taskId, const QString &head);

/// The marker of @p taskId at @p head; std::nullopt when there is none.
[[nodiscard]] Result<std::optional<MergeProgress>> readProgress(StateStore &state, qint64 taskId, const QString &head);
[[nodiscard]] Result<void> writeProgress(StateStore &state, qint64 taskId, const MergeProgress &progress);

} // namespace Sluice::Merge
