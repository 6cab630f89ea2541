// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file forge.h
 * Forge connectors: pull requests, commit statuses, merges and files of one repository.
 *
 * Every call is asynchronous and complete: list calls follow pagination to the end, and
 * a malformed or partial answer is an Error, never a shorter list. A commit with no
 * statuses is pending, never success.
 */

#include <sluice/job.h>
#include <sluice/plugin.h>
#include <sluice/webhook.h>

#include <QDateTime>
#include <QList>
#include <QStringList>

#include <memory>

namespace Sluice {

/// State of a commit status, as forges report it.
enum class StatusState { Pending, Success, Error, Failure, Warning, Skipped, Cancelled };

/// "pending", "success", ... as Gitea and GitHub spell them.
[[nodiscard]] SLUICE_EXPORT QString statusStateName(StatusState state);
/// The state named @p name, std::nullopt for anything unknown.
[[nodiscard]] SLUICE_EXPORT std::optional<StatusState> statusStateFromName(const QString &name);

/// A pull request.
struct SLUICE_EXPORT PullRequest {
    qint64 number = 0;
    QString title;
    QString state;        ///< "open" or "closed".
    bool merged = false;
    QString mergeCommit;  ///< Merge commit sha when merged.
    QString headBranch;
    QString headSha;
    QString baseBranch;
    QString url;
    QDateTime updatedAt;
};

/// One commit status.
struct SLUICE_EXPORT CommitStatus {
    qint64 id = 0;
    QString context;
    StatusState state = StatusState::Pending;
    QString description;
    QString targetUrl;
    QDateTime createdAt;
    QDateTime updatedAt;
};

/// The combined status of a commit.
struct SLUICE_EXPORT CombinedStatus {
    QString sha;
    StatusState state = StatusState::Pending;
    QList<CommitStatus> statuses; ///< Latest status per context.
};

/// A status to post.
struct SLUICE_EXPORT StatusUpdate {
    QString context;
    StatusState state = StatusState::Pending;
    QString description;
    QString targetUrl;
};

/// How two refs relate.
struct SLUICE_EXPORT Comparison {
    QString mergeBase;
    int aheadBy = 0;  ///< Commits in head not in base.
    int behindBy = 0; ///< Commits in base not in head.
};

/// A pull request to open.
struct SLUICE_EXPORT NewPullRequest {
    QString headBranch; ///< The branch with the changes (in the same repository).
    QString baseBranch; ///< The branch to merge into; empty: the project's target branch.
    QString title;      ///< Required.
    QString body;       ///< Description; may be empty.
};

/// How to merge.
struct SLUICE_EXPORT MergeRequest {
    QString method = QStringLiteral("merge"); ///< "merge", "rebase" or "squash".
    QString expectedHeadSha;                   ///< Refuse if the head moved.
    QString title;
    QString message;
};

/// What a merge did.
struct SLUICE_EXPORT MergeOutcome {
    bool alreadyMerged = false; ///< The pull request was merged before this call.
    QString mergeCommit;
};

/// A forge connector instance for one project repository.
class SLUICE_EXPORT Forge : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::Forge; }

    /// Every open pull request, all pages.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QList<PullRequest>>> openPullRequests() = 0;
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<PullRequest>> pullRequest(qint64 number) = 0;
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<CombinedStatus>> combinedStatus(const QString &sha) = 0;
    /// Every status of @p sha, all pages, newest first, duplicates per context kept.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QList<CommitStatus>>> statuses(const QString &sha) = 0;
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<CommitStatus>> postStatus(const QString &sha,
                                                                              const StatusUpdate &status) = 0;
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<MergeOutcome>> merge(qint64 number,
                                                                         const MergeRequest &request) = 0;
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Comparison>> compare(const QString &base,
                                                                         const QString &head) = 0;
    /// The content of @p path at @p ref; NotFound when it does not exist.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QByteArray>> readFile(const QString &path,
                                                                          const QString &ref) = 0;

    /**
     * Opens a pull request of @p request.headBranch into @p request.baseBranch and returns it
     * as the forge answers (number, head sha, state "open"). Not retried once sent, except
     * on 429: a forge answering 409/422 (a pull request for the same branches is already
     * open, no commits between the branches, unknown branch) is a Conflict or NotFound, never
     * a second pull request. Default: an Error (InvalidArgument) saying this connector cannot.
     */
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<PullRequest>> createPullRequest(const NewPullRequest &request);

    /**
     * The status contexts the branch protection of @p branch requires (empty when it requires
     * none); NotFound when the branch is not protected. Default: an Error (InvalidArgument)
     * saying this connector cannot tell.
     */
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<QStringList>> protectedContexts(const QString &branch);

    /**
     * A connector to the same repository that authenticates only with @p token, for a
     * writer that must act under its own least-privilege identity (the CI-umbrella
     * compensator). It never falls back to this instance's credentials. The caller owns it.
     * Default: an Error (InvalidArgument) saying this connector cannot do that.
     */
    [[nodiscard]] virtual Result<std::unique_ptr<Forge>> withCredential(const SecretRef &token);
};

} // namespace Sluice
