// SPDX-License-Identifier: Apache-2.0
// Three `sluice serve` on one store (issue 15, "must show"): the PostgreSQL server of the ctest
// fixture, and one shared SQLite file. Tasks flow through real agents (child processes of the
// `process` launcher that write a start/end line with their pid, node, task, stage and job to
// a shared ledger), across a merge gate on the local forge, into a `once: true` deploy hook.
// Mid-run one node is killed with SIGKILL and another is SIGSTOPped past node_timeout and then
// resumed. What a user relies on is checked from the outside — the agents' own ledger, the
// deploy hook's record, the repository, the store:
//
//   - every task ends done, and no job failed;
//   - no job ran twice at once (no overlapping start/end intervals for one job, nor for one
//     task's stage), and every run that started also ended (nothing was killed mid-run);
//   - each task was merged into main exactly once and its deploy hook started exactly once;
//   - the resumed node did nothing with the work taken from it: it exited 75 (taken over),
//     started no run, claimed and completed no job after it came back;
//   - a second daemon started with a live node's name refuses to start, naming that node's pid
//     and host.
//
// The forge's people and CI are played by the test through the local forge plugin on the same
// store the daemons use (as an operator would open a pull request and CI post a status): a
// pull request per task when it reaches review (the reviewer agent finishes once its pull
// request exists), and a green `ci/test` status on every open pull request's head.
//
// SLUICE_NODEFLOW_TASKS (default 6) and SLUICE_NODEFLOW_ROUNDS (default 1: one kill, one stop)
// make it longer; tests/bench/nodes.sh runs it so. A failure prints the timeline (per node: its
// runs and claims, the kills, stops and resumes, the ledger in time order, the jobs); a pass
// prints a summary.

#include "daemonprocess.h"
#include "loopbackserver.h"
#include "testdaemon.h"
#include "storefixture.h"

#include "store/jobqueue.h"
#include "store/store.h"
#include "store/taskstore.h"

#include <sluice/forge.h>
#include <sluice/testsupport.h>

#include <QDateTime>
#include <QDir>
#include <QElapsedTimer>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QSysInfo>
#include <QtTest>

#include <csignal>
#include <ctime>
#include <limits>
#include <map>
#include <memory>

using namespace Sluice;

namespace {

qint64 nowNs()
{
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return qint64(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

int envInt(const char *name, int fallback)
{
    bool ok = false;
    const int v = qEnvironmentVariableIntValue(name, &ok);
    return ok && v > 0 ? v : fallback;
}

// One line of the agents' ledger: "start|end NS PID NODE TASK STAGE JOB".
struct LedgerLine {
    bool start = false;
    qint64 ns = 0;
    qint64 pid = 0;
    QString node;
    qint64 task = 0;
    QString stage;
    qint64 job = 0;
    QString text;
};

QList<LedgerLine> readLedger(const QString &path)
{
    QList<LedgerLine> lines;
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return lines;
    for (const QByteArray &raw : f.readAll().split('\n')) {
        const QList<QByteArray> p = raw.trimmed().split(' ');
        if (p.size() != 7)
            continue;
        LedgerLine l;
        l.start = p[0] == "start";
        l.ns = p[1].toLongLong();
        l.pid = p[2].toLongLong();
        l.node = QString::fromUtf8(p[3]);
        l.task = p[4].toLongLong();
        l.stage = QString::fromUtf8(p[5]);
        l.job = p[6].toLongLong();
        l.text = QString::fromUtf8(raw.trimmed());
        lines.append(l);
    }
    return lines;
}

// One run as the ledger shows it: from its start line to the end line of the same process.
struct Interval {
    qint64 from = 0;
    qint64 to = 0; // 0: no end line
    LedgerLine start;
};

QList<Interval> intervalsOf(const QList<LedgerLine> &ledger)
{
    QList<Interval> runs;
    for (const LedgerLine &l : ledger) {
        if (l.start) {
            runs.append(Interval{l.ns, 0, l});
            continue;
        }
        for (Interval &r : runs) {
            if (r.to == 0 && r.start.pid == l.pid && r.start.job == l.job) {
                r.to = l.ns;
                break;
            }
        }
    }
    return runs;
}

using Run = Sluice::Test::CliRun;

Run cli(const QStringList &arguments)
{
    return Sluice::Test::runCli(QStringLiteral(SLUICE_EXECUTABLE), arguments);
}

bool writeFile(const QString &path, const QByteArray &content)
{
    QFile f(path);
    return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(content) == content.size();
}

struct Node {
    QString name;
    QString dir;
    std::unique_ptr<Test::DaemonProcess> daemon;
    qint64 pid = 0;
};

} // namespace

/*
 * The forge's people and CI, through the local forge plugin on the daemons' store: opens the
 * pull request of each task in review and posts a green `ci/test` on every open pull
 * request's head. pump() is called from the test's waits.
 */
class ForgeStandIn
{
public:
    bool start(const StoreSettings &settings, const QString &repo, const QString &shared, QString *failure)
    {
        m_shared = shared;
        auto store = Store::open(settings);
        if (!store) {
            *failure = store.error().toString();
            return false;
        }
        m_store = std::move(*store);
        m_tasks = std::make_unique<TaskStore>(*m_store);
        m_state = m_store->pluginState(QStringLiteral("p"), QStringLiteral("local"));
        auto plugin = Test::loadPlugin(QStringLiteral(LOCAL_PLUGIN_FILE));
        if (!plugin) {
            *failure = plugin.error().toString();
            return false;
        }
        m_plugin = *plugin;
        ProjectInfo project = Test::fakeProject(QStringLiteral("p"));
        project.repository = repo;
        project.targetBranch = QStringLiteral("main");
        auto instance = Test::createInstance(m_plugin, QByteArray(), project, m_state.get());
        if (!instance) {
            *failure = instance.error().toString();
            return false;
        }
        m_instance = std::move(*instance);
        if (auto ok = m_instance->initialize(); !ok) {
            *failure = ok.error().toString();
            return false;
        }
        m_forge = dynamic_cast<Forge *>(m_instance.get());
        return m_forge != nullptr;
    }

    void stop()
    {
        m_instance.reset();
        m_state.reset();
        m_tasks.reset();
        m_store.reset();
    }

    void pump()
    {
        if (!m_forge || (m_last.isValid() && m_last.elapsed() < 150))
            return;
        m_last.start();
        auto active = m_tasks->tasks(QStringLiteral("p"), {QStringLiteral("active")});
        if (!active) {
            m_events.append(QStringLiteral("cannot read the tasks: %1").arg(active.error().toString()));
            return;
        }
        for (const TaskRecord &t : std::as_const(*active)) {
            if (t.stage != QLatin1String("review") || m_opened.contains(t.id))
                continue;
            auto pr = Test::runCall(m_forge->createPullRequest({t.branch, QStringLiteral("main"), t.title, QString()}));
            // Conflict: it is open already (a person opened it before a crash of ours: none here).
            if (!pr && pr.error().code != ErrorCode::Conflict) {
                m_events.append(QStringLiteral("cannot open the pull request of task %1: %2").arg(t.id).arg(pr.error().toString()));
                continue;
            }
            m_opened.insert(t.id);
            (void)writeFile(m_shared + QStringLiteral("/pr-%1").arg(t.id), "open\n");
        }
        auto open = Test::runCall(m_forge->openPullRequests());
        if (!open) {
            m_events.append(QStringLiteral("cannot list the open pull requests: %1").arg(open.error().toString()));
            return;
        }
        for (const PullRequest &pr : std::as_const(*open)) {
            if (pr.headSha.isEmpty() || m_posted.contains(pr.headSha))
                continue;
            auto posted = Test::runCall(m_forge->postStatus(pr.headSha, StatusUpdate{QStringLiteral("ci/test"), StatusState::Success,
                                                                                      QStringLiteral("stand-in CI"), QString()}));
            if (posted)
                m_posted.insert(pr.headSha);
            else
                m_events.append(QStringLiteral("cannot post a status on %1: %2").arg(pr.headSha, posted.error().toString()));
        }
    }

    [[nodiscard]] bool started() const { return m_store != nullptr; }
    [[nodiscard]] TaskStore &tasks() { return *m_tasks; }
    [[nodiscard]] Store &store() { return *m_store; }
    [[nodiscard]] const QStringList &events() const { return m_events; }

private:
    QString m_shared;
    std::unique_ptr<Store> m_store;
    std::unique_ptr<TaskStore> m_tasks;
    std::unique_ptr<StateStore> m_state;
    Test::LoadedPlugin m_plugin;
    std::unique_ptr<PluginInstance> m_instance;
    Forge *m_forge = nullptr;
    QSet<qint64> m_opened;
    QSet<QString> m_posted;
    QStringList m_events;
    QElapsedTimer m_last;
};

class tst_NodeFlow : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void cleanup();
    void tasksFlowThroughKillAndStop_data();
    void tasksFlowThroughKillAndStop();

private:
    void note(const QString &event) { m_timeline.append({nowNs(), event}); }
    bool serve(Node &node);
    QJsonObject nodeState(const QString &name);
    Node *live(const QString &except = {});
    QString openRunNode(const QStringList &candidates);
    void printTimeline();

    std::unique_ptr<QTemporaryDir> m_shared;
    QString m_ledger;
    std::vector<Node> m_nodes;
    std::unique_ptr<ForgeStandIn> m_forge; // per row: what it opened and posted is that store's
    QList<std::pair<qint64, QString>> m_timeline;
    std::map<QString, QByteArray> m_logs; // node → its daemons' logs, one after the other
};

void tst_NodeFlow::cleanup()
{
    if (QTest::currentTestFailed())
        printTimeline();
    for (Node &n : m_nodes) {
        if (n.daemon && n.daemon->state() != QProcess::NotRunning) {
            ::kill(pid_t(n.daemon->processId()), SIGCONT);
            n.daemon->kill();
            n.daemon->waitForFinished(5000);
        }
    }
    m_nodes.clear();
    m_forge.reset();
    // Agents and hooks run detached under their supervisors: a run a failed test left going
    // (a reviewer waiting for its pull request) is ended by its pid from the ledger.
    if (m_shared) {
        for (const Interval &r : intervalsOf(readLedger(m_ledger))) {
            if (r.to == 0)
                ::kill(pid_t(r.start.pid), SIGKILL);
        }
    }
    m_timeline.clear();
    m_logs.clear();
    m_shared.reset();
}

bool tst_NodeFlow::serve(Node &node)
{
    node.daemon = std::make_unique<Test::DaemonProcess>(QStringLiteral(SLUICE_EXECUTABLE));
    if (!node.daemon->serve(node.dir))
        return false;
    node.pid = node.daemon->processId();
    note(QStringLiteral("node %1 serving (pid %2)").arg(node.name).arg(node.pid));
    return true;
}

Node *tst_NodeFlow::live(const QString &except)
{
    for (Node &n : m_nodes) {
        if (n.name != except && n.daemon && n.daemon->state() == QProcess::Running && ::kill(pid_t(n.pid), 0) == 0) {
            // Not a stopped one: its HTTP would not answer.
            QFile stat(QStringLiteral("/proc/%1/stat").arg(n.pid));
            if (stat.open(QIODevice::ReadOnly) && stat.readAll().contains(") T "))
                continue;
            return &n;
        }
    }
    return nullptr;
}

QJsonObject tst_NodeFlow::nodeState(const QString &name)
{
    Node *asked = live(name);
    if (!asked)
        return {};
    for (const QJsonValue &v : asked->daemon->request("GET", QStringLiteral("/api/nodes")).json().value(QLatin1String("nodes")).toArray()) {
        if (v.toObject().value(QLatin1String("name")).toString() == name)
            return v.toObject();
    }
    return {};
}

// A node among @p candidates with a run in progress (a start line without its end), or "".
QString tst_NodeFlow::openRunNode(const QStringList &candidates)
{
    for (const Interval &r : intervalsOf(readLedger(m_ledger))) {
        if (r.to == 0 && candidates.contains(r.start.node))
            return r.start.node;
    }
    return {};
}

void tst_NodeFlow::printTimeline()
{
    QList<std::pair<qint64, QString>> all = m_timeline;
    for (const LedgerLine &l : readLedger(m_ledger))
        all.append({l.ns, QStringLiteral("  ledger: %1").arg(l.text)});
    std::sort(all.begin(), all.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    const qint64 t0 = all.isEmpty() ? 0 : all.constFirst().first;
    QString out = QStringLiteral("timeline (ms since the first event):\n");
    for (const auto &[ns, what] : std::as_const(all))
        out += QStringLiteral("%1  %2\n").arg((ns - t0) / 1000000, 7).arg(what);
    // Per node: the runs the ledger shows and the jobs its daemons' logs say they claimed.
    for (Node &n : m_nodes) {
        if (n.daemon)
            m_logs[n.name] += n.daemon->log();
    }
    const QRegularExpression claimLine(QStringLiteral("job (\\d+) attempt (\\d+) runs stage (\\S+) of task (\\d+)"));
    for (const auto &[name, log] : m_logs) {
        QStringList claims;
        auto it = claimLine.globalMatch(QString::fromUtf8(log));
        while (it.hasNext()) {
            const auto m = it.next();
            claims.append(QStringLiteral("job %1/%2 (%3 of task %4)").arg(m.captured(1), m.captured(2), m.captured(3), m.captured(4)));
        }
        out += QStringLiteral("node %1: %2 claim(s): %3\n").arg(name).arg(claims.size()).arg(claims.join(QStringLiteral(", ")));
        // What its reaper, worker and engine said about takeovers, adoptions and fencing, and
        // its last lines.
        QList<QByteArray> lines = log.split('\n');
        QList<QByteArray> told;
        for (const QByteArray &line : std::as_const(lines)) {
            if (!line.contains(".debug") && (line.contains("reaper") || line.contains("take") || line.contains("adopt") || line.contains("fence")
                                             || line.contains("warning") || line.contains("critical")))
                told.append(line);
        }
        out += QStringLiteral("node %1: its takeovers, adoptions and warnings:\n").arg(name);
        for (qsizetype i = std::max<qsizetype>(0, told.size() - 80); i < told.size(); ++i)
            out += QStringLiteral("    %1\n").arg(QString::fromUtf8(told[i]));
        out += QStringLiteral("node %1: the last lines of its log:\n").arg(name);
        for (qsizetype i = std::max<qsizetype>(0, lines.size() - 15); i < lines.size(); ++i)
            out += QStringLiteral("    %1\n").arg(QString::fromUtf8(lines[i]));
    }
    if (m_forge && m_forge->events().size())
        out += QStringLiteral("forge stand-in: %1\n").arg(m_forge->events().join(QStringLiteral("; ")));
    if (!m_forge || !m_forge->started()) {
        qWarning().noquote() << out;
        return;
    }
    if (auto jobs = JobQueue(m_forge->store()).recent(200)) {
        out += QStringLiteral("jobs:\n");
        for (const JobRecord &j : std::as_const(*jobs))
            out += QStringLiteral("  job %1 task %2 %3 %4 attempt %5/%6 node %7 %8\n")
                       .arg(j.id).arg(j.taskId).arg(j.stage, j.status).arg(j.attempts).arg(j.maxAttempts).arg(j.claimedBy, j.lastError);
    }
    qWarning().noquote() << out;
}

void tst_NodeFlow::tasksFlowThroughKillAndStop_data()
{
    Test::addEngineRows();
}

void tst_NodeFlow::tasksFlowThroughKillAndStop()
{
    QFETCH(QString, engine);
    const int taskCount = envInt("SLUICE_NODEFLOW_TASKS", 6);
    const int rounds = envInt("SLUICE_NODEFLOW_ROUNDS", 1);
    QElapsedTimer elapsed;
    elapsed.start();

    m_shared = std::make_unique<QTemporaryDir>();
    QVERIFY(m_shared->isValid());
    const QString shared = m_shared->path();
    StoreSettings store;
    QVERIFY(Test::freshStore(engine, shared, &store));
    const QString repo = shared + QStringLiteral("/repo.git");
    QVERIFY(Test::seededBareRepository(repo));
    m_ledger = shared + QStringLiteral("/ledger");
    const QString deploys = shared + QStringLiteral("/deploys");

    // The agent: its start line, its work, its end line. The node and the job come from the
    // log path the host gave it (STATE_DIR/artifacts/p/task-N/agent-ROLE-jobJ-attemptA.log).
    const QByteArray ledgerLine = "\"$(date +%s%N) $$ $node $SLUICE_TASK_ID $SLUICE_STAGE $job\" >> '" + m_ledger.toUtf8() + "'";
    QVERIFY(writeFile(shared + QStringLiteral("/agent.sh"),
                      "#!/bin/sh\nset -eu\nrole=\"$1\"\n"
                      "job=$(basename \"$SLUICE_LOG\" | sed -n 's/.*-job\\([0-9]*\\)-attempt.*/\\1/p')\n"
                      "node=$(printf '%s' \"$SLUICE_LOG\" | sed -n 's|.*/node-\\([a-z]*\\)/state/.*|\\1|p')\n"
                      "echo start " + ledgerLine + "\n"
                      "case \"$role\" in\n"
                      "  developer)\n"
                      "    sleep 1\n"
                      "    echo \"work of task $SLUICE_TASK_ID\" > \"task-$SLUICE_TASK_ID.txt\"\n"
                      "    git add \"task-$SLUICE_TASK_ID.txt\"\n"
                      "    git diff --cached --quiet || git -c user.name=agent -c user.email=agent@example.org commit -q -m \"task $SLUICE_TASK_ID\"\n"
                      "    ;;\n"
                      "  reviewer)\n"
                      "    # Reviews happen on the pull request: done once it is open.\n"
                      "    while [ ! -e '" + shared.toUtf8() + "/pr-'\"$SLUICE_TASK_ID\" ]; do sleep 0.05; done\n"
                      "    sleep 0.5\n"
                      "    ;;\n"
                      "esac\n"
                      "echo end " + ledgerLine + "\n"));
    // The deploy hook (once: true): its start line, the deploy's record, its end line.
    QVERIFY(writeFile(shared + QStringLiteral("/deploy.sh"),
                      "#!/bin/sh\nset -eu\njob=\"$1\"\n"
                      "node=$(printf '%s' \"$2\" | sed -n 's|.*/node-\\([a-z]*\\)/state/.*|\\1|p')\n"
                      "echo start " + ledgerLine + "\n"
                      "sleep 1\n"
                      "echo \"deployed task $SLUICE_TASK_ID head $(git rev-parse HEAD) job $job node $node\" >> '" + deploys.toUtf8() + "'\n"
                      "echo end " + ledgerLine + "\n"));

    const QByteArray project =
        "id: p\n"
        "repository: {path: " + repo.toUtf8() + ", target_branch: main, forge: local}\n"
        "agent_launcher: agents\n"
        "stages:\n"
        "  - name: development\n    run: developer\n"
        "  - name: review\n    run: reviewer\n"
        "  - name: deploy\n    run: deploy-hook\n"
        "  - name: done\n"
        "edges:\n  - from: review\n    to: deploy\n    gates: [merge]\n"
        // A gate that fails blocks at once: nothing here may fail.
        "red_policy: {rollback_to: development, max_retries: 0}\n"
        // Attempts beyond the first are spent only by the disruptions the test makes (a job
        // run again after its node was taken over; one job may meet both the kill and the
        // stop): checked below from the jobs' history.
        "jobs: {max_attempts: 3, retry_backoff: 1s}\n"
        "instances:\n"
        "  local: {plugin: local}\n"
        "  agents:\n    plugin: process\n    settings:\n      command: [/bin/sh, " + shared.toUtf8() + "/agent.sh, \"{role}\", \"{task_file}\"]\n"
        "  developer: {plugin: agent, settings: {role: developer, timeout: 2m}}\n"
        "  reviewer: {plugin: agent, settings: {role: reviewer, timeout: 2m}}\n"
        "  merge:\n    plugin: merge\n    settings:\n      poll_interval: 100ms\n      wait_retry: 1s\n      checks_timeout: 30s\n"
        "      checks: {contexts: [ci/test]}\n"
        "  deploy-hook:\n    plugin: command\n    settings:\n      command: [/bin/sh, " + shared.toUtf8() + "/deploy.sh, \"{job}\", \"{artifacts}\"]\n"
        "      once: true\n      timeout: 2m\n";

    // Three nodes, as the quickstart's layout: a host file and projects/, state in state/.
    const auto nodeDir = [&](const QString &dirName, const QByteArray &name) {
        const QString dir = shared + QLatin1Char('/') + dirName;
        QDir().mkpath(dir + QStringLiteral("/projects"));
        const bool ok = writeFile(dir + QStringLiteral("/sluice.yaml"),
                                  "node: " + name + "\nstate_dir: state\nworker: {concurrency: 2, poll_interval: 200ms}\n"
                                  "http: {port: 0}\nreaper: {interval: 1s, node_timeout: 5s}\nreconciler: {interval: 1s, settle: 10s}\n"
                                  + Test::hostStoreSection(store))
                        && writeFile(dir + QStringLiteral("/projects/p.yaml"), project);
        return ok ? dir : QString();
    };
    for (const char *name : {"a", "b", "c"}) {
        Node n;
        n.name = QString::fromLatin1(name);
        n.dir = nodeDir(QStringLiteral("node-") + n.name, name);
        QVERIFY(!n.dir.isEmpty());
        m_nodes.push_back(std::move(n));
    }
    const Run checked = cli({QStringLiteral("check"), QStringLiteral("--config"), m_nodes[0].dir});
    QVERIFY2(checked.exitCode == 0, qPrintable(checked.out + checked.err));
    for (Node &n : m_nodes)
        QVERIFY(serve(n));
    QString failure;
    m_forge = std::make_unique<ForgeStandIn>();
    QVERIFY2(m_forge->start(store, repo, shared, &failure), qPrintable(failure));

    // A second daemon with a live node's name (its own state directory: another machine, or
    // a copy of the configuration) refuses to start, naming the holder.
    {
        const QString twin = nodeDir(QStringLiteral("twin-b"), "b");
        QVERIFY(!twin.isEmpty());
        const Run refused = cli({QStringLiteral("serve"), QStringLiteral("--config"), twin});
        QVERIFY2(refused.exitCode != 0, qPrintable(refused.err));
        QVERIFY2(refused.err.contains(QLatin1String("node 'b' is held by another sluice serve")), qPrintable(refused.err));
        QVERIFY2(refused.err.contains(QStringLiteral("pid %1 on host %2").arg(m_nodes[1].pid).arg(QSysInfo::machineHostName())),
                 qPrintable(refused.err));
        QVERIFY(!refused.err.contains(QLatin1String("ready: node")));
        QCOMPARE(m_nodes[1].daemon->state(), QProcess::Running);
    }

    QList<qint64> ids;
    for (int i = 1; i <= taskCount; ++i) {
        const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), m_nodes[i % 3].dir, QStringLiteral("--project"),
                                QStringLiteral("p"), QStringLiteral("--title"), QStringLiteral("task %1").arg(i), QStringLiteral("--json")});
        QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
        ids.append(QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong());
        QVERIFY(ids.constLast() > 0);
    }
    note(QStringLiteral("%1 task(s) submitted").arg(taskCount));

    const auto doneCount = [&] {
        m_forge->pump();
        auto done = m_forge->tasks().tasks(QStringLiteral("p"), {QStringLiteral("done")});
        return done ? int(done->size()) : -1;
    };
    const auto blocked = [&] {
        auto b = m_forge->tasks().tasks(QStringLiteral("p"), {QStringLiteral("blocked")});
        QStringList why;
        if (b) {
            for (const TaskRecord &t : std::as_const(*b))
                why.append(QStringLiteral("task %1 blocked: %2").arg(t.id).arg(t.blockedReason));
        }
        return why.join(QLatin1Char('\n'));
    };

    // The disruptions. Each round: kill -9 a node in the middle of a run; once the others took
    // it over, SIGSTOP another in the middle of a run past node_timeout, then resume it. (Rounds
    // after the first start the two again: a restart claims the name anew.)
    struct Stop {
        QString node;
        qint64 resumedNs = 0;
        qint64 resumedMs = 0;
        qint64 restartedNs = std::numeric_limits<qint64>::max(); // a later round starts it again
        qint64 restartedMs = std::numeric_limits<qint64>::max();
    };
    QList<Stop> stops;
    QStringList names{QStringLiteral("a"), QStringLiteral("b"), QStringLiteral("c")};
    for (int round = 1; round <= rounds; ++round) {
        std::shuffle(names.begin(), names.end(), *QRandomGenerator::global());
        QString victim;
        QTRY_VERIFY2_WITH_TIMEOUT(!(victim = openRunNode(names)).isEmpty() || doneCount() == taskCount, "no run to interrupt", 60000);
        QVERIFY2(!victim.isEmpty(), "every task was done before the kill: raise SLUICE_NODEFLOW_TASKS");
        Node &killed = *std::find_if(m_nodes.begin(), m_nodes.end(), [&](const Node &n) { return n.name == victim; });
        QCOMPARE(::kill(pid_t(killed.pid), SIGKILL), 0);
        QVERIFY(killed.daemon->waitForFinished(10000));
        note(QStringLiteral("kill -9 node %1 (pid %2), round %3").arg(victim).arg(killed.pid).arg(round));
        m_logs[victim] += killed.daemon->log();
        QTRY_COMPARE_WITH_TIMEOUT((m_forge->pump(), nodeState(victim).value(QLatin1String("state")).toString()), QStringLiteral("taken-over"), 30000);
        note(QStringLiteral("node %1 taken over by %2").arg(victim, nodeState(victim).value(QLatin1String("takenOverBy")).toString()));

        QStringList others = names;
        others.removeAll(victim);
        QString paused;
        QTRY_VERIFY2_WITH_TIMEOUT(!(paused = openRunNode(others)).isEmpty() || doneCount() == taskCount, "no run to interrupt", 60000);
        QVERIFY2(!paused.isEmpty(), "every task was done before the stop: raise SLUICE_NODEFLOW_TASKS");
        Node &stopped = *std::find_if(m_nodes.begin(), m_nodes.end(), [&](const Node &n) { return n.name == paused; });
        QCOMPARE(::kill(pid_t(stopped.pid), SIGSTOP), 0);
        note(QStringLiteral("SIGSTOP node %1 (pid %2)").arg(paused).arg(stopped.pid));
        QTRY_COMPARE_WITH_TIMEOUT((m_forge->pump(), nodeState(paused).value(QLatin1String("state")).toString()), QStringLiteral("taken-over"), 30000);
        note(QStringLiteral("node %1 taken over by %2").arg(paused, nodeState(paused).value(QLatin1String("takenOverBy")).toString()));
        Stop stop{paused, nowNs(), QDateTime::currentMSecsSinceEpoch()};
        QCOMPARE(::kill(pid_t(stopped.pid), SIGCONT), 0);
        note(QStringLiteral("SIGCONT node %1").arg(paused));
        stops.append(stop);
        // It finds its claim gone at its next heartbeat and ends: 75, taken over.
        QTRY_VERIFY_WITH_TIMEOUT((m_forge->pump(), stopped.daemon->state() == QProcess::NotRunning), 30000);
        note(QStringLiteral("node %1 exited with %2").arg(paused).arg(stopped.daemon->exitCode()));
        m_logs[paused] += stopped.daemon->log();
        QCOMPARE(stopped.daemon->exitStatus(), QProcess::NormalExit);
        QCOMPARE(stopped.daemon->exitCode(), 75);
        QVERIFY2(stopped.daemon->log().contains("taken over by"), stopped.daemon->log().constData());

        if (round < rounds) {
            QVERIFY(serve(killed));
            stops.last().restartedNs = nowNs();
            stops.last().restartedMs = QDateTime::currentMSecsSinceEpoch();
            QVERIFY(serve(stopped));
        }
    }

    QTRY_VERIFY2_WITH_TIMEOUT(doneCount() == taskCount || !blocked().isEmpty(), "not every task is done", 120000);
    QVERIFY2(blocked().isEmpty(), qPrintable(blocked()));
    QCOMPARE(doneCount(), taskCount);

    // No job failed; every attempt beyond a job's first was a takeover's or a restart's.
    auto jobs = JobQueue(m_forge->store()).recent(100000);
    QVERIFY(jobs);
    for (const JobRecord &j : std::as_const(*jobs)) {
        QVERIFY2(j.status == QLatin1String("done"), qPrintable(QStringLiteral("job %1 is %2: %3").arg(j.id).arg(j.status, j.lastError)));
        if (j.attempts > 1) {
            auto history = m_forge->tasks().history(j.taskId);
            QVERIFY(history);
            bool takenOver = false;
            for (const AuditRecord &a : std::as_const(*history))
                takenOver = takenOver || a.action == QLatin1String("take-over") || a.action.startsWith(QLatin1String("recover"));
            QVERIFY2(takenOver, qPrintable(QStringLiteral("job %1 took %2 attempts with no takeover of its task: %3").arg(j.id).arg(j.attempts).arg(j.lastError)));
        }
    }

    // The ledger: every run ended, and none ran beside another of its job or its task's stage.
    const QList<LedgerLine> ledger = readLedger(m_ledger);
    const QList<Interval> runs = intervalsOf(ledger);
    for (const Interval &r : runs)
        QVERIFY2(r.to != 0, qPrintable(QStringLiteral("a run never ended: %1").arg(r.start.text)));
    for (qsizetype i = 0; i < runs.size(); ++i) {
        for (qsizetype k = i + 1; k < runs.size(); ++k) {
            const Interval &x = runs[i];
            const Interval &y = runs[k];
            const bool sameWork = x.start.job == y.start.job || (x.start.task == y.start.task && x.start.stage == y.start.stage);
            const bool overlap = x.from < y.to && y.from < x.to;
            QVERIFY2(!(sameWork && overlap), qPrintable(QStringLiteral("two runs at once:\n  %1\n  %2").arg(x.start.text, y.start.text)));
        }
    }

    // Each task: merged into main once, its deploy hook started once and deployed once.
    const QStringList merges =
        Test::runGit({QStringLiteral("--git-dir"), repo, QStringLiteral("rev-list"), QStringLiteral("--merges"), QStringLiteral("main")})
            .out.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QFile deployFile(deploys);
    QVERIFY(deployFile.open(QIODevice::ReadOnly));
    const QString deployed = QString::fromUtf8(deployFile.readAll());
    for (const qint64 id : std::as_const(ids)) {
        const QString file = QStringLiteral("task-%1.txt").arg(id);
        int merged = 0;
        for (const QString &m : merges) {
            const auto added = Test::runGit({QStringLiteral("--git-dir"), repo, QStringLiteral("diff"), QStringLiteral("--name-only"),
                                             m + QStringLiteral("^1"), m});
            merged += added.out.split(QLatin1Char('\n')).contains(file) ? 1 : 0;
        }
        QVERIFY2(merged == 1, qPrintable(QStringLiteral("task %1 merged %2 time(s)").arg(id).arg(merged)));
        const int hooks = int(std::count_if(ledger.cbegin(), ledger.cend(), [id](const LedgerLine &l) {
            return l.start && l.task == id && l.stage == QLatin1String("deploy");
        }));
        QVERIFY2(hooks == 1, qPrintable(QStringLiteral("task %1: its deploy hook started %2 time(s)").arg(id).arg(hooks)));
        QCOMPARE(deployed.count(QRegularExpression(QStringLiteral("^deployed task %1 ").arg(id), QRegularExpression::MultilineOption)), 1);
    }
    QCOMPARE(merges.size(), taskCount);

    // The resumed nodes did nothing with the work taken from them: no run started, no job
    // claimed or completed in their name between their resume and their next start (a later
    // round starts them again, as a new daemon that claims the name anew).
    for (const Stop &s : std::as_const(stops)) {
        for (const LedgerLine &l : ledger)
            QVERIFY2(!(l.start && l.node == s.node && l.ns > s.resumedNs && l.ns < s.restartedNs),
                     qPrintable(QStringLiteral("node %1 started a run after it was resumed: %2").arg(s.node, l.text)));
        for (const JobRecord &j : std::as_const(*jobs)) {
            if (j.claimedBy != s.node)
                continue;
            const qint64 claimed = j.claimedAt.toMSecsSinceEpoch();
            const qint64 finished = j.finishedAt.isValid() ? j.finishedAt.toMSecsSinceEpoch() : 0;
            QVERIFY2(!(claimed > s.resumedMs && claimed < s.restartedMs),
                     qPrintable(QStringLiteral("node %1 claimed job %2 after it was resumed").arg(s.node).arg(j.id)));
            QVERIFY2(!(finished > s.resumedMs && finished < s.restartedMs),
                     qPrintable(QStringLiteral("node %1 completed job %2 after it was resumed").arg(s.node).arg(j.id)));
        }
    }

    // The summary (tests/bench/nodes.sh prints it).
    QMap<QString, int> runsPerNode;
    for (const Interval &r : runs)
        ++runsPerNode[r.start.node];
    QStringList perNode;
    for (auto it = runsPerNode.cbegin(); it != runsPerNode.cend(); ++it)
        perNode.append(QStringLiteral("%1: %2 run(s)").arg(it.key()).arg(it.value()));
    int extraAttempts = 0;
    for (const JobRecord &j : std::as_const(*jobs))
        extraAttempts += j.attempts - 1;
    qInfo().noquote() << QStringLiteral("nodeflow %1: %2 task(s) done in %3 ms, %4 round(s) (kill -9 + SIGSTOP/SIGCONT each), "
                                        "%5 job(s), %6 attempt(s) spent by takeovers, %7 run(s) in the ledger (%8), %9 merge(s), "
                                        "%10 deploy(s); no overlap, no run after a resume")
                             .arg(engine).arg(taskCount).arg(elapsed.elapsed()).arg(rounds).arg(jobs->size()).arg(extraAttempts)
                             .arg(runs.size()).arg(perNode.join(QStringLiteral(", "))).arg(merges.size())
                             .arg(deployed.count(QLatin1Char('\n')));
}

QTEST_GUILESS_MAIN(tst_NodeFlow)
#include "tst_nodeflow.moc"
