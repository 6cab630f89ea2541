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
// Three tasks on one target: one holds the merge lease while the others' gate says "wait" (no
// rollback, no retry spent); they are looked at again by the engine and merge in the order
// they first asked, each rebased onto the target holding the merges before it.

#include "daemonprocess.h"
#include "fakeforge.h"
#include "mergetestsupport.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QMutex>
#include <QJsonDocument>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QJsonObject>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtTest>

#include <algorithm>
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
    void tasksOnOneTargetMergeInTurn();
    void slowCiIsWaitedForNotFailed();
    void ciPendingPastCiTimeoutFails();
    void ciGateWaitsInTheDaemon();
    void outsidePushWhileMergingIsJudgedFirst();

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
    for (const QString &file : {QStringLiteral(MERGE_PLUGIN_FILE), QStringLiteral(GITEA_PLUGIN_FILE), QStringLiteral(COMMAND_PLUGIN_FILE), QStringLiteral(CI_PLUGIN_FILE)})
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

// The task's work: one commit (a file of its own); the host takes it and pushes the task
// branch to the forge before the gates look. Then the edge to done crosses the merge gate. A
// gate failure blocks the task at once.
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
      command: [/bin/sh, -ec, "echo task >> work-$SLUICE_TASK_ID.txt && git add . && git -c user.name=agent -c user.email=agent@example.org commit -qm work && if [ -e ../../../../advance-main ]; then sh ../../../../advance-main; fi"]
  merge:
    plugin: merge
    settings:
      remote: origin
      poll_interval: 100ms
)" + QByteArray(mergeSettings.contains("checks_timeout") ? "" : "      checks_timeout: 2m\n") + R"(      checks: {contexts: [ci/test]}
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
    // While the task is worked on, main moves on at the forge (another change landed): the
    // gate must rebase. (The task's working copy starts from main as fetched at its start.)
    QVERIFY(writeFile(path(QStringLiteral("advance-main")),
                      "set -e\nscratch='" + path(QStringLiteral("scratch")).toUtf8() + "'\n"
                      "git clone -q '" + bare().toUtf8() + "' \"$scratch\"\n"
                      "echo 'moved on' > \"$scratch/main.txt\"\n"
                      "git -C \"$scratch\" add main.txt\n"
                      "git -C \"$scratch\" -c user.name=other -c user.email=other@example.org commit -qm 'main moved'\n"
                      "git -C \"$scratch\" push -q origin main\n"
                      "git -C \"$scratch\" rev-parse HEAD > '" + path(QStringLiteral("main-moved")).toUtf8() + "'\n"
                      "rm -f '" + path(QStringLiteral("advance-main")).toUtf8() + "'\n"));
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
    QString stagePush; // the head the host pushed after the work stage, before any rebase
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
    // Rebased once, pushed once (besides the host's push of the work stage's head), onto the moved main.
    QCOMPARE(linesOf(path(QStringLiteral("rewrites.log"))).size(), 1);
    const QStringList gatePushes = branchPushes(stagePush);
    QVERIFY2(gatePushes.size() == 1, qPrintable(gatePushes.join(QLatin1Char(';'))));
    const QString merged = sha(QStringLiteral("refs/heads/") + Branch);
    QVERIFY(gatePushes.first().startsWith(merged));
    const QString mainSha = linesOf(path(QStringLiteral("main-moved"))).value(0);
    QVERIFY(!mainSha.isEmpty());
    QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), mainSha, merged}).code, 0);
    // The task records the head that was merged; one transition; no lease left.
    QCOMPARE(storeValue(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString(), merged);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM leases")).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'done'").arg(task)).toInt(), 1);

    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

void tst_MergeDaemon::tasksOnOneTargetMergeInTurn()
{
    // A task whose gate finds the lease taken (or promised) looks again every 100 ms for 2 s,
    // then answers "wait" and the engine evaluates it again a second later. So the waiters
    // race each other for a released lease within 100 ms: without the queue either may win.
    // max_retries 0: a failure or an error would block the task, so a task that waits and
    // ends done never failed.
    writeProject("      lease_wait: 2s\n      wait_retry: 1s\n");
    const QString mainBefore = sha(QStringLiteral("refs/heads/main"));
    const QStringList branches{QStringLiteral("feature-a"), QStringLiteral("feature-b"), QStringLiteral("feature-c")};
    for (int i = 0; i < branches.size(); ++i)
        m_fake->addPullRequest({i + 1, branches.at(i).toUpper(), branches.at(i), mainBefore});
    m_ci->state.clear(); // CI is slow: whoever takes the lease first holds it while the others ask

    // The forge's merge button, for real and at once: before the forge marks a pull request
    // merged, its head is merged into main of the forge's repository (as a forge does it, in
    // one step: whoever sees the pull request merged finds main holding it).
    const QString scratch = path(QStringLiteral("merger"));
    QCOMPARE(runGit({QStringLiteral("clone"), QStringLiteral("-q"), bare(), scratch}).code, 0);
    const QString repo = bare();
    m_fake->setHandler([scratch, repo, branches](const FakeRequest &r) -> std::optional<FakeAnswer> {
        static const QRegularExpression merge(QStringLiteral("/pulls/(\\d+)/merge$"));
        const QRegularExpressionMatch m = merge.match(r.path);
        if (r.method != "POST" || !m.hasMatch())
            return std::nullopt;
        const QString branch = branches.value(m.captured(1).toInt() - 1);
        const QString head = runGit({QStringLiteral("--git-dir"), repo, QStringLiteral("rev-parse"), QStringLiteral("refs/heads/") + branch}).out;
        if (head.isEmpty() || QJsonDocument::fromJson(r.body).object().value(QStringLiteral("head_commit_id")).toString() != head)
            return std::nullopt; // the forge refuses it (head moved) without touching main
        runGit({QStringLiteral("pull"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, scratch);
        runGit({QStringLiteral("fetch"), QStringLiteral("-q"), QStringLiteral("origin"), head}, scratch);
        if (runGit({QStringLiteral("merge"), QStringLiteral("-q"), QStringLiteral("--no-ff"), QStringLiteral("-m"), QStringLiteral("Merge ") + branch, head}, scratch).code != 0
            || runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, scratch).code != 0)
            return FakeAnswer{500, "{\"message\": \"merge into main failed\"}", {}};
        return std::nullopt; // main holds it; now the forge marks the pull request merged
    });

    QVERIFY(startDaemon());
    QHash<qint64, QString> branchOf;
    for (const QString &branch : branches) {
        const qint64 id = submit(branch);
        QVERIFY(id > 0);
        branchOf.insert(id, branch);
    }

    // One holds the lease; the two others wait in the order they first asked. `sluice queue`
    // (another process) shows it.
    auto queueReport = [&] {
        QProcess queue;
        queue.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("queue"), QStringLiteral("--config"), m_config->path(), QStringLiteral("--json")});
        queue.waitForFinished(30000);
        return QJsonDocument::fromJson(queue.readAllStandardOutput()).object();
    };
    QJsonObject report;
    QTRY_VERIFY2_WITH_TIMEOUT((report = queueReport()).value(QLatin1String("leaseWaiters")).toArray().size() == 2,
                              qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    const QJsonArray held = report.value(QLatin1String("leases")).toArray();
    QCOMPARE(held.size(), 1);
    QList<qint64> turn{held.first().toObject().value(QLatin1String("task")).toVariant().toLongLong()};
    for (const QJsonValue &w : report.value(QLatin1String("leaseWaiters")).toArray()) {
        QCOMPARE(w.toObject().value(QLatin1String("resource")).toString(), QStringLiteral("merge:widget:main"));
        turn.append(w.toObject().value(QLatin1String("task")).toVariant().toLongLong());
    }
    QCOMPARE(QSet<qint64>(turn.cbegin(), turn.cend()).size(), 3);
    const QString waitsOf = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'");
    QTRY_VERIFY_WITH_TIMEOUT(storeValue(waitsOf.arg(turn.at(2))).toInt() >= 2, 30000); // asked again and again
    QTest::qWait(QRandomGenerator::global()->bounded(1500)); // CI finishes at some moment of their looking
    QCOMPARE(storeValue(waitsOf.arg(turn.at(0))).toInt(), 0);
    for (qint64 waiting : {turn.at(1), turn.at(2)})
        QCOMPARE(storeValue(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(waiting)).toString(),
                 QStringLiteral("develop/active/0"));

    // CI finishes: they merge one after the other, in that order, each rebased onto the main
    // holding the merges before it, whichever of the waiters happens to look first.
    m_ci->state = QStringLiteral("success");
    const QString statusOf = QStringLiteral("SELECT status || '/' || retries FROM tasks WHERE id = %1");
    QTRY_VERIFY2_WITH_TIMEOUT(std::all_of(turn.cbegin(), turn.cend(), [&](qint64 id) { return storeValue(statusOf.arg(id)).toString() == QLatin1String("done/0"); }),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(4000))), 120000);
    QCOMPARE(m_fake->mergesApplied(), 3);
    QCOMPARE(mergeCalls(), 3);
    QStringList merged, expected;
    for (const FakeRequest &r : m_fake->requests()) {
        if (r.method == "POST" && r.path.endsWith(QLatin1String("/merge")))
            merged.append(branches.value(r.path.section(QLatin1Char('/'), -2, -2).toInt() - 1));
    }
    for (qint64 id : turn)
        expected.append(branchOf.value(id));
    QCOMPARE(merged, expected);
    for (const QString &branch : branches) // every change is on main
        QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), sha(QStringLiteral("refs/heads/") + branch),
                         QStringLiteral("main")}).code, 0);
    QString previous;
    for (qint64 id : turn) {
        const QString head = storeValue(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(id)).toString();
        QVERIFY(!head.isEmpty());
        if (!previous.isEmpty())
            QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), previous, head}).code, 0);
        previous = head;
    }
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM leases")).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM lease_queue")).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE result <> 'pass'")).toInt(), 0); // waits are not verdicts on record

    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

// CI that takes its time is waited for, not failed (issue 14.1): the gate hands back "wait"
// while the required context has no status yet, the task stays in its stage with no retry
// spent and no rollback, `sluice task` says what it waits for, and once CI is green the task
// merges. max_retries 0: a single fail would block the task.
void tst_MergeDaemon::slowCiIsWaitedForNotFailed()
{
    writeProject("      checks_timeout: 1s\n      wait_retry: 1s\n      ci_timeout: 1h\n");
    m_fake->addPullRequest({1, QStringLiteral("Feature"), Branch, sha(QStringLiteral("refs/heads/main"))});
    m_ci->state.clear(); // CI has not reported anything yet
    QVERIFY(startDaemon());
    const qint64 task = submit();
    QVERIFY(task > 0);
    const QString waitsOf = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(waitsOf).toInt() >= 2, qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    QCOMPARE(storeValue(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(task)).toString(),
             QStringLiteral("develop/active/0"));
    QProcess show;
    show.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("task"), QString::number(task), QStringLiteral("--config"), m_config->path()});
    QVERIFY(show.waitForFinished(30000));
    const QString shown = QString::fromUtf8(show.readAllStandardOutput());
    QVERIFY2(shown.contains(QLatin1String("why: gate merge asked to wait in stage develop")) && shown.contains(QLatin1String("'ci/test' has no status yet")),
             qPrintable(shown));
    QCOMPARE(mergeCalls(), 0);

    m_ci->state = QStringLiteral("success");
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(QStringLiteral("SELECT status || '/' || retries FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("done/0"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(4000))), 60000);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)).toInt(), 0);
    QCOMPARE(m_fake->mergesApplied(), 1);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE result <> 'pass'")).toInt(), 0);
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

// CI that never finishes fails once ci_timeout has passed since the head was first judged,
// naming the pending context; with max_retries 0 the task is blocked with that reason.
void tst_MergeDaemon::ciPendingPastCiTimeoutFails()
{
    writeProject("      checks_timeout: 1s\n      wait_retry: 1s\n      ci_timeout: 3s\n");
    m_fake->addPullRequest({1, QStringLiteral("Feature"), Branch, sha(QStringLiteral("refs/heads/main"))});
    m_ci->state.clear();
    QVERIFY(startDaemon());
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("blocked"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    const QString reason = storeValue(QStringLiteral("SELECT reason FROM gate_runs WHERE task_id = %1 AND result = 'fail' ORDER BY id DESC LIMIT 1").arg(task)).toString();
    QVERIFY2(reason.contains(QLatin1String("within ci_timeout")) && reason.contains(QLatin1String("'ci/test' has no status yet")), qPrintable(reason));
    QVERIFY(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task)).toInt() >= 1);
    QCOMPARE(mergeCalls(), 0);
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

// The ci gate as an exit gate of a real `sluice serve`: after the merge gate recorded the task's
// head, the next stage's ci gate waits while its required context is pending (audited as
// gate-wait, the task stays, no retry), and passes once the forge shows it green.
void tst_MergeDaemon::ciGateWaitsInTheDaemon()
{
    m_config->writeProject(QStringLiteral("widget"), R"(id: widget
repository: {path: ../clone, target_branch: main, forge: forge}
red_policy: {max_retries: 0}
stages:
  - name: develop
    run: work
    exit_gates: [merge]
  - name: testing
    run: check
    exit_gates: [ci]
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
      command: [/bin/sh, -ec, "echo task >> work-$SLUICE_TASK_ID.txt && git add . && git -c user.name=agent -c user.email=agent@example.org commit -qm work"]
  check:
    plugin: command
    settings:
      command: [/bin/true]
  merge:
    plugin: merge
    settings:
      remote: origin
      poll_interval: 100ms
      checks: {contexts: [ci/test]}
  ci:
    plugin: ci
    settings:
      contexts: [ci/slow]
      retry_after: 1s
      ci_timeout: 1h
)");
    m_fake->addPullRequest({1, QStringLiteral("Feature"), Branch, sha(QStringLiteral("refs/heads/main"))});
    QVERIFY(startDaemon());
    const qint64 task = submit();
    QVERIFY(task > 0);
    const QString waits = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait' AND details LIKE '%ci/slow%'").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(QStringLiteral("SELECT stage FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("testing"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    const QString head = storeValue(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    QVERIFY(!head.isEmpty());
    m_fake->addStatus(head, QStringLiteral("ci/slow"), QStringLiteral("pending"));
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(waits).toInt() >= 2, qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    QCOMPARE(storeValue(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(task)).toString(),
             QStringLiteral("testing/active/0"));
    QProcess show;
    show.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("task"), QString::number(task), QStringLiteral("--config"), m_config->path()});
    QVERIFY(show.waitForFinished(30000));
    const QString shown = QString::fromUtf8(show.readAllStandardOutput());
    QVERIFY2(shown.contains(QLatin1String("why: gate ci asked to wait in stage testing")) && shown.contains(QLatin1String("'ci/slow' is pending")), qPrintable(shown));

    // SIGKILL while waiting: the restarted daemon goes on waiting, and its ci_timeout goes on
    // counting from the first judgement (kept in the gate's state), not from the restart.
    const QString firstJudged = QStringLiteral("SELECT CAST(value AS TEXT) FROM plugin_state WHERE instance = 'ci' AND key = 'first-judged/%1'").arg(head);
    const QString before = storeValue(firstJudged).toString();
    QVERIFY(!before.isEmpty());
    killDaemon();
    const int waitsBefore = storeValue(waits).toInt();
    QVERIFY(startDaemon());
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(waits).toInt() > waitsBefore, qPrintable(QString::fromUtf8(m_daemon.log().right(3000))), 60000);
    QCOMPARE(storeValue(firstJudged).toString(), before);
    QCOMPARE(storeValue(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(task)).toString(),
             QStringLiteral("testing/active/0"));

    m_fake->addStatus(head, QStringLiteral("ci/slow"), QStringLiteral("success"));
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(task)).toString()
                                  == QLatin1String("done/done/0"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(4000))), 60000);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE task_id = %1 AND result <> 'pass'").arg(task)).toInt(), 0);
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM plugin_state WHERE instance = 'ci'")).toInt(), 0); // the pass forgot the clock
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

// Someone pushes to the task branch at the forge while the merge gate holds the merge lease
// (between its read of the checks and its merge): nothing is merged then, nothing is pushed over
// the person's commit. The gate waits; the next evaluation takes the pushed head as the task's
// (audited), the merge gate judges it (its checks on that head) and merges exactly it.
void tst_MergeDaemon::outsidePushWhileMergingIsJudgedFirst()
{
    writeProject("      checks_timeout: 1s\n      wait_retry: 1s\n      ci_timeout: 1h\n");
    m_fake->addPullRequest({1, QStringLiteral("Feature"), Branch, sha(QStringLiteral("refs/heads/main"))});
    // The person's push happens on the merge gate's first read of the checks (on the forge's
    // thread, before it answers): the checks it reads are the judged head's, all green.
    const QString person = path(QStringLiteral("person"));
    const QString forge = bare();
    FakeForge *fake = m_fake.get();
    QMutex lock;
    QString pushed;
    bool armed = true;
    m_fake->setRequestHook([&, fake](const FakeRequest &r) {
        static const QRegularExpression commit(QStringLiteral("/([0-9a-f]{40})(/|$)"));
        const QRegularExpressionMatch read = commit.match(r.path);
        if (r.method != "GET" || !r.path.contains(QLatin1String("status")) || !read.hasMatch())
            return;
        // Only once that head's CI is green: the gate then goes on to merge.
        bool green = false;
        for (const FakeStatus &st : fake->statuses(read.captured(1)))
            green = green || st.state == QLatin1String("success");
        QMutexLocker locked(&lock);
        if (!armed || !green)
            return;
        armed = false;
        runGit({QStringLiteral("clone"), QStringLiteral("-q"), forge, person});
        runGit({QStringLiteral("checkout"), QStringLiteral("-q"), Branch}, person);
        writeFile(person + QStringLiteral("/by-hand.txt"), "a fix by hand\n");
        runGit({QStringLiteral("add"), QStringLiteral("by-hand.txt")}, person);
        runGit({QStringLiteral("-c"), QStringLiteral("user.name=dave"), QStringLiteral("-c"), QStringLiteral("user.email=dave@example.org"),
                QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("by hand")}, person);
        runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), Branch}, person);
        pushed = runGit({QStringLiteral("rev-parse"), QStringLiteral("HEAD")}, person).out.trimmed();
    });
    QVERIFY(startDaemon());
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(storeValue(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("done"),
                              qPrintable(QString::fromUtf8(m_daemon.log().right(5000))), 60000);
    QString head;
    {
        QMutexLocker locked(&lock);
        head = pushed;
    }
    QVERIFY(!head.isEmpty());
    // The gate saw the branch move while it held the lease, and merged nothing then.
    QVERIFY2(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait' AND details LIKE '%moved at the forge%'")
                            .arg(task)).toInt() >= 1,
             qPrintable(QString::fromUtf8(m_daemon.log().right(5000))));
    QCOMPARE(storeValue(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'head-adopted'").arg(task)).toInt(), 1);
    QCOMPARE(storeValue(QStringLiteral("SELECT head_sha FROM gate_runs WHERE task_id = %1 AND gate = 'merge' AND result = 'pass'").arg(task)).toString(), head);
    // One merge, of exactly the pushed head; the person's commit is still the branch's head.
    QCOMPARE(mergeCalls(), 1);
    QCOMPARE(m_fake->mergesApplied(), 1);
    for (const FakeRequest &r : m_fake->requests()) {
        if (r.method == "POST" && r.path.endsWith(QLatin1String("/merge")))
            QCOMPARE(QJsonDocument::fromJson(r.body).object().value(QLatin1String("head_commit_id")).toString(), head);
    }
    QCOMPARE(sha(QStringLiteral("refs/heads/") + Branch).trimmed(), head);
    QCOMPARE(storeValue(QStringLiteral("SELECT retries FROM tasks WHERE id = %1").arg(task)).toInt(), 0);
    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(15000));
}

QTEST_GUILESS_MAIN(tst_MergeDaemon)
#include "tst_mergedaemon.moc"
