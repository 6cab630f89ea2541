// SPDX-License-Identifier: Apache-2.0
// The notification router without a daemon: only the notifiers a project's rules name get
// an event, passes stay silent, a notifier that never answers is cut off by the host's
// deadline and counted, and the caller never waits. The real telegram plugin talks to the
// fake Bot API on loopback.

#include "daemon/metrics.h"
#include "engine/engine.h"
#include "engine/notifications.h"
#include "fakeplane.h"
#include "faketelegram.h"
#include "store/trackeroutbox.h"
#include "pluginhost/pluginloader.h"

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
    void trackerWritesAreKeptUntilTaken();

private:
    PluginDirectory m_plugins;
    TemporaryConfig m_config;
    TemporaryStore m_store;
    FakeTelegram m_telegram{BotToken};
    FakePlane m_plane;
    std::unique_ptr<PluginCatalog> m_catalog;
};

void tst_Notifications::initTestCase()
{
    QVERIFY(m_store.store());
    QVERIFY(m_telegram.start());
    QVERIFY(m_plane.start());
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-stage"));
    m_plugins.add(QStringLiteral(SLUICE_PLUGIN_BUILD_DIR), QStringLiteral("sluice_notifier_telegram"));
    m_plugins.add(QStringLiteral(SLUICE_PLUGIN_BUILD_DIR), QStringLiteral("sluice_tracker_plane"));
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

// Writes to the tracker are kept until the tracker took them (issue 24.11): a state Plane
// refused with 500s beyond the connector's own retries is set on a later try; of two states
// owed, only the newest is set; a comment whose answer was lost is not posted twice; a write
// to a work item that does not exist is given up after a few refusals, audited.
void tst_Notifications::trackerWritesAreKeptUntilTaken()
{
    const QString planeProject = m_plane.addProject(QStringLiteral("KEP"));
    for (const char *name : {"In Progress", "In Review", "Needs Input", "Blocked", "Done"})
        m_plane.addState(planeProject, QLatin1String(name));
    const QString issue = m_plane.addIssue(planeProject, QStringLiteral("Keep it"), QString(), QStringLiteral("In Progress"));
    m_config.writeFile(QStringLiteral("plane-key"), "kept-writes-key\n");
    const QString file = m_config.writeProject(QStringLiteral("k"), "id: k\n"
                                                                    "repository: {path: /nonexistent/k.git}\n"
                                                                    "tracker: plane\n"
                                                                    "stages:\n"
                                                                    "  - {name: development, run: dev}\n"
                                                                    "  - {name: done}\n"
                                                                    "instances:\n"
                                                                    "  dev: {plugin: test-stage, settings: {role: developer}}\n"
                                                                    "  plane:\n"
                                                                    "    plugin: plane\n"
                                                                    "    settings: {url: " + m_plane.url().toString().toUtf8()
                                                                        + ", workspace: acme, project: " + planeProject.toUtf8()
                                                                        + ", api_key: {file: ../plane-key}, rate_limit: 0, max_retries: 1, retry_backoff: 10ms}\n");
    Diagnostics diagnostics;
    auto config = ProjectConfig::load(file, *m_catalog, diagnostics);
    for (const Diagnostic &d : diagnostics)
        qWarning() << d.toString();
    QVERIFY(config);
    auto runtime = std::make_shared<ProjectRuntime>();
    runtime->config = *config;
    auto instances = ProjectInstances::create(runtime->config, *m_catalog, m_store.store(), diagnostics);
    QVERIFY(instances && instances->initialize());
    runtime->instances = std::move(*instances);
    Engine engine(*m_store.store(), QStringLiteral("n"), m_config.path());
    engine.setProject(runtime);
    auto task = engine.submit(QStringLiteral("k"), QStringLiteral("Keep it"), QString(), QString(), QStringLiteral("test"), issue);
    QVERIFY(task);
    Metrics metrics;
    TrackerUpdates updates(engine);
    updates.setMetrics(&metrics);
    updates.setRetryBackoff(std::chrono::milliseconds(100), std::chrono::milliseconds(400));
    QTimer retries; // what the daemon's outbox pass does
    QObject::connect(&retries, &QTimer::timeout, &updates, &TrackerUpdates::retryDue);
    retries.start(20);
    QSignalSpy updated(&updates, &TrackerUpdates::updated);
    TrackerOutbox outbox(*m_store.store());
    const auto notify = [&](const QString &event, const QString &title) {
        engine.notify(Notification{event, QStringLiteral("k"), *task, title, {}, QJsonObject{{QStringLiteral("tracker_ref"), issue}}, {}});
    };
    QTRY_VERIFY_WITH_TIMEOUT(updates.inFlight() == 0, 10000); // the "submitted" comment
    const auto results = [&](const QString &action) {
        QStringList out;
        for (const QList<QVariant> &args : std::as_const(updated)) {
            if (args.at(2).toString() == action)
                out << args.at(3).toString();
        }
        return out;
    };

    // Plane answers 500 to four state writes: two calls of the connector (one retry each)
    // fail, the third goes through.
    updated.clear();
    m_plane.failNext(QStringLiteral("/work-items/"), 500, 4, "PATCH");
    notify(QStringLiteral("blocked"), QStringLiteral("task: blocked"));
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Blocked"), 10000);
    QTRY_COMPARE_WITH_TIMEOUT(results(QStringLiteral("state")), QStringList({QStringLiteral("failed"), QStringLiteral("failed"), QStringLiteral("ok")}), 10000);
    QCOMPARE(metrics.value(QStringLiteral("sluice_tracker_updates_total"),
                           {{QStringLiteral("project"), QStringLiteral("k")}, {QStringLiteral("action"), QStringLiteral("state")},
                            {QStringLiteral("result"), QStringLiteral("failed")}}),
             2.0);
    auto latest = outbox.latestStateWrite(QStringLiteral("k"), *task);
    QVERIFY(latest && latest->has_value());
    QCOMPARE((*latest)->outcome, QStringLiteral("ok"));
    QCOMPARE((*latest)->attempts, 2);

    // Two states owed while Plane refuses: only the newest is set.
    updated.clear();
    m_plane.failNext(QStringLiteral("/work-items/"), 500, 1000, "PATCH");
    notify(QStringLiteral("done"), QStringLiteral("task: done"));
    QTRY_VERIFY_WITH_TIMEOUT(results(QStringLiteral("state")).contains(QStringLiteral("failed")), 10000);
    notify(QStringLiteral("blocked"), QStringLiteral("task: blocked again"));
    QTRY_VERIFY_WITH_TIMEOUT(results(QStringLiteral("state")).size() >= 2, 10000);
    m_plane.clearFaults();
    QTRY_VERIFY_WITH_TIMEOUT(results(QStringLiteral("state")).contains(QStringLiteral("ok")), 10000);
    QTRY_COMPARE_WITH_TIMEOUT(updates.inFlight(), 0, 10000);
    QCOMPARE(m_plane.issueState(issue), QStringLiteral("Blocked"));
    auto open = outbox.open(QStringLiteral("k"));
    QVERIFY(open);
    QVERIFY(open->isEmpty());

    // A comment whose answer was lost: tried again with its key, Plane answers 409, one comment.
    const int comments = int(m_plane.comments(issue).size());
    m_plane.loseNextAnswer(QStringLiteral("/comments/"));
    notify(QStringLiteral("stage-changed"), QStringLiteral("task: moved once"));
    QTRY_COMPARE_WITH_TIMEOUT(updates.inFlight(), 0, 10000);
    QCOMPARE(int(m_plane.comments(issue).size()), comments + 1);
    QVERIFY(m_plane.comments(issue).last().html.contains(QLatin1String("moved once")));

    // A work item that does not exist (deleted): refused, given up after a few attempts, audited.
    updated.clear();
    engine.notify(Notification{QStringLiteral("done"), QStringLiteral("k"), *task, QStringLiteral("task: done elsewhere"), {},
                               QJsonObject{{QStringLiteral("tracker_ref"), QStringLiteral("00000000-0000-0000-0000-000000000000")}}, {}});
    QTRY_COMPARE_WITH_TIMEOUT(results(QStringLiteral("state")).count(QStringLiteral("abandoned")), 1, 10000);
    QTRY_COMPARE_WITH_TIMEOUT(results(QStringLiteral("comment")).count(QStringLiteral("abandoned")), 1, 10000);
    QCOMPARE(results(QStringLiteral("state")).count(QStringLiteral("failed")), TrackerUpdates::MaxRefusals - 1);
    auto history = engine.tasks().history(*task);
    QVERIFY(history);
    QVERIFY(std::any_of(history->cbegin(), history->cend(), [](const AuditRecord &a) { return a.action == QLatin1String("tracker-write-abandoned"); }));
    retries.stop();
}

QTEST_GUILESS_MAIN(tst_Notifications)
#include "tst_notifications.moc"
