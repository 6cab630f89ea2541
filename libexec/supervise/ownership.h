// SPDX-License-Identifier: Apache-2.0
#pragma once

// Giving the run's user the paths it works in (the task's working copy, its task file) for
// the run, and taking them back afterwards, without ever following a link out of them.

#include <sys/types.h>

#include <cstddef>
#include <expected>
#include <string>

namespace Sluice::Supervise {

struct OwnerChange {
    uid_t from = 0;      ///< Only entries owned by this user change.
    uid_t to = 0;
    gid_t group = 0;
    /// Leave regular files with more than one hard link alone: the other name may be outside
    /// the tree (a file of the daemon's), and its owner would change with it.
    bool skipHardLinked = false;
};

struct OwnerChangeResult {
    std::size_t changed = 0;
    std::size_t hardLinked = 0;   ///< Skipped, see OwnerChange::skipHardLinked.
    std::size_t otherFileSystem = 0; ///< Mount points inside the tree, not entered.
    std::string firstError;       ///< Empty when every entry could be changed.
};

/**
 * Changes the owner of @p path and, for a directory, of everything below it that belongs to
 * change.from. Symbolic links are changed themselves, never followed; other file systems
 * mounted inside are not entered. Directories the new owner made unreadable are made
 * readable for their new owner on the way back (u+rwx), which is what the daemon needs.
 */
[[nodiscard]] OwnerChangeResult changeOwner(const std::string &path, const OwnerChange &change);

/**
 * Makes every directory above @p path searchable by others (o+x, never o+r) where it is
 * owned by @p owner, so that another user can reach @p path by its name without listing
 * anything on the way. Fails naming the first directory it may not change.
 */
[[nodiscard]] std::expected<void, std::string> makeReachable(const std::string &path, uid_t owner);

} // namespace Sluice::Supervise
