// SPDX-License-Identifier: Apache-2.0
// The forge loop through a real `sluice serve` (issue 14): a pipeline development (an agent, a
// real child process committing in its working copy) → testing (exit gate ci) → done, on the
// fake Gitea with a real git remote. The host pushes the agent's commit to the forge's git
// repository and records its head; a fake CI reacts to the pushed head (a push delivery, then
// statuses); the daemon hears the forge only through signed webhook deliveries the fake forge
// makes. The ci gate asks to be looked at again after an hour, so a task that moves on within
// seconds was moved by a delivery, not by polling — except where a test loses deliveries on
// purpose and polling is the backstop.
//
// Also: what Sluice says on the pull request (statuses once per change of verdict, one comment
// per rollback and per wait for a person, the pull request opened once, nothing secret), and
// approvals and refusals from the forge.

#include "daemonprocess.h"
#include "fakeforge.h"
#include "forgecases.h"

#include <sluice/testsupport.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QTimer>
#include <QtTest>

#include <functional>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "forgeloop-forge-token-7781";
const QByteArray FeedbackToken = "forgeloop-feedback-token-9032";
const QByteArray HookSecret = "forgeloop-hook-secret-1234";
const QStringList Contexts{QStringLiteral("ci/test"), QStringLiteral("ci/lint")};

// A CI system in miniature on the forge's git repository: every new head of a branch is told to
// the forge as a push (the forge then delivers it), and CI starts on it (pending statuses). How
// it ends is the test's: result() decides per head and context, evaluated at every tick. On
// GitHub, ci/test is a check run (as GitHub Actions reports a job: created in progress, then
// completed with a conclusion) and ci/lint a commit status; on Gitea both are commit statuses.
class FakeCi : public QObject
{
public:
    FakeCi(QString bare, FakeForge &forge, bool checkRuns)
        : m_bare(std::move(bare))
        , m_forge(forge)
        , m_checkRuns(checkRuns)
    {
        connect(&m_timer, &QTimer::timeout, this, [this] { tick(); });
        m_timer.start(25);
    }
    /// (head, its position among the heads CI saw: 1, 2, ...; context) → final state, or empty to stay pending.
    std::function<QString(const QString &sha, int nth, const QString &context)> result = [](const QString &, int, const QString &) { return QString(); };
    QStringList heads; ///< Task-branch heads CI started on, in order.
    /// Who pushed a head (the push delivery's pusher); Sluice's own pushes by default.
    QHash<QString, QString> pushers;

    void tick()
    {
        const GitOut refs = runGit({QStringLiteral("--git-dir"), m_bare, QStringLiteral("for-each-ref"),
                                    QStringLiteral("--format=%(refname:short) %(objectname)"), QStringLiteral("refs/heads")});
        for (const QString &line : refs.out.split(QLatin1Char('\n'), Qt::SkipEmptyParts)) {
            const QString branch = line.section(QLatin1Char(' '), 0, 0);
            const QString sha = line.section(QLatin1Char(' '), 1, 1);
            if (m_branches.value(branch) == sha)
                continue;
            const QString before = m_branches.value(branch);
            m_branches.insert(branch, sha);
            m_forge.notifyPush(branch, before, sha, pushers.value(sha, QStringLiteral("sluice-bot")));
            if (branch == QLatin1String("main"))
                continue;
            heads.append(sha);
            for (const QString &context : Contexts) {
                if (isCheckRun(context))
                    m_runs.insert(sha + QLatin1Char('/') + context, m_forge.addCheckRun(sha, context, QStringLiteral("in_progress"), QString()).id);
                else
                    m_forge.addStatus(sha, context, QStringLiteral("pending"), QDateTime(), QStringLiteral("running"));
            }
        }
        for (int i = 0; i < heads.size(); ++i) {
            for (const QString &context : Contexts) {
                const QString key = heads[i] + QLatin1Char('/') + context;
                if (m_finished.contains(key))
                    continue;
                const QString state = result(heads[i], i + 1, context);
                if (state.isEmpty())
                    continue;
                m_finished.insert(key);
                if (isCheckRun(context))
                    m_forge.completeCheckRun(m_runs.value(key), state);
                else
                    m_forge.addStatus(heads[i], context, state, QDateTime(),
                                      state == QLatin1String("success") ? QStringLiteral("passed") : QStringLiteral("2 problems"));
            }
        }
    }

private:
    bool isCheckRun(const QString &context) const { return m_checkRuns && context == QLatin1String("ci/test"); }

    QString m_bare;
    FakeForge &m_forge;
    bool m_checkRuns;
    QTimer m_timer;
    QHash<QString, QString> m_branches;
    QHash<QString, qint64> m_runs; // head/context → check run id
    QSet<QString> m_finished;
};

} // namespace

class tst_ForgeLoop : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();
    void ciPendingThenGreenMovesOn_data() { forgeFlavors(); }
    void ciPendingThenGreenMovesOn();
    void ciRedRollsBackOnceWithTheRedContexts_data() { forgeFlavors(); }
    void ciRedRollsBackOnceWithTheRedContexts();
    void ciPendingPastCiTimeoutFails_data() { forgeFlavors(); }
    void ciPendingPastCiTimeoutFails();
    void hostileDeliveriesChangeNothing();
    void lostDeliveryIsCaughtByPolling();
    void reorderedAndRepeatedDeliveries();
    void statusesAndCommentsOncePerChange();
    void approvalsFromTheForge();
    void oldSignalDoesNotAnswerANewVisit();
    void closedPullRequestBlocksAndReopenRetries();
    void unreadablePullRequestListOpensNone();
    void outsidePushIsJudgedAgain_data();
    void outsidePushIsJudgedAgain();
    void outsidePushIsRefused_data();
    void outsidePushIsRefused();
    void outsidePushDivergingFromUnpushedWorkBlocks();
    void outsidePushWhileWaitingForApprovalIsTaken();

private:
    // The main scenarios run on both forges: rows "gitea" (Gitea/Forgejo: commit statuses) and
    // "github" (GitHub: ci/test a check run, ci/lint a commit status, GitHub's payloads and
    // signatures). init() reads the row's tag; the others run on Gitea.
    static void forgeFlavors() { Test::addForgeFlavorRows(); }
    QString path(const QString &name) const { return m_config->path() + QLatin1Char('/') + name; }
    QString forgeSha(const QString &branch) const
    {
        return runGit({QStringLiteral("--git-dir"), path(QStringLiteral("forge.git")), QStringLiteral("rev-parse"), QStringLiteral("-q"),
                       QStringLiteral("--verify"), QStringLiteral("refs/heads/") + branch})
            .out;
    }
    // The pipeline with the ci gate's settings and more project sections; starts the daemon and
    // points the forge's webhook at it (unless @p webhooks is false).
    bool start(const QByteArray &ciSettings, const QByteArray &more = {}, int maxRetries = 2, bool webhooks = true,
               const QByteArray &stages = {});
    qint64 submit(const QString &title = QStringLiteral("Fix the widget"));
    QVariant value(const QString &sql);
    QString taskRow(qint64 task) { return value(QStringLiteral("SELECT stage || '/' || status || '/' || retries FROM tasks WHERE id = %1").arg(task)).toString(); }
    int count(const QString &sql) { return value(sql).toInt(); }
    QString log() const { return QString::fromUtf8(m_daemon.log().right(6000)); }
    // The value of one series of the daemon's /metrics (0 when absent).
    double metric(const QByteArray &series)
    {
        for (const QByteArray &line : m_daemon.request("GET", QStringLiteral("/metrics")).body.split('\n')) {
            if (line.startsWith(series + ' '))
                return line.mid(series.size() + 1).toDouble();
        }
        return 0;
    }
    void stop();
    // A person (@p login) pushes one commit to the task branch at the forge, on top of the
    // branch (or, @p force, on the target: a force-push that drops what is there), adding
    // @p file with @p content. Returns the new head; the fake CI says @p login pushed it.
    QString pushAsPerson(const QString &login, bool force, const QByteArray &content = "a fix by hand\n",
                         const QString &file = QStringLiteral("by-hand.txt"));
    QString auditValue(qint64 task, const QString &action, const QString &column)
    {
        return value(QStringLiteral("SELECT %1 FROM audit WHERE task_id = %2 AND action = '%3' ORDER BY id DESC LIMIT 1").arg(column).arg(task).arg(action))
            .toString();
    }

    PluginDirectory m_plugins;
    std::unique_ptr<TemporaryConfig> m_config;
    std::unique_ptr<FakeForge> m_forge;
    std::unique_ptr<FakeCi> m_ci;
    bool m_github = false;
    QByteArray m_repositoryMore; ///< More keys of the project's repository section (", key: value").
    DaemonProcess m_daemon{QStringLiteral(SLUICE_EXECUTABLE)};
};

void tst_ForgeLoop::initTestCase()
{
    for (const QString &file : {QStringLiteral(GITEA_PLUGIN_FILE), QStringLiteral(GITHUB_PLUGIN_FILE), QStringLiteral(AGENT_PLUGIN_FILE), QStringLiteral(PROCESS_PLUGIN_FILE),
                                QStringLiteral(CI_PLUGIN_FILE), QStringLiteral(APPROVAL_PLUGIN_FILE)})
        QVERIFY(!m_plugins.add(QFileInfo(file).absolutePath(), QFileInfo(file).fileName()).isEmpty());
}

void tst_ForgeLoop::init()
{
    m_config = std::make_unique<TemporaryConfig>();
    QVERIFY(m_config->isValid());
    // The forge's git repository, and the project's repository: a clone whose origin is the forge.
    const QString seed = path(QStringLiteral("seed"));
    m_config->writeFile(QStringLiteral("seed/README"), "widget\n");
    QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}, seed).code, 0);
    QCOMPARE(runGit({QStringLiteral("add"), QStringLiteral("README")}, seed).code, 0);
    QCOMPARE(runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("seed")}, seed).code, 0);
    QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"),
                     path(QStringLiteral("forge.git"))}).code, 0);
    QCOMPARE(runGit({QStringLiteral("push"), QStringLiteral("-q"), path(QStringLiteral("forge.git")), QStringLiteral("main")}, seed).code, 0);
    QCOMPARE(runGit({QStringLiteral("clone"), QStringLiteral("-q"), QStringLiteral("--bare"), path(QStringLiteral("forge.git")),
                     path(QStringLiteral("project.git"))}).code, 0);

    m_github = QByteArray(QTest::currentDataTag()) == "github";
    m_forge = std::make_unique<FakeForge>(m_github ? FakeForge::Flavor::GitHub : FakeForge::Flavor::Gitea);
    QVERIFY(m_forge->start());
    m_forge->setToken(Token);
    m_forge->addToken(FeedbackToken);
    m_forge->setBranch(QStringLiteral("main"), forgeSha(QStringLiteral("main")));
    const QString bare = path(QStringLiteral("forge.git"));
    m_forge->setHeadResolver([bare](const QString &branch) {
        return runGit({QStringLiteral("--git-dir"), bare, QStringLiteral("rev-parse"), QStringLiteral("-q"), QStringLiteral("--verify"),
                       QStringLiteral("refs/heads/") + branch})
            .out;
    });
    m_ci = std::make_unique<FakeCi>(bare, *m_forge, m_github);

    m_config->writeFile(QStringLiteral("secrets/forge.token"), Token + '\n');
    m_config->writeFile(QStringLiteral("secrets/feedback.token"), FeedbackToken + '\n');
    m_config->writeFile(QStringLiteral("secrets/hook.secret"), HookSecret + '\n');
    // The agent: one new commit per run, in its working copy.
    // It keeps the task files it was given (what the agent read) in tasks-read.log.
    m_config->writeFile(QStringLiteral("agent.sh"), "#!/bin/sh\ncat \"$2\" >> '" + path(QStringLiteral("tasks-read.log")).toUtf8()
                                                    + "'\nn=$(ls work-*.txt 2>/dev/null | wc -l)\necho \"work $n\" > \"work-$n.txt\"\n"
                                                    "git add . && git -c user.name=agent -c user.email=agent@example.org commit -qm \"work $n\"\n");
    m_config->writeHostFile("node: forgeloop\nstate_dir: state\nplugin_dirs: [" + m_plugins.path().toUtf8()
                            + "]\nworker: {poll_interval: 100ms}\nhttp: {port: 0, max_body: 262144}\nreconciler: {interval: 1s, settle: 1h}\n");
}

void tst_ForgeLoop::cleanup()
{
    if (QTest::currentTestFailed())
        qWarning("daemon log:\n%s", m_daemon.log().right(20000).constData());
    stop();
    QSqlDatabase::removeDatabase(QStringLiteral("peek"));
    m_ci.reset();
    m_forge.reset();
    m_config.reset();
}

void tst_ForgeLoop::stop()
{
    if (m_daemon.state() == QProcess::NotRunning)
        return;
    m_daemon.terminate();
    if (!m_daemon.waitForFinished(15000)) {
        m_daemon.kill();
        m_daemon.waitForFinished(5000);
    }
}

bool tst_ForgeLoop::start(const QByteArray &ciSettings, const QByteArray &more, int maxRetries, bool webhooks, const QByteArray &stages)
{
    const QByteArray pipeline = stages.isEmpty() ? QByteArray("  - name: development\n    run: developer\n  - name: testing\n    exit_gates: [ci]\n  - name: done\n")
                                                 : stages;
    m_config->writeProject(QStringLiteral("widget"), R"(id: widget
repository: {path: ../project.git, target_branch: main, forge: forge)" + m_repositoryMore + R"(}
agent_launcher: launcher
red_policy: {rollback_to: development, max_retries: )" + QByteArray::number(maxRetries) + R"(}
jobs: {max_attempts: 1, retry_backoff: 1s}
timeouts: {stage: 2m, gate: 1m}
stages:
)" + pipeline + R"(instances:
  forge:
    plugin: )" + QByteArray(m_github ? "github" : "gitea") + R"(
    settings:
      url: )" + m_forge->url().toString().toUtf8() + R"(
      repository: acme/widget
      token: {file: ../secrets/forge.token}
      webhook_secret: {file: ../secrets/hook.secret}
      retry_backoff: 10ms
  launcher:
    plugin: process
    settings:
      command: [/bin/sh, ")" + path(QStringLiteral("agent.sh")).toUtf8() + R"(", "{role}", "{task_file}"]
      inherit_environment: [PATH]
  developer:
    plugin: agent
    settings: {role: developer, timeout: 1m}
  review:
    plugin: approval
    settings: {signal: approve}
  ci:
    plugin: ci
    settings:
      contexts: [ci/test, ci/lint]
)" + ciSettings + more);
    if (!m_daemon.serve(m_config->path()))
        return false;
    if (webhooks)
        m_forge->setWebhook(QUrl(QStringLiteral("http://127.0.0.1:%1/webhooks/widget/forge").arg(m_daemon.port())), HookSecret);
    return true;
}

qint64 tst_ForgeLoop::submit(const QString &title)
{
    QProcess p;
    p.start(QStringLiteral(SLUICE_EXECUTABLE), {QStringLiteral("submit"), QStringLiteral("--config"), m_config->path(), QStringLiteral("--project"),
                                                QStringLiteral("widget"), QStringLiteral("--title"), title, QStringLiteral("--branch"),
                                                QStringLiteral("sluice/fix"), QStringLiteral("--json")});
    if (!p.waitForFinished(30000) || p.exitCode() != 0) {
        qWarning("submit failed: %s", p.readAllStandardError().constData());
        return 0;
    }
    return QJsonDocument::fromJson(p.readAllStandardOutput()).object().value(QLatin1String("task")).toVariant().toLongLong();
}

QVariant tst_ForgeLoop::value(const QString &sql)
{
    QSqlDatabase db = QSqlDatabase::contains(QStringLiteral("peek")) ? QSqlDatabase::database(QStringLiteral("peek"))
                                                                      : QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("peek"));
    db.setDatabaseName(path(QStringLiteral("state/sluice.db")));
    if (!db.isOpen() && !db.open())
        return QVariant();
    QSqlQuery q(db);
    if (!q.exec(sql) || !q.next()) {
        if (q.lastError().isValid())
            qWarning("%s: %s", qPrintable(sql), qPrintable(q.lastError().text()));
        return QVariant();
    }
    return q.value(0);
}

// CI pending for a while (one context turns green, the other stays pending: the task is woken
// and waits again), then green: the task moves on at once, with no rollback and no retry.
void tst_ForgeLoop::ciPendingThenGreenMovesOn()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n"));
    bool lintGreen = false;
    bool testGreen = false;
    m_ci->result = [&](const QString &, int, const QString &context) {
        if (context == QLatin1String("ci/lint"))
            return lintGreen ? QStringLiteral("success") : QString();
        return testGreen ? QStringLiteral("success") : QString();
    };
    const qint64 task = submit();
    QVERIFY(task > 0);
    const QString waits = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task);
    // Waiting in testing on the head the agent made, which the host pushed to the forge.
    QTRY_VERIFY2_WITH_TIMEOUT(count(waits) >= 1, qPrintable(log()), 60000);
    QCOMPARE(taskRow(task), QStringLiteral("testing/active/0"));
    const QString head = value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    QVERIFY(!head.isEmpty());
    QCOMPARE(forgeSha(QStringLiteral("sluice/fix")), head);
    QCOMPARE(value(QStringLiteral("SELECT pushed_sha FROM tasks WHERE id = %1").arg(task)).toString(), head);
    QCOMPARE(m_ci->heads, QStringList{head}); // CI started on exactly that head
    if (m_github) {
        // GitHub's shape: ci/test is a check run on that head, ci/lint a commit status.
        QCOMPARE(m_forge->checkRuns(head).size(), 1);
        QCOMPARE(m_forge->statuses(head).size(), 1);
        QVERIFY(!m_forge->webhooks().deliveries("check_run").isEmpty());
    }
    // ci/lint's success is a delivery: the task looks again and still waits (for ci/test).
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    const int waited = count(waits);
    lintGreen = true;
    // Deliveries are handled after their answer: an earlier one may still add a wait; the one
    // that follows ci/lint's success names only ci/test.
    const QString lastWaitSql = QStringLiteral("SELECT details FROM audit WHERE task_id = %1 AND action = 'gate-wait' ORDER BY id DESC LIMIT 1").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(count(waits) > waited && value(lastWaitSql).toString().contains(QLatin1String("'ci/test' is pending"))
                                  && !value(lastWaitSql).toString().contains(QLatin1String("'ci/lint' is pending")),
                              qPrintable(value(lastWaitSql).toString()), 30000);
    QCOMPARE(taskRow(task), QStringLiteral("testing/active/0"));

    testGreen = true;
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/0"), qPrintable(log()), 20000);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)), 0);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE task_id = %1 AND result <> 'pass'").arg(task)), 0);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM jobs WHERE task_id = %1 AND attempts > 1").arg(task)), 0);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM jobs WHERE task_id = %1 AND stage = 'development'").arg(task)), 1);
    // The deliveries the daemon took are recorded once each.
    QVERIFY(count(QStringLiteral("SELECT COUNT(*) FROM events WHERE kind = 'webhook'")) >= 3);
}

// CI red on the first head: one rollback with the red context as its finding (the green one is
// none); the agent's next head goes green and the task is done.
void tst_ForgeLoop::ciRedRollsBackOnceWithTheRedContexts()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n"));
    m_ci->result = [](const QString &, int nth, const QString &context) {
        return nth == 1 && context == QLatin1String("ci/lint") ? QStringLiteral("failure") : QStringLiteral("success");
    };
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/1"), qPrintable(log()), 90000);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)), 1);
    QCOMPARE(m_ci->heads.size(), 2);
    const QString findings = value(QStringLiteral("SELECT findings FROM gate_runs WHERE task_id = %1 AND gate = 'ci' AND result = 'fail'").arg(task)).toString();
    const QJsonArray list = QJsonDocument::fromJson(findings.toUtf8()).array();
    QCOMPARE(list.size(), 1);
    QCOMPARE(list.first().toObject().value(QLatin1String("rule")).toString(), QStringLiteral("ci/lint"));
    QCOMPARE(value(QStringLiteral("SELECT head_sha FROM gate_runs WHERE task_id = %1 AND gate = 'ci' AND result = 'fail'").arg(task)).toString(), m_ci->heads.first());
    // The agent read the finding on its second run (its task file; the task's description drops
    // the feedback once development is passed again).
    QFile read(path(QStringLiteral("tasks-read.log")));
    QVERIFY(read.open(QIODevice::ReadOnly));
    const QString given = QString::fromUtf8(read.readAll());
    QCOMPARE(given.count(QLatin1String("Sent back by gate 'ci'")), 1);
    QVERIFY2(given.contains(QLatin1String("[ci/lint]")), qPrintable(given));
}

// CI that never ends: the gate fails once ci_timeout has passed since it first judged the head,
// naming the contexts still pending; with no rollback left the task is blocked with that reason.
void tst_ForgeLoop::ciPendingPastCiTimeoutFails()
{
    QVERIFY(start("      retry_after: 1s\n      ci_timeout: 3s\n", {}, 0));
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("blocked"),
                              qPrintable(log()), 60000);
    const QString reason = value(QStringLiteral("SELECT reason FROM gate_runs WHERE task_id = %1 AND result = 'fail'").arg(task)).toString();
    QVERIFY2(reason.contains(QLatin1String("ci_timeout")) && reason.contains(QLatin1String("'ci/test' is pending"))
                 && reason.contains(QLatin1String("'ci/lint' is pending")),
             qPrintable(reason));
    QVERIFY(value(QStringLiteral("SELECT blocked_reason FROM tasks WHERE id = %1").arg(task)).toString().contains(QLatin1String("'ci/test' is pending")));
}

// Each hostile delivery gets its answer and changes nothing: no event recorded, no task moved,
// nothing audited.
void tst_ForgeLoop::hostileDeliveriesChangeNothing()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n"));
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task)) >= 1,
                              qPrintable(log()), 60000);
    const QString head = value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    WebhookSender &hooks = m_forge->webhooks();
    QTRY_COMPARE_WITH_TIMEOUT(hooks.pending(), 0, 10000);
    // What a delivery could change: the deliveries recorded, the task, the audit (the gate's own
    // re-looks after earlier, genuine deliveries aside), and the forge events the daemon handled.
    auto handled = [&] {
        double total = 0;
        for (const QByteArray &line : m_daemon.request("GET", QStringLiteral("/metrics")).body.split('\n')) {
            if (line.startsWith("sluice_forge_events_total{"))
                total += line.mid(line.lastIndexOf(' ') + 1).toDouble();
        }
        return total;
    };
    auto snapshot = [&] {
        return QStringLiteral("%1|%2|%3|%4").arg(value(QStringLiteral("SELECT COUNT(*) FROM events")).toString(),
                                                 value(QStringLiteral("SELECT stage || status || version || retries FROM tasks WHERE id = %1").arg(task)).toString(),
                                                 value(QStringLiteral("SELECT COUNT(*) FROM audit WHERE action <> 'gate-wait'")).toString())
            .arg(handled());
    };
    // Deliveries a person with the secret would make, to take apart below.
    const QByteArray repo = R"("repository": {"full_name": "acme/widget", "name": "widget", "owner": {"login": "acme"}})";
    const QByteArray closed = R"({"action": "closed", "number": 1, "pull_request": {"number": 1, "state": "closed", "merged": false,
        "head": {"ref": "sluice/fix", "sha": ")" + head.toUtf8() + R"("}, "base": {"ref": "main"}}, )" + repo + R"(, "sender": {"login": "mallory"}})";
    const QByteArray success = R"({"id": 99, "sha": ")" + head.toUtf8() + R"(", "context": "ci/test", "state": "success", )" + repo + "}";
    auto signedWith = [](const QByteArray &secret, const QByteArray &body) { return WebhookSender::signatureHeaders(WebhookSender::Style::Gitea, secret, body); };
    struct Row {
        const char *what;
        QByteArray event;
        QByteArray body;
        QList<QPair<QByteArray, QByteArray>> signature;
        int status;
    };
    QByteArray otherRepo = closed;
    otherRepo.replace("acme/widget", "mallory/widget");
    const QByteArray huge = R"({"padding": ")" + QByteArray(300 * 1024, 'x') + R"("})";
    const QList<Row> rows{
        {"bad signature", "status", success, signedWith("not-the-secret", success), 401},
        {"no signature", "status", success, {}, 401},
        {"signature of another body", "status", success, signedWith(HookSecret, closed), 401},
        {"another repository", "pull_request", otherRepo, signedWith(HookSecret, otherRepo), 202},
        {"unknown event", "wiki", closed, signedWith(HookSecret, closed), 202},
        {"malformed JSON", "status", "{\"sha\": ", signedWith(HookSecret, "{\"sha\": "), 400},
        {"not an object", "push", "[1, 2]", signedWith(HookSecret, "[1, 2]"), 400},
        {"oversize body", "status", huge, signedWith(HookSecret, huge), 413},
    };
    int sent = 0;
    for (const Row &row : rows) {
        const QString before = snapshot();
        QList<QPair<QByteArray, QByteArray>> headers{{"X-Gitea-Event", row.event}, {"X-Gitea-Delivery", QByteArray("hostile-") + QByteArray::number(sent)}};
        headers.append(row.signature);
        hooks.sendRaw(row.body, headers);
        ++sent;
        QTRY_VERIFY_WITH_TIMEOUT(hooks.deliveries().last().status != 0, 10000);
        QVERIFY2(hooks.deliveries().last().status == row.status,
                 qPrintable(QStringLiteral("%1: %2 %3").arg(QLatin1String(row.what)).arg(hooks.deliveries().last().status)
                                .arg(QString::fromUtf8(hooks.deliveries().last().answer))));
        const QString after = snapshot();
        QVERIFY2(after == before, qPrintable(QStringLiteral("%1: %2 → %3").arg(QLatin1String(row.what), before, after)));
    }
    // A replay of a delivery the daemon took: answered as a duplicate, nothing done twice.
    QString taken;
    for (const SentDelivery &d : hooks.deliveries()) {
        if (d.status == 200 && d.answer.contains("\"events\"") && d.event == "status" && !d.id.startsWith(QLatin1String("hostile")))
            taken = d.id;
    }
    QVERIFY(!taken.isEmpty());
    const QString before = snapshot();
    hooks.redeliver(taken);
    QTRY_VERIFY_WITH_TIMEOUT(hooks.deliveries().last().status != 0, 10000);
    QCOMPARE(hooks.deliveries().last().status, 200);
    QVERIFY(hooks.deliveries().last().answer.contains("duplicate"));
    QCOMPARE(snapshot(), before);
    QCOMPARE(taskRow(task), QStringLiteral("testing/active/0"));
    const QByteArray metrics = m_daemon.request("GET", QStringLiteral("/metrics")).body;
    QVERIFY2(metrics.contains("sluice_webhooks_total{result=\"unauthorized\"} 3"), metrics.constData());
    QVERIFY(metrics.contains("sluice_webhooks_total{result=\"duplicate\"} 1"));
    // The oversize body was refused by the HTTP server before the connector read it, and counted.
    QVERIFY2(metrics.contains("sluice_webhooks_total{result=\"too-large\"} 1"), metrics.constData());
}

// A lost delivery: the success nobody heard of is found by the gate's own look after retry_after.
void tst_ForgeLoop::lostDeliveryIsCaughtByPolling()
{
    QVERIFY(start("      retry_after: 2s\n      ci_timeout: 1h\n"));
    bool green = false;
    m_ci->result = [&](const QString &, int, const QString &) { return green ? QStringLiteral("success") : QString(); };
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task)) >= 1,
                              qPrintable(log()), 60000);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    m_forge->webhooks().loseNext(2); // both successes
    const int before = int(m_forge->webhooks().deliveries().size());
    green = true;
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/0"), qPrintable(log()), 30000);
    const QList<SentDelivery> all = m_forge->webhooks().deliveries();
    QVERIFY(all.size() >= before + 2);
    QVERIFY(all.at(before).lost && all.at(before + 1).lost);
}

// Deliveries held and released in reverse order (the success first, then a stale pending),
// and one delivered again: the gate judges the forge, not the order of events.
void tst_ForgeLoop::reorderedAndRepeatedDeliveries()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n"));
    bool green = false;
    m_ci->result = [&](const QString &, int, const QString &) { return green ? QStringLiteral("success") : QString(); };
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task)) >= 1,
                              qPrintable(log()), 60000);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    const int before = int(m_forge->webhooks().deliveries().size());
    m_forge->webhooks().hold(true);
    green = true;
    QTRY_COMPARE_WITH_TIMEOUT(int(m_forge->webhooks().deliveries().size()), before + 2, 10000);
    // Not asserted here: that the task still waits. A delivery is answered once recorded and
    // handled after the answer, so the wake of an earlier (pending) delivery may come after
    // the flip and read the success itself (seen once in a clean-clone CI run): the gate
    // judges the forge, whichever event woke it. What the order must never do is below.
    m_forge->webhooks().hold(false);
    m_forge->webhooks().release(true);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/0"), qPrintable(log()), 20000);
    // The same success delivered again: a duplicate, the task stays done.
    const QString again = m_forge->webhooks().deliveries().at(before).id;
    m_forge->webhooks().redeliver(again);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    QCOMPARE(m_forge->webhooks().deliveries().last().status, 200);
    QCOMPARE(taskRow(task), QStringLiteral("done/done/0"));
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)), 0);
}

// forge_feedback: the pull request is opened once (title and body masked); every change of the
// ci gate's verdict on a head is one commit status sluice/testing/ci (pending once however many
// waits, then failure or success); the rollback is one comment with the red context; nothing
// posted holds a secret.
void tst_ForgeLoop::statusesAndCommentsOncePerChange()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n",
                  "forge_feedback:\n  token: {file: ../secrets/feedback.token}\n  target_url: \"https://sluice.example/tasks/{task}\"\n"));
    bool testDone = false;
    bool lintDone = false;
    bool secondGreen = false;
    m_ci->result = [&](const QString &, int nth, const QString &context) {
        if (nth == 2)
            return secondGreen ? QStringLiteral("success") : QString();
        if (context == QLatin1String("ci/test"))
            return testDone ? QStringLiteral("success") : QString();
        return lintDone ? QStringLiteral("failure") : QString();
    };
    // A person pasted the forge's token into the task: it never reaches the forge.
    const qint64 task = submit(QStringLiteral("Fix login (token was %1)").arg(QString::fromLatin1(Token)));
    QVERIFY(task > 0);
    const QString waits = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(count(waits) >= 1, qPrintable(log()), 60000);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    testDone = true; // a delivery: the gate looks again and waits again, for ci/lint
    QTRY_VERIFY2_WITH_TIMEOUT(count(waits) >= 2, qPrintable(log()), 30000);
    lintDone = true;
    // Rolled back, worked on again, and waiting for CI on its second head.
    QTRY_VERIFY2_WITH_TIMEOUT(m_ci->heads.size() == 2 && taskRow(task) == QLatin1String("testing/active/1")
                                  && count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait' AND id > "
                                                          "(SELECT MAX(id) FROM audit WHERE task_id = %1 AND action = 'rollback')").arg(task)) >= 1,
                              qPrintable(log()), 90000);
    secondGreen = true;
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/1"), qPrintable(log()), 60000);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);

    // One pull request, opened by Sluice, recorded on the task.
    const QList<FakePullRequest> pulls = m_forge->pullRequests();
    QCOMPARE(pulls.size(), 1);
    QCOMPARE(pulls.first().headRef, QStringLiteral("sluice/fix"));
    QCOMPARE(value(QStringLiteral("SELECT pull_request FROM tasks WHERE id = %1").arg(task)).toLongLong(), pulls.first().number);
    QVERIFY2(!pulls.first().title.contains(QString::fromLatin1(Token)) && pulls.first().title.contains(QLatin1String("[REDACTED]")),
             qPrintable(pulls.first().title));
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'pull-request-opened'").arg(task)), 1);

    // Statuses per head: pending once, then the verdict. The last verdict's status is posted
    // while (or after) the task moves on: wait for it, then compare everything.
    QCOMPARE(m_ci->heads.size(), 2);
    auto posted = [&](const QString &sha, const QString &state) {
        int n = 0;
        for (const FakeStatus &s : m_forge->statuses(sha))
            n += s.context == QLatin1String("sluice/testing/ci") && s.state == state;
        return n;
    };
    QTRY_VERIFY_WITH_TIMEOUT(posted(m_ci->heads[1], QStringLiteral("success")) >= 1, 10000);
    const QStringList expected[2] = {{QStringLiteral("pending"), QStringLiteral("failure")}, {QStringLiteral("pending"), QStringLiteral("success")}};
    for (int i = 0; i < 2; ++i) {
        QStringList states;
        for (const FakeStatus &s : m_forge->statuses(m_ci->heads[i])) {
            QVERIFY(!s.description.contains(QString::fromLatin1(Token)));
            QVERIFY(!s.description.contains(QString::fromLatin1(FeedbackToken)));
            if (s.context != QLatin1String("sluice/testing/ci"))
                continue;
            states.append(s.state);
            QCOMPARE(s.targetUrl, QStringLiteral("https://sluice.example/tasks/%1").arg(task));
            QVERIFY(s.description.size() <= 255);
        }
        QVERIFY2(states == expected[i], qPrintable(QStringLiteral("head %1: %2").arg(i + 1).arg(states.join(QLatin1Char(',')))));
    }
    // One comment: the rollback, with the red context.
    QTRY_VERIFY_WITH_TIMEOUT(!m_forge->comments(pulls.first().number).isEmpty(), 10000);
    const QList<FakeComment> comments = m_forge->comments(pulls.first().number);
    QCOMPARE(comments.size(), 1);
    QCOMPARE(comments.first().author, FakeForge::apiUser());
    QVERIFY2(comments.first().body.contains(QLatin1String("`ci/lint`")) && comments.first().body.contains(QLatin1String("rollback 1 of 2")),
             qPrintable(comments.first().body));
    QVERIFY(!comments.first().body.contains(QString::fromLatin1(Token)));
    // Every write went through the feedback token, none through the forge instance's own.
    for (const FakeRequest &r : m_forge->requests()) {
        if (r.method == "POST" && (r.path.endsWith(QLatin1String("/comments")) || r.path.contains(QLatin1String("/statuses/"))
                                   || r.path.endsWith(QLatin1String("/pulls"))))
            QCOMPARE(r.authorization, QByteArray("token ") + FeedbackToken);
    }
    const QByteArray metrics = m_daemon.request("GET", QStringLiteral("/metrics")).body;
    QVERIFY2(metrics.contains("sluice_forge_feedback_total{action=\"comment\",project=\"widget\",result=\"ok\"} 1"), metrics.constData());
}

// forge_approvals: someone not allowed is refused with one reply (a redelivery adds none); an
// approval of an older commit does not count; an allowed person's command moves the task, audited
// as theirs.
void tst_ForgeLoop::approvalsFromTheForge()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n",
                  "forge_feedback:\n  token: {file: ../secrets/feedback.token}\n"
                  "forge_approvals:\n  users: [alice]\n  teams: [acme/release]\n",
                  2, true, "  - name: development\n    run: developer\n  - name: review\n    run: review\n  - name: done\n"));
    m_forge->setTeam(QStringLiteral("acme/release"), {QStringLiteral("carol")});
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("review/active/0"), qPrintable(log()), 60000);
    QTRY_VERIFY2_WITH_TIMEOUT(!m_forge->pullRequests().isEmpty() && !m_forge->comments(1).isEmpty(), qPrintable(log()), 20000);
    const qint64 pr = m_forge->pullRequests().first().number;
    QCOMPARE(m_forge->comments(pr).size(), 1);
    const QString asked = m_forge->comments(pr).first().body;
    QVERIFY2(asked.contains(QLatin1String("`approve`")) && asked.contains(QLatin1String("@alice")) && asked.contains(QLatin1String("acme/release"))
                 && asked.contains(QLatin1String("`/approve`")),
             qPrintable(asked));

    // bob may not: one reply, nothing moves; the same delivery again changes nothing.
    m_forge->addComment(pr, QStringLiteral("bob"), QStringLiteral("/approve"));
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->comments(pr).size(), 3, 10000); // bob's, and the reply
    const QString reply = m_forge->comments(pr).last().body;
    QVERIFY2(reply.contains(QLatin1String("@bob")) && reply.contains(QLatin1String("@alice")), qPrintable(reply));
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    QString bobs;
    for (const SentDelivery &d : m_forge->webhooks().deliveries("issue_comment")) {
        if (d.body.contains("\"login\":\"bob\""))
            bobs = d.id;
    }
    QVERIFY(!bobs.isEmpty());
    m_forge->webhooks().redeliver(bobs);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    QCOMPARE(m_forge->comments(pr).size(), 3);
    // The same comment under a new delivery id (Gitea's "Replay" makes one): taken, refused
    // again in the audit, and still no second reply.
    QByteArray bobsBody;
    for (const SentDelivery &d : m_forge->webhooks().deliveries("issue_comment")) {
        if (d.id == bobs)
            bobsBody = d.body;
    }
    QList<QPair<QByteArray, QByteArray>> replay{{"X-Gitea-Event", "issue_comment"}, {"X-Gitea-Delivery", "replayed-with-a-new-id"}};
    replay.append(WebhookSender::signatureHeaders(WebhookSender::Style::Gitea, HookSecret, bobsBody));
    m_forge->webhooks().sendRaw(bobsBody, replay);
    QTRY_VERIFY_WITH_TIMEOUT(m_forge->webhooks().deliveries().last().status == 200, 10000); // recorded; handled after the answer
    QTRY_COMPARE_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal-refused'").arg(task)), 2, 10000);
    QTRY_COMPARE_WITH_TIMEOUT(int(qRound(metric("sluice_forge_feedback_total{action=\"comment\",project=\"widget\",result=\"duplicate\"}"))), 1, 10000);
    QCOMPARE(m_forge->comments(pr).size(), 3);
    QCOMPARE(taskRow(task), QStringLiteral("review/active/0"));
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal-refused' AND actor = 'forge:bob'").arg(task)), 2);

    // carol is in the team, but approves a commit that is not the task's head.
    m_forge->addReview(pr, QStringLiteral("carol"), QStringLiteral("approved"), QStringLiteral("0123456789abcdef0123456789abcdef01234567"));
    QTRY_COMPARE_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal-ignored' AND actor = 'forge:carol'").arg(task)), 1,
                              10000);
    QCOMPARE(taskRow(task), QStringLiteral("review/active/0"));

    // alice's command moves it, audited as hers.
    m_forge->addComment(pr, QStringLiteral("alice"), QStringLiteral("/approve thanks"));
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/0"), qPrintable(log()), 20000);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal' AND actor = 'forge:alice'").arg(task)), 1);
}

// A comment command answers the visit of the stage it was given in: alice's "/reject" sends the
// task back to development; when the task waits in review again (a new visit, the head moved on
// and the pull request with it), the same comment replayed under a new delivery id (Gitea's
// "Replay") is not taken: it was given before the task entered the stage. A new command is.
void tst_ForgeLoop::oldSignalDoesNotAnswerANewVisit()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n",
                  "forge_feedback:\n  token: {file: ../secrets/feedback.token}\n"
                  "forge_approvals:\n  users: [alice]\n  commands: {/approve: approve, /reject: reject}\n",
                  2, true, "  - name: development\n    run: developer\n  - name: review\n    run: review\n  - name: done\n"));
    const qint64 task = submit();
    QVERIFY(task > 0);
    const QString asked = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'approval-requested'").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("review/active/0") && count(asked) == 1, qPrintable(log()), 60000);
    QTRY_VERIFY2_WITH_TIMEOUT(!m_forge->pullRequests().isEmpty(), qPrintable(log()), 20000);
    const qint64 pr = m_forge->pullRequests().first().number;
    const QString firstHead = m_forge->pullRequests().first().headSha;

    // alice's "/reject" is delivered in a later second than she wrote it (forges keep whole
    // seconds, and one from the second the task re-enters the stage would count).
    m_forge->webhooks().hold(true);
    const FakeComment reject = m_forge->addComment(pr, QStringLiteral("alice"), QStringLiteral("/reject"));
    QTRY_VERIFY_WITH_TIMEOUT(QDateTime::currentDateTimeUtc().toSecsSinceEpoch() > reject.createdAt.toSecsSinceEpoch(), 5000);
    m_forge->webhooks().hold(false);
    m_forge->webhooks().release(false);
    QTRY_VERIFY2_WITH_TIMEOUT(count(asked) == 2 && taskRow(task).startsWith(QLatin1String("review/active/")), qPrintable(log()), 60000);
    const QString visit2 = taskRow(task);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)), 1);
    QTRY_VERIFY2_WITH_TIMEOUT(m_forge->pullRequests().first().headSha != firstHead, qPrintable(log()), 20000);
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);

    // alice's old "/reject", replayed under a new delivery id: not taken, one reply, audited.
    QByteArray rejectBody;
    for (const SentDelivery &d : m_forge->webhooks().deliveries("issue_comment")) {
        if (d.body.contains("\"login\":\"alice\"") && d.body.contains("/reject"))
            rejectBody = d.body;
    }
    QVERIFY(!rejectBody.isEmpty());
    QList<QPair<QByteArray, QByteArray>> replay{{"X-Gitea-Event", "issue_comment"}, {"X-Gitea-Delivery", "old-reject-replayed"}};
    replay.append(WebhookSender::signatureHeaders(WebhookSender::Style::Gitea, HookSecret, rejectBody));
    m_forge->webhooks().sendRaw(rejectBody, replay);
    QTRY_COMPARE_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal-ignored' AND actor = 'forge:alice' "
                                                   "AND details LIKE '%%earlier visit%%'").arg(task)), 1, 10000);
    auto replies = [this, pr] {
        int n = 0;
        for (const FakeComment &c : m_forge->comments(pr))
            n += c.author == FakeForge::apiUser() && c.body.contains(QLatin1String("before the task entered stage 'review'")) ? 1 : 0;
        return n;
    };
    QTRY_COMPARE_WITH_TIMEOUT(replies(), 1, 10000);
    QCOMPARE(taskRow(task), visit2);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)), 1);
    QCOMPARE(count(asked), 2);

    // A command given in this visit is taken.
    m_forge->addComment(pr, QStringLiteral("alice"), QStringLiteral("/approve"));
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task).startsWith(QLatin1String("done/done/")), qPrintable(log()), 20000);
}

// A pull request closed on the forge without merging blocks its task; reopening it retries it.
void tst_ForgeLoop::closedPullRequestBlocksAndReopenRetries()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n", "forge_feedback:\n  token: {file: ../secrets/feedback.token}\n"));
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT pull_request FROM tasks WHERE id = %1").arg(task)).toLongLong() > 0, qPrintable(log()), 60000);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("testing/active/0"), qPrintable(log()), 60000);
    const qint64 pr = value(QStringLiteral("SELECT pull_request FROM tasks WHERE id = %1").arg(task)).toLongLong();
    m_forge->closePullRequest(pr, QStringLiteral("dave"));
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("blocked"),
                              qPrintable(log()), 20000);
    QVERIFY(value(QStringLiteral("SELECT blocked_reason FROM tasks WHERE id = %1").arg(task)).toString().contains(QLatin1String("closed on the forge")));
    m_forge->reopenPullRequest(pr, QStringLiteral("dave"));
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("active"),
                              qPrintable(log()), 20000);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'retry' AND actor = 'forge:dave'").arg(task)), 1);
}

// The forge's list of open pull requests unreadable (a malformed answer, twice): Sluice cannot
// tell whether the branch has one, so it opens none then; at a later occasion (a stage move, a
// gate verdict) it reads the list again and opens the pull request, once.
void tst_ForgeLoop::unreadablePullRequestListOpensNone()
{
    FakeFault unreadable;
    unreadable.kind = FakeFault::Kind::Malformed;
    unreadable.method = "GET";
    unreadable.pathPattern = QStringLiteral("/pulls$");
    unreadable.times = 2;
    m_forge->addFault(unreadable);
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n", "forge_feedback:\n  token: {file: ../secrets/feedback.token}\n"));
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT pull_request FROM tasks WHERE id = %1").arg(task)).toLongLong() > 0, qPrintable(log()), 60000);
    QCOMPARE(m_forge->pullRequests().size(), 1);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'pull-request-opened'").arg(task)), 1);
    // No pull request was asked for while the list could not be read.
    int lists = 0;
    for (const FakeRequest &r : m_forge->requests()) {
        if (r.method == "GET" && r.path.endsWith(QLatin1String("/pulls")))
            ++lists;
        if (r.method == "POST" && r.path.endsWith(QLatin1String("/pulls")))
            QVERIFY2(lists > 2, "a pull request was opened after a list that could not be read");
    }
    QVERIFY(lists >= 3);
    const QByteArray metrics = m_daemon.request("GET", QStringLiteral("/metrics")).body;
    QVERIFY2(metrics.contains("sluice_forge_feedback_total{action=\"pull-request\",project=\"widget\",result=\"failed\"} 2"), metrics.constData());
}

QString tst_ForgeLoop::pushAsPerson(const QString &login, bool force, const QByteArray &content, const QString &file)
{
    const QString clone = path(QStringLiteral("by-hand-") + login);
    QDir(clone).removeRecursively();
    if (runGit({QStringLiteral("clone"), QStringLiteral("-q"), path(QStringLiteral("forge.git")), clone}).code != 0)
        return QString();
    const QString base = force ? QStringLiteral("origin/main") : QStringLiteral("origin/sluice/fix");
    if (runGit({QStringLiteral("checkout"), QStringLiteral("-q"), QStringLiteral("-B"), QStringLiteral("sluice/fix"), base}, clone).code != 0)
        return QString();
    QFile f(clone + QLatin1Char('/') + file);
    if (!f.open(QIODevice::WriteOnly) || f.write(content) != content.size())
        return QString();
    f.close();
    runGit({QStringLiteral("add"), file}, clone);
    if (runGit({QStringLiteral("-c"), QStringLiteral("user.name=") + login, QStringLiteral("-c"), QStringLiteral("user.email=") + login + QStringLiteral("@example.org"),
                QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("by hand")}, clone).code != 0)
        return QString();
    const QString sha = runGit({QStringLiteral("rev-parse"), QStringLiteral("HEAD")}, clone).out.trimmed();
    // Told before the push: the fake CI (on this thread's event loop) delivers it as theirs.
    m_ci->pushers.insert(sha, login);
    if (runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("--force"), QStringLiteral("origin"), QStringLiteral("sluice/fix")}, clone).code != 0)
        return QString();
    return sha;
}

// A push to the task's branch at the forge that Sluice did not make (on top of Sluice's head, or
// a force-push dropping it), heard through the push delivery or, with every delivery lost, found
// by the publish step when the waiting gate looks again: the pushed head becomes the task's head
// (audited as the pusher's, or as "forge" when only polling saw it), its gates judge it again —
// the old head going green lets nothing through — and CI on the new head decides. Sluice never
// pushes over it; the project's repository follows it, the old head kept in the branch's reflog.
void tst_ForgeLoop::outsidePushIsJudgedAgain_data()
{
    QTest::addColumn<bool>("force");
    QTest::addColumn<bool>("webhooks");
    QTest::newRow("on top, push delivered") << false << true;
    QTest::newRow("force-push, push delivered") << true << true;
    QTest::newRow("on top, deliveries lost: polling") << false << false;
    QTest::newRow("force-push, deliveries lost: polling") << true << false;
}

void tst_ForgeLoop::outsidePushIsJudgedAgain()
{
    QFETCH(bool, force);
    QFETCH(bool, webhooks);
    QVERIFY(start(webhooks ? "      retry_after: 1h\n      ci_timeout: 1h\n" : "      retry_after: 1s\n      ci_timeout: 1h\n", {}, 2, webhooks));
    QSet<QString> green;
    m_ci->result = [&](const QString &sha, int, const QString &) { return green.contains(sha) ? QStringLiteral("success") : QString(); };
    const qint64 task = submit();
    QVERIFY(task > 0);
    const QString waits = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(count(waits) >= 1, qPrintable(log()), 60000);
    const QString head = value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    QCOMPARE(forgeSha(QStringLiteral("sluice/fix")), head);

    const QString pushed = pushAsPerson(QStringLiteral("dave"), force);
    QVERIFY(!pushed.isEmpty());
    QTRY_VERIFY2_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'head-adopted'").arg(task)) == 1,
                              qPrintable(log()), 30000);
    QCOMPARE(value(QStringLiteral("SELECT head_sha || '/' || pushed_sha FROM tasks WHERE id = %1").arg(task)).toString(), pushed + QLatin1Char('/') + pushed);
    QCOMPARE(auditValue(task, QStringLiteral("head-adopted"), QStringLiteral("actor")), webhooks ? QStringLiteral("forge:dave") : QStringLiteral("forge"));
    const QJsonObject adopted = QJsonDocument::fromJson(auditValue(task, QStringLiteral("head-adopted"), QStringLiteral("details")).toUtf8()).object();
    QCOMPARE(adopted.value(QLatin1String("from")).toString(), head);
    QCOMPARE(adopted.value(QLatin1String("to")).toString(), pushed);
    QCOMPARE(adopted.value(QLatin1String("forced")).toBool(), force);
    // The project's repository follows the forge; the old head stays in the branch's reflog.
    const QString project = path(QStringLiteral("project.git"));
    QCOMPARE(runGit({QStringLiteral("--git-dir"), project, QStringLiteral("rev-parse"), QStringLiteral("refs/heads/sluice/fix")}).out.trimmed(), pushed);
    QVERIFY(runGit({QStringLiteral("--git-dir"), project, QStringLiteral("log"), QStringLiteral("-g"), QStringLiteral("--format=%H"),
                    QStringLiteral("refs/heads/sluice/fix")}).out.contains(head));

    // The pushed head is judged: the ci gate waits for CI on it. The old head going green
    // now lets nothing through.
    const QString afterAdoption = QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait' AND id > "
                                                 "(SELECT MAX(id) FROM audit WHERE task_id = %1 AND action = 'head-adopted')").arg(task);
    QTRY_VERIFY2_WITH_TIMEOUT(count(afterAdoption) >= 1, qPrintable(log()), 30000);
    green.insert(head);
    QTRY_VERIFY_WITH_TIMEOUT(m_forge->statuses(head).size() >= 4, 10000); // its two successes after the two pending
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    const int waited = count(afterAdoption);
    QTRY_VERIFY2_WITH_TIMEOUT(webhooks || count(afterAdoption) > waited, qPrintable(log()), 20000); // polling looked again
    QCOMPARE(taskRow(task), QStringLiteral("testing/active/0"));

    green.insert(pushed);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/0"), qPrintable(log()), 30000);
    QCOMPARE(value(QStringLiteral("SELECT head_sha FROM gate_runs WHERE task_id = %1 AND gate = 'ci' AND result = 'pass'").arg(task)).toString(), pushed);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE task_id = %1 AND result <> 'pass'").arg(task)), 0);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'rollback'").arg(task)), 0);
    // Sluice never pushed over the person's head.
    QCOMPARE(forgeSha(QStringLiteral("sluice/fix")), pushed);
    QCOMPARE(m_ci->heads, (QStringList{head, pushed}));
}

// A push Sluice cannot take blocks the task, with the reason and what to do: the project refuses
// outside pushes (repository.outside_pushes: block), or the pushed commits hold a secret (on the
// forge already: nothing to keep out, a person rotates it). The task's head stays Sluice's, and
// Sluice pushes nothing over the person's head.
void tst_ForgeLoop::outsidePushIsRefused_data()
{
    QTest::addColumn<QByteArray>("repository");
    QTest::addColumn<QByteArray>("content");
    QTest::addColumn<QString>("reason");
    QTest::newRow("the project refuses outside pushes") << QByteArray(", outside_pushes: block") << QByteArray("a fix by hand\n")
                                                        << QStringLiteral("refuses outside pushes (repository.outside_pushes: block)");
    // A GitHub personal access token shape (gitleaks rule github-pat), made up for the test.
    QTest::newRow("a secret in the pushed commits") << QByteArray() << QByteArray("token = \"ghp_Zq8Lw2Xn5Rt7Vb1Kc4Hm9Pd3Sf6Jg0Ya2Uex\"\n")
                                                    << QStringLiteral("1 secret(s): they are on the forge already");
}

void tst_ForgeLoop::outsidePushIsRefused()
{
    QFETCH(QByteArray, repository);
    QFETCH(QByteArray, content);
    QFETCH(QString, reason);
    m_repositoryMore = repository;
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n"));
    const qint64 task = submit(); // CI stays pending: the task waits in testing
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'gate-wait'").arg(task)) >= 1,
                              qPrintable(log()), 60000);
    const QString head = value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    const QString pushed = pushAsPerson(QStringLiteral("dave"), false, content);
    QVERIFY(!pushed.isEmpty());
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() != QLatin1String("active"),
                              qPrintable(log()), 30000);
    const QString status = value(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString();
    QCOMPARE(status, QStringLiteral("blocked"));
    const QString blocked = value(QStringLiteral("SELECT blocked_reason FROM tasks WHERE id = %1").arg(task)).toString();
    QVERIFY2(blocked.contains(reason) && blocked.contains(pushed.left(12)), qPrintable(blocked));
    QVERIFY2(!blocked.contains(QLatin1String("ghp_Zq8Lw2Xn5Rt7Vb1Kc4Hm9Pd3Sf6Jg0Ya2Uex")), qPrintable(blocked));
    QCOMPARE(value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString(), head);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'head-adopted'").arg(task)), 0);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE task_id = %1 AND gate = 'sluice/publish' AND result = 'fail'").arg(task)), 1);
    QCOMPARE(forgeSha(QStringLiteral("sluice/fix")), pushed);
}

// The task branch pushed at the forge by someone else while the agent works and before Sluice
// ever pushed it: the agent's head and the forge's diverged. Sluice replaces neither; the task
// is blocked saying so and how to go on.
void tst_ForgeLoop::outsidePushDivergingFromUnpushedWorkBlocks()
{
    // The agent waits for the test's word before it commits.
    m_config->writeFile(QStringLiteral("agent.sh"), "#!/bin/sh\nwhile [ ! -f '" + path(QStringLiteral("go")).toUtf8()
                                                    + "' ]; do sleep 0.05; done\necho work > work.txt\n"
                                                      "git add . && git -c user.name=agent -c user.email=agent@example.org commit -qm work\n");
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n"));
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(count(QStringLiteral("SELECT COUNT(*) FROM jobs WHERE task_id = %1 AND status = 'running'").arg(task)) == 1,
                              qPrintable(log()), 60000);
    const QString pushed = pushAsPerson(QStringLiteral("erin"), true);
    QVERIFY(!pushed.isEmpty());
    QTRY_COMPARE_WITH_TIMEOUT(m_forge->webhooks().pending(), 0, 10000);
    QVERIFY(QFile(path(QStringLiteral("go"))).open(QIODevice::WriteOnly));
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT status FROM tasks WHERE id = %1").arg(task)).toString() == QLatin1String("blocked"),
                              qPrintable(log()), 60000);
    const QString blocked = value(QStringLiteral("SELECT blocked_reason FROM tasks WHERE id = %1").arg(task)).toString();
    const QString head = value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    QVERIFY(!head.isEmpty() && head != pushed);
    QVERIFY2(blocked.contains(QLatin1String("diverged")) && blocked.contains(pushed.left(12)) && blocked.contains(head.left(12))
                 && blocked.contains(QStringLiteral("sluice retry %1").arg(task)),
             qPrintable(blocked));
    QCOMPARE(forgeSha(QStringLiteral("sluice/fix")), pushed); // the person's push stays
    QCOMPARE(value(QStringLiteral("SELECT pushed_sha FROM tasks WHERE id = %1").arg(task)).toString(), QString());
}

// A push while the task waits for a person's approval: the task takes the pushed head at once
// (its gates do not run: nothing moves), so the approval is judged against the head the forge
// has — a command given after the push counts (with dismiss_stale it would not, were the task
// still judging the old head).
void tst_ForgeLoop::outsidePushWhileWaitingForApprovalIsTaken()
{
    QVERIFY(start("      retry_after: 1h\n      ci_timeout: 1h\n",
                  "forge_feedback:\n  token: {file: ../secrets/feedback.token}\n"
                  "forge_approvals:\n  users: [alice]\n",
                  2, true, "  - name: development\n    run: developer\n  - name: review\n    run: review\n  - name: done\n"));
    const qint64 task = submit();
    QVERIFY(task > 0);
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("review/active/0"), qPrintable(log()), 60000);
    QTRY_VERIFY2_WITH_TIMEOUT(!m_forge->pullRequests().isEmpty() && !m_forge->comments(1).isEmpty(), qPrintable(log()), 20000);
    const qint64 pr = m_forge->pullRequests().first().number;
    const QString head = value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString();
    const QString pushed = pushAsPerson(QStringLiteral("dave"), false);
    QVERIFY(!pushed.isEmpty());
    QTRY_VERIFY2_WITH_TIMEOUT(value(QStringLiteral("SELECT head_sha FROM tasks WHERE id = %1").arg(task)).toString() == pushed, qPrintable(log()), 30000);
    QCOMPARE(auditValue(task, QStringLiteral("head-adopted"), QStringLiteral("actor")), QStringLiteral("forge:dave"));
    QCOMPARE(QJsonDocument::fromJson(auditValue(task, QStringLiteral("head-adopted"), QStringLiteral("details")).toUtf8()).object().value(QLatin1String("from")).toString(),
             head);
    QCOMPARE(taskRow(task), QStringLiteral("review/active/0"));
    m_forge->addComment(pr, QStringLiteral("alice"), QStringLiteral("/approve"));
    QTRY_VERIFY2_WITH_TIMEOUT(taskRow(task) == QLatin1String("done/done/0"), qPrintable(log()), 20000);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal' AND actor = 'forge:alice'").arg(task)), 1);
    QCOMPARE(count(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1 AND action = 'signal-ignored'").arg(task)), 0);
    QCOMPARE(forgeSha(QStringLiteral("sluice/fix")), pushed);
}

QTEST_GUILESS_MAIN(tst_ForgeLoop)
#include "tst_forgeloop.moc"
