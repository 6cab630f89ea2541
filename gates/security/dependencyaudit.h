// SPDX-License-Identifier: Apache-2.0
#pragma once

// The dependency audit: runs configured auditors (osv-scanner, pip-audit, npm audit) as
// child processes with a timeout, each through an adapter with an explicit exit-code and
// output contract, and classifies what they report against a severity threshold. An
// auditor that is missing, times out, crashes, exits outside its contract or prints
// something unparseable makes the audit "degraded".

#include <sluice/error.h>

#include <QByteArray>
#include <QDate>
#include <QList>
#include <QString>
#include <QStringList>
#include <QVariantMap>

#include <optional>

namespace Sluice::Security {

enum class Severity { Unknown, Low, Medium, High, Critical };

/// "UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL".
[[nodiscard]] QString severityName(Severity severity);
/// Parses a level name (case-insensitive; "moderate" is MEDIUM, "info" LOW); nullopt otherwise.
[[nodiscard]] std::optional<Severity> severityFromName(const QString &name);
/// A CVSS base score mapped to its qualitative level (9.0 critical, 7.0 high, 4.0 medium, >0 low).
[[nodiscard]] Severity severityFromScore(double score);

/// One vulnerable package as an auditor reported it.
struct Vulnerability {
    QString package;
    QString version;
    QString id;           ///< Advisory id (GHSA-…, PYSEC-…, CVE-…).
    QStringList aliases;
    Severity severity = Severity::Unknown;
    QString fixedIn;      ///< Versions that fix it; may be empty.
    QString summary;
    QString source;       ///< Manifest or lock file it was found through; may be empty.
};

/// The supported auditors.
enum class AuditTool { OsvScanner, PipAudit, NpmAudit };
[[nodiscard]] QString auditToolName(AuditTool tool);
[[nodiscard]] std::optional<AuditTool> auditToolFromName(const QString &name);

/// One configured auditor.
struct AuditorConfig {
    AuditTool tool = AuditTool::OsvScanner;
    QStringList command;   ///< Program and arguments; run in the worktree.
    QString requiredFile;  ///< Relative file that must exist for the auditor to apply; empty: always.
    qint64 timeoutMs = 300000;

    /// The command and required file each tool runs with when the settings give none.
    [[nodiscard]] static QStringList defaultCommand(AuditTool tool);
    [[nodiscard]] static QString defaultRequiredFile(AuditTool tool);
    /// From one item of the `auditors` setting.
    [[nodiscard]] static Result<AuditorConfig> fromSetting(const QVariantMap &item, int index);
};

/// An accepted risk: an advisory id ignored until an expiry date, with a reason.
struct AuditIgnore {
    QString id;
    QString reason;
    QDate expires; ///< Last day the ignore holds.

    [[nodiscard]] static Result<AuditIgnore> fromSetting(const QVariantMap &item, int index);
};

/// What one auditor run gave.
struct AuditorRun {
    enum class Status { Ok, NotApplicable, Degraded };
    AuditTool tool = AuditTool::OsvScanner;
    Status status = Status::Degraded;
    int exitCode = -1;
    QString detail;       ///< Why it degraded, or what it covered. One line, no output dump.
    QList<Vulnerability> vulnerabilities;
};

/// Output parsers, one per tool's JSON; an error means the output is unparseable.
[[nodiscard]] Result<QList<Vulnerability>> parseOsvScannerJson(const QByteArray &json);
[[nodiscard]] Result<QList<Vulnerability>> parsePipAuditJson(const QByteArray &json);
[[nodiscard]] Result<QList<Vulnerability>> parseNpmAuditJson(const QByteArray &json);

/// Runs @p auditor in @p worktree and applies its exit-code and output contract.
[[nodiscard]] AuditorRun runAuditor(const AuditorConfig &auditor, const QString &worktree);

/// A vulnerability with its judgement.
struct JudgedVulnerability {
    AuditTool tool = AuditTool::OsvScanner;
    Vulnerability vulnerability;
    bool blocking = false;
    QString note;         ///< e.g. "severity unknown", "ignore expired on 2026-01-01".
};

/// The audit's classification of every run.
struct AuditVerdict {
    QList<JudgedVulnerability> blocking;
    QList<JudgedVulnerability> warnings;
    QList<JudgedVulnerability> ignored;
    QList<AuditorRun> runs;
    int degraded = 0;
};

/// Classifies @p runs: at or above @p threshold blocks, below or unknown warns; an
/// unexpired ignore (matching id or alias) drops it, an expired one makes it count again.
[[nodiscard]] AuditVerdict judgeAudit(const QList<AuditorRun> &runs, Severity threshold,
                                      const QList<AuditIgnore> &ignores, const QDate &today);

} // namespace Sluice::Security
