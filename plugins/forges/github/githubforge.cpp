// SPDX-License-Identifier: Apache-2.0
#include "githubforge.h"

#include "forgecall.h"
#include "forgewebhook.h"
#include "githubwebhook.h"

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

Result<CheckRun> parseCheckRun(const QJsonValue &value)
{
    JsonFields f(value, QStringLiteral("check run"));
    if (auto r = f.requireObject(); !r)
        return std::unexpected(r.error());
    CheckRun run;
    auto id = f.integer(QStringLiteral("id"));
    if (!id)
        return std::unexpected(id.error());
    run.id = *id;
    JsonFields g(value, QStringLiteral("check run "), run.id);
    auto name = g.string(QStringLiteral("name"));
    auto status = g.string(QStringLiteral("status"));
    if (!name)
        return std::unexpected(name.error());
    if (!status)
        return std::unexpected(status.error());
    run.name = *name;
    run.status = *status;
    const QJsonObject o = value.toObject();
    if (run.status != QLatin1String("completed")) {
        run.state = StatusState::Pending;
    } else {
        run.conclusion = g.optionalString(QStringLiteral("conclusion"));
        static const QHash<QString, StatusState> states = {
            {QStringLiteral("success"), StatusState::Success},     {QStringLiteral("failure"), StatusState::Failure},
            {QStringLiteral("timed_out"), StatusState::Failure},   {QStringLiteral("startup_failure"), StatusState::Failure},
            {QStringLiteral("cancelled"), StatusState::Cancelled}, {QStringLiteral("skipped"), StatusState::Skipped},
            {QStringLiteral("neutral"), StatusState::Warning},     {QStringLiteral("action_required"), StatusState::Pending},
            {QStringLiteral("stale"), StatusState::Pending},
        };
        const auto it = states.constFind(run.conclusion);
        if (it == states.cend())
            return fail(ErrorCode::Malformed, QStringLiteral("check run %1 (%2): unknown conclusion '%3'").arg(run.id).arg(run.name, run.conclusion.left(40)));
        run.state = *it;
    }
    // started_at and completed_at are documented nullable (a queued run has neither): null is
    // fine, anything else must be a time.
    for (const auto &[key, out] : {std::pair{QStringLiteral("started_at"), &run.startedAt}, std::pair{QStringLiteral("completed_at"), &run.completedAt}}) {
        const QJsonValue v = o.value(key);
        if (v.isNull() || v.isUndefined())
            continue;
        auto t = g.time(key);
        if (!t)
            return std::unexpected(t.error());
        *out = *t;
    }
    if (run.status == QLatin1String("completed") && !run.completedAt.isValid())
        return fail(ErrorCode::Malformed, QStringLiteral("check run %1 (%2) is completed without completed_at").arg(run.id).arg(run.name));
    run.appSlug = o.value(QStringLiteral("app")).toObject().value(QStringLiteral("slug")).toString();
    run.checkSuiteId = qint64(o.value(QStringLiteral("check_suite")).toObject().value(QStringLiteral("id")).toDouble());
    run.detailsUrl = g.optionalString(QStringLiteral("details_url"));
    return run;
}

Result<PullRequestReview> parseGitHubReview(const QJsonValue &value)
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
    static const QStringList states{QStringLiteral("approved"), QStringLiteral("changes_requested"), QStringLiteral("commented"),
                                    QStringLiteral("dismissed"), QStringLiteral("pending")};
    review.state = state->toLower();
    if (!states.contains(review.state))
        return fail(ErrorCode::Malformed, QStringLiteral("review %1: unknown state '%2'").arg(review.id).arg(state->left(40)));
    // A review's user is null when the account was deleted: nobody to allow.
    review.author = value.toObject().value(QStringLiteral("user")).toObject().value(QStringLiteral("login")).toString();
    review.commitId = g.optionalString(QStringLiteral("commit_id"));
    review.submittedAt = ForgeHttp::parseIsoTime(g.optionalString(QStringLiteral("submitted_at")));
    return review;
}

QString gitHubPermissionFor(const Request &request)
{
    // The fine-grained permission each endpoint this connector calls needs, as GitHub's REST
    // reference lists it per endpoint ("Fine-grained access tokens for …").
    const QString path = request.path.isEmpty() ? request.url.path() : request.path;
    const bool write = request.method != "GET" && request.method != "HEAD";
    if (path.contains(QLatin1String("/teams/")))
        return QStringLiteral("Members: read (organization permission)");
    if (path.contains(QLatin1String("/issues/")))
        return write ? QStringLiteral("Pull requests: write (or Issues: write)") : QStringLiteral("Pull requests: read (or Issues: read)");
    if (path.contains(QLatin1String("/actions/")))
        return write ? QStringLiteral("Actions: write") : QStringLiteral("Actions: read");
    if (path.contains(QLatin1String("/check-runs")) || path.contains(QLatin1String("/check-suites")))
        return QStringLiteral("Checks: read");
    if (path.contains(QLatin1String("/statuses/")) && write)
        return QStringLiteral("Commit statuses: write");
    if (path.contains(QLatin1String("/status")))
        return QStringLiteral("Commit statuses: read");
    if (path.contains(QLatin1String("/protection")))
        return QStringLiteral("Administration: read");
    if (path.contains(QLatin1String("/merge")))
        return QStringLiteral("Contents: write");
    if (path.contains(QLatin1String("/pulls")))
        return write ? QStringLiteral("Pull requests: write") : QStringLiteral("Pull requests: read");
    if (path.contains(QLatin1String("/contents/")) || path.contains(QLatin1String("/compare/")))
        return QStringLiteral("Contents: read");
    return {};
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
    out.client.permissionFor = gitHubPermissionFor;
    out.checkRuns = settings.value(QStringLiteral("check_runs"), true).toBool();
    out.pageSize = int(settings.value(QStringLiteral("page_size"), 100).toLongLong());
    return out;
}

GitHubForge::GitHubForge(const PluginContext &context, GitHubSettings settings, SecretRef token, SecretRef webhookSecret, QObject *parent)
    : Forge(context, parent)
    , m_settings(std::move(settings))
    , m_token(std::move(token))
    , m_webhookSecretRef(std::move(webhookSecret))
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
    if (!m_webhookSecretRef.isNull()) {
        auto secret = m_webhookSecretRef.read();
        if (!secret)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("webhook_secret: %1").arg(secret.error().message));
        if (secret->isEmpty())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("webhook_secret: %1 is empty").arg(m_webhookSecretRef.describe()));
        m_webhookSecret = *secret;
    }
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
    // Commit statuses only: a check run of the same name is a second requirement on GitHub
    // (docs.github.com, "Troubleshooting required status checks": if a check and a commit
    // status have the same name, both must pass), read through checkRuns().
    SLUICE_GITHUB_CLIENT(QList<CommitStatus>)
    Request req;
    req.path = repoPath(QStringLiteral("commits/%1/statuses").arg(segment(sha)));
    return ForgeHttp::listCall<CommitStatus>(http, req, m_settings.pageSize, ForgeHttp::arrayPage, ForgeHttp::parseCommitStatus,
                                             QStringLiteral("statuses of %1").arg(sha), [](QList<CommitStatus> &list) {
                                                 std::stable_sort(list.begin(), list.end(), ForgeHttp::newerFirst);
                                             });
}

std::unique_ptr<AsyncCall<QList<CheckRun>>> GitHubForge::checkRuns(const QString &sha)
{
    SLUICE_GITHUB_CLIENT(QList<CheckRun>)
    if (!m_settings.checkRuns)
        return std::make_unique<FunctionCall<QList<CheckRun>>>([](FunctionCall<QList<CheckRun>> *call) { call->finishWith(QList<CheckRun>()); });
    Request req;
    req.path = repoPath(QStringLiteral("commits/%1/check-runs").arg(segment(sha)));
    req.query.addQueryItem(QStringLiteral("filter"), QStringLiteral("latest")); // the latest run of each name, as branch protection judges
    const int pageSize = m_settings.pageSize;
    return std::make_unique<FunctionCall<QList<CheckRun>>>([http, req, sha, pageSize](FunctionCall<QList<CheckRun>> *call) {
        auto total = std::make_shared<qint64>(-1);
        ForgeHttp::fetchAllPages(*http, req, pageSize, objectPage(QStringLiteral("check_runs"), total), call, [call, total, sha](Result<QJsonArray> all) {
            if (!all)
                return call->finishWith(std::unexpected(all.error()));
            if (*total >= 0 && *total != all->size())
                return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("check runs of %1: %2 read, total_count says %3").arg(sha).arg(all->size()).arg(*total)));
            QList<CheckRun> out;
            for (const QJsonValue &v : std::as_const(*all)) {
                auto run = parseCheckRun(v);
                if (!run)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("check runs of %1: %2").arg(sha, run.error().message)));
                out.append(*run);
            }
            // Check run ids grow with creation (a re-run is a new, greater id): newest first by id,
            // within this id space only.
            std::stable_sort(out.begin(), out.end(), [](const CheckRun &a, const CheckRun &b) { return a.id > b.id; });
            call->finishWith(out);
        });
    });
}

std::unique_ptr<AsyncCall<Done>> GitHubForge::rerunCheckRun(const CheckRun &run)
{
    SLUICE_GITHUB_CLIENT(Done)
    // Only GitHub Actions' own check runs can be re-run through the REST API (docs.github.com,
    // "Re-run a job from a workflow run": POST …/actions/jobs/{job_id}/rerun, Actions: write).
    if (run.appSlug != QLatin1String("github-actions"))
        return ForgeHttp::failedCall<Done>(Error{ErrorCode::InvalidArgument,
                                                 QStringLiteral("check run %1 ('%2') was made by %3, not GitHub Actions: Sluice cannot re-run it; re-run it where it came from")
                                                     .arg(run.id).arg(run.name, run.appSlug.isEmpty() ? QStringLiteral("an unnamed app") : QStringLiteral("the app '%1'").arg(run.appSlug)), {}});
    Request job;
    job.path = repoPath(QStringLiteral("actions/jobs/%1").arg(run.id));
    Request rerun;
    rerun.method = "POST";
    rerun.path = repoPath(QStringLiteral("actions/jobs/%1/rerun").arg(run.id));
    rerun.body = "{}";
    return std::make_unique<FunctionCall<Done>>([http, job, rerun, run](FunctionCall<Done> *call) {
        // The job of an Actions check run has the check run's id; read it first and make sure
        // it is this check run (its check_run_url names it) before asking for anything.
        http->send(job, call, [http, call, rerun, run, what = ForgeHttp::describe(job)](Result<Response> r) {
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            auto doc = ForgeHttp::jsonBody(*r, what);
            if (!doc)
                return call->finishWith(std::unexpected(doc.error()));
            const QJsonObject o = doc->object();
            const QString checkRunUrl = o.value(QStringLiteral("check_run_url")).toString();
            if (!checkRunUrl.endsWith(QStringLiteral("/check-runs/%1").arg(run.id)) || o.value(QStringLiteral("name")).toString() != run.name)
                return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("%1: the job is not check run %2 ('%3'): check_run_url '%4', name '%5'")
                                                                       .arg(what).arg(run.id).arg(run.name, checkRunUrl.left(200), o.value(QStringLiteral("name")).toString().left(100))));
            http->send(rerun, call, [call, what = ForgeHttp::describe(rerun)](Result<Response> posted) {
                if (!posted)
                    return call->finishWith(std::unexpected(posted.error()));
                // GitHub answers "201 Created" with an empty JSON object. Anything else is not its
                // word (a proxy's page, a garbled body): the re-run may not have been made, and
                // taking it as made would mark the umbrella repaired and never try again.
                const bool json = posted->body.trimmed().isEmpty() || ForgeHttp::jsonBody(*posted, what).has_value();
                if (posted->status != 201 || !json)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("%1: answered HTTP %2%3, not GitHub's 201 Created; the job may not have been re-run")
                                                                           .arg(what).arg(posted->status).arg(json ? QString() : QStringLiteral(" with a body that is not JSON"))));
                call->finishWith(Done{});
            });
        });
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
                     {QStringLiteral("description"), status.description.left(statusDescriptionLimit())}};
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
    // GitHub answers 405 when it will not merge: while it is still computing mergeability
    // ("mergeable": null on the pull request, docs.github.com "Get a pull request": a background
    // job computes it, try again) or after the base moved ("Base branch was modified"), both of
    // which pass by themselves, or for a real conflict or a blocked merge, which does not.
    ForgeHttp::MergeRefusal refusal;
    refusal.statuses = {405};
    refusal.classify = [](const Response &answer, const QJsonObject &pull, qint64 pr) {
        const QString said = ForgeHttp::bodyMessage(answer.body);
        const QJsonValue mergeable = pull.value(QStringLiteral("mergeable"));
        if (mergeable.isNull() || said.contains(QLatin1String("Base branch was modified"), Qt::CaseInsensitive))
            return Error{ErrorCode::Network,
                         QStringLiteral("pull request #%1 cannot be merged yet: GitHub is still computing its mergeability (HTTP 405: %2); try again later")
                             .arg(pr).arg(said),
                         {}};
        return Error{ErrorCode::Conflict,
                     QStringLiteral("pull request #%1 is not mergeable (HTTP 405: %2; mergeable_state '%3')")
                         .arg(pr).arg(said, pull.value(QStringLiteral("mergeable_state")).toString()),
                     {}};
    };
    return ForgeHttp::mergeReadingFirst(http, get, put, number, request.expectedHeadSha, refusal);
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

std::unique_ptr<AsyncCall<QList<PullRequestComment>>> GitHubForge::comments(qint64 number)
{
    SLUICE_GITHUB_CLIENT(QList<PullRequestComment>)
    Request req;
    req.path = repoPath(QStringLiteral("issues/%1/comments").arg(number));
    return ForgeHttp::listCall<PullRequestComment>(http, req, m_settings.pageSize, ForgeHttp::arrayPage, ForgeHttp::parseComment,
                                                   QStringLiteral("comments of #%1").arg(number));
}

std::unique_ptr<AsyncCall<PullRequestComment>> GitHubForge::postComment(qint64 number, const QString &body)
{
    SLUICE_GITHUB_CLIENT(PullRequestComment)
    // A pull request's conversation is its issue's comments (REST "Create an issue comment").
    Request req;
    req.method = "POST";
    req.path = repoPath(QStringLiteral("issues/%1/comments").arg(number));
    req.body = QJsonDocument(QJsonObject{{QStringLiteral("body"), body}}).toJson(QJsonDocument::Compact);
    return ForgeHttp::objectCall<PullRequestComment>(http, req, [](const QJsonDocument &doc) { return ForgeHttp::parseComment(doc.object()); });
}

std::unique_ptr<AsyncCall<QList<PullRequestReview>>> GitHubForge::reviews(qint64 number)
{
    SLUICE_GITHUB_CLIENT(QList<PullRequestReview>)
    Request req;
    req.path = repoPath(QStringLiteral("pulls/%1/reviews").arg(number));
    return ForgeHttp::listCall<PullRequestReview>(http, req, m_settings.pageSize, ForgeHttp::arrayPage, parseGitHubReview,
                                                  QStringLiteral("reviews of #%1").arg(number));
}

std::unique_ptr<AsyncCall<bool>> GitHubForge::isTeamMember(const QString &team, const QString &login)
{
    SLUICE_GITHUB_CLIENT(bool)
    const QString org = team.contains(QLatin1Char('/')) ? team.section(QLatin1Char('/'), 0, 0) : m_settings.owner;
    const QString slug = team.contains(QLatin1Char('/')) ? team.section(QLatin1Char('/'), 1) : team;
    // REST "Get team membership for a user": 200 with state active or pending, 404 when the
    // user is not a member (or the team is unknown: GitHub does not tell the two apart).
    Request req;
    req.path = QStringLiteral("orgs/%1/teams/%2/memberships/%3").arg(segment(org), segment(slug), segment(login));
    return std::make_unique<FunctionCall<bool>>([http, req](FunctionCall<bool> *call) {
        http->send(req, call, [call, req](Result<Response> r) {
            if (!r)
                return r.error().code == ErrorCode::NotFound ? call->finishWith(false) : call->finishWith(std::unexpected(r.error()));
            auto doc = ForgeHttp::jsonBody(*r, ForgeHttp::describe(req));
            if (!doc)
                return call->finishWith(std::unexpected(doc.error()));
            const QString state = doc->object().value(QStringLiteral("state")).toString();
            if (state != QLatin1String("active") && state != QLatin1String("pending"))
                return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("%1: unknown membership state '%2'").arg(ForgeHttp::describe(req), state.left(40))));
            call->finishWith(state == QLatin1String("active")); // an invitation not accepted yet is no membership
        });
    });
}

#undef SLUICE_GITHUB_CLIENT

Result<WebhookDelivery> GitHubForge::acceptWebhook(const WebhookRequest &request)
{
    static const ForgeHttp::WebhookHeaders headers{{"x-hub-signature-256"}, {"x-github-delivery"}, {"x-github-event"}};
    return ForgeHttp::acceptForgeWebhook(request, m_webhookSecret, headers, parseGitHubWebhook,
                                         m_settings.owner + QLatin1Char('/') + m_settings.name, context().logging());
}

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
    return std::unique_ptr<PluginInstance>(std::make_unique<GitHubForge>(context, *settings, context.secret(QStringLiteral("token")),
                                                                         context.secret(QStringLiteral("webhook_secret"))));
}

} // namespace Sluice::Forges
