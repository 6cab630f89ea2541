// SPDX-License-Identifier: Apache-2.0
#include "githubforge.h"

#include "forgecall.h"

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
using ForgeHttp::segment;

namespace {

// A list page that is an object holding the items under @p key, with GitHub's grand total
// in "total_count" (check runs): the total is remembered to check the sum at the end.
ForgeHttp::PageItems objectPage(const QString &key, std::shared_ptr<qint64> total)
{
    return [key, total](const QJsonDocument &page) -> Result<QJsonArray> {
        if (!page.isObject())
            return fail(ErrorCode::Malformed, QStringLiteral("page is not a JSON object"));
        const QJsonValue items = page.object().value(key);
        if (!items.isArray())
            return fail(ErrorCode::Malformed, QStringLiteral("page has no '%1' list").arg(key));
        const QJsonValue count = page.object().value(QStringLiteral("total_count"));
        if (total && count.isDouble())
            *total = qint64(count.toDouble());
        return items.toArray();
    };
}

} // namespace

Result<CommitStatus> parseCheckRun(const QJsonValue &value)
{
    JsonFields f(value, QStringLiteral("check run"));
    if (auto r = f.requireObject(); !r)
        return std::unexpected(r.error());
    CommitStatus s;
    auto id = f.integer(QStringLiteral("id"));
    if (!id)
        return std::unexpected(id.error());
    s.id = *id;
    JsonFields g(value, QStringLiteral("check run "), s.id);
    auto name = g.string(QStringLiteral("name"));
    auto status = g.string(QStringLiteral("status"));
    if (!name)
        return std::unexpected(name.error());
    if (!status)
        return std::unexpected(status.error());
    s.context = *name;
    if (*status != QLatin1String("completed")) {
        s.state = StatusState::Pending;
    } else {
        const QString conclusion = g.optionalString(QStringLiteral("conclusion"));
        static const QHash<QString, StatusState> states = {
            {QStringLiteral("success"), StatusState::Success},     {QStringLiteral("failure"), StatusState::Failure},
            {QStringLiteral("timed_out"), StatusState::Failure},   {QStringLiteral("startup_failure"), StatusState::Failure},
            {QStringLiteral("cancelled"), StatusState::Cancelled}, {QStringLiteral("skipped"), StatusState::Skipped},
            {QStringLiteral("neutral"), StatusState::Warning},     {QStringLiteral("action_required"), StatusState::Pending},
            {QStringLiteral("stale"), StatusState::Pending},
        };
        const auto it = states.constFind(conclusion);
        if (it == states.cend())
            return fail(ErrorCode::Malformed, QStringLiteral("check run %1 (%2): unknown conclusion '%3'").arg(s.id).arg(s.context, conclusion.left(40)));
        s.state = *it;
    }
    auto started = g.time(QStringLiteral("started_at"));
    auto completed = g.time(QStringLiteral("completed_at"));
    if (!started && !completed)
        return std::unexpected(started.error());
    s.createdAt = started ? *started : *completed;
    s.updatedAt = completed ? *completed : *started;
    return s;
}

Result<GitHubSettings> GitHubSettings::fromSettings(const QVariantMap &settings)
{
    GitHubSettings out;
    auto base = ForgeHttp::baseUrl(settings.value(QStringLiteral("url"), QStringLiteral("https://api.github.com/")).toString());
    if (!base)
        return std::unexpected(base.error());
    auto repo = ForgeHttp::ownerAndName(settings);
    if (!repo)
        return std::unexpected(repo.error());
    std::tie(out.owner, out.name) = *repo;
    out.client = ForgeHttp::clientOptions(settings, *base);
    out.client.accept = "application/vnd.github+json";
    out.client.extraHeaders.append(qMakePair(QByteArray("X-GitHub-Api-Version"), QByteArray("2022-11-28")));
    out.checkRuns = settings.value(QStringLiteral("check_runs"), true).toBool();
    out.pageSize = int(settings.value(QStringLiteral("page_size"), 100).toLongLong());
    return out;
}

GitHubForge::GitHubForge(const PluginContext &context, GitHubSettings settings, SecretRef token, QObject *parent)
    : Forge(context, parent)
    , m_settings(std::move(settings))
    , m_token(std::move(token))
{
}

GitHubForge::~GitHubForge() = default;

Result<void> GitHubForge::initialize()
{
    auto authorization = ForgeHttp::authorization(m_token, "Bearer");
    if (!authorization)
        return std::unexpected(authorization.error());
    ForgeHttp::ClientOptions options = m_settings.client;
    options.authorization = *authorization;
    m_client = std::make_unique<ForgeHttp::Client>(std::move(options));
    qCDebug(context().logging()).noquote() << "github" << m_settings.owner + QLatin1Char('/') + m_settings.name << "at"
                                           << m_settings.client.apiBase.toString() << "with token from" << m_token.describe();
    return {};
}

QString GitHubForge::repoPath(const QString &rest) const
{
    return QStringLiteral("repos/%1/%2/%3").arg(segment(m_settings.owner), segment(m_settings.name), rest);
}

// Every call needs the client initialize() made.
#define SLUICE_GITHUB_CLIENT(T)                                                                                                \
    if (!m_client)                                                                                                             \
        return ForgeHttp::failedCall<T>(Error{ErrorCode::InvalidArgument,                                                      \
                                              QStringLiteral("forge '%1' is not initialized").arg(context().instanceName()), {}}); \
    ForgeHttp::Client *http = m_client.get();

std::unique_ptr<AsyncCall<QList<PullRequest>>> GitHubForge::openPullRequests()
{
    SLUICE_GITHUB_CLIENT(QList<PullRequest>)
    Request req;
    req.path = repoPath(QStringLiteral("pulls"));
    req.query.addQueryItem(QStringLiteral("state"), QStringLiteral("open"));
    return ForgeHttp::listCall<PullRequest>(http, req, m_settings.pageSize, ForgeHttp::arrayPage, ForgeHttp::parsePullRequest,
                                            QStringLiteral("open pull requests"));
}

std::unique_ptr<AsyncCall<PullRequest>> GitHubForge::pullRequest(qint64 number)
{
    SLUICE_GITHUB_CLIENT(PullRequest)
    Request req;
    req.path = repoPath(QStringLiteral("pulls/%1").arg(number));
    return ForgeHttp::objectCall<PullRequest>(http, req, [](const QJsonDocument &doc) { return ForgeHttp::parsePullRequest(doc.object()); });
}

std::unique_ptr<AsyncCall<CombinedStatus>> GitHubForge::combinedStatus(const QString &sha)
{
    SLUICE_GITHUB_CLIENT(CombinedStatus)
    Request req;
    req.path = repoPath(QStringLiteral("commits/%1/status").arg(segment(sha)));
    const int pageSize = m_settings.pageSize;
    return std::make_unique<FunctionCall<CombinedStatus>>([http, req, sha, pageSize](FunctionCall<CombinedStatus> *call) {
        auto total = std::make_shared<qint64>(-1);
        ForgeHttp::fetchAllPages(*http, req, pageSize, objectPage(QStringLiteral("statuses"), total), call, [call, sha, total](Result<QJsonArray> all) {
            if (!all)
                return call->finishWith(std::unexpected(all.error()));
            if (*total >= 0 && *total != all->size())
                return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("combined status of %1: %2 statuses read, total_count says %3").arg(sha).arg(all->size()).arg(*total)));
            CombinedStatus out;
            out.sha = sha;
            for (const QJsonValue &v : std::as_const(*all)) {
                auto s = ForgeHttp::parseCommitStatus(v);
                if (!s)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("combined status of %1: %2").arg(sha, s.error().message)));
                out.statuses.append(*s);
            }
            out.state = ForgeHttp::combinedState(out.statuses);
            call->finishWith(out);
        });
    });
}

std::unique_ptr<AsyncCall<QList<CommitStatus>>> GitHubForge::statuses(const QString &sha)
{
    SLUICE_GITHUB_CLIENT(QList<CommitStatus>)
    Request statusReq;
    statusReq.path = repoPath(QStringLiteral("commits/%1/statuses").arg(segment(sha)));
    Request checkReq;
    checkReq.path = repoPath(QStringLiteral("commits/%1/check-runs").arg(segment(sha)));
    const int pageSize = m_settings.pageSize;
    const bool checkRuns = m_settings.checkRuns;
    return std::make_unique<FunctionCall<QList<CommitStatus>>>([=](FunctionCall<QList<CommitStatus>> *call) {
        // Statuses and check runs are read at once; the answer waits for both, and either failing fails it.
        auto out = std::make_shared<QList<CommitStatus>>();
        auto pending = std::make_shared<int>(checkRuns ? 2 : 1);
        auto collect = [call, out, pending, sha](const QString &what, Result<QJsonArray> all,
                                                 std::function<Result<CommitStatus>(const QJsonValue &)> parse) {
            if (call->isFinished())
                return;
            if (!all)
                return call->finishWith(std::unexpected(all.error()));
            for (const QJsonValue &v : std::as_const(*all)) {
                auto s = parse(v);
                if (!s)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("%1 of %2: %3").arg(what, sha, s.error().message)));
                out->append(*s);
            }
            if (--*pending == 0) {
                std::stable_sort(out->begin(), out->end(), ForgeHttp::newerFirst);
                call->finishWith(*out);
            }
        };
        ForgeHttp::fetchAllPages(*http, statusReq, pageSize, ForgeHttp::arrayPage, call, [collect](Result<QJsonArray> all) {
            collect(QStringLiteral("statuses"), std::move(all), ForgeHttp::parseCommitStatus);
        });
        if (checkRuns) {
            auto total = std::make_shared<qint64>(-1);
            ForgeHttp::fetchAllPages(*http, checkReq, pageSize, objectPage(QStringLiteral("check_runs"), total), call,
                                     [collect, total, sha](Result<QJsonArray> all) {
                                         if (all && *total >= 0 && *total != all->size())
                                             all = fail(ErrorCode::Malformed, QStringLiteral("check runs of %1: %2 read, total_count says %3").arg(sha).arg(all->size()).arg(*total));
                                         collect(QStringLiteral("check runs"), std::move(all), parseCheckRun);
                                     });
        }
    });
}

std::unique_ptr<AsyncCall<CommitStatus>> GitHubForge::postStatus(const QString &sha, const StatusUpdate &status)
{
    SLUICE_GITHUB_CLIENT(CommitStatus)
    static const QList<StatusState> postable = {StatusState::Error, StatusState::Failure, StatusState::Pending, StatusState::Success};
    if (status.context.isEmpty() || sha.isEmpty() || !postable.contains(status.state))
        return ForgeHttp::failedCall<CommitStatus>(Error{ErrorCode::InvalidArgument,
                                                         QStringLiteral("GitHub takes a sha, a context and a state of error, failure, pending or success"), {}});
    Request req;
    req.method = "POST";
    req.path = repoPath(QStringLiteral("statuses/%1").arg(segment(sha)));
    QJsonObject body{{QStringLiteral("context"), status.context},
                     {QStringLiteral("state"), statusStateName(status.state)},
                     {QStringLiteral("description"), status.description.left(140)}}; // GitHub's limit
    if (!status.targetUrl.isEmpty())
        body.insert(QStringLiteral("target_url"), status.targetUrl);
    req.body = QJsonDocument(body).toJson(QJsonDocument::Compact);
    return ForgeHttp::objectCall<CommitStatus>(http, req, [](const QJsonDocument &doc) { return ForgeHttp::parseCommitStatus(doc.object()); });
}

std::unique_ptr<AsyncCall<PullRequest>> GitHubForge::createPullRequest(const NewPullRequest &request)
{
    SLUICE_GITHUB_CLIENT(PullRequest)
    auto checked = ForgeHttp::checkNewPullRequest(request, context().project().targetBranch);
    if (!checked)
        return ForgeHttp::failedCall<PullRequest>(checked.error());
    Request post;
    post.path = repoPath(QStringLiteral("pulls"));
    return ForgeHttp::createPullRequestCall(http, post, *checked);
}

std::unique_ptr<AsyncCall<MergeOutcome>> GitHubForge::merge(qint64 number, const MergeRequest &request)
{
    SLUICE_GITHUB_CLIENT(MergeOutcome)
    Request get;
    get.path = repoPath(QStringLiteral("pulls/%1").arg(number));
    Request put;
    put.method = "PUT";
    put.path = repoPath(QStringLiteral("pulls/%1/merge").arg(number));
    QJsonObject body{{QStringLiteral("merge_method"), request.method}};
    if (!request.expectedHeadSha.isEmpty())
        body.insert(QStringLiteral("sha"), request.expectedHeadSha);
    if (!request.title.isEmpty())
        body.insert(QStringLiteral("commit_title"), request.title);
    if (!request.message.isEmpty())
        body.insert(QStringLiteral("commit_message"), request.message);
    put.body = QJsonDocument(body).toJson(QJsonDocument::Compact);
    return ForgeHttp::mergeReadingFirst(http, get, put, number, request.expectedHeadSha);
}

std::unique_ptr<AsyncCall<Comparison>> GitHubForge::compare(const QString &base, const QString &head)
{
    SLUICE_GITHUB_CLIENT(Comparison)
    Request req;
    req.path = repoPath(QStringLiteral("compare/%1...%2").arg(segment(base), segment(head)));
    req.query.addQueryItem(QStringLiteral("per_page"), QStringLiteral("1")); // counts only, not the commits
    return ForgeHttp::objectCall<Comparison>(http, req, [what = ForgeHttp::describe(req)](const QJsonDocument &doc) -> Result<Comparison> {
        JsonFields f(doc.object(), what);
        auto ahead = f.integer(QStringLiteral("ahead_by"));
        auto behind = f.integer(QStringLiteral("behind_by"));
        auto mergeBase = f.object(QStringLiteral("merge_base_commit")).string(QStringLiteral("sha"));
        for (const auto *v : {&ahead, &behind}) {
            if (!*v)
                return std::unexpected(v->error());
        }
        if (!mergeBase)
            return std::unexpected(mergeBase.error());
        return Comparison{*mergeBase, int(*ahead), int(*behind)};
    });
}

std::unique_ptr<AsyncCall<QByteArray>> GitHubForge::readFile(const QString &path, const QString &ref)
{
    SLUICE_GITHUB_CLIENT(QByteArray)
    if (auto usable = ForgeHttp::checkRepositoryPath(path); !usable)
        return ForgeHttp::failedCall<QByteArray>(usable.error());
    Request req;
    req.path = repoPath(QStringLiteral("contents/%1").arg(ForgeHttp::pathSegments(path)));
    req.query.addQueryItem(QStringLiteral("ref"), ref);
    req.accept = "application/vnd.github.raw";
    return ForgeHttp::rawFileCall(http, req, path, ref);
}

std::unique_ptr<AsyncCall<QStringList>> GitHubForge::protectedContexts(const QString &branch)
{
    SLUICE_GITHUB_CLIENT(QStringList)
    Request req;
    req.path = repoPath(QStringLiteral("branches/%1/protection/required_status_checks").arg(segment(branch)));
    return ForgeHttp::objectCall<QStringList>(http, req, [what = ForgeHttp::describe(req)](const QJsonDocument &doc) -> Result<QStringList> {
        const QJsonObject o = doc.object();
        QStringList out;
        const QJsonValue contexts = o.value(QStringLiteral("contexts"));
        if (!contexts.isArray())
            return fail(ErrorCode::Malformed, QStringLiteral("%1: no 'contexts' list").arg(what));
        for (const QJsonValue &v : contexts.toArray())
            out.append(v.toString());
        for (const QJsonValue &v : o.value(QStringLiteral("checks")).toArray()) {
            const QString context = v.toObject().value(QStringLiteral("context")).toString();
            if (!context.isEmpty() && !out.contains(context))
                out.append(context);
        }
        return out;
    });
}

#undef SLUICE_GITHUB_CLIENT

Result<std::unique_ptr<Forge>> GitHubForge::withCredential(const SecretRef &token)
{
    auto other = std::make_unique<GitHubForge>(context(), m_settings, token);
    if (auto ready = other->initialize(); !ready)
        return std::unexpected(ready.error());
    return std::unique_ptr<Forge>(std::move(other));
}

Result<std::unique_ptr<PluginInstance>> GitHubForgeFactory::create(const PluginContext &context)
{
    auto settings = GitHubSettings::fromSettings(context.settings());
    if (!settings)
        return std::unexpected(settings.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<GitHubForge>(context, *settings, context.secret(QStringLiteral("token"))));
}

} // namespace Sluice::Forges
