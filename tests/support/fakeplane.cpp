// SPDX-License-Identifier: Apache-2.0
#include "fakeplane.h"

#include <QDateTime>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QMessageAuthenticationCode>
#include <QMutex>
#include <QRegularExpression>
#include <QUuid>

#include <deque>

namespace Sluice::Test {

namespace {

struct PlaneState {
    QString id;
    QString project;
    QString name;
    QString group;
};

// One change of a work item, as Plane's model_activity sees it: a field with its old and new
// value (none for the creation), at a time, with the id a v2 delivery carries for it.
struct PlaneChange {
    QString field;
    QJsonValue oldValue;
    QJsonValue newValue;
    QString at;
    QString eventId;
};

struct PlaneIssue {
    QString id;
    QString project;
    int sequence = 0;
    QString name;
    QString description;
    QString stateId;
    QString updatedAt;
    QList<PlaneChange> changes; // the first is the creation
};

struct Fault {
    QString pathPart;
    int status = 503;
    int times = 1;
    QByteArray method;
};

QString newId()
{
    return QUuid::createUuid().toString(QUuid::WithoutBraces);
}

LoopbackAnswer detail(int status, const QString &text)
{
    return LoopbackAnswer::json(QJsonDocument(QJsonObject{{QStringLiteral("detail"), text}}), status);
}

} // namespace

struct FakePlane::State {
    mutable QMutex mutex;
    QByteArray apiKey;
    int maxPageSize = 100;
    int rateLimit = 0;
    qint64 rateWindowMs = 60000;
    std::deque<qint64> recent; // receive times within the window
    int rateLimited = 0;
    bool workItemPaths = true;
    int deprecatedRequests = 0;
    QMap<QString, QString> projects; // id → identifier
    QList<PlaneState> states;
    QMap<QString, PlaneIssue> issues;
    QList<FakePlaneComment> comments;
    QList<Fault> faults;
    QStringList lostAnswers; // path parts whose next answer is broken off after acting
    QList<LoopbackRequest> log;
    int nextSequence = 1;
    qint64 clock = 0; // keeps updated_at strictly increasing

    const PlaneState *state(const QString &id) const
    {
        for (const PlaneState &s : states) {
            if (s.id == id)
                return &s;
        }
        return nullptr;
    }
    const PlaneState *stateNamed(const QString &project, const QString &name) const
    {
        for (const PlaneState &s : states) {
            if (s.project == project && s.name == name)
                return &s;
        }
        return nullptr;
    }

    QString now()
    {
        clock = std::max(clock + 1, QDateTime::currentMSecsSinceEpoch());
        return QDateTime::fromMSecsSinceEpoch(clock, Qt::UTC).toString(Qt::ISODateWithMs);
    }

    // Plane's model_activity: a change is recorded (and delivered) only when the value differs.
    void change(PlaneIssue &issue, const QString &field, const QJsonValue &oldValue, const QJsonValue &newValue)
    {
        if (oldValue == newValue)
            return;
        issue.updatedAt = now();
        issue.changes.append(PlaneChange{field, oldValue, newValue, issue.updatedAt, newId()});
    }

    // The work item as the API (IssueSerializer) answers it: state as an id.
    QJsonObject issueJson(const PlaneIssue &i) const
    {
        return QJsonObject{{QStringLiteral("id"), i.id},
                           {QStringLiteral("name"), i.name},
                           {QStringLiteral("description_html"), i.description},
                           {QStringLiteral("description_stripped"), i.description},
                           {QStringLiteral("sequence_id"), i.sequence},
                           {QStringLiteral("project"), i.project},
                           {QStringLiteral("workspace"), QStringLiteral("ws-0001")},
                           {QStringLiteral("state"), i.stateId},
                           {QStringLiteral("priority"), QStringLiteral("none")},
                           {QStringLiteral("updated_at"), i.updatedAt}};
    }

    // Called locked.
    LoopbackAnswer handle(const LoopbackRequest &req)
    {
        if (rateLimit > 0) {
            while (!recent.empty() && recent.front() + rateWindowMs <= req.receivedMs)
                recent.pop_front();
            if (int(recent.size()) >= rateLimit) {
                ++rateLimited;
                const qint64 waitMs = recent.front() + rateWindowMs - req.receivedMs;
                LoopbackAnswer a = detail(429, QStringLiteral("Request was throttled."));
                a.headers.append(qMakePair(QByteArray("Retry-After"), QByteArray::number((waitMs + 999) / 1000)));
                a.headers.append(qMakePair(QByteArray("X-RateLimit-Remaining"), QByteArray("0")));
                return a;
            }
            recent.push_back(req.receivedMs);
        }
        if (!apiKey.isEmpty() && req.header("x-api-key") != apiKey)
            return detail(401, QStringLiteral("Authentication credentials were not provided."));
        for (int i = 0; i < faults.size(); ++i) {
            if (!req.path.contains(faults[i].pathPart) || (!faults[i].method.isEmpty() && faults[i].method != req.method))
                continue;
            const int status = faults[i].status;
            if (--faults[i].times <= 0)
                faults.removeAt(i);
            return detail(status, QStringLiteral("injected fault"));
        }

        // Plane serves work items under work-items/ (current) and issues/ (listed as deprecated
        // in apps/api/plane/api/urls/work_item.py; older releases have these only).
        static const QRegularExpression route(
            QStringLiteral("^/api/v1/workspaces/([^/]+)/projects/([^/]+)/(states|issues|work-items)/(?:([^/]+)/)?(?:(comments)/)?$"));
        const auto m = route.match(req.path);
        if (!m.hasMatch() || m.captured(1) != QLatin1String("acme") || !projects.contains(m.captured(2)))
            return detail(404, QStringLiteral("Not found."));
        if (m.captured(3) == QLatin1String("work-items") && !workItemPaths)
            return LoopbackAnswer{404, "<h1>Not Found</h1>", {qMakePair(QByteArray("Content-Type"), QByteArray("text/html"))}};
        if (m.captured(3) == QLatin1String("issues"))
            ++deprecatedRequests;
        const QString project = m.captured(2);
        if (m.captured(4).isEmpty() && req.method == "GET") {
            QJsonArray all;
            if (m.captured(3) == QLatin1String("states")) {
                for (const PlaneState &s : std::as_const(states)) {
                    if (s.project == project)
                        all.append(QJsonObject{{QStringLiteral("id"), s.id}, {QStringLiteral("name"), s.name},
                                               {QStringLiteral("group"), s.group}, {QStringLiteral("project"), s.project}});
                }
            } else {
                for (const PlaneIssue &i : std::as_const(issues)) {
                    if (i.project == project)
                        all.append(issueJson(i));
                }
            }
            int perPage = req.query.queryItemValue(QStringLiteral("per_page")).toInt();
            if (perPage <= 0 || perPage > maxPageSize)
                perPage = maxPageSize;
            int page = 0;
            const QStringList cursor = req.query.queryItemValue(QStringLiteral("cursor")).split(QLatin1Char(':'));
            if (cursor.size() == 3)
                page = cursor[1].toInt();
            QJsonArray results;
            for (int i = page * perPage; i < std::min<int>(int(all.size()), (page + 1) * perPage); ++i)
                results.append(all[i]);
            const bool more = (page + 1) * perPage < all.size();
            const int pages = std::max(1, int((all.size() + perPage - 1) / perPage));
            return LoopbackAnswer::json(QJsonDocument(QJsonObject{
                {QStringLiteral("grouped_by"), QJsonValue()},
                {QStringLiteral("total_count"), int(all.size())},
                {QStringLiteral("next_cursor"), QStringLiteral("%1:%2:0").arg(perPage).arg(page + 1)},
                {QStringLiteral("prev_cursor"), QStringLiteral("%1:%2:1").arg(perPage).arg(std::max(0, page - 1))},
                {QStringLiteral("next_page_results"), more},
                {QStringLiteral("prev_page_results"), page > 0},
                {QStringLiteral("count"), int(results.size())},
                {QStringLiteral("total_pages"), pages},
                {QStringLiteral("total_results"), int(all.size())},
                {QStringLiteral("results"), results}}));
        }
        if (m.captured(3) != QLatin1String("states") && !m.captured(4).isEmpty()) {
            auto it = issues.find(m.captured(4));
            if (it == issues.end() || it->project != project)
                return LoopbackAnswer::json(QJsonDocument(QJsonObject{{QStringLiteral("error"), QStringLiteral("Issue not found")}}), 404);
            if (m.captured(5).isEmpty() && req.method == "GET")
                return LoopbackAnswer::json(QJsonDocument(issueJson(*it)));
            if (m.captured(5).isEmpty() && req.method == "PATCH") {
                const QJsonObject body = QJsonDocument::fromJson(req.body).object();
                if (body.contains(QLatin1String("state"))) {
                    const PlaneState *s = state(body.value(QLatin1String("state")).toString());
                    if (!s || s->project != project)
                        return detail(400, QStringLiteral("Invalid state."));
                    // The API's PATCH names the field "state" (IssueSerializer).
                    change(*it, QStringLiteral("state"), it->stateId, s->id);
                    it->stateId = s->id;
                }
                return LoopbackAnswer::json(QJsonDocument(issueJson(*it)));
            }
            if (m.captured(5) == QLatin1String("comments") && req.method == "POST") {
                const QJsonObject body = QJsonDocument::fromJson(req.body).object();
                const QString html = body.value(QLatin1String("comment_html")).toString();
                const QString externalId = body.value(QLatin1String("external_id")).toString();
                const QString externalSource = body.value(QLatin1String("external_source")).toString();
                // The comment list endpoint's post (apps/api/plane/api/views/issue.py): the same
                // external_id and external_source in the project again is a 409 with the first
                // comment's id, and nothing is posted.
                if (!externalId.isEmpty() && !externalSource.isEmpty()) {
                    for (const FakePlaneComment &c : std::as_const(comments)) {
                        if (c.externalId == externalSource + QLatin1Char('\n') + externalId && issues.value(c.issueId).project == project)
                            return LoopbackAnswer::json(
                                QJsonDocument(QJsonObject{
                                    {QStringLiteral("error"), QStringLiteral("Work item comment with the same external id and external source already exists")},
                                    {QStringLiteral("id"), QStringLiteral("comment-of-") + externalId}}),
                                409);
                    }
                }
                if (html.isEmpty())
                    return detail(400, QStringLiteral("comment_html is required."));
                comments.append(FakePlaneComment{it->id, html, externalId.isEmpty() ? QString() : externalSource + QLatin1Char('\n') + externalId});
                return LoopbackAnswer::json(QJsonDocument(QJsonObject{{QStringLiteral("id"), newId()},
                                                                      {QStringLiteral("comment_html"), html},
                                                                      {QStringLiteral("issue"), it->id}}),
                                            201);
            }
        }
        return detail(405, QStringLiteral("Method not allowed."));
    }

    // The body Plane's webhook sender makes for @p change of @p issue (called locked).
    QByteArray webhookBody(const PlaneIssue &issue, const PlaneChange &c, bool created, Webhooks version) const
    {
        const PlaneState *s = state(issue.stateId);
        if (version == Webhooks::V2) {
            // developers.plane.so, "Webhooks" → "Payload structure": the flat work item in data,
            // the changed fields' previous values in previous_attributes, event_id stable for the
            // event (delivery_id, new per attempt, is set by the caller in the header too).
            QJsonObject previous;
            if (!created)
                previous.insert(c.field == QLatin1String("state") ? QStringLiteral("state_id") : c.field, c.oldValue);
            return QJsonDocument(QJsonObject{{QStringLiteral("version"), QStringLiteral("v2")},
                                             {QStringLiteral("event_id"), c.eventId},
                                             {QStringLiteral("entity_id"), issue.id},
                                             {QStringLiteral("entity_type"), QStringLiteral("issue")},
                                             {QStringLiteral("event"), created ? QStringLiteral("workitem.created") : QStringLiteral("workitem.updated")},
                                             {QStringLiteral("webhook_id"), QStringLiteral("wh-0002")},
                                             {QStringLiteral("workspace_id"), QStringLiteral("ws-0001")},
                                             {QStringLiteral("data"), QJsonObject{{QStringLiteral("id"), issue.id},
                                                                                  {QStringLiteral("name"), issue.name},
                                                                                  {QStringLiteral("state_id"), issue.stateId},
                                                                                  {QStringLiteral("project_id"), issue.project},
                                                                                  {QStringLiteral("sequence_id"), issue.sequence},
                                                                                  {QStringLiteral("priority"), QStringLiteral("none")},
                                                                                  {QStringLiteral("parent_id"), QStringLiteral("None")},
                                                                                  {QStringLiteral("updated_at"), issue.updatedAt},
                                                                                  {QStringLiteral("description_json"), QJsonObject()}}},
                                             {QStringLiteral("previous_attributes"), created ? QJsonObject() : previous}})
                .toJson(QJsonDocument::Compact);
        }
        // makeplane/plane apps/api/plane/bgtasks/webhook_task.py: event "issue", the work item
        // as IssueExpandSerializer gives it (state expanded), and activity with the one field
        // this delivery is about (none for a creation). data is read when the delivery is built,
        // so it shows the work item as it is then.
        QJsonObject data = issueJson(issue);
        data.insert(QStringLiteral("state"), QJsonObject{{QStringLiteral("id"), issue.stateId},
                                                         {QStringLiteral("name"), s ? s->name : QString()},
                                                         {QStringLiteral("group"), s ? s->group : QString()}});
        const QJsonObject actor{{QStringLiteral("id"), QStringLiteral("user-0001")}, {QStringLiteral("display_name"), QStringLiteral("person")}};
        return QJsonDocument(QJsonObject{{QStringLiteral("event"), QStringLiteral("issue")},
                                         {QStringLiteral("action"), created ? QStringLiteral("created") : QStringLiteral("updated")},
                                         {QStringLiteral("webhook_id"), QStringLiteral("wh-0001")},
                                         {QStringLiteral("workspace_id"), QStringLiteral("ws-0001")},
                                         {QStringLiteral("data"), data},
                                         {QStringLiteral("activity"), QJsonObject{{QStringLiteral("field"), created ? QJsonValue() : QJsonValue(c.field)},
                                                                                  {QStringLiteral("new_value"), created ? QJsonValue() : c.newValue},
                                                                                  {QStringLiteral("old_value"), created ? QJsonValue() : c.oldValue},
                                                                                  {QStringLiteral("actor"), actor},
                                                                                  {QStringLiteral("old_identifier"), QJsonValue()},
                                                                                  {QStringLiteral("new_identifier"), QJsonValue()}}}})
            .toJson(QJsonDocument::Compact);
    }

    Delivery delivery(const QString &issueId, const QByteArray &secret, const QString &deliveryId, Webhooks version, bool forceCreated) const
    {
        Delivery d;
        d.id = deliveryId.isEmpty() ? newId() : deliveryId;
        const auto it = issues.constFind(issueId);
        if (it != issues.cend() && !it->changes.isEmpty()) {
            const bool created = forceCreated || it->changes.size() == 1;
            d.body = webhookBody(*it, created ? it->changes.first() : it->changes.last(), created, version);
        }
        if (version == Webhooks::V2) {
            QJsonObject o = QJsonDocument::fromJson(d.body).object();
            o.insert(QStringLiteral("delivery_id"), d.id);
            d.body = QJsonDocument(o).toJson(QJsonDocument::Compact);
        }
        d.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
        d.headers.append(qMakePair(QByteArray("User-Agent"), QByteArray("Autopilot")));
        d.headers.append(qMakePair(QByteArray("X-Plane-Delivery"), d.id.toUtf8()));
        d.headers.append(qMakePair(QByteArray("X-Plane-Event"), version == Webhooks::V2 ? QByteArray("workitem.updated") : QByteArray("issue")));
        if (!secret.isEmpty())
            d.headers.append(qMakePair(QByteArray("X-Plane-Signature"), planeSignature(secret, d.body)));
        return d;
    }
};

QByteArray planeSignature(const QByteArray &secret, const QByteArray &body)
{
    return QMessageAuthenticationCode::hash(body, secret, QCryptographicHash::Sha256).toHex();
}

FakePlane::FakePlane()
    : m_state(std::make_shared<State>())
    , m_http(std::make_unique<LoopbackServer>(QStringLiteral("fake-plane")))
{
}

FakePlane::~FakePlane() = default;

Result<void> FakePlane::start()
{
    std::shared_ptr<State> state = m_state;
    return m_http->start([state](const LoopbackRequest &req) {
        QMutexLocker lock(&state->mutex);
        state->log.append(req);
        LoopbackAnswer answer = state->handle(req);
        for (int i = 0; i < state->lostAnswers.size(); ++i) {
            if (req.path.contains(state->lostAnswers.at(i))) {
                state->lostAnswers.removeAt(i);
                answer.truncate = true;
                break;
            }
        }
        return answer;
    });
}

QUrl FakePlane::url() const
{
    return m_http->url();
}

void FakePlane::setApiKey(const QByteArray &key)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->apiKey = key;
}

void FakePlane::setMaxPageSize(int size)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->maxPageSize = size;
}

void FakePlane::setRateLimit(int requests, std::chrono::milliseconds window)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->rateLimit = requests;
    m_state->rateWindowMs = window.count();
}

void FakePlane::failNext(const QString &pathPart, int status, int times, const QByteArray &method)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->faults.append(Fault{pathPart, status, times, method});
}

void FakePlane::loseNextAnswer(const QString &pathPart)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->lostAnswers.append(pathPart);
}

void FakePlane::clearFaults()
{
    QMutexLocker lock(&m_state->mutex);
    m_state->faults.clear();
}

void FakePlane::setWorkItemPaths(bool served)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->workItemPaths = served;
}

int FakePlane::deprecatedPathRequests() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->deprecatedRequests;
}

QString FakePlane::addProject(const QString &identifier)
{
    QMutexLocker lock(&m_state->mutex);
    const QString id = newId();
    m_state->projects.insert(id, identifier);
    return id;
}

QString FakePlane::addState(const QString &projectId, const QString &name, const QString &group)
{
    QMutexLocker lock(&m_state->mutex);
    const QString id = newId();
    m_state->states.append(PlaneState{id, projectId, name, group});
    return id;
}

QString FakePlane::addIssue(const QString &projectId, const QString &name, const QString &description, const QString &stateName)
{
    QMutexLocker lock(&m_state->mutex);
    const PlaneState *s = m_state->stateNamed(projectId, stateName);
    PlaneIssue issue{newId(), projectId, m_state->nextSequence++, name, description, s ? s->id : QString(), m_state->now(), {}};
    issue.changes.append(PlaneChange{QString(), QJsonValue(), QJsonValue(), issue.updatedAt, newId()});
    m_state->issues.insert(issue.id, issue);
    return issue.id;
}

bool FakePlane::moveIssue(const QString &issueId, const QString &stateName)
{
    QMutexLocker lock(&m_state->mutex);
    auto it = m_state->issues.find(issueId);
    if (it == m_state->issues.end())
        return false;
    const PlaneState *s = m_state->stateNamed(it->project, stateName);
    if (!s)
        return false;
    // The web app patches "state_id" (apps/api/plane/app/views/issue/base.py compares the
    // request's keys with IssueDetailSerializer's).
    m_state->change(*it, QStringLiteral("state_id"), it->stateId, s->id);
    it->stateId = s->id;
    return true;
}

bool FakePlane::renameIssue(const QString &issueId, const QString &name)
{
    QMutexLocker lock(&m_state->mutex);
    auto it = m_state->issues.find(issueId);
    if (it == m_state->issues.end())
        return false;
    m_state->change(*it, QStringLiteral("name"), it->name, name);
    it->name = name;
    return true;
}

QString FakePlane::issueState(const QString &issueId) const
{
    QMutexLocker lock(&m_state->mutex);
    const auto it = m_state->issues.constFind(issueId);
    if (it == m_state->issues.cend())
        return {};
    const PlaneState *s = m_state->state(it->stateId);
    return s ? s->name : QString();
}

QString FakePlane::stateId(const QString &projectId, const QString &name) const
{
    QMutexLocker lock(&m_state->mutex);
    const PlaneState *s = m_state->stateNamed(projectId, name);
    return s ? s->id : QString();
}

QList<FakePlaneComment> FakePlane::comments(const QString &issueId) const
{
    QMutexLocker lock(&m_state->mutex);
    QList<FakePlaneComment> out;
    for (const FakePlaneComment &c : std::as_const(m_state->comments)) {
        if (issueId.isEmpty() || c.issueId == issueId)
            out.append(c);
    }
    return out;
}

FakePlane::Delivery FakePlane::issueUpdated(const QString &issueId, const QByteArray &secret, const QString &deliveryId, Webhooks version) const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->delivery(issueId, secret, deliveryId, version, false);
}

FakePlane::Delivery FakePlane::issueCreated(const QString &issueId, const QByteArray &secret, Webhooks version) const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->delivery(issueId, secret, QString(), version, true);
}

QList<LoopbackRequest> FakePlane::requests() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->log;
}

int FakePlane::rateLimited() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->rateLimited;
}

void FakePlane::clearRequests()
{
    QMutexLocker lock(&m_state->mutex);
    m_state->log.clear();
}

} // namespace Sluice::Test
