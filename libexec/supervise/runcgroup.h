// SPDX-License-Identifier: Apache-2.0
#pragma once

// The cgroup v2 of one run: created beside the daemon's own (or below the directory the
// daemon names), limits written to its interface files, every process in it signalled or
// killed at once, removed at the end.

#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

namespace Sluice::Supervise {

class RunCgroup
{
public:
    RunCgroup() = default;

    /// Creates @p parent/@p name. The error says what failed, for the daemon's log.
    [[nodiscard]] static std::expected<RunCgroup, std::string> create(const std::string &parent, const std::string &name);

    [[nodiscard]] bool isValid() const { return !m_path.empty(); }
    [[nodiscard]] const std::string &path() const { return m_path; }

    /// Writes @p value to the interface file @p file (memory.max, pids.max, cpu.max).
    [[nodiscard]] std::expected<void, std::string> set(const std::string &file, const std::string &value) const;

    /// The processes in the cgroup and in any cgroup below it.
    [[nodiscard]] std::vector<pid_t> processes() const;
    /// True while any process is in it or below (cgroup.events "populated").
    [[nodiscard]] bool populated() const;
    /// SIGKILL to everything in it at once (cgroup.kill, Linux 5.14); false when the kernel
    /// has no cgroup.kill, and the caller signals processes() one by one.
    bool killAll() const;
    /// What the kernel did at the limits, for the log: "the memory limit was reached: ...".
    [[nodiscard]] std::vector<std::string> limitEvents() const;
    /// Removes it (and empty cgroups below). False while it is populated.
    bool remove();

private:
    explicit RunCgroup(std::string path) : m_path(std::move(path)) {}
    std::string m_path;
};

} // namespace Sluice::Supervise
