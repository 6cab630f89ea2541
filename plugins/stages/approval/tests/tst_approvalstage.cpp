// SPDX-License-Identifier: Apache-2.0
// The approval stage as the host sees it: the real plugin library, instances created from
// YAML settings validated against its schema.
#include <sluice/stage.h>
#include <sluice/testsupport.h>

#include <QSignalSpy>
#include <QTest>

#include <memory>
#include <optional>

using namespace Sluice;

class tst_ApprovalStage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void metadata();
    void waits_data();
    void waits();
    void acceptedSignals_data();
    void acceptedSignals();
    void refusedSettings_data();
    void refusedSettings();
    void cancelBeforeStart();

private:
    Result<std::unique_ptr<Stage>> createStage(const QByteArray &yaml);

    std::optional<Test::LoadedPlugin> m_plugin;
};

void tst_ApprovalStage::initTestCase()
{
    auto plugin = Test::loadPlugin(QStringLiteral(APPROVAL_PLUGIN_FILE));
    QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
    m_plugin = *plugin;
}

Result<std::unique_ptr<Stage>> tst_ApprovalStage::createStage(const QByteArray &yaml)
{
    auto instance = Test::createInstance(*m_plugin, yaml);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<Stage *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create a stage"));
    return std::unique_ptr<Stage>(static_cast<Stage *>(instance->release()));
}

void tst_ApprovalStage::metadata()
{
    const PluginMetaData &meta = m_plugin->metaData;
    QCOMPARE(meta.id(), QStringLiteral("approval"));
    QCOMPARE(meta.kind(), PluginKind::Stage);
    const ConfigSchema &schema = meta.configSchema();
    QCOMPARE(schema.keyNames(), QStringList({QStringLiteral("instructions"), QStringLiteral("signal")}));
    QCOMPARE(schema.entry(QStringLiteral("signal"))->defaultValue().toString(), QStringLiteral("approve"));
    QCOMPARE(schema.entry(QStringLiteral("instructions"))->defaultValue().toString(), QString());
    for (const auto &[name, entry] : schema.entries())
        QVERIFY2(!entry.description().isEmpty(), qPrintable(name));
}

void tst_ApprovalStage::waits_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("summary");

    QTest::newRow("defaults") << QByteArray() << QStringLiteral("waiting for signal 'approve'");
    QTest::newRow("deploy confirmation")
        << QByteArray("signal: confirm-deploy\ninstructions: >\n  Staging is green. Set the task to Confirm Deploy\n"
                      "  to deploy to production; Approved does NOT deploy.\n")
        << QStringLiteral("waiting for signal 'confirm-deploy': Staging is green. Set the task to Confirm Deploy "
                          "to deploy to production; Approved does NOT deploy.");
}

void tst_ApprovalStage::waits()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, summary);

    auto stage = createStage(yaml);
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    StageRequest request;
    request.task.id = 7;
    request.stage = QStringLiteral("deploy");
    std::unique_ptr<StageRun> run = (*stage)->run(request);
    QVERIFY(run);
    QVERIFY(!run->isFinished()); // the host connects first, then starts
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->start();
    QCOMPARE(finished.count(), 1); // immediately: nothing runs
    QCOMPARE(run->outcome().status, StageOutcome::Status::Waiting);
    QVERIFY(!run->outcome().exitCode.has_value());
    QCOMPARE(run->outcome().summary, summary);
}

void tst_ApprovalStage::acceptedSignals_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("signal");
    QTest::addColumn<bool>("accepted");

    const QByteArray approve;
    const QByteArray deploy("signal: confirm-deploy");
    QTest::newRow("approval accepts approve") << approve << QStringLiteral("approve") << true;
    QTest::newRow("approval refuses confirm-deploy") << approve << QStringLiteral("confirm-deploy") << false;
    QTest::newRow("approval is case-sensitive") << approve << QStringLiteral("Approve") << false;
    QTest::newRow("approval refuses the empty signal") << approve << QString() << false;
    QTest::newRow("deploy accepts confirm-deploy") << deploy << QStringLiteral("confirm-deploy") << true;
    QTest::newRow("deploy refuses approve") << deploy << QStringLiteral("approve") << false;
    QTest::newRow("deploy refuses a look-alike") << deploy << QStringLiteral("confirm_deploy") << false;
}

void tst_ApprovalStage::acceptedSignals()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, signal);
    QFETCH(bool, accepted);

    auto stage = createStage(yaml);
    QVERIFY2(stage, qPrintable(stage ? QString() : stage.error().toString()));
    const QStringList signalNames = (*stage)->acceptedSignals();
    QCOMPARE(signalNames.size(), 1); // exactly the one configured signal
    QCOMPARE(signalNames.contains(signal), accepted);
}

void tst_ApprovalStage::refusedSettings_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QString>("messageContains");

    QTest::newRow("empty signal") << QByteArray("signal: \"\"") << QStringLiteral("'signal'");
    QTest::newRow("signal with a space") << QByteArray("signal: Confirm Deploy") << QStringLiteral("'Confirm Deploy'");
    QTest::newRow("signal starting with a dash") << QByteArray("signal: -deploy") << QStringLiteral("'-deploy'");
    QTest::newRow("signal list") << QByteArray("signal: [approve, confirm-deploy]") << QStringLiteral("expected string");
    QTest::newRow("unknown key") << QByteArray("signals: [approve]") << QStringLiteral("unknown key");
}

void tst_ApprovalStage::refusedSettings()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QString, messageContains);
    auto stage = createStage(yaml);
    QVERIFY(!stage);
    QCOMPARE(stage.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(stage.error().message.contains(messageContains), qPrintable(stage.error().message));
}

void tst_ApprovalStage::cancelBeforeStart()
{
    auto stage = createStage(QByteArray());
    QVERIFY(stage);
    std::unique_ptr<StageRun> run = (*stage)->run(StageRequest());
    QSignalSpy finished(run.get(), &PluginJob::finished);
    run->cancel();
    QCOMPARE(finished.count(), 1);
    QCOMPARE(run->outcome().status, StageOutcome::Status::Failed);
    run->start(); // ignored after a cancel
    QCOMPARE(finished.count(), 1);
}

QTEST_GUILESS_MAIN(tst_ApprovalStage)

#include "tst_approvalstage.moc"
