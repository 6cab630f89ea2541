// SPDX-License-Identifier: Apache-2.0
#include "cli.h"

#include "logging.h"
#include "textmasker.h"

#include <sluice/secrets.h>

#include <cstdio>
#include <cstdlib>

namespace Sluice::Cli {

const QList<Command> &commands()
{
    static const QList<Command> all = {
        {"serve", "Run the daemon: the worker, the HTTP interface, the pipeline", runServe, true},
        {"check", "Validate the host file, every project file and the plugins they use", runCheck},
        {"plugins", "List discovered plugins with kind, version and load state", runPlugins},
        // submit stores what the operator typed and Sluice's own words, nothing from an
        // agent: registered secrets are redacted, the scanner is not needed (and not waited for).
        {"submit", "Create a task by hand in a project's first stage", runSubmit},
        {"status", "Show every task: project, stage, status", runStatus},
        {"queue", "Show the job queue: counts, running and recent jobs", runQueue},
        {"task", "Show one task: stage, why it waits, gate verdicts, history", runTask},
        {"approve", "Send an approval signal for a task waiting in a stage", runApprove, true},
        // retry, like submit, stores the operator's reason and Sluice's own words only.
        {"retry", "Retry a blocked task from the stage it is blocked in (with a reason)", runRetry},
        {"scan", "Scan files or a git range for secrets (the security gate's scanner)", runScan},
        {"sweep", "Run one pass of a project's sweeper instance (e.g. ci-umbrella); non-zero on any failure", runSweep, true},
        {"version", "Print the version of sluice and its SDK", runVersion},
    };
    return all;
}

bool parse(QCommandLineParser &parser, const QStringList &arguments, const QString &description)
{
    parser.setApplicationDescription(description);
    parser.addHelpOption();
    if (!parser.parse(arguments)) {
        printErr(QStringLiteral("%1: %2\nTry '%1 --help'.").arg(arguments.value(0), parser.errorText()));
        return false;
    }
    if (parser.isSet(QStringLiteral("help"))) {
        // Qt names the executable's path in the usage line; people typed "sluice <command>".
        QString help = parser.helpText();
        const int end = help.indexOf(QLatin1Char('\n'));
        const QString usage = help.left(end);
        help.replace(0, end, QStringLiteral("Usage: %1%2").arg(arguments.value(0), usage.mid(usage.indexOf(QLatin1String(" [")))));
        printOut(help.trimmed());
        std::exit(Success);
    }
    // The command will run: its free-text masker (if it has one) starts compiling now.
    if (const auto masker = textMasker())
        masker->warmUp();
    return true;
}

QCommandLineOption configOption()
{
    return QCommandLineOption(QStringLiteral("config"),
                              QStringLiteral("Configuration directory (default: $SLUICE_CONFIG_DIR, else /etc/sluice)."),
                              QStringLiteral("DIR"));
}

QCommandLineOption jsonOption()
{
    return QCommandLineOption(QStringLiteral("json"), QStringLiteral("Print JSON for programs."));
}

HostSetup setUpHost(const QString &configDir)
{
    HostSetup setup;
    setup.host = HostConfig::load(HostConfig::resolveConfigDir(configDir), setup.diagnostics);
    Logging::applyRules(setup.host.loggingRules);
    setup.catalog = std::make_unique<PluginCatalog>(PluginSearchPath::standard(setup.host.pluginDirs),
                                                    TrustedOwners::forServiceUser(setup.host.serviceUser));
    setup.catalog->discover();
    setup.catalog->loadAll();
    return setup;
}

namespace {
std::shared_ptr<Security::ScannerTextMasker> &installedMasker()
{
    static std::shared_ptr<Security::ScannerTextMasker> masker;
    return masker;
}
} // namespace

void setTextMasker(std::shared_ptr<Security::ScannerTextMasker> masker)
{
    installedMasker() = std::move(masker);
}

std::shared_ptr<Security::ScannerTextMasker> textMasker()
{
    return installedMasker();
}

void printOut(const QString &text)
{
    const QByteArray bytes = Redaction::redact(text).toUtf8() + '\n';
    std::fwrite(bytes.constData(), 1, std::size_t(bytes.size()), stdout);
}

void printErr(const QString &text)
{
    const QByteArray bytes = Redaction::redact(text).toUtf8() + '\n';
    std::fwrite(bytes.constData(), 1, std::size_t(bytes.size()), stderr);
}

void printJson(const QJsonDocument &document)
{
    // Per string before it is written: a secret holding a character JSON escapes (a quote, a
    // backslash) would not be found again in the written text.
    const QJsonDocument redacted = document.isArray() ? QJsonDocument(Redaction::redactJson(QJsonValue(document.array())).toArray())
                                                      : QJsonDocument(Redaction::redactJson(document.object()));
    printOut(QString::fromUtf8(redacted.toJson(QJsonDocument::Indented)).trimmed());
}

} // namespace Sluice::Cli
