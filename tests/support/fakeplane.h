// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file fakeplane.h
 * A Plane tracker for tests, on loopback (see loopbackserver.h): the REST API v1 shapes the
 * plane connector uses — a project's states (cursor pagination: per_page, cursor
 * "PER_PAGE:PAGE:0", next_cursor, next_page_results), work items listed, read and patched,
 * comments posted (once per external_id) — under both the current `…/work-items/…` paths and
 * the deprecated `…/issues/…` ones, behind an X-API-Key, with a server-side rate limit answered
 * 429 with Retry-After and X-RateLimit-* headers, injected outages, and the time of every
 * request recorded.
 *
 * It also builds the webhook deliveries Plane sends, shaped after Plane's sender and documents
 * (makeplane/plane apps/api/plane/bgtasks/webhook_task.py; developers.plane.so "Webhooks"):
 * v1, one "updated" delivery per changed field with activity {field, old_value, new_value}
 * and a new X-Plane-Delivery on every attempt, and v2 ("workitem.updated" with
 * previous_attributes and a stable event_id).
 */

#include "loopbackserver.h"

#include <QByteArray>
#include <QList>
#include <QString>

#include <chrono>
#include <memory>

namespace Sluice::Test {

struct FakePlaneComment {
    QString issueId;
    QString html;
    QString externalId;
};

class FakePlane
{
public:
    FakePlane();
    ~FakePlane();

    [[nodiscard]] Result<void> start();
    /// http://127.0.0.1:PORT/ (the API is under api/v1/).
    [[nodiscard]] QUrl url() const;
    [[nodiscard]] QString workspace() const { return QStringLiteral("acme"); }

    /// Requests must carry X-API-Key: @p key (else 401).
    void setApiKey(const QByteArray &key);
    /// Largest page served, whatever per_page asks. Default 100.
    void setMaxPageSize(int size);
    /// At most @p requests per @p window; more are answered 429 (Retry-After, X-RateLimit-Reset). 0: none.
    void setRateLimit(int requests, std::chrono::milliseconds window);
    /// The next @p times requests whose path contains @p pathPart (and, if given, with method
    /// @p method) are answered @p status.
    void failNext(const QString &pathPart, int status, int times = 1, const QByteArray &method = QByteArray());
    /// The next request whose path contains @p pathPart is acted on, and its answer broken off
    /// (the connection closes mid-body): a write whose answer was lost.
    void loseNextAnswer(const QString &pathPart);
    /// Forgets the faults failNext() set up that did not happen yet.
    void clearFaults();
    /// Whether the `…/work-items/…` paths exist (true: a current Plane; false: an older release
    /// that serves `…/issues/…` only).
    void setWorkItemPaths(bool served);
    /// Requests that used the deprecated `…/issues/…` paths.
    [[nodiscard]] int deprecatedPathRequests() const;

    /// A new project (identifier e.g. "SLU"); returns its id.
    QString addProject(const QString &identifier);
    /// A state of @p projectId named @p name; returns its id (ids differ per project).
    QString addState(const QString &projectId, const QString &name, const QString &group = QStringLiteral("started"));
    /// A work item in state @p stateName; returns its id.
    QString addIssue(const QString &projectId, const QString &name, const QString &description, const QString &stateName);
    /// What a person does in the UI: moves the work item to @p stateName (a change of its
    /// "state_id"). False if no such state.
    bool moveIssue(const QString &issueId, const QString &stateName);
    /// What a person does in the UI: renames the work item (a change of its "name").
    bool renameIssue(const QString &issueId, const QString &name);
    /// The name of the work item's state now.
    [[nodiscard]] QString issueState(const QString &issueId) const;
    /// The id of state @p name in @p projectId, empty if none.
    [[nodiscard]] QString stateId(const QString &projectId, const QString &name) const;
    [[nodiscard]] QList<FakePlaneComment> comments(const QString &issueId = QString()) const;

    enum class Webhooks { V1, V2 };
    /**
     * The delivery Plane sends for the last change of @p issueId (its creation when nothing
     * changed since), and its headers: X-Plane-Delivery (a new id on every call, as Plane makes
     * one per attempt, unless @p deliveryId is given), X-Plane-Event and X-Plane-Signature
     * (HMAC-SHA256 of the body with @p secret, hex; none if @p secret is empty). Called twice
     * for the same change, it gives the same body: what a redelivery looks like.
     */
    struct Delivery {
        QByteArray body;
        QList<QPair<QByteArray, QByteArray>> headers;
        QString id;
    };
    [[nodiscard]] Delivery issueUpdated(const QString &issueId, const QByteArray &secret, const QString &deliveryId = QString(),
                                        Webhooks version = Webhooks::V1) const;
    /// The delivery for the creation of @p issueId.
    [[nodiscard]] Delivery issueCreated(const QString &issueId, const QByteArray &secret, Webhooks version = Webhooks::V1) const;

    [[nodiscard]] QList<LoopbackRequest> requests() const;
    /// Requests answered 429 so far.
    [[nodiscard]] int rateLimited() const;
    void clearRequests();

    struct State;

private:
    std::shared_ptr<State> m_state;
    std::unique_ptr<LoopbackServer> m_http;
};

/// Sign @p body as Plane does (hex HMAC-SHA256).
[[nodiscard]] QByteArray planeSignature(const QByteArray &secret, const QByteArray &body);

} // namespace Sluice::Test
