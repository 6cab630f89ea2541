// SPDX-License-Identifier: Apache-2.0
#include "telegramnotifier.h"

#include "forgecall.h"

#include <sluice/secrets.h>

#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QRegularExpression>
#include <QTextBoundaryFinder>

#include <cmath>

namespace Sluice::Notifiers {

namespace {
// sendMessage takes 1-4096 characters of text, and Telegram counts text in UTF-16 code units
// (core.telegram.org/bots/api: sendMessage; MessageEntity offsets and lengths): QString::size().
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
    return cutToLength(Redaction::mask(text), MaxMessage);
}

QString cutToLength(const QString &text, int maxUnits)
{
    if (text.size() <= maxUnits)
        return text;
    if (maxUnits <= 1)
        return QString(QChar(0x2026)).left(std::max(0, maxUnits));
    // Room for the ellipsis (one UTF-16 unit); the cut goes back to the last grapheme boundary,
    // so neither a surrogate pair (a lone surrogate is not UTF-8, and Telegram refuses the
    // message) nor a letter with its combining marks or an emoji sequence is split.
    const int budget = maxUnits - 1;
    QTextBoundaryFinder graphemes(QTextBoundaryFinder::Grapheme, text);
    graphemes.setPosition(budget);
    int cut = graphemes.isAtBoundary() ? budget : int(graphemes.toPreviousBoundary());
    if (cut <= 0) {
        // One cluster longer than the whole budget (hundreds of combining marks): cut between
        // code points, never inside a pair.
        cut = budget;
        if (text.at(cut - 1).isHighSurrogate())
            --cut;
    }
    return text.left(cut) + QChar(0x2026);
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
    // Flood control says how long to wait in the body, parameters.retry_after in seconds, and
    // in no header (core.telegram.org/bots/api: "Making requests", ResponseParameters).
    options.bodyRetryAfter = [](int status, const QByteArray &body) -> std::optional<std::chrono::milliseconds> {
        if (status != 429)
            return std::nullopt;
        const QJsonValue seconds = QJsonDocument::fromJson(body.left(64 * 1024)).object().value(QLatin1String("parameters"))
                                       .toObject().value(QLatin1String("retry_after"));
        if (!seconds.isDouble() || seconds.toDouble() < 0)
            return std::nullopt;
        return std::chrono::milliseconds(qint64(std::ceil(seconds.toDouble() * 1000.0)));
    };
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
                                         // Bot API 7.0 replaced disable_web_page_preview with link_preview_options.
                                         {QStringLiteral("link_preview_options"), QJsonObject{{QStringLiteral("is_disabled"), true}}},
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
