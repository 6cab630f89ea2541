// SPDX-License-Identifier: Apache-2.0
#include "ownership.h"

#include "system.h"

#include <cerrno>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice::Supervise {

namespace {

class OwnerWalk
{
public:
    OwnerWalk(const OwnerChange &change, OwnerChangeResult &result, dev_t device)
        : m_change(change)
        , m_result(result)
        , m_device(device)
    {
    }

    // Changes @p name in the directory @p parent (a descriptor), descending into directories.
    void visit(int parent, const std::string &name, const std::string &path, int depth)
    {
        struct stat info{};
        if (::fstatat(parent, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0)
            return fail(path, "stat", errno);
        if (info.st_dev != m_device) {
            ++m_result.otherFileSystem;
            return;
        }
        const bool directory = S_ISDIR(info.st_mode);
        if (info.st_uid == m_change.from) {
            if (m_change.skipHardLinked && S_ISREG(info.st_mode) && info.st_nlink > 1) {
                ++m_result.hardLinked;
            } else if (::fchownat(parent, name.c_str(), m_change.to, m_change.group, AT_SYMLINK_NOFOLLOW) != 0) {
                return fail(path, "chown", errno);
            } else {
                ++m_result.changed;
            }
        }
        if (!directory || depth > 4096)
            return;
        int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == EACCES && !m_change.skipHardLinked) {
            // Taking a directory back: its last owner may have made it unreadable; it is ours now.
            if (::fchmodat(parent, name.c_str(), (info.st_mode & 07777) | S_IRWXU, 0) == 0)
                fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0)
            return fail(path, "open", errno);
        DIR *dir = ::fdopendir(fd);
        if (!dir) {
            ::close(fd);
            return fail(path, "read", errno);
        }
        std::vector<std::string> names;
        while (const dirent *entry = ::readdir(dir)) {
            const std::string_view child(entry->d_name);
            if (child != "." && child != "..")
                names.emplace_back(child);
        }
        for (const std::string &child : names)
            visit(::dirfd(dir), child, path + "/" + child, depth + 1);
        ::closedir(dir);
    }

private:
    void fail(const std::string &path, const char *what, int err)
    {
        if (m_result.firstError.empty())
            m_result.firstError = describeError(std::string(what) + " " + path, err);
    }

    const OwnerChange &m_change;
    OwnerChangeResult &m_result;
    dev_t m_device;
};

std::string parentOf(const std::string &path)
{
    const std::size_t slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0)
        return "/";
    return path.substr(0, slash);
}

} // namespace

OwnerChangeResult changeOwner(const std::string &path, const OwnerChange &change)
{
    OwnerChangeResult result;
    struct stat info{};
    if (::lstat(path.c_str(), &info) != 0) {
        result.firstError = describeError("stat " + path, errno);
        return result;
    }
    const std::string parent = parentOf(path);
    const int parentFd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parentFd < 0) {
        result.firstError = describeError("open " + parent, errno);
        return result;
    }
    OwnerWalk walk(change, result, info.st_dev);
    walk.visit(parentFd, path.substr(path.find_last_of('/') + 1), path, 0);
    ::close(parentFd);
    return result;
}

std::expected<void, std::string> makeReachable(const std::string &path, uid_t owner)
{
    std::vector<std::string> chain;
    for (std::string dir = parentOf(path);; dir = parentOf(dir)) {
        chain.push_back(dir);
        if (dir == "/")
            break;
    }
    // From the top down, so that a failure names the outermost obstacle.
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        struct stat info{};
        if (::stat(it->c_str(), &info) != 0)
            return std::unexpected(describeError("stat " + *it, errno));
        if (info.st_mode & S_IXOTH)
            continue;
        if (info.st_uid != owner)
            return std::unexpected("the directory " + *it + " is not searchable by other users and not owned by the "
                                   "daemon's user, so the run's user cannot reach " + path);
        if (::chmod(it->c_str(), (info.st_mode & 07777) | S_IXOTH) != 0)
            return std::unexpected(describeError("chmod o+x " + *it, errno));
        warn("made " + *it + " searchable by other users (o+x, not readable) so that the run's user reaches " + path);
    }
    return {};
}

} // namespace Sluice::Supervise
