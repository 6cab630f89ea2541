// SPDX-License-Identifier: Apache-2.0
#pragma once

// For tests that drive tasks through the engine: a seeded git repository for the project,
// files written whole, and waiting for one advance to end.

#include "engine/engine.h"

#include <QDir>
#include <QEventLoop>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QString>
#include <QStringList>

namespace Sluice::Test {

inline AdvanceRun::Outcome wait(AdvanceRun *run)
{
    AdvanceRun::Outcome outcome = AdvanceRun::Outcome::Failed;
    QEventLoop loop;
    QObject::connect(run, &AdvanceRun::finished, &loop, [&](AdvanceRun *r) {
        outcome = r->outcome();
        loop.quit();
    });
    loop.exec();
    return outcome;
}

inline void writeFile(const QString &path, const QByteArray &content)
{
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate))
        qFatal("cannot write %s", qPrintable(path));
    f.write(content);
}

// Seeds a bare repository with one commit on main.
inline bool makeRepository(const QString &path)
{
    auto git = [](const QStringList &args) {
        QProcess p;
        p.start(QStringLiteral("git"), args);
        return p.waitForFinished(30000) && p.exitCode() == 0;
    };
    const QString seed = path + QStringLiteral(".seed");
    writeFile(seed + QStringLiteral("/README"), "seed\n");
    return git({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), path})
           && git({QStringLiteral("-C"), seed, QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")})
           && git({QStringLiteral("-C"), seed, QStringLiteral("add"), QStringLiteral("README")})
           && git({QStringLiteral("-C"), seed, QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"),
                   QStringLiteral("user.email=t@t"), QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")})
           && git({QStringLiteral("-C"), seed, QStringLiteral("push"), QStringLiteral("-q"), path, QStringLiteral("main")});
}

} // namespace Sluice::Test
