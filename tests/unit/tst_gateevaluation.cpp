// SPDX-License-Identifier: Apache-2.0
// The host's side of a gate run: deadlines, runs that never deliver, first verdict wins.

#include "engine/gateevaluation.h"

#include <sluice/testsupport.h>

#include <QtTest>

using namespace Sluice;
using namespace std::chrono_literals;

class tst_GateEvaluation : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void verdicts_data();
    void verdicts();
    void cancelIsAnError();
    void jobFinishesOnce();
    void concurrentRunReportsOnCreatingThread();

private:
    std::optional<Test::LoadedPlugin> m_plugin;
};

void tst_GateEvaluation::initTestCase()
{
    auto plugin = Test::loadPlugin(QStringLiteral(SLUICE_TEST_PLUGIN_DIR "/test-gate.so"));
    QVERIFY2(plugin.has_value(), qPrintable(plugin ? QString() : plugin.error().message));
    m_plugin = std::move(*plugin);
}

void tst_GateEvaluation::verdicts_data()
{
    QTest::addColumn<QByteArray>("settings");
    QTest::addColumn<int>("timeoutMs");
    QTest::addColumn<QString>("result");
    QTest::addColumn<QString>("reason");
    QTest::newRow("pass") << QByteArray("result: pass") << 5000 << QStringLiteral("pass") << QStringLiteral("test gate says pass for task 7");
    QTest::newRow("fail") << QByteArray("result: fail") << 5000 << QStringLiteral("fail") << QStringLiteral("says fail");
    QTest::newRow("error") << QByteArray("result: error") << 5000 << QStringLiteral("error") << QStringLiteral("says error");
    QTest::newRow("skip") << QByteArray("result: skip") << 5000 << QStringLiteral("skip") << QStringLiteral("says skip");
    QTest::newRow("never finishes: timeout is an error")
        << QByteArray("never_finish: true") << 200 << QStringLiteral("error") << QStringLiteral("gate 'test-gate' timed out after 200 ms");
    QTest::newRow("slower than its deadline")
        << QByteArray("delay: 5s\nresult: pass") << 100 << QStringLiteral("error") << QStringLiteral("timed out after 100 ms");
    QTest::newRow("finishes without a verdict")
        << QByteArray("finish_without_verdict: true") << 5000 << QStringLiteral("error") << QStringLiteral("no verdict");
}

void tst_GateEvaluation::verdicts()
{
    QFETCH(QByteArray, settings);
    QFETCH(int, timeoutMs);
    QFETCH(QString, result);
    QFETCH(QString, reason);
    auto instance = Test::createInstance(*m_plugin, settings);
    QVERIFY2(instance.has_value(), qPrintable(instance ? QString() : instance.error().message));
    auto *gate = qobject_cast<Gate *>(instance->get());
    QVERIFY(gate);
    GateRequest request;
    request.task.id = 7;
    const GateVerdict verdict = Test::evaluateGate(*gate, request, std::chrono::milliseconds(timeoutMs));
    QCOMPARE(GateVerdict::resultName(verdict.result()), result);
    QVERIFY2(verdict.reason().contains(reason), qPrintable(verdict.reason()));
    QCOMPARE(verdict.allowsPassage(), result == QLatin1String("pass") || result == QLatin1String("skip"));
    if (result == QLatin1String("fail"))
        QCOMPARE(verdict.findings().size(), 1);
}

void tst_GateEvaluation::cancelIsAnError()
{
    auto instance = Test::createInstance(*m_plugin, "delay: 10s");
    QVERIFY(instance.has_value());
    auto *gate = qobject_cast<Gate *>(instance->get());
    GateEvaluation evaluation(*gate, GateRequest{}, 30s);
    QSignalSpy finished(&evaluation, &GateEvaluation::finished);
    evaluation.start();
    QVERIFY(!evaluation.isFinished());
    evaluation.cancel();
    QCOMPARE(finished.count(), 1);
    QCOMPARE(evaluation.verdict().result(), GateVerdict::Result::Error);
    QVERIFY(evaluation.verdict().reason().contains(QLatin1String("cancelled")));
    evaluation.cancel();
    QCOMPARE(finished.count(), 1);
}

namespace {
class TwiceRun : public GateRun
{
protected:
    void doStart() override
    {
        finishWith(GateVerdict::fail(QStringLiteral("first")));
        finishWith(GateVerdict::pass(QStringLiteral("second")));
    }
};
} // namespace

void tst_GateEvaluation::jobFinishesOnce()
{
    TwiceRun run;
    QSignalSpy finished(&run, &PluginJob::finished);
    run.start();
    run.start();
    QCOMPARE(finished.count(), 1);
    QCOMPARE(run.verdict().result(), GateVerdict::Result::Fail);
    QCOMPARE(run.verdict().reason(), QStringLiteral("first"));
    run.cancel(); // after finishing: no effect
    QVERIFY(!run.isCancelled());
}

void tst_GateEvaluation::concurrentRunReportsOnCreatingThread()
{
    QThread *worker = nullptr;
    ConcurrentGateRun run([&worker] {
        worker = QThread::currentThread();
        return GateVerdict::pass(QStringLiteral("computed"));
    });
    QThread *reportedOn = nullptr;
    connect(&run, &PluginJob::finished, this, [&] { reportedOn = QThread::currentThread(); });
    QSignalSpy finished(&run, &PluginJob::finished);
    run.start();
    QVERIFY(finished.wait(5000));
    QCOMPARE(run.verdict().reason(), QStringLiteral("computed"));
    QVERIFY(worker && worker != QThread::currentThread());
    QCOMPARE(reportedOn, QThread::currentThread());
}

QTEST_GUILESS_MAIN(tst_GateEvaluation)
#include "tst_gateevaluation.moc"
