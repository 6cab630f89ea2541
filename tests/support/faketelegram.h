// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file faketelegram.h
 * The Telegram Bot API's sendMessage for tests, on loopback (see loopbackserver.h):
 * POST /bot<TOKEN>/sendMessage with a JSON body, answered in the Bot API's envelope
 * ({"ok": true, "result": message} or {"ok": false, "error_code", "description",
 * "parameters": {"retry_after"}}), shaped after core.telegram.org/bots/api: flood control
 * says how long to wait only in the body, the text is 1–4096 UTF-16 code units of valid
 * Unicode, and link previews are set with link_preview_options. Outages can be injected.
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
    bool hasLinkPreviewOptions = false; ///< The request set link_preview_options (Bot API 7.0 and later).
    bool linkPreviewDisabled = false;   ///< link_preview_options.is_disabled was true.
    bool usedDeprecatedPreviewFlag = false; ///< The request still sent disable_web_page_preview.
};

class FakeTelegram
{
public:
    explicit FakeTelegram(const QByteArray &token);
    ~FakeTelegram();

    [[nodiscard]] Result<void> start();
    /// http://127.0.0.1:PORT/
    [[nodiscard]] QUrl url() const;

    /**
     * The next @p times requests are answered @p status. A 429 also starts flood control for
     * @p retryAfterSeconds: until then every request is refused with 429 and the seconds left
     * in parameters.retry_after, as the Bot API does.
     */
    void failNext(int status, int times = 1, int retryAfterSeconds = 0);
    /// Ends a flood-control wait started by failNext(429, ...) before its time.
    void endFloodWait();
    /// While down, every request is answered 502 (or never, with @p hang).
    void setDown(bool down, bool hang = false);

    [[nodiscard]] QList<FakeTelegramMessage> messages() const;
    [[nodiscard]] int requestCount() const;
    /// Receive times (monotonic ms since the server started) of every request.
    [[nodiscard]] QList<qint64> requestTimes() const;
    /// The raw answers' header names of the last refusal, for tests of the fake itself.
    [[nodiscard]] QList<QByteArray> lastRefusalHeaders() const;

    struct State;

private:
    std::shared_ptr<State> m_state;
    std::unique_ptr<LoopbackServer> m_http;
};

} // namespace Sluice::Test
