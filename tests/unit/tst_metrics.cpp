// SPDX-License-Identifier: Apache-2.0
// The Prometheus text exposition: exact output, escaping, types, and updates from many
// threads at once.

#include "daemon/metrics.h"

#include <QtTest>

#include <atomic>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

using namespace Sluice;

class tst_Metrics : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void exactText();
    void labelsAreSortedAndEscaped();
    void typeFromFirstUseOrDescription();
    void invalidNamesAreRefused();
    void countersOnlyGoUp();
    void values_data();
    void values();
    void removeSeries();
    void concurrentUpdates();
};

void tst_Metrics::exactText()
{
    Metrics m;
    QVERIFY(m.describe(QStringLiteral("sluice_webhooks_total"), Metrics::Type::Counter,
                       QStringLiteral("Webhook deliveries by connector and outcome.")));
    QVERIFY(m.describe(QStringLiteral("sluice_jobs"), Metrics::Type::Gauge, QStringLiteral("Jobs by state.")));
    QVERIFY(m.increment(QStringLiteral("sluice_webhooks_total"), {{QStringLiteral("connector"), QStringLiteral("gitea")},
                                                                  {QStringLiteral("outcome"), QStringLiteral("accepted")}}));
    QVERIFY(m.increment(QStringLiteral("sluice_webhooks_total"), {{QStringLiteral("connector"), QStringLiteral("gitea")},
                                                                  {QStringLiteral("outcome"), QStringLiteral("accepted")}}, 2));
    QVERIFY(m.increment(QStringLiteral("sluice_webhooks_total"), {{QStringLiteral("outcome"), QStringLiteral("duplicate")},
                                                                  {QStringLiteral("connector"), QStringLiteral("github")}}));
    QVERIFY(m.set(QStringLiteral("sluice_jobs"), {{QStringLiteral("state"), QStringLiteral("running")}}, 2));
    QVERIFY(m.set(QStringLiteral("sluice_jobs"), {{QStringLiteral("state"), QStringLiteral("queued")}}, 7));
    QVERIFY(m.set(QStringLiteral("sluice_uptime_seconds"), {}, 12.5));
    QVERIFY(m.increment(QStringLiteral("sluice_advances_total")));
    QVERIFY(m.increment(QStringLiteral("sluice_reaps_total"), {}, 0)); // exported before anything happened

    const QByteArray expected =
        "# TYPE sluice_advances_total counter\n"
        "sluice_advances_total 1\n"
        "# HELP sluice_jobs Jobs by state.\n"
        "# TYPE sluice_jobs gauge\n"
        "sluice_jobs{state=\"queued\"} 7\n"
        "sluice_jobs{state=\"running\"} 2\n"
        "# TYPE sluice_reaps_total counter\n"
        "sluice_reaps_total 0\n"
        "# TYPE sluice_uptime_seconds gauge\n"
        "sluice_uptime_seconds 12.5\n"
        "# HELP sluice_webhooks_total Webhook deliveries by connector and outcome.\n"
        "# TYPE sluice_webhooks_total counter\n"
        "sluice_webhooks_total{connector=\"gitea\",outcome=\"accepted\"} 3\n"
        "sluice_webhooks_total{connector=\"github\",outcome=\"duplicate\"} 1\n";
    QCOMPARE(m.render(), expected);
    QCOMPARE(m.render(), expected); // rendering changes nothing
    QCOMPARE(QByteArray(Metrics::contentType), QByteArray("text/plain; version=0.0.4; charset=utf-8"));
}

void tst_Metrics::labelsAreSortedAndEscaped()
{
    Metrics m;
    QVERIFY(m.describe(QStringLiteral("x"), Metrics::Type::Gauge, QStringLiteral("Help with \\ backslash\nand \"quotes\".")));
    QVERIFY(m.set(QStringLiteral("x"), {{QStringLiteral("path"), QStringLiteral("C:\\dir\n\"q\"")},
                                        {QStringLiteral("b"), QStringLiteral("ünï")}}, 1));
    // HELP escapes backslash and line feed only; label values also the double quote.
    QCOMPARE(m.render(), QByteArray("# HELP x Help with \\\\ backslash\\nand \"quotes\".\n"
                                    "# TYPE x gauge\n"
                                    "x{b=\"\xc3\xbcn\xc3\xaf\",path=\"C:\\\\dir\\n\\\"q\\\"\"} 1\n"));
    // The same labels in another order are the same series.
    QVERIFY(m.set(QStringLiteral("x"), {{QStringLiteral("b"), QStringLiteral("ünï")},
                                        {QStringLiteral("path"), QStringLiteral("C:\\dir\n\"q\"")}}, 5));
    QCOMPARE(m.render().count("\nx{"), 1);
    QCOMPARE(m.value(QStringLiteral("x"), {{QStringLiteral("path"), QStringLiteral("C:\\dir\n\"q\"")},
                                           {QStringLiteral("b"), QStringLiteral("ünï")}}), 5.0);
}

void tst_Metrics::typeFromFirstUseOrDescription()
{
    Metrics m;
    QVERIFY(m.increment(QStringLiteral("a_total")));
    QVERIFY(m.set(QStringLiteral("b"), {}, 3));
    QVERIFY(m.render().contains("# TYPE a_total counter\n"));
    QVERIFY(m.render().contains("# TYPE b gauge\n"));
    // A gauge can go up by increment(); a counter can mirror a count with set().
    QVERIFY(m.increment(QStringLiteral("b"), {}, -1));
    QCOMPARE(m.value(QStringLiteral("b")), 2.0);
    QVERIFY(m.set(QStringLiteral("a_total"), {}, 40));
    QCOMPARE(m.value(QStringLiteral("a_total")), 40.0);
    QVERIFY(m.render().contains("# TYPE a_total counter\n"));
    // Declaring after use: same type is fine (adds help), the other type is refused.
    QVERIFY(m.describe(QStringLiteral("a_total"), Metrics::Type::Counter, QStringLiteral("A.")));
    QVERIFY(!m.describe(QStringLiteral("b"), Metrics::Type::Counter, QStringLiteral("B.")));
    QVERIFY(m.render().startsWith("# HELP a_total A.\n# TYPE a_total counter\na_total 40\n# TYPE b gauge\n"));
    // Described and never used: only the header lines.
    QVERIFY(m.describe(QStringLiteral("c"), Metrics::Type::Gauge, QStringLiteral("C.")));
    QVERIFY(m.render().endsWith("# HELP c C.\n# TYPE c gauge\n"));
}

void tst_Metrics::invalidNamesAreRefused()
{
    Metrics m;
    QVERIFY(!m.increment(QStringLiteral("1abc")));
    QVERIFY(!m.increment(QStringLiteral("a-b")));
    QVERIFY(!m.increment(QStringLiteral("")));
    QVERIFY(!m.describe(QStringLiteral("a b"), Metrics::Type::Gauge, QString()));
    QVERIFY(!m.increment(QStringLiteral("ok_total"), {{QStringLiteral("__reserved"), QStringLiteral("x")}}));
    QVERIFY(!m.increment(QStringLiteral("ok_total"), {{QStringLiteral("a:b"), QStringLiteral("x")}}));
    QVERIFY(!m.increment(QStringLiteral("ok_total"), {{QStringLiteral("dup"), QStringLiteral("x")}, {QStringLiteral("dup"), QStringLiteral("y")}}));
    QVERIFY(m.render().isEmpty());
    QVERIFY(m.increment(QStringLiteral("name:with_colon_total")));
    QVERIFY(m.increment(QStringLiteral("_x9"), {{QStringLiteral("_l9"), QStringLiteral("v")}}));
}

void tst_Metrics::countersOnlyGoUp()
{
    Metrics m;
    QVERIFY(m.increment(QStringLiteral("c_total"), {}, 2));
    QVERIFY(!m.increment(QStringLiteral("c_total"), {}, -1));
    QVERIFY(!m.increment(QStringLiteral("c_total"), {}, std::numeric_limits<double>::quiet_NaN()));
    QVERIFY(!m.increment(QStringLiteral("c_total"), {}, std::numeric_limits<double>::infinity()));
    QCOMPARE(m.value(QStringLiteral("c_total")), 2.0);
}

void tst_Metrics::values_data()
{
    QTest::addColumn<double>("value");
    QTest::addColumn<QByteArray>("text");
    QTest::newRow("zero") << 0.0 << QByteArray("0");
    QTest::newRow("integer") << 42.0 << QByteArray("42");
    QTest::newRow("negative") << -3.0 << QByteArray("-3");
    QTest::newRow("fraction") << 0.25 << QByteArray("0.25");
    QTest::newRow("tenth") << 0.1 << QByteArray("0.1");
    QTest::newRow("small") << 1.5e-7 << QByteArray("1.5e-07");
    QTest::newRow("large") << 1e20 << QByteArray("1e+20");
    QTest::newRow("big integer") << 123456789012345.0 << QByteArray("123456789012345");
    QTest::newRow("nan") << std::numeric_limits<double>::quiet_NaN() << QByteArray("NaN");
    QTest::newRow("+inf") << std::numeric_limits<double>::infinity() << QByteArray("+Inf");
    QTest::newRow("-inf") << -std::numeric_limits<double>::infinity() << QByteArray("-Inf");
}

void tst_Metrics::values()
{
    QFETCH(double, value);
    QFETCH(QByteArray, text);
    Metrics m;
    QVERIFY(m.set(QStringLiteral("g"), {}, value));
    QCOMPARE(m.render(), "# TYPE g gauge\ng " + text + '\n');
    // What is written reads back as the same number.
    const double back = text == "+Inf"   ? std::numeric_limits<double>::infinity()
                        : text == "-Inf" ? -std::numeric_limits<double>::infinity()
                                         : text.toDouble();
    if (!std::isnan(value))
        QCOMPARE(back, value);
}

void tst_Metrics::removeSeries()
{
    Metrics m;
    QVERIFY(m.set(QStringLiteral("agents_running"), {{QStringLiteral("project"), QStringLiteral("a")}}, 1));
    QVERIFY(m.set(QStringLiteral("agents_running"), {{QStringLiteral("project"), QStringLiteral("b")}}, 2));
    QVERIFY(m.remove(QStringLiteral("agents_running"), {{QStringLiteral("project"), QStringLiteral("a")}}));
    QVERIFY(!m.remove(QStringLiteral("agents_running"), {{QStringLiteral("project"), QStringLiteral("a")}}));
    QVERIFY(!m.remove(QStringLiteral("unknown"), {}));
    QCOMPARE(m.render(), QByteArray("# TYPE agents_running gauge\nagents_running{project=\"b\"} 2\n"));
}

void tst_Metrics::concurrentUpdates()
{
    Metrics m;
    QVERIFY(m.describe(QStringLiteral("hits_total"), Metrics::Type::Counter, QStringLiteral("Hits.")));
    constexpr int threads = 8;
    constexpr int perThread = 20000;
    std::atomic<bool> done{false};
    // A reader renders all along; every text it sees is well formed.
    int renders = 0;
    bool wellFormed = true;
    std::thread reader([&] {
        while (!done.load()) {
            const QByteArray text = m.render();
            wellFormed = wellFormed && (text.isEmpty() || text.endsWith('\n'));
            ++renders;
        }
    });
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
        workers.emplace_back([&m, w] {
            for (int i = 0; i < perThread; ++i) {
                m.increment(QStringLiteral("hits_total"), {{QStringLiteral("parity"), QString::number(i % 2)}});
                m.increment(QStringLiteral("hits_total"));
                m.set(QStringLiteral("last"), {{QStringLiteral("worker"), QString::number(w)}}, i);
            }
        });
    }
    for (std::thread &t : workers)
        t.join();
    done = true;
    reader.join();
    QVERIFY(renders >= 1);
    QVERIFY(wellFormed);
    QCOMPARE(m.value(QStringLiteral("hits_total")), double(threads * perThread));
    QCOMPARE(m.value(QStringLiteral("hits_total"), {{QStringLiteral("parity"), QStringLiteral("0")}}), double(threads * perThread / 2));
    QCOMPARE(m.value(QStringLiteral("hits_total"), {{QStringLiteral("parity"), QStringLiteral("1")}}), double(threads * perThread / 2));
    for (int w = 0; w < threads; ++w)
        QCOMPARE(m.value(QStringLiteral("last"), {{QStringLiteral("worker"), QString::number(w)}}), double(perThread - 1));
}

QTEST_GUILESS_MAIN(tst_Metrics)
#include "tst_metrics.moc"
