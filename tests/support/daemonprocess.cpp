// SPDX-License-Identifier: Apache-2.0
#include "daemonprocess.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QEventLoop>
#include <QFile>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QTimer>
#include <QUrl>

namespace Sluice::Test {

DaemonProcess::DaemonProcess(QString executable, QObject *parent)
    : QProcess(parent)
    , m_network(new QNetworkAccessManager(this))
    , m_executable(std::move(executable))
{
    setProcessChannelMode(QProcess::MergedChannels);
    connect(this, &QProcess::readyRead, this, [this] {
        const QByteArray chunk = readAll();
        m_log += chunk;
        // For chasing a failure that ends the test before it can print the log (a function
        // timeout, a crash): every daemon's output also goes to this file.
        static const QString copy = qEnvironmentVariable("SLUICE_TEST_DAEMON_LOG");
        if (!copy.isEmpty()) {
            QFile file(copy);
            if (file.open(QIODevice::Append))
                file.write(chunk);
        }
    });
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

HttpReply DaemonProcess::request(const QByteArray &method, const QString &path, const QByteArray &body,
                                 const QList<QPair<QByteArray, QByteArray>> &headers)
{
    QNetworkRequest r(QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(m_port).arg(path)));
    r.setHeader(QNetworkRequest::ContentTypeHeader, QByteArray("application/json"));
    for (const auto &[name, value] : headers)
        r.setRawHeader(name, value);
    QNetworkReply *reply = m_network->sendCustomRequest(r, method, body);
    if (!reply->isFinished()) {
        QEventLoop loop;
        QTimer deadline;
        deadline.setSingleShot(true);
        connect(reply, &QNetworkReply::finished, &loop, &QEventLoop::quit);
        connect(&deadline, &QTimer::timeout, &loop, &QEventLoop::quit);
        deadline.start(20000);
        loop.exec();
    }
    if (!reply->isFinished())
        qFatal("no answer to %s %s", method.constData(), qPrintable(path));
    HttpReply out{reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt(), reply->readAll()};
    reply->deleteLater();
    return out;
}

} // namespace Sluice::Test
