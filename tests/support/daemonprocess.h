// SPDX-License-Identifier: Apache-2.0
#pragma once

// `sluice serve` as a child process of a test: started, waited for until it says it is ready,
// its output collected, its HTTP port read from the state directory. It is a QProcess, so a
// test kills, signals and waits for it as for any child.

#include <QByteArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QList>
#include <QPair>
#include <QProcess>
#include <QString>

#include <chrono>

class QNetworkAccessManager;

namespace Sluice::Test {

/// An answer of the daemon's HTTP interface.
struct HttpReply {
    int status = 0;
    QByteArray body;
    [[nodiscard]] QJsonObject json() const { return QJsonDocument::fromJson(body).object(); }
};

class DaemonProcess : public QProcess
{
public:
    explicit DaemonProcess(QString executable, QObject *parent = nullptr);
    ~DaemonProcess() override;

    /**
     * Starts `sluice serve --config @p configDir` and waits until it logs "ready: node". The
     * log starts empty. When the host file's state directory is `state`, the HTTP port it
     * wrote is read (port() stays 0 otherwise). False — with the log as a warning — when it
     * did not start, exited or was not ready in time.
     */
    [[nodiscard]] bool serve(const QString &configDir, std::chrono::milliseconds timeout = std::chrono::seconds(30));

    /// Everything it wrote (stdout and stderr merged) since the last serve() or clearLog().
    [[nodiscard]] const QByteArray &log() const { return m_log; }
    void clearLog() { m_log.clear(); }
    [[nodiscard]] quint16 port() const { return m_port; }

    /**
     * Sends @p method @p path (with @p body as JSON and @p headers) to the daemon's HTTP port
     * and waits for the answer (at most 20 s; no answer ends the test run).
     */
    [[nodiscard]] HttpReply request(const QByteArray &method, const QString &path, const QByteArray &body = {},
                                    const QList<QPair<QByteArray, QByteArray>> &headers = {});

private:
    QNetworkAccessManager *m_network = nullptr;
    QString m_executable;
    QByteArray m_log;
    quint16 m_port = 0;
};

} // namespace Sluice::Test
