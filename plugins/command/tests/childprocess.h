// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the command stage's tests read about the real child processes they start.

#include <QByteArray>
#include <QFile>
#include <QString>

#include <cerrno>
#include <signal.h>

namespace Sluice::Test {

inline QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

inline qint64 readPid(const QString &path)
{
    return readAll(path).trimmed().toLongLong();
}

// Gone, or a zombie waiting for an init that may not reap: either way it runs no more.
inline bool processIsGone(qint64 pid)
{
    if (::kill(pid_t(pid), 0) == -1 && errno == ESRCH)
        return true;
    const QByteArray stat = readAll(QStringLiteral("/proc/%1/stat").arg(pid));
    const int close = stat.lastIndexOf(')');
    return close > 0 && stat.size() > close + 2 && (stat.at(close + 2) == 'Z' || stat.at(close + 2) == 'X');
}

} // namespace Sluice::Test
