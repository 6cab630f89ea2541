// SPDX-License-Identifier: Apache-2.0
// The security gate inside the host: a real SQLite store, the engine's one advance path, the
// real plugin loaded from a plugin directory, and a task worktree made by the engine's own
// workspace from a real repository. A planted secret sends the task back to development
// with the masked findings in its next task, and no stored row holds the secret.
#include "gitfixture.h"

#include "config/projectconfig.h"
#include "engine/engine.h"
#include "pluginhost/pluginloader.h"
#include "pluginhost/projectinstances.h"
#include "store/store.h"

#include <sluice/testsupport.h>

#include <QSqlQuery>
#include <QSqlRecord>
#include <QtTest>

using namespace Sluice;
using namespace SecurityTest;

namespace {
AdvanceRun::Outcome wait(AdvanceRun *run)
{
    AdvanceRun::Outcome outcome = AdvanceRun::Outcome::Failed;
    QEventLoop loop;
    QObject::connect(run, &AdvanceRun::finished, &loop, [&](AdvanceRun *r) {
        outcome = r->outcome();
        loop.quit();
    });
    loop.exec();
    return outcome;
}
} // namespace

class tst_SecurityRollback : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void secretSendsTaskBackWithMaskedFindings();
};

void tst_SecurityRollback::secretSendsTaskBackWithMaskedFindings()
{
    QTemporaryDir dir;
    Test::PluginDirectory plugins;
    plugins.add(QFileInfo(QStringLiteral(SECURITY_PLUGIN_FILE)).absolutePath(), QStringLiteral("sluice_gate_security"));
    PluginSearchPath path;
    path.configuredDirs = QStringList{plugins.path()};
    PluginCatalog catalog(path, TrustedOwners::forServiceUser(QString()));
    catalog.discover();
    catalog.loadAll();
    QVERIFY(catalog.plugin(QStringLiteral("security")));
    QCOMPARE(catalog.plugin(QStringLiteral("security"))->state, PluginRecord::State::Loaded);

    StoreSettings settings;
    settings.sqlitePath = dir.filePath(QStringLiteral("store.db"));
    auto store = Store::open(settings);
    QVERIFY2(store, qPrintable(store ? QString() : store.error().toString()));

    GitRepo repo(dir.filePath(QStringLiteral("repo")));
    QVERIFY(repo.init());

    const QString projectFile = dir.filePath(QStringLiteral("projects/p.yaml"));
    QDir().mkpath(QFileInfo(projectFile).path());
    QFile yaml(projectFile);
    QVERIFY(yaml.open(QIODevice::WriteOnly));
    yaml.write("id: p\nrepository: {path: " + repo.path().toUtf8() + ", target_branch: main}\n"
               "stages:\n  - name: development\n  - name: review\n    exit_gates: [security]\n  - name: done\n"
               "red_policy: {rollback_to: development, max_retries: 2}\n"
               "instances:\n  security: {plugin: security}\n");
    yaml.close();
    Diagnostics diagnostics;
    auto config = ProjectConfig::load(projectFile, catalog, diagnostics);
    QVERIFY2(config, qPrintable(diagnostics.isEmpty() ? QString() : diagnostics.first().toString()));
    auto runtime = std::make_shared<ProjectRuntime>();
    runtime->config = *config;
    auto instances = ProjectInstances::create(runtime->config, catalog, store->get(), diagnostics);
    QVERIFY(instances && instances->initialize());
    runtime->instances = std::move(*instances);

    const QString stateDir = dir.filePath(QStringLiteral("state"));
    Engine engine(**store, QStringLiteral("n"), stateDir);
    engine.setProject(runtime);
    auto id = engine.tasks().create(NewTask{QStringLiteral("p"), QStringLiteral("t"), QStringLiteral("Add the deploy script."),
                                            QStringLiteral("task-1"), QStringLiteral("review"), {}});
    QVERIFY(id.has_value());

    // The agent's work: the task's working copy (made as the worker makes it) with a secret committed.
    auto record = engine.tasks().task(*id);
    QVERIFY(record && *record);
    auto worktree = engine.workspace().ensureWorktree(runtime->config, **record);
    QVERIFY2(worktree, qPrintable(worktree ? QString() : worktree.error().toString()));
    GitRepo work(*worktree);
    QVERIFY(work.write(QStringLiteral("deploy.sh"), "#!/bin/sh\nexport GITHUB_TOKEN=" + githubPat() + "\n"));
    QVERIFY(work.commitAll(QStringLiteral("deploy script")));
    // What the worker does when the job completes: take the task branch, record its head.
    auto head = engine.workspace().harvest(runtime->config, **record, QStringLiteral("test"));
    QVERIFY2(head, qPrintable(head ? QString() : head.error().toString()));
    QCOMPARE(engine.tasks().recordHead(*id, QStringLiteral("review"), *head).value_or(false), true);

    QCOMPARE(wait(engine.advance(*id, QString(), QStringLiteral("test"))), AdvanceRun::Outcome::RolledBack);
    auto task = engine.tasks().task(*id);
    QCOMPARE((*task)->stage, QStringLiteral("development"));
    const QString description = (*task)->description;
    QVERIFY2(description.contains(QLatin1String("Sent back by gate 'security' (rollback 1 of 2)")), qPrintable(description));
    QVERIFY2(description.contains(QLatin1String("- [github-pat] deploy.sh:2: secret (")), qPrintable(description));
    QVERIFY(description.contains(QLatin1String("ghp_*****")));

    // The report is in the task's artifacts.
    const QString report = engine.workspace().artifactsPath(QStringLiteral("p"), *id) + QStringLiteral("/security-report.md");
    QFile reportFile(report);
    QVERIFY2(reportFile.open(QIODevice::ReadOnly), qPrintable(report));
    const QByteArray reportText = reportFile.readAll();
    QVERIFY(reportText.startsWith("---\nsecurity_status: FAIL\nsecrets_found: 1\n"));

    // No row of any table holds the secret.
    const QByteArray tail = githubPat().mid(4);
    QVERIFY(!reportText.contains(tail));
    QSqlDatabase db = *(*store)->connection();
    int rows = 0;
    for (const QString &table : db.tables()) {
        QSqlQuery query(db);
        QVERIFY2(query.exec(QStringLiteral("SELECT * FROM %1").arg(table)), qPrintable(table));
        while (query.next()) {
            ++rows;
            const QSqlRecord row = query.record();
            for (int i = 0; i < row.count(); ++i)
                QVERIFY2(!row.value(i).toString().toUtf8().contains(tail), qPrintable(QStringLiteral("%1.%2").arg(table, row.fieldName(i))));
        }
    }
    QVERIFY(rows > 3);
    auto runs = engine.tasks().gateRuns(*id);
    QCOMPARE(runs->size(), 1);
    QCOMPARE(runs->first().verdict.result(), GateVerdict::Result::Fail);
}

QTEST_GUILESS_MAIN(tst_SecurityRollback)
#include "tst_securityrollback.moc"
