// SPDX-License-Identifier: Apache-2.0
#pragma once

// The webhook notifier: signed JSON events to one URL. See docs/plugins/webhook-notifier.md.

#include "forgehttpclient.h"

#include <sluice/notifier.h>

#include <QJsonObject>

#include <memory>

namespace Sluice::Notifiers {

/// The JSON event sent for @p notification with delivery id @p deliveryId.
[[nodiscard]] QJsonObject webhookEvent(const Notification &notification, const QString &deliveryId);

class WebhookNotifier final : public Notifier
{
    Q_OBJECT
public:
    using Notifier::Notifier;
    ~WebhookNotifier() override;

    /// Reads the secret and builds the client; no request is sent.
    [[nodiscard]] Result<void> initialize() override;
    [[nodiscard]] std::unique_ptr<AsyncCall<Done>> notify(const Notification &notification) override;

private:
    QByteArray m_secret;
    QByteArray m_header;
    std::unique_ptr<ForgeHttp::Client> m_client;
};

class WebhookNotifierFactory final : public QObject, public PluginFactory
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE "webhook-notifier.json")
    Q_INTERFACES(Sluice::PluginFactory)
public:
    using QObject::QObject;
    [[nodiscard]] Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context) override;
};

} // namespace Sluice::Notifiers
