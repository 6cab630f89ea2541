// SPDX-License-Identifier: Apache-2.0
#include "fakeforge.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QMutex>
#include <QRegularExpression>
#include <QSet>

#include <algorithm>

namespace Sluice::Test {

struct FakeForge::State {
    mutable QMutex mutex;
    FakeForge::Flavor flavor = FakeForge::Flavor::Gitea;
    QList<FakeCheckRun> checkRuns;
    qint64 nextCheckRunId = 5000;
    QByteArray token;
    QList<QByteArray> otherTokens;
    std::chrono::milliseconds latency{0};
    int maxPageSize = 50;
    QMap<qint64, FakePullRequest> pulls;
    QHash<QString, QString> branches; // name → sha
    QList<FakeStatus> statuses; // oldest first
    QHash<QString, QList<int>> statusesBySha; // indexes into statuses
    QHash<int, QJsonObject> statusJson;       // answer shape of statuses[i], built once (statuses never change)
    qint64 nextStatusId = 1;
    QHash<QString, QByteArray> files; // ref + '\n' + path
    QHash<QString, QPair<int, int>> comparisons; // base...head
    QHash<QString, QStringList> protections;     // branch → required contexts
    QList<FakeFault> faults;
    std::function<std::optional<FakeAnswer>(const FakeRequest &)> handler;
    std::function<QString(const QString &)> headResolver;
    std::function<void(const FakeRequest &)> requestHook;
    QList<FakeRequest> log;
    int inFlight = 0;
    int maxInFlight = 0;
    int mergesApplied = 0;
    QSet<qint64> computingShown; // pull requests whose mergeability a refused merge showed as being computed
    std::shared_ptr<WebhookSender> hooks;
    QList<FakeComment> comments;
    QList<FakeReview> reviews;
    QMap<QString, QStringList> teams; // "org/name" → members; a Gitea team's id is its place here + 1
    qint64 nextCommentId = 9000;
    qint64 nextReviewId = 300;
    // Per list (path and query without the page), the whole list as its page 1 was last
    // served; kept only while a shifted page is pending (see paged()).
    QHash<QString, QJsonArray> firstPageLists;
};

namespace {

QString iso(const QDateTime &t)
{
    return t.toUTC().toString(Qt::ISODate);
}

// @p now is the answer's time, in ISO 8601; @p base the server's URL, encoded.
QJsonObject prJson(const FakePullRequest &pr, const QString &base, const QString &now, bool github = false)
{
    if (github) {
        return QJsonObject{
            {QStringLiteral("id"), pr.number + 1000},
            {QStringLiteral("number"), pr.number},
            {QStringLiteral("title"), pr.title},
            {QStringLiteral("state"), pr.state},
            {QStringLiteral("merged_at"), pr.merged ? QJsonValue(now) : QJsonValue()},
            {QStringLiteral("merge_commit_sha"), pr.mergeCommit.isEmpty() ? QJsonValue() : QJsonValue(pr.mergeCommit)},
            {QStringLiteral("html_url"), QStringLiteral("https://github.example/acme/widget/pull/%1").arg(pr.number)},
            {QStringLiteral("updated_at"), now},
            {QStringLiteral("head"), QJsonObject{{QStringLiteral("ref"), pr.headRef}, {QStringLiteral("sha"), pr.headSha}}},
            {QStringLiteral("base"), QJsonObject{{QStringLiteral("ref"), pr.baseRef}}},
        };
    }
    return QJsonObject{
        {QStringLiteral("id"), pr.number + 1000},
        {QStringLiteral("number"), pr.number},
        {QStringLiteral("title"), pr.title},
        {QStringLiteral("state"), pr.state},
        {QStringLiteral("merged"), pr.merged},
        {QStringLiteral("merge_commit_sha"), pr.mergeCommit.isEmpty() ? QJsonValue() : QJsonValue(pr.mergeCommit)},
        {QStringLiteral("html_url"), base + QStringLiteral("acme/widget/pulls/") + QString::number(pr.number)},
        {QStringLiteral("updated_at"), now},
        {QStringLiteral("head"), QJsonObject{{QStringLiteral("ref"), pr.headRef}, {QStringLiteral("sha"), pr.headSha},
                                             {QStringLiteral("label"), pr.headRef}}},
        {QStringLiteral("base"), QJsonObject{{QStringLiteral("ref"), pr.baseRef}, {QStringLiteral("label"), pr.baseRef}}},
    };
}

QJsonObject statusJson(const FakeStatus &s, bool github = false)
{
    // Gitea names the state "status" in answers and "state" in CreateStatusOption; GitHub "state".
    return QJsonObject{{QStringLiteral("id"), s.id},
                       {QStringLiteral("context"), s.context},
                       {github ? QStringLiteral("state") : QStringLiteral("status"), s.state},
                       {QStringLiteral("description"), s.description},
                       {QStringLiteral("target_url"), s.targetUrl},
                       {QStringLiteral("created_at"), iso(s.createdAt)},
                       {QStringLiteral("updated_at"), iso(s.updatedAt)},
                       {QStringLiteral("creator"), QJsonObject{{QStringLiteral("login"), QStringLiteral("ci-bot")}}}};
}

using Answer = LoopbackAnswer;

QJsonObject checkRunJson(const FakeCheckRun &c, const QString &base)
{
    // GitHub's check run (REST "Get a check run"): started_at, completed_at and conclusion are
    // documented nullable, and a queued run has neither time; app and check_suite say who made it.
    const QString jobUrl = QStringLiteral("https://github.example/acme/widget/actions/runs/%1/job/%2").arg(c.checkSuiteId).arg(c.id);
    return QJsonObject{{QStringLiteral("id"), c.id},
                       {QStringLiteral("name"), c.name},
                       {QStringLiteral("head_sha"), c.sha},
                       {QStringLiteral("status"), c.status},
                       {QStringLiteral("conclusion"), c.conclusion.isEmpty() ? QJsonValue() : QJsonValue(c.conclusion)},
                       {QStringLiteral("started_at"), c.startedAt.isValid() ? QJsonValue(iso(c.startedAt)) : QJsonValue()},
                       {QStringLiteral("completed_at"), c.completedAt.isValid() ? QJsonValue(iso(c.completedAt)) : QJsonValue()},
                       {QStringLiteral("details_url"), jobUrl},
                       {QStringLiteral("html_url"), jobUrl},
                       {QStringLiteral("url"), base + QStringLiteral("repos/acme/widget/check-runs/%1").arg(c.id)},
                       {QStringLiteral("app"), QJsonObject{{QStringLiteral("slug"), c.app}}},
                       {QStringLiteral("check_suite"), QJsonObject{{QStringLiteral("id"), c.checkSuiteId}}}};
}

Answer jsonAnswer(const QJsonDocument &doc, int status = 200)
{
    return LoopbackAnswer::json(doc, status);
}

Answer message(int status, const QString &text)
{
    return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("message"), text}}), status);
}

QJsonObject userJson(const QString &login)
{
    // Gitea's User (login, and the older username) and GitHub's simple user share these.
    return QJsonObject{{QStringLiteral("id"), double(qHash(login) % 100000 + 1)},
                       {QStringLiteral("login"), login},
                       {QStringLiteral("username"), login},
                       {QStringLiteral("full_name"), login},
                       {QStringLiteral("type"), QStringLiteral("User")}};
}

QJsonObject repoJson(const QString &fullName = QStringLiteral("acme/widget"))
{
    return QJsonObject{{QStringLiteral("id"), 42},
                       {QStringLiteral("name"), fullName.section(QLatin1Char('/'), 1)},
                       {QStringLiteral("full_name"), fullName},
                       {QStringLiteral("owner"), userJson(fullName.section(QLatin1Char('/'), 0, 0))},
                       {QStringLiteral("private"), false},
                       {QStringLiteral("default_branch"), QStringLiteral("main")}};
}

QJsonObject commentJson(const FakeComment &c)
{
    return QJsonObject{{QStringLiteral("id"), c.id},
                       {QStringLiteral("body"), c.body},
                       {QStringLiteral("user"), userJson(c.author)},
                       {QStringLiteral("created_at"), iso(c.createdAt)},
                       {QStringLiteral("updated_at"), iso(c.createdAt)},
                       {QStringLiteral("html_url"), QStringLiteral("https://forge.example/acme/widget/pulls/%1#issuecomment-%2").arg(c.number).arg(c.id)}};
}

QJsonObject reviewJson(const FakeReview &r, bool github)
{
    // Gitea's PullReview states: APPROVED, REQUEST_CHANGES, COMMENT; GitHub's: APPROVED,
    // CHANGES_REQUESTED, COMMENTED (upper case in the REST API, lower case in webhooks).
    QString state = r.state.toUpper();
    if (!github && r.state == QLatin1String("changes_requested"))
        state = QStringLiteral("REQUEST_CHANGES");
    if (!github && r.state == QLatin1String("commented"))
        state = QStringLiteral("COMMENT");
    QJsonObject o{{QStringLiteral("id"), r.id},
                  {QStringLiteral("user"), userJson(r.author)},
                  {QStringLiteral("body"), r.body},
                  {QStringLiteral("state"), state},
                  {QStringLiteral("commit_id"), r.commitId},
                  {QStringLiteral("submitted_at"), iso(r.submittedAt)}};
    if (!github) {
        o.insert(QStringLiteral("dismissed"), false);
        o.insert(QStringLiteral("stale"), false);
        o.insert(QStringLiteral("official"), true);
    }
    return o;
}

QByteArray compact(const QJsonObject &o)
{
    return QJsonDocument(o).toJson(QJsonDocument::Compact);
}

} // namespace

// Webhook payloads, as each forge sends them (Gitea: modules/structs/hook.go; GitHub: "Webhook
// events and payloads"). Called with the state locked; the sender has a lock of its own.
namespace {

const QString PayloadBase = QStringLiteral("https://forge.example/");

bool isGitHub(const FakeForge::State &st)
{
    return st.flavor == FakeForge::Flavor::GitHub;
}

void deliver(FakeForge::State &st, const QByteArray &event, QJsonObject payload)
{
    if (!st.hooks)
        return;
    if (!payload.contains(QStringLiteral("repository")))
        payload.insert(QStringLiteral("repository"), repoJson());
    st.hooks->send(event, compact(payload));
}

void deliverStatus(FakeForge::State &st, const FakeStatus &s)
{
    QJsonObject o{{QStringLiteral("id"), s.id},
                  {QStringLiteral("sha"), s.sha},
                  {QStringLiteral("context"), s.context},
                  {QStringLiteral("state"), s.state},
                  {QStringLiteral("description"), s.description},
                  {QStringLiteral("target_url"), s.targetUrl.isEmpty() ? QJsonValue() : QJsonValue(s.targetUrl)},
                  {QStringLiteral("created_at"), iso(s.createdAt)},
                  {QStringLiteral("updated_at"), iso(s.updatedAt)},
                  {QStringLiteral("sender"), userJson(QStringLiteral("ci-bot"))}};
    if (isGitHub(st)) {
        o.insert(QStringLiteral("name"), QStringLiteral("acme/widget"));
        o.insert(QStringLiteral("commit"), QJsonObject{{QStringLiteral("sha"), s.sha}});
        o.insert(QStringLiteral("branches"), QJsonArray());
    } else {
        o.insert(QStringLiteral("commit"), QJsonObject{{QStringLiteral("id"), s.sha}, {QStringLiteral("message"), QStringLiteral("work")}});
    }
    deliver(st, "status", o);
}

QJsonObject pullPayload(const FakeForge::State &st, const FakePullRequest &pr)
{
    QJsonObject o = prJson(pr, PayloadBase, iso(QDateTime::currentDateTimeUtc()), isGitHub(st));
    o.insert(QStringLiteral("merged"), pr.merged);
    o.insert(QStringLiteral("user"), userJson(FakeForge::apiUser()));
    return o;
}

void deliverPull(FakeForge::State &st, const QString &action, const FakePullRequest &pr, const QString &sender)
{
    // Gitea calls a new push to the head "synchronized", GitHub "synchronize"; a merge is
    // "closed" with pull_request.merged on both.
    QString sent = action;
    if (action == QLatin1String("synchronize") && !isGitHub(st))
        sent = QStringLiteral("synchronized");
    deliver(st, "pull_request", QJsonObject{{QStringLiteral("action"), sent},
                                            {QStringLiteral("number"), pr.number},
                                            {QStringLiteral("pull_request"), pullPayload(st, pr)},
                                            {QStringLiteral("sender"), userJson(sender)}});
}

void deliverComment(FakeForge::State &st, const FakeComment &c)
{
    QJsonObject issue{{QStringLiteral("id"), c.number + 1000}, {QStringLiteral("number"), c.number}, {QStringLiteral("state"), QStringLiteral("open")}};
    QJsonObject o{{QStringLiteral("action"), QStringLiteral("created")},
                  {QStringLiteral("comment"), commentJson(c)},
                  {QStringLiteral("sender"), userJson(c.author)}};
    if (isGitHub(st)) {
        issue.insert(QStringLiteral("pull_request"), QJsonObject{{QStringLiteral("url"), PayloadBase + QStringLiteral("repos/acme/widget/pulls/%1").arg(c.number)}});
    } else {
        issue.insert(QStringLiteral("pull_request"), QJsonObject{{QStringLiteral("merged"), false}});
        o.insert(QStringLiteral("is_pull"), true);
    }
    o.insert(QStringLiteral("issue"), issue);
    deliver(st, "issue_comment", o);
}

void deliverReview(FakeForge::State &st, const FakeReview &r, const FakePullRequest &pr)
{
    if (isGitHub(st)) {
        QJsonObject review = reviewJson(r, true);
        review.insert(QStringLiteral("state"), r.state); // lower case in webhooks
        deliver(st, "pull_request_review", QJsonObject{{QStringLiteral("action"), QStringLiteral("submitted")},
                                                       {QStringLiteral("review"), review},
                                                       {QStringLiteral("pull_request"), pullPayload(st, pr)},
                                                       {QStringLiteral("sender"), userJson(r.author)}});
        return;
    }
    // Gitea: one event type per review type, action "reviewed", no commit of the review's own.
    const QByteArray event = r.state == QLatin1String("approved") ? "pull_request_approved"
                             : r.state == QLatin1String("changes_requested") ? "pull_request_rejected"
                                                                             : "pull_request_comment";
    const QString type = r.state == QLatin1String("approved") ? QStringLiteral("pull_request_review_approved")
                         : r.state == QLatin1String("changes_requested") ? QStringLiteral("pull_request_review_rejected")
                                                                         : QStringLiteral("pull_request_review_comment");
    deliver(st, event, QJsonObject{{QStringLiteral("action"), QStringLiteral("reviewed")},
                                   {QStringLiteral("number"), pr.number},
                                   {QStringLiteral("pull_request"), pullPayload(st, pr)},
                                   {QStringLiteral("sender"), userJson(r.author)},
                                   {QStringLiteral("review"), QJsonObject{{QStringLiteral("type"), type}, {QStringLiteral("content"), r.body}}}});
}

void deliverPush(FakeForge::State &st, const QString &branch, const QString &before, const QString &after, const QString &pusher)
{
    QJsonObject o{{QStringLiteral("ref"), QStringLiteral("refs/heads/") + branch},
                  {QStringLiteral("before"), before.isEmpty() ? QString(40, QLatin1Char('0')) : before},
                  {QStringLiteral("after"), after},
                  {QStringLiteral("compare_url"), PayloadBase + QStringLiteral("acme/widget/compare/%1...%2").arg(before, after)},
                  {QStringLiteral("commits"), QJsonArray()},
                  {QStringLiteral("sender"), userJson(pusher)}};
    if (isGitHub(st)) {
        o.insert(QStringLiteral("created"), before.isEmpty());
        o.insert(QStringLiteral("deleted"), false);
        o.insert(QStringLiteral("forced"), false);
        o.insert(QStringLiteral("pusher"), QJsonObject{{QStringLiteral("name"), pusher}, {QStringLiteral("email"), pusher + QStringLiteral("@example.org")}});
    } else {
        o.insert(QStringLiteral("total_commits"), 0);
        o.insert(QStringLiteral("pusher"), userJson(pusher));
    }
    deliver(st, "push", o);
}

void deliverCheckRun(FakeForge::State &st, const FakeCheckRun &c, const QString &action)
{
    QJsonObject run = checkRunJson(c, PayloadBase);
    run.insert(QStringLiteral("check_suite"), QJsonObject{{QStringLiteral("id"), c.checkSuiteId}, {QStringLiteral("head_sha"), c.sha}});
    run.insert(QStringLiteral("pull_requests"), QJsonArray());
    deliver(st, "check_run", QJsonObject{{QStringLiteral("action"), action},
                                         {QStringLiteral("check_run"), run},
                                         {QStringLiteral("sender"), userJson(QStringLiteral("github-actions[bot]"))}});
}

} // namespace

QString faultKindName(FakeFault::Kind kind)
{
    switch (kind) {
    case FakeFault::Kind::Status: return QStringLiteral("status");
    case FakeFault::Kind::Malformed: return QStringLiteral("malformed");
    case FakeFault::Kind::NotAList: return QStringLiteral("not-a-list");
    case FakeFault::Kind::MissingStatuses: return QStringLiteral("missing-statuses");
    case FakeFault::Kind::Truncated: return QStringLiteral("truncated");
    case FakeFault::Kind::ShortPage: return QStringLiteral("short-page");
    case FakeFault::Kind::Hang: return QStringLiteral("hang");
    case FakeFault::Kind::ApplyThenHang: return QStringLiteral("apply-then-hang");
    case FakeFault::Kind::Reset: return QStringLiteral("reset");
    case FakeFault::Kind::ApplyThenReset: return QStringLiteral("apply-then-reset");
    case FakeFault::Kind::ExtraItem: return QStringLiteral("extra-item");
    case FakeFault::Kind::Reorder: return QStringLiteral("reorder");
    case FakeFault::Kind::ExtraPage: return QStringLiteral("extra-page");
    case FakeFault::Kind::BadItem: return QStringLiteral("bad-item");
    case FakeFault::Kind::ShiftedPage: return QStringLiteral("shifted-page");
    }
    return QStringLiteral("unknown");
}

class FakeForge::Server
{
public:
    Server(std::shared_ptr<State> state, const QUrl &base)
        : m_state(std::move(state))
        , m_base(base)
        , m_baseText(base.toString(QUrl::FullyEncoded))
    {
    }

    // On the server thread: logs the request and answers it after the configured latency.
    Answer serve(const LoopbackRequest &http)
    {
        FakeRequest req;
        req.method = http.method;
        req.path = http.path;
        req.query = http.query;
        req.authorization = http.header("authorization");
        req.headers = http.headers;
        req.body = http.body;
        std::function<void(const FakeRequest &)> hook;
        {
            QMutexLocker lock(&m_state->mutex);
            hook = m_state->requestHook;
        }
        if (hook) // unlocked: it may change the forge's state before this request is answered
            hook(req);
        QMutexLocker lock(&m_state->mutex);
        m_state->log.append(req);
        Answer answer = handle(req);
        answer.delay = m_state->latency;
        if (!answer.hang && !answer.drop)
            m_state->maxInFlight = std::max(m_state->maxInFlight, ++m_state->inFlight);
        return answer;
    }

    void answered()
    {
        QMutexLocker lock(&m_state->mutex);
        --m_state->inFlight;
    }

private:
    // Called with the state locked.
    std::optional<FakeFault> takeFault(const FakeRequest &req, int page)
    {
        for (int i = 0; i < m_state->faults.size(); ++i) {
            FakeFault &f = m_state->faults[i];
            if (f.method != req.method || !QRegularExpression(f.pathPattern).match(req.path).hasMatch())
                continue;
            if (f.page != 0 && f.page != page)
                continue;
            if (f.skip > 0) {
                --f.skip;
                continue;
            }
            FakeFault copy = f;
            if (--f.times <= 0)
                m_state->faults.removeAt(i);
            return copy;
        }
        return std::nullopt;
    }

    // Whether a shifted page is still to be served (called with the state locked).
    bool shiftedPagePending() const
    {
        return std::any_of(m_state->faults.cbegin(), m_state->faults.cend(), [](const FakeFault &f) { return f.kind == FakeFault::Kind::ShiftedPage; });
    }

    static QString listKey(const FakeRequest &req)
    {
        QUrlQuery q = req.query;
        q.removeAllQueryItems(QStringLiteral("page"));
        return req.path + QLatin1Char('?') + q.toString(QUrl::FullyEncoded);
    }

    // Whether page @p page, @p total items counted, is exactly that page of the list as it was
    // when its page 1 was served. A page shifted by as many items as were added at the list's
    // head since then (a replica that has not seen them) is such a page: read with page 1, it
    // is a consistent read of the list at that moment, which no client can (or needs to) tell
    // from any other; the shift then changed nothing (the fault campaign's seeds
    // 0x45464eb294dbe228 and 0x9781e12990874218 took it for an unreadable page).
    bool sameAsFirstRead(const FakeRequest &req, int page, int limit, int total, const QJsonArray &items) const
    {
        const auto it = m_state->firstPageLists.constFind(listKey(req));
        if (it == m_state->firstPageLists.cend() || it->size() != total)
            return false;
        QJsonArray expected;
        for (int v = (page - 1) * limit; v < std::min<int>(total, page * limit); ++v)
            expected.append(it->at(v));
        return expected == items;
    }

    // One page of @p total items; @p item builds the one at an index (only those of the page are built).
    Answer paged(const FakeRequest &req, int total, const std::function<QJsonValue(int)> &item, const std::optional<FakeFault> &fault,
                 const std::function<QJsonDocument(const QJsonArray &)> &wrap = {})
    {
        const int page = std::max(1, req.query.queryItemValue(QStringLiteral("page")).toInt());
        const bool github = m_state->flavor == FakeForge::Flavor::GitHub;
        int limit = req.query.queryItemValue(github ? QStringLiteral("per_page") : QStringLiteral("limit")).toInt();
        if (limit <= 0 || limit > m_state->maxPageSize)
            limit = m_state->maxPageSize;
        // A shifted page shows the list as it would be with |shift| items more (or fewer) at its
        // head: index v of that list is index v - shift of this one.
        const int shift = fault && fault->kind == FakeFault::Kind::ShiftedPage && total > 0 ? fault->shift : 0;
        const int real = total;
        total = std::max(0, total + shift);
        QJsonArray items;
        for (int v = (page - 1) * limit; v < std::min<int>(total, page * limit); ++v)
            items.append(item(std::clamp(v - shift, 0, real - 1)));
        if (page == 1 && shiftedPagePending()) {
            QJsonArray whole;
            for (int v = 0; v < real; ++v)
                whole.append(item(v));
            m_state->firstPageLists.insert(listKey(req), whole);
        }
        const int pages = std::max(1, int((total + limit - 1) / limit));
        // A fault that finds nothing to change on this page (an empty page to cut, a page that
        // links on anyway) changed nothing: the log does not name it.
        bool changed = true;
        if (fault) {
            switch (fault->kind) {
            case FakeFault::Kind::ShortPage:
            case FakeFault::Kind::ExtraItem:
            case FakeFault::Kind::BadItem:
                changed = !items.isEmpty();
                break;
            case FakeFault::Kind::Reorder:
                changed = items.size() > 1;
                break;
            case FakeFault::Kind::ExtraPage:
                changed = page >= pages;
                break;
            case FakeFault::Kind::ShiftedPage:
                changed = shift != 0 && !sameAsFirstRead(req, page, limit, total, items);
                break;
            default:
                break;
            }
            if (!changed && !m_state->log.isEmpty())
                m_state->log.last().fault.clear();
        }
        if (fault && !items.isEmpty()) {
            switch (fault->kind) {
            case FakeFault::Kind::ShortPage:
                items.removeLast();
                break;
            case FakeFault::Kind::ExtraItem:
                items.append(items.first());
                break;
            case FakeFault::Kind::Reorder: {
                QJsonArray reversed;
                for (auto it = items.cend(); it != items.cbegin();)
                    reversed.append(*--it);
                items = reversed;
                break;
            }
            case FakeFault::Kind::BadItem:
                items.replace(0, QJsonObject{{QStringLiteral("id"), QStringLiteral("one")}});
                break;
            default:
                break;
            }
        }
        Answer a = jsonAnswer(wrap ? wrap(items) : QJsonDocument(items));
        if (!github) // GitHub sends no grand total; Link headers only
            a.headers.append(qMakePair(QByteArray("X-Total-Count"), QByteArray::number(total)));
        QList<QByteArray> links;
        auto link = [&](int p, const char *rel) {
            QUrl u = m_base.resolved(QUrl(req.path.mid(1)));
            QUrlQuery q = req.query;
            q.removeAllQueryItems(QStringLiteral("page"));
            q.addQueryItem(QStringLiteral("page"), QString::number(p));
            u.setQuery(q);
            links.append("<" + u.toEncoded() + ">; rel=\"" + rel + "\"");
        };
        if (page < pages) {
            link(page + 1, "next");
            link(pages, "last");
        } else if (fault && fault->kind == FakeFault::Kind::ExtraPage) {
            link(page + 1, "next");
        }
        if (page > 1)
            link(1, "first");
        if (!links.isEmpty())
            a.headers.append(qMakePair(QByteArray("Link"), links.join(", ")));
        return a;
    }

    // Called with the state locked.
    Answer handle(const FakeRequest &req)
    {
        if (m_state->handler) {
            if (std::optional<FakeAnswer> own = m_state->handler(req)) {
                Answer a;
                a.status = own->status;
                a.body = own->body;
                a.headers = own->headers;
                return a;
            }
        }
        if (m_state->headResolver) {
            // Open pull requests follow their branch in a real repository, as a forge's do.
            for (FakePullRequest &pr : m_state->pulls) {
                if (pr.state != QLatin1String("open") || pr.merged)
                    continue;
                if (const QString sha = m_state->headResolver(pr.headRef); !sha.isEmpty())
                    pr.headSha = sha;
            }
        }
        if (!m_state->token.isEmpty()) {
            bool known = false;
            for (const QByteArray &token : QList<QByteArray>{m_state->token} + m_state->otherTokens)
                known = known || req.authorization == "token " + token || req.authorization == "Bearer " + token;
            if (!known)
                return message(401, QStringLiteral("token is required"));
        }

        const int page = std::max(1, req.query.queryItemValue(QStringLiteral("page")).toInt());
        const std::optional<FakeFault> fault = takeFault(req, page);
        if (fault) {
            m_state->log.last().fault = fault->kind == FakeFault::Kind::Status
                ? QStringLiteral("status %1").arg(fault->status)
                : faultKindName(fault->kind);
            switch (fault->kind) {
            case FakeFault::Kind::Status: {
                Answer a = message(fault->status, fault->message);
                if (!fault->retryAfter.isEmpty())
                    a.headers.append(qMakePair(QByteArray("Retry-After"), fault->retryAfter));
                a.headers.append(fault->headers);
                return a;
            }
            case FakeFault::Kind::Malformed: {
                Answer a;
                a.body = "{\"statuses\": [ {\"id\": 1, \"context\": ";
                a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
                return a;
            }
            case FakeFault::Kind::NotAList:
                return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("message"), QStringLiteral("not a list")}}));
            case FakeFault::Kind::Hang: {
                Answer a;
                a.hang = true;
                return a;
            }
            case FakeFault::Kind::Reset: {
                Answer a;
                a.drop = true;
                return a;
            }
            default:
                break; // applied below
            }
        }

        if (std::optional<Answer> team = routeTeams(req))
            return *team;
        static const QRegularExpression giteaPath(QStringLiteral("^/api/v1/repos/([^/]+)/([^/]+)/(.*)$"));
        static const QRegularExpression githubPath(QStringLiteral("^/repos/([^/]+)/([^/]+)/(.*)$"));
        const auto m = (m_state->flavor == FakeForge::Flavor::GitHub ? githubPath : giteaPath).match(req.path);
        if (!m.hasMatch() || m.captured(1) != QLatin1String("acme") || m.captured(2) != QLatin1String("widget"))
            return message(404, QStringLiteral("repository not found"));
        const QString rest = m.captured(3);
        std::optional<Answer> conversation = routeConversation(req, rest, fault);
        Answer a = conversation ? *conversation : m_state->flavor == FakeForge::Flavor::GitHub ? routeGitHub(req, rest, fault) : route(req, rest, fault);
        if (fault && fault->kind == FakeFault::Kind::Truncated)
            a.truncate = true;
        if (fault && fault->kind == FakeFault::Kind::ApplyThenHang)
            a.hang = true;
        if (fault && fault->kind == FakeFault::Kind::ApplyThenReset)
            a.drop = true;
        return a;
    }

    // Teams: Gitea's TeamSearch and team members (by team id), GitHub's team membership.
    std::optional<Answer> routeTeams(const FakeRequest &req)
    {
        if (req.method != "GET")
            return std::nullopt;
        static const QRegularExpression giteaSearch(QStringLiteral("^/api/v1/orgs/([^/]+)/teams/search$"));
        static const QRegularExpression giteaMember(QStringLiteral("^/api/v1/teams/(\\d+)/members/([^/]+)$"));
        static const QRegularExpression githubMembership(QStringLiteral("^/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)$"));
        if (m_state->flavor == FakeForge::Flavor::Gitea) {
            if (auto mm = giteaSearch.match(req.path); mm.hasMatch()) {
                const QString q = req.query.queryItemValue(QStringLiteral("q"));
                QJsonArray data;
                int id = 0;
                for (auto it = m_state->teams.cbegin(); it != m_state->teams.cend(); ++it) {
                    ++id;
                    const QString name = it.key().section(QLatin1Char('/'), 1);
                    if (it.key().section(QLatin1Char('/'), 0, 0) == mm.captured(1) && name.contains(q, Qt::CaseInsensitive))
                        data.append(QJsonObject{{QStringLiteral("id"), id}, {QStringLiteral("name"), name}, {QStringLiteral("permission"), QStringLiteral("write")}});
                }
                return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("data"), data}, {QStringLiteral("ok"), true}}));
            }
            if (auto mm = giteaMember.match(req.path); mm.hasMatch()) {
                const int id = mm.captured(1).toInt();
                if (id < 1 || id > m_state->teams.size())
                    return message(404, QStringLiteral("team not found"));
                const QStringList members = std::next(m_state->teams.cbegin(), id - 1).value();
                if (!members.contains(mm.captured(2)))
                    return message(404, QStringLiteral("user is not a member"));
                return jsonAnswer(QJsonDocument(userJson(mm.captured(2))));
            }
            return std::nullopt;
        }
        if (auto mm = githubMembership.match(req.path); mm.hasMatch()) {
            const auto it = m_state->teams.constFind(mm.captured(1) + QLatin1Char('/') + mm.captured(2));
            if (it == m_state->teams.cend() || !it->contains(mm.captured(3)))
                return message(404, QStringLiteral("Not Found"));
            return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("state"), QStringLiteral("active")}, {QStringLiteral("role"), QStringLiteral("member")}}));
        }
        return std::nullopt;
    }

    // The conversation of a pull request: comments (GET lists, POST writes as the API user)
    // and reviews, in both flavours (GitHub keeps a pull request's comments on its issue).
    std::optional<Answer> routeConversation(const FakeRequest &req, const QString &rest, const std::optional<FakeFault> &fault)
    {
        static const QRegularExpression comments(QStringLiteral("^issues/(\\d+)/comments$"));
        static const QRegularExpression reviews(QStringLiteral("^pulls/(\\d+)/reviews$"));
        const bool github = m_state->flavor == FakeForge::Flavor::GitHub;
        if (auto mm = comments.match(rest); mm.hasMatch()) {
            const qint64 number = mm.captured(1).toLongLong();
            if (req.method == "GET") {
                QList<FakeComment> list;
                for (const FakeComment &c : std::as_const(m_state->comments)) {
                    if (c.number == number)
                        list.append(c);
                }
                return paged(req, int(list.size()), [&](int i) { return QJsonValue(commentJson(list.at(i))); }, fault);
            }
            if (req.method == "POST") {
                const QString body = QJsonDocument::fromJson(req.body).object().value(QStringLiteral("body")).toString();
                if (body.isEmpty())
                    return message(422, github ? QStringLiteral("Validation Failed") : QStringLiteral("body is required"));
                FakeComment c;
                c.id = m_state->nextCommentId++;
                c.number = number;
                c.author = FakeForge::apiUser();
                c.body = body;
                c.createdAt = QDateTime::currentDateTimeUtc();
                m_state->comments.append(c);
                deliverComment(*m_state, c);
                return jsonAnswer(QJsonDocument(commentJson(c)), 201);
            }
        }
        if (auto mm = reviews.match(rest); mm.hasMatch() && req.method == "GET") {
            QList<FakeReview> list;
            for (const FakeReview &r : std::as_const(m_state->reviews)) {
                if (r.number == mm.captured(1).toLongLong())
                    list.append(r);
            }
            return paged(req, int(list.size()), [&](int i) { return QJsonValue(reviewJson(list.at(i), github)); }, fault);
        }
        return std::nullopt;
    }

    // POST pulls, as Gitea (409 for a duplicate, 404 for an unknown branch) or GitHub (422 for both) answers it.
    Answer createPull(const FakeRequest &req, bool github)
    {
        const QJsonObject body = QJsonDocument::fromJson(req.body).object();
        FakePullRequest pr;
        pr.headRef = body.value(QStringLiteral("head")).toString();
        pr.baseRef = body.value(QStringLiteral("base")).toString();
        pr.title = body.value(QStringLiteral("title")).toString();
        if (pr.headRef.isEmpty() || pr.baseRef.isEmpty() || pr.title.isEmpty())
            return message(422, github ? QStringLiteral("Validation Failed") : QStringLiteral("head, base and title are required"));
        if (!m_state->branches.contains(pr.headRef) || !m_state->branches.contains(pr.baseRef))
            return message(github ? 422 : 404, github ? QStringLiteral("Validation Failed: head or base is invalid") : QStringLiteral("branch does not exist"));
        for (const FakePullRequest &other : std::as_const(m_state->pulls)) {
            if (other.state == QLatin1String("open") && other.headRef == pr.headRef && other.baseRef == pr.baseRef)
                return message(github ? 422 : 409, github ? QStringLiteral("A pull request already exists for acme:%1.").arg(pr.headRef)
                                                          : QStringLiteral("pull request already exists for these targets"));
        }
        pr.headSha = m_state->branches.value(pr.headRef);
        pr.number = m_state->pulls.isEmpty() ? 1 : m_state->pulls.lastKey() + 1;
        m_state->pulls.insert(pr.number, pr);
        deliverPull(*m_state, QStringLiteral("opened"), pr, FakeForge::apiUser());
        return jsonAnswer(QJsonDocument(prJson(pr, m_baseText, nowIso(), github)), 201);
    }

    static QString nowIso() { return iso(QDateTime::currentDateTimeUtc()); }

    // The answer shape of statuses[index] (called with the state locked).
    QJsonValue statusAnswer(int index)
    {
        auto it = m_state->statusJson.find(index);
        if (it == m_state->statusJson.end())
            it = m_state->statusJson.insert(index, statusJson(m_state->statuses.at(index), m_state->flavor == FakeForge::Flavor::GitHub));
        return *it;
    }

    // Indexes of the statuses of @p sha, newest first.
    QList<int> newestFirst(const QString &sha) const
    {
        QList<int> out = m_state->statusesBySha.value(sha);
        std::reverse(out.begin(), out.end());
        return out;
    }

    QList<FakeStatus> statusesOf(const QString &sha) const
    {
        QList<FakeStatus> out;
        for (int i : m_state->statusesBySha.value(sha))
            out.append(m_state->statuses.at(i));
        return out;
    }

    Answer route(const FakeRequest &req, const QString &rest, const std::optional<FakeFault> &fault)
    {
        static const QRegularExpression pullOne(QStringLiteral("^pulls/(\\d+)$"));
        static const QRegularExpression pullMerge(QStringLiteral("^pulls/(\\d+)/merge$"));
        static const QRegularExpression combined(QStringLiteral("^commits/([^/]+)/status$"));
        static const QRegularExpression listA(QStringLiteral("^commits/([^/]+)/statuses$"));
        static const QRegularExpression listB(QStringLiteral("^statuses/([^/]+)$"));
        static const QRegularExpression raw(QStringLiteral("^raw/(.+)$"));
        static const QRegularExpression compare(QStringLiteral("^compare/(.+)\\.\\.\\.(.+)$"));

        if (req.method == "GET" && rest == QLatin1String("pulls")) {
            const QString now = nowIso();
            const QString state = req.query.queryItemValue(QStringLiteral("state"));
            QList<const FakePullRequest *> matching;
            // Newest first, as Gitea lists them.
            for (auto it = m_state->pulls.cend(); it != m_state->pulls.cbegin();) {
                --it;
                if (state.isEmpty() || state == QLatin1String("all") || it->state == state)
                    matching.append(&*it);
            }
            return paged(req, int(matching.size()), [&](int i) { return QJsonValue(prJson(*matching.at(i), m_baseText, now)); }, fault);
        }
        if (req.method == "POST" && rest == QLatin1String("pulls"))
            return createPull(req, false);
        if (auto mm = pullOne.match(rest); mm.hasMatch() && req.method == "GET") {
            const auto it = m_state->pulls.constFind(mm.captured(1).toLongLong());
            if (it == m_state->pulls.cend())
                return message(404, QStringLiteral("pull request not found"));
            QJsonObject o = prJson(*it, m_baseText, nowIso());
            // Gitea's "mergeable" is false while the conflict check runs and for a conflict alike.
            o.insert(QStringLiteral("mergeable"), !it->merged && it->mergeabilityPending == 0 && !it->conflicting);
            return jsonAnswer(QJsonDocument(o));
        }
        if (auto mm = pullMerge.match(rest); mm.hasMatch() && req.method == "POST") {
            auto it = m_state->pulls.find(mm.captured(1).toLongLong());
            if (it == m_state->pulls.end())
                return message(404, QStringLiteral("pull request not found"));
            if (it->merged)
                return message(405, QStringLiteral("pull request already merged"));
            // Gitea refuses a pull request whose status is not mergeable yet (still checking, or
            // conflicting) with 405 and "Please try again later" (routers/api/v1/repo/pull.go,
            // MergePullRequest, ErrNotMergeableState); the title is not in the body.
            if (it->mergeabilityPending > 0 || it->conflicting) {
                if (it->mergeabilityPending > 0)
                    --it->mergeabilityPending;
                return message(405, QStringLiteral("Please try again later"));
            }
            const QJsonObject body = QJsonDocument::fromJson(req.body).object();
            const QString expected = body.value(QStringLiteral("head_commit_id")).toString();
            if (!expected.isEmpty() && expected != it->headSha)
                return message(409, QStringLiteral("head moved"));
            it->merged = true;
            ++m_state->mergesApplied;
            it->state = QStringLiteral("closed");
            it->mergeCommit = QStringLiteral("merge-%1").arg(it->headSha);
            deliverPull(*m_state, QStringLiteral("closed"), *it, FakeForge::apiUser());
            Answer a;
            return a;
        }
        if (auto mm = combined.match(rest); mm.hasMatch() && req.method == "GET") {
            const QString sha = mm.captured(1);
            QMap<QString, FakeStatus> latest;
            for (const FakeStatus &s : statusesOf(sha))
                latest.insert(s.context, s); // later ids win
            if (latest.isEmpty() && !fault) {
                // Gitea answers a commit without statuses with its empty CombinedStatus: statuses
                // null, state "", and no X-Total-Count (routers/api/v1/repo/status.go,
                // GetCombinedCommitStatusByRef: `ctx.JSON(http.StatusOK, &api.CombinedStatus{})`).
                return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("state"), QString()},
                                                            {QStringLiteral("sha"), QString()},
                                                            {QStringLiteral("total_count"), 0},
                                                            {QStringLiteral("statuses"), QJsonValue()},
                                                            {QStringLiteral("repository"), QJsonValue()},
                                                            {QStringLiteral("commit_url"), QString()},
                                                            {QStringLiteral("url"), QString()}}));
            }
            QJsonArray all;
            QString state = latest.isEmpty() ? QStringLiteral("pending") : QStringLiteral("success");
            for (const FakeStatus &s : std::as_const(latest)) {
                all.append(statusJson(s)); // small: one per context
                if (s.state == QLatin1String("failure") || s.state == QLatin1String("error"))
                    state = QStringLiteral("failure");
                else if (s.state == QLatin1String("pending") && state == QLatin1String("success"))
                    state = QStringLiteral("pending");
            }
            const bool dropStatuses = fault && fault->kind == FakeFault::Kind::MissingStatuses;
            return paged(req, int(all.size()), [&](int i) { return all.at(i); }, fault, [&](const QJsonArray &items) {
                QJsonObject o{{QStringLiteral("sha"), sha}, {QStringLiteral("state"), state},
                              {QStringLiteral("total_count"), items.size()}};
                if (!dropStatuses)
                    o.insert(QStringLiteral("statuses"), items);
                return QJsonDocument(o);
            });
        }
        QRegularExpressionMatch lm = listA.match(rest);
        if (!lm.hasMatch() && req.method == "GET")
            lm = listB.match(rest);
        if (lm.hasMatch() && req.method == "GET") {
            const QList<int> list = newestFirst(lm.captured(1));
            return paged(req, int(list.size()), [&](int i) { return statusAnswer(list.at(i)); }, fault);
        }
        if (auto mm = listB.match(rest); mm.hasMatch() && req.method == "POST") {
            const QJsonObject body = QJsonDocument::fromJson(req.body).object();
            FakeStatus s;
            s.id = m_state->nextStatusId++;
            s.sha = mm.captured(1);
            s.context = body.value(QStringLiteral("context")).toString();
            s.state = body.value(QStringLiteral("state")).toString();
            s.description = body.value(QStringLiteral("description")).toString();
            s.targetUrl = body.value(QStringLiteral("target_url")).toString();
            s.createdAt = s.updatedAt = QDateTime::currentDateTimeUtc();
            if (s.context.isEmpty() || s.state.isEmpty())
                return message(422, QStringLiteral("context and state are required"));
            m_state->statusesBySha[s.sha].append(int(m_state->statuses.size()));
            m_state->statuses.append(s);
            deliverStatus(*m_state, s);
            return jsonAnswer(QJsonDocument(statusJson(s)), 201);
        }
        if (auto mm = raw.match(rest); mm.hasMatch() && req.method == "GET") {
            const QString ref = req.query.queryItemValue(QStringLiteral("ref"));
            const auto it = m_state->files.constFind(ref + QLatin1Char('\n') + mm.captured(1));
            if (it == m_state->files.cend())
                return message(404, QStringLiteral("file not found"));
            Answer a;
            a.body = *it;
            a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("text/plain; charset=utf-8")));
            return a;
        }
        if (rest.startsWith(QLatin1String("branch_protections/")) && req.method == "GET") {
            const auto it = m_state->protections.constFind(rest.mid(int(strlen("branch_protections/"))));
            if (it == m_state->protections.cend())
                return message(404, QStringLiteral("branch protection not found"));
            return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("enable_status_check"), !it->isEmpty()},
                                                        {QStringLiteral("status_check_contexts"), QJsonArray::fromStringList(*it)}}));
        }
        if (auto mm = compare.match(rest); mm.hasMatch() && req.method == "GET") {
            const auto it = m_state->comparisons.constFind(mm.captured(1) + QStringLiteral("...") + mm.captured(2));
            if (it == m_state->comparisons.cend())
                return message(404, QStringLiteral("comparison not found"));
            QJsonArray commits;
            for (int i = 0; i < it->first; ++i)
                commits.append(QJsonObject{{QStringLiteral("sha"), QStringLiteral("c%1").arg(i)}});
            return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("total_commits"), it->first},
                                                        {QStringLiteral("commits"), commits}}));
        }
        return message(404, QStringLiteral("no route for %1 %2").arg(QString::fromLatin1(req.method), rest));
    }

    Answer routeGitHub(const FakeRequest &req, const QString &rest, const std::optional<FakeFault> &fault)
    {
        static const QRegularExpression pullOne(QStringLiteral("^pulls/(\\d+)$"));
        static const QRegularExpression pullMerge(QStringLiteral("^pulls/(\\d+)/merge$"));
        static const QRegularExpression combined(QStringLiteral("^commits/([^/]+)/status$"));
        static const QRegularExpression list(QStringLiteral("^commits/([^/]+)/statuses$"));
        static const QRegularExpression checks(QStringLiteral("^commits/([^/]+)/check-runs$"));
        static const QRegularExpression post(QStringLiteral("^statuses/([^/]+)$"));
        static const QRegularExpression contents(QStringLiteral("^contents/(.+)$"));
        static const QRegularExpression compare(QStringLiteral("^compare/(.+)\\.\\.\\.(.+)$"));

        if (req.method == "GET" && rest == QLatin1String("pulls")) {
            const QString now = nowIso();
            QList<const FakePullRequest *> matching;
            for (auto it = m_state->pulls.cend(); it != m_state->pulls.cbegin();) {
                --it;
                if (it->state == req.query.queryItemValue(QStringLiteral("state")))
                    matching.append(&*it);
            }
            return paged(req, int(matching.size()), [&](int i) { return QJsonValue(prJson(*matching.at(i), m_baseText, now, true)); }, fault);
        }
        if (req.method == "POST" && rest == QLatin1String("pulls"))
            return createPull(req, true);
        if (auto mm = pullOne.match(rest); mm.hasMatch() && req.method == "GET") {
            const auto it = m_state->pulls.constFind(mm.captured(1).toLongLong());
            if (it == m_state->pulls.cend())
                return message(404, QStringLiteral("Not Found"));
            QJsonObject o = prJson(*it, m_baseText, nowIso(), true);
            o.insert(QStringLiteral("merged"), it->merged);
            // "mergeable" is null while GitHub computes it in the background (REST "Get a pull
            // request"), false for a conflict ("mergeable_state": "dirty").
            const bool computing = it->mergeabilityPending > 0 || m_state->computingShown.contains(it->number);
            o.insert(QStringLiteral("mergeable"), it->merged ? QJsonValue() : computing ? QJsonValue() : QJsonValue(!it->conflicting));
            o.insert(QStringLiteral("mergeable_state"), computing ? QStringLiteral("unknown") : it->conflicting ? QStringLiteral("dirty") : QStringLiteral("clean"));
            return jsonAnswer(QJsonDocument(o));
        }
        if (auto mm = pullMerge.match(rest); mm.hasMatch() && req.method == "PUT") {
            auto it = m_state->pulls.find(mm.captured(1).toLongLong());
            if (it == m_state->pulls.end())
                return message(404, QStringLiteral("Not Found"));
            if (it->merged)
                return message(405, QStringLiteral("Pull Request is not mergeable"));
            // REST "Merge a pull request": 405 when the merge cannot be performed; while
            // mergeability is still being computed the pull request shows "mergeable": null.
            if (it->mergeabilityPending > 0) {
                --it->mergeabilityPending;
                m_state->computingShown.insert(it->number);
                return message(405, QStringLiteral("Pull Request is not mergeable"));
            }
            if (it->conflicting)
                return message(405, QStringLiteral("Pull Request is not mergeable"));
            m_state->computingShown.remove(it->number);
            const QString expected = QJsonDocument::fromJson(req.body).object().value(QStringLiteral("sha")).toString();
            if (!expected.isEmpty() && expected != it->headSha)
                return message(409, QStringLiteral("Head branch was modified"));
            it->merged = true;
            ++m_state->mergesApplied;
            it->state = QStringLiteral("closed");
            it->mergeCommit = QStringLiteral("merge-%1").arg(it->headSha);
            deliverPull(*m_state, QStringLiteral("closed"), *it, FakeForge::apiUser());
            return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("merged"), true}, {QStringLiteral("sha"), it->mergeCommit}}));
        }
        if (auto mm = combined.match(rest); mm.hasMatch() && req.method == "GET") {
            QMap<QString, FakeStatus> latest;
            for (const FakeStatus &st : statusesOf(mm.captured(1)))
                latest.insert(st.context, st);
            const QList<FakeStatus> values = latest.values();
            const bool dropStatuses = fault && fault->kind == FakeFault::Kind::MissingStatuses;
            // REST "Get the combined status for a specific reference": failure if any context is
            // error or failure, pending if there are none or one is pending, else success.
            QString combinedState = values.isEmpty() ? QStringLiteral("pending") : QStringLiteral("success");
            for (const FakeStatus &st : values) {
                if (st.state == QLatin1String("failure") || st.state == QLatin1String("error"))
                    combinedState = QStringLiteral("failure");
                else if (st.state == QLatin1String("pending") && combinedState == QLatin1String("success"))
                    combinedState = QStringLiteral("pending");
            }
            return paged(req, int(values.size()), [&](int i) { return QJsonValue(statusJson(values.at(i), true)); }, fault, [&](const QJsonArray &items) {
                QJsonObject o{{QStringLiteral("sha"), mm.captured(1)}, {QStringLiteral("state"), combinedState},
                              {QStringLiteral("total_count"), int(values.size())}};
                if (!dropStatuses)
                    o.insert(QStringLiteral("statuses"), items);
                return QJsonDocument(o);
            });
        }
        if (auto mm = list.match(rest); mm.hasMatch() && req.method == "GET") {
            const QList<int> all = newestFirst(mm.captured(1));
            return paged(req, int(all.size()), [&](int i) { return statusAnswer(all.at(i)); }, fault);
        }
        if (auto mm = checks.match(rest); mm.hasMatch() && req.method == "GET") {
            // REST "List check runs for a Git reference": filter=latest (the default) lists the
            // most recent run of each name, filter=all every run.
            const bool all = req.query.queryItemValue(QStringLiteral("filter")) == QLatin1String("all");
            QList<FakeCheckRun> runs;
            QHash<QString, int> latestAt;
            for (const FakeCheckRun &c : std::as_const(m_state->checkRuns)) {
                if (c.sha != mm.captured(1))
                    continue;
                if (!all && latestAt.contains(c.name)) {
                    runs[latestAt.value(c.name)] = c; // ids grow: a later run replaces the earlier
                    continue;
                }
                latestAt.insert(c.name, int(runs.size()));
                runs.append(c);
            }
            const bool dropRuns = fault && fault->kind == FakeFault::Kind::MissingStatuses;
            return paged(req, int(runs.size()), [&](int i) { return QJsonValue(checkRunJson(runs.at(i), m_baseText)); }, fault, [&](const QJsonArray &items) {
                QJsonObject o{{QStringLiteral("total_count"), int(runs.size())}};
                if (!dropRuns)
                    o.insert(QStringLiteral("check_runs"), items);
                return QJsonDocument(o);
            });
        }
        if (auto mm = post.match(rest); mm.hasMatch() && req.method == "POST") {
            const QJsonObject body = QJsonDocument::fromJson(req.body).object();
            FakeStatus st;
            st.id = m_state->nextStatusId++;
            st.sha = mm.captured(1);
            st.context = body.value(QStringLiteral("context")).toString();
            st.state = body.value(QStringLiteral("state")).toString();
            st.description = body.value(QStringLiteral("description")).toString();
            st.createdAt = st.updatedAt = QDateTime::currentDateTimeUtc();
            static const QStringList allowed = {QStringLiteral("error"), QStringLiteral("failure"), QStringLiteral("pending"), QStringLiteral("success")};
            if (st.context.isEmpty() || !allowed.contains(st.state))
                return message(422, QStringLiteral("Validation Failed"));
            st.targetUrl = body.value(QStringLiteral("target_url")).toString();
            m_state->statusesBySha[st.sha].append(int(m_state->statuses.size()));
            m_state->statuses.append(st);
            deliverStatus(*m_state, st);
            return jsonAnswer(QJsonDocument(statusJson(st, true)), 201);
        }
        if (auto mm = contents.match(rest); mm.hasMatch() && req.method == "GET") {
            const auto it = m_state->files.constFind(req.query.queryItemValue(QStringLiteral("ref")) + QLatin1Char('\n') + mm.captured(1));
            if (it == m_state->files.cend())
                return message(404, QStringLiteral("Not Found"));
            Answer a;
            a.body = *it;
            a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/vnd.github.raw")));
            return a;
        }
        if (auto mm = compare.match(rest); mm.hasMatch() && req.method == "GET") {
            const auto it = m_state->comparisons.constFind(mm.captured(1) + QStringLiteral("...") + mm.captured(2));
            if (it == m_state->comparisons.cend())
                return message(404, QStringLiteral("Not Found"));
            return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("ahead_by"), it->first},
                                                        {QStringLiteral("behind_by"), it->second},
                                                        {QStringLiteral("merge_base_commit"), QJsonObject{{QStringLiteral("sha"), QStringLiteral("base-of-%1").arg(mm.captured(2))}}}}));
        }
        // GitHub Actions: a check run made by Actions is a job of the same id (REST "Get a job for
        // a workflow run", whose check_run_url names the check run); "Re-run a job from a workflow
        // run" answers 201 and the job runs again as a new, queued check run of the same name.
        static const QRegularExpression job(QStringLiteral("^actions/jobs/(\\d+)$"));
        static const QRegularExpression rerun(QStringLiteral("^actions/jobs/(\\d+)/rerun$"));
        if (auto mm = job.match(rest); mm.hasMatch() && req.method == "GET") {
            for (const FakeCheckRun &c : std::as_const(m_state->checkRuns)) {
                if (c.id == mm.captured(1).toLongLong() && c.app == QLatin1String("github-actions"))
                    return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("id"), c.id},
                                                                {QStringLiteral("run_id"), c.checkSuiteId},
                                                                {QStringLiteral("head_sha"), c.sha},
                                                                {QStringLiteral("name"), c.name},
                                                                {QStringLiteral("status"), c.status},
                                                                {QStringLiteral("conclusion"), c.conclusion.isEmpty() ? QJsonValue() : QJsonValue(c.conclusion)},
                                                                {QStringLiteral("check_run_url"), m_baseText + QStringLiteral("repos/acme/widget/check-runs/%1").arg(c.id)}}));
            }
            return message(404, QStringLiteral("Not Found"));
        }
        if (auto mm = rerun.match(rest); mm.hasMatch() && req.method == "POST") {
            for (const FakeCheckRun &c : std::as_const(m_state->checkRuns)) {
                if (c.id != mm.captured(1).toLongLong() || c.app != QLatin1String("github-actions"))
                    continue;
                FakeCheckRun again = c;
                again.id = m_state->nextCheckRunId++;
                again.status = QStringLiteral("queued");
                again.conclusion.clear();
                again.startedAt = again.completedAt = QDateTime();
                m_state->checkRuns.append(again);
                return jsonAnswer(QJsonDocument(QJsonObject{}), 201);
            }
            return message(404, QStringLiteral("Not Found"));
        }
        static const QRegularExpression protection(QStringLiteral("^branches/(.+)/protection/required_status_checks$"));
        if (auto mm = protection.match(rest); mm.hasMatch() && req.method == "GET") {
            const auto it = m_state->protections.constFind(mm.captured(1));
            if (it == m_state->protections.cend())
                return message(404, QStringLiteral("Branch not protected"));
            QJsonArray required;
            for (const QString &c : *it)
                required.append(QJsonObject{{QStringLiteral("context"), c}, {QStringLiteral("app_id"), QJsonValue()}});
            return jsonAnswer(QJsonDocument(QJsonObject{{QStringLiteral("strict"), true},
                                                        {QStringLiteral("contexts"), QJsonArray::fromStringList(*it)},
                                                        {QStringLiteral("checks"), required}}));
        }
        return message(404, QStringLiteral("Not Found"));
    }

    std::shared_ptr<State> m_state;
    QUrl m_base;
    QString m_baseText;
};

FakeForge::FakeForge(Flavor flavor)
    : m_state(std::make_shared<State>())
    , m_hooks(std::make_shared<WebhookSender>(flavor == Flavor::GitHub ? WebhookSender::Style::GitHub : WebhookSender::Style::Gitea))
    , m_http(std::make_unique<LoopbackServer>(QStringLiteral("fake-forge")))
{
    m_state->flavor = flavor;
    m_state->hooks = m_hooks;
}

void FakeForge::setWebhook(const QUrl &url, const QByteArray &secret)
{
    m_hooks->setTarget(url, secret);
}

WebhookSender &FakeForge::webhooks()
{
    return *m_hooks;
}

void FakeForge::notifyPush(const QString &branch, const QString &before, const QString &after, const QString &pusher)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->branches.insert(branch, after);
    deliverPush(*m_state, branch, before, after, pusher);
    // A push to an open pull request's head synchronizes it.
    for (FakePullRequest &pr : m_state->pulls) {
        if (pr.state == QLatin1String("open") && pr.headRef == branch && pr.headSha != after) {
            pr.headSha = after;
            deliverPull(*m_state, QStringLiteral("synchronize"), pr, pusher);
        }
    }
}

FakeComment FakeForge::addComment(qint64 number, const QString &author, const QString &body)
{
    QMutexLocker lock(&m_state->mutex);
    FakeComment c;
    c.id = m_state->nextCommentId++;
    c.number = number;
    c.author = author;
    c.body = body;
    c.createdAt = QDateTime::currentDateTimeUtc();
    m_state->comments.append(c);
    deliverComment(*m_state, c);
    return c;
}

QList<FakeComment> FakeForge::comments(qint64 number) const
{
    QMutexLocker lock(&m_state->mutex);
    QList<FakeComment> out;
    for (const FakeComment &c : std::as_const(m_state->comments)) {
        if (c.number == number)
            out.append(c);
    }
    return out;
}

FakeReview FakeForge::addReview(qint64 number, const QString &author, const QString &state, const QString &commitId, const QString &body)
{
    QMutexLocker lock(&m_state->mutex);
    const FakePullRequest pr = m_state->pulls.value(number);
    FakeReview r;
    r.id = m_state->nextReviewId++;
    r.number = number;
    r.author = author;
    r.state = state;
    r.commitId = commitId.isEmpty() ? pr.headSha : commitId;
    r.body = body;
    r.submittedAt = QDateTime::currentDateTimeUtc();
    m_state->reviews.append(r);
    // Gitea's payload carries the pull request as it is; the review's commit is what it had then.
    FakePullRequest asReviewed = pr;
    if (m_state->flavor == Flavor::Gitea)
        asReviewed.headSha = r.commitId;
    deliverReview(*m_state, r, asReviewed);
    return r;
}

void FakeForge::closePullRequest(qint64 number, const QString &by)
{
    QMutexLocker lock(&m_state->mutex);
    auto it = m_state->pulls.find(number);
    if (it == m_state->pulls.end())
        return;
    it->state = QStringLiteral("closed");
    deliverPull(*m_state, QStringLiteral("closed"), *it, by);
}

void FakeForge::reopenPullRequest(qint64 number, const QString &by)
{
    QMutexLocker lock(&m_state->mutex);
    auto it = m_state->pulls.find(number);
    if (it == m_state->pulls.end())
        return;
    it->state = QStringLiteral("open");
    deliverPull(*m_state, QStringLiteral("reopened"), *it, by);
}

void FakeForge::setTeam(const QString &team, const QStringList &members)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->teams.insert(team, members);
}

FakeForge::~FakeForge() = default;

Result<void> FakeForge::start()
{
    if (m_server)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("fake forge already started"));
    // The base URL is known only once the server listens; the handler reads it through m_server.
    auto server = std::make_shared<std::unique_ptr<Server>>();
    auto started = m_http->start([server](const LoopbackRequest &r) { return (*server)->serve(r); },
                                 [server] { (*server)->answered(); });
    if (!started)
        return started;
    *server = std::make_unique<Server>(m_state, m_http->url());
    m_server = server;
    return {};
}

QUrl FakeForge::url() const
{
    return m_http->url();
}

void FakeForge::setToken(const QByteArray &token)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->token = token;
}

void FakeForge::addToken(const QByteArray &token)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->otherTokens.append(token);
}

void FakeForge::setLatency(std::chrono::milliseconds latency)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->latency = latency;
}

void FakeForge::setMaxPageSize(int size)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->maxPageSize = std::max(1, size);
}

void FakeForge::addPullRequest(const FakePullRequest &pr)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->pulls.insert(pr.number, pr);
}

void FakeForge::setBranch(const QString &branch, const QString &sha)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->branches.insert(branch, sha);
}

QList<FakePullRequest> FakeForge::pullRequests() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->pulls.values();
}

FakeStatus FakeForge::addStatus(const QString &sha, const QString &context, const QString &state, const QDateTime &at,
                                const QString &description)
{
    QMutexLocker lock(&m_state->mutex);
    FakeStatus s;
    s.id = m_state->nextStatusId++;
    s.sha = sha;
    s.context = context;
    s.state = state;
    s.description = description;
    s.createdAt = s.updatedAt = at.isValid() ? at.toUTC() : QDateTime::currentDateTimeUtc();
    m_state->statusesBySha[s.sha].append(int(m_state->statuses.size()));
    m_state->statuses.append(s);
    deliverStatus(*m_state, s);
    return s;
}

QList<FakeStatus> FakeForge::statuses(const QString &sha) const
{
    QMutexLocker lock(&m_state->mutex);
    QList<FakeStatus> out;
    for (const FakeStatus &s : std::as_const(m_state->statuses)) {
        if (s.sha == sha)
            out.append(s);
    }
    return out;
}

FakeCheckRun FakeForge::addCheckRun(const QString &sha, const QString &name, const QString &status, const QString &conclusion,
                                    const QDateTime &at, const QString &app)
{
    QMutexLocker lock(&m_state->mutex);
    FakeCheckRun c;
    c.id = m_state->nextCheckRunId++;
    c.sha = sha;
    c.name = name;
    c.status = status;
    c.conclusion = conclusion;
    c.app = app;
    if (status != QLatin1String("queued")) // a queued run has not started: started_at is null
        c.startedAt = (at.isValid() ? at.toUTC() : QDateTime::currentDateTimeUtc()).addSecs(-30);
    if (status == QLatin1String("completed"))
        c.completedAt = at.isValid() ? at.toUTC() : QDateTime::currentDateTimeUtc();
    m_state->checkRuns.append(c);
    deliverCheckRun(*m_state, c, status == QLatin1String("completed") ? QStringLiteral("completed") : QStringLiteral("created"));
    return c;
}

QList<FakeCheckRun> FakeForge::checkRuns(const QString &sha) const
{
    QMutexLocker lock(&m_state->mutex);
    QList<FakeCheckRun> out;
    for (const FakeCheckRun &c : std::as_const(m_state->checkRuns)) {
        if (c.sha == sha)
            out.append(c);
    }
    return out;
}

void FakeForge::completeCheckRun(qint64 id, const QString &conclusion)
{
    QMutexLocker lock(&m_state->mutex);
    for (FakeCheckRun &c : m_state->checkRuns) {
        if (c.id != id)
            continue;
        const QDateTime now = QDateTime::currentDateTimeUtc();
        if (!c.startedAt.isValid())
            c.startedAt = now;
        c.status = QStringLiteral("completed");
        c.conclusion = conclusion;
        c.completedAt = now;
        deliverCheckRun(*m_state, c, QStringLiteral("completed"));
    }
}

void FakeForge::setFile(const QString &ref, const QString &path, const QByteArray &content)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->files.insert(ref + QLatin1Char('\n') + path, content);
}

void FakeForge::setComparison(const QString &base, const QString &head, int aheadBy, int behindBy)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->comparisons.insert(base + QStringLiteral("...") + head, {aheadBy, behindBy});
    m_state->comparisons.insert(head + QStringLiteral("...") + base, {behindBy, aheadBy});
}

void FakeForge::setProtection(const QString &branch, const QStringList &contexts)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->protections.insert(branch, contexts);
}

void FakeForge::addFault(const FakeFault &fault)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->faults.append(fault);
}

void FakeForge::setHandler(std::function<std::optional<FakeAnswer>(const FakeRequest &)> handler)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->handler = std::move(handler);
}

void FakeForge::setRequestHook(std::function<void(const FakeRequest &)> hook)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->requestHook = std::move(hook);
}

void FakeForge::setHeadResolver(std::function<QString(const QString &)> resolver)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->headResolver = std::move(resolver);
}

void FakeForge::clearFaults()
{
    QMutexLocker lock(&m_state->mutex);
    m_state->faults.clear();
}

QList<FakeRequest> FakeForge::requests() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->log;
}

int FakeForge::maxConcurrentRequests() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->maxInFlight;
}

qint64 FakeForge::requestCount() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->log.size();
}

int FakeForge::mergesApplied() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->mergesApplied;
}

void FakeForge::clearRequests()
{
    QMutexLocker lock(&m_state->mutex);
    m_state->log.clear();
}

} // namespace Sluice::Test
