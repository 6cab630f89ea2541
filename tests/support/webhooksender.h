// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file webhooksender.h
 * The webhook side of a fake forge: signed deliveries POSTed to a receiver, one after another
 * on a thread of its own (as a forge's hook queue does), in the style of Gitea/Forgejo
 * (X-Gitea-Event, X-Gitea-Delivery, X-Gitea-Signature: hex HMAC-SHA256 of the body, and the
 * X-Forgejo-* twins) or GitHub (X-GitHub-Event, X-GitHub-Delivery, X-Hub-Signature-256:
 * sha256=hex). A test can lose deliveries, hold them and release them out of order, deliver
 * one again with the same id, and send anything raw.
 *
 * Every method is thread-safe.
 */

#include <QByteArray>
#include <QList>
#include <QPair>
#include <QString>
#include <QUrl>

#include <memory>

namespace Sluice::Test {

/// One delivery as the sender made it.
struct SentDelivery {
    QString id;             ///< The delivery id header.
    QByteArray event;       ///< The event header.
    QByteArray body;
    bool lost = false;      ///< Dropped on purpose: never sent.
    bool redelivery = false;
    int status = 0;         ///< The receiver's HTTP status; 0 while not answered (or never sent), -1 when the connection failed.
    QByteArray answer;      ///< The receiver's body.
    qint64 sentAtMs = 0;    ///< When it was sent (ms since the epoch), 0 while held or lost.
    qint64 answeredAtMs = 0;
};

class WebhookSender
{
public:
    enum class Style { Gitea, GitHub };

    explicit WebhookSender(Style style);
    ~WebhookSender();
    WebhookSender(const WebhookSender &) = delete;
    WebhookSender &operator=(const WebhookSender &) = delete;

    /// Where deliveries go and the secret they are signed with. An empty URL: nothing is sent
    /// (deliveries are still recorded, as lost), like a forge with no webhook configured.
    void setTarget(const QUrl &url, const QByteArray &secret);
    [[nodiscard]] bool hasTarget() const;

    /// Queues a signed delivery of @p event with @p body under a new id; returns the id.
    QString send(const QByteArray &event, const QByteArray &body);
    /// Sends delivery @p id again: same id, same body, signed again (a forge's "redeliver").
    QString redeliver(const QString &id);
    /// Sends exactly @p headers (plus Content-Type) with @p body: for signatures, ids and events that are wrong on purpose.
    QString sendRaw(const QByteArray &body, const QList<QPair<QByteArray, QByteArray>> &headers);

    /// The next @p count deliveries are lost: recorded, never sent.
    void loseNext(int count);
    /// While on, deliveries wait; release() sends them, in order or @p reversed.
    void hold(bool on);
    void release(bool reversed);

    [[nodiscard]] QList<SentDelivery> deliveries() const;
    /// The deliveries of @p event, in the order they were made.
    [[nodiscard]] QList<SentDelivery> deliveries(const QByteArray &event) const;
    /// Deliveries queued or on their way.
    [[nodiscard]] int pending() const;

    /// The signature headers of @p body under @p secret in @p style.
    [[nodiscard]] static QList<QPair<QByteArray, QByteArray>> signatureHeaders(Style style, const QByteArray &secret, const QByteArray &body);

    struct State;
    class Worker;

private:
    std::shared_ptr<State> m_state;
};

} // namespace Sluice::Test
