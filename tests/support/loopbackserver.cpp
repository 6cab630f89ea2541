// SPDX-License-Identifier: Apache-2.0
#include "loopbackserver.h"

#include <QElapsedTimer>
#include <QHostAddress>
#include <QPointer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QThread>
#include <QTimer>

namespace Sluice::Test {

namespace {

QByteArray reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

} // namespace

LoopbackAnswer LoopbackAnswer::json(const QJsonDocument &doc, int status)
{
    LoopbackAnswer a;
    a.status = status;
    a.body = doc.toJson(QJsonDocument::Compact);
    a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
    return a;
}

class LoopbackServer::Worker : public QObject
{
public:
    Worker(Handler handler, std::function<void()> answered)
        : m_handler(std::move(handler))
        , m_answered(std::move(answered))
    {
    }

    quint16 listen()
    {
        m_clock.start();
        m_tcp = new QTcpServer(this);
        m_tcp->setMaxPendingConnections(1024);
        if (!m_tcp->listen(QHostAddress::LocalHost, 0))
            return 0;
        QObject::connect(m_tcp, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket *socket = m_tcp->nextPendingConnection())
                adopt(socket);
        });
        return m_tcp->serverPort();
    }

private:
    struct Connection {
        QByteArray buffer;
        bool busy = false;
    };

    void adopt(QTcpSocket *socket)
    {
        socket->setParent(this);
        auto *conn = new Connection;
        QObject::connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
        QObject::connect(socket, &QObject::destroyed, this, [conn] { delete conn; });
        QObject::connect(socket, &QTcpSocket::readyRead, this, [this, socket, conn] {
            conn->buffer += socket->readAll();
            serveNext(socket, conn);
        });
    }

    void serveNext(QTcpSocket *socket, Connection *conn)
    {
        if (conn->busy)
            return;
        const int end = conn->buffer.indexOf("\r\n\r\n");
        if (end < 0)
            return;
        const QList<QByteArray> lines = conn->buffer.left(end).split('\n');
        const QList<QByteArray> requestLine = lines.value(0).trimmed().split(' ');
        LoopbackRequest req;
        for (int i = 1; i < lines.size(); ++i) {
            const int colon = lines[i].indexOf(':');
            if (colon > 0)
                req.headers.insert(lines[i].left(colon).trimmed().toLower(), lines[i].mid(colon + 1).trimmed());
        }
        const int length = req.headers.value("content-length").toInt();
        if (conn->buffer.size() < end + 4 + length)
            return;
        req.method = requestLine.value(0);
        const QUrl target(QString::fromUtf8(requestLine.value(1)));
        req.path = target.path(QUrl::FullyDecoded);
        req.query = QUrlQuery(target.query(QUrl::FullyEncoded));
        req.body = conn->buffer.mid(end + 4, length);
        req.receivedMs = m_clock.elapsed();
        conn->buffer.remove(0, end + 4 + length);
        const bool close = req.headers.value("connection").toLower() == "close";

        const LoopbackAnswer answer = m_handler(req);
        if (answer.hang)
            return; // keeps the connection busy forever
        if (answer.drop) {
            socket->abort(); // no answer at all, and no further requests on this connection
            return;
        }
        conn->busy = true;
        QPointer<QTcpSocket> guard(socket);
        auto respond = [this, guard, conn, answer, close] {
            if (m_answered)
                m_answered();
            if (!guard)
                return;
            QByteArray out = "HTTP/1.1 " + QByteArray::number(answer.status) + ' ' + reason(answer.status) + "\r\n";
            for (const auto &h : answer.headers)
                out += h.first + ": " + h.second + "\r\n";
            const int declared = answer.truncate ? int(answer.body.size()) + 100 : int(answer.body.size());
            out += "Content-Length: " + QByteArray::number(declared) + "\r\n";
            out += close ? "Connection: close\r\n\r\n" : "\r\n";
            out += answer.body;
            guard->write(out);
            if (answer.truncate || close) {
                guard->disconnectFromHost();
                return;
            }
            conn->busy = false;
            serveNext(guard, conn);
        };
        if (answer.delay.count() > 0)
            QTimer::singleShot(answer.delay, this, respond);
        else
            respond();
    }

    Handler m_handler;
    std::function<void()> m_answered;
    QTcpServer *m_tcp = nullptr;
    QElapsedTimer m_clock;
};

LoopbackServer::LoopbackServer(const QString &name)
    : m_thread(std::make_unique<QThread>())
{
    m_thread->setObjectName(name);
}

LoopbackServer::~LoopbackServer()
{
    if (m_worker)
        QMetaObject::invokeMethod(m_worker, &QObject::deleteLater);
    m_thread->quit();
    m_thread->wait();
}

Result<void> LoopbackServer::start(Handler handler, std::function<void()> answered)
{
    if (m_worker)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("%1 already started").arg(m_thread->objectName()));
    m_worker = new Worker(std::move(handler), std::move(answered));
    m_worker->moveToThread(m_thread.get());
    m_thread->start();
    quint16 port = 0;
    QMetaObject::invokeMethod(m_worker, [this, &port] { port = m_worker->listen(); }, Qt::BlockingQueuedConnection);
    if (port == 0)
        return fail(ErrorCode::Io, QStringLiteral("%1 could not listen on 127.0.0.1").arg(m_thread->objectName()));
    m_port = port;
    return {};
}

QUrl LoopbackServer::url() const
{
    return QUrl(QStringLiteral("http://127.0.0.1:%1/").arg(m_port));
}

} // namespace Sluice::Test
