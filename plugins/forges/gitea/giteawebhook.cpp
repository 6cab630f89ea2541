// SPDX-License-Identifier: Apache-2.0
#include "giteawebhook.h"

#include "forgecall.h"
#include "forgewebhook.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace Sluice::Forges {

using ForgeHttp::JsonFields;
using ForgeHttp::repositoryOf;

namespace {

// The payload shapes are Gitea's modules/structs/hook.go (CommitStatusPayload, PushPayload,
// PullRequestPayload, IssueCommentPayload) with the API objects of gitea-api-1.23.

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
    if (branch.isEmpty())
        return QList<ForgeEvent>(); // a tag
    ForgeEvent e;
    e.kind = ForgeEvent::Kind::Push;
    e.repository = *repository;
    e.branch = branch;
    e.sha = *after;
    e.before = o.value(QLatin1String("before")).toString();
    e.actor = ForgeHttp::loginOf(o.value(QLatin1String("pusher")).toObject());
    if (e.actor.isEmpty())
        e.actor = ForgeHttp::loginOf(o.value(QLatin1String("sender")).toObject());
    return QList<ForgeEvent>{e};
}

// The pull request fields every pull request event carries.
Result<ForgeEvent> pullRequestEvent(const JsonFields &p, const QJsonObject &o, ForgeEvent::Kind kind)
{
    ForgeEvent e;
    e.kind = kind;
    auto repository = repositoryOf(p);
    if (!repository)
        return std::unexpected(repository.error());
    const JsonFields pr = p.object(QStringLiteral("pull_request"));
    auto number = ForgeHttp::pullRequestNumber(pr);
    if (!number)
        return std::unexpected(number.error());
    auto sha = pr.object(QStringLiteral("head")).string(QStringLiteral("sha"));
    if (!sha)
        return std::unexpected(sha.error());
    auto branch = pr.object(QStringLiteral("head")).string(QStringLiteral("ref"));
    if (!branch)
        return std::unexpected(branch.error());
    e.repository = *repository;
    e.pullRequest = *number;
    e.sha = *sha;
    e.branch = *branch;
    e.actor = ForgeHttp::loginOf(o.value(QLatin1String("sender")).toObject());
    return e;
}

Result<QList<ForgeEvent>> pullRequest(const JsonFields &p, const QJsonObject &o)
{
    const QString action = o.value(QLatin1String("action")).toString();
    QString mapped;
    if (action == QLatin1String("opened") || action == QLatin1String("reopened"))
        mapped = action;
    else if (action == QLatin1String("synchronized"))
        mapped = QStringLiteral("synchronize");
    else if (action == QLatin1String("closed"))
        mapped = QStringLiteral("closed"); // or merged, below
    else
        return QList<ForgeEvent>(); // edited, assigned, labelled, review requested, ...
    auto e = pullRequestEvent(p, o, ForgeEvent::Kind::PullRequest);
    if (!e)
        return std::unexpected(e.error());
    if (mapped == QLatin1String("closed")) {
        auto merged = p.object(QStringLiteral("pull_request")).boolean(QStringLiteral("merged"));
        if (!merged)
            return std::unexpected(merged.error());
        if (*merged)
            mapped = QStringLiteral("merged");
    }
    e->action = mapped;
    return QList<ForgeEvent>{*e};
}

Result<QList<ForgeEvent>> review(const JsonFields &p, const QJsonObject &o, const QString &state)
{
    if (o.value(QLatin1String("action")).toString() != QLatin1String("reviewed"))
        return QList<ForgeEvent>();
    auto e = pullRequestEvent(p, o, ForgeEvent::Kind::Review);
    if (!e)
        return std::unexpected(e.error());
    if (e->actor.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("review of pull request #%1 names no reviewer (sender.login)").arg(e->pullRequest));
    e->action = QStringLiteral("submitted");
    e->state = state;
    e->text = ForgeHttp::firstLine(o.value(QLatin1String("review")).toObject().value(QLatin1String("content")).toString());
    return QList<ForgeEvent>{*e};
}

Result<QList<ForgeEvent>> issueComment(const JsonFields &p, const QJsonObject &o)
{
    if (o.value(QLatin1String("action")).toString() != QLatin1String("created"))
        return QList<ForgeEvent>(); // an edit or a deletion is no new command
    const QJsonObject issue = o.value(QLatin1String("issue")).toObject();
    const bool onPull = o.value(QLatin1String("is_pull")).toBool() || issue.value(QLatin1String("pull_request")).isObject();
    if (!onPull)
        return QList<ForgeEvent>();
    auto repository = repositoryOf(p);
    if (!repository)
        return std::unexpected(repository.error());
    auto number = ForgeHttp::pullRequestNumber(p.object(QStringLiteral("issue")));
    if (!number)
        return std::unexpected(number.error());
    const JsonFields comment = p.object(QStringLiteral("comment"));
    auto id = comment.integer(QStringLiteral("id"));
    if (!id)
        return std::unexpected(id.error());
    auto body = comment.string(QStringLiteral("body"), true);
    if (!body)
        return std::unexpected(body.error());
    ForgeEvent e;
    e.kind = ForgeEvent::Kind::Comment;
    e.repository = *repository;
    e.pullRequest = *number;
    e.action = QStringLiteral("created");
    e.id = *id;
    e.text = ForgeHttp::firstLine(*body);
    e.actor = ForgeHttp::loginOf(o.value(QLatin1String("comment")).toObject().value(QLatin1String("user")).toObject());
    if (e.actor.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("comment %1 names no author (comment.user.login)").arg(e.id));
    return QList<ForgeEvent>{e};
}

} // namespace

Result<QList<ForgeEvent>> parseGiteaWebhook(const QByteArray &event, const QByteArray &body)
{
    static const QList<QByteArray> used{"status", "push", "pull_request", "pull_request_approved", "pull_request_rejected",
                                        "pull_request_comment", "issue_comment"};
    if (!used.contains(event))
        return QList<ForgeEvent>();
    const Result<QJsonObject> payload = ForgeHttp::payloadObject(body);
    if (!payload)
        return std::unexpected(payload.error());
    const QJsonObject &o = *payload;
    const JsonFields p(o, QString::fromLatin1(event) + QStringLiteral(" payload"));
    if (event == "status")
        return ForgeHttp::commitStatusEvent(p, o);
    if (event == "push")
        return push(p, o);
    if (event == "pull_request")
        return pullRequest(p, o);
    if (event == "pull_request_approved")
        return review(p, o, QStringLiteral("approved"));
    if (event == "pull_request_rejected")
        return review(p, o, QStringLiteral("changes_requested"));
    if (event == "pull_request_comment")
        return review(p, o, QStringLiteral("commented"));
    return issueComment(p, o);
}

} // namespace Sluice::Forges
