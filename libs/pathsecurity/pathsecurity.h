// SPDX-License-Identifier: Apache-2.0
#pragma once

// Loading a plugin is running its code, so plugin files and the directories holding them
// must not be writable by anyone but their trusted owner.

#include <sluice/error.h>

#include <QSet>
#include <QString>

#include <sys/types.h>

namespace Sluice {

/// Who may own plugin files and directories: root, the user running sluice, the service user.
class TrustedOwners
{
public:
    /// Root, the effective user, and @p serviceUser if that user exists.
    [[nodiscard]] static TrustedOwners forServiceUser(const QString &serviceUser);
    [[nodiscard]] bool contains(uid_t uid) const { return m_uids.contains(uid); }
    void add(uid_t uid) { m_uids.insert(uid); }

private:
    QSet<uid_t> m_uids;
};

/**
 * Checks that @p path (a plugin directory) and every directory above it are owned by a
 * trusted owner and not writable by group or others. Ancestors that are root-owned and
 * sticky (like /tmp) are accepted: others cannot replace entries in them.
 */
[[nodiscard]] Result<void> checkPluginDirectory(const QString &path, const TrustedOwners &owners);
/// Checks one plugin file (following a symlink to its target): trusted owner, no group/other write.
[[nodiscard]] Result<void> checkPluginFile(const QString &path, const TrustedOwners &owners);

} // namespace Sluice
