// SPDX-License-Identifier: Apache-2.0
// The plane connector as the host loads it, against the fake Plane on loopback: states
// resolved per project through all pages, a missing state that stays off, signed webhooks,
// writes, the client-side rate limit under a burst, 429 back-off, and secrets that never
// reach a log line or an error.
#include "connectorfixture.h"
#include "fakeplane.h"

#include <sluice/secrets.h>
#include <sluice/testsupport.h>
#include <sluice/tracker.h>

#include <QJsonDocument>
#include <QJsonObject>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray ApiKey = "plane-api-key-5f0c1e77aa";
const QByteArray HookSecret = "plane-webhook-secret-9d2b";

const QStringList StandardStates{QStringLiteral("Backlog"),     QStringLiteral("Todo"),        QStringLiteral("In Progress"),
                                 QStringLiteral("In Review"),   QStringLiteral("Needs Input"), QStringLiteral("Approved"),
                                 QStringLiteral("Rejected"),    QStringLiteral("Blocked"),     QStringLiteral("Done")};

WebhookRequest toRequest(const FakePlane::Delivery &d)
{
    WebhookRequest r;
    r.body = d.body;
    for (const auto &[name, value] : d.headers)
        r.headers.insert(name.toLower(), value);
    r.remoteAddress = QStringLiteral("127.0.0.1");
    return r;
}

} // namespace

class tst_PlaneTracker : public QObject
{
    Q_OBJECT

private:
    ConnectorFixture m_connector; // the plugin, the secret files, every error seen (for the secret check)
    std::unique_ptr<FakePlane> m_plane;
    QString m_projectA;
    QString m_projectB;

    QString secretFile(const QString &name, const QByteArray &value) { return m_connector.writeSecret(name, value); }

    std::unique_ptr<PluginInstance> makeTracker(const QString &project, const QByteArray &extra = QByteArray(), bool waitForStates = true)
    {
        const QByteArray yaml = "url: " + m_plane->url().toString().toUtf8() + "\nworkspace: acme\nproject: " + project.toUtf8()
            + "\nidentifier: SLU\napi_key: {file: " + secretFile(QStringLiteral("key"), ApiKey).toUtf8() + "}\n"
            + "webhook_secret: {file: " + secretFile(QStringLiteral("hook"), HookSecret).toUtf8() + "}\n"
            + "retry_backoff: 20ms\n" + (extra.contains("rate_limit") ? QByteArray() : QByteArray("rate_limit: 0\n")) + extra;
        auto created = m_connector.instance(yaml);
        auto *tracker = qobject_cast<Tracker *>(created.get());
        if (waitForStates && tracker) {
            // initialize() starts reading the states; refresh() joins that read.
            auto done = runCall(tracker->refresh());
            if (!done)
                qWarning() << done.error().toString();
        }
        return created;
    }

    template<typename T>
    Result<T> run(std::unique_ptr<AsyncCall<T>> call)
    {
        return m_connector.run(std::move(call));
    }

private Q_SLOTS:
    void initTestCase()
    {
        LogCapture::install();
        QVERIFY(m_connector.load(QStringLiteral(PLANE_PLUGIN_FILE), PluginKind::Tracker));
        m_plane = std::make_unique<FakePlane>();
        QVERIFY(m_plane->start());
        m_plane->setApiKey(ApiKey);
        m_plane->setMaxPageSize(3); // several pages of states
        m_projectA = m_plane->addProject(QStringLiteral("SLU"));
        m_projectB = m_plane->addProject(QStringLiteral("ENDURO"));
        for (const QString &name : StandardStates) {
            m_plane->addState(m_projectA, name);
            m_plane->addState(m_projectB, name);
        }
        m_plane->addState(m_projectA, QStringLiteral("Confirm Deploy"));
        // Project B has a near miss only: names are matched exactly.
        m_plane->addState(m_projectB, QStringLiteral("Confirm deploy"));
    }

    void cleanupTestCase()
    {
        LogCapture::uninstall();
    }

    void resolvesStatesPerProjectThroughEveryPage()
    {
        // The same names have other ids in each project.
        QVERIFY(m_plane->stateId(m_projectA, QStringLiteral("In Progress")) != m_plane->stateId(m_projectB, QStringLiteral("In Progress")));
        m_plane->clearRequests();
        auto a = makeTracker(m_projectA);
        auto b = makeTracker(m_projectB);
        QVERIFY(a && b);
        int statePages = 0;
        bool cursorFollowed = false;
        for (const LoopbackRequest &r : m_plane->requests()) {
            if (r.path.endsWith(QLatin1String("/states/"))) {
                ++statePages;
                cursorFollowed = cursorFollowed || r.query.hasQueryItem(QStringLiteral("cursor"));
            }
        }
        QVERIFY2(statePages >= 8, qPrintable(QString::number(statePages))); // 10 states, 3 a page, two projects
        QVERIFY(cursorFollowed);

        const QString issueA = m_plane->addIssue(m_projectA, QStringLiteral("Say hello"), QStringLiteral("Greet"), QStringLiteral("Approved"));
        const QString issueB = m_plane->addIssue(m_projectB, QStringLiteral("Say bye"), QStringLiteral("Part"), QStringLiteral("In Progress"));
        auto ia = run(qobject_cast<Tracker *>(a.get())->issue(issueA));
        QVERIFY(ia);
        QCOMPARE(ia->state, QStringLiteral("Approved"));
        QCOMPARE(ia->signal, QStringLiteral("approve"));
        QCOMPARE(ia->title, QStringLiteral("Say hello"));
        QVERIFY(ia->key.startsWith(QLatin1String("SLU-")));
        auto ib = run(qobject_cast<Tracker *>(b.get())->issue(issueB));
        QVERIFY(ib);
        QCOMPARE(ib->signal, QStringLiteral("start"));

        // Each instance writes its own project's state ids (the fake refuses another project's).
        QVERIFY(run(qobject_cast<Tracker *>(a.get())->setState(issueA, QStringLiteral("in-review"))));
        QCOMPARE(m_plane->issueState(issueA), QStringLiteral("In Review"));
        QVERIFY(run(qobject_cast<Tracker *>(b.get())->setState(issueB, QStringLiteral("blocked"))));
        QCOMPARE(m_plane->issueState(issueB), QStringLiteral("Blocked"));
    }

    void missingStateStaysOff()
    {
        auto b = makeTracker(m_projectB);
        QVERIFY(b);
        // Reported at load, naming the signal and the state.
        bool reported = false;
        for (const QString &line : LogCapture::lines())
            reported = reported || (line.contains(m_projectB) && line.contains(QLatin1String("signal 'confirm-deploy': no state 'Confirm Deploy'")));
        QVERIFY(reported);
        auto *tracker = qobject_cast<Tracker *>(b.get());
        QStringList states;
        QVERIFY(QMetaObject::invokeMethod(tracker, "statesForSignal", Qt::DirectConnection, Q_RETURN_ARG(QStringList, states),
                                          Q_ARG(QString, QStringLiteral("confirm-deploy"))));
        QVERIFY(states.isEmpty());
        QVERIFY(QMetaObject::invokeMethod(tracker, "statesForSignal", Qt::DirectConnection, Q_RETURN_ARG(QStringList, states),
                                          Q_ARG(QString, QStringLiteral("approve"))));
        QCOMPARE(states, QStringList{QStringLiteral("Approved")});

        // The near-miss state sends nothing, in a webhook or when read.
        const QString issue = m_plane->addIssue(m_projectB, QStringLiteral("Deploy it"), QString(), QStringLiteral("Confirm deploy"));
        auto read = run(tracker->issue(issue));
        QVERIFY(read);
        QCOMPARE(read->state, QStringLiteral("Confirm deploy"));
        QVERIFY(read->signal.isEmpty());
        auto *receiver = dynamic_cast<WebhookReceiver *>(b.get());
        auto delivery = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret)));
        QVERIFY(delivery);
        QVERIFY(delivery->events.isEmpty());

        // A logical state whose Plane state is missing fails closed, without a write.
        auto noReview = makeTracker(m_projectB, "states: {in-review: Under Review, done: Done}\n");
        QVERIFY(noReview);
        m_plane->clearRequests();
        auto set = run(qobject_cast<Tracker *>(noReview.get())->setState(issue, QStringLiteral("in-review")));
        QVERIFY(!set);
        QCOMPARE(set.error().code, ErrorCode::NotFound);
        for (const LoopbackRequest &r : m_plane->requests())
            QVERIFY2(r.method != "PATCH", qPrintable(r.path));
        QCOMPARE(m_plane->issueState(issue), QStringLiteral("Confirm deploy"));
    }

    void webhookSignature()
    {
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        auto *receiver = dynamic_cast<WebhookReceiver *>(a.get());
        QVERIFY(receiver);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Add a <greeting> & more"), QStringLiteral("desc"),
                                                QStringLiteral("In Progress"));

        // Valid: one signal event for the work item, with what a new task needs.
        auto ok = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret, QStringLiteral("d-1"))));
        QVERIFY2(ok, ok ? "" : qPrintable(ok.error().message));
        // Plane makes a new X-Plane-Delivery for every attempt of the same event
        // (webhook_task.py): the id that de-duplicates is the payload's own.
        QVERIFY(ok->deliveryId.startsWith(QLatin1String("v1:")));
        auto again = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret, QStringLiteral("d-2"))));
        QVERIFY(again);
        QCOMPARE(again->deliveryId, ok->deliveryId);
        QCOMPARE(ok->events.size(), 1);
        QCOMPARE(ok->events[0].kind, QStringLiteral("signal"));
        QCOMPARE(ok->events[0].subject, issue);
        QCOMPARE(ok->events[0].value, QStringLiteral("start"));
        QCOMPARE(ok->events[0].data.value(QLatin1String("title")).toString(), QStringLiteral("Add a <greeting> & more"));
        QVERIFY(ok->events[0].data.value(QLatin1String("branch")).toString().startsWith(QLatin1String("sluice/slu-")));

        // Signed with another secret, or with the body changed after signing.
        auto wrong = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, "another-secret")));
        QVERIFY(!wrong);
        QCOMPARE(wrong.error().code, ErrorCode::PermissionDenied);
        WebhookRequest tampered = toRequest(m_plane->issueUpdated(issue, HookSecret));
        tampered.body.replace("In Progress", "Approved");
        auto changed = receiver->acceptWebhook(tampered);
        QVERIFY(!changed);
        QCOMPARE(changed.error().code, ErrorCode::PermissionDenied);
        // Missing.
        auto unsigned_ = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, QByteArray())));
        QVERIFY(!unsigned_);
        QCOMPARE(unsigned_.error().code, ErrorCode::PermissionDenied);
        // Without a delivery id it cannot be de-duplicated.
        WebhookRequest noId = toRequest(m_plane->issueUpdated(issue, HookSecret));
        noId.headers.remove("x-plane-delivery");
        QVERIFY(!receiver->acceptWebhook(noId));

        // Another Plane project's work item: accepted, nothing to do.
        const QString other = m_plane->addIssue(m_projectB, QStringLiteral("Elsewhere"), QString(), QStringLiteral("Approved"));
        auto foreign = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(other, HookSecret)));
        QVERIFY(foreign);
        QVERIFY(foreign->events.isEmpty());

        // No secret configured: every delivery is refused.
        const QByteArray yaml = "url: " + m_plane->url().toString().toUtf8() + "\nworkspace: acme\nproject: " + m_projectA.toUtf8()
            + "\napi_key: {file: " + secretFile(QStringLiteral("key"), ApiKey).toUtf8() + "}\n";
        auto bare = createInstance(m_connector.plugin(), yaml);
        QVERIFY(bare);
        QVERIFY((*bare)->initialize());
        auto refused = dynamic_cast<WebhookReceiver *>(bare->get())->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret)));
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::PermissionDenied);
    }

    void unknownStateIsReadAgain()
    {
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        auto *receiver = dynamic_cast<WebhookReceiver *>(a.get());
        // A state created after the instance read the states, and named for a signal.
        m_plane->addState(m_projectA, QStringLiteral("Ship It"));
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("New state"), QString(), QStringLiteral("Ship It"));
        const auto delivery = m_plane->issueUpdated(issue, HookSecret, QStringLiteral("d-new-state"));
        // Not known yet: accepted all the same (Plane does not deliver again after an answer,
        // whatever its status), with the work item for the host to read again (issue 24.9).
        auto first = receiver->acceptWebhook(toRequest(delivery));
        QVERIFY2(first, first ? "" : qPrintable(first.error().message));
        QCOMPARE(first->events.size(), 1);
        QCOMPARE(first->events[0].kind, QStringLiteral("tracker-issue"));
        QCOMPARE(first->events[0].subject, issue);
        QVERIFY(runCall(qobject_cast<Tracker *>(a.get())->refresh())); // joins the refresh the miss started
        auto again = receiver->acceptWebhook(toRequest(delivery));
        QVERIFY(again);
        QVERIFY(again->events.isEmpty()); // known now, and it sends no signal

        // issue() refreshes on a miss by itself.
        auto b = makeTracker(m_projectA, "signals: {ship: [Ship It]}\n");
        QVERIFY(b);
        m_plane->addState(m_projectA, QStringLiteral("Later"));
        const QString later = m_plane->addIssue(m_projectA, QStringLiteral("Later"), QString(), QStringLiteral("Later"));
        auto read = run(qobject_cast<Tracker *>(b.get())->issue(later));
        QVERIFY(read);
        QCOMPARE(read->state, QStringLiteral("Later"));
        auto ship = run(qobject_cast<Tracker *>(b.get())->issue(issue));
        QVERIFY(ship);
        QCOMPARE(ship->signal, QStringLiteral("ship"));
    }

    void commentsAreEscapedText()
    {
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Escape"), QString(), QStringLiteral("Todo"));
        QVERIFY(run(qobject_cast<Tracker *>(a.get())->comment(issue, QStringLiteral("gate <b>security</b> failed\n- a & b\n\nnext"))));
        const auto comments = m_plane->comments(issue);
        QCOMPARE(comments.size(), 1);
        QCOMPARE(comments[0].html, QStringLiteral("<p>gate &lt;b&gt;security&lt;/b&gt; failed<br/>- a &amp; b</p><p>next</p>"));
        // An unknown issue is an error, not a silent success.
        auto missing = run(qobject_cast<Tracker *>(a.get())->comment(QStringLiteral("no-such-issue"), QStringLiteral("x")));
        QVERIFY(!missing);
        QCOMPARE(missing.error().code, ErrorCode::NotFound);
    }

    void burstStaysUnderTheRateLimit()
    {
        // 5 requests a second at most; a burst of 16 comments: all arrive, never more than 5 in any window.
        auto a = makeTracker(m_projectA, "rate_limit: 5\nrate_window: 1s\n");
        QVERIFY(a);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Burst"), QString(), QStringLiteral("Todo"));
        // The state reads took slots of the window too; only the burst is measured.
        m_plane->clearRequests();
        auto *tracker = qobject_cast<Tracker *>(a.get());
        std::vector<std::unique_ptr<AsyncCall<Done>>> calls;
        int finished = 0;
        for (int i = 0; i < 16; ++i) {
            calls.push_back(tracker->comment(issue, QStringLiteral("burst %1").arg(i)));
            connect(calls.back().get(), &PluginJob::finished, this, [&finished] { ++finished; });
            calls.back()->start();
        }
        QTRY_COMPARE_WITH_TIMEOUT(finished, 16, 20000);
        for (const auto &c : calls)
            QVERIFY2(c->result(), qPrintable(c->result() ? QString() : c->result().error().message));
        QCOMPARE(m_plane->comments(issue).size(), 16);
        QList<qint64> times;
        for (const LoopbackRequest &r : m_plane->requests())
            times.append(r.receivedMs);
        QCOMPARE(times.size(), 16);
        std::sort(times.begin(), times.end());
        // The sixth request after any one comes a window later (minus scheduling slack on
        // the receiving side); without the limiter all 16 arrive within milliseconds.
        for (int i = 0; i + 5 < times.size(); ++i)
            QVERIFY2(times[i + 5] - times[i] >= 800, qPrintable(QStringLiteral("requests %1 and %2 arrived %3 ms apart").arg(i).arg(i + 5).arg(times[i + 5] - times[i])));
    }

    void serverRateLimitIsWaitedOut()
    {
        // No client-side limit; the server allows 4 a second and answers 429 beyond: the
        // client backs off and nothing is lost.
        auto a = makeTracker(m_projectA, "max_retries: 8\n");
        QVERIFY(a);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Throttled"), QString(), QStringLiteral("Todo"));
        m_plane->setRateLimit(4, std::chrono::milliseconds(1000));
        auto *tracker = qobject_cast<Tracker *>(a.get());
        std::vector<std::unique_ptr<AsyncCall<Done>>> calls;
        int finished = 0;
        for (int i = 0; i < 10; ++i) {
            calls.push_back(tracker->comment(issue, QStringLiteral("throttled %1").arg(i)));
            connect(calls.back().get(), &PluginJob::finished, this, [&finished] { ++finished; });
            calls.back()->start();
        }
        QTRY_COMPARE_WITH_TIMEOUT(finished, 10, 30000);
        m_plane->setRateLimit(0, std::chrono::milliseconds(1000));
        for (const auto &c : calls)
            QVERIFY2(c->result(), qPrintable(c->result() ? QString() : c->result().error().message));
        QCOMPARE(m_plane->comments(issue).size(), 10);
        QVERIFY(m_plane->rateLimited() > 0);
    }

    void outageIsAnError()
    {
        auto a = makeTracker(m_projectA, "max_retries: 1\n");
        QVERIFY(a);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Down"), QString(), QStringLiteral("Todo"));
        m_plane->failNext(QStringLiteral("/work-items/"), 503, 2);
        auto read = run(qobject_cast<Tracker *>(a.get())->issue(issue));
        QVERIFY(!read);
        QCOMPARE(read.error().code, ErrorCode::Network);
        // A wrong key is refused by Plane, and said so.
        m_plane->setApiKey("some-other-key");
        auto denied = run(qobject_cast<Tracker *>(a.get())->issue(issue));
        m_plane->setApiKey(ApiKey);
        QVERIFY(!denied);
        QCOMPARE(denied.error().code, ErrorCode::PermissionDenied);
    }

    // Plane sends one "updated" delivery per changed field, with the whole work item (v1:
    // activity.field; v2: previous_attributes). Only a change of the state moves a task: a
    // title edited on a work item that shows "Rejected" rejected it once more (issue 24.10).
    void onlyAStateChangeIsAMove_data()
    {
        QTest::addColumn<bool>("v2");
        QTest::newRow("v1") << false;
        QTest::newRow("v2") << true;
    }

    void onlyAStateChangeIsAMove()
    {
        QFETCH(bool, v2);
        const auto version = v2 ? FakePlane::Webhooks::V2 : FakePlane::Webhooks::V1;
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        auto *receiver = dynamic_cast<WebhookReceiver *>(a.get());
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Say it"), QString(), QStringLiteral("Needs Input"));

        // A person rejects it: a move, the reject signal.
        QVERIFY(m_plane->moveIssue(issue, QStringLiteral("Rejected")));
        auto rejected = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret, QString(), version)));
        QVERIFY2(rejected, rejected ? "" : qPrintable(rejected.error().message));
        QCOMPARE(rejected->events.size(), 1);
        QCOMPARE(rejected->events[0].kind, QStringLiteral("signal"));
        QCOMPARE(rejected->events[0].value, QStringLiteral("reject"));

        // Then edits the title: the delivery shows the state "Rejected", and is no move.
        QVERIFY(m_plane->renameIssue(issue, QStringLiteral("Say it louder")));
        auto renamed = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret, QString(), version)));
        QVERIFY(renamed);
        QVERIFY(renamed->events.isEmpty());
        QVERIFY(rejected->deliveryId.startsWith(v2 ? QLatin1String("v2:") : QLatin1String("v1:")));
        QVERIFY(renamed->deliveryId != rejected->deliveryId); // another event, recorded on its own

        // A state set through the API (field "state"), and the same delivery delivered again.
        QVERIFY(run(qobject_cast<Tracker *>(a.get())->setState(issue, QStringLiteral("in-review"))));
        const auto viaApi = m_plane->issueUpdated(issue, HookSecret, QString(), version);
        auto review = receiver->acceptWebhook(toRequest(viaApi));
        QVERIFY(review);
        QVERIFY(review->events.isEmpty()); // In Review sends no signal
        QVERIFY(m_plane->moveIssue(issue, QStringLiteral("Approved")));
        const auto approved = m_plane->issueUpdated(issue, HookSecret, QString(), version);
        auto first = receiver->acceptWebhook(toRequest(approved));
        auto redelivered = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(issue, HookSecret, QString(), version)));
        QVERIFY(first && redelivered);
        QCOMPARE(first->events.size(), 1);
        QCOMPARE(first->events[0].value, QStringLiteral("approve"));
        QCOMPARE(redelivered->deliveryId, first->deliveryId); // a redelivery is recognised
    }

    // Webhooks v1 are one delivery per field with activity {field, old_value, new_value}: a v1
    // delivery whose activity says the state field changed to the same value is no move either.
    void v1StateFieldWithoutAChangeIsNoMove()
    {
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        auto *receiver = dynamic_cast<WebhookReceiver *>(a.get());
        const QString approved = m_plane->stateId(m_projectA, QStringLiteral("Approved"));
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Same"), QString(), QStringLiteral("Approved"));
        QJsonObject payload = QJsonDocument::fromJson(m_plane->issueCreated(issue, HookSecret).body).object();
        payload.insert(QStringLiteral("action"), QStringLiteral("updated"));
        payload.insert(QStringLiteral("activity"), QJsonObject{{QStringLiteral("field"), QStringLiteral("state_id")},
                                                               {QStringLiteral("old_value"), approved},
                                                               {QStringLiteral("new_value"), approved}});
        WebhookRequest r;
        r.body = QJsonDocument(payload).toJson(QJsonDocument::Compact);
        r.headers.insert("x-plane-delivery", "d-same");
        r.headers.insert("x-plane-signature", planeSignature(HookSecret, r.body));
        auto same = receiver->acceptWebhook(r);
        QVERIFY(same);
        QVERIFY(same->events.isEmpty());
    }

    // Webhooks v2: "workitem.updated" with previous_attributes, de-duplicated by event_id;
    // a new work item in the start state is read (its v2 payload has no description).
    void webhooksV2()
    {
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        auto *receiver = dynamic_cast<WebhookReceiver *>(a.get());
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Two"), QStringLiteral("Twice"), QStringLiteral("Todo"));
        QVERIFY(m_plane->moveIssue(issue, QStringLiteral("In Progress")));
        const auto first = m_plane->issueUpdated(issue, HookSecret, QStringLiteral("attempt-1"), FakePlane::Webhooks::V2);
        const auto second = m_plane->issueUpdated(issue, HookSecret, QStringLiteral("attempt-2"), FakePlane::Webhooks::V2);
        QVERIFY(first.body != second.body); // delivery_id differs per attempt
        auto one = receiver->acceptWebhook(toRequest(first));
        auto two = receiver->acceptWebhook(toRequest(second));
        QVERIFY(one && two);
        QCOMPARE(one->deliveryId, two->deliveryId); // the same event_id
        QCOMPARE(one->events.size(), 1);
        QCOMPARE(one->events[0].kind, QStringLiteral("tracker-issue"));
        QCOMPARE(one->events[0].subject, issue);
        // Another Plane project's work item, in v2: nothing.
        const QString other = m_plane->addIssue(m_projectB, QStringLiteral("Elsewhere"), QString(), QStringLiteral("Todo"));
        QVERIFY(m_plane->moveIssue(other, QStringLiteral("Approved")));
        auto foreign = receiver->acceptWebhook(toRequest(m_plane->issueUpdated(other, HookSecret, QString(), FakePlane::Webhooks::V2)));
        QVERIFY(foreign);
        QVERIFY(foreign->events.isEmpty());
    }

    // Hostile or broken deliveries with a good signature: an error (400), never a signal.
    void malformedDeliveriesAreRefused_data()
    {
        QTest::addColumn<QByteArray>("body");
        QTest::newRow("not JSON") << QByteArray("{\"event\": \"issue\", ");
        QTest::newRow("a list") << QByteArray("[1, 2]");
        QTest::newRow("v2 without event_id") << QByteArray(R"({"version":"v2","event":"workitem.updated","data":{"id":"x","state_id":"y"}})");
    }

    void malformedDeliveriesAreRefused()
    {
        QFETCH(QByteArray, body);
        auto a = makeTracker(m_projectA);
        QVERIFY(a);
        WebhookRequest r;
        r.body = body;
        r.headers.insert("x-plane-delivery", "d-bad");
        r.headers.insert("x-plane-signature", planeSignature(HookSecret, body));
        auto refused = dynamic_cast<WebhookReceiver *>(a.get())->acceptWebhook(r);
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::Malformed);
    }

    // Plane's current API names work items …/work-items/…; the …/issues/… paths are deprecated
    // and all that older releases serve: detected once, or set (issue 24.12).
    void workItemPathsOrTheDeprecatedOnes_data()
    {
        QTest::addColumn<bool>("served");
        QTest::addColumn<QByteArray>("setting");
        QTest::addColumn<bool>("deprecated");
        QTest::newRow("current Plane, detected") << true << QByteArray() << false;
        QTest::newRow("older Plane, detected") << false << QByteArray() << true;
        QTest::newRow("set to issues") << true << QByteArray("api_paths: issues\n") << true;
        QTest::newRow("set to work-items") << true << QByteArray("api_paths: work-items\n") << false;
    }

    void workItemPathsOrTheDeprecatedOnes()
    {
        QFETCH(bool, served);
        QFETCH(QByteArray, setting);
        QFETCH(bool, deprecated);
        m_plane->setWorkItemPaths(served);
        const int before = m_plane->deprecatedPathRequests();
        auto a = makeTracker(m_projectA, setting);
        QVERIFY(a);
        auto *tracker = qobject_cast<Tracker *>(a.get());
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Paths"), QString(), QStringLiteral("Todo"));
        QVERIFY(run(tracker->issue(issue)));
        QVERIFY(run(tracker->comment(issue, QStringLiteral("a comment"))));
        QVERIFY(run(tracker->setState(issue, QStringLiteral("in-review"))));
        m_plane->setWorkItemPaths(true);
        QCOMPARE(m_plane->issueState(issue), QStringLiteral("In Review"));
        QCOMPARE(m_plane->comments(issue).size(), 1);
        QCOMPARE(m_plane->deprecatedPathRequests() > before, deprecated);
    }

    // Idempotent writes go through a 500: the state set again, a comment posted once by its key;
    // a comment without a key is not sent twice (issue 24.11).
    void writesRetryThroughServerErrors()
    {
        auto a = makeTracker(m_projectA, "max_retries: 3\n");
        QVERIFY(a);
        auto *tracker = qobject_cast<Tracker *>(a.get());
        auto *once = qobject_cast<IdempotentComments *>(a.get());
        QVERIFY(once);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Flaky"), QString(), QStringLiteral("Todo"));
        QVERIFY(run(tracker->issue(issue))); // paths known
        m_plane->failNext(QStringLiteral("/work-items/"), 500, 2, "PATCH");
        QVERIFY(run(tracker->setState(issue, QStringLiteral("done"))));
        QCOMPARE(m_plane->issueState(issue), QStringLiteral("Done"));

        m_plane->failNext(QStringLiteral("/comments/"), 500, 2);
        QVERIFY(run(once->commentOnce(issue, QStringLiteral("kept and sent"), QStringLiteral("key-1"))));
        QCOMPARE(m_plane->comments(issue).size(), 1);
        // The same key again (a retry whose first answer was lost): Plane answers 409, done, one comment.
        QVERIFY(run(once->commentOnce(issue, QStringLiteral("kept and sent"), QStringLiteral("key-1"))));
        QCOMPARE(m_plane->comments(issue).size(), 1);
        QVERIFY(run(once->commentOnce(issue, QStringLiteral("kept and sent"), QStringLiteral("key-2"))));
        QCOMPARE(m_plane->comments(issue).size(), 2);

        // Without a key a 500 is an error, not a second comment.
        m_plane->failNext(QStringLiteral("/comments/"), 500, 1);
        auto plain = run(tracker->comment(issue, QStringLiteral("no key")));
        QVERIFY(!plain);
        QCOMPARE(plain.error().code, ErrorCode::Network);
        QCOMPARE(m_plane->comments(issue).size(), 2);
    }

    // The states are read again until they are read: an instance whose first read failed maps
    // its states once Plane answers (issue 24.9), and a read of a work item whose state cannot
    // be resolved is an error, never "no signal".
    void statesAreReadAgainUntilRead()
    {
        m_plane->failNext(QStringLiteral("/states/"), 503, 6);
        auto a = makeTracker(m_projectA, "max_retries: 1\n", false);
        QVERIFY(a);
        auto *tracker = qobject_cast<Tracker *>(a.get());
        const auto approveStates = [tracker] {
            QStringList states;
            QMetaObject::invokeMethod(tracker, "statesForSignal", Qt::DirectConnection, Q_RETURN_ARG(QStringList, states),
                                      Q_ARG(QString, QStringLiteral("approve")));
            return states;
        };
        QTRY_COMPARE_WITH_TIMEOUT(approveStates(), QStringList{QStringLiteral("Approved")}, 10000);

        auto b = makeTracker(m_projectA, "max_retries: 0\n", false);
        QVERIFY(b);
        m_plane->failNext(QStringLiteral("/states/"), 503, 1000);
        const QString issue = m_plane->addIssue(m_projectA, QStringLiteral("Unread"), QString(), QStringLiteral("Approved"));
        auto read = run(qobject_cast<Tracker *>(b.get())->issue(issue));
        m_plane->clearFaults();
        QVERIFY(!read);
        QCOMPARE(read.error().code, ErrorCode::Network);
    }

    void secretsNeverLogged()
    {
        const QStringList log = LogCapture::lines();
        QVERIFY(!log.isEmpty());
        for (const QString &line : log) {
            QVERIFY2(!line.contains(QString::fromLatin1(ApiKey)), qPrintable(line));
            QVERIFY2(!line.contains(QString::fromLatin1(HookSecret)), qPrintable(line));
        }
        QVERIFY(!m_connector.errors().isEmpty());
        for (const QString &e : m_connector.errors()) {
            QVERIFY2(!e.contains(QString::fromLatin1(ApiKey)), qPrintable(e));
            QVERIFY2(!e.contains(QString::fromLatin1(HookSecret)), qPrintable(e));
        }
    }
};

QTEST_GUILESS_MAIN(tst_PlaneTracker)
#include "tst_planetracker.moc"
