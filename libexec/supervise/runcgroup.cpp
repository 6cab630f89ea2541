// SPDX-License-Identifier: Apache-2.0
#include "runcgroup.h"

#include "system.h"

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <sstream>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice::Supervise {

namespace {

// The cgroups below @p path, deepest first (so that they can be removed in this order).
void collectChildren(const std::string &path, std::vector<std::string> &out)
{
    DIR *dir = ::opendir(path.c_str());
    if (!dir)
        return;
    std::vector<std::string> children;
    while (const dirent *entry = ::readdir(dir)) {
        const std::string name(entry->d_name);
        if (name == "." || name == "..")
            continue;
        const std::string child = path + "/" + name;
        struct stat info{};
        if (::lstat(child.c_str(), &info) == 0 && S_ISDIR(info.st_mode))
            children.push_back(child);
    }
    ::closedir(dir);
    for (const std::string &child : children) {
        collectChildren(child, out);
        out.push_back(child);
    }
}

// The value of @p key in a flat-keyed file ("populated 1\nfrozen 0\n").
std::optional<std::uint64_t> keyedValue(const std::string &content, const std::string &key)
{
    std::istringstream lines(content);
    std::string name;
    std::uint64_t value = 0;
    while (lines >> name >> value) {
        if (name == key)
            return value;
    }
    return std::nullopt;
}

} // namespace

std::expected<RunCgroup, std::string> RunCgroup::create(const std::string &parent, const std::string &name)
{
    const std::string path = parent + "/" + name;
    if (::mkdir(path.c_str(), 0755) != 0)
        return std::unexpected(describeError("cannot create the run's cgroup " + path, errno));
    return RunCgroup(path);
}

std::expected<void, std::string> RunCgroup::set(const std::string &file, const std::string &value) const
{
    if (auto written = writeFile(m_path + "/" + file, value); !written)
        return std::unexpected(describeError("cannot write '" + value + "' to " + m_path + "/" + file, written.error()));
    return {};
}

std::vector<pid_t> RunCgroup::processes() const
{
    std::vector<std::string> cgroups;
    collectChildren(m_path, cgroups);
    cgroups.push_back(m_path);
    std::vector<pid_t> out;
    for (const std::string &cgroup : cgroups) {
        const auto content = readFile(cgroup + "/cgroup.procs");
        if (!content)
            continue;
        std::istringstream lines(*content);
        long pid = 0;
        while (lines >> pid)
            out.push_back(pid_t(pid));
    }
    return out;
}

bool RunCgroup::populated() const
{
    const auto events = readFile(m_path + "/cgroup.events");
    if (!events)
        return !processes().empty();
    return keyedValue(*events, "populated").value_or(0) != 0;
}

bool RunCgroup::killAll() const
{
    return writeFile(m_path + "/cgroup.kill", "1").has_value();
}

std::vector<std::string> RunCgroup::limitEvents() const
{
    std::vector<std::string> out;
    if (const auto memory = readFile(m_path + "/memory.events")) {
        if (const auto killed = keyedValue(*memory, "oom_kill"); killed && *killed > 0)
            out.push_back("the memory limit (limits.memory) was reached: the kernel killed " + std::to_string(*killed)
                          + " process(es) of the run for lack of memory");
    }
    if (const auto pids = readFile(m_path + "/pids.events")) {
        if (const auto refused = keyedValue(*pids, "max"); refused && *refused > 0)
            out.push_back("the process limit (limits.pids) was reached: " + std::to_string(*refused)
                          + " fork(s) of the run were refused");
    }
    return out;
}

bool RunCgroup::remove()
{
    if (m_path.empty())
        return true;
    std::vector<std::string> cgroups;
    collectChildren(m_path, cgroups);
    for (const std::string &cgroup : cgroups)
        ::rmdir(cgroup.c_str());
    if (::rmdir(m_path.c_str()) != 0 && errno != ENOENT)
        return false;
    m_path.clear();
    return true;
}

} // namespace Sluice::Supervise
