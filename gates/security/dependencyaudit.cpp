// SPDX-License-Identifier: Apache-2.0
#include "dependencyaudit.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonParseError>
#include <QProcess>
#include <QRegularExpression>
#include <QSet>

namespace Sluice::Security {

namespace {

constexpr qint64 MaxAuditorOutput = 64 * 1024 * 1024;

std::unexpected<Error> malformed(const QString &message)
{
    return fail(ErrorCode::Malformed, message);
}

Result<QJsonObject> parseObject(const QByteArray &json, const char *tool)
{
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &error);
    if (error.error != QJsonParseError::NoError)
        return malformed(QStringLiteral("%1 printed no valid JSON (%2 at byte %3)")
                             .arg(QLatin1String(tool), error.errorString()).arg(error.offset));
    if (!doc.isObject())
        return malformed(QStringLiteral("%1 printed JSON that is not an object").arg(QLatin1String(tool)));
    return doc.object();
}

QStringList stringsOf(const QJsonValue &value)
{
    QStringList out;
    for (const QJsonValue &v : value.toArray()) {
        if (v.isString())
            out.append(v.toString());
    }
    return out;
}

// One line of process output, bounded, for a degraded reason.
QString firstLine(const QByteArray &bytes)
{
    const QString text = QString::fromUtf8(bytes).trimmed();
    return text.section(QLatin1Char('\n'), 0, 0).left(200);
}

} // namespace

QString severityName(Severity severity)
{
    switch (severity) {
    case Severity::Unknown: return QStringLiteral("UNKNOWN");
    case Severity::Low: return QStringLiteral("LOW");
    case Severity::Medium: return QStringLiteral("MEDIUM");
    case Severity::High: return QStringLiteral("HIGH");
    case Severity::Critical: return QStringLiteral("CRITICAL");
    }
    return QStringLiteral("UNKNOWN");
}

std::optional<Severity> severityFromName(const QString &name)
{
    const QString n = name.trimmed().toUpper();
    if (n == QLatin1String("CRITICAL"))
        return Severity::Critical;
    if (n == QLatin1String("HIGH"))
        return Severity::High;
    if (n == QLatin1String("MEDIUM") || n == QLatin1String("MODERATE"))
        return Severity::Medium;
    if (n == QLatin1String("LOW") || n == QLatin1String("INFO"))
        return Severity::Low;
    if (n == QLatin1String("UNKNOWN"))
        return Severity::Unknown;
    return std::nullopt;
}

Severity severityFromScore(double score)
{
    if (score >= 9.0)
        return Severity::Critical;
    if (score >= 7.0)
        return Severity::High;
    if (score >= 4.0)
        return Severity::Medium;
    if (score > 0)
        return Severity::Low;
    return Severity::Unknown;
}

QString auditToolName(AuditTool tool)
{
    switch (tool) {
    case AuditTool::OsvScanner: return QStringLiteral("osv-scanner");
    case AuditTool::PipAudit: return QStringLiteral("pip-audit");
    case AuditTool::NpmAudit: return QStringLiteral("npm-audit");
    }
    return {};
}

std::optional<AuditTool> auditToolFromName(const QString &name)
{
    for (AuditTool tool : {AuditTool::OsvScanner, AuditTool::PipAudit, AuditTool::NpmAudit}) {
        if (auditToolName(tool) == name)
            return tool;
    }
    return std::nullopt;
}

QStringList AuditorConfig::defaultCommand(AuditTool tool)
{
    switch (tool) {
    case AuditTool::OsvScanner:
        return {QStringLiteral("osv-scanner"), QStringLiteral("--format"), QStringLiteral("json"), QStringLiteral("--recursive"),
                QStringLiteral(".")};
    case AuditTool::PipAudit:
        return {QStringLiteral("pip-audit"), QStringLiteral("-r"), QStringLiteral("requirements.txt"), QStringLiteral("-f"),
                QStringLiteral("json"), QStringLiteral("--progress-spinner"), QStringLiteral("off")};
    case AuditTool::NpmAudit:
        return {QStringLiteral("npm"), QStringLiteral("audit"), QStringLiteral("--json")};
    }
    return {};
}

QString AuditorConfig::defaultRequiredFile(AuditTool tool)
{
    switch (tool) {
    case AuditTool::OsvScanner: return {};
    case AuditTool::PipAudit: return QStringLiteral("requirements.txt");
    case AuditTool::NpmAudit: return QStringLiteral("package-lock.json");
    }
    return {};
}

Result<AuditorConfig> AuditorConfig::fromSetting(const QVariantMap &item, int index)
{
    const QString where = QStringLiteral("security setting 'auditors[%1]'").arg(index);
    AuditorConfig config;
    const auto tool = auditToolFromName(item.value(QStringLiteral("tool")).toString());
    if (!tool)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: key 'tool' must be osv-scanner, pip-audit or npm-audit").arg(where));
    config.tool = *tool;
    config.command = item.value(QStringLiteral("command")).toStringList();
    if (config.command.isEmpty())
        config.command = defaultCommand(*tool);
    config.requiredFile = item.contains(QStringLiteral("requires")) ? item.value(QStringLiteral("requires")).toString()
                                                                    : defaultRequiredFile(*tool);
    if (QDir::isAbsolutePath(config.requiredFile) || config.requiredFile.split(QLatin1Char('/')).contains(QStringLiteral("..")))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: key 'requires' must be a path inside the worktree").arg(where));
    if (item.contains(QStringLiteral("timeout")))
        config.timeoutMs = item.value(QStringLiteral("timeout")).toLongLong();
    if (config.timeoutMs <= 0)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: key 'timeout' must be positive").arg(where));
    return config;
}

Result<AuditIgnore> AuditIgnore::fromSetting(const QVariantMap &item, int index)
{
    const QString where = QStringLiteral("security setting 'audit_ignores[%1]'").arg(index);
    AuditIgnore ignore;
    ignore.id = item.value(QStringLiteral("id")).toString().trimmed();
    ignore.reason = item.value(QStringLiteral("reason")).toString().trimmed();
    const QString expires = item.value(QStringLiteral("expires")).toString().trimmed();
    if (ignore.id.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: key 'id' is required").arg(where));
    if (ignore.reason.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: key 'reason' is required (why is the risk accepted?)").arg(where));
    ignore.expires = QDate::fromString(expires, Qt::ISODate);
    if (!ignore.expires.isValid())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1: key 'expires' must be a date YYYY-MM-DD, not '%2'").arg(where, expires));
    return ignore;
}

Result<QList<Vulnerability>> parseOsvScannerJson(const QByteArray &json)
{
    auto root = parseObject(json, "osv-scanner");
    if (!root)
        return std::unexpected(root.error());
    if (!root->value(QLatin1String("results")).isArray())
        return malformed(QStringLiteral("osv-scanner JSON has no 'results' array"));
    QList<Vulnerability> out;
    for (const QJsonValue &resultValue : root->value(QLatin1String("results")).toArray()) {
        const QJsonObject result = resultValue.toObject();
        const QString source = result.value(QLatin1String("source")).toObject().value(QLatin1String("path")).toString();
        for (const QJsonValue &packageValue : result.value(QLatin1String("packages")).toArray()) {
            const QJsonObject entry = packageValue.toObject();
            const QJsonObject package = entry.value(QLatin1String("package")).toObject();
            QHash<QString, QJsonObject> byId;
            for (const QJsonValue &v : entry.value(QLatin1String("vulnerabilities")).toArray()) {
                const QJsonObject vuln = v.toObject();
                byId.insert(vuln.value(QLatin1String("id")).toString(), vuln);
            }
            QJsonArray groups = entry.value(QLatin1String("groups")).toArray();
            if (groups.isEmpty()) {
                // Older output has no groups: one group per vulnerability.
                for (auto it = byId.cbegin(); it != byId.cend(); ++it)
                    groups.append(QJsonObject{{QStringLiteral("ids"), QJsonArray{it.key()}}});
            }
            for (const QJsonValue &groupValue : groups) {
                const QJsonObject group = groupValue.toObject();
                const QStringList ids = stringsOf(group.value(QLatin1String("ids")));
                if (ids.isEmpty())
                    return malformed(QStringLiteral("osv-scanner JSON has a vulnerability group without ids"));
                Vulnerability v;
                v.package = package.value(QLatin1String("name")).toString();
                v.version = package.value(QLatin1String("version")).toString();
                v.source = source;
                v.id = ids.first();
                QStringList aliases = stringsOf(group.value(QLatin1String("aliases"))) + ids.mid(1);
                Severity fromDatabase = Severity::Unknown;
                QStringList fixed;
                for (const QString &id : ids) {
                    const QJsonObject vuln = byId.value(id);
                    aliases += stringsOf(vuln.value(QLatin1String("aliases")));
                    if (v.summary.isEmpty())
                        v.summary = vuln.value(QLatin1String("summary")).toString();
                    const auto named = severityFromName(
                        vuln.value(QLatin1String("database_specific")).toObject().value(QLatin1String("severity")).toString());
                    if (named && *named > fromDatabase)
                        fromDatabase = *named;
                    for (const QJsonValue &affected : vuln.value(QLatin1String("affected")).toArray()) {
                        for (const QJsonValue &range : affected.toObject().value(QLatin1String("ranges")).toArray()) {
                            for (const QJsonValue &event : range.toObject().value(QLatin1String("events")).toArray()) {
                                const QString f = event.toObject().value(QLatin1String("fixed")).toString();
                                if (!f.isEmpty() && !fixed.contains(f))
                                    fixed.append(f);
                            }
                        }
                    }
                }
                aliases.removeDuplicates();
                aliases.removeAll(v.id);
                v.aliases = aliases;
                v.fixedIn = fixed.join(QStringLiteral(", "));
                bool scoreOk = false;
                const double score = group.value(QLatin1String("max_severity")).toString().toDouble(&scoreOk);
                v.severity = scoreOk && score > 0 ? severityFromScore(score) : fromDatabase;
                out.append(v);
            }
        }
    }
    return out;
}

Result<QList<Vulnerability>> parsePipAuditJson(const QByteArray &json)
{
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(json, &error);
    if (error.error != QJsonParseError::NoError)
        return malformed(QStringLiteral("pip-audit printed no valid JSON (%1 at byte %2)").arg(error.errorString()).arg(error.offset));
    QJsonArray dependencies;
    if (doc.isObject() && doc.object().value(QLatin1String("dependencies")).isArray())
        dependencies = doc.object().value(QLatin1String("dependencies")).toArray();
    else if (doc.isArray())
        dependencies = doc.array(); // pip-audit before 2.0
    else
        return malformed(QStringLiteral("pip-audit JSON has no 'dependencies' array"));
    QList<Vulnerability> out;
    for (const QJsonValue &depValue : dependencies) {
        const QJsonObject dep = depValue.toObject();
        for (const QJsonValue &vulnValue : dep.value(QLatin1String("vulns")).toArray()) {
            const QJsonObject vuln = vulnValue.toObject();
            Vulnerability v;
            v.package = dep.value(QLatin1String("name")).toString();
            v.version = dep.value(QLatin1String("version")).toString();
            v.id = vuln.value(QLatin1String("id")).toString();
            if (v.id.isEmpty())
                return malformed(QStringLiteral("pip-audit JSON has a vulnerability of %1 without an id").arg(v.package));
            v.aliases = stringsOf(vuln.value(QLatin1String("aliases")));
            v.fixedIn = stringsOf(vuln.value(QLatin1String("fix_versions"))).join(QStringLiteral(", "));
            v.summary = vuln.value(QLatin1String("description")).toString().section(QLatin1Char('\n'), 0, 0).left(200);
            v.source = QStringLiteral("requirements");
            // pip-audit reports no severity; a "severity" key, if a newer version adds one, is used.
            v.severity = severityFromName(vuln.value(QLatin1String("severity")).toString()).value_or(Severity::Unknown);
            out.append(v);
        }
    }
    return out;
}

Result<QList<Vulnerability>> parseNpmAuditJson(const QByteArray &json)
{
    auto root = parseObject(json, "npm audit");
    if (!root)
        return std::unexpected(root.error());
    if (root->contains(QLatin1String("error"))) {
        const QJsonObject e = root->value(QLatin1String("error")).toObject();
        return malformed(QStringLiteral("npm audit reported an error: %1 %2")
                             .arg(e.value(QLatin1String("code")).toString(), e.value(QLatin1String("summary")).toString().left(200)));
    }
    if (!root->value(QLatin1String("vulnerabilities")).isObject())
        return malformed(QStringLiteral("npm audit JSON has no 'vulnerabilities' object (only report version 2, npm 7 and later, is read)"));
    QList<Vulnerability> out;
    QSet<QString> seen;
    const QJsonObject vulnerabilities = root->value(QLatin1String("vulnerabilities")).toObject();
    for (auto it = vulnerabilities.begin(); it != vulnerabilities.end(); ++it) {
        const QJsonObject entry = it.value().toObject();
        const QJsonValue fix = entry.value(QLatin1String("fixAvailable"));
        const QString fixedIn = fix.isObject() ? QStringLiteral("%1@%2").arg(fix.toObject().value(QLatin1String("name")).toString(),
                                                                             fix.toObject().value(QLatin1String("version")).toString())
                                               : (fix.toBool() ? QStringLiteral("npm audit fix") : QString());
        // Advisories are the objects in "via"; strings there name the dependency it comes through.
        for (const QJsonValue &via : entry.value(QLatin1String("via")).toArray()) {
            if (!via.isObject())
                continue;
            const QJsonObject advisory = via.toObject();
            Vulnerability v;
            v.package = advisory.value(QLatin1String("name")).toString(it.key());
            v.version = advisory.value(QLatin1String("range")).toString();
            const QString url = advisory.value(QLatin1String("url")).toString();
            static const QRegularExpression ghsa(QStringLiteral("GHSA(-[23456789cfghjmpqrvwx]{4}){3}"));
            const QRegularExpressionMatch m = ghsa.match(url);
            v.id = m.hasMatch() ? m.captured(0)
                                : QStringLiteral("npm-%1").arg(advisory.value(QLatin1String("source")).toVariant().toString());
            if (seen.contains(v.id + QLatin1Char('/') + v.package))
                continue;
            seen.insert(v.id + QLatin1Char('/') + v.package);
            if (!url.isEmpty() && !m.hasMatch())
                v.aliases.append(url);
            v.summary = advisory.value(QLatin1String("title")).toString().left(200);
            v.severity = severityFromName(advisory.value(QLatin1String("severity")).toString())
                             .value_or(severityFromName(entry.value(QLatin1String("severity")).toString()).value_or(Severity::Unknown));
            v.fixedIn = fixedIn;
            v.source = QStringLiteral("package-lock.json");
            out.append(v);
        }
    }
    return out;
}

AuditorRun runAuditor(const AuditorConfig &auditor, const QString &worktree)
{
    AuditorRun run;
    run.tool = auditor.tool;
    const QString name = auditToolName(auditor.tool);
    if (!auditor.requiredFile.isEmpty() && !QFileInfo::exists(QDir(worktree).filePath(auditor.requiredFile))) {
        run.status = AuditorRun::Status::NotApplicable;
        run.detail = QStringLiteral("no %1 in the worktree: nothing to audit").arg(auditor.requiredFile);
        return run;
    }
    QProcess process;
    process.setWorkingDirectory(worktree);
    process.setProgram(auditor.command.first());
    process.setArguments(auditor.command.mid(1));
    process.setStandardInputFile(QProcess::nullDevice());
    process.start();
    if (!process.waitForStarted(30000)) {
        run.detail = QStringLiteral("%1 cannot be started (%2): %3")
                         .arg(name, auditor.command.first(),
                              process.error() == QProcess::FailedToStart ? QStringLiteral("not installed or not executable")
                                                                         : process.errorString());
        return run;
    }
    QByteArray out;
    QByteArray err;
    QElapsedTimer clock;
    clock.start();
    while (process.state() != QProcess::NotRunning) {
        const qint64 left = auditor.timeoutMs - clock.elapsed();
        if (left <= 0) {
            process.kill();
            process.waitForFinished(5000);
            run.detail = QStringLiteral("%1 timed out after %2 ms").arg(name).arg(auditor.timeoutMs);
            return run;
        }
        process.waitForFinished(int(std::min<qint64>(left, 500)));
        out += process.readAllStandardOutput();
        err += process.readAllStandardError();
        if (out.size() > MaxAuditorOutput) {
            process.kill();
            process.waitForFinished(5000);
            run.detail = QStringLiteral("%1 printed more than %2 bytes").arg(name).arg(MaxAuditorOutput);
            return run;
        }
    }
    out += process.readAllStandardOutput();
    err += process.readAllStandardError();
    if (process.exitStatus() != QProcess::NormalExit) {
        run.detail = QStringLiteral("%1 crashed").arg(name);
        return run;
    }
    run.exitCode = process.exitCode();

    // The exit-code contract: which codes carry a report, which are the tool's errors.
    bool reportExpected = false;
    switch (auditor.tool) {
    case AuditTool::OsvScanner: // 0 clean, 1 vulnerabilities found; 127 error, 128 no packages, others unknown
    case AuditTool::PipAudit:   // 0 clean, 1 vulnerabilities found; others are errors
    case AuditTool::NpmAudit:   // 0 clean, 1 vulnerabilities found (or an {"error":…} object); others errors
        reportExpected = run.exitCode == 0 || run.exitCode == 1;
        break;
    }
    if (!reportExpected) {
        const QString said = firstLine(err.isEmpty() ? out : err);
        run.detail = QStringLiteral("%1 exited with %2, outside its contract (0 clean, 1 findings)%3")
                         .arg(name)
                         .arg(run.exitCode)
                         .arg(said.isEmpty() ? QString() : QStringLiteral(": ") + said);
        return run;
    }
    Result<QList<Vulnerability>> parsed = fail(ErrorCode::Unknown, QString());
    switch (auditor.tool) {
    case AuditTool::OsvScanner: parsed = parseOsvScannerJson(out); break;
    case AuditTool::PipAudit: parsed = parsePipAuditJson(out); break;
    case AuditTool::NpmAudit: parsed = parseNpmAuditJson(out); break;
    }
    if (!parsed) {
        run.detail = QStringLiteral("exit %1, %2").arg(run.exitCode).arg(parsed.error().message);
        return run;
    }
    if (run.exitCode == 1 && parsed->isEmpty() && auditor.tool != AuditTool::NpmAudit) {
        // "Findings" with none listed: the report cannot be trusted.
        run.detail = QStringLiteral("%1 exited with 1 (vulnerabilities found) but its report lists none").arg(name);
        return run;
    }
    run.status = AuditorRun::Status::Ok;
    run.vulnerabilities = *parsed;
    run.detail = QStringLiteral("exit %1, %2 vulnerable package advisory(ies)").arg(run.exitCode).arg(parsed->size());
    return run;
}

AuditVerdict judgeAudit(const QList<AuditorRun> &runs, Severity threshold, const QList<AuditIgnore> &ignores, const QDate &today)
{
    AuditVerdict verdict;
    verdict.runs = runs;
    for (const AuditorRun &run : runs) {
        if (run.status == AuditorRun::Status::Degraded)
            ++verdict.degraded;
        for (const Vulnerability &v : run.vulnerabilities) {
            JudgedVulnerability judged{run.tool, v, false, {}};
            const AuditIgnore *ignore = nullptr;
            for (const AuditIgnore &i : ignores) {
                if (i.id == v.id || v.aliases.contains(i.id)) {
                    ignore = &i;
                    break;
                }
            }
            if (ignore && ignore->expires >= today) {
                judged.note = QStringLiteral("ignored until %1: %2").arg(ignore->expires.toString(Qt::ISODate), ignore->reason);
                verdict.ignored.append(judged);
                continue;
            }
            if (ignore)
                judged.note = QStringLiteral("ignore expired on %1 (%2)").arg(ignore->expires.toString(Qt::ISODate), ignore->reason);
            if (v.severity == Severity::Unknown) {
                judged.note = judged.note.isEmpty() ? QStringLiteral("severity unknown: warns, never blocks")
                                                    : judged.note + QStringLiteral("; severity unknown");
                verdict.warnings.append(judged);
            } else if (v.severity >= threshold) {
                judged.blocking = true;
                verdict.blocking.append(judged);
            } else {
                verdict.warnings.append(judged);
            }
        }
    }
    return verdict;
}

} // namespace Sluice::Security
