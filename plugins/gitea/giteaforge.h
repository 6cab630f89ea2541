// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Gitea/Forgejo connector (API v1) for one repository. See docs/plugins/gitea.md.

#include "forgehttpclient.h"

#include <sluice/forge.h>
#include <sluice/secrets.h>

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

class GiteaForge final : public Forge
{
    Q_OBJECT
public:
    GiteaForge(const PluginContext &context, GiteaSettings settings, SecretRef token, QObject *parent = nullptr);
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

    /// HTTP attempts made so far (benchmarks).
    [[nodiscard]] qint64 attemptsSent() const;

private:
    [[nodiscard]] QString repoPath(const QString &rest) const;
    [[nodiscard]] Result<ForgeHttp::Client *> client();

    GiteaSettings m_settings;
    SecretRef m_token;
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

} // namespace Sluice::Forges
