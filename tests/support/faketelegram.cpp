// SPDX-License-Identifier: Apache-2.0
#include "faketelegram.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QMutex>

namespace Sluice::Test {

namespace {

// Whether @p text holds a surrogate without its partner: not Unicode text, so not valid UTF-8
// once encoded. The Bot API takes strings in UTF-8 only (core.telegram.org/bots/api, "Making
// requests": "All queries must be made using UTF-8") and refuses such a text with a 400.
bool hasLoneSurrogate(const QString &text)
{
    for (int i = 0; i < text.size(); ++i) {
        const QChar c = text.at(i);
        if (c.isHighSurrogate()) {
            if (i + 1 >= text.size() || !text.at(i + 1).isLowSurrogate())
                return true;
            ++i;
        } else if (c.isLowSurrogate()) {
            return true;
        }
    }
    return false;
}

} // namespace

struct FakeTelegram::State {
    mutable QMutex mutex;
    QByteArray token;
    int failStatus = 0;
    int failTimes = 0;
    int retryAfter = 0;
    qint64 floodUntilMs = -1; // receive-clock time until which flood control refuses everything
    bool down = false;
    bool hang = false;
    int requests = 0;
    QList<qint64> times;
    QList<QByteArray> lastRefusalHeaders;
    qint64 nextMessageId = 100;
    QList<FakeTelegramMessage> messages;

    // core.telegram.org/bots/api, "Making requests": an unsuccessful answer has ok false,
    // error_code and description, and "some errors may also have an optional field
    // 'parameters' of the type ResponseParameters"; ResponseParameters.retry_after is "the
    // number of seconds left to wait before the request can be repeated" when flood control
    // was exceeded. The wait is in the body only: the Bot API sends no Retry-After header
    // (an earlier version of this fake added one, and the connector passed for that reason).
    LoopbackAnswer error(int code, const QString &description, int retry = 0)
    {
        QJsonObject o{{QStringLiteral("ok"), false}, {QStringLiteral("error_code"), code}, {QStringLiteral("description"), description}};
        if (retry > 0)
            o.insert(QStringLiteral("parameters"), QJsonObject{{QStringLiteral("retry_after"), retry}});
        LoopbackAnswer a = LoopbackAnswer::json(QJsonDocument(o), code);
        lastRefusalHeaders.clear();
        for (const auto &h : std::as_const(a.headers))
            lastRefusalHeaders.append(h.first);
        return a;
    }

    // Called locked.
    LoopbackAnswer handle(const LoopbackRequest &req)
    {
        ++requests;
        times.append(req.receivedMs);
        if (down) {
            LoopbackAnswer a = error(502, QStringLiteral("Bad Gateway"));
            a.hang = hang;
            return a;
        }
        if (floodUntilMs > req.receivedMs) {
            const int left = int((floodUntilMs - req.receivedMs + 999) / 1000);
            return error(429, QStringLiteral("Too Many Requests: retry after %1").arg(left), left);
        }
        if (failTimes > 0) {
            --failTimes;
            if (failStatus == 429) {
                floodUntilMs = req.receivedMs + qint64(retryAfter) * 1000;
                return error(429, QStringLiteral("Too Many Requests: retry after %1").arg(retryAfter), retryAfter);
            }
            return error(failStatus, QStringLiteral("Internal Server Error"));
        }
        if (req.path != QLatin1String("/bot") + QString::fromUtf8(token) + QLatin1String("/sendMessage"))
            return error(req.path.startsWith(QLatin1String("/bot")) ? 401 : 404,
                         req.path.startsWith(QLatin1String("/bot")) ? QStringLiteral("Unauthorized") : QStringLiteral("Not Found"));
        if (req.method != "POST")
            return error(405, QStringLiteral("Method Not Allowed"));
        const QJsonObject body = QJsonDocument::fromJson(req.body).object();
        const QString chat = body.value(QLatin1String("chat_id")).toVariant().toString();
        const QString text = body.value(QLatin1String("text")).toString();
        if (chat.isEmpty())
            return error(400, QStringLiteral("Bad Request: chat not found"));
        if (text.isEmpty())
            return error(400, QStringLiteral("Bad Request: message text is empty"));
        if (hasLoneSurrogate(text))
            return error(400, QStringLiteral("Bad Request: text must be encoded in UTF-8"));
        // sendMessage: "Text of the message to be sent, 1-4096 characters after entities
        // parsing"; Telegram counts text in UTF-16 code units (MessageEntity offsets and
        // lengths are in UTF-16 code units), as QString::size() does.
        if (text.size() > 4096)
            return error(400, QStringLiteral("Bad Request: message is too long"));
        FakeTelegramMessage m{chat, text, body.value(QLatin1String("parse_mode")).toString()};
        // Bot API 7.0 (December 2023) replaced disable_web_page_preview with
        // link_preview_options (a LinkPreviewOptions object, is_disabled among its fields).
        const QJsonValue options = body.value(QLatin1String("link_preview_options"));
        m.hasLinkPreviewOptions = options.isObject();
        m.linkPreviewDisabled = options.toObject().value(QLatin1String("is_disabled")).toBool();
        m.usedDeprecatedPreviewFlag = body.contains(QLatin1String("disable_web_page_preview"));
        messages.append(m);
        return LoopbackAnswer::json(QJsonDocument(QJsonObject{
            {QStringLiteral("ok"), true},
            {QStringLiteral("result"), QJsonObject{{QStringLiteral("message_id"), nextMessageId++},
                                                   {QStringLiteral("chat"), QJsonObject{{QStringLiteral("id"), chat}}},
                                                   {QStringLiteral("text"), text}}}}));
    }
};

FakeTelegram::FakeTelegram(const QByteArray &token)
    : m_state(std::make_shared<State>())
    , m_http(std::make_unique<LoopbackServer>(QStringLiteral("fake-telegram")))
{
    m_state->token = token;
}

FakeTelegram::~FakeTelegram() = default;

Result<void> FakeTelegram::start()
{
    std::shared_ptr<State> state = m_state;
    return m_http->start([state](const LoopbackRequest &req) {
        QMutexLocker lock(&state->mutex);
        return state->handle(req);
    });
}

QUrl FakeTelegram::url() const
{
    return m_http->url();
}

void FakeTelegram::failNext(int status, int times, int retryAfterSeconds)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->failStatus = status;
    m_state->failTimes = times;
    m_state->retryAfter = retryAfterSeconds;
}

void FakeTelegram::endFloodWait()
{
    QMutexLocker lock(&m_state->mutex);
    m_state->floodUntilMs = -1;
    m_state->failTimes = 0;
}

void FakeTelegram::setDown(bool down, bool hang)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->down = down;
    m_state->hang = hang;
}

QList<FakeTelegramMessage> FakeTelegram::messages() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->messages;
}

int FakeTelegram::requestCount() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->requests;
}

QList<qint64> FakeTelegram::requestTimes() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->times;
}

QList<QByteArray> FakeTelegram::lastRefusalHeaders() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->lastRefusalHeaders;
}

} // namespace Sluice::Test
