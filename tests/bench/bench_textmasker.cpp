// SPDX-License-Identifier: Apache-2.0
// On-demand benchmark of the free-text masker the `sluice` executable installs
// (libs/secretscan/textmasker.*): how long its rules take to compile (what a command
// that masks pays once, on a thread of its own), and what one Redaction::mask() costs on the
// texts Sluice masks — a failing stage's summary with its output tail, a gate's reason, a
// reviewer's findings — next to Redaction::redact() (registered secrets only) on the same
// text, measured in the same run.
//
// Usage: bench_textmasker [rounds]   (default 2000)
#include "textmasker.h"

#include <sluice/secrets.h>

#include <QCoreApplication>
#include <QElapsedTimer>

#include <algorithm>
#include <cstdio>
#include <vector>

using namespace Sluice;

namespace {

double microsPerCall(int rounds, const std::function<QString()> &call)
{
    std::vector<double> runs;
    for (int r = 0; r < 5; ++r) {
        QElapsedTimer t;
        t.start();
        std::size_t sink = 0;
        for (int i = 0; i < rounds; ++i)
            sink += std::size_t(call().size());
        runs.push_back(double(t.nsecsElapsed()) / 1000.0 / rounds + double(sink % 2) * 0.0);
    }
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

} // namespace

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    const int rounds = argc > 1 ? std::max(1, atoi(argv[1])) : 2000;
    Redaction::registerSecret("hook-key-2b9f0c7d1e");

    QElapsedTimer compile;
    compile.start();
    auto masker = std::make_shared<Security::ScannerTextMasker>();
    masker->warmUp();
    if (auto ready = masker->ready(); !ready) {
        std::fprintf(stderr, "rules do not compile: %s\n", qPrintable(ready.error().toString()));
        return 1;
    }
    // With the compiled-rules cache ($XDG_CACHE_HOME/sluice) warm this is a load, not a compilation.
    std::printf("compile        %8.1f ms (once per process, on its own thread; %s)\n", double(compile.nsecsElapsed()) / 1e6,
                qPrintable(masker->scanner()->cacheStatus()));
    Redaction::installFreeTextMasker(masker);

    const QString token = QStringLiteral("ghp_") + QStringLiteral("wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx");
    const QString summary = QStringLiteral("'sh' exited with code 1; last output: building with key hook-key-2b9f0c7d1e | "
                                           "export GITHUB_TOKEN=") + token
                            + QStringLiteral(" | compiling src/main.cpp | linking | error: undefined reference to `foo'");
    const QString reason = QStringLiteral("stage 'build' failed 1 time(s): make exited with code 2; last output: make[1]: "
                                          "Leaving directory '/srv/work' | make: *** [all] Error 2");
    QString findings;
    while (findings.size() < 16 * 1024)
        findings += QStringLiteral("- src/parser.cpp:%1: the loop does not handle the empty input; add a test for it.\n")
                        .arg(findings.size());
    struct Case {
        const char *name;
        QString text;
    };
    const Case cases[] = {{"summary+token", summary}, {"reason", reason}, {"findings-16k", findings}};
    std::printf("%-14s %10s %10s %8s\n", "text", "redact us", "mask us", "ratio");
    for (const Case &c : cases) {
        const double redact = microsPerCall(rounds, [&] { return Redaction::redact(c.text); });
        const double mask = microsPerCall(rounds, [&] { return Redaction::mask(c.text); });
        std::printf("%-14s %10.2f %10.2f %8.1f\n", c.name, redact, mask, mask / redact);
    }
    Redaction::installFreeTextMasker(nullptr);
    return 0;
}
