// SPDX-License-Identifier: Apache-2.0
// The ci-umbrella sweeper as the host runs it: the real plugin, the real gitea connector,
// a real SQLite state store and the fake forge on loopback.
#include "fakeforge.h"

#include <sluice/forge.h>
#include <sluice/sweeper.h>
#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray ForgeToken = "forge-main-token-abcdef012345";
const QByteArray SweeperToken = "umbrella-only-token-9876543210";
const QString Umbrella = QStringLiteral("CI / all-required (pull_request)");
const QStringList SubJobs = {QStringLiteral("CI / lint (pull_request)"), QStringLiteral("CI / test (linux) (pull_request)"),
                             QStringLiteral("CI / test (mac) (pull_request)")};

const QByteArray Workflow = R"(name: CI
on: pull_request
jobs:
  lint:
    runs-on: docker
  test:
    runs-on: docker
    strategy:
      matrix:
        os: [linux, mac]
  all-required:
    runs-on: docker
    needs: [lint, test]
)";

QString sha(int i)
{
    return QStringLiteral("%1").arg(i, 40, 16, QLatin1Char('0'));
}

SweepReport runSweep(Sweeper &sweeper, bool dryRun)
{
    SweepOptions options;
    options.dryRun = dryRun;
    std::unique_ptr<SweepRun> run = sweeper.sweep(options);
    QEventLoop loop;
    QObject::connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
    QTimer::singleShot(60000, &loop, &QEventLoop::quit);
    run->start();
    if (!run->isFinished())
        loop.exec();
    return run->report();
}

QJsonObject decisionFor(const SweepReport &report, qint64 pr)
{
    for (const QJsonValue &v : report.decisions) {
        if (v.toObject().value(QStringLiteral("pullRequest")).toDouble() == double(pr))
            return v.toObject();
    }
    return {};
}

} // namespace

class tst_CiUmbrella : public QObject
{
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    LoadedPlugin m_gitea;
    LoadedPlugin m_github;
    LoadedPlugin m_umbrella;
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<TemporaryStore> m_store;
    std::unique_ptr<StateStore> m_state;
    std::unique_ptr<PluginInstance> m_forge;
    std::unique_ptr<PluginInstance> m_sweeper;

    Sweeper &sweeper() { return *qobject_cast<Sweeper *>(m_sweeper.get()); }

    QString tokenFile(const QString &name, const QByteArray &token)
    {
        QFile f(m_dir.filePath(name));
        if (f.open(QIODevice::WriteOnly))
            f.write(token);
        return f.fileName();
    }

    std::unique_ptr<PluginInstance> makeSweeper(const QByteArray &extra)
    {
        auto created = createInstance(m_umbrella, extra, fakeProject(), m_state.get(), qobject_cast<Forge *>(m_forge.get()));
        if (!created) {
            qWarning() << created.error().toString();
            return nullptr;
        }
        return std::move(*created);
    }

    QByteArray enabled(const QByteArray &more = QByteArray())
    {
        return "enabled: true\ntoken: {file: " + tokenFile(QStringLiteral("sweeper"), SweeperToken).toUtf8()
            + "}\nworkflow: .gitea/workflows/ci.yml\numbrella_job: all-required\nworkflow_ref: target\n" + more;
    }

    // PR @p n with its sub-jobs at @p subState and its umbrella failure @p minutesAgo old.
    void addPr(int n, const QString &subState, int minutesAgo, const QString &umbrellaState = QStringLiteral("failure"))
    {
        m_fake->addPullRequest({n, QStringLiteral("PR %1").arg(n), QStringLiteral("b%1").arg(n), sha(n)});
        const QDateTime now = QDateTime::currentDateTimeUtc();
        for (const QString &c : SubJobs)
            m_fake->addStatus(sha(n), c, c == SubJobs.first() ? subState : QStringLiteral("success"), now.addSecs(-60 * (minutesAgo + 5)));
        m_fake->addStatus(sha(n), Umbrella, umbrellaState, now.addSecs(-60 * minutesAgo));
    }

    int umbrellaSuccesses(int n) const
    {
        int count = 0;
        for (const FakeStatus &s : m_fake->statuses(sha(n))) {
            if (s.context == Umbrella && s.state == QLatin1String("success") && s.description.startsWith(QLatin1String("sluice compensation")))
                ++count;
        }
        return count;
    }

    int posts() const
    {
        int count = 0;
        for (const FakeRequest &r : m_fake->requests())
            count += r.method == "POST";
        return count;
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        auto gitea = loadPlugin(QStringLiteral(GITEA_PLUGIN_FILE));
        QVERIFY2(gitea, qPrintable(gitea ? QString() : gitea.error().toString()));
        m_gitea = *gitea;
        auto github = loadPlugin(QStringLiteral(GITHUB_PLUGIN_FILE));
        QVERIFY2(github, qPrintable(github ? QString() : github.error().toString()));
        m_github = *github;
        auto umbrella = loadPlugin(QStringLiteral(UMBRELLA_PLUGIN_FILE));
        QVERIFY2(umbrella, qPrintable(umbrella ? QString() : umbrella.error().toString()));
        m_umbrella = *umbrella;
        QCOMPARE(m_umbrella.metaData.kind(), PluginKind::Sweeper);
    }

    void init()
    {
        m_fake = std::make_unique<FakeForge>();
        QVERIFY(m_fake->start());
        m_fake->setToken(SweeperToken); // only the sweeper's own token is accepted
        m_fake->setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"), Workflow);
        m_store = std::make_unique<TemporaryStore>();
        QVERIFY2(m_store->store(), qPrintable(m_store->error()));
        m_state = m_store->state(QStringLiteral("test-project"), QStringLiteral("ci-umbrella"));
        auto forge = createInstance(m_gitea, "url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                  + tokenFile(QStringLiteral("forge"), ForgeToken).toUtf8() + "}\nretry_backoff: 10ms\n");
        QVERIFY(forge);
        m_forge = std::move(*forge);
        QVERIFY(m_forge->initialize());
        m_sweeper = makeSweeper(enabled());
        QVERIFY(m_sweeper);
        QVERIFY(m_sweeper->initialize());
    }

    void cleanup()
    {
        m_sweeper.reset();
        m_forge.reset();
        m_state.reset();
        m_store.reset();
        m_fake.reset();
    }

    // On GitHub the umbrella is a check run of GitHub Actions. A status of its name would be a
    // second requirement and leave the failed check run blocking the merge: the sweeper re-runs
    // the umbrella job through the Actions API instead, with the same marker, evidence and
    // report, and refuses with a clear message a check run another app made (24.2).
    void gitHubUmbrellaCheckRunIsReRunNeverCoveredByAStatus()
    {
        FakeForge fake(FakeForge::Flavor::GitHub);
        QVERIFY(fake.start());
        fake.setToken(SweeperToken);
        auto forge = createInstance(m_github, "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                  + tokenFile(QStringLiteral("forge"), ForgeToken).toUtf8() + "}\nretry_backoff: 10ms\n");
        QVERIFY(forge);
        QVERIFY((*forge)->initialize());
        const QDateTime now = QDateTime::currentDateTimeUtc();
        for (int n : {1, 2}) {
            fake.addPullRequest({n, QStringLiteral("PR %1").arg(n), QStringLiteral("b%1").arg(n), sha(n)});
            for (const char *job : {"lint", "test"})
                fake.addCheckRun(sha(n), QString::fromLatin1(job), QStringLiteral("completed"), QStringLiteral("success"), now.addSecs(-1200));
        }
        const FakeCheckRun failed = fake.addCheckRun(sha(1), QStringLiteral("all-required"), QStringLiteral("completed"), QStringLiteral("failure"), now.addSecs(-600));
        fake.addCheckRun(sha(2), QStringLiteral("all-required"), QStringLiteral("completed"), QStringLiteral("failure"), now.addSecs(-600), QStringLiteral("circleci"));
        const QByteArray settings = "enabled: true\ntoken: {file: " + tokenFile(QStringLiteral("sweeper"), SweeperToken).toUtf8()
            + "}\ncontexts: [lint, test]\numbrella_context: all-required\n";
        auto created = createInstance(m_umbrella, settings, fakeProject(), m_state.get(), qobject_cast<Forge *>(forge->get()));
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        QVERIFY((*created)->initialize());
        Sweeper &github = *qobject_cast<Sweeper *>(created->get());

        const SweepReport dry = runSweep(github, true);
        QVERIFY2(decisionFor(dry, 1).value(QStringLiteral("reason")).toString().contains(QLatin1String("would re-run the umbrella job")),
                 qPrintable(decisionFor(dry, 1).value(QStringLiteral("reason")).toString()));
        for (const FakeRequest &r : fake.requests())
            QCOMPARE(r.method, QByteArray("GET"));

        const SweepReport report = runSweep(github, false);
        const QJsonObject one = decisionFor(report, 1);
        QCOMPARE(one.value(QStringLiteral("decision")).toString(), QStringLiteral("compensate"));
        QVERIFY2(one.value(QStringLiteral("reason")).toString().contains(QStringLiteral("re-ran the umbrella job (check run %1)").arg(failed.id)),
                 qPrintable(one.value(QStringLiteral("reason")).toString()));
        QCOMPARE(one.value(QStringLiteral("evidence")).toObject().value(QStringLiteral("umbrellaCheckRun")).toObject().value(QStringLiteral("id")).toDouble(), double(failed.id));
        QCOMPARE(report.acted, 1);
        // Never a status: no POST to the statuses API, and the failed check run is re-run.
        int reruns = 0;
        for (const FakeRequest &r : fake.requests()) {
            QVERIFY2(!(r.method == "POST" && r.path.contains(QLatin1String("/statuses/"))), qPrintable(r.path));
            reruns += r.method == "POST" && r.path == QStringLiteral("/repos/acme/widget/actions/jobs/%1/rerun").arg(failed.id);
            QCOMPARE(r.authorization, QByteArray("Bearer " + SweeperToken));
        }
        QCOMPARE(reruns, 1);
        QVERIFY(fake.statuses(sha(1)).isEmpty());
        auto marker = m_state->value(QStringLiteral("rerun/%1/%2").arg(sha(1)).arg(failed.id));
        QVERIFY(marker && marker->has_value());
        QCOMPARE(QJsonDocument::fromJson(**marker).object().value(QStringLiteral("state")).toString(), QStringLiteral("posted"));
        // Another app's check run: refused, saying why, nothing written.
        const QJsonObject two = decisionFor(report, 2);
        QCOMPARE(two.value(QStringLiteral("decision")).toString(), QStringLiteral("error"));
        QVERIFY2(two.value(QStringLiteral("reason")).toString().contains(QLatin1String("circleci")), qPrintable(two.value(QStringLiteral("reason")).toString()));
        QVERIFY(!report.ok);

        // The re-run is queued: the next pass leaves it alone, and re-runs nothing twice.
        fake.clearRequests();
        const SweepReport again = runSweep(github, false);
        QCOMPARE(decisionFor(again, 1).value(QStringLiteral("decision")).toString(), QStringLiteral("umbrella-not-failure"));
        for (const FakeRequest &r : fake.requests())
            QVERIFY2(!r.path.endsWith(QLatin1String("/rerun")), qPrintable(r.path));
    }

    void compensatesOnlyStaleUmbrellasAcrossPages()
    {
        // 120 open pull requests: three pages of 50.
        for (int n = 1; n <= 120; ++n) {
            switch (n % 4) {
            case 0: addPr(n, QStringLiteral("success"), 10); break;                            // stale: compensate
            case 1: addPr(n, QStringLiteral("failure"), 10); break;                            // a sub-job failed
            case 2: addPr(n, QStringLiteral("success"), 2); break;                             // too young
            case 3: addPr(n, QStringLiteral("success"), 10, QStringLiteral("success")); break; // already green
            }
        }
        // PR 200: 70 newer unrelated statuses push its sub-jobs and umbrella to the last page,
        // where an old success of lint hides behind a newer failure on page 2.
        m_fake->addPullRequest({200, QString(), QStringLiteral("b200"), sha(200)});
        const QDateTime now = QDateTime::currentDateTimeUtc();
        for (const QString &c : SubJobs)
            m_fake->addStatus(sha(200), c, QStringLiteral("success"), now.addSecs(-3600));
        m_fake->addStatus(sha(200), Umbrella, QStringLiteral("failure"), now.addSecs(-3000));
        m_fake->addStatus(sha(200), SubJobs.first(), QStringLiteral("failure"), now.addSecs(-2900));
        for (int i = 0; i < 70; ++i)
            m_fake->addStatus(sha(200), QStringLiteral("other %1").arg(i), QStringLiteral("success"), now.addSecs(-60));

        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY2(report.ok, qPrintable(report.summary));
        QCOMPARE(report.examined, 121);
        QCOMPARE(report.acted, 30);
        QCOMPARE(report.failures, 0);
        QCOMPARE(report.decisions.size(), 121);
        for (int n = 1; n <= 120; ++n)
            QCOMPARE(umbrellaSuccesses(n), n % 4 == 0 ? 1 : 0);
        QCOMPARE(umbrellaSuccesses(200), 0);
        QCOMPARE(decisionFor(report, 4).value(QStringLiteral("decision")).toString(), QStringLiteral("compensate"));
        QCOMPARE(decisionFor(report, 4).value(QStringLiteral("evidence")).toObject().value(QStringLiteral("subJobs")).toArray().size(), 3);
        QCOMPARE(decisionFor(report, 5).value(QStringLiteral("decision")).toString(), QStringLiteral("sub-job-not-green"));
        QVERIFY(decisionFor(report, 5).value(QStringLiteral("reason")).toString().contains(SubJobs.first()));
        QCOMPARE(decisionFor(report, 6).value(QStringLiteral("decision")).toString(), QStringLiteral("too-young"));
        QCOMPARE(decisionFor(report, 7).value(QStringLiteral("decision")).toString(), QStringLiteral("umbrella-success"));
        QCOMPARE(decisionFor(report, 200).value(QStringLiteral("decision")).toString(), QStringLiteral("sub-job-not-green"));
        // Every request used the sweeper's own token; the forge's token was never sent.
        for (const FakeRequest &r : m_fake->requests())
            QCOMPARE(r.authorization, QByteArray("token " + SweeperToken));

        // The audit marker holds the evidence.
        auto latestUmbrella = m_fake->statuses(sha(4));
        qint64 failureId = 0;
        for (const FakeStatus &s : latestUmbrella) {
            if (s.context == Umbrella && s.state == QLatin1String("failure"))
                failureId = s.id;
        }
        auto marker = m_state->value(QStringLiteral("compensated/%1/%2").arg(sha(4)).arg(failureId));
        QVERIFY(marker && *marker);
        const QJsonObject audit = QJsonDocument::fromJson(**marker).object();
        QCOMPARE(audit.value(QStringLiteral("state")).toString(), QStringLiteral("posted"));
        QCOMPARE(audit.value(QStringLiteral("evidence")).toObject().value(QStringLiteral("subJobs")).toArray().size(), 3);

        // A second pass posts nothing: the umbrellas are success now.
        m_fake->clearRequests();
        const SweepReport again = runSweep(sweeper(), false);
        QVERIFY(again.ok);
        QCOMPARE(again.acted, 0);
        QCOMPARE(posts(), 0);
        for (int n = 4; n <= 120; n += 4)
            QCOMPARE(umbrellaSuccesses(n), 1);
    }

    void neverTwiceForTheSameUmbrellaStatus()
    {
        addPr(1, QStringLiteral("success"), 10);
        QCOMPARE(runSweep(sweeper(), false).acted, 1);
        // The forge loses the compensating status (or a read misses it): the audit still knows.
        // Re-create the forge's view without the success, same ids for the rest.
        const QList<FakeStatus> before = m_fake->statuses(sha(1));
        QCOMPARE(umbrellaSuccesses(1), 1);
        auto fresh = std::make_unique<FakeForge>();
        QVERIFY(fresh->start());
        fresh->setToken(SweeperToken);
        fresh->setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"), Workflow);
        fresh->addPullRequest({1, QString(), QStringLiteral("b1"), sha(1)});
        for (const FakeStatus &s : before) {
            if (s.state != QLatin1String("success") || s.context != Umbrella)
                fresh->addStatus(s.sha, s.context, s.state, s.updatedAt);
        }
        m_fake = std::move(fresh);
        auto forge = createInstance(m_gitea, "url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                  + tokenFile(QStringLiteral("forge"), ForgeToken).toUtf8() + "}\n");
        QVERIFY(forge);
        m_sweeper.reset();
        m_forge = std::move(*forge);
        QVERIFY(m_forge->initialize());
        m_sweeper = makeSweeper(enabled());
        QVERIFY(m_sweeper);
        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY(report.ok);
        QCOMPARE(report.acted, 0);
        QCOMPARE(posts(), 0);
        QCOMPARE(decisionFor(report, 1).value(QStringLiteral("decision")).toString(), QStringLiteral("already-compensated"));
    }

    // Two open pull requests of one commit (a branch proposed into two bases): the stale umbrella
    // of that commit is compensated once, and the other pull request is assessed after it and
    // sees the compensation (the fault campaign's seed 0xfc0e8b145ed6c35f posted two).
    void oneCompensationPerCommit()
    {
        addPr(1, QStringLiteral("success"), 10);
        m_fake->addPullRequest({2, QStringLiteral("PR 2"), QStringLiteral("b1-release"), sha(1), QStringLiteral("release")});
        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY2(report.ok, qPrintable(report.summary));
        QCOMPARE(report.acted, 1);
        QCOMPARE(umbrellaSuccesses(1), 1);
        QCOMPARE(posts(), 1);
        const QStringList decisions = {decisionFor(report, 1).value(QStringLiteral("decision")).toString(),
                                       decisionFor(report, 2).value(QStringLiteral("decision")).toString()};
        QCOMPARE(decisions.count(QStringLiteral("compensate")), 1);
        QCOMPARE(decisions.count(QStringLiteral("umbrella-success")), 1);
    }

    void dryRunPostsNothing()
    {
        addPr(1, QStringLiteral("success"), 10);
        addPr(2, QStringLiteral("success"), 10);
        const SweepReport report = runSweep(sweeper(), true);
        QVERIFY(report.ok);
        QCOMPARE(report.acted, 2);
        QCOMPARE(posts(), 0);
        QCOMPARE(umbrellaSuccesses(1), 0);
        QVERIFY(decisionFor(report, 1).value(QStringLiteral("reason")).toString().startsWith(QLatin1String("dry run")));
        QVERIFY(report.summary.contains(QLatin1String("nothing posted")));
    }

    void failClosed_data()
    {
        QTest::addColumn<QByteArray>("method");
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("status");
        QTest::addColumn<int>("failures");
        QTest::addColumn<int>("compensated"); // of PRs 1..4, all stale and green
        using K = FakeFault::Kind;
        QTest::newRow("status read fails for one PR") << QByteArray("GET") << QStringLiteral("commits/%1/statuses$").arg(sha(2)) << int(K::Status) << 500 << 1 << 3;
        QTest::newRow("malformed statuses for one PR") << QByteArray("GET") << QStringLiteral("commits/%1/statuses$").arg(sha(2)) << int(K::Malformed) << 200 << 1 << 3;
        QTest::newRow("statuses not a list for one PR") << QByteArray("GET") << QStringLiteral("commits/%1/statuses$").arg(sha(2)) << int(K::NotAList) << 200 << 1 << 3;
        QTest::newRow("post fails for one PR") << QByteArray("POST") << QStringLiteral("statuses/%1$").arg(sha(3)) << int(K::Status) << 502 << 1 << 3;
        QTest::newRow("post refused for one PR") << QByteArray("POST") << QStringLiteral("statuses/%1$").arg(sha(3)) << int(K::Status) << 403 << 1 << 3;
        QTest::newRow("pull request list fails") << QByteArray("GET") << QStringLiteral("/pulls$") << int(K::Status) << 503 << 1 << 0;
        QTest::newRow("pull request page malformed") << QByteArray("GET") << QStringLiteral("/pulls$") << int(K::NotAList) << 200 << 1 << 0;
        QTest::newRow("workflow unreadable") << QByteArray("GET") << QStringLiteral("/raw/") << int(K::Status) << 404 << 1 << 0;
    }

    void failClosed()
    {
        QFETCH(QByteArray, method);
        QFETCH(QString, path);
        QFETCH(int, kind);
        QFETCH(int, status);
        QFETCH(int, failures);
        QFETCH(int, compensated);
        for (int n = 1; n <= 4; ++n)
            addPr(n, QStringLiteral("success"), 10);
        FakeFault f;
        f.method = method;
        f.pathPattern = path;
        f.kind = FakeFault::Kind(kind);
        f.status = status;
        f.times = 1000;
        m_fake->addFault(f);
        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY2(!report.ok, qPrintable(report.summary));
        QCOMPARE(report.failures, failures);
        int posted = 0;
        for (int n = 1; n <= 4; ++n)
            posted += umbrellaSuccesses(n);
        QCOMPARE(posted, compensated);
        QCOMPARE(report.acted, compensated);
        if (compensated == 3 && method == "GET")
            QCOMPARE(umbrellaSuccesses(2), 0); // never green without having read
    }

    void disabledDoesNothing()
    {
        m_sweeper = makeSweeper("workflow: .gitea/workflows/ci.yml\numbrella_job: all-required\n");
        QVERIFY(m_sweeper);
        addPr(1, QStringLiteral("success"), 10);
        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY(report.ok);
        QVERIFY(report.summary.startsWith(QLatin1String("disabled")));
        QCOMPARE(m_fake->requestCount(), 0);
    }

    void noTokenNoFallback()
    {
        auto created = createInstance(m_umbrella, "enabled: true\nworkflow: .gitea/workflows/ci.yml\numbrella_job: all-required\n",
                                      fakeProject(), m_state.get(), qobject_cast<Forge *>(m_forge.get()));
        QVERIFY(!created);
        QVERIFY2(created.error().message.startsWith(QLatin1String("token:")), qPrintable(created.error().message));
        // A token file that cannot be read fails the pass; the forge's own token is not tried.
        m_sweeper = makeSweeper("enabled: true\ntoken: {file: /nonexistent/token}\nworkflow: .gitea/workflows/ci.yml\numbrella_job: all-required\n");
        QVERIFY(m_sweeper);
        addPr(1, QStringLiteral("success"), 10);
        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY(!report.ok);
        QCOMPARE(m_fake->requestCount(), 0);
    }

    void workflowAtTheHead()
    {
        m_sweeper = makeSweeper(enabled().replace("workflow_ref: target\n", "workflow_ref: head\n"));
        QVERIFY(m_sweeper);
        addPr(1, QStringLiteral("success"), 10);
        addPr(2, QStringLiteral("success"), 10);
        m_fake->setFile(sha(1), QStringLiteral(".gitea/workflows/ci.yml"), Workflow);
        // PR 2 changed its workflow: a new required job with no status yet.
        QByteArray changed = Workflow;
        changed.replace("needs: [lint, test]", "needs: [lint, test, audit]\n  audit:\n    runs-on: docker");
        m_fake->setFile(sha(2), QStringLiteral(".gitea/workflows/ci.yml"), changed);
        const SweepReport report = runSweep(sweeper(), false);
        QVERIFY2(report.ok, qPrintable(report.summary));
        QCOMPARE(umbrellaSuccesses(1), 1);
        QCOMPARE(umbrellaSuccesses(2), 0);
        QVERIFY(decisionFor(report, 2).value(QStringLiteral("reason")).toString().contains(QLatin1String("'CI / audit (pull_request)' has no status")));
    }
};

QTEST_GUILESS_MAIN(tst_CiUmbrella)
#include "tst_ciumbrella.moc"
