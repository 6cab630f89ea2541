// SPDX-License-Identifier: Apache-2.0
#pragma once

// The free-text masker the `sluice` executable installs (sluice/secrets.h): the secret
// scanner over text Sluice copies from agents and commands, each secret it finds replaced by
// "[REDACTED:<rule id>]". Built on the scanner's public API only: the scanner says which
// rule matched where; the rule's own regex, run again at that spot, says where the secret
// ends.

#include "ruleset.h"
#include "secretscanner.h"

#include <sluice/secrets.h>

#include <functional>
#include <memory>

namespace Sluice::Security {

class ScannerTextMasker final : public FreeTextMasker
{
public:
    using RuleSource = std::function<Result<RuleSet>()>;

    /// @p rules is called once, on the compiling thread (default: the shipped rules). The
    /// scanner is the process's one for those rules (SecretScanner::shared()), built with the
    /// compiled-database cache in @p cacheDirectory (empty: none).
    explicit ScannerTextMasker(RuleSource rules = defaultRuleSet, QString cacheDirectory = defaultScannerCacheDirectory());
    ~ScannerTextMasker() override;
    ScannerTextMasker(const ScannerTextMasker &) = delete;
    ScannerTextMasker &operator=(const ScannerTextMasker &) = delete;

    /**
     * Starts compiling the rules on a thread of its own and returns at once (compiling the
     * default rules takes most of a second). Without it the first mask() compiles them and
     * waits. Calling it again does nothing.
     */
    void warmUp() const;
    /// Waits for the rules; their error when they did not compile.
    [[nodiscard]] Result<void> ready() const;
    /// The scanner it masks with (the process's one for its rules); waits for the rules; null
    /// when they did not compile.
    [[nodiscard]] std::shared_ptr<const SecretScanner> scanner() const;
    /// True once the rules are compiled (or failed to); never waits (starts the compilation).
    [[nodiscard]] bool isReady() const override;

    /**
     * @p text with every secret the rules find replaced by "[REDACTED:<rule id>]": the
     * secret (the rule's secret group) only, so "token=[REDACTED:generic-api-key]" keeps
     * its key. If the rules could not be compiled, the whole text is withheld (fail-closed).
     * Thread-safe; never logs.
     */
    [[nodiscard]] QString mask(const QString &text) const override;

private:
    struct Data;
    std::unique_ptr<Data> d;
};

} // namespace Sluice::Security
