// SPDX-License-Identifier: Apache-2.0
// `sluice sweep ci-umbrella --project P` end to end: the real executable, the real plugins
// copied into a plugin directory, a real SQLite store, and the fake forge on loopback.
// The exit status is the contract an operator's timer relies on.
#include "fakeforge.h"

#include <sluice/testsupport.h>

#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray SweeperToken = "cli-sweeper-token-24680";
const QString Umbrella = QStringLiteral("CI / all-required (pull_request)");

QString sha(int i)
{
    return QStringLiteral("%1").arg(i, 40, 16, QLatin1Char('a'));
}

struct Run {
    int exitCode = -1;
    QString out;
    QString err;
};

} // namespace

class tst_SweepCli : public QObject
{
    Q_OBJECT

private:
    PluginDirectory m_plugins;
    std::unique_ptr<TemporaryConfig> m_config;
    std::unique_ptr<FakeForge> m_fake;

    Run sluice(QStringList arguments)
    {
        arguments << QStringLiteral("--config") << m_config->path();
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.remove(QStringLiteral("SLUICE_PLUGIN_PATH"));
        p.setProcessEnvironment(env);
        p.start(QStringLiteral(SLUICE_EXECUTABLE), arguments);
        p.waitForFinished(120000);
        return Run{p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
                   QString::fromUtf8(p.readAllStandardError())};
    }

    void addPr(int n, const char *lintState)
    {
        m_fake->addPullRequest({n, QString(), QStringLiteral("b%1").arg(n), sha(n)});
        const QDateTime t = QDateTime::currentDateTimeUtc().addSecs(-1200);
        m_fake->addStatus(sha(n), QStringLiteral("CI / lint (pull_request)"), QString::fromLatin1(lintState), t);
        m_fake->addStatus(sha(n), QStringLiteral("CI / test (pull_request)"), QStringLiteral("success"), t);
        m_fake->addStatus(sha(n), Umbrella, QStringLiteral("failure"), t.addSecs(60));
    }

    int compensations(int n) const
    {
        int count = 0;
        for (const FakeStatus &s : m_fake->statuses(sha(n)))
            count += s.context == Umbrella && s.state == QLatin1String("success");
        return count;
    }

private Q_SLOTS:
    void initTestCase()
    {
        m_plugins.add(QFileInfo(QStringLiteral(GITEA_PLUGIN_FILE)).path(), QFileInfo(QStringLiteral(GITEA_PLUGIN_FILE)).fileName());
        m_plugins.add(QFileInfo(QStringLiteral(UMBRELLA_PLUGIN_FILE)).path(), QFileInfo(QStringLiteral(UMBRELLA_PLUGIN_FILE)).fileName());
    }

    void init()
    {
        m_fake = std::make_unique<FakeForge>();
        QVERIFY(m_fake->start());
        m_fake->setToken(SweeperToken);
        m_fake->setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"),
                        "name: CI\njobs:\n  lint: {runs-on: x}\n  test: {runs-on: x}\n  all-required:\n    needs: [lint, test]\n");
        m_config = std::make_unique<TemporaryConfig>();
        const QString forgeToken = m_config->writeFile(QStringLiteral("secrets/forge"), "forge-token-13579");
        const QString sweeperToken = m_config->writeFile(QStringLiteral("secrets/sweeper"), SweeperToken);
        m_config->writeHostFile("state_dir: " + m_config->path().toUtf8() + "/state\nplugin_dirs: [" + m_plugins.path().toUtf8()
                                + "]\nhttp:\n  enabled: false\n");
        const QByteArray url = m_fake->url().toString().toUtf8();
        m_config->writeProject(QStringLiteral("widget"),
                               "id: widget\nrepository:\n  url: " + url + "acme/widget\n  target_branch: main\n  forge: gitea\n"
                               "stages:\n  - name: development\n  - name: done\n"
                               "instances:\n"
                               "  gitea:\n    plugin: gitea\n    settings:\n      url: " + url + "\n      repository: acme/widget\n"
                               "      token: {file: " + forgeToken.toUtf8() + "}\n      retry_backoff: 10ms\n"
                               "  ci-umbrella:\n    plugin: ci-umbrella\n    settings:\n      enabled: true\n"
                               "      token: {file: " + sweeperToken.toUtf8() + "}\n"
                               "      workflow: .gitea/workflows/ci.yml\n      umbrella_job: all-required\n      workflow_ref: target\n");
    }

    void cleanup()
    {
        m_fake.reset();
        m_config.reset();
    }

    void compensatesAndAudits()
    {
        addPr(1, "success");
        addPr(2, "failure");
        const Run dry = sluice({QStringLiteral("sweep"), QStringLiteral("ci-umbrella"), QStringLiteral("--project"), QStringLiteral("widget"), QStringLiteral("--dry-run")});
        QVERIFY2(dry.exitCode == 0, qPrintable(dry.out + dry.err));
        QCOMPARE(compensations(1), 0);
        QVERIFY2(dry.out.contains(QLatin1String("dry run, would post")), qPrintable(dry.out));

        const Run run = sluice({QStringLiteral("sweep"), QStringLiteral("ci-umbrella"), QStringLiteral("--project"), QStringLiteral("widget"), QStringLiteral("--json")});
        QVERIFY2(run.exitCode == 0, qPrintable(run.out + run.err));
        const QJsonObject o = QJsonDocument::fromJson(run.out.toUtf8()).object();
        QCOMPARE(o.value(QStringLiteral("ok")).toBool(), true);
        QCOMPARE(o.value(QStringLiteral("acted")).toInt(), 1);
        QCOMPARE(o.value(QStringLiteral("decisions")).toArray().size(), 2);
        QCOMPARE(compensations(1), 1);
        QCOMPARE(compensations(2), 0);

        // The write is in the audit table with its evidence.
        {
            QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("audit-check"));
            db.setDatabaseName(m_config->path() + QStringLiteral("/state/sluice.db"));
            QVERIFY(db.open());
            QSqlQuery q(db);
            QVERIFY(q.exec(QStringLiteral("SELECT actor, action, details FROM audit WHERE action = 'sweep-write'")));
            QVERIFY(q.next());
            QCOMPARE(q.value(0).toString(), QStringLiteral("sweeper:ci-umbrella"));
            const QJsonObject details = QJsonDocument::fromJson(q.value(2).toByteArray()).object();
            QCOMPARE(details.value(QStringLiteral("evidence")).toObject().value(QStringLiteral("subJobs")).toArray().size(), 2);
            QVERIFY(!q.next());
        }
        QSqlDatabase::removeDatabase(QStringLiteral("audit-check"));
    }

    void failureExitsNonZero_data()
    {
        QTest::addColumn<QByteArray>("method");
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("status");
        QTest::newRow("status read fails") << QByteArray("GET") << QStringLiteral("commits/%1/statuses$").arg(sha(2)) << int(FakeFault::Kind::Status) << 500;
        QTest::newRow("malformed statuses") << QByteArray("GET") << QStringLiteral("commits/%1/statuses$").arg(sha(2)) << int(FakeFault::Kind::Malformed) << 200;
        QTest::newRow("post fails") << QByteArray("POST") << QStringLiteral("statuses/%1$").arg(sha(2)) << int(FakeFault::Kind::Status) << 500;
        QTest::newRow("pull requests unreadable") << QByteArray("GET") << QStringLiteral("/pulls$") << int(FakeFault::Kind::Malformed) << 200;
    }

    void failureExitsNonZero()
    {
        QFETCH(QByteArray, method);
        QFETCH(QString, path);
        QFETCH(int, kind);
        QFETCH(int, status);
        addPr(1, "success");
        addPr(2, "success");
        FakeFault f;
        f.method = method;
        f.pathPattern = path;
        f.kind = FakeFault::Kind(kind);
        f.status = status;
        f.times = 1000;
        m_fake->addFault(f);
        const Run run = sluice({QStringLiteral("sweep"), QStringLiteral("ci-umbrella"), QStringLiteral("--project"), QStringLiteral("widget")});
        QCOMPARE(run.exitCode, 1);
        QVERIFY2(run.out.contains(QLatin1String("ci-umbrella in widget FAILED")), qPrintable(run.out));
        QCOMPARE(compensations(2), 0); // no false green
        // The other pull request is still assessed (when the list could be read).
        QCOMPARE(compensations(1), path.endsWith(QLatin1String("/pulls$")) ? 0 : 1);
    }

    void usage()
    {
        QCOMPARE(sluice({QStringLiteral("sweep")}).exitCode, 2);
        // Without --project: every project that has the instance (the systemd unit's form).
        addPr(1, "success");
        const Run all = sluice({QStringLiteral("sweep"), QStringLiteral("ci-umbrella"), QStringLiteral("--json")});
        QVERIFY2(all.exitCode == 0, qPrintable(all.out + all.err));
        const QJsonObject o = QJsonDocument::fromJson(all.out.toUtf8()).object();
        QCOMPARE(o.value(QStringLiteral("ok")).toBool(), true);
        QCOMPARE(o.value(QStringLiteral("passes")).toArray().size(), 1);
        QCOMPARE(compensations(1), 1);
        QCOMPARE(sluice({QStringLiteral("sweep"), QStringLiteral("nothing-like-this")}).exitCode, 1);
        const Run wrong = sluice({QStringLiteral("sweep"), QStringLiteral("gitea"), QStringLiteral("--project"), QStringLiteral("widget")});
        QCOMPARE(wrong.exitCode, 1);
        QVERIFY(wrong.err.contains(QLatin1String("is a forge, not a sweeper")));
        QCOMPARE(sluice({QStringLiteral("sweep"), QStringLiteral("ci-umbrella"), QStringLiteral("--project"), QStringLiteral("nope")}).exitCode, 1);
    }
};

QTEST_GUILESS_MAIN(tst_SweepCli)
#include "tst_sweepcli.moc"
