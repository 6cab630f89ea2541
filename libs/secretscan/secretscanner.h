// SPDX-License-Identifier: Apache-2.0
#pragma once

// The secret scanner: a rule set compiled once into one Vectorscan database (the
// multi-pattern prefilter that says which rules can match a fragment at all) and one RE2
// program per rule (which finds the matches, their boundaries and the secret group, with
// gitleaks' semantics). Scanning is thread-safe given one Scratch per thread.
//
// A finding never holds the secret: only a masked match. The secret lives in local
// variables of scan() while it is judged and is gone when scan() returns.

#include "ruleset.h"

#include <sluice/error.h>

#include <QString>
#include <QStringList>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace Sluice::Security {

/// Bytes to scan and where they come from.
struct Fragment {
    std::string_view text;
    std::string path;      ///< File path, '/'-separated, relative to the scanned root.
    std::string commit;    ///< Commit that added the text; empty outside git.
    int startLine = 1;     ///< Line number of the first line of @ref text in the file.
    bool fileStart = true; ///< First fragment of this file in this commit (path-only rules fire once).
};

/// One secret found. Holds no secret.
struct SecretFinding {
    std::string ruleId;
    std::string description;
    std::string file;
    std::string commit;
    int line = 0;            ///< 1-based line where the match starts.
    int endLine = 0;
    int column = 0;          ///< 1-based byte column where the match starts.
    std::string masked;      ///< The match with the secret masked (see maskSecret()).
    std::string fingerprint; ///< "commit:file:rule:line", or "file:rule:line" outside git.
    double entropy = 0;
};

struct ScanOptions {
    bool dedupeGeneric = true;   ///< Drop a "generic" finding covered by a specific one (gitleaks' filter).
    bool honorAllowMarker = true; ///< Skip findings whose line holds "gitleaks:allow".
    /// Let the refinement pass bound where RE2 searches for rules of unbounded width (same
    /// findings, faster); false: RE2 searches the rest of the fragment from the first
    /// possible start (for tests that compare the two).
    bool boundSearch = true;
    /// Findings kept per fragment; 0: all. A fragment with more stops being scanned there
    /// (FragmentScan::capped): past some point more of them tell nobody anything, and an
    /// author could otherwise make the report (and the generic dedupe) as big as they like.
    std::size_t maxFindings = 0;
};

/// What SecretScanner::scanFragment() found in one fragment.
struct FragmentScan {
    std::vector<SecretFinding> findings;
    bool capped = false; ///< ScanOptions::maxFindings was reached: there may be more.
    /// A rule's regex did not compile when first used (RE2 changed under a cached rule set):
    /// the fragment was not scanned with every rule. Callers treat it as unscanned.
    bool incomplete = false;
};

/// How SecretScanner::compile() builds the scanner.
struct CompileOptions {
    /**
     * Directory of the compiled-database cache: the Vectorscan databases (the slow part of
     * compiling, about 0.6 s for the default rules) are kept there, keyed by a hash of the
     * rule regexes and keywords, the Vectorscan version and the CPU. Empty: no cache. A
     * cache file that fails any check is ignored and rewritten; a cache that cannot be
     * written is only a slower start.
     */
    QString cacheDirectory;
};

/// $XDG_CACHE_HOME/sluice, else $HOME/.cache/sluice; empty when neither is set.
[[nodiscard]] QString defaultScannerCacheDirectory();

/// A SHA-256 of every field of @p rules: equal digests, equal scanners.
[[nodiscard]] QByteArray ruleSetDigest(const RuleSet &rules);

/// Shannon entropy as gitleaks computes it: counts per code point, divided by the byte length.
[[nodiscard]] double shannonEntropy(std::string_view text);
/// The masked form of a secret: at most a short prefix, then "*****". Never the whole secret.
[[nodiscard]] std::string maskSecret(std::string_view secret);

class SecretScanner
{
public:
    class Scratch;

    ~SecretScanner();
    SecretScanner(const SecretScanner &) = delete;
    SecretScanner &operator=(const SecretScanner &) = delete;

    /**
     * Compiles @p rules. A rule RE2 cannot compile (or whose secretGroup is past its groups)
     * is an error naming the rule and where it was defined. A rule Vectorscan cannot
     * compile is kept, prefiltered by its keywords and matched by RE2 alone, and named in
     * diagnostics().
     */
    [[nodiscard]] static Result<std::shared_ptr<const SecretScanner>> compile(const RuleSet &rules);
    /// As compile(@p rules), with the database cache of @p options.
    [[nodiscard]] static Result<std::shared_ptr<const SecretScanner>> compile(const RuleSet &rules, const CompileOptions &options);

    /**
     * The process's one compiled scanner for @p rules (by ruleSetDigest()): compiled with
     * @p options the first time, then the same object for as long as anybody holds it. The
     * free-text masker, `sluice scan`, the engine's commit scan and the security gate ask for
     * it here, so a process that masks text and scans commits compiles the rules once.
     */
    [[nodiscard]] static Result<std::shared_ptr<const SecretScanner>> shared(const RuleSet &rules, const CompileOptions &options);

    /// Per-thread working memory.
    [[nodiscard]] std::unique_ptr<Scratch> makeScratch() const;
    /// Findings in @p fragment, in order of position.
    [[nodiscard]] std::vector<SecretFinding> scan(const Fragment &fragment, Scratch &scratch,
                                                  const ScanOptions &options = {}) const;
    /// As scan(), and whether ScanOptions::maxFindings cut it short.
    [[nodiscard]] FragmentScan scanFragment(const Fragment &fragment, Scratch &scratch, const ScanOptions &options = {}) const;

    /// True when a global allowlist skips @p fragment whole, by its path or commit (gitleaks
    /// never scans such a file: fonts, images, lock files in the default rules).
    [[nodiscard]] bool skipsFragment(const Fragment &fragment) const;

    /// Rules that are not in the Vectorscan database, and why.
    [[nodiscard]] const QStringList &diagnostics() const { return m_diagnostics; }
    /// What the database cache did ("loaded from FILE", "compiled, saved to FILE", why a file
    /// was refused); empty without a cache directory.
    [[nodiscard]] const QString &cacheStatus() const { return m_cacheStatus; }
    [[nodiscard]] int ruleCount() const;
    /// Rules whose regex runs in the Vectorscan prefilter.
    [[nodiscard]] int prefilteredRuleCount() const;
    /// The rule regexes in the prefilter database, in database order (for benchmarks).
    [[nodiscard]] std::vector<std::string> prefilterPatterns() const;

private:
    SecretScanner();
    struct Data;
    /// @p digest: ruleSetDigest() of the rules when the caller has it already, else empty.
    [[nodiscard]] static Result<std::shared_ptr<const SecretScanner>> compile(const RuleSet &rules, const CompileOptions &options,
                                                                              const QByteArray &digest);
    [[nodiscard]] static QByteArray cacheKey(const Data &data, const QByteArray &digest);
    [[nodiscard]] static bool loadCache(const QString &file, const QByteArray &key, Data &data, QString &why);
    [[nodiscard]] static QString storeCache(const QString &file, const QByteArray &key, const Data &data);
    std::unique_ptr<Data> d;
    QStringList m_diagnostics;
    QString m_cacheStatus;
};

/// Working memory of one thread; made by SecretScanner::makeScratch().
class SecretScanner::Scratch
{
public:
    Scratch() = default;
    ~Scratch();
    Scratch(const Scratch &) = delete;
    Scratch &operator=(const Scratch &) = delete;

private:
    friend class SecretScanner;
    void *m_hsScratch = nullptr; // hs_scratch_t
    std::vector<char> m_flagged;
    std::vector<unsigned long long> m_firstEnd;
    std::vector<char> m_candidate;
    std::vector<std::size_t> m_searchFrom;
    std::string m_lowered;
    std::string m_lowerMatch; // a match, lower-cased, to look for its rule's keywords
    // Refinement pass (per refinement index): whether the rule matched, its last match end,
    // and the ends of its bounded prefix in increasing order.
    bool m_refineUsable = true;
    bool m_keywordsUsable = true;
    std::vector<char> m_keywordSeen; // per keyword: found by the keyword pass
    std::vector<char> m_refineSeen;
    std::vector<unsigned long long> m_lastEnd;
    std::vector<std::vector<unsigned long long>> m_prefixEnds;
    // Line-target allowlist verdicts of the current line (-1: not tested yet).
    std::vector<signed char> m_globalLineVerdicts;
    std::vector<signed char> m_ruleLineVerdicts;
};

} // namespace Sluice::Security
