// SPDX-License-Identifier: Apache-2.0
#include "fakeplane.h"

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

struct PlaneIssue {
    QString id;
    QString project;
    int sequence = 0;
    QString name;
    QString description;
    QString stateId;
};

struct Fault {
    QString pathPart;
    int status = 503;
    int times = 1;
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
    QMap<QString, QString> projects; // id → identifier
    QList<PlaneState> states;
    QMap<QString, PlaneIssue> issues;
    QList<FakePlaneComment> comments;
    QList<Fault> faults;
    QList<LoopbackRequest> log;
    int nextSequence = 1;

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
                           {QStringLiteral("priority"), QStringLiteral("none")}};
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
            if (!req.path.contains(faults[i].pathPart))
                continue;
            const int status = faults[i].status;
            if (--faults[i].times <= 0)
                faults.removeAt(i);
            return detail(status, QStringLiteral("injected fault"));
        }

        static const QRegularExpression route(
            QStringLiteral("^/api/v1/workspaces/([^/]+)/projects/([^/]+)/(states|issues)/(?:([^/]+)/)?(?:(comments)/)?$"));
        const auto m = route.match(req.path);
        if (!m.hasMatch() || m.captured(1) != QLatin1String("acme") || !projects.contains(m.captured(2)))
            return detail(404, QStringLiteral("Not found."));
        const QString project = m.captured(2);
        if (m.captured(3) == QLatin1String("states") && m.captured(4).isEmpty() && req.method == "GET") {
            QJsonArray all;
            for (const PlaneState &s : std::as_const(states)) {
                if (s.project == project)
                    all.append(QJsonObject{{QStringLiteral("id"), s.id}, {QStringLiteral("name"), s.name},
                                           {QStringLiteral("group"), s.group}, {QStringLiteral("project"), s.project}});
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
        if (m.captured(3) == QLatin1String("issues") && !m.captured(4).isEmpty()) {
            auto it = issues.find(m.captured(4));
            if (it == issues.end() || it->project != project)
                return detail(404, QStringLiteral("Issue not found."));
            if (m.captured(5).isEmpty() && req.method == "GET")
                return LoopbackAnswer::json(QJsonDocument(issueJson(*it)));
            if (m.captured(5).isEmpty() && req.method == "PATCH") {
                const QJsonObject body = QJsonDocument::fromJson(req.body).object();
                if (body.contains(QLatin1String("state"))) {
                    const PlaneState *s = state(body.value(QLatin1String("state")).toString());
                    if (!s || s->project != project)
                        return detail(400, QStringLiteral("Invalid state."));
                    it->stateId = s->id;
                }
                return LoopbackAnswer::json(QJsonDocument(issueJson(*it)));
            }
            if (m.captured(5) == QLatin1String("comments") && req.method == "POST") {
                const QJsonObject body = QJsonDocument::fromJson(req.body).object();
                const QString html = body.value(QLatin1String("comment_html")).toString();
                if (html.isEmpty())
                    return detail(400, QStringLiteral("comment_html is required."));
                comments.append(FakePlaneComment{it->id, html});
                return LoopbackAnswer::json(QJsonDocument(QJsonObject{{QStringLiteral("id"), newId()},
                                                                      {QStringLiteral("comment_html"), html},
                                                                      {QStringLiteral("issue"), it->id}}),
                                            201);
            }
        }
        return detail(405, QStringLiteral("Method not allowed."));
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
        return state->handle(req);
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

void FakePlane::failNext(const QString &pathPart, int status, int times)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->faults.append(Fault{pathPart, status, times});
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
    PlaneIssue issue{newId(), projectId, m_state->nextSequence++, name, description, s ? s->id : QString()};
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
    it->stateId = s->id;
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

FakePlane::Delivery FakePlane::issueUpdated(const QString &issueId, const QByteArray &secret, const QString &deliveryId) const
{
    QMutexLocker lock(&m_state->mutex);
    Delivery d;
    d.id = deliveryId.isEmpty() ? newId() : deliveryId;
    QJsonObject data;
    const auto it = m_state->issues.constFind(issueId);
    if (it != m_state->issues.cend()) {
        data = m_state->issueJson(*it);
        // Webhooks carry the state expanded.
        const PlaneState *s = m_state->state(it->stateId);
        data.insert(QStringLiteral("state"), QJsonObject{{QStringLiteral("id"), it->stateId},
                                                         {QStringLiteral("name"), s ? s->name : QString()},
                                                         {QStringLiteral("group"), s ? s->group : QString()}});
    }
    d.body = QJsonDocument(QJsonObject{{QStringLiteral("event"), QStringLiteral("issue")},
                                       {QStringLiteral("action"), QStringLiteral("updated")},
                                       {QStringLiteral("webhook_id"), QStringLiteral("wh-0001")},
                                       {QStringLiteral("workspace_id"), QStringLiteral("ws-0001")},
                                       {QStringLiteral("data"), data},
                                       {QStringLiteral("activity"), QJsonObject{{QStringLiteral("field"), QStringLiteral("state")}}}})
                 .toJson(QJsonDocument::Compact);
    d.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
    d.headers.append(qMakePair(QByteArray("X-Plane-Delivery"), d.id.toUtf8()));
    d.headers.append(qMakePair(QByteArray("X-Plane-Event"), QByteArray("issue")));
    if (!secret.isEmpty())
        d.headers.append(qMakePair(QByteArray("X-Plane-Signature"), planeSignature(secret, d.body)));
    return d;
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
