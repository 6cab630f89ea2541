// SPDX-License-Identifier: Apache-2.0
// The merge gate on an edge of a real `sluice serve`, killed with SIGKILL in the middle of a
// merge and started again. Real parts throughout: the daemon and its CLI as processes, a
// SQLite store, git repositories (a bare "forge" repository with hooks, a clone the task
// worktrees come from), the command stage doing the task's work, the gitea connector
// against the loopback fake forge, a CI stand-in posting statuses.
//
// Each row stops the daemon at one step — inside the rebase, after the push while CI runs,
// with the merge call sent but not applied, with the merge applied but its answer lost — and
// then checks what a user relies on: the task ends done, the pull request was merged exactly
// once, the branch was rebased and pushed once, and no merge lease is left behind.
//
// Two tasks on one target: one holds the merge lease while the other's gate says "wait" (no
// rollback, no retry spent); the waiting one is looked at again by the engine, rebases onto
// the target holding the first one's merge and merges too.

#include "daemonprocess.h"
#include "fakeforge.h"
#include "mergetestsupport.h"

#include <sluice/testsupport.h>

#include <QJsonDocument>
#include <QJsonObject>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtTest>

#include <csignal>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "merge-daemon-forge-token-55120";
const QString Context = QStringLiteral("ci/test");
const QString Branch = QStringLiteral("feature");

QStringList linesOf(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
}

} // namespace

class tst_MergeDaemon : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();
    void killedMidMergeFinishesOnce_data();
    void killedMidMergeFinishesOnce();
    void twoTasksOneTargetTheSecondWaitsThenMerges();

private:
    QString path(const QString &name) const { return m_config->path() + QLatin1Char('/') + name; }
    QString bare() const { return path(QStringLiteral("forge.git")); }
    QString clone() const { return path(QStringLiteral("clone")); }
    QString sha(const QString &ref) const
    {
        return runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("rev-parse"), QStringLiteral("-q"), QStringLiteral("--verify"), ref}).out;
    }
    void writeProject(const QByteArray &mergeSettings);
    bool startDaemon();
    void killDaemon();
    QString advanceMain();
    qint64 submit(const QString &branch = Branch);
    // One value from the daemon's SQLite store, read as an operator would (another connection).
    QVariant storeValue(const QString &sql);
    int mergeCalls() const;
    // Pushes of the task's branch whose new head is not @p except (the stage's own push).
    QStringList branchPushes(const QString &except) const;

    PluginDirectory m_plugins;
    std::unique_ptr<TemporaryConfig> m_config;
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<MiniCi> m_ci;
    DaemonProcess m_daemon{QStringLiteral(SLUICE_EXECUTABLE)};
};

void tst_MergeDaemon::initTestCase()
{
    for (const QString &file : {QStringLiteral(MERGE_PLUGIN_FILE), QStringLiteral(GITEA_PLUGIN_FILE), QStringLiteral(COMMAND_PLUGIN_FILE)})
        QVERIFY(!m_plugins.add(QFileInfo(file).absolutePath(), QFileInfo(file).fileName()).isEmpty());
}

void tst_MergeDaemon::init()
{
    m_config = std::make_unique<TemporaryConfig>();
    QVERIFY(m_config->isValid());

    // The forge's repository: its post-receive hook logs every accepted push.
    QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), bare()}).code, 0);
    QVERIFY(writeHook(bare() + QStringLiteral("/hooks/post-receive"),
                      "#!/bin/sh\nwhile read old new ref; do echo \"$new $ref\" >> '" + path(QStringLiteral("pushes.log")).toUtf8() + "'; done\n"));
    const QString seed = path(QStringLiteral("seed"));
    QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main"), seed}).code, 0);
    QVERIFY(writeFile(seed + QStringLiteral("/shared.txt"), "one\ntwo\nthree\n"));
    runGit({QStringLiteral("add"), QStringLiteral(".")}, seed);
    QCOMPARE(runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("initial")}, seed).code, 0);
    QCOMPARE(runGit({QStringLiteral("push"), QStringLiteral("-q"), bare(), QStringLiteral("main")}, seed).code, 0);
    // The project's repository: a clone of the forge's, the task worktrees come from it. Its
    // post-rewrite hook (shared by the worktrees) logs every rebase and, while the file
    // hold-rebase exists, holds the rebase there: the moment a test kills the daemon in.
    QCOMPARE(runGit({QStringLiteral("clone"), QStringLiteral("-q"), bare(), clone()}).code, 0);
    QVERIFY(writeHook(clone() + QStringLiteral("/.git/hooks/post-rewrite"),
                      "#!/bin/sh\n[ \"$1\" = rebase ] || exit 0\necho rebase >> '" + path(QStringLiteral("rewrites.log")).toUtf8() + "'\n"
                      "if [ -e '" + path(QStringLiteral("hold-rebase")).toUtf8() + "' ]; then\n"
                      "  touch '" + path(QStringLiteral("rebase-held")).toUtf8() + "'\n"
                      "  n=0; while [ -e '" + path(QStringLiteral("hold-rebase")).toUtf8() + "' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done\n"
                      "fi\n"));

    m_fake = std::make_unique<FakeForge>();
    QVERIFY(m_fake->start());
    m_fake->setToken(Token);
    const QString repo = bare();
    m_fake->setHeadResolver([repo](const QString &branch) {
        return runGit({QStringLiteral("--git-dir"), repo, QStringLiteral("rev-parse"), QStringLiteral("-q"), QStringLiteral("--verify"), QStringLiteral("refs/heads/") + branch}).out;
    });
    FakeForge *fake = m_fake.get();
    m_ci = std::make_unique<MiniCi>(bare(), [fake](const QString &sha, const QString &state) { fake->addStatus(sha, Context, state); });

    m_config->writeFile(QStringLiteral("secrets/forge.token"), Token + '\n');
    m_config->writeHostFile("node: merge-node\nstate_dir: state\nplugin_dirs: [" + m_plugins.path().toUtf8()
                            + "]\nworker: {poll_interval: 100ms}\nhttp: {port: 0}\n"
                              "reaper: {interval: 1s}\nreconciler: {interval: 1s, settle: 0s}\n");
    writeProject("      lease_wait: 30s\n");
}

// The task's work: one commit (a file of its own), pushed to the forge as an agent would.
// Then the edge to done crosses the merge gate. A gate failure blocks the task at once.
void tst_MergeDaemon::writeProject(const QByteArray &mergeSettings)
{
    m_config->writeProject(QStringLiteral("widget"), R"(id: widget
repository: {path: ../clone, target_branch: main, forge: forge}
red_policy: {max_retries: 0}
stages:
  - name: develop
    run: work
    exit_gates: [merge]
  - name: done
instances:
  forge:
    plugin: gitea
    settings:
      url: )" + m_fake->url().toString().toUtf8() + R"(
      repository: acme/widget
      token: {file: ../secrets/forge.token}
      retry_backoff: 10ms
  work:
    plugin: command
    settings:
      inherit_environment: [PATH, HOME]
      command: [/bin/sh, -ec, "echo task >> work-$SLUICE_TASK_ID.txt && git add . && git -c user.name=agent -c user.email=agent@example.org commit -qm work && git push -q origin HEAD"]
  merge:
    plugin: merge
    settings:
      remote: origin
      poll_interval: 100ms
      checks_timeout: 2m
      checks: {contexts: [ci/test]}
)" + mergeSettings);
}

void tst_MergeDaemon::cleanup()
{
    if (m_daemon.state() != QProcess::NotRunning) {
        m_daemon.kill();
        m_daemon.waitForFinished(5000);
    }
    QFile::remove(path(QStringLiteral("hold-rebase"))); // frees a held hook, should a row have failed before
    QSqlDatabase::removeDatabase(QStringLiteral("peek"));
    m_ci.reset();
    m_fake.reset();
    m_config.reset();
}

bool tst_MergeDaemon::startDaemon()
{
    return m_daemon.serve(m_config->path());
}

void tst_MergeDaemon::killDaemon()
{
    ::kill(pid_t(m_daemon.processId()), SIGKILL);
    QVERIFY(m_daemon.waitForFinished(10000));
    QCOMPARE(m_daemon.exitStatus(), QProcess::CrashExit);
}

QString tst_MergeDaemon::advanceMain()
{
    const QString scratch = path(QStringLiteral("scratch"));
    runGit({QStringLiteral("clone"), QStringLiteral("-q"), bare(), scratch});
    writeFile(scratch + QStringLiteral("/main.txt"), "moved on\n");
    runGit({QStringLiteral("add"), QStringLiteral("main.txt")}, scratch);
    runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("main moved")}, scratch);
    runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, scratch);
    return sha(QStringLiteral("refs/heads/main"));
}

qint64 tst_MergeDaemon::submit(const QString &branch)
{
    QProcess p;
    p.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("submit"), QStringLiteral("--config"), m_config->path(), QStringLiteral("--project"),
                                                QStringLiteral("widget"), QStringLiteral("--title"), QStringLiteral("Feature"), QStringLiteral("--branch"),
                                                branch, QStringLiteral("--json")});
    if (!p.waitForFinished(30000) || p.exitCode() != 0) {
        qWarning("submit failed: %s", p.readAllStandardError().constData());
        return 0;
    }
    return QJsonDocument::fromJson(p.readAllStandardOutput()).object().value(QLatin1String("task")).toVariant().toLongLong();
}

QVariant tst_MergeDaemon::storeValue(const QString &sql)
{
    QSqlDatabase db = QSqlDatabase::contains(QStringLiteral("peek")) ? QSqlDatabase::database(QStringLiteral("peek"))
                                                                      : QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("peek"));
    db.setDatabaseName(path(QStringLiteral("state/sluice.db")));
    if (!db.isOpen() && !db.open())
        return QVariant();
    QSqlQuery q(db);
    if (!q.exec(sql) || !q.next()) {
        qWarning("%s: %s", qPrintable(sql), qPrintable(q.lastError().text()));
        return QVariant();
    }
    return q.value(0);
}

int tst_MergeDaemon::mergeCalls() const
{
    int n = 0;
    for (const FakeRequest &r : m_fake->requests()) {
        if (r.method == "POST" && r.path.endsWith(QLatin1String("/merge")))
            ++n;
    }
    return n;
}

QStringList tst_MergeDaemon::branchPushes(const QString &except) const
{
    QStringList out;
    for (const QString &line : linesOf(path(QStringLiteral("pushes.log")))) {
        if (line.endsWith(QStringLiteral(" refs/heads/") + Branch) && !line.startsWith(except))
            out.append(line);
    }
    return out;
}

void tst_MergeDaemon::killedMidMergeFinishesOnce_data()
{
    QTest::addColumn<QString>("step");
    QTest::newRow("inside the rebase") << QStringLiteral("rebase");
    QTest::newRow("after the push, CI running") << QStringLiteral("push");
    QTest::newRow("merge call sent, not applied") << QStringLiteral("merge-sent");
    QTest::newRow("merge applied, answer lost") << QStringLiteral("merge-applied");
}

void tst_MergeDaemon::killedMidMergeFinishesOnce()
{
    QFETCH(QString, step);

    // The pull request the task's branch will have; main moves on, so the gate must rebase.
    FakePullRequest pr{1, QStringLiteral("Feature"), Branch, sha(QStringLiteral("refs/heads/main"))};
    m_fake->addPullRequest(pr);
    const QString mainSha = advanceMain();
    if (step == QLatin1String("rebase"))
        QVERIFY(writeFile(path(QStringLiteral("hold-rebase")), "hold\n"));
    if (step == QLatin1String("push"))
        m_ci->state.clear(); // CI has not finished: the gate waits for the checks on the pushed head
    FakeFault fault;
    fault.method = "POST";
    fault.pathPattern = QStringLiteral("/pulls/1/merge$");
    if (step == QLatin1String("merge-sent")) {
        fault.kind = FakeFault::Kind::Hang;
        m_fake->addFault(fault);
    } else if (step == QLatin1String("merge-applied")) {
        fault.kind = FakeFault::Kind::ApplyThenHang;
        m_fake->addFault(fault);
    }

    QVERIFY(startDaemon());
    const qint64 task = submit();
    QVERIFY(task > 0);

    // Wait for the step, then the crash.
    QString stagePush; // the head the work stage pushed, before any rebase
    auto reached = [&]() -> bool {
        if (stagePush.isEmpty()) {
            const QStringList pushes = branchPushes(QStringLiteral("-"));
            if (!pushes.isEmpty())
                stagePush = pushes.first().section(QLatin1Char(' '), 0, 0);
        }
        if (step == QLatin1String("rebase"))
            return QFileInfo::exists(path(QStringLiteral("rebase-held")));
        if (step == QLatin1String("push")) {
            // The gate pushed the rebased head and is looking at its (pending) checks.
            const QStringList pushed = stagePush.isEmpty() ? QStringList() : branchPushes(stagePush);
            if (pushed.isEmpty())
                return false;
            const QString head = pushed.first().section(QLatin1Char(' '), 0, 0);
            int looks = 0;
            for (const FakeRequest &r : m_fake->requests())
                looks += r.path.contains(QStringLiteral("/commits/%1/status").arg(head)) || r.path.endsWith(QStringLiteral("/statuses/") + head);
            return looks >= 2;
        }
        if (step == QLatin1String("merge-sent"))
            return mergeCalls() == 1;
        return m_fake->mergesApplied() == 1;
    };
    QTRY_VERIFY2_WITH_TIMEOUT(reached(), qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    killDaemon();
    QVERIFY(!stagePush.isEmpty());
    QCOMPARE(mergeCalls() > 0 ? 1 : 0, step.startsWith(QLatin1String("merge")) ? 1 : 0);
    // The dead daemon's merge lease is still in the store (held by a dead process).
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM leases WHERE resource = 'merge:widget:main'")).toInt(), 1);
    QCOMPARE(storeValue(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString(), QStringLiteral("active"));

    // What the crash left goes on without it: a held rebase completes, CI finishes, the forge answers again.
    QFile::remove(path(QStringLiteral("hold-rebase")));
    m_ci->state = QStringLiteral("success");
    m_fake->clearFaults();
    QTest::qWait(200);

    QVERIFY(startDaemon());
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("done"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);

    for (const QByteArray &line : m_daemon.log().split('\n')) {
        if (line.contains("left in progress by a crash"))
            qInfo("%s", line.constData()); // which way an interrupted rebase was ended
    }

    // Merged exactly once.
    QCOMPARE(m_fake->mergesApplied(), 1);
    QVERIFY(m_fake->pullRequests().value(0).merged);
    QCOMPARE(mergeCalls(), step == QLatin1String("merge-sent") ? 2 : 1); // an unanswered call that did nothing is sent again; an applied one never
    // Rebased once, pushed once (besides the work stage's own push), onto the moved main.
    QCOMPARE(linesOf(path(QStringLiteral("rewrites.log"))).size(), 1);
    const QStringList gatePushes = branchPushes(stagePush);
    QVERIFY2(gatePushes.size() == 1, qPrintable(gatePushes.join(QLatin1Char(';'))));
    const QString merged = sha(QStringLiteral("refs/heads/") + Branch);
    QVERIFY(gatePushes.first().startsWith(merged));
    QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), mainSha, merged}).code, 0);
    // The task records the head that was merged; one transition; no lease left.
    QCOMPARE(storeValue(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString(), merged);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM leases")).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'done'").arg(task)).toInt(), 1);

    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

void tst_MergeDaemon::twoTasksOneTargetTheSecondWaitsThenMerges()
{
    // No waiting inside an evaluation: the loser's gate answers "wait" at once and the engine
    // looks again every second. max_retries 0: a failure or error would block the task.
    writeProject("      lease_wait: 0s\n      wait_retry: 1s\n");
    const QString mainBefore = sha(QStringLiteral("refs/heads/main"));
    m_fake->addPullRequest({1, QStringLiteral("A"), QStringLiteral("feature-a"), mainBefore});
    m_fake->addPullRequest({2, QStringLiteral("B"), QStringLiteral("feature-b"), mainBefore});
    m_ci->state.clear(); // CI is slow: whoever takes the lease first holds it while the other asks

    // The forge's merge button, for real: a merged pull request's head is merged into main.
    const QString scratch = path(QStringLiteral("merger"));
    QCOMPARE(runGit({QStringLiteral("clone"), QStringLiteral("-q"), bare(), scratch}).code, 0);
    QStringList mergedIntoMain;
    QTimer merger;
    connect(&merger, &QTimer::timeout, this, [&] {
        for (const FakePullRequest &pr : m_fake->pullRequests()) {
            if (!pr.merged || mergedIntoMain.contains(pr.headRef))
                continue;
            mergedIntoMain.append(pr.headRef);
            runGit({QStringLiteral("pull"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, scratch);
            runGit({QStringLiteral("fetch"), QStringLiteral("-q"), QStringLiteral("origin"), pr.headSha}, scratch);
            QCOMPARE(runGit({QStringLiteral("merge"), QStringLiteral("-q"), QStringLiteral("--no-ff"), QStringLiteral("-m"), QStringLiteral("Merge ") + pr.headRef, pr.headSha}, scratch).code, 0);
            QCOMPARE(runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, scratch).code, 0);
        }
    });
    merger.start(50);

    QVERIFY(startDaemon());
    const qint64 a = submit(QStringLiteral("feature-a"));
    const qint64 b = submit(QStringLiteral("feature-b"));
    QVERIFY(a > 0 && b > 0);
    const QString waitsOf = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'");
    // One of them holds the lease; the other is told to wait, again and again.
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(waitsOf.arg(a)).toInt() + storeValue(waitsOf.arg(b)).toInt() >= 3,
                              qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    const bool aFirst = storeValue(waitsOf.arg(b)).toInt() > 0;
    const qint64 first = aFirst ? a : b;
    const qint64 second = aFirst ? b : a;
    QCOMPARE(storeValue(waitsOf.arg(first)).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT holder_task FROM leases WHERE resource = 'merge:widget:main'")).toLongLong(), first);
    QCOMPARE(storeValue(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(second)).toString(),
             QStringLiteral("develop/active/0"));

    // CI finishes: the first merges, the second takes the lease, rebases onto the new main, is
    // re-tested and merges.
    m_ci->state = QStringLiteral("success");
    const QString statusOf = QStringLiteral("SELECT status || '/' || retries FROM tasks WHERE id = %1");
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(statusOf.arg(a)).toString() == QLatin1String("done/0") && storeValue(statusOf.arg(b)).toString() == QLatin1String("done/0"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(4000))), 90000);
    QTRY_COMPARE_WITH_TIMEOUT(mergedIntoMain.size(), 2, 10000);
    QCOMPARE(m_fake->mergesApplied(), 2);
    QCOMPARE(mergeCalls(), 2);
    const QString firstHead = storeValue(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(first)).toString();
    const QString secondHead = storeValue(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(second)).toString();
    QVERIFY(!firstHead.isEmpty() && !secondHead.isEmpty());
    // The second was rebased onto the main that holds the first one's merge.
    QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), firstHead, secondHead}).code, 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM leases")).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE result <> 'pass'")).toInt(), 0); // waits are not verdicts on record

    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

QTEST_GUILESS_MAIN(tst_MergeDaemon)
#include "tst_mergedaemon.moc"
