// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Plane connector (REST API v1) for one Plane project. See docs/plugins/plane.md.

#include "forgehttpclient.h"

#include <sluice/secrets.h>
#include <sluice/tracker.h>

#include <QHash>
#include <QPointer>
#include <QTimer>

#include <functional>
#include <memory>

namespace Sluice::Trackers {

/// Which URL family names work items: Plane's current `…/work-items/…`, or the `…/issues/…`
/// paths the server lists as deprecated and older releases alone serve.
enum class PlanePaths { Auto, WorkItems, Issues };

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
    PlanePaths paths = PlanePaths::Auto;

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

/**
 * What one Plane webhook delivery says about a work item, in either payload version: v1
 * (`event: issue`, one delivery per changed field with `activity.field/old_value/new_value`)
 * and v2 (`event: workitem.updated`, `previous_attributes`, a stable `event_id`).
 */
struct PlaneWebhookChange {
    bool v2 = false;
    QString dedupId;      ///< Stable across Plane's redeliveries of the same event.
    bool workItem = false; ///< A work item created or updated; anything else asks nothing.
    bool created = false;
    QString field;        ///< v1: activity.field; v2: the changed fields, comma-separated.
    bool stateChanged = false; ///< Created, or the state field changed to another value.
    QString issueId;
    QString projectId;
    QString stateId;      ///< The state the change moved the work item to.
    QString name;
    QString description;
    QJsonValue sequence;

    /// Reads @p payload, whose raw bytes are @p body (a v1 event is known by their digest).
    [[nodiscard]] static Result<PlaneWebhookChange> read(const QJsonObject &payload, const QByteArray &body);
};

class PlaneTracker final : public Tracker, public WebhookReceiver, public IdempotentComments
{
    Q_OBJECT
    Q_INTERFACES(Sluice::IdempotentComments)
public:
    PlaneTracker(const PluginContext &context, PlaneSettings settings, QObject *parent = nullptr);
    ~PlaneTracker() override;

    /// Reads the secrets, builds the client and starts resolving the project's states.
    [[nodiscard]] Result<void> initialize() override;

    [[nodiscard]] std::unique_ptr<AsyncCall<TrackerIssue>> issue(const QString &id) override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> comment(const QString &id, const QString &text) override;
    /// Posts with external_id @p key (external_source "sluice"): Plane answers 409 to the same key.
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> commentOnce(const QString &id, const QString &text, const QString &key) override;
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
    /// "work-items" or "issues" once known (set, or detected at the first request); else empty.
    [[nodiscard]] QString itemsSegment() const { return m_itemsSegment; }

private:
    using ReadyCallback = std::function<void(Result<void>)>;
    // Reads every page of the project's states and installs them; callbacks of a refresh
    // already under way join it. A first read that fails is tried again with back-off.
    void refreshStates(QObject *guard, ReadyCallback done);
    void fetchStatesPage(const QString &cursor, int page, std::shared_ptr<QHash<QString, QString>> acc);
    void finishRefresh(Result<void> result, const QHash<QString, QString> *states = nullptr);
    // Knows which paths name work items (the setting, or asks the server once).
    void ensurePaths(QObject *guard, ReadyCallback done);
    void detectPaths(const QString &segment);
    void finishPaths(Result<QString> segment);
    [[nodiscard]] QString issuePath(const QString &id, const QString &rest = QString()) const;
    [[nodiscard]] Result<ForgeHttp::Client *> client();
    [[nodiscard]] Result<TrackerIssue> parseIssue(const QJsonObject &o) const;
    [[nodiscard]] TrackerIssue issueFrom(const QString &id, const QString &name, const QString &description,
                                         const QJsonValue &sequence, const QString &stateId) const;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> postComment(const QString &id, const QString &text, const QString &key);

    PlaneSettings m_settings;
    QByteArray m_webhookSecret;
    std::unique_ptr<ForgeHttp::Client> m_client;
    PlaneStateMap m_states;
    bool m_resolved = false;
    bool m_refreshing = false;
    int m_refreshFailures = 0;
    QTimer m_refreshRetry;
    QList<std::pair<QPointer<QObject>, ReadyCallback>> m_waiting;
    QString m_itemsSegment;
    bool m_detecting = false;
    QList<std::pair<QPointer<QObject>, ReadyCallback>> m_pathWaiting;
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
