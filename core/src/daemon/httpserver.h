// SPDX-License-Identifier: Apache-2.0
#pragma once

// An embedded HTTP/1.1 server on GNU libmicrohttpd, driven by the Qt event loop: no thread
// of its own, so request handlers run on the thread that owns the server.

#include <sluice/error.h>

#include <QByteArray>
#include <QHash>
#include <QHostAddress>
#include <QJsonDocument>
#include <QList>
#include <QObject>
#include <QPair>
#include <QString>
#include <QUrlQuery>

#include <chrono>
#include <functional>
#include <memory>

namespace Sluice {

/// A request as a handler sees it: complete, body included.
struct HttpRequest {
    QByteArray method;                     ///< "GET", "POST", ... as sent.
    QString path;                          ///< Percent-decoded path, without the query.
    QUrlQuery query;                       ///< Query arguments, decoded ('+' is a space).
    QHash<QByteArray, QByteArray> headers; ///< Names in lower case; repeated headers joined by ", ".
    QByteArray body;
    QHostAddress remoteAddress;

    /// The value of header @p lowerCaseName, or an empty array.
    [[nodiscard]] QByteArray header(const QByteArray &lowerCaseName) const { return headers.value(lowerCaseName); }
};

/// What a handler answers.
struct HttpResponse {
    int status = 200;
    QByteArray contentType;
    QByteArray body;
    QList<QPair<QByteArray, QByteArray>> headers; ///< Extra headers, sent in this order.

    /// A JSON document (compact) with Content-Type application/json.
    [[nodiscard]] static HttpResponse json(const QJsonDocument &document, int status = 200);
    /// Text with Content-Type text/plain; charset=utf-8 unless @p contentType says otherwise.
    [[nodiscard]] static HttpResponse text(const QByteArray &body, int status = 200,
                                           const QByteArray &contentType = "text/plain; charset=utf-8");
    /// {"error": message} as JSON.
    [[nodiscard]] static HttpResponse error(int status, const QString &message);
};

/**
 * The HTTP server of the daemon.
 *
 * Requests are dispatched to routes by path prefix: the longest registered prefix that
 * matches wins, then the method picks the handler among the routes of that prefix. A prefix
 * matches the path itself and everything below it ("/api" matches "/api" and "/api/queue",
 * not "/apix"; "/webhooks/" matches everything under /webhooks/). No prefix: 404; a prefix
 * without a handler for the method: 405 with Allow. A GET handler answers HEAD too.
 *
 * Bodies are collected incrementally up to a limit (setMaxBodySize(), or per route): a
 * Content-Length above it is answered 413 before the body is read. A body without a length
 * (chunked) that grows past it is answered 413 as well, once it ends: libmicrohttpd cannot
 * answer in the middle of an upload, so the rest is read and dropped, up to twice the limit
 * (at least 128 KiB) in all; a sender that goes on past that is disconnected. A 413 closes
 * the connection. Ambiguous framing (two Content-Length headers, Content-Length with
 * Transfer-Encoding, a Content-Length that is not a number) is answered 400 and closes it too.
 *
 * Slow and greedy clients: at most connectionLimit() connections at once and
 * perClientConnectionLimit() from one address (more are refused at accept); a client must
 * send its request headers within headerTimeout() of connecting (or of the previous answer
 * on a kept-alive connection) and the whole request within requestTimeout(), or its
 * connection is closed; a connection idle for connectionTimeout() is closed as well.
 *
 * The server runs on the event loop of the thread that owns it (a QSocketNotifier on
 * libmicrohttpd's epoll descriptor and a QTimer for its timeouts). Handlers must not block.
 * A handler may call close(): it takes effect once the current request is answered.
 * Do not delete the server from a handler; use deleteLater().
 */
class HttpServer : public QObject
{
    Q_OBJECT
public:
    using Handler = std::function<HttpResponse(const HttpRequest &)>;

    /// Route body limit meaning "the server's limit" (see setMaxBodySize()).
    static constexpr qint64 ServerBodyLimit = -1;

    explicit HttpServer(QObject *parent = nullptr);
    ~HttpServer() override;

    /**
     * Starts listening on @p address and @p port (0: the system picks a free port).
     * Returns the bound port. Fails when already listening, or when the address cannot be
     * bound (the error names the address and the reason, e.g. "Address already in use").
     */
    [[nodiscard]] Result<quint16> listen(const QHostAddress &address, quint16 port);
    /// Stops listening and drops open connections. Listening again afterwards is fine.
    void close();
    [[nodiscard]] bool isListening() const;
    /// The bound port, 0 when not listening.
    [[nodiscard]] quint16 port() const;

    /**
     * Routes @p method requests under @p pathPrefix to @p handler, with the body limit
     * @p maxBodySize in bytes (ServerBodyLimit: the server's). Registering the same method
     * and prefix again replaces the handler. May be called while listening.
     */
    void route(const QByteArray &method, const QString &pathPrefix, Handler handler,
               qint64 maxBodySize = ServerBodyLimit);

    /// Body limit for routes that have none of their own. Default 1 MiB.
    void setMaxBodySize(qint64 bytes);
    [[nodiscard]] qint64 maxBodySize() const;
    /// Most connections open at once; more are refused at accept. Default 256. Applies at listen().
    void setConnectionLimit(int connections);
    [[nodiscard]] int connectionLimit() const;
    /// A connection idle for this long is closed. Default 30 s. Applies at listen().
    void setConnectionTimeout(std::chrono::seconds timeout);
    [[nodiscard]] std::chrono::seconds connectionTimeout() const;
    /// Most connections open at once from one client address; 0 (the default): no limit. Applies at listen().
    void setPerClientConnectionLimit(int connections);
    [[nodiscard]] int perClientConnectionLimit() const;
    /// Time a client has to send its request line and headers. Default 10 s (at least 100 ms).
    void setHeaderTimeout(std::chrono::milliseconds timeout);
    [[nodiscard]] std::chrono::milliseconds headerTimeout() const;
    /// Time a client has to send its whole request, body included. Default 60 s (at least 100 ms).
    void setRequestTimeout(std::chrono::milliseconds timeout);
    [[nodiscard]] std::chrono::milliseconds requestTimeout() const;

    /// Told of every request the server refuses itself for its body size (413, or the
    /// connection dropped past twice the limit), with the request's path, before any handler
    /// would have seen it: lets the owner count refusals by route (webhooks). Called on the
    /// server's thread (the one it was created on); must not call back into it.
    using TooLargeObserver = std::function<void(const QString &path)>;
    void setTooLargeObserver(TooLargeObserver observer);

private:
    struct Data;
    std::unique_ptr<Data> d;
};

} // namespace Sluice
