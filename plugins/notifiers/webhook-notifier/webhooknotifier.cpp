// SPDX-License-Identifier: Apache-2.0
#include "webhooknotifier.h"

#include "forgecall.h"

#include <sluice/secrets.h>

#include <QJsonDocument>
#include <QLoggingCategory>
#include <QMessageAuthenticationCode>
#include <QRegularExpression>
#include <QUuid>

namespace Sluice::Notifiers {

QJsonObject webhookEvent(const Notification &n, const QString &deliveryId)
{
    // Every field that carries text is masked here too, whoever raised the notification:
    // data repeats the reason the text gives.
    return QJsonObject{{QStringLiteral("delivery"), deliveryId},
                       {QStringLiteral("event"), n.event},
                       {QStringLiteral("project"), n.projectId},
                       {QStringLiteral("task"), n.taskId},
                       {QStringLiteral("title"), Redaction::mask(n.title)},
                       {QStringLiteral("text"), Redaction::mask(n.text)},
                       {QStringLiteral("data"), Redaction::maskJson(n.data)},
                       {QStringLiteral("at"), n.at.toUTC().toString(Qt::ISODateWithMs)}};
}

WebhookNotifier::~WebhookNotifier() = default;

Result<void> WebhookNotifier::initialize()
{
    const SecretRef ref = context().secret(QStringLiteral("secret"));
    auto secret = ref.read();
    if (!secret)
        return fail(secret.error().code, QStringLiteral("secret: %1").arg(secret.error().message));
    m_secret = secret->trimmed();
    if (m_secret.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("secret: %1 is empty").arg(ref.describe()));
    m_header = context().settings().value(QStringLiteral("signature_header")).toString().toLatin1();
    const QUrl target(context().settings().value(QStringLiteral("url")).toString());
    // The client's base is the target's directory; the request names the rest.
    ForgeHttp::ClientOptions options = ForgeHttp::clientOptions(context().settings(), target.resolved(QUrl(QStringLiteral("."))));
    options.concurrency = 2;
    m_client = std::make_unique<ForgeHttp::Client>(std::move(options));
    return {};
}

std::unique_ptr<AsyncCall<Done>> WebhookNotifier::notify(const Notification &notification)
{
    if (!m_client)
        return ForgeHttp::failedCall<Done>(Error{ErrorCode::InvalidArgument, QStringLiteral("notifier is not initialized"), {}});
    const QString delivery = QUuid::createUuid().toString(QUuid::WithoutBraces);
    ForgeHttp::Request req;
    req.method = "POST";
    req.url = QUrl(context().settings().value(QStringLiteral("url")).toString());
    req.repeatable = true; // the receiver de-duplicates by X-Sluice-Delivery
    req.body = QJsonDocument(webhookEvent(notification, delivery)).toJson(QJsonDocument::Compact);
    const QByteArray signature = "sha256=" + QMessageAuthenticationCode::hash(req.body, m_secret, QCryptographicHash::Sha256).toHex();
    req.headers = {{m_header, signature}, {QByteArrayLiteral("X-Sluice-Event"), notification.event.toUtf8()},
                   {QByteArrayLiteral("X-Sluice-Delivery"), delivery.toUtf8()}};
    ForgeHttp::Client *http = m_client.get();
    return std::make_unique<ForgeHttp::FunctionCall<Done>>([http, req](ForgeHttp::FunctionCall<Done> *call) {
        http->send(req, call, [call](Result<ForgeHttp::Response> r) {
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            call->finishWith(Done{});
        });
    });
}

Result<std::unique_ptr<PluginInstance>> WebhookNotifierFactory::create(const PluginContext &context)
{
    const QString url = context.settings().value(QStringLiteral("url")).toString();
    if (auto base = ForgeHttp::baseUrl(url); !base)
        return std::unexpected(base.error());
    static const QRegularExpression header(QStringLiteral("^[A-Za-z0-9-]+$"));
    if (!header.match(context.settings().value(QStringLiteral("signature_header")).toString()).hasMatch())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("signature_header: not a header name"));
    return std::unique_ptr<PluginInstance>(std::make_unique<WebhookNotifier>(context));
}

} // namespace Sluice::Notifiers
