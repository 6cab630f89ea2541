// SPDX-License-Identifier: Apache-2.0
#pragma once

// The GitHub connector (REST v3) for one repository. See docs/plugins/github.md.

#include "forgehttpclient.h"

#include <sluice/checkruns.h>
#include <sluice/forge.h>
#include <sluice/forgeevents.h>
#include <sluice/secrets.h>
#include <sluice/webhook.h>

#include <memory>

namespace Sluice::Forges {

struct GitHubSettings {
    QString owner;
    QString name;
    bool checkRuns = true;
    ForgeHttp::ClientOptions client;
    int pageSize = 100;

    [[nodiscard]] static Result<GitHubSettings> fromSettings(const QVariantMap &settings);
};

class GitHubForge final : public Forge, public CheckRunReader, public PullRequestConversation, public WebhookReceiver
{
    Q_OBJECT
    Q_INTERFACES(Sluice::CheckRunReader Sluice::PullRequestConversation)
public:
    GitHubForge(const PluginContext &context, GitHubSettings settings, SecretRef token, SecretRef webhookSecret = {},
                QObject *parent = nullptr);
    ~GitHubForge() override;

    [[nodiscard]] Result<void> initialize() override;

    [[nodiscard]] std::unique_ptr<AsyncCall<QList<PullRequest>>> openPullRequests() override;
    [[nodiscard]] std::unique_ptr<AsyncCall<PullRequest>> pullRequest(qint64 number) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<CombinedStatus>> combinedStatus(const QString &sha) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QList<CommitStatus>>> statuses(const QString &sha) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<CommitStatus>> postStatus(const QString &sha, const StatusUpdate &status) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<PullRequest>> createPullRequest(const NewPullRequest &request) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<MergeOutcome>> merge(qint64 number, const MergeRequest &request) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Comparison>> compare(const QString &base, const QString &head) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QByteArray>> readFile(const QString &path, const QString &ref) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QStringList>> protectedContexts(const QString &branch) override;
    [[nodiscard]] Result<std::unique_ptr<Forge>> withCredential(const SecretRef &token) override;

    [[nodiscard]] std::unique_ptr<AsyncCall<QList<CheckRun>>> checkRuns(const QString &sha) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> rerunCheckRun(const CheckRun &run) override;

    [[nodiscard]] std::unique_ptr<AsyncCall<QList<PullRequestComment>>> comments(qint64 number) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<PullRequestComment>> postComment(qint64 number, const QString &body) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QList<PullRequestReview>>> reviews(qint64 number) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<bool>> isTeamMember(const QString &team, const QString &login) override;
    /// GitHub refuses a longer description (REST "Create a commit status").
    [[nodiscard]] int statusDescriptionLimit() const override { return 140; }

    /// X-Hub-Signature-256, X-GitHub-Delivery, X-GitHub-Event (see parseGitHubWebhook()).
    [[nodiscard]] Result<WebhookDelivery> acceptWebhook(const WebhookRequest &request) override;

private:
    [[nodiscard]] QString repoPath(const QString &rest) const;

    GitHubSettings m_settings;
    SecretRef m_token;
    SecretRef m_webhookSecretRef;
    QByteArray m_webhookSecret;
    std::unique_ptr<ForgeHttp::Client> m_client;
};

class GitHubForgeFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "github.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

/// A check run: not completed is pending; neutral is a warning (not a pass); unknown
/// conclusions are Malformed; started_at may be null (documented nullable: a queued run).
[[nodiscard]] Result<CheckRun> parseCheckRun(const QJsonValue &value);

/// Reads one GitHub pull request review (state "APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING").
[[nodiscard]] Result<PullRequestReview> parseGitHubReview(const QJsonValue &value);

/// The fine-grained token permission a request of this connector needs ("Pull requests: read").
[[nodiscard]] QString gitHubPermissionFor(const ForgeHttp::Request &request);

} // namespace Sluice::Forges
