// SPDX-License-Identifier: Apache-2.0
// The boundary between an agent and the project's repository, through a real `sluice serve`
// (SQLite, the process launcher and agent stage, real git repositories) and the real CLI:
//
// - an agent that rewrites "its" repository's main from its working copy rewrites only its
//   own copy: the project's main stays, the task's branch and head are what it committed;
// - an agent that goes looking for the project's repository and writes there gets its task
//   blocked with the references it changed, audited, and nothing taken from its copy;
// - with a forge as the repository's remote, the task branch is pushed before any gate looks
//   (head recorded, pushed recorded), and a commit holding a secret never reaches the forge:
//   the task goes back with the finding, and once the agent rewrote its history, it is pushed.

#include "daemonprocess.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <csignal>

using namespace Sluice;

namespace {

struct Cli {
    int exitCode = -1;
    QByteArray out;
    QByteArray err;
};

Cli sluice(const QStringList &arguments, int timeoutMs = 60000)
{
    QProcess p;
    p.start(QStringLiteral(SLUICE_EXECUTABLE), arguments);
    if (!p.waitForFinished(timeoutMs)) {
        p.kill();
        p.waitForFinished();
        qWarning("sluice %s did not finish: %s", qPrintable(arguments.join(QLatin1Char(' '))), p.readAllStandardError().constData());
        return {};
    }
    return Cli{p.exitCode(), p.readAllStandardOutput(), p.readAllStandardError()};
}

QString git(const QString &dir, const QStringList &args)
{
    return Test::runGit(args, dir).out;
}

// A GitHub personal access token shape (gitleaks rule github-pat), made up for the test.
const QByteArray PlantedToken = "ghp_Zq8Lw2Xn5Rt7Vb1Kc4Hm9Pd3Sf6Jg0Ya2Uex";

} // namespace

class tst_AgentBoundary : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void init();
    void cleanup();
    void agentRewritingItsRepositoryLeavesTheTargetAlone();
    void agentWritingTheProjectRepositoryBlocksItsTask();
    void taskBranchIsPushedBeforeGatesJudgeIt();
    void secretInACommitNeverReachesTheForge();
    void workOfARunFinishedDuringACrashIsTaken();

private:
    // The project's repository: project.git, its own forge; or, with a forge, a clone of forge.git.
    void setUp(const QByteArray &agentScript, bool withForge, const QByteArray &projectExtra = {});
    bool runUntilIdle();
    qint64 submit(const QString &title);
    QJsonObject task(qint64 id);
    QString path(const QString &name) const { return m_config->path() + QLatin1Char('/') + name; }

    std::unique_ptr<Test::TemporaryConfig> m_config;
    QString m_repo;
    QString m_seedMain;
    QByteArray m_log;
};

void tst_AgentBoundary::init()
{
    m_config = std::make_unique<Test::TemporaryConfig>();
    QVERIFY(m_config->isValid());
    m_log.clear();
}

void tst_AgentBoundary::cleanup()
{
    if (QTest::currentTestFailed())
        qWarning("daemon log:\n%s", m_log.constData());
    m_config.reset();
}

void tst_AgentBoundary::setUp(const QByteArray &agentScript, bool withForge, const QByteArray &projectExtra)
{
    const QString seed = path(QStringLiteral("seed"));
    m_config->writeFile(QStringLiteral("seed/README"), "seed\n");
    git(seed, {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")});
    git(seed, {QStringLiteral("add"), QStringLiteral("README")});
    git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")});
    m_seedMain = git(seed, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")});
    const QString origin = path(withForge ? QStringLiteral("forge.git") : QStringLiteral("project.git"));
    git(m_config->path(), {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), origin});
    git(seed, {QStringLiteral("push"), QStringLiteral("-q"), origin, QStringLiteral("main"), QStringLiteral("main:other")});
    m_repo = origin;
    if (withForge) {
        // The forge logs what reaches it.
        m_config->writeFile(QStringLiteral("forge.git/hooks/pre-receive"),
                            "#!/bin/sh\nwhile read old new ref; do echo \"$new $ref\" >> '" + path(QStringLiteral("forge-pushes.log")).toUtf8() + "'; done\n");
        QFile::setPermissions(path(QStringLiteral("forge.git/hooks/pre-receive")), QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
        m_repo = path(QStringLiteral("project.git"));
        git(m_config->path(), {QStringLiteral("clone"), QStringLiteral("-q"), QStringLiteral("--bare"), origin, m_repo});
    }
    const QString agent = m_config->writeFile(QStringLiteral("agent.sh"), agentScript);
    m_config->writeHostFile("node: boundary\nstate_dir: state\nworker: {poll_interval: 100ms}\nhttp: {port: 0}\n"
                            "reconciler: {interval: 1s, settle: 2s}\n");
    m_config->writeProject(QStringLiteral("p"), R"(id: p
repository: {path: ../project.git, target_branch: main}
agent_launcher: launcher
stages:
  - name: development
    run: developer
  - name: testing
    run: tests
  - name: done
red_policy: {rollback_to: development, max_retries: 2}
timeouts: {stage: 2m, gate: 1m}
jobs: {max_attempts: 1, retry_backoff: 1s}
instances:
  launcher:
    plugin: process
    settings:
      command: [/bin/sh, ")" + agent.toUtf8() + R"(", "{role}", "{task_file}"]
      inherit_environment: [PATH]
  developer:
    plugin: agent
    settings: {role: developer, timeout: 1m}
  tests:
    plugin: command
    settings:
      command: [/bin/sh, -c, "test -s work.txt"]
      timeout: 1m
)" + projectExtra);
}

bool tst_AgentBoundary::runUntilIdle()
{
    QProcess daemon;
    daemon.setProcessChannelMode(QProcess::MergedChannels);
    daemon.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("serve"), QStringLiteral("--config"), m_config->path(),
                                                     QStringLiteral("--exit-when-idle")});
    const bool finished = daemon.waitForFinished(180000);
    if (!finished)
        daemon.kill();
    daemon.waitForFinished();
    m_log += daemon.readAll();
    return finished && daemon.exitCode() == 0;
}

qint64 tst_AgentBoundary::submit(const QString &title)
{
    const Cli r = sluice({QStringLiteral("submit"), QStringLiteral("--config"), m_config->path(), QStringLiteral("--project"), QStringLiteral("p"),
                          QStringLiteral("--title"), title, QStringLiteral("--json")});
    if (r.exitCode != 0)
        qWarning("submit: %s", r.err.constData());
    return QJsonDocument::fromJson(r.out).object().value(QLatin1String("task")).toVariant().toLongLong();
}

QJsonObject tst_AgentBoundary::task(qint64 id)
{
    const Cli r = sluice({QStringLiteral("task"), QStringLiteral("--config"), m_config->path(), QString::number(id), QStringLiteral("--json")});
    return QJsonDocument::fromJson(r.out).object();
}

void tst_AgentBoundary::agentRewritingItsRepositoryLeavesTheTargetAlone()
{
    // What replaced main when the task's checkout was a worktree of the project's repository.
    setUp("#!/bin/sh\nset -e\necho work > work.txt\ngit add work.txt\n"
          "git -c user.name=agent -c user.email=a@example.invalid commit -qm work\n"
          "git push -q --force \"$(git rev-parse --path-format=absolute --git-common-dir)\" HEAD:main\n"
          "git update-ref refs/heads/other HEAD\n",
          false);
    const qint64 id = submit(QStringLiteral("Rewrite main"));
    QVERIFY(id > 0);
    QVERIFY(runUntilIdle());
    const QJsonObject t = task(id);
    QCOMPARE(t.value(QLatin1String("status")).toString(), QStringLiteral("done"));
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")}), m_seedMain);
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("other")}), m_seedMain);
    const QString branch = t.value(QLatin1String("branch")).toString();
    const QString head = git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("refs/heads/") + branch});
    QCOMPARE(t.value(QLatin1String("head")).toString(), head);
    QCOMPARE(git(m_repo, {QStringLiteral("log"), QStringLiteral("--format=%s"), m_seedMain + QStringLiteral("..") + head}), QStringLiteral("work"));
    // The text view says it too.
    const Cli text = sluice({QStringLiteral("task"), QStringLiteral("--config"), m_config->path(), QString::number(id)});
    QVERIFY2(text.out.contains("head " + head.left(12).toUtf8()), text.out.constData());
}

void tst_AgentBoundary::agentWritingTheProjectRepositoryBlocksItsTask()
{
    setUp("#!/bin/sh\nset -e\necho work > work.txt\ngit add work.txt\n"
          "git -c user.name=agent -c user.email=a@example.invalid commit -qm work\n"
          "canonical=$(dirname \"$(cat .git/objects/info/alternates)\")\n"
          "git push -q --force \"$canonical\" HEAD:main\n",
          false);
    const qint64 id = submit(QStringLiteral("Write the project"));
    QVERIFY(id > 0);
    QVERIFY(runUntilIdle());
    const QJsonObject t = task(id);
    QCOMPARE(t.value(QLatin1String("status")).toString(), QStringLiteral("blocked"));
    const QString reason = t.value(QLatin1String("blockedReason")).toString();
    QVERIFY2(reason.contains(QLatin1String("refs/heads/main")) && reason.contains(QLatin1String("not by Sluice")), qPrintable(reason));
    // The reason says how to undo it, with main's value before the run.
    QVERIFY2(reason.contains(QStringLiteral("update-ref refs/heads/main %1").arg(m_seedMain)), qPrintable(reason));
    bool audited = false;
    for (const QJsonValue &h : t.value(QLatin1String("history")).toArray())
        audited = audited || h.toObject().value(QLatin1String("action")).toString() == QLatin1String("repository-changed");
    QVERIFY(audited);
    // Nothing was taken from the agent's copy, and the task never reached testing.
    QCOMPARE(git(m_repo, {QStringLiteral("for-each-ref"), QStringLiteral("--format=%(refname)"), QStringLiteral("refs/heads/sluice")}), QString());
    QCOMPARE(t.value(QLatin1String("stage")).toString(), QStringLiteral("development"));
    QVERIFY(t.value(QLatin1String("head")).toString().isEmpty());
}

void tst_AgentBoundary::taskBranchIsPushedBeforeGatesJudgeIt()
{
    setUp("#!/bin/sh\nset -e\necho work > work.txt\ngit add work.txt\n"
          "git -c user.name=agent -c user.email=a@example.invalid commit -qm work\n",
          true);
    const qint64 id = submit(QStringLiteral("Push me"));
    QVERIFY(id > 0);
    QVERIFY(runUntilIdle());
    const QJsonObject t = task(id);
    QCOMPARE(t.value(QLatin1String("status")).toString(), QStringLiteral("done"));
    const QString head = t.value(QLatin1String("head")).toString();
    const QString branch = t.value(QLatin1String("branch")).toString();
    QVERIFY(!head.isEmpty());
    QCOMPARE(t.value(QLatin1String("pushed")).toString(), head);
    const QString forge = path(QStringLiteral("forge.git"));
    QCOMPARE(git(forge, {QStringLiteral("rev-parse"), QStringLiteral("refs/heads/") + branch}), head);
    // Only the task branch reached the forge; its main is untouched.
    QFile log(path(QStringLiteral("forge-pushes.log")));
    QVERIFY(log.open(QIODevice::ReadOnly));
    QCOMPARE(QString::fromUtf8(log.readAll()).trimmed(), QStringLiteral("%1 refs/heads/%2").arg(head, branch));
    QCOMPARE(git(forge, {QStringLiteral("rev-parse"), QStringLiteral("main")}), m_seedMain);
    // The project's repository follows the forge without moving its own main.
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("refs/remotes/origin/main")}), m_seedMain);
}

void tst_AgentBoundary::secretInACommitNeverReachesTheForge()
{
    // The first version commits a token; sent back with the finding, the agent rewrites its
    // history (the secret is in a commit, so deleting the file in a new commit is not enough).
    setUp("#!/bin/sh\nset -e\n"
          "if grep -q 'Sent back by gate' \"$2\"; then\n"
          "  git reset -q --hard origin/main\n"
          "  echo 'token comes from the environment' > work.txt\n"
          "else\n"
          "  echo 'token = \"" + PlantedToken + "\"' > work.txt\n"
          "fi\n"
          "git add work.txt\n"
          "git -c user.name=agent -c user.email=a@example.invalid commit -qm work\n",
          true);
    const qint64 id = submit(QStringLiteral("Leak"));
    QVERIFY(id > 0);
    QVERIFY(runUntilIdle());
    const QJsonObject t = task(id);
    QCOMPARE(t.value(QLatin1String("status")).toString(), QStringLiteral("done"));
    QCOMPARE(t.value(QLatin1String("retries")).toInt(), 1);
    bool publishFailed = false;
    for (const QJsonValue &v : t.value(QLatin1String("verdicts")).toArray()) {
        const QJsonObject g = v.toObject();
        if (g.value(QLatin1String("gate")).toString() == QLatin1String("sluice/publish")) {
            QCOMPARE(g.value(QLatin1String("result")).toString(), QStringLiteral("fail"));
            const QByteArray findings = QJsonDocument(g.value(QLatin1String("findings")).toArray()).toJson();
            QVERIFY2(findings.contains("github-pat") && findings.contains("work.txt"), findings.constData());
            QVERIFY(!findings.contains(PlantedToken));
            publishFailed = true;
        }
    }
    QVERIFY(publishFailed);
    // The forge got the rewritten branch only: no object of the forge holds the token.
    const QString forge = path(QStringLiteral("forge.git"));
    const QString branch = t.value(QLatin1String("branch")).toString();
    QCOMPARE(git(forge, {QStringLiteral("rev-parse"), QStringLiteral("refs/heads/") + branch}), t.value(QLatin1String("head")).toString());
    const QString everything = git(forge, {QStringLiteral("log"), QStringLiteral("--all"), QStringLiteral("-p")});
    QVERIFY(!everything.contains(QString::fromLatin1(PlantedToken)));
    QFile log(path(QStringLiteral("forge-pushes.log")));
    QVERIFY(log.open(QIODevice::ReadOnly));
    QCOMPARE(QString::fromUtf8(log.readAll()).trimmed().split(QLatin1Char('\n')).size(), 1);
    // The daemon's log names the finding, never the token.
    QVERIFY(!m_log.contains(PlantedToken));
}

void tst_AgentBoundary::workOfARunFinishedDuringACrashIsTaken()
{
    // The daemon dies while the agent works; the agent commits and ends meanwhile. The next
    // start completes the job from what the agent's recorder wrote — and takes the task
    // branch first, as the worker would have: the next stage sees the work, the head is set.
    setUp("#!/bin/sh\nset -e\necho work > work.txt\ngit add work.txt\n"
          "git -c user.name=agent -c user.email=a@example.invalid commit -qm work\n"
          "touch ../../../../agent-committed\n"
          "while [ ! -e ../../../../agent-may-end ]; do sleep 0.05; done\n",
          false,
          // The security gate judges the recorded head on the way out of development: without
          // the work taken at recovery it has none (an error, a rollback).
          "  security: {plugin: security}\nedges:\n  - {from: development, to: testing, gates: [security]}\n");
    const qint64 id = submit(QStringLiteral("Crash in between"));
    QVERIFY(id > 0);
    Test::DaemonProcess daemon{QStringLiteral(SLUICE_EXECUTABLE)};
    QVERIFY(daemon.serve(m_config->path()));
    QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(path(QStringLiteral("agent-committed"))), 60000);
    ::kill(pid_t(daemon.processId()), SIGKILL);
    QVERIFY(daemon.waitForFinished(10000));
    m_log += daemon.log();
    // The agent ends after its daemon; its recorder writes how.
    m_config->writeFile(QStringLiteral("agent-may-end"), "go\n");
    const QString log = path(QStringLiteral("state/artifacts/p/task-%1/agent-developer-job1-attempt1.log.exit").arg(id));
    QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(log), 30000);
    QVERIFY(runUntilIdle());
    const QJsonObject t = task(id);
    QCOMPARE(t.value(QLatin1String("status")).toString(), QStringLiteral("done"));
    QCOMPARE(t.value(QLatin1String("retries")).toInt(), 0);
    for (const QJsonValue &v : t.value(QLatin1String("verdicts")).toArray())
        QCOMPARE(v.toObject().value(QLatin1String("result")).toString(), QStringLiteral("pass"));
    const QString branch = t.value(QLatin1String("branch")).toString();
    const QString head = git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("refs/heads/") + branch});
    QVERIFY(!head.isEmpty());
    QCOMPARE(t.value(QLatin1String("head")).toString(), head);
    QCOMPARE(git(m_repo, {QStringLiteral("log"), QStringLiteral("--format=%s"), m_seedMain + QStringLiteral("..") + head}), QStringLiteral("work"));
    QVERIFY2(m_log.contains("recovered job 1"), m_log.right(3000).constData());

}

QTEST_GUILESS_MAIN(tst_AgentBoundary)
#include "tst_agentboundary.moc"
