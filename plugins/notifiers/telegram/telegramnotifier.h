// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Telegram notifier: one chat, plain text, best effort. See docs/plugins/telegram.md.

#include "forgehttpclient.h"

#include <sluice/notifier.h>

#include <memory>

namespace Sluice::Notifiers {

/// The plain text of a message for @p notification, at most 4096 UTF-16 code units (Telegram's limit).
[[nodiscard]] QString telegramText(const Notification &notification);

/**
 * @p text cut to at most @p maxUnits UTF-16 code units (as Telegram counts) with an ellipsis,
 * on a grapheme boundary: never inside a surrogate pair or a combining sequence.
 */
[[nodiscard]] QString cutToLength(const QString &text, int maxUnits);

class TelegramNotifier final : public Notifier
{
    Q_OBJECT
public:
    using Notifier::Notifier;
    ~TelegramNotifier() override;

    /// Reads the token and builds the client; no request is sent.
    [[nodiscard]] Result<void> initialize() override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> notify(const Notification &notification) override;

private:
    std::unique_ptr<ForgeHttp::Client> m_client;
};

class TelegramNotifierFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "telegram.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::Notifiers
