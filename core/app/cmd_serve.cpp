// SPDX-License-Identifier: Apache-2.0
#include "cli.h"
#include "commitscan.h"

#include "daemon/daemon.h"
#include "textmasker.h"

#include <QCoreApplication>
#include <QFutureWatcher>
#include <QLoggingCategory>
#include <QtConcurrent/QtConcurrentRun>

#include <cstdio>
#include <cstdlib>

namespace Sluice::Cli {

Q_LOGGING_CATEGORY(lcServe, "sluice.core.serve", QtInfoMsg)

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
    // The free-text masker's rules compile beside the start; say when they are in use, or
    // loudly that they are not (text from agents is then withheld, not shown unmasked).
    if (const auto masker = textMasker()) {
        auto *ready = new QFutureWatcher<QString>(qApp);
        QObject::connect(ready, &QFutureWatcher<QString>::finished, qApp, [ready] {
            const QString error = ready->result();
            if (error.isEmpty())
                qCInfo(lcServe) << "secret scanner ready: text from agents and commands is masked";
            else
                qCCritical(lcServe).noquote() << "the secret scanner is not available, text from agents and commands is withheld:" << error;
            ready->deleteLater();
        });
        ready->setFuture(QtConcurrent::run([masker] {
            const auto compiled = masker->ready();
            return compiled ? QString() : compiled.error().toString();
        }));
    }
    return QCoreApplication::exec();
}

} // namespace Sluice::Cli
