// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file forgeevents.h
 * What a forge tells Sluice through its webhooks, in one shape for every forge, and the
 * conversation on a pull request: comments, reviews and team membership.
 *
 * A forge connector that accepts webhooks implements WebhookReceiver (sluice/webhook.h): it
 * checks the delivery's signature, reads the payload into ForgeEvents with a pure parser of
 * its forge's shapes, and hands them to the host as WebhookEvents (toWebhookEvent()). The host
 * records the delivery, reads the events back (forgeEventFromWebhook()) and wakes the tasks
 * they concern: a commit status or check on a task's head commit re-evaluates a gate that
 * waits for it, a merged or closed pull request is reconciled, a push re-judges the head, a
 * review or a comment command from an allowed person is a signal (docs/plugins/gitea.md,
 * docs/plugins/github.md).
 *
 * A connector that can also speak on pull requests implements PullRequestConversation beside
 * Forge; callers find it with `qobject_cast<Sluice::PullRequestConversation *>(forge)`.
 *
 * @since SDK API 1.2
 */

#include <sluice/forge.h>
#include <sluice/webhook.h>

#include <QDateTime>
#include <QList>
#include <QString>
#include <QtPlugin>

#include <memory>
#include <optional>

namespace Sluice {

/**
 * One thing that happened at the forge, as a connector read it from a webhook delivery.
 * Fields that do not apply to a kind are empty or 0.
 * @since SDK API 1.2
 */
struct SLUICE_EXPORT ForgeEvent {
    enum class Kind {
        CommitStatus, ///< A commit status was set (Gitea and GitHub "status").
        CheckRun,     ///< A check run was created or changed (GitHub "check_run").
        CheckSuite,   ///< A check suite was requested or completed (GitHub "check_suite").
        Push,         ///< A branch moved ("push"); tags are not reported.
        PullRequest,  ///< A pull request was opened, synchronized, closed, merged or reopened.
        Review,       ///< A review was submitted on a pull request.
        Comment,      ///< A comment was written on a pull request (not on a plain issue).
    };
    Kind kind = Kind::CommitStatus;
    QString repository; ///< OWNER/NAME of the repository the event is about, as the forge spells it.
    QString sha;        ///< The commit concerned: the status's or check's commit, the push's new head, the pull request's head, the reviewed commit.
    QString branch;     ///< The push's branch, the pull request's head branch, a check suite's head branch; may be empty.
    qint64 pullRequest = 0; ///< The pull request's number (pull request, review, comment; a check of one pull request), or 0.
    /**
     * Pull request: "opened", "synchronize", "closed" (not merged), "merged", "reopened".
     * Review: "submitted". Comment: "created". Check run and suite: the forge's action
     * ("completed", ...). Push and status: empty.
     */
    QString action;
    /**
     * Commit status: its state ("pending", "success", "failure", "error", ...). Check run or
     * suite: its conclusion once completed, else "pending". Review: "approved",
     * "changes_requested" or "commented". Others: empty.
     */
    QString state;
    QString context;    ///< The status's context or the check run's name.
    QString actor;      ///< Login of who acted: the reviewer, the commenter, the pusher.
    /**
     * A comment's or review's first non-empty line, trimmed, at most 200 characters: enough
     * for a command ("/approve"), never the whole text.
     */
    QString text;
    QString before;     ///< Push: the branch's commit before it moved (empty when it was created).
    qint64 id = 0;      ///< The forge's id of the status, check run, check suite, review or comment.
};

/// "status", "check_run", "check_suite", "push", "pull_request", "review" or "comment".
[[nodiscard]] SLUICE_EXPORT QString forgeEventKindName(ForgeEvent::Kind kind);

/**
 * @p event as the host records it: kind "forge.<kind name>", subject the commit (status,
 * check, push) or pull request number, value the state or action, data every field.
 * @since SDK API 1.2
 */
[[nodiscard]] SLUICE_EXPORT WebhookEvent toWebhookEvent(const ForgeEvent &event);
/// The ForgeEvent @p event holds; std::nullopt when it is not a forge event.
[[nodiscard]] SLUICE_EXPORT std::optional<ForgeEvent> forgeEventFromWebhook(const WebhookEvent &event);

/**
 * A comment on a pull request (the conversation, not a comment on a line of the diff).
 * @since SDK API 1.2
 */
struct SLUICE_EXPORT PullRequestComment {
    qint64 id = 0;
    QString author;   ///< The login of who wrote it.
    QString body;
    QDateTime createdAt;
};

/**
 * A review of a pull request.
 * @since SDK API 1.2
 */
struct SLUICE_EXPORT PullRequestReview {
    qint64 id = 0;
    QString author;   ///< The reviewer's login.
    QString state;    ///< "approved", "changes_requested", "commented", "pending" or "dismissed".
    QString commitId; ///< The commit the review was given on.
    QDateTime submittedAt;
};

/**
 * What a forge connector offers beyond Forge to speak on pull requests: comments, reviews and
 * the membership of people in teams (for allowlists that name teams).
 *
 * Every call follows Forge's rules: asynchronous, complete (all pages), a malformed answer is
 * an Error, never a shorter list. Text is posted as given: callers mask secrets first.
 * @since SDK API 1.2
 */
class SLUICE_EXPORT PullRequestConversation
{
public:
    virtual ~PullRequestConversation();

    /// Every comment of pull request @p number, oldest first.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QList<PullRequestComment>>> comments(qint64 number) = 0;
    /// Posts @p body as a comment on pull request @p number; not retried once sent (except on 429).
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<PullRequestComment>> postComment(qint64 number, const QString &body) = 0;
    /// Every review of pull request @p number, oldest first.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QList<PullRequestReview>>> reviews(qint64 number) = 0;
    /**
     * Whether @p login is an active member of @p team ("ORG/TEAM", or "TEAM" in the
     * repository owner's organization). NotFound when the team does not exist;
     * PermissionDenied naming the permission when the token may not read it.
     */
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<bool>> isTeamMember(const QString &team, const QString &login) = 0;
    /// The longest commit status description this forge keeps (GitHub: 140 characters).
    [[nodiscard]] virtual int statusDescriptionLimit() const = 0;
};

} // namespace Sluice

Q_DECLARE_INTERFACE(Sluice::PullRequestConversation, "org.sluice.PullRequestConversation/1.2")
