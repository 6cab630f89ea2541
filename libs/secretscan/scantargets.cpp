// SPDX-License-Identifier: Apache-2.0
#include "scantargets.h"

#include <QDir>
#include <QDirIterator>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QMutex>
#include <QProcess>
#include <QRegularExpression>
#include <QSet>
#include <QThread>
#include <QThreadPool>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>
#include <ctime>
#include <functional>
#include <cerrno>
#include <atomic>
#include <map>
#include <unordered_map>
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

std::string toUtf8(std::string_view bytes, bool bigEndian)
{
    QString text;
    text.reserve(qsizetype(bytes.size() / 2));
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
        const auto hi = static_cast<unsigned char>(bytes[bigEndian ? i : i + 1]);
        const auto lo = static_cast<unsigned char>(bytes[bigEndian ? i + 1 : i]);
        text.append(QChar(char16_t((hi << 8) | lo)));
    }
    return text.toStdString();
}

} // namespace

std::optional<std::string> decodeUtf16Text(std::string_view bytes)
{
    bool bigEndian = false;
    std::string_view body = bytes;
    if (bytes.starts_with("\xFF\xFE") || bytes.starts_with("\xFE\xFF")) {
        bigEndian = bytes[0] == '\xFE';
        body = bytes.substr(2);
    } else {
        // No byte order mark: text that is mostly ASCII (source, configuration: where secrets
        // are) has a zero byte in nearly every unit, always on the same side.
        const std::string_view sample = bytes.substr(0, 8000);
        const std::size_t units = sample.size() / 2;
        if (units < 2)
            return std::nullopt;
        std::size_t zeroEven = 0, zeroOdd = 0;
        for (std::size_t i = 0; i + 1 < sample.size(); i += 2) {
            zeroEven += sample[i] == '\0';
            zeroOdd += sample[i + 1] == '\0';
        }
        if (zeroOdd * 10 >= units * 7 && zeroEven * 50 <= units)
            bigEndian = false;
        else if (zeroEven * 10 >= units * 7 && zeroOdd * 50 <= units)
            bigEndian = true;
        else
            return std::nullopt;
    }
    // A NUL code unit is no part of text: this is binary after all.
    for (std::size_t i = 0; i + 1 < body.size(); i += 2) {
        if (body[i] == '\0' && body[i + 1] == '\0')
            return std::nullopt;
    }
    return toUtf8(body, bigEndian);
}

namespace {

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
} // namespace

Result<void> readMergePatch(std::string_view text, const ScanLimits &limits, ScanTargets &targets)
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
            // A line of nothing but '@' has no end of its run: checked before it sizes a string.
            const std::size_t ats = line.find_first_not_of('@');
            const std::size_t close = ats == std::string_view::npos ? ats : line.find(std::string(ats, '@'), ats);
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

namespace {

// The contents of @p names ("COMMIT:PATH") through one `git cat-file --batch`, read as they
// stream: a blob larger than @p maxBytes, or one that does not exist, is std::nullopt and
// costs no memory.
Result<std::vector<std::optional<std::string>>> readBlobs(const QString &repo, const std::vector<std::string> &names, qint64 maxBytes,
                                                          int timeoutMs)
{
    std::vector<std::optional<std::string>> out(names.size());
    if (names.empty())
        return out;
    QProcess git;
    git.setProgram(QStringLiteral("git"));
    git.setArguments({QStringLiteral("-C"), repo, QStringLiteral("cat-file"), QStringLiteral("--batch")});
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("LC_ALL"), QStringLiteral("C"));
    git.setProcessEnvironment(env);
    git.start();
    if (!git.waitForStarted(timeoutMs))
        return fail(ErrorCode::NotFound, QStringLiteral("cannot run git: %1").arg(git.errorString()));
    QByteArray request;
    for (const std::string &name : names)
        request += QByteArray::fromStdString(name) + '\n';
    git.write(request);
    git.closeWriteChannel();
    QByteArray buffer;
    std::size_t index = 0;
    qint64 contentLeft = -1; // bytes of the current blob (plus its '\n') still to come
    bool keep = false;
    QElapsedTimer clock;
    clock.start();
    auto consume = [&]() -> Result<void> {
        while (index < names.size()) {
            if (contentLeft < 0) {
                const qsizetype eol = buffer.indexOf('\n');
                if (eol < 0)
                    return {};
                const QList<QByteArray> header = buffer.left(eol).split(' ');
                buffer.remove(0, eol + 1);
                // "<object id> <type> <size>", or "<name as asked> missing" (names may hold spaces).
                static const QRegularExpression objectId(QStringLiteral("^[0-9a-f]{40}([0-9a-f]{24})?$"));
                const bool found = header.size() == 3 && objectId.match(QString::fromLatin1(header[0])).hasMatch();
                if (!found) {
                    ++index;
                } else if (header[1] == "blob") {
                    const qint64 size = header[2].toLongLong();
                    contentLeft = size + 1;
                    keep = size <= maxBytes;
                    if (keep)
                        out[index] = std::string();
                } else {
                    contentLeft = header[2].toLongLong() + 1; // not a blob: read past it
                    keep = false;
                }
                continue;
            }
            const qint64 take = std::min<qint64>(contentLeft, buffer.size());
            if (keep)
                out[index]->append(buffer.constData(), std::size_t(std::min<qint64>(take, contentLeft - 1)));
            buffer.remove(0, qsizetype(take));
            contentLeft -= take;
            if (contentLeft > 0)
                return {};
            contentLeft = -1;
            ++index;
        }
        return {};
    };
    while (index < names.size()) {
        const int left = int(timeoutMs - clock.elapsed());
        if (left <= 0 || git.state() == QProcess::NotRunning) {
            buffer += git.readAllStandardOutput();
            (void)consume();
            if (index < names.size()) {
                git.kill();
                git.waitForFinished(5000);
                return fail(ErrorCode::Timeout, QStringLiteral("git cat-file did not deliver %1 file(s) in %2").arg(names.size() - index).arg(repo));
            }
            break;
        }
        git.waitForReadyRead(std::min(left, 1000));
        buffer += git.readAllStandardOutput();
        git.readAllStandardError();
        (void)consume();
    }
    git.waitForFinished(5000);
    return out;
}

// Lines of @p text, without their '\n'.
std::vector<std::string_view> splitLines(std::string_view text)
{
    std::vector<std::string_view> lines;
    LineReader reader(text);
    while (const auto line = reader.next())
        lines.push_back(*line);
    return lines;
}

/*
 * Binary files in the diff that are UTF-16 text (a byte order mark, or the zero bytes of
 * mostly-ASCII text) are read from git, decoded and scanned like the added lines of a text
 * file: a line of the new version that the old version does not have (as often) is added.
 * The others stay binary: only path rules apply, and the caller is told they were not read.
 */
Result<void> decodeBinaryItems(const QString &repo, const ScanLimits &limits, ScanTargets &targets)
{
    struct Wanted {
        std::size_t item;
        std::string oldPath;
    };
    std::vector<Wanted> wanted;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < targets.items.size(); ++i) {
        const ScanItem &item = targets.items[i];
        if (item.kind != ScanItem::Kind::Binary || item.path.find('\n') != std::string::npos)
            continue;
        wanted.push_back({i, item.oldPath.find('\n') == std::string::npos ? item.oldPath : std::string()});
        names.push_back(item.commit + ":" + item.path);
        names.push_back(wanted.back().oldPath.empty() ? std::string("0000000000000000000000000000000000000000:x")
                                                       : item.commit + "^:" + wanted.back().oldPath);
    }
    // UTF-16 doubles the bytes of ASCII text.
    auto blobs = readBlobs(repo, names, 2 * limits.maxFileBytes + 2, limits.gitTimeoutMs);
    if (!blobs)
        return std::unexpected(blobs.error());
    std::vector<ScanItem> decoded;
    for (std::size_t w = 0; w < wanted.size(); ++w) {
        ScanItem &binary = targets.items[wanted[w].item];
        const std::optional<std::string> &newBlob = (*blobs)[2 * w];
        std::optional<std::string> newText = newBlob ? decodeUtf16Text(*newBlob) : std::nullopt;
        if (!newText)
            continue;
        const std::optional<std::string> &oldBlob = (*blobs)[2 * w + 1];
        const std::optional<std::string> oldText = oldBlob ? decodeUtf16Text(*oldBlob) : std::nullopt;
        std::unordered_map<std::string_view, int> oldLines;
        if (oldText) {
            for (std::string_view line : splitLines(*oldText))
                ++oldLines[line];
        }
        const std::vector<std::string_view> lines = splitLines(*newText);
        std::vector<ScanItem> fileItems;
        auto fresh = [&]() {
            ScanItem item;
            item.path = binary.path;
            item.commit = binary.commit;
            item.decoded = true;
            item.fileStart = false;
            return item;
        };
        ScanItem current = fresh();
        qint64 taken = 0;
        bool truncated = false;
        for (std::size_t n = 0; n < lines.size(); ++n) {
            auto old = oldLines.find(lines[n]);
            if (old != oldLines.end() && old->second > 0) {
                --old->second;
                if (!current.text.empty())
                    fileItems.push_back(std::exchange(current, fresh()));
                continue;
            }
            if (taken + qint64(lines[n].size()) + 1 > limits.maxFileBytes) {
                truncated = true;
                break;
            }
            if (current.text.empty())
                current.startLine = int(n) + 1;
            current.text.append(lines[n]);
            current.text.push_back('\n');
            taken += qint64(lines[n].size()) + 1;
        }
        if (!current.text.empty() || fileItems.empty())
            fileItems.push_back(std::move(current)); // an empty one still applies the path rules once
        fileItems.front().fileStart = true;
        fileItems.back().truncated = truncated;
        for (ScanItem &item : fileItems)
            decoded.push_back(std::move(item));
        binary.kind = ScanItem::Kind::Text; // replaced by the decoded items below
        binary.path.clear();
    }
    std::erase_if(targets.items, [](const ScanItem &item) { return item.kind == ScanItem::Kind::Text && item.path.empty(); });
    for (ScanItem &item : decoded)
        targets.items.push_back(std::move(item));
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

Result<void> readLogPatch(std::string_view log, const ScanLimits &limits, ScanTargets &targets)
{
    const std::string_view text = log;
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
            const std::size_t differ = std::string_view(" differ").size();
            if (and_ == std::string_view::npos || and_ < 13 || line.size() < and_ + 5 + differ)
                continue;
            std::string name = unquoteGitPath(line.substr(and_ + 5, line.size() - and_ - 5 - differ));
            std::string oldName = unquoteGitPath(line.substr(13, and_ - 13));
            if (name != "/dev/null") {
                if (name.starts_with("b/"))
                    name.erase(0, 2);
                ScanItem binary;
                binary.path = name;
                binary.oldPath = oldName.starts_with("a/") ? oldName.substr(2) : std::string();
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
    return {};
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
    if (Result<void> read = readLogPatch(std::string_view(log->out.constData(), std::size_t(log->out.size())), limits, targets); !read)
        return std::unexpected(read.error());

    auto merges = runGit(repo,
                         {QStringLiteral("log"), QStringLiteral("-p"), QStringLiteral("-U0"), QStringLiteral("--cc"),
                          QStringLiteral("--merges"), QStringLiteral("--no-color"), QStringLiteral("--no-ext-diff"),
                          QStringLiteral("--no-textconv"), QStringLiteral("--format=%x00%H"),
                          QStringLiteral("--src-prefix=a/"), QStringLiteral("--dst-prefix=b/"),
                          *baseCommit + QStringLiteral("..") + *headCommit, QStringLiteral("--")},
                         limits.gitTimeoutMs, limits.maxTotalBytes);
    if (!merges)
        return std::unexpected(merges.error());
    if (Result<void> appended = readMergePatch(std::string_view(merges->out.constData(), std::size_t(merges->out.size())),
                                               limits, targets);
        !appended)
        return std::unexpected(appended.error());

    if (Result<void> decoded = decodeBinaryItems(repo, limits, targets); !decoded)
        return std::unexpected(decoded.error());
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
    ScanOptions limitedOptions = options;
    if (limitedOptions.maxFindings == 0)
        limitedOptions.maxFindings = limits.maxFindingsPerFragment;

    auto work = [&]() {
        timespec cpuAtStart{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpuAtStart); // a pool thread may have run other work before
        const qint64 threadCpuAtStart = qint64(cpuAtStart.tv_sec) * 1000 + cpuAtStart.tv_nsec / 1000000;
        auto scratch = scanner.makeScratch();
        QStringList binary, truncated, unreadable, capped, decodedFiles;
        std::string decodedText; // a UTF-16 file, as UTF-8
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
            // A binary file the rules skip anyway (a global allowlist path: images, fonts,
            // archives) is not "unscannable": it would not be scanned as text either.
            if (item.kind == ScanItem::Kind::Binary) {
                if (!scanner.skipsFragment(fragment))
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
                    if (std::optional<std::string> text = decodeUtf16Text(content)) {
                        decodedText = std::move(*text);
                        decodedFiles.append(shown());
                        if (size > take)
                            truncated.append(shown());
                        fragment.text = decodedText;
                    } else {
                        if (!scanner.skipsFragment(fragment))
                            binary.append(shown());
                        fragment.text = {};
                    }
                } else {
                    if (size > take)
                        truncated.append(shown());
                    fragment.text = content;
                }
            } else {
                if (item.truncated)
                    truncated.append(shown());
                if (item.decoded)
                    decodedFiles.append(shown());
                fragment.text = item.text;
            }
            if (item.kind != ScanItem::Kind::File && item.fileStart)
                ++files;
            bytes += qint64(fragment.text.size());
            FragmentScan scanned = scanner.scanFragment(fragment, *scratch, limitedOptions);
            if (scanned.capped)
                capped.append(shown());
            if (scanned.incomplete)
                unreadable.append(shown()); // not scanned with every rule: the caller's error
            perItem[index] = std::move(scanned.findings);
        }
        timespec cpu{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
        QMutexLocker lock(&mutex);
        outcome.threadCpuMs.push_back(qint64(cpu.tv_sec) * 1000 + cpu.tv_nsec / 1000000 - threadCpuAtStart);
        outcome.binarySkipped += binary;
        outcome.truncated += truncated;
        outcome.unreadable += unreadable;
        outcome.findingsCapped += capped;
        outcome.decoded += decodedFiles;
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
    std::sort(outcome.threadCpuMs.begin(), outcome.threadCpuMs.end(), std::greater<>());
    outcome.binarySkipped.removeDuplicates();
    outcome.truncated.removeDuplicates();
    outcome.findingsCapped.removeDuplicates();
    outcome.decoded.removeDuplicates();
    outcome.decoded.sort();
    outcome.findingsCapped.sort();
    outcome.binarySkipped.sort();
    outcome.truncated.sort();
    outcome.unreadable.sort();
    return outcome;
}

} // namespace Sluice::Security
