// SPDX-License-Identifier: Apache-2.0
#include "githubwebhook.h"

#include "forgecall.h"
#include "forgewebhook.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace Sluice::Forges {

using ForgeHttp::JsonFields;
using ForgeHttp::repositoryOf;

namespace {

QString sender(const QJsonObject &o)
{
    return ForgeHttp::loginOf(o.value(QLatin1String("sender")).toObject());
}

// A check run or suite: one event per pull request it belongs to (one without pull request
// when GitHub lists none, e.g. a push build or a pull request from a fork).
Result<QList<ForgeEvent>> check(const JsonFields &p, const QJsonObject &o, ForgeEvent::Kind kind)
{
    const QString key = kind == ForgeEvent::Kind::CheckRun ? QStringLiteral("check_run") : QStringLiteral("check_suite");
    auto repository = repositoryOf(p);
    if (!repository)
        return std::unexpected(repository.error());
    const JsonFields c = p.object(key);
    auto id = c.integer(QStringLiteral("id"));
    auto sha = c.string(QStringLiteral("head_sha"));
    auto status = c.string(QStringLiteral("status"));
    if (!id)
        return std::unexpected(id.error());
    if (!sha)
        return std::unexpected(sha.error());
    if (!status)
        return std::unexpected(status.error());
    const QJsonObject object = o.value(key).toObject();
    ForgeEvent e;
    e.kind = kind;
    e.repository = *repository;
    e.id = *id;
    e.sha = *sha;
    e.action = o.value(QLatin1String("action")).toString();
    e.actor = sender(o);
    e.context = object.value(QLatin1String("name")).toString();
    e.state = *status == QLatin1String("completed") ? object.value(QLatin1String("conclusion")).toString() : QStringLiteral("pending");
    if (e.state.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("%1 %2 is completed without a conclusion").arg(key).arg(e.id));
    e.branch = kind == ForgeEvent::Kind::CheckSuite ? object.value(QLatin1String("head_branch")).toString()
                                                    : object.value(QLatin1String("check_suite")).toObject().value(QLatin1String("head_branch")).toString();
    const QJsonArray pulls = object.value(QLatin1String("pull_requests")).toArray();
    if (pulls.isEmpty())
        return QList<ForgeEvent>{e};
    QList<ForgeEvent> out;
    for (const QJsonValue &pr : pulls) {
        auto number = ForgeHttp::pullRequestNumber(JsonFields(pr, QStringLiteral("a pull request of the check")));
        if (!number)
            return std::unexpected(number.error());
        ForgeEvent one = e;
        one.pullRequest = *number;
        out.append(one);
    }
    return out;
}

Result<QList<ForgeEvent>> push(const JsonFields &p, const QJsonObject &o)
{
    auto repository = repositoryOf(p);
    auto ref = p.string(QStringLiteral("ref"));
    auto after = p.string(QStringLiteral("after"));
    for (const auto *r : {&repository, &ref, &after}) {
        if (!*r)
            return std::unexpected(r->error());
    }
    const QString branch = ForgeHttp::branchOfRef(*ref);
    if (branch.isEmpty() || o.value(QLatin1String("deleted")).toBool())
        return QList<ForgeEvent>();
    ForgeEvent e;
    e.kind = ForgeEvent::Kind::Push;
    e.repository = *repository;
    e.branch = branch;
    e.sha = *after;
    e.before = o.value(QLatin1String("before")).toString();
    // The pusher object has the account's name, the sender its login.
    e.actor = sender(o);
    if (e.actor.isEmpty())
        e.actor = o.value(QLatin1String("pusher")).toObject().value(QLatin1String("name")).toString();
    return QList<ForgeEvent>{e};
}

Result<ForgeEvent> pullRequestEvent(const JsonFields &p, const QJsonObject &o, ForgeEvent::Kind kind)
{
    auto repository = repositoryOf(p);
    if (!repository)
        return std::unexpected(repository.error());
    const JsonFields pr = p.object(QStringLiteral("pull_request"));
    auto number = ForgeHttp::pullRequestNumber(pr);
    auto sha = pr.object(QStringLiteral("head")).string(QStringLiteral("sha"));
    auto branch = pr.object(QStringLiteral("head")).string(QStringLiteral("ref"));
    if (!number)
        return std::unexpected(number.error());
    if (!sha)
        return std::unexpected(sha.error());
    if (!branch)
        return std::unexpected(branch.error());
    ForgeEvent e;
    e.kind = kind;
    e.repository = *repository;
    e.pullRequest = *number;
    e.sha = *sha;
    e.branch = *branch;
    e.actor = sender(o);
    return e;
}

Result<QList<ForgeEvent>> pullRequest(const JsonFields &p, const QJsonObject &o)
{
    const QString action = o.value(QLatin1String("action")).toString();
    static const QStringList used{QStringLiteral("opened"), QStringLiteral("reopened"), QStringLiteral("synchronize"), QStringLiteral("closed")};
    if (!used.contains(action))
        return QList<ForgeEvent>();
    auto e = pullRequestEvent(p, o, ForgeEvent::Kind::PullRequest);
    if (!e)
        return std::unexpected(e.error());
    e->action = action;
    if (action == QLatin1String("closed")) {
        auto merged = p.object(QStringLiteral("pull_request")).boolean(QStringLiteral("merged"));
        if (!merged)
            return std::unexpected(merged.error());
        if (*merged)
            e->action = QStringLiteral("merged");
    }
    return QList<ForgeEvent>{*e};
}

Result<QList<ForgeEvent>> review(const JsonFields &p, const QJsonObject &o)
{
    if (o.value(QLatin1String("action")).toString() != QLatin1String("submitted"))
        return QList<ForgeEvent>();
    auto e = pullRequestEvent(p, o, ForgeEvent::Kind::Review);
    if (!e)
        return std::unexpected(e.error());
    const JsonFields r = p.object(QStringLiteral("review"));
    auto id = r.integer(QStringLiteral("id"));
    auto state = r.string(QStringLiteral("state"));
    auto commit = r.string(QStringLiteral("commit_id"));
    auto login = r.object(QStringLiteral("user")).string(QStringLiteral("login"));
    if (!id)
        return std::unexpected(id.error());
    if (!state)
        return std::unexpected(state.error());
    if (!commit)
        return std::unexpected(commit.error());
    if (!login)
        return std::unexpected(login.error());
    e->id = *id;
    // Webhooks spell the state in lower case ("approved"), the REST API in upper case.
    e->state = state->toLower();
    e->sha = *commit; // the commit the review was given on, not the pull request's head now
    e->actor = *login;
    e->action = QStringLiteral("submitted");
    e->text = ForgeHttp::firstLine(o.value(QLatin1String("review")).toObject().value(QLatin1String("body")).toString());
    return QList<ForgeEvent>{*e};
}

Result<QList<ForgeEvent>> issueComment(const JsonFields &p, const QJsonObject &o)
{
    if (o.value(QLatin1String("action")).toString() != QLatin1String("created"))
        return QList<ForgeEvent>();
    if (!o.value(QLatin1String("issue")).toObject().value(QLatin1String("pull_request")).isObject())
        return QList<ForgeEvent>(); // a comment on an issue
    auto repository = repositoryOf(p);
    auto number = ForgeHttp::pullRequestNumber(p.object(QStringLiteral("issue")));
    const JsonFields comment = p.object(QStringLiteral("comment"));
    auto id = comment.integer(QStringLiteral("id"));
    auto body = comment.string(QStringLiteral("body"), true);
    auto login = comment.object(QStringLiteral("user")).string(QStringLiteral("login"));
    if (!repository)
        return std::unexpected(repository.error());
    if (!number)
        return std::unexpected(number.error());
    if (!id)
        return std::unexpected(id.error());
    if (!body)
        return std::unexpected(body.error());
    if (!login)
        return std::unexpected(login.error());
    ForgeEvent e;
    e.kind = ForgeEvent::Kind::Comment;
    e.repository = *repository;
    e.pullRequest = *number;
    e.action = QStringLiteral("created");
    e.id = *id;
    e.text = ForgeHttp::firstLine(*body);
    e.actor = *login;
    return QList<ForgeEvent>{e};
}

} // namespace

Result<QList<ForgeEvent>> parseGitHubWebhook(const QByteArray &event, const QByteArray &body)
{
    static const QList<QByteArray> used{"status", "check_run", "check_suite", "push", "pull_request", "pull_request_review", "issue_comment"};
    if (!used.contains(event))
        return QList<ForgeEvent>(); // ping, and everything Sluice does not use
    const Result<QJsonObject> payload = ForgeHttp::payloadObject(body);
    if (!payload)
        return std::unexpected(payload.error());
    const QJsonObject &o = *payload;
    const JsonFields p(o, QString::fromLatin1(event) + QStringLiteral(" payload"));
    if (event == "status")
        return ForgeHttp::commitStatusEvent(p, o);
    if (event == "check_run")
        return check(p, o, ForgeEvent::Kind::CheckRun);
    if (event == "check_suite")
        return check(p, o, ForgeEvent::Kind::CheckSuite);
    if (event == "push")
        return push(p, o);
    if (event == "pull_request")
        return pullRequest(p, o);
    if (event == "pull_request_review")
        return review(p, o);
    return issueComment(p, o);
}

} // namespace Sluice::Forges
