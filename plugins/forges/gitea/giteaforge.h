// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Gitea/Forgejo connector (API v1) for one repository. See docs/plugins/gitea.md.

#include "forgehttpclient.h"

#include <sluice/forge.h>
#include <sluice/forgeevents.h>
#include <sluice/secrets.h>
#include <sluice/webhook.h>

#include <memory>

namespace Sluice::Forges {

/// The checked settings of one instance, without the token.
struct GiteaSettings {
    QUrl apiBase;     ///< <url>/api/v1/
    QString owner;
    QString name;
    ForgeHttp::ClientOptions client;
    int pageSize = 50;

    [[nodiscard]] static Result<GiteaSettings> fromSettings(const QVariantMap &settings);
};

/// The Gitea token scope a request of this connector needs ("scope read:repository").
[[nodiscard]] QString giteaPermissionFor(const ForgeHttp::Request &request);

class GiteaForge final : public Forge, public PullRequestConversation, public WebhookReceiver
{
    Q_OBJECT
    Q_INTERFACES(Sluice::PullRequestConversation)
public:
    GiteaForge(const PluginContext &context, GiteaSettings settings, SecretRef token, SecretRef webhookSecret = {},
               QObject *parent = nullptr);
    ~GiteaForge() override;

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

    [[nodiscard]] std::unique_ptr<AsyncCall<QList<PullRequestComment>>> comments(qint64 number) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<PullRequestComment>> postComment(qint64 number, const QString &body) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QList<PullRequestReview>>> reviews(qint64 number) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<bool>> isTeamMember(const QString &team, const QString &login) override;
    /// Gitea keeps descriptions as text; Sluice cuts them to 255 characters, a line people read.
    [[nodiscard]] int statusDescriptionLimit() const override { return 255; }

    /// X-Gitea-Signature or X-Forgejo-Signature, X-Gitea-Delivery, X-Gitea-Event (see parseGiteaWebhook()).
    [[nodiscard]] Result<WebhookDelivery> acceptWebhook(const WebhookRequest &request) override;

    /// HTTP attempts made so far (benchmarks).
    [[nodiscard]] qint64 attemptsSent() const;

private:
    [[nodiscard]] QString repoPath(const QString &rest) const;
    [[nodiscard]] Result<ForgeHttp::Client *> client();

    GiteaSettings m_settings;
    SecretRef m_token;
    SecretRef m_webhookSecretRef;
    QByteArray m_webhookSecret;
    std::unique_ptr<ForgeHttp::Client> m_client;
};

class GiteaForgeFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "gitea.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

/// Reads one Gitea pull request object.
[[nodiscard]] Result<PullRequest> parseGiteaPullRequest(const QJsonValue &value);
/// Reads one Gitea commit status object (state in "status", as Gitea answers it).
[[nodiscard]] Result<CommitStatus> parseGiteaStatus(const QJsonValue &value);
/// Reads one Gitea pull request review (PullReview: state "APPROVED", "REQUEST_CHANGES", ...; dismissed).
[[nodiscard]] Result<PullRequestReview> parseGiteaReview(const QJsonValue &value);

} // namespace Sluice::Forges
