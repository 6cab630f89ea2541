// SPDX-License-Identifier: Apache-2.0
// The github connector as the host loads it, against the fake forge speaking GitHub's
// shapes: Link pagination without totals, statuses and check runs, rate limits, writes.
#include "fakeforge.h"
#include "forgecases.h"

#include <sluice/checkruns.h>
#include <sluice/forge.h>
#include <sluice/forgeevents.h>
#include <sluice/webhook.h>
#include <sluice/secrets.h>
#include <sluice/testsupport.h>

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "ghp_testtoken0123456789abcdef";

QString sha(int i)
{
    return fakeSha(i);
}

const ForgeDialect Dialect{"PUT", QStringLiteral("Head branch was modified")};

} // namespace

class tst_GitHubForge : public QObject
{
    Q_OBJECT

private:
    ConnectorFixture m_connector; // the plugin, the token files, every error seen (for the token check)
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<PluginInstance> m_instance;

    Forge &forge() { return *qobject_cast<Forge *>(m_instance.get()); }
    CheckRunReader &checks() { return *qobject_cast<CheckRunReader *>(m_instance.get()); }

    QString writeToken(const QString &name, const QByteArray &token) { return m_connector.writeSecret(name, token); }

    // A connector with other settings (retries, waits) against the same fake.
    std::unique_ptr<PluginInstance> withSettings(const QByteArray &extra)
    {
        return m_connector.instance("url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                    + m_connector.filePath(QStringLiteral("token")).toUtf8() + "}\nretry_backoff: 10ms\n" + extra);
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
        QVERIFY(m_connector.load(QStringLiteral(GITHUB_PLUGIN_FILE), PluginKind::Forge));
    }

    void init()
    {
        m_fake = std::make_unique<FakeForge>(FakeForge::Flavor::GitHub);
        QVERIFY(m_fake->start());
        m_fake->setToken(Token);
        m_fake->setMaxPageSize(100);
        const QString token = writeToken(QStringLiteral("token"), Token);
        QVERIFY(!token.isEmpty());
        auto created = createInstance(m_connector.plugin(), "url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                                + token.toUtf8() + "}\nretry_backoff: 10ms\n");
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        m_instance = std::move(*created);
        QVERIFY(m_instance->initialize());
    }

    void cleanup()
    {
        m_instance.reset();
        m_fake.reset();
    }

    void pullRequestsFollowLinks()
    {
        for (int i = 1; i <= 250; ++i)
            m_fake->addPullRequest({i, QString(), QStringLiteral("b%1").arg(i), sha(i)});
        auto prs = run(forge().openPullRequests());
        QVERIFY2(prs, qPrintable(prs ? QString() : prs.error().toString()));
        QCOMPARE(prs->size(), 250);
        QCOMPARE(m_fake->requestCount(), 3);
        for (const FakeRequest &r : m_fake->requests())
            QCOMPARE(r.authorization, QByteArray("Bearer " + Token));
        auto one = run(forge().pullRequest(7));
        QVERIFY(one);
        QCOMPARE(one->headSha, sha(7));
        QVERIFY(!one->merged);
    }

    void statusesAndCheckRuns()
    {
        const QDateTime t0 = QDateTime::currentDateTimeUtc().addSecs(-3600);
        for (int i = 0; i < 120; ++i)
            m_fake->addStatus(sha(1), QStringLiteral("legacy %1").arg(i), QStringLiteral("success"), t0.addSecs(i));
        for (int i = 0; i < 130; ++i)
            m_fake->addCheckRun(sha(1), QStringLiteral("job %1").arg(i), QStringLiteral("completed"), QStringLiteral("success"), t0.addSecs(i));
        m_fake->addCheckRun(sha(1), QStringLiteral("running"), QStringLiteral("in_progress"), QString(), t0);
        m_fake->addCheckRun(sha(1), QStringLiteral("neutral"), QStringLiteral("completed"), QStringLiteral("neutral"), t0);
        m_fake->addCheckRun(sha(1), QStringLiteral("skipped"), QStringLiteral("completed"), QStringLiteral("skipped"), t0);
        m_fake->addCheckRun(sha(1), QStringLiteral("queued"), QStringLiteral("queued"), QString(), t0);
        // Commit statuses only: check runs are the other kind, read on their own.
        auto all = run(forge().statuses(sha(1)));
        QVERIFY2(all, qPrintable(all ? QString() : all.error().toString()));
        QCOMPARE(all->size(), 120);
        QCOMPARE(all->first().context, QStringLiteral("legacy 119")); // newest first
        QVERIFY(qobject_cast<CheckRunReader *>(m_instance.get()));
        auto runs = run(checks().checkRuns(sha(1)));
        QVERIFY2(runs, qPrintable(runs ? QString() : runs.error().toString()));
        QCOMPARE(runs->size(), 134);
        QHash<QString, CheckRun> byName;
        for (const CheckRun &r : *runs)
            byName.insert(r.name, r);
        QCOMPARE(byName.value(QStringLiteral("running")).state, StatusState::Pending);
        QCOMPARE(byName.value(QStringLiteral("neutral")).state, StatusState::Warning);
        QCOMPARE(byName.value(QStringLiteral("skipped")).state, StatusState::Skipped);
        QCOMPARE(byName.value(QStringLiteral("job 129")).state, StatusState::Success);
        QCOMPARE(byName.value(QStringLiteral("job 129")).appSlug, QStringLiteral("github-actions"));
        // A queued run: started_at null, as documented. Not an error (24.4).
        QCOMPARE(byName.value(QStringLiteral("queued")).state, StatusState::Pending);
        QVERIFY(!byName.value(QStringLiteral("queued")).startedAt.isValid());
        // Only the latest run of each name is asked for (filter=latest).
        const FakeRequest sent = m_fake->requests().last();
        QVERIFY(sent.path.endsWith(QLatin1String("/check-runs")));
        QCOMPARE(sent.query.queryItemValue(QStringLiteral("filter")), QStringLiteral("latest"));

        auto none = run(forge().combinedStatus(sha(2)));
        QVERIFY(none);
        QCOMPARE(none->state, StatusState::Pending);
    }

    void malformedIsAnError_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("page");
        QTest::newRow("check runs without their list") << QStringLiteral("/check-runs$") << int(FakeFault::Kind::MissingStatuses) << 1;
        QTest::newRow("check runs not JSON") << QStringLiteral("/check-runs$") << int(FakeFault::Kind::Malformed) << 2;
        QTest::newRow("check runs short page") << QStringLiteral("/check-runs$") << int(FakeFault::Kind::ShortPage) << 2;
        QTest::newRow("statuses short page before a link") << QStringLiteral("/statuses$") << int(FakeFault::Kind::ShortPage) << 1;
        QTest::newRow("statuses not a list") << QStringLiteral("/statuses$") << int(FakeFault::Kind::NotAList) << 2;
    }

    void malformedIsAnError()
    {
        QFETCH(QString, path);
        QFETCH(int, kind);
        QFETCH(int, page);
        for (int i = 0; i < 150; ++i) {
            m_fake->addStatus(sha(3), QStringLiteral("s%1").arg(i), QStringLiteral("success"));
            m_fake->addCheckRun(sha(3), QStringLiteral("c%1").arg(i), QStringLiteral("completed"), QStringLiteral("success"));
        }
        FakeFault f;
        f.pathPattern = path;
        f.kind = FakeFault::Kind(kind);
        f.page = page;
        f.times = 100;
        m_fake->addFault(f);
        if (path.contains(QLatin1String("check-runs"))) {
            auto runs = run(checks().checkRuns(sha(3)));
            QVERIFY(!runs);
        } else {
            auto all = run(forge().statuses(sha(3)));
            QVERIFY(!all);
        }
    }

    void rateLimitIsWaitedFor()
    {
        m_fake->addPullRequest({1, QString(), QStringLiteral("b"), sha(1)});
        FakeFault limited;
        limited.pathPattern = QStringLiteral("/pulls$");
        limited.status = 403;
        limited.headers = {{"X-RateLimit-Remaining", "0"},
                           {"X-RateLimit-Reset", QByteArray::number(QDateTime::currentSecsSinceEpoch() + 2)}};
        m_fake->addFault(limited);
        QElapsedTimer timer;
        timer.start();
        auto prs = run(forge().openPullRequests());
        QVERIFY(prs);
        QVERIFY2(timer.elapsed() >= 900, "the rate-limit reset was not waited for");
        QCOMPARE(m_fake->requestCount(), 2);

        // A plain 403 is a refusal, not a rate limit: no retry.
        m_fake->clearRequests();
        FakeFault refused;
        refused.pathPattern = QStringLiteral("/pulls$");
        refused.status = 403;
        m_fake->addFault(refused);
        prs = run(forge().openPullRequests());
        QVERIFY(!prs);
        QCOMPARE(prs.error().code, ErrorCode::PermissionDenied);
        QCOMPARE(m_fake->requestCount(), 1);
    }

    // Null times are documented; a time that is present and not a time is a wrong answer, and
    // a completed run without completed_at too: the whole read fails, never a shorter list.
    void checkRunWithABadTimeIsMalformed_data()
    {
        QTest::addColumn<QByteArray>("checkRun");
        QTest::newRow("started_at not a time") << QByteArray(R"({"id": 1, "name": "a", "status": "in_progress", "conclusion": null, "started_at": "yesterday", "completed_at": null})");
        QTest::newRow("completed without completed_at") << QByteArray(R"({"id": 1, "name": "a", "status": "completed", "conclusion": "success", "started_at": null, "completed_at": null})");
        QTest::newRow("unknown conclusion") << QByteArray(R"({"id": 1, "name": "a", "status": "completed", "conclusion": "greenish", "started_at": null, "completed_at": "2026-01-01T00:00:00Z"})");
    }

    void checkRunWithABadTimeIsMalformed()
    {
        QFETCH(QByteArray, checkRun);
        m_fake->setHandler([checkRun](const FakeRequest &r) -> std::optional<FakeAnswer> {
            if (!r.path.endsWith(QLatin1String("/check-runs")))
                return std::nullopt;
            return FakeAnswer{200, "{\"total_count\": 1, \"check_runs\": [" + checkRun + "]}", {{"Content-Type", "application/json"}}};
        });
        auto runs = run(checks().checkRuns(sha(1)));
        QVERIFY(!runs);
        QCOMPARE(runs.error().code, ErrorCode::Malformed);
        m_fake->setHandler({});
    }

    // GitHub's secondary rate limit: 403 or 429 with a message saying so, Retry-After when it
    // knows how long (docs.github.com, "Rate limits for the REST API"). Waited out and retried,
    // writes included, never longer than max_retry_wait at once (24.3).
    void secondaryRateLimitIsWaitedFor_data()
    {
        QTest::addColumn<int>("status");
        QTest::addColumn<QByteArray>("method");
        QTest::newRow("403 with retry-after, a read") << 403 << QByteArray("GET");
        QTest::newRow("429 with retry-after, a read") << 429 << QByteArray("GET");
        QTest::newRow("403 with retry-after, a write") << 403 << QByteArray("POST");
    }

    void secondaryRateLimitIsWaitedFor()
    {
        QFETCH(int, status);
        QFETCH(QByteArray, method);
        m_fake->addPullRequest({1, QString(), QStringLiteral("b"), sha(1)});
        FakeFault limited;
        limited.method = method;
        limited.pathPattern = method == "GET" ? QStringLiteral("/pulls$") : QStringLiteral("/statuses/");
        limited.status = status;
        limited.retryAfter = "1";
        limited.message = QStringLiteral("You have exceeded a secondary rate limit. Please wait a few minutes before you try again.");
        m_fake->addFault(limited);
        QElapsedTimer timer;
        timer.start();
        if (method == "GET") {
            auto prs = run(forge().openPullRequests());
            QVERIFY2(prs, qPrintable(prs ? QString() : prs.error().toString()));
        } else {
            auto posted = run(forge().postStatus(sha(1), StatusUpdate{QStringLiteral("CI"), StatusState::Success, QString(), QString()}));
            QVERIFY2(posted, qPrintable(posted ? QString() : posted.error().toString()));
        }
        QVERIFY2(timer.elapsed() >= 900, "Retry-After was not waited for");
        QCOMPARE(m_fake->requestCount(), 2);
    }

    void secondaryRateLimitIsBounded()
    {
        m_fake->addPullRequest({1, QString(), QStringLiteral("b"), sha(1)});
        // Without Retry-After the documented wait is at least a minute: more than this
        // connector's max_retry_wait, so the call fails at once saying so, instead of hanging.
        auto bounded = withSettings("max_retry_wait: 2s\n");
        QVERIFY(bounded);
        FakeFault limited;
        limited.pathPattern = QStringLiteral("/pulls$");
        limited.status = 403;
        limited.message = QStringLiteral("You have exceeded a secondary rate limit.");
        m_fake->addFault(limited);
        QElapsedTimer timer;
        timer.start();
        auto prs = runCall(qobject_cast<Forge *>(bounded.get())->openPullRequests());
        QVERIFY(!prs);
        QVERIFY2(timer.elapsed() < 5000, "a minute's wait was not refused");
        QVERIFY2(prs.error().message.contains(QLatin1String("rate limited")) && prs.error().message.contains(QLatin1String("max_retry_wait")),
                 qPrintable(prs.error().message));
        QCOMPARE(m_fake->requestCount(), 1);
        // Retries are bounded by max_retries: a limit that never lifts ends in an error.
        auto once = withSettings("max_retries: 1\n");
        QVERIFY(once);
        m_fake->clearRequests();
        limited.retryAfter = "0";
        limited.times = 10;
        m_fake->addFault(limited);
        prs = runCall(qobject_cast<Forge *>(once.get())->openPullRequests());
        QVERIFY(!prs);
        QCOMPARE(m_fake->requestCount(), 2);
        m_fake->clearFaults();
    }

    // A 403 that is not a rate limit names the permission the token lacks (24.6): GitHub's own
    // X-Accepted-GitHub-Permissions when it sends one, else the connector's table.
    void forbiddenNamesTheMissingPermission()
    {
        m_fake->addPullRequest({1, QString(), QStringLiteral("b"), sha(1)});
        FakeFault refused;
        refused.pathPattern = QStringLiteral("/pulls$");
        refused.status = 403;
        refused.message = QStringLiteral("Resource not accessible by personal access token");
        m_fake->addFault(refused);
        auto prs = run(forge().openPullRequests());
        QVERIFY(!prs);
        QCOMPARE(prs.error().code, ErrorCode::PermissionDenied);
        QVERIFY2(prs.error().message.contains(QLatin1String("Pull requests: read")), qPrintable(prs.error().message));
        QVERIFY2(prs.error().message.contains(QLatin1String("Resource not accessible")), qPrintable(prs.error().message));
        refused.pathPattern = QStringLiteral("/check-runs$");
        refused.headers = {{"X-Accepted-GitHub-Permissions", "checks=read"}};
        m_fake->addFault(refused);
        auto runs = run(checks().checkRuns(sha(1)));
        QVERIFY(!runs);
        QVERIFY2(runs.error().message.contains(QLatin1String("checks=read")), qPrintable(runs.error().message));
    }

    // A merge GitHub refuses while it computes mergeability passes by itself: Network (the merge
    // gate waits); a real conflict is a Conflict (24.7).
    void transientMergeRefusalIsToldFromAConflict()
    {
        FakePullRequest pr{5, QString(), QStringLiteral("topic"), sha(5)};
        pr.mergeabilityPending = 1;
        m_fake->addPullRequest(pr);
        MergeRequest request;
        request.expectedHeadSha = sha(5);
        auto first = run(forge().merge(5, request));
        QVERIFY(!first);
        QCOMPARE(first.error().code, ErrorCode::Network);
        QVERIFY2(first.error().message.contains(QLatin1String("computing its mergeability")), qPrintable(first.error().message));
        auto second = run(forge().merge(5, request));
        QVERIFY2(second, qPrintable(second ? QString() : second.error().toString()));
        QCOMPARE(m_fake->mergesApplied(), 1);

        FakePullRequest conflict{6, QString(), QStringLiteral("other"), sha(6)};
        conflict.conflicting = true;
        m_fake->addPullRequest(conflict);
        request.expectedHeadSha = sha(6);
        auto refused = run(forge().merge(6, request));
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::Conflict);
        QVERIFY2(refused.error().message.contains(QLatin1String("dirty")), qPrintable(refused.error().message));
    }

    // A list that changes between the reads of its pages, where no total tells (GitHub's lists
    // send none): items move across a page boundary, so one shows on two pages while as many
    // others may have moved past the pages read. An item on two pages is an error, never a list
    // (a check run re-run while its list is paged: it leaves its place, one run is missed, and
    // total_count still adds up).
    void listChangedBetweenPagesIsAnError()
    {
        for (int i = 0; i < 4; ++i)
            m_fake->addStatus(sha(31), QStringLiteral("ci/step%1").arg(i), QStringLiteral("success"));
        auto paged = withSettings("page_size: 2\n");
        QVERIFY(paged);
        Forge &small = *qobject_cast<Forge *>(paged.get());
        FakeForge *fake = m_fake.get();
        bool added = false;
        m_fake->setRequestHook([fake, &added](const FakeRequest &r) {
            if (!added && r.method == "GET" && r.path.endsWith(QLatin1String("/statuses")) && r.query.queryItemValue(QStringLiteral("page")) == QLatin1String("2")) {
                added = true;
                fake->addStatus(sha(31), QStringLiteral("ci/late"), QStringLiteral("failure"));
            }
        });
        auto read = run(small.statuses(sha(31)));
        m_fake->setRequestHook({});
        QVERIFY(added);
        QVERIFY(!read);
        QCOMPARE(read.error().code, ErrorCode::Malformed);
        QVERIFY2(read.error().message.contains(QLatin1String("changed while it was read")), qPrintable(read.error().message));
        // Read again with the list at rest: all five.
        auto again = run(small.statuses(sha(31)));
        QVERIFY2(again, qPrintable(again ? QString() : again.error().toString()));
        QCOMPARE(again->size(), 5);
    }

    // The pull request's head moves just before the merge (forgecases.h).
    void mergeRefusedForAMovedHeadOnlyWhenReadWhole_data() { Test::mergeRefusedForAMovedHeadOnlyWhenReadWhole_data(); }
    void mergeRefusedForAMovedHeadOnlyWhenReadWhole()
    {
        Test::mergeRefusedForAMovedHeadOnlyWhenReadWhole(*m_fake, forge(), m_connector, Dialect);
    }

    // Re-running a failed Actions check run: the job is read (it must be this check run), then
    // re-run; a new queued run of the same name appears. Another app's run is refused (24.2).
    void rerunCheckRun()
    {
        const FakeCheckRun failed = m_fake->addCheckRun(sha(7), QStringLiteral("all-required"), QStringLiteral("completed"), QStringLiteral("failure"));
        auto runs = run(checks().checkRuns(sha(7)));
        QVERIFY(runs);
        QCOMPARE(runs->size(), 1);
        auto rerun = run(checks().rerunCheckRun(runs->first()));
        QVERIFY2(rerun, qPrintable(rerun ? QString() : rerun.error().toString()));
        const FakeRequest sent = m_fake->requests().last();
        QCOMPARE(sent.method, QByteArray("POST"));
        QCOMPARE(sent.path, QStringLiteral("/repos/acme/widget/actions/jobs/%1/rerun").arg(failed.id));
        auto after = run(checks().checkRuns(sha(7)));
        QVERIFY(after);
        QCOMPARE(after->size(), 1);
        QVERIFY(after->first().id > failed.id);
        QCOMPARE(after->first().state, StatusState::Pending);

        m_fake->addCheckRun(sha(8), QStringLiteral("external"), QStringLiteral("completed"), QStringLiteral("failure"), QDateTime(), QStringLiteral("circleci"));
        auto other = run(checks().checkRuns(sha(8)));
        QVERIFY(other);
        m_fake->clearRequests();
        auto refused = run(checks().rerunCheckRun(other->first()));
        QVERIFY(!refused);
        QCOMPARE(refused.error().code, ErrorCode::InvalidArgument);
        QVERIFY2(refused.error().message.contains(QLatin1String("circleci")), qPrintable(refused.error().message));
        QCOMPARE(m_fake->requestCount(), 0);
    }

    // A re-run answered with anything but GitHub's 201 Created and a JSON body may not have been
    // made: Malformed, not done (else the sweeper marks the umbrella repaired and never tries
    // again; the fault campaign's seed 0x741a9f5820b28e70).
    void rerunAnsweredWithGarbageIsNotDone()
    {
        m_fake->addCheckRun(sha(9), QStringLiteral("all-required"), QStringLiteral("completed"), QStringLiteral("failure"));
        auto runs = run(checks().checkRuns(sha(9)));
        QVERIFY(runs);
        FakeFault garbled;
        garbled.kind = FakeFault::Kind::Malformed;
        garbled.method = "POST";
        garbled.pathPattern = QStringLiteral("/rerun$");
        m_fake->addFault(garbled);
        auto rerun = run(checks().rerunCheckRun(runs->first()));
        QVERIFY(!rerun);
        QCOMPARE(rerun.error().code, ErrorCode::Malformed);
        QCOMPARE(m_fake->checkRuns(sha(9)).size(), 1); // nothing was re-run
    }

    void writesAndReads()
    {
        auto posted = run(forge().postStatus(sha(4), StatusUpdate{QStringLiteral("CI"), StatusState::Success, QStringLiteral("ok"), QString()}));
        QVERIFY2(posted, qPrintable(posted ? QString() : posted.error().toString()));
        QCOMPARE(posted->state, StatusState::Success);
        const qint64 before = m_fake->requestCount();
        auto refused = run(forge().postStatus(sha(4), StatusUpdate{QStringLiteral("CI"), StatusState::Skipped, QString(), QString()}));
        QVERIFY(!refused);
        QCOMPARE(m_fake->requestCount(), before); // never sent

        m_fake->setFile(QStringLiteral("main"), QStringLiteral(".github/workflows/ci.yml"), "name: CI\n");
        auto file = run(forge().readFile(QStringLiteral(".github/workflows/ci.yml"), QStringLiteral("main")));
        QVERIFY(file);
        QCOMPARE(*file, QByteArray("name: CI\n"));
        QCOMPARE(run(forge().readFile(QStringLiteral("x.yml"), QStringLiteral("main"))).error().code, ErrorCode::NotFound);

        m_fake->setComparison(QStringLiteral("main"), QStringLiteral("topic"), 4, 1);
        auto cmp = run(forge().compare(QStringLiteral("main"), QStringLiteral("topic")));
        QVERIFY2(cmp, qPrintable(cmp ? QString() : cmp.error().toString()));
        QCOMPARE(cmp->aheadBy, 4);
        QCOMPARE(cmp->behindBy, 1);
        QCOMPARE(cmp->mergeBase, QStringLiteral("base-of-topic"));

        m_fake->addPullRequest({9, QString(), QStringLiteral("topic"), sha(9)});
        MergeRequest request;
        request.expectedHeadSha = sha(9);
        auto merged = run(forge().merge(9, request));
        QVERIFY2(merged, qPrintable(merged ? QString() : merged.error().toString()));
        QVERIFY(!merged->alreadyMerged);
        auto again = run(forge().merge(9, request));
        QVERIFY(again);
        QVERIFY(again->alreadyMerged);
    }

    void createPullRequest()
    {
        m_fake->setBranch(QStringLiteral("main"), sha(1));
        m_fake->setBranch(QStringLiteral("topic"), sha(2));
        m_fake->setBranch(QStringLiteral("release"), sha(3));
        NewPullRequest request{QStringLiteral("topic"), QStringLiteral("release"), QStringLiteral("Topic"), QString()};
        auto created = run(forge().createPullRequest(request));
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        QCOMPARE(created->number, 1);
        QCOMPARE(created->headSha, sha(2));
        QCOMPARE(created->baseBranch, QStringLiteral("release"));
        QCOMPARE(created->state, QStringLiteral("open"));
        const FakeRequest sent = m_fake->requests().last();
        QCOMPARE(sent.method, QByteArray("POST"));
        QCOMPARE(sent.path, QStringLiteral("/repos/acme/widget/pulls"));
        QCOMPARE(sent.authorization, QByteArray("Bearer " + Token));
        auto one = run(forge().pullRequest(1));
        QVERIFY(one);
        QCOMPARE(one->headBranch, QStringLiteral("topic"));
        // GitHub answers 422 for a duplicate (and for an unknown branch): a Conflict, once.
        m_fake->clearRequests();
        auto twice = run(forge().createPullRequest(request));
        QVERIFY(!twice);
        QCOMPARE(twice.error().code, ErrorCode::Conflict);
        QCOMPARE(m_fake->requestCount(), 1);
        QCOMPARE(m_fake->pullRequests().size(), 1);
        QCOMPARE(run(forge().createPullRequest({QStringLiteral("gone"), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::Conflict);
    }

    void branchProtection()
    {
        m_fake->setProtection(QStringLiteral("main"), {QStringLiteral("CI"), QStringLiteral("lint")});
        auto required = run(forge().protectedContexts(QStringLiteral("main")));
        QVERIFY(required);
        QCOMPARE(*required, (QStringList{QStringLiteral("CI"), QStringLiteral("lint")}));
        auto none = run(forge().protectedContexts(QStringLiteral("dev")));
        QVERIFY(!none);
        QCOMPARE(none.error().code, ErrorCode::NotFound);
    }

    // acceptWebhook(): the signature first (constant time, the secret by reference), then the
    // delivery id and event type, the payload, and the repository.
    void webhooks()
    {
        const QByteArray secret = "hook-secret-4711";
        auto hooked = withSettings("webhook_secret: {file: " + writeToken(QStringLiteral("hook"), secret).toUtf8() + "}\n");
        QVERIFY(hooked);
        auto *receiver = dynamic_cast<WebhookReceiver *>(hooked.get());
        QVERIFY(receiver);
        const QByteArray body = R"({"id": 5, "sha": "abc123", "context": "ci/test", "state": "success", "repository": {"full_name": "acme/widget"}})";
        auto request = [&](const QByteArray &event, const QByteArray &payload, const QList<QPair<QByteArray, QByteArray>> &signature,
                           const QByteArray &delivery = "d-1") {
            WebhookRequest r;
            r.body = payload;
            r.headers.insert(QByteArray("X-GitHub-Event").toLower(), event);
            if (!delivery.isEmpty())
                r.headers.insert(QByteArray("X-GitHub-Delivery").toLower(), delivery);
            for (const auto &[name, value] : signature)
                r.headers.insert(name.toLower(), value);
            return r;
        };
        auto sign = [&](const QByteArray &payload) { return WebhookSender::signatureHeaders(WebhookSender::Style::GitHub, secret, payload); };

        auto ok = receiver->acceptWebhook(request("status", body, sign(body)));
        QVERIFY2(ok, ok ? "" : qPrintable(ok.error().message));
        QCOMPARE(ok->deliveryId, QStringLiteral("d-1"));
        QCOMPARE(ok->events.size(), 1);
        const std::optional<ForgeEvent> event = forgeEventFromWebhook(ok->events.first());
        QVERIFY(event);
        QCOMPARE(event->kind, ForgeEvent::Kind::CommitStatus);
        QCOMPARE(event->sha, QStringLiteral("abc123"));
        QCOMPARE(event->state, QStringLiteral("success"));

        auto wrong = receiver->acceptWebhook(request("status", body, WebhookSender::signatureHeaders(WebhookSender::Style::GitHub, "another", body)));
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
        QCOMPARE(talk->statusDescriptionLimit(), 140);
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
        QVERIFY(noTeam); // GitHub answers 404 for an unknown team as for no membership
        QVERIFY(!*noTeam);
    }

    void tokenNeverInLogsOrErrors()
    {
        // Runs last: every call above logged (debug categories are on in this test) and failed in many ways.
        const QStringList log = LogCapture::lines();
        // The connector's own lines are among them (it names where its token comes from).
        QVERIFY(std::any_of(log.cbegin(), log.cend(),
                            [](const QString &line) { return line.startsWith(QLatin1String("github acme/widget at")); }));
        for (const QString &line : log)
            QVERIFY2(!line.contains(QString::fromLatin1(Token)), qPrintable(line));
        QVERIFY(!m_connector.errors().isEmpty());
        for (const QString &e : m_connector.errors())
            QVERIFY2(!e.contains(QString::fromLatin1(Token)), qPrintable(e));
    }
};

QTEST_GUILESS_MAIN(tst_GitHubForge)
#include "tst_githubforge.moc"
