// SPDX-License-Identifier: Apache-2.0
// The gitea connector as the host loads it, against the fake forge on loopback: strict
// pagination, retries, malformed answers, writes, and a token that never reaches a log line
// or an error.
#include "fakeforge.h"
#include "forgecases.h"

#include <sluice/forge.h>
#include <sluice/forgeevents.h>
#include <sluice/webhook.h>
#include <sluice/secrets.h>
#include <sluice/testsupport.h>

#include <QElapsedTimer>

#include <algorithm>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "gitea-secret-token-0123456789";

QString sha(int i)
{
    return fakeSha(i);
}

const ForgeDialect Dialect{"POST", QStringLiteral("head moved")};

} // namespace

class tst_GiteaForge : public QObject
{
    Q_OBJECT

private:
    ConnectorFixture m_connector; // the plugin, the token files, every error seen (for the token check)
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<PluginInstance> m_instance;

    Forge &forge() { return *qobject_cast<Forge *>(m_instance.get()); }

    QString writeToken(const QString &name, const QByteArray &token) { return m_connector.writeSecret(name, token); }

    std::unique_ptr<PluginInstance> makeForge(const QByteArray &extra = QByteArray())
    {
        return m_connector.instance("url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\n"
                                    + "token: {file: " + writeToken(QStringLiteral("token"), Token).toUtf8() + "}\n"
                                    + "retry_backoff: 10ms\n" + extra);
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
        QVERIFY(m_connector.load(QStringLiteral(GITEA_PLUGIN_FILE), PluginKind::Forge));
    }

    void init()
    {
        m_fake = std::make_unique<FakeForge>();
        QVERIFY(m_fake->start());
        m_fake->setToken(Token);
        m_instance = makeForge();
        QVERIFY(m_instance);
    }

    void cleanup()
    {
        m_instance.reset();
        m_fake.reset();
    }

    void openPullRequestsFollowsEveryPage()
    {
        for (int i = 1; i <= 123; ++i)
            m_fake->addPullRequest({i, QStringLiteral("PR %1").arg(i), QStringLiteral("b%1").arg(i), sha(i)});
        m_fake->addPullRequest({500, QStringLiteral("closed"), QStringLiteral("x"), sha(500), QStringLiteral("main"), QStringLiteral("closed")});
        auto prs = run(forge().openPullRequests());
        QVERIFY2(prs, qPrintable(prs ? QString() : prs.error().toString()));
        QCOMPARE(prs->size(), 123);
        QSet<qint64> numbers;
        for (const PullRequest &pr : *prs) {
            numbers.insert(pr.number);
            QCOMPARE(pr.headSha, sha(int(pr.number)));
        }
        QCOMPARE(numbers.size(), 123);
        // Three pages of 50, every request authenticated with the instance's token.
        const auto log = m_fake->requests();
        QCOMPARE(log.size(), 3);
        for (const FakeRequest &r : log)
            QCOMPARE(r.authorization, QByteArray("token " + Token));
    }

    void serverPageCapBelowTheAskedSize()
    {
        m_fake->setMaxPageSize(7);
        for (int i = 1; i <= 30; ++i)
            m_fake->addPullRequest({i, QString(), QStringLiteral("b"), sha(i)});
        auto prs = run(forge().openPullRequests());
        QVERIFY(prs);
        QCOMPARE(prs->size(), 30);
        QCOMPARE(m_fake->requestCount(), 5);
    }

    void statusesDecidingStatusOnTheLastPage()
    {
        const QDateTime t0 = QDateTime::currentDateTimeUtc().addSecs(-3600);
        m_fake->addStatus(sha(1), QStringLiteral("CI / build (pull_request)"), QStringLiteral("failure"), t0);
        for (int i = 0; i < 120; ++i)
            m_fake->addStatus(sha(1), QStringLiteral("ctx %1").arg(i), QStringLiteral("success"), t0.addSecs(i + 1));
        // Newest first from the server: the oldest (the failure) is on the last page.
        auto all = run(forge().statuses(sha(1)));
        QVERIFY(all);
        QCOMPARE(all->size(), 121);
        QCOMPARE(all->last().context, QStringLiteral("CI / build (pull_request)"));
        QCOMPARE(all->last().state, StatusState::Failure);
        QCOMPARE(all->first().context, QStringLiteral("ctx 119"));
        QCOMPARE(m_fake->requestCount(), 3);
    }

    // Gitea answers a commit without statuses with its empty CombinedStatus ("statuses": null,
    // state "", no X-Total-Count): pending, not malformed (24.8). The fake answers it so.
    void noStatusesIsPending()
    {
        auto combined = run(forge().combinedStatus(sha(9)));
        QVERIFY(combined);
        QCOMPARE(combined->state, StatusState::Pending);
        QVERIFY(combined->statuses.isEmpty());
        auto all = run(forge().statuses(sha(9)));
        QVERIFY(all);
        QVERIFY(all->isEmpty());
    }

    void combinedStatusAllPages()
    {
        for (int i = 0; i < 60; ++i)
            m_fake->addStatus(sha(2), QStringLiteral("ctx %1").arg(i), QStringLiteral("success"));
        m_fake->addStatus(sha(2), QStringLiteral("ctx 3"), QStringLiteral("failure"));
        auto combined = run(forge().combinedStatus(sha(2)));
        QVERIFY(combined);
        QCOMPARE(combined->statuses.size(), 60);
        QCOMPARE(combined->state, StatusState::Failure);
    }

    // Gitea answers 405 "Please try again later" while a pull request's mergeability is not
    // known yet: a refusal that passes (Network, the merge gate waits), not a conflict (24.7).
    void mergeNotMergeableYetIsTransient()
    {
        FakePullRequest pr{11, QString(), QStringLiteral("late"), sha(11)};
        pr.mergeabilityPending = 2;
        m_fake->addPullRequest(pr);
        MergeRequest request;
        request.expectedHeadSha = sha(11);
        for (int i = 0; i < 2; ++i) {
            auto refused = run(forge().merge(11, request));
            QVERIFY(!refused);
            QCOMPARE(refused.error().code, ErrorCode::Network);
            QVERIFY2(refused.error().message.contains(QLatin1String("Please try again later")), qPrintable(refused.error().message));
        }
        QCOMPARE(m_fake->mergesApplied(), 0);
        auto merged = run(forge().merge(11, request));
        QVERIFY2(merged, qPrintable(merged ? QString() : merged.error().toString()));
        QVERIFY(!merged->alreadyMerged);
        QCOMPARE(m_fake->mergesApplied(), 1);
        // Not retried inside the call: a merge is a write, and the refusal says "later".
        QCOMPARE(std::count_if(m_fake->requests().cbegin(), m_fake->requests().cend(),
                               [](const FakeRequest &r) { return r.method == "POST" && r.path.endsWith(QLatin1String("/merge")); }),
                 3);
    }

    // A write whose connection drops before any answer is sent once: Qt would send it again on a
    // new connection by itself, and a status would be posted twice (the fault campaign's seed
    // 0x89d53bd2e5cc2ac2: two compensations). The caller gets an error that says so; a read is
    // still retried.
    void writeLostOnTheWayIsNotSentAgain()
    {
        FakeFault lost;
        lost.kind = FakeFault::Kind::ApplyThenReset;
        lost.method = "POST";
        lost.pathPattern = QStringLiteral("/statuses/");
        lost.times = 3;
        m_fake->addFault(lost);
        auto posted = run(forge().postStatus(sha(12), StatusUpdate{QStringLiteral("ci/umbrella"), StatusState::Success, QStringLiteral("x"), {}}));
        QVERIFY(!posted);
        QCOMPARE(posted.error().code, ErrorCode::Network);
        QVERIFY2(posted.error().message.contains(QLatin1String("may or may not have taken effect")), qPrintable(posted.error().message));
        QCOMPARE(m_fake->statuses(sha(12)).size(), 1);
        QCOMPARE(std::count_if(m_fake->requests().cbegin(), m_fake->requests().cend(), [](const FakeRequest &r) { return r.method == "POST"; }), 1);

        FakeFault reset;
        reset.kind = FakeFault::Kind::Reset;
        reset.pathPattern = QStringLiteral("/statuses$");
        m_fake->addFault(reset);
        auto read = run(forge().statuses(sha(12)));
        QVERIFY2(read, qPrintable(read ? QString() : read.error().toString()));
        QCOMPARE(read->size(), 1);
    }

    // A merge answered with success while the pull request stays unmerged (a proxy's page, a
    // garbled body) is no refusal: Network, so the merge gate waits and looks again instead of
    // rolling the change back (the fault campaign's seed 0xc93a110aeb17a243).
    void mergeAnsweredButNotMergedIsTransient()
    {
        m_fake->addPullRequest({13, QString(), QStringLiteral("garbled"), sha(13)});
        FakeFault garbled;
        garbled.kind = FakeFault::Kind::Malformed;
        garbled.method = "POST";
        garbled.pathPattern = QStringLiteral("/merge$");
        m_fake->addFault(garbled);
        MergeRequest request;
        request.expectedHeadSha = sha(13);
        auto refused = run(forge().merge(13, request));
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::Network);
        QCOMPARE(m_fake->mergesApplied(), 0);
    }

    // The pull request's head moves just before the merge (forgecases.h).
    void mergeRefusedForAMovedHeadOnlyWhenReadWhole_data() { Test::mergeRefusedForAMovedHeadOnlyWhenReadWhole_data(); }
    void mergeRefusedForAMovedHeadOnlyWhenReadWhole()
    {
        Test::mergeRefusedForAMovedHeadOnlyWhenReadWhole(*m_fake, forge(), m_connector, Dialect);
    }

    // A 403 names the scope the token lacks (24.6).
    void forbiddenNamesTheScope()
    {
        FakeFault refused;
        refused.pathPattern = QStringLiteral("/pulls$");
        refused.status = 403;
        refused.message = QStringLiteral("token does not have at least one of required scope(s): [read:repository]");
        m_fake->addFault(refused);
        auto prs = run(forge().openPullRequests());
        QVERIFY(!prs);
        QCOMPARE(prs.error().code, ErrorCode::PermissionDenied);
        QVERIFY2(prs.error().message.contains(QLatin1String("scope read:repository")), qPrintable(prs.error().message));
    }

    void malformedAnswersAreErrors_data()
    {
        QTest::addColumn<int>("kind");
        QTest::addColumn<QString>("call");
        QTest::addColumn<int>("page");
        QTest::addColumn<QString>("expected");
        using K = FakeFault::Kind;
        QTest::newRow("statuses: not JSON") << int(K::Malformed) << "statuses" << 1 << "not JSON";
        QTest::newRow("statuses: page 2 not a list") << int(K::NotAList) << "statuses" << 2 << "not a JSON list";
        QTest::newRow("statuses: short page 2") << int(K::ShortPage) << "statuses" << 2 << "expected 50";
        QTest::newRow("statuses: short last page") << int(K::ShortPage) << "statuses" << 3 << "expected 20";
        QTest::newRow("combined: no statuses list") << int(K::MissingStatuses) << "combined" << 1 << "no 'statuses' list";
        QTest::newRow("combined: not JSON") << int(K::Malformed) << "combined" << 1 << "not JSON";
        QTest::newRow("pulls: not a list") << int(K::NotAList) << "pulls" << 1 << "not a JSON list";
        QTest::newRow("pulls: short first page") << int(K::ShortPage) << "pulls" << 1 << "expected";
        QTest::newRow("pulls: truncated body") << int(K::Truncated) << "pulls" << 2 << "pulls";
    }

    void malformedAnswersAreErrors()
    {
        QFETCH(int, kind);
        QFETCH(QString, call);
        QFETCH(int, page);
        QFETCH(QString, expected);
        for (int i = 0; i < 120; ++i)
            m_fake->addStatus(sha(3), QStringLiteral("ctx %1").arg(i), QStringLiteral("success"));
        for (int i = 1; i <= 120; ++i)
            m_fake->addPullRequest({i, QString(), QStringLiteral("b"), sha(i)});
        FakeFault f;
        f.kind = FakeFault::Kind(kind);
        f.pathPattern = call == QLatin1String("statuses") ? QStringLiteral("/statuses$")
                        : call == QLatin1String("combined") ? QStringLiteral("/status$")
                                                            : QStringLiteral("/pulls$");
        f.page = page;
        f.times = 100; // outlasts every retry
        m_fake->addFault(f);
        Error error;
        if (call == QLatin1String("statuses")) {
            auto r = run(forge().statuses(sha(3)));
            QVERIFY(!r);
            error = r.error();
        } else if (call == QLatin1String("combined")) {
            auto r = run(forge().combinedStatus(sha(3)));
            QVERIFY(!r);
            error = r.error();
        } else {
            auto r = run(forge().openPullRequests());
            QVERIFY(!r);
            error = r.error();
        }
        QVERIFY2(error.message.contains(expected), qPrintable(error.toString()));
    }

    void retriesOn503And429()
    {
        m_fake->addPullRequest({1, QString(), QStringLiteral("b"), sha(1)});
        FakeFault unavailable;
        unavailable.pathPattern = QStringLiteral("/pulls$");
        unavailable.status = 503;
        unavailable.times = 2;
        m_fake->addFault(unavailable);
        auto prs = run(forge().openPullRequests());
        QVERIFY(prs);
        QCOMPARE(prs->size(), 1);
        QCOMPARE(m_fake->requestCount(), 3);

        m_fake->clearRequests();
        FakeFault limited;
        limited.pathPattern = QStringLiteral("/pulls$");
        limited.status = 429;
        limited.retryAfter = "1";
        m_fake->addFault(limited);
        QElapsedTimer timer;
        timer.start();
        prs = run(forge().openPullRequests());
        QVERIFY(prs);
        QVERIFY2(timer.elapsed() >= 900, "Retry-After: 1 was not honoured");
        QCOMPARE(m_fake->requestCount(), 2);
    }

    void noRetryOnOther4xxAndLimitedRetries()
    {
        FakeFault notFound;
        notFound.pathPattern = QStringLiteral("/pulls/7$");
        notFound.status = 404;
        m_fake->addFault(notFound);
        auto pr = run(forge().pullRequest(7));
        QVERIFY(!pr);
        QCOMPARE(pr.error().code, ErrorCode::NotFound);
        QCOMPARE(m_fake->requestCount(), 1);

        m_fake->clearRequests();
        FakeFault bad;
        bad.pathPattern = QStringLiteral("/pulls$");
        bad.status = 502;
        bad.times = 100;
        m_fake->addFault(bad);
        auto prs = run(forge().openPullRequests());
        QVERIFY(!prs);
        QCOMPARE(m_fake->requestCount(), 5); // first attempt + max_retries (4)
        QVERIFY(prs.error().message.contains(QLatin1String("HTTP 502")));
    }

    void retryAfterLongerThanAllowedFails()
    {
        FakeFault limited;
        limited.pathPattern = QStringLiteral("/pulls$");
        limited.status = 429;
        limited.retryAfter = "3600";
        m_fake->addFault(limited);
        QElapsedTimer timer;
        timer.start();
        auto prs = run(forge().openPullRequests());
        QVERIFY(!prs);
        QVERIFY(timer.elapsed() < 5000);
        QVERIFY2(prs.error().message.contains(QLatin1String("3600")), qPrintable(prs.error().toString()));
    }

    void timeoutIsAnError()
    {
        m_instance = makeForge("timeout: 300ms\nmax_retries: 1\n");
        QVERIFY(m_instance);
        FakeFault hang;
        hang.kind = FakeFault::Kind::Hang;
        hang.pathPattern = QStringLiteral("/pulls/3$");
        hang.times = 10;
        m_fake->addFault(hang);
        auto pr = run(forge().pullRequest(3));
        QVERIFY(!pr);
        QCOMPARE(pr.error().code, ErrorCode::Timeout);
        QCOMPARE(m_fake->requestCount(), 2);
    }

    void postStatusIsNotRepeatedOn5xx()
    {
        StatusUpdate update{QStringLiteral("CI / all (pull_request)"), StatusState::Success, QStringLiteral("ok"), QString()};
        auto posted = run(forge().postStatus(sha(4), update));
        QVERIFY(posted);
        QCOMPARE(posted->state, StatusState::Success);
        QCOMPARE(m_fake->statuses(sha(4)).size(), 1);

        m_fake->clearRequests();
        FakeFault bad;
        bad.method = "POST";
        bad.pathPattern = QStringLiteral("/statuses/");
        bad.status = 502;
        m_fake->addFault(bad);
        posted = run(forge().postStatus(sha(4), update));
        QVERIFY(!posted);
        QCOMPARE(m_fake->requestCount(), 1);
        QCOMPARE(m_fake->statuses(sha(4)).size(), 1);
    }

    void readFileAndCompareAndMerge()
    {
        m_fake->setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"), "name: CI\n");
        auto file = run(forge().readFile(QStringLiteral(".gitea/workflows/ci.yml"), QStringLiteral("main")));
        QVERIFY(file);
        QCOMPARE(*file, QByteArray("name: CI\n"));
        auto missing = run(forge().readFile(QStringLiteral("nope.yml"), QStringLiteral("main")));
        QVERIFY(!missing);
        QCOMPARE(missing.error().code, ErrorCode::NotFound);

        m_fake->setComparison(QStringLiteral("main"), QStringLiteral("feature"), 3, 2);
        auto cmp = run(forge().compare(QStringLiteral("main"), QStringLiteral("feature")));
        QVERIFY(cmp);
        QCOMPARE(cmp->aheadBy, 3);
        QCOMPARE(cmp->behindBy, 2);

        m_fake->addPullRequest({8, QString(), QStringLiteral("feature"), sha(8)});
        MergeRequest stale;
        stale.expectedHeadSha = sha(99);
        auto refused = run(forge().merge(8, stale));
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::Conflict);
        MergeRequest request;
        request.expectedHeadSha = sha(8);
        auto merged = run(forge().merge(8, request));
        QVERIFY(merged);
        QVERIFY(!merged->alreadyMerged);
        QCOMPARE(merged->mergeCommit, QStringLiteral("merge-%1").arg(sha(8)));
        auto again = run(forge().merge(8, request));
        QVERIFY(again);
        QVERIFY(again->alreadyMerged);
    }

    void createPullRequest()
    {
        m_fake->setBranch(QStringLiteral("main"), sha(1));
        m_fake->setBranch(QStringLiteral("feature"), sha(2));
        m_fake->addPullRequest({5, QString(), QStringLiteral("older"), sha(5)});
        NewPullRequest request{QStringLiteral("feature"), QString(), QStringLiteral("Add the feature"), QStringLiteral("Why and how.")};
        auto created = run(forge().createPullRequest(request));
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        QCOMPARE(created->number, 6);
        QCOMPARE(created->state, QStringLiteral("open"));
        QCOMPARE(created->headBranch, QStringLiteral("feature"));
        QCOMPARE(created->headSha, sha(2));
        QCOMPARE(created->baseBranch, QStringLiteral("main")); // the project's target branch
        QCOMPARE(created->title, QStringLiteral("Add the feature"));
        const FakeRequest sent = m_fake->requests().last();
        QCOMPARE(sent.method, QByteArray("POST"));
        QCOMPARE(sent.path, QStringLiteral("/api/v1/repos/acme/widget/pulls"));
        const QJsonObject body = QJsonDocument::fromJson(sent.body).object();
        QCOMPARE(body.value(QStringLiteral("head")).toString(), QStringLiteral("feature"));
        QCOMPARE(body.value(QStringLiteral("base")).toString(), QStringLiteral("main"));
        QCOMPARE(body.value(QStringLiteral("body")).toString(), QStringLiteral("Why and how."));
        auto listed = run(forge().openPullRequests());
        QVERIFY(listed);
        QCOMPARE(listed->size(), 2);

        // The same branches again: Gitea's 409 is a Conflict, and no second pull request.
        auto twice = run(forge().createPullRequest(request));
        QVERIFY(!twice);
        QCOMPARE(twice.error().code, ErrorCode::Conflict);
        QCOMPARE(m_fake->pullRequests().size(), 2);
        // An unknown branch is NotFound; a missing title or head is refused before any request.
        QCOMPARE(run(forge().createPullRequest({QStringLiteral("nope"), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::NotFound);
        const qint64 before = m_fake->requestCount();
        QCOMPARE(run(forge().createPullRequest({QStringLiteral("feature"), QString(), QString(), QString()})).error().code, ErrorCode::InvalidArgument);
        QCOMPARE(run(forge().createPullRequest({QString(), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::InvalidArgument);
        QCOMPARE(run(forge().createPullRequest({QStringLiteral("main"), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::InvalidArgument);
        QCOMPARE(m_fake->requestCount(), before);

        // A 502 is not retried (the forge may have acted); a 429 is, as the server did not act.
        m_fake->setBranch(QStringLiteral("second"), sha(3));
        FakeFault gateway;
        gateway.method = "POST";
        gateway.pathPattern = QStringLiteral("/pulls$");
        gateway.status = 502;
        m_fake->addFault(gateway);
        m_fake->clearRequests();
        QVERIFY(!run(forge().createPullRequest({QStringLiteral("second"), QString(), QStringLiteral("t"), QString()})));
        QCOMPARE(m_fake->requestCount(), 1);
        FakeFault limited = gateway;
        limited.status = 429;
        limited.retryAfter = "0";
        m_fake->addFault(limited);
        m_fake->clearRequests();
        auto afterLimit = run(forge().createPullRequest({QStringLiteral("second"), QString(), QStringLiteral("t"), QString()}));
        QVERIFY2(afterLimit, qPrintable(afterLimit ? QString() : afterLimit.error().toString()));
        QCOMPARE(m_fake->requestCount(), 2);
        QCOMPARE(afterLimit->headSha, sha(3));
    }

    void concurrencyIsBounded()
    {
        m_instance = makeForge("concurrency: 4\n");
        QVERIFY(m_instance);
        m_fake->setLatency(std::chrono::milliseconds(50));
        std::vector<std::unique_ptr<AsyncCall<QList<CommitStatus>>>> calls;
        QEventLoop loop;
        int done = 0;
        for (int i = 0; i < 24; ++i) {
            calls.push_back(forge().statuses(sha(i)));
            connect(calls.back().get(), &PluginJob::finished, &loop, [&] {
                if (++done == 24)
                    loop.quit();
            });
            calls.back()->start();
        }
        QTimer::singleShot(30000, &loop, &QEventLoop::quit);
        loop.exec();
        QCOMPARE(done, 24);
        for (const auto &c : calls)
            QVERIFY(c->result());
        QCOMPARE(m_fake->requestCount(), 24);
        QVERIFY2(m_fake->maxConcurrentRequests() <= 4, qPrintable(QString::number(m_fake->maxConcurrentRequests())));
        QVERIFY2(m_fake->maxConcurrentRequests() >= 2, "requests were not sent in parallel");
    }

    void dedicatedCredentialIsTheOnlyOneUsed()
    {
        const QByteArray other = "dedicated-sweeper-token-987654";
        const QString path = writeToken(QStringLiteral("other"), other);
        auto dedicated = forge().withCredential(SecretRef::file(path));
        QVERIFY(dedicated);
        m_fake->setToken(other);
        auto prs = run((*dedicated)->openPullRequests());
        QVERIFY(prs);
        for (const FakeRequest &r : m_fake->requests())
            QCOMPARE(r.authorization, QByteArray("token " + other));
        // The instance's own token is refused now: no fallback happens.
        auto refused = run(forge().openPullRequests());
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::PermissionDenied);

        auto unreadable = forge().withCredential(SecretRef::file(m_connector.filePath(QStringLiteral("absent"))));
        QVERIFY(!unreadable);
    }

    // acceptWebhook(): the signature first (constant time, the secret by reference), then the
    // delivery id and event type, the payload, and the repository.
    void webhooks()
    {
        const QByteArray secret = "hook-secret-4711";
        auto hooked = makeForge("webhook_secret: {file: " + writeToken(QStringLiteral("hook"), secret).toUtf8() + "}\n");
        QVERIFY(hooked);
        auto *receiver = dynamic_cast<WebhookReceiver *>(hooked.get());
        QVERIFY(receiver);
        const QByteArray body = R"({"id": 5, "sha": "abc123", "context": "ci/test", "state": "success", "repository": {"full_name": "acme/widget"}})";
        auto request = [&](const QByteArray &event, const QByteArray &payload, const QList<QPair<QByteArray, QByteArray>> &signature,
                           const QByteArray &delivery = "d-1") {
            WebhookRequest r;
            r.body = payload;
            r.headers.insert(QByteArray("X-Gitea-Event").toLower(), event);
            if (!delivery.isEmpty())
                r.headers.insert(QByteArray("X-Gitea-Delivery").toLower(), delivery);
            for (const auto &[name, value] : signature)
                r.headers.insert(name.toLower(), value);
            return r;
        };
        auto sign = [&](const QByteArray &payload) { return WebhookSender::signatureHeaders(WebhookSender::Style::Gitea, secret, payload); };

        auto ok = receiver->acceptWebhook(request("status", body, sign(body)));
        QVERIFY2(ok, ok ? "" : qPrintable(ok.error().message));
        QCOMPARE(ok->deliveryId, QStringLiteral("d-1"));
        QCOMPARE(ok->events.size(), 1);
        const std::optional<ForgeEvent> event = forgeEventFromWebhook(ok->events.first());
        QVERIFY(event);
        QCOMPARE(event->kind, ForgeEvent::Kind::CommitStatus);
        QCOMPARE(event->sha, QStringLiteral("abc123"));
        QCOMPARE(event->state, QStringLiteral("success"));

        // Forgejo names its headers X-Forgejo-*: the same signature, delivery id and event.
        WebhookRequest forgejo;
        forgejo.body = body;
        forgejo.headers.insert("x-forgejo-event", "status");
        forgejo.headers.insert("x-forgejo-delivery", "fj-1");
        forgejo.headers.insert("x-forgejo-signature", sign(body).first().second);
        auto fromForgejo = receiver->acceptWebhook(forgejo);
        QVERIFY2(fromForgejo, fromForgejo ? "" : qPrintable(fromForgejo.error().message));
        QCOMPARE(fromForgejo->deliveryId, QStringLiteral("fj-1"));
        QCOMPARE(fromForgejo->events.size(), 1);
        forgejo.headers.insert("x-forgejo-signature", QByteArray(64, '0'));
        auto forgejoWrong = receiver->acceptWebhook(forgejo);
        QVERIFY(!forgejoWrong);
        QCOMPARE(forgejoWrong.error().code, ErrorCode::PermissionDenied);

        auto wrong = receiver->acceptWebhook(request("status", body, WebhookSender::signatureHeaders(WebhookSender::Style::Gitea, "another", body)));
        QVERIFY(!wrong);
        QCOMPARE(wrong.error().code, ErrorCode::PermissionDenied);
        auto unsigned_ = receiver->acceptWebhook(request("status", body, {}));
        QVERIFY(!unsigned_);
        QCOMPARE(unsigned_.error().code, ErrorCode::PermissionDenied);
        auto tampered = receiver->acceptWebhook(request("status", body + " ", sign(body)));
        QVERIFY(!tampered);
        QCOMPARE(tampered.error().code, ErrorCode::PermissionDenied);
        auto noId = receiver->acceptWebhook(request("status", body, sign(body), QByteArray()));
        QVERIFY(!noId);
        QCOMPARE(noId.error().code, ErrorCode::Malformed);
        auto malformed = receiver->acceptWebhook(request("status", "{\"sha\":", sign("{\"sha\":")));
        QVERIFY(!malformed);
        QCOMPARE(malformed.error().code, ErrorCode::Malformed);
        // Answered, nothing in it for Sluice: an event type it does not use, another repository.
        auto unknown = receiver->acceptWebhook(request("release", body, sign(body)));
        QVERIFY(unknown);
        QVERIFY(unknown->events.isEmpty());
        QByteArray other = body;
        other.replace("acme/widget", "acme/gadget");
        auto elsewhere = receiver->acceptWebhook(request("status", other, sign(other)));
        QVERIFY(elsewhere);
        QVERIFY(elsewhere->events.isEmpty());
        // The instance without a secret refuses everything.
        auto *plain = dynamic_cast<WebhookReceiver *>(m_instance.get());
        QVERIFY(plain);
        auto refused = plain->acceptWebhook(request("status", body, sign(body)));
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::PermissionDenied);
        // An unreadable secret refuses the instance.
        const QByteArray yaml = "url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                + writeToken(QStringLiteral("token"), Token).toUtf8() + "}\nwebhook_secret: {file: /nonexistent/hook}\n";
        auto created = createInstance(m_connector.plugin(), yaml);
        QVERIFY(created);
        QVERIFY(!(*created)->initialize());
    }

    // PullRequestConversation: comments read and written, reviews, team membership.
    void conversation()
    {
        auto *talk = qobject_cast<PullRequestConversation *>(m_instance.get());
        QVERIFY(talk);
        QCOMPARE(talk->statusDescriptionLimit(), 255);
        m_fake->addPullRequest({7, QStringLiteral("Fix"), QStringLiteral("sluice/fix"), sha(1)});
        m_fake->addComment(7, QStringLiteral("alice"), QStringLiteral("first"));
        auto posted = run(talk->postComment(7, QStringLiteral("**Sluice**: hello")));
        QVERIFY2(posted, posted ? "" : qPrintable(posted.error().toString()));
        QCOMPARE(posted->author, FakeForge::apiUser());
        auto comments = run(talk->comments(7));
        QVERIFY(comments);
        QCOMPARE(comments->size(), 2);
        QCOMPARE(comments->at(0).author, QStringLiteral("alice"));
        QCOMPARE(comments->at(1).body, QStringLiteral("**Sluice**: hello"));
        QCOMPARE(m_fake->comments(7).size(), 2);

        m_fake->addReview(7, QStringLiteral("bob"), QStringLiteral("changes_requested"));
        m_fake->addReview(7, QStringLiteral("carol"), QStringLiteral("approved"), sha(2));
        auto reviews = run(talk->reviews(7));
        QVERIFY(reviews);
        QCOMPARE(reviews->size(), 2);
        QCOMPARE(reviews->at(0).state, QStringLiteral("changes_requested"));
        QCOMPARE(reviews->at(0).commitId, sha(1));
        QCOMPARE(reviews->at(1).state, QStringLiteral("approved"));
        QCOMPARE(reviews->at(1).author, QStringLiteral("carol"));
        QCOMPARE(reviews->at(1).commitId, sha(2));

        m_fake->setTeam(QStringLiteral("acme/release"), {QStringLiteral("carol")});
        auto member = run(talk->isTeamMember(QStringLiteral("acme/release"), QStringLiteral("carol")));
        QVERIFY(member);
        QVERIFY(*member);
        auto inOwnersOrg = run(talk->isTeamMember(QStringLiteral("release"), QStringLiteral("carol")));
        QVERIFY(inOwnersOrg && *inOwnersOrg);
        auto notMember = run(talk->isTeamMember(QStringLiteral("acme/release"), QStringLiteral("mallory")));
        QVERIFY(notMember);
        QVERIFY(!*notMember);
        auto noTeam = run(talk->isTeamMember(QStringLiteral("acme/nobody"), QStringLiteral("carol")));
        QVERIFY(!noTeam);
        QCOMPARE(noTeam.error().code, ErrorCode::NotFound);
    }

    void tokenNeverInLogsOrErrors()
    {
        // Runs last: every call above logged and failed in many ways.
        const QStringList log = LogCapture::lines();
        QVERIFY(!log.isEmpty());
        for (const QString &line : log)
            QVERIFY2(!line.contains(QString::fromLatin1(Token)), qPrintable(line));
        QVERIFY(!m_connector.errors().isEmpty());
        for (const QString &e : m_connector.errors())
            QVERIFY2(!e.contains(QString::fromLatin1(Token)), qPrintable(e));
    }
};

QTEST_GUILESS_MAIN(tst_GiteaForge)
#include "tst_giteaforge.moc"
