// SPDX-License-Identifier: Apache-2.0
#include "httpserver.h"

#include <QDeadlineTimer>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QSocketNotifier>
#include <QTimer>
#include <QUrl>

#include <microhttpd.h>

#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>

Q_LOGGING_CATEGORY(lcHttp, "sluice.core.http", QtInfoMsg)

namespace Sluice {

namespace {

constexpr qint64 defaultMaxBodySize = 1024 * 1024;

struct Route {
    QByteArray method;
    QString prefix;
    HttpServer::Handler handler;
    qint64 maxBodySize = HttpServer::ServerBodyLimit;
};

// Lives in MHD's per-request slot (con_cls) from the first call of the access handler to
// the completion callback.
struct PendingRequest {
    std::shared_ptr<const Route> route;
    qint64 limit = 0;
    QByteArray body;
    bool overLimit = false;
    qint64 discarded = 0;
    bool refusalTold = false; // the too-large observer heard of this request
};

// One TCP connection, from MHD's connection-start notification to its close. The deadline
// bounds how long a client may take to send its request headers (and then the rest of the
// request): a client that trickles bytes is never idle, so MHD's idle timeout alone would let
// a few hundred of them hold every connection slot.
struct ConnectionState {
    MHD_Connection *connection = nullptr;
    int fd = -1;
    enum class Phase { Headers, Body, Answering } phase = Phase::Headers;
    QDeadlineTimer deadline;
    bool cut = false; // shut down for missing its deadline
};

struct HeaderCount {
    int contentLength = 0;
    int transferEncoding = 0;
};

MHD_Result countFramingHeaders(void *cls, MHD_ValueKind, const char *key, size_t, const char *, size_t)
{
    auto *count = static_cast<HeaderCount *>(cls);
    if (::strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        ++count->contentLength;
    else if (::strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        ++count->transferEncoding;
    return MHD_YES;
}

// A request whose framing is ambiguous gets no second request on this connection either:
// a proxy in front might have read its body differently (request smuggling).
HttpResponse badFraming(const QString &why)
{
    HttpResponse response = HttpResponse::error(400, why);
    response.headers.append({QByteArrayLiteral("Connection"), QByteArrayLiteral("close")});
    return response;
}

bool prefixMatches(const QString &prefix, const QString &path)
{
    if (!path.startsWith(prefix))
        return false;
    return path.size() == prefix.size() || prefix.endsWith(QLatin1Char('/')) || path.at(prefix.size()) == QLatin1Char('/');
}

QString describe(const QHostAddress &address, quint16 port)
{
    if (address.protocol() == QAbstractSocket::IPv6Protocol)
        return QStringLiteral("[%1]:%2").arg(address.toString()).arg(port);
    return QStringLiteral("%1:%2").arg(address.toString()).arg(port);
}

MHD_Result collectHeader(void *cls, MHD_ValueKind, const char *key, size_t keySize, const char *value, size_t valueSize)
{
    auto *headers = static_cast<QHash<QByteArray, QByteArray> *>(cls);
    const QByteArray name = QByteArray(key, qsizetype(keySize)).toLower();
    const QByteArray v = value ? QByteArray(value, qsizetype(valueSize)) : QByteArray();
    auto it = headers->find(name);
    if (it == headers->end())
        headers->insert(name, v);
    else
        *it += ", " + v;
    return MHD_YES;
}

MHD_Result collectArgument(void *cls, MHD_ValueKind, const char *key, size_t keySize, const char *value, size_t valueSize)
{
    // MHD hands over decoded text; encode again so QUrlQuery keeps '&', '=', '%' and '+' literal.
    auto *query = static_cast<QUrlQuery *>(cls);
    const QString k = QString::fromUtf8(QUrl::toPercentEncoding(QString::fromUtf8(key, qsizetype(keySize))));
    const QString v = value ? QString::fromUtf8(QUrl::toPercentEncoding(QString::fromUtf8(value, qsizetype(valueSize))))
                            : QString();
    query->addQueryItem(k, v);
    return MHD_YES;
}

// A sender that overran the limit gets no second request on this connection.
HttpResponse tooLarge(qint64 limit)
{
    HttpResponse response = HttpResponse::error(413, QStringLiteral("request body over %1 bytes").arg(limit));
    response.headers.append({QByteArrayLiteral("Connection"), QByteArrayLiteral("close")});
    return response;
}

QHostAddress clientAddress(MHD_Connection *connection)
{
    const MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr)
        return {};
    return QHostAddress(info->client_addr);
}

} // namespace

struct HttpServer::Data {
    HttpServer *q = nullptr;
    QList<std::shared_ptr<const Route>> routes;
    qint64 maxBodySize = defaultMaxBodySize;
    int connectionLimit = 256;
    int perClientLimit = 0;
    std::chrono::seconds connectionTimeout{30};
    std::chrono::milliseconds headerTimeout{10000};
    std::chrono::milliseconds requestTimeout{60000};
    QTimer deadlineTimer; // fires at the earliest connection deadline
    HttpServer::TooLargeObserver tooLargeObserver;

    MHD_Daemon *daemon = nullptr;
    quint16 boundPort = 0;
    std::unique_ptr<QSocketNotifier> notifier;
    QTimer timer;
    bool running = false;        // inside MHD_run(): handlers may be on the stack
    bool closeRequested = false; // close() from a handler, done when MHD_run() returns
    QByteArray startMessage;     // MHD's last complaint while starting
    bool starting = false;

    static MHD_Result access(void *cls, MHD_Connection *connection, const char *url, const char *method,
                             const char *version, const char *uploadData, size_t *uploadDataSize, void **slot);
    static void completed(void *cls, MHD_Connection *connection, void **slot, MHD_RequestTerminationCode code);
    static void log(void *cls, const char *format, va_list arguments);
    static void notifyConnection(void *cls, MHD_Connection *connection, void **socketContext,
                                 MHD_ConnectionNotificationCode code);

    ConnectionState *stateOf(MHD_Connection *connection) const
    {
        const MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return info ? static_cast<ConnectionState *>(info->socket_context) : nullptr;
    }
    void enforceDeadlines();
    void scheduleDeadlines();
    QList<ConnectionState *> connections; // owned; removed at the close notification

    MHD_Result begin(MHD_Connection *connection, const QString &path, const QByteArray &method, void **slot);
    MHD_Result finish(MHD_Connection *connection, PendingRequest *pending, const char *url, const QByteArray &method);
    MHD_Result respond(MHD_Connection *connection, const HttpResponse &response);
    void pump();
    void stop();
    unsigned int openConnections() const
    {
        const MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return info ? info->num_connections : 0;
    }
};

HttpResponse HttpResponse::json(const QJsonDocument &document, int status)
{
    return HttpResponse{status, QByteArrayLiteral("application/json"), document.toJson(QJsonDocument::Compact), {}};
}

HttpResponse HttpResponse::text(const QByteArray &body, int status, const QByteArray &contentType)
{
    return HttpResponse{status, contentType, body, {}};
}

HttpResponse HttpResponse::error(int status, const QString &message)
{
    return json(QJsonDocument(QJsonObject{{QStringLiteral("error"), message}}), status);
}

HttpServer::HttpServer(QObject *parent)
    : QObject(parent)
    , d(std::make_unique<Data>())
{
    d->q = this;
    d->timer.setSingleShot(true);
    connect(&d->timer, &QTimer::timeout, this, [this] { d->pump(); });
    d->deadlineTimer.setSingleShot(true);
    d->deadlineTimer.setTimerType(Qt::PreciseTimer);
    connect(&d->deadlineTimer, &QTimer::timeout, this, [this] { d->enforceDeadlines(); });
}

HttpServer::~HttpServer()
{
    d->stop();
}

Result<quint16> HttpServer::listen(const QHostAddress &address, quint16 port)
{
    if (d->daemon)
        return fail(ErrorCode::Conflict, QStringLiteral("the HTTP server already listens on port %1").arg(d->boundPort));
    if (address.isNull())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("cannot listen: no address given"));

    unsigned int flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    sockaddr_storage storage{};
    const bool any = address == QHostAddress(QHostAddress::Any);
    if (any || address.protocol() == QAbstractSocket::IPv6Protocol) {
        auto *in6 = reinterpret_cast<sockaddr_in6 *>(&storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        const Q_IPV6ADDR bytes = any ? QHostAddress(QHostAddress::AnyIPv6).toIPv6Address() : address.toIPv6Address();
        std::memcpy(&in6->sin6_addr, bytes.c, sizeof bytes.c);
        in6->sin6_scope_id = any ? 0 : address.scopeId().toUInt();
        flags |= any ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    } else if (address.protocol() == QAbstractSocket::IPv4Protocol) {
        auto *in4 = reinterpret_cast<sockaddr_in *>(&storage);
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        in4->sin_addr.s_addr = htonl(address.toIPv4Address());
    } else {
        return fail(ErrorCode::InvalidArgument, QStringLiteral("cannot listen on %1: not an IP address").arg(address.toString()));
    }

    d->startMessage.clear();
    d->starting = true;
    MHD_Daemon *daemon = MHD_start_daemon(
        flags, port, nullptr, nullptr, &Data::access, d.get(),
        MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr *>(&storage),
        MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(d->connectionLimit),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned int>(d->perClientLimit),
        MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned int>(d->connectionTimeout.count()),
        MHD_OPTION_NOTIFY_COMPLETED, &Data::completed, d.get(),
        MHD_OPTION_NOTIFY_CONNECTION, &Data::notifyConnection, d.get(),
        MHD_OPTION_EXTERNAL_LOGGER, &Data::log, d.get(),
        MHD_OPTION_END);
    d->starting = false;
    if (!daemon) {
        const QString reason = d->startMessage.isEmpty() ? QStringLiteral("libmicrohttpd could not start")
                                                         : QString::fromLocal8Bit(d->startMessage);
        return fail(ErrorCode::Io, QStringLiteral("cannot listen on %1: %2").arg(describe(address, port), reason));
    }

    const MHD_DaemonInfo *epoll = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
    const MHD_DaemonInfo *bound = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!epoll || epoll->epoll_fd < 0 || !bound) {
        MHD_stop_daemon(daemon);
        return fail(ErrorCode::Io, QStringLiteral("cannot listen on %1: libmicrohttpd has no epoll descriptor or port")
                                       .arg(describe(address, port)));
    }
    d->daemon = daemon;
    d->closeRequested = false;
    d->boundPort = bound->port;
    d->notifier = std::make_unique<QSocketNotifier>(epoll->epoll_fd, QSocketNotifier::Read);
    connect(d->notifier.get(), &QSocketNotifier::activated, this, [this] { d->pump(); });
    d->pump();
    qCInfo(lcHttp) << "listening on" << describe(address, d->boundPort);
    return d->boundPort;
}

void HttpServer::close()
{
    if (d->running) {
        d->closeRequested = true;
        return;
    }
    d->stop();
}

bool HttpServer::isListening() const
{
    return d->daemon && !d->closeRequested;
}

quint16 HttpServer::port() const
{
    return isListening() ? d->boundPort : 0;
}

void HttpServer::route(const QByteArray &method, const QString &pathPrefix, Handler handler, qint64 maxBodySize)
{
    auto entry = std::make_shared<const Route>(Route{method.toUpper(), pathPrefix, std::move(handler), maxBodySize});
    for (auto &existing : d->routes) {
        if (existing->method == entry->method && existing->prefix == entry->prefix) {
            existing = std::move(entry);
            return;
        }
    }
    d->routes.append(std::move(entry));
}

void HttpServer::setMaxBodySize(qint64 bytes)
{
    d->maxBodySize = std::max<qint64>(0, bytes);
}

void HttpServer::setTooLargeObserver(TooLargeObserver observer)
{
    d->tooLargeObserver = std::move(observer);
}

qint64 HttpServer::maxBodySize() const
{
    return d->maxBodySize;
}

void HttpServer::setConnectionLimit(int connections)
{
    d->connectionLimit = std::max(1, connections);
}

int HttpServer::connectionLimit() const
{
    return d->connectionLimit;
}

void HttpServer::setConnectionTimeout(std::chrono::seconds timeout)
{
    d->connectionTimeout = std::max(std::chrono::seconds(1), timeout);
}

std::chrono::seconds HttpServer::connectionTimeout() const
{
    return d->connectionTimeout;
}

void HttpServer::setPerClientConnectionLimit(int connections)
{
    d->perClientLimit = std::max(0, connections);
}

int HttpServer::perClientConnectionLimit() const
{
    return d->perClientLimit;
}

void HttpServer::setHeaderTimeout(std::chrono::milliseconds timeout)
{
    d->headerTimeout = std::max(std::chrono::milliseconds(100), timeout);
}

std::chrono::milliseconds HttpServer::headerTimeout() const
{
    return d->headerTimeout;
}

void HttpServer::setRequestTimeout(std::chrono::milliseconds timeout)
{
    d->requestTimeout = std::max(std::chrono::milliseconds(100), timeout);
}

std::chrono::milliseconds HttpServer::requestTimeout() const
{
    return d->requestTimeout;
}

void HttpServer::Data::notifyConnection(void *cls, MHD_Connection *connection, void **socketContext,
                                        MHD_ConnectionNotificationCode code)
{
    auto *self = static_cast<Data *>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        auto *state = new ConnectionState;
        state->connection = connection;
        if (const MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD))
            state->fd = info->connect_fd;
        state->deadline = QDeadlineTimer(self->headerTimeout);
        self->connections.append(state);
        *socketContext = state;
        return;
    }
    auto *state = static_cast<ConnectionState *>(*socketContext);
    self->connections.removeOne(state);
    delete state;
    *socketContext = nullptr;
}

// A client past its deadline has its socket shut down (not closed: the descriptor stays
// MHD's, so it cannot be reused under it); MHD sees the end of the stream and closes the
// connection on its next run.
void HttpServer::Data::enforceDeadlines()
{
    bool cut = false;
    for (ConnectionState *state : std::as_const(connections)) {
        if (state->cut || state->phase == ConnectionState::Phase::Answering || !state->deadline.hasExpired())
            continue;
        state->cut = true;
        cut = true;
        if (state->fd >= 0)
            ::shutdown(state->fd, SHUT_RDWR);
        qCInfo(lcHttp).noquote() << "closed a connection from" << clientAddress(state->connection).toString()
                                 << (state->phase == ConnectionState::Phase::Headers
                                         ? QStringLiteral("that did not send its request headers within %1 ms").arg(headerTimeout.count())
                                         : QStringLiteral("that did not send its request within %1 ms").arg(requestTimeout.count()));
    }
    if (cut)
        pump();
    else
        scheduleDeadlines();
}

void HttpServer::Data::scheduleDeadlines()
{
    qint64 earliest = -1;
    for (const ConnectionState *state : std::as_const(connections)) {
        if (state->cut || state->phase == ConnectionState::Phase::Answering)
            continue;
        const qint64 left = std::max<qint64>(0, state->deadline.remainingTime());
        earliest = earliest < 0 ? left : std::min(earliest, left);
    }
    if (earliest < 0)
        deadlineTimer.stop();
    else
        deadlineTimer.start(int(std::min<qint64>(earliest + 1, INT_MAX)));
}

void HttpServer::Data::pump()
{
    if (!daemon || running)
        return;
    const unsigned int before = openConnections();
    running = true;
    MHD_run(daemon);
    running = false;
    if (closeRequested) {
        stop();
        return;
    }
    scheduleDeadlines();
    // At the connection limit MHD takes the listening socket out of its epoll set and puts it
    // back on the run after a slot frees; run that one now, or a waiting client would wait
    // for the next timeout.
    if (before >= unsigned(connectionLimit) && openConnections() < before) {
        timer.start(0);
        return;
    }
    // MHD says when it must run again even without socket activity (buffered data, timeouts).
    MHD_UNSIGNED_LONG_LONG timeout = 0;
    if (MHD_get_timeout(daemon, &timeout) == MHD_YES)
        timer.start(int(std::min<MHD_UNSIGNED_LONG_LONG>(timeout, INT_MAX)));
    else
        timer.stop();
}

void HttpServer::Data::stop()
{
    timer.stop();
    deadlineTimer.stop();
    notifier.reset();
    if (daemon) {
        MHD_stop_daemon(daemon); // completes (and frees) the pending requests
        daemon = nullptr;
        qCInfo(lcHttp) << "stopped listening on port" << boundPort;
    }
    boundPort = 0;
    closeRequested = false;
}

void HttpServer::Data::log(void *cls, const char *format, va_list arguments)
{
    auto *self = static_cast<Data *>(cls);
    char buffer[512];
    std::vsnprintf(buffer, sizeof buffer, format, arguments);
    const QByteArray message = QByteArray(buffer).trimmed();
    if (self->starting) {
        self->startMessage = message;
        return;
    }
    // Mostly clients going away; not worth more than debug.
    qCDebug(lcHttp) << "libmicrohttpd:" << message.constData();
}

MHD_Result HttpServer::Data::access(void *cls, MHD_Connection *connection, const char *url, const char *method,
                                    const char *, const char *uploadData, size_t *uploadDataSize, void **slot)
{
    auto *self = static_cast<Data *>(cls);
    auto *pending = static_cast<PendingRequest *>(*slot);
    const QByteArray verb(method);
    if (!pending)
        return self->begin(connection, QString::fromUtf8(url), verb, slot);

    if (*uploadDataSize > 0) {
        const qint64 size = qint64(*uploadDataSize);
        *uploadDataSize = 0;
        if (!pending->overLimit && pending->body.size() + size > pending->limit) {
            pending->overLimit = true;
            pending->discarded = pending->body.size();
            pending->body = QByteArray();
        }
        if (!pending->overLimit) {
            pending->body.append(uploadData, qsizetype(size));
            return MHD_YES;
        }
        // MHD cannot answer in the middle of an upload: drop the rest and answer 413 at the
        // end, unless the sender insists on far more than the limit.
        pending->discarded += size;
        if (pending->discarded > 2 * std::max<qint64>(pending->limit, 64 * 1024)) {
            qCWarning(lcHttp) << "dropping a connection that sent" << pending->discarded << "bytes to"
                              << url << "past its limit of" << pending->limit;
            if (!pending->refusalTold && self->tooLargeObserver)
                self->tooLargeObserver(QString::fromUtf8(url));
            pending->refusalTold = true;
            return MHD_NO;
        }
        return MHD_YES;
    }
    return self->finish(connection, pending, url, verb);
}

MHD_Result HttpServer::Data::begin(MHD_Connection *connection, const QString &path, const QByteArray &method, void **slot)
{
    // The headers are in: from here the rest of the request has until the request deadline,
    // counted from when its headers began.
    if (ConnectionState *state = stateOf(connection); state && state->phase == ConnectionState::Phase::Headers) {
        state->phase = ConnectionState::Phase::Body;
        state->deadline = QDeadlineTimer(std::max<qint64>(0, requestTimeout.count() - headerTimeout.count()
                                                                 + state->deadline.remainingTime()));
    }
    HeaderCount framing;
    MHD_get_connection_values_n(connection, MHD_HEADER_KIND, &countFramingHeaders, &framing);
    if (framing.contentLength > 1)
        return respond(connection, badFraming(QStringLiteral("more than one Content-Length header")));
    if (framing.contentLength > 0 && framing.transferEncoding > 0)
        return respond(connection, badFraming(QStringLiteral("both Content-Length and Transfer-Encoding")));

    // Longest matching prefix first, then the method among that prefix's routes.
    int best = -1;
    for (const auto &r : std::as_const(routes)) {
        if (prefixMatches(r->prefix, path))
            best = std::max(best, int(r->prefix.size()));
    }
    if (best < 0)
        return respond(connection, HttpResponse::error(404, QStringLiteral("no such resource: %1").arg(path)));

    std::shared_ptr<const Route> chosen;
    QList<QByteArray> allowed;
    for (const auto &r : std::as_const(routes)) {
        if (r->prefix.size() != best || !prefixMatches(r->prefix, path))
            continue;
        allowed.append(r->method);
        if (r->method == "GET")
            allowed.append(QByteArrayLiteral("HEAD"));
        if (r->method == method || (method == "HEAD" && r->method == "GET" && !chosen))
            chosen = r;
    }
    if (!chosen) {
        std::sort(allowed.begin(), allowed.end());
        allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
        HttpResponse response = HttpResponse::error(
            405, QStringLiteral("method %1 not allowed on %2").arg(QString::fromLatin1(method), path));
        response.headers.append({QByteArrayLiteral("Allow"), allowed.join(", ")});
        return respond(connection, response);
    }

    const qint64 limit = chosen->maxBodySize == HttpServer::ServerBodyLimit ? maxBodySize : chosen->maxBodySize;
    if (const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        bool ok = false;
        const QByteArray text = QByteArray(length).trimmed();
        const qint64 declared = text.toLongLong(&ok);
        if (!ok || declared < 0 || text.startsWith('+'))
            return respond(connection, badFraming(QStringLiteral("Content-Length is not a number")));
        if (declared > limit) {
            if (tooLargeObserver)
                tooLargeObserver(path);
            return respond(connection, tooLarge(limit));
        }
    }
    auto *pending = new PendingRequest;
    pending->route = std::move(chosen);
    pending->limit = limit;
    *slot = pending;
    return MHD_YES;
}

MHD_Result HttpServer::Data::finish(MHD_Connection *connection, PendingRequest *pending, const char *url,
                                    const QByteArray &method)
{
    if (pending->overLimit) {
        if (!pending->refusalTold && tooLargeObserver)
            tooLargeObserver(QString::fromUtf8(url));
        pending->refusalTold = true;
        return respond(connection, tooLarge(pending->limit));
    }

    HttpRequest request;
    request.method = method;
    request.path = QString::fromUtf8(url);
    MHD_get_connection_values_n(connection, MHD_HEADER_KIND, &collectHeader, &request.headers);
    MHD_get_connection_values_n(connection, MHD_GET_ARGUMENT_KIND, &collectArgument, &request.query);
    request.body = std::exchange(pending->body, QByteArray());
    request.remoteAddress = clientAddress(connection);

    HttpResponse response;
    try {
        response = pending->route->handler(request);
    } catch (const std::exception &e) {
        qCCritical(lcHttp) << "handler for" << request.method << request.path << "threw:" << e.what();
        response = HttpResponse::error(500, QStringLiteral("internal error"));
    } catch (...) {
        qCCritical(lcHttp) << "handler for" << request.method << request.path << "threw";
        response = HttpResponse::error(500, QStringLiteral("internal error"));
    }
    qCDebug(lcHttp) << request.remoteAddress.toString() << request.method << request.path << response.status
                    << response.body.size();
    return respond(connection, response);
}

MHD_Result HttpServer::Data::respond(MHD_Connection *connection, const HttpResponse &response)
{
    if (ConnectionState *state = stateOf(connection))
        state->phase = ConnectionState::Phase::Answering;
    MHD_Response *answer = MHD_create_response_from_buffer(size_t(response.body.size()),
                                                           const_cast<char *>(response.body.constData()),
                                                           MHD_RESPMEM_MUST_COPY);
    if (!answer)
        return MHD_NO;
    if (!response.contentType.isEmpty())
        MHD_add_response_header(answer, MHD_HTTP_HEADER_CONTENT_TYPE, response.contentType.constData());
    for (const auto &[name, value] : response.headers) {
        // MHD refuses names and values with line breaks: no header injection from handlers.
        if (MHD_add_response_header(answer, name.constData(), value.constData()) != MHD_YES)
            qCWarning(lcHttp) << "refused response header" << name.constData();
    }
    const int status = response.status >= 100 && response.status <= 999 ? response.status : 500;
    const MHD_Result queued = MHD_queue_response(connection, unsigned(status), answer);
    MHD_destroy_response(answer);
    return queued;
}

void HttpServer::Data::completed(void *cls, MHD_Connection *connection, void **slot, MHD_RequestTerminationCode)
{
    delete static_cast<PendingRequest *>(*slot);
    *slot = nullptr;
    // On a kept-alive connection the next request's headers have the same time as the first's.
    auto *self = static_cast<Data *>(cls);
    if (ConnectionState *state = self->stateOf(connection); state && !state->cut) {
        state->phase = ConnectionState::Phase::Headers;
        state->deadline = QDeadlineTimer(self->headerTimeout);
    }
}

} // namespace Sluice
