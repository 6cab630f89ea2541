// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the secret scanner with the default rules over one fragment (Vectorscan
// prefilter, RE2, allowlists, dedupe), bounded and unbounded search. Both searches must
// give the same findings, and no finding may hold a secret longer than its mask allows.
#include "ruleset.h"
#include "secretscanner.h"

#include <cstdint>
#include <cstdlib>

namespace {

const Sluice::Security::SecretScanner &scanner()
{
    static const std::shared_ptr<const Sluice::Security::SecretScanner> compiled = [] {
        auto rules = Sluice::Security::defaultRuleSet();
        if (!rules)
            std::abort();
        auto s = Sluice::Security::SecretScanner::compile(*rules);
        if (!s)
            std::abort();
        return *s;
    }();
    return *compiled;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    using namespace Sluice::Security;
    static auto scratch = scanner().makeScratch();
    Fragment fragment;
    fragment.text = std::string_view(reinterpret_cast<const char *>(data), size);
    fragment.path = "src/settings.py";
    ScanOptions bounded;
    ScanOptions whole;
    whole.boundSearch = false;
    const auto a = scanner().scan(fragment, *scratch, bounded);
    const auto b = scanner().scan(fragment, *scratch, whole);
    if (a.size() != b.size())
        std::abort();
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].fingerprint != b[i].fingerprint || a[i].column != b[i].column || a[i].masked != b[i].masked)
            std::abort();
        if (a[i].line < 1 || a[i].endLine < a[i].line || a[i].masked.size() > 200)
            std::abort();
    }
    return 0;
}
