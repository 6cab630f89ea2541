// SPDX-License-Identifier: Apache-2.0
#include "system.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace Sluice::Supervise {

std::string describeError(std::string_view what, int err)
{
    std::string out(what);
    out += ": ";
    out += std::strerror(err);
    return out;
}

bool writeAll(int fd, std::string_view data)
{
    while (!data.empty()) {
        const ssize_t written = ::write(fd, data.data(), data.size());
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        data.remove_prefix(std::size_t(written));
    }
    return true;
}

std::expected<std::string, int> readFile(const std::string &path)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::unexpected(errno);
    std::string out;
    char buffer[4096];
    for (;;) {
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            const int err = errno;
            ::close(fd);
            return std::unexpected(err);
        }
        if (got == 0)
            break;
        out.append(buffer, std::size_t(got));
    }
    ::close(fd);
    return out;
}

std::expected<void, int> writeFile(const std::string &path, std::string_view data)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return std::unexpected(errno);
    // Interface files take one value per write(); a short or failed write is the error.
    const ssize_t written = ::write(fd, data.data(), data.size());
    const int err = errno;
    ::close(fd);
    if (written != ssize_t(data.size()))
        return std::unexpected(written < 0 ? err : EIO);
    return {};
}

void report(std::string_view line)
{
    std::string out(line);
    out += '\n';
    (void)writeAll(STDOUT_FILENO, out);
}

void warn(std::string_view line)
{
    std::string out(line);
    out += '\n';
    (void)writeAll(STDERR_FILENO, out);
}

void closeDescriptorsFrom(int first, int keep)
{
    const auto closeRange = [](unsigned from, unsigned to) {
        if (from > to)
            return true;
        return ::close_range(from, to, 0) == 0;
    };
    const bool closed = keep >= first ? closeRange(unsigned(first), unsigned(keep - 1)) && closeRange(unsigned(keep + 1), ~0U)
                                      : closeRange(unsigned(first), ~0U);
    if (closed)
        return;
    // Kernels before 5.9 have no close_range: close what /proc/self/fd lists.
    DIR *dir = ::opendir("/proc/self/fd");
    if (!dir) {
        for (int fd = first; fd < 65536; ++fd) {
            if (fd != keep)
                ::close(fd);
        }
        return;
    }
    std::vector<int> open;
    const int own = ::dirfd(dir);
    while (const dirent *entry = ::readdir(dir)) {
        char *end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end != entry->d_name && *end == '\0' && fd >= first && fd != keep && fd != own)
            open.push_back(int(fd));
    }
    ::closedir(dir);
    for (const int fd : open)
        ::close(fd);
}

std::optional<ProcessStat> readProcessStat(pid_t pid)
{
    const auto content = readFile("/proc/" + std::to_string(pid) + "/stat");
    if (!content)
        return std::nullopt;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const std::size_t close = content->rfind(')');
    if (close == std::string::npos || close + 2 >= content->size())
        return std::nullopt;
    std::vector<std::string_view> fields;
    std::string_view rest(*content);
    rest.remove_prefix(close + 2);
    while (!rest.empty() && fields.size() < 20) {
        const std::size_t space = rest.find(' ');
        fields.push_back(rest.substr(0, space));
        if (space == std::string_view::npos)
            break;
        rest.remove_prefix(space + 1);
    }
    if (fields.size() < 20 || fields[0].empty())
        return std::nullopt;
    ProcessStat stat;
    stat.state = fields[0][0];
    stat.parent = pid_t(std::strtol(std::string(fields[1]).c_str(), nullptr, 10));
    stat.startTicks = std::strtoull(std::string(fields[19]).c_str(), nullptr, 10);
    return stat;
}

std::vector<pid_t> allProcesses()
{
    std::vector<pid_t> out;
    DIR *dir = ::opendir("/proc");
    if (!dir)
        return out;
    while (const dirent *entry = ::readdir(dir)) {
        char *end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (end != entry->d_name && *end == '\0' && pid > 0)
            out.push_back(pid_t(pid));
    }
    ::closedir(dir);
    return out;
}

void pause(int milliseconds)
{
    timespec wait{milliseconds / 1000, long(milliseconds % 1000) * 1000000L};
    while (::nanosleep(&wait, &wait) != 0 && errno == EINTR) {
    }
}

} // namespace Sluice::Supervise
