// SPDX-License-Identifier: Apache-2.0
#include "textmasker.h"

#include "secretscanner.h"

#include <re2/re2.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace Sluice::Security {

namespace {

// True on the thread that compiles the rules: a mask() asked for there (Qt may log while
// the rule files are read, and the log handler masks) must not wait for itself.
thread_local bool compilingHere = false;

struct Compiled {
    RuleSet rules;
    std::shared_ptr<const SecretScanner> scanner;
};

struct Span {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string rule;
};

} // namespace

struct ScannerTextMasker::Data {
    RuleSource source;
    QString cacheDirectory;
    mutable std::once_flag started;
    mutable std::shared_future<Result<std::shared_ptr<const Compiled>>> compiled;

    // Scratch space for scans, one per concurrent caller, kept for reuse.
    mutable std::mutex scratchMutex;
    mutable std::vector<std::unique_ptr<SecretScanner::Scratch>> scratches;
    // The rule regexes compiled again for their spans, only for rules that matched.
    mutable std::mutex regexMutex;
    mutable std::map<std::string, std::shared_ptr<const RE2>> regexes;

    std::shared_ptr<const RE2> regexFor(const Rule &rule) const
    {
        std::lock_guard lock(regexMutex);
        auto it = regexes.find(rule.id);
        if (it != regexes.end())
            return it->second;
        RE2::Options options;
        options.set_log_errors(false);
        options.set_max_mem(int64_t(32) << 20);
        auto re = std::make_shared<const RE2>(rule.regex, options);
        if (!re->ok())
            re.reset();
        regexes.emplace(rule.id, re);
        return re;
    }
};

ScannerTextMasker::ScannerTextMasker(RuleSource rules, QString cacheDirectory)
    : d(std::make_unique<Data>())
{
    d->source = std::move(rules);
    d->cacheDirectory = std::move(cacheDirectory);
}

ScannerTextMasker::~ScannerTextMasker()
{
    // A compilation still running finishes before the rules it uses go away.
    if (d->compiled.valid())
        d->compiled.wait();
}

void ScannerTextMasker::warmUp() const
{
    std::call_once(d->started, [this] {
        d->compiled = std::async(std::launch::async, [source = d->source, cacheDirectory = d->cacheDirectory]() -> Result<std::shared_ptr<const Compiled>> {
                          compilingHere = true;
                          auto rules = source();
                          if (!rules)
                              return std::unexpected(rules.error());
                          CompileOptions options;
                          options.cacheDirectory = cacheDirectory;
                          auto scanner = SecretScanner::shared(*rules, options);
                          if (!scanner)
                              return std::unexpected(scanner.error());
                          return std::make_shared<const Compiled>(Compiled{std::move(*rules), std::move(*scanner)});
                      }).share();
    });
}

Result<void> ScannerTextMasker::ready() const
{
    warmUp();
    const auto future = d->compiled; // a copy per caller: shared state, not a shared object
    const auto &compiled = future.get();
    if (!compiled)
        return std::unexpected(compiled.error());
    return {};
}

std::shared_ptr<const SecretScanner> ScannerTextMasker::scanner() const
{
    warmUp();
    const auto future = d->compiled;
    const auto &compiled = future.get();
    return compiled ? (*compiled)->scanner : nullptr;
}

bool ScannerTextMasker::isReady() const
{
    warmUp(); // starts the compilation if nobody did; after it, reading the future is safe
    const auto future = d->compiled;
    return future.valid() && future.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

QString ScannerTextMasker::mask(const QString &text) const
{
    if (text.isEmpty() || compilingHere)
        return text;
    warmUp();
    const auto future = d->compiled;
    const auto &compiled = future.get();
    if (!compiled)
        return QStringLiteral("[withheld: the secret scanner that masks this text is not available]");
    const Compiled &c = **compiled;

    const QByteArray utf8 = text.toUtf8();
    const std::string_view view(utf8.constData(), std::size_t(utf8.size()));
    Fragment fragment;
    fragment.text = view;

    std::unique_ptr<SecretScanner::Scratch> scratch;
    {
        std::lock_guard lock(d->scratchMutex);
        if (!d->scratches.empty()) {
            scratch = std::move(d->scratches.back());
            d->scratches.pop_back();
        }
    }
    if (!scratch)
        scratch = c.scanner->makeScratch();
    ScanOptions options;
    // What an agent prints is not a file someone annotated: an allow marker does not hide a token.
    options.honorAllowMarker = false;
    const FragmentScan scanned = c.scanner->scanFragment(fragment, *scratch, options);
    {
        std::lock_guard lock(d->scratchMutex);
        d->scratches.push_back(std::move(scratch));
    }
    if (scanned.incomplete)
        return QStringLiteral("[withheld: the secret scanner that masks this text is not available]");
    const std::vector<SecretFinding> &findings = scanned.findings;
    if (findings.empty())
        return text;

    std::vector<std::size_t> lineStarts{0};
    for (std::size_t i = 0; i < view.size(); ++i) {
        if (view[i] == '\n')
            lineStarts.push_back(i + 1);
    }
    auto lineEnd = [&](std::size_t from) {
        const std::size_t at = view.find('\n', from);
        return at == std::string_view::npos ? view.size() : at;
    };

    std::vector<Span> spans;
    for (const SecretFinding &f : findings) {
        if (f.line < 1 || std::size_t(f.line) > lineStarts.size() || f.column < 1)
            continue;
        const std::size_t start = lineStarts[std::size_t(f.line - 1)] + std::size_t(f.column - 1);
        if (start >= view.size())
            continue;
        const Rule *rule = c.rules.rule(f.ruleId);
        Span span{start, lineEnd(start), f.ruleId};
        const auto re = rule && !rule->regex.empty() ? d->regexFor(*rule) : nullptr;
        if (re) {
            // The scanner trims newlines off a match's ends, so the regex may have started
            // on newlines just before the reported start.
            const int groups = re->NumberOfCapturingGroups();
            std::vector<re2::StringPiece> sub(std::size_t(groups) + 1);
            std::size_t from = start;
            bool matched = false;
            for (int back = 0; back <= 8; ++back) {
                if (re->Match(re2::StringPiece(view.data(), view.size()), from, view.size(), RE2::ANCHOR_START, sub.data(),
                              groups + 1)) {
                    matched = true;
                    break;
                }
                if (from == 0 || view[from - 1] != '\n')
                    break;
                --from;
            }
            if (matched) {
                re2::StringPiece secret = sub[0];
                if (rule->secretGroup > 0 && rule->secretGroup <= groups && !sub[std::size_t(rule->secretGroup)].empty()) {
                    secret = sub[std::size_t(rule->secretGroup)];
                } else if (rule->secretGroup == 0) {
                    for (int g = 1; g <= groups; ++g) {
                        if (!sub[std::size_t(g)].empty()) {
                            secret = sub[std::size_t(g)];
                            break;
                        }
                    }
                }
                std::size_t begin = std::size_t(secret.data() - view.data());
                std::size_t end = begin + secret.size();
                while (begin < end && view[begin] == '\n')
                    ++begin;
                while (end > begin && view[end - 1] == '\n')
                    --end;
                if (end > begin)
                    span = Span{begin, end, f.ruleId};
            }
            // Not matched again (it should not happen): the rest of the line goes, to be safe.
        }
        spans.push_back(std::move(span));
    }
    if (spans.empty())
        return text;
    std::sort(spans.begin(), spans.end(), [](const Span &a, const Span &b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });

    std::string out;
    out.reserve(view.size());
    std::size_t at = 0;
    for (std::size_t i = 0; i < spans.size();) {
        Span merged = spans[i];
        std::size_t j = i + 1;
        // Overlapping findings (two rules on one token) become one mask, named by the first.
        while (j < spans.size() && spans[j].begin < merged.end) {
            merged.end = std::max(merged.end, spans[j].end);
            ++j;
        }
        if (merged.begin >= at) {
            out.append(view.substr(at, merged.begin - at));
            out.append("[REDACTED:").append(merged.rule).append("]");
            at = merged.end;
        } else if (merged.end > at) {
            at = merged.end;
        }
        i = j;
    }
    out.append(view.substr(at));
    return QString::fromUtf8(out.data(), int(out.size()));
}

} // namespace Sluice::Security
