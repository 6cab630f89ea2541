// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small wrappers around the system calls the supervisor makes, with errors as text. No Qt:
// the supervisor is a plain executable that sits between the daemon and every run.

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace Sluice::Supervise {

/// "what: strerror(err)".
[[nodiscard]] std::string describeError(std::string_view what, int err);

/// Writes all of @p data, retrying after EINTR and short writes. False on any other error.
bool writeAll(int fd, std::string_view data);

/// The whole content of a (small, usually virtual) file; std::unexpected holds errno.
[[nodiscard]] std::expected<std::string, int> readFile(const std::string &path);

/// Writes @p data to an existing file (a cgroup interface file) in one write.
[[nodiscard]] std::expected<void, int> writeFile(const std::string &path, std::string_view data);

/// A line for the daemon on standard output ("running 42", "error ..."). Best effort: the
/// daemon may have gone away (the supervisor outlives it).
void report(std::string_view line);

/// A diagnostic on standard error; the daemon logs it as a warning.
void warn(std::string_view line);

/// Closes every descriptor from @p first up, but @p keep (close_range, else /proc/self/fd).
void closeDescriptorsFrom(int first, int keep = -1);

/// Field 4 (parent) and 22 (start time in clock ticks) of /proc/<pid>/stat, and the state.
struct ProcessStat {
    char state = '?';
    pid_t parent = 0;
    std::uint64_t startTicks = 0;
};
[[nodiscard]] std::optional<ProcessStat> readProcessStat(pid_t pid);

/// The pids of every process on the machine (the numeric entries of /proc).
[[nodiscard]] std::vector<pid_t> allProcesses();

/// Sleeps for about @p milliseconds (between sweeps of a run that is being killed).
void pause(int milliseconds);

} // namespace Sluice::Supervise
