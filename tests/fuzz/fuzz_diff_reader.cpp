// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the readers of `git log -p -U0` output, ordinary commits and merges' combined
// diffs (libs/secretscan/scantargets.cpp), and UTF-16 detection and decoding. The
// author of a branch controls file names and contents, so they control most of this text.
#include "scantargets.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    Sluice::Security::ScanLimits limits;
    limits.maxFileBytes = 4096;
    for (auto read : {&Sluice::Security::readLogPatch, &Sluice::Security::readMergePatch}) {
        Sluice::Security::ScanTargets targets;
        (void)read(text, limits, targets);
        qint64 total = 0;
        for (const Sluice::Security::ScanItem &item : targets.items)
            total += qint64(item.text.size());
        // Each reader keeps only added lines (their '\n' included), so its items never hold
        // more than the input.
        if (total > qint64(size) + qint64(targets.items.size()))
            std::abort();
    }
    if (auto decoded = Sluice::Security::decodeUtf16Text(text); decoded && decoded->size() > 2 * size)
        std::abort();
    return 0;
}
