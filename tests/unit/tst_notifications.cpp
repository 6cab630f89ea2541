// SPDX-License-Identifier: Apache-2.0
// The notification router without a daemon: only the notifiers a project's rules name get
// an event, passes stay silent, a notifier that never answers is cut off by the host's
// deadline and counted, and the caller never waits. The real telegram plugin talks to the
// fake Bot API on loopback.

#include "daemon/metrics.h"
#include "engine/engine.h"
#include "engine/notifications.h"
#include "faketelegram.h"
#include "plugins/pluginloader.h"

#include <sluice/testsupport.h>

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QtTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {
const QByteArray BotToken = "31337:router-test-token";
}

class tst_Notifications : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void routesByRuleAndCountsOutcomes();

private:
    PluginDirectory m_plugins;
    TemporaryConfig m_config;
    TemporaryStore m_store;
    FakeTelegram m_telegram{BotToken};
    std::unique_ptr<PluginCatalog> m_catalog;
};

void tst_Notifications::initTestCase()
{
    QVERIFY(m_store.store());
    QVERIFY(m_telegram.start());
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-stage"));
    m_plugins.add(QStringLiteral(SLUICE_PLUGIN_BUILD_DIR), QStringLiteral("sluice_notifier_telegram"));
    PluginSearchPath path;
    path.configuredDirs = QStringList{m_plugins.path()};
    m_catalog = std::make_unique<PluginCatalog>(path, TrustedOwners::forServiceUser(QString()));
    m_catalog->discover();
    m_catalog->loadAll();
    QVERIFY(m_catalog->plugin(QStringLiteral("telegram")));
}

void tst_Notifications::routesByRuleAndCountsOutcomes()
{
    m_config.writeFile(QStringLiteral("bot"), BotToken + '\n');
    const QString file = m_config.writeProject(QStringLiteral("p"), "id: p\n"
                                                                    "repository: {path: /nonexistent/p.git}\n"
                                                                    "stages:\n"
                                                                    "  - {name: development, run: dev}\n"
                                                                    "  - {name: done}\n"
                                                                    "notifications:\n"
                                                                    "  - {notifier: chat, events: [blocked, done]}\n"
                                                                    "  - {notifier: unreachable, events: [done]}\n"
                                                                    "instances:\n"
                                                                    "  dev: {plugin: test-stage, settings: {role: developer}}\n"
                                                                    "  chat:\n"
                                                                    "    plugin: telegram\n"
                                                                    "    settings: {url: " + m_telegram.url().toString().toUtf8()
                                                                        + ", token: {file: ../bot}, chat_id: \"1\", retry_backoff: 10ms}\n"
                                                                    "  unreachable:\n"
                                                                    "    plugin: telegram\n"
                                                                    // Nothing listens there: the delivery fails at once, and is counted.
                                                                    "    settings: {url: http://127.0.0.1:9/, token: {file: ../bot}, chat_id: \"2\", timeout: 1h, max_retries: 0}\n");
    Diagnostics diagnostics;
    auto config = ProjectConfig::load(file, *m_catalog, diagnostics);
    for (const Diagnostic &d : diagnostics)
        qWarning() << d.toString();
    QVERIFY(config);
    QCOMPARE(config->notifiersFor(QStringLiteral("done")), QStringList({QStringLiteral("chat"), QStringLiteral("unreachable")}));
    QVERIFY(config->notifiersFor(QStringLiteral("gate-passed")).isEmpty());
    auto runtime = std::make_shared<ProjectRuntime>();
    runtime->config = *config;
    auto instances = ProjectInstances::create(runtime->config, *m_catalog, m_store.store(), diagnostics);
    QVERIFY(instances && instances->initialize());
    runtime->instances = std::move(*instances);

    Engine engine(*m_store.store(), QStringLiteral("n"), m_config.path());
    engine.setProject(runtime);
    Metrics metrics;
    NotificationRouter router(engine);
    router.setMetrics(&metrics);
    router.setDeadline(std::chrono::milliseconds(300));
    QSignalSpy delivered(&router, &NotificationRouter::delivered);

    // A silent event: no rule names it.
    engine.notify(Notification{QStringLiteral("gate-passed"), QStringLiteral("p"), 1, QStringLiteral("gate g → pass"), {}, {}, {}});
    QCOMPARE(router.inFlight(), 0);

    // "done" goes to both; notify() returns before either answers.
    QElapsedTimer clock;
    clock.start();
    engine.notify(Notification{QStringLiteral("done"), QStringLiteral("p"), 1, QStringLiteral("task 1: done"), {}, {}, {}});
    QCOMPARE(router.inFlight(), 2);
    QTRY_COMPARE_WITH_TIMEOUT(delivered.size(), 2, 10000);
    QStringList outcomes;
    for (const QList<QVariant> &args : std::as_const(delivered))
        outcomes << args.at(1).toString() + QLatin1Char('=') + args.at(3).toString();
    outcomes.sort();
    QCOMPARE(outcomes, QStringList({QStringLiteral("chat=sent"), QStringLiteral("unreachable=failed")}));
    QCOMPARE(metrics.value(QStringLiteral("sluice_notifications_total"),
                           {{QStringLiteral("notifier"), QStringLiteral("chat")}, {QStringLiteral("event"), QStringLiteral("done")},
                            {QStringLiteral("result"), QStringLiteral("sent")}}),
             1.0);
    QCOMPARE(m_telegram.messages().size(), 1);
    QVERIFY(m_telegram.messages().first().text.contains(QLatin1String("task 1: done")));

    // A Bot API that accepts the connection and never answers: the host's deadline ends it.
    m_telegram.setDown(true, true);
    delivered.clear();
    engine.notify(Notification{QStringLiteral("blocked"), QStringLiteral("p"), 1, QStringLiteral("task 1: blocked"), {}, {}, {}});
    QTRY_COMPARE_WITH_TIMEOUT(delivered.size(), 1, 10000);
    QCOMPARE(delivered.first().at(3).toString(), QStringLiteral("timeout"));
    QCOMPARE(metrics.value(QStringLiteral("sluice_notifications_total"),
                           {{QStringLiteral("notifier"), QStringLiteral("chat")}, {QStringLiteral("event"), QStringLiteral("blocked")},
                            {QStringLiteral("result"), QStringLiteral("timeout")}}),
             1.0);
    QCOMPARE(router.inFlight(), 0);
    m_telegram.setDown(false);
}

QTEST_GUILESS_MAIN(tst_Notifications)
#include "tst_notifications.moc"
