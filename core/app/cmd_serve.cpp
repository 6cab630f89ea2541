// SPDX-License-Identifier: Apache-2.0
#include "cli.h"
#include "commitscan.h"

#include "daemon/daemon.h"

#include <QCoreApplication>

#include <cstdio>
#include <cstdlib>

namespace Sluice::Cli {

int runServe(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption({QStringLiteral("exit-when-idle"),
                      QStringLiteral("Exit once no job is queued or running (demos and tests; a service never sets this).")});
    if (!parse(parser, arguments,
               QStringLiteral("Run the daemon: load plugins and projects, recover interrupted jobs, serve HTTP, run the "
                              "job worker. Tells systemd READY=1 when started (Type=notify). SIGTERM stops it, SIGHUP "
                              "reloads project files.")))
        return UsageError;

    Diagnostics diagnostics;
    auto host = HostRuntime::open(parser.value(QStringLiteral("config")), diagnostics);
    for (const Diagnostic &d : diagnostics)
        printErr(d.toString());
    if (!host) {
        printErr(QStringLiteral("sluice serve: %1").arg(host.error().toString()));
        return Failure;
    }
    // Nothing leaves this machine unscanned: the task branches pushed to the forge.
    (*host)->engine().setCommitScanner(&Security::scanCommitRange);
    Daemon daemon(**host, Daemon::Options{parser.isSet(QStringLiteral("exit-when-idle"))});
    if (auto started = daemon.start(); !started) {
        printErr(QStringLiteral("sluice serve: %1").arg(started.error().toString()));
        return Failure;
    }
    QObject::connect(&daemon, &Daemon::stopped, qApp, &QCoreApplication::quit, Qt::QueuedConnection);
    // Taken over: end now, as after a crash — no run is cancelled (the agents of this node are
    // the survivors' now) and nothing more is written. Status 75 (EX_TEMPFAIL): a supervisor
    // restarts it, and the new start claims the node name anew.
    QObject::connect(&daemon, &Daemon::takenOver, qApp, [](const QString &why) {
        printErr(QStringLiteral("sluice serve: %1").arg(why));
        std::fflush(stderr);
        std::_Exit(TakenOver);
    });
    return QCoreApplication::exec();
}

} // namespace Sluice::Cli
