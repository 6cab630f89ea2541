// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file webhook.h
 * Incoming webhook deliveries, as connectors receive them from the host's HTTP server.
 */

#include <sluice/error.h>

#include <QByteArray>
#include <QHash>
#include <QJsonObject>
#include <QList>
#include <QString>

namespace Sluice {

/// One HTTP delivery, before any check.
struct SLUICE_EXPORT WebhookRequest {
    QByteArray body;
    QHash<QByteArray, QByteArray> headers; ///< Header names in lower case.
    QString remoteAddress;
};

/// A task-level event a connector derived from a delivery.
struct SLUICE_EXPORT WebhookEvent {
    QString kind;      ///< "signal", "push", "status", ...
    QString subject;   ///< What it is about: issue id, branch, pull request number.
    QString value;     ///< Signal name, new head sha, state.
    QJsonObject data;  ///< Anything else the connector extracted.
};

/// A verified delivery.
struct SLUICE_EXPORT WebhookDelivery {
    QString deliveryId;          ///< Unique id used to drop duplicates.
    QList<WebhookEvent> events;
};

/// Compares two byte strings in time that depends only on their lengths (for signatures).
[[nodiscard]] SLUICE_EXPORT bool constantTimeEquals(const QByteArray &a, const QByteArray &b);

/**
 * Checks an HMAC-SHA256 signature of @p body made with @p secret. @p signature is hex, with
 * or without a "sha256=" prefix (GitHub, Gitea and Plane style). Constant time.
 */
[[nodiscard]] SLUICE_EXPORT bool verifyHmacSha256(const QByteArray &secret, const QByteArray &body, const QByteArray &signature);

/**
 * Implemented by connectors that accept webhooks. The host calls it for
 * POST /webhooks/<instance>; an Error with code PermissionDenied answers 401 and stores
 * nothing.
 */
class SLUICE_EXPORT WebhookReceiver
{
public:
    virtual ~WebhookReceiver();
    /// Verifies the signature (constant time) and extracts events.
    [[nodiscard]] virtual Result<WebhookDelivery> acceptWebhook(const WebhookRequest &request) = 0;
};

} // namespace Sluice
