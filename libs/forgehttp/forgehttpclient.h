// SPDX-License-Identifier: Apache-2.0
#pragma once

// The HTTP client forge connectors share: asynchronous on QNetworkAccessManager, with a
// per-request timeout, bounded concurrency, retry with back-off on 429/502/503/504 that
// honours Retry-After and rate-limit headers, and strict pagination (see fetchAllPages()).
//
// The credential travels only in the Authorization header: it is never part of a URL, a
// log line or an Error.

#include <sluice/error.h>

#include <QByteArray>
#include <QDateTime>
#include <QElapsedTimer>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QObject>
#include <QPointer>
#include <QSet>
#include <QUrl>
#include <QUrlQuery>

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <memory>
#include <vector>

class QNetworkAccessManager;
class QNetworkReply;
class QTimer;

namespace Sluice::ForgeHttp {

struct Request;

/// How a client talks to one forge.
struct ClientOptions {
    QUrl apiBase;                    ///< e.g. https://git.example/api/v1/ (trailing slash added).
    QByteArray authorization;        ///< Full Authorization header value; empty: none.
    QByteArray accept = "application/json";
    QList<QPair<QByteArray, QByteArray>> extraHeaders; ///< Sent with every request (API version pins).
    std::chrono::milliseconds timeout{30'000}; ///< Per attempt.
    int concurrency = 16;            ///< Requests in flight at most.
    int maxRetries = 4;              ///< Retries after the first attempt.
    std::chrono::milliseconds retryBase{500};     ///< First back-off; doubles per retry.
    std::chrono::milliseconds maxRetryWait{60'000}; ///< A longer Retry-After is an error, not a wait.
    /// Client-side rate limit: at most this many attempts (retries included) start within any
    /// @ref rateWindow; later ones wait in the queue, none is dropped. 0: no limit.
    int rateLimit = 0;
    std::chrono::milliseconds rateWindow{60'000};
    /// Retry an idempotent request answered with any 5xx (500 included), not only 502/503/504:
    /// for a service whose 500s are passing faults (Plane). Writes still need Request::repeatable.
    bool retryServerErrors = false;
    /**
     * How long a refusal's body asks to wait, for a service that says it there and not in a
     * Retry-After header (Telegram: parameters.retry_after). Consulted after the headers; the
     * answer is held against maxRetryWait like a header's. Empty function: headers only.
     */
    std::function<std::optional<std::chrono::milliseconds>(int status, const QByteArray &body)> bodyRetryAfter;
    /// What a request needs the token to be allowed (a connector's table: "Pull requests: read"),
    /// named in the error of a 403 that is not a rate limit. Empty function or answer: nothing named.
    std::function<QString(const Request &)> permissionFor;
};

/// A request.
struct Request {
    QByteArray method = "GET";
    QString path;      ///< Relative to apiBase ("repos/o/r/pulls"); or empty with url set.
    QUrl url;          ///< Absolute URL (a Link rel="next" target); must be on apiBase's host.
    QUrlQuery query;
    QByteArray body;   ///< Sent as application/json when not empty.
    QByteArray accept; ///< Accept header for this request; empty: the client's.
    QList<QPair<QByteArray, QByteArray>> headers; ///< More headers for this request (signatures).
    /// The caller accepts that a retry may repeat the effect (a notification delivered twice
    /// rather than lost; a receiver that de-duplicates).
    bool repeatable = false;
    /// Non-2xx statuses handed back as a Response instead of an Error, for a caller that must
    /// read the forge's answer to tell a transient refusal from a final one (a merge's 405).
    QList<int> answerStatuses;
    /// Whether a retry may repeat the request's effect. GETs are; a POST is retried only on
    /// 429, where the server says it did not act, unless it is repeatable.
    [[nodiscard]] bool idempotent() const { return repeatable || method == "GET" || method == "HEAD"; }
};

/// A response with a 2xx status.
struct Response {
    int status = 0;
    QByteArray body;
    QHash<QByteArray, QByteArray> headers; ///< Names in lower case.
    QUrl url;
    int attempts = 0;

    [[nodiscard]] QByteArray header(const QByteArray &lowerCaseName) const { return headers.value(lowerCaseName); }
};

/// Parses a Link header; returns the target of rel="next", or an empty URL.
[[nodiscard]] QUrl nextLink(const QByteArray &linkHeader, const QUrl &base);

/// The "message" of a JSON error body, cut to a readable length; empty when there is none.
[[nodiscard]] QString bodyMessage(const QByteArray &body);

/// Delay a Retry-After value asks for (seconds or an HTTP date); nullopt when absent or unreadable.
[[nodiscard]] std::optional<std::chrono::milliseconds> retryAfter(const QByteArray &value, const QDateTime &now);

/// "GET repos/o/r/pulls" — what an error message names; never a credential.
[[nodiscard]] QString describe(const Request &request);

class Client : public QObject
{
    Q_OBJECT
public:
    using Callback = std::function<void(Result<Response>)>;

    explicit Client(ClientOptions options, QObject *parent = nullptr);
    ~Client() override;

    [[nodiscard]] const ClientOptions &options() const { return m_options; }

    /**
     * Queues @p request. @p done runs once on this thread, unless @p guard is destroyed
     * first. A request sent from inside another request's callback (the next step of work
     * already under way: a further page, a re-read, a write) goes ahead of the queue, so
     * work in progress finishes before new work starts. Non-2xx answers are Errors: 404 NotFound, 401/403 PermissionDenied (a 403
     * names the permission the request needs, from X-Accepted-GitHub-Permissions or
     * ClientOptions::permissionFor), 409/405/422 Conflict, the rest Network; the detail holds an
     * excerpt of the body. Rate limits are waited out and retried, writes included (the server
     * did not act): 429, and 403 with X-RateLimit-Remaining: 0, a Retry-After or a body naming
     * a secondary rate limit (Retry-After first, then ClientOptions::bodyRetryAfter, then
     * X-RateLimit-Reset, else at least a minute, doubling), at most maxRetries times and never
     * longer than maxRetryWait at once. 502, 503 and 504 (any 5xx with
     * ClientOptions::retryServerErrors) are retried for idempotent requests.
     */
    void send(Request request, QObject *guard, Callback done);

    /// Attempts sent so far (retries included): for benchmarks and tests.
    [[nodiscard]] qint64 attemptsSent() const { return m_sent; }
    /// Requests in flight now.
    [[nodiscard]] int inFlight() const { return m_inFlight; }
    /// Requests waiting in the queue (for the concurrency or the rate limit).
    [[nodiscard]] int queued() const { return int(m_queue.size()); }

private:
    struct Pending;
    void dispatch();
    void start(const std::shared_ptr<Pending> &pending);
    void onFinished(const std::shared_ptr<Pending> &pending, QNetworkReply *reply);
    void retryLater(const std::shared_ptr<Pending> &pending, std::chrono::milliseconds delay);
    void complete(const std::shared_ptr<Pending> &pending, Result<Response> result);
    [[nodiscard]] QUrl urlFor(const Request &request) const;
    void expireDeadlines();
    void armDeadlineTimer();
    // True when the rate limit lets one more attempt start now; otherwise arms m_rateTimer.
    [[nodiscard]] bool rateAllows();

    ClientOptions m_options;
    // Qt runs at most six HTTP/1.1 connections per host and manager: one manager per six
    // slots of concurrency gives the configured parallelism.
    std::vector<std::unique_ptr<QNetworkAccessManager>> m_managers;
    std::deque<std::shared_ptr<Pending>> m_queue;
    // Attempts in flight by serial number: aborted on destruction, or at their deadline.
    struct Attempt {
        QNetworkReply *reply = nullptr;
        std::shared_ptr<Pending> pending;
    };
    QHash<quint64, Attempt> m_attempts;
    quint64 m_nextSerial = 0;
    // Every attempt has the same timeout, so deadlines come in start order: one timer for the
    // earliest instead of one per attempt. Entries of attempts that ended are dropped lazily.
    std::deque<std::pair<qint64, quint64>> m_deadlines; // (deadline on m_clock in ms, serial)
    QTimer *m_deadlineTimer = nullptr;
    QElapsedTimer m_clock;
    QString m_apiBaseText; // apiBase, encoded, for building request URLs without resolving
    int m_inFlight = 0;
    int m_inCallback = 0; // depth of callbacks running now
    qint64 m_sent = 0;
    std::vector<int> m_managerLoad; // requests in flight per manager: a new one goes to the least loaded
    std::deque<qint64> m_recentStarts;  // m_clock times of the attempts started within the rate window
    QTimer *m_rateTimer = nullptr;
};

/// How to find the items in one page's JSON body.
using PageItems = std::function<Result<QJsonArray>(const QJsonDocument &page)>;
/// Items of a page whose body is a JSON array (anything else is Malformed).
[[nodiscard]] Result<QJsonArray> arrayPage(const QJsonDocument &page);

/**
 * Fetches every page of @p request and hands the concatenated items to @p done.
 *
 * With X-Total-Count on the first page, the remaining pages are fetched concurrently and
 * every page must hold exactly its share (the first page's size sets the page size; only
 * the last may be shorter) and count the same total (pages answered on either side of a
 * change to the list would otherwise lose one item and repeat another); a next link past the
 * advertised total is an error. Without it,
 * Link rel="next" is followed to the end, and a page that links on must hold exactly
 * @p pageSize items (anything else may be a cut answer). A body that is not JSON, or a page @p items refuses, fails the whole call:
 * never a partial list.
 */
void fetchAllPages(Client &client, Request request, int pageSize, PageItems items, QObject *guard,
                   std::function<void(Result<QJsonArray>)> done);

} // namespace Sluice::ForgeHttp
