// SPDX-License-Identifier: Apache-2.0
// The ci-drift report: the real plugin with the real gitea connector and the fake forge's
// branch protection.
#include "fakeforge.h"

#include <sluice/forge.h>
#include <sluice/sweeper.h>
#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Workflow = "name: CI\njobs:\n  lint: {}\n  test: {}\n  all-required:\n    needs: [lint, test]\n";

QStringList contexts(std::initializer_list<const char *> names)
{
    QStringList out;
    for (const char *n : names)
        out.append(QStringLiteral("CI / %1 (pull_request)").arg(QLatin1String(n)));
    return out;
}

} // namespace

class tst_CiDrift : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void drift_data()
    {
        QTest::addColumn<int>("protection"); // 0: unprotected, 1: protected with the list, 2: read fails
        QTest::addColumn<QStringList>("required");
        QTest::addColumn<bool>("ok");
        QTest::addColumn<QString>("finding");
        QTest::newRow("umbrella protected") << 1 << contexts({"all-required"}) << true << QStringLiteral("ok-umbrella");
        QTest::newRow("every sub-job protected") << 1 << contexts({"lint", "test"}) << true << QStringLiteral("ok-derived");
        QTest::newRow("a stale protected context") << 1 << contexts({"all-required", "old-job"}) << false << QStringLiteral("stale");
        QTest::newRow("only some sub-jobs protected") << 1 << contexts({"lint"}) << false << QStringLiteral("unprotected");
        QTest::newRow("branch not protected") << 0 << QStringList() << false << QStringLiteral("unprotected");
        QTest::newRow("protection unreadable") << 2 << QStringList() << false << QStringLiteral("error");
    }

    void drift()
    {
        QFETCH(int, protection);
        QFETCH(QStringList, required);
        QFETCH(bool, ok);
        QFETCH(QString, finding);
        FakeForge fake;
        QVERIFY(fake.start());
        fake.setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"), Workflow);
        if (protection == 1)
            fake.setProtection(QStringLiteral("main"), required);
        if (protection == 2) {
            FakeFault f;
            f.pathPattern = QStringLiteral("branch_protections");
            f.status = 500;
            f.times = 100;
            fake.addFault(f);
        }
        QTemporaryDir dir;
        QFile token(dir.filePath(QStringLiteral("t")));
        QVERIFY(token.open(QIODevice::WriteOnly));
        token.write("drift-token");
        token.close();
        auto gitea = loadPlugin(QStringLiteral(GITEA_PLUGIN_FILE));
        auto driftPlugin = loadPlugin(QStringLiteral(DRIFT_PLUGIN_FILE));
        QVERIFY(gitea && driftPlugin);
        auto forge = createInstance(*gitea, "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\nretry_backoff: 10ms\ntoken: {file: "
                                                + token.fileName().toUtf8() + "}\n");
        QVERIFY(forge && (*forge)->initialize());
        auto created = createInstance(*driftPlugin, "workflow: .gitea/workflows/ci.yml\numbrella_job: all-required\n", fakeProject(), nullptr,
                                      qobject_cast<Forge *>(forge->get()));
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        auto *sweeper = qobject_cast<Sweeper *>(created->get());
        std::unique_ptr<SweepRun> run = sweeper->sweep(SweepOptions{});
        QEventLoop loop;
        connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
        run->start();
        if (!run->isFinished())
            loop.exec();
        const SweepReport report = run->report();
        QCOMPARE(report.ok, ok);
        QCOMPARE(report.acted, 0);
        bool seen = false;
        for (const QJsonValue &v : report.decisions)
            seen |= v.toObject().value(QStringLiteral("decision")).toString() == finding;
        QVERIFY2(seen, qPrintable(report.summary));
        for (const FakeRequest &r : fake.requests())
            QCOMPARE(r.method, QByteArray("GET")); // a report never writes
    }

    // GitHub's protection takes a skipped or neutral check run as passing; Sluice's default does
    // not. The report says so, whichever way the project chose, without calling it drift (24.5).
    void semanticsDifferenceIsReported_data()
    {
        QTest::addColumn<bool>("github");
        QTest::addColumn<QByteArray>("semantics");
        QTest::addColumn<QString>("finding"); // empty: none
        QTest::newRow("github, strict") << true << QByteArray("strict") << QStringLiteral("semantics-stricter");
        QTest::newRow("github, forge") << true << QByteArray("forge") << QStringLiteral("semantics-as-forge");
        QTest::newRow("gitea, forge") << false << QByteArray("forge") << QStringLiteral("semantics-as-forge");
        QTest::newRow("gitea, strict") << false << QByteArray("strict") << QString();
    }

    void semanticsDifferenceIsReported()
    {
        QFETCH(bool, github);
        QFETCH(QByteArray, semantics);
        QFETCH(QString, finding);
        FakeForge fake(github ? FakeForge::Flavor::GitHub : FakeForge::Flavor::Gitea);
        QVERIFY(fake.start());
        fake.setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"), Workflow);
        fake.setProtection(QStringLiteral("main"), contexts({"all-required"}));
        QTemporaryDir dir;
        QFile token(dir.filePath(QStringLiteral("t")));
        QVERIFY(token.open(QIODevice::WriteOnly));
        token.write("drift-token");
        token.close();
        auto connector = loadPlugin(github ? QStringLiteral(GITHUB_PLUGIN_FILE) : QStringLiteral(GITEA_PLUGIN_FILE));
        auto driftPlugin = loadPlugin(QStringLiteral(DRIFT_PLUGIN_FILE));
        QVERIFY(connector && driftPlugin);
        auto forge = createInstance(*connector, "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\nretry_backoff: 10ms\ntoken: {file: "
                                                    + token.fileName().toUtf8() + "}\n");
        QVERIFY(forge && (*forge)->initialize());
        auto created = createInstance(*driftPlugin, "workflow: .gitea/workflows/ci.yml\numbrella_job: all-required\nrequired_semantics: " + semantics + "\n",
                                      fakeProject(), nullptr, qobject_cast<Forge *>(forge->get()));
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        std::unique_ptr<SweepRun> run = qobject_cast<Sweeper *>(created->get())->sweep(SweepOptions{});
        QEventLoop loop;
        connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
        run->start();
        if (!run->isFinished())
            loop.exec();
        const SweepReport report = run->report();
        QVERIFY2(report.ok, qPrintable(report.summary)); // a chosen semantics is not drift
        QString seen;
        for (const QJsonValue &v : report.decisions) {
            if (v.toObject().value(QStringLiteral("context")).toString() == QLatin1String("required_semantics"))
                seen = v.toObject().value(QStringLiteral("decision")).toString();
        }
        QCOMPARE(seen, finding);
    }
};

QTEST_GUILESS_MAIN(tst_CiDrift)
#include "tst_cidrift.moc"
