// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file repository.h
 * The project's repository as the host keeps it, for gates that judge a task's commits.
 * @since 1.2
 */

#include <sluice/error.h>

#include <QString>

namespace Sluice {

/**
 * The project's repository (`repository.path`) as the host keeps it: host-owned, never
 * written by an agent. Agents work in a working copy of their own (GateRequest::worktree);
 * after each job the host takes the task's branch into this repository and records its head
 * (TaskInfo::headSha), so a gate that judges commits judges that head here, against
 * targetRef(), rather than whatever an agent's working copy holds.
 *
 * The calls that run git block: call them from a ConcurrentGateRun (or another worker
 * thread), never on the event loop.
 * @since 1.2
 */
class SLUICE_EXPORT RepositoryService
{
public:
    virtual ~RepositoryService();
    /// Absolute path of the repository (bare or not).
    [[nodiscard]] virtual QString path() const = 0;
    /// The remote that is the forge ("origin"); empty when the repository is the forge itself.
    [[nodiscard]] virtual QString remote() const = 0;
    /**
     * The reference holding the target branch as last fetched: refs/remotes/<remote>/<target>
     * with a remote, else refs/heads/<target>. The host never writes a local target branch
     * from a fetch; only a merge moves it.
     */
    [[nodiscard]] virtual QString targetRef() const = 0;
    /// Fetches the target branch from the remote (nothing without one) and returns its commit.
    [[nodiscard]] virtual Result<QString> refreshTarget() = 0;
    /// A host-owned directory for @p taskId where a gate may keep a worktree of path().
    [[nodiscard]] virtual QString scratchPath(qint64 taskId) const = 0;
};

} // namespace Sluice
