// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Telegram notifier: one chat, plain text, best effort. See docs/plugins/telegram.md.

#include "forgehttpclient.h"

#include <sluice/notifier.h>

#include <memory>

namespace Sluice::Notifiers {

/// The plain text of a message for @p notification, at most 4096 characters (Telegram's limit).
[[nodiscard]] QString telegramText(const Notification &notification);

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
