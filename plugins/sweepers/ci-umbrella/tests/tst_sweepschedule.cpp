// SPDX-License-Identifier: Apache-2.0
// The daemon's sweeper schedule with a real host: project file, plugins, SQLite store, and
// the fake forge. A pass is started, audited, counted in the metrics and reported; a tick
// during a pass is skipped.
#include "fakeforge.h"

#include "daemon/metrics.h"
#include "engine/hostruntime.h"
#include "engine/sweeps.h"

#include <sluice/testsupport.h>

#include <QFileInfo>
#include <QEventLoop>
#include <QSqlDatabase>
#include <QTimer>
#include <QSqlQuery>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

class tst_SweepSchedule : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void passRunsAndIsAudited()
    {
        PluginDirectory plugins;
        plugins.add(QFileInfo(QStringLiteral(GITEA_PLUGIN_FILE)).path(), QFileInfo(QStringLiteral(GITEA_PLUGIN_FILE)).fileName());
        plugins.add(QFileInfo(QStringLiteral(UMBRELLA_PLUGIN_FILE)).path(), QFileInfo(QStringLiteral(UMBRELLA_PLUGIN_FILE)).fileName());
        FakeForge fake;
        QVERIFY(fake.start());
        fake.setToken("schedule-sweeper-token");
        fake.setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"), "name: CI\njobs:\n  a: {}\n  all: {needs: a}\n");
        const QString sha = QStringLiteral("ab").repeated(20);
        fake.addPullRequest({1, QString(), QStringLiteral("b"), sha});
        const QDateTime t = QDateTime::currentDateTimeUtc().addSecs(-900);
        fake.addStatus(sha, QStringLiteral("CI / a (pull_request)"), QStringLiteral("success"), t);
        fake.addStatus(sha, QStringLiteral("CI / all (pull_request)"), QStringLiteral("failure"), t.addSecs(30));
        fake.setLatency(std::chrono::milliseconds(200)); // long enough to tick during a pass

        TemporaryConfig config;
        const QString forgeToken = config.writeFile(QStringLiteral("secrets/forge"), "schedule-forge-token");
        const QString sweeperToken = config.writeFile(QStringLiteral("secrets/sweeper"), "schedule-sweeper-token");
        config.writeHostFile("state_dir: " + config.path().toUtf8() + "/state\nplugin_dirs: [" + plugins.path().toUtf8() + "]\n");
        const QByteArray url = fake.url().toString().toUtf8();
        config.writeProject(QStringLiteral("w"),
                            "id: w\nrepository:\n  url: " + url + "acme/widget\n  target_branch: main\n  forge: gitea\n"
                            "stages:\n  - name: development\n  - name: done\n"
                            "instances:\n"
                            "  gitea:\n    plugin: gitea\n    settings: {url: \"" + url + "\", repository: acme/widget, token: {file: " + forgeToken.toUtf8() + "}}\n"
                            "  umbrella:\n    plugin: ci-umbrella\n    settings:\n      enabled: true\n      token: {file: " + sweeperToken.toUtf8() + "}\n"
                            "      workflow: .gitea/workflows/ci.yml\n      umbrella_job: all\n      workflow_ref: target\n"
                            // Run by a systemd timer instead: the daemon leaves it alone.
                            "  umbrella-by-timer:\n    plugin: ci-umbrella\n    settings:\n      in_daemon: false\n"
                            "      workflow: .gitea/workflows/ci.yml\n      umbrella_job: all\n");
        Diagnostics diagnostics;
        auto host = HostRuntime::open(config.path(), diagnostics);
        QVERIFY2(host, qPrintable(host ? QString() : host.error().toString()));
        const Diagnostics problems = (*host)->loadProjects();
        QVERIFY2(problems.isEmpty(), qPrintable(problems.isEmpty() ? QString() : problems.first().toString()));

        SweepSchedule schedule((*host)->engine(), (*host)->store());
        Metrics metrics;
        schedule.setMetrics(&metrics);
        std::optional<SweepReport> finished;
        QList<Notification> told;
        connect(&(*host)->engine(), &Engine::notification, this, [&](const Notification &n) { told.append(n); });
        QEventLoop loop;
        connect(&schedule, &SweepSchedule::passFinished, &loop, [&](const QString &, const QString &, const SweepReport &r) {
            finished = r;
            loop.quit();
        });
        schedule.start();
        const Metrics::Labels labels{{QStringLiteral("project"), QStringLiteral("w")}, {QStringLiteral("instance"), QStringLiteral("umbrella")}};
        const auto withResult = [&labels](const char *result) {
            return labels + Metrics::Labels{{QStringLiteral("result"), QLatin1String(result)}};
        };
        // Scheduled instances are exported at 0 before their first pass; the timer-run one is not scheduled.
        QVERIFY2(metrics.render().contains("sluice_sweeps_total{instance=\"umbrella\",project=\"w\",result=\"failed\"} 0"), metrics.render().constData());
        QVERIFY(!metrics.render().contains("umbrella-by-timer"));
        schedule.runAllNow();
        schedule.runAllNow(); // still running: skipped
        QCOMPARE(schedule.passesStarted(), 1);
        QTimer::singleShot(20000, &loop, &QEventLoop::quit);
        loop.exec();
        QVERIFY(finished);
        const SweepReport report = *finished;
        QVERIFY2(report.ok, qPrintable(report.summary));
        QCOMPARE(report.acted, 1);
        int compensations = 0;
        for (const FakeStatus &s : fake.statuses(sha))
            compensations += s.state == QLatin1String("success") && s.context == QLatin1String("CI / all (pull_request)");
        QCOMPARE(compensations, 1);
        // People hear of the compensation (a repair of forge state), not of the quiet pass.
        QCOMPARE(told.size(), 1);
        QCOMPARE(told.first().event, QStringLiteral("compensation-posted"));
        QCOMPARE(told.first().projectId, QStringLiteral("w"));
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweeps_total"), withResult("ok")), 1.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweeps_total"), withResult("failed")), 0.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweep_items_examined_total"), labels), 1.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweep_writes_total"), labels), 1.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweep_failures_total"), labels), 0.0);

        // A pass that cannot read the statuses is a failed pass: counted as such, nothing written.
        fake.setLatency(std::chrono::milliseconds(0));
        fake.addFault(FakeFault{FakeFault::Kind::Status, "GET", QStringLiteral("/statuses$"), 0, 100, 500, {}, {}});
        finished.reset();
        schedule.runAllNow();
        QCOMPARE(schedule.passesStarted(), 2);
        QTimer::singleShot(20000, &loop, &QEventLoop::quit);
        loop.exec();
        QVERIFY(finished);
        QVERIFY(!finished->ok);
        QCOMPARE(told.size(), 2);
        QCOMPARE(told.last().event, QStringLiteral("sweep-failed"));
        QVERIFY(told.last().title.contains(QLatin1String("umbrella")));
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweeps_total"), withResult("ok")), 1.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweeps_total"), withResult("failed")), 1.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweep_items_examined_total"), labels), 2.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweep_writes_total"), labels), 1.0);
        QCOMPARE(metrics.value(QStringLiteral("sluice_sweep_failures_total"), labels), 1.0);
        const QByteArray text = metrics.render();
        QVERIFY2(text.contains("# TYPE sluice_sweeps_total counter"), text.constData());
        QVERIFY(text.contains("sluice_sweeps_total{instance=\"umbrella\",project=\"w\",result=\"failed\"} 1"));
        QVERIFY(text.contains("sluice_sweep_writes_total{instance=\"umbrella\",project=\"w\"} 1"));

        schedule.stop();
        {
            QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("schedule-audit"));
            db.setDatabaseName(config.path() + QStringLiteral("/state/sluice.db"));
            QVERIFY(db.open());
            QSqlQuery q(db);
            QVERIFY(q.exec(QStringLiteral("SELECT action FROM audit WHERE actor = 'sweeper:umbrella' ORDER BY id")));
            QStringList actions;
            while (q.next())
                actions.append(q.value(0).toString());
            QCOMPARE(actions, (QStringList{QStringLiteral("sweep-write"), QStringLiteral("sweep"), QStringLiteral("sweep")}));
        }
        QSqlDatabase::removeDatabase(QStringLiteral("schedule-audit"));
    }
};

QTEST_GUILESS_MAIN(tst_SweepSchedule)
#include "tst_sweepschedule.moc"
