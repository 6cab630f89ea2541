// SPDX-License-Identifier: Apache-2.0
// The ci gate as the host runs it: the real plugin with the real gitea (and github) connector
// against the fake forge, with the host's deadline enforcement and a real state store.
#include "fakeforge.h"

#include <sluice/forge.h>
#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "ci-gate-forge-token-5550123";
const QString Sha = QStringLiteral("0123456789abcdef0123456789abcdef01234567");

const QByteArray Workflow = R"(name: CI
jobs:
  lint: {runs-on: docker}
  test:
    name: Unit tests
    strategy:
      matrix:
        go: ["1.22", "1.23"]
  all: {needs: [lint, test]}
)";

} // namespace

class tst_CiGate : public QObject
{
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    LoadedPlugin m_gitea;
    LoadedPlugin m_github;
    LoadedPlugin m_ci;
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<PluginInstance> m_forge;
    std::unique_ptr<TemporaryStore> m_store;
    std::unique_ptr<StateStore> m_state;

    GateVerdict judge(const QByteArray &settings = "workflow: .gitea/workflows/ci.yml\numbrella_job: all\n", Forge *forge = nullptr)
    {
        // A new instance per judgement, as after a restart: only the state store remembers.
        auto created = createInstance(m_ci, settings, fakeProject(), m_state.get(), forge ? forge : qobject_cast<Forge *>(m_forge.get()));
        if (!created)
            return GateVerdict::error(created.error().message);
        GateRequest request;
        request.task.headSha = Sha;
        return evaluateGate(*qobject_cast<Gate *>(created->get()), request);
    }

    // The github connector in front of a GitHub-flavoured fake forge.
    std::unique_ptr<PluginInstance> github(FakeForge &fake)
    {
        auto forge = createInstance(m_github, "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                  + m_dir.filePath(QStringLiteral("token")).toUtf8() + "}\nretry_backoff: 10ms\n");
        if (!forge || !(*forge)->initialize())
            return {};
        return std::move(*forge);
    }

private Q_SLOTS:
    void initTestCase()
    {
        auto gitea = loadPlugin(QStringLiteral(GITEA_PLUGIN_FILE));
        QVERIFY(gitea);
        m_gitea = *gitea;
        auto github = loadPlugin(QStringLiteral(GITHUB_PLUGIN_FILE));
        QVERIFY2(github, qPrintable(github ? QString() : github.error().toString()));
        m_github = *github;
        auto ci = loadPlugin(QStringLiteral(CI_PLUGIN_FILE));
        QVERIFY2(ci, qPrintable(ci ? QString() : ci.error().toString()));
        m_ci = *ci;
    }

    void init()
    {
        m_store = std::make_unique<TemporaryStore>();
        QVERIFY2(m_store->isValid(), qPrintable(m_store->error()));
        m_state = m_store->state(QStringLiteral("test-project"), QStringLiteral("ci"));
        m_fake = std::make_unique<FakeForge>();
        QVERIFY(m_fake->start());
        m_fake->setToken(Token);
        m_fake->setFile(Sha, QStringLiteral(".gitea/workflows/ci.yml"), Workflow);
        QFile token(m_dir.filePath(QStringLiteral("token")));
        QVERIFY(token.open(QIODevice::WriteOnly));
        token.write(Token);
        token.close();
        auto forge = createInstance(m_gitea, "url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                  + token.fileName().toUtf8() + "}\nretry_backoff: 10ms\n");
        QVERIFY(forge);
        m_forge = std::move(*forge);
        QVERIFY(m_forge->initialize());
    }

    void cleanup()
    {
        m_forge.reset();
        m_fake.reset();
        m_state.reset();
        m_store.reset();
    }

    void verdicts_data()
    {
        QTest::addColumn<QStringList>("statuses"); // "context=state" in posting order
        QTest::addColumn<int>("result");
        QTest::addColumn<QString>("reason");
        const QString lint = QStringLiteral("CI / lint (pull_request)");
        const QString t22 = QStringLiteral("CI / Unit tests (1.22) (pull_request)");
        const QString t23 = QStringLiteral("CI / Unit tests (1.23) (pull_request)");
        const QString all = QStringLiteral("CI / all (pull_request)");
        auto s = [](const QString &c, const char *state) { return c + QLatin1Char('=') + QLatin1String(state); };
        const int Pass = int(GateVerdict::Result::Pass);
        const int Fail = int(GateVerdict::Result::Fail);
        const int Wait = int(GateVerdict::Result::Wait);
        QTest::newRow("all green") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success"), s(all, "success")} << Pass << QStringLiteral("all 4 required");
        // Waiting, not failing: CI that has not finished is not red (issue 14).
        QTest::newRow("no statuses is pending") << QStringList{} << Wait << QStringLiteral("'CI / lint (pull_request)' has no status");
        QTest::newRow("one missing") << QStringList{s(lint, "success"), s(t22, "success"), s(all, "pending")} << Wait << QStringLiteral("'CI / Unit tests (1.23) (pull_request)' has no status");
        QTest::newRow("pending") << QStringList{s(lint, "pending"), s(t22, "success"), s(t23, "success")} << Wait << QStringLiteral("'CI / lint (pull_request)' is pending");
        QTest::newRow("pending beside a red one fails") << QStringList{s(lint, "pending"), s(t22, "failure"), s(t23, "success")} << Fail << QStringLiteral("'CI / Unit tests (1.22) (pull_request)' failed");
        QTest::newRow("skipped") << QStringList{s(lint, "skipped"), s(t22, "success"), s(t23, "success")} << Fail << QStringLiteral("was skipped");
        QTest::newRow("error") << QStringList{s(lint, "error"), s(t22, "success"), s(t23, "success")} << Fail << QStringLiteral("errored");
        QTest::newRow("newer failure over an older success") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success"), s(lint, "failure")} << Fail << QStringLiteral("'CI / lint (pull_request)' failed");
        QTest::newRow("newer success over an older failure") << QStringList{s(lint, "failure"), s(t22, "success"), s(t23, "success"), s(lint, "success"), s(all, "success")} << Pass << QString();
        // The forge refuses to merge with a red umbrella: the gate never passes it (issue 24.2).
        // Over green jobs it is stale, a repair's business: a wait, bounded by ci_timeout.
        QTest::newRow("umbrella red over green jobs waits") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success"), s(all, "failure")} << Wait << QStringLiteral("the umbrella 'CI / all (pull_request)' failed although no required job did");
        QTest::newRow("umbrella missing waits") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success")} << Wait << QStringLiteral("the umbrella 'CI / all (pull_request)' has no status");
        QTest::newRow("umbrella red and a job red fails") << QStringList{s(lint, "failure"), s(t22, "success"), s(t23, "success"), s(all, "failure")} << Fail << QStringLiteral("'CI / lint (pull_request)' failed");
    }

    void verdicts()
    {
        QFETCH(QStringList, statuses);
        QFETCH(int, result);
        QFETCH(QString, reason);
        const QDateTime t0 = QDateTime::currentDateTimeUtc().addSecs(-600);
        int i = 0;
        for (const QString &e : statuses)
            m_fake->addStatus(Sha, e.section(QLatin1Char('='), 0, 0), e.section(QLatin1Char('='), 1), t0.addSecs(++i));
        const GateVerdict v = judge();
        QCOMPARE(int(v.result()), result);
        QVERIFY2(v.reason().contains(reason), qPrintable(v.reason()));
        if (v.result() == GateVerdict::Result::Fail)
            QVERIFY(!v.findings().isEmpty());
        if (v.result() == GateVerdict::Result::Wait) {
            QCOMPARE(v.retryAfter(), std::chrono::milliseconds(60'000)); // retry_after's default
            QVERIFY(v.evidence().value(QStringLiteral("pending")).toArray().size() > 0);
        }
    }

    // ci_timeout counts from the first judgement of the head, kept in the state store: a new
    // instance (a restart) continues the count, and past it the gate fails naming what is pending.
    void ciTimeoutSurvivesARestartAndNamesThePending()
    {
        const QByteArray settings = "workflow: .gitea/workflows/ci.yml\numbrella_job: all\nci_timeout: 1h\nretry_after: 5s\n";
        m_fake->addStatus(Sha, QStringLiteral("CI / lint (pull_request)"), QStringLiteral("success"));
        m_fake->addStatus(Sha, QStringLiteral("CI / Unit tests (1.22) (pull_request)"), QStringLiteral("pending"));
        GateVerdict first = judge(settings);
        QCOMPARE(first.result(), GateVerdict::Result::Wait);
        QCOMPARE(first.retryAfter(), std::chrono::milliseconds(5000));
        const QString firstAt = first.evidence().value(QStringLiteral("firstJudgedAt")).toString();
        QVERIFY(!firstAt.isEmpty());
        // Another instance, as a restarted daemon builds it: the same first-judged time.
        GateVerdict again = judge(settings);
        QCOMPARE(again.result(), GateVerdict::Result::Wait);
        QCOMPARE(again.evidence().value(QStringLiteral("firstJudgedAt")).toString(), firstAt);
        // Two hours ago, as far as the store knows: past the 1 h timeout.
        QVERIFY(m_state->setValue(QStringLiteral("first-judged/") + Sha,
                                  QDateTime::currentDateTimeUtc().addSecs(-7200).toString(Qt::ISODateWithMs).toLatin1()));
        const GateVerdict late = judge(settings);
        QCOMPARE(late.result(), GateVerdict::Result::Fail);
        QVERIFY2(late.reason().contains(QLatin1String("within ci_timeout")), qPrintable(late.reason()));
        QVERIFY2(late.reason().contains(QLatin1String("'CI / Unit tests (1.22) (pull_request)' is pending")), qPrintable(late.reason()));
        QVERIFY2(late.reason().contains(QLatin1String("'CI / Unit tests (1.23) (pull_request)' has no status")), qPrintable(late.reason()));
        // A final verdict forgets the time: the next judgement of the head starts afresh.
        auto kept = m_state->value(QStringLiteral("first-judged/") + Sha);
        QVERIFY(kept);
        QVERIFY(!kept->has_value());
    }

    // GitHub: a commit status and a check run of the same name are two requirements; neither
    // hides the other, whichever is newer, and ids of the two kinds are never compared (24.1).
    void gitHubStatusesAndCheckRunsAreSeparateRequirements_data()
    {
        QTest::addColumn<QString>("statusState");
        QTest::addColumn<QString>("runConclusion"); // empty: in progress
        QTest::addColumn<bool>("statusFirst");
        QTest::addColumn<int>("result");
        const int Pass = int(GateVerdict::Result::Pass);
        const int Fail = int(GateVerdict::Result::Fail);
        const int Wait = int(GateVerdict::Result::Wait);
        QTest::newRow("later green status does not hide a red check run") << "success" << "failure" << false << Fail;
        QTest::newRow("later green check run does not hide a red status") << "failure" << "success" << true << Fail;
        QTest::newRow("both green") << "success" << "success" << true << Pass;
        QTest::newRow("green status, check run still running") << "success" << "" << true << Wait;
        QTest::newRow("green check run, status pending") << "pending" << "success" << true << Wait;
    }

    void gitHubStatusesAndCheckRunsAreSeparateRequirements()
    {
        QFETCH(QString, statusState);
        QFETCH(QString, runConclusion);
        QFETCH(bool, statusFirst);
        QFETCH(int, result);
        FakeForge fake(FakeForge::Flavor::GitHub);
        QVERIFY(fake.start());
        fake.setToken(Token);
        auto forge = github(fake);
        QVERIFY(forge);
        const QDateTime t0 = QDateTime::currentDateTimeUtc().addSecs(-600);
        const QString name = QStringLiteral("build");
        auto run = [&](const QDateTime &at) {
            fake.addCheckRun(Sha, name, runConclusion.isEmpty() ? QStringLiteral("in_progress") : QStringLiteral("completed"), runConclusion, at);
        };
        if (statusFirst) {
            fake.addStatus(Sha, name, statusState, t0);
            run(t0.addSecs(60));
        } else {
            run(t0);
            fake.addStatus(Sha, name, statusState, t0.addSecs(60));
        }
        const GateVerdict v = judge("contexts: [build]\n", qobject_cast<Forge *>(forge.get()));
        QCOMPARE(int(v.result()), result);
        if (result != int(GateVerdict::Result::Pass)) {
            const QJsonObject judged = v.evidence().value(QStringLiteral("contexts")).toArray().at(0).toObject();
            QVERIFY(judged.contains(QStringLiteral("status")));
            QVERIFY(judged.contains(QStringLiteral("checkRun")));
        }
    }

    // A queued check run has no started_at (null, as GitHub documents it): an optional one never
    // spoils the read, a required one is pending (24.4).
    void gitHubQueuedCheckRunWithoutStartTime()
    {
        FakeForge fake(FakeForge::Flavor::GitHub);
        QVERIFY(fake.start());
        fake.setToken(Token);
        auto forge = github(fake);
        QVERIFY(forge);
        fake.addCheckRun(Sha, QStringLiteral("build"), QStringLiteral("completed"), QStringLiteral("success"));
        fake.addCheckRun(Sha, QStringLiteral("optional docs"), QStringLiteral("queued"), QString());
        QCOMPARE(judge("contexts: [build]\n", qobject_cast<Forge *>(forge.get())).result(), GateVerdict::Result::Pass);
        fake.addCheckRun(Sha, QStringLiteral("lint"), QStringLiteral("queued"), QString());
        const GateVerdict v = judge("contexts: [build, lint]\n", qobject_cast<Forge *>(forge.get()));
        QCOMPARE(v.result(), GateVerdict::Result::Wait);
        QVERIFY2(v.reason().contains(QLatin1String("check run 'lint' is pending")), qPrintable(v.reason()));
    }

    // Skipped and neutral check runs: red by default, passing with required_semantics: forge,
    // as GitHub's branch protection takes them (24.5). A commit status stays success-only.
    void skippedAndNeutralFollowTheSetting_data()
    {
        QTest::addColumn<QString>("conclusion");
        QTest::addColumn<QByteArray>("semantics");
        QTest::addColumn<int>("result");
        QTest::newRow("skipped, strict") << "skipped" << QByteArray("strict") << int(GateVerdict::Result::Fail);
        QTest::newRow("skipped, forge") << "skipped" << QByteArray("forge") << int(GateVerdict::Result::Pass);
        QTest::newRow("neutral, strict") << "neutral" << QByteArray("strict") << int(GateVerdict::Result::Fail);
        QTest::newRow("neutral, forge") << "neutral" << QByteArray("forge") << int(GateVerdict::Result::Pass);
        QTest::newRow("cancelled, forge") << "cancelled" << QByteArray("forge") << int(GateVerdict::Result::Fail);
    }

    void skippedAndNeutralFollowTheSetting()
    {
        QFETCH(QString, conclusion);
        QFETCH(QByteArray, semantics);
        QFETCH(int, result);
        FakeForge fake(FakeForge::Flavor::GitHub);
        QVERIFY(fake.start());
        fake.setToken(Token);
        auto forge = github(fake);
        QVERIFY(forge);
        fake.addCheckRun(Sha, QStringLiteral("build"), QStringLiteral("completed"), QStringLiteral("success"));
        fake.addCheckRun(Sha, QStringLiteral("docs"), QStringLiteral("completed"), conclusion);
        const GateVerdict v = judge("contexts: [build, docs]\nrequired_semantics: " + semantics + "\n", qobject_cast<Forge *>(forge.get()));
        QCOMPARE(int(v.result()), result);
        // A status of the same name is never skipped-as-success: only check runs are.
        if (result == int(GateVerdict::Result::Pass)) {
            fake.addStatus(Sha, QStringLiteral("docs"), QStringLiteral("failure"));
            QCOMPARE(judge("contexts: [build, docs]\nrequired_semantics: forge\n", qobject_cast<Forge *>(forge.get())).result(), GateVerdict::Result::Fail);
        }
        QVERIFY(!createInstance(m_ci, "contexts: [a]\nrequired_semantics: lenient\n", fakeProject(), nullptr, nullptr));
    }

    // The umbrella on GitHub is a check run: a success status posted under its name does not
    // make the gate pass while the check run is red, since GitHub would refuse the merge (24.2).
    void gitHubUmbrellaStatusNeverCoversItsCheckRun()
    {
        FakeForge fake(FakeForge::Flavor::GitHub);
        QVERIFY(fake.start());
        fake.setToken(Token);
        auto forge = github(fake);
        QVERIFY(forge);
        for (const char *job : {"lint", "test"})
            fake.addCheckRun(Sha, QString::fromLatin1(job), QStringLiteral("completed"), QStringLiteral("success"));
        fake.addCheckRun(Sha, QStringLiteral("all-required"), QStringLiteral("completed"), QStringLiteral("failure"));
        fake.addStatus(Sha, QStringLiteral("all-required"), QStringLiteral("success"));
        const QByteArray settings = "contexts: [lint, test]\numbrella_context: all-required\n";
        const GateVerdict v = judge(settings, qobject_cast<Forge *>(forge.get()));
        QCOMPARE(v.result(), GateVerdict::Result::Wait);
        QVERIFY2(v.reason().contains(QLatin1String("check run 'all-required' failed")), qPrintable(v.reason()));
        fake.addCheckRun(Sha, QStringLiteral("all-required"), QStringLiteral("completed"), QStringLiteral("success")); // a re-run, newer id
        QCOMPARE(judge(settings, qobject_cast<Forge *>(forge.get())).result(), GateVerdict::Result::Pass);
    }

    void readFailuresAreErrorsNeverPass_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("status");
        QTest::newRow("statuses 500") << QStringLiteral("/statuses$") << int(FakeFault::Kind::Status) << 500;
        QTest::newRow("statuses not JSON") << QStringLiteral("/statuses$") << int(FakeFault::Kind::Malformed) << 200;
        QTest::newRow("statuses short page") << QStringLiteral("/statuses$") << int(FakeFault::Kind::ShortPage) << 200;
        QTest::newRow("statuses 503 (after the retries)") << QStringLiteral("/statuses$") << int(FakeFault::Kind::Status) << 503;
        QTest::newRow("workflow missing") << QStringLiteral("/raw/") << int(FakeFault::Kind::Status) << 404;
    }

    void readFailuresAreErrorsNeverPass()
    {
        QFETCH(QString, path);
        QFETCH(int, kind);
        QFETCH(int, status);
        for (int i = 0; i < 60; ++i) // two pages, all green
            m_fake->addStatus(Sha, QStringLiteral("other %1").arg(i), QStringLiteral("success"));
        for (const char *c : {"CI / lint (pull_request)", "CI / Unit tests (1.22) (pull_request)", "CI / Unit tests (1.23) (pull_request)", "CI / all (pull_request)"})
            m_fake->addStatus(Sha, QString::fromLatin1(c), QStringLiteral("success"));
        QCOMPARE(judge().result(), GateVerdict::Result::Pass);
        FakeFault f;
        f.pathPattern = path;
        f.kind = FakeFault::Kind(kind);
        f.status = status;
        f.page = kind == int(FakeFault::Kind::ShortPage) ? 1 : 0;
        f.times = 1000;
        m_fake->addFault(f);
        const GateVerdict v = judge();
        QCOMPARE(v.result(), GateVerdict::Result::Error);
    }

    void configurationErrors()
    {
        QVERIFY(!createInstance(m_ci, "umbrella_job: all\n", fakeProject(), nullptr, nullptr)); // no workflow, no contexts
        QVERIFY(!createInstance(m_ci, "workflow: ci.yml\n", fakeProject(), nullptr, nullptr));   // no umbrella job
        m_fake->addStatus(Sha, QStringLiteral("CI / lint (pull_request)"), QStringLiteral("success"));
        // An exclusion that matches nothing derived is an error (a renamed job is noticed).
        const GateVerdict v = judge("workflow: .gitea/workflows/ci.yml\numbrella_job: all\nexcluded_contexts: [\"CI / gone (pull_request)\"]\n");
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY(v.reason().contains(QLatin1String("CI / gone (pull_request)")));
        // No forge: error, never pass.
        auto created = createInstance(m_ci, "contexts: [a]\n", fakeProject(), nullptr, nullptr);
        QVERIFY(created);
        GateRequest request;
        request.task.headSha = Sha;
        QCOMPARE(evaluateGate(*qobject_cast<Gate *>(created->get()), request).result(), GateVerdict::Result::Error);
    }
};

QTEST_GUILESS_MAIN(tst_CiGate)
#include "tst_cigate.moc"
