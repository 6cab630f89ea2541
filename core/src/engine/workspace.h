// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where a task's files live on this node: its git worktree (the agent's working copy, read
// by gates) and its artifacts directory (task file, logs, reports).

#include "config/projectconfig.h"

#include <sluice/error.h>

#include <QString>

namespace Sluice {

struct TaskRecord;

class SLUICE_EXPORT Workspace
{
public:
    explicit Workspace(const QString &stateDir);

    [[nodiscard]] QString worktreePath(const QString &projectId, qint64 taskId) const;
    [[nodiscard]] QString artifactsPath(const QString &projectId, qint64 taskId) const;
    [[nodiscard]] QString taskFilePath(const QString &projectId, qint64 taskId) const;

    /**
     * Makes sure the task's worktree exists: `git worktree add -B <branch> <path> <target>`
     * from the project's local repository the first time, reused afterwards (work from a
     * failed attempt is kept). Also creates the artifacts directory.
     */
    [[nodiscard]] Result<QString> ensureWorktree(const ProjectConfig &project, const TaskRecord &task) const;
    /**
     * Removes the worktree of a finished task (`git worktree remove --force`, then prune); its
     * branch and commits stay in the repository. False when there was none. Blocked tasks
     * keep theirs, so nothing an agent left is lost.
     */
    [[nodiscard]] Result<bool> removeWorktree(const ProjectConfig &project, qint64 taskId) const;
    /// Writes the task file the agent reads: title, then description (rollback findings included).
    [[nodiscard]] Result<QString> writeTaskFile(const TaskRecord &task) const;

private:
    QString m_stateDir;
};

} // namespace Sluice
