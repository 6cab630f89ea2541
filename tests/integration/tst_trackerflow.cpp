// SPDX-License-Identifier: Apache-2.0
// `sluice serve` as a real process, steered only by a person moving work items in a fake
// Plane on loopback: a work item moved to "In Progress" becomes a task, the task reports
// back with comments and states, "Approved" and "Confirm Deploy" move it on, "Approved" on
// the deploy confirmation is a no-op, "Rejected" sends it back; webhooks are signed,
// answered 200 once recorded, handled afterwards and de-duplicated; a title edit is no move;
// a delivery that never came is caught up by the reconciler; a state write Plane refused
// with 500s is made later; notifications go to a fake Telegram, whose outage changes
// nothing; no secret reaches the log.

#include "fakeplane.h"
#include "faketelegram.h"
#include "daemonprocess.h"
#include "store/store.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QSignalSpy>
#include <QtTest>

#include <csignal>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray ApiKey = "plane-flow-api-key-7a1e5c";
const QByteArray HookSecret = "plane-flow-hook-secret-3b8d";
const QByteArray BotToken = "424242:flow-telegram-token-Qx9";

using Reply = Sluice::Test::HttpReply;

} // namespace

class tst_TrackerFlow : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void statusChangesDriveATaskToDone();
    void rejectSendsTheTaskBack();
    void notifierOutageChangesNothing();
    void sighupReadsTheStatesAgain();
    void titleEditIsNoMoveAndStateWritesHeal();
    void lostDeliveryIsCaughtUpByTheReconciler();
    void v2StartReadsTheWorkItem();
    void movesMadeFromTheCliAreNotifiedToo();
    void retryFromTheCliIsNotifiedAndTheIssueMovesBack();
    void secretsNeverLogged();
    void answeredButUnhandledDeliveryIsHandledAfterACrash();

private:
    Reply request(const QByteArray &method, const QString &path, const QByteArray &body = {},
                  const QList<QPair<QByteArray, QByteArray>> &headers = {})
    {
        return m_daemon.request(method, path, body, headers);
    }
    // Delivers @p delivery as Plane does: once (Plane's sender tries again only when it
    // cannot connect).
    Reply deliver(const FakePlane::Delivery &delivery);
    QJsonObject task(qint64 id) { return request("GET", QStringLiteral("/api/tasks/%1").arg(id)).json(); }
    // The task of the work item titled @p title, once the daemon made it (0 until then).
    qint64 taskTitled(const QString &title);
    // Whether task @p id's history has @p action (with @p detail in its details' text).
    bool historyHas(qint64 id, const QString &action, const QString &detail = QString());
    int historyCount(qint64 id, const QString &action);
    QString stageOf(qint64 id) { return task(id).value(QLatin1String("stage")).toString(); }
    bool commentContains(const QString &issue, const QString &text);
    QByteArray metrics() { return request("GET", QStringLiteral("/metrics")).body; }

    PluginDirectory m_plugins;
    TemporaryConfig m_config;
    FakePlane m_plane;
    FakeTelegram m_telegram{BotToken};
    QString m_project;
    QString m_editedIssue; // the work item of titleEditIsNoMoveAndStateWritesHeal()
    Test::DaemonProcess m_daemon{QStringLiteral(SLUICE_EXECUTABLE)};
};

void tst_TrackerFlow::initTestCase()
{
    QVERIFY(m_plane.start());
    QVERIFY(m_telegram.start());
    m_plane.setApiKey(ApiKey);
    m_project = m_plane.addProject(QStringLiteral("SLU"));
    for (const char *name : {"Backlog", "Todo", "In Progress", "In Review", "Needs Input", "Approved", "Rejected", "Confirm Deploy",
                             "Blocked", "Done"})
        m_plane.addState(m_project, QLatin1String(name));

    for (const char *plugin : {"test-gate", "test-stage"})
        m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QLatin1String(plugin));
    for (const char *plugin : {"sluice_tracker_plane", "sluice_notifier_telegram", "sluice_stage_approval"})
        m_plugins.add(QStringLiteral(SLUICE_PLUGIN_BUILD_DIR), QLatin1String(plugin));
    m_config.writeHostFile("node: flow-node\nstate_dir: state\nplugin_dirs: [" + m_plugins.path().toUtf8()
                           + "]\nworker: {poll_interval: 100ms}\nhttp: {port: 0}\nreconciler: {interval: 1s}\n");
    m_config.writeFile(QStringLiteral("secrets/plane-key"), ApiKey + '\n');
    m_config.writeFile(QStringLiteral("secrets/plane-hook"), HookSecret + '\n');
    m_config.writeFile(QStringLiteral("secrets/bot"), BotToken + '\n');
    const QString repo = m_config.path() + QStringLiteral("/repo.git");
    const QString seed = m_config.path() + QStringLiteral("/seed");
    m_config.writeFile(QStringLiteral("seed/README"), "seed\n");
    const QList<QStringList> steps{
        {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), repo},
        {QStringLiteral("-C"), seed, QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")},
        {QStringLiteral("-C"), seed, QStringLiteral("add"), QStringLiteral("README")},
        {QStringLiteral("-C"), seed, QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
         QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")},
        {QStringLiteral("-C"), seed, QStringLiteral("push"), QStringLiteral("-q"), repo, QStringLiteral("main")}};
    for (const QStringList &args : steps) {
        QProcess git;
        git.start(QStringLiteral("git"), args);
        QVERIFY2(git.waitForFinished(30000) && git.exitCode() == 0, qPrintable(args.join(QLatin1Char(' '))));
    }
    // The quickstart's shape, with a person at the end: development, review with an exit
    // gate, an approval and a separate deploy confirmation.
    m_config.writeProject(QStringLiteral("quickstart"), "id: quickstart\n"
                                                        "repository: {path: ../repo.git}\n"
                                                        "tracker: plane\n"
                                                        "tracker_states: {review: in-review}\n"
                                                        "red_policy: {rollback_to: development, max_retries: 3}\n"
                                                        "stages:\n"
                                                        "  - {name: development, run: dev}\n"
                                                        "  - {name: review, run: rev, exit_gates: [review-verdict]}\n"
                                                        "  - {name: approval, run: approve}\n"
                                                        "  - {name: deploy, run: confirm}\n"
                                                        "  - {name: done}\n"
                                                        "notifications:\n"
                                                        "  - notifier: chat\n"
                                                        "    events: [stage-changed, approval-requested, rolled-back, blocked, unblocked, done]\n"
                                                        "instances:\n"
                                                        "  plane:\n"
                                                        "    plugin: plane\n"
                                                        "    settings:\n"
                                                        "      url: " + m_plane.url().toString().toUtf8() + "\n"
                                                        "      workspace: acme\n"
                                                        "      project: " + m_project.toUtf8() + "\n"
                                                        "      identifier: SLU\n"
                                                        "      api_key: {file: ../secrets/plane-key}\n"
                                                        "      webhook_secret: {file: ../secrets/plane-hook}\n"
                                                        "      rate_limit: 600\n"
                                                        "      retry_backoff: 50ms\n"
                                                        "  chat:\n"
                                                        "    plugin: telegram\n"
                                                        "    settings:\n"
                                                        "      url: " + m_telegram.url().toString().toUtf8() + "\n"
                                                        "      token: {file: ../secrets/bot}\n"
                                                        "      chat_id: \"-100777\"\n"
                                                        "      max_retries: 1\n"
                                                        "      retry_backoff: 50ms\n"
                                                        "      timeout: 2s\n"
                                                        "  dev: {plugin: test-stage, settings: {role: developer}}\n"
                                                        "  rev: {plugin: test-stage, settings: {role: reviewer}}\n"
                                                        "  review-verdict: {plugin: test-gate, settings: {result: pass}}\n"
                                                        "  approve: {plugin: approval, settings: {signal: approve, instructions: Check the change.}}\n"
                                                        "  confirm: {plugin: approval, settings: {signal: confirm-deploy}}\n");

    QVERIFY(m_daemon.serve(m_config.path()));
    QVERIFY(m_daemon.port() != 0);
}

void tst_TrackerFlow::cleanupTestCase()
{
    if (QTest::currentTestFailed() || qEnvironmentVariableIsSet("SLUICE_TEST_SHOW_LOG"))
        qInfo("daemon log:\n%s", m_daemon.log().constData());
    if (m_daemon.state() != QProcess::NotRunning) {
        m_daemon.terminate();
        if (!m_daemon.waitForFinished(15000))
            m_daemon.kill();
    }
}

Reply tst_TrackerFlow::deliver(const FakePlane::Delivery &delivery)
{
    return request("POST", QStringLiteral("/webhooks/quickstart/plane"), delivery.body, delivery.headers);
}

qint64 tst_TrackerFlow::taskTitled(const QString &title)
{
    for (const QJsonValue &t : request("GET", QStringLiteral("/api/status")).json().value(QLatin1String("tasks")).toArray()) {
        if (t.toObject().value(QLatin1String("title")).toString() == title)
            return t.toObject().value(QLatin1String("id")).toVariant().toLongLong();
    }
    return 0;
}

bool tst_TrackerFlow::historyHas(qint64 id, const QString &action, const QString &detail)
{
    for (const QJsonValue &h : task(id).value(QLatin1String("history")).toArray()) {
        const QJsonObject o = h.toObject();
        if (o.value(QLatin1String("action")).toString() == action
            && (detail.isEmpty() || QJsonDocument(o.value(QLatin1String("details")).toObject()).toJson().contains(detail.toUtf8())))
            return true;
    }
    return false;
}

int tst_TrackerFlow::historyCount(qint64 id, const QString &action)
{
    int n = 0;
    for (const QJsonValue &h : task(id).value(QLatin1String("history")).toArray())
        n += h.toObject().value(QLatin1String("action")).toString() == action ? 1 : 0;
    return n;
}

bool tst_TrackerFlow::commentContains(const QString &issue, const QString &text)
{
    const auto comments = m_plane.comments(issue);
    return std::any_of(comments.cbegin(), comments.cend(), [&](const FakePlaneComment &c) { return c.html.contains(text); });
}

void tst_TrackerFlow::statusChangesDriveATaskToDone()
{
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("Say hello"), QStringLiteral("Add hello.txt."), QStringLiteral("Todo"));

    // A state that sends nothing: answered 200 (Plane counts anything else as a failed
    // delivery), no task. (Right after the start the instance may still be reading the
    // states: then the work item is read again, and its state still sends nothing.)
    Reply todo = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(todo.status, 200);
    QVERIFY(todo.json().value(QLatin1String("events")).toInt() <= 1);

    // Unsigned, or signed with the wrong secret: 401.
    QCOMPARE(deliver(m_plane.issueUpdated(issue, QByteArray())).status, 401);
    QCOMPARE(deliver(m_plane.issueUpdated(issue, "not-the-secret")).status, 401);

    // The person starts the work item: a task is created for it.
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("In Progress")));
    const FakePlane::Delivery start = m_plane.issueUpdated(issue, HookSecret);
    Reply started = deliver(start);
    QCOMPARE(started.status, 200);
    QCOMPARE(started.json().value(QLatin1String("events")).toInt(), 1);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("Say hello")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("Say hello"));
    // The same delivery again is dropped, and so is Plane's redelivery of the same event (a new
    // X-Plane-Delivery, the same payload); no second task.
    Reply replay = deliver(start);
    QCOMPARE(replay.status, 200);
    QVERIFY(replay.json().value(QLatin1String("duplicate")).toBool());
    Reply redelivered = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(redelivered.status, 200);
    QVERIFY(redelivered.json().value(QLatin1String("duplicate")).toBool());
    QCOMPARE(request("GET", QStringLiteral("/api/status")).body.count("\"Say hello\""), 1);
    QCOMPARE(task(id).value(QLatin1String("branch")).toString(), QStringLiteral("sluice/slu-1"));

    // Development and review run; the approval stage asks for exactly "Approved".
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 20000);
    QTRY_VERIFY_WITH_TIMEOUT(commentContains(issue, QStringLiteral("set the status to \u201cApproved\u201d")), 10000);
    QVERIFY(commentContains(issue, QStringLiteral("moved development \u2192 review")));
    QVERIFY(commentContains(issue, QStringLiteral("To send it back, set the status to \u201cRejected\u201d")));

    // The echo of the state sluice set is a signal the stage does not wait for: a no-op.
    Reply echo = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(echo.status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(historyHas(id, QStringLiteral("signal-ignored"), QStringLiteral("waits for 'approve', not 'hold'")), 10000);

    // Approved: on to the deploy confirmation, which asks for "Confirm Deploy", not "Approved".
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Approved")));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("deploy"), 20000);
    QTRY_VERIFY_WITH_TIMEOUT(commentContains(issue, QStringLiteral("set the status to \u201cConfirm Deploy\u201d")), 10000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 10000);

    // "Approved" again, now on the deploy confirmation: a logged no-op.
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Approved")));
    Reply approvedOnDeploy = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(approvedOnDeploy.status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(historyHas(id, QStringLiteral("signal-ignored"), QStringLiteral("waits for 'confirm-deploy', not 'approve'")), 10000);
    QCOMPARE(stageOf(id), QStringLiteral("deploy"));
    QCOMPARE(task(id).value(QLatin1String("status")).toString(), QStringLiteral("active"));

    // Confirm Deploy: done, and the work item says so.
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Confirm Deploy")));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("status")).toString(), QStringLiteral("done"), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Done"), 10000);

    // The chat heard the moves and the requests; passes are silent.
    QTRY_VERIFY_WITH_TIMEOUT(std::any_of(m_telegram.messages().cbegin(), m_telegram.messages().cend(),
                                         [](const FakeTelegramMessage &m) { return m.text.contains(QLatin1String("done (deploy")); }),
                             10000);
    const auto messages = m_telegram.messages();
    QVERIFY(std::any_of(messages.cbegin(), messages.cend(), [](const FakeTelegramMessage &m) {
        return m.text.contains(QLatin1String("waits in deploy for confirm-deploy"));
    }));
    for (const FakeTelegramMessage &m : messages) {
        QCOMPARE(m.chatId, QStringLiteral("-100777"));
        QVERIFY2(!m.text.contains(QLatin1String("\u2192 pass")), qPrintable(m.text));
    }
    QVERIFY(metrics().contains("sluice_notifications_total{event=\"done\",notifier=\"chat\",result=\"sent\"} 1"));
}

void tst_TrackerFlow::rejectSendsTheTaskBack()
{
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("Say bye"), QStringLiteral("Add bye.txt."), QStringLiteral("In Progress"));
    Reply started = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(started.status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("Say bye")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("Say bye"));
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 10000);

    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Rejected")));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    // Sent back to development by the red policy, then through review to the approval again.
    QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("retries")).toInt(), 1, 20000);
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);
    QTRY_VERIFY_WITH_TIMEOUT(commentContains(issue, QStringLiteral("sent back approval \u2192 development by reject (1 of 3)")), 10000);
    const QJsonArray history = task(id).value(QLatin1String("history")).toArray();
    bool rolledBack = false;
    for (const QJsonValue &h : history)
        rolledBack = rolledBack || h.toObject().value(QLatin1String("action")).toString() == QLatin1String("rollback");
    QVERIFY(rolledBack);
    QVERIFY(task(id).value(QLatin1String("description")).toString().contains(QLatin1String("rejected by a person")));
}

void tst_TrackerFlow::notifierOutageChangesNothing()
{
    m_telegram.setDown(true);
    const int before = int(m_telegram.messages().size());
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("During the outage"), QString(), QStringLiteral("In Progress"));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("During the outage")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("During the outage"));
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Approved")));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("deploy"), 20000);
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Confirm Deploy")));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("status")).toString(), QStringLiteral("done"), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Done"), 10000);
    // Every message failed and was counted; none arrived.
    QTRY_VERIFY_WITH_TIMEOUT(metrics().contains("sluice_notifications_total{event=\"done\",notifier=\"chat\",result=\"failed\"} 1"), 15000);
    QCOMPARE(int(m_telegram.messages().size()), before);
    m_telegram.setDown(false);
}

void tst_TrackerFlow::sighupReadsTheStatesAgain()
{
    auto stateReads = [this] {
        int n = 0;
        for (const LoopbackRequest &r : m_plane.requests())
            n += r.path.endsWith(QLatin1String("/states/")) ? 1 : 0;
        return n;
    };
    const int before = stateReads();
    QVERIFY(before >= 1);
    // SIGHUP builds new instances, which read the states again before any delivery needs them.
    m_plane.addState(m_project, QStringLiteral("Hold On"));
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("After reload"), QString(), QStringLiteral("Hold On"));
    ::kill(pid_t(m_daemon.processId()), SIGHUP);
    QTRY_VERIFY_WITH_TIMEOUT(stateReads() > before, 15000);
    Reply r = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(r.status, 200);
    QCOMPARE(r.json().value(QLatin1String("events")).toInt(), 0); // known now; it sends no signal
}

// The incident of issue 24.10: a person rejects, the task goes back and returns to the
// approval while the work item still shows "Rejected" (Sluice's state writes fail: Plane
// answers 500), and the person edits the title. Plane sends an "updated" delivery for the
// name, with the work item in "Rejected": no second rollback. Once Plane answers again, the
// state writes that failed are made (issue 24.11).
void tst_TrackerFlow::titleEditIsNoMoveAndStateWritesHeal()
{
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("Edit me"), QStringLiteral("Add edit.txt."), QStringLiteral("In Progress"));
    m_editedIssue = issue;
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("Edit me")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("Edit me"));
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 10000);

    // From now on Plane refuses every state write with a 500.
    m_plane.failNext(QStringLiteral("/work-items/"), 500, 100000, "PATCH");
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Rejected")));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("retries")).toInt(), 1, 20000);
    QTRY_VERIFY_WITH_TIMEOUT(historyCount(id, QStringLiteral("approval-requested")) >= 2, 20000); // back, and waiting again
    QCOMPARE(stageOf(id), QStringLiteral("approval"));
    QCOMPARE(m_plane.issueState(issue), QStringLiteral("Rejected")); // Sluice's writes did not go through

    // The title edit: answered, handled, nothing moves.
    QVERIFY(m_plane.renameIssue(issue, QStringLiteral("Edit me, please")));
    const Reply renamed = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(renamed.status, 200);
    // Deliveries are handled in order: once a later one has been, the edit was too.
    const QString marker = m_plane.addIssue(m_project, QStringLiteral("After the edit"), QString(), QStringLiteral("In Progress"));
    QCOMPARE(deliver(m_plane.issueUpdated(marker, HookSecret)).status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("After the edit")) > 0, 10000);
    QCOMPARE(task(id).value(QLatin1String("retries")).toInt(), 1);
    QCOMPARE(historyCount(id, QStringLiteral("rollback")), 1);
    QCOMPARE(stageOf(id), QStringLiteral("approval"));

    // The connector's own retries ran out for the state the approval asks for too (the one
    // still running when it was asked for failed first): the host keeps it.
    const auto failedStateWrites = [this] {
        const QByteArray name = "sluice_tracker_updates_total{action=\"state\",project=\"quickstart\",result=\"failed\"} ";
        const QByteArray m = metrics();
        const int at = int(m.indexOf(name));
        return at < 0 ? 0 : m.mid(at + name.size(), m.indexOf('\n', at) - at - name.size()).toInt();
    };
    QTRY_VERIFY_WITH_TIMEOUT(failedStateWrites() >= 2, 30000);
    QCOMPARE(m_plane.issueState(issue), QStringLiteral("Rejected"));
    // Plane answers again: the state the approval asked for is set after all.
    m_plane.clearFaults();
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 40000);
    QVERIFY(m_daemon.log().contains("kept, tried again at"));
    QCOMPARE(task(id).value(QLatin1String("retries")).toInt(), 1);
}

// A person approves, and Plane's delivery never arrives (lost, or sent while the daemon was
// away): the reconciler reads the work item, sees an answer given after the approval was asked
// for, and moves the task once, through Engine::signal.
void tst_TrackerFlow::lostDeliveryIsCaughtUpByTheReconciler()
{
    // The task of the previous case, waiting for its approval again.
    const qint64 id = taskTitled(QStringLiteral("Edit me"));
    QVERIFY(id > 0);
    QCOMPARE(stageOf(id), QStringLiteral("approval"));
    const QString ref = m_editedIssue;
    QVERIFY(!ref.isEmpty());
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(ref), QStringLiteral("Needs Input"), 10000);
    QVERIFY(m_plane.moveIssue(ref, QStringLiteral("Approved"))); // and no delivery
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("deploy"), 20000);
    QVERIFY(historyHas(id, QStringLiteral("reconcile"), QStringLiteral("set after the task began to wait")));
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(ref), QStringLiteral("Needs Input"), 20000); // the deploy confirmation asks
    // Still "Approved" at heart for the reconciler? No: the deploy stage waits for
    // confirm-deploy; several passes later the task has not moved.
    QTest::qWait(2500);
    QCOMPARE(stageOf(id), QStringLiteral("deploy"));
    QCOMPARE(historyCount(id, QStringLiteral("reconcile")), 1);
}

// Webhooks v2 carry the work item without its description: a new task's work item is read.
void tst_TrackerFlow::v2StartReadsTheWorkItem()
{
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("Version two"), QStringLiteral("Read me through the API."),
                                           QStringLiteral("Todo"));
    QVERIFY(m_plane.moveIssue(issue, QStringLiteral("In Progress")));
    const auto delivery = m_plane.issueUpdated(issue, HookSecret, QString(), FakePlane::Webhooks::V2);
    QCOMPARE(deliver(delivery).status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("Version two")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("Version two"));
    QCOMPARE(task(id).value(QLatin1String("description")).toString(), QStringLiteral("Read me through the API."));
    // Plane's next attempt of the same event (new delivery_id, same event_id): a duplicate.
    const Reply again = deliver(m_plane.issueUpdated(issue, HookSecret, QString(), FakePlane::Webhooks::V2));
    QVERIFY(again.json().value(QLatin1String("duplicate")).toBool());
}

void tst_TrackerFlow::secretsNeverLogged()
{
    QVERIFY(m_daemon.log().contains("sluice.tracker.plane"));
    QVERIFY(m_daemon.log().contains("could not send")); // the outage was logged
    for (const QByteArray &secret : {ApiKey, HookSecret, BotToken, QByteArray("flow-telegram-token")})
        QVERIFY2(!m_daemon.log().contains(secret), secret.constData());
    // Nor in the database (its file and its write-ahead log).
    QByteArray bytes;
    for (const char *name : {"/state/sluice.db", "/state/sluice.db-wal"}) {
        QFile db(m_config.path() + QLatin1String(name));
        if (db.open(QIODevice::ReadOnly))
            bytes += db.readAll();
    }
    QVERIFY(bytes.contains("Say hello")); // the tasks are there
    for (const QByteArray &secret : {ApiKey, HookSecret, BotToken})
        QVERIFY(!bytes.contains(secret));
}

// A move made by `sluice approve` (another process, which routes nothing) reaches the chat
// and the tracker through the daemon, once: the CLI keeps its notifications in the store.
void tst_TrackerFlow::movesMadeFromTheCliAreNotifiedToo()
{
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("Approved by hand"), QStringLiteral("Add cli.txt."), QStringLiteral("In Progress"));
    Reply started = deliver(m_plane.issueUpdated(issue, HookSecret));
    QCOMPARE(started.status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("Approved by hand")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("Approved by hand"));
    QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);

    auto approve = [&](const QStringList &extra) {
        QProcess cli;
        cli.start(QStringLiteral(SLUICE_EXECUTABLE), QStringList{QStringLiteral("approve"), QStringLiteral("--config"), m_config.path(), QString::number(id)} + extra);
        QVERIFY(cli.waitForFinished(60000));
        QByteArray err;
        for (const QByteArray &line : cli.readAllStandardError().split('\n')) {
            if (!line.contains("sluice.core.loader"))
                err += line + '\n';
        }
        const QByteArray out = cli.readAllStandardOutput();
        QVERIFY2(cli.exitCode() == 0, (out + err).constData());
        QVERIFY2(!err.contains("cannot keep"), err.constData()); // the notification was kept for the daemon
    };
    const QString moved = QStringLiteral("task %1 (Approved by hand): moved approval \u2192 deploy").arg(id);
    auto count = [&](const QString &text) {
        const auto messages = m_telegram.messages();
        return int(std::count_if(messages.cbegin(), messages.cend(), [&](const FakeTelegramMessage &m) { return m.text.contains(text); }));
    };
    // Approved by hand once the stage asks (its job has reported that it waits).
    const auto asked = [&](const QString &stage) {
        return count(QStringLiteral("task %1 (Approved by hand): waits in %2 for").arg(id).arg(stage)) > 0;
    };
    QTRY_VERIFY_WITH_TIMEOUT(asked(QStringLiteral("approval")), 15000);
    approve({QStringLiteral("approval")});
    QCOMPARE(stageOf(id), QStringLiteral("deploy"));
    QTRY_COMPARE_WITH_TIMEOUT(count(moved), 1, 15000);
    QTRY_VERIFY_WITH_TIMEOUT(commentContains(issue, QStringLiteral("moved approval \u2192 deploy")), 10000);

    QTRY_VERIFY_WITH_TIMEOUT(asked(QStringLiteral("deploy")), 15000);
    approve({QStringLiteral("deploy"), QStringLiteral("--signal"), QStringLiteral("confirm-deploy")});
    QCOMPARE(task(id).value(QLatin1String("status")).toString(), QStringLiteral("done"));
    QTRY_COMPARE_WITH_TIMEOUT(count(QStringLiteral("task %1 (Approved by hand): done (deploy").arg(id)), 1, 15000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Done"), 10000);
    QTest::qWait(1500); // several more outbox passes: nothing is routed twice
    QCOMPARE(count(moved), 1);
    QCOMPARE(count(QStringLiteral("task %1 (Approved by hand): done (deploy").arg(id)), 1);
}

// Rejected once more than the red policy allows, the task is blocked and its work item says
// so; `sluice retry` from another process brings it back into its stage: the chat hears who
// retried it and why, and the work item leaves "Blocked" and asks for the approval again.
void tst_TrackerFlow::retryFromTheCliIsNotifiedAndTheIssueMovesBack()
{
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("Blocked, then retried"), QString(), QStringLiteral("In Progress"));
    QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("Blocked, then retried")) > 0, 10000);
    const qint64 id = taskTitled(QStringLiteral("Blocked, then retried"));
    for (int rejection = 1; rejection <= 4; ++rejection) {
        QTRY_COMPARE_WITH_TIMEOUT(stageOf(id), QStringLiteral("approval"), 20000);
        QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 20000);
        QVERIFY(m_plane.moveIssue(issue, QStringLiteral("Rejected")));
        QCOMPARE(deliver(m_plane.issueUpdated(issue, HookSecret)).status, 200);
        if (rejection < 4)
            QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("retries")).toInt(), rejection, 20000);
    }
    QTRY_COMPARE_WITH_TIMEOUT(task(id).value(QLatin1String("status")).toString(), QStringLiteral("blocked"), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Blocked"), 10000);

    QProcess cli;
    cli.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("retry"), QStringLiteral("--config"), m_config.path(), QString::number(id),
                                                  QStringLiteral("--reason"), QStringLiteral("the reviewer asked for one more look")});
    QVERIFY(cli.waitForFinished(60000));
    QVERIFY2(cli.exitCode() == 0, cli.readAllStandardError().constData());
    const QString retried = QStringLiteral("task %1 (Blocked, then retried): retried in approval by ").arg(id);
    QTRY_VERIFY_WITH_TIMEOUT(std::any_of(m_telegram.messages().cbegin(), m_telegram.messages().cend(),
                                         [&](const FakeTelegramMessage &m) {
                                             return m.text.contains(retried) && m.text.contains(QLatin1String("the reviewer asked for one more look"));
                                         }),
                             15000);
    QTRY_VERIFY_WITH_TIMEOUT(commentContains(issue, QStringLiteral("retried in approval by")), 10000);
    // Back in its stage, which asks for the approval again.
    QCOMPARE(task(id).value(QLatin1String("status")).toString(), QStringLiteral("active"));
    QTRY_COMPARE_WITH_TIMEOUT(m_plane.issueState(issue), QStringLiteral("Needs Input"), 15000);
    QCOMPARE(task(id).value(QLatin1String("retries")).toInt(), 3); // the red policy's count is kept
}

// A delivery is answered once recorded and handled right after; a daemon killed in between
// (kill -9) leaves it recorded and not handled. The next start handles it, once.
void tst_TrackerFlow::answeredButUnhandledDeliveryIsHandledAfterACrash()
{
    ::kill(pid_t(m_daemon.processId()), SIGKILL);
    QVERIFY(m_daemon.waitForFinished(15000));
    const QString issue = m_plane.addIssue(m_project, QStringLiteral("After the crash"), QStringLiteral("Handle me."), QStringLiteral("In Progress"));
    {
        // What the killed daemon had recorded, with the store's own call, before it answered.
        StoreSettings settings;
        settings.sqlitePath = m_config.path() + QStringLiteral("/state/sluice.db");
        auto store = Store::open(settings);
        QVERIFY(store);
        const QJsonObject event{{QStringLiteral("kind"), QStringLiteral("signal")},
                                {QStringLiteral("subject"), issue},
                                {QStringLiteral("value"), QStringLiteral("start")},
                                {QStringLiteral("data"), QJsonObject{{QStringLiteral("title"), QStringLiteral("After the crash")},
                                                                     {QStringLiteral("description"), QStringLiteral("Handle me.")},
                                                                     {QStringLiteral("branch"), QStringLiteral("sluice/after-the-crash")}}}};
        auto recorded = (*store)->recordEvent(QStringLiteral("quickstart/plane"), QStringLiteral("v1:answered-then-killed"), QStringLiteral("webhook"),
                                              QJsonObject{{QStringLiteral("events"), QJsonArray{event}}});
        QVERIFY(recorded && *recorded);
    }
    QVERIFY(m_daemon.serve(m_config.path()));
    // Left to the process that answered it for 10 s, then handled by the next outbox pass.
    QTRY_VERIFY_WITH_TIMEOUT(taskTitled(QStringLiteral("After the crash")) > 0, 30000);
    QVERIFY(m_daemon.log().contains("not handled before"));
    const qint64 id = taskTitled(QStringLiteral("After the crash"));
    QCOMPARE(task(id).value(QLatin1String("branch")).toString(), QStringLiteral("sluice/after-the-crash"));
    // Once: later passes find nothing left.
    QTest::qWait(1500);
    QCOMPARE(m_daemon.log().count("not handled before"), 1);
    QCOMPARE(request("GET", QStringLiteral("/api/status")).body.count("\"After the crash\""), 1);
}

QTEST_GUILESS_MAIN(tst_TrackerFlow)
#include "tst_trackerflow.moc"
