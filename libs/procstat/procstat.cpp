// SPDX-License-Identifier: Apache-2.0
#include "procstat.h"

#include <QDeadlineTimer>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QList>
#include <QThread>

#include <csignal>

#include <fcntl.h>
#include <unistd.h>

namespace Sluice {

std::optional<ProcStat> readProcStat(qint64 pid)
{
    if (pid <= 0)
        return std::nullopt;
    QFile file(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!file.open(QIODevice::ReadOnly))
        return std::nullopt;
    const QByteArray content = file.readAll();
    // The command name (field 2) is in parentheses and may contain anything, ')' included.
    const int close = content.lastIndexOf(')');
    if (close < 0)
        return std::nullopt;
    const QList<QByteArray> fields = content.mid(close + 1).simplified().split(' ');
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    if (fields.size() < 20 || fields.at(0).isEmpty())
        return std::nullopt;
    ProcStat stat;
    stat.state = fields.at(0).at(0);
    bool groupOk = false;
    bool ticksOk = false;
    stat.processGroup = fields.at(2).toLongLong(&groupOk);
    stat.startTicks = fields.at(19).toULongLong(&ticksOk);
    if (!groupOk || !ticksOk)
        return std::nullopt;
    return stat;
}

bool isSameLiveProcess(qint64 pid, quint64 startTicks)
{
    const auto stat = readProcStat(pid);
    return stat && startTicks != 0 && stat->startTicks == startTicks && stat->state != 'Z' && stat->state != 'X';
}

bool stopProcessGroup(qint64 pid, quint64 startTicks, std::chrono::milliseconds grace)
{
    if (pid <= 1 || !isSameLiveProcess(pid, startTicks))
        return false;
    const auto stat = readProcStat(pid);
    // The agent leads its own group (the launcher makes it a session leader); anything else
    // gets the signal alone rather than a group that is not its own.
    const pid_t target = stat && stat->processGroup == pid ? -pid_t(pid) : pid_t(pid);
    ::kill(target, SIGTERM);
    QDeadlineTimer deadline(grace);
    while (isSameLiveProcess(pid, startTicks) && !deadline.hasExpired())
        QThread::msleep(50);
    // The group's other members get SIGKILL even when the leader left in time.
    ::kill(target, SIGKILL);
    QDeadlineTimer gone(2000);
    while (isSameLiveProcess(pid, startTicks) && !gone.hasExpired())
        QThread::msleep(20);
    return true;
}

QList<qint64> processesWritingTo(const QString &path)
{
    QList<qint64> out;
    const QByteArray target = QFile::encodeName(QFileInfo(path).canonicalFilePath());
    if (target.isEmpty())
        return out;
    const QStringList pids = QDir(QStringLiteral("/proc")).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
    for (const QString &name : pids) {
        bool ok = false;
        const qint64 pid = name.toLongLong(&ok);
        if (!ok || pid <= 0)
            continue;
        const QString fdDir = QStringLiteral("/proc/%1/fd").arg(pid);
        const QStringList fds = QDir(fdDir).entryList(QDir::AllEntries | QDir::System | QDir::Hidden | QDir::NoDotAndDotDot);
        for (const QString &fd : fds) {
            char link[4096];
            const ssize_t length = ::readlink(QFile::encodeName(fdDir + QLatin1Char('/') + fd).constData(), link, sizeof link);
            if (length <= 0 || QByteArray(link, int(length)) != target)
                continue;
            // fdinfo's "flags:" is octal; only a descriptor opened for writing counts.
            QFile info(QStringLiteral("/proc/%1/fdinfo/%2").arg(pid).arg(fd));
            if (!info.open(QIODevice::ReadOnly))
                continue;
            bool writing = false;
            for (const QByteArray &line : info.readAll().split('\n')) {
                if (line.startsWith("flags:")) {
                    bool parsed = false;
                    const int flags = line.mid(6).trimmed().toInt(&parsed, 8);
                    writing = parsed && (flags & O_ACCMODE) != O_RDONLY;
                }
            }
            if (writing) {
                out.append(pid);
                break;
            }
        }
    }
    return out;
}

QString exitStatusFile(const QString &logPath)
{
    return logPath + QStringLiteral(".exit");
}

std::optional<int> recordedExitStatus(const QString &statusFile)
{
    QFile file(statusFile);
    if (!file.open(QIODevice::ReadOnly))
        return std::nullopt;
    bool ok = false;
    const int status = file.readAll().trimmed().toInt(&ok);
    return ok && status >= 0 && status < 256 ? std::optional<int>(status) : std::nullopt;
}

} // namespace Sluice
