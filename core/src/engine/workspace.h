// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where a task's files live on this node: its working copy (a git repository of its own in
// which the agent works, read by gates) and its artifacts directory (task file, logs,
// reports). The working copy is not the project's repository: the host takes the task branch
// from it after each job (harvest) and records its head. See docs/adr/0013-task-working-copies.md.

#include "config/projectconfig.h"
#include "repository/projectrepository.h"
#include "store/taskstore.h"

#include <sluice/error.h>

#include <QString>

#include <functional>

namespace Sluice {

struct TaskRecord;

/// What a finished run did, as the host sees it afterwards (Workspace::takeWork()).
struct RunWork {
    bool checked = false;         ///< The snapshot taken before the run was found and compared.
    QList<RefChange> changes;     ///< Changes to the project's references not made by Sluice.
    QString error;                ///< The repository could not be looked at, or the branch not taken.
    std::optional<QString> head;  ///< The task branch's commit taken (completed runs without changes).
};

class Workspace
{
public:
    explicit Workspace(const QString &stateDir);

    [[nodiscard]] QString stateDir() const { return m_stateDir; }
    [[nodiscard]] QString worktreePath(const QString &projectId, qint64 taskId) const;
    [[nodiscard]] QString artifactsPath(const QString &projectId, qint64 taskId) const;
    [[nodiscard]] QString taskFilePath(const QString &projectId, qint64 taskId) const;
    /// The project's repository as the host keeps it.
    [[nodiscard]] ProjectRepository repository(const ProjectConfig &project) const;

    /**
     * Makes sure the task's working copy exists and holds the task's work: a repository of
     * its own (objects shared read-only with the project's repository through alternates, no
     * remote) on the task branch. Reused as it is — a failed attempt's work included — while
     * its branch still contains the task's recorded head; otherwise (the head moved elsewhere:
     * a rebase by the merge gate, another node's job) made anew from the recorded head, or,
     * before any, from the project's copy of the task branch or the freshly fetched target.
     * A worktree of the project's repository left by an older Sluice is replaced.
     * Also creates the artifacts directory.
     */
    [[nodiscard]] Result<QString> ensureWorktree(const ProjectConfig &project, const TaskRecord &task) const;
    /**
     * Takes the task branch from the working copy into the project's repository (a
     * compare-and-swap on the branch; only that branch, never the target) and returns its
     * head. @p why goes into the reflog ("task 3 job 7").
     */
    [[nodiscard]] Result<QString> harvest(const ProjectConfig &project, const TaskRecord &task, const QString &why) const;
    /// harvest() from the working copy at @p workingCopy (one another node made on this machine).
    [[nodiscard]] Result<QString> harvest(const ProjectConfig &project, const TaskRecord &task, const QString &why,
                                          const QString &workingCopy) const;

    /// The directory of a working copy whose files a job leaves for gates.
    static const QString StageFilesDirectory; // ".sluice"
    /// At most this many bytes of stage files per job (they travel through the store).
    static constexpr qint64 StageFilesLimit = 1024 * 1024;
    /**
     * The files under .sluice/ of the working copy at @p workingCopy, as gates read them:
     * regular files only, by path relative to the copy. An error when a file cannot be read,
     * is a link or special file, or when they hold more than StageFilesLimit bytes: gates on
     * other nodes read them from the store, and a cut file must never be judged.
     */
    [[nodiscard]] static Result<QList<StageFile>> stageFiles(const QString &workingCopy);
    /**
     * Makes this node's working copy of @p task ready for its gates: it holds the recorded
     * head (made anew from it when it does not; see ensureWorktree()) and its .sluice/
     * directory holds exactly @p files, what the task's last job left there, wherever it ran.
     * Returns the working copy's path.
     */
    [[nodiscard]] Result<QString> prepareForGates(const ProjectConfig &project, const TaskRecord &task,
                                                  const QList<StageFile> &files) const;
    /**
     * Removes the working copies (and gates' scratch space) this node keeps of finished
     * tasks that another node finished; @p done says whether a task id is done. Returns how
     * many it removed.
     */
    [[nodiscard]] int removeFinishedWorktrees(const ProjectConfig &project, const std::function<bool(qint64)> &done) const;
    /**
     * Removes the working copy (and gates' scratch space) of a finished task; its branch and
     * commits stay in the project's repository. False when there was none. Blocked tasks
     * keep theirs, so nothing an agent left is lost.
     */
    [[nodiscard]] Result<bool> removeWorktree(const ProjectConfig &project, qint64 taskId) const;
    /**
     * Takes a snapshot of the project's references before job @p jobId's run and keeps it
     * beside the task's artifacts, so whoever concludes the run — the worker, or after a
     * restart the worker adopting it or the reaper — can compare (takeWork()).
     */
    [[nodiscard]] Result<void> recordRefsBefore(const ProjectConfig &project, const TaskRecord &task, qint64 jobId) const;
    /// Whether job @p jobId has a snapshot from before its run.
    [[nodiscard]] bool hasRefsBefore(const ProjectConfig &project, const TaskRecord &task, qint64 jobId) const;
    /**
     * After job @p jobId's run: compares the project's references with the snapshot from
     * before it (when there is one) and, for a @p completed run that changed nothing it should
     * not have, takes the task branch (harvest()). Blocking: call it off the event loop.
     */
    [[nodiscard]] RunWork takeWork(const ProjectConfig &project, const TaskRecord &task, qint64 jobId, bool completed) const;
    /// Writes the task file the agent reads: title, then description (rollback findings included).
    [[nodiscard]] Result<QString> writeTaskFile(const TaskRecord &task) const;

private:
    QString m_stateDir;
};

} // namespace Sluice
