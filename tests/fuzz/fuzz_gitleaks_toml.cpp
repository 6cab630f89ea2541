// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a project's gitleaks configuration as the security gate reads it from the
// target branch (libs/secretscan/: the TOML reader, the rule set, compiling the
// rules). Compiling is slow, so only rule sets small enough to compile quickly are.
#include "ruleset.h"
#include "secretscanner.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    const std::string text(reinterpret_cast<const char *>(data), size);
    auto rules = Sluice::Security::loadRuleText(text, QStringLiteral(".gitleaks.toml (fuzz)"), QString());
    if (!rules) {
        (void)rules.error().toString();
        return 0;
    }
    // [extend] useDefault pulls in all 222 default rules: compiling those takes a second.
    if (rules->rules.size() > 8)
        return 0;
    if (auto scanner = Sluice::Security::SecretScanner::compile(*rules)) {
        auto scratch = (*scanner)->makeScratch();
        Sluice::Security::Fragment fragment;
        fragment.text = text;
        fragment.path = "config.toml";
        (void)(*scanner)->scan(fragment, *scratch);
    }
    return 0;
}
