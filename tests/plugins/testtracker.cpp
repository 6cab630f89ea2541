// SPDX-License-Identifier: Apache-2.0
// A tracker connector for tests: accepts signed webhooks that carry a signal for a task,
// and records what the engine asks of it. It talks to no remote system.

#include <sluice/pluginfactory.h>
#include <sluice/secrets.h>
#include <sluice/tracker.h>

#include <QJsonDocument>
#include <QJsonObject>
#include <QTimer>

using namespace Sluice;

namespace SluiceTestTracker {

template<typename T>
class Immediate final : public AsyncCall<T>
{
public:
    explicit Immediate(Result<T> result) : m_value(std::move(result)) {}

protected:
    void doStart() override
    {
        QTimer::singleShot(0, this, [this] { this->finishWith(m_value); });
    }

private:
    Result<T> m_value;
};

class TestTracker final : public Tracker, public WebhookReceiver
{
public:
    using Tracker::Tracker;

    Result<void> initialize() override
    {
        auto secret = context().secret(QStringLiteral("secret")).read();
        if (!secret)
            return std::unexpected(secret.error());
        m_secret = *secret;
        return {};
    }

    std::unique_ptr<AsyncCall<TrackerIssue>> issue(const QString &id) override
    {
        return std::make_unique<Immediate<TrackerIssue>>(TrackerIssue{id, id, {}, {}, {}, {}, {}});
    }
    std::unique_ptr<AsyncCall<Done>> comment(const QString &, const QString &) override
    {
        return std::make_unique<Immediate<Done>>(Done{});
    }
    std::unique_ptr<AsyncCall<Done>> setState(const QString &, const QString &) override
    {
        return std::make_unique<Immediate<Done>>(Done{});
    }
    std::unique_ptr<AsyncCall<Done>> refresh() override { return std::make_unique<Immediate<Done>>(Done{}); }

    Result<WebhookDelivery> acceptWebhook(const WebhookRequest &request) override
    {
        if (!verifyHmacSha256(m_secret, request.body, request.headers.value("x-sluice-signature")))
            return fail(ErrorCode::PermissionDenied, QStringLiteral("bad or missing signature"));
        const QJsonObject o = QJsonDocument::fromJson(request.body).object();
        const QString delivery = o.value(QLatin1String("delivery")).toString();
        if (delivery.isEmpty())
            return fail(ErrorCode::Malformed, QStringLiteral("delivery id missing"));
        WebhookEvent event{QStringLiteral("signal"), QString::number(o.value(QLatin1String("task")).toVariant().toLongLong()),
                           o.value(QLatin1String("signal")).toString(),
                           QJsonObject{{QStringLiteral("stage"), o.value(QLatin1String("stage")).toString()}}};
        return WebhookDelivery{delivery, {event}};
    }

private:
    QByteArray m_secret;
};

SLUICE_PLUGIN_CLASS_WITH_JSON(TestTracker, "meta/test-tracker.json")

} // namespace SluiceTestTracker

#include "testtracker.moc"
