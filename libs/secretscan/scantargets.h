// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the secret scanner reads: the lines a git range adds (one fragment per hunk of
// each commit, so a secret added and removed again inside the range is still seen), or
// the files below a path. Both bound what they read; work is spread over threads with
// QtConcurrent.

#include "secretscanner.h"

#include <sluice/error.h>

#include <QString>
#include <QStringList>

#include <optional>
#include <string>
#include <vector>

namespace Sluice::Security {

/// Limits on what is read.
struct ScanLimits {
    qint64 maxFileBytes = 10 * 1024 * 1024;         ///< Per file (per commit in git): more is not scanned and noted.
    qint64 maxTotalBytes = qint64(1) << 30; ///< git output in all (held in memory); more is an error.
    int gitTimeoutMs = 300000;                        ///< Per git command.
    std::size_t maxFindingsPerFragment = 1000;        ///< Per file (per hunk in git); more are not listed and noted.
};

/// One unit of work: text already read (git) or a file to read (paths).
struct ScanItem {
    enum class Kind { Text, File, Binary };
    Kind kind = Kind::Text;
    std::string text;     ///< Kind::Text: the bytes to scan.
    QString fileToRead;   ///< Kind::File: absolute path, read by the worker.
    bool truncated = false; ///< Kind::Text: more was added than the per-file limit.
    bool decoded = false;   ///< Kind::Text: decoded from UTF-16 (git showed it as binary).
    std::string oldPath;  ///< Kind::Binary from git: the file's path before the commit; empty if new.
    std::string path;     ///< Shown path, '/'-separated.
    std::string commit;
    int startLine = 1;
    bool fileStart = true;
};

/// Everything to scan, and what was left out.
struct ScanTargets {
    std::vector<ScanItem> items;
    QString description;  ///< "3 commits in main..HEAD (abc123..def456)", "path /x".
    int commits = 0;
};

/// The outcome of a scan.
struct ScanOutcome {
    std::vector<SecretFinding> findings; ///< Sorted by file, commit order, line.
    std::vector<SecretFinding> ignored;  ///< Dropped by the ignore list (fingerprints).
    QStringList binarySkipped;           ///< Binary files: not scanned, only path rules applied.
    QStringList decoded;                 ///< UTF-16 files, scanned after decoding.
    QStringList truncated;               ///< Files scanned only up to maxFileBytes.
    QStringList findingsCapped;          ///< Files with more findings than maxFindingsPerFragment: not all are listed.
    QStringList unreadable;              ///< Files that could not be read (an error for the caller).
    qint64 bytes = 0;
    int files = 0;
    /// CPU milliseconds each scanning thread used, largest first: how evenly the work was
    /// split (the largest is the scan's wall time on a machine with a free core per thread).
    std::vector<qint64> threadCpuMs;
};

/**
 * @p bytes as UTF-8 when they are UTF-16 text: a byte order mark, or (without one) the zero
 * bytes of mostly-ASCII text all on one side; std::nullopt otherwise, or when a code unit
 * is NUL (then it is binary after all).
 */
[[nodiscard]] std::optional<std::string> decodeUtf16Text(std::string_view bytes);

/// Resolves @p ref in @p repo to a commit id.
[[nodiscard]] Result<QString> resolveCommit(const QString &repo, const QString &ref, int timeoutMs);

/// The target branch to compare with: refs/heads/NAME, else refs/remotes/origin/NAME, else NAME.
[[nodiscard]] Result<QString> resolveTargetBranch(const QString &repo, const QString &name, int timeoutMs);

/**
 * The added lines of every non-merge commit reachable from @p head and not from @p base
 * (`git log -p -U0 base..head`), one item per hunk, plus an empty item per binary file so
 * path rules still apply. Errors when git fails, a ref does not resolve, or the output
 * is larger than the total limit.
 */
[[nodiscard]] Result<ScanTargets> collectGitRange(const QString &repo, const QString &base, const QString &head,
                                                  const ScanLimits &limits);

/**
 * Reads the output of `git log -p -U0 --no-merges --format=%x00%H` (what collectGitRange()
 * runs) into @p targets: one item per hunk of added lines, one Binary item per binary file.
 * A hunk header it cannot read is an error naming the file and commit.
 */
[[nodiscard]] Result<void> readLogPatch(std::string_view log, const ScanLimits &limits, ScanTargets &targets);
/// Reads `git log -p -U0 --cc --merges --format=%x00%H` output: the lines merges wrote themselves.
[[nodiscard]] Result<void> readMergePatch(std::string_view log, const ScanLimits &limits, ScanTargets &targets);

/// Every regular file below @p path (or @p path itself), .git directories skipped, symlinks not followed.
[[nodiscard]] Result<ScanTargets> collectPath(const QString &path, const ScanLimits &limits);

/// The file @p path as committed in @p commit; std::nullopt when the commit has no such file.
[[nodiscard]] Result<std::optional<QByteArray>> readFileAtCommit(const QString &repo, const QString &commit,
                                                                 const QString &path, int timeoutMs);

/// The fingerprints listed in @p content (a .gitleaksignore file).
[[nodiscard]] QStringList parseIgnoreList(const QByteArray &content);

/// The fingerprints listed in a .gitleaksignore file (comments and blank lines skipped).
[[nodiscard]] Result<QStringList> readIgnoreFile(const QString &path);

/**
 * Scans @p targets on @p threads threads (0: all cores). Findings whose fingerprint, or
 * its "file:rule:line" part, is in @p ignoredFingerprints move to ScanOutcome::ignored.
 */
[[nodiscard]] ScanOutcome scanTargets(const SecretScanner &scanner, const ScanTargets &targets, const ScanLimits &limits,
                                      int threads, const QStringList &ignoredFingerprints = {},
                                      const ScanOptions &options = {});

} // namespace Sluice::Security
