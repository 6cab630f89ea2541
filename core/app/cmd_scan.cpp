// SPDX-License-Identifier: Apache-2.0
// `sluice scan`: the security gate's secret scanner from the command line, for people and
// pre-commit hooks. Exit 0: clean; 1: findings; 2: the scan could not be done.
#include "cli.h"

#include "ruleset.h"
#include "scantargets.h"
#include "secretscanner.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonObject>
#include <QProcess>

#include <ctime>
#include <expected>
#include <memory>
#include <optional>

namespace Sluice::Cli {

namespace {

constexpr int ScanFindings = 1;
constexpr int ScanError = 2;

// CPU time of the whole process (every thread), in milliseconds: on a machine shared with
// other work the scan's wall time says as much about the others as about the scan.
qint64 processCpuMs()
{
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return qint64(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

QJsonArray toJson(const QStringList &list)
{
    QJsonArray out;
    for (const QString &item : list)
        out.append(item);
    return out;
}

QJsonObject findingJson(const Security::SecretFinding &f)
{
    QJsonObject o{{QStringLiteral("rule"), QString::fromStdString(f.ruleId)},
                  {QStringLiteral("description"), QString::fromStdString(f.description)},
                  {QStringLiteral("file"), QString::fromStdString(f.file)},
                  {QStringLiteral("line"), f.line},
                  {QStringLiteral("endLine"), f.endLine},
                  {QStringLiteral("column"), f.column},
                  {QStringLiteral("match"), QString::fromStdString(f.masked)},
                  {QStringLiteral("fingerprint"), QString::fromStdString(f.fingerprint)},
                  {QStringLiteral("entropy"), f.entropy}};
    if (!f.commit.empty())
        o.insert(QStringLiteral("commit"), QString::fromStdString(f.commit));
    return o;
}

// What the command line asks for.
struct ScanRequest {
    QString target;         // PATH or GIT-RANGE
    QString repo;           // --repo, for a git range
    std::optional<QString> rulesFile;  // --rules; none: .gitleaks.toml at the root, else the built-in rules
    std::optional<QString> ignoreFile; // --ignore-file; none: .gitleaksignore at the root (if any)
    bool json = false;
    bool useCache = true;
    int threads = 0;
    Security::ScanLimits limits;
};

// What is scanned, and the root whose .gitleaks.toml and .gitleaksignore apply.
struct ScanInput {
    Security::ScanTargets targets;
    QString root;
};

// The rules and the scanner compiled from them.
struct CompiledRules {
    Security::RuleSet rules;
    std::shared_ptr<const Security::SecretScanner> scanner;
    qint64 compileMs = 0;
};

// A step's value, or the exit status to return once the step has printed why it failed.
template <typename T>
using Step = std::expected<T, int>;

Step<ScanRequest> parseScanArguments(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addPositionalArgument(QStringLiteral("target"),
                                 QStringLiteral("A file or directory, or a git range BASE..HEAD (BASE...HEAD: from their merge base)."),
                                 QStringLiteral("PATH|GIT-RANGE"));
    const QCommandLineOption rulesOption(QStringLiteral("rules"),
        QStringLiteral("Rule file in the gitleaks format (default: .gitleaks.toml at the scanned root, else the built-in rules)."),
        QStringLiteral("FILE"));
    const QCommandLineOption repoOption(QStringLiteral("repo"), QStringLiteral("Repository of a git range (default: the current directory)."),
                                        QStringLiteral("DIR"));
    const QCommandLineOption threadsOption(QStringLiteral("threads"), QStringLiteral("Threads to scan with (default: all cores)."),
                                           QStringLiteral("N"), QStringLiteral("0"));
    const QCommandLineOption maxFileOption(QStringLiteral("max-file-size"),
                                           QStringLiteral("Bytes scanned per file (default 10485760); the rest is reported as not scanned."),
                                           QStringLiteral("BYTES"), QStringLiteral("10485760"));
    const QCommandLineOption ignoreOption(QStringLiteral("ignore-file"),
                                          QStringLiteral("Fingerprints to ignore (default: .gitleaksignore at the scanned root)."),
                                          QStringLiteral("FILE"));
    const QCommandLineOption noCacheOption(QStringLiteral("no-cache"),
        QStringLiteral("Compile the rules without the compiled-rules cache ($XDG_CACHE_HOME/sluice, else ~/.cache/sluice)."));
    parser.addOption(noCacheOption);
    parser.addOption(rulesOption);
    parser.addOption(repoOption);
    parser.addOption(threadsOption);
    parser.addOption(maxFileOption);
    parser.addOption(ignoreOption);
    parser.addOption(jsonOption());
    if (!parse(parser, arguments, QStringLiteral("Scan files or the commits of a git range for secrets, with gitleaks-compatible rules.\n"
                                                 "Exit status: 0 no secret, 1 secrets found, 2 error.")))
        return std::unexpected(UsageError);
    const QStringList positional = parser.positionalArguments();
    if (positional.size() != 1) {
        printErr(QStringLiteral("%1: give one PATH or GIT-RANGE\nTry '%1 --help'.").arg(arguments.value(0)));
        return std::unexpected(UsageError);
    }
    ScanRequest request;
    request.target = positional.first();
    request.repo = parser.isSet(repoOption) ? parser.value(repoOption) : QDir::currentPath();
    if (parser.isSet(rulesOption))
        request.rulesFile = parser.value(rulesOption);
    if (parser.isSet(ignoreOption))
        request.ignoreFile = parser.value(ignoreOption);
    request.json = parser.isSet(QStringLiteral("json"));
    request.useCache = !parser.isSet(noCacheOption);
    bool ok = false;
    request.threads = parser.value(threadsOption).toInt(&ok);
    if (!ok || request.threads < 0) {
        printErr(QStringLiteral("%1: --threads must be a number >= 0").arg(arguments.value(0)));
        return std::unexpected(UsageError);
    }
    request.limits.maxFileBytes = parser.value(maxFileOption).toLongLong(&ok);
    if (!ok || request.limits.maxFileBytes <= 0) {
        printErr(QStringLiteral("%1: --max-file-size must be a positive number of bytes").arg(arguments.value(0)));
        return std::unexpected(UsageError);
    }
    return request;
}

Step<ScanInput> collectScanInput(const ScanRequest &request)
{
    const QString &target = request.target;
    QString root;
    Result<Security::ScanTargets> targets = fail(ErrorCode::Unknown, QString());
    if (QFileInfo::exists(target) || !target.contains(QLatin1String(".."))) {
        const QFileInfo info(target);
        root = info.isDir() ? info.absoluteFilePath() : info.absolutePath();
        targets = Security::collectPath(target, request.limits);
    } else {
        const QString &repo = request.repo;
        root = QFileInfo(repo).absoluteFilePath();
        const bool symmetric = target.contains(QLatin1String("..."));
        const QString separator = symmetric ? QStringLiteral("...") : QStringLiteral("..");
        QString base = target.section(separator, 0, 0);
        QString head = target.section(separator, 1);
        if (base.isEmpty())
            base = QStringLiteral("HEAD");
        if (head.isEmpty())
            head = QStringLiteral("HEAD");
        if (symmetric) {
            QProcess git;
            git.start(QStringLiteral("git"), {QStringLiteral("-C"), repo, QStringLiteral("merge-base"), base, head});
            if (!git.waitForFinished(request.limits.gitTimeoutMs) || git.exitCode() != 0) {
                printErr(QStringLiteral("error: %1 and %2 have no merge base in %3").arg(base, head, repo));
                return std::unexpected(ScanError);
            }
            base = QString::fromUtf8(git.readAllStandardOutput()).trimmed();
        }
        targets = Security::collectGitRange(repo, base, head, request.limits);
    }
    if (!targets) {
        printErr(QStringLiteral("error: %1").arg(targets.error().toString()));
        return std::unexpected(ScanError);
    }
    return ScanInput{std::move(*targets), root};
}

Step<CompiledRules> compileRules(const ScanRequest &request, const QString &root)
{
    Result<Security::RuleSet> rules = fail(ErrorCode::Unknown, QString());
    const QString projectRules = QDir(root).filePath(QStringLiteral(".gitleaks.toml"));
    if (request.rulesFile)
        rules = Security::loadRuleFile(*request.rulesFile);
    else if (QFileInfo(projectRules).isFile())
        rules = Security::loadRuleFile(projectRules);
    else
        rules = Security::defaultRuleSet();
    if (!rules) {
        printErr(QStringLiteral("error: %1").arg(rules.error().toString()));
        return std::unexpected(ScanError);
    }
    QElapsedTimer clock;
    clock.start();
    Security::CompileOptions compileOptions;
    if (request.useCache)
        compileOptions.cacheDirectory = Security::defaultScannerCacheDirectory();
    auto scanner = Security::SecretScanner::shared(*rules, compileOptions);
    if (!scanner) {
        printErr(QStringLiteral("error: %1").arg(scanner.error().toString()));
        return std::unexpected(ScanError);
    }
    const qint64 compileMs = clock.elapsed();
    for (const QString &diagnostic : (*scanner)->diagnostics())
        printErr(QStringLiteral("warning: %1").arg(diagnostic));
    return CompiledRules{std::move(*rules), std::move(*scanner), compileMs};
}

Step<QStringList> readIgnoredFingerprints(const ScanRequest &request, const QString &root)
{
    const QString ignorePath = request.ignoreFile.value_or(QDir(root).filePath(QStringLiteral(".gitleaksignore")));
    if (request.ignoreFile && !QFileInfo(ignorePath).isFile()) {
        printErr(QStringLiteral("error: ignore file %1 does not exist").arg(ignorePath));
        return std::unexpected(ScanError);
    }
    auto ignored = Security::readIgnoreFile(ignorePath);
    if (!ignored) {
        printErr(QStringLiteral("error: %1").arg(ignored.error().toString()));
        return std::unexpected(ScanError);
    }
    return std::move(*ignored);
}

// How long the scan took: wall time, and CPU time of the whole process.
struct ScanTimes {
    qint64 scanMs = 0;
    qint64 scanCpuMs = 0;
};

void printJsonReport(const ScanInput &input, const CompiledRules &compiled, const Security::ScanOutcome &outcome,
                     const ScanTimes &times)
{
    const Security::SecretScanner &scanner = *compiled.scanner;
    QJsonArray findings;
    for (const auto &f : outcome.findings)
        findings.append(findingJson(f));
    printJson(QJsonDocument(QJsonObject{
        {QStringLiteral("target"), input.targets.description},
        {QStringLiteral("rules"), scanner.ruleCount()},
        {QStringLiteral("ruleSources"), toJson(compiled.rules.sources)},
        {QStringLiteral("diagnostics"), toJson(scanner.diagnostics())},
        {QStringLiteral("findings"), findings},
        {QStringLiteral("ignored"), int(outcome.ignored.size())},
        {QStringLiteral("files"), outcome.files},
        {QStringLiteral("bytes"), outcome.bytes},
        {QStringLiteral("binarySkipped"), toJson(outcome.binarySkipped)},
        {QStringLiteral("decoded"), toJson(outcome.decoded)},
        {QStringLiteral("findingsCapped"), toJson(outcome.findingsCapped)},
        {QStringLiteral("truncated"), toJson(outcome.truncated)},
        {QStringLiteral("unreadable"), toJson(outcome.unreadable)},
        {QStringLiteral("compileMs"), compiled.compileMs},
        {QStringLiteral("cache"), scanner.cacheStatus()},
        {QStringLiteral("scanMs"), times.scanMs},
        {QStringLiteral("scanCpuMs"), times.scanCpuMs},
        {QStringLiteral("threadCpuMs"), [&] {
             QJsonArray perThread;
             for (qint64 ms : outcome.threadCpuMs)
                 perThread.append(ms);
             return perThread;
         }()}}));
}

void printTextReport(const ScanInput &input, const CompiledRules &compiled, const Security::ScanOutcome &outcome,
                     const Security::ScanLimits &limits, const ScanTimes &times)
{
    for (const auto &f : outcome.findings) {
        printOut(QStringLiteral("%1:%2: [%3] %4%5  fingerprint %6")
                     .arg(QString::fromStdString(f.file))
                     .arg(f.line)
                     .arg(QString::fromStdString(f.ruleId), QString::fromStdString(f.masked),
                          f.commit.empty() ? QString() : QStringLiteral("  (commit %1)").arg(QString::fromStdString(f.commit).left(12)),
                          QString::fromStdString(f.fingerprint)));
    }
    for (const QString &file : outcome.truncated)
        printErr(QStringLiteral("warning: %1: scanned only the first %2 bytes").arg(file).arg(limits.maxFileBytes));
    // Whoever wrote a file controls whether it looks binary: say what was not read.
    for (const QString &file : outcome.binarySkipped)
        printErr(QStringLiteral("warning: %1: binary, not scanned for secrets (only path rules applied)").arg(file));
    for (const QString &file : outcome.decoded)
        printErr(QStringLiteral("note: %1: UTF-16, scanned after decoding").arg(file));
    for (const QString &file : outcome.findingsCapped)
        printErr(QStringLiteral("warning: %1: more than %2 findings; the rest are not listed").arg(file).arg(limits.maxFindingsPerFragment));
    printErr(QStringLiteral("%1 secret(s), %2 ignored, %8 file(s) not scanned (binary); %3 file(s), %4 bytes of %5 in %6 ms with %7 rules")
                 .arg(outcome.findings.size())
                 .arg(outcome.ignored.size())
                 .arg(outcome.files)
                 .arg(outcome.bytes)
                 .arg(input.targets.description)
                 .arg(times.scanMs)
                 .arg(compiled.scanner->ruleCount())
                 .arg(outcome.binarySkipped.size()));
}

} // namespace

int runScan(const QStringList &arguments)
{
    const auto request = parseScanArguments(arguments);
    if (!request)
        return request.error();
    const auto input = collectScanInput(*request);
    if (!input)
        return input.error();
    const auto compiled = compileRules(*request, input->root);
    if (!compiled)
        return compiled.error();
    const auto ignored = readIgnoredFingerprints(*request, input->root);
    if (!ignored)
        return ignored.error();

    QElapsedTimer clock;
    clock.start();
    const qint64 cpuBefore = processCpuMs();
    const Security::ScanOutcome outcome = Security::scanTargets(*compiled->scanner, input->targets, request->limits,
                                                                request->threads, *ignored);
    const ScanTimes times{clock.elapsed(), processCpuMs() - cpuBefore};

    if (request->json)
        printJsonReport(*input, *compiled, outcome, times);
    else
        printTextReport(*input, *compiled, outcome, request->limits, times);
    if (!outcome.unreadable.isEmpty()) {
        printErr(QStringLiteral("error: cannot read %1 file(s): %2").arg(outcome.unreadable.size()).arg(outcome.unreadable.join(QStringLiteral(", "))));
        return ScanError;
    }
    return outcome.findings.empty() ? Success : ScanFindings;
}

} // namespace Sluice::Cli
