// SPDX-License-Identifier: Apache-2.0
#include "gitrun.h"

#include <QProcess>
#include <QProcessEnvironment>
#include <QTimer>

#include <memory>
#include <utility>

namespace Sluice::Forges {

void runGit(const QString &git, const QString &repository, const QStringList &arguments, int timeoutMs, QObject *owner,
            std::function<void(Result<GitResult>)> done)
{
    auto *process = new QProcess(owner);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    // Merges made here are made by sluice, whatever the service user's git configuration says.
    env.insert(QStringLiteral("GIT_AUTHOR_NAME"), QStringLiteral("sluice"));
    env.insert(QStringLiteral("GIT_AUTHOR_EMAIL"), QStringLiteral("sluice@localhost"));
    env.insert(QStringLiteral("GIT_COMMITTER_NAME"), QStringLiteral("sluice"));
    env.insert(QStringLiteral("GIT_COMMITTER_EMAIL"), QStringLiteral("sluice@localhost"));
    env.insert(QStringLiteral("GIT_TERMINAL_PROMPT"), QStringLiteral("0"));
    // Reference updates the host makes are marked as Sluice's in the reflog (rebase, fetch):
    // the host tells an agent's writes to the project's repository from its own by this
    // (docs/adr/0013-task-working-copies.md).
    env.insert(QStringLiteral("GIT_REFLOG_ACTION"), QStringLiteral("sluice"));
    process->setProcessEnvironment(env);
    process->setProgram(git);
    process->setArguments(QStringList{QStringLiteral("--git-dir"), repository} + arguments);
    const QString what = QStringLiteral("git %1").arg(arguments.value(0));
    auto finished = std::make_shared<bool>(false);
    // Destroying the owner kills the process, and QProcess reports that from its destructor:
    // by then the owner is half gone, so nothing may be called.
    QObject::connect(owner, &QObject::destroyed, process, [process, finished] {
        *finished = true;
        process->disconnect();
    });
    auto *timer = new QTimer(process);
    timer->setSingleShot(true);
    QObject::connect(timer, &QTimer::timeout, process, [process, finished, done, what, timeoutMs] {
        if (std::exchange(*finished, true))
            return;
        process->kill();
        process->deleteLater();
        done(fail(ErrorCode::Timeout, QStringLiteral("%1 did not finish within %2 ms").arg(what).arg(timeoutMs)));
    });
    QObject::connect(process, &QProcess::errorOccurred, process, [process, finished, done, what](QProcess::ProcessError error) {
        if (error != QProcess::FailedToStart || std::exchange(*finished, true))
            return;
        process->deleteLater();
        done(fail(ErrorCode::Io, QStringLiteral("%1 could not start: %2").arg(what, process->errorString())));
    });
    QObject::connect(process, qOverload<int, QProcess::ExitStatus>(&QProcess::finished), process,
                     [process, finished, done, what](int code, QProcess::ExitStatus status) {
                         if (std::exchange(*finished, true))
                             return;
                         process->deleteLater();
                         if (status != QProcess::NormalExit)
                             return done(fail(ErrorCode::Io, QStringLiteral("%1 crashed").arg(what)));
                         done(GitResult{code, process->readAllStandardOutput(), process->readAllStandardError()});
                     });
    timer->start(timeoutMs);
    process->start();
}

} // namespace Sluice::Forges
