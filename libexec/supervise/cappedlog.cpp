// SPDX-License-Identifier: Apache-2.0
#include "cappedlog.h"

#include "system.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice::Supervise {

namespace {
// A cut keeps this share of the limit, so that cuts are rare (each copies what is kept).
constexpr std::uint64_t KeptShare = 2;
// The kept part starts at a line boundary when one is this close to the cut.
constexpr std::size_t LineSearch = 4096;
} // namespace

CappedLog::~CappedLog()
{
    close();
}

std::expected<void, std::string> CappedLog::open(const std::string &path, std::uint64_t limit)
{
    m_path = path;
    m_limit = limit;
    m_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (m_fd < 0)
        return std::unexpected(describeError("cannot open the log " + path, errno));
    return {};
}

std::string CappedLog::notice() const
{
    return "[sluice] output cut: " + std::to_string(m_dropped) + " bytes of earlier output were dropped to keep this log "
           "within its limit of " + std::to_string(m_limit) + " bytes (log_limit); the latest output follows\n";
}

void CappedLog::append(std::string_view data)
{
    if (m_fd < 0 || data.empty())
        return;
    if (m_limit > 0 && m_noticeSize + m_outputInFile + data.size() > m_limit)
        return cut(data);
    if (m_failed) {
        m_dropped += data.size();
        return;
    }
    if (!writeAll(m_fd, data)) {
        m_failed = true;
        m_dropped += data.size();
        warn(describeError("cannot write the log " + m_path + "; further output is dropped", errno));
        return;
    }
    m_outputInFile += data.size();
}

void CappedLog::cut(std::string_view incoming)
{
    // Keep the newest output: what fits of the file's tail and the incoming data in half the
    // limit (the notice line on top does not count against it).
    const std::uint64_t keep = std::max<std::uint64_t>(m_limit / KeptShare, 1);
    std::string kept;
    if (incoming.size() >= keep) {
        m_dropped += m_outputInFile + (incoming.size() - keep);
        kept.assign(incoming.substr(incoming.size() - keep));
    } else {
        const std::uint64_t fromFile = std::min<std::uint64_t>(keep - incoming.size(), m_outputInFile);
        m_dropped += m_outputInFile - fromFile;
        kept.resize(fromFile);
        std::uint64_t done = 0;
        while (done < fromFile) {
            const ssize_t got = ::pread(m_fd, kept.data() + done, fromFile - done,
                                        off_t(m_noticeSize + m_outputInFile - fromFile + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            done += std::uint64_t(got);
        }
        // What could not be read back is lost too, and counted.
        m_dropped += fromFile - done;
        kept.resize(done);
        kept.append(incoming);
    }
    // Start the kept part on a line of its own when a line boundary is near.
    const std::size_t newline = kept.find('\n');
    if (newline != std::string::npos && newline < LineSearch && newline + 1 < kept.size()) {
        m_dropped += newline + 1;
        kept.erase(0, newline + 1);
    }
    const std::string header = notice();
    // A new file, renamed over the log: a reader never sees a half-written log.
    const std::string temporary = m_path + ".cut";
    const int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0 || !writeAll(fd, header) || !writeAll(fd, kept) || ::rename(temporary.c_str(), m_path.c_str()) != 0) {
        const int err = errno;
        if (fd >= 0)
            ::close(fd);
        ::unlink(temporary.c_str());
        if (!m_failed)
            warn(describeError("cannot cut the log " + m_path + "; further output is dropped", err));
        m_failed = true;
        return;
    }
    ::close(m_fd);
    m_fd = fd;
    m_failed = false;
    m_noticeSize = header.size();
    m_outputInFile = kept.size();
}

void CappedLog::close()
{
    if (m_fd >= 0)
        ::close(m_fd);
    m_fd = -1;
}

} // namespace Sluice::Supervise
