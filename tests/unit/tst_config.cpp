// SPDX-License-Identifier: Apache-2.0
// Host and project files: every mistake is refused with FILE:LINE:COLUMN and the key, and a
// broken project never takes the others down.

#include "config/hostconfig.h"
#include "config/projectconfig.h"
#include "config/yamlvalidator.h"
#include "pluginhost/pluginloader.h"
#include "pluginhost/projectinstances.h"

#include <sluice/gate.h>
#include <sluice/testsupport.h>

#include <QtTest>

#include <sys/stat.h>
#include <unistd.h>

using namespace Sluice;

namespace {

// A valid project using the test plugins; rows start from it and break one thing.
const char *const validProject = R"(id: demo
description: A demo project
repository:
  path: ../repos/demo.git
  target_branch: main
stages:
  - name: development
    run: dev
  - name: review
    exit_gates: [check]
  - name: deploy
  - name: done
edges:
  - from: deploy
    to: done
    gates: [check, other-check]
red_policy:
  rollback_to: development
  max_retries: 2
instances:
  dev:
    plugin: test-stage
    settings:
      role: developer
  check:
    plugin: test-gate
    settings:
      result: pass
      delay: 2s
      limits: {mode: strict}
      token: {file: ../secrets/token}
  other-check:
    plugin: test-gate
    settings:
      limits: {mode: lax}
)";

struct Expected {
    int line;
    int column;
    QString key;
    QString message;
};

} // namespace

Q_DECLARE_METATYPE(QList<Expected>)

class tst_Config : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void validProjectLoads();
    void projectErrors_data();
    void projectErrors();
    void inlineSecretIsNotEchoed();
    void brokenProjectIsRefusedAlone();
    void duplicateProjectIds();
    void rejectedPluginIsExplained();
    void factoryRefusalIsReported();
    void hostFile_data();
    void hostFile();
    void hostDefaults();
    void configDirResolution();
    void postgresqlOptionsHoldNoSecret_data();
    void postgresqlOptionsHoldNoSecret();
    void hostileYaml_data();
    void hostileYaml();
    void aliasBombProjectIsRefusedQuickly();
    void problemsPerFileAreCapped();
    void nonRegularFilesAreRefused_data();
    void nonRegularFilesAreRefused();
    void projectListingReportsWhatItCannotRead();

private:
    Diagnostics loadProject(const QByteArray &yaml, std::optional<ProjectConfig> *out = nullptr);

    Test::PluginDirectory m_plugins;
    Test::TemporaryConfig m_config;
    std::unique_ptr<PluginCatalog> m_catalog;
};

void tst_Config::initTestCase()
{
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-gate"));
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-stage"));
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("api-too-new"));
    PluginSearchPath path;
    path.configuredDirs = QStringList{m_plugins.path()};
    m_catalog = std::make_unique<PluginCatalog>(path, TrustedOwners::forServiceUser(QString()));
    m_catalog->discover();
    m_catalog->loadAll();
    QVERIFY(m_catalog->plugin(QStringLiteral("test-gate")));
    QCOMPARE(m_catalog->plugin(QStringLiteral("test-gate"))->state, PluginRecord::State::Loaded);
    QCOMPARE(m_catalog->plugin(QStringLiteral("test-stage"))->state, PluginRecord::State::Loaded);
}

Diagnostics tst_Config::loadProject(const QByteArray &yaml, std::optional<ProjectConfig> *out)
{
    const QString file = m_config.writeProject(QStringLiteral("demo"), yaml);
    Diagnostics diagnostics;
    auto project = ProjectConfig::load(file, *m_catalog, diagnostics);
    if (out)
        *out = project;
    if (project.has_value() != diagnostics.isEmpty())
        qWarning("load() returned %s with %d diagnostics", project ? "a project" : "nothing", int(diagnostics.size()));
    return diagnostics;
}

void tst_Config::validProjectLoads()
{
    std::optional<ProjectConfig> project;
    const Diagnostics diagnostics = loadProject(validProject, &project);
    for (const Diagnostic &d : diagnostics)
        qWarning() << d.toString();
    QVERIFY(diagnostics.isEmpty());
    QVERIFY(project.has_value());
    QCOMPARE(project->id, QStringLiteral("demo"));
    QCOMPARE(project->stages.size(), 4);
    QCOMPARE(project->stages[1].exitGates, QStringList{QStringLiteral("check")});
    QCOMPARE(project->edges.size(), 1);
    QCOMPARE(project->edges[0].gates, QStringList({QStringLiteral("check"), QStringLiteral("other-check")}));
    QCOMPARE(project->maxRetries, 2);
    QCOMPARE(project->rollbackTo, QStringLiteral("development"));
    // Relative paths resolve against the project file's directory.
    QCOMPARE(project->repositoryPath, QDir::cleanPath(m_config.path() + QStringLiteral("/repos/demo.git")));

    // Settings: validated values, defaults filled, durations in ms, secrets as references.
    const QVariantMap check = project->instances.value(QStringLiteral("check")).settings;
    QCOMPARE(check.value(QStringLiteral("delay")).toLongLong(), 2000LL);
    QCOMPARE(check.value(QStringLiteral("retries")).toLongLong(), 2LL);
    QCOMPARE(check.value(QStringLiteral("ratio")).toDouble(), 0.5);
    QCOMPARE(check.value(QStringLiteral("never_finish")).toBool(), false);
    QCOMPARE(check.value(QStringLiteral("limits")).toMap().value(QStringLiteral("files")).toLongLong(), 100LL);
    QCOMPARE(check.value(QStringLiteral("token")).toMap().value(QStringLiteral("file")).toString(),
             QDir::cleanPath(m_config.path() + QStringLiteral("/secrets/token")));
    QCOMPARE(project->instances.value(QStringLiteral("dev")).kind, PluginKind::Stage);

    // The instances can be created from those settings.
    Diagnostics instanceDiagnostics;
    auto instances = ProjectInstances::create(*project, *m_catalog, nullptr, instanceDiagnostics);
    QVERIFY(instances.has_value());
    QVERIFY(instances->as<Gate>(QStringLiteral("check")));
    QCOMPARE(instances->instance(QStringLiteral("check"))->context().project().id, QStringLiteral("demo"));
    QVERIFY(instances->initialize().has_value());
}

void tst_Config::projectErrors_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QList<Expected>>("expected");
    const QByteArray base(validProject);
    auto replace = [&](const char *from, const char *to) {
        QByteArray copy = base;
        if (!copy.contains(from))
            qFatal("row does not apply: %s", from);
        return copy.replace(from, to);
    };

    QTest::newRow("typo at top level") << replace("red_policy:", "red_polcy:")
                                       << QList<Expected>{{17, 1, QStringLiteral("red_polcy"), QStringLiteral("unknown key (did you mean 'red_policy'?)")}};
    QTest::newRow("typo in a stage") << replace("    exit_gates: [check]", "    exit_gate: [check]")
                                     << QList<Expected>{{10, 5, QStringLiteral("stages[1].exit_gate"), QStringLiteral("unknown key")}};
    QTest::newRow("missing id") << replace("id: demo\n", "")
                                << QList<Expected>{{1, 1, QStringLiteral("id"), QStringLiteral("required key is missing")}};
    QTest::newRow("wrong type") << replace("max_retries: 2", "max_retries: three")
                                << QList<Expected>{{19, 16, QStringLiteral("red_policy.max_retries"), QStringLiteral("expected an integer, found 'three'")}};
    QTest::newRow("out of range") << replace("max_retries: 2", "max_retries: 1000")
                                  << QList<Expected>{{19, 16, QStringLiteral("red_policy.max_retries"), QStringLiteral("above the maximum")}};
    QTest::newRow("stages not a list") << replace("stages:\n  - name: development\n    run: dev\n  - name: review\n    exit_gates: [check]\n  - name: deploy\n  - name: done\n", "stages: development\n")
                                       << QList<Expected>{{6, 9, QStringLiteral("stages"), QStringLiteral("expected a list")},
                                                          {8, 11, QStringLiteral("edges[0].from"), QStringLiteral("no stage named 'deploy'")},
                                                          {9, 9, QStringLiteral("edges[0].to"), QStringLiteral("no stage named 'done'")},
                                                          {12, 16, QStringLiteral("red_policy.rollback_to"), QStringLiteral("no stage named 'development'")}};
    QTest::newRow("unknown plugin") << replace("plugin: test-stage", "plugin: no-such-plugin")
                                    << QList<Expected>{{22, 13, QStringLiteral("instances.dev.plugin"), QStringLiteral("unknown plugin 'no-such-plugin' (searched:")}};
    QTest::newRow("unknown instance key") << replace("    plugin: test-stage\n", "    plugin: test-stage\n    setings: {}\n")
                                          << QList<Expected>{{23, 5, QStringLiteral("instances.dev.setings"), QStringLiteral("unknown key")}};
    QTest::newRow("setting typo") << replace("      role: developer", "      rol: developer")
                                  << QList<Expected>{{24, 7, QStringLiteral("instances.dev.settings.rol"), QStringLiteral("unknown key (did you mean 'role'?)")},
                                                     {24, 7, QStringLiteral("instances.dev.settings.role"), QStringLiteral("required key is missing")}};
    QTest::newRow("setting missing required, no settings") << replace("    plugin: test-stage\n    settings:\n      role: developer\n", "    plugin: test-stage\n")
                                                           << QList<Expected>{{21, 3, QStringLiteral("instances.dev.settings.role"), QStringLiteral("required setting of plugin 'test-stage' is missing")}};
    QTest::newRow("setting enum") << replace("result: pass", "result: maybe")
                                  << QList<Expected>{{28, 15, QStringLiteral("instances.check.settings.result"), QStringLiteral("'maybe' is not one of: pass, fail, error, skip")}};
    QTest::newRow("setting duration") << replace("delay: 2s", "delay: soon")
                                      << QList<Expected>{{29, 14, QStringLiteral("instances.check.settings.delay"), QStringLiteral("expected a duration")}};
    QTest::newRow("nested required setting") << replace("limits: {mode: strict}", "limits: {files: 3}")
                                             << QList<Expected>{{30, 15, QStringLiteral("instances.check.settings.limits.mode"), QStringLiteral("required key is missing")}};
    QTest::newRow("secret as an unknown reference") << replace("token: {file: ../secrets/token}", "token: {env: TOKEN}")
                                                    << QList<Expected>{{31, 14, QStringLiteral("instances.check.settings.token"), QStringLiteral("is a secret: give it as {file: PATH} or {credential: NAME}")}};
    QTest::newRow("exit gate is a stage") << replace("exit_gates: [check]", "exit_gates: [dev]")
                                          << QList<Expected>{{10, 18, QStringLiteral("stages[1].exit_gates[0]"), QStringLiteral("instance 'dev' is a stage (plugin 'test-stage'), a gate is needed here")}};
    QTest::newRow("run is a gate") << replace("    run: dev", "    run: check")
                                   << QList<Expected>{{8, 10, QStringLiteral("stages[0].run"), QStringLiteral("a stage is needed here")}};
    QTest::newRow("unknown gate instance") << replace("gates: [check, other-check]", "gates: [check, nope]")
                                           << QList<Expected>{{16, 20, QStringLiteral("edges[0].gates[1]"), QStringLiteral("no instance named 'nope'")}};
    QTest::newRow("gate twice") << replace("gates: [check, other-check]", "gates: [check, check]")
                                << QList<Expected>{{16, 20, QStringLiteral("edges[0].gates[1]"), QStringLiteral("listed twice")}};
    QTest::newRow("edge between non-neighbours") << replace("  - from: deploy\n    to: done", "  - from: review\n    to: done")
                                                 << QList<Expected>{{14, 5, QStringLiteral("edges[0]"), QStringLiteral("'review' is not followed by 'done'")}};
    QTest::newRow("duplicate stage") << replace("  - name: deploy\n", "  - name: review\n")
                                     << QList<Expected>{{11, 11, QStringLiteral("stages[2].name"), QStringLiteral("duplicate stage 'review'")},
                                                        {14, 11, QStringLiteral("edges[0].from"), QStringLiteral("no stage named 'deploy'")}};
    QTest::newRow("last stage with gates") << replace("  - name: done\n", "  - name: done\n    exit_gates: [check]\n")
                                           << QList<Expected>{{12, 5, QStringLiteral("stages[3]"), QStringLiteral("the last stage ('done') ends the pipeline")}};
    QTest::newRow("rollback to unknown stage") << replace("rollback_to: development", "rollback_to: nowhere")
                                               << QList<Expected>{{18, 16, QStringLiteral("red_policy.rollback_to"), QStringLiteral("no stage named 'nowhere'")}};
    QTest::newRow("repository without path or url") << replace("  path: ../repos/demo.git\n", "")
                                                    << QList<Expected>{{4, 3, QStringLiteral("repository"), QStringLiteral("give the repository's path or url")}};
    QTest::newRow("duplicate key") << replace("description: A demo project\n", "description: A demo project\ndescription: again\n")
                                   << QList<Expected>{{3, 1, QStringLiteral("description"), QStringLiteral("duplicate key")}};
    QTest::newRow("yaml syntax error") << replace("  target_branch: main\n", "  target_branch: [main\n")
                                       << QList<Expected>{{6, 7, QString(), QStringLiteral("YAML syntax error: end of sequence flow not found")}};
    QTest::newRow("bad project id") << replace("id: demo", "id: Demo Project")
                                    << QList<Expected>{{1, 5, QStringLiteral("id"), QStringLiteral("project ids are lower-case")}};
    const auto withBeforeInstances = [&](const char *text) { return replace("instances:\n", (QByteArray(text) + "instances:\n").constData()); };
    QTest::newRow("notifier is a gate") << withBeforeInstances("notifications:\n  - notifier: check\n    events: [done]\n")
                                        << QList<Expected>{{21, 15, QStringLiteral("notifications[0].notifier"), QStringLiteral("instance 'check' is a gate (plugin 'test-gate'), a notifier is needed here")}};
    QTest::newRow("notifier unknown") << withBeforeInstances("notifications:\n  - notifier: nobody\n    events: [done]\n")
                                      << QList<Expected>{{21, 15, QStringLiteral("notifications[0].notifier"), QStringLiteral("no instance named 'nobody'")}};
    QTest::newRow("notification event unknown") << withBeforeInstances("notifications:\n  - notifier: nobody\n    events: [done, merged]\n")
                                                << QList<Expected>{{22, 20, QStringLiteral("notifications[0].events[1]"), QStringLiteral("'merged' is not one of")},
                                                                   {21, 15, QStringLiteral("notifications[0].notifier"), QStringLiteral("no instance named 'nobody'")}};
    QTest::newRow("notification event twice") << withBeforeInstances("notifications:\n  - notifier: nobody\n    events: [done, done]\n")
                                              << QList<Expected>{{21, 15, QStringLiteral("notifications[0].notifier"), QStringLiteral("no instance named 'nobody'")},
                                                                 {22, 20, QStringLiteral("notifications[0].events[1]"), QStringLiteral("event 'done' is listed twice")}};
    QTest::newRow("notification without events") << withBeforeInstances("notifications:\n  - notifier: nobody\n")
                                                 << QList<Expected>{{21, 5, QStringLiteral("notifications[0].events"), QStringLiteral("required key is missing")},
                                                                    {21, 15, QStringLiteral("notifications[0].notifier"), QStringLiteral("no instance named 'nobody'")}};
    QTest::newRow("tracker state of an unknown stage") << withBeforeInstances("tracker_states: {nowhere: in-review}\n")
                                                       << QList<Expected>{{20, 18, QStringLiteral("tracker_states.nowhere"), QStringLiteral("no stage named 'nowhere'")},
                                                                          {20, 18, QStringLiteral("tracker_states"), QStringLiteral("the project names no tracker")}};
    QTest::newRow("tracker state unknown") << withBeforeInstances("tracker_states: {review: reviewing}\n")
                                           << QList<Expected>{{20, 26, QStringLiteral("tracker_states.review"), QStringLiteral("'reviewing' is not one of")}};
    QTest::newRow("notification with no events") << withBeforeInstances("notifications:\n  - notifier: nobody\n    events: []\n")
                                                 << QList<Expected>{{21, 15, QStringLiteral("notifications[0].notifier"), QStringLiteral("no instance named 'nobody'")},
                                                                    {22, 13, QStringLiteral("notifications[0].events"), QStringLiteral("name at least one event")}};
    QTest::newRow("one stage only") << replace("  - name: review\n    exit_gates: [check]\n  - name: deploy\n  - name: done\n", "")
                                    << QList<Expected>{{7, 3, QStringLiteral("stages"), QStringLiteral("at least two stages")},
                                                       {10, 11, QStringLiteral("edges[0].from"), QStringLiteral("no stage named 'deploy'")},
                                                       {11, 9, QStringLiteral("edges[0].to"), QStringLiteral("no stage named 'done'")},
                                                       {14, 16, QStringLiteral("red_policy.rollback_to"), QStringLiteral("cannot roll back to the last stage")}};
}

void tst_Config::projectErrors()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QList<Expected>, expected);
    const Diagnostics diagnostics = loadProject(yaml);
    QStringList seen;
    for (const Diagnostic &d : diagnostics)
        seen.append(d.toString());
    const QString all = seen.join(QLatin1Char('\n'));
    QVERIFY2(diagnostics.size() == expected.size(), qPrintable(all));
    for (int i = 0; i < expected.size(); ++i) {
        const Expected &e = expected[i];
        const Diagnostic &d = diagnostics[i];
        QVERIFY2(d.file.endsWith(QLatin1String("projects/demo.yaml")), qPrintable(all));
        QVERIFY2(d.line == e.line && d.column == e.column,
                 qPrintable(QStringLiteral("expected %1:%2, got:\n%3").arg(e.line).arg(e.column).arg(all)));
        QVERIFY2(d.key == e.key, qPrintable(QStringLiteral("expected key %1, got:\n%2").arg(e.key, all)));
        QVERIFY2(d.message.contains(e.message), qPrintable(all));
        // The printed form is what editors and people read.
        QVERIFY(d.toString().startsWith(QStringLiteral("%1:%2:%3: ").arg(d.file).arg(e.line).arg(e.column)));
    }
}

void tst_Config::inlineSecretIsNotEchoed()
{
    QByteArray yaml(validProject);
    yaml.replace("token: {file: ../secrets/token}", "token: s3cr3t-inline-value-42");
    const Diagnostics diagnostics = loadProject(yaml);
    QCOMPARE(diagnostics.size(), 1);
    QCOMPARE(diagnostics[0].key, QStringLiteral("instances.check.settings.token"));
    QCOMPARE(diagnostics[0].line, 31);
    QVERIFY(diagnostics[0].message.contains(QLatin1String("never inline")));
    QVERIFY(!diagnostics[0].toString().contains(QLatin1String("s3cr3t-inline-value-42")));
}

void tst_Config::brokenProjectIsRefusedAlone()
{
    Test::TemporaryConfig config;
    QByteArray good(validProject);
    const QString goodFile = config.writeProject(QStringLiteral("good"), good);
    QByteArray broken = good;
    broken.replace("id: demo", "id: broken").replace("result: pass", "result: perhaps");
    const QString brokenFile = config.writeProject(QStringLiteral("broken"), broken);
    const ProjectSet set = ProjectSet::load({brokenFile, goodFile}, *m_catalog);
    QCOMPARE(set.entries.size(), 2);
    QVERIFY(!set.entries[0].project.has_value());
    QCOMPARE(set.entries[0].diagnostics.size(), 1);
    QVERIFY(set.entries[1].project.has_value());
    QCOMPARE(set.validProjects().size(), 1);
    QCOMPARE(set.validProjects().first()->id, QStringLiteral("demo"));
}

void tst_Config::duplicateProjectIds()
{
    Test::TemporaryConfig config;
    const QString a = config.writeProject(QStringLiteral("a"), validProject);
    const QString b = config.writeProject(QStringLiteral("b"), validProject);
    const ProjectSet set = ProjectSet::load({a, b}, *m_catalog);
    QVERIFY(set.entries[0].project.has_value());
    QVERIFY(!set.entries[1].project.has_value());
    QVERIFY(set.entries[1].diagnostics.first().message.contains(QStringLiteral("already used by %1").arg(a)));
}

void tst_Config::rejectedPluginIsExplained()
{
    QByteArray yaml(validProject);
    yaml.replace("    plugin: test-gate\n    settings:\n      limits: {mode: lax}\n", "    plugin: api-too-new\n");
    const Diagnostics diagnostics = loadProject(yaml);
    QCOMPARE(diagnostics.size(), 1);
    QCOMPARE(diagnostics[0].key, QStringLiteral("instances.other-check.plugin"));
    QVERIFY2(diagnostics[0].message.contains(QLatin1String("plugin 'api-too-new' was rejected: needs SDK API 1.99")),
             qPrintable(diagnostics[0].message));
}

void tst_Config::factoryRefusalIsReported()
{
    QByteArray yaml(validProject);
    yaml.replace("limits: {mode: lax}", "limits: {mode: lax}\n      refuse: true");
    std::optional<ProjectConfig> project;
    QVERIFY(loadProject(yaml, &project).isEmpty());
    Diagnostics diagnostics;
    QVERIFY(!ProjectInstances::create(*project, *m_catalog, nullptr, diagnostics).has_value());
    QCOMPARE(diagnostics.size(), 1);
    QCOMPARE(diagnostics[0].key, QStringLiteral("instances.other-check"));
    QCOMPARE(diagnostics[0].line, 32);
    QVERIFY(diagnostics[0].message.contains(QLatin1String("refused by its factory on request")));
}

void tst_Config::hostFile_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<QList<Expected>>("expected");
    QTest::newRow("valid") << QByteArray("node: n1\nstate_dir: /var/lib/x\nplugin_dirs: [plugins]\nstore:\n  driver: postgresql\n"
                                         "  postgresql:\n    host: db\n    password: {credential: pg}\n")
                           << QList<Expected>{};
    QTest::newRow("unknown key") << QByteArray("node: n1\nplugin_dir: [x]\n")
                                 << QList<Expected>{{2, 1, QStringLiteral("plugin_dir"), QStringLiteral("unknown key (did you mean 'plugin_dirs'?)")}};
    QTest::newRow("bad driver") << QByteArray("store:\n  driver: mysql\n")
                                << QList<Expected>{{2, 11, QStringLiteral("store.driver"), QStringLiteral("'mysql' is not one of: sqlite, postgresql")}};
    QTest::newRow("inline password") << QByteArray("store:\n  postgresql:\n    password: hunter2hunter2\n")
                                     << QList<Expected>{{3, 15, QStringLiteral("store.postgresql.password"), QStringLiteral("never inline")}};
    QTest::newRow("bad port") << QByteArray("store:\n  postgresql:\n    port: 70000\n")
                              << QList<Expected>{{3, 11, QStringLiteral("store.postgresql.port"), QStringLiteral("above the maximum")}};
    QTest::newRow("plugin_dirs not a list") << QByteArray("plugin_dirs: /opt/plugins\n")
                                            << QList<Expected>{{1, 14, QStringLiteral("plugin_dirs"), QStringLiteral("expected a list")}};
    QTest::newRow("syntax") << QByteArray("node: [\n")
                            << QList<Expected>{{2, 1, QString(), QStringLiteral("YAML syntax error")}};
    // yaml-cpp stops at a NUL byte and blamed line 1; the NUL is on line 2, column 14.
    QTest::newRow("NUL byte") << QByteArray("node: n1\nstate_dir: /x\0y\n", 25)
                              << QList<Expected>{{2, 14, QString(), QStringLiteral("contains a NUL byte")}};
}

void tst_Config::hostFile()
{
    QFETCH(QByteArray, yaml);
    QFETCH(QList<Expected>, expected);
    Test::TemporaryConfig config;
    const QString file = config.writeHostFile(yaml);
    Diagnostics diagnostics;
    const HostConfig host = HostConfig::load(config.path(), diagnostics);
    QCOMPARE(host.file, file);
    QVERIFY(host.filePresent);
    QStringList seen;
    for (const Diagnostic &d : diagnostics)
        seen.append(d.toString());
    QVERIFY2(diagnostics.size() == expected.size(), qPrintable(seen.join(QLatin1Char('\n'))));
    for (int i = 0; i < expected.size(); ++i) {
        QCOMPARE(diagnostics[i].file, file);
        QCOMPARE(diagnostics[i].line, expected[i].line);
        QCOMPARE(diagnostics[i].column, expected[i].column);
        QCOMPARE(diagnostics[i].key, expected[i].key);
        QVERIFY2(diagnostics[i].message.contains(expected[i].message), qPrintable(diagnostics[i].message));
        QVERIFY(!diagnostics[i].toString().contains(QLatin1String("hunter2")));
    }
    if (expected.isEmpty()) {
        QCOMPARE(host.node, QStringLiteral("n1"));
        QCOMPARE(host.pluginDirs, QStringList{config.path() + QStringLiteral("/plugins")});
        QCOMPARE(host.store.driver, StoreSettings::Driver::Postgresql);
        QCOMPARE(host.store.host, QStringLiteral("db"));
        QCOMPARE(host.store.port, 5432);
        QCOMPARE(host.store.password.source(), SecretRef::Source::Credential);
        QCOMPARE(host.store.password.location(), QStringLiteral("pg"));
    }
}

void tst_Config::hostDefaults()
{
    Test::TemporaryConfig config; // no sluice.yaml at all
    Diagnostics diagnostics;
    const HostConfig host = HostConfig::load(config.path(), diagnostics);
    QVERIFY(diagnostics.isEmpty());
    QVERIFY(!host.filePresent);
    QCOMPARE(host.stateDir, QStringLiteral("/var/lib/sluice"));
    QCOMPARE(host.store.driver, StoreSettings::Driver::Sqlite);
    QCOMPARE(host.store.sqlitePath, QStringLiteral("/var/lib/sluice/sluice.db"));
    QCOMPARE(host.store.busyTimeoutMs, 5000);
    QCOMPARE(host.serviceUser, QStringLiteral("sluice"));
    QVERIFY(!host.node.isEmpty());
    config.writeProject(QStringLiteral("b"), "id: b\n");
    config.writeProject(QStringLiteral("a"), "id: a\n");
    config.writeFile(QStringLiteral("projects/notes.txt"), "not a project");
    Diagnostics listing;
    QCOMPARE(host.projectFiles(listing), QStringList({config.path() + QStringLiteral("/projects/a.yaml"),
                                                      config.path() + QStringLiteral("/projects/b.yaml")}));
    QVERIFY(listing.isEmpty());
}

void tst_Config::configDirResolution()
{
    qunsetenv("SLUICE_CONFIG_DIR");
    QCOMPARE(HostConfig::resolveConfigDir(QString()), QStringLiteral("/etc/sluice"));
    qputenv("SLUICE_CONFIG_DIR", "/srv/sluice-conf");
    QCOMPARE(HostConfig::resolveConfigDir(QString()), QStringLiteral("/srv/sluice-conf"));
    QCOMPARE(HostConfig::resolveConfigDir(QStringLiteral("/opt/x")), QStringLiteral("/opt/x"));
    qunsetenv("SLUICE_CONFIG_DIR");
}


// ADR 0003: a password inside libpq's options would be a secret written inline.
void tst_Config::postgresqlOptionsHoldNoSecret_data()
{
    QTest::addColumn<QByteArray>("options");
    QTest::addColumn<bool>("refused");
    QTest::newRow("plain") << QByteArray("sslmode=verify-full connect_timeout=5") << false;
    QTest::newRow("quoted value") << QByteArray("application_name='a b' sslmode = require") << false;
    QTest::newRow("semicolons") << QByteArray("sslmode=require;connect_timeout=5") << false;
    QTest::newRow("passfile is a reference") << QByteArray("passfile=/etc/sluice/pgpass") << false;
    QTest::newRow("password") << QByteArray("sslmode=require password=hunter2hunter2") << true;
    QTest::newRow("password after ;") << QByteArray("sslmode=require;password=hunter2hunter2") << true;
    QTest::newRow("spaced password") << QByteArray("password = 'hunter2 hunter2'") << true;
    QTest::newRow("sslpassword") << QByteArray("sslpassword=hunter2hunter2") << true;
    QTest::newRow("password inside a quoted value") << QByteArray("application_name='password=hunter2hunter2'") << false;
}

void tst_Config::postgresqlOptionsHoldNoSecret()
{
    QFETCH(QByteArray, options);
    QFETCH(bool, refused);
    Test::TemporaryConfig config;
    const QString file = config.writeHostFile("store:\n  postgresql:\n    options: \"" + options + "\"\n");
    Diagnostics diagnostics;
    (void)HostConfig::load(config.path(), diagnostics);
    QStringList seen;
    for (const Diagnostic &d : diagnostics)
        seen.append(d.toString());
    QVERIFY2(diagnostics.size() == (refused ? 1 : 0), qPrintable(seen.join(QLatin1Char('\n'))));
    if (refused) {
        QCOMPARE(diagnostics[0].file, file);
        QCOMPARE(diagnostics[0].line, 3);
        QCOMPARE(diagnostics[0].column, 14);
        QCOMPARE(diagnostics[0].key, QStringLiteral("store.postgresql.options"));
        QVERIFY(diagnostics[0].message.contains(QLatin1String("never inline")));
        QVERIFY(!diagnostics[0].toString().contains(QLatin1String("hunter2")));
    }
}

// Documents that would cost far more to validate than to read: each is refused with the
// position where the limit was crossed, before a tree is built.
void tst_Config::hostileYaml_data()
{
    QTest::addColumn<QByteArray>("yaml");
    QTest::addColumn<int>("line");
    QTest::addColumn<int>("column");
    QTest::addColumn<QString>("message");

    QByteArray wide = "big: &s \"" + QByteArray(100 * 1024, 'A') + "\"\nlist:\n";
    for (int i = 0; i < 100; ++i)
        wide += "  - *s\n";
    // The scalar and 81 aliases of it cross 8 MiB: the 81st alias, on line 2 + 81.
    QTest::newRow("wide alias") << wide << 83 << 5 << QStringLiteral("aliases expand the file past 8 MiB of text at this alias");

    // The billion laughs: ten levels of ten aliases each, 10^10 leaves from a 1 KiB file.
    QByteArray laughs = "l0: &l0 \"lol\"\n";
    for (int level = 1; level <= 9; ++level) {
        laughs += "l" + QByteArray::number(level) + ": &l" + QByteArray::number(level) + " [";
        for (int i = 0; i < 10; ++i)
            laughs += (i ? ", *l" : "*l") + QByteArray::number(level - 1);
        laughs += "]\n";
    }
    // l5 expands to 111,111 values: the first alias of it on line 7 crosses 200,000.
    QTest::newRow("billion laughs") << laughs << 7 << 10 << QStringLiteral("values once aliases are expanded");

    QTest::newRow("recursive alias") << QByteArray("a: &x\n  - *x\n") << 2 << 5
                                     << QStringLiteral("refers to a node that contains it");
    // (A plain key that long is a syntax error already; an explicit key is not.)
    QTest::newRow("long key") << QByteArray("? " + QByteArray(2000, 'k') + "\n: 1\n") << 1 << 3
                              << QStringLiteral("a key of 2000 bytes; keys and names are at most 1024 bytes");
    QTest::newRow("long key by alias") << QByteArray("a: &k " + QByteArray(1500, 'k') + "\n*k : 1\n") << 2 << 1
                                       << QStringLiteral("a key of 1500 bytes (through this alias)");
    QByteArray many = "x: [";
    for (int i = 0; i < 250000; ++i)
        many += i ? ",1" : "1";
    many += "]\n";
    // The root, the key and the list are three values: item 199,998 is one too many.
    QTest::newRow("too many values") << many << 1 << 399999 << QStringLiteral("more than 200000 values; refusing");
}

void tst_Config::hostileYaml()
{
    QFETCH(QByteArray, yaml);
    QFETCH(int, line);
    QFETCH(int, column);
    QFETCH(QString, message);
    Diagnostics diagnostics;
    const auto root = parseYaml(yaml, QStringLiteral("/etc/sluice/projects/p.yaml"), diagnostics);
    QVERIFY(!root);
    QCOMPARE(diagnostics.size(), 1);
    QVERIFY2(diagnostics[0].message.contains(message), qPrintable(diagnostics[0].toString()));
    QCOMPARE(diagnostics[0].line, line);
    QCOMPARE(diagnostics[0].column, column);
}

// The issue's reproduction: a 1 MB description referenced 3,000 times grew `sluice check`
// past 5.9 GB and ended in std::bad_alloc. Now it is one diagnostic.
void tst_Config::aliasBombProjectIsRefusedQuickly()
{
    QByteArray yaml = "id: bomb\ndescription: &s \"" + QByteArray(1000 * 1000, 'A') + "\"\nstages:\n  - name: a\n    exit_gates: [";
    for (int i = 0; i < 3000; ++i)
        yaml += i ? ", *s" : "*s";
    yaml += "]\n  - name: done\n";
    Diagnostics diagnostics;
    std::optional<ProjectConfig> project;
    diagnostics = loadProject(yaml, &project);
    QVERIFY(!project);
    QCOMPARE(diagnostics.size(), 1);
    QCOMPARE(diagnostics[0].line, 5);
    QVERIFY2(diagnostics[0].message.contains(QLatin1String("aliases expand the file past 8 MiB")), qPrintable(diagnostics[0].message));
    QVERIFY(diagnostics[0].toString().size() < 300);
}

void tst_Config::problemsPerFileAreCapped()
{
    // 500 unknown keys, each with a long name: 100 problems, one note, and no message longer
    // than a screen.
    QByteArray yaml = "id: many\n";
    for (int i = 0; i < 500; ++i)
        yaml += "unknown_" + QByteArray::number(i) + "_" + QByteArray(900, 'x') + ": 1\n";
    const Diagnostics diagnostics = loadProject(yaml);
    QCOMPARE(diagnostics.size(), YamlLimits::maxDiagnosticsPerFile + 1);
    QVERIFY(diagnostics.last().message.contains(QLatin1String("more than 100 problems; the rest are not listed")));
    for (const Diagnostic &d : diagnostics)
        QVERIFY2(d.toString().size() < 1000 + d.file.size(), qPrintable(d.toString().left(200)));
}

void tst_Config::nonRegularFilesAreRefused_data()
{
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("message");
    QTest::newRow("symlink to /dev/zero") << QStringLiteral("devzero") << QStringLiteral("is a character device, not a regular file");
    QTest::newRow("FIFO") << QStringLiteral("fifo") << QStringLiteral("is a FIFO, not a regular file");
    QTest::newRow("directory") << QStringLiteral("dir") << QStringLiteral("is a directory, not a regular file");
    QTest::newRow("dangling symlink") << QStringLiteral("dangling") << QStringLiteral("is a symbolic link to ");
    QTest::newRow("symlink loop") << QStringLiteral("loop") << QStringLiteral("is a symbolic link loop");
    QTest::newRow("over 4 MiB") << QStringLiteral("big") << QStringLiteral("larger than 4 MiB");
}

// Bad files in projects/ and as the host file: each refused by name, quickly (a FIFO used to
// hang `sluice check` forever, /dev/zero to exhaust its memory).
void tst_Config::nonRegularFilesAreRefused()
{
    QFETCH(QString, kind);
    QFETCH(QString, message);
    Test::TemporaryConfig config;
    QVERIFY(QDir().mkpath(config.path() + QStringLiteral("/projects")));
    auto make = [&](const QString &path) {
        const QByteArray p = QFile::encodeName(path);
        if (kind == QLatin1String("devzero"))
            return ::symlink("/dev/zero", p.constData()) == 0;
        if (kind == QLatin1String("fifo"))
            return ::mkfifo(p.constData(), 0600) == 0;
        if (kind == QLatin1String("dir"))
            return QDir().mkpath(path);
        if (kind == QLatin1String("dangling"))
            return ::symlink("nowhere.yaml", p.constData()) == 0;
        if (kind == QLatin1String("loop"))
            return ::symlink(QFileInfo(path).fileName().toUtf8().constData(), p.constData()) == 0;
        QFile f(path);
        return f.open(QIODevice::WriteOnly) && f.write(QByteArray(4 * 1024 * 1024 + 1, '#')) > 0;
    };
    const QString project = config.path() + QStringLiteral("/projects/p.yaml");
    QVERIFY(make(project));
    Diagnostics listing;
    const QStringList files = HostConfig{.configDir = config.path()}.projectFiles(listing);
    QVERIFY(listing.isEmpty());
    QCOMPARE(files, QStringList{project});
    const ProjectSet set = ProjectSet::load(files, *m_catalog);
    QCOMPARE(set.entries.size(), 1);
    QVERIFY(!set.entries[0].project);
    QCOMPARE(set.entries[0].diagnostics.size(), 1);
    QCOMPARE(set.entries[0].diagnostics[0].file, project);
    QVERIFY2(set.entries[0].diagnostics[0].message.contains(message), qPrintable(set.entries[0].diagnostics[0].message));

    const QString host = config.path() + QStringLiteral("/sluice.yaml");
    QVERIFY(make(host));
    Diagnostics diagnostics;
    (void)HostConfig::load(config.path(), diagnostics);
    QCOMPARE(diagnostics.size(), 1);
    QCOMPARE(diagnostics[0].file, host);
    QVERIFY2(diagnostics[0].message.contains(message), qPrintable(diagnostics[0].message));
}

void tst_Config::projectListingReportsWhatItCannotRead()
{
    Test::TemporaryConfig config;
    HostConfig host;
    host.configDir = config.path();
    Diagnostics listing;
    QVERIFY(host.projectFiles(listing).isEmpty()); // no projects/ at all: nothing to say
    QVERIFY(listing.isEmpty());

    // projects/ that is not a directory, or a link loop, cannot be listed: a problem naming it.
    const QString projects = config.path() + QStringLiteral("/projects");
    config.writeFile(QStringLiteral("projects"), "not a directory");
    QVERIFY(host.projectFiles(listing).isEmpty());
    QCOMPARE(listing.size(), 1);
    QCOMPARE(listing[0].file, projects);
    QVERIFY2(listing[0].message.contains(QLatin1String("cannot list the project files: Not a directory")), qPrintable(listing[0].message));
    QVERIFY(QFile::remove(projects));
    QCOMPARE(::symlink("projects", QFile::encodeName(projects).constData()), 0);
    listing.clear();
    QVERIFY(host.projectFiles(listing).isEmpty());
    QCOMPARE(listing.size(), 1);
    QVERIFY2(listing[0].message.contains(QLatin1String("Too many levels of symbolic links")), qPrintable(listing[0].message));
    QVERIFY(QFile::remove(projects));

    if (::geteuid() != 0) {
        QVERIFY(QDir().mkpath(projects));
        QVERIFY(QFile::setPermissions(projects, QFileDevice::WriteOwner));
        listing.clear();
        QVERIFY(host.projectFiles(listing).isEmpty());
        QCOMPARE(listing.size(), 1);
        QVERIFY(listing[0].message.contains(QLatin1String("Permission denied")));
        QVERIFY(QFile::setPermissions(projects, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner));
    }
}

QTEST_GUILESS_MAIN(tst_Config)
#include "tst_config.moc"
