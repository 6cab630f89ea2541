// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file checkruns.h
 * Check runs: the second kind of CI result a forge may keep beside commit statuses (GitHub's
 * Checks API; what GitHub Actions reports). A forge connector that has them implements
 * CheckRunReader in addition to Forge; callers find it with
 * `qobject_cast<Sluice::CheckRunReader *>(forge)`.
 *
 * A check run and a commit status of the same name are two requirements, never one: a forge
 * that has both (GitHub) requires both to pass when that name is required, so a caller must
 * judge each kind on its own and never let one stand in for the other.
 *
 * @since SDK API 1.2
 */

#include <sluice/forge.h>

#include <QDateTime>
#include <QList>
#include <QString>
#include <QtPlugin>

#include <memory>

namespace Sluice {

/**
 * One check run of a commit, as the forge reports it.
 * @since SDK API 1.2
 */
struct SLUICE_EXPORT CheckRun {
    qint64 id = 0;          ///< The check run's id (its own id space, unrelated to commit status ids).
    QString name;           ///< The name a required check matches.
    QString status;         ///< "queued", "in_progress", "completed", "waiting", "requested" or "pending".
    QString conclusion;     ///< When completed: "success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required", "stale"; else empty.
    StatusState state = StatusState::Pending; ///< status and conclusion as a state: not completed is Pending, neutral is Warning.
    QDateTime startedAt;    ///< Invalid when the run has not started (the forge sends null).
    QDateTime completedAt;  ///< Invalid until completed.
    QString appSlug;        ///< The app that made it ("github-actions"); empty when not told.
    qint64 checkSuiteId = 0;
    QString detailsUrl;     ///< Where people read about it; may be empty.
};

/**
 * The check runs of a forge, and the one write Sluice makes on them: asking the forge to run
 * a failed check again.
 * @since SDK API 1.2
 */
class SLUICE_EXPORT CheckRunReader
{
public:
    virtual ~CheckRunReader();

    /**
     * The latest check run of each name on @p sha (every page; a malformed or partial answer is
     * an Error, never a shorter list), newest first. A run not started yet has no start time.
     */
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QList<CheckRun>>> checkRuns(const QString &sha) = 0;

    /**
     * Asks the forge to run @p run again (for GitHub Actions: re-run the job and the jobs that
     * depend on it). Refused (InvalidArgument) for a run this connector cannot re-run, e.g. one
     * made by another app; PermissionDenied naming the missing permission when the token may not.
     * A new check run of the same name appears later; nothing here changes @p run's conclusion.
     */
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Done>> rerunCheckRun(const CheckRun &run) = 0;
};

} // namespace Sluice

Q_DECLARE_INTERFACE(Sluice::CheckRunReader, "org.sluice.CheckRunReader/1.2")
