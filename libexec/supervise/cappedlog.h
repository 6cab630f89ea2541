// SPDX-License-Identifier: Apache-2.0
#pragma once

// The run's log: what the program writes to stdout and stderr, kept below a size limit by
// dropping the oldest output. When output was dropped, the log starts with one line saying
// so ("[sluice] output cut: N bytes ..."), which the daemon reads back for the run's summary.

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace Sluice::Supervise {

class CappedLog
{
public:
    CappedLog() = default;
    ~CappedLog();
    CappedLog(const CappedLog &) = delete;
    CappedLog &operator=(const CappedLog &) = delete;

    /// Creates or truncates @p path. @p limit 0 keeps everything.
    [[nodiscard]] std::expected<void, std::string> open(const std::string &path, std::uint64_t limit);

    /// Appends output; when the log would grow past the limit, the oldest output goes.
    void append(std::string_view data);

    /// Bytes of output dropped so far.
    [[nodiscard]] std::uint64_t dropped() const { return m_dropped; }

    void close();

private:
    void cut(std::string_view incoming);
    [[nodiscard]] std::string notice() const;

    std::string m_path;
    std::uint64_t m_limit = 0;
    int m_fd = -1;
    std::uint64_t m_outputInFile = 0; ///< Bytes of output in the file (the notice not counted).
    std::uint64_t m_noticeSize = 0;
    std::uint64_t m_dropped = 0;
    bool m_failed = false;            ///< A write failed (disk full): said once, then output is dropped.
};

} // namespace Sluice::Supervise
