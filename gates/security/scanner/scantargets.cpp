// SPDX-License-Identifier: Apache-2.0
#include "scantargets.h"

#include <QDir>
#include <QDirIterator>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QMutex>
#include <QProcess>
#include <QSet>
#include <QThread>
#include <QThreadPool>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <map>
#include <optional>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice::Security {

namespace {

// git's own heuristic: a NUL byte in the first 8000 bytes makes a file binary.
bool looksBinary(std::string_view bytes)
{
    return bytes.substr(0, 8000).find('\0') != std::string_view::npos;
}

struct GitOutput {
    QByteArray out;
};

Result<GitOutput> runGit(const QString &repo, const QStringList &arguments, int timeoutMs, qint64 maxBytes)
{
    QProcess git;
    git.setProgram(QStringLiteral("git"));
    QStringList args{QStringLiteral("-C"), repo, QStringLiteral("-c"), QStringLiteral("core.quotePath=false")};
    args += arguments;
    git.setArguments(args);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("GIT_TERMINAL_PROMPT"), QStringLiteral("0"));
    env.insert(QStringLiteral("LC_ALL"), QStringLiteral("C"));
    git.setProcessEnvironment(env);
    git.start();
    if (!git.waitForStarted(timeoutMs))
        return fail(ErrorCode::NotFound, QStringLiteral("cannot run git: %1").arg(git.errorString()));
    QByteArray out;
    QByteArray err;
    QElapsedTimer clock;
    clock.start();
    while (git.state() != QProcess::NotRunning) {
        const int left = int(timeoutMs - clock.elapsed());
        if (left <= 0) {
            git.kill();
            git.waitForFinished(5000);
            return fail(ErrorCode::Timeout, QStringLiteral("git %1 took longer than %2 ms in %3")
                                                .arg(arguments.value(0)).arg(timeoutMs).arg(repo));
        }
        git.waitForReadyRead(std::min(left, 1000));
        out += git.readAllStandardOutput();
        // Drained too, so a chatty git cannot block on a full stderr pipe.
        err += git.readAllStandardError().left(4096 - err.size());
        if (out.size() > maxBytes) {
            git.kill();
            git.waitForFinished(5000);
            return fail(ErrorCode::InvalidArgument, QStringLiteral("git %1 in %2 printed more than %3 bytes; the range is too large to scan")
                                                        .arg(arguments.value(0), repo).arg(maxBytes));
        }
    }
    out += git.readAllStandardOutput();
    if (git.exitStatus() != QProcess::NormalExit || git.exitCode() != 0) {
        err += git.readAllStandardError();
        return fail(ErrorCode::Unknown, QStringLiteral("git %1 failed in %2 (exit %3): %4")
                                            .arg(arguments.join(QLatin1Char(' ')).left(200), repo)
                                            .arg(git.exitCode())
                                            .arg(QString::fromUtf8(err).trimmed().left(400)));
    }
    return GitOutput{out};
}

// Undoes git's C-style quoting of a path ("a\tb", "\303\251").
std::string unquoteGitPath(std::string_view quoted)
{
    if (quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"')
        return std::string(quoted);
    std::string out;
    for (std::size_t i = 1; i + 1 < quoted.size(); ++i) {
        char c = quoted[i];
        if (c != '\\' || i + 2 >= quoted.size()) {
            out.push_back(c);
            continue;
        }
        c = quoted[++i];
        switch (c) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        default:
            if (c >= '0' && c <= '7' && i + 2 < quoted.size()) {
                const int v = (c - '0') * 64 + (quoted[i + 1] - '0') * 8 + (quoted[i + 2] - '0');
                out.push_back(char(v));
                i += 2;
            } else {
                out.push_back(c);
            }
        }
    }
    return out;
}

// The file a diff's "+++ b/NAME" line names; empty for "+++ /dev/null" (a deleted file).
std::string newFilePath(std::string_view line)
{
    std::string name = unquoteGitPath(line.substr(4));
    if (name == "/dev/null")
        return {};
    if (name.starts_with("b/"))
        name.erase(0, 2);
    return name;
}

// The lines of a text, without their '\n', one by one.
class LineReader
{
public:
    explicit LineReader(std::string_view text) : m_text(text) {}
    std::optional<std::string_view> next()
    {
        if (m_pos >= m_text.size())
            return std::nullopt;
        std::size_t end = m_text.find('\n', m_pos);
        if (end == std::string_view::npos)
            end = m_text.size();
        const std::string_view line = m_text.substr(m_pos, end - m_pos);
        m_pos = end + 1;
        return line;
    }

private:
    std::string_view m_text;
    std::size_t m_pos = 0;
};

bool parseRange(std::string_view text, int &start, int &count)
{
    // "c,d" or "c"
    const std::size_t comma = text.find(',');
    try {
        start = std::stoi(std::string(text.substr(0, comma)));
        count = comma == std::string_view::npos ? 1 : std::stoi(std::string(text.substr(comma + 1)));
    } catch (...) {
        return false;
    }
    return start >= 0 && count >= 0;
}

/*
 * What merge commits add themselves: `git log --cc` shows, per merge, only the hunks where
 * the result differs from every parent ("evil merges", conflict resolutions), with one
 * column per parent. A line every column marks '+' is in no parent: the merge wrote it. Such
 * lines are scanned like the added lines of ordinary commits (consecutive ones as one item,
 * so line numbers hold); lines that came from one side were scanned in that side's commits,
 * or come from the target and are not the branch's.
 */
Result<void> appendMergeAdditions(std::string_view text, const ScanLimits &limits, ScanTargets &targets)
{
    std::string commit;
    std::string path;
    bool inHunk = false;
    std::vector<int> parentLeft;
    int resultLeft = 0;
    int resultLine = 0;
    ScanItem current;
    qint64 taken = 0;
    auto flush = [&]() {
        if (!current.text.empty())
            targets.items.push_back(std::move(current));
        current = ScanItem();
    };
    LineReader lines(text);
    while (const auto next = lines.next()) {
        const std::string_view line = *next;
        if (inHunk) {
            if (!line.empty() && line[0] == '\\')
                continue; // "\ No newline at end of file"
            const std::size_t parents = parentLeft.size();
            if (line.size() < parents)
                return fail(ErrorCode::Malformed, QStringLiteral("cannot read a combined diff line of %1 in merge %2")
                                                      .arg(QString::fromStdString(path), QString::fromStdString(commit)));
            const std::string_view columns = line.substr(0, parents);
            const bool inResult = columns.find('-') == std::string_view::npos;
            const bool byMerge = columns.find_first_not_of('+') == std::string_view::npos;
            for (std::size_t i = 0; i < parents; ++i) {
                if (columns[i] == '-' || (inResult && columns[i] == ' '))
                    --parentLeft[i];
            }
            if (inResult) {
                --resultLeft;
                if (byMerge) {
                    if (current.text.empty() || current.startLine + int(std::count(current.text.begin(), current.text.end(), '\n')) != resultLine) {
                        flush();
                        current.path = path;
                        current.commit = commit;
                        current.startLine = resultLine;
                        current.fileStart = false;
                    }
                    if (taken + qint64(line.size()) > limits.maxFileBytes) {
                        current.truncated = true;
                    } else {
                        current.text.append(line.substr(parents));
                        current.text.push_back('\n');
                        taken += qint64(line.size());
                    }
                }
                ++resultLine;
            }
            if (resultLeft <= 0 && std::all_of(parentLeft.begin(), parentLeft.end(), [](int left) { return left <= 0; })) {
                inHunk = false;
                flush();
            }
            continue;
        }
        if (!line.empty() && line[0] == '\0') {
            commit = std::string(line.substr(1));
            continue;
        }
        if (line.starts_with("diff --cc ") || line.starts_with("diff --combined ")) {
            path.clear();
            taken = 0;
            continue;
        }
        if (line.starts_with("+++ ")) {
            path = newFilePath(line);
            continue;
        }
        if (line.starts_with("@@@") && !path.empty()) {
            // "@@@ -a,b -c,d +e,f @@@": one '@' more than there are parents.
            const std::size_t ats = line.find_first_not_of('@');
            const std::size_t close = line.find(std::string(ats, '@'), ats);
            if (ats == std::string_view::npos || ats < 3 || close == std::string_view::npos)
                return fail(ErrorCode::Malformed, QStringLiteral("cannot read the combined hunk header of %1 in merge %2")
                                                      .arg(QString::fromStdString(path), QString::fromStdString(commit)));
            const std::size_t parents = ats - 1;
            std::vector<std::string_view> ranges;
            std::size_t at = ats;
            const std::string_view header = line.substr(0, close);
            while (at < header.size()) {
                while (at < header.size() && header[at] == ' ')
                    ++at;
                const std::size_t stop = std::min(header.find(' ', at), header.size());
                if (stop > at)
                    ranges.push_back(header.substr(at, stop - at));
                at = stop;
            }
            if (ranges.size() != parents + 1 || ranges.back().empty() || ranges.back()[0] != '+')
                return fail(ErrorCode::Malformed, QStringLiteral("cannot read the combined hunk header of %1 in merge %2")
                                                      .arg(QString::fromStdString(path), QString::fromStdString(commit)));
            parentLeft.assign(parents, 0);
            int start = 0;
            for (std::size_t i = 0; i < parents; ++i) {
                if (ranges[i].empty() || ranges[i][0] != '-' || !parseRange(ranges[i].substr(1), start, parentLeft[i]))
                    return fail(ErrorCode::Malformed, QStringLiteral("cannot read the combined hunk header of %1 in merge %2")
                                                          .arg(QString::fromStdString(path), QString::fromStdString(commit)));
            }
            if (!parseRange(ranges.back().substr(1), resultLine, resultLeft))
                return fail(ErrorCode::Malformed, QStringLiteral("cannot read the combined hunk header of %1 in merge %2")
                                                      .arg(QString::fromStdString(path), QString::fromStdString(commit)));
            current = ScanItem();
            inHunk = resultLeft > 0 || std::any_of(parentLeft.begin(), parentLeft.end(), [](int left) { return left > 0; });
            continue;
        }
    }
    flush();
    return {};
}

} // namespace

Result<QString> resolveCommit(const QString &repo, const QString &ref, int timeoutMs)
{
    auto out = runGit(repo, {QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("--quiet"),
                             ref + QStringLiteral("^{commit}")},
                      timeoutMs, 4096);
    if (!out)
        return fail(ErrorCode::NotFound, QStringLiteral("'%1' names no commit in %2").arg(ref, repo));
    return QString::fromUtf8(out->out).trimmed();
}

Result<QString> resolveTargetBranch(const QString &repo, const QString &name, int timeoutMs)
{
    for (const QString &candidate : {QStringLiteral("refs/heads/") + name, QStringLiteral("refs/remotes/origin/") + name, name}) {
        if (auto commit = resolveCommit(repo, candidate, timeoutMs); commit)
            return candidate;
    }
    return fail(ErrorCode::NotFound, QStringLiteral("target branch '%1' does not exist in %2").arg(name, repo));
}

Result<ScanTargets> collectGitRange(const QString &repo, const QString &base, const QString &head, const ScanLimits &limits)
{
    auto baseCommit = resolveCommit(repo, base, limits.gitTimeoutMs);
    if (!baseCommit)
        return std::unexpected(baseCommit.error());
    auto headCommit = resolveCommit(repo, head, limits.gitTimeoutMs);
    if (!headCommit)
        return std::unexpected(headCommit.error());
    auto log = runGit(repo,
                      {QStringLiteral("log"), QStringLiteral("-p"), QStringLiteral("-U0"), QStringLiteral("--no-merges"),
                       QStringLiteral("--no-color"), QStringLiteral("--no-ext-diff"), QStringLiteral("--no-textconv"),
                       QStringLiteral("-M"), QStringLiteral("--format=%x00%H"),
                       // Fixed prefixes whatever the user's diff.noprefix / mnemonicPrefix say.
                       QStringLiteral("--src-prefix=a/"), QStringLiteral("--dst-prefix=b/"),
                       *baseCommit + QStringLiteral("..") + *headCommit, QStringLiteral("--")},
                      limits.gitTimeoutMs, limits.maxTotalBytes);
    if (!log)
        return std::unexpected(log.error());

    ScanTargets targets;
    const std::string_view text(log->out.constData(), std::size_t(log->out.size()));
    std::string commit;
    std::string path;
    bool fileOpen = false;    // a file's diff started and has not yet produced an item
    bool inHunk = false;
    int oldLeft = 0;
    int newLeft = 0;
    ScanItem current;
    std::map<std::pair<std::string, std::string>, qint64> bytesPerFile; // (commit, path) -> bytes taken
    auto flush = [&]() {
        if (!current.path.empty())
            targets.items.push_back(std::move(current));
        current = ScanItem();
    };
    LineReader lines(text);
    while (const auto next = lines.next()) {
        const std::string_view line = *next;
        if (inHunk) {
            if (!line.empty() && line[0] == '\\')
                continue; // "\ No newline at end of file"
            if (!line.empty() && line[0] == '-') {
                --oldLeft;
            } else if (!line.empty() && line[0] == '+') {
                --newLeft;
                auto &taken = bytesPerFile[{commit, path}];
                if (taken + qint64(line.size()) > limits.maxFileBytes) {
                    current.truncated = true;
                } else if (!current.truncated) {
                    current.text.append(line.substr(1));
                    current.text.push_back('\n');
                    taken += qint64(line.size());
                }
            } else {
                --oldLeft;
                --newLeft;
            }
            if (oldLeft <= 0 && newLeft <= 0) {
                inHunk = false;
                flush();
            }
            continue;
        }
        if (!line.empty() && line[0] == '\0') {
            commit = std::string(line.substr(1));
            ++targets.commits;
            fileOpen = false;
            continue;
        }
        if (line.starts_with("diff --git ")) {
            fileOpen = true;
            path.clear();
            continue;
        }
        if (line.starts_with("+++ ")) {
            path = newFilePath(line);
            continue;
        }
        if (line.starts_with("Binary files ") && fileOpen) {
            // "Binary files a/x and b/y differ": the new name follows " and ".
            const std::size_t and_ = line.rfind(" and ");
            std::string name = unquoteGitPath(line.substr(and_ + 5, line.size() - and_ - 5 - std::string_view(" differ").size()));
            if (name != "/dev/null") {
                if (name.starts_with("b/"))
                    name.erase(0, 2);
                ScanItem binary;
                binary.path = name;
                binary.commit = commit;
                binary.kind = ScanItem::Kind::Binary;
                targets.items.push_back(std::move(binary));
            }
            continue;
        }
        if (line.starts_with("@@ ") && !path.empty()) {
            // "@@ -a,b +c,d @@"
            const std::size_t minus = line.find('-');
            const std::size_t plus = line.find(" +", minus);
            const std::size_t close = line.find(" @@", plus + 2);
            int oldStart = 0, newStart = 0;
            if (minus == std::string_view::npos || plus == std::string_view::npos || close == std::string_view::npos
                || !parseRange(line.substr(minus + 1, plus - minus - 1), oldStart, oldLeft)
                || !parseRange(line.substr(plus + 2, close - plus - 2), newStart, newLeft))
                return fail(ErrorCode::Malformed, QStringLiteral("cannot read the hunk header '%1' of %2 in commit %3")
                                                      .arg(QString::fromUtf8(line.data(), int(line.size())).left(100),
                                                           QString::fromStdString(path), QString::fromStdString(commit)));
            current = ScanItem();
            current.path = path;
            current.commit = commit;
            current.startLine = newStart;
            current.fileStart = fileOpen;
            fileOpen = false;
            inHunk = oldLeft > 0 || newLeft > 0;
            if (!inHunk)
                flush();
            continue;
        }
    }
    if (inHunk)
        flush();

    auto merges = runGit(repo,
                         {QStringLiteral("log"), QStringLiteral("-p"), QStringLiteral("-U0"), QStringLiteral("--cc"),
                          QStringLiteral("--merges"), QStringLiteral("--no-color"), QStringLiteral("--no-ext-diff"),
                          QStringLiteral("--no-textconv"), QStringLiteral("--format=%x00%H"),
                          QStringLiteral("--src-prefix=a/"), QStringLiteral("--dst-prefix=b/"),
                          *baseCommit + QStringLiteral("..") + *headCommit, QStringLiteral("--")},
                         limits.gitTimeoutMs, limits.maxTotalBytes);
    if (!merges)
        return std::unexpected(merges.error());
    if (Result<void> appended = appendMergeAdditions(std::string_view(merges->out.constData(), std::size_t(merges->out.size())),
                                                     limits, targets);
        !appended)
        return std::unexpected(appended.error());

    std::erase_if(targets.items, [](const ScanItem &item) {
        return item.kind == ScanItem::Kind::Text && item.text.empty() && !item.fileStart;
    });
    targets.description = QStringLiteral("%1 commit(s) in %2..%3").arg(targets.commits).arg(base, head);
    return targets;
}

Result<ScanTargets> collectPath(const QString &path, const ScanLimits &)
{
    const QFileInfo info(path);
    if (!info.exists())
        return fail(ErrorCode::NotFound, QStringLiteral("%1 does not exist").arg(path));
    ScanTargets targets;
    targets.description = QStringLiteral("path %1").arg(path);
    if (info.isFile()) {
        ScanItem item;
        item.kind = ScanItem::Kind::File;
        item.fileToRead = info.absoluteFilePath();
        item.path = info.fileName().toStdString();
        targets.items.push_back(std::move(item));
        return targets;
    }
    const QDir root(info.absoluteFilePath());
    QStringList dirs{root.absolutePath()};
    QStringList files;
    while (!dirs.isEmpty()) {
        const QString dir = dirs.takeFirst();
        QDirIterator entries(dir, QDir::Files | QDir::Dirs | QDir::Hidden | QDir::NoDotAndDotDot | QDir::NoSymLinks);
        while (entries.hasNext()) {
            const QString entry = entries.next();
            const QFileInfo e = entries.fileInfo();
            if (e.isDir()) {
                if (e.fileName() != QLatin1String(".git"))
                    dirs.append(entry);
            } else if (e.isFile()) {
                files.append(entry);
            }
        }
    }
    files.sort();
    for (const QString &file : std::as_const(files)) {
        ScanItem item;
        item.kind = ScanItem::Kind::File;
        item.fileToRead = file;
        item.path = root.relativeFilePath(file).toStdString();
        targets.items.push_back(std::move(item));
    }
    return targets;
}

Result<std::optional<QByteArray>> readFileAtCommit(const QString &repo, const QString &commit, const QString &path,
                                                   int timeoutMs)
{
    auto listed = runGit(repo, {QStringLiteral("ls-tree"), QStringLiteral("--full-tree"), QStringLiteral("--name-only"), commit,
                                QStringLiteral("--"), path},
                         timeoutMs, 1 << 20);
    if (!listed)
        return std::unexpected(listed.error());
    if (listed->out.trimmed().isEmpty())
        return std::optional<QByteArray>();
    auto blob = runGit(repo, {QStringLiteral("cat-file"), QStringLiteral("blob"), commit + QLatin1Char(':') + path}, timeoutMs,
                       16 * 1024 * 1024);
    if (!blob)
        return std::unexpected(blob.error());
    return std::optional<QByteArray>(blob->out);
}

Result<QStringList> readIgnoreFile(const QString &path)
{
    QFile file(path);
    if (!file.exists())
        return QStringList();
    if (!file.open(QIODevice::ReadOnly))
        return fail(ErrorCode::Io, QStringLiteral("cannot read %1: %2").arg(path, file.errorString()));
    return parseIgnoreList(file.readAll());
}

QStringList parseIgnoreList(const QByteArray &content)
{
    QStringList out;
    const QList<QByteArray> lines = content.split('\n');
    for (const QByteArray &raw : lines) {
        const QString line = QString::fromUtf8(raw).trimmed();
        if (line.isEmpty() || line.startsWith(QLatin1Char('#')))
            continue;
        out.append(line);
    }
    return out;
}

ScanOutcome scanTargets(const SecretScanner &scanner, const ScanTargets &targets, const ScanLimits &limits, int threads,
                        const QStringList &ignoredFingerprints, const ScanOptions &options)
{
    if (threads <= 0)
        threads = std::max(1, QThread::idealThreadCount());
    const QSet<QString> ignored(ignoredFingerprints.begin(), ignoredFingerprints.end());
    std::atomic<std::size_t> next{0};
    QMutex mutex;
    ScanOutcome outcome;
    std::vector<std::vector<SecretFinding>> perItem(targets.items.size());

    auto work = [&]() {
        auto scratch = scanner.makeScratch();
        QStringList binary, truncated, unreadable;
        qint64 bytes = 0;
        int files = 0;
        // Grown as needed and never zero-filled: reading fills it.
        std::unique_ptr<char[]> buffer;
        qint64 capacity = 0;
        while (true) {
            const std::size_t index = next.fetch_add(1);
            if (index >= targets.items.size())
                break;
            const ScanItem &item = targets.items[index];
            Fragment fragment;
            fragment.path = item.path;
            fragment.commit = item.commit;
            fragment.startLine = item.startLine;
            fragment.fileStart = item.fileStart;
            auto shown = [&item] { return QString::fromStdString(item.path); };
            if (item.kind == ScanItem::Kind::Binary) {
                binary.append(shown());
                fragment.text = {};
            } else if (item.kind == ScanItem::Kind::File) {
                // Plain POSIX reads: this loop runs once per file and Qt's file object costs
                // more than the read itself for small files.
                const int fd = ::open(QFile::encodeName(item.fileToRead).constData(), O_RDONLY | O_CLOEXEC);
                struct stat st {};
                if (fd < 0 || ::fstat(fd, &st) != 0) {
                    if (fd >= 0)
                        ::close(fd);
                    unreadable.append(shown());
                    continue;
                }
                const qint64 size = qint64(st.st_size);
                const qint64 take = std::min(size, limits.maxFileBytes);
                if (take > capacity) {
                    capacity = std::max(take, qint64(1) << 20);
                    buffer.reset(new char[std::size_t(capacity)]);
                }
                qint64 got = 0;
                while (got < take) {
                    const ssize_t n = ::read(fd, buffer.get() + got, std::size_t(take - got));
                    if (n < 0 && errno == EINTR)
                        continue;
                    if (n <= 0)
                        break;
                    got += n;
                }
                ::close(fd);
                if (got < take) {
                    unreadable.append(shown());
                    continue;
                }
                ++files;
                const std::string_view content(buffer.get(), std::size_t(got));
                if (looksBinary(content)) {
                    binary.append(shown());
                    fragment.text = {};
                } else {
                    if (size > take)
                        truncated.append(shown());
                    fragment.text = content;
                }
            } else {
                if (item.truncated)
                    truncated.append(shown());
                fragment.text = item.text;
            }
            if (item.kind != ScanItem::Kind::File && item.fileStart)
                ++files;
            bytes += qint64(fragment.text.size());
            perItem[index] = scanner.scan(fragment, *scratch, options);
        }
        QMutexLocker lock(&mutex);
        outcome.binarySkipped += binary;
        outcome.truncated += truncated;
        outcome.unreadable += unreadable;
        outcome.bytes += bytes;
        outcome.files += files;
    };

    if (threads == 1 || targets.items.size() < 2) {
        work();
    } else {
        QThreadPool pool;
        pool.setMaxThreadCount(threads);
        QList<QFuture<void>> futures;
        for (int i = 0; i < threads; ++i)
            futures.append(QtConcurrent::run(&pool, work));
        for (QFuture<void> &f : futures)
            f.waitForFinished();
    }

    for (std::vector<SecretFinding> &found : perItem) {
        for (SecretFinding &f : found) {
            const QString fingerprint = QString::fromStdString(f.fingerprint);
            const QString global = QStringLiteral("%1:%2:%3").arg(QString::fromStdString(f.file), QString::fromStdString(f.ruleId)).arg(f.line);
            if (ignored.contains(fingerprint) || ignored.contains(global))
                outcome.ignored.push_back(std::move(f));
            else
                outcome.findings.push_back(std::move(f));
        }
    }
    outcome.binarySkipped.removeDuplicates();
    outcome.truncated.removeDuplicates();
    outcome.binarySkipped.sort();
    outcome.truncated.sort();
    outcome.unreadable.sort();
    return outcome;
}

} // namespace Sluice::Security
