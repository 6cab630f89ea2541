// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file task.h
 * One unit of work: a tracker issue, a branch and a pull request moving through stages.
 */

#include <sluice/global.h>

#include <QDateTime>
#include <QString>

namespace Sluice {

/// A task as plugins see it. The engine owns the task; plugins get copies.
struct SLUICE_EXPORT TaskInfo {
    qint64 id = 0;          ///< Store id.
    QString projectId;      ///< Project the task belongs to.
    QString title;          ///< One-line summary.
    QString description;    ///< What the agent is asked to do, including rollback findings.
    QString branch;         ///< The task's branch in the project repository.
    QString stage;          ///< Current stage name.
    QString headSha;        ///< Last known head commit of the branch; may be empty.
    QString trackerRef;     ///< Issue id in the tracker; may be empty.
    qint64 pullRequest = 0; ///< Pull request number at the forge, or 0.
    int retries = 0;        ///< Rollbacks so far (red policy).
    QDateTime createdAt;
    QDateTime updatedAt;
};

} // namespace Sluice
