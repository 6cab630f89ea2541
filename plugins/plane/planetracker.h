// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Plane connector (REST API v1) for one Plane project. See docs/plugins/plane.md.

#include "forgehttpclient.h"

#include <sluice/secrets.h>
#include <sluice/tracker.h>

#include <QHash>
#include <QPointer>

#include <functional>
#include <memory>

namespace Sluice::Trackers {

/// The checked settings of one instance, without secrets.
struct PlaneSettings {
    QUrl apiBase; ///< <url>/api/v1/
    QString workspace;
    QString project;
    QString identifier;
    QHash<QString, QStringList> signalStates; ///< signal → state names
    QHash<QString, QString> logicalStates;    ///< logical state → state name
    ForgeHttp::ClientOptions client;
    int pageSize = 100;

    [[nodiscard]] static Result<PlaneSettings> fromSettings(const QVariantMap &settings);
};

/// The states of one Plane project, by id and by name, with what they mean here.
struct PlaneStateMap {
    QHash<QString, QString> nameById;
    QHash<QString, QString> idByName;
    QHash<QString, QString> signalById;   ///< only states some signal names
    QHash<QString, QString> idByLogical;  ///< only logical states that exist
    QStringList missing;                  ///< "signal 'confirm-deploy': no state 'Confirm Deploy'"

    /// Resolves @p settings' names against the project's states (@p states: id → name).
    [[nodiscard]] static PlaneStateMap resolve(const PlaneSettings &settings, const QHash<QString, QString> &states);
};

class PlaneTracker final : public Tracker, public WebhookReceiver
{
    Q_OBJECT
public:
    PlaneTracker(const PluginContext &context, PlaneSettings settings, QObject *parent = nullptr);
    ~PlaneTracker() override;

    /// Reads the secrets, builds the client and starts resolving the project's states.
    [[nodiscard]] Result<void> initialize() override;

    [[nodiscard]] std::unique_ptr<AsyncCall<TrackerIssue>> issue(const QString &id) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> comment(const QString &id, const QString &text) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> setState(const QString &id, const QString &logicalState) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> refresh() override;
    [[nodiscard]] Result<WebhookDelivery> acceptWebhook(const WebhookRequest &request) override;

    /**
     * The Plane state names that send @p signal and exist in the project (resolved), for
     * messages that tell a person exactly which status to set. Called by the host through
     * the meta-object system.
     */
    Q_INVOKABLE QStringList statesForSignal(const QString &signal) const;

    /// Whether the project's states have been read at least once.
    [[nodiscard]] bool statesResolved() const { return m_resolved; }
    /// Configured names that did not resolve at the last refresh.
    [[nodiscard]] QStringList missingStates() const { return m_states.missing; }

private:
    using StatesCallback = std::function<void(Result<void>)>;
    // Reads every page of the project's states and installs them; callbacks of a refresh
    // already under way join it.
    void refreshStates(QObject *guard, StatesCallback done);
    void fetchStatesPage(const QString &cursor, int page, std::shared_ptr<QHash<QString, QString>> acc);
    void finishRefresh(Result<void> result, const QHash<QString, QString> *states = nullptr);
    [[nodiscard]] QString issuePath(const QString &id, const QString &rest = QString()) const;
    [[nodiscard]] Result<ForgeHttp::Client *> client();
    [[nodiscard]] Result<TrackerIssue> parseIssue(const QJsonObject &o) const;

    PlaneSettings m_settings;
    QByteArray m_webhookSecret;
    std::unique_ptr<ForgeHttp::Client> m_client;
    PlaneStateMap m_states;
    bool m_resolved = false;
    bool m_refreshing = false;
    QList<std::pair<QPointer<QObject>, StatesCallback>> m_waiting;
};

class PlaneTrackerFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "plane.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

/// @p text (plain) as the HTML of a Plane comment: escaped, paragraphs and line breaks kept.
[[nodiscard]] QString commentHtml(const QString &text);

} // namespace Sluice::Trackers
