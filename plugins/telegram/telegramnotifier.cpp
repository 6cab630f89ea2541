// SPDX-License-Identifier: Apache-2.0
#include "telegramnotifier.h"

#include "forgecall.h"

#include <sluice/secrets.h>

#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QRegularExpression>

namespace Sluice::Notifiers {

namespace {
constexpr int MaxMessage = 4096;

// Registered secrets are redacted anyway; a bot token's shape is removed too, in case a
// network error names part of a URL.
QString scrub(const QString &text)
{
    static const QRegularExpression botToken(QStringLiteral("bot[0-9]+(:[A-Za-z0-9_-]*)?"));
    QString out = Redaction::redact(text);
    out.replace(botToken, QStringLiteral("bot[REDACTED]"));
    return out;
}
}

QString telegramText(const Notification &n)
{
    // Plain text, no parse_mode: nothing in a title, reason or branch name can be read as markup.
    QString head = n.title.trimmed();
    if (!n.projectId.isEmpty())
        head = QStringLiteral("[%1%2] %3").arg(n.projectId, n.taskId > 0 ? QStringLiteral(" #%1").arg(n.taskId) : QString(), head);
    QString text = n.text.trimmed().isEmpty() ? head : head + QStringLiteral("\n\n") + n.text.trimmed();
    text = Redaction::mask(text);
    if (text.size() > MaxMessage)
        text = text.left(MaxMessage - 1) + QChar(0x2026);
    return text;
}

TelegramNotifier::~TelegramNotifier() = default;

Result<void> TelegramNotifier::initialize()
{
    const SecretRef ref = context().secret(QStringLiteral("token"));
    auto token = ref.read();
    if (!token)
        return fail(token.error().code, QStringLiteral("token: %1").arg(token.error().message));
    const QByteArray value = token->trimmed();
    if (value.isEmpty() || value.contains('/') || value.contains('?') || value.contains('#'))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("token: %1 does not hold a bot token").arg(ref.describe()));
    Redaction::registerSecret(value);
    auto base = ForgeHttp::baseUrl(context().settings().value(QStringLiteral("url")).toString());
    if (!base)
        return std::unexpected(base.error());
    // The token is a path segment of every URL: requests name only "sendMessage" in errors.
    QUrl apiBase = *base;
    apiBase.setPath(base->path() + QStringLiteral("bot") + QString::fromLatin1(value) + QLatin1Char('/'));
    ForgeHttp::ClientOptions options = ForgeHttp::clientOptions(context().settings(), apiBase);
    options.concurrency = 2;
    m_client = std::make_unique<ForgeHttp::Client>(std::move(options));
    qCDebug(context().logging()).noquote() << "telegram chat" << context().settings().value(QStringLiteral("chat_id")).toString()
                                           << "with token from" << ref.describe();
    return {};
}

std::unique_ptr<AsyncCall<Done>> TelegramNotifier::notify(const Notification &notification)
{
    if (!m_client)
        return ForgeHttp::failedCall<Done>(Error{ErrorCode::InvalidArgument, QStringLiteral("notifier is not initialized"), {}});
    ForgeHttp::Request req;
    req.method = "POST";
    req.path = QStringLiteral("sendMessage");
    req.repeatable = true;
    req.body = QJsonDocument(QJsonObject{{QStringLiteral("chat_id"), context().settings().value(QStringLiteral("chat_id")).toString()},
                                         {QStringLiteral("text"), telegramText(notification)},
                                         {QStringLiteral("disable_web_page_preview"), true},
                                         {QStringLiteral("disable_notification"), context().settings().value(QStringLiteral("silent")).toBool()}})
                   .toJson(QJsonDocument::Compact);
    ForgeHttp::Client *http = m_client.get();
    return std::make_unique<ForgeHttp::FunctionCall<Done>>([http, req](ForgeHttp::FunctionCall<Done> *call) {
        http->send(req, call, [call](Result<ForgeHttp::Response> r) {
            if (!r) {
                Error e = r.error();
                e.message = scrub(e.message);
                e.detail = scrub(e.detail);
                return call->finishWith(std::unexpected(e));
            }
            const QJsonObject o = QJsonDocument::fromJson(r->body).object();
            if (!o.value(QLatin1String("ok")).toBool())
                return call->finishWith(fail(ErrorCode::Network, QStringLiteral("sendMessage: Telegram answered not ok: %1")
                                                                     .arg(scrub(o.value(QLatin1String("description")).toString()))));
            call->finishWith(Done{});
        });
    });
}

Result<std::unique_ptr<PluginInstance>> TelegramNotifierFactory::create(const PluginContext &context)
{
    if (context.settings().value(QStringLiteral("chat_id")).toString().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("chat_id must not be empty"));
    if (auto base = ForgeHttp::baseUrl(context.settings().value(QStringLiteral("url")).toString()); !base)
        return std::unexpected(base.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<TelegramNotifier>(context));
}

} // namespace Sluice::Notifiers
