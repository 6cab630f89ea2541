// SPDX-License-Identifier: Apache-2.0
#include "daemonprocess.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QFile>

namespace Sluice::Test {

DaemonProcess::DaemonProcess(QString executable, QObject *parent)
    : QProcess(parent)
    , m_executable(std::move(executable))
{
    setProcessChannelMode(QProcess::MergedChannels);
    connect(this, &QProcess::readyRead, this, [this] { m_log += readAll(); });
}

DaemonProcess::~DaemonProcess()
{
    if (state() != QProcess::NotRunning) {
        kill();
        waitForFinished(5000);
    }
}

bool DaemonProcess::serve(const QString &configDir, std::chrono::milliseconds timeout)
{
    const QString portFile = configDir + QStringLiteral("/state/http.port");
    QFile::remove(portFile);
    m_log.clear();
    m_port = 0;
    start(m_executable, {QStringLiteral("serve"), QStringLiteral("--config"), configDir});
    if (!waitForStarted(10000)) {
        qWarning("sluice serve did not start: %s", qPrintable(errorString()));
        return false;
    }
    const QDeadlineTimer deadline(timeout);
    while (!m_log.contains("ready: node") && state() != QProcess::NotRunning && !deadline.hasExpired()) {
        waitForReadyRead(50);
        QCoreApplication::processEvents();
    }
    if (!m_log.contains("ready: node")) {
        qWarning("sluice serve did not become ready:\n%s", m_log.constData());
        return false;
    }
    QFile f(portFile);
    if (f.open(QIODevice::ReadOnly))
        m_port = quint16(f.readAll().trimmed().toUInt());
    return true;
}

} // namespace Sluice::Test
