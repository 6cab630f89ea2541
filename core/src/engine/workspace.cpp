// SPDX-License-Identifier: Apache-2.0
#include "engine/workspace.h"

#include "store/taskstore.h"

#include <QDir>
#include <QMutex>
#include <QFile>
#include <QFileInfo>
#include <QLoggingCategory>
#include <QProcess>

namespace Sluice {

Q_LOGGING_CATEGORY(lcWorkspace, "sluice.core.workspace", QtInfoMsg)

namespace {
Result<QString> git(const QStringList &arguments)
{
    QProcess p;
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(QStringLiteral("git"), arguments);
    // Worktree creation is a local, bounded operation; a stuck git is a fault worth failing on.
    if (!p.waitForFinished(120000)) {
        p.kill();
        p.waitForFinished(1000);
        return fail(ErrorCode::Timeout, QStringLiteral("git %1 did not finish").arg(arguments.join(QLatin1Char(' '))));
    }
    const QString output = QString::fromUtf8(p.readAll()).trimmed();
    if (p.exitStatus() != QProcess::NormalExit || p.exitCode() != 0)
        return fail(ErrorCode::Io, QStringLiteral("git %1 failed").arg(arguments.join(QLatin1Char(' '))), output);
    return output;
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

Result<QString> Workspace::ensureWorktree(const ProjectConfig &project, const TaskRecord &task) const
{
    const QString path = worktreePath(project.id, task.id);
    if (!QDir().mkpath(artifactsPath(project.id, task.id)))
        return fail(ErrorCode::Io, QStringLiteral("cannot create %1").arg(artifactsPath(project.id, task.id)));
    // Worktrees are created from worker threads; git takes locks in the repository, so one
    // creation at a time (and a second job of the same task finds the first one's worktree).
    static QMutex creating;
    QMutexLocker lock(&creating);
    if (QFileInfo::exists(path + QStringLiteral("/.git")))
        return path;
    if (project.repositoryPath.isEmpty())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("project %1 has no local repository path to create worktrees from").arg(project.id));
    if (!QDir().mkpath(QFileInfo(path).absolutePath()))
        return fail(ErrorCode::Io, QStringLiteral("cannot create %1").arg(QFileInfo(path).absolutePath()));
    auto added = git({QStringLiteral("-C"), project.repositoryPath, QStringLiteral("worktree"), QStringLiteral("add"),
                      QStringLiteral("-B"), task.branch, path, project.targetBranch});
    if (!added)
        return std::unexpected(added.error());
    qCInfo(lcWorkspace).noquote() << "created worktree" << path << "on branch" << task.branch << "for task" << task.id;
    return path;
}

Result<bool> Workspace::removeWorktree(const ProjectConfig &project, qint64 taskId) const
{
    const QString path = worktreePath(project.id, taskId);
    static QMutex removing;
    QMutexLocker lock(&removing);
    if (!QFileInfo::exists(path))
        return false;
    if (project.repositoryPath.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("project %1 has no local repository path").arg(project.id));
    // The branch and its commits stay in the repository; only the checkout goes.
    auto removed = git({QStringLiteral("-C"), project.repositoryPath, QStringLiteral("worktree"), QStringLiteral("remove"),
                        QStringLiteral("--force"), path});
    if (!removed)
        return std::unexpected(removed.error());
    (void)git({QStringLiteral("-C"), project.repositoryPath, QStringLiteral("worktree"), QStringLiteral("prune")});
    qCInfo(lcWorkspace).noquote() << "removed worktree" << path << "of finished task" << taskId;
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
