// SPDX-License-Identifier: Apache-2.0
// The webhook notifier as the host loads it, against a receiver on loopback: a signed JSON
// event, retries that keep the delivery id, and an outage that is an error.
#include "loopbackserver.h"

#include <sluice/notifier.h>
#include <sluice/testsupport.h>
#include <sluice/webhook.h>

#include <QJsonObject>
#include <QMutex>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {
const QByteArray Secret = "webhook-notifier-secret-41";

struct Received {
    QByteArray body;
    QHash<QByteArray, QByteArray> headers;
};
} // namespace

class tst_WebhookNotifier : public QObject
{
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    LoadedPlugin m_plugin;
    LoopbackServer m_receiver{QStringLiteral("webhook-receiver")};
    QMutex m_mutex;
    QList<Received> m_received;
    int m_failures = 0; // answer 503 this many more times

    std::unique_ptr<PluginInstance> makeNotifier(const QByteArray &extra = QByteArray())
    {
        const QString path = m_dir.filePath(QStringLiteral("secret"));
        QFile f(path);
        if (!f.open(QIODevice::WriteOnly))
            return nullptr;
        f.write(Secret + '\n');
        f.close();
        const QByteArray yaml = "url: " + m_receiver.url().toString().toUtf8() + "hooks/sluice\nsecret: {file: " + path.toUtf8()
            + "}\nretry_backoff: 20ms\n" + extra;
        auto created = createInstance(m_plugin, yaml);
        if (!created || !(*created)->initialize())
            return nullptr;
        return std::move(*created);
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        auto plugin = loadPlugin(QStringLiteral(WEBHOOK_PLUGIN_FILE));
        QVERIFY2(plugin, plugin ? "" : qPrintable(plugin.error().toString()));
        m_plugin = *plugin;
        QVERIFY(m_receiver.start([this](const LoopbackRequest &r) {
            QMutexLocker lock(&m_mutex);
            if (r.path != QLatin1String("/hooks/sluice") || r.method != "POST")
                return LoopbackAnswer::json(QJsonDocument(QJsonObject{{QStringLiteral("error"), QStringLiteral("not here")}}), 404);
            m_received.append(Received{r.body, r.headers});
            if (m_failures > 0) {
                --m_failures;
                return LoopbackAnswer::json(QJsonDocument(QJsonObject{}), 503);
            }
            return LoopbackAnswer::json(QJsonDocument(QJsonObject{{QStringLiteral("ok"), true}}), 202);
        }));
    }

    void postsASignedEvent()
    {
        auto notifier = makeNotifier();
        QVERIFY(notifier);
        Notification n;
        n.event = QStringLiteral("blocked");
        n.projectId = QStringLiteral("quickstart");
        n.taskId = 3;
        n.title = QStringLiteral("task 3 (Say hello): blocked in review");
        n.text = QStringLiteral("gate 'review-verdict' failed after 3 rollback(s)");
        n.data = QJsonObject{{QStringLiteral("stage"), QStringLiteral("review")}};
        n.at = QDateTime::fromMSecsSinceEpoch(1'790'000'000'000, Qt::UTC);
        QVERIFY(runCall(qobject_cast<Notifier *>(notifier.get())->notify(n)));
        QMutexLocker lock(&m_mutex);
        QCOMPARE(m_received.size(), 1);
        const Received &r = m_received.first();
        QVERIFY(verifyHmacSha256(Secret, r.body, r.headers.value("x-sluice-signature")));
        QVERIFY(r.headers.value("x-sluice-signature").startsWith("sha256="));
        QCOMPARE(r.headers.value("x-sluice-event"), QByteArray("blocked"));
        const QJsonObject event = QJsonDocument::fromJson(r.body).object();
        QCOMPARE(event.value(QLatin1String("event")).toString(), QStringLiteral("blocked"));
        QCOMPARE(event.value(QLatin1String("project")).toString(), QStringLiteral("quickstart"));
        QCOMPARE(event.value(QLatin1String("task")).toInt(), 3);
        QCOMPARE(event.value(QLatin1String("data")).toObject().value(QLatin1String("stage")).toString(), QStringLiteral("review"));
        QCOMPARE(event.value(QLatin1String("delivery")).toString(), QString::fromLatin1(r.headers.value("x-sluice-delivery")));
        QCOMPARE(event.value(QLatin1String("at")).toString(), QStringLiteral("2026-09-21T14:13:20.000Z"));
        m_received.clear();
    }

    void retriesKeepTheDeliveryId()
    {
        auto notifier = makeNotifier();
        QVERIFY(notifier);
        {
            QMutexLocker lock(&m_mutex);
            m_failures = 2;
        }
        Notification n;
        n.event = QStringLiteral("done");
        n.title = QStringLiteral("done");
        QVERIFY(runCall(qobject_cast<Notifier *>(notifier.get())->notify(n)));
        QMutexLocker lock(&m_mutex);
        QCOMPARE(m_received.size(), 3);
        QCOMPARE(m_received[0].headers.value("x-sluice-delivery"), m_received[2].headers.value("x-sluice-delivery"));
        QCOMPARE(m_received[0].body, m_received[2].body);
        m_received.clear();
    }

    void outageIsAnError()
    {
        auto notifier = makeNotifier("max_retries: 1\n");
        QVERIFY(notifier);
        {
            QMutexLocker lock(&m_mutex);
            m_failures = 5;
        }
        Notification n;
        n.event = QStringLiteral("done");
        auto r = runCall(qobject_cast<Notifier *>(notifier.get())->notify(n));
        QVERIFY(!r);
        QCOMPARE(r.error().code, ErrorCode::Network);
        QMutexLocker lock(&m_mutex);
        QCOMPARE(m_received.size(), 2);
        m_failures = 0;
        m_received.clear();
    }

    void settingsAreChecked()
    {
        QVERIFY(!createInstance(m_plugin, "url: ftp://example.org/x\nsecret: {file: /nonexistent}\n"));
        QVERIFY(!createInstance(m_plugin, "url: https://example.org/x\nsecret: inline-secret\n"));
        QVERIFY(!createInstance(m_plugin, "url: https://example.org/x\nsecret: {file: /x}\nsignature_header: \"X Bad\"\n"));
    }
};

QTEST_GUILESS_MAIN(tst_WebhookNotifier)
#include "tst_webhooknotifier.moc"
