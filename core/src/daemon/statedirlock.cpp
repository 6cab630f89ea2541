// SPDX-License-Identifier: Apache-2.0
#include "daemon/statedirlock.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QSysInfo>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace Sluice {

StateDirLock::~StateDirLock()
{
    if (m_fd >= 0)
        ::close(m_fd); // the lock goes with the descriptor
}

Result<void> StateDirLock::acquire(const QString &stateDir, const QString &node)
{
    if (!QDir().mkpath(stateDir))
        return fail(ErrorCode::Io, QStringLiteral("cannot create the state directory %1").arg(stateDir));
    m_path = QDir(stateDir).filePath(QStringLiteral("sluice.lock"));
    const QByteArray path = QFile::encodeName(m_path);
    const int fd = ::open(path.constData(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(ErrorCode::Io, QStringLiteral("cannot open %1").arg(m_path), QString::fromLocal8Bit(std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int error = errno;
        QByteArray holder(256, '\0');
        const ssize_t n = ::pread(fd, holder.data(), holder.size() - 1, 0);
        ::close(fd);
        if (error != EWOULDBLOCK)
            return fail(ErrorCode::Io, QStringLiteral("cannot lock %1").arg(m_path), QString::fromLocal8Bit(std::strerror(error)));
        const QStringList parts = QString::fromUtf8(holder.left(n > 0 ? int(n) : 0)).trimmed().split(QLatin1Char(' '));
        return fail(ErrorCode::Conflict,
                    QStringLiteral("the state directory %1 is in use by another sluice serve: pid %2 on host %3 (node %4), which holds %5; "
                                   "one daemon per state directory and node name")
                        .arg(stateDir, parts.value(0, QStringLiteral("?")), parts.value(1, QStringLiteral("?")),
                             parts.value(2, QStringLiteral("?")), m_path));
    }
    const QByteArray text = QByteArray::number(QCoreApplication::applicationPid()) + ' ' + QSysInfo::machineHostName().toUtf8() + ' '
                            + node.toUtf8() + '\n';
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.constData(), size_t(text.size()), 0) != text.size()) {
        const int error = errno;
        ::close(fd);
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(m_path), QString::fromLocal8Bit(std::strerror(error)));
    }
    m_fd = fd;
    return {};
}

} // namespace Sluice
