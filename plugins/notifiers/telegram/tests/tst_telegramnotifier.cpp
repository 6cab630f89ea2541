// SPDX-License-Identifier: Apache-2.0
// The telegram notifier as the host loads it, against the fake Bot API on loopback: plain
// text to the configured chat, retries through 429 and 5xx, an outage that is an error
// and not a hang, and a token that appears in no log line and no error.
#include "connectorfixture.h"
#include "faketelegram.h"

#include <sluice/notifier.h>
#include <sluice/secrets.h>
#include <sluice/testsupport.h>

#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "123456789:AAH-telegram-test-token_xyz";

Notification sample(const QString &title = QStringLiteral("task 7 (Say hello): gate review → fail in review"))
{
    Notification n;
    n.event = QStringLiteral("gate-failed");
    n.projectId = QStringLiteral("quickstart");
    n.taskId = 7;
    n.title = title;
    n.text = QStringLiteral("key 'verdict' is *REQUEST_CHANGES* [see _review_]");
    n.at = QDateTime::currentDateTimeUtc();
    return n;
}

} // namespace

class tst_TelegramNotifier : public QObject
{
    Q_OBJECT

private:
    ConnectorFixture m_connector; // the plugin, the token file, every error seen (for the token check)
    std::unique_ptr<FakeTelegram> m_telegram;

    std::unique_ptr<PluginInstance> makeNotifier(const QByteArray &token = Token, const QByteArray &extra = QByteArray())
    {
        const QString path = m_connector.writeSecret(QStringLiteral("token"), token);
        if (path.isEmpty())
            return nullptr;
        const QByteArray yaml = "url: " + m_telegram->url().toString().toUtf8() + "\ntoken: {file: " + path.toUtf8()
            + "}\nchat_id: \"-1001234567\"\nretry_backoff: 20ms\ntimeout: 2s\n" + extra;
        return m_connector.instance(yaml);
    }

    Result<Done> send(PluginInstance *instance, const Notification &n)
    {
        auto r = runCall(qobject_cast<Notifier *>(instance)->notify(n));
        if (!r) {
            m_connector.record(r.error());
            qInfo().noquote() << "notify failed:" << r.error().toString();
        }
        return r;
    }

private Q_SLOTS:
    void initTestCase()
    {
        LogCapture::install();
        QVERIFY(m_connector.load(QStringLiteral(TELEGRAM_PLUGIN_FILE), PluginKind::Notifier));
        m_telegram = std::make_unique<FakeTelegram>(Token);
        QVERIFY(m_telegram->start());
    }

    void cleanupTestCase()
    {
        LogCapture::uninstall();
    }

    void init()
    {
        m_telegram->endFloodWait(); // a case that failed midway leaves no flood wait behind
    }

    void sendsPlainTextToTheChat()
    {
        auto notifier = makeNotifier();
        QVERIFY(notifier);
        QVERIFY(send(notifier.get(), sample()));
        const auto messages = m_telegram->messages();
        QCOMPARE(messages.size(), 1);
        QCOMPARE(messages[0].chatId, QStringLiteral("-1001234567"));
        QVERIFY(messages[0].parseMode.isEmpty()); // plain text: nothing is read as markup
        QCOMPARE(messages[0].text, QStringLiteral("[quickstart #7] task 7 (Say hello): gate review → fail in review\n\n"
                                                  "key 'verdict' is *REQUEST_CHANGES* [see _review_]"));
        // Previews off the current way: link_preview_options, not the deprecated flag (issue 24.14).
        QVERIFY(messages[0].hasLinkPreviewOptions);
        QVERIFY(messages[0].linkPreviewDisabled);
        QVERIFY(!messages[0].usedDeprecatedPreviewFlag);
    }

    // Telegram counts 4096 UTF-16 code units; a cut must fall between graphemes, never inside a
    // surrogate pair (a lone surrogate is refused with 400 and the message is lost) nor between
    // a letter and its combining marks (issue 24.14).
    void longTextIsCutOnAGraphemeBoundary_data()
    {
        QTest::addColumn<QString>("around"); // what sits where the cut falls
        QTest::addColumn<int>("offset");     // units of filler before it, relative to the cut point
        QTest::addColumn<QString>("kept");   // the end of the text that must be sent, before the ellipsis
        const QString grin = QStringLiteral("\U0001F600");                 // one code point, two units
        const QString flag = QStringLiteral("\U0001F1E9\U0001F1EA");      // two code points, one grapheme
        const QString accented = QStringLiteral("e\u0301\u0302");            // a letter and two combining marks
        QTest::newRow("ascii") << QStringLiteral("abc") << -1 << QStringLiteral("xa");
        QTest::newRow("surrogate pair across the cut") << grin << -1 << QStringLiteral("xx");
        QTest::newRow("surrogate pair just before the cut") << grin << -2 << QStringLiteral("x") + grin;
        QTest::newRow("flag across the cut") << flag << -2 << QStringLiteral("xx");
        QTest::newRow("combining marks across the cut") << accented << -1 << QStringLiteral("xx");
        QTest::newRow("combining marks after the cut") << accented << -3 << QStringLiteral("x") + accented;
    }

    void longTextIsCutOnAGraphemeBoundary()
    {
        QFETCH(QString, around);
        QFETCH(int, offset);
        QFETCH(QString, kept);
        auto notifier = makeNotifier();
        QVERIFY(notifier);
        Notification n = sample(QStringLiteral("long"));
        const int prefix = int(QStringLiteral("[quickstart #7] long\n\n").size());
        // The cut point is unit 4095 of the whole text (4096 with the ellipsis).
        const int filler = 4095 - prefix + offset;
        n.text = QString(filler, QLatin1Char('x')) + around + QString(5000, QLatin1Char('y'));
        const int before = int(m_telegram->messages().size());
        QVERIFY(send(notifier.get(), n));
        QCOMPARE(int(m_telegram->messages().size()), before + 1);
        const QString text = m_telegram->messages().last().text;
        QVERIFY(text.size() <= 4096);
        QVERIFY(text.endsWith(QChar(0x2026)));
        QVERIFY2(text.chopped(1).endsWith(kept), qPrintable(text.right(8)));
        QVERIFY(!text.at(text.size() - 2).isHighSurrogate());
    }

    void textThatFitsIsNotCut()
    {
        auto notifier = makeNotifier();
        QVERIFY(notifier);
        Notification n = sample(QStringLiteral("fits"));
        const int prefix = int(QStringLiteral("[quickstart #7] fits\n\n").size());
        n.text = QString(4096 - prefix - 2, QLatin1Char('z')) + QStringLiteral("\U0001F600"); // exactly 4096 units
        QVERIFY(send(notifier.get(), n));
        QCOMPARE(m_telegram->messages().last().text.size(), 4096);
        QVERIFY(m_telegram->messages().last().text.endsWith(QStringLiteral("\U0001F600")));
        n.text = QString(10000, QLatin1Char('x'));
        QVERIFY(send(notifier.get(), n));
        QCOMPARE(m_telegram->messages().last().text.size(), 4096);
    }

    // Flood control: Telegram says how long to wait in parameters.retry_after, in the body and
    // in no header, and refuses every request until then. A notifier that retries after its own
    // short back-off spends its retries inside the wait and loses the message (issue 24.13).
    void floodControlWaitIsTheBodysRetryAfter()
    {
        auto notifier = makeNotifier(Token, "max_retries: 3\n");
        QVERIFY(notifier);
        const int before = int(m_telegram->messages().size());
        const int requestsBefore = m_telegram->requestCount();
        m_telegram->failNext(429, 1, 2);
        QVERIFY(send(notifier.get(), sample(QStringLiteral("after the flood wait"))));
        QCOMPARE(int(m_telegram->messages().size()), before + 1);
        QCOMPARE(m_telegram->requestCount(), requestsBefore + 2); // refused once, then sent once
        const QList<qint64> times = m_telegram->requestTimes();
        QVERIFY2(times.last() - times.at(times.size() - 2) >= 2000,
                 qPrintable(QStringLiteral("retried after %1 ms").arg(times.last() - times.at(times.size() - 2))));
        QVERIFY(!m_telegram->lastRefusalHeaders().contains("Retry-After"));

        // A wait longer than max_retry_wait fails at once, naming the setting, without waiting.
        auto impatient = makeNotifier(Token, "max_retries: 3\nmax_retry_wait: 5s\n");
        QVERIFY(impatient);
        const int requestsThen = m_telegram->requestCount();
        m_telegram->failNext(429, 1, 60);
        auto refused = send(impatient.get(), sample(QStringLiteral("too long a wait")));
        QVERIFY(!refused);
        QVERIFY2(refused.error().message.contains(QLatin1String("max_retry_wait")), qPrintable(refused.error().message));
        QCOMPARE(m_telegram->requestCount(), requestsThen + 1);
    }

    void retriesThroughRateLimitsAndErrors()
    {
        auto notifier = makeNotifier();
        QVERIFY(notifier);
        const int before = int(m_telegram->messages().size());
        m_telegram->failNext(429, 1, 1);
        QVERIFY(send(notifier.get(), sample(QStringLiteral("after 429"))));
        m_telegram->failNext(502, 2);
        QVERIFY(send(notifier.get(), sample(QStringLiteral("after 502"))));
        const auto messages = m_telegram->messages();
        QCOMPARE(messages.size(), before + 2);
        QVERIFY(messages[before].text.contains(QLatin1String("after 429")));
        QVERIFY(messages[before + 1].text.contains(QLatin1String("after 502")));
    }

    void outageIsAnErrorNotAHang()
    {
        auto notifier = makeNotifier(Token, "max_retries: 1\n");
        QVERIFY(notifier);
        m_telegram->setDown(true);
        auto down = send(notifier.get(), sample());
        QVERIFY(!down);
        QCOMPARE(down.error().code, ErrorCode::Network);
        // No answer at all: the attempt's deadline ends it.
        m_telegram->setDown(true, true);
        auto hung = send(notifier.get(), sample());
        m_telegram->setDown(false);
        QVERIFY(!hung);
        QCOMPARE(hung.error().code, ErrorCode::Timeout);
    }

    void wrongTokenIsRefused()
    {
        auto notifier = makeNotifier("987654321:wrong-token-for-this-bot");
        QVERIFY(notifier);
        auto refused = send(notifier.get(), sample());
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::PermissionDenied);
        QVERIFY(!refused.error().message.contains(QLatin1String("wrong-token-for-this-bot")));
        // A token that could change the URL is refused before any request.
        QVERIFY(!makeNotifier("123/../../other"));
    }

    void tokenNeverLogged()
    {
        const QStringList log = LogCapture::lines();
        QVERIFY(!log.isEmpty());
        for (const QString &line : log)
            QVERIFY2(!line.contains(QString::fromLatin1(Token)) && !line.contains(QLatin1String("wrong-token-for-this-bot")), qPrintable(line));
        QVERIFY(!m_connector.errors().isEmpty());
        for (const QString &e : m_connector.errors())
            QVERIFY2(!e.contains(QString::fromLatin1(Token)) && !e.contains(QLatin1String("wrong-token-for-this-bot"))
                         && !e.contains(QLatin1String("bot123456789")) && !e.contains(QLatin1String("AAH-telegram")),
                     qPrintable(e));
    }
};

QTEST_GUILESS_MAIN(tst_TelegramNotifier)
#include "tst_telegramnotifier.moc"
