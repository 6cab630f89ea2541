// SPDX-License-Identifier: Apache-2.0
// sluice: one executable, one subcommand per job.

#include "cli.h"
#include "logging.h"
#include "textmasker.h"

#include <sluice/version.h>

#include <QCoreApplication>

using namespace Sluice;

namespace {

void printUsage()
{
    QString text = QStringLiteral("Usage: sluice <command> [options]\n\n"
                                  "Sluice moves changes through a pipeline of stages and lets them on only through gates.\n\n"
                                  "Commands:\n");
    for (const Cli::Command &c : Cli::commands())
        text += QStringLiteral("  %1%2\n").arg(QLatin1String(c.name), -10).arg(QLatin1String(c.summary));
    text += QStringLiteral("\nRun 'sluice <command> --help' for the options of a command.");
    Cli::printOut(text);
}

} // namespace

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("sluice"));
    QCoreApplication::setApplicationVersion(QStringLiteral(SLUICE_VERSION_STRING));
    Logging::install();

    const QStringList args = QCoreApplication::arguments();
    const QString name = args.value(1);
    if (name.isEmpty() || name == QLatin1String("--help") || name == QLatin1String("-h") || name == QLatin1String("help")) {
        printUsage();
        return name.isEmpty() ? Cli::UsageError : Cli::Success;
    }
    if (name == QLatin1String("--version"))
        return Cli::runVersion({QStringLiteral("sluice version")});
    for (const Cli::Command &c : Cli::commands()) {
        if (name == QLatin1String(c.name)) {
            QStringList rest = args.mid(2);
            rest.prepend(QStringLiteral("sluice %1").arg(name));
            // The commands that store, send or log text from agents and commands mask the
            // secrets in it that nobody registered with the security gate's scanner. Its rules
            // compile on a thread of their own, started once the arguments are parsed (so
            // --help and usage errors leave at once), while the command loads its host and
            // plugins; the commands that only read the store find that text masked already
            // and never pay for the compilation.
            std::shared_ptr<Security::ScannerTextMasker> masker;
            if (c.masksFreeText) {
                masker = std::make_shared<Security::ScannerTextMasker>();
                Redaction::installFreeTextMasker(masker);
                Cli::setTextMasker(masker);
            }
            const int code = c.run(rest);
            Logging::flush(); // lines that waited for the masker, masked
            Redaction::installFreeTextMasker(nullptr);
            Cli::setTextMasker(nullptr);
            return code;
        }
    }
    Cli::printErr(QStringLiteral("sluice: unknown command '%1'. Try 'sluice --help'.").arg(name));
    return Cli::UsageError;
}
