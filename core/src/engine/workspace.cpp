// SPDX-License-Identifier: Apache-2.0
#include "engine/workspace.h"

#include "store/taskstore.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLoggingCategory>
#include <QMutex>

namespace Sluice {

Q_LOGGING_CATEGORY(lcWorkspace, "sluice.core.workspace", QtInfoMsg)

namespace {
// Working copies are made from worker threads; one at a time keeps a second job of the same
// task from racing the first one's creation.
QMutex &workingCopyLock()
{
    static QMutex lock;
    return lock;
}

// git in an existing working copy: it belongs to the agent, so nothing it configured may run
// (hooks, an fsmonitor command); only reading commands are used there.
QStringList inWorkingCopy(const QStringList &arguments)
{
    return QStringList{QStringLiteral("-c"), QStringLiteral("core.hooksPath=/dev/null"),
                       QStringLiteral("-c"), QStringLiteral("core.fsmonitor=false")} + arguments;
}

QString refsFile(const QString &artifacts, qint64 jobId)
{
    return QDir(artifacts).filePath(QStringLiteral("refs-before-job%1.txt").arg(jobId));
}

bool isLegacyWorktree(const QString &path)
{
    // A `git worktree add` checkout has a .git file pointing into the project's repository.
    return QFileInfo(path + QStringLiteral("/.git")).isFile();
}

Result<void> removeLegacyWorktree(const ProjectRepository &repository, const QString &path)
{
    auto removed = runHostGit(repository.path(), {QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), path}, {128});
    if (!removed)
        return std::unexpected(removed.error());
    QDir(path).removeRecursively();
    (void)runHostGit(repository.path(), {QStringLiteral("worktree"), QStringLiteral("prune")});
    return {};
}
} // namespace

Workspace::Workspace(const QString &stateDir)
    : m_stateDir(stateDir)
{
}

QString Workspace::worktreePath(const QString &projectId, qint64 taskId) const
{
    return QDir(m_stateDir).filePath(QStringLiteral("worktrees/%1/task-%2").arg(projectId).arg(taskId));
}

QString Workspace::artifactsPath(const QString &projectId, qint64 taskId) const
{
    return QDir(m_stateDir).filePath(QStringLiteral("artifacts/%1/task-%2").arg(projectId).arg(taskId));
}

QString Workspace::taskFilePath(const QString &projectId, qint64 taskId) const
{
    return QDir(artifactsPath(projectId, taskId)).filePath(QStringLiteral("task.md"));
}

ProjectRepository Workspace::repository(const ProjectConfig &project) const
{
    return ProjectRepository(project, m_stateDir);
}

Result<QString> Workspace::ensureWorktree(const ProjectConfig &project, const TaskRecord &task) const
{
    const QString path = worktreePath(project.id, task.id);
    if (!QDir().mkpath(artifactsPath(project.id, task.id)))
        return fail(ErrorCode::Io, QStringLiteral("cannot create %1").arg(artifactsPath(project.id, task.id)));
    if (project.repositoryPath.isEmpty())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("project %1 has no local repository path to create working copies from").arg(project.id));
    if (auto ok = checkTaskBranchName(task.branch, project.targetBranch); !ok)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("task %1: %2").arg(task.id).arg(ok.error().message));
    const ProjectRepository repo = repository(project);
    QMutexLocker lock(&workingCopyLock());
    if (auto reflogs = repo.ensureReflogs(); !reflogs)
        return std::unexpected(reflogs.error());

    if (isLegacyWorktree(path)) {
        // An older Sluice made worktrees of the project's repository, which gave agents its
        // references. Its committed work is on the task branch there already.
        if (auto removed = removeLegacyWorktree(repo, path); !removed)
            return std::unexpected(removed.error());
        qCWarning(lcWorkspace).noquote() << "replaced the shared worktree" << path << "of task" << task.id
                                         << "by a working copy of its own (uncommitted changes in it are gone)";
    } else if (QFileInfo(path + QStringLiteral("/.git")).isDir()) {
        if (task.headSha.isEmpty())
            return path;
        // Keep it (a failed attempt's commits included) only while it builds on the recorded head.
        auto contains = runHostGit(path, inWorkingCopy({QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), task.headSha,
                                                         QStringLiteral("refs/heads/") + task.branch}),
                                   {1, 128});
        if (contains && contains->exitCode == 0)
            return path;
        qCInfo(lcWorkspace).noquote() << "working copy of task" << task.id << "no longer holds its recorded head"
                                      << task.headSha.left(12) << "- making it anew";
    }

    // A new working copy: a repository of our own, never a worktree of the project's.
    if (QFileInfo::exists(path) && !QDir(path).removeRecursively())
        return fail(ErrorCode::Io, QStringLiteral("cannot remove the old working copy %1").arg(path));
    if (!QDir().mkpath(path))
        return fail(ErrorCode::Io, QStringLiteral("cannot create %1").arg(path));
    auto target = repo.refreshTarget();
    if (!target)
        return std::unexpected(target.error());
    QString start = task.headSha;
    if (start.isEmpty()) {
        auto existing = repo.branchHead(task.branch);
        if (!existing)
            return std::unexpected(existing.error());
        start = existing->value_or(*target);
    }
    auto objects = repo.objectsDirectory();
    if (!objects)
        return std::unexpected(objects.error());
    auto made = runHostGit(path, {QStringLiteral("init"), QStringLiteral("--quiet"), QStringLiteral("--initial-branch=") + task.branch});
    if (!made)
        return std::unexpected(made.error());
    // The project's objects, read through alternates: nothing is copied, and what the agent
    // writes goes into the working copy's own object store.
    QFile alternates(QDir(path).filePath(QStringLiteral(".git/objects/info/alternates")));
    if (!alternates.open(QIODevice::WriteOnly | QIODevice::Truncate) || alternates.write(objects->toUtf8() + '\n') < 0)
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(alternates.fileName()), alternates.errorString());
    alternates.close();
    for (const QStringList &step : {QStringList{QStringLiteral("update-ref"), QStringLiteral("refs/heads/") + task.branch, start},
                                    // The target as fetched, under the name agents expect.
                                    QStringList{QStringLiteral("update-ref"), QStringLiteral("refs/remotes/origin/") + project.targetBranch, *target},
                                    QStringList{QStringLiteral("reset"), QStringLiteral("--hard"), QStringLiteral("--quiet")}}) {
        auto done = runHostGit(path, inWorkingCopy(step));
        if (!done)
            return std::unexpected(done.error());
    }
    qCInfo(lcWorkspace).noquote() << "created working copy" << path << "on branch" << task.branch << "at" << start.left(12)
                                  << "for task" << task.id;
    return path;
}

Result<QString> Workspace::harvest(const ProjectConfig &project, const TaskRecord &task, const QString &why) const
{
    const QString path = worktreePath(project.id, task.id);
    if (!QFileInfo(path + QStringLiteral("/.git")).isDir())
        return fail(ErrorCode::NotFound, QStringLiteral("task %1 has no working copy at %2").arg(task.id).arg(path));
    const ProjectRepository repo = repository(project);
    auto before = repo.branchHead(task.branch);
    if (!before)
        return std::unexpected(before.error());
    return repo.takeBranch(path, task.branch, before->value_or(QString()), why);
}

Result<void> Workspace::recordRefsBefore(const ProjectConfig &project, const TaskRecord &task, qint64 jobId) const
{
    const QDateTime at = QDateTime::currentDateTimeUtc();
    auto refs = repository(project).snapshot();
    if (!refs)
        return std::unexpected(refs.error());
    const QString path = refsFile(artifactsPath(project.id, task.id), jobId);
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(path), f.errorString());
    QByteArray text = QByteArray::number(at.toMSecsSinceEpoch()) + '\n';
    for (auto it = refs->cbegin(); it != refs->cend(); ++it)
        text += it.key().toUtf8() + ' ' + it.value().toUtf8() + '\n';
    if (f.write(text) != text.size())
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(path), f.errorString());
    return {};
}

bool Workspace::hasRefsBefore(const ProjectConfig &project, const TaskRecord &task, qint64 jobId) const
{
    return QFileInfo::exists(refsFile(artifactsPath(project.id, task.id), jobId));
}

RunWork Workspace::takeWork(const ProjectConfig &project, const TaskRecord &task, qint64 jobId, bool completed) const
{
    RunWork work;
    const QString file = refsFile(artifactsPath(project.id, task.id), jobId);
    QFile f(file);
    if (f.open(QIODevice::ReadOnly)) {
        const QList<QByteArray> lines = f.readAll().split('\n');
        bool ok = false;
        const QDateTime at = QDateTime::fromMSecsSinceEpoch(lines.value(0).toLongLong(&ok), Qt::UTC);
        RefSnapshot before;
        for (qsizetype i = 1; i < lines.size(); ++i) {
            const int space = lines.at(i).indexOf(' ');
            if (space > 0)
                before.insert(QString::fromUtf8(lines.at(i).left(space)), QString::fromUtf8(lines.at(i).mid(space + 1)));
        }
        if (!ok) {
            work.error = QStringLiteral("the snapshot of the project's references before the run (%1) is unreadable").arg(file);
            return work;
        }
        auto changes = repository(project).changesNotBySluice(before, at);
        if (!changes) {
            work.error = QStringLiteral("cannot look at the project's repository after the run: %1").arg(changes.error().toString());
            return work;
        }
        work.checked = true;
        work.changes = *changes;
        if (!work.changes.isEmpty())
            return work; // kept for whoever looks into it
    }
    if (completed) {
        auto head = harvest(project, task, QStringLiteral("task %1 job %2").arg(task.id).arg(jobId));
        if (!head) {
            work.error = QStringLiteral("cannot take the task branch from its working copy: %1").arg(head.error().toString());
            return work;
        }
        work.head = *head;
    }
    QFile::remove(file);
    return work;
}

Result<bool> Workspace::removeWorktree(const ProjectConfig &project, qint64 taskId) const
{
    const QString path = worktreePath(project.id, taskId);
    QMutexLocker lock(&workingCopyLock());
    const ProjectRepository repo = repository(project);
    const QString scratch = repo.scratchPath(taskId);
    if (!scratch.isEmpty() && QFileInfo::exists(scratch)) {
        // Gates keep worktrees of the project's repository there.
        (void)runHostGit(repo.path(), {QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), scratch}, {128});
        QDir(scratch).removeRecursively();
        (void)runHostGit(repo.path(), {QStringLiteral("worktree"), QStringLiteral("prune")});
    }
    if (!QFileInfo::exists(path))
        return false;
    if (isLegacyWorktree(path)) {
        if (auto removed = removeLegacyWorktree(repo, path); !removed)
            return std::unexpected(removed.error());
    } else if (!QDir(path).removeRecursively()) {
        return fail(ErrorCode::Io, QStringLiteral("cannot remove the working copy %1").arg(path));
    }
    qCInfo(lcWorkspace).noquote() << "removed working copy" << path << "of finished task" << taskId;
    return true;
}

Result<QString> Workspace::writeTaskFile(const TaskRecord &task) const
{
    const QString path = taskFilePath(task.project, task.id);
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return fail(ErrorCode::Io, QStringLiteral("cannot write task file %1").arg(path), f.errorString());
    f.write(QStringLiteral("# %1\n\n%2\n").arg(task.title, task.description).toUtf8());
    return path;
}

} // namespace Sluice
