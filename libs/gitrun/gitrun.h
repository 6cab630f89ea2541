// SPDX-License-Identifier: Apache-2.0
#pragma once

// Running git without blocking the event loop: shared by the local forge (on its bare
// repository) and the merge gate (on a task's worktree).

#include <sluice/error.h>

#include <QByteArray>
#include <QObject>
#include <QStringList>

#include <functional>

namespace Sluice::Forges {

/// What one git command did.
struct GitResult {
    int exitCode = -1;
    QByteArray out;
    QByteArray err;
};

/**
 * Runs git on @p repository (given as --git-dir: a bare repository, or a worktree's .git
 * with "--work-tree" first in @p arguments) without blocking: @p done gets the result once
 * (not at all if @p owner is destroyed first). Commits are made as "sluice". A command that cannot start or passes @p timeoutMs is an
 * Error; a non-zero exit is a result the caller judges.
 */
void runGit(const QString &git, const QString &repository, const QStringList &arguments, int timeoutMs, QObject *owner,
            std::function<void(Result<GitResult>)> done);

} // namespace Sluice::Forges
