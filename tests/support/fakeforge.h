// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file fakeforge.h
 * A forge for tests: a real HTTP/1.1 server on loopback, on a thread of its own, that speaks
 * the Gitea API v1 shapes the connectors use (pull requests listed, read, opened and merged, commit statuses, combined
 * status, raw files, compare, merge) with Gitea's pagination (page/limit, X-Total-Count,
 * Link rel="next"), and that can inject latency, error statuses, 429 with Retry-After,
 * truncated and malformed bodies, non-list pages, missing `statuses` and short pages.
 *
 * With Flavor::GitHub it speaks the GitHub REST v3 shapes instead: paths under /repos/,
 * per_page/page with Link headers and no X-Total-Count, "state" in statuses, check runs,
 * raw file contents, PUT merge and compare with ahead_by/behind_by.
 *
 * Where the two services differ from a naive reading, the fake follows their documents and
 * source, each place citing it: Gitea's empty combined status (statuses null, no total header),
 * Gitea's and GitHub's 405 for a merge while mergeability is computed, GitHub's check runs
 * (filter=latest, nullable started_at, re-run through the Actions API as a new run), GitHub's
 * combined state and its secondary rate limits.
 *
 * It also speaks on pull requests (comments, reviews, team membership) and, with setWebhook(),
 * tells a receiver what changed the way the forge does: signed webhook deliveries (status,
 * check_run, push, pull_request, reviews, issue_comment) in its flavour's payload shapes, with
 * lost, held, reordered and repeated deliveries on demand (webhooks()).
 *
 * The latest status of a context is the one posted last, whatever its timestamps say: Gitea
 * takes the greatest per-commit `index` of each context (models/git/commit_status.go,
 * GetLatestCommitStatus: `max(index) … GROUP BY context_hash`), GitHub lists a commit's
 * statuses newest first in the order they were created. Statuses here get growing ids in the
 * order they are added, so "latest" is the greatest id; a time given to addStatus() may be older
 * than an earlier status's (a forge node with a slow clock) and changes nothing about that.
 *
 * For fault campaigns (tests/integration/tst_forgefaults.cpp) the fake also drops connections,
 * duplicates, reorders and corrupts list items, links past the last page, and lets a test
 * change its state between two requests (setRequestHook()): pages that change between reads,
 * a head that moves while it is judged.
 *
 * Every method is thread-safe; the server answers on its own thread, so a test (or a
 * blocking client in a benchmark) may wait on its own event loop.
 */

#include "loopbackserver.h"
#include "webhooksender.h"

#include <sluice/job.h>

#include <QByteArray>
#include <QEventLoop>
#include <QTimer>
#include <QDateTime>
#include <QHash>
#include <QList>
#include <QString>
#include <QStringList>
#include <QUrl>
#include <QUrlQuery>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace Sluice::Test {

struct FakePullRequest {
    qint64 number = 0;
    QString title;
    QString headRef;
    QString headSha;
    QString baseRef = QStringLiteral("main");
    QString state = QStringLiteral("open");
    bool merged = false;
    QString mergeCommit;
    /// Merges answered as the forge answers while it is still computing mergeability (405; on
    /// GitHub "mergeable": null meanwhile) before one goes through.
    int mergeabilityPending = 0;
    /// A real conflict: every merge is refused (GitHub: 405, "mergeable": false, "dirty").
    bool conflicting = false;
};

struct FakeStatus {
    qint64 id = 0;
    QString sha;
    QString context;
    QString state; ///< "pending", "success", "error", "failure", "warning", "skipped"
    QString description;
    QString targetUrl;
    QDateTime createdAt;
    QDateTime updatedAt;
};

/// A comment on a pull request's conversation.
struct FakeComment {
    qint64 id = 0;
    qint64 number = 0;  ///< The pull request.
    QString author;
    QString body;
    QDateTime createdAt;
};

/// A review of a pull request.
struct FakeReview {
    qint64 id = 0;
    qint64 number = 0;
    QString author;
    QString state;    ///< "approved", "changes_requested", "commented"
    QString commitId; ///< The commit reviewed.
    QString body;
    QDateTime submittedAt;
};

/// One request the server received.
struct FakeRequest {
    QByteArray method;
    QString path;
    QUrlQuery query;
    QByteArray authorization;
    QByteArray body;
    QHash<QByteArray, QByteArray> headers; ///< Every request header, names in lower case.
    QString fault; ///< The fault injected into this request (faultKindName(), with the status for Status); empty: none.
};

/// An answer from a test's own handler (see FakeForge::setHandler()).
struct FakeAnswer {
    int status = 200;
    QByteArray body;
    QList<QPair<QByteArray, QByteArray>> headers; ///< Content-Length is added by the server.
};

/// A fault the server injects into the next matching requests.
struct FakeFault {
    enum class Kind {
        Status,          ///< Answer @ref status with a JSON message (and Retry-After if set).
        Malformed,       ///< 200 with a body that is not JSON.
        NotAList,        ///< 200 with a JSON object where a list belongs.
        MissingStatuses, ///< Combined status without its `statuses` array.
        Truncated,       ///< 200 whose body stops before its Content-Length, then the connection closes.
        ShortPage,       ///< The page holds one item fewer than it should; headers unchanged.
        Hang,            ///< Never answer (the request is not applied).
        ApplyThenHang,   ///< Apply the request as usual (a merge merges), then never answer: a client that dies waiting never learns it worked.
        /// Close the connection without an answer, the request not applied: a load balancer or
        /// a restarting forge resetting connections.
        Reset,
        /// Apply the request, then close the connection without an answer: the answer to a
        /// write that took effect is lost on the way (the forge restarted after committing).
        ApplyThenReset,
        /// The page holds one of its items a second time, at its end; headers unchanged: a
        /// forge whose list query joins a row twice.
        ExtraItem,
        /// The page holds its items in reverse order: a forge sorting by another key (Gitea's
        /// status list sorts by a `sort` option). Harmless to a client that orders by itself.
        Reorder,
        /// The last page links (rel="next") to one more page, which holds no items: a forge
        /// counting a row that is gone by the time the next page is read.
        ExtraPage,
        /// The page's first item is an object whose id is a string and which lacks every other
        /// field: a forge (or a proxy) speaking another version of the API.
        BadItem,
        /// The page is answered from the list as it is after @ref shift items were added (or,
        /// negative, removed) at its head since the earlier pages were read: one item is never
        /// served and another served twice, and X-Total-Count and the links say the changed
        /// count. The state does not change. Plays the pages of one read fetched at once and
        /// answered on either side of a change (a pull request opened or closed, a status posted).
        ShiftedPage,
    };
    Kind kind = Kind::Status;
    QByteArray method = "GET";
    QString pathPattern;      ///< Regular expression searched in the request path.
    int page = 0;             ///< Only this page (0: any).
    int times = 1;            ///< How many matching requests it hits.
    int status = 503;
    QByteArray retryAfter;    ///< Retry-After value to send with Status.
    QString message = QStringLiteral("injected fault"); ///< The JSON "message" of a Status answer.
    QList<QPair<QByteArray, QByteArray>> headers; ///< More headers to send with Status (X-RateLimit-*).
    // Last, so that a fault written as a positional list (kind, method, path, page, times,
    // status, …) keeps its meaning.
    int skip = 0;             ///< How many matching requests go through untouched before it hits (a re-read, a retry).
    int shift = 1;            ///< ShiftedPage: items added (positive) or removed (negative) at the list's head.
};

/// A GitHub check run (GitHub flavour).
struct FakeCheckRun {
    qint64 id = 0;
    QString sha;
    QString name;
    QString status;     ///< "queued", "in_progress", "completed"
    QString conclusion; ///< "success", "failure", ... when completed
    QDateTime startedAt;   ///< Invalid (sent as null) while queued.
    QDateTime completedAt;
    QString app = QStringLiteral("github-actions"); ///< The app's slug.
    qint64 checkSuiteId = 7000;
};

/// "status", "reset", "extra-item", … for logs and a campaign's descriptions.
[[nodiscard]] QString faultKindName(FakeFault::Kind kind);

class FakeForge
{
public:
    enum class Flavor { Gitea, GitHub };

    explicit FakeForge(Flavor flavor = Flavor::Gitea);
    ~FakeForge();
    FakeForge(const FakeForge &) = delete;
    FakeForge &operator=(const FakeForge &) = delete;

    /// Starts listening on 127.0.0.1 (a free port) on the server thread.
    [[nodiscard]] Result<void> start();
    /// http://127.0.0.1:PORT/
    [[nodiscard]] QUrl url() const;
    [[nodiscard]] QString owner() const { return QStringLiteral("acme"); }
    [[nodiscard]] QString repo() const { return QStringLiteral("widget"); }

    /// Requests must carry "token T" or "Bearer T" (else 401). Empty: no check.
    void setToken(const QByteArray &token);
    /// Another token the forge accepts besides setToken()'s (a least-privilege writer's).
    void addToken(const QByteArray &token);
    /// Delay before every answer (the server keeps answering others meanwhile).
    void setLatency(std::chrono::milliseconds latency);
    /// The largest page the server serves, whatever limit is asked (Gitea's MAX_RESPONSE_ITEMS). Default 50.
    void setMaxPageSize(int size);

    /// Adds @p pr, or replaces the pull request of the same number (a head that moved, a close).
    void addPullRequest(const FakePullRequest &pr);
    /// Makes @p branch exist at @p sha: POST pulls opens pull requests only of known head branches.
    void setBranch(const QString &branch, const QString &sha);
    /// Every pull request, by number.
    [[nodiscard]] QList<FakePullRequest> pullRequests() const;
    /// Adds a status with the next id; @p at defaults to now.
    FakeStatus addStatus(const QString &sha, const QString &context, const QString &state,
                         const QDateTime &at = QDateTime(), const QString &description = QString());
    /// Every status of @p sha, oldest first.
    [[nodiscard]] QList<FakeStatus> statuses(const QString &sha) const;
    /// Adds a check run with the next check-run id (GitHub flavour); @p at defaults to now.
    FakeCheckRun addCheckRun(const QString &sha, const QString &name, const QString &status, const QString &conclusion,
                             const QDateTime &at = QDateTime(), const QString &app = QStringLiteral("github-actions"));
    /// Every check run of @p sha, oldest first (re-runs included).
    [[nodiscard]] QList<FakeCheckRun> checkRuns(const QString &sha) const;
    /// Ends the check run @p id with @p conclusion now (a queued re-run finishing).
    void completeCheckRun(qint64 id, const QString &conclusion);
    void setFile(const QString &ref, const QString &path, const QByteArray &content);
    void setComparison(const QString &base, const QString &head, int aheadBy, int behindBy);
    /// Protects @p branch, requiring @p contexts.
    void setProtection(const QString &branch, const QStringList &contexts);

    void addFault(const FakeFault &fault);
    void clearFaults();

    /**
     * Lets @p handler answer requests before the forge routes, faults and token check do:
     * an answer takes the request, std::nullopt leaves it to the forge. This lets a test
     * play another HTTP service (an OCI registry, a health endpoint) on the same loopback
     * server. The handler runs on the server thread with the forge's lock held: it must not
     * call this FakeForge. Requests it answers are logged in requests() too.
     */
    void setHandler(std::function<std::optional<FakeAnswer>(const FakeRequest &)> handler);

    /**
     * Makes every open pull request's head follow its branch: before each request, @p resolver
     * gets the head branch and returns its sha (empty: leave it). Lets a test keep the branches
     * in a real git repository. Runs on the server thread with the forge's lock held.
     */
    void setHeadResolver(std::function<QString(const QString &)> resolver);

    /**
     * Deliveries to @p url signed with @p secret for what changes here: statuses added or
     * posted, check runs added, pull requests opened (POST) or merged, closed and reopened, comments
     * (a person's or posted through the API), reviews, and pushes told with notifyPush(). An
     * empty URL turns webhooks off (poll only).
     */
    void setWebhook(const QUrl &url, const QByteArray &secret);
    /// The delivery side: lose, hold, reorder, redeliver, send raw; every delivery made.
    [[nodiscard]] WebhookSender &webhooks();
    /// The test moved @p branch in its repository from @p before to @p after: the forge tells its webhook.
    void notifyPush(const QString &branch, const QString &before, const QString &after, const QString &pusher = QStringLiteral("alice"));
    /// @p author comments @p body on pull request @p number (delivered as issue_comment).
    FakeComment addComment(qint64 number, const QString &author, const QString &body);
    /// The comments of pull request @p number, oldest first (people's and the API's).
    [[nodiscard]] QList<FakeComment> comments(qint64 number) const;
    /// @p author reviews pull request @p number: "approved", "changes_requested" or "commented",
    /// on @p commitId (empty: the pull request's head now).
    FakeReview addReview(qint64 number, const QString &author, const QString &state, const QString &commitId = QString(),
                         const QString &body = QString());
    /// @p by closes pull request @p number without merging it.
    void closePullRequest(qint64 number, const QString &by);
    /// @p by reopens pull request @p number.
    void reopenPullRequest(qint64 number, const QString &by);
    /// Team @p team ("ORG/NAME"; GitHub: the slug) with @p members.
    void setTeam(const QString &team, const QStringList &members);
    /// The login API writes are made as (comments posted through the API, statuses).
    [[nodiscard]] static QString apiUser() { return QStringLiteral("sluice-bot"); }

    /**
     * Lets @p hook see every request first, on the server thread, before the handler, the
     * faults and the routes, and without the forge's lock held: it may call this FakeForge (add a
     * status, move a head, close a pull request), so the request is answered from the changed
     * state. This plays a forge that changes between two reads of one judgement. Requests are
     * served one at a time, so the hook sees them in the order they are answered (and logged).
     */
    void setRequestHook(std::function<void(const FakeRequest &)> hook);

    [[nodiscard]] QList<FakeRequest> requests() const;
    /// The most requests that were received and not yet answered at one time.
    [[nodiscard]] int maxConcurrentRequests() const;
    [[nodiscard]] qint64 requestCount() const;
    /// How many merge requests actually merged a pull request (a hung or refused one does not count).
    [[nodiscard]] int mergesApplied() const;
    void clearRequests();

    struct State;
    class Server;

private:
    std::shared_ptr<State> m_state;
    std::shared_ptr<WebhookSender> m_hooks;
    std::unique_ptr<LoopbackServer> m_http;
    std::shared_ptr<std::unique_ptr<Server>> m_server; // used by the server thread
};

} // namespace Sluice::Test
