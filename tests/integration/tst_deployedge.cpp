// SPDX-License-Identifier: Apache-2.0
// The deploy edge as configuration (docs/deploy-edge.md), with the real plugins: the example
// project file loads without a diagnostic, and on a real SQLite store the engine moves a task
// waiting for a deploy confirmation only on confirm-deploy — approve is a no-op, the
// reconciler leaves it alone — and then runs the real deploy hook exactly once.

#include "config/projectconfig.h"
#include "pluginhost/projectinstances.h"
#include "engine/engine.h"
#include "engine/reconciler.h"
#include "engine/worker.h"
#include "pluginhost/pluginloader.h"
#include "testpipeline.h"
#include "storefixture.h"

#include <sluice/stage.h>
#include <sluice/testsupport.h>

#include <QProcess>
#include <QtTest>

using namespace Sluice;

using Sluice::Test::makeRepository;
using Sluice::Test::wait;
using Sluice::Test::writeFile;

namespace {
QByteArray readAll(const QString &path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
} // namespace

class tst_DeployEdge : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void exampleProjectChecksClean();
    void onlyConfirmDeployMovesTheDeployStage();

private:
    Test::PluginDirectory m_plugins;
    std::unique_ptr<PluginCatalog> m_catalog;
};

void tst_DeployEdge::initTestCase()
{
    // The plugins the example names, as built.
    const QStringList files{QStringLiteral(APPROVAL_PLUGIN_FILE), QStringLiteral(COMMAND_PLUGIN_FILE),
                            QStringLiteral(AGENT_PLUGIN_FILE),    QStringLiteral(PROCESS_PLUGIN_FILE),
                            QStringLiteral(VERDICT_PLUGIN_FILE),  QStringLiteral(SECURITY_PLUGIN_FILE),
                            QStringLiteral(IMAGE_FRESHNESS_PLUGIN_FILE), QStringLiteral(HEALTH_WATCH_PLUGIN_FILE),
                            QStringLiteral(MERGE_PLUGIN_FILE),    QStringLiteral(GITEA_PLUGIN_FILE)};
    for (const QString &file : files)
        QVERIFY(!m_plugins.add(QFileInfo(file).absolutePath(), QFileInfo(file).fileName()).isEmpty());
    PluginSearchPath path;
    path.configuredDirs = QStringList{m_plugins.path()};
    m_catalog = std::make_unique<PluginCatalog>(path, TrustedOwners::forServiceUser(QString()));
    m_catalog->discover();
    m_catalog->loadAll();
    for (const QString &id : {QStringLiteral("approval"), QStringLiteral("command"), QStringLiteral("security"),
                              QStringLiteral("image-freshness"), QStringLiteral("verdict"), QStringLiteral("health-watch"),
                              QStringLiteral("merge"), QStringLiteral("gitea")}) {
        const PluginRecord *plugin = m_catalog->plugin(id);
        QVERIFY2(plugin, qPrintable(id));
        QCOMPARE(plugin->state, PluginRecord::State::Loaded);
    }
}

void tst_DeployEdge::exampleProjectChecksClean()
{
    // What `sluice check` does with a project file: load and validate it against the
    // plugins' schemas, then let every factory create its instance.
    const QString file = QStringLiteral(SLUICE_SOURCE_DIR "/resources/examples/deploy-edge/projects/shop.yaml");
    Diagnostics diagnostics;
    auto config = ProjectConfig::load(file, *m_catalog, diagnostics);
    for (const Diagnostic &d : diagnostics)
        qWarning().noquote() << d.toString();
    QVERIFY(config.has_value());
    QVERIFY(diagnostics.isEmpty());
    auto instances = ProjectInstances::create(*config, *m_catalog, nullptr, diagnostics);
    for (const Diagnostic &d : diagnostics)
        qWarning().noquote() << d.toString();
    QVERIFY(instances.has_value());
    QVERIFY(diagnostics.isEmpty());

    // The edge and its default order.
    QCOMPARE(config->stage(QStringLiteral("awaiting-deploy"))->run, QStringLiteral("confirm-deploy"));
    QCOMPARE(config->stage(QStringLiteral("deploy"))->run, QStringLiteral("production-deploy"));
    bool found = false;
    for (const EdgeConfig &edge : config->edges) {
        if (edge.from == QLatin1String("deploy-staging") && edge.to == QLatin1String("awaiting-deploy")) {
            found = true;
            QCOMPARE(edge.gates, QStringList({QStringLiteral("security"), QStringLiteral("merge"), QStringLiteral("image-freshness")}));
        }
    }
    QVERIFY(found);
    // The confirmation waits for confirm-deploy alone; the hook runs with once: true.
    auto *confirm = instances->as<Stage>(QStringLiteral("confirm-deploy"));
    QVERIFY(confirm);
    QCOMPARE(confirm->acceptedSignals(), QStringList{QStringLiteral("confirm-deploy")});
    auto *deploy = instances->as<Stage>(QStringLiteral("production-deploy"));
    QVERIFY(deploy);
    QCOMPARE(deploy->context().settings().value(QStringLiteral("once")).toBool(), true);
    QVERIFY(deploy->acceptedSignals().isEmpty());
}

void tst_DeployEdge::onlyConfirmDeployMovesTheDeployStage()
{
    QTemporaryDir dir;
    StoreSettings settings;
    QVERIFY(Test::freshStore(QStringLiteral("sqlite"), dir.path(), &settings));
    auto opened = Store::open(settings);
    QVERIFY2(opened, qPrintable(opened ? QString() : opened.error().toString()));
    std::unique_ptr<Store> store = std::move(*opened);

    const QString repo = dir.filePath(QStringLiteral("repo.git"));
    QVERIFY(makeRepository(repo));
    const QString runs = dir.filePath(QStringLiteral("hook-runs.log"));
    const QString hook = dir.filePath(QStringLiteral("deploy-hook.sh"));
    // The deploy hook: counts its runs, records the deploy for the exit gate, exits 0.
    writeFile(hook, "#!/bin/sh\n"
                    "echo \"deploy task $SLUICE_TASK_ID job $SLUICE_JOB_ID\" >> \"$HOOK_RUNS\"\n"
                    "mkdir -p .sluice && printf -- '---\\ndeploy_status: SUCCESS\\n---\\n' > .sluice/deploy.md\n"
                    "exit 0\n");
    QFile::setPermissions(hook, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
    const QString projectFile = dir.filePath(QStringLiteral("projects/p.yaml"));
    writeFile(projectFile, QByteArray(R"(id: p
repository: {path: )") + repo.toUtf8() + R"(}
stages:
  - name: awaiting-deploy
    run: confirm-deploy
  - name: deploy
    run: production-deploy
    exit_gates: [deploy-record]
  - name: done
instances:
  confirm-deploy:
    plugin: approval
    settings:
      signal: confirm-deploy
      instructions: Staging is green. confirm-deploy deploys to production; approve does NOT.
  production-deploy:
    plugin: command
    settings:
      command: [)" + hook.toUtf8() + R"(]
      once: true
      environment: {HOOK_RUNS: )" + runs.toUtf8() + R"(}
  deploy-record:
    plugin: verdict
    settings: {artifact: .sluice/deploy.md, key: deploy_status, pass: [SUCCESS]}
)");
    Engine e(*store, QStringLiteral("n"), dir.filePath(QStringLiteral("state")));
    {
        Diagnostics diagnostics;
        auto config = ProjectConfig::load(projectFile, *m_catalog, diagnostics);
        QVERIFY(config.has_value());
        auto runtime = std::make_shared<ProjectRuntime>();
        runtime->config = *config;
        auto instances = ProjectInstances::create(runtime->config, *m_catalog, store.get(), diagnostics);
        for (const Diagnostic &d : diagnostics)
            qWarning().noquote() << d.toString();
        QVERIFY(instances.has_value());
        QVERIFY(instances->initialize());
        runtime->instances = std::move(*instances);
        e.setProject(runtime);
    }
    auto id = e.submit(QStringLiteral("p"), QStringLiteral("Release 1.2"), {}, QString(), QStringLiteral("test"));
    QVERIFY2(id.has_value(), qPrintable(id ? QString() : id.error().toString()));

    Worker worker(e);
    worker.setPollInterval(std::chrono::milliseconds(50));
    QSignalSpy jobs(&worker, &Worker::jobFinished);
    worker.start();
    // The approval stage's job ends waiting, with a request that names confirm-deploy.
    QTRY_COMPARE_WITH_TIMEOUT(jobs.count(), 1, 20000);
    QCOMPARE(jobs.at(0).at(1).toString(), QStringLiteral("waiting"));
    QString request;
    const auto requested = e.tasks().history(*id);
    QVERIFY(requested.has_value());
    for (const AuditRecord &a : *requested)
        if (a.action == QLatin1String("approval-requested"))
            request = a.details.value(QStringLiteral("summary")).toString();
    QVERIFY2(request.startsWith(QLatin1String("waiting for signal 'confirm-deploy'")), qPrintable(request));

    // "approve" on the deploy confirmation: a logged, audited no-op.
    auto approve = e.signal(*id, QStringLiteral("awaiting-deploy"), QStringLiteral("approve"), QStringLiteral("test"), QStringLiteral("d1"));
    QVERIFY(approve.has_value());
    QCOMPARE(approve->kind, SignalResult::Kind::Ignored);
    QVERIFY2(approve->reason.contains(QLatin1String("waits for 'confirm-deploy', not 'approve'")), qPrintable(approve->reason));

    // The reconciler never advances a stage that waits for a person.
    ReconcilerSettings reconcile;
    reconcile.settle = std::chrono::milliseconds(0);
    Reconciler reconciler(e, reconcile);
    QSignalSpy passes(&reconciler, &Reconciler::passFinished);
    reconciler.tick();
    QTRY_COMPARE_WITH_TIMEOUT(passes.count(), 1, 20000);
    const auto pass = passes.at(0).at(0).value<ReconcilerPass>();
    QVERIFY2(pass.ok, qPrintable(pass.errors.join(QLatin1String("; "))));
    QCOMPARE(pass.examined, 1);
    QCOMPARE(pass.skipped, 1); // waiting for a person
    QCOMPARE(pass.advanced, 0);
    QCOMPARE(pass.entered, 0);
    QCOMPARE((*e.tasks().task(*id))->stage, QStringLiteral("awaiting-deploy"));
    QCOMPARE(QFileInfo::exists(runs), false); // nothing deployed

    // confirm-deploy moves it; the hook runs, its record passes the exit gate, the task is done.
    auto confirm = e.signal(*id, QStringLiteral("awaiting-deploy"), QStringLiteral("confirm-deploy"), QStringLiteral("test"), QStringLiteral("d2"));
    QVERIFY(confirm.has_value());
    QCOMPARE(confirm->kind, SignalResult::Kind::Accepted);
    QCOMPARE(wait(confirm->advance), AdvanceRun::Outcome::Advanced);
    QTRY_COMPARE_WITH_TIMEOUT((*e.tasks().task(*id))->status, QStringLiteral("done"), 20000);

    // A repeated confirmation (another delivery) finds no stage waiting for it: no second deploy.
    auto again = e.signal(*id, QStringLiteral("awaiting-deploy"), QStringLiteral("confirm-deploy"), QStringLiteral("test"), QStringLiteral("d3"));
    QVERIFY(again.has_value());
    QCOMPARE(again->kind, SignalResult::Kind::Ignored);
    worker.stop();
    QCOMPARE(readAll(runs).count('\n'), 1);
    QVERIFY(readAll(runs).startsWith(QStringLiteral("deploy task %1 job ").arg(*id).toUtf8()));

    QStringList actions;
    const auto history = e.tasks().history(*id);
    QVERIFY(history.has_value());
    for (const AuditRecord &a : *history)
        if (a.action.startsWith(QLatin1String("signal")))
            actions << a.action;
    QCOMPARE(actions, QStringList({QStringLiteral("signal-ignored"), QStringLiteral("signal"), QStringLiteral("signal-ignored")}));
}

QTEST_GUILESS_MAIN(tst_DeployEdge)

#include "tst_deployedge.moc"
