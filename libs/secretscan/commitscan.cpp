// SPDX-License-Identifier: Apache-2.0
#include "commitscan.h"

#include "ruleset.h"
#include "scantargets.h"
#include "secretscanner.h"

#include <QCryptographicHash>
#include <QHash>
#include <QMutex>

#include <memory>

namespace Sluice::Security {

namespace {
constexpr int GitTimeoutMs = 120000;

// Compiling a rule set costs a good part of a second: once per distinct rule text.
Result<std::shared_ptr<const SecretScanner>> compiledFor(const std::optional<QByteArray> &projectRules, const QString &origin)
{
    static QMutex mutex;
    static QHash<QByteArray, std::shared_ptr<const SecretScanner>> cache;
    const QByteArray key = QCryptographicHash::hash(projectRules ? "project:" + *projectRules : QByteArray("default"),
                                                    QCryptographicHash::Sha256);
    QMutexLocker lock(&mutex);
    if (auto found = cache.value(key))
        return found;
    auto rules = projectRules ? loadRuleText(projectRules->toStdString(), origin, QString()) : defaultRuleSet();
    if (!rules)
        return std::unexpected(rules.error());
    CompileOptions options;
    options.cacheDirectory = defaultScannerCacheDirectory();
    auto compiled = SecretScanner::shared(*rules, options); // the masker's, when the rules are the same
    if (!compiled)
        return std::unexpected(compiled.error());
    cache.insert(key, *compiled);
    return std::shared_ptr<const SecretScanner>(*compiled);
}
} // namespace

Result<QList<Finding>> scanCommitRange(const QString &repository, const QString &base, const QString &head)
{
    auto rulesText = readFileAtCommit(repository, base, QStringLiteral(".gitleaks.toml"), GitTimeoutMs);
    if (!rulesText)
        return std::unexpected(rulesText.error());
    auto ignoreText = readFileAtCommit(repository, base, QStringLiteral(".gitleaksignore"), GitTimeoutMs);
    if (!ignoreText)
        return std::unexpected(ignoreText.error());
    auto scanner = compiledFor(*rulesText, QStringLiteral(".gitleaks.toml (on %1)").arg(base.left(12)));
    if (!scanner)
        return std::unexpected(scanner.error());
    ScanLimits limits;
    limits.gitTimeoutMs = GitTimeoutMs;
    auto targets = collectGitRange(repository, base, head, limits);
    if (!targets)
        return std::unexpected(targets.error());
    const QStringList ignored = *ignoreText ? parseIgnoreList(**ignoreText) : QStringList();
    const ScanOutcome outcome = scanTargets(**scanner, *targets, limits, 1, ignored);
    // Not scanned with every rule (see FragmentScan::incomplete): an error, never a pass.
    if (!outcome.unreadable.isEmpty())
        return fail(ErrorCode::Io, QStringLiteral("the secret scan of %1..%2 could not scan %3")
                                       .arg(base.left(12), head.left(12), outcome.unreadable.join(QStringLiteral(", "))));
    QList<Finding> out;
    for (const SecretFinding &f : outcome.findings) {
        Finding finding;
        finding.rule = QString::fromStdString(f.ruleId);
        finding.file = QString::fromStdString(f.file);
        finding.line = f.line;
        finding.severity = QStringLiteral("blocking");
        finding.message = QStringLiteral("%1 in commit %2: %3").arg(QString::fromStdString(f.description),
                                                                   QString::fromStdString(f.commit).left(12),
                                                                   QString::fromStdString(f.masked));
        out.append(finding);
    }
    return out;
}

} // namespace Sluice::Security
