// SPDX-License-Identifier: Apache-2.0
// The `sluice` executable as operators and scripts use it: real process, real files.

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QtTest>

#include <sys/stat.h>

using namespace Sluice;

namespace {

struct Run {
    int exitCode = -1;
    QString out;
    QString err;
};

Run sluice(const QStringList &arguments, const QMap<QString, QString> &env = {})
{
    QProcess p;
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.remove(QStringLiteral("SLUICE_PLUGIN_PATH"));
    environment.remove(QStringLiteral("SLUICE_CONFIG_DIR"));
    for (auto it = env.begin(); it != env.end(); ++it)
        environment.insert(it.key(), it.value());
    p.setProcessEnvironment(environment);
    p.start(QStringLiteral(SLUICE_EXECUTABLE), arguments);
    if (!p.waitForFinished(60000))
        qFatal("sluice %s did not finish", qPrintable(arguments.join(QLatin1Char(' '))));
    return Run{p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
               QString::fromUtf8(p.readAllStandardError())};
}

const char *const goodProject = R"(id: good
repository:
  path: /srv/git/good.git
stages:
  - name: development
  - name: review
    exit_gates: [check]
  - name: done
instances:
  check:
    plugin: test-gate
    settings:
      limits: {mode: strict}
)";

} // namespace

class tst_Cli : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void version();
    void help();
    void pluginsJson();
    void pluginsTable();
    void checkValid();
    void checkReportsFileLineColumn();
    void checkJson();
    void checkHostFileError();
    void checkRefusesUnsafePluginDirectory();
    void checkUsesConfigDirFromEnvironment();
    void checkDeployEdgeExample();
    void readOnlyCommandsLeaveTheStoreAlone();
    void readOnlyCommandsRedactTheProjectsSecrets();
    void aSignalWaitsForTheStageToAsk();

private:
    Test::PluginDirectory m_plugins;
};

void tst_Cli::initTestCase()
{
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-gate"));
}

void tst_Cli::version()
{
    const Run plain = sluice({QStringLiteral("version")});
    QCOMPARE(plain.exitCode, 0);
    QVERIFY2(plain.out.startsWith(QLatin1String("sluice 0.1.0 (SDK ABI 1, API 1.3; Qt 5.15")), qPrintable(plain.out));
    const Run json = sluice({QStringLiteral("version"), QStringLiteral("--json")});
    QCOMPARE(json.exitCode, 0);
    const QJsonObject o = QJsonDocument::fromJson(json.out.toUtf8()).object();
    QCOMPARE(o.value(QLatin1String("pluginIid")).toString(), QStringLiteral("org.sluice.PluginFactory/1"));
    QCOMPARE(o.value(QLatin1String("sdkApi")).toString(), QStringLiteral("1.3"));
}

void tst_Cli::help()
{
    const Run top = sluice({QStringLiteral("--help")});
    QCOMPARE(top.exitCode, 0);
    for (const char *command : {"check", "plugins", "version"})
        QVERIFY2(top.out.contains(QLatin1String(command)), qPrintable(top.out));
    const Run check = sluice({QStringLiteral("check"), QStringLiteral("--help")});
    QCOMPARE(check.exitCode, 0);
    QVERIFY(check.out.contains(QLatin1String("--config <DIR>")));
    QVERIFY(check.out.contains(QLatin1String("--json")));
    const Run unknown = sluice({QStringLiteral("frobnicate")});
    QCOMPARE(unknown.exitCode, 2);
    QVERIFY(unknown.err.contains(QLatin1String("unknown command 'frobnicate'")));
    const Run badOption = sluice({QStringLiteral("check"), QStringLiteral("--jsn")});
    QCOMPARE(badOption.exitCode, 2);
    QVERIFY(badOption.err.contains(QLatin1String("Unknown option 'jsn'")));
    QCOMPARE(sluice({}).exitCode, 2);
}

void tst_Cli::pluginsJson()
{
    Test::PluginDirectory extra;
    extra.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("api-too-new"));
    QFile corrupt(extra.path() + QStringLiteral("/corrupt.so"));
    QVERIFY(corrupt.open(QIODevice::WriteOnly));
    corrupt.write(QByteArray(1000, 'x'));
    corrupt.close();
    Test::TemporaryConfig config;
    const Run run = sluice({QStringLiteral("plugins"), QStringLiteral("--json"), QStringLiteral("--config"), config.path()},
                           {{QStringLiteral("SLUICE_PLUGIN_PATH"), m_plugins.path() + QLatin1Char(':') + extra.path()}});
    QCOMPARE(run.exitCode, 0);
    const QJsonObject o = QJsonDocument::fromJson(run.out.toUtf8()).object();
    const QJsonArray search = o.value(QLatin1String("searchPath")).toArray();
    QCOMPARE(search.at(0).toString(), m_plugins.path());
    QCOMPARE(search.at(1).toString(), extra.path());
    QVERIFY(search.last().toString().endsWith(QLatin1String("/sluice/plugins"))); // the install dir, last
    QMap<QString, QJsonObject> byFile;
    for (const QJsonValue &v : o.value(QLatin1String("plugins")).toArray())
        byFile.insert(QFileInfo(v.toObject().value(QLatin1String("path")).toString()).fileName(), v.toObject());
    QCOMPARE(byFile.value(QStringLiteral("test-gate.so")).value(QLatin1String("state")).toString(), QStringLiteral("loaded"));
    QCOMPARE(byFile.value(QStringLiteral("test-gate.so")).value(QLatin1String("kind")).toString(), QStringLiteral("gate"));
    QCOMPARE(byFile.value(QStringLiteral("test-gate.so")).value(QLatin1String("apiVersion")).toString(), QStringLiteral("1.0"));
    QCOMPARE(byFile.value(QStringLiteral("api-too-new.so")).value(QLatin1String("state")).toString(), QStringLiteral("rejected"));
    QVERIFY(byFile.value(QStringLiteral("api-too-new.so")).value(QLatin1String("reason")).toString().contains(QLatin1String("1.99")));
    QCOMPARE(byFile.value(QStringLiteral("corrupt.so")).value(QLatin1String("state")).toString(), QStringLiteral("rejected"));
    // The plugins this build installs are found in the install directory next to the executable.
    QCOMPARE(byFile.value(QStringLiteral("sluice_gate_verdict.so")).value(QLatin1String("state")).toString(), QStringLiteral("loaded"));
}

void tst_Cli::pluginsTable()
{
    Test::TemporaryConfig config;
    const Run run = sluice({QStringLiteral("plugins"), QStringLiteral("--config"), config.path()},
                           {{QStringLiteral("SLUICE_PLUGIN_PATH"), m_plugins.path()}});
    QCOMPARE(run.exitCode, 0);
    QVERIFY(run.out.contains(QRegularExpression(QStringLiteral("\\ntest-gate +gate +1\\.0\\.0 +1\\.0 +loaded +%1/test-gate\\.so\\n")
                                                   .arg(QRegularExpression::escape(m_plugins.path())))));
}

void tst_Cli::checkValid()
{
    Test::TemporaryConfig config;
    config.writeHostFile(QByteArray("plugin_dirs: [") + m_plugins.path().toUtf8() + "]\n");
    config.writeProject(QStringLiteral("good"), goodProject);
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--config"), config.path()});
    QVERIFY2(run.exitCode == 0, qPrintable(run.out + run.err));
    QVERIFY(run.out.isEmpty());
    QVERIFY2(run.err.contains(QLatin1String("ok: host file valid; 1 project file(s), 1 valid, 0 refused")), qPrintable(run.err));
}

void tst_Cli::checkReportsFileLineColumn()
{
    Test::TemporaryConfig config;
    config.writeHostFile(QByteArray("plugin_dirs: [") + m_plugins.path().toUtf8() + "]\n");
    config.writeProject(QStringLiteral("good"), goodProject);
    QByteArray broken(goodProject);
    broken.replace("id: good", "id: broken").replace("exit_gates: [check]", "exit_gates: [chek]").replace("      limits: {mode: strict}\n", "      limits: {mode: strict}\n      retries: many\n");
    const QString brokenFile = config.writeProject(QStringLiteral("broken"), broken);
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--config"), config.path()});
    QCOMPARE(run.exitCode, 1);
    const QStringList lines = run.out.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 2);
    QCOMPARE(lines[0], QStringLiteral("%1:14:16: instances.check.settings.retries: expected an integer, found 'many'").arg(brokenFile));
    QCOMPARE(lines[1], QStringLiteral("%1:7:18: stages[1].exit_gates[0]: no instance named 'chek' in instances").arg(brokenFile));
    QVERIFY2(run.err.contains(QLatin1String("FAILED: host file valid; 2 project file(s), 1 valid, 1 refused")), qPrintable(run.err));
}

void tst_Cli::checkJson()
{
    Test::TemporaryConfig config;
    config.writeHostFile(QByteArray("plugin_dirs: [") + m_plugins.path().toUtf8() + "]\n");
    config.writeProject(QStringLiteral("good"), goodProject);
    config.writeProject(QStringLiteral("typo"), QByteArray(goodProject).replace("id: good", "id: typo\nstagse: []"));
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--json"), QStringLiteral("--config"), config.path()});
    QCOMPARE(run.exitCode, 1);
    const QJsonObject o = QJsonDocument::fromJson(run.out.toUtf8()).object();
    QCOMPARE(o.value(QLatin1String("ok")).toBool(true), false);
    const QJsonArray projects = o.value(QLatin1String("projects")).toArray();
    QCOMPARE(projects.size(), 2);
    QCOMPARE(projects[0].toObject().value(QLatin1String("id")).toString(), QStringLiteral("good"));
    QCOMPARE(projects[0].toObject().value(QLatin1String("valid")).toBool(), true);
    QCOMPARE(projects[1].toObject().value(QLatin1String("valid")).toBool(), false);
    const QJsonObject error = projects[1].toObject().value(QLatin1String("errors")).toArray().first().toObject();
    QCOMPARE(error.value(QLatin1String("line")).toInt(), 2);
    QCOMPARE(error.value(QLatin1String("column")).toInt(), 1);
    QCOMPARE(error.value(QLatin1String("key")).toString(), QStringLiteral("stagse"));
    QVERIFY(error.value(QLatin1String("message")).toString().contains(QLatin1String("did you mean 'stages'")));
}

void tst_Cli::checkHostFileError()
{
    Test::TemporaryConfig config;
    const QString host = config.writeHostFile("store:\n  driver: sqlite\n  sqlite:\n    pth: /tmp/x.db\n");
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--config"), config.path()});
    QCOMPARE(run.exitCode, 1);
    QCOMPARE(run.out.trimmed(), QStringLiteral("%1:4:5: store.sqlite.pth: unknown key (did you mean 'path'?)").arg(host));
    QVERIFY(run.err.contains(QLatin1String("note: no project files")));
}

void tst_Cli::checkRefusesUnsafePluginDirectory()
{
    Test::PluginDirectory unsafe;
    unsafe.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-gate"));
    QCOMPARE(::chmod(QFile::encodeName(unsafe.path()).constData(), 0757), 0);
    Test::TemporaryConfig config;
    config.writeHostFile(QByteArray("plugin_dirs: [") + unsafe.path().toUtf8() + "]\n");
    config.writeProject(QStringLiteral("good"), goodProject);
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--config"), config.path()});
    QCOMPARE(run.exitCode, 1);
    QVERIFY2(run.out.contains(QStringLiteral("%1: plugin directory refused: %1 is writable by others").arg(unsafe.path())), qPrintable(run.out));
    // The project that needed a plugin from it is refused with the reason at its line.
    QVERIFY2(run.out.contains(QLatin1String("good.yaml:11:13: instances.check.plugin: unknown plugin 'test-gate'")), qPrintable(run.out));
    QCOMPARE(run.out.count(QLatin1Char('\n')), 2); // no cascade of errors about the instance's uses
}

void tst_Cli::checkUsesConfigDirFromEnvironment()
{
    Test::TemporaryConfig config;
    config.writeHostFile(QByteArray("plugin_dirs: [") + m_plugins.path().toUtf8() + "]\n");
    config.writeProject(QStringLiteral("good"), goodProject);
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--json")}, {{QStringLiteral("SLUICE_CONFIG_DIR"), config.path()}});
    QCOMPARE(run.exitCode, 0);
    QCOMPARE(QJsonDocument::fromJson(run.out.toUtf8()).object().value(QLatin1String("configDir")).toString(), config.path());
}

QTEST_GUILESS_MAIN(tst_Cli)
void tst_Cli::checkDeployEdgeExample()
{
    // The shipped example as an operator would check it: the real `sluice check`, the
    // plugins as built (the executable's default plugin directory), no host file.
    const QString example = QStringLiteral(SLUICE_SOURCE_DIR "/resources/examples/deploy-edge");
    const Run run = sluice({QStringLiteral("check"), QStringLiteral("--config"), example});
    QVERIFY2(run.exitCode == 0, qPrintable(run.out + run.err));
    QVERIFY2(run.err.contains(QLatin1String("1 project file(s), 1 valid, 0 refused")), qPrintable(run.err));
    QVERIFY2(run.err.contains(QLatin1String("0 with problems")), qPrintable(run.err));
}

void tst_Cli::readOnlyCommandsLeaveTheStoreAlone()
{
    Test::TemporaryConfig config;
    config.writeHostFile(QByteArray("state_dir: state\nplugin_dirs: [") + m_plugins.path().toUtf8() + "]\n");
    const QString database = config.path() + QStringLiteral("/state/sluice.db");

    // No store yet: status, queue and task say so and create nothing.
    for (const QStringList &command : {QStringList{QStringLiteral("status")}, QStringList{QStringLiteral("queue")},
                                       QStringList{QStringLiteral("task"), QStringLiteral("1")}}) {
        const Run run = sluice(command + QStringList{QStringLiteral("--config"), config.path()});
        QCOMPARE(run.exitCode, 1);
        QVERIFY2(run.err.contains(QLatin1String("does not exist yet")), qPrintable(run.err));
        QVERIFY(!QFileInfo::exists(database));
    }

    // A store at an older schema version: refused, not migrated.
    QVERIFY(QDir().mkpath(config.path() + QStringLiteral("/state")));
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("old-store"));
        db.setDatabaseName(database);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec(QStringLiteral("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at BIGINT)")));
        QVERIFY(q.exec(QStringLiteral("INSERT INTO schema_migrations VALUES (1, 'initial', 0)")));
        db.close();
    }
    QSqlDatabase::removeDatabase(QStringLiteral("old-store"));
    const Run queue = sluice({QStringLiteral("queue"), QStringLiteral("--config"), config.path()});
    QCOMPARE(queue.exitCode, 1);
    QVERIFY2(queue.err.contains(QLatin1String("has schema version 1, this sluice needs")), qPrintable(queue.err));
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("old-store"));
        db.setDatabaseName(database);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec(QStringLiteral("SELECT MAX(version) FROM schema_migrations")) && q.next());
        QCOMPARE(q.value(0).toInt(), 1);
        db.close();
    }
    QSqlDatabase::removeDatabase(QStringLiteral("old-store"));
}

void tst_Cli::readOnlyCommandsRedactTheProjectsSecrets()
{
    // A project's secret (a webhook notifier's key, with characters JSON escapes) reaches a
    // row of the store that was written unmasked — by a Sluice that did not know it yet. The
    // read-only commands read the project's secret references themselves and print none of
    // it, text or JSON, without a daemon.
    Test::TemporaryConfig config;
    config.writeHostFile("state_dir: state\n");
    const QByteArray secret = "s3cr\"et\\hook-key-7f2a9c";
    config.writeFile(QStringLiteral("secrets/hook"), secret + '\n');
    config.writeProject(QStringLiteral("p"), R"(id: p
repository: {path: /srv/git/p.git}
stages:
  - name: work
  - name: done
instances:
  hook:
    plugin: webhook-notifier
    settings: {url: "http://127.0.0.1:9/hook", secret: {file: ../secrets/hook}}
)");
    const Run submit = sluice({QStringLiteral("submit"), QStringLiteral("--config"), config.path(), QStringLiteral("--project"),
                               QStringLiteral("p"), QStringLiteral("--title"), QStringLiteral("Rotate the key")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("plant"));
        db.setDatabaseName(config.path() + QStringLiteral("/state/sluice.db"));
        QVERIFY(db.open());
        QSqlQuery q(db);
        q.prepare(QStringLiteral("UPDATE tasks SET status = 'blocked', blocked_reason = ?, title = ? WHERE id = 1"));
        q.addBindValue(QStringLiteral("the hook answered 401 for key %1").arg(QString::fromUtf8(secret)));
        q.addBindValue(QStringLiteral("Rotate %1").arg(QString::fromUtf8(secret)));
        QVERIFY(q.exec());
        db.close();
    }
    QSqlDatabase::removeDatabase(QStringLiteral("plant"));
    for (const QStringList &command : {QStringList{QStringLiteral("task"), QStringLiteral("1")},
                                       QStringList{QStringLiteral("task"), QStringLiteral("1"), QStringLiteral("--json")},
                                       QStringList{QStringLiteral("status")}, QStringList{QStringLiteral("status"), QStringLiteral("--json")}}) {
        const Run run = sluice(QStringList{command.first(), QStringLiteral("--config"), config.path()} + command.mid(1));
        QVERIFY2(run.exitCode == 0, qPrintable(run.err));
        // Neither the value nor its JSON-escaped form.
        QVERIFY2(!run.out.contains(QLatin1String("hook-key-7f2a9c")), qPrintable(command.join(QLatin1Char(' ')) + QLatin1Char('\n') + run.out));
        QVERIFY2(run.out.contains(QLatin1String("[REDACTED]")), qPrintable(run.out));
    }
    const Run json = sluice({QStringLiteral("task"), QStringLiteral("--config"), config.path(), QStringLiteral("1"), QStringLiteral("--json")});
    QCOMPARE(QJsonDocument::fromJson(json.out.toUtf8()).object().value(QLatin1String("blockedReason")).toString(),
             QStringLiteral("the hook answered 401 for key [REDACTED]"));
}

void tst_Cli::aSignalWaitsForTheStageToAsk()
{
    // Two approval stages in a row, and no daemon between the commands: `sluice approve`
    // for the first stage, then at once the second stage's signal. The second stage's run
    // has not asked anybody yet, so its signal is refused and the task stays; once a worker
    // ran the stage (its request recorded and notified), the same signal moves it.
    Test::TemporaryConfig config;
    config.writeHostFile("node: cli-node\nstate_dir: state\nworker: {poll_interval: 100ms}\nhttp: {enabled: false}\n");
    const QString repo = config.path() + QStringLiteral("/repo.git");
    config.writeFile(QStringLiteral("seed/README"), "seed\n");
    const QString seed = config.path() + QStringLiteral("/seed");
    QCOMPARE(Test::runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), repo}).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("add"), QStringLiteral("README")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("push"), QStringLiteral("-q"), repo, QStringLiteral("main")}, seed).code, 0);
    config.writeProject(QStringLiteral("gated"), R"(id: gated
repository: {path: ../repo.git}
stages:
  - name: awaiting
    run: approval
  - name: deploy-gate
    run: confirm
  - name: done
instances:
  approval: {plugin: approval, settings: {signal: approve}}
  confirm: {plugin: approval, settings: {signal: confirm-deploy, instructions: Confirm the deploy.}}
)");
    const QString dir = config.path();
    auto approve = [&dir](const QString &stage, const QString &signal) {
        return sluice({QStringLiteral("approve"), QStringLiteral("--config"), dir, QStringLiteral("1"), stage,
                       QStringLiteral("--signal"), signal, QStringLiteral("--json")});
    };
    auto serveUntilIdle = [&dir] {
        QProcess serve;
        serve.setProcessChannelMode(QProcess::MergedChannels);
        serve.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("serve"), QStringLiteral("--config"), dir, QStringLiteral("--exit-when-idle")});
        const bool finished = serve.waitForFinished(120000);
        if (!finished || serve.exitCode() != 0)
            qWarning().noquote() << serve.readAll();
        return finished && serve.exitCode() == 0;
    };
    auto taskIs = [&dir](const QString &stage, const QString &status) {
        const Run run = sluice({QStringLiteral("task"), QStringLiteral("--config"), dir, QStringLiteral("1"), QStringLiteral("--json")});
        const QJsonObject t = QJsonDocument::fromJson(run.out.toUtf8()).object();
        return t.value(QLatin1String("stage")).toString() == stage && t.value(QLatin1String("status")).toString() == status;
    };
    const Run submit = sluice({QStringLiteral("submit"), QStringLiteral("--config"), dir, QStringLiteral("--project"), QStringLiteral("gated"),
                               QStringLiteral("--title"), QStringLiteral("Release")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));

    // Nobody was asked yet: the first stage's job has not run.
    Run early = approve(QStringLiteral("awaiting"), QStringLiteral("approve"));
    QCOMPARE(early.exitCode, 1);
    QVERIFY2(QJsonDocument::fromJson(early.out.toUtf8()).object().value(QLatin1String("reason")).toString()
                 .contains(QLatin1String("stage 'awaiting' has not asked for 'approve' yet")), qPrintable(early.out));
    QVERIFY(taskIs(QStringLiteral("awaiting"), QStringLiteral("active")));

    QVERIFY(serveUntilIdle()); // the first stage asks
    const Run first = approve(QStringLiteral("awaiting"), QStringLiteral("approve"));
    QVERIFY2(first.exitCode == 0, qPrintable(first.out + first.err));
    // At once, the second stage's signal: its run has not asked anybody.
    const Run racing = approve(QStringLiteral("deploy-gate"), QStringLiteral("confirm-deploy"));
    QCOMPARE(racing.exitCode, 1);
    const QJsonObject refused = QJsonDocument::fromJson(racing.out.toUtf8()).object();
    QCOMPARE(refused.value(QLatin1String("accepted")).toBool(true), false);
    QVERIFY2(refused.value(QLatin1String("reason")).toString().contains(QLatin1String("stage 'deploy-gate' has not asked for 'confirm-deploy' yet")),
             qPrintable(racing.out));
    QVERIFY(taskIs(QStringLiteral("deploy-gate"), QStringLiteral("active")));

    QVERIFY(serveUntilIdle()); // the second stage asks (recorded and notified)
    const Run confirmed = approve(QStringLiteral("deploy-gate"), QStringLiteral("confirm-deploy"));
    QVERIFY2(confirmed.exitCode == 0, qPrintable(confirmed.out + confirmed.err));
    QCOMPARE(QJsonDocument::fromJson(confirmed.out.toUtf8()).object().value(QLatin1String("outcome")).toString(), QStringLiteral("done"));
    QVERIFY(taskIs(QStringLiteral("done"), QStringLiteral("done")));

    // The history says who asked before each signal was taken.
    const Run task = sluice({QStringLiteral("task"), QStringLiteral("--config"), dir, QStringLiteral("1"), QStringLiteral("--json")});
    QStringList actions;
    for (const QJsonValue &v : QJsonDocument::fromJson(task.out.toUtf8()).object().value(QLatin1String("history")).toArray()) {
        const QString action = v.toObject().value(QLatin1String("action")).toString();
        if (action == QLatin1String("approval-requested") || action.startsWith(QLatin1String("signal")))
            actions << action + QLatin1Char(':') + v.toObject().value(QLatin1String("details")).toObject().value(QLatin1String("stage")).toString();
    }
    QCOMPARE(actions, QStringList({QStringLiteral("signal-ignored:awaiting"), QStringLiteral("approval-requested:awaiting"),
                                   QStringLiteral("signal:awaiting"), QStringLiteral("signal-ignored:deploy-gate"),
                                   QStringLiteral("approval-requested:deploy-gate"), QStringLiteral("signal:deploy-gate")}));
}

#include "tst_cli.moc"
