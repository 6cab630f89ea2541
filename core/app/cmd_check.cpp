// SPDX-License-Identifier: Apache-2.0
#include "cli.h"

#include "config/projectconfig.h"
#include "pluginhost/projectinstances.h"

#include <QDir>
#include <QJsonArray>
#include <QJsonObject>

namespace Sluice::Cli {

namespace {
QJsonArray toJson(const Diagnostics &diagnostics)
{
    QJsonArray out;
    for (const Diagnostic &d : diagnostics)
        out.append(d.toJson());
    return out;
}
} // namespace

int runCheck(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    if (!parse(parser, arguments,
               QStringLiteral("Validate the host file (sluice.yaml), every project file (projects/*.yaml) "
                              "and the plugins they use. Prints each problem as FILE:LINE:COLUMN: KEY: message "
                              "and exits 1 if there is any.")))
        return UsageError;

    const HostSetup setup = setUpHost(parser.value(QStringLiteral("config")));
    const PluginCatalog &catalog = *setup.catalog;

    Diagnostics pluginProblems;
    for (const RefusedDirectory &d : catalog.refusedDirectories())
        pluginProblems.append(Diagnostic{d.path, 0, 0, QString(), QStringLiteral("plugin directory refused: %1").arg(d.reason)});
    for (const PluginRecord &r : catalog.plugins()) {
        if (r.state == PluginRecord::State::Rejected || r.state == PluginRecord::State::Failed)
            pluginProblems.append(Diagnostic{r.path, 0, 0, QString(),
                                             QStringLiteral("plugin %1: %2").arg(PluginRecord::stateName(r.state), r.reason)});
    }

    Diagnostics listing;
    const QStringList files = setup.host.projectFiles(listing);
    ProjectSet projects = ProjectSet::load(files, catalog);
    for (ProjectSet::Entry &entry : projects.entries) {
        if (!entry.project)
            continue;
        // Creating the instances runs each factory with its settings; nothing starts.
        if (!ProjectInstances::create(*entry.project, catalog, nullptr, entry.diagnostics))
            entry.project.reset();
    }

    int refused = 0;
    for (const ProjectSet::Entry &entry : projects.entries)
        refused += entry.project ? 0 : 1;
    const bool ok = setup.diagnostics.isEmpty() && listing.isEmpty() && pluginProblems.isEmpty() && refused == 0;

    if (parser.isSet(QStringLiteral("json"))) {
        QJsonArray projectArray;
        for (const ProjectSet::Entry &entry : projects.entries) {
            projectArray.append(QJsonObject{{QStringLiteral("file"), entry.file},
                                            {QStringLiteral("id"), entry.project ? entry.project->id : QString()},
                                            {QStringLiteral("valid"), entry.project.has_value()},
                                            {QStringLiteral("errors"), toJson(entry.diagnostics)}});
        }
        printJson(QJsonDocument(QJsonObject{
            {QStringLiteral("ok"), ok},
            {QStringLiteral("configDir"), setup.host.configDir},
            {QStringLiteral("host"), QJsonObject{{QStringLiteral("file"), setup.host.file},
                                                 {QStringLiteral("present"), setup.host.filePresent},
                                                 {QStringLiteral("errors"), toJson(setup.diagnostics)}}},
            {QStringLiteral("projectDirectory"), QJsonObject{{QStringLiteral("path"), setup.host.projectDirectory()},
                                                             {QStringLiteral("errors"), toJson(listing)}}},
            {QStringLiteral("plugins"), toJson(pluginProblems)},
            {QStringLiteral("projects"), projectArray}}));
        return ok ? Success : Failure;
    }

    for (const Diagnostic &d : setup.diagnostics)
        printOut(d.toString());
    for (const Diagnostic &d : listing)
        printOut(d.toString());
    for (const Diagnostic &d : pluginProblems)
        printOut(d.toString());
    for (const ProjectSet::Entry &entry : projects.entries) {
        for (const Diagnostic &d : entry.diagnostics)
            printOut(d.toString());
    }
    if (files.isEmpty() && listing.isEmpty())
        printErr(QStringLiteral("note: no project files in %1").arg(QDir(setup.host.configDir).filePath(QStringLiteral("projects"))));
    int loaded = 0;
    for (const PluginRecord &r : catalog.plugins())
        loaded += r.state == PluginRecord::State::Loaded ? 1 : 0;
    printErr(QStringLiteral("%1: host file %2; %3 project file(s), %4 valid, %5 refused; %6 plugin(s) loaded, %7 with problems")
                 .arg(ok ? QStringLiteral("ok") : QStringLiteral("FAILED"),
                      setup.host.filePresent ? (setup.diagnostics.isEmpty() ? QStringLiteral("valid") : QStringLiteral("invalid"))
                                             : QStringLiteral("absent (defaults)"))
                 .arg(files.size())
                 .arg(files.size() - refused)
                 .arg(refused)
                 .arg(loaded)
                 .arg(pluginProblems.size()));
    return ok ? Success : Failure;
}

} // namespace Sluice::Cli
