// SPDX-License-Identifier: Apache-2.0
#include "securitygate.h"

#include "ruleset.h"
#include "scantargets.h"
#include "secretscanner.h"

#include <sluice/repository.h>
#include <sluice/services.h>

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonObject>
#include <QSaveFile>

#include <exception>

namespace Sluice {
namespace Gates {

using namespace Security;

namespace {

// Findings listed in the verdict (and so in the developer's next task); the report lists all.
constexpr int MaxVerdictFindings = 50;

struct SecretsResult {
    ScanOutcome outcome;
    QString scanned;        // what range was scanned
    QStringList ruleSources;
    QStringList diagnostics;
};

// Markdown table cells: no pipes or newlines.
QString cell(QString text)
{
    text.replace(QLatin1Char('|'), QStringLiteral("\\|"));
    text.replace(QLatin1Char('\n'), QLatin1Char(' '));
    return text;
}

QString yamlString(QString text)
{
    text.replace(QLatin1Char('\\'), QStringLiteral("\\\\"));
    text.replace(QLatin1Char('"'), QStringLiteral("\\\""));
    text.replace(QLatin1Char('\n'), QLatin1Char(' '));
    return QLatin1Char('"') + text + QLatin1Char('"');
}

QString vulnerabilityText(const JudgedVulnerability &j)
{
    const Vulnerability &v = j.vulnerability;
    QString text = QStringLiteral("%1 %2: %3 (%4)").arg(v.package, v.version, v.id, severityName(v.severity));
    if (!v.summary.isEmpty())
        text += QStringLiteral(" %1").arg(v.summary);
    if (!v.fixedIn.isEmpty())
        text += QStringLiteral("; fixed in %1").arg(v.fixedIn);
    if (!j.note.isEmpty())
        text += QStringLiteral("; %1").arg(j.note);
    return text;
}

Result<SecretsResult> scanSecrets(const SecuritySettings &settings, const GateRequest &request, const QString &targetBranch,
                                  RepositoryService *repository, CompiledRulesCache &cache)
{
    const int timeout = int(std::min<qint64>(settings.gitTimeoutMs, INT_MAX));
    QString repo = request.worktree;
    QString head = QStringLiteral("HEAD");
    Result<QString> target = fail(ErrorCode::Unknown, QString());
    Result<QString> targetCommit = fail(ErrorCode::Unknown, QString());
    if (repository) {
        // The host's repository holds the task's recorded head and the target as just fetched:
        // what the agent's working copy holds besides is not the change.
        if (request.task.headSha.isEmpty())
            return fail(ErrorCode::NotFound, QStringLiteral("the task has no recorded head to scan yet"));
        repo = repository->path();
        head = request.task.headSha;
        targetCommit = repository->refreshTarget();
        if (!targetCommit)
            return std::unexpected(targetCommit.error());
        target = repository->targetRef();
    } else {
        target = resolveTargetBranch(repo, targetBranch, timeout);
        if (!target)
            return std::unexpected(target.error());
        targetCommit = resolveCommit(repo, *target, timeout);
        if (!targetCommit)
            return std::unexpected(targetCommit.error());
    }

    // Rules and ignores come from the target branch: a task cannot allowlist its own secret.
    SecretsResult result;
    auto projectRules = readFileAtCommit(repo, *targetCommit, settings.projectRules, timeout);
    if (!projectRules)
        return std::unexpected(projectRules.error());
    auto ignoreFile = readFileAtCommit(repo, *targetCommit, settings.ignoreFile, timeout);
    if (!ignoreFile)
        return std::unexpected(ignoreFile.error());

    QByteArray key;
    Result<RuleSet> rules = fail(ErrorCode::Unknown, QString());
    if (*projectRules) {
        key = "project:" + **projectRules;
        rules = loadRuleText((*projectRules)->toStdString(),
                             QStringLiteral("%1 (on %2)").arg(settings.projectRules, *target), QString());
    } else if (!settings.rulesFile.isEmpty()) {
        QFile f(settings.rulesFile);
        key = "file:" + settings.rulesFile.toUtf8() + ':' + (f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray());
        rules = loadRuleFile(settings.rulesFile);
    } else {
        key = "default";
        rules = defaultRuleSet();
    }
    if (!rules)
        return std::unexpected(rules.error());
    result.ruleSources = rules->sources;
    const QByteArray digest = QCryptographicHash::hash(key, QCryptographicHash::Sha256);
    std::shared_ptr<const SecretScanner> scanner = cache.find(digest);
    if (!scanner) {
        CompileOptions options;
        options.cacheDirectory = defaultScannerCacheDirectory();
        auto compiled = SecretScanner::shared(*rules, options);
        if (!compiled)
            return std::unexpected(compiled.error());
        scanner = *compiled;
        cache.insert(digest, scanner);
    }
    result.diagnostics = scanner->diagnostics();

    ScanLimits limits;
    limits.maxFileBytes = settings.maxFileBytes;
    limits.gitTimeoutMs = timeout;
    auto targets = collectGitRange(repo, *targetCommit, head, limits);
    if (!targets)
        return std::unexpected(targets.error());
    result.scanned = QStringLiteral("%1 commit(s) in %2..%3").arg(targets->commits).arg(*target, head == QLatin1String("HEAD") ? head : head.left(12));
    result.outcome = scanTargets(*scanner, *targets, limits, settings.threads,
                                 *ignoreFile ? parseIgnoreList(**ignoreFile) : QStringList());
    if (!result.outcome.unreadable.isEmpty())
        return fail(ErrorCode::Io, QStringLiteral("cannot read %1").arg(result.outcome.unreadable.join(QStringLiteral(", "))));
    return result;
}

struct Counts {
    int unscannable = 0;
    int secretsFound = 0;
    int secretsBlocking = 0;
    int depsBlocking = 0;
    int depsWarning = 0;
    int degraded = 0;
};

QString renderReport(const GateRequest &request, const QString &status, const QString &reason, const Counts &counts,
                     const SecretsResult *secrets, const AuditVerdict &audit, const SecuritySettings &settings)
{
    QString md;
    md += QStringLiteral("---\n");
    md += QStringLiteral("security_status: %1\n").arg(status);
    md += QStringLiteral("secrets_found: %1\n").arg(counts.secretsFound);
    md += QStringLiteral("secrets_blocking: %1\n").arg(counts.secretsBlocking);
    md += QStringLiteral("deps_blocking: %1\n").arg(counts.depsBlocking);
    md += QStringLiteral("deps_warning: %1\n").arg(counts.depsWarning);
    md += QStringLiteral("deps_degraded: %1\n").arg(counts.degraded);
    md += QStringLiteral("deps_audit_degraded: %1\n").arg(counts.degraded > 0 ? QStringLiteral("true") : QStringLiteral("false"));
    md += QStringLiteral("unscannable: %1\n").arg(counts.unscannable);
    md += QStringLiteral("severity_threshold: %1\n").arg(severityName(settings.threshold));
    md += QStringLiteral("task: %1\n").arg(request.task.id);
    md += QStringLiteral("branch: %1\n").arg(yamlString(request.task.branch));
    if (secrets)
        md += QStringLiteral("scanned: %1\n").arg(yamlString(secrets->scanned));
    md += QStringLiteral("---\n\n");
    md += QStringLiteral("# Security report: task %1 (%2)\n\n").arg(request.task.id).arg(cell(request.task.branch));
    md += QStringLiteral("## Verdict\n\n%1: %2\n\n").arg(status, cell(reason));

    md += QStringLiteral("## Secrets\n\n");
    if (!secrets) {
        md += QStringLiteral("Not scanned.\n\n");
    } else if (secrets->outcome.findings.empty()) {
        md += QStringLiteral("None in %1.\n\n").arg(secrets->scanned);
    } else {
        md += QStringLiteral("%1 in %2%3.\n\n| rule | file | line | commit | match (masked) | fingerprint |\n|---|---|---|---|---|---|\n")
                  .arg(secrets->outcome.findings.size())
                  .arg(secrets->scanned)
                  .arg(settings.secretsBlock ? QString() : QStringLiteral(" (secrets_block is off: warnings only)"));
        for (const SecretFinding &f : secrets->outcome.findings) {
            md += QStringLiteral("| %1 | %2 | %3 | %4 | `%5` | %6 |\n")
                      .arg(cell(QString::fromStdString(f.ruleId)), cell(QString::fromStdString(f.file)))
                      .arg(f.line)
                      .arg(QString::fromStdString(f.commit).left(12), cell(QString::fromStdString(f.masked)).replace(QLatin1Char('`'), QLatin1Char('\'')),
                           cell(QString::fromStdString(f.fingerprint)));
        }
        md += QLatin1Char('\n');
    }
    if (secrets && !secrets->outcome.ignored.empty())
        md += QStringLiteral("%1 finding(s) ignored by fingerprint (%2).\n\n").arg(secrets->outcome.ignored.size()).arg(settings.ignoreFile);

    auto vulnerabilityTable = [&](const QString &title, const QList<JudgedVulnerability> &list) {
        md += QStringLiteral("## %1\n\n").arg(title);
        if (list.isEmpty()) {
            md += QStringLiteral("None.\n\n");
            return;
        }
        md += QStringLiteral("| auditor | package | version | id | severity | fixed in | note |\n|---|---|---|---|---|---|---|\n");
        for (const JudgedVulnerability &j : list) {
            const Vulnerability &v = j.vulnerability;
            md += QStringLiteral("| %1 | %2 | %3 | %4 | %5 | %6 | %7 |\n")
                      .arg(auditToolName(j.tool), cell(v.package), cell(v.version), cell(v.id), severityName(v.severity),
                           cell(v.fixedIn), cell(j.note.isEmpty() ? v.summary : j.note));
        }
        md += QLatin1Char('\n');
    };
    vulnerabilityTable(QStringLiteral("Dependencies (blocking)"), audit.blocking);
    vulnerabilityTable(QStringLiteral("Dependencies (warning)"), audit.warnings);
    if (!audit.ignored.isEmpty())
        vulnerabilityTable(QStringLiteral("Dependencies (ignored)"), audit.ignored);

    md += QStringLiteral("## Audit\n\n");
    if (audit.runs.isEmpty()) {
        md += QStringLiteral("No auditor configured.\n\n");
    } else {
        md += QStringLiteral("| auditor | status | detail |\n|---|---|---|\n");
        for (const AuditorRun &run : audit.runs) {
            const QString state = run.status == AuditorRun::Status::Ok ? QStringLiteral("ok")
                                  : run.status == AuditorRun::Status::NotApplicable ? QStringLiteral("not applicable")
                                                                                    : QStringLiteral("DEGRADED");
            md += QStringLiteral("| %1 | %2 | %3 |\n").arg(auditToolName(run.tool), state, cell(run.detail));
        }
        md += QLatin1Char('\n');
    }
    if (secrets && (!secrets->outcome.binarySkipped.isEmpty() || !secrets->outcome.truncated.isEmpty()
                    || !secrets->outcome.findingsCapped.isEmpty() || !secrets->outcome.decoded.isEmpty())) {
        md += QStringLiteral("## Not fully scanned\n\n");
        for (const QString &f : secrets->outcome.binarySkipped)
            md += QStringLiteral("- %1: binary, not scanned for secrets (only path rules applied; unscannable: %2)\n")
                      .arg(cell(f), settings.unscannableFails ? QStringLiteral("fail") : QStringLiteral("warn"));
        for (const QString &f : secrets->outcome.decoded)
            md += QStringLiteral("- %1: UTF-16, scanned after decoding\n").arg(cell(f));
        for (const QString &f : secrets->outcome.findingsCapped)
            md += QStringLiteral("- %1: more findings than are listed\n").arg(cell(f));
        for (const QString &f : secrets->outcome.truncated)
            md += QStringLiteral("- %1: only the first %2 bytes of its added lines were scanned\n").arg(f).arg(settings.maxFileBytes);
        md += QLatin1Char('\n');
    }
    if (secrets) {
        md += QStringLiteral("## Rules\n\n%1\n").arg(secrets->ruleSources.join(QStringLiteral(", then ")));
        for (const QString &d : secrets->diagnostics)
            md += QStringLiteral("\n- %1").arg(d);
        md += QLatin1Char('\n');
    }
    return md;
}

GateVerdict judge(const SecuritySettings &settings, const GateRequest &request, const QString &targetBranch,
                  RepositoryService *repository, CompiledRulesCache &cache, const QDate &today)
{
    if (!settings.enabled)
        return GateVerdict::skip(QStringLiteral("security gate disabled for this project"));
    if (request.worktree.isEmpty() || !QFileInfo(request.worktree).isDir())
        return GateVerdict::error(QStringLiteral("worktree '%1' does not exist, so nothing can be scanned").arg(request.worktree));
    if (request.artifactsDir.isEmpty())
        return GateVerdict::error(QStringLiteral("no artifacts directory given for the security report"));

    Counts counts;
    QString scanError;
    std::optional<SecretsResult> secrets;
    if (targetBranch.isEmpty()) {
        scanError = QStringLiteral("the project names no target branch to compare with");
    } else if (auto scanned = scanSecrets(settings, request, targetBranch, repository, cache); scanned) {
        secrets = std::move(*scanned);
    } else {
        scanError = scanned.error().message;
    }

    QList<AuditorRun> runs;
    for (const AuditorConfig &auditor : settings.auditors)
        runs.append(runAuditor(auditor, request.worktree));
    const AuditVerdict audit = judgeAudit(runs, settings.threshold, settings.ignores, today);

    if (secrets) {
        counts.unscannable = int(secrets->outcome.binarySkipped.size());
        counts.secretsFound = int(secrets->outcome.findings.size());
        counts.secretsBlocking = settings.secretsBlock ? counts.secretsFound : 0;
    }
    counts.depsBlocking = int(audit.blocking.size());
    counts.depsWarning = int(audit.warnings.size());
    counts.degraded = audit.degraded;

    QList<Finding> findings;
    QStringList failures;
    if (secrets) {
        QStringList where;
        for (const SecretFinding &f : secrets->outcome.findings) {
            Finding finding;
            finding.rule = QString::fromStdString(f.ruleId);
            finding.file = QString::fromStdString(f.file);
            finding.line = f.line;
            finding.severity = settings.secretsBlock ? QStringLiteral("blocking") : QStringLiteral("warning");
            finding.message = QStringLiteral("secret (%1): %2%3; remove it from the branch history and rotate it; fingerprint %4")
                                  .arg(QString::fromStdString(f.description).left(120), QString::fromStdString(f.masked),
                                       f.commit.empty() ? QString()
                                                        : QStringLiteral(" added in commit %1").arg(QString::fromStdString(f.commit).left(12)),
                                       QString::fromStdString(f.fingerprint));
            findings.append(finding);
            if (where.size() < 3)
                where.append(f.line > 0 ? QStringLiteral("%1 in %2:%3").arg(finding.rule, finding.file).arg(f.line)
                                        : QStringLiteral("%1 in %2").arg(finding.rule, finding.file));
        }
        // The branch's author chose these bytes: a file the scanner cannot read is not clean.
        for (const QString &file : secrets->outcome.binarySkipped) {
            Finding finding;
            finding.rule = QStringLiteral("unscannable");
            finding.file = file;
            finding.severity = settings.unscannableFails ? QStringLiteral("blocking") : QStringLiteral("warning");
            finding.message = QStringLiteral("binary content (not UTF-8 or UTF-16 text): not scanned for secrets");
            findings.append(finding);
        }
        if (counts.unscannable > 0 && settings.unscannableFails)
            failures.append(QStringLiteral("%1 file(s) cannot be scanned for secrets (unscannable: fail): %2%3")
                                .arg(counts.unscannable)
                                .arg(QStringList(secrets->outcome.binarySkipped.mid(0, 3)).join(QStringLiteral(", ")),
                                     counts.unscannable > 3 ? QStringLiteral(", ...") : QString()));
        if (counts.secretsBlocking > 0)
            failures.append(QStringLiteral("%1 secret(s): %2%3").arg(counts.secretsBlocking).arg(where.join(QStringLiteral(", ")),
                                                                                                 counts.secretsBlocking > 3 ? QStringLiteral(", ...") : QString()));
    }
    for (const JudgedVulnerability &j : audit.blocking + audit.warnings) {
        Finding finding;
        finding.rule = j.vulnerability.id;
        finding.file = j.vulnerability.source;
        finding.severity = j.blocking ? QStringLiteral("blocking") : QStringLiteral("warning");
        finding.message = QStringLiteral("vulnerable dependency %1").arg(vulnerabilityText(j));
        findings.append(finding);
    }
    if (counts.depsBlocking > 0) {
        QStringList names;
        for (int i = 0; i < audit.blocking.size() && i < 3; ++i)
            names.append(QStringLiteral("%1 %2 %3 (%4)").arg(audit.blocking[i].vulnerability.package, audit.blocking[i].vulnerability.version,
                                                            audit.blocking[i].vulnerability.id,
                                                            severityName(audit.blocking[i].vulnerability.severity)));
        failures.append(QStringLiteral("%1 blocking vulnerability(ies) at or above %2: %3")
                            .arg(counts.depsBlocking).arg(severityName(settings.threshold), names.join(QStringLiteral(", "))));
    }
    QStringList degradedDetails;
    for (const AuditorRun &run : audit.runs) {
        if (run.status != AuditorRun::Status::Degraded)
            continue;
        degradedDetails.append(run.detail);
        Finding finding;
        finding.rule = QStringLiteral("audit:%1").arg(auditToolName(run.tool));
        finding.severity = settings.strictAudit ? QStringLiteral("blocking") : QStringLiteral("warning");
        finding.message = QStringLiteral("dependency audit degraded: %1").arg(run.detail);
        findings.append(finding);
    }
    if (counts.degraded > 0 && settings.strictAudit)
        failures.append(QStringLiteral("dependency audit degraded (strict): %1").arg(degradedDetails.join(QStringLiteral("; "))));

    QString status;
    QString reason;
    if (!scanError.isEmpty()) {
        status = QStringLiteral("ERROR");
        reason = QStringLiteral("secret scan failed (fail-closed): %1").arg(scanError);
    } else if (!failures.isEmpty()) {
        status = QStringLiteral("FAIL");
        reason = failures.join(QStringLiteral("; "));
    } else {
        status = QStringLiteral("PASS");
        reason = QStringLiteral("%1: %2 secret(s) found, %3 blocking, %4 blocking vulnerability(ies), %5 warning(s)")
                     .arg(counts.degraded > 0 || counts.depsWarning > 0 || counts.secretsFound > 0 || counts.unscannable > 0
                              ? QStringLiteral("passed with warnings")
                              : QStringLiteral("clean"))
                     .arg(counts.secretsFound).arg(counts.secretsBlocking).arg(counts.depsBlocking).arg(counts.depsWarning);
        if (counts.unscannable > 0)
            reason += QStringLiteral("; %1 file(s) not scanned (binary): %2").arg(counts.unscannable).arg(
                QStringList(secrets->outcome.binarySkipped.mid(0, 3)).join(QStringLiteral(", ")));
        if (counts.degraded > 0)
            reason += QStringLiteral("; dependency audit degraded (warning only): %1").arg(degradedDetails.join(QStringLiteral("; ")));
    }

    const QJsonObject evidence{
        {QStringLiteral("security_status"), status},
        {QStringLiteral("secrets_found"), counts.secretsFound},
        {QStringLiteral("unscannable"), counts.unscannable},
        {QStringLiteral("unscannable_files"), secrets ? QJsonArray::fromStringList(secrets->outcome.binarySkipped.mid(0, 50)) : QJsonArray()},
        {QStringLiteral("secrets_blocking"), counts.secretsBlocking},
        {QStringLiteral("deps_blocking"), counts.depsBlocking},
        {QStringLiteral("deps_warning"), counts.depsWarning},
        {QStringLiteral("deps_degraded"), counts.degraded},
        {QStringLiteral("degraded"), counts.degraded}, // the host notifies "audit-degraded" on it
        {QStringLiteral("scanned"), secrets ? secrets->scanned : QString()},
        {QStringLiteral("bytes_scanned"), secrets ? double(secrets->outcome.bytes) : 0.0},
        {QStringLiteral("report"), QDir(request.artifactsDir).filePath(settings.reportName)},
    };

    // The report is part of the verdict: if it cannot be written, the gate has not decided.
    const QString report = renderReport(request, status, reason, counts, secrets ? &*secrets : nullptr, audit, settings);
    if (!QDir().mkpath(request.artifactsDir))
        return GateVerdict::error(QStringLiteral("cannot create the artifacts directory %1").arg(request.artifactsDir), evidence);
    QSaveFile file(QDir(request.artifactsDir).filePath(settings.reportName));
    if (!file.open(QIODevice::WriteOnly) || file.write(report.toUtf8()) < 0 || !file.commit())
        return GateVerdict::error(QStringLiteral("cannot write the security report %1: %2").arg(file.fileName(), file.errorString()),
                                  evidence);

    if (status == QLatin1String("ERROR"))
        return GateVerdict::error(reason, evidence);
    if (findings.size() > MaxVerdictFindings) {
        const int more = int(findings.size()) - MaxVerdictFindings;
        findings = findings.mid(0, MaxVerdictFindings);
        Finding rest;
        rest.rule = QStringLiteral("security");
        rest.message = QStringLiteral("%1 more finding(s) in the report %2").arg(more).arg(file.fileName());
        findings.append(rest);
    }
    if (status == QLatin1String("FAIL"))
        return GateVerdict::fail(reason, findings, evidence);
    GateVerdict verdict = GateVerdict::pass(reason, evidence);
    for (const Finding &f : findings)
        verdict.addFinding(f);
    return verdict;
}

} // namespace

Result<SecuritySettings> SecuritySettings::fromSettings(const QVariantMap &settings)
{
    SecuritySettings s;
    auto boolean = [&](const char *key, bool &into) -> Result<void> {
        const QVariant v = settings.value(QLatin1String(key));
        if (v.userType() != QMetaType::Bool)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("security setting '%1' is missing or not a boolean").arg(QLatin1String(key)));
        into = v.toBool();
        return {};
    };
    for (auto [key, into] : {std::pair<const char *, bool *>{"enabled", &s.enabled}, {"secrets_block", &s.secretsBlock},
                             {"strict_audit", &s.strictAudit}}) {
        if (auto ok = boolean(key, *into); !ok)
            return std::unexpected(ok.error());
    }
    const QString unscannable = settings.value(QStringLiteral("unscannable")).toString();
    if (unscannable != QLatin1String("warn") && unscannable != QLatin1String("fail"))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("security setting 'unscannable' must be 'warn' or 'fail'"));
    s.unscannableFails = unscannable == QLatin1String("fail");
    s.rulesFile = settings.value(QStringLiteral("rules")).toString();
    if (!s.rulesFile.isEmpty() && !QFileInfo(s.rulesFile).isFile())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("security setting 'rules': %1 is not a file").arg(s.rulesFile));
    if (!s.rulesFile.isEmpty()) {
        // Check the rules now, so a broken file is a configuration error and not a red task.
        auto rules = loadRuleFile(s.rulesFile);
        if (!rules)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("security setting 'rules': %1").arg(rules.error().message));
    }
    auto relative = [&](const char *key, QString &into) -> Result<void> {
        into = settings.value(QLatin1String(key)).toString().trimmed();
        if (into.isEmpty() || QDir::isAbsolutePath(into) || into.split(QLatin1Char('/')).contains(QStringLiteral("..")))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("security setting '%1' must be a path inside the repository").arg(QLatin1String(key)));
        return {};
    };
    if (auto ok = relative("project_rules", s.projectRules); !ok)
        return std::unexpected(ok.error());
    if (auto ok = relative("ignore_file", s.ignoreFile); !ok)
        return std::unexpected(ok.error());
    s.reportName = settings.value(QStringLiteral("report")).toString().trimmed();
    if (s.reportName.isEmpty() || s.reportName.contains(QLatin1Char('/')) || s.reportName.startsWith(QLatin1Char('.')))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("security setting 'report' must be a plain file name"));
    s.maxFileBytes = settings.value(QStringLiteral("max_file_size")).toLongLong();
    s.threads = settings.value(QStringLiteral("threads")).toInt();
    s.gitTimeoutMs = settings.value(QStringLiteral("git_timeout")).toLongLong();
    if (s.maxFileBytes < 1024 || s.threads < 0 || s.gitTimeoutMs < 1000)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("security settings 'max_file_size', 'threads' or 'git_timeout' out of range"));
    const auto threshold = severityFromName(settings.value(QStringLiteral("severity_threshold")).toString());
    if (!threshold || *threshold == Severity::Unknown)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("security setting 'severity_threshold' must be CRITICAL, HIGH, MEDIUM or LOW"));
    s.threshold = *threshold;
    const QVariantList auditors = settings.value(QStringLiteral("auditors")).toList();
    for (int i = 0; i < auditors.size(); ++i) {
        auto auditor = AuditorConfig::fromSetting(auditors.at(i).toMap(), i);
        if (!auditor)
            return std::unexpected(auditor.error());
        s.auditors.append(*auditor);
    }
    const QVariantList ignores = settings.value(QStringLiteral("audit_ignores")).toList();
    for (int i = 0; i < ignores.size(); ++i) {
        auto ignore = AuditIgnore::fromSetting(ignores.at(i).toMap(), i);
        if (!ignore)
            return std::unexpected(ignore.error());
        s.ignores.append(*ignore);
    }
    return s;
}

std::shared_ptr<const SecretScanner> CompiledRulesCache::find(const QByteArray &key)
{
    QMutexLocker lock(&m_mutex);
    return key == m_key ? m_scanner : nullptr;
}

void CompiledRulesCache::insert(const QByteArray &key, std::shared_ptr<const SecretScanner> scanner)
{
    QMutexLocker lock(&m_mutex);
    m_key = key;
    m_scanner = std::move(scanner);
}

SecurityGate::SecurityGate(const PluginContext &context, SecuritySettings settings, QObject *parent)
    : Gate(context, parent)
    , m_settings(std::move(settings))
    , m_cache(std::make_shared<CompiledRulesCache>())
{
}

SecurityGate::~SecurityGate() = default;

std::unique_ptr<GateRun> SecurityGate::evaluate(const GateRequest &request)
{
    const QString targetBranch = context().project().targetBranch;
    const QDate today = context().clock().now().toUTC().date();
    // The work runs on the pool and may outlive this gate: it owns copies and logs nothing.
    auto run = std::make_unique<ConcurrentGateRun>([settings = m_settings, request, targetBranch, repository = context().repository(),
                                                    cache = m_cache, today]() -> GateVerdict {
        try {
            return judge(settings, request, targetBranch, repository.get(), *cache, today);
        } catch (const std::exception &e) {
            return GateVerdict::error(QStringLiteral("security gate failed internally: %1").arg(QString::fromLocal8Bit(e.what())));
        } catch (...) {
            return GateVerdict::error(QStringLiteral("security gate failed internally"));
        }
    });
    const qint64 taskId = request.task.id;
    connect(run.get(), &PluginJob::finished, this, [this, taskId](PluginJob *job) {
        const GateVerdict &verdict = static_cast<GateRun *>(job)->verdict();
        const QString result = GateVerdict::resultName(verdict.result()) + QLatin1Char(':');
        // Reasons and findings hold masked matches only.
        const bool quiet = verdict.result() == GateVerdict::Result::Skip
                           || (verdict.result() == GateVerdict::Result::Pass
                               && verdict.evidence().value(QLatin1String("deps_degraded")).toInt() == 0);
        if (!quiet)
            qCWarning(context().logging()).noquote() << "task" << taskId << result << verdict.reason();
        else
            qCInfo(context().logging()).noquote() << "task" << taskId << result << verdict.reason();
    });
    return run;
}

Result<std::unique_ptr<PluginInstance>> SecurityGate::create(const PluginContext &context)
{
    auto settings = SecuritySettings::fromSettings(context.settings());
    if (!settings)
        return std::unexpected(settings.error());
    return std::make_unique<SecurityGate>(context, std::move(*settings));
}

} // namespace Gates
} // namespace Sluice
