// SPDX-License-Identifier: Apache-2.0
// Helpers of the secret-scanning benchmark (tests/bench/security.sh):
//
//   bench_secretscan generate OUT_DIR MB SOURCE_DIR...
//       Copies text files (C/C++ headers, JavaScript, TypeScript, Python, Perl, JSON, Markdown)
//       from the source directories into OUT_DIR until it holds at least MB megabytes (1e6
//       bytes), going round the sources again under new names if they run out. Every 40th
//       file gets one planted secret line (a deterministic mix of token kinds). Prints the
//       bytes written, the file count and the planted count.
//
//   bench_secretscan vectorscan DIR
//       Reads every file below DIR into memory, then times one bare Vectorscan pass (one
//       thread) of all the default rules' regexes over them (SINGLEMATCH, ASCII mode), and
//       the scanner itself over the same bytes (on stderr).
//       Prints "bytes seconds MB/s files_with_a_match".
//
//   bench_secretscan hostile MB
//       The hostile cases of issue 16 in memory (MB megabytes each, one thread, every finding
//       kept): one long line of keyword hits with secrets, the same as lines, keywords without
//       secrets, plain keyword assignments; each with a bare Vectorscan pass over the same bytes.
//       Prints one line per case: bytes, findings, scan_ms, vectorscan_ms, their ratio.
//
//   bench_secretscan findings DIR
//       Every finding of the scanner (default rules, one thread) on the files below DIR, one
//       line each, sorted: "file:line:column-endLine rule masked". Two builds of the scanner
//       give the same findings when their outputs are equal (`diff`).
#include "ruleset.h"
#include "scantargets.h"
#include "secretscanner.h"

#include <hs/hs.h>

#include <QCoreApplication>
#include <QDir>
#include <QDirIterator>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace Sluice::Security;

namespace {

// CPU seconds of this thread: what a pass cost, whatever else the machine is running.
double threadCpuSeconds()
{
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + double(t.tv_nsec) / 1e9;
}

std::string randomFrom(std::mt19937 &rng, const char *alphabet, int length)
{
    const std::string a(alphabet);
    std::uniform_int_distribution<std::size_t> pick(0, a.size() - 1);
    std::string out;
    for (int i = 0; i < length; ++i)
        out.push_back(a[pick(rng)]);
    return out;
}

// One line holding a secret of one of several kinds, in the syntax of a source file.
std::string plantedLine(std::mt19937 &rng, int kind)
{
    const char *upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const char *alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const char *hex = "0123456789abcdef";
    switch (kind % 6) {
    case 0: return "aws_access_key_id = \"AKIA" + randomFrom(rng, upper, 16) + "\"";
    case 1: return "const token = '" + std::string("ghp_") + randomFrom(rng, alnum, 36) + "';";
    case 2: return "SLACK_BOT_TOKEN=xoxb-" + randomFrom(rng, "0123456789", 12) + "-" + randomFrom(rng, "0123456789", 13) + "-"
                   + randomFrom(rng, alnum, 24);
    case 3: return "stripe.api_key = \"sk_live_" + randomFrom(rng, alnum, 24) + "\"";
    case 4: return "api_key: \"" + randomFrom(rng, hex, 32) + "\"";
    default: return "\"npm_token\": \"npm_" + randomFrom(rng, alnum, 36) + "\"";
    }
}

bool isSourceText(const QString &name)
{
    static const QStringList suffixes{QStringLiteral(".h"), QStringLiteral(".hpp"), QStringLiteral(".js"), QStringLiteral(".mjs"),
                                      QStringLiteral(".ts"), QStringLiteral(".py"), QStringLiteral(".pm"), QStringLiteral(".pl"),
                                      QStringLiteral(".json"), QStringLiteral(".md")};
    for (const QString &s : suffixes) {
        if (name.endsWith(s))
            return true;
    }
    return false;
}

int generate(const QString &out, qint64 megabytes, const QStringList &sources)
{
    QStringList files;
    for (const QString &source : sources) {
        QDirIterator it(source, QDir::Files | QDir::NoSymLinks, QDirIterator::Subdirectories);
        while (it.hasNext()) {
            const QString f = it.next();
            const QFileInfo info = it.fileInfo();
            if (isSourceText(info.fileName()) && info.size() > 0 && info.size() < 2 * 1024 * 1024)
                files.append(f);
        }
    }
    files.sort();
    if (files.isEmpty()) {
        std::fprintf(stderr, "no source text found\n");
        return 2;
    }
    std::mt19937 rng(42);
    const qint64 target = megabytes * 1000 * 1000;
    qint64 written = 0;
    int count = 0;
    int planted = 0;
    for (int round = 0; written < target; ++round) {
        for (const QString &file : std::as_const(files)) {
            if (written >= target)
                break;
            QFile in(file);
            if (!in.open(QIODevice::ReadOnly))
                continue;
            QByteArray content = in.readAll();
            if (content.contains('\0'))
                continue;
            ++count;
            if (count % 40 == 0) {
                QList<QByteArray> lines = content.split('\n');
                std::uniform_int_distribution<int> at(0, int(lines.size()) - 1);
                lines.insert(at(rng), QByteArray::fromStdString(plantedLine(rng, planted)));
                content = lines.join('\n');
                ++planted;
            }
            const QString relative = QStringLiteral("r%1/%2").arg(round).arg(QString(file).remove(0, 1));
            const QString path = QDir(out).filePath(relative);
            QDir().mkpath(QFileInfo(path).path());
            QFile o(path);
            if (!o.open(QIODevice::WriteOnly) || o.write(content) != content.size()) {
                std::fprintf(stderr, "cannot write %s\n", qPrintable(path));
                return 2;
            }
            written += content.size();
        }
    }
    std::printf("%lld %d %d\n", static_cast<long long>(written), count, planted);
    return 0;
}

int bareVectorscan(const QString &dir)
{
    auto rules = defaultRuleSet();
    if (!rules)
        return 2;
    auto scanner = SecretScanner::compile(*rules);
    if (!scanner)
        return 2;
    // Every rule regex, including those the scanner leaves to RE2 because they count characters.
    std::vector<std::string> patterns;
    for (const Rule &rule : rules->rules) {
        if (!rule.regex.empty())
            patterns.push_back(rule.regex);
    }
    std::vector<const char *> expressions;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    for (std::size_t i = 0; i < patterns.size(); ++i) {
        expressions.push_back(patterns[i].c_str());
        flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY);
        ids.push_back(unsigned(i));
    }
    hs_database_t *db = nullptr;
    hs_compile_error_t *error = nullptr;
    if (hs_compile_multi(expressions.data(), flags.data(), ids.data(), unsigned(patterns.size()), HS_MODE_BLOCK, nullptr, &db, &error)
        != HS_SUCCESS) {
        std::fprintf(stderr, "compile: %s\n", error ? error->message : "?");
        return 2;
    }
    hs_scratch_t *scratch = nullptr;
    hs_alloc_scratch(db, &scratch);

    auto targets = collectPath(dir, ScanLimits());
    if (!targets)
        return 2;
    std::vector<QByteArray> contents;
    qint64 bytes = 0;
    for (const ScanItem &item : targets->items) {
        QFile f(item.fileToRead);
        if (!f.open(QIODevice::ReadOnly))
            continue;
        contents.push_back(f.readAll());
        bytes += contents.back().size();
    }
    // The scanner itself over the same bytes in memory (no file reading), for comparison.
    auto scannerScratch = (*scanner)->makeScratch();
    std::size_t findings = 0;
    QElapsedTimer scanClock;
    scanClock.start();
    const double scanCpuFrom = threadCpuSeconds();
    for (std::size_t i = 0; i < contents.size(); ++i) {
        Fragment fragment;
        fragment.text = std::string_view(contents[i].constData(), std::size_t(contents[i].size()));
        fragment.path = targets->items[i].path;
        findings += (*scanner)->scan(fragment, *scannerScratch).size();
    }
    const double scanSeconds = double(scanClock.nsecsElapsed()) / 1e9;
    const double scanCpu = threadCpuSeconds() - scanCpuFrom;
    std::fprintf(stderr, "in-memory scanner: %.3f s, %.1f MB/s, %zu findings, cpu %.3f s\n", scanSeconds, double(bytes) / 1e6 / scanSeconds,
                 findings, scanCpu);

    int matched = 0;
    QElapsedTimer clock;
    clock.start();
    const double cpuFrom = threadCpuSeconds();
    for (const QByteArray &c : contents) {
        bool any = false;
        hs_scan(db, c.constData(), unsigned(c.size()), 0, scratch,
                [](unsigned, unsigned long long, unsigned long long, unsigned, void *ctx) {
                    *static_cast<bool *>(ctx) = true;
                    return 0;
                },
                &any);
        matched += any ? 1 : 0;
    }
    const double seconds = double(clock.nsecsElapsed()) / 1e9;
    const double cpu = threadCpuSeconds() - cpuFrom;
    std::printf("%lld %.3f %.1f %d %.3f\n", static_cast<long long>(bytes), seconds, double(bytes) / 1e6 / seconds, matched, cpu);
    hs_free_scratch(scratch);
    hs_free_database(db);
    return 0;
}

// The hostile cases of issue 16, in memory, one thread, every finding kept: one long line
// of keyword hits with secrets, the same bytes as lines, keywords without secrets, and
// keyword assignments whose values are too plain to be secrets. Each next to a bare
// Vectorscan pass of the rule regexes over the same bytes.
int hostileCases(qint64 megabytes)
{
    auto rules = defaultRuleSet();
    if (!rules)
        return 2;
    auto scanner = SecretScanner::compile(*rules);
    if (!scanner)
        return 2;
    std::vector<std::string> patterns;
    for (const Rule &rule : rules->rules) {
        if (!rule.regex.empty())
            patterns.push_back(rule.regex);
    }
    std::vector<const char *> expressions;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    for (std::size_t i = 0; i < patterns.size(); ++i) {
        expressions.push_back(patterns[i].c_str());
        flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY);
        ids.push_back(unsigned(i));
    }
    hs_database_t *db = nullptr;
    hs_compile_error_t *error = nullptr;
    if (hs_compile_multi(expressions.data(), flags.data(), ids.data(), unsigned(patterns.size()), HS_MODE_BLOCK, nullptr, &db, &error)
        != HS_SUCCESS)
        return 2;
    hs_scratch_t *hsScratch = nullptr;
    hs_alloc_scratch(db, &hsScratch);

    const std::size_t size = std::size_t(megabytes) * 1000 * 1000;
    auto repeat = [&](const std::string &unit) {
        std::string out;
        out.reserve(size + unit.size());
        while (out.size() < size)
            out += unit;
        return out;
    };
    std::mt19937 rng(7);
    const char *keywords[] = {"key", "token", "secret", "password", "api", "auth", "access", "credential", "bearer",
                              "private", "client", "aws", "github", "slack", "stripe", "npm", "sk_", "ghp", "xox", "AKIA"};
    std::string dense;
    while (dense.size() < size) {
        dense += keywords[rng() % 20];
        dense += ' ';
    }
    struct Case {
        const char *name;
        std::string text;
    };
    const std::vector<Case> cases{
        {"long-line", repeat("api_key=\"a1b2c3d4e5f6g7h8i9j0k1\" ")},
        {"split-lines", repeat("api_key=\"a1b2c3d4e5f6g7h8i9j0k1\"\n")},
        {"keyword-dense", dense},
        {"keyword-assign", repeat("password = \"aaaaaaaaaaaa\"; token: \"bbbbbbbbbbbbbbbb\" secret=cccccccccccccc\n")},
    };
    auto scratch = (*scanner)->makeScratch();
    std::printf("%-15s %10s %10s %10s %12s %12s %10s %14s\n", "case", "bytes", "findings", "scan_ms", "vectorscan_ms", "ratio", "scan_cpu_ms",
                "vectorscan_cpu");
    for (const Case &c : cases) {
        Fragment fragment;
        fragment.text = c.text;
        fragment.path = "hostile.txt";
        QElapsedTimer clock;
        clock.start();
        const double cpuFrom = threadCpuSeconds();
        const std::size_t findings = (*scanner)->scan(fragment, *scratch).size();
        const double scanMs = double(clock.nsecsElapsed()) / 1e6;
        const double scanCpuMs = (threadCpuSeconds() - cpuFrom) * 1000;
        clock.restart();
        const double vectorscanCpuFrom = threadCpuSeconds();
        hs_scan(db, c.text.data(), unsigned(c.text.size()), 0, hsScratch,
                [](unsigned, unsigned long long, unsigned long long, unsigned, void *) { return 0; }, nullptr);
        const double vectorscanMs = double(clock.nsecsElapsed()) / 1e6;
        const double vectorscanCpuMs = (threadCpuSeconds() - vectorscanCpuFrom) * 1000;
        std::printf("%-15s %10zu %10zu %10.1f %12.1f %12.2f %10.1f %14.1f\n", c.name, c.text.size(), findings, scanMs, vectorscanMs,
                    vectorscanMs / scanMs, scanCpuMs, vectorscanCpuMs);
    }
    hs_free_scratch(hsScratch);
    hs_free_database(db);
    return 0;
}

int dumpFindings(const QString &dir)
{
    auto rules = defaultRuleSet();
    if (!rules)
        return 2;
    auto scanner = SecretScanner::compile(*rules);
    ScanLimits limits;
    limits.maxFindingsPerFragment = 0; // every finding, to compare with builds that had no cap
    auto targets = collectPath(dir, limits);
    if (!scanner || !targets)
        return 2;
    const ScanOutcome outcome = scanTargets(**scanner, *targets, limits, 1);
    std::vector<std::string> lines;
    for (const SecretFinding &f : outcome.findings)
        lines.push_back(f.file + ":" + std::to_string(f.line) + ":" + std::to_string(f.column) + "-" + std::to_string(f.endLine) + " "
                        + f.ruleId + " " + f.masked);
    std::sort(lines.begin(), lines.end());
    for (const std::string &line : lines)
        std::printf("%s\n", line.c_str());
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    const QStringList args = app.arguments();
    if (args.size() >= 5 && args[1] == QLatin1String("generate"))
        return generate(args[2], args[3].toLongLong(), args.mid(4));
    if (args.size() == 3 && args[1] == QLatin1String("vectorscan"))
        return bareVectorscan(args[2]);
    if (args.size() == 3 && args[1] == QLatin1String("findings"))
        return dumpFindings(args[2]);
    if (args.size() == 3 && args[1] == QLatin1String("hostile"))
        return hostileCases(args[2].toLongLong());
    std::fprintf(stderr, "usage: bench_secretscan generate OUT_DIR MB SOURCE_DIR... | vectorscan DIR | hostile MB | findings DIR\n");
    return 2;
}
