// SPDX-License-Identifier: Apache-2.0
#pragma once

// The local forge: a bare git repository on this machine. See docs/plugins/local.md.

#include "gitrun.h"

#include <sluice/forge.h>

#include <QJsonObject>
#include <QProcess>

#include <optional>

#include <functional>

namespace Sluice::Forges {

class LocalForge final : public Forge
{
    Q_OBJECT
public:
    LocalForge(const PluginContext &context, QString repository, QString git, int timeoutMs, QObject *parent = nullptr);

    [[nodiscard]] Result<void> initialize() override;

    [[nodiscard]] std::unique_ptr<AsyncCall<QList<PullRequest>>> openPullRequests() override;
    [[nodiscard]] std::unique_ptr<AsyncCall<PullRequest>> pullRequest(qint64 number) override;
    /// Records a pull request in the state store (see docs/plugins/local.md).
    [[nodiscard]] std::unique_ptr<AsyncCall<PullRequest>> createPullRequest(const NewPullRequest &request) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<CombinedStatus>> combinedStatus(const QString &sha) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QList<CommitStatus>>> statuses(const QString &sha) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<CommitStatus>> postStatus(const QString &sha, const StatusUpdate &status) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<MergeOutcome>> merge(qint64 number, const MergeRequest &request) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Comparison>> compare(const QString &base, const QString &head) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<QByteArray>> readFile(const QString &path, const QString &ref) override;

private:
    /// Runs git here; a non-zero exit becomes an Error naming the command unless @p allowed lists it.
    void git(const QStringList &arguments, QObject *owner, std::function<void(Result<GitResult>)> done, QList<int> allowed = {});
    /// Every stored pull request that is still open, refreshed from the branches (see refresh()).
    void listOpen(QObject *owner, std::function<void(Result<QList<PullRequest>>)> done);
    [[nodiscard]] Result<QList<CommitStatus>> storedStatuses(const QString &sha) const;
    /// The stored record of pull request @p number; nullopt when there is none.
    [[nodiscard]] Result<std::optional<QJsonObject>> readRecord(qint64 number) const;
    /// Numbers of the open pull requests (the index kept beside the records).
    [[nodiscard]] Result<QList<qint64>> openNumbers() const;
    /// Stores @p record, and updates the open index when its state moved from (@p wasOpen) or to open.
    [[nodiscard]] Result<void> writeRecord(const QJsonObject &record, bool wasOpen);
    /**
     * An open @p record as the repository shows it now: closed when its head branch is gone
     * (@p headSha nullopt), merged when the head is in the base (@p headInBase), else with the
     * head's current sha. A change is stored.
     */
    [[nodiscard]] Result<QJsonObject> refresh(QJsonObject record, const std::optional<QString> &headSha, bool headInBase);
    /// Reads pull request @p number, then runs @p next with it.
    void withPull(qint64 number, QObject *owner, std::function<void(Result<PullRequest>)> next);

    QString m_repository;
    QString m_git;
    int m_timeoutMs;
};

class LocalForgeFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "local.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::Forges
