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
    if (!start.isEmpty()) {
        // The head may have been made on another node: for a project on a remote forge it is
        // there (the publish step pushed it), for the local forge it is in the shared repository.
        auto present = repo.hasCommit(start);
        if (!present)
            return std::unexpected(present.error());
        if (!*present) {
            if (auto fetched = repo.fetchTaskBranch(task.branch); !fetched)
                return std::unexpected(fetched.error());
            present = repo.hasCommit(start);
            if (!present)
                return std::unexpected(present.error());
            if (!*present)
                return fail(ErrorCode::NotFound,
                            QStringLiteral("task %1: its recorded head %2 is neither in %3 nor at the forge; the node that took it has "
                                           "not pushed it (see `sluice task %1` for the job that made it)")
                                .arg(task.id).arg(start.left(12), project.repositoryPath));
        }
    }
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
    return harvest(project, task, why, worktreePath(project.id, task.id));
}

Result<QString> Workspace::harvest(const ProjectConfig &project, const TaskRecord &task, const QString &why,
                                   const QString &path) const
{
    if (!QFileInfo(path + QStringLiteral("/.git")).isDir())
        return fail(ErrorCode::NotFound, QStringLiteral("task %1 has no working copy at %2").arg(task.id).arg(path));
    const ProjectRepository repo = repository(project);
    auto before = repo.branchHead(task.branch);
    if (!before)
        return std::unexpected(before.error());
    return repo.takeBranch(path, task.branch, before->value_or(QString()), why);
}

const QString Workspace::StageFilesDirectory = QStringLiteral(".sluice");

Result<QList<StageFile>> Workspace::stageFiles(const QString &workingCopy)
{
    QList<StageFile> files;
    const QDir root(workingCopy);
    const QString top = root.filePath(StageFilesDirectory);
    const QFileInfo topInfo(top);
    if (!topInfo.exists() && !topInfo.isSymLink())
        return files;
    if (topInfo.isSymLink() || !topInfo.isDir())
        return fail(ErrorCode::Malformed, QStringLiteral("%1 is not a directory (a link or a file): gates read what a job leaves "
                                                         "there, and only plain files are kept").arg(top));
    qint64 total = 0;
    QStringList pending{top};
    while (!pending.isEmpty()) {
        const QDir dir(pending.takeFirst());
        const QFileInfoList entries = dir.entryInfoList(QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot, QDir::Name);
        for (const QFileInfo &entry : entries) {
            const QString relative = root.relativeFilePath(entry.filePath());
            if (entry.isSymLink())
                return fail(ErrorCode::Malformed, QStringLiteral("%1 in the working copy is a link; only plain files under %2/ are kept for gates")
                                                      .arg(relative, StageFilesDirectory));
            if (entry.isDir()) {
                pending.append(entry.filePath());
                continue;
            }
            if (!entry.isFile())
                return fail(ErrorCode::Malformed, QStringLiteral("%1 in the working copy is not a plain file").arg(relative));
            total += entry.size();
            if (total > StageFilesLimit)
                return fail(ErrorCode::Malformed, QStringLiteral("the files under %1/ of the working copy hold more than %2 bytes; gates on "
                                                                 "any node read them from the store, so keep what a job leaves there small")
                                                      .arg(StageFilesDirectory).arg(StageFilesLimit));
            QFile f(entry.filePath());
            if (!f.open(QIODevice::ReadOnly))
                return fail(ErrorCode::Io, QStringLiteral("cannot read %1").arg(entry.filePath()), f.errorString());
            files.append(StageFile{relative, f.readAll()});
        }
    }
    return files;
}

Result<QString> Workspace::prepareForGates(const ProjectConfig &project, const TaskRecord &task, const QList<StageFile> &files) const
{
    auto path = ensureWorktree(project, task);
    if (!path)
        return path;
    const QDir root(*path);
    const QString top = root.filePath(StageFilesDirectory);
    // Exactly what the last job left: nothing older stays beside it.
    if (QFileInfo(top).isSymLink() ? !QFile::remove(top) : (QFileInfo::exists(top) && !QDir(top).removeRecursively()))
        return fail(ErrorCode::Io, QStringLiteral("cannot clear %1").arg(top));
    for (const StageFile &file : files) {
        const QString clean = QDir::cleanPath(file.path);
        if (!clean.startsWith(StageFilesDirectory + QLatin1Char('/')) || clean.contains(QLatin1String("/../")))
            return fail(ErrorCode::Malformed, QStringLiteral("stage file '%1' of task %2 is not under %3/").arg(file.path).arg(task.id).arg(StageFilesDirectory));
        const QString target = root.filePath(clean);
        if (!QDir().mkpath(QFileInfo(target).absolutePath()))
            return fail(ErrorCode::Io, QStringLiteral("cannot create %1").arg(QFileInfo(target).absolutePath()));
        QFile f(target);
        if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(file.content) != file.content.size())
            return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(target), f.errorString());
    }
    return path;
}

int Workspace::removeFinishedWorktrees(const ProjectConfig &project, const std::function<bool(qint64)> &done) const
{
    const QDir dir(QDir(m_stateDir).filePath(QStringLiteral("worktrees/%1").arg(project.id)));
    int removed = 0;
    for (const QString &name : dir.entryList({QStringLiteral("task-*")}, QDir::Dirs | QDir::NoDotAndDotDot)) {
        bool ok = false;
        const qint64 id = name.mid(5).toLongLong(&ok);
        if (!ok || !done(id))
            continue;
        if (auto gone = removeWorktree(project, id); gone && *gone)
            ++removed;
    }
    return removed;
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
    if (!scratch.isEmpty()) {
        // Gates keep worktrees of the project's repository there. Only this task's worktree is
        // unregistered (`worktree remove --force` also clears one whose directory is gone),
        // never `worktree prune`: prune deletes any registration that has no gitdir file yet,
        // which is what another task's `worktree add` running at that moment looks like, and
        // that add then fails ("could not open …/locked") and blocks its task.
        (void)runHostGit(repo.path(), {QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), scratch}, {128});
        QDir(scratch).removeRecursively();
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
