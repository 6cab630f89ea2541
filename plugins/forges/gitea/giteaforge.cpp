// SPDX-License-Identifier: Apache-2.0
#include "giteaforge.h"

#include "forgecall.h"
#include "forgewebhook.h"
#include "giteawebhook.h"

#include <sluice/secrets.h>

#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>

#include <algorithm>

namespace Sluice::Forges {

using ForgeHttp::FunctionCall;
using ForgeHttp::JsonFields;
using ForgeHttp::Request;
using ForgeHttp::Response;

using ForgeHttp::jsonBody;
using ForgeHttp::pathSegments;
using ForgeHttp::segment;

Result<PullRequest> parseGiteaPullRequest(const QJsonValue &value)
{
    return ForgeHttp::parsePullRequest(value);
}

Result<CommitStatus> parseGiteaStatus(const QJsonValue &value)
{
    return ForgeHttp::parseCommitStatus(value);
}

Result<PullRequestReview> parseGiteaReview(const QJsonValue &value)
{
    JsonFields f(value, QStringLiteral("review"));
    if (auto r = f.requireObject(); !r)
        return std::unexpected(r.error());
    PullRequestReview review;
    auto id = f.integer(QStringLiteral("id"));
    if (!id)
        return std::unexpected(id.error());
    review.id = *id;
    JsonFields g(value, QStringLiteral("review "), review.id);
    auto state = g.string(QStringLiteral("state"));
    if (!state)
        return std::unexpected(state.error());
    auto login = g.object(QStringLiteral("user")).string(QStringLiteral("login"));
    if (!login)
        return std::unexpected(login.error());
    // Gitea's ReviewStateType (models/issues/review.go): APPROVED, PENDING, COMMENT,
    // REQUEST_CHANGES, REQUEST_REVIEW; a dismissed review keeps its state and says dismissed.
    static const QHash<QString, QString> states{{QStringLiteral("APPROVED"), QStringLiteral("approved")},
                                                {QStringLiteral("PENDING"), QStringLiteral("pending")},
                                                {QStringLiteral("COMMENT"), QStringLiteral("commented")},
                                                {QStringLiteral("REQUEST_CHANGES"), QStringLiteral("changes_requested")},
                                                {QStringLiteral("REQUEST_REVIEW"), QStringLiteral("pending")}};
    const auto it = states.constFind(*state);
    if (it == states.cend())
        return fail(ErrorCode::Malformed, QStringLiteral("review %1: unknown state '%2'").arg(review.id).arg(state->left(40)));
    const QJsonObject o = value.toObject();
    review.state = o.value(QLatin1String("dismissed")).toBool() ? QStringLiteral("dismissed") : *it;
    review.author = *login;
    review.commitId = g.optionalString(QStringLiteral("commit_id"));
    review.submittedAt = ForgeHttp::parseIsoTime(g.optionalString(QStringLiteral("submitted_at")));
    return review;
}

QString giteaPermissionFor(const Request &request)
{
    // Gitea's token scopes (docs.gitea.com, "Access token scope"): the repository routes need
    // read:repository to read and write:repository to write; reading branch protection also
    // needs the token's user to administer the repository.
    const QString path = request.path.isEmpty() ? request.url.path() : request.path;
    const bool write = request.method != "GET" && request.method != "HEAD";
    if (path.contains(QLatin1String("branch_protections")))
        return QStringLiteral("scope read:repository, and admin rights on the repository");
    if (path.contains(QLatin1String("/merge")))
        return QStringLiteral("scope write:repository, and the right to merge into the base branch");
    if (path.contains(QLatin1String("/issues/")))
        return write ? QStringLiteral("scope write:issue") : QStringLiteral("scope read:issue");
    if (path.startsWith(QLatin1String("orgs/")) || path.startsWith(QLatin1String("teams/")) || path.contains(QLatin1String("/orgs/"))
        || path.contains(QLatin1String("/teams/")))
        return QStringLiteral("scope read:organization, and membership of the organization to see its teams");
    return write ? QStringLiteral("scope write:repository") : QStringLiteral("scope read:repository");
}

Result<GiteaSettings> GiteaSettings::fromSettings(const QVariantMap &settings)
{
    GiteaSettings out;
    auto base = ForgeHttp::baseUrl(settings.value(QStringLiteral("url")).toString());
    if (!base)
        return std::unexpected(base.error());
    out.apiBase = base->resolved(QUrl(QStringLiteral("api/v1/")));
    auto repo = ForgeHttp::ownerAndName(settings);
    if (!repo)
        return std::unexpected(repo.error());
    std::tie(out.owner, out.name) = *repo;
    out.client = ForgeHttp::clientOptions(settings, out.apiBase);
    out.client.permissionFor = giteaPermissionFor;
    out.pageSize = int(settings.value(QStringLiteral("page_size"), 50).toLongLong());
    return out;
}

GiteaForge::GiteaForge(const PluginContext &context, GiteaSettings settings, SecretRef token, SecretRef webhookSecret, QObject *parent)
    : Forge(context, parent)
    , m_settings(std::move(settings))
    , m_token(std::move(token))
    , m_webhookSecretRef(std::move(webhookSecret))
{
}

GiteaForge::~GiteaForge() = default;

Result<void> GiteaForge::initialize()
{
    auto authorization = ForgeHttp::authorization(m_token, "token");
    if (!authorization)
        return std::unexpected(authorization.error());
    ForgeHttp::ClientOptions options = m_settings.client;
    options.authorization = *authorization;
    m_client = std::make_unique<ForgeHttp::Client>(std::move(options));
    if (!m_webhookSecretRef.isNull()) {
        auto secret = m_webhookSecretRef.read();
        if (!secret)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("webhook_secret: %1").arg(secret.error().message));
        if (secret->isEmpty())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("webhook_secret: %1 is empty").arg(m_webhookSecretRef.describe()));
        m_webhookSecret = *secret;
    }
    qCDebug(context().logging()).noquote() << "gitea" << m_settings.owner + QLatin1Char('/') + m_settings.name << "at"
                                           << m_settings.apiBase.toString() << "with token from" << m_token.describe();
    return {};
}

Result<ForgeHttp::Client *> GiteaForge::client()
{
    if (!m_client)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("forge '%1' is not initialized").arg(context().instanceName()));
    return m_client.get();
}

qint64 GiteaForge::attemptsSent() const
{
    return m_client ? m_client->attemptsSent() : 0;
}

QString GiteaForge::repoPath(const QString &rest) const
{
    return QStringLiteral("repos/%1/%2/%3").arg(segment(m_settings.owner), segment(m_settings.name), rest);
}

std::unique_ptr<AsyncCall<QList<PullRequest>>> GiteaForge::openPullRequests()
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<QList<PullRequest>>(c.error());
    Request req;
    req.path = repoPath(QStringLiteral("pulls"));
    req.query.addQueryItem(QStringLiteral("state"), QStringLiteral("open"));
    // Only open pull requests were asked for; anything else is a wrong answer.
    return ForgeHttp::listCall<PullRequest>(*c, req, m_settings.pageSize, ForgeHttp::arrayPage, [](const QJsonValue &v) -> Result<PullRequest> {
        auto pr = parseGiteaPullRequest(v);
        if (pr && pr->state != QLatin1String("open"))
            return fail(ErrorCode::Malformed, QStringLiteral("#%1 is '%2'").arg(pr->number).arg(pr->state));
        return pr;
    }, QStringLiteral("open pull requests"));
}

std::unique_ptr<AsyncCall<PullRequest>> GiteaForge::pullRequest(qint64 number)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<PullRequest>(c.error());
    Request req;
    req.path = repoPath(QStringLiteral("pulls/%1").arg(number));
    return ForgeHttp::objectCall<PullRequest>(*c, req, [](const QJsonDocument &doc) { return parseGiteaPullRequest(doc.object()); });
}

std::unique_ptr<AsyncCall<CombinedStatus>> GiteaForge::combinedStatus(const QString &sha)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<CombinedStatus>(c.error());
    ForgeHttp::Client *http = *c;
    Request req;
    req.path = repoPath(QStringLiteral("commits/%1/status").arg(segment(sha)));
    const int pageSize = m_settings.pageSize;
    return std::make_unique<FunctionCall<CombinedStatus>>([http, req, sha, pageSize](FunctionCall<CombinedStatus> *call) {
        auto first = std::make_shared<QJsonObject>();
        auto items = [first](const QJsonDocument &page) -> Result<QJsonArray> {
            if (!page.isObject())
                return fail(ErrorCode::Malformed, QStringLiteral("combined status is not a JSON object"));
            const QJsonValue statuses = page.object().value(QStringLiteral("statuses"));
            // A commit without statuses is answered as Gitea's empty CombinedStatus: statuses
            // null, state "", total_count 0, and no X-Total-Count (routers/api/v1/repo/status.go,
            // GetCombinedCommitStatusByRef). That is pending, not malformed; a missing key is.
            if (statuses.isNull() && page.object().value(QStringLiteral("total_count")).toDouble(-1) == 0)
                return QJsonArray();
            if (!statuses.isArray())
                return fail(ErrorCode::Malformed, QStringLiteral("combined status has no 'statuses' list"));
            if (first->isEmpty())
                *first = page.object();
            return statuses.toArray();
        };
        ForgeHttp::fetchAllPages(*http, req, pageSize, items, call, [call, sha, first](Result<QJsonArray> all) {
            if (!all)
                return call->finishWith(std::unexpected(all.error()));
            CombinedStatus out;
            out.sha = sha;
            for (const QJsonValue &v : std::as_const(*all)) {
                auto s = parseGiteaStatus(v);
                if (!s)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("combined status of %1: %2").arg(sha, s.error().message)));
                out.statuses.append(*s);
            }
            if (out.statuses.isEmpty()) {
                out.state = StatusState::Pending; // no statuses is pending, never success
            } else {
                const QString name = first->value(QStringLiteral("state")).toString();
                const auto state = statusStateFromName(name);
                if (!state)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("combined status of %1: unknown state '%2'").arg(sha, name.left(40))));
                out.state = *state;
            }
            call->finishWith(out);
        });
    });
}

std::unique_ptr<AsyncCall<QList<CommitStatus>>> GiteaForge::statuses(const QString &sha)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<QList<CommitStatus>>(c.error());
    Request req;
    req.path = repoPath(QStringLiteral("commits/%1/statuses").arg(segment(sha)));
    return ForgeHttp::listCall<CommitStatus>(*c, req, m_settings.pageSize, ForgeHttp::arrayPage, parseGiteaStatus,
                                             QStringLiteral("statuses of %1").arg(sha), [](QList<CommitStatus> &list) {
                                                 std::stable_sort(list.begin(), list.end(), ForgeHttp::newerFirst); // newest first
                                             });
}

std::unique_ptr<AsyncCall<CommitStatus>> GiteaForge::postStatus(const QString &sha, const StatusUpdate &status)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<CommitStatus>(c.error());
    if (status.context.isEmpty() || sha.isEmpty())
        return ForgeHttp::failedCall<CommitStatus>(Error{ErrorCode::InvalidArgument, QStringLiteral("a status needs a sha and a context"), {}});
    ForgeHttp::Client *http = *c;
    Request req;
    req.method = "POST";
    req.path = repoPath(QStringLiteral("statuses/%1").arg(segment(sha)));
    QJsonObject body{{QStringLiteral("context"), status.context},
                     {QStringLiteral("state"), statusStateName(status.state)},
                     {QStringLiteral("description"), status.description.left(statusDescriptionLimit())}};
    if (!status.targetUrl.isEmpty())
        body.insert(QStringLiteral("target_url"), status.targetUrl);
    req.body = QJsonDocument(body).toJson(QJsonDocument::Compact);
    return ForgeHttp::objectCall<CommitStatus>(http, req, [](const QJsonDocument &doc) { return parseGiteaStatus(doc.object()); });
}

std::unique_ptr<AsyncCall<QList<PullRequestComment>>> GiteaForge::comments(qint64 number)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<QList<PullRequestComment>>(c.error());
    Request req;
    req.path = repoPath(QStringLiteral("issues/%1/comments").arg(number));
    return ForgeHttp::listCall<PullRequestComment>(*c, req, m_settings.pageSize, ForgeHttp::arrayPage, ForgeHttp::parseComment,
                                                   QStringLiteral("comments of #%1").arg(number));
}

std::unique_ptr<AsyncCall<PullRequestComment>> GiteaForge::postComment(qint64 number, const QString &body)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<PullRequestComment>(c.error());
    Request req;
    req.method = "POST";
    req.path = repoPath(QStringLiteral("issues/%1/comments").arg(number));
    req.body = QJsonDocument(QJsonObject{{QStringLiteral("body"), body}}).toJson(QJsonDocument::Compact);
    return ForgeHttp::objectCall<PullRequestComment>(*c, req, [](const QJsonDocument &doc) { return ForgeHttp::parseComment(doc.object()); });
}

std::unique_ptr<AsyncCall<QList<PullRequestReview>>> GiteaForge::reviews(qint64 number)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<QList<PullRequestReview>>(c.error());
    Request req;
    req.path = repoPath(QStringLiteral("pulls/%1/reviews").arg(number));
    return ForgeHttp::listCall<PullRequestReview>(*c, req, m_settings.pageSize, ForgeHttp::arrayPage, parseGiteaReview,
                                                  QStringLiteral("reviews of #%1").arg(number));
}

std::unique_ptr<AsyncCall<bool>> GiteaForge::isTeamMember(const QString &team, const QString &login)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<bool>(c.error());
    ForgeHttp::Client *http = *c;
    const QString org = team.contains(QLatin1Char('/')) ? team.section(QLatin1Char('/'), 0, 0) : m_settings.owner;
    const QString name = team.contains(QLatin1Char('/')) ? team.section(QLatin1Char('/'), 1) : team;
    Request search;
    search.path = QStringLiteral("orgs/%1/teams/search").arg(segment(org));
    search.query.addQueryItem(QStringLiteral("q"), name);
    search.query.addQueryItem(QStringLiteral("include_desc"), QStringLiteral("false"));
    search.query.addQueryItem(QStringLiteral("limit"), QStringLiteral("50"));
    return std::make_unique<FunctionCall<bool>>([http, search, org, name, login](FunctionCall<bool> *call) {
        // Gitea finds a team by id only: the search (TeamSearch, {data, ok}) gives the id of the
        // team with exactly that name, then its member list answers for the user (404: not one).
        http->send(search, call, [http, call, search, org, name, login](Result<Response> r) {
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            auto doc = jsonBody(*r, ForgeHttp::describe(search));
            if (!doc)
                return call->finishWith(std::unexpected(doc.error()));
            const QJsonValue data = doc->object().value(QStringLiteral("data"));
            if (!data.isArray())
                return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("%1: no 'data' list").arg(ForgeHttp::describe(search))));
            qint64 id = 0;
            for (const QJsonValue &t : data.toArray()) {
                if (t.toObject().value(QStringLiteral("name")).toString().compare(name, Qt::CaseInsensitive) == 0)
                    id = qint64(t.toObject().value(QStringLiteral("id")).toDouble());
            }
            if (id <= 0)
                return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("organization %1 has no team '%2'").arg(org, name)));
            Request member;
            member.path = QStringLiteral("teams/%1/members/%2").arg(id).arg(segment(login));
            http->send(member, call, [call](Result<Response> m) {
                if (!m)
                    return m.error().code == ErrorCode::NotFound ? call->finishWith(false) : call->finishWith(std::unexpected(m.error()));
                call->finishWith(true);
            });
        });
    });
}

Result<WebhookDelivery> GiteaForge::acceptWebhook(const WebhookRequest &request)
{
    static const ForgeHttp::WebhookHeaders headers{{"x-gitea-signature", "x-forgejo-signature"},
                                                   {"x-gitea-delivery", "x-forgejo-delivery"},
                                                   {"x-gitea-event", "x-forgejo-event"}};
    return ForgeHttp::acceptForgeWebhook(request, m_webhookSecret, headers, parseGiteaWebhook,
                                         m_settings.owner + QLatin1Char('/') + m_settings.name, context().logging());
}

std::unique_ptr<AsyncCall<PullRequest>> GiteaForge::createPullRequest(const NewPullRequest &request)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<PullRequest>(c.error());
    auto checked = ForgeHttp::checkNewPullRequest(request, context().project().targetBranch);
    if (!checked)
        return ForgeHttp::failedCall<PullRequest>(checked.error());
    Request post;
    post.path = repoPath(QStringLiteral("pulls"));
    return ForgeHttp::createPullRequestCall(*c, post, *checked);
}

std::unique_ptr<AsyncCall<MergeOutcome>> GiteaForge::merge(qint64 number, const MergeRequest &request)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<MergeOutcome>(c.error());
    ForgeHttp::Client *http = *c;
    Request get;
    get.path = repoPath(QStringLiteral("pulls/%1").arg(number));
    Request post;
    post.method = "POST";
    post.path = repoPath(QStringLiteral("pulls/%1/merge").arg(number));
    QJsonObject body{{QStringLiteral("Do"), request.method}};
    if (!request.title.isEmpty())
        body.insert(QStringLiteral("MergeTitleField"), request.title);
    if (!request.message.isEmpty())
        body.insert(QStringLiteral("MergeMessageField"), request.message);
    if (!request.expectedHeadSha.isEmpty())
        body.insert(QStringLiteral("head_commit_id"), request.expectedHeadSha);
    post.body = QJsonDocument(body).toJson(QJsonDocument::Compact);

    // Gitea answers 405 for every merge it will not do (routers/api/v1/repo/pull.go,
    // MergePullRequest): "Please try again later" while the pull request is not in a mergeable
    // state yet (its conflict check has not finished), which passes by itself; "User not allowed
    // to merge PR" and the rest do not.
    ForgeHttp::MergeRefusal refusal;
    refusal.statuses = {405};
    refusal.classify = [](const Response &answer, const QJsonObject &, qint64 pr) {
        const QString said = ForgeHttp::bodyMessage(answer.body);
        if (said.contains(QLatin1String("try again later"), Qt::CaseInsensitive))
            return Error{ErrorCode::Network,
                         QStringLiteral("pull request #%1 cannot be merged yet: Gitea is still checking it (HTTP 405: %2)").arg(pr).arg(said), {}};
        if (said.contains(QLatin1String("not allowed"), Qt::CaseInsensitive))
            return Error{ErrorCode::PermissionDenied,
                         QStringLiteral("pull request #%1: the token's user may not merge it (HTTP 405: %2)").arg(pr).arg(said), {}};
        return Error{ErrorCode::Conflict, QStringLiteral("pull request #%1 is not mergeable (HTTP 405: %2)").arg(pr).arg(said), {}};
    };
    return ForgeHttp::mergeReadingFirst(http, get, post, number, request.expectedHeadSha, refusal);
}

std::unique_ptr<AsyncCall<Comparison>> GiteaForge::compare(const QString &base, const QString &head)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<Comparison>(c.error());
    ForgeHttp::Client *http = *c;
    Request ahead;
    ahead.path = repoPath(QStringLiteral("compare/%1...%2").arg(segment(base), segment(head)));
    Request behind;
    behind.path = repoPath(QStringLiteral("compare/%1...%2").arg(segment(head), segment(base)));
    return std::make_unique<FunctionCall<Comparison>>([http, ahead, behind](FunctionCall<Comparison> *call) {
        // Gitea's compare counts only the commits in head not in base: ask both ways.
        auto out = std::make_shared<Comparison>();
        auto pending = std::make_shared<int>(2);
        auto count = [call, out, pending](const Request &req, int Comparison::*field) {
            return [call, out, pending, req, field](Result<Response> r) {
                if (call->isFinished())
                    return;
                if (!r)
                    return call->finishWith(std::unexpected(r.error()));
                auto doc = jsonBody(*r, ForgeHttp::describe(req));
                if (!doc)
                    return call->finishWith(std::unexpected(doc.error()));
                auto total = JsonFields(doc->object(), ForgeHttp::describe(req)).integer(QStringLiteral("total_commits"));
                if (!total)
                    return call->finishWith(std::unexpected(total.error()));
                (*out).*field = int(*total);
                if (--*pending == 0)
                    call->finishWith(*out);
            };
        };
        http->send(ahead, call, count(ahead, &Comparison::aheadBy));
        http->send(behind, call, count(behind, &Comparison::behindBy));
    });
}

std::unique_ptr<AsyncCall<QByteArray>> GiteaForge::readFile(const QString &path, const QString &ref)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<QByteArray>(c.error());
    if (auto usable = ForgeHttp::checkRepositoryPath(path); !usable)
        return ForgeHttp::failedCall<QByteArray>(usable.error());
    Request req;
    req.path = repoPath(QStringLiteral("raw/%1").arg(pathSegments(path)));
    req.query.addQueryItem(QStringLiteral("ref"), ref);
    return ForgeHttp::rawFileCall(*c, req, path, ref);
}

std::unique_ptr<AsyncCall<QStringList>> GiteaForge::protectedContexts(const QString &branch)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<QStringList>(c.error());
    Request req;
    req.path = repoPath(QStringLiteral("branch_protections/%1").arg(segment(branch)));
    return ForgeHttp::objectCall<QStringList>(*c, req, [what = ForgeHttp::describe(req)](const QJsonDocument &doc) -> Result<QStringList> {
        const QJsonObject o = doc.object();
        if (!o.value(QStringLiteral("enable_status_check")).isBool())
            return fail(ErrorCode::Malformed, QStringLiteral("%1: no 'enable_status_check'").arg(what));
        if (!o.value(QStringLiteral("enable_status_check")).toBool())
            return QStringList();
        const QJsonValue contexts = o.value(QStringLiteral("status_check_contexts"));
        if (!contexts.isArray() && !contexts.isNull())
            return fail(ErrorCode::Malformed, QStringLiteral("%1: 'status_check_contexts' is not a list").arg(what));
        QStringList out;
        for (const QJsonValue &v : contexts.toArray())
            out.append(v.toString());
        return out;
    });
}

Result<std::unique_ptr<Forge>> GiteaForge::withCredential(const SecretRef &token)
{
    auto other = std::make_unique<GiteaForge>(context(), m_settings, token);
    if (auto ready = other->initialize(); !ready)
        return std::unexpected(ready.error());
    return std::unique_ptr<Forge>(std::move(other));
}

Result<std::unique_ptr<PluginInstance>> GiteaForgeFactory::create(const PluginContext &context)
{
    auto settings = GiteaSettings::fromSettings(context.settings());
    if (!settings)
        return std::unexpected(settings.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<GiteaForge>(context, *settings, context.secret(QStringLiteral("token")),
                                                                        context.secret(QStringLiteral("webhook_secret"))));
}

} // namespace Sluice::Forges
