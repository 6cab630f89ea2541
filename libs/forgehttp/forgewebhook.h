// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the gitea and github connectors share to accept webhook deliveries: the signature
// check, the delivery id, the event header, a parser of the forge's payloads, and the
// repository filter. Each forge's parser is a pure function in its connector
// (parseGiteaWebhook, parseGitHubWebhook).

#include "forgecall.h"

#include <sluice/error.h>
#include <sluice/forgeevents.h>
#include <sluice/webhook.h>

#include <QByteArray>
#include <QJsonObject>
#include <QList>
#include <QLoggingCategory>
#include <QString>

#include <functional>

namespace Sluice::ForgeHttp {

/// The headers one forge sends a delivery with, lower case, the first present one wins.
struct WebhookHeaders {
    QList<QByteArray> signature; ///< HMAC-SHA256 of the body, hex, with or without "sha256=".
    QList<QByteArray> delivery;  ///< The delivery's unique id.
    QList<QByteArray> event;     ///< The event type.
};

/// A forge's payload parser: the event type and the body to the events Sluice uses.
using WebhookParser = std::function<Result<QList<ForgeEvent>>(const QByteArray &event, const QByteArray &body)>;

/**
 * Checks and reads one delivery: without @p secret every delivery is refused; a missing or
 * wrong signature is PermissionDenied (checked in constant time before anything is read); a
 * missing delivery id or event type, or a body @p parse refuses, is Malformed. Events about
 * another repository than @p repository (OWNER/NAME, compared without case) are dropped with
 * a debug line on @p log, as are event types @p parse does not use.
 */
[[nodiscard]] Result<WebhookDelivery> acceptForgeWebhook(const WebhookRequest &request, const QByteArray &secret,
                                                         const WebhookHeaders &headers, const WebhookParser &parse,
                                                         const QString &repository, const QLoggingCategory &log);

/// OWNER/NAME of the repository a payload is about (`repository.full_name`, Gitea and GitHub alike).
[[nodiscard]] Result<QString> repositoryOf(const JsonFields &payload);

/// A `status` delivery's event: Gitea's and GitHub's commit status payloads have the same shape
/// (sha, context, state, an optional id, the sender). An unknown state is Malformed.
[[nodiscard]] Result<QList<ForgeEvent>> commitStatusEvent(const JsonFields &payload, const QJsonObject &body);

/// A pull request's number under @p key of @p fields: a positive integer, as every forge numbers
/// them; Malformed otherwise (a negative or zero number would name no pull request).
[[nodiscard]] Result<qint64> pullRequestNumber(const JsonFields &fields, const QString &key = QStringLiteral("number"));

/// A payload's body as the JSON object every forge event is; Malformed, saying why, otherwise.
[[nodiscard]] Result<QJsonObject> payloadObject(const QByteArray &body);

/// The first non-empty line of @p text, trimmed, at most 200 characters (a command, never the whole text).
[[nodiscard]] QString firstLine(const QString &text);
/// The branch of @p ref ("refs/heads/x" → "x"); empty for any other reference (tags).
[[nodiscard]] QString branchOfRef(const QString &ref);
/// The login of a user object (Gitea and GitHub "login", Gitea's older "username"); empty when none.
[[nodiscard]] QString loginOf(const QJsonObject &user);

} // namespace Sluice::ForgeHttp
