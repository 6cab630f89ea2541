// SPDX-License-Identifier: Apache-2.0
#pragma once

// The project's repository as the host keeps it (repository.path: the "canonical"
// repository). Agents never work in it: each task gets a working copy of its own
// (Workspace), and the host moves the task branch between the two. Every git command the
// host runs here is bounded in time and marks the reference updates it makes as Sluice's
// (reflog messages starting with "sluice"), so a change made by anyone else is recognisable.
// See docs/adr/0013-task-working-copies.md.

#include "config/projectconfig.h"

#include <sluice/error.h>
#include <sluice/repository.h>

#include <QDateTime>
#include <QMap>
#include <QString>
#include <QStringList>

#include <optional>

namespace Sluice {

/// What one git command did.
struct GitOutput {
    int exitCode = 0;
    QByteArray out;
    QByteArray err;
};

/**
 * Runs git synchronously (call it off the event loop) with a deadline, no terminal prompt
 * and reflog messages marked as Sluice's. Exit codes in @p allowed are not errors.
 */
[[nodiscard]] Result<GitOutput> runHostGit(const QString &directory, const QStringList &arguments,
                                                         const QList<int> &allowed = {}, int timeoutMs = 120000);

/// refs/heads/* and refs/tags/* of a repository at one moment: ref → commit.
using RefSnapshot = QMap<QString, QString>;

/// A reference that changed between two snapshots without Sluice changing it.
struct RefChange {
    QString ref;
    QString before; ///< Empty: it did not exist.
    QString after;  ///< Empty: it was deleted.
    QString how;    ///< The reflog message of the change, when the reflog has it.
};

class ProjectRepository
{
public:
    ProjectRepository(const ProjectConfig &project, const QString &stateDir);

    [[nodiscard]] bool isConfigured() const { return !m_path.isEmpty(); }
    /// repository.path.
    [[nodiscard]] QString path() const { return m_path; }
    [[nodiscard]] QString targetBranch() const { return m_target; }
    /// The remote named by repository.remote when repository.path has it, else empty (the
    /// repository is the forge itself, as with the local forge).
    [[nodiscard]] Result<QString> remote() const;
    /// Where the target is judged: refs/remotes/<remote>/<target>, or refs/heads/<target>.
    [[nodiscard]] Result<QString> targetRef() const;
    /// Fetches the target from the remote (when there is one) and returns its commit.
    [[nodiscard]] Result<QString> refreshTarget() const;
    /// The commit of refs/heads/@p branch, std::nullopt when the branch does not exist.
    [[nodiscard]] Result<std::optional<QString>> branchHead(const QString &branch) const;
    /// The absolute directory holding the repository's objects (for alternates).
    [[nodiscard]] Result<QString> objectsDirectory() const;
    /// A host-owned scratch directory for @p taskId (a worktree of this repository for gates).
    [[nodiscard]] QString scratchPath(qint64 taskId) const;

    /// Turns on reflogs for every reference (bare repositories keep none by default), so
    /// changes can be attributed. Idempotent.
    [[nodiscard]] Result<void> ensureReflogs() const;
    [[nodiscard]] Result<RefSnapshot> snapshot() const;
    /**
     * The references that differ between @p before and now and that Sluice did not change:
     * a reference whose reflog since @p since holds an entry not marked as Sluice's, or that
     * appeared without a reflog, or was deleted.
     */
    [[nodiscard]] Result<QList<RefChange>> changesNotBySluice(const RefSnapshot &before, const QDateTime &since) const;

    /**
     * Takes refs/heads/@p branch from the repository at @p source (a task's working copy)
     * into this repository's refs/heads/@p branch, replacing @p expected (empty: it must not
     * exist yet) and nothing else. Returns the new commit. Refuses the target branch.
     */
    [[nodiscard]] Result<QString> takeBranch(const QString &source, const QString &branch, const QString &expected,
                                             const QString &why) const;
    /// Whether the repository has the commit @p sha.
    [[nodiscard]] Result<bool> hasCommit(const QString &sha) const;
    /**
     * Fetches refs/heads/@p branch of the remote into refs/remotes/<remote>/@p branch (the
     * work another node pushed). Nothing to do without a remote; a branch the remote does not
     * have is not an error.
     */
    [[nodiscard]] Result<void> fetchTaskBranch(const QString &branch) const;
    /**
     * The commit of refs/heads/@p branch at the forge now (`ls-remote`), fetched into this
     * repository when it is new here; std::nullopt when the forge has no such branch or the
     * repository has no remote (it is the forge itself).
     */
    [[nodiscard]] Result<std::optional<QString>> forgeBranchHead(const QString &branch) const;
    /**
     * The head a gate of Sluice's (the merge gate, after rebasing) last pushed to @p branch at
     * the forge, kept in refs/sluice/pushed/@p branch; empty when none. Not a task's head: the
     * publish step tells Sluice's own pushes from others' by it.
     */
    [[nodiscard]] Result<QString> sluicePushed(const QString &branch) const;
    /**
     * Moves refs/heads/@p branch to @p commit from @p expected (empty: absent), a
     * compare-and-swap recorded in the reflog as Sluice's (`sluice: @p why`). Never the target.
     */
    [[nodiscard]] Result<void> moveBranch(const QString &branch, const QString &commit, const QString &expected, const QString &why) const;
    /// Whether @p ancestor is @p descendant or one of its ancestors.
    [[nodiscard]] Result<bool> isAncestor(const QString &ancestor, const QString &descendant) const;

    /**
     * Pushes @p commit to refs/heads/@p branch of the remote, with a lease on what the host
     * last saw there (refs/remotes/<remote>/@p branch; absent: the branch must not exist).
     * Never the target branch. Returns the commit pushed.
     */
    [[nodiscard]] Result<QString> publish(const QString &branch, const QString &commit) const;
    /**
     * publish() with the lease on @p lastPushed, what the store says Sluice last pushed there
     * (empty: the branch must not exist there yet), rather than on this machine's tracking
     * ref: another node may have pushed the branch since this one last saw it.
     */
    [[nodiscard]] Result<QString> publish(const QString &branch, const QString &commit, const QString &lastPushed) const;

private:
    // remote(), once @p branch is checked to be a task branch name (checkTaskBranchName()).
    [[nodiscard]] Result<QString> taskBranchRemote(const QString &branch) const;
    // Pushes @p commit to @p branch of remote @p name with --force-with-lease on @p lease.
    [[nodiscard]] Result<QString> push(const QString &name, const QString &branch, const QString &commit, const QString &lease) const;

    QString m_path;
    QString m_target;
    QString m_remoteName;
    QString m_scratchRoot;
};

/// The SDK view of a ProjectRepository for plugins (PluginContext::repository()).
class HostRepositoryService final : public RepositoryService
{
public:
    explicit HostRepositoryService(ProjectRepository repository);
    [[nodiscard]] QString path() const override;
    [[nodiscard]] QString remote() const override;
    [[nodiscard]] QString targetRef() const override;
    [[nodiscard]] Result<QString> refreshTarget() override;
    [[nodiscard]] QString scratchPath(qint64 taskId) const override;

private:
    ProjectRepository m_repository;
};

/// Whether @p name is acceptable as a task branch of a project whose target is @p target.
[[nodiscard]] Result<void> checkTaskBranchName(const QString &name, const QString &target);

} // namespace Sluice
