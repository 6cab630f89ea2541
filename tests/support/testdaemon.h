// SPDX-License-Identifier: Apache-2.0
#pragma once

// What daemon-level tests (a real `sluice serve` and real CLI commands as child processes)
// set up around the daemon: the store section of its host file, for a SQLite file or a fresh
// database on the PostgreSQL test server, and a project repository to work on.

#include "store/store.h"

#include <sluice/testsupport.h>

#include <QByteArray>
#include <QDir>
#include <QProcess>
#include <QStringList>
#include <QString>

namespace Sluice::Test {

/// What one `sluice` command, run as a child process, did.
struct CliRun {
    int exitCode = -1;
    QString out;
    QString err;
};

/// Runs @p executable (the `sluice` the test was built with) with @p arguments; a command that
/// does not finish in a minute ends the test run.
inline CliRun runCli(const QString &executable, const QStringList &arguments)
{
    QProcess p;
    p.start(executable, arguments);
    if (!p.waitForFinished(60000))
        qFatal("sluice %s did not finish", qPrintable(arguments.join(QLatin1Char(' '))));
    return CliRun{p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()), QString::fromUtf8(p.readAllStandardError())};
}

/// The `store:` section of a host file for @p settings (as Test::freshStore() fills them).
inline QByteArray hostStoreSection(const StoreSettings &settings)
{
    if (settings.driver == StoreSettings::Driver::Sqlite)
        return "store: {driver: sqlite, sqlite: {path: " + settings.sqlitePath.toUtf8() + "}}\n";
    return "store: {driver: postgresql, postgresql: {host: " + settings.host.toUtf8() + ", port: "
           + QByteArray::number(settings.port) + ", database: " + settings.database.toUtf8() + ", user: "
           + settings.user.toUtf8() + "}}\n";
}

/// A bare repository at @p path whose main branch holds one commit (a README).
inline bool seededBareRepository(const QString &path)
{
    const QString seed = path + QStringLiteral(".seed");
    QDir().mkpath(seed);
    QFile readme(seed + QStringLiteral("/README.md"));
    if (!readme.open(QIODevice::WriteOnly) || readme.write("# test\n") != 7)
        return false;
    readme.close();
    const QList<QStringList> steps = {
        {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), path},
        {QStringLiteral("-C"), seed, QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")},
        {QStringLiteral("-C"), seed, QStringLiteral("add"), QStringLiteral("README.md")},
        {QStringLiteral("-C"), seed, QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
         QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")},
        {QStringLiteral("-C"), seed, QStringLiteral("push"), QStringLiteral("-q"), path, QStringLiteral("main")},
    };
    for (const QStringList &step : steps) {
        if (runGit(step).code != 0)
            return false;
    }
    return QDir(seed).removeRecursively();
}

} // namespace Sluice::Test
