// SPDX-License-Identifier: Apache-2.0
#include "engine/procstat.h"

#include <QDeadlineTimer>
#include <QFile>
#include <QList>
#include <QThread>

#include <csignal>

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

} // namespace Sluice
