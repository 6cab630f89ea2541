// SPDX-License-Identifier: Apache-2.0
// The health-watch stage as the host runs it: the real plugin probing a loopback HTTP
// server (the fake forge's server with a handler) that turns unhealthy mid-window, and real
// rollback commands as child processes writing marker files.
#include "fakeforge.h"

#include <sluice/stage.h>
#include <sluice/testsupport.h>

#include <QAtomicInt>
#include <QDir>
#include <QFile>
#include <QSignalSpy>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QString Sha = QStringLiteral("0123456789abcdef0123456789abcdef01234567");

// A service's health endpoint: the n-th request gets statuses[n], later ones the last status.
class HealthServer
{
public:
    [[nodiscard]] bool start(const QList<int> &statuses)
    {
        auto served = m_served;
        m_server.setHandler([served, statuses](const FakeRequest &request) -> std::optional<FakeAnswer> {
            if (request.path != QLatin1String("/healthz"))
                return std::nullopt;
            const int n = served->fetchAndAddOrdered(1);
            FakeAnswer a;
            a.status = statuses.value(n, statuses.last());
            a.body = a.status == 200 ? "{\"status\":\"ok\"}" : "{\"status\":\"down\"}";
            a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
            return a;
        });
        return m_server.start().has_value();
    }
    [[nodiscard]] QString url() const { return m_server.url().toString() + QStringLiteral("healthz"); }
    [[nodiscard]] int hits() const { return m_served->loadAcquire(); }
    FakeForge &server() { return m_server; }

private:
    FakeForge m_server;
    std::shared_ptr<QAtomicInt> m_served = std::make_shared<QAtomicInt>(0);
};

// The report's front matter as key → value text.
QHash<QString, QString> frontMatter(const QString &path)
{
    QHash<QString, QString> out;
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return out;
    const QStringList lines = QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'));
    if (lines.value(0) != QLatin1String("---"))
        return out;
    for (int i = 1; i < lines.size() && lines[i] != QLatin1String("---"); ++i)
        out.insert(lines[i].section(QLatin1Char(':'), 0, 0), lines[i].section(QLatin1Char(':'), 1).trimmed());
    return out;
}

QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

} // namespace

class tst_HealthWatch : public QObject
{
    Q_OBJECT

private:
    LoadedPlugin m_plugin;
    std::unique_ptr<QTemporaryDir> m_dir;
    QString m_artifacts;
    QString m_worktree;

    StageRequest request(qint64 job = 7, int attempt = 1) const
    {
        StageRequest r;
        r.task.id = 42;
        r.task.projectId = QStringLiteral("test-project");
        r.task.branch = QStringLiteral("sluice/add-widget");
        r.task.headSha = Sha;
        r.stage = QStringLiteral("post-deploy");
        r.worktree = m_worktree;
        r.artifactsDir = m_artifacts;
        r.job = job;
        r.attempt = attempt;
        return r;
    }

    QByteArray marker() const { return m_artifacts.toUtf8() + "/rollback.marker"; }

    // A rollback that appends "<task> <commit>" to the marker file and exits with @p code.
    QByteArray rollback(int code) const
    {
        return "rollback_command: [/bin/sh, -c, 'echo \"$SLUICE_TASK_ID {commit}\" >> " + marker() + "; exit " + QByteArray::number(code) + "']\n";
    }

    StageOutcome runStage(const QByteArray &settings, const StageRequest &r, StateStore *state = nullptr)
    {
        auto created = createInstance(m_plugin, settings, fakeProject(), state);
        if (!created) {
            StageOutcome o;
            o.summary = QStringLiteral("instance refused: ") + created.error().message;
            return o;
        }
        auto *stage = qobject_cast<Stage *>(created->get());
        if (!stage)
            return {};
        std::unique_ptr<StageRun> run = stage->run(r);
        QSignalSpy finished(run.get(), &PluginJob::finished);
        run->start();
        if (!run->isFinished() && !finished.wait(60000))
            return {};
        return run->outcome();
    }

    QString reportPath(qint64 job = 7) const { return m_artifacts + QStringLiteral("/post-deploy-health-job%1.md").arg(job); }

private Q_SLOTS:
    void initTestCase()
    {
        auto plugin = loadPlugin(QStringLiteral(HEALTH_WATCH_PLUGIN_FILE));
        QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
        m_plugin = *plugin;
    }

    void init()
    {
        m_dir = std::make_unique<QTemporaryDir>();
        QVERIFY(m_dir->isValid());
        m_artifacts = m_dir->filePath(QStringLiteral("artifacts"));
        m_worktree = m_dir->filePath(QStringLiteral("worktree"));
        QVERIFY(QDir().mkpath(m_artifacts));
        QVERIFY(QDir().mkpath(m_worktree));
    }

    void healthyForTheWholeWindow()
    {
        HealthServer service;
        QVERIFY(service.start({200}));
        const StageOutcome o = runStage("url: " + service.url().toUtf8() + "\nwindow: 300ms\ninterval: 40ms\n", request());
        QCOMPARE(o.status, StageOutcome::Status::Completed);
        QVERIFY2(o.summary.startsWith(QStringLiteral("HEALTHY: ")), qPrintable(o.summary));
        const auto report = frontMatter(reportPath());
        QCOMPARE(report.value(QStringLiteral("health_status")), QStringLiteral("HEALTHY"));
        QCOMPARE(report.value(QStringLiteral("action_taken")), QStringLiteral("NONE"));
        QVERIFY(service.hits() >= 1);
        QCOMPARE(report.value(QStringLiteral("probes")).toInt(), service.hits());
        QCOMPARE(report.value(QStringLiteral("ok")).toInt(), service.hits());
        QCOMPARE(report.value(QStringLiteral("failed")), QStringLiteral("0"));
        QCOMPARE(report.value(QStringLiteral("first_failure")), QStringLiteral("null"));
        QVERIFY2(o.summary.contains(QStringLiteral("%1 ok, 0 failed").arg(service.hits())), qPrintable(o.summary));
        QCOMPARE(o.logPath, reportPath());
    }

    void turnsUnhealthyMidWindowAlertOnly()
    {
        HealthServer service;
        QVERIFY(service.start({200, 200, 200, 503}));
        // A rollback is configured, but mode alert never runs it; the long window ends at the first failure.
        const StageOutcome o = runStage("url: " + service.url().toUtf8() + "\nwindow: 10m\ninterval: 20ms\n" + rollback(0), request());
        QCOMPARE(o.status, StageOutcome::Status::Failed);
        for (const QString &part : {QStringLiteral("DEGRADED: 4 probe(s) of %1").arg(service.url()), QStringLiteral("3 ok, 1 failed (max_failures 0)"),
                                    QStringLiteral("first failure: probe 4 at +"), QStringLiteral("HTTP 503"), QStringLiteral("alert only (mode alert)")})
            QVERIFY2(o.summary.contains(part), qPrintable(o.summary));
        QVERIFY(!o.exitCode.has_value());
        QCOMPARE(service.hits(), 4);
        QVERIFY(!QFile::exists(QString::fromUtf8(marker())));
        const auto report = frontMatter(reportPath());
        QCOMPARE(report.value(QStringLiteral("health_status")), QStringLiteral("DEGRADED"));
        QCOMPARE(report.value(QStringLiteral("action_taken")), QStringLiteral("ALERT"));
        QCOMPARE(report.value(QStringLiteral("probes")), QStringLiteral("4"));
        QCOMPARE(report.value(QStringLiteral("ok")), QStringLiteral("3"));
        QCOMPARE(report.value(QStringLiteral("failed")), QStringLiteral("1"));
        QVERIFY2(report.value(QStringLiteral("first_failure")).contains(QStringLiteral("probe 4")), qPrintable(report.value(QStringLiteral("first_failure"))));
        QCOMPARE(report.value(QStringLiteral("rollback_exit_code")), QStringLiteral("null"));
    }

    void rollbackRunsTheCommand_data()
    {
        QTest::addColumn<int>("code");
        QTest::addColumn<QString>("action");
        QTest::addColumn<QString>("summary");
        QTest::newRow("rollback succeeds") << 0 << QStringLiteral("ROLLBACK") << QStringLiteral("rolled back: 'sh' exited with code 0");
        QTest::newRow("rollback fails") << 3 << QStringLiteral("ROLLBACK_FAILED") << QStringLiteral("rollback failed: 'sh' exited with code 3");
    }

    void rollbackRunsTheCommand()
    {
        QFETCH(int, code);
        QFETCH(QString, action);
        QFETCH(QString, summary);
        HealthServer service;
        QVERIFY(service.start({200, 503}));
        const StageOutcome o = runStage("url: " + service.url().toUtf8() + "\nwindow: 10m\ninterval: 20ms\nmode: rollback\n" + rollback(code), request());
        QCOMPARE(o.status, StageOutcome::Status::Failed);
        QVERIFY2(o.summary.contains(summary), qPrintable(o.summary));
        QVERIFY2(o.summary.contains(QStringLiteral("2 probe(s)")) && o.summary.contains(QStringLiteral("1 ok, 1 failed")), qPrintable(o.summary));
        QCOMPARE(o.exitCode, std::optional<int>(code));
        QCOMPARE(readAll(QString::fromUtf8(marker())), "42 " + Sha.toUtf8() + "\n");
        const auto report = frontMatter(reportPath());
        QCOMPARE(report.value(QStringLiteral("action_taken")), action);
        QCOMPARE(report.value(QStringLiteral("rollback_exit_code")), QString::number(code));
        QCOMPARE(o.logPath, m_artifacts + QStringLiteral("/post-deploy-rollback-job7-attempt1.log"));
        QVERIFY(QFile::exists(o.logPath));
    }

    void selfIsAlwaysAlertOnly()
    {
        HealthServer service;
        QVERIFY(service.start({503}));
        const StageOutcome o = runStage("url: " + service.url().toUtf8() + "\nwindow: 10m\ninterval: 20ms\nmode: rollback\nself: true\n" + rollback(0), request());
        QCOMPARE(o.status, StageOutcome::Status::Failed);
        QVERIFY2(o.summary.contains(QStringLiteral("alert only (self")), qPrintable(o.summary));
        QVERIFY(!QFile::exists(QString::fromUtf8(marker())));
        const auto report = frontMatter(reportPath());
        QCOMPARE(report.value(QStringLiteral("self")), QStringLiteral("true"));
        QCOMPARE(report.value(QStringLiteral("mode")), QStringLiteral("rollback"));
        QCOMPARE(report.value(QStringLiteral("action_taken")), QStringLiteral("ALERT"));
        // Self needs no rollback command at all.
        QVERIFY(createInstance(m_plugin, "url: http://127.0.0.1:1/healthz\nmode: rollback\nself: true\n"));
    }

    void toleratedFailuresStayHealthy()
    {
        HealthServer service;
        QVERIFY(service.start({200, 503, 200}));
        const StageOutcome o = runStage("url: " + service.url().toUtf8() + "\nwindow: 300ms\ninterval: 30ms\nmax_failures: 1\n", request());
        QCOMPARE(o.status, StageOutcome::Status::Completed);
        QVERIFY2(o.summary.contains(QStringLiteral("1 failed")) && o.summary.contains(QStringLiteral("tolerated, max_failures 1; first failure: probe 2")),
                 qPrintable(o.summary));
        const auto report = frontMatter(reportPath());
        QCOMPARE(report.value(QStringLiteral("health_status")), QStringLiteral("HEALTHY"));
        QCOMPARE(report.value(QStringLiteral("failed")), QStringLiteral("1"));
        QCOMPARE(report.value(QStringLiteral("probes")).toInt(), service.hits());
    }

    void failedProbes_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("reason");
        QTest::newRow("unexpected status") << QStringLiteral("status") << QStringLiteral("probe 1 at +");
        QTest::newRow("connection refused") << QStringLiteral("refused") << QStringLiteral("Connection refused");
        QTest::newRow("no answer in time") << QStringLiteral("timeout") << QStringLiteral("no answer within 100ms");
    }

    void failedProbes()
    {
        QFETCH(QString, kind);
        QFETCH(QString, reason);
        HealthServer service;
        QVERIFY(service.start({200}));
        QString url = service.url();
        QByteArray more;
        if (kind == QLatin1String("status")) {
            more = "expected_status: [204]\n";
        } else if (kind == QLatin1String("refused")) {
            QTcpServer closed;
            QVERIFY(closed.listen(QHostAddress::LocalHost));
            url = QStringLiteral("http://127.0.0.1:%1/healthz").arg(closed.serverPort());
            closed.close();
        } else {
            service.server().setLatency(std::chrono::seconds(5));
            more = "probe_timeout: 100ms\n";
        }
        const StageOutcome o = runStage("url: " + url.toUtf8() + "\nwindow: 10m\ninterval: 20ms\n" + more, request());
        QCOMPARE(o.status, StageOutcome::Status::Failed);
        QVERIFY2(o.summary.startsWith(QStringLiteral("DEGRADED: 1 probe(s)")), qPrintable(o.summary));
        QVERIFY2(o.summary.contains(reason), qPrintable(o.summary));
        if (kind == QLatin1String("status"))
            QVERIFY2(o.summary.contains(QStringLiteral("HTTP 200")), qPrintable(o.summary));
    }

    // A retry of the same job must not watch the rolled-back service and call it healthy.
    void retryReplaysTheRecordedDegradation()
    {
        TemporaryStore store;
        QVERIFY2(store.store(), qPrintable(store.error()));
        auto state = store.state(QStringLiteral("test-project"), QStringLiteral("health-watch"));
        HealthServer service;
        QVERIFY(service.start({200, 503, 200}));
        const QByteArray settings = "url: " + service.url().toUtf8() + "\nwindow: 200ms\ninterval: 20ms\nmode: rollback\n" + rollback(0);
        StageOutcome o = runStage(settings, request(7, 1), state.get());
        QCOMPARE(o.status, StageOutcome::Status::Failed);
        QVERIFY2(o.summary.contains(QStringLiteral("rolled back")), qPrintable(o.summary));
        const int hits = service.hits();
        QCOMPARE(hits, 2);

        o = runStage(settings, request(7, 2), state.get());
        QCOMPARE(o.status, StageOutcome::Status::Failed);
        QVERIFY2(o.summary.startsWith(QStringLiteral("DEGRADED, recorded by attempt 1 of job 7 (not watching or rolling back again): DEGRADED: 2 probe(s)")),
                 qPrintable(o.summary));
        QVERIFY2(o.summary.contains(QStringLiteral("rolled back: 'sh' exited with code 0")), qPrintable(o.summary));
        QCOMPARE(service.hits(), hits);
        QCOMPARE(readAll(QString::fromUtf8(marker())), "42 " + Sha.toUtf8() + "\n"); // one rollback, not two

        // Another job (the next deploy of the task) watches afresh; the service is healthy now.
        o = runStage(settings, request(8, 1), state.get());
        QCOMPARE(o.status, StageOutcome::Status::Completed);
        QVERIFY(service.hits() > hits);
    }

    void settingsRefused_data()
    {
        QTest::addColumn<QByteArray>("settings");
        QTest::addColumn<QString>("message");
        QTest::newRow("rollback without a command") << QByteArray("url: http://127.0.0.1/healthz\nmode: rollback\n") << QStringLiteral("needs 'rollback_command'");
        QTest::newRow("not http") << QByteArray("url: ftp://example/healthz\n") << QStringLiteral("must be an http(s) URL");
        QTest::newRow("no url") << QByteArray("window: 1m\n") << QStringLiteral("url");
        QTest::newRow("not a status") << QByteArray("url: http://127.0.0.1/healthz\nexpected_status: [42]\n") << QStringLiteral("not an HTTP status code");
        QTest::newRow("reserved variable") << QByteArray("url: http://127.0.0.1/healthz\nenvironment: {SLUICE_STAGE: x}\n") << QStringLiteral("SLUICE_STAGE");
        QTest::newRow("unknown mode") << QByteArray("url: http://127.0.0.1/healthz\nmode: restart\n") << QStringLiteral("mode");
    }

    void settingsRefused()
    {
        QFETCH(QByteArray, settings);
        QFETCH(QString, message);
        auto created = createInstance(m_plugin, settings);
        QVERIFY(!created);
        QVERIFY2(created.error().message.contains(message), qPrintable(created.error().message));
    }
};

QTEST_GUILESS_MAIN(tst_HealthWatch)
#include "tst_healthwatch.moc"
