// SPDX-License-Identifier: Apache-2.0
// The merge gate as the host runs it: the real plugin on real git repositories (a bare
// "forge" repository, a clone with one worktree per task), the real gitea and github
// connectors against the loopback fake forge (in its Gitea and GitHub flavours) or the real
// local forge, and a real SQLite store for the progress
// markers and the merge leases. A small CI stand-in posts a status on every new branch head.
#include "fakeforge.h"
#include "forgecases.h"
#include "mergetestsupport.h"

#include <sluice/forge.h>
#include <sluice/testsupport.h>

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>
#include <QThread>
#include <QTimer>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "merge-gate-forge-token-7770123";
const QString Context = QStringLiteral("ci/test");

// The state store of the gate, watched: the test learns each progress marker as it is written.
class WatchedState final : public StateStore
{
public:
    explicit WatchedState(StateStore &inner)
        : m_inner(inner)
    {
    }
    Result<std::optional<QByteArray>> value(const QString &key) override { return m_inner.value(key); }
    Result<void> setValue(const QString &key, const QByteArray &value) override
    {
        if (key.startsWith(QLatin1String("progress/")))
            steps.append(QJsonDocument::fromJson(value).object().value(QStringLiteral("step")).toString());
        return m_inner.setValue(key, value);
    }
    Result<void> remove(const QString &key) override { return m_inner.remove(key); }

    QStringList steps;

private:
    StateStore &m_inner;
};

} // namespace

class tst_MergeGate : public QObject
{
    Q_OBJECT

private:
    LoadedPlugin m_merge;
    LoadedPlugin m_gitea;
    LoadedPlugin m_github;
    LoadedPlugin m_local;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<TemporaryStore> m_store;
    std::unique_ptr<StateStore> m_state;
    std::unique_ptr<WatchedState> m_watched;
    std::unique_ptr<LeaseService> m_leases;
    std::unique_ptr<FakeForge> m_fake;
    std::unique_ptr<PluginInstance> m_forge;
    std::unique_ptr<StateStore> m_forgeState;

    QString bare() const { return m_dir->filePath(QStringLiteral("forge.git")); }
    QString clone() const { return m_dir->filePath(QStringLiteral("clone")); }
    QString worktree(const QString &branch) const { return m_dir->filePath(QStringLiteral("wt-") + branch); }
    QString pushLog() const { return m_dir->filePath(QStringLiteral("pushes.log")); }
    QString stateDir() const { return m_dir->filePath(QStringLiteral("state")); }
    // The host's worktree of a task's branch, where the gate rebases.
    QString scratch(qint64 taskId) const { return hostRepository(clone(), QStringLiteral("main"), QStringLiteral("origin"), stateDir(), QStringLiteral("widget"))->scratchPath(taskId); }

    ProjectInfo project() const
    {
        ProjectInfo p = fakeProject(QStringLiteral("widget"));
        p.repository = clone();
        return p;
    }

    QString sha(const QString &ref) const
    {
        return runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("rev-parse"), QStringLiteral("-q"), QStringLiteral("--verify"), ref}).out;
    }

    bool isAncestor(const QString &a, const QString &b) const
    {
        return runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), a, b}).code == 0;
    }

    // Pushes of task branches the forge repository accepted (its post-receive hook logs them).
    QStringList branchPushes() const
    {
        QFile f(pushLog());
        if (!f.open(QIODevice::ReadOnly))
            return {};
        QStringList out;
        for (const QString &line : QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts)) {
            if (!line.endsWith(QLatin1String("refs/heads/main")))
                out.append(line);
        }
        return out;
    }

    // A commit on main in the forge repository, made from a scratch clone.
    QString advanceMain(const QString &file, const QByteArray &content)
    {
        const QString scratch = m_dir->filePath(QStringLiteral("scratch"));
        if (!QDir(scratch).exists())
            runGit({QStringLiteral("clone"), QStringLiteral("-q"), bare(), scratch});
        runGit({QStringLiteral("pull"), QStringLiteral("-q"), QStringLiteral("--ff-only"), QStringLiteral("origin"), QStringLiteral("main")}, scratch);
        writeFile(QDir(scratch).filePath(file), content);
        runGit({QStringLiteral("add"), file}, scratch);
        runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("main: ") + file}, scratch);
        runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, scratch);
        return sha(QStringLiteral("refs/heads/main"));
    }

    // A task branch in its own worktree of the clone, from the forge's main, one commit, pushed.
    QString startTask(const QString &branch, const QString &file, const QByteArray &content)
    {
        runGit({QStringLiteral("fetch"), QStringLiteral("-q"), QStringLiteral("origin")}, clone());
        runGit({QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), QStringLiteral("-b"), branch, worktree(branch), QStringLiteral("origin/main")}, clone());
        writeFile(QDir(worktree(branch)).filePath(file), content);
        runGit({QStringLiteral("add"), file}, worktree(branch));
        runGit({QStringLiteral("commit"), QStringLiteral("-qm"), branch + QStringLiteral(": ") + file}, worktree(branch));
        runGit({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), branch}, worktree(branch));
        // The task branch stays in the project's repository, checked out nowhere, as the host
        // leaves it after taking it from a task's working copy.
        runGit({QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), worktree(branch)}, clone());
        QFile::remove(pushLog()); // only the gate's pushes count
        return sha(QStringLiteral("refs/heads/") + branch);
    }

    GateRequest request(qint64 taskId, const QString &branch, qint64 pull)
    {
        GateRequest r;
        r.task.id = taskId;
        r.task.projectId = QStringLiteral("widget");
        r.task.branch = branch;
        r.task.pullRequest = pull;
        r.task.headSha = sha(QStringLiteral("refs/heads/") + branch);
        r.fromStage = QStringLiteral("review");
        r.toStage = QStringLiteral("done");
        return r;
    }

    Result<std::unique_ptr<PluginInstance>> gate(const QByteArray &extra = "lease_wait: 0s\n")
    {
        const QByteArray settings = "remote: origin\npoll_interval: 20ms\n" + QByteArray(extra.contains("checks_timeout") ? "" : "checks_timeout: 60s\n")
            + "checks: {contexts: [ci/test]}\n" + extra;
        return createInstance(m_merge, settings, project(), m_watched.get(), qobject_cast<Forge *>(m_forge.get()), m_leases.get(),
                              hostRepository(clone(), QStringLiteral("main"), QStringLiteral("origin"), stateDir(), QStringLiteral("widget")));
    }

    // The fake forge in @p flavor, with the matching real connector (gitea or github) in front of it.
    void useFakeForge(FakeForge::Flavor flavor = FakeForge::Flavor::Gitea)
    {
        m_fake = std::make_unique<FakeForge>(flavor);
        QVERIFY(m_fake->start());
        m_fake->setToken(Token);
        const QString repo = bare();
        m_fake->setHeadResolver([repo](const QString &branch) {
            return runGit({QStringLiteral("--git-dir"), repo, QStringLiteral("rev-parse"), QStringLiteral("-q"), QStringLiteral("--verify"), QStringLiteral("refs/heads/") + branch}).out;
        });
        const QString tokenFile = m_dir->filePath(QStringLiteral("token"));
        QVERIFY(writeFile(tokenFile, Token));
        auto forge = createInstance(flavor == FakeForge::Flavor::GitHub ? m_github : m_gitea, "url: " + m_fake->url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                 + tokenFile.toUtf8() + "}\nretry_backoff: 10ms\n");
        QVERIFY2(forge, qPrintable(forge ? QString() : forge.error().toString()));
        m_forge = std::move(*forge);
        QVERIFY(m_forge->initialize());
    }

    void useLocalForge()
    {
        m_forgeState = m_store->state(QStringLiteral("widget"), QStringLiteral("forge"));
        ProjectInfo p = project();
        p.repository = bare();
        auto forge = createInstance(m_local, QByteArray(), p, m_forgeState.get());
        QVERIFY2(forge, qPrintable(forge ? QString() : forge.error().toString()));
        m_forge = std::move(*forge);
        QVERIFY(m_forge->initialize());
    }

    std::unique_ptr<MiniCi> fakeCi()
    {
        FakeForge *fake = m_fake.get();
        return std::make_unique<MiniCi>(bare(), [fake](const QString &sha, const QString &state) { fake->addStatus(sha, Context, state); });
    }

    int mergeCalls() const
    {
        int n = 0;
        for (const FakeRequest &r : m_fake->requests()) {
            if ((r.method == "POST" || r.method == "PUT") && r.path.endsWith(QLatin1String("/merge")))
                ++n;
        }
        return n;
    }

    // Whether another task could take the target's merge lease now (then gives it back).
    bool leaseFree()
    {
        const QString resource = QStringLiteral("merge:widget:main");
        auto hold = m_leases->acquire(resource, 999, std::chrono::seconds(30));
        if (!hold || !hold->held)
            return false;
        return m_leases->release(resource, 999).value_or(false);
    }

private Q_SLOTS:
    void initTestCase()
    {
        auto merge = loadPlugin(QStringLiteral(MERGE_PLUGIN_FILE));
        QVERIFY2(merge, qPrintable(merge ? QString() : merge.error().toString()));
        m_merge = *merge;
        auto gitea = loadPlugin(QStringLiteral(GITEA_PLUGIN_FILE));
        QVERIFY(gitea);
        m_gitea = *gitea;
        auto github = loadPlugin(QStringLiteral(GITHUB_PLUGIN_FILE));
        QVERIFY(github);
        m_github = *github;
        auto local = loadPlugin(QStringLiteral(LOCAL_PLUGIN_FILE));
        QVERIFY(local);
        m_local = *local;
    }

    void init()
    {
        m_dir = std::make_unique<QTemporaryDir>();
        QVERIFY(m_dir->isValid());
        m_store = std::make_unique<TemporaryStore>();
        QVERIFY2(m_store->isValid(), qPrintable(m_store->error()));
        m_state = m_store->state(QStringLiteral("widget"), QStringLiteral("merge"));
        m_watched = std::make_unique<WatchedState>(*m_state);
        m_leases = m_store->leases();
        // The forge's repository, with a hook that logs every accepted push.
        QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), bare()}).code, 0);
        const QString hook = QDir(bare()).filePath(QStringLiteral("hooks/post-receive"));
        QVERIFY(writeFile(hook, "#!/bin/sh\nwhile read old new ref; do echo \"$new $ref\" >> '" + pushLog().toUtf8() + "'; done\n"));
        QVERIFY(QFile::setPermissions(hook, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner));
        const QString seed = m_dir->filePath(QStringLiteral("seed"));
        runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main"), seed});
        QVERIFY(writeFile(QDir(seed).filePath(QStringLiteral("shared.txt")), "one\ntwo\nthree\n"));
        runGit({QStringLiteral("add"), QStringLiteral(".")}, seed);
        runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("initial")}, seed);
        QCOMPARE(runGit({QStringLiteral("push"), QStringLiteral("-q"), bare(), QStringLiteral("main")}, seed).code, 0);
        QCOMPARE(runGit({QStringLiteral("clone"), QStringLiteral("-q"), bare(), clone()}).code, 0);
    }

    void cleanup()
    {
        m_forge.reset();
        m_fake.reset();
        m_forgeState.reset();
        m_leases.reset();
        m_watched.reset();
        m_state.reset();
        m_store.reset();
        m_dir.reset();
    }

    void rebasesRetestsAndMerges_data()
    {
        // The forge flavours a test runs against: every row of a data-driven test exists once per flavour.
        addForgeFlavorRows();
    }

    // Behind its target: rebased in the worktree, pushed, re-tested on the new head, merged once.
    void rebasesRetestsAndMerges()
    {
        QFETCH(int, flavor);
        useFakeForge(flavorOf(flavor));
        const QString before = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), before});
        const QString main = advanceMain(QStringLiteral("m.txt"), "m\n");
        auto ci = fakeCi();
        auto instance = gate();
        QVERIFY2(instance, qPrintable(instance ? QString() : instance.error().toString()));
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QVERIFY2(v.result() == GateVerdict::Result::Pass, qPrintable(v.reason()));
        const QString after = sha(QStringLiteral("refs/heads/feature"));
        QVERIFY(after != before);
        QVERIFY(isAncestor(main, after)); // rebased onto the new main
        QCOMPARE(v.evidence().value(QStringLiteral("head")).toString(), after);
        QCOMPARE(branchPushes().size(), 1);
        QCOMPARE(mergeCalls(), 1);
        QVERIFY(m_fake->pullRequests().value(0).merged);
        QCOMPARE(m_watched->steps.last(), QStringLiteral("merged"));
        QVERIFY(leaseFree());
        QCOMPARE(m_fake->mergesApplied(), 1);
        // The merge request carried the rebased head it was checked on (Gitea's and GitHub's names for it).
        const QString expectedKey = flavorOf(flavor) == FakeForge::Flavor::GitHub ? QStringLiteral("sha") : QStringLiteral("head_commit_id");
        int merges = 0;
        for (const FakeRequest &r : m_fake->requests()) {
            if ((r.method == "POST" || r.method == "PUT") && r.path.endsWith(QLatin1String("/merge"))) {
                QCOMPARE(QJsonDocument::fromJson(r.body).object().value(expectedKey).toString(), after);
                ++merges;
            }
        }
        QCOMPARE(merges, 1);
    }

    // A crash anywhere: the gate run and its instance are destroyed after a step, a new
    // instance re-drives: no second rebase, push or merge, and the lease is released.
    void crashAndRedrive_data()
    {
        QTest::addColumn<QString>("crashAfter");
        QTest::addColumn<qint64>("pull"); // 0: the task does not record its pull request; found by branch
        addForgeFlavorColumn();
        for (const auto &[name, flavor] : forgeFlavors()) {
            QTest::addRow("%s: after the rebase", name) << QStringLiteral("rebased") << qint64(1) << int(flavor);
            QTest::addRow("%s: after the push", name) << QStringLiteral("pushed") << qint64(1) << int(flavor);
            QTest::addRow("%s: after the merge call", name) << QStringLiteral("merge-call") << qint64(1) << int(flavor);
            QTest::addRow("%s: after the merge call, pull request found by branch", name) << QStringLiteral("merge-call") << qint64(0) << int(flavor);
        }
    }

    void crashAndRedrive()
    {
        QFETCH(QString, crashAfter);
        QFETCH(qint64, pull);
        QFETCH(int, flavor);
        useFakeForge(flavorOf(flavor));
        const QString before = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), before});
        const QString main = advanceMain(QStringLiteral("m.txt"), "m\n");
        auto ci = fakeCi();
        if (crashAfter == QLatin1String("pushed"))
            ci->state.clear(); // CI is slow: the gate is waiting for the checks when it dies

        auto instance = gate();
        QVERIFY(instance);
        std::unique_ptr<GateRun> run = qobject_cast<Gate *>(instance->get())->evaluate(request(1, QStringLiteral("feature"), pull));
        QVERIFY(run);
        run->start();
        auto crashed = [&] {
            if (crashAfter == QLatin1String("merge-call"))
                return m_fake->pullRequests().value(0).merged;
            return m_watched->steps.contains(crashAfter);
        };
        QDeadlineTimer deadline(60000);
        while (!crashed() && !run->isFinished() && !deadline.hasExpired()) {
            QCoreApplication::processEvents(QEventLoop::AllEvents);
            QThread::msleep(1);
        }
        QVERIFY2(!run->isFinished(), qPrintable(run->isFinished() ? qobject_cast<GateRun *>(run.get())->verdict().reason() : QString()));
        QVERIFY(crashed());
        run.reset(); // the crash: the run and the instance are gone, nothing else is told
        instance->reset();
        if (crashAfter != QLatin1String("merge-call"))
            QVERIFY(!leaseFree()); // the dead run's hold stays until the re-drive (or the reaper)

        ci->state = QStringLiteral("success");
        auto again = gate();
        QVERIFY(again);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(again->get()), request(1, QStringLiteral("feature"), pull), std::chrono::seconds(60));
        QVERIFY2(v.result() == GateVerdict::Result::Pass, qPrintable(v.reason()));
        QCOMPARE(mergeCalls(), 1);
        QCOMPARE(m_fake->mergesApplied(), 1);
        QVERIFY(m_fake->pullRequests().value(0).merged);
        const QString after = sha(QStringLiteral("refs/heads/feature"));
        QVERIFY(isAncestor(main, after));
        QVERIFY2(branchPushes().size() == 1, qPrintable(branchPushes().join(QLatin1Char(';'))));
        QCOMPARE(m_watched->steps.count(QStringLiteral("rebased")), 1); // the re-drive did not rebase again
        QVERIFY(leaseFree());
    }

    // The host's deadline cancels a run waiting for CI: an error, nothing merged; the next
    // evaluation finishes the merge.
    void hostDeadlineCancelsTheRun()
    {
        useFakeForge();
        const QString before = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), before});
        advanceMain(QStringLiteral("m.txt"), "m\n");
        auto ci = fakeCi();
        ci->state.clear();
        auto instance = gate();
        QVERIFY(instance);
        auto *g = qobject_cast<Gate *>(instance->get());
        const GateVerdict cut = evaluateGate(*g, request(1, QStringLiteral("feature"), 1), std::chrono::milliseconds(1500));
        QCOMPARE(cut.result(), GateVerdict::Result::Error);
        QVERIFY2(cut.reason().contains(QLatin1String("timed out")), qPrintable(cut.reason()));
        QCOMPARE(mergeCalls(), 0);
        ci->state = QStringLiteral("success");
        const GateVerdict v = evaluateGate(*g, request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QVERIFY2(v.result() == GateVerdict::Result::Pass, qPrintable(v.reason()));
        QCOMPARE(mergeCalls(), 1);
        QCOMPARE(branchPushes().size(), 1);
        QVERIFY(leaseFree());
    }

    // Two tasks, one target, the local forge: one merges while the other waits for the lease,
    // then the other rebases onto the merged target, is re-tested and merges too.
    void leaseContentionLocalForge()
    {
        useLocalForge();
        auto *forge = qobject_cast<Forge *>(m_forge.get());
        startTask(QStringLiteral("task-a"), QStringLiteral("a.txt"), "a\n");
        startTask(QStringLiteral("task-b"), QStringLiteral("b.txt"), "b\n");
        auto prA = runCall(forge->createPullRequest({QStringLiteral("task-a"), QString(), QStringLiteral("A"), QString()}));
        auto prB = runCall(forge->createPullRequest({QStringLiteral("task-b"), QString(), QStringLiteral("B"), QString()}));
        QVERIFY(prA && prB);
        MiniCi ci(bare(), [forge](const QString &sha, const QString &state) {
            (void)runCall(forge->postStatus(sha, StatusUpdate{Context, state == QLatin1String("success") ? StatusState::Success : StatusState::Failure, {}, {}}));
        });

        auto instance = gate("lease_wait: 60s\n");
        QVERIFY(instance);
        auto *g = qobject_cast<Gate *>(instance->get());
        std::unique_ptr<GateRun> runA = g->evaluate(request(1, QStringLiteral("task-a"), prA->number));
        std::unique_ptr<GateRun> runB = g->evaluate(request(2, QStringLiteral("task-b"), prB->number));
        runA->start();
        runB->start();
        QTRY_VERIFY_WITH_TIMEOUT(runA->isFinished() && runB->isFinished(), 90000);
        QVERIFY2(runA->verdict().result() == GateVerdict::Result::Pass, qPrintable(runA->verdict().reason()));
        QVERIFY2(runB->verdict().result() == GateVerdict::Result::Pass, qPrintable(runB->verdict().reason()));

        // Both changes are on main; exactly one of the branches had to be rebased, onto the other's merge.
        const QString main = sha(QStringLiteral("refs/heads/main"));
        const QString a = sha(QStringLiteral("refs/heads/task-a"));
        const QString b = sha(QStringLiteral("refs/heads/task-b"));
        QVERIFY(isAncestor(a, main) && isAncestor(b, main));
        const bool aFirst = runA->verdict().evidence().value(QStringLiteral("previousHead")) == runA->verdict().evidence().value(QStringLiteral("head"));
        const QString second = aFirst ? b : a;
        const QString first = aFirst ? a : b;
        QVERIFY(isAncestor(first, second)); // the second was rebased onto the target holding the first
        // ... after waiting for the first one's lease.
        const GateVerdict &later = aFirst ? runB->verdict() : runA->verdict();
        QCOMPARE(later.evidence().value(QStringLiteral("leaseWaitedFor")).toVariant().toLongLong(), aFirst ? qint64(1) : qint64(2));
        QVERIFY(later.reason().startsWith(QLatin1String("merged pull request")));
        QCOMPARE(branchPushes().size(), 1);  // only the second needed a push
        QVERIFY(leaseFree());
    }

    // The quickstart's layout: the project's repository is the local forge's bare repository
    // itself (remote empty), so the rebase moves the branch the forge sees; nothing is pushed.
    void localForgeWorktreeOfTheBareRepository()
    {
        useLocalForge();
        auto *forge = qobject_cast<Forge *>(m_forge.get());
        const QString wt = worktree(QStringLiteral("task-q"));
        QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), QStringLiteral("-b"),
                         QStringLiteral("task-q"), wt, QStringLiteral("main")}).code, 0);
        QVERIFY(writeFile(QDir(wt).filePath(QStringLiteral("q.txt")), "q\n"));
        runGit({QStringLiteral("add"), QStringLiteral("q.txt")}, wt);
        QCOMPARE(runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("q")}, wt).code, 0);
        QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), wt}).code, 0);
        const QString before = sha(QStringLiteral("refs/heads/task-q"));
        auto pr = runCall(forge->createPullRequest({QStringLiteral("task-q"), QString(), QStringLiteral("Q"), QString()}));
        QVERIFY(pr);
        const QString main = advanceMain(QStringLiteral("m.txt"), "m\n");
        MiniCi ci(bare(), [forge](const QString &sha, const QString &) {
            (void)runCall(forge->postStatus(sha, StatusUpdate{Context, StatusState::Success, {}, {}}));
        });
        auto instance = createInstance(m_merge, "poll_interval: 20ms\nchecks_timeout: 60s\nchecks: {contexts: [ci/test]}\n", project(),
                                       m_watched.get(), forge, m_leases.get(),
                                       hostRepository(bare(), QStringLiteral("main"), QString(), stateDir(), QStringLiteral("widget")));
        QVERIFY2(instance, qPrintable(instance ? QString() : instance.error().toString()));
        GateRequest r = request(7, QStringLiteral("task-q"), pr->number);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), r, std::chrono::seconds(60));
        QVERIFY2(v.result() == GateVerdict::Result::Pass, qPrintable(v.reason()));
        const QString after = sha(QStringLiteral("refs/heads/task-q"));
        QVERIFY(after != before);
        QVERIFY(isAncestor(main, after));
        QVERIFY(isAncestor(after, sha(QStringLiteral("refs/heads/main"))));
        QVERIFY(branchPushes().isEmpty());
        QVERIFY(leaseFree());
    }

    // Several nodes on one machine share the local forge's repository: a node stopped (or
    // killed) after its rebase moved the task branch but before it recorded that, leaves the
    // branch rebased with no record. The next evaluation — another node's, its own scratch
    // worktree — keeps that rebase of the recorded head (a rebase again would make new commits
    // for the same change) and merges it once; a branch moved to anything else stays an error.
    void localForgeBranchRebasedElsewhereWithoutARecord_data()
    {
        QTest::addColumn<bool>("aRebase");
        QTest::newRow("rebased onto main: kept") << true;
        QTest::newRow("another commit on top: error") << false;
    }
    void localForgeBranchRebasedElsewhereWithoutARecord()
    {
        QFETCH(bool, aRebase);
        useLocalForge();
        auto *forge = qobject_cast<Forge *>(m_forge.get());
        const QString wt = worktree(QStringLiteral("task-r"));
        QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), QStringLiteral("-b"),
                         QStringLiteral("task-r"), wt, QStringLiteral("main")}).code, 0);
        QVERIFY(writeFile(QDir(wt).filePath(QStringLiteral("r.txt")), "r\n"));
        runGit({QStringLiteral("add"), QStringLiteral("r.txt")}, wt);
        QCOMPARE(runGit({QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
                         QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("r")}, wt).code, 0);
        auto pr = runCall(forge->createPullRequest({QStringLiteral("task-r"), QString(), QStringLiteral("R"), QString()}));
        QVERIFY(pr);
        GateRequest r = request(8, QStringLiteral("task-r"), pr->number); // the recorded head: the agent's commit
        const QString main = advanceMain(QStringLiteral("m.txt"), "m\n");
        // What the other node left: the branch moved, nothing recorded.
        if (aRebase) {
            QCOMPARE(runGit({QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
                             QStringLiteral("rebase"), QStringLiteral("-q"), main}, wt).code, 0);
        } else {
            QVERIFY(writeFile(QDir(wt).filePath(QStringLiteral("extra.txt")), "not judged\n"));
            runGit({QStringLiteral("add"), QStringLiteral("extra.txt")}, wt);
            QCOMPARE(runGit({QStringLiteral("-c"), QStringLiteral("user.name=t"), QStringLiteral("-c"), QStringLiteral("user.email=t@t"),
                             QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("extra")}, wt).code, 0);
        }
        QCOMPARE(runGit({QStringLiteral("--git-dir"), bare(), QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), wt}).code, 0);
        const QString moved = sha(QStringLiteral("refs/heads/task-r"));
        QVERIFY(moved != r.task.headSha);
        MiniCi ci(bare(), [forge](const QString &sha, const QString &) {
            (void)runCall(forge->postStatus(sha, StatusUpdate{Context, StatusState::Success, {}, {}}));
        });
        auto instance = createInstance(m_merge, "poll_interval: 20ms\nchecks_timeout: 60s\nchecks: {contexts: [ci/test]}\n", project(),
                                       m_watched.get(), forge, m_leases.get(),
                                       hostRepository(bare(), QStringLiteral("main"), QString(), stateDir(), QStringLiteral("widget")));
        QVERIFY2(instance, qPrintable(instance ? QString() : instance.error().toString()));
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), r, std::chrono::seconds(60));
        if (!aRebase) {
            QCOMPARE(v.result(), GateVerdict::Result::Error);
            QVERIFY2(v.reason().contains(QLatin1String("not at the task's recorded head")), qPrintable(v.reason()));
            QCOMPARE(sha(QStringLiteral("refs/heads/main")), main);
            return;
        }
        QVERIFY2(v.result() == GateVerdict::Result::Pass, qPrintable(v.reason()));
        // The other node's rebase is what was merged: not rebased again.
        QCOMPARE(sha(QStringLiteral("refs/heads/task-r")), moved);
        QVERIFY(isAncestor(moved, sha(QStringLiteral("refs/heads/main"))));
        QCOMPARE(v.evidence().value(QStringLiteral("head")).toString(), moved);
        QVERIFY(leaseFree());
    }

    // With no wait allowed in the evaluation, the loser gets "wait" naming the holder: no
    // rollback, no retry spent; the engine evaluates again after wait_retry.
    void leaseHeldByAnotherTaskIsAWaitNamingIt()
    {
        useFakeForge();
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), head});
        auto held = m_leases->acquire(QStringLiteral("merge:widget:main"), 41, std::chrono::seconds(60));
        QVERIFY(held && held->held);
        auto instance = gate("lease_wait: 0s\nwait_retry: 45s\n");
        QVERIFY(instance);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1));
        QCOMPARE(v.result(), GateVerdict::Result::Wait);
        QVERIFY(!v.allowsPassage());
        QCOMPARE(v.retryAfter(), std::chrono::milliseconds(45000));
        QVERIFY2(v.reason().contains(QLatin1String("held by task 41")), qPrintable(v.reason()));
        QCOMPARE(v.evidence().value(QStringLiteral("leaseHolderTask")).toInt(), 41);
        QCOMPARE(mergeCalls(), 0);
        QVERIFY(m_leases->release(QStringLiteral("merge:widget:main"), 41).value_or(false)); // still the other task's
    }

    void conflictNamesFilesAndLeavesWorktreeClean()
    {
        useFakeForge();
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("shared.txt"), "one\nTWO from the task\nthree\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), head});
        advanceMain(QStringLiteral("shared.txt"), "one\ntwo from main\nthree\n");
        auto instance = gate();
        QVERIFY(instance);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1));
        QCOMPARE(v.result(), GateVerdict::Result::Fail);
        QVERIFY2(v.reason().contains(QLatin1String("shared.txt")), qPrintable(v.reason()));
        QCOMPARE(v.findings().size(), 1);
        QCOMPARE(v.findings().first().file, QStringLiteral("shared.txt"));
        // The host's worktree of the branch is as the task left it: same head, clean, no rebase in progress.
        const QString wt = scratch(1);
        QCOMPARE(runGit({QStringLiteral("rev-parse"), QStringLiteral("HEAD")}, wt).out, head);
        QCOMPARE(runGit({QStringLiteral("status"), QStringLiteral("--porcelain")}, wt).out, QString());
        QVERIFY(!QDir(runGit({QStringLiteral("rev-parse"), QStringLiteral("--git-path"), QStringLiteral("rebase-merge")}, wt).out).exists());
        QCOMPARE(mergeCalls(), 0);
        QVERIFY(branchPushes().isEmpty());
        QVERIFY(leaseFree());
    }

    void redRetestFails_data()
    {
        rebasesRetestsAndMerges_data();
    }

    void redRetestFails()
    {
        QFETCH(int, flavor);
        useFakeForge(flavorOf(flavor));
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), head});
        advanceMain(QStringLiteral("m.txt"), "m\n");
        auto ci = fakeCi();
        ci->state = QStringLiteral("failure");
        auto instance = gate();
        QVERIFY(instance);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QCOMPARE(v.result(), GateVerdict::Result::Fail);
        QVERIFY2(v.reason().contains(QLatin1String("red")) && v.reason().contains(Context), qPrintable(v.reason()));
        QCOMPARE(v.findings().value(0).rule, Context);
        QCOMPARE(mergeCalls(), 0);
        QVERIFY(!m_fake->pullRequests().value(0).merged);
        QVERIFY(leaseFree());
    }

    void transientMergeRefusalWaits_data()
    {
        rebasesRetestsAndMerges_data();
    }

    // The forge refuses the merge while it computes mergeability (Gitea: 405 "Please try again
    // later"; GitHub: 405 with "mergeable": null): not the change's fault, so the gate waits
    // (the lease released, no retry spent) and merges on the next evaluation (24.7).
    void transientMergeRefusalWaits()
    {
        QFETCH(int, flavor);
        useFakeForge(flavorOf(flavor));
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        FakePullRequest pr{1, QStringLiteral("Feature"), QStringLiteral("feature"), head};
        pr.mergeabilityPending = 1;
        m_fake->addPullRequest(pr);
        auto ci = fakeCi();
        auto instance = gate("lease_wait: 0s\nwait_retry: 7s\n");
        QVERIFY(instance);
        const GateVerdict first = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QCOMPARE(first.result(), GateVerdict::Result::Wait);
        QCOMPARE(first.retryAfter(), std::chrono::milliseconds(7000));
        QVERIFY2(first.reason().contains(QLatin1String("cannot be merged yet")), qPrintable(first.reason()));
        QCOMPARE(m_fake->mergesApplied(), 0);
        QVERIFY(leaseFree());
        const GateVerdict second = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QVERIFY2(second.result() == GateVerdict::Result::Pass, qPrintable(second.reason()));
        QCOMPARE(m_fake->mergesApplied(), 1);
        QCOMPARE(mergeCalls(), 2);
    }

    // Checks still pending when checks_timeout ends this evaluation: a wait, the lease released.
    // Past ci_timeout since the head was first judged (kept in the state store): a fail naming
    // what is still pending. The ci gate's rules, shared (issue 14.1).
    void pendingChecksWaitThenTimeOut()
    {
        useFakeForge();
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), head});
        m_fake->addStatus(head, Context, QStringLiteral("pending"));
        auto instance = gate("lease_wait: 0s\nchecks_timeout: 1s\nci_timeout: 1h\nwait_retry: 9s\n");
        QVERIFY(instance);
        const GateVerdict waiting = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QCOMPARE(waiting.result(), GateVerdict::Result::Wait);
        QCOMPARE(waiting.retryAfter(), std::chrono::milliseconds(9000));
        QVERIFY2(waiting.reason().contains(QLatin1String("'ci/test' is pending")), qPrintable(waiting.reason()));
        QVERIFY(leaseFree());
        QCOMPARE(mergeCalls(), 0);
        QVERIFY(m_state->setValue(QStringLiteral("first-judged/") + head, QDateTime::currentDateTimeUtc().addSecs(-3 * 3600).toString(Qt::ISODateWithMs).toLatin1()));
        const GateVerdict late = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QCOMPARE(late.result(), GateVerdict::Result::Fail);
        QVERIFY2(late.reason().contains(QLatin1String("ci_timeout")) && late.reason().contains(QLatin1String("'ci/test' is pending")), qPrintable(late.reason()));
        QCOMPARE(late.findings().value(0).rule, Context);
        QCOMPARE(mergeCalls(), 0);
        QVERIFY(leaseFree());
    }

    void pullRequestAlreadySettled_data()
    {
        QTest::addColumn<bool>("merged");
        QTest::addColumn<int>("result");
        addForgeFlavorColumn();
        for (const auto &[name, flavor] : forgeFlavors()) {
            QTest::addRow("%s: already merged: no-op pass", name) << true << int(GateVerdict::Result::Pass) << int(flavor);
            QTest::addRow("%s: closed unmerged: fail", name) << false << int(GateVerdict::Result::Fail) << int(flavor);
        }
    }

    void pullRequestAlreadySettled()
    {
        QFETCH(bool, merged);
        QFETCH(int, result);
        QFETCH(int, flavor);
        useFakeForge(flavorOf(flavor));
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        FakePullRequest pr{1, QStringLiteral("Feature"), QStringLiteral("feature"), head};
        pr.state = QStringLiteral("closed");
        pr.merged = merged;
        pr.mergeCommit = merged ? QStringLiteral("feedbeef") : QString();
        m_fake->addPullRequest(pr);
        advanceMain(QStringLiteral("m.txt"), "m\n");
        auto instance = gate();
        QVERIFY(instance);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1));
        QCOMPARE(int(v.result()), result);
        QVERIFY2(v.reason().contains(merged ? QLatin1String("is already merged") : QLatin1String("closed without being merged")), qPrintable(v.reason()));
        QCOMPARE(mergeCalls(), 0);
        QCOMPARE(sha(QStringLiteral("refs/heads/feature")), head); // nothing rebased or pushed
        if (merged) // the merged head is reported: the later gates of the edge judge it
            QCOMPARE(v.evidence().value(QStringLiteral("head")).toString(), head);
        QVERIFY(leaseFree());
    }

    void malformedForgeAnswersAreErrors_data()
    {
        QTest::addColumn<QString>("method");
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("times");
        addForgeFlavorColumn();
        for (const auto &[name, flavor] : forgeFlavors()) {
            QTest::addRow("%s: pull request not JSON", name) << QStringLiteral("GET") << QStringLiteral("/pulls/1$") << int(FakeFault::Kind::Malformed) << 1 << int(flavor);
            QTest::addRow("%s: statuses not a list", name) << QStringLiteral("GET") << QStringLiteral("/statuses$") << int(FakeFault::Kind::NotAList) << 1 << int(flavor);
            QTest::addRow("%s: pull request 500", name) << QStringLiteral("GET") << QStringLiteral("/pulls/1$") << int(FakeFault::Kind::Status) << 20 << int(flavor);
        }
    }

    void malformedForgeAnswersAreErrors()
    {
        QFETCH(QString, method);
        QFETCH(QString, path);
        QFETCH(int, kind);
        QFETCH(int, times);
        QFETCH(int, flavor);
        useFakeForge(flavorOf(flavor));
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), head});
        auto ci = fakeCi();
        FakeFault fault;
        fault.kind = FakeFault::Kind(kind);
        fault.method = method.toLatin1();
        fault.pathPattern = path;
        fault.times = times;
        fault.status = 500;
        m_fake->addFault(fault);
        auto instance = gate();
        QVERIFY(instance);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1), std::chrono::seconds(60));
        QVERIFY2(v.result() == GateVerdict::Result::Error, qPrintable(GateVerdict::resultName(v.result()) + QLatin1Char(' ') + v.reason()));
        QCOMPARE(mergeCalls(), 0);
        QVERIFY(!m_fake->pullRequests().value(0).merged);
        QVERIFY(leaseFree());
    }

    // A well-formed answer about the wrong pull request is not trusted either.
    void pullRequestOfAnotherNumberIsAnError()
    {
        useFakeForge();
        const QString head = startTask(QStringLiteral("feature"), QStringLiteral("a.txt"), "a\n");
        m_fake->addPullRequest({1, QStringLiteral("Feature"), QStringLiteral("feature"), head});
        m_fake->setHandler([head](const FakeRequest &r) -> std::optional<FakeAnswer> {
            if (r.method != "GET" || !r.path.endsWith(QLatin1String("/pulls/1")))
                return std::nullopt;
            const QJsonObject ref{{QStringLiteral("ref"), QStringLiteral("feature")}, {QStringLiteral("sha"), head}};
            const QJsonObject base{{QStringLiteral("ref"), QStringLiteral("main")}, {QStringLiteral("sha"), head}};
            return FakeAnswer{200, QJsonDocument(QJsonObject{{QStringLiteral("number"), 7}, {QStringLiteral("title"), QStringLiteral("x")},
                                                             {QStringLiteral("state"), QStringLiteral("open")}, {QStringLiteral("merged"), false},
                                                             {QStringLiteral("head"), ref}, {QStringLiteral("base"), base},
                                                             {QStringLiteral("updated_at"), QStringLiteral("2026-01-01T00:00:00Z")}})
                                      .toJson(),
                              {qMakePair(QByteArray("Content-Type"), QByteArray("application/json"))}};
        });
        auto instance = gate();
        QVERIFY(instance);
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(instance->get()), request(1, QStringLiteral("feature"), 1));
        QVERIFY2(v.result() == GateVerdict::Result::Error, qPrintable(GateVerdict::resultName(v.result()) + QLatin1Char(' ') + v.reason()));
        QVERIFY2(v.reason().contains(QLatin1String("malformed")), qPrintable(v.reason()));
        QCOMPARE(mergeCalls(), 0);
    }

    void settingsAreChecked()
    {
        QVERIFY(!createInstance(m_merge, "method: fast-forward\nchecks: {contexts: [x]}\n"));
        QVERIFY(!createInstance(m_merge, "")); // re-testing needs the required checks
        QVERIFY(createInstance(m_merge, "retest: false\n"));
        QVERIFY(createInstance(m_merge, "checks: {workflow: .gitea/workflows/ci.yml, umbrella_job: all}\n"));
        QVERIFY(!createInstance(m_merge, "checks: {workflow: .gitea/workflows/ci.yml}\n"));
    }
};

QTEST_GUILESS_MAIN(tst_MergeGate)
#include "tst_mergegate.moc"
