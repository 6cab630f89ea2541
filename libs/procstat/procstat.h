// SPDX-License-Identifier: Apache-2.0
#pragma once

// Processes by /proc: enough to tell whether a recorded process (pid + start ticks) still
// runs, and to stop its process group. Linux only, like the rest of the host.


#include <QList>
#include <QString>
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
[[nodiscard]] std::optional<ProcStat> readProcStat(qint64 pid);

/// True when @p pid runs and is the process recorded with @p startTicks (not a zombie, not
/// another process that got the pid since).
[[nodiscard]] bool isSameLiveProcess(qint64 pid, quint64 startTicks);

/**
 * Stops the process group led by @p pid (recorded with @p startTicks): SIGTERM, then SIGKILL
 * when it still runs after @p grace. Returns false when the process was not there (or was
 * another one) to begin with; nothing is signalled then. Blocks up to @p grace plus a moment.
 */
bool stopProcessGroup(qint64 pid, quint64 startTicks, std::chrono::milliseconds grace);

/**
 * The processes that hold @p path open for writing, found through /proc/<pid>/fd and fdinfo:
 * how startup recovery finds an agent it has no record of (started right before the daemon
 * died). A reader of the file (an operator's `tail -f`) is not one of them. Processes whose
 * /proc entries cannot be read (another user's) are not seen.
 */
[[nodiscard]] QList<qint64> processesWritingTo(const QString &path);

/**
 * The exit-status file beside a log: "<logPath>.exit". The exit recorder that runs agents and
 * commands (sluice-supervise, libexec/supervise) writes the child's status there
 * when it ends; the process launcher, the command stage and the reaper read it with
 * recordedExitStatus().
 */
[[nodiscard]] QString exitStatusFile(const QString &logPath);

/**
 * What the exit recorder wrote in @p statusFile: the exit code (0-128), a signal N as 128 + N,
 * or std::nullopt when nothing (or garbage) was recorded: the recorder was killed too, or the
 * child has not ended yet. Never guessed.
 */
[[nodiscard]] std::optional<int> recordedExitStatus(const QString &statusFile);

} // namespace Sluice
