// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file faketelegram.h
 * The Telegram Bot API's sendMessage for tests, on loopback (see loopbackserver.h):
 * POST /bot<TOKEN>/sendMessage with a JSON body, answered in the Bot API's envelope
 * ({"ok": true, "result": message} or {"ok": false, "error_code", "description",
 * "parameters": {"retry_after"}}), with outages to inject.
 */

#include "loopbackserver.h"

#include <QList>
#include <QString>

#include <memory>

namespace Sluice::Test {

struct FakeTelegramMessage {
    QString chatId;
    QString text;
    QString parseMode;
};

class FakeTelegram
{
public:
    explicit FakeTelegram(const QByteArray &token);
    ~FakeTelegram();

    [[nodiscard]] Result<void> start();
    /// http://127.0.0.1:PORT/
    [[nodiscard]] QUrl url() const;

    /// The next @p times requests are answered @p status (429 carries retry_after @p retryAfterSeconds).
    void failNext(int status, int times = 1, int retryAfterSeconds = 0);
    /// While down, every request is answered 502 (or never, with @p hang).
    void setDown(bool down, bool hang = false);

    [[nodiscard]] QList<FakeTelegramMessage> messages() const;
    [[nodiscard]] int requestCount() const;

    struct State;

private:
    std::shared_ptr<State> m_state;
    std::unique_ptr<LoopbackServer> m_http;
};

} // namespace Sluice::Test
