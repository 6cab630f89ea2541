// SPDX-License-Identifier: Apache-2.0
#include "planetracker.h"

#include "forgecall.h"

#include <sluice/secrets.h>

#include <QCryptographicHash>
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
constexpr qint64 MaxRefreshBackoffMs = 300'000;
const QString ExternalSource = QStringLiteral("sluice");

// Plane writes Python's None as the string "None" in some v2 payloads (its own example does).
QString idValue(const QJsonValue &v)
{
    if (v.isObject())
        return v.toObject().value(QLatin1String("id")).toString();
    const QString s = v.toString();
    return s == QLatin1String("None") ? QString() : s;
}
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
    // Plane's 500s are passing faults more often than not; every request the connector sends
    // may be repeated (reads, a state set, a comment with its external id), so all are retried.
    out.client.retryServerErrors = true;
    const QString paths = settings.value(QStringLiteral("api_paths"), QStringLiteral("auto")).toString();
    if (paths == QLatin1String("work-items"))
        out.paths = PlanePaths::WorkItems;
    else if (paths == QLatin1String("issues"))
        out.paths = PlanePaths::Issues;
    else if (paths == QLatin1String("auto"))
        out.paths = PlanePaths::Auto;
    else
        return fail(ErrorCode::InvalidConfig, QStringLiteral("api_paths: '%1' is not auto, work-items or issues").arg(paths));
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

Result<PlaneWebhookChange> PlaneWebhookChange::read(const QJsonObject &o, const QByteArray &body)
{
    PlaneWebhookChange change;
    const QJsonObject data = o.value(QLatin1String("data")).toObject();
    change.issueId = data.value(QLatin1String("id")).toString();
    change.name = data.value(QLatin1String("name")).toString();
    change.sequence = data.value(QLatin1String("sequence_id"));
    if (o.value(QLatin1String("version")).toString() == QLatin1String("v2")) {
        // Webhooks v2 (developers.plane.so, "Webhooks" → "Payload structure"): event_id is
        // stable across redeliveries ("use this for deduplication"), delivery_id is new on each;
        // data is the flat work item (state_id, project_id); previous_attributes holds the
        // previous values of the changed fields.
        change.v2 = true;
        const QString eventId = o.value(QLatin1String("event_id")).toString();
        if (eventId.isEmpty())
            return fail(ErrorCode::Malformed, QStringLiteral("a v2 delivery without event_id"));
        change.dedupId = QStringLiteral("v2:") + eventId;
        // The event is "workitem.updated"; the documentation's own example shows the scope's
        // enum name (WebhookScope.ScopeChoices.WORK_ITEM_UPDATED) instead, so both are read.
        const QString event = o.value(QLatin1String("event")).toString().toLower();
        const bool updated = event == QLatin1String("workitem.updated") || event.endsWith(QLatin1String("work_item_updated"));
        change.created = event == QLatin1String("workitem.created") || event.endsWith(QLatin1String("work_item_created"));
        change.workItem = (updated || change.created) && o.value(QLatin1String("entity_type")).toString(QStringLiteral("issue")) == QLatin1String("issue");
        change.projectId = idValue(data.value(QLatin1String("project_id")));
        change.stateId = idValue(data.value(QLatin1String("state_id")));
        const QJsonObject previous = o.value(QLatin1String("previous_attributes")).toObject();
        change.field = previous.keys().join(QLatin1Char(','));
        if (change.created) {
            change.stateChanged = true;
        } else {
            for (const char *key : {"state_id", "state"}) {
                if (previous.contains(QLatin1String(key)))
                    change.stateChanged = idValue(previous.value(QLatin1String(key))) != change.stateId;
            }
        }
        return change;
    }
    // Webhooks v1 (makeplane/plane apps/api/plane/bgtasks/webhook_task.py): one "updated"
    // delivery per changed field, activity {field, old_value, new_value}, the whole work item
    // in data (state expanded). Each attempt carries a new X-Plane-Delivery, while the payload
    // is built once per event: its digest recognises a redelivery.
    change.dedupId = QStringLiteral("v1:") + QString::fromLatin1(QCryptographicHash::hash(body, QCryptographicHash::Sha256).toHex());
    const QString event = o.value(QLatin1String("event")).toString();
    const QString action = o.value(QLatin1String("action")).toString();
    const bool updated = action == QLatin1String("updated") || action == QLatin1String("update");
    change.created = action == QLatin1String("created") || action == QLatin1String("create");
    change.workItem = event == QLatin1String("issue") && (updated || change.created);
    change.projectId = idValue(data.value(QLatin1String("project")));
    change.description = data.value(QLatin1String("description_stripped")).toString();
    change.stateId = idValue(data.value(QLatin1String("state")));
    if (change.created) {
        change.stateChanged = true;
        return change;
    }
    // The API names the field "state", the web app "state_id" (its PATCH body); any other field
    // (a title, a label, a date) is not a move, whatever state data shows.
    const QJsonObject activity = o.value(QLatin1String("activity")).toObject();
    change.field = activity.value(QLatin1String("field")).toString();
    if (change.field == QLatin1String("state") || change.field == QLatin1String("state_id")) {
        const QString oldState = idValue(activity.value(QLatin1String("old_value")));
        const QString newState = idValue(activity.value(QLatin1String("new_value")));
        change.stateChanged = !newState.isEmpty() && newState != oldState;
        if (!newState.isEmpty())
            change.stateId = newState; // the move itself, even if data was read after a later one
    }
    return change;
}

PlaneTracker::PlaneTracker(const PluginContext &context, PlaneSettings settings, QObject *parent)
    : Tracker(context, parent)
    , m_settings(std::move(settings))
{
    m_refreshRetry.setSingleShot(true);
    connect(&m_refreshRetry, &QTimer::timeout, this, [this] { refreshStates(this, [](Result<void>) {}); });
    if (m_settings.paths == PlanePaths::WorkItems)
        m_itemsSegment = QStringLiteral("work-items");
    else if (m_settings.paths == PlanePaths::Issues)
        m_itemsSegment = QStringLiteral("issues");
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
    ensurePaths(this, [](Result<void>) {});
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
    return QStringLiteral("workspaces/%1/projects/%2/%3/%4/%5")
        .arg(segment(m_settings.workspace), segment(m_settings.project), m_itemsSegment, segment(id), rest);
}

void PlaneTracker::ensurePaths(QObject *guard, ReadyCallback done)
{
    if (!m_itemsSegment.isEmpty())
        return done({});
    m_pathWaiting.append({QPointer<QObject>(guard), std::move(done)});
    if (m_detecting)
        return;
    if (!m_client)
        return finishPaths(fail(ErrorCode::InvalidArgument, QStringLiteral("tracker '%1' is not initialized").arg(context().instanceName())));
    m_detecting = true;
    detectPaths(QStringLiteral("work-items"));
}

void PlaneTracker::detectPaths(const QString &candidate)
{
    // Plane's current API names work items …/work-items/…; the …/issues/… paths are listed as
    // deprecated by the server (apps/api/plane/api/urls/work_item.py) and are all that older
    // releases serve. One list request tells which this server has.
    Request req;
    req.path = QStringLiteral("workspaces/%1/projects/%2/%3/").arg(segment(m_settings.workspace), segment(m_settings.project), candidate);
    req.query.addQueryItem(QStringLiteral("per_page"), QStringLiteral("1"));
    m_client->send(req, this, [this, candidate](Result<Response> r) {
        if (r)
            return finishPaths(candidate);
        if (r.error().code == ErrorCode::NotFound && candidate == QLatin1String("work-items"))
            return detectPaths(QStringLiteral("issues"));
        finishPaths(std::unexpected(r.error()));
    });
}

void PlaneTracker::finishPaths(Result<QString> segment)
{
    m_detecting = false;
    Result<void> result;
    if (segment) {
        m_itemsSegment = *segment;
        if (m_itemsSegment == QLatin1String("issues"))
            qCWarning(context().logging()).noquote() << "this Plane serves no …/work-items/… paths (an older release): the deprecated …/issues/… paths are used";
        else
            qCInfo(context().logging()).noquote() << "work items are read and written through …/work-items/…";
    } else {
        qCWarning(context().logging()).noquote() << "cannot tell which paths this Plane serves -" << segment.error().message;
        result = std::unexpected(segment.error());
    }
    auto waiting = std::exchange(m_pathWaiting, {});
    for (auto &[guard, done] : waiting) {
        if (guard)
            done(result);
    }
}

void PlaneTracker::refreshStates(QObject *guard, ReadyCallback done)
{
    m_waiting.append({QPointer<QObject>(guard), std::move(done)});
    if (m_refreshing)
        return;
    if (!m_client) {
        finishRefresh(fail(ErrorCode::InvalidArgument, QStringLiteral("tracker '%1' is not initialized").arg(context().instanceName())));
        return;
    }
    m_refreshing = true;
    m_refreshRetry.stop();
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
        m_refreshFailures = 0;
        for (const QString &missing : std::as_const(m_states.missing))
            qCWarning(context().logging()).noquote() << "Plane project" << m_settings.project << "-" << missing
                                                     << "in its" << states->size() << "state(s); that name stays off";
        qCInfo(context().logging()).noquote() << "Plane project" << m_settings.project << "has" << states->size() << "state(s);"
                                              << m_states.signalById.size() << "send a signal";
    } else if (!result) {
        qCWarning(context().logging()).noquote() << "cannot read the states of Plane project" << m_settings.project << "-"
                                                 << result.error().message;
        if (!m_resolved && m_client) {
            // Without its states the instance maps nothing: read them again until it can,
            // the wait doubling from retry_backoff up to five minutes.
            const qint64 base = std::max<qint64>(1, m_settings.client.retryBase.count());
            const qint64 wait = std::min<qint64>(MaxRefreshBackoffMs, base << std::min(m_refreshFailures, 20));
            ++m_refreshFailures;
            qCInfo(context().logging()).noquote() << "reading the states again in" << wait << "ms";
            m_refreshRetry.start(int(wait));
        }
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

TrackerIssue PlaneTracker::issueFrom(const QString &id, const QString &name, const QString &description, const QJsonValue &sequence,
                                     const QString &stateId) const
{
    TrackerIssue issue;
    issue.id = id;
    if (sequence.isDouble()) {
        const QString n = QString::number(sequence.toVariant().toLongLong());
        issue.key = m_settings.identifier.isEmpty() ? n : m_settings.identifier + QLatin1Char('-') + n;
    }
    issue.title = name;
    issue.description = description;
    issue.state = m_states.nameById.value(stateId);
    issue.signal = m_states.signalById.value(stateId);
    issue.url = QStringLiteral("%1/%2/projects/%3/issues/%4")
                    .arg(m_settings.apiBase.resolved(QUrl(QStringLiteral("/"))).toString(QUrl::StripTrailingSlash),
                         m_settings.workspace, m_settings.project, issue.id);
    return issue;
}

Result<TrackerIssue> PlaneTracker::parseIssue(const QJsonObject &o) const
{
    const QString id = o.value(QLatin1String("id")).toString();
    if (id.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("work item without an id"));
    return issueFrom(id, o.value(QLatin1String("name")).toString(), o.value(QLatin1String("description_stripped")).toString(),
                     o.value(QLatin1String("sequence_id")), idValue(o.value(QLatin1String("state"))));
}

std::unique_ptr<AsyncCall<TrackerIssue>> PlaneTracker::issue(const QString &id)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<TrackerIssue>(c.error());
    ForgeHttp::Client *http = *c;
    QPointer<PlaneTracker> self(this);
    return std::make_unique<FunctionCall<TrackerIssue>>([self, http, id](FunctionCall<TrackerIssue> *call) {
        if (!self)
            return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
        self->ensurePaths(call, [self, http, id, call](Result<void> ready) {
            if (!ready)
                return call->finishWith(std::unexpected(ready.error()));
            Request req;
            req.path = self->issuePath(id);
            http->send(req, call, [self, call, req](Result<Response> r) {
                if (!self)
                    return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
                if (!r)
                    return call->finishWith(std::unexpected(r.error()));
                auto doc = ForgeHttp::jsonBody(*r, ForgeHttp::describe(req));
                if (!doc)
                    return call->finishWith(std::unexpected(doc.error()));
                const QJsonObject o = doc->object();
                const QString stateId = idValue(o.value(QLatin1String("state")));
                if ((self->m_resolved && self->m_states.nameById.contains(stateId)) || stateId.isEmpty())
                    return call->finishWith(self->parseIssue(o));
                // A state this instance has not seen (or no states read yet): read them again.
                self->refreshStates(call, [self, call, o](Result<void> refreshed) {
                    if (!self)
                        return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
                    // Without the states the work item's signal is unknown: an error, so the
                    // caller asks again, never "no signal".
                    if (!refreshed)
                        return call->finishWith(fail(refreshed.error().code, QStringLiteral("work item %1 is in a state not read yet: %2")
                                                                                 .arg(o.value(QLatin1String("id")).toString(), refreshed.error().message)));
                    // Unknown after a fresh read: no state name and no signal (fail closed).
                    call->finishWith(self->parseIssue(o));
                });
            });
        });
    });
}

std::unique_ptr<AsyncCall<Done>> PlaneTracker::comment(const QString &id, const QString &text)
{
    return postComment(id, text, QString());
}

std::unique_ptr<AsyncCall<Done>> PlaneTracker::commentOnce(const QString &id, const QString &text, const QString &key)
{
    if (key.isEmpty() || key.size() > 200)
        return ForgeHttp::failedCall<Done>(Error{ErrorCode::InvalidArgument, QStringLiteral("a comment key is 1 to 200 characters"), {}});
    return postComment(id, text, key);
}

std::unique_ptr<AsyncCall<Done>> PlaneTracker::postComment(const QString &id, const QString &text, const QString &key)
{
    auto c = client();
    if (!c)
        return ForgeHttp::failedCall<Done>(c.error());
    ForgeHttp::Client *http = *c;
    // Masked here as well as by the host: a comment is public to everyone who sees the issue.
    QJsonObject body{{QStringLiteral("comment_html"), commentHtml(Redaction::mask(text))}};
    if (!key.isEmpty()) {
        // Plane refuses a second comment with the same external_id and external_source in a
        // project with 409 and the first one's id (apps/api/plane/api/views/issue.py, the
        // comment list endpoint's post): the key makes the write safe to send again.
        body.insert(QStringLiteral("external_id"), key);
        body.insert(QStringLiteral("external_source"), ExternalSource);
    }
    const QByteArray payload = QJsonDocument(body).toJson(QJsonDocument::Compact);
    QPointer<PlaneTracker> self(this);
    return std::make_unique<FunctionCall<Done>>([self, http, id, key, payload](FunctionCall<Done> *call) {
        if (!self)
            return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
        self->ensurePaths(call, [self, http, id, key, payload, call](Result<void> ready) {
            if (!ready)
                return call->finishWith(std::unexpected(ready.error()));
            Request req;
            req.method = "POST";
            req.path = self->issuePath(id, QStringLiteral("comments/"));
            req.body = payload;
            if (!key.isEmpty()) {
                req.repeatable = true;
                req.answerStatuses = {409};
            }
            http->send(req, call, [call, req](Result<Response> r) {
                if (!r)
                    return call->finishWith(std::unexpected(r.error()));
                if (r->status == 409) {
                    const QJsonObject o = QJsonDocument::fromJson(r->body).object();
                    if (o.value(QLatin1String("error")).toString().contains(QLatin1String("external id"), Qt::CaseInsensitive)
                        && !o.value(QLatin1String("id")).toString().isEmpty())
                        return call->finishWith(Done{}); // posted before: by the attempt whose answer was lost
                    return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("%1: HTTP 409").arg(ForgeHttp::describe(req)),
                                                 ForgeHttp::bodyMessage(r->body)));
                }
                call->finishWith(Done{});
            });
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
    QPointer<PlaneTracker> self(this);
    return std::make_unique<FunctionCall<Done>>([self, http, id, logicalState](FunctionCall<Done> *call) {
        if (!self)
            return call->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("tracker is gone")));
        auto patch = [self, http, id, logicalState, call] {
            const QString stateId = self->m_states.idByLogical.value(logicalState);
            if (stateId.isEmpty()) {
                // Fail closed: never some other state's id.
                return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("Plane project %1 has no state '%2' (for '%3')")
                                                                      .arg(self->m_settings.project,
                                                                           self->m_settings.logicalStates.value(logicalState), logicalState)));
            }
            self->ensurePaths(call, [self, http, id, stateId, call](Result<void> ready) {
                if (!ready)
                    return call->finishWith(std::unexpected(ready.error()));
                Request req;
                req.method = "PATCH";
                req.path = self->issuePath(id);
                req.body = QJsonDocument(QJsonObject{{QStringLiteral("state"), stateId}}).toJson(QJsonDocument::Compact);
                req.repeatable = true; // setting the same state again changes nothing
                http->send(req, call, [call](Result<Response> r) {
                    if (!r)
                        return call->finishWith(std::unexpected(r.error()));
                    call->finishWith(Done{});
                });
            });
        };
        if (self->m_states.idByLogical.contains(logicalState))
            return patch();
        // A miss: the states may have changed since they were read, or were never read.
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
    if (QString::fromLatin1(request.headers.value("x-plane-delivery")).trimmed().isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("missing X-Plane-Delivery"));
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(request.body, &error);
    if (!doc.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("body is not a JSON object: %1").arg(error.errorString()));
    auto change = PlaneWebhookChange::read(doc.object(), request.body);
    if (!change)
        return std::unexpected(change.error());
    WebhookDelivery delivery;
    delivery.deliveryId = change->dedupId;
    if (!change->workItem || change->projectId != m_settings.project || change->issueId.isEmpty())
        return delivery; // recorded, nothing to do: another kind of event, or another project's
    if (!change->stateChanged) {
        // One delivery per changed field: a title edit on a work item that shows "Rejected" is
        // not a rejection (issue 24.10).
        qCDebug(context().logging()).noquote() << "work item" << change->issueId << "changed" << (change->field.isEmpty() ? QStringLiteral("?") : change->field)
                                               << "- not its state: nothing to do";
        return delivery;
    }
    if (change->stateId.isEmpty())
        return delivery;
    if (!m_resolved || !m_states.nameById.contains(change->stateId)) {
        // Not known yet (the states are still being read, or the state is new): recorded and
        // handed over all the same, as a work item the host reads again (Tracker::issue()
        // reads the states again first). Plane does not deliver again after an answer, so an
        // error here would lose the move.
        refreshStates(this, [](Result<void>) {});
        qCInfo(context().logging()).noquote() << "work item" << change->issueId << "moved to state" << change->stateId
                                              << "not known yet: the host reads the work item again";
        delivery.events.append(WebhookEvent{QStringLiteral("tracker-issue"), change->issueId, change->stateId, QJsonObject()});
        return delivery;
    }
    const TrackerIssue issue = issueFrom(change->issueId, change->name, change->description, change->sequence, change->stateId);
    if (issue.signal.isEmpty())
        return delivery; // a state that means nothing here
    if (change->v2 && issue.signal == QLatin1String("start")) {
        // A v2 work item carries no description; a new task needs it: read the work item.
        delivery.events.append(WebhookEvent{QStringLiteral("tracker-issue"), issue.id, change->stateId, QJsonObject()});
        return delivery;
    }
    QJsonObject eventData{{QStringLiteral("title"), issue.title},
                          {QStringLiteral("description"), issue.description},
                          {QStringLiteral("key"), issue.key},
                          {QStringLiteral("state"), issue.state},
                          {QStringLiteral("url"), issue.url}};
    if (!issue.key.isEmpty())
        eventData.insert(QStringLiteral("branch"), QStringLiteral("sluice/%1").arg(issue.key.toLower()));
    delivery.events.append(WebhookEvent{QStringLiteral("signal"), issue.id, issue.signal, eventData});
    qCInfo(context().logging()).noquote() << "work item" << (issue.key.isEmpty() ? issue.id : issue.key) << "moved to state"
                                          << issue.state << "→ signal" << issue.signal;
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
