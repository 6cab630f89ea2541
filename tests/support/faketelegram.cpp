// SPDX-License-Identifier: Apache-2.0
#include "faketelegram.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QMutex>

namespace Sluice::Test {

struct FakeTelegram::State {
    mutable QMutex mutex;
    QByteArray token;
    int failStatus = 0;
    int failTimes = 0;
    int retryAfter = 0;
    bool down = false;
    bool hang = false;
    int requests = 0;
    qint64 nextMessageId = 100;
    QList<FakeTelegramMessage> messages;

    LoopbackAnswer error(int code, const QString &description, int retry = 0) const
    {
        QJsonObject o{{QStringLiteral("ok"), false}, {QStringLiteral("error_code"), code}, {QStringLiteral("description"), description}};
        if (retry > 0)
            o.insert(QStringLiteral("parameters"), QJsonObject{{QStringLiteral("retry_after"), retry}});
        LoopbackAnswer a = LoopbackAnswer::json(QJsonDocument(o), code);
        if (retry > 0)
            a.headers.append(qMakePair(QByteArray("Retry-After"), QByteArray::number(retry)));
        return a;
    }

    // Called locked.
    LoopbackAnswer handle(const LoopbackRequest &req)
    {
        ++requests;
        if (down) {
            LoopbackAnswer a = error(502, QStringLiteral("Bad Gateway"));
            a.hang = hang;
            return a;
        }
        if (failTimes > 0) {
            --failTimes;
            return error(failStatus, failStatus == 429 ? QStringLiteral("Too Many Requests: retry after %1").arg(retryAfter)
                                                       : QStringLiteral("Internal Server Error"),
                         failStatus == 429 ? retryAfter : 0);
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
        if (text.size() > 4096)
            return error(400, QStringLiteral("Bad Request: message is too long"));
        messages.append(FakeTelegramMessage{chat, text, body.value(QLatin1String("parse_mode")).toString()});
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

} // namespace Sluice::Test
