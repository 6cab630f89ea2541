// SPDX-License-Identifier: Apache-2.0
#include "cli.h"

#include <QJsonArray>
#include <QJsonObject>

namespace Sluice::Cli {

int runPlugins(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    if (!parse(parser, arguments,
               QStringLiteral("List every plugin found on the search path (host plugin_dirs, then "
                              "$SLUICE_PLUGIN_PATH, then the installed plugin directory) with its "
                              "kind, version, API version, path and state: loaded, or rejected/failed "
                              "with the reason.")))
        return UsageError;

    const HostSetup setup = setUpHost(parser.value(QStringLiteral("config")));
    for (const Diagnostic &d : setup.diagnostics)
        printErr(d.toString());
    const PluginCatalog &catalog = *setup.catalog;

    if (parser.isSet(QStringLiteral("json"))) {
        QJsonArray plugins;
        for (const PluginRecord &r : catalog.plugins())
            plugins.append(r.toJson());
        QJsonArray refused;
        for (const RefusedDirectory &d : catalog.refusedDirectories())
            refused.append(QJsonObject{{QStringLiteral("path"), d.path}, {QStringLiteral("reason"), d.reason}});
        printJson(QJsonDocument(QJsonObject{{QStringLiteral("searchPath"), QJsonArray::fromStringList(catalog.searchDirectories())},
                                            {QStringLiteral("refusedDirectories"), refused},
                                            {QStringLiteral("plugins"), plugins}}));
        return setup.diagnostics.isEmpty() ? Success : Failure;
    }

    QStringList lines;
    lines << QStringLiteral("Search path: %1").arg(catalog.searchDirectories().join(QStringLiteral(":")));
    for (const RefusedDirectory &d : catalog.refusedDirectories())
        lines << QStringLiteral("Refused directory %1: %2").arg(d.path, d.reason);
    const QString row = QStringLiteral("%1 %2 %3 %4 %5 %6");
    lines << row.arg(QStringLiteral("ID"), -20).arg(QStringLiteral("KIND"), -15).arg(QStringLiteral("VERSION"), -9)
                 .arg(QStringLiteral("API"), -5).arg(QStringLiteral("STATE"), -9).arg(QStringLiteral("PATH"));
    int loaded = 0;
    for (const PluginRecord &r : catalog.plugins()) {
        const bool hasMeta = r.metaData.has_value();
        QString line = row.arg(hasMeta ? r.id() : (r.declaredId.isEmpty() ? QStringLiteral("-") : r.declaredId), -20)
                           .arg(hasMeta ? pluginKindName(r.metaData->kind()) : QStringLiteral("-"), -15)
                           .arg(hasMeta ? r.metaData->version().toString() : QStringLiteral("-"), -9)
                           .arg(hasMeta ? r.metaData->apiVersion().toString() : QStringLiteral("-"), -5)
                           .arg(PluginRecord::stateName(r.state), -9)
                           .arg(r.path);
        if (!r.reason.isEmpty())
            line += QStringLiteral("\n    %1").arg(r.reason);
        if (r.state == PluginRecord::State::Loaded)
            ++loaded;
        lines << line;
    }
    lines << QStringLiteral("%1 plugin(s) loaded, %2 not loaded.").arg(loaded).arg(catalog.plugins().size() - loaded);
    printOut(lines.join(QLatin1Char('\n')));
    return setup.diagnostics.isEmpty() ? Success : Failure;
}

} // namespace Sluice::Cli
