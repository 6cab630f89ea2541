// SPDX-License-Identifier: Apache-2.0
#pragma once

// Secret-scanning rules in the gitleaks configuration format: rules, rule and global
// allowlists, [extend] of the default rules or of another file. Loading only reads and
// checks the files; compiling the patterns is the scanner's job (secretscanner.h).

#include <sluice/error.h>

#include <QString>
#include <QStringList>

#include <string>
#include <vector>

namespace Sluice::Security {

/// An allowlist, global or of one rule (gitleaks `[[allowlists]]` / `[[rules.allowlists]]`).
struct Allowlist {
    enum class Condition { Or, And };
    enum class Target { Secret, Match, Line };

    std::string description;
    Condition condition = Condition::Or;
    Target regexTarget = Target::Secret;
    std::vector<std::string> regexes;   ///< Tested against the target.
    std::vector<std::string> paths;     ///< Tested against the file path.
    std::vector<std::string> stopwords; ///< Lower-cased; substrings of the lower-cased secret.
    std::vector<std::string> commits;   ///< Exact commit ids.
    std::vector<std::string> targetRules; ///< Global allowlists only: the rules it applies to.
    QString origin;                     ///< "FILE:LINE" where it was defined.
};

/// One rule.
struct Rule {
    std::string id;
    std::string description;
    std::string regex;        ///< Empty for a path-only rule.
    std::string path;         ///< Path regex; empty when the rule applies to every file.
    int secretGroup = 0;      ///< 0: the first non-empty group, else the whole match.
    double entropy = 0;       ///< 0: no entropy check; else the secret's must be above it.
    std::vector<std::string> keywords; ///< As written; matching lower-cases them.
    std::vector<std::string> tags;
    std::vector<Allowlist> allowlists;
    bool skipReport = false;
    QString origin;           ///< "FILE:LINE" of the [[rules]] table that defined it.
};

/// A loaded rule set.
struct RuleSet {
    std::vector<Rule> rules;
    std::vector<Allowlist> allowlists; ///< Global allowlists (targetRules already moved to rules).
    QString title;
    QStringList sources; ///< Files read, in order ("<default rules>" for the built-in set).

    [[nodiscard]] const Rule *rule(const std::string &id) const;
};

/// The shipped default rules (gitleaks' own default configuration; see resources/secrets/ORIGIN.md).
[[nodiscard]] Result<RuleSet> defaultRuleSet();
/// The text of the shipped default rules.
[[nodiscard]] std::string defaultRulesText();

/// Loads a gitleaks configuration file. `[extend] useDefault` merges the default rules and
/// `[extend] path` another file (relative to this one), at most two levels deep. Errors
/// name the file, the line and the key.
[[nodiscard]] Result<RuleSet> loadRuleFile(const QString &path);
/// As loadRuleFile() for text already read; @p name is used in messages and @p baseDir for
/// relative `[extend] path`s. An empty @p baseDir refuses `[extend] path` (text read from git
/// has no directory whose files could be trusted).
[[nodiscard]] Result<RuleSet> loadRuleText(const std::string &text, const QString &name, const QString &baseDir);

} // namespace Sluice::Security
