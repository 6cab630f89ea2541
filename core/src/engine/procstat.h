// SPDX-License-Identifier: Apache-2.0
#pragma once

// Processes by /proc: enough to tell whether a recorded process (pid + start ticks) still
// runs, and to stop its process group. Linux only, like the rest of the host.

#include <sluice/global.h>

#include <QtGlobal>

#include <chrono>
#include <optional>

namespace Sluice {

/// What /proc/<pid>/stat says about a process.
struct ProcStat {
    char state = '?';         ///< R, S, D, Z (zombie), X (dead), ...
    qint64 processGroup = 0;  ///< Field 5.
    quint64 startTicks = 0;   ///< Field 22: start time in clock ticks after boot.
};

/// Reads /proc/@p pid/stat (fields counted after the last ')', as the command may hold any).
[[nodiscard]] SLUICE_EXPORT std::optional<ProcStat> readProcStat(qint64 pid);

/// True when @p pid runs and is the process recorded with @p startTicks (not a zombie, not
/// another process that got the pid since).
[[nodiscard]] SLUICE_EXPORT bool isSameLiveProcess(qint64 pid, quint64 startTicks);

/**
 * Stops the process group led by @p pid (recorded with @p startTicks): SIGTERM, then SIGKILL
 * when it still runs after @p grace. Returns false when the process was not there (or was
 * another one) to begin with; nothing is signalled then. Blocks up to @p grace plus a moment.
 */
SLUICE_EXPORT bool stopProcessGroup(qint64 pid, quint64 startTicks, std::chrono::milliseconds grace);

} // namespace Sluice
