// SPDX-License-Identifier: Apache-2.0
#pragma once

// The subcommands of the `sluice` executable and what they share.

#include "config/hostconfig.h"
#include "pluginhost/pluginloader.h"

#include <QCommandLineParser>
#include <QJsonDocument>
#include <QString>
#include <QStringList>

#include <memory>

namespace Sluice::Security {
class ScannerTextMasker;
}

namespace Sluice::Cli {

/// Exit codes: 0 success, 1 the checked thing is wrong or an operation failed, 2 usage error.
/// TakenOver: `sluice serve` found its node taken over by survivors (EX_TEMPFAIL: start it again).
enum ExitCode { Success = 0, Failure = 1, UsageError = 2, TakenOver = 75 };

struct Command {
    const char *name;
    const char *summary;
    int (*run)(const QStringList &arguments); ///< arguments[0] is "sluice <name>"
    /// Stores, sends or logs text from agents and commands: installs the scanner-backed
    /// free-text masker (Redaction::mask) before it runs.
    bool masksFreeText = false;
};

/// Every subcommand, in the order `sluice --help` lists them.
const QList<Command> &commands();

int runVersion(const QStringList &arguments);
int runPlugins(const QStringList &arguments);
int runCheck(const QStringList &arguments);
int runSubmit(const QStringList &arguments);
int runStatus(const QStringList &arguments);
int runQueue(const QStringList &arguments);
int runTask(const QStringList &arguments);
int runApprove(const QStringList &arguments);
int runRetry(const QStringList &arguments);
int runServe(const QStringList &arguments);
int runScan(const QStringList &arguments);
int runSweep(const QStringList &arguments);

/// Parses @p arguments with @p parser (adds --help); prints usage errors. False: exit with 2.
bool parse(QCommandLineParser &parser, const QStringList &arguments, const QString &description);
/// The common --config DIR option.
QCommandLineOption configOption();
/// The common --json option.
QCommandLineOption jsonOption();

/// The host file and the plugin catalog, as every command that touches plugins needs them.
struct HostSetup {
    Diagnostics diagnostics; ///< Problems in the host file.
    HostConfig host;
    std::unique_ptr<PluginCatalog> catalog; ///< Discovered and loaded.
};
/// Loads the host file in @p configDir (--config value or empty), applies its logging rules,
/// then discovers and loads plugins.
HostSetup setUpHost(const QString &configDir);

/// The free-text masker main() installed for this command, if any (serve reports when it is ready).
void setTextMasker(std::shared_ptr<Security::ScannerTextMasker> masker);
[[nodiscard]] std::shared_ptr<Security::ScannerTextMasker> textMasker();

/// Writes @p text and a newline to stdout, every registered secret redacted.
void printOut(const QString &text);
/// As printOut(), to stderr.
void printErr(const QString &text);
/// Writes @p document indented, every registered secret in its strings redacted.
void printJson(const QJsonDocument &document);

} // namespace Sluice::Cli
