// SPDX-License-Identifier: Apache-2.0
#pragma once

// The supervisor's command line, written by the daemon (libs/supervisedprocess/supervisedprocess.cpp);
// see docs/adr/0012-a-supervisor-executable-per-run.md for the protocol.

#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace Sluice::Supervise {

struct Options {
    std::string log;               ///< --log: receives the program's stdout and stderr.
    std::uint64_t logLimit = 0;    ///< --log-limit: bytes kept at most (the tail); 0: no cap.
    std::string status;            ///< --status: where the exit status is recorded; empty: not.
    std::string cgroupParent;      ///< --cgroup-parent: the run gets a cgroup v2 of its own here.
    std::optional<std::uint64_t> memoryMax; ///< --memory-max: memory.max of the run's cgroup.
    std::optional<std::string> cpuMax;      ///< --cpu-max: "QUOTA PERIOD" for cpu.max.
    std::optional<std::uint64_t> pidsMax;   ///< --pids-max: pids.max.
    std::optional<uid_t> uid;      ///< --user: the program runs as this user.
    std::optional<gid_t> gid;      ///< --group: and this group.
    std::vector<gid_t> groups;     ///< --groups: supplementary groups ("1,2,3").
    std::vector<std::string> own;  ///< --own: paths given to --user for the run, taken back after.
    /// --ends-with-daemon: the run is stopped when the daemon is gone (its end of standard
    /// input closes): SIGTERM to every process, SIGKILL after --kill-grace.
    bool endsWithDaemon = false;
    int killGraceMs = 10000;       ///< --kill-grace: milliseconds.
    std::vector<std::string> command; ///< After "--": the program (an absolute path) and its arguments.
};

/// Parses argv; the error names the option.
[[nodiscard]] std::expected<Options, std::string> parseOptions(int argc, char **argv);

} // namespace Sluice::Supervise
