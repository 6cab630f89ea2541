// SPDX-License-Identifier: Apache-2.0
#include "forgehttpclient.h"

#include <sluice/secrets.h>

#include <QDateTime>
#include <QHash>
#include <QJsonDocument>
#include <QIODevice>
#include <QJsonObject>
#include <QLocale>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QSet>
#include <QPointer>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace Sluice::ForgeHttp {

namespace {

constexpr int QtConnectionsPerHost = 6;
constexpr int MaxPages = 10'000; // a server that links on forever is an error, not a loop

QString excerpt(const QByteArray &body)
{
    QString text = QString::fromUtf8(body.left(300)).simplified();
    if (body.size() > 300)
        text += QStringLiteral("…");
    return Redaction::redact(text);
}

ErrorCode codeForStatus(int status)
{
    switch (status) {
    case 404:
        return ErrorCode::NotFound;
    case 401:
    case 403:
        return ErrorCode::PermissionDenied;
    case 405:
    case 409:
    case 422:
        return ErrorCode::Conflict;
    default:
        return ErrorCode::Network;
    }
}

bool retryableStatus(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

/**
 * The body of a write that must not reach the server twice, as a device that cannot be read
 * again. When a connection closes before any answer, QNetworkAccessManager sends the request
 * again on a new one by itself, whatever its method, as long as it can rewind the body
 * (QHttpNetworkConnectionChannel's reconnect attempts): a status posted, a merge or a pull
 * request made twice behind the caller's back. Qt cannot rewind this one, so it reports
 * ContentReSendError instead and the caller learns that the answer was lost.
 */
class OneShotBody final : public QIODevice
{
public:
    explicit OneShotBody(QByteArray data)
        : m_data(std::move(data))
    {
        open(QIODevice::ReadOnly);
    }
    bool isSequential() const override { return true; }
    bool reset() override { return false; } // the point: never sent again
    qint64 bytesAvailable() const override { return (m_data.size() - m_read) + QIODevice::bytesAvailable(); }

protected:
    qint64 readData(char *out, qint64 max) override
    {
        const qint64 n = std::min<qint64>(max, m_data.size() - m_read);
        if (n <= 0)
            return max > 0 ? -1 : 0;
        std::memcpy(out, m_data.constData() + m_read, std::size_t(n));
        m_read += n;
        return n;
    }
    qint64 writeData(const char *, qint64) override { return -1; }

private:
    QByteArray m_data;
    qint64 m_read = 0;
};

} // namespace

QUrl nextLink(const QByteArray &linkHeader, const QUrl &base)
{
    // <https://x/api/v1/...?page=2>; rel="next", <...>; rel="last"
    static const QRegularExpression part(QStringLiteral(R"(<([^>]*)>\s*((?:;\s*[^;,]+)*))"));
    auto it = part.globalMatch(QString::fromUtf8(linkHeader));
    while (it.hasNext()) {
        const auto m = it.next();
        const QStringList params = m.captured(2).split(QLatin1Char(';'), Qt::SkipEmptyParts);
        for (const QString &p : params) {
            const QString t = p.trimmed();
            if (!t.startsWith(QLatin1String("rel="), Qt::CaseInsensitive))
                continue;
            QString rels = t.mid(4);
            rels.remove(QLatin1Char('"'));
            if (rels.split(QLatin1Char(' '), Qt::SkipEmptyParts).contains(QLatin1String("next")))
                return base.resolved(QUrl(m.captured(1)));
        }
    }
    return {};
}

QString bodyMessage(const QByteArray &body)
{
    const QJsonDocument doc = QJsonDocument::fromJson(body.left(64 * 1024));
    const QString text = doc.object().value(QStringLiteral("message")).toString().simplified();
    return Redaction::redact(text.left(200));
}

std::optional<std::chrono::milliseconds> retryAfter(const QByteArray &value, const QDateTime &now)
{
    const QByteArray v = value.trimmed();
    if (v.isEmpty())
        return std::nullopt;
    bool ok = false;
    const qlonglong seconds = v.toLongLong(&ok);
    if (ok)
        return seconds < 0 ? std::nullopt : std::optional(std::chrono::milliseconds(seconds * 1000));
    const QDateTime when = QLocale::c().toDateTime(QString::fromLatin1(v), QStringLiteral("ddd, dd MMM yyyy HH:mm:ss 'GMT'"));
    if (!when.isValid())
        return std::nullopt;
    QDateTime utc = when;
    utc.setTimeSpec(Qt::UTC);
    return std::chrono::milliseconds(std::max<qint64>(0, now.msecsTo(utc)));
}

QString describe(const Request &request)
{
    const QString where = request.path.isEmpty() ? request.url.path() : request.path;
    return QStringLiteral("%1 %2").arg(QString::fromLatin1(request.method), where);
}

struct Client::Pending {
    Request request;
    QPointer<QObject> guard;
    bool hasGuard = false;
    Callback done;
    int attempt = 0;
    bool timedOut = false;
    std::size_t manager = 0;
    quint64 serial = 0; // of the attempt in flight
};

Client::Client(ClientOptions options, QObject *parent)
    : QObject(parent)
    , m_options(std::move(options))
{
    if (!m_options.apiBase.path().endsWith(QLatin1Char('/')))
        m_options.apiBase.setPath(m_options.apiBase.path() + QLatin1Char('/'));
    m_options.concurrency = std::max(1, m_options.concurrency);
    m_apiBaseText = m_options.apiBase.toString(QUrl::FullyEncoded);
    m_clock.start();
    m_deadlineTimer = new QTimer(this);
    m_deadlineTimer->setSingleShot(true);
    m_deadlineTimer->setTimerType(Qt::PreciseTimer);
    connect(m_deadlineTimer, &QTimer::timeout, this, &Client::expireDeadlines);
    m_rateTimer = new QTimer(this);
    m_rateTimer->setSingleShot(true);
    m_rateTimer->setTimerType(Qt::PreciseTimer);
    connect(m_rateTimer, &QTimer::timeout, this, &Client::dispatch);
    const int managers = (m_options.concurrency + QtConnectionsPerHost - 1) / QtConnectionsPerHost;
    for (int i = 0; i < managers; ++i) {
        auto nam = std::make_unique<QNetworkAccessManager>();
        nam->setRedirectPolicy(QNetworkRequest::NoLessSafeRedirectPolicy);
        m_managers.push_back(std::move(nam));
        m_managerLoad.push_back(0);
    }
}

Client::~Client()
{
    // Replies finish while their managers are destroyed: nobody must hear it.
    const auto attempts = m_attempts;
    for (const Attempt &a : attempts) {
        a.reply->disconnect(this);
        a.reply->abort();
    }
}

void Client::send(Request request, QObject *guard, Callback done)
{
    auto p = std::make_shared<Pending>();
    p->request = std::move(request);
    p->guard = guard;
    p->hasGuard = guard != nullptr;
    p->done = std::move(done);
    if (m_inCallback > 0)
        m_queue.push_front(std::move(p));
    else
        m_queue.push_back(std::move(p));
    dispatch();
}

void Client::dispatch()
{
    while (m_inFlight < m_options.concurrency && !m_queue.empty()) {
        auto p = m_queue.front();
        if (p->hasGuard && !p->guard) {
            m_queue.pop_front();
            continue; // the caller is gone
        }
        if (!rateAllows())
            return; // m_rateTimer calls again when the oldest start leaves the window
        m_queue.pop_front();
        start(p);
    }
}

bool Client::rateAllows()
{
    if (m_options.rateLimit <= 0)
        return true;
    const qint64 now = m_clock.elapsed();
    const qint64 window = m_options.rateWindow.count();
    while (!m_recentStarts.empty() && m_recentStarts.front() + window <= now)
        m_recentStarts.pop_front();
    if (int(m_recentStarts.size()) < m_options.rateLimit) {
        m_recentStarts.push_back(now);
        return true;
    }
    if (!m_rateTimer->isActive())
        m_rateTimer->start(int(std::max<qint64>(1, m_recentStarts.front() + window - now)));
    return false;
}

QUrl Client::urlFor(const Request &request) const
{
    // The connectors' paths are percent-encoded segments: appended to the base they give the
    // URL resolving would give. Anything resolving could change (a scheme-like first segment,
    // '?', '#', dot segments) is resolved.
    const QString &path = request.path;
    bool plain = !path.startsWith(QLatin1Char('/'));
    for (qsizetype i = 0; plain && i < path.size(); ++i) {
        const QChar c = path.at(i);
        if (c == QLatin1Char(':') || c == QLatin1Char('?') || c == QLatin1Char('#') || c == QLatin1Char('\\'))
            plain = false;
        else if (c == QLatin1Char('.') && (i == 0 || path.at(i - 1) == QLatin1Char('/'))) {
            const qsizetype end = path.indexOf(QLatin1Char('/'), i);
            const qsizetype length = (end < 0 ? path.size() : end) - i;
            plain = !(length == 1 || (length == 2 && path.at(i + 1) == QLatin1Char('.')));
        }
    }
    QUrl url = plain ? QUrl(m_apiBaseText + path) : m_options.apiBase.resolved(QUrl(path));
    if (!request.query.isEmpty())
        url.setQuery(request.query);
    return url;
}

void Client::start(const std::shared_ptr<Pending> &p)
{
    QUrl url;
    if (p->request.path.isEmpty()) {
        url = p->request.url;
        if (url.host() != m_options.apiBase.host() || url.port() != m_options.apiBase.port()
            || url.scheme() != m_options.apiBase.scheme()) {
            // Never send the credential to another origin a server names in a Link header.
            complete(p, fail(ErrorCode::Malformed, QStringLiteral("%1: link points to another origin").arg(describe(p->request))));
            return;
        }
    } else {
        url = urlFor(p->request);
    }
    QNetworkRequest req(url);
    req.setRawHeader("Accept", p->request.accept.isEmpty() ? m_options.accept : p->request.accept);
    for (const auto &[name, value] : m_options.extraHeaders)
        req.setRawHeader(name, value);
    for (const auto &[name, value] : p->request.headers)
        req.setRawHeader(name, value);
    req.setRawHeader("User-Agent", "sluice");
    // Uncompressed, so Content-Length is the length of the body we get and a cut body shows.
    req.setRawHeader("Accept-Encoding", "identity");
    if (!m_options.authorization.isEmpty())
        req.setRawHeader("Authorization", m_options.authorization);
    if (!p->request.body.isEmpty())
        req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));

    p->manager = std::size_t(std::min_element(m_managerLoad.begin(), m_managerLoad.end()) - m_managerLoad.begin());
    ++m_managerLoad[p->manager];
    QNetworkAccessManager &nam = *m_managers[p->manager];
    QNetworkReply *reply = nullptr;
    if (p->request.idempotent()) {
        reply = nam.sendCustomRequest(req, p->request.method, p->request.body);
    } else {
        // Sent once: a dropped connection is an error the caller sees, never a silent resend.
        req.setAttribute(QNetworkRequest::DoNotBufferUploadDataAttribute, true);
        req.setHeader(QNetworkRequest::ContentLengthHeader, p->request.body.size());
        auto *body = new OneShotBody(p->request.body);
        reply = nam.sendCustomRequest(req, p->request.method, body);
        body->setParent(reply);
    }
    ++m_inFlight;
    ++m_sent;
    ++p->attempt;
    p->timedOut = false;
    p->serial = ++m_nextSerial;
    m_attempts.insert(p->serial, Attempt{reply, p});
    m_deadlines.emplace_back(m_clock.elapsed() + m_options.timeout.count(), p->serial);
    if (!m_deadlineTimer->isActive())
        armDeadlineTimer();
    connect(reply, &QNetworkReply::finished, this, [this, p, reply] { onFinished(p, reply); });
}

void Client::armDeadlineTimer()
{
    while (!m_deadlines.empty() && !m_attempts.contains(m_deadlines.front().second))
        m_deadlines.pop_front(); // ended in time
    if (m_deadlines.empty()) {
        m_deadlineTimer->stop();
        return;
    }
    const qint64 wait = std::max<qint64>(0, m_deadlines.front().first - m_clock.elapsed());
    m_deadlineTimer->start(int(std::min<qint64>(wait, std::numeric_limits<int>::max())));
}

void Client::expireDeadlines()
{
    QPointer<Client> self(this);
    while (!m_deadlines.empty() && m_deadlines.front().first <= m_clock.elapsed()) {
        const quint64 serial = m_deadlines.front().second;
        m_deadlines.pop_front();
        const auto it = m_attempts.constFind(serial);
        if (it == m_attempts.cend())
            continue;
        it->pending->timedOut = true;
        QNetworkReply *reply = it->reply;
        reply->abort(); // finished() runs onFinished() now, which may end this client
        if (!self)
            return;
    }
    armDeadlineTimer();
}

void Client::onFinished(const std::shared_ptr<Pending> &p, QNetworkReply *reply)
{
    reply->deleteLater();
    m_attempts.remove(p->serial);
    --m_inFlight;
    --m_managerLoad[p->manager];
    const auto what = [&p] { return describe(p->request); }; // for errors only
    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    const QByteArray body = reply->isOpen() ? reply->readAll() : QByteArray(); // an aborted reply is closed
    QHash<QByteArray, QByteArray> headers;
    const QList<QNetworkReply::RawHeaderPair> &pairs = reply->rawHeaderPairs();
    headers.reserve(int(pairs.size()));
    for (const auto &pair : pairs)
        headers.insert(pair.first.toLower(), pair.second);

    const auto backoff = [&] {
        const qint64 base = m_options.retryBase.count() * (qint64(1) << std::min(p->attempt - 1, 10));
        const qint64 jitter = base > 1 ? qint64(QRandomGenerator::global()->bounded(double(base / 2 + 1))) : 0;
        return std::chrono::milliseconds(base + jitter);
    };
    const bool attemptsLeft = p->attempt <= m_options.maxRetries;

    if (reply->error() != QNetworkReply::NoError && status == 0) {
        // No HTTP answer: a timeout, a refused or dropped connection, a truncated body.
        const ErrorCode code = p->timedOut ? ErrorCode::Timeout : ErrorCode::Network;
        QString message = p->timedOut
            ? QStringLiteral("%1: no answer within %2 ms").arg(what()).arg(m_options.timeout.count())
            : QStringLiteral("%1: %2").arg(what(), reply->errorString());
        if (p->request.idempotent() && attemptsLeft) {
            retryLater(p, backoff());
            return;
        }
        if (!p->request.idempotent()) // the server may have acted before the answer was lost
            message += QStringLiteral("; it may or may not have taken effect");
        complete(p, fail(code, message + QStringLiteral(" (after %1 attempt(s))").arg(p->attempt)));
        return;
    }

    {
        bool lengthOk = true;
        const qlonglong declared = headers.value("content-length").trimmed().toLongLong(&lengthOk);
        const bool cut = headers.contains("content-length") && (!lengthOk || declared != body.size());
        // Qt reports an error for every non-2xx status (ContentConflictError for 409, ...);
        // only one of its transport errors (below ProxyConnectionRefusedError) says the
        // answer itself broke off.
        const bool ok2xx = status >= 200 && status < 300;
        const bool broke = reply->error() != QNetworkReply::NoError && (ok2xx || reply->error() < QNetworkReply::ProxyConnectionRefusedError);
        if (broke || cut) {
            // An answer whose body broke off, whatever its status: never a partial answer. A
            // refusal (409, 405, 422) is the forge's word only when it can be read whole (a
            // merge answered 409 with a cut body was a "fail" on the status line alone: the
            // fault campaign's seeds 0x89a21fef34eb31ba and 0x71911a0b890a0206), so it is a
            // Network error here, never the status' own meaning.
            if (p->request.idempotent() && attemptsLeft) {
                retryLater(p, backoff());
                return;
            }
            QString message = QStringLiteral("%1: HTTP %2 with its body incomplete (%3 of %4 bytes): %5")
                                  .arg(what()).arg(status).arg(body.size()).arg(QString::fromLatin1(headers.value("content-length")), reply->errorString());
            if (!p->request.idempotent() && !ok2xx)
                message += QStringLiteral("; the answer could not be read, so it may or may not have taken effect");
            complete(p, fail(p->timedOut ? ErrorCode::Timeout : ErrorCode::Network, message));
            return;
        }
    }

    if ((status >= 200 && status < 300) || p->request.answerStatuses.contains(status)) {
        Response r;
        r.status = status;
        r.body = body;
        r.headers = std::move(headers);
        r.url = reply->url();
        r.attempts = p->attempt;
        complete(p, std::move(r));
        return;
    }

    // Rate limits, as GitHub documents them (docs.github.com, "Rate limits for the REST API",
    // "Exceeding the rate limit"): the primary limit answers 403 or 429 with
    // X-RateLimit-Remaining: 0; a secondary limit answers 403 or 429 with a message saying so,
    // and Retry-After when it knows how long. A rate-limited request was not acted on, so a
    // write may be sent again too.
    const QByteArray remaining = headers.value("x-ratelimit-remaining").trimmed();
    const bool secondary = (status == 403 || status == 429) && bodyMessage(body).contains(QLatin1String("secondary rate limit"), Qt::CaseInsensitive);
    const bool rateLimited = status == 429
        || (status == 403 && (remaining == "0" || headers.contains("retry-after") || secondary));
    const bool retryable = rateLimited || retryableStatus(status) || (m_options.retryServerErrors && status >= 500 && status <= 599);
    const bool mayRepeat = p->request.idempotent() || rateLimited;
    if (retryable && mayRepeat && attemptsLeft) {
        const QDateTime now = QDateTime::currentDateTimeUtc();
        std::optional<std::chrono::milliseconds> wait = retryAfter(headers.value("retry-after"), now);
        if (!wait && m_options.bodyRetryAfter)
            wait = m_options.bodyRetryAfter(status, body);
        if (!wait && rateLimited && remaining == "0") {
            bool ok = false;
            const qint64 reset = headers.value("x-ratelimit-reset").trimmed().toLongLong(&ok);
            if (ok)
                wait = std::chrono::milliseconds(std::max<qint64>(0, reset * 1000 - now.toMSecsSinceEpoch()));
        }
        if (!wait && secondary) // no header says how long: at least a minute, doubling while it lasts
            wait = std::chrono::milliseconds(qint64(60'000) << std::min(p->attempt - 1, 6));
        const std::chrono::milliseconds delay = std::max(wait.value_or(std::chrono::milliseconds(0)), backoff());
        if (wait && *wait > m_options.maxRetryWait) {
            complete(p, fail(rateLimited ? ErrorCode::Network : codeForStatus(status),
                             QStringLiteral("%1: HTTP %2%3, the server asks to wait %4 s, more than the %5 s allowed (max_retry_wait)")
                                 .arg(what())
                                 .arg(status)
                                 .arg(rateLimited ? QStringLiteral(" (rate limited)") : QString())
                                 .arg(wait->count() / 1000)
                                 .arg(m_options.maxRetryWait.count() / 1000),
                             excerpt(body)));
            return;
        }
        retryLater(p, delay);
        return;
    }
    QString message = QStringLiteral("%1: HTTP %2%3").arg(what()).arg(status).arg(
        retryable ? QStringLiteral(" (%1after %2 attempt(s))").arg(rateLimited ? QStringLiteral("rate limited; ") : QString()).arg(p->attempt) : QString());
    if (status == 403 && !rateLimited) {
        // Name what the token lacks. GitHub says which fine-grained permissions the endpoint
        // accepts in X-Accepted-GitHub-Permissions; otherwise the connector's own table.
        const QByteArray accepted = headers.value("x-accepted-github-permissions").trimmed();
        const QString needed = !accepted.isEmpty() ? QStringLiteral("GitHub accepts a token with %1").arg(QString::fromLatin1(accepted.left(200)))
                                                   : (m_options.permissionFor ? m_options.permissionFor(p->request) : QString());
        if (!needed.isEmpty())
            message += QStringLiteral(": the token lacks a permission (%1)").arg(needed);
        const QString said = bodyMessage(body);
        if (!said.isEmpty())
            message += QStringLiteral("; the server says: %1").arg(said);
    }
    complete(p, fail(codeForStatus(status), message, excerpt(body)));
}

void Client::retryLater(const std::shared_ptr<Pending> &p, std::chrono::milliseconds delay)
{
    // Precise: a coarse timer may fire up to 5% early, and a retry sent before the wait a
    // server asked for (Retry-After, Telegram's retry_after) is refused again.
    QTimer::singleShot(delay, Qt::PreciseTimer, this, [this, p] {
        m_queue.push_front(p);
        dispatch();
    });
    dispatch();
}

void Client::complete(const std::shared_ptr<Pending> &p, Result<Response> result)
{
    Callback done = std::move(p->done);
    if (done && (!p->hasGuard || p->guard)) {
        // The callback runs first, so the next step it queues takes the slot just freed.
        // It may also destroy this client (the owner of a finished job goes away).
        QPointer<Client> self(this);
        ++m_inCallback;
        done(std::move(result));
        if (!self)
            return;
        --m_inCallback;
    }
    dispatch();
}

Result<QJsonArray> arrayPage(const QJsonDocument &page)
{
    if (!page.isArray())
        return fail(ErrorCode::Malformed, QStringLiteral("page is not a JSON list"));
    return page.array();
}

namespace {

// One paginated read; deletes itself when done.
class PagedFetch : public QObject
{
public:
    PagedFetch(Client &client, Request request, int pageSize, PageItems items, QObject *guard,
               std::function<void(Result<QJsonArray>)> done)
        : QObject(&client)
        , m_client(client)
        , m_request(std::move(request))
        , m_pageSize(pageSize)
        , m_items(std::move(items))
        , m_guard(guard)
        , m_hasGuard(guard != nullptr)
        , m_done(std::move(done))
    {
    }

    void begin()
    {
        Request first = pageRequest(1);
        m_client.send(first, this, [this](Result<Response> r) { onFirst(std::move(r)); });
    }

private:
    Request pageRequest(int page) const
    {
        Request r = m_request;
        r.query.removeAllQueryItems(QStringLiteral("page"));
        r.query.removeAllQueryItems(QStringLiteral("limit"));
        r.query.removeAllQueryItems(QStringLiteral("per_page"));
        r.query.addQueryItem(QStringLiteral("page"), QString::number(page));
        r.query.addQueryItem(QStringLiteral("limit"), QString::number(m_pageSize));
        r.query.addQueryItem(QStringLiteral("per_page"), QString::number(m_pageSize));
        return r;
    }

    QString what(int page) const { return QStringLiteral("%1 page %2").arg(describe(m_request)).arg(page); }

    Result<QJsonArray> parse(const Response &r, int page) const
    {
        QJsonParseError error{};
        const QJsonDocument doc = QJsonDocument::fromJson(r.body, &error);
        if (error.error != QJsonParseError::NoError)
            return fail(ErrorCode::Malformed, QStringLiteral("%1: body is not JSON (%2 at offset %3)").arg(what(page), error.errorString()).arg(error.offset),
                        excerpt(r.body));
        auto items = m_items(doc);
        if (!items)
            return fail(ErrorCode::Malformed, QStringLiteral("%1: %2").arg(what(page), items.error().message), excerpt(r.body));
        return items;
    }

    void onFirst(Result<Response> r)
    {
        if (!r)
            return finish(std::unexpected(r.error()));
        auto items = parse(*r, 1);
        if (!items)
            return finish(std::unexpected(items.error()));
        const QByteArray totalHeader = r->header("x-total-count");
        if (!totalHeader.isEmpty()) {
            bool ok = false;
            const qlonglong total = totalHeader.trimmed().toLongLong(&ok);
            if (!ok || total < 0)
                return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: X-Total-Count '%2' is not a count")
                                                             .arg(what(1), QString::fromLatin1(totalHeader.left(40)))));
            return withTotal(*r, *items, total);
        }
        m_pages.push_back(*items);
        followLinks(*r, *items, 1);
    }

    void withTotal(const Response &first, const QJsonArray &items, qlonglong total)
    {
        m_total = total;
        const qlonglong size = items.size();
        if (size >= total) {
            if (size > total)
                return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: %2 items but X-Total-Count says %3").arg(what(1)).arg(size).arg(total)));
            if (!nextLink(first.header("link"), first.url).isEmpty())
                return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: links to a next page past X-Total-Count %2").arg(what(1)).arg(total)));
            return finish(items);
        }
        if (size == 0)
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: empty page before X-Total-Count %2").arg(what(1)).arg(total)));
        // The server's page size may be below the one asked for (Gitea caps it): the first page sets it.
        m_effectivePageSize = size;
        const qlonglong pages = (total + size - 1) / size;
        if (pages > MaxPages)
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: X-Total-Count %2 needs more than %3 pages").arg(what(1)).arg(total).arg(MaxPages)));
        m_pages.assign(std::size_t(pages), QJsonArray());
        m_pages[0] = items;
        m_outstanding = int(pages) - 1;
        for (int page = 2; page <= pages; ++page) // same limit asked; the server keeps its own cap
            m_client.send(pageRequest(page), this, [this, page](Result<Response> r) { onCounted(page, std::move(r)); });
    }

    void onCounted(int page, Result<Response> r)
    {
        if (m_finished)
            return;
        if (!r)
            return finish(std::unexpected(r.error()));
        auto items = parse(*r, page);
        if (!items)
            return finish(std::unexpected(items.error()));
        // Pages fetched at once may be answered on either side of a change to the list (an item
        // added or removed at its head): then one item is served twice and another never, with
        // every page still full. Only the total tells; a page that counts another total is from
        // another list than the first page.
        bool totalOk = false;
        const qlonglong total = r->header("x-total-count").trimmed().toLongLong(&totalOk);
        if (!totalOk || total != m_total)
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: the list changed while it was read (X-Total-Count '%2', page 1 said %3); read it again")
                                                         .arg(what(page), QString::fromLatin1(r->header("x-total-count").left(40))).arg(m_total)));
        const qlonglong pages = qlonglong(m_pages.size());
        const qlonglong expected = page < pages ? m_effectivePageSize : m_total - (pages - 1) * m_effectivePageSize;
        if (items->size() != expected)
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: %2 items, expected %3 (X-Total-Count %4, %5 per page)")
                                                         .arg(what(page)).arg(items->size()).arg(expected).arg(m_total).arg(m_effectivePageSize)));
        if (page == pages && !nextLink(r->header("link"), r->url).isEmpty())
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: links to a next page past X-Total-Count %2").arg(what(page)).arg(m_total)));
        m_pages[std::size_t(page - 1)] = *items;
        if (--m_outstanding == 0)
            finish(joined());
    }

    void followLinks(const Response &r, const QJsonArray &items, int page)
    {
        const QUrl next = nextLink(r.header("link"), r.url);
        if (next.isEmpty())
            return finish(joined());
        // Without a total, only full pages tell that nothing was cut: every page that links on
        // holds exactly the page size asked for (set page_size to the server's cap if lower).
        if (items.size() != m_pageSize)
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: %2 items, not the %3 asked for, yet it links to another page")
                                                         .arg(what(page)).arg(items.size()).arg(m_pageSize)));
        if (page >= MaxPages || m_seen.contains(next))
            return finish(fail(ErrorCode::Malformed, QStringLiteral("%1: pagination does not end").arg(what(page))));
        m_seen.insert(next);
        Request req = m_request;
        req.path.clear();
        req.query = QUrlQuery();
        req.url = next;
        m_client.send(req, this, [this, page](Result<Response> rr) {
            if (!rr)
                return finish(std::unexpected(rr.error()));
            auto nextItems = parse(*rr, page + 1);
            if (!nextItems)
                return finish(std::unexpected(nextItems.error()));
            m_pages.push_back(*nextItems);
            followLinks(*rr, *nextItems, page + 1);
        });
    }

    // The pages, one list. An item (by its numeric "id") on two pages means the list changed
    // between their reads: items moved across a page boundary, so as many others may have
    // moved past the pages read and been missed — with every page full and any total still
    // right (GitHub's check runs, filter=latest: a re-run leaves its old place and takes a new
    // one; a pull request closed and another opened while the list is paged). Never a list.
    Result<QJsonArray> joined() const
    {
        QJsonArray all;
        QHash<qint64, int> pageOf;
        for (std::size_t i = 0; i < m_pages.size(); ++i) {
            for (const QJsonValue &v : m_pages[i]) {
                const QJsonValue id = v.toObject().value(QLatin1String("id"));
                if (id.isDouble()) {
                    const auto seen = pageOf.constFind(qint64(id.toDouble()));
                    if (seen != pageOf.cend() && *seen != int(i) + 1)
                        return fail(ErrorCode::Malformed, QStringLiteral("%1: item %2 is on page %3 and page %4: the list changed while it was read; read it again")
                                                              .arg(describe(m_request)).arg(qint64(id.toDouble())).arg(*seen).arg(i + 1));
                    pageOf.insert(qint64(id.toDouble()), int(i) + 1);
                }
                all.append(v);
            }
        }
        return all;
    }

    void finish(Result<QJsonArray> result)
    {
        if (m_finished)
            return;
        m_finished = true;
        deleteLater();
        if (m_hasGuard && !m_guard)
            return;
        auto done = std::move(m_done);
        done(std::move(result));
    }

    Client &m_client;
    Request m_request;
    int m_pageSize;
    PageItems m_items;
    QPointer<QObject> m_guard;
    bool m_hasGuard;
    std::function<void(Result<QJsonArray>)> m_done;
    std::vector<QJsonArray> m_pages;
    QSet<QUrl> m_seen;
    qlonglong m_total = -1;
    qlonglong m_effectivePageSize = 0;
    int m_outstanding = 0;
    bool m_finished = false;
};

} // namespace

void fetchAllPages(Client &client, Request request, int pageSize, PageItems items, QObject *guard,
                   std::function<void(Result<QJsonArray>)> done)
{
    auto *fetch = new PagedFetch(client, std::move(request), pageSize, std::move(items), guard, std::move(done));
    fetch->begin();
}

} // namespace Sluice::ForgeHttp
