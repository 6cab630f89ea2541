// SPDX-License-Identifier: Apache-2.0
// The ci gate as the host runs it: the real plugin with the real gitea connector against
// the fake forge, with the host's deadline enforcement.
#include "fakeforge.h"

#include <sluice/forge.h>
#include <sluice/testsupport.h>

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
    LoadedPlugin m_ci;
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<PluginInstance> m_forge;

    GateVerdict judge(const QByteArray &settings = "workflow: .gitea/workflows/ci.yml\numbrella_job: all\n", Forge *forge = nullptr)
    {
        auto created = createInstance(m_ci, settings, fakeProject(), nullptr, forge ? forge : qobject_cast<Forge *>(m_forge.get()));
        if (!created)
            return GateVerdict::error(created.error().message);
        GateRequest request;
        request.task.headSha = Sha;
        return evaluateGate(*qobject_cast<Gate *>(created->get()), request);
    }

private Q_SLOTS:
    void initTestCase()
    {
        auto gitea = loadPlugin(QStringLiteral(GITEA_PLUGIN_FILE));
        QVERIFY(gitea);
        m_gitea = *gitea;
        auto ci = loadPlugin(QStringLiteral(CI_PLUGIN_FILE));
        QVERIFY2(ci, qPrintable(ci ? QString() : ci.error().toString()));
        m_ci = *ci;
    }

    void init()
    {
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
    }

    void verdicts_data()
    {
        QTest::addColumn<QStringList>("statuses"); // "context=state" in posting order
        QTest::addColumn<int>("result");
        QTest::addColumn<QString>("reason");
        const QString lint = QStringLiteral("CI / lint (pull_request)");
        const QString t22 = QStringLiteral("CI / Unit tests (1.22) (pull_request)");
        const QString t23 = QStringLiteral("CI / Unit tests (1.23) (pull_request)");
        auto s = [](const QString &c, const char *state) { return c + QLatin1Char('=') + QLatin1String(state); };
        QTest::newRow("all green") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success")} << int(GateVerdict::Result::Pass) << QStringLiteral("all 3 required");
        QTest::newRow("no statuses is pending") << QStringList{} << int(GateVerdict::Result::Fail) << QStringLiteral("'CI / lint (pull_request)' has no status");
        QTest::newRow("one missing") << QStringList{s(lint, "success"), s(t22, "success")} << int(GateVerdict::Result::Fail) << QStringLiteral("'CI / Unit tests (1.23) (pull_request)' has no status");
        QTest::newRow("pending") << QStringList{s(lint, "pending"), s(t22, "success"), s(t23, "success")} << int(GateVerdict::Result::Fail) << QStringLiteral("'CI / lint (pull_request)' is pending");
        QTest::newRow("skipped") << QStringList{s(lint, "skipped"), s(t22, "success"), s(t23, "success")} << int(GateVerdict::Result::Fail) << QStringLiteral("was skipped");
        QTest::newRow("error") << QStringList{s(lint, "error"), s(t22, "success"), s(t23, "success")} << int(GateVerdict::Result::Fail) << QStringLiteral("errored");
        QTest::newRow("newer failure over an older success") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success"), s(lint, "failure")} << int(GateVerdict::Result::Fail) << QStringLiteral("'CI / lint (pull_request)' failed");
        QTest::newRow("newer success over an older failure") << QStringList{s(lint, "failure"), s(t22, "success"), s(t23, "success"), s(lint, "success")} << int(GateVerdict::Result::Pass) << QString();
        QTest::newRow("umbrella red does not matter to the gate") << QStringList{s(lint, "success"), s(t22, "success"), s(t23, "success"), s(QStringLiteral("CI / all (pull_request)"), "failure")} << int(GateVerdict::Result::Pass) << QString();
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
    }

    void readFailuresAreErrorsNeverPass_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("status");
        QTest::newRow("statuses 500") << QStringLiteral("/statuses$") << int(FakeFault::Kind::Status) << 500;
        QTest::newRow("statuses not JSON") << QStringLiteral("/statuses$") << int(FakeFault::Kind::Malformed) << 200;
        QTest::newRow("statuses short page") << QStringLiteral("/statuses$") << int(FakeFault::Kind::ShortPage) << 200;
        QTest::newRow("workflow missing") << QStringLiteral("/raw/") << int(FakeFault::Kind::Status) << 404;
    }

    void readFailuresAreErrorsNeverPass()
    {
        QFETCH(QString, path);
        QFETCH(int, kind);
        QFETCH(int, status);
        for (int i = 0; i < 60; ++i) // two pages, all green
            m_fake->addStatus(Sha, QStringLiteral("other %1").arg(i), QStringLiteral("success"));
        for (const char *c : {"CI / lint (pull_request)", "CI / Unit tests (1.22) (pull_request)", "CI / Unit tests (1.23) (pull_request)"})
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
