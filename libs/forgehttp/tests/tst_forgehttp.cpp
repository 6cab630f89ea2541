// SPDX-License-Identifier: Apache-2.0
// Pieces of the shared forge HTTP client that are pure functions: the quick ISO 8601 reader
// must read every time exactly as QDateTime does (or hand it to QDateTime).
#include "forgecall.h"

#include <QTest>

using namespace Sluice;
using namespace Sluice::ForgeHttp;

class tst_ForgeHttp : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void isoTimeAsQDateTimeReadsIt_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("valid");
        QTest::newRow("utc") << QStringLiteral("2024-05-01T10:20:30Z") << true;
        QTest::newRow("milliseconds") << QStringLiteral("2024-05-01T10:20:30.123Z") << true;
        QTest::newRow("positive offset") << QStringLiteral("2024-05-01T01:20:30+02:00") << true;
        QTest::newRow("negative offset, day before") << QStringLiteral("2024-12-31T23:59:59-05:30") << true;
        QTest::newRow("milliseconds and offset") << QStringLiteral("2024-02-29T00:00:00.999+08:00") << true;
        QTest::newRow("microseconds (left to Qt)") << QStringLiteral("2024-05-01T10:20:30.123456Z") << true;
        QTest::newRow("one fraction digit (left to Qt)") << QStringLiteral("2024-05-01T10:20:30.5Z") << true;
        QTest::newRow("no zone (left to Qt)") << QStringLiteral("2024-05-01T10:20:30") << true;
        QTest::newRow("compact offset (left to Qt)") << QStringLiteral("2024-05-01T10:20:30+0200") << true;
        QTest::newRow("24:00 (left to Qt)") << QStringLiteral("2024-05-01T24:00:00Z") << true;
        QTest::newRow("february 30") << QStringLiteral("2023-02-30T10:00:00Z") << false;
        QTest::newRow("hour 25") << QStringLiteral("2024-05-01T25:00:00Z") << false;
        QTest::newRow("letters") << QStringLiteral("2024-0x-01T10:20:30Z") << false;
        QTest::newRow("empty") << QString() << false;
        QTest::newRow("date only") << QStringLiteral("2024-05-01") << true;
    }

    void isoTimeAsQDateTimeReadsIt()
    {
        QFETCH(QString, text);
        QFETCH(bool, valid);
        const QDateTime expected = QDateTime::fromString(text, Qt::ISODateWithMs).toUTC();
        const QDateTime read = parseIsoTime(text);
        QCOMPARE(read.isValid(), expected.isValid());
        if (expected.isValid()) {
            QCOMPARE(read, expected);
            QCOMPARE(read.timeSpec(), Qt::UTC);
            QCOMPARE(read.toMSecsSinceEpoch(), expected.toMSecsSinceEpoch());
        }
        Q_UNUSED(valid);
    }

    void fieldErrorsNameTheObject()
    {
        const QJsonObject status{{QStringLiteral("id"), 12}, {QStringLiteral("head"), QJsonObject{}}};
        JsonFields fields(status, QStringLiteral("commit status "), 12);
        auto context = fields.string(QStringLiteral("context"));
        QVERIFY(!context);
        QCOMPARE(context.error().message, QStringLiteral("commit status 12: field 'context' is missing or not a non-empty string"));
        auto sha = fields.object(QStringLiteral("head")).string(QStringLiteral("sha"));
        QVERIFY(!sha);
        QCOMPARE(sha.error().message, QStringLiteral("commit status 12.head: field 'sha' is missing or not a non-empty string"));
        auto when = fields.time(QStringLiteral("updated_at"));
        QVERIFY(!when);
        QCOMPARE(when.error().message, QStringLiteral("commit status 12: field 'updated_at' is missing or not an ISO 8601 time"));
        JsonFields named(QJsonValue(3), QStringLiteral("pull request"));
        QCOMPARE(named.requireObject().error().message, QStringLiteral("pull request is not a JSON object"));
    }
};

QTEST_GUILESS_MAIN(tst_ForgeHttp)
#include "tst_forgehttp.moc"
