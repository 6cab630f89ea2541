// SPDX-License-Identifier: Apache-2.0
#pragma once

// One daemon per state directory: an exclusive lock (flock) on STATE_DIR/sluice.lock, held for
// the life of the process and let go by the kernel however it ends (kill -9 included). The
// file names the holder, so a second daemon is told which one is in the way.

#include <sluice/error.h>

#include <QString>

namespace Sluice {

class StateDirLock
{
public:
    StateDirLock() = default;
    ~StateDirLock();
    StateDirLock(const StateDirLock &) = delete;
    StateDirLock &operator=(const StateDirLock &) = delete;

    /**
     * Takes the lock of @p stateDir (created if missing) for this process, on node @p node,
     * and writes "pid host node" into it. ErrorCode::Conflict, naming the pid, host and node
     * the file holds, while another process has it.
     */
    [[nodiscard]] Result<void> acquire(const QString &stateDir, const QString &node);
    [[nodiscard]] QString path() const { return m_path; }

private:
    int m_fd = -1;
    QString m_path;
};

} // namespace Sluice
