// SPDX-License-Identifier: Apache-2.0
#include "forgewebhook.h"

#include <QJsonDocument>

namespace Sluice::ForgeHttp {

namespace {
QByteArray firstHeader(const WebhookRequest &request, const QList<QByteArray> &names, QByteArray *which = nullptr)
{
    for (const QByteArray &name : names) {
        const QByteArray value = request.headers.value(name).trimmed();
        if (!value.isEmpty()) {
            if (which)
                *which = name;
            return value;
        }
    }
    return {};
}
} // namespace

Result<WebhookDelivery> acceptForgeWebhook(const WebhookRequest &request, const QByteArray &secret, const WebhookHeaders &headers,
                                           const WebhookParser &parse, const QString &repository, const QLoggingCategory &log)
{
    if (secret.isEmpty())
        return fail(ErrorCode::PermissionDenied, QStringLiteral("no webhook_secret is configured: deliveries are refused"));
    QByteArray header;
    const QByteArray signature = firstHeader(request, headers.signature, &header);
    if (signature.isEmpty())
        return fail(ErrorCode::PermissionDenied, QStringLiteral("the delivery carries no signature (%1)")
                                                     .arg(QString::fromLatin1(headers.signature.join(" or "))));
    if (!verifyHmacSha256(secret, request.body, signature))
        return fail(ErrorCode::PermissionDenied, QStringLiteral("%1 does not match the body").arg(QString::fromLatin1(header)));
    WebhookDelivery delivery;
    delivery.deliveryId = QString::fromLatin1(firstHeader(request, headers.delivery)).left(200);
    if (delivery.deliveryId.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("the delivery has no id (%1)").arg(QString::fromLatin1(headers.delivery.join(" or "))));
    const QByteArray event = firstHeader(request, headers.event);
    if (event.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("the delivery names no event (%1)").arg(QString::fromLatin1(headers.event.join(" or "))));
    auto events = parse(event, request.body);
    if (!events)
        return fail(ErrorCode::Malformed, QStringLiteral("%1 delivery %2: %3").arg(QString::fromLatin1(event.left(60)), delivery.deliveryId,
                                                                                  events.error().message));
    if (events->isEmpty()) {
        qCDebug(log).noquote() << "delivery" << delivery.deliveryId << "of event" << QString::fromLatin1(event.left(60))
                               << "holds nothing Sluice uses; ignored";
        return delivery;
    }
    for (const ForgeEvent &e : std::as_const(*events)) {
        if (e.repository.compare(repository, Qt::CaseInsensitive) != 0) {
            qCDebug(log).noquote() << "delivery" << delivery.deliveryId << "is about repository" << e.repository.left(200)
                                   << "- this instance serves" << repository << "; ignored";
            continue;
        }
        delivery.events.append(toWebhookEvent(e));
    }
    return delivery;
}

Result<QString> repositoryOf(const JsonFields &payload)
{
    return payload.object(QStringLiteral("repository")).string(QStringLiteral("full_name"));
}

Result<QList<ForgeEvent>> commitStatusEvent(const JsonFields &p, const QJsonObject &o)
{
    auto repository = repositoryOf(p);
    auto sha = p.string(QStringLiteral("sha"));
    auto context = p.string(QStringLiteral("context"));
    auto state = p.string(QStringLiteral("state"));
    for (const auto *r : {&repository, &sha, &context, &state}) {
        if (!*r)
            return std::unexpected(r->error());
    }
    if (!statusStateFromName(*state))
        return fail(ErrorCode::Malformed, QStringLiteral("status: unknown state '%1'").arg(state->left(40)));
    ForgeEvent e;
    e.kind = ForgeEvent::Kind::CommitStatus;
    e.repository = *repository;
    e.sha = *sha;
    e.context = *context;
    e.state = *state;
    const Result<qint64> id = p.integer(QStringLiteral("id")); // optional: 0 when absent or not an integer
    e.id = id ? *id : 0;
    e.actor = loginOf(o.value(QLatin1String("sender")).toObject());
    return QList<ForgeEvent>{e};
}

Result<qint64> pullRequestNumber(const JsonFields &fields, const QString &key)
{
    Result<qint64> number = fields.integer(key);
    if (number && *number <= 0)
        return fail(ErrorCode::Malformed, QStringLiteral("%1: '%2' is %3, not a pull request number").arg(fields.what(), key).arg(*number));
    return number;
}

Result<QJsonObject> payloadObject(const QByteArray &body)
{
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(body, &error);
    if (!doc.isObject())
        return fail(ErrorCode::Malformed, error.error != QJsonParseError::NoError
                                              ? QStringLiteral("the body is not JSON: %1 at offset %2").arg(error.errorString()).arg(error.offset)
                                              : QStringLiteral("the body is not a JSON object"));
    return doc.object();
}

QString firstLine(const QString &text)
{
    for (const QString &line : text.split(QLatin1Char('\n'))) {
        const QString trimmed = line.trimmed();
        if (!trimmed.isEmpty())
            return trimmed.left(200);
    }
    return {};
}

QString branchOfRef(const QString &ref)
{
    static const QString heads = QStringLiteral("refs/heads/");
    return ref.startsWith(heads) ? ref.mid(heads.size()) : QString();
}

QString loginOf(const QJsonObject &user)
{
    const QString login = user.value(QLatin1String("login")).toString();
    return login.isEmpty() ? user.value(QLatin1String("username")).toString() : login;
}

} // namespace Sluice::ForgeHttp
