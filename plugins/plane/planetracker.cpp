// SPDX-License-Identifier: Apache-2.0
#include "planetracker.h"

#include "forgecall.h"

#include <sluice/secrets.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QRegularExpression>

namespace Sluice::Trackers {

using ForgeHttp::FunctionCall;
using ForgeHttp::Request;
using ForgeHttp::Response;
using ForgeHttp::segment;

namespace {
constexpr int MaxStatePages = 1000; // a server that pages on forever is an error, not a loop
}

Result<PlaneSettings> PlaneSettings::fromSettings(const QVariantMap &settings)
{
    PlaneSettings out;
    auto base = ForgeHttp::baseUrl(settings.value(QStringLiteral("url"), QStringLiteral("https://api.plane.so")).toString());
    if (!base)
        return std::unexpected(base.error());
    out.apiBase = base->resolved(QUrl(QStringLiteral("api/v1/")));
    out.workspace = settings.value(QStringLiteral("workspace")).toString().trimmed();
    out.project = settings.value(QStringLiteral("project")).toString().trimmed();
    out.identifier = settings.value(QStringLiteral("identifier")).toString().trimmed();
    if (out.workspace.isEmpty() || out.project.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("workspace and project must not be empty"));
    static const QRegularExpression signalName(QStringLiteral("^[A-Za-z0-9._-]+$"));
    const QVariantMap signalMap = settings.value(QStringLiteral("signals")).toMap();
    QHash<QString, QString> signalOfName;
    for (auto it = signalMap.cbegin(); it != signalMap.cend(); ++it) {
        if (!signalName.match(it.key()).hasMatch())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("signals: '%1' is not a signal name (letters, digits, '.', '_', '-')").arg(it.key()));
        const QStringList names = it.value().toStringList();
        for (const QString &name : names) {
            // One state sending two signals would make a status change mean two things.
            if (signalOfName.contains(name) && signalOfName.value(name) != it.key())
                return fail(ErrorCode::InvalidConfig, QStringLiteral("signals: state '%1' is named for both '%2' and '%3'")
                                                          .arg(name, signalOfName.value(name), it.key()));
            signalOfName.insert(name, it.key());
        }
        out.signalStates.insert(it.key(), names);
    }
    const QVariantMap logical = settings.value(QStringLiteral("states")).toMap();
    for (auto it = logical.cbegin(); it != logical.cend(); ++it)
        out.logicalStates.insert(it.key(), it.value().toString());
    out.client = ForgeHttp::clientOptions(settings, out.apiBase);
    out.client.concurrency = int(settings.value(QStringLiteral("concurrency"), 4).toLongLong());
    out.client.rateLimit = int(settings.value(QStringLiteral("rate_limit"), 60).toLongLong());
    out.client.rateWindow = std::chrono::milliseconds(settings.value(QStringLiteral("rate_window"), 60000).toLongLong());
    out.pageSize = int(settings.value(QStringLiteral("page_size"), 100).toLongLong());
    return out;
}

PlaneStateMap PlaneStateMap::resolve(const PlaneSettings &settings, const QHash<QString, QString> &states)
{
    PlaneStateMap map;
    map.nameById = states;
    for (auto it = states.cbegin(); it != states.cend(); ++it)
        map.idByName.insert(it.value(), it.key());
    QStringList signalNames = settings.signalStates.keys();
    signalNames.sort();
    for (const QString &signal : signalNames) {
        for (const QString &name : settings.signalStates.value(signal)) {
            const QString id = map.idByName.value(name);
            if (id.isEmpty())
                map.missing.append(QStringLiteral("signal '%1': no state '%2'").arg(signal, name));
            else
                map.signalById.insert(id, signal); // this id only: never another state's
        }
    }
    QStringList logicalNames = settings.logicalStates.keys();
    logicalNames.sort();
    for (const QString &logical : logicalNames) {
        const QString name = settings.logicalStates.value(logical);
        const QString id = map.idByName.value(name);
        if (id.isEmpty())
            map.missing.append(QStringLiteral("state '%1': no state '%2'").arg(logical, name));
        else
            map.idByLogical.insert(logical, id);
    }
    return map;
}

QString commentHtml(const QString &text)
{
    QStringList paragraphs;
    for (const QString &p : text.trimmed().split(QStringLiteral("\n\n"), Qt::SkipEmptyParts)) {
        QString html = p.trimmed().toHtmlEscaped();
        html.replace(QLatin1Char('\n'), QStringLiteral("<br/>"));
        paragraphs.append(QStringLiteral("<p>%1</p>").arg(html));
    }
    return paragraphs.isEmpty() ? QStringLiteral("<p></p>") : paragraphs.join(QString());
}

PlaneTracker::PlaneTracker(const PluginContext &context, PlaneSettings settings, QObject *parent)
    : Tracker(context, parent)
    , m_settings(std::move(settings))
{
}

PlaneTracker::~PlaneTracker() = default;

Result<void> PlaneTracker::initialize()
{
    const SecretRef key = context().secret(QStringLiteral("api_key"));
    auto value = key.read();
    if (!value)
        return fail(value.error().code, QStringLiteral("api_key: %1").arg(value.error().message));
    if (value->trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("api_key: %1 is empty").arg(key.describe()));
    const SecretRef hook = context().secret(QStringLiteral("webhook_secret"));
    if (!hook.isNull()) {
        auto secret = hook.read();
        if (!secret)
            return fail(secret.error().code, QStringLiteral("webhook_secret: %1").arg(secret.error().message));
        m_webhookSecret = secret->trimmed();
    }
    ForgeHttp::ClientOptions options = m_settings.client;
    options.extraHeaders.append(qMakePair(QByteArray("X-API-Key"), value->trimmed()));
    m_client = std::make_unique<ForgeHttp::Client>(std::move(options));
    qCDebug(context().logging()).noquote() << "plane workspace" << m_settings.workspace << "project" << m_settings.project
                                           << "at" << m_settings.apiBase.toString() << "with key from" << key.describe();
    // The states are resolved now, so a missing one is reported at load; nothing waits for it.
    refreshStates(this, [](Result<void>) {});
    return {};
}

Result<ForgeHttp::Client *> PlaneTracker::client()
{
    if (!m_client)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("tracker '%1' is not initialized").arg(context().instanceName()));
    return m_client.get();
}

QString PlaneTracker::issuePath(const QString &id, const QString &rest) const
{
    return QStringLiteral("workspaces/%1/projects/%2/issues/%3/%4")
        .arg(segment(m_settings.workspace), segment(m_settings.project), segment(id), rest);
}

void PlaneTracker::refreshStates(QObject *guard, StatesCallback done)
{
    m_waiting.append({QPointer<QObject>(guard), std::move(done)});
    if (m_refreshing)
        return;
    if (!m_client) {
        finishRefresh(fail(ErrorCode::InvalidArgument, QStringLiteral("tracker '%1' is not initialized").arg(context().instanceName())));
        return;
    }
    m_refreshing = true;
    fetchStatesPage(QString(), 1, std::make_shared<QHash<QString, QString>>());
}

void PlaneTracker::fetchStatesPage(const QString &cursor, int page, std::shared_ptr<QHash<QString, QString>> acc)
{
    Request req;
    req.path = QStringLiteral("workspaces/%1/projects/%2/states/").arg(segment(m_settings.workspace), segment(m_settings.project));
    req.query.addQueryItem(QStringLiteral("per_page"), QString::number(m_settings.pageSize));
    if (!cursor.isEmpty())
        req.query.addQueryItem(QStringLiteral("cursor"), cursor);
    m_client->send(req, this, [this, req, cursor, page, acc](Result<Response> r) {
        if (!r)
            return finishRefresh(std::unexpected(r.error()));
        auto doc = ForgeHttp::jsonBody(*r, ForgeHttp::describe(req));
        if (!doc)
            return finishRefresh(std::unexpected(doc.error()));
        const QJsonObject o = doc->object();
        const QJsonValue results = o.value(QLatin1String("results"));
        if (!doc->isObject() || !results.isArray())
            return finishRefresh(fail(ErrorCode::Malformed, QStringLiteral("%1: page %2 has no 'results' list").arg(ForgeHttp::describe(req)).arg(page)));
        for (const QJsonValue &v : results.toArray()) {
            const QString id = v.toObject().value(QLatin1String("id")).toString();
            const QString name = v.toObject().value(QLatin1String("name")).toString();
            if (id.isEmpty() || name.isEmpty())
                return finishRefresh(fail(ErrorCode::Malformed, QStringLiteral("%1: a state without id or name").arg(ForgeHttp::describe(req))));
            acc->insert(id, name);
        }
        if (!o.value(QLatin1String("next_page_results")).toBool())
            return finishRefresh(Result<void>(), acc.get());
        const QString next = o.value(QLatin1String("next_cursor")).toString();
        if (next.isEmpty() || next == cursor || page >= MaxStatePages)
            return finishRefresh(fail(ErrorCode::Malformed, QStringLiteral("%1: page %2 announces more results without a new cursor")
                                                               .arg(ForgeHttp::describe(req)).arg(page)));
        fetchStatesPage(next, page + 1, acc);
    });
}

void PlaneTracker::finishRefresh(Result<void> result, const QHash<QString, QString> *states)
{
    // Installs what was read: all pages, or nothing on an error (never a partial list).
    m_refreshing = false;
    if (result && states) {
        m_states = PlaneStateMap::resolve(m_settings, *states);
        m_resolved = true;
        for (const QString &missing : std::as_const(m_states.missing))
            qCWarning(context().logging()).noquote() << "Plane project" << m_settings.project << "-" << missing
                                                     << "in its" << states->size() << "state(s); that name stays off";
        qCInfo(context().logging()).noquote() << "Plane project" << m_settings.project << "has" << states->size() << "state(s);"
                                              << m_states.signalById.size() << "send a signal";
    } else if (!result) {
        qCWarning(context().logging()).noquote() << "cannot read the states of Plane project" << m_settings.project << "-"
                                                 << result.error().message;
    }
    auto waiting = std::exchange(m_waiting, {});
    for (auto &[guard, done] : waiting) {
        if (guard)
            done(result);
    }
}

QStringList PlaneTracker::statesForSignal(const QString &signal) const
{
    QStringList out;
    for (const QString &name : m_settings.signalStates.value(signal)) {
        if (m_states.idByName.contains(name))
            out.append(name);
    }
    return out;
}

Result<TrackerIssue> PlaneTracker::parseIssue(const QJsonObject &o) const
{
    TrackerIssue issue;
    issue.id = o.value(QLatin1String("id")).toString();
    if (issue.id.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("work item without an id"));
    const QJsonValue seq = o.value(QLatin1String("sequence_id"));
    if (seq.isDouble()) {
        const QString n = QString::number(seq.toVariant().toLongLong());
        issue.key = m_settings.identifier.isEmpty() ? n : m_settings.identifier + QLatin1Char('-') + n;
    }
    issue.title = o.value(QLatin1String("name")).toString();
    issue.description = o.value(QLatin1String("description_stripped")).toString();
    const QJsonValue state = o.value(QLatin1String("state"));
    const QString stateId = state.isObject() ? state.toObject().value(QLatin1String("id")).toString() : state.toString();
    issue.state = m_states.nameById.value(stateId);
    issue.signal = m_states.signalById.value(stateId);
    issue.url = QStringLiteral("%1/%2/projects/%3/issues/%4")
                    .arg(m_settings.apiBase.resolved(QUrl(QStringLiteral("/"))).toString(QUrl::StripTrailingSlash),
                         m_settings.workspace, m_settings.project, issue.id);
    return issue;
}

std::unique_ptr<AsyncCall<TrackerIssue>> PlaneTracker::issue(const QString &id)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<TrackerIssue>(c.error());
    ForgeHttp::Client *http = *c;
    Request req;
    req.path = issuePath(id);
    QPointer<PlaneTracker> self(this);
    return std::make_unique<FunctionCall<TrackerIssue>>([self, http, req](FunctionCall<TrackerIssue> *call) {
        http->send(req, call, [self, call, req](Result<Response> r) {
            if (!self)
                return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            auto doc = ForgeHttp::jsonBody(*r, ForgeHttp::describe(req));
            if (!doc)
                return call->finishWith(std::unexpected(doc.error()));
            const QJsonObject o = doc->object();
            const QJsonValue state = o.value(QLatin1String("state"));
            const QString stateId = state.isObject() ? state.toObject().value(QLatin1String("id")).toString() : state.toString();
            if (self->m_states.nameById.contains(stateId) || stateId.isEmpty())
                return call->finishWith(self->parseIssue(o));
            // A state this instance has not seen: read the project's states again, once.
            self->refreshStates(call, [self, call, o](Result<void> refreshed) {
                if (!self)
                    return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
                if (!refreshed)
                    qCWarning(self->context().logging()).noquote() << "cannot refresh the states:" << refreshed.error().message;
                // Unknown after that: no state name and no signal (fail closed).
                call->finishWith(self->parseIssue(o));
            });
        });
    });
}

std::unique_ptr<AsyncCall<Done>> PlaneTracker::comment(const QString &id, const QString &text)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<Done>(c.error());
    ForgeHttp::Client *http = *c;
    Request req;
    req.method = "POST";
    req.path = issuePath(id, QStringLiteral("comments/"));
    // Masked here as well as by the host: a comment is public to everyone who sees the issue.
    req.body = QJsonDocument(QJsonObject{{QStringLiteral("comment_html"), commentHtml(Redaction::mask(text))}}).toJson(QJsonDocument::Compact);
    return std::make_unique<FunctionCall<Done>>([http, req](FunctionCall<Done> *call) {
        http->send(req, call, [call](Result<Response> r) {
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            call->finishWith(Done{});
        });
    });
}

std::unique_ptr<AsyncCall<Done>> PlaneTracker::setState(const QString &id, const QString &logicalState)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<Done>(c.error());
    if (!m_settings.logicalStates.contains(logicalState))
        return ForgeHttp::failedCall<Done>(Error{ErrorCode::InvalidArgument,
                                                 QStringLiteral("no Plane state is configured for '%1' (settings: states)").arg(logicalState), {}});
    ForgeHttp::Client *http = *c;
    const QString path = issuePath(id);
    QPointer<PlaneTracker> self(this);
    return std::make_unique<FunctionCall<Done>>([self, http, path, logicalState](FunctionCall<Done> *call) {
        auto patch = [self, http, path, logicalState, call] {
            const QString stateId = self->m_states.idByLogical.value(logicalState);
            if (stateId.isEmpty()) {
                // Fail closed: never some other state's id.
                return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("Plane project %1 has no state '%2' (for '%3')")
                                                                      .arg(self->m_settings.project,
                                                                           self->m_settings.logicalStates.value(logicalState), logicalState)));
            }
            Request req;
            req.method = "PATCH";
            req.path = path;
            req.body = QJsonDocument(QJsonObject{{QStringLiteral("state"), stateId}}).toJson(QJsonDocument::Compact);
            http->send(req, call, [call](Result<Response> r) {
                if (!r)
                    return call->finishWith(std::unexpected(r.error()));
                call->finishWith(Done{});
            });
        };
        if (self->m_states.idByLogical.contains(logicalState))
            return patch();
        // A miss: the states may have changed since they were read.
        self->refreshStates(call, [self, call, patch](Result<void> refreshed) {
            if (!self)
                return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
            if (!refreshed)
                return call->finishWith(std::unexpected(refreshed.error()));
            patch();
        });
    });
}

std::unique_ptr<AsyncCall<Done>> PlaneTracker::refresh()
{
    QPointer<PlaneTracker> self(this);
    return std::make_unique<FunctionCall<Done>>([self](FunctionCall<Done> *call) {
        if (!self)
            return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
        self->refreshStates(call, [call](Result<void> r) {
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            call->finishWith(Done{});
        });
    });
}

Result<WebhookDelivery> PlaneTracker::acceptWebhook(const WebhookRequest &request)
{
    if (m_webhookSecret.isEmpty())
        return fail(ErrorCode::PermissionDenied, QStringLiteral("no webhook_secret is configured: deliveries are refused"));
    const QByteArray signature = request.headers.value("x-plane-signature");
    if (signature.isEmpty())
        return fail(ErrorCode::PermissionDenied, QStringLiteral("missing X-Plane-Signature"));
    if (!verifyHmacSha256(m_webhookSecret, request.body, signature))
        return fail(ErrorCode::PermissionDenied, QStringLiteral("X-Plane-Signature does not match"));
    WebhookDelivery delivery;
    delivery.deliveryId = QString::fromLatin1(request.headers.value("x-plane-delivery")).trimmed();
    if (delivery.deliveryId.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("missing X-Plane-Delivery"));
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(request.body, &error);
    if (!doc.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("body is not a JSON object: %1").arg(error.errorString()));
    const QJsonObject o = doc.object();
    const QString event = o.value(QLatin1String("event")).toString();
    const QString action = o.value(QLatin1String("action")).toString();
    const QJsonObject data = o.value(QLatin1String("data")).toObject();
    if (event != QLatin1String("issue") || (action != QLatin1String("updated") && action != QLatin1String("update")
                                            && action != QLatin1String("created") && action != QLatin1String("create")))
        return delivery; // recorded, nothing to do
    if (data.value(QLatin1String("project")).toString() != m_settings.project)
        return delivery; // another Plane project's work item
    const QJsonValue state = data.value(QLatin1String("state"));
    const QString stateId = state.isObject() ? state.toObject().value(QLatin1String("id")).toString() : state.toString();
    if (stateId.isEmpty())
        return delivery;
    if (!m_states.nameById.contains(stateId)) {
        // Not known yet (the states are still being read, or the state is new): read them
        // again and ask for the delivery again; the reconciler catches it otherwise.
        refreshStates(this, [](Result<void>) {});
        return fail(ErrorCode::Network, QStringLiteral("state %1 of work item %2 is not known yet; the project's states are being read again")
                                            .arg(stateId, data.value(QLatin1String("id")).toString()));
    }
    auto issue = parseIssue(data);
    if (!issue)
        return std::unexpected(issue.error());
    if (issue->signal.isEmpty())
        return delivery; // a state that means nothing here
    QJsonObject eventData{{QStringLiteral("title"), issue->title},
                          {QStringLiteral("description"), issue->description},
                          {QStringLiteral("key"), issue->key},
                          {QStringLiteral("state"), issue->state},
                          {QStringLiteral("url"), issue->url}};
    if (!issue->key.isEmpty())
        eventData.insert(QStringLiteral("branch"), QStringLiteral("sluice/%1").arg(issue->key.toLower()));
    delivery.events.append(WebhookEvent{QStringLiteral("signal"), issue->id, issue->signal, eventData});
    qCInfo(context().logging()).noquote() << "work item" << (issue->key.isEmpty() ? issue->id : issue->key) << "is in state"
                                          << issue->state << "→ signal" << issue->signal;
    return delivery;
}

Result<std::unique_ptr<PluginInstance>> PlaneTrackerFactory::create(const PluginContext &context)
{
    auto settings = PlaneSettings::fromSettings(context.settings());
    if (!settings)
        return std::unexpected(settings.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<PlaneTracker>(context, std::move(*settings)));
}

} // namespace Sluice::Trackers
