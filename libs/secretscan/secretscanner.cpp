// SPDX-License-Identifier: Apache-2.0
#include "secretscanner.h"

#include <hs/hs.h>
#include <re2/re2.h>

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSaveFile>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>

#include <cerrno>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice::Security {

namespace {

constexpr std::string_view AllowMarker = "gitleaks:allow";
constexpr std::size_t MaxMaskedBytes = 120;

RE2::Options re2Options()
{
    RE2::Options options;
    options.set_log_errors(false);
    // The default rules hold programs of ~5k instructions with counted repeats up to 1000;
    // a larger DFA cache keeps RE2 off its NFA fallback (measured on 200 MB of source text:
    // generic-api-key alone took 1.47 s with RE2's default 8 MiB, 0.59 s with 128 MiB). It
    // is an upper bound per regex, taken only as the DFA grows.
    options.set_max_mem(int64_t(128) << 20);
    return options;
}

std::unique_ptr<RE2> compileRe2(const std::string &pattern)
{
    return std::make_unique<RE2>(pattern, re2Options());
}

// An RE2 program compiled when it is first used. Compiling the ~300 regexes of the default
// rules (rules, paths, allowlists, 1,446 stopwords) is most of a warm start, and a scan
// uses a handful of them: most rules never see a prefilter hit. Only a rule set that
// compiled whole before (its compiled-database cache file exists) is compiled lazily; a
// new one is compiled at once, so that an error names its rule (see SecretScanner::compile).
// get() is thread-safe; it returns null when the pattern does not compile, which callers
// treat the cautious way (an allowlist that allows nothing, a rule that applies).
class LazyRe2
{
public:
    LazyRe2() = default;
    LazyRe2(std::string pattern, RE2::Options options)
        : m_state(std::make_unique<State>())
    {
        m_state->pattern = std::move(pattern);
        m_state->options = options;
    }
    explicit LazyRe2(std::unique_ptr<RE2> compiled)
        : m_state(std::make_unique<State>())
    {
        m_state->pattern = compiled->pattern();
        std::call_once(m_state->once, [&] { m_state->re = std::move(compiled); });
    }

    explicit operator bool() const { return m_state != nullptr; }
    const std::string &pattern() const { return m_state->pattern; }
    const RE2 *get() const
    {
        if (!m_state)
            return nullptr;
        std::call_once(m_state->once, [this] { m_state->re = std::make_unique<RE2>(m_state->pattern, m_state->options); });
        return m_state->re->ok() ? m_state->re.get() : nullptr;
    }

private:
    struct State {
        std::string pattern;
        RE2::Options options;
        std::once_flag once;
        std::unique_ptr<RE2> re;
    };
    std::unique_ptr<State> m_state;
};

struct CompiledAllowlist {
    Allowlist::Condition condition = Allowlist::Condition::Or;
    Allowlist::Target target = Allowlist::Target::Secret;
    // "Any of them matches" is one alternation (one RE2 pass instead of one per pattern: the
    // global allowlist's 25 paths are tested on every file); the patterns one by one only if
    // the alternation does not compile.
    LazyRe2 regexSet;
    std::vector<LazyRe2> regexes;
    LazyRe2 pathSet;
    std::vector<LazyRe2> paths;
    std::vector<std::string> stopwords;
    LazyRe2 stopwordSet; // all stopwords as one alternation of literals
    std::vector<std::string> commits;

    static bool anyMatches(const LazyRe2 &set, const std::vector<LazyRe2> &each, const re2::StringPiece &tested)
    {
        if (const RE2 *re = set.get())
            return RE2::PartialMatch(tested, *re);
        return std::any_of(each.begin(), each.end(), [&](const LazyRe2 &lazy) {
            const RE2 *re = lazy.get();
            return re && RE2::PartialMatch(tested, *re);
        });
    }
    bool commitAllowed(const std::string &commit) const
    {
        return !commit.empty() && std::find(commits.begin(), commits.end(), commit) != commits.end();
    }
    bool pathAllowed(const std::string &path) const
    {
        return anyMatches(pathSet, paths, re2::StringPiece(path.data(), path.size()));
    }
    bool regexAllowed(std::string_view tested) const
    {
        return anyMatches(regexSet, regexes, re2::StringPiece(tested.data(), tested.size()));
    }
    bool containsStopword(std::string_view secret) const
    {
        if (stopwords.empty())
            return false;
        std::string lowered(secret);
        std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (const RE2 *set = stopwordSet.get())
            return RE2::PartialMatch(lowered, *set);
        return std::any_of(stopwords.begin(), stopwords.end(),
                           [&](const std::string &w) { return lowered.find(w) != std::string::npos; });
    }

    // gitleaks' checkCommitOrPathAllowed for one allowlist.
    bool allowsFragment(const Fragment &fragment) const
    {
        if (fragment.path.empty() && fragment.commit.empty())
            return false;
        const bool commit = commitAllowed(fragment.commit);
        const bool path = pathAllowed(fragment.path);
        if (condition == Allowlist::Condition::And) {
            if (!regexes.empty() || !stopwords.empty())
                return false; // decided per finding
            bool all = true;
            if (!commits.empty())
                all = all && commit;
            if (!paths.empty())
                all = all && path;
            return all;
        }
        return commit || path;
    }

    // gitleaks' checkFindingAllowed for one allowlist. @p lineVerdict caches the regex test
    // of a line target across the findings of one line (-1: not yet known): many matches on
    // one long line must not each run the allowlist over the whole line.
    bool allowsFinding(const Fragment &fragment, std::string_view secret, std::string_view match, std::string_view line,
                       signed char &lineVerdict) const
    {
        auto testRegexes = [&]() {
            if (target == Allowlist::Target::Line) {
                if (lineVerdict < 0)
                    lineVerdict = regexAllowed(line) ? 1 : 0;
                return lineVerdict == 1;
            }
            return regexAllowed(target == Allowlist::Target::Match ? match : secret);
        };
        // Every test is a pure function of its inputs: evaluated lazily, cheapest first.
        if (condition == Allowlist::Condition::And) {
            if (!commits.empty() && !commitAllowed(fragment.commit))
                return false;
            if (!paths.empty() && !pathAllowed(fragment.path))
                return false;
            if (!regexes.empty() && !testRegexes())
                return false;
            if (!stopwords.empty() && !containsStopword(secret))
                return false;
            return true;
        }
        return (!regexes.empty() && testRegexes()) || containsStopword(secret);
    }
};

struct CompiledRule {
    const Rule *rule = nullptr;
    LazyRe2 regex;                // empty for path-only rules
    LazyRe2 path;                 // empty when the rule applies to every path
    std::vector<std::string> keywords; // lower-cased
    std::vector<int> keywordIds;       // into Data::keywords
    std::vector<CompiledAllowlist> allowlists;
    bool prefiltered = false;     // in the Vectorscan database
    std::size_t maxWidth = 0;     // longest match Vectorscan says the regex can have; 0: unbounded
    bool exact = false;           // in the database as itself (not approximated)
    int refine = -1;              // index in the refinement database, or -1
    std::size_t prefixWidth = 0;  // longest match of the regex's bounded prefix in that database; 0: none
    LazyRe2 suffix;               // the rest of the regex after that prefix (with the prefix's flags)
    bool generic = false;         // id contains "generic" (gitleaks' dedupe)
};

RE2::Options stopwordOptions()
{
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(int64_t(64) << 20);
    options.set_encoding(RE2::Options::EncodingLatin1);
    return options;
}

std::string alternationOf(const std::vector<std::string> &patterns)
{
    std::string alternation;
    for (const std::string &p : patterns)
        alternation += (alternation.empty() ? "(?:" : "|(?:") + p + ")"; // flags inside each group stay scoped to it
    return alternation;
}

// @p validated: the rule set compiled whole before (its cache file was loaded), so every
// pattern is compiled on first use; otherwise each is compiled now and an error names it.
Result<CompiledAllowlist> compileAllowlist(const Allowlist &a, const QString &owner, bool validated)
{
    CompiledAllowlist out;
    out.condition = a.condition;
    out.target = a.regexTarget;
    out.stopwords = a.stopwords;
    out.commits = a.commits;
    auto add = [&](const std::vector<std::string> &patterns, LazyRe2 &set, std::vector<LazyRe2> &into,
                   const char *key) -> Result<void> {
        for (const std::string &pattern : patterns) {
            if (validated) {
                into.emplace_back(pattern, re2Options());
                continue;
            }
            auto re = compileRe2(pattern);
            if (!re->ok())
                return fail(ErrorCode::InvalidConfig,
                            QStringLiteral("%1: key '%2': %3 pattern does not compile: %4")
                                .arg(a.origin, QLatin1String(key), owner, QString::fromStdString(re->error())));
            into.emplace_back(std::move(re));
        }
        if (patterns.size() >= 2)
            set = validated ? LazyRe2(alternationOf(patterns), re2Options()) : LazyRe2(compileRe2(alternationOf(patterns)));
        return {};
    };
    if (auto ok = add(a.regexes, out.regexSet, out.regexes, "regexes"); !ok)
        return std::unexpected(ok.error());
    if (auto ok = add(a.paths, out.pathSet, out.paths, "paths"); !ok)
        return std::unexpected(ok.error());
    if (out.stopwords.size() > 1) {
        // Substring tests against 1,446 words one by one cost more than the rest of a scan.
        std::string alternation;
        for (const std::string &w : out.stopwords)
            alternation += (alternation.empty() ? "" : "|") + RE2::QuoteMeta(w);
        out.stopwordSet = validated ? LazyRe2(std::move(alternation), stopwordOptions())
                                    : LazyRe2(std::make_unique<RE2>(alternation, stopwordOptions()));
    }
    return out;
}

// The '\n' bytes in [begin, end), eight at a time: the line number of every match is
// counted from the previous one, and std::count's byte loop was over half of the
// scanner's own time (outside Vectorscan and RE2) on the bench corpus.
std::size_t countNewlines(const char *begin, const char *end)
{
    constexpr std::uint64_t newlines = 0x0A0A0A0A0A0A0A0AULL;
    constexpr std::uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    std::size_t count = 0;
    for (; end - begin >= 8; begin += 8) {
        std::uint64_t word;
        std::memcpy(&word, begin, 8);
        const std::uint64_t x = word ^ newlines;           // a zero byte where there was '\n'
        const std::uint64_t t = ~(((x & low7) + low7) | x | low7); // its high bit set exactly there
        count += std::size_t(__builtin_popcountll(t));
    }
    for (; begin < end; ++begin)
        count += *begin == '\n';
    return count;
}

struct MatchSink {
    char *flagged;
    unsigned long long *firstEnd;
};

// Matches arrive in order of their end offset, so the first one of a pattern is its earliest end.
// True when the regex has a construct that matches one character in RE2 (UTF-8, as Go's
// regexp in gitleaks) but one byte in Vectorscan's ASCII mode: `.`, a negated class, \S \W
// \D, Unicode classes. `.{0,5}` spans five characters of up to four bytes in RE2 and five
// bytes in Vectorscan, so next to non-ASCII text the prefilter could miss a match RE2 would
// find. Such rules are matched by RE2 alone, behind their keywords.
bool countsCharacters(const std::string &regex)
{
    bool inClass = false;
    for (std::size_t i = 0; i < regex.size(); ++i) {
        const char ch = regex[i];
        if (ch == '\\') {
            const char next = i + 1 < regex.size() ? regex[i + 1] : '\0';
            if (next == 'S' || next == 'W' || next == 'D' || next == 'p' || next == 'P' || next == 'C' || next == 'X')
                return true;
            ++i;
            continue;
        }
        if (inClass) {
            if (ch == ']')
                inClass = false;
            continue;
        }
        if (ch == '[') {
            inClass = true;
            if (i + 1 < regex.size() && regex[i + 1] == '^')
                return true;
            if (i + 1 < regex.size() && regex[i + 1] == ']')
                ++i; // "[]...]": the first ] is a member
            // A POSIX class "[[:alpha:]]" holds its own brackets.
            if (i + 1 < regex.size() && regex[i + 1] == '[' && i + 2 < regex.size() && regex[i + 2] == ':') {
                const std::size_t close = regex.find(":]", i + 3);
                if (close != std::string::npos)
                    i = close + 1;
            }
            continue;
        }
        if (ch == '.')
            return true;
    }
    return false;
}

// The offsets where the atoms of the regex's top-level concatenation end (each atom with its
// quantifier), so that regex.substr(0, ends[k]) is the regex's first k + 1 atoms, itself a
// regex. Empty when the regex has a top-level alternation or syntax this reader does not
// follow (\Q...\E): then it has no usable prefix.
std::vector<std::size_t> topLevelAtomEnds(const std::string &re)
{
    const std::size_t n = re.size();
    auto isDigit = [](char ch) { return ch >= '0' && ch <= '9'; };
    // Moves i past the escape at re[i] == '\'.
    auto skipEscape = [&](std::size_t &i) {
        if (i + 1 >= n)
            return false;
        const char ch = re[i + 1];
        if (ch == 'Q' || ch == 'E')
            return false;
        if ((ch == 'x' || ch == 'p' || ch == 'P') && i + 2 < n && re[i + 2] == '{') {
            const std::size_t close = re.find('}', i + 3);
            if (close == std::string::npos)
                return false;
            i = close + 1;
            return true;
        }
        if (ch == 'x') {
            i += 4;
            return i <= n;
        }
        if (ch == 'p' || ch == 'P') {
            i += 3;
            return i <= n;
        }
        if (ch >= '0' && ch <= '7') {
            i += 2;
            for (int k = 0; k < 2 && i < n && re[i] >= '0' && re[i] <= '7'; ++k)
                ++i;
            return true;
        }
        i += 2;
        return true;
    };
    // Moves i past the class starting at re[i] == '['.
    auto skipClass = [&](std::size_t &i) {
        ++i;
        if (i < n && re[i] == '^')
            ++i;
        if (i < n && re[i] == ']')
            ++i;
        while (i < n) {
            if (re[i] == '\\') {
                if (!skipEscape(i))
                    return false;
            } else if (re[i] == '[' && i + 1 < n && re[i + 1] == ':') {
                const std::size_t close = re.find(":]", i + 2);
                if (close == std::string::npos)
                    return false;
                i = close + 2;
            } else if (re[i] == ']') {
                ++i;
                return true;
            } else {
                ++i;
            }
        }
        return false;
    };
    // Moves i past the group starting at re[i] == '('.
    auto skipGroup = [&](std::size_t &i) {
        int depth = 0;
        while (i < n) {
            const char ch = re[i];
            if (ch == '\\') {
                if (!skipEscape(i))
                    return false;
            } else if (ch == '[') {
                if (!skipClass(i))
                    return false;
            } else {
                ++i;
                if (ch == '(') {
                    ++depth;
                } else if (ch == ')' && --depth == 0) {
                    return true;
                }
            }
        }
        return false;
    };
    std::vector<std::size_t> ends;
    std::size_t i = 0;
    while (i < n) {
        const char ch = re[i];
        if (ch == '|' || ch == ')' || ch == '*' || ch == '+' || ch == '?')
            return {};
        bool ok = true;
        if (ch == '\\')
            ok = skipEscape(i);
        else if (ch == '[')
            ok = skipClass(i);
        else if (ch == '(')
            ok = skipGroup(i);
        else
            ++i;
        if (!ok)
            return {};
        // Its quantifier: * + ? or {n} {n,} {n,m}, each optionally lazy.
        bool quantified = false;
        if (i < n && (re[i] == '*' || re[i] == '+' || re[i] == '?')) {
            ++i;
            quantified = true;
        } else if (i < n && re[i] == '{') {
            std::size_t j = i + 1;
            const std::size_t digits = j;
            while (j < n && isDigit(re[j]))
                ++j;
            if (j > digits) {
                if (j < n && re[j] == ',') {
                    ++j;
                    while (j < n && isDigit(re[j]))
                        ++j;
                }
                if (j < n && re[j] == '}') {
                    i = j + 1;
                    quantified = true;
                }
            }
        }
        if (quantified && i < n && re[i] == '?')
            ++i;
        if (i < n && (re[i] == '*' || re[i] == '+' || re[i] == '{'))
            return {}; // a second quantifier: not followed here
        ends.push_back(i);
    }
    return ends;
}

// Vectorscan's smallest and largest match width of @p regex under @p flags.
std::optional<std::pair<unsigned, unsigned>> expressionWidth(const std::string &regex, unsigned flags)
{
    hs_expr_info_t *info = nullptr;
    hs_compile_error_t *error = nullptr;
    std::optional<std::pair<unsigned, unsigned>> out;
    if (hs_expression_info(regex.c_str(), flags, &info, &error) == HS_SUCCESS && info)
        out = std::make_pair(info->min_width, info->max_width);
    std::free(info);
    if (error)
        hs_free_compile_error(error);
    return out;
}

struct RefineSink {
    char *seen;
    unsigned long long *lastEnd;
    std::vector<unsigned long long> *prefixEnds;
};

// Refinement database: id 2k is rule k's regex, 2k + 1 its prefix. Every end is reported.
int hsOnRefineMatch(unsigned int id, unsigned long long, unsigned long long to, unsigned int, void *context)
{
    auto *sink = static_cast<RefineSink *>(context);
    const unsigned k = id / 2;
    if (id % 2 == 0) {
        sink->seen[k] = 1;
        sink->lastEnd[k] = std::max(sink->lastEnd[k], to);
    } else {
        std::vector<unsigned long long> &ends = sink->prefixEnds[k];
        if (ends.empty() || ends.back() != to)
            ends.push_back(to);
    }
    return 0;
}

int hsOnKeyword(unsigned int id, unsigned long long, unsigned long long, unsigned int, void *context)
{
    static_cast<char *>(context)[id] = 1;
    return 0;
}

int hsOnMatch(unsigned int id, unsigned long long, unsigned long long to, unsigned int, void *context)
{
    auto *sink = static_cast<MatchSink *>(context);
    if (!sink->flagged[id]) {
        sink->flagged[id] = 1;
        sink->firstEnd[id] = to;
    }
    return 0;
}

} // namespace

struct SecretScanner::Data {
    RuleSet rules; // owns the Rule objects CompiledRule points into
    std::vector<CompiledRule> compiled;
    std::vector<CompiledAllowlist> globals;
    hs_database_t *database = nullptr;
    std::vector<int> databaseRule; // database id -> index in compiled
    std::vector<std::string> keywords; // distinct lower-cased keywords of all rules
    // Per keyword: its database id (and index in Scratch::m_flagged), or -1 when it is searched
    // in a lower-cased copy of the fragment. Only the keywords of rules outside the
    // prefilter are in the database: they are asked on every fragment, while a prefiltered
    // rule's keywords matter only on the rare fragment its regex matches, and 200 common
    // caseless literals ("key", "api", "token") cost a fifth of the Vectorscan pass.
    std::vector<int> keywordSlot;
    std::size_t flagCount = 0;         // database ids: rules, then keywords
    std::vector<std::string> databasePatterns;
    // The refinement database: for each exactly prefiltered rule of unbounded width, its regex
    // (id 2k) and its longest bounded prefix (id 2k + 1), reporting every match end. Run only
    // on fragments where such a rule is about to run in RE2: it bounds where RE2 searches.
    hs_database_t *refineDatabase = nullptr;
    std::vector<int> refineRule; // refinement index -> index in compiled
    // Every keyword as a caseless literal (id: its index in keywords). Run at most once per
    // fragment, only when a rule whose keywords are not in the main database is about to
    // run in RE2: one pass answers all of them, where lower-casing a copy of the fragment
    // and searching it for each keyword cost more than the refinement pass.
    hs_database_t *keywordDatabase = nullptr;
    QStringList cachedDiagnostics;

    ~Data()
    {
        if (database)
            hs_free_database(database);
        if (refineDatabase)
            hs_free_database(refineDatabase);
        if (keywordDatabase)
            hs_free_database(keywordDatabase);
    }
};

SecretScanner::Scratch::~Scratch()
{
    if (m_hsScratch)
        hs_free_scratch(static_cast<hs_scratch_t *>(m_hsScratch));
}

SecretScanner::SecretScanner()
    : d(std::make_unique<Data>())
{
}

SecretScanner::~SecretScanner() = default;

int SecretScanner::ruleCount() const
{
    return int(d->compiled.size());
}

int SecretScanner::prefilteredRuleCount() const
{
    return int(d->databaseRule.size());
}

std::vector<std::string> SecretScanner::prefilterPatterns() const
{
    return d->databasePatterns;
}

Result<std::shared_ptr<const SecretScanner>> SecretScanner::compile(const RuleSet &rules)
{
    return compile(rules, CompileOptions());
}

Result<std::shared_ptr<const SecretScanner>> SecretScanner::compile(const RuleSet &rules, const CompileOptions &options)
{
    return compile(rules, options, QByteArray());
}

Result<std::shared_ptr<const SecretScanner>> SecretScanner::compile(const RuleSet &rules, const CompileOptions &options,
                                                                    const QByteArray &digest)
{
    std::shared_ptr<SecretScanner> scanner(new SecretScanner());
    Data &data = *scanner->d;
    data.rules = rules;
    data.compiled.reserve(data.rules.rules.size());
    for (const Rule &rule : data.rules.rules) {
        CompiledRule c;
        c.rule = &rule;
        for (const std::string &keyword : rule.keywords) {
            std::string k = keyword;
            std::transform(k.begin(), k.end(), k.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
            auto at = std::find(data.keywords.begin(), data.keywords.end(), k);
            if (at == data.keywords.end())
                at = data.keywords.insert(data.keywords.end(), k);
            c.keywordIds.push_back(int(at - data.keywords.begin()));
            c.keywords.push_back(std::move(k));
        }
        std::string lowerId = rule.id;
        std::transform(lowerId.begin(), lowerId.end(), lowerId.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
        c.generic = lowerId.find("generic") != std::string::npos;
        data.compiled.push_back(std::move(c));
    }

    // The RE2 side. @p validated: this very rule set compiled whole before (its cache file
    // exists; the key covers every pattern RE2 compiles and the RE2 library), so the
    // patterns are compiled on first use; otherwise all of them now, and an error names the
    // rule.
    auto attachPatterns = [&](bool validated) -> Result<void> {
        for (CompiledRule &c : data.compiled) {
            const Rule &rule = *c.rule;
            const QString id = QString::fromStdString(rule.id);
            if (!rule.regex.empty()) {
                if (validated) {
                    c.regex = LazyRe2(rule.regex, re2Options());
                } else {
                    auto re = compileRe2(rule.regex);
                    if (!re->ok())
                        return fail(ErrorCode::InvalidConfig,
                                    QStringLiteral("%1: rule '%2': key 'regex' does not compile in RE2: %3")
                                        .arg(rule.origin, id, QString::fromStdString(re->error())));
                    if (rule.secretGroup > re->NumberOfCapturingGroups())
                        return fail(ErrorCode::InvalidConfig,
                                    QStringLiteral("%1: rule '%2': key 'secretGroup' is %3 but the regex has only %4 groups")
                                        .arg(rule.origin, id)
                                        .arg(rule.secretGroup)
                                        .arg(re->NumberOfCapturingGroups()));
                    c.regex = LazyRe2(std::move(re));
                }
            }
            if (!rule.path.empty()) {
                if (validated) {
                    c.path = LazyRe2(rule.path, re2Options());
                } else {
                    auto re = compileRe2(rule.path);
                    if (!re->ok())
                        return fail(ErrorCode::InvalidConfig,
                                    QStringLiteral("%1: rule '%2': key 'path' does not compile in RE2: %3")
                                        .arg(rule.origin, id, QString::fromStdString(re->error())));
                    c.path = LazyRe2(std::move(re));
                }
            }
            for (const Allowlist &a : rule.allowlists) {
                auto compiled = compileAllowlist(a, QStringLiteral("rule '%1' allowlist").arg(id), validated);
                if (!compiled)
                    return std::unexpected(compiled.error());
                c.allowlists.push_back(std::move(*compiled));
            }
        }
        for (const Allowlist &a : data.rules.allowlists) {
            auto compiled = compileAllowlist(a, QStringLiteral("global allowlist"), validated);
            if (!compiled)
                return std::unexpected(compiled.error());
            data.globals.push_back(std::move(*compiled));
        }
        return {};
    };

    // The prefilter: every rule regex in one block-mode database, ASCII mode (as Go's \b \w \s
    // are ASCII). A pattern Vectorscan refuses is retried as an approximate prefilter
    // pattern (a superset), and left out only if that fails too. The keywords of the rules
    // left out go in as caseless literals after them, so the same pass also answers gitleaks'
    // keyword prefilter for those rules (ASCII case folding, as the lower-cased search it
    // replaces).
    // Everything below depends only on the rules: a database built for the same ones before
    // is loaded from the cache instead (checked, never trusted blindly).
    QString cacheFile;
    QByteArray key;
    if (!options.cacheDirectory.isEmpty()) {
        key = cacheKey(data, digest);
        cacheFile = QDir(options.cacheDirectory).filePath(QStringLiteral("secretscan-%1.hsdb").arg(QString::fromLatin1(key.toHex())));
        QString why;
        if (loadCache(cacheFile, key, data, why)) {
            if (auto attached = attachPatterns(true); !attached)
                return std::unexpected(attached.error());
            scanner->m_diagnostics = data.cachedDiagnostics;
            scanner->m_cacheStatus = QStringLiteral("loaded from %1").arg(cacheFile);
            return std::shared_ptr<const SecretScanner>(std::move(scanner));
        }
        scanner->m_cacheStatus = why;
    }
    if (auto attached = attachPatterns(false); !attached)
        return std::unexpected(attached.error());
    data.keywordSlot.assign(data.keywords.size(), -1);
    std::vector<std::string> keywordPatterns;
    for (const std::string &k : data.keywords) {
        std::string escaped;
        for (unsigned char ch : k) {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", ch);
            escaped += hex;
        }
        keywordPatterns.push_back(std::move(escaped));
    }
    bool withKeywords = !keywordPatterns.empty();
    struct Entry {
        int rule;
        unsigned flags;
    };
    std::vector<Entry> entries;
    for (int i = 0; i < int(data.compiled.size()); ++i) {
        if (data.compiled[i].regex && !countsCharacters(data.compiled[i].rule->regex))
            entries.push_back({i, HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY});
    }
    // The refinement database (see Data::refineDatabase) for the exact rules of unbounded
    // width. A rule whose regex holds non-ASCII bytes is left out: (?i) folds them in RE2 but
    // not in Vectorscan's ASCII mode, so Vectorscan's match ends might not cover RE2's.
    auto compileRefinement = [&]() {
        std::vector<std::string> patterns;
        std::vector<unsigned> patternFlags;
        std::vector<unsigned> patternIds;
        struct Candidate {
            int rule;
            std::size_t prefixWidth;
            std::unique_ptr<RE2> suffix;
        };
        std::vector<Candidate> candidates;
        for (const Entry &e : entries) {
            CompiledRule &c = data.compiled[std::size_t(e.rule)];
            if (!c.exact || c.maxWidth != 0)
                continue;
            const std::string &regex = c.rule->regex;
            if (std::any_of(regex.begin(), regex.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; }))
                continue;
            const unsigned ruleFlags = e.flags & ~HS_FLAG_SINGLEMATCH;
            // The longest prefix of whole top-level atoms whose width is bounded and not zero.
            // The suffix (the regex after it) must match where the prefix ends for the regex to
            // match there; it carries the flag groups the prefix set at top level.
            std::string prefix;
            std::size_t prefixWidth = 0;
            std::unique_ptr<RE2> suffix;
            const std::vector<std::size_t> atoms = topLevelAtomEnds(regex);
            std::size_t best = 0;
            for (std::size_t k = 0; k + 1 < atoms.size(); ++k) {
                const std::string candidate = regex.substr(0, atoms[k]);
                const auto width = expressionWidth(candidate, ruleFlags | HS_FLAG_ALLOWEMPTY);
                if (!width || width->second == UINT_MAX)
                    break;
                if (width->first > 0) {
                    prefix = candidate;
                    prefixWidth = width->second;
                    best = k;
                }
            }
            if (!prefix.empty()) {
                std::string flagGroups;
                for (std::size_t k = 0, from = 0; k <= best; from = atoms[k], ++k) {
                    const std::string atom = regex.substr(from, atoms[k] - from);
                    if (atom.size() > 3 && atom.starts_with("(?") && atom.back() == ')'
                        && atom.find_first_not_of("imsU-", 2) == atom.size() - 1)
                        flagGroups += atom;
                }
                suffix = compileRe2(flagGroups + regex.substr(atoms[best]));
                if (!suffix->ok()) {
                    prefix.clear();
                    suffix.reset();
                }
            }
            const unsigned index = unsigned(candidates.size());
            patterns.push_back(regex);
            patternFlags.push_back(ruleFlags);
            patternIds.push_back(2 * index);
            if (!prefix.empty()) {
                patterns.push_back(prefix);
                patternFlags.push_back(ruleFlags & ~HS_FLAG_ALLOWEMPTY);
                patternIds.push_back(2 * index + 1);
            }
            candidates.push_back({e.rule, prefix.empty() ? 0 : prefixWidth, std::move(suffix)});
        }
        if (candidates.empty())
            return;
        std::vector<const char *> expressions;
        for (const std::string &p : patterns)
            expressions.push_back(p.c_str());
        hs_database_t *db = nullptr;
        hs_compile_error_t *error = nullptr;
        if (hs_compile_multi(expressions.data(), patternFlags.data(), patternIds.data(), unsigned(expressions.size()), HS_MODE_BLOCK,
                             nullptr, &db, &error)
            != HS_SUCCESS) {
            // Only a speed-up: without it RE2 searches the whole fragment, as it always could.
            hs_free_compile_error(error);
            return;
        }
        data.refineDatabase = db;
        for (std::size_t k = 0; k < candidates.size(); ++k) {
            CompiledRule &c = data.compiled[std::size_t(candidates[k].rule)];
            c.refine = int(k);
            c.prefixWidth = candidates[k].prefixWidth;
            if (candidates[k].suffix)
                c.suffix = LazyRe2(std::move(candidates[k].suffix));
            data.refineRule.push_back(candidates[k].rule);
        }
    };
    while (!entries.empty()) {
        std::vector<const char *> expressions;
        std::vector<unsigned> flags;
        std::vector<unsigned> ids;
        std::vector<char> inDatabase(data.compiled.size(), 0);
        for (std::size_t i = 0; i < entries.size(); ++i) {
            expressions.push_back(data.compiled[entries[i].rule].rule->regex.c_str());
            flags.push_back(entries[i].flags);
            ids.push_back(unsigned(i));
            inDatabase[std::size_t(entries[i].rule)] = 1;
        }
        std::vector<int> keywordSlot(data.keywords.size(), -1);
        if (withKeywords) {
            for (std::size_t r = 0; r < data.compiled.size(); ++r) {
                if (inDatabase[r])
                    continue;
                for (int k : data.compiled[r].keywordIds) {
                    if (keywordSlot[std::size_t(k)] >= 0)
                        continue;
                    keywordSlot[std::size_t(k)] = int(expressions.size());
                    ids.push_back(unsigned(expressions.size()));
                    expressions.push_back(keywordPatterns[std::size_t(k)].c_str());
                    flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS);
                }
            }
        }
        hs_database_t *db = nullptr;
        hs_compile_error_t *error = nullptr;
        const hs_error_t rc = hs_compile_multi(expressions.data(), flags.data(), ids.data(), unsigned(expressions.size()),
                                               HS_MODE_BLOCK, nullptr, &db, &error);
        if (rc == HS_SUCCESS) {
            data.database = db;
            for (const Entry &e : entries) {
                data.databaseRule.push_back(e.rule);
                data.databasePatterns.push_back(data.compiled[e.rule].rule->regex);
                CompiledRule &c = data.compiled[e.rule];
                c.prefiltered = true;
                // Every match ends at or after the first end Vectorscan reports; with a bounded
                // width it also starts no earlier than that end minus the width, so RE2 can
                // start there instead of at the beginning of the fragment.
                c.exact = !(e.flags & HS_FLAG_PREFILTER);
                if (c.exact) {
                    if (const auto width = expressionWidth(c.rule->regex, e.flags & ~HS_FLAG_SINGLEMATCH))
                        c.maxWidth = width->second == UINT_MAX ? 0 : width->second;
                }
            }
            data.keywordSlot = std::move(keywordSlot);
            data.flagCount = expressions.size();
            compileRefinement();
            break;
        }
        const int bad = error ? error->expression : -1;
        const QString message = error && error->message ? QString::fromLocal8Bit(error->message) : QStringLiteral("unknown error");
        hs_free_compile_error(error);
        if (withKeywords && bad >= int(entries.size())) {
            withKeywords = false; // a keyword literal failed: search keywords the slow way
            continue;
        }
        if (bad < 0 || bad >= int(entries.size()))
            return fail(ErrorCode::Unknown, QStringLiteral("Vectorscan cannot build the prefilter database: %1").arg(message));
        Entry &entry = entries[std::size_t(bad)];
        const Rule &rule = *data.compiled[entry.rule].rule;
        if (!(entry.flags & HS_FLAG_PREFILTER)) {
            entry.flags |= HS_FLAG_PREFILTER;
            scanner->m_diagnostics.append(QStringLiteral("rule '%1' (%2): Vectorscan cannot compile it exactly (%3); "
                                                         "it is prefiltered approximately and confirmed by RE2")
                                              .arg(QString::fromStdString(rule.id), rule.origin, message));
            continue;
        }
        scanner->m_diagnostics.append(QStringLiteral("rule '%1' (%2): Vectorscan cannot compile it (%3); it runs in RE2 "
                                                     "alone, on every fragment that holds one of its keywords%4")
                                          .arg(QString::fromStdString(rule.id), rule.origin, message,
                                               rule.keywords.empty() ? QStringLiteral(" (it has none: every fragment)")
                                                                     : QString()));
        entries.erase(entries.begin() + bad);
    }
    if (!data.keywords.empty()) {
        std::vector<const char *> expressions;
        std::vector<unsigned> flags;
        std::vector<unsigned> ids;
        for (std::size_t k = 0; k < keywordPatterns.size(); ++k) {
            expressions.push_back(keywordPatterns[k].c_str());
            flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS);
            ids.push_back(unsigned(k));
        }
        hs_compile_error_t *error = nullptr;
        if (hs_compile_multi(expressions.data(), flags.data(), ids.data(), unsigned(expressions.size()), HS_MODE_BLOCK, nullptr,
                             &data.keywordDatabase, &error)
            != HS_SUCCESS) {
            // Only a speed-up: without it the keywords are searched in a lower-cased copy.
            data.keywordDatabase = nullptr;
            hs_free_compile_error(error);
        }
    }
    if (!cacheFile.isEmpty()) {
        data.cachedDiagnostics = scanner->m_diagnostics;
        QString stored = storeCache(cacheFile, key, data);
        scanner->m_cacheStatus = (scanner->m_cacheStatus.isEmpty() ? QString() : scanner->m_cacheStatus + QStringLiteral("; "))
                                 + (stored.isEmpty() ? QStringLiteral("compiled, saved to %1").arg(cacheFile)
                                                     : QStringLiteral("compiled, not saved: %1").arg(stored));
    }
    return std::shared_ptr<const SecretScanner>(std::move(scanner));
}

namespace {

// The on-disk cache of the Vectorscan side of a compiled rule set (ADR 0008):
//   magic, format, key (32 bytes), then length-prefixed fields, then SHA-256 of all before.
// A file that is short, corrupt, of another format, key, Vectorscan version or CPU, owned by
// someone else or writable by others is not used: the rules are compiled again and the
// file replaced.
constexpr char CacheMagic[] = "SLUICE-SECRETSCAN\n";
// 2: the key covers every field of the rules and the RE2 library; 3: the keyword database;
// 4: SHA-1 as the file's checksum.
constexpr quint32 CacheFormat = 4;
// The checksum finds a file cut short or damaged; it is no security boundary (a file that
// is not the user's own, or that others may write, is refused before it is read). SHA-1:
// Qt's SHA-256 took 24 ms of a 1.1 MB file on a loaded machine, a quarter of a warm start.
constexpr QCryptographicHash::Algorithm CacheChecksum = QCryptographicHash::Sha1;
constexpr qsizetype CacheChecksumSize = 20;
// Cache files kept per directory (about 1 MB each for the default rules).
constexpr qsizetype MaxCacheFiles = 16;

class CacheWriter
{
public:
    void u64(quint64 v)
    {
        for (int i = 0; i < 8; ++i)
            bytes.append(char((v >> (8 * i)) & 0xFF));
    }
    void i64(qint64 v) { u64(quint64(v)); }
    void blob(const char *data, std::size_t size)
    {
        u64(size);
        bytes.append(data, qsizetype(size));
    }
    void text(const std::string &s) { blob(s.data(), s.size()); }
    void ints(const std::vector<int> &v)
    {
        u64(v.size());
        for (int x : v)
            i64(x);
    }
    QByteArray bytes;
};

class CacheReader
{
public:
    explicit CacheReader(std::string_view data) : m_data(data) {}
    bool ok() const { return m_ok; }
    quint64 u64()
    {
        if (m_pos + 8 > m_data.size()) {
            m_ok = false;
            return 0;
        }
        quint64 v = 0;
        for (int i = 0; i < 8; ++i)
            v |= quint64(static_cast<unsigned char>(m_data[m_pos + i])) << (8 * i);
        m_pos += 8;
        return v;
    }
    qint64 i64() { return qint64(u64()); }
    std::string_view blob()
    {
        const quint64 size = u64();
        if (!m_ok || size > quint64(m_data.size() - m_pos)) {
            m_ok = false;
            return {};
        }
        const std::string_view out = m_data.substr(m_pos, std::size_t(size));
        m_pos += std::size_t(size);
        return out;
    }
    std::string text() { return std::string(blob()); }
    std::vector<int> ints(std::size_t maxCount)
    {
        const quint64 count = u64();
        std::vector<int> out;
        if (!m_ok || count > maxCount) {
            m_ok = false;
            return out;
        }
        for (quint64 i = 0; i < count && m_ok; ++i) {
            const qint64 v = i64();
            if (v < INT_MIN || v > INT_MAX)
                m_ok = false;
            out.push_back(int(v));
        }
        return out;
    }
    bool atEnd() const { return m_pos == m_data.size(); }

private:
    std::string_view m_data;
    std::size_t m_pos = 0;
    bool m_ok = true;
};

QByteArray platformTag()
{
    hs_platform_info_t platform{};
    hs_populate_platform(&platform);
    return QByteArray(hs_version()) + '/' + QByteArray::number(platform.tune) + '/'
           + QByteArray::number(qulonglong(platform.cpu_features));
}

} // namespace

QString defaultScannerCacheDirectory()
{
    QByteArray base = qgetenv("XDG_CACHE_HOME");
    if (base.isEmpty() || !QDir::isAbsolutePath(QFile::decodeName(base))) {
        const QByteArray home = qgetenv("HOME");
        if (home.isEmpty())
            return {};
        base = home + "/.cache";
    }
    return QDir(QFile::decodeName(base)).filePath(QStringLiteral("sluice"));
}

QByteArray ruleSetDigest(const RuleSet &rules)
{
    // Every field of every rule and allowlist: two rule sets with the same digest behave the
    // same (in one process they share one compiled scanner) and the same patterns compiled
    // (a cache file's existence says they all compiled).
    QCryptographicHash hash(QCryptographicHash::Sha256);
    auto add = [&](std::string_view s) {
        hash.addData(QByteArray::number(qulonglong(s.size())) + ':');
        hash.addData(s.data(), int(s.size()));
    };
    auto addList = [&](const std::vector<std::string> &list) {
        add(std::to_string(list.size()));
        for (const std::string &s : list)
            add(s);
    };
    auto addAllowlist = [&](const Allowlist &a) {
        add(a.description);
        add(std::to_string(int(a.condition)) + "/" + std::to_string(int(a.regexTarget)));
        addList(a.regexes);
        addList(a.paths);
        addList(a.stopwords);
        addList(a.commits);
        addList(a.targetRules);
        add(a.origin.toStdString());
    };
    add(std::to_string(rules.rules.size()));
    for (const Rule &r : rules.rules) {
        add(r.id);
        add(r.description);
        add(r.regex);
        add(r.path);
        char number[64];
        std::snprintf(number, sizeof number, "%d/%.17g/%d", r.secretGroup, r.entropy, r.skipReport ? 1 : 0);
        add(number);
        addList(r.keywords);
        addList(r.tags);
        add(std::to_string(r.allowlists.size()));
        for (const Allowlist &a : r.allowlists)
            addAllowlist(a);
        add(r.origin.toStdString());
    }
    add(std::to_string(rules.allowlists.size()));
    for (const Allowlist &a : rules.allowlists)
        addAllowlist(a);
    add(rules.title.toStdString());
    add(rules.sources.join(QLatin1Char('\n')).toStdString());
    return hash.result();
}

namespace {

// The RE2 library this process runs: which patterns compile is its business, and a cache
// file says they all did. Its file's identity (path, size, change time) is part of the key.
QByteArray re2Identity()
{
    static const QByteArray identity = [] {
        Dl_info info{};
        if (::dladdr(reinterpret_cast<void *>(&RE2::QuoteMeta), &info) == 0 || !info.dli_fname)
            return QByteArray("re2:unknown");
        struct stat st {};
        if (::stat(info.dli_fname, &st) != 0)
            return QByteArray("re2:") + info.dli_fname;
        return QByteArray("re2:") + info.dli_fname + ':' + QByteArray::number(qlonglong(st.st_size)) + ':'
               + QByteArray::number(qlonglong(st.st_ctim.tv_sec)) + '.' + QByteArray::number(qlonglong(st.st_ctim.tv_nsec));
    }();
    return identity;
}

} // namespace

QByteArray SecretScanner::cacheKey(const Data &data, const QByteArray &digest)
{
    QCryptographicHash hash(QCryptographicHash::Sha256);
    hash.addData(CacheMagic);
    hash.addData(QByteArray::number(CacheFormat));
    hash.addData(platformTag());
    hash.addData(re2Identity());
    hash.addData(digest.isEmpty() ? ruleSetDigest(data.rules) : digest);
    return hash.result();
}

bool SecretScanner::loadCache(const QString &file, const QByteArray &key, Data &data, QString &why)
{
    const QByteArray name = QFile::encodeName(file);
    const int fd = ::open(name.constData(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        why = errno == ENOENT ? QString() : QStringLiteral("cache %1 not readable: %2").arg(file, QString::fromLocal8Bit(std::strerror(errno)));
        return false;
    }
    struct stat st {};
    const bool trusted = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH))
                         && st.st_size > 0 && st.st_size < (qint64(256) << 20);
    QByteArray bytes;
    if (trusted) {
        bytes.resize(qsizetype(st.st_size));
        qint64 got = 0;
        while (got < st.st_size) {
            const ssize_t n = ::read(fd, bytes.data() + got, std::size_t(st.st_size - got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += n;
        }
        bytes.truncate(qsizetype(got));
    }
    ::close(fd);
    auto refuse = [&](const QString &reason) {
        why = QStringLiteral("cache %1 refused (%2)").arg(file, reason);
        return false;
    };
    if (!trusted)
        return refuse(QStringLiteral("not a regular file of this user, or writable by others"));
    const qsizetype digestSize = CacheChecksumSize;
    if (bytes.size() < qsizetype(sizeof CacheMagic) + digestSize)
        return refuse(QStringLiteral("too short"));
    const QByteArray body = QByteArray::fromRawData(bytes.constData(), bytes.size() - digestSize); // no copy
    if (QCryptographicHash::hash(body, CacheChecksum) != bytes.right(digestSize))
        return refuse(QStringLiteral("checksum mismatch"));
    if (!body.startsWith(CacheMagic))
        return refuse(QStringLiteral("not a cache file"));
    CacheReader in(std::string_view(body.constData(), std::size_t(body.size())).substr(std::strlen(CacheMagic)));
    if (in.u64() != CacheFormat)
        return refuse(QStringLiteral("another format"));
    if (in.blob() != std::string_view(key.constData(), std::size_t(key.size())))
        return refuse(QStringLiteral("built for other rules or another Vectorscan"));
    const std::size_t rules = data.compiled.size();
    const quint64 flagCount = in.u64();
    std::vector<int> keywordSlot = in.ints(data.keywords.size());
    std::vector<int> databaseRule = in.ints(rules);
    std::vector<int> refineRule = in.ints(rules);
    struct PerRule {
        bool prefiltered, exact;
        quint64 maxWidth, prefixWidth;
        qint64 refine;
        std::string suffix;
    };
    std::vector<PerRule> perRule;
    if (in.u64() != rules)
        return refuse(QStringLiteral("another number of rules"));
    for (std::size_t i = 0; i < rules && in.ok(); ++i) {
        PerRule r;
        const quint64 flags = in.u64();
        r.prefiltered = flags & 1;
        r.exact = flags & 2;
        r.maxWidth = in.u64();
        r.prefixWidth = in.u64();
        r.refine = in.i64();
        r.suffix = in.text();
        perRule.push_back(std::move(r));
    }
    QStringList diagnostics;
    const quint64 diagnosticCount = in.u64();
    for (quint64 i = 0; i < diagnosticCount && in.ok() && i < rules + 1; ++i)
        diagnostics.append(QString::fromStdString(in.text()));
    const std::string_view database = in.blob();
    const std::string_view refineDatabase = in.blob();
    const std::string_view keywordDatabase = in.blob();
    if (!in.ok() || !in.atEnd() || diagnosticCount > rules + 1 || keywordSlot.size() != data.keywords.size())
        return refuse(QStringLiteral("malformed"));
    // Every index must point where the scanner will look.
    if (flagCount < databaseRule.size() || flagCount > databaseRule.size() + data.keywords.size())
        return refuse(QStringLiteral("malformed"));
    for (int r : databaseRule) {
        if (r < 0 || std::size_t(r) >= rules)
            return refuse(QStringLiteral("malformed"));
    }
    for (int r : refineRule) {
        if (r < 0 || std::size_t(r) >= rules)
            return refuse(QStringLiteral("malformed"));
    }
    for (int slot : keywordSlot) {
        if (slot < -1 || slot >= qint64(flagCount) || (slot >= 0 && std::size_t(slot) < databaseRule.size()))
            return refuse(QStringLiteral("malformed"));
    }
    for (const PerRule &r : perRule) {
        if (r.refine < -1 || r.refine >= qint64(refineRule.size()))
            return refuse(QStringLiteral("malformed"));
    }
    hs_database_t *db = nullptr;
    hs_database_t *refineDb = nullptr;
    if (!database.empty() && hs_deserialize_database(database.data(), database.size(), &db) != HS_SUCCESS)
        return refuse(QStringLiteral("Vectorscan cannot load its database"));
    if (!refineDatabase.empty() && hs_deserialize_database(refineDatabase.data(), refineDatabase.size(), &refineDb) != HS_SUCCESS) {
        if (db)
            hs_free_database(db);
        return refuse(QStringLiteral("Vectorscan cannot load its database"));
    }
    hs_database_t *keywordDb = nullptr;
    if (!keywordDatabase.empty() && hs_deserialize_database(keywordDatabase.data(), keywordDatabase.size(), &keywordDb) != HS_SUCCESS) {
        if (db)
            hs_free_database(db);
        if (refineDb)
            hs_free_database(refineDb);
        return refuse(QStringLiteral("Vectorscan cannot load its database"));
    }
    if ((db == nullptr) != databaseRule.empty()) {
        for (hs_database_t *loaded : {db, refineDb, keywordDb}) {
            if (loaded)
                hs_free_database(loaded);
        }
        return refuse(QStringLiteral("malformed"));
    }
    for (std::size_t i = 0; i < rules; ++i) {
        CompiledRule &c = data.compiled[i];
        c.prefiltered = perRule[i].prefiltered;
        c.exact = perRule[i].exact;
        c.maxWidth = std::size_t(perRule[i].maxWidth);
        c.prefixWidth = std::size_t(perRule[i].prefixWidth);
        c.refine = refineDb ? int(perRule[i].refine) : -1;
        if (c.refine >= 0 && !perRule[i].suffix.empty()) {
            c.suffix = LazyRe2(perRule[i].suffix, re2Options()); // compiled when first used
        } else if (c.refine >= 0 && c.prefixWidth > 0) {
            c.prefixWidth = 0; // a prefix without its suffix cannot be used
        }
    }
    data.database = db;
    data.refineDatabase = refineDb;
    data.keywordDatabase = keywordDb;
    data.flagCount = std::size_t(flagCount);
    data.keywordSlot = std::move(keywordSlot);
    data.databaseRule = std::move(databaseRule);
    data.refineRule = refineDb ? std::move(refineRule) : std::vector<int>();
    for (int r : data.databaseRule)
        data.databasePatterns.push_back(data.compiled[std::size_t(r)].rule->regex);
    data.cachedDiagnostics = diagnostics;
    return true;
}

QString SecretScanner::storeCache(const QString &file, const QByteArray &key, const Data &data)
{
    CacheWriter out;
    out.bytes.append(CacheMagic);
    out.u64(CacheFormat);
    out.blob(key.constData(), std::size_t(key.size()));
    out.u64(data.flagCount);
    out.ints(data.keywordSlot);
    out.ints(data.databaseRule);
    out.ints(data.refineRule);
    out.u64(data.compiled.size());
    for (const CompiledRule &c : data.compiled) {
        out.u64((c.prefiltered ? 1 : 0) | (c.exact ? 2 : 0));
        out.u64(c.maxWidth);
        out.u64(c.prefixWidth);
        out.i64(c.refine);
        out.text(c.suffix ? c.suffix.pattern() : std::string());
    }
    out.u64(quint64(data.cachedDiagnostics.size()));
    for (const QString &d : data.cachedDiagnostics)
        out.text(d.toStdString());
    for (hs_database_t *db : {data.database, data.refineDatabase, data.keywordDatabase}) {
        char *bytes = nullptr;
        std::size_t length = 0;
        if (db && hs_serialize_database(db, &bytes, &length) != HS_SUCCESS)
            return QStringLiteral("Vectorscan cannot serialize its database");
        out.blob(bytes, db ? length : 0);
        std::free(bytes);
    }
    out.bytes.append(QCryptographicHash::hash(out.bytes, CacheChecksum));
    if (!QDir().mkpath(QFileInfo(file).absolutePath()))
        return QStringLiteral("cannot create %1").arg(QFileInfo(file).absolutePath());
    // Written whole under another name, then renamed: a reader sees the old file or the new one.
    QSaveFile save(file);
    save.setDirectWriteFallback(false);
    if (!save.open(QIODevice::WriteOnly) || save.write(out.bytes) != out.bytes.size()
        || !save.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner) || !save.commit())
        return save.errorString();
    // Every rule set gets a file, and the daemon writes one per revision of a project's
    // rules: the most recently written ones stay, the rest go (a removed one that is still
    // wanted is compiled and written again).
    QDir dir(QFileInfo(file).absolutePath());
    const QFileInfoList cached = dir.entryInfoList({QStringLiteral("secretscan-*.hsdb")}, QDir::Files | QDir::NoSymLinks, QDir::Time);
    for (qsizetype i = MaxCacheFiles; i < cached.size(); ++i) {
        if (cached.at(i).absoluteFilePath() != QFileInfo(file).absoluteFilePath())
            QFile::remove(cached.at(i).absoluteFilePath());
    }
    return {};
}

Result<std::shared_ptr<const SecretScanner>> SecretScanner::shared(const RuleSet &rules, const CompileOptions &options)
{
    // Held while compiling: a second caller for the same rules waits for the first rather
    // than compiling them again. Weak: a rule set nobody uses any more is freed.
    static std::mutex mutex;
    static std::map<QByteArray, std::weak_ptr<const SecretScanner>> scanners;
    const QByteArray digest = ruleSetDigest(rules);
    std::lock_guard lock(mutex);
    if (auto found = scanners[digest].lock())
        return found;
    auto made = compile(rules, options, digest);
    if (made)
        scanners[digest] = *made;
    return made;
}

std::unique_ptr<SecretScanner::Scratch> SecretScanner::makeScratch() const
{
    auto scratch = std::make_unique<Scratch>();
    hs_scratch_t *hs = nullptr;
    if (d->database && hs_alloc_scratch(d->database, &hs) == HS_SUCCESS) {
        // The same scratch, grown to fit, serves the refinement database.
        if (d->refineDatabase && hs_alloc_scratch(d->refineDatabase, &hs) != HS_SUCCESS)
            scratch->m_refineUsable = false;
        if (d->keywordDatabase && hs_alloc_scratch(d->keywordDatabase, &hs) != HS_SUCCESS)
            scratch->m_keywordsUsable = false;
        scratch->m_hsScratch = hs;
    } else if (!d->database && d->keywordDatabase && hs_alloc_scratch(d->keywordDatabase, &hs) == HS_SUCCESS) {
        scratch->m_hsScratch = hs;
    } else {
        scratch->m_keywordsUsable = false;
    }
    scratch->m_keywordSeen.assign(d->keywords.size(), 0);
    scratch->m_flagged.assign(d->flagCount, 0);
    scratch->m_firstEnd.assign(scratch->m_flagged.size(), 0);
    scratch->m_refineSeen.assign(d->refineRule.size(), 0);
    scratch->m_lastEnd.assign(d->refineRule.size(), 0);
    scratch->m_prefixEnds.resize(d->refineRule.size());
    return scratch;
}

double shannonEntropy(std::string_view text)
{
    if (text.empty())
        return 0;
    // Go ranges over runes: each valid UTF-8 sequence is one rune, each invalid byte is U+FFFD.
    std::unordered_map<std::uint32_t, int> counts;
    std::array<int, 128> ascii{};
    const auto *p = reinterpret_cast<const unsigned char *>(text.data());
    const std::size_t n = text.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++ascii[c];
            ++i;
            continue;
        }
        std::uint32_t cp = 0xFFFD;
        std::size_t len = 1;
        auto cont = [&](std::size_t k) { return i + k < n && (p[i + k] & 0xC0) == 0x80; };
        if ((c & 0xE0) == 0xC0 && c >= 0xC2 && cont(1)) {
            cp = ((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
            len = 2;
        } else if ((c & 0xF0) == 0xE0 && cont(1) && cont(2)) {
            const std::uint32_t v = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
            if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) {
                cp = v;
                len = 3;
            }
        } else if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
            const std::uint32_t v = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6)
                                    | (p[i + 3] & 0x3Fu);
            if (v >= 0x10000 && v <= 0x10FFFF) {
                cp = v;
                len = 4;
            }
        }
        ++counts[cp];
        i += len;
    }
    const double inverseLength = 1.0 / double(n); // bytes, as gitleaks divides by len(data)
    double entropy = 0;
    auto add = [&](int count) {
        const double frequency = double(count) * inverseLength;
        entropy -= frequency * std::log2(frequency);
    };
    for (int count : ascii) {
        if (count)
            add(count);
    }
    for (const auto &[cp, count] : counts)
        add(count);
    return entropy;
}

std::string maskSecret(std::string_view secret)
{
    // Show a prefix only of long secrets, and never more than a fifth of one.
    std::size_t keep = secret.size() >= 20 ? 4 : 0;
    // Do not cut a UTF-8 sequence.
    while (keep > 0 && (static_cast<unsigned char>(secret[keep]) & 0xC0) == 0x80)
        --keep;
    return std::string(secret.substr(0, keep)) + "*****";
}

namespace {

// The match with every occurrence of the secret masked, on one line, bounded.
std::string maskedMatch(std::string_view match, std::string_view secret)
{
    std::string out;
    const std::string mask = maskSecret(secret);
    if (secret.empty()) {
        out = mask;
    } else {
        std::size_t from = 0;
        while (from <= match.size()) {
            const std::size_t at = match.find(secret, from);
            if (at == std::string_view::npos) {
                out.append(match.substr(from));
                break;
            }
            out.append(match.substr(from, at - from));
            out.append(mask);
            from = at + secret.size();
        }
    }
    for (char &c : out) {
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
    }
    if (out.size() > MaxMaskedBytes) {
        std::size_t cut = MaxMaskedBytes;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
            --cut;
        out.resize(cut);
        out += "...";
    }
    return out;
}

struct PendingFinding {
    SecretFinding finding;
    std::string secret; // lives only inside scan(); needed by the generic dedupe
    bool generic = false;
};

} // namespace

bool SecretScanner::skipsFragment(const Fragment &fragment) const
{
    return std::any_of(d->globals.begin(), d->globals.end(), [&](const CompiledAllowlist &a) { return a.allowsFragment(fragment); });
}

std::vector<SecretFinding> SecretScanner::scan(const Fragment &fragment, Scratch &scratch, const ScanOptions &options) const
{
    return scanFragment(fragment, scratch, options).findings;
}

FragmentScan SecretScanner::scanFragment(const Fragment &fragment, Scratch &scratch, const ScanOptions &options) const
{
    std::vector<PendingFinding> pending;
    bool capped = false;
    bool incomplete = false;
    auto full = [&]() {
        if (options.maxFindings > 0 && pending.size() >= options.maxFindings)
            capped = true;
        return capped;
    };
    for (const CompiledAllowlist &a : d->globals) {
        if (a.allowsFragment(fragment))
            return {};
    }
    const std::string_view text = fragment.text;

    // One Vectorscan pass says which prefiltered rules can match anywhere in the fragment.
    std::fill(scratch.m_flagged.begin(), scratch.m_flagged.end(), 0);
    if (d->database && !text.empty()) {
        // Without scratch memory (allocation failed) every rule runs in RE2: slower, never blind.
        MatchSink sink{scratch.m_flagged.data(), scratch.m_firstEnd.data()};
        if (!scratch.m_hsScratch
            || hs_scan(d->database, text.data(), unsigned(text.size()), 0, static_cast<hs_scratch_t *>(scratch.m_hsScratch),
                       hsOnMatch, &sink) != HS_SUCCESS) {
            std::fill(scratch.m_flagged.begin(), scratch.m_flagged.end(), 1);
            std::fill(scratch.m_firstEnd.begin(), scratch.m_firstEnd.end(), 0);
        }
    }
    std::vector<char> &candidate = scratch.m_candidate;
    candidate.assign(d->compiled.size(), 0);
    bool any = false;
    for (std::size_t i = 0; i < d->compiled.size(); ++i) {
        const CompiledRule &c = d->compiled[i];
        if (!c.regex)
            candidate[i] = fragment.fileStart && c.path;
        else if (!c.prefiltered)
            candidate[i] = !text.empty();
        any = any || candidate[i];
    }
    std::vector<std::size_t> &searchFrom = scratch.m_searchFrom;
    searchFrom.assign(d->compiled.size(), 0);
    for (std::size_t k = 0; k < d->databaseRule.size(); ++k) {
        if (scratch.m_flagged[k]) {
            const std::size_t rule = std::size_t(d->databaseRule[k]);
            candidate[rule] = 1;
            const std::size_t width = d->compiled[rule].maxWidth;
            const std::size_t end = std::size_t(scratch.m_firstEnd[k]);
            searchFrom[rule] = width > 0 && end > width ? end - width : 0;
            any = true;
        }
    }
    if (!any)
        return {};

    // Keywords: a rule with keywords runs only if one appears (lower-cased) in the fragment.
    bool lowered = false;
    bool keywordPassDone = false;
    bool keywordPassOk = false;
    auto inDatabase = [&](int id) { return d->database && d->keywordSlot[std::size_t(id)] >= 0; };
    // What the main pass says about the rule's keywords: one of them is there, none is, or
    // it does not know (some are not in its database).
    enum class Known { Yes, No, Unknown };
    auto keywordFromMainPass = [&](const CompiledRule &c) {
        if (c.keywords.empty())
            return Known::Yes;
        if (std::any_of(c.keywordIds.begin(), c.keywordIds.end(),
                        [&](int id) { return inDatabase(id) && scratch.m_flagged[std::size_t(d->keywordSlot[std::size_t(id)])] != 0; }))
            return Known::Yes;
        if (std::all_of(c.keywordIds.begin(), c.keywordIds.end(), inDatabase))
            return Known::No;
        return Known::Unknown;
    };
    auto hasKeyword = [&](const CompiledRule &c) {
        const Known known = keywordFromMainPass(c);
        if (known != Known::Unknown)
            return known == Known::Yes;
        if (!keywordPassDone) {
            keywordPassDone = true;
            if (d->keywordDatabase && scratch.m_hsScratch && scratch.m_keywordsUsable) {
                std::fill(scratch.m_keywordSeen.begin(), scratch.m_keywordSeen.end(), 0);
                keywordPassOk = hs_scan(d->keywordDatabase, text.data(), unsigned(text.size()), 0,
                                        static_cast<hs_scratch_t *>(scratch.m_hsScratch), hsOnKeyword, scratch.m_keywordSeen.data())
                                == HS_SUCCESS;
            }
        }
        if (keywordPassOk)
            return std::any_of(c.keywordIds.begin(), c.keywordIds.end(), [&](int id) { return scratch.m_keywordSeen[std::size_t(id)] != 0; });
        if (!lowered) {
            scratch.m_lowered.resize(text.size());
            char *out = scratch.m_lowered.data();
            for (std::size_t k = 0; k < text.size(); ++k) {
                const char ch = text[k];
                out[k] = char(ch + ((unsigned char)(ch - 'A') < 26u ? 32 : 0));
            }
            lowered = true;
        }
        for (std::size_t k = 0; k < c.keywords.size(); ++k) {
            if (!inDatabase(c.keywordIds[k]) && scratch.m_lowered.find(c.keywords[k]) != std::string::npos)
                return true;
        }
        return false;
    };

    // The refinement pass, run once per fragment when the first rule that has one reaches RE2.
    bool refined = false;
    bool refineOk = false;
    auto refine = [&]() {
        refined = true;
        if (!d->refineDatabase || !scratch.m_hsScratch || !scratch.m_refineUsable)
            return;
        // RE2 folds (?i) "k" and "s" to KELVIN SIGN and LATIN SMALL LETTER LONG S, Vectorscan's
        // ASCII mode does not: where they occur, Vectorscan's ends may miss an RE2 match.
        if (text.find("\xE2\x84\xAA") != std::string_view::npos || text.find("\xC5\xBF") != std::string_view::npos)
            return;
        std::fill(scratch.m_refineSeen.begin(), scratch.m_refineSeen.end(), 0);
        for (auto &ends : scratch.m_prefixEnds)
            ends.clear();
        std::fill(scratch.m_lastEnd.begin(), scratch.m_lastEnd.end(), 0);
        RefineSink sink{scratch.m_refineSeen.data(), scratch.m_lastEnd.data(), scratch.m_prefixEnds.data()};
        refineOk = hs_scan(d->refineDatabase, text.data(), unsigned(text.size()), 0, static_cast<hs_scratch_t *>(scratch.m_hsScratch),
                           hsOnRefineMatch, &sink)
                   == HS_SUCCESS;
        for (auto &ends : scratch.m_prefixEnds) {
            if (!std::is_sorted(ends.begin(), ends.end()))
                std::sort(ends.begin(), ends.end());
        }
    };

    for (std::size_t i = 0; i < d->compiled.size() && !full(); ++i) {
        if (!candidate[i])
            continue;
        const CompiledRule &c = d->compiled[i];
        // A rule whose regex Vectorscan matched exactly, with keywords outside the main pass:
        // its first match nearly always holds one of them (generic-api-key's keywords are
        // its regex's words), so that match is asked first and the whole fragment searched
        // for them only if it holds none (a pass of its own, a tenth of a 200 MB scan's
        // overhead before). Same answer: a keyword in the match is one in the fragment.
        const Known known = keywordFromMainPass(c);
        if (known == Known::No)
            continue;
        bool keywordPending = known == Known::Unknown && c.prefiltered && c.exact;
        if (known == Known::Unknown && !keywordPending && !hasKeyword(c))
            continue;
        if (c.rule->skipReport)
            continue;
        if (std::any_of(c.allowlists.begin(), c.allowlists.end(), [&](const auto &a) { return a.allowsFragment(fragment); }))
            continue;
        if (c.path) {
            // A path regex that does not compile (see LazyRe2) leaves the rule applying.
            const RE2 *pathRegex = c.path.get();
            if (pathRegex && !RE2::PartialMatch(fragment.path, *pathRegex))
                continue;
        }
        if (!c.regex) {
            PendingFinding p;
            p.finding.ruleId = c.rule->id;
            p.finding.description = c.rule->description;
            p.finding.file = fragment.path;
            p.finding.commit = fragment.commit;
            p.finding.line = 0;
            p.finding.masked = "file detected: " + fragment.path;
            pending.push_back(std::move(p));
            continue;
        }

        // FindAll: leftmost-first, non-overlapping; an empty match right after the previous
        // match is skipped, as Go does.
        const RE2 *regex = c.regex.get();
        if (!regex) {
            // Only when RE2 refuses, on first use, a regex it compiled before (LazyRe2):
            // the fragment is not fully scanned, and the caller says so.
            incomplete = true;
            continue;
        }
        const RE2 *suffix = c.prefixWidth > 0 && c.suffix ? c.suffix.get() : nullptr;
        const re2::StringPiece whole(text.data(), text.size());
        std::size_t pos = searchFrom[i];
        std::size_t lineCountedTo = 0;
        int linesBefore = 0;
        std::ptrdiff_t previousEnd = -1;
        const int groups = regex->NumberOfCapturingGroups();
        std::vector<re2::StringPiece> sub(std::size_t(groups) + 1);
        // With the refinement pass: every match ends at or before the rule's last match end,
        // and splits into a prefix match that ends after its start, at most prefixWidth
        // after it, and a suffix match from there. So RE2 searches from the first prefix end
        // at or after the start where the suffix matches, minus prefixWidth, up to the last
        // match end, with the whole fragment as context (so \b, ^ and $ see what lies beyond).
        // Otherwise the whole rest of the fragment.
        if (c.refine >= 0 && options.boundSearch && !refined)
            refine();
        const std::size_t r = std::size_t(std::max(c.refine, 0));
        const bool bounded = c.refine >= 0 && options.boundSearch && refineOk && scratch.m_refineSeen[r]
                             && (c.prefixWidth == 0 || (suffix && !scratch.m_prefixEnds[r].empty()));
        const std::size_t searchTo = bounded ? std::min(std::size_t(scratch.m_lastEnd[r]), text.size()) : text.size();
        std::size_t nextPrefixEnd = 0;
        // The line of the last match, and what was learnt about it: matches come in order and
        // many may share one long line, so its bounds, its allow marker and the line
        // allowlists are looked at once per line, not once per match (which was quadratic).
        std::size_t newlineCursor = 0;                          // text before it has been looked at...
        std::size_t lastNewline = std::string_view::npos;       // ...and its last '\n' is here
        std::size_t nextNewlineFrom = 1, nextNewline = 0;       // the first '\n' at or after nextNewlineFrom
        std::size_t lineStart = std::string_view::npos;
        std::size_t lineEnd = 0; // position of its '\n', or the end of the text
        bool lineAllowMarker = false;
        std::vector<signed char> &globalLineVerdicts = scratch.m_globalLineVerdicts;
        std::vector<signed char> &ruleLineVerdicts = scratch.m_ruleLineVerdicts;
        while (pos <= text.size() && !full()) {
            std::size_t from = pos;
            if (bounded) {
                if (pos > searchTo)
                    break;
                if (c.prefixWidth > 0) {
                    const std::vector<unsigned long long> &ends = scratch.m_prefixEnds[r];
                    // No match of the rule ends past searchTo, so neither does a suffix match
                    // that is part of one (the text beyond stays context for $ and \b).
                    while (nextPrefixEnd < ends.size()
                           && (ends[nextPrefixEnd] < pos
                               || !suffix->Match(whole, std::size_t(ends[nextPrefixEnd]), searchTo, RE2::ANCHOR_START, nullptr, 0)))
                        ++nextPrefixEnd;
                    if (nextPrefixEnd == ends.size())
                        break;
                    const std::size_t prefixEnd = std::size_t(ends[nextPrefixEnd]);
                    from = std::max(pos, prefixEnd > c.prefixWidth ? prefixEnd - c.prefixWidth : 0);
                    if (from > searchTo)
                        break;
                }
            }
            re2::StringPiece m;
            if (!regex->Match(whole, from, searchTo, RE2::UNANCHORED, &m, 1))
                break;
            std::size_t start = std::size_t(m.data() - text.data());
            std::size_t end = start + m.size();
            if (m.empty()) {
                if (std::ptrdiff_t(start) == previousEnd) {
                    pos = start + 1;
                    continue;
                }
                pos = start + 1;
            } else {
                pos = end;
            }
            previousEnd = std::ptrdiff_t(end);
            // match = strings.Trim(match, "\n")
            while (start < end && text[start] == '\n')
                ++start;
            while (end > start && text[end - 1] == '\n')
                --end;
            const std::string_view match = text.substr(start, end - start);
            if (keywordPending) {
                keywordPending = false;
                std::string &lowerMatch = scratch.m_lowerMatch;
                lowerMatch.assign(match);
                for (char &ch : lowerMatch)
                    ch = char(ch + ((unsigned char)(ch - 'A') < 26u ? 32 : 0));
                const bool inMatch = std::any_of(c.keywords.begin(), c.keywords.end(),
                                                 [&](const std::string &k) { return lowerMatch.find(k) != std::string::npos; });
                std::fill(lowerMatch.begin(), lowerMatch.end(), '\0'); // it may hold the secret
                if (!inMatch && !hasKeyword(c))
                    break;
            }

            if (start > lineCountedTo) {
                linesBefore += int(countNewlines(text.data() + lineCountedTo, text.data() + start));
                lineCountedTo = start;
            }
            // Matches only move forward, so the text is walked once per rule: the last '\n'
            // before the match's start, and the first at or after its end.
            for (std::size_t at = newlineCursor; at < start;) {
                const void *hit = std::memchr(text.data() + at, '\n', start - at);
                if (!hit)
                    break;
                lastNewline = std::size_t(static_cast<const char *>(hit) - text.data());
                at = lastNewline + 1;
            }
            newlineCursor = std::max(newlineCursor, start);
            const std::size_t thisLineStart = lastNewline == std::string_view::npos ? 0 : lastNewline + 1;
            if (end < nextNewlineFrom || end > nextNewline) {
                const std::size_t newline = text.find('\n', end);
                nextNewline = newline == std::string_view::npos ? text.size() : newline;
                nextNewlineFrom = end;
            }
            if (thisLineStart != lineStart || nextNewline != lineEnd) {
                lineStart = thisLineStart;
                lineEnd = nextNewline;
                const std::string_view line = text.substr(lineStart, lineEnd - lineStart);
                lineAllowMarker = options.honorAllowMarker && line.find(AllowMarker) != std::string_view::npos;
                globalLineVerdicts.assign(d->globals.size(), -1);
                ruleLineVerdicts.assign(c.allowlists.size(), -1);
            }
            const std::string_view line = text.substr(lineStart, lineEnd - lineStart);
            if (lineAllowMarker)
                continue;

            // The secret: the regex again on the match alone; the chosen or first non-empty group.
            std::string_view secret = match;
            if (groups > 0) {
                const re2::StringPiece matchPiece(match.data(), match.size());
                if (regex->Match(matchPiece, 0, match.size(), RE2::UNANCHORED, sub.data(), groups + 1)) {
                    if (c.rule->secretGroup > 0) {
                        const re2::StringPiece &g = sub[std::size_t(c.rule->secretGroup)];
                        secret = std::string_view(g.data() ? g.data() : match.data(), g.size());
                    } else {
                        for (int g = 1; g <= groups; ++g) {
                            if (!sub[std::size_t(g)].empty()) {
                                secret = std::string_view(sub[std::size_t(g)].data(), sub[std::size_t(g)].size());
                                break;
                            }
                        }
                    }
                }
            }
            const double entropy = shannonEntropy(secret);
            if (c.rule->entropy != 0 && entropy <= c.rule->entropy)
                continue;
            bool allowed = false;
            for (std::size_t k = 0; !allowed && k < d->globals.size(); ++k)
                allowed = d->globals[k].allowsFinding(fragment, secret, match, line, globalLineVerdicts[k]);
            for (std::size_t k = 0; !allowed && k < c.allowlists.size(); ++k)
                allowed = c.allowlists[k].allowsFinding(fragment, secret, match, line, ruleLineVerdicts[k]);
            if (allowed)
                continue;

            PendingFinding p;
            p.generic = c.generic;
            p.secret.assign(secret);
            SecretFinding &f = p.finding;
            f.ruleId = c.rule->id;
            f.description = c.rule->description;
            f.file = fragment.path;
            f.commit = fragment.commit;
            f.line = fragment.startLine + linesBefore;
            f.endLine = f.line + int(std::count(match.begin(), match.end(), '\n'));
            f.column = int(start - lineStart) + 1;
            f.entropy = entropy;
            f.masked = maskedMatch(match, secret);
            pending.push_back(std::move(p));
        }
    }

    // gitleaks' dedupe: a generic finding goes when a specific one on its line holds its
    // secret. Only the specific findings of the same line are compared (looking through all of
    // them for each generic one was quadratic in the findings of a fragment).
    std::unordered_map<int, std::vector<const PendingFinding *>> specificByLine;
    if (options.dedupeGeneric) {
        for (const PendingFinding &p : pending) {
            if (!p.generic)
                specificByLine[p.finding.line].push_back(&p);
        }
    }
    std::vector<SecretFinding> out;
    out.reserve(pending.size());
    for (const PendingFinding &p : pending) {
        if (options.dedupeGeneric && p.generic) {
            const auto sameLine = specificByLine.find(p.finding.line);
            const bool covered = sameLine != specificByLine.end()
                                 && std::any_of(sameLine->second.begin(), sameLine->second.end(), [&](const PendingFinding *other) {
                                        return other->finding.ruleId != p.finding.ruleId
                                               && other->secret.find(p.secret) != std::string::npos;
                                    });
            if (covered)
                continue;
        }
        SecretFinding f = p.finding;
        const std::string where = f.file + ":" + f.ruleId + ":" + std::to_string(f.line);
        f.fingerprint = f.commit.empty() ? where : f.commit + ":" + where;
        out.push_back(std::move(f));
    }
    // Wipe the secrets before the memory is released.
    for (PendingFinding &p : pending)
        std::fill(p.secret.begin(), p.secret.end(), '\0');
    std::sort(out.begin(), out.end(), [](const SecretFinding &a, const SecretFinding &b) {
        return std::tie(a.line, a.column, a.ruleId) < std::tie(b.line, b.column, b.ruleId);
    });
    return FragmentScan{std::move(out), capped, incomplete};
}

} // namespace Sluice::Security
