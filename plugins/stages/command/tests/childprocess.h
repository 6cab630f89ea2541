// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the tests of the command stage and of the process agent launcher read about the real
// child processes they start: pid files, whether a process is gone, and — independently of
// the code under test — which processes on this machine still belong to a run, found
// through /proc.

#include <QByteArray>
#include <QDir>
#include <QFile>
#include <QString>
#include <QStringList>

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

// The cgroup v2 path of a process ("/sluice/run-12-34"), empty when it has none or is gone.
inline QString cgroupOf(qint64 pid)
{
    const QList<QByteArray> lines = readAll(QStringLiteral("/proc/%1/cgroup").arg(pid)).split('\n');
    for (const QByteArray &line : lines) {
        if (line.startsWith("0::"))
            return QString::fromUtf8(line.mid(3));
    }
    return {};
}

/// Where the cgroup v2 hierarchy is mounted ("/sys/fs/cgroup"), empty when it is not.
inline QString cgroupRoot()
{
    const QList<QByteArray> lines = readAll(QStringLiteral("/proc/self/mountinfo")).split('\n');
    for (const QByteArray &line : lines) {
        const QList<QByteArray> fields = line.split(' ');
        const int separator = fields.indexOf("-");
        if (separator > 4 && fields.size() > separator + 1 && fields.at(separator + 1) == "cgroup2")
            return QString::fromUtf8(fields.at(4));
    }
    return {};
}

/**
 * Every living process (not a zombie) that belongs to a run: its environment holds
 * @p marker, or it sits in the cgroup @p cgroup (when not empty). Each as "pid: cmdline".
 * Reads /proc directly, so it sees processes in other sessions, groups and cgroups alike.
 */
inline QStringList processesOfRun(const QByteArray &marker, const QString &cgroup = QString())
{
    QStringList found;
    const QStringList entries = QDir(QStringLiteral("/proc")).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
    for (const QString &entry : entries) {
        bool isPid = false;
        const qint64 pid = entry.toLongLong(&isPid);
        if (!isPid || processIsGone(pid))
            continue;
        const bool marked = !marker.isEmpty() && readAll(QStringLiteral("/proc/%1/environ").arg(pid)).contains(marker);
        const bool inCgroup = !cgroup.isEmpty() && cgroupOf(pid) == cgroup;
        if (marked || inCgroup) {
            QByteArray cmdline = readAll(QStringLiteral("/proc/%1/cmdline").arg(pid));
            cmdline.replace('\0', ' ');
            found.append(QStringLiteral("%1: %2").arg(pid).arg(QString::fromUtf8(cmdline.trimmed())));
        }
    }
    return found;
}

/// The descriptors a process has open, as "fd -> target".
inline QStringList descriptorsOf(qint64 pid)
{
    QStringList out;
    const QDir fds(QStringLiteral("/proc/%1/fd").arg(pid));
    const QStringList entries = fds.entryList(QDir::AllEntries | QDir::System | QDir::NoDotAndDotDot, QDir::Name);
    for (const QString &fd : entries)
        out.append(fd + QStringLiteral(" -> ") + QFile::symLinkTarget(fds.filePath(fd)));
    return out;
}

/// Kills the listed pids (a test's cleanup of whatever a failed assertion left behind).
struct KillOnExit {
    QStringList pidFiles;
    ~KillOnExit()
    {
        for (const QString &file : pidFiles) {
            if (const qint64 pid = readPid(file); pid > 1)
                ::kill(pid_t(pid), SIGKILL);
        }
    }
};

} // namespace Sluice::Test
