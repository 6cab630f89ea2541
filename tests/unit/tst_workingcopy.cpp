// SPDX-License-Identifier: Apache-2.0
// Task working copies (docs/adr/0013-task-working-copies.md) on real git repositories: an
// agent's copy is a repository of its own, so writing "the" repository from inside it writes
// only its own; what it takes to write the project's repository anyway is caught; the host
// takes back only the task branch; a copy is kept while it holds the recorded head and made
// anew when the head moved elsewhere; the task branch goes to the forge with a lease.

#include "engine/workspace.h"
#include "repository/projectrepository.h"
#include "store/taskstore.h"

#include <sluice/testsupport.h>

#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

using namespace Sluice;

namespace {

QString git(const QString &dir, const QStringList &args)
{
    const Test::GitOut out = Test::runGit(args, dir);
    if (out.code != 0)
        qFatal("git %s in %s failed: %s", qPrintable(args.join(QLatin1Char(' '))), qPrintable(dir), qPrintable(out.err));
    return out.out;
}

// An "agent": a shell script run in the working copy, as the process launcher would run it.
int agent(const QString &workingCopy, const QString &script)
{
    QProcess p;
    p.setWorkingDirectory(workingCopy);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("GIT_AUTHOR_NAME"), QStringLiteral("agent"));
    env.insert(QStringLiteral("GIT_AUTHOR_EMAIL"), QStringLiteral("agent@example.invalid"));
    env.insert(QStringLiteral("GIT_COMMITTER_NAME"), QStringLiteral("agent"));
    env.insert(QStringLiteral("GIT_COMMITTER_EMAIL"), QStringLiteral("agent@example.invalid"));
    p.setProcessEnvironment(env);
    p.start(QStringLiteral("/bin/sh"), {QStringLiteral("-c"), script});
    if (!p.waitForFinished(60000))
        qFatal("agent script did not finish");
    if (p.exitCode() != 0)
        qWarning("agent script: %s", p.readAllStandardError().constData());
    return p.exitCode();
}

} // namespace

class tst_WorkingCopy : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void init();
    void taskBranchNames_data();
    void taskBranchNames();
    void agentWritingItsRepositoryWritesOnlyItsOwn();
    void writesToTheProjectRepositoryAreCaught();
    void harvestTakesTheTaskBranchAndNothingElse();
    void copyIsKeptWhileItHoldsTheRecordedHead();
    void newCopyStartsFromTheProjectBranchOrTheFetchedTarget();
    void sharedWorktreeOfAnOlderSluiceIsReplaced();
    void finishingATaskLeavesOtherWorktreesAlone();
    void concurrentFetchesIntoTheProjectRepositoryAllSucceed();
    void aWorktreeAddThatNeverFinishedDoesNotBreakFetches();
    void aStoppedHolderOfTheFetchLockStopsNoOne();
    void publishPushesTheTaskBranchWithALease();

private:
    ProjectConfig project() const;
    TaskRecord task(qint64 id, const QString &branch, const QString &head = QString()) const;

    std::unique_ptr<QTemporaryDir> m_dir;
    QString m_repo;  // the project's repository (bare, its own forge)
    QString m_state; // the host's state directory
    QString m_main;  // main's first commit
};

void tst_WorkingCopy::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_repo = m_dir->filePath(QStringLiteral("project.git"));
    m_state = m_dir->filePath(QStringLiteral("state"));
    const QString seed = m_dir->filePath(QStringLiteral("seed"));
    git(m_dir->path(), {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), m_repo});
    git(m_dir->path(), {QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main"), seed});
    QFile readme(seed + QStringLiteral("/README"));
    QVERIFY(readme.open(QIODevice::WriteOnly));
    readme.write("seed\n");
    readme.close();
    git(seed, {QStringLiteral("add"), QStringLiteral("README")});
    git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")});
    git(seed, {QStringLiteral("push"), QStringLiteral("-q"), m_repo, QStringLiteral("main"), QStringLiteral("main:other")});
    m_main = git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")});
}

ProjectConfig tst_WorkingCopy::project() const
{
    ProjectConfig p;
    p.id = QStringLiteral("p");
    p.repositoryPath = m_repo;
    p.targetBranch = QStringLiteral("main");
    p.repositoryRemote = QStringLiteral("origin");
    return p;
}

TaskRecord tst_WorkingCopy::task(qint64 id, const QString &branch, const QString &head) const
{
    TaskRecord t;
    t.id = id;
    t.project = QStringLiteral("p");
    t.branch = branch;
    t.headSha = head;
    t.stage = QStringLiteral("development");
    t.status = QStringLiteral("active");
    return t;
}

void tst_WorkingCopy::taskBranchNames_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<bool>("accepted");
    QTest::newRow("plain") << QStringLiteral("sluice/say-hello") << true;
    QTest::newRow("the target") << QStringLiteral("main") << false;
    QTest::newRow("empty") << QString() << false;
    QTest::newRow("option-like") << QStringLiteral("-f") << false;
    QTest::newRow("a full ref") << QStringLiteral("refs/heads/main") << false;
    QTest::newRow("HEAD") << QStringLiteral("HEAD") << false;
    QTest::newRow("git refuses") << QStringLiteral("a..b") << false;
    QTest::newRow("space") << QStringLiteral("a b") << false;
}

void tst_WorkingCopy::taskBranchNames()
{
    QFETCH(QString, name);
    QFETCH(bool, accepted);
    QCOMPARE(checkTaskBranchName(name, QStringLiteral("main")).has_value(), accepted);
}

void tst_WorkingCopy::agentWritingItsRepositoryWritesOnlyItsOwn()
{
    // The reproduction of issue 22.1: from a `git worktree add` checkout, this replaced the
    // project's main. From a working copy of its own it replaces the copy's main only.
    const Workspace workspace(m_state);
    const TaskRecord t = task(1, QStringLiteral("sluice/t1"));
    auto path = workspace.ensureWorktree(project(), t);
    QVERIFY2(path, qPrintable(path ? QString() : path.error().toString()));
    const ProjectRepository repo = workspace.repository(project());
    auto before = repo.snapshot();
    QVERIFY(before);
    const QDateTime started = QDateTime::currentDateTimeUtc();
    QCOMPARE(agent(*path, QStringLiteral("echo evil > evil.txt && git add evil.txt && git commit -qm evil && "
                                         "git push -q --force \"$(git rev-parse --path-format=absolute --git-common-dir)\" HEAD:main && "
                                         "git update-ref refs/heads/other HEAD")),
             0);
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")}), m_main);
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("other")}), m_main);
    auto changes = repo.changesNotBySluice(*before, started);
    QVERIFY(changes);
    QVERIFY(changes->isEmpty());
    // What the host takes is the task branch, with the agent's commit; main stays.
    auto head = workspace.harvest(project(), t, QStringLiteral("test"));
    QVERIFY2(head, qPrintable(head ? QString() : head.error().toString()));
    QCOMPARE(*head, git(*path, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")}));
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("sluice/t1")}), *head);
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")}), m_main);
    // The harvest itself is Sluice's: not reported as someone else's change.
    auto after = repo.changesNotBySluice(*before, started);
    QVERIFY(after);
    QVERIFY(after->isEmpty());
}

void tst_WorkingCopy::writesToTheProjectRepositoryAreCaught()
{
    // An agent that goes looking for the project's repository (through its alternates) and
    // writes there directly is not stopped by the layout, so the host compares.
    const Workspace workspace(m_state);
    const TaskRecord t1 = task(1, QStringLiteral("sluice/t1"));
    const TaskRecord t2 = task(2, QStringLiteral("sluice/t2"));
    auto path1 = workspace.ensureWorktree(project(), t1);
    auto path2 = workspace.ensureWorktree(project(), t2);
    QVERIFY(path1 && path2);
    const ProjectRepository repo = workspace.repository(project());
    auto before = repo.snapshot();
    QVERIFY(before);
    const QDateTime started = QDateTime::currentDateTimeUtc();
    QCOMPARE(agent(*path1, QStringLiteral("echo evil > evil.txt && git add evil.txt && git commit -qm evil && "
                                          "canonical=$(dirname \"$(cat .git/objects/info/alternates)\") && "
                                          "git push -q --force \"$canonical\" HEAD:main && "
                                          "git -C \"$canonical\" update-ref -d refs/heads/other")),
             0);
    // Meanwhile the host takes another task's work: Sluice's own write, not reported.
    QCOMPARE(agent(*path2, QStringLiteral("echo ok > ok.txt && git add ok.txt && git commit -qm ok")), 0);
    QVERIFY(workspace.harvest(project(), t2, QStringLiteral("task 2 job 1")));
    auto changes = repo.changesNotBySluice(*before, started);
    QVERIFY(changes);
    QCOMPARE(changes->size(), 2);
    QCOMPARE(changes->at(0).ref, QStringLiteral("refs/heads/main"));
    QCOMPARE(changes->at(0).before, m_main);
    QCOMPARE(changes->at(0).how, QStringLiteral("push"));
    QCOMPARE(changes->at(1).ref, QStringLiteral("refs/heads/other"));
    QVERIFY(changes->at(1).after.isEmpty());
    QCOMPARE(changes->at(1).how, QStringLiteral("deleted"));
}

void tst_WorkingCopy::harvestTakesTheTaskBranchAndNothingElse()
{
    const Workspace workspace(m_state);
    const TaskRecord t = task(3, QStringLiteral("sluice/t3"));
    auto path = workspace.ensureWorktree(project(), t);
    QVERIFY(path);
    QCOMPARE(agent(*path, QStringLiteral("echo a > a.txt && git add a.txt && git commit -qm a && git branch side && "
                                         "git tag v9 && git checkout -q -b elsewhere && echo b > b.txt && git add b.txt && "
                                         "git commit -qm b")),
             0);
    auto head = workspace.harvest(project(), t, QStringLiteral("test"));
    QVERIFY(head);
    // The task branch as the agent left it (not the branch it checked out last).
    QCOMPARE(*head, git(*path, {QStringLiteral("rev-parse"), QStringLiteral("sluice/t3")}));
    const QString refs = git(m_repo, {QStringLiteral("for-each-ref"), QStringLiteral("--format=%(refname)")});
    QCOMPARE(refs.split(QLatin1Char('\n')), (QStringList{QStringLiteral("refs/heads/main"), QStringLiteral("refs/heads/other"),
                                                         QStringLiteral("refs/heads/sluice/t3")}));
    // A task whose branch is the target cannot have it taken.
    auto refused = workspace.repository(project()).takeBranch(*path, QStringLiteral("main"), m_main, QStringLiteral("test"));
    QVERIFY(!refused);
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")}), m_main);
    // An agent that deleted its branch leaves nothing to take: an error, not an empty branch.
    QCOMPARE(agent(*path, QStringLiteral("git branch -D sluice/t3")), 0);
    auto gone = workspace.harvest(project(), t, QStringLiteral("test"));
    QVERIFY(!gone);
    QCOMPARE(gone.error().code, ErrorCode::NotFound);
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("sluice/t3")}), *head);
}

void tst_WorkingCopy::copyIsKeptWhileItHoldsTheRecordedHead()
{
    const Workspace workspace(m_state);
    TaskRecord t = task(4, QStringLiteral("sluice/t4"));
    auto path = workspace.ensureWorktree(project(), t);
    QVERIFY(path);
    QCOMPARE(agent(*path, QStringLiteral("echo a > a.txt && git add a.txt && git commit -qm a")), 0);
    auto first = workspace.harvest(project(), t, QStringLiteral("test"));
    QVERIFY(first);
    t.headSha = *first;
    // A failed attempt left a commit and an uncommitted file: the retry finds both.
    QCOMPARE(agent(*path, QStringLiteral("echo b > b.txt && git add b.txt && git commit -qm b && echo draft > draft.txt")), 0);
    QCOMPARE(workspace.ensureWorktree(project(), t).value_or(QString()), *path);
    QVERIFY(QFile::exists(*path + QStringLiteral("/draft.txt")));
    // The host moved the task's head elsewhere (a rebase onto a new main): the copy is made
    // anew from that head, and what the failed attempt left is not carried into it.
    const QString seed = m_dir->filePath(QStringLiteral("seed"));
    git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("--allow-empty"), QStringLiteral("-m"), QStringLiteral("rebased")});
    const QString rebased = git(seed, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")});
    git(seed, {QStringLiteral("push"), QStringLiteral("-q"), m_repo, QStringLiteral("HEAD:refs/heads/sluice/t4"), QStringLiteral("--force")});
    t.headSha = rebased;
    QCOMPARE(workspace.ensureWorktree(project(), t).value_or(QString()), *path);
    QCOMPARE(git(*path, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")}), rebased);
    QCOMPARE(git(*path, {QStringLiteral("symbolic-ref"), QStringLiteral("HEAD")}), QStringLiteral("refs/heads/sluice/t4"));
    QVERIFY(!QFile::exists(*path + QStringLiteral("/draft.txt")));
    QVERIFY(QFile::exists(*path + QStringLiteral("/README")));
}

void tst_WorkingCopy::newCopyStartsFromTheProjectBranchOrTheFetchedTarget()
{
    // The project's repository is a clone whose origin is the forge: the working copy starts
    // from the forge's main as fetched now, and the local main is left as it was.
    const QString forge = m_repo;
    const QString clone = m_dir->filePath(QStringLiteral("clone.git"));
    git(m_dir->path(), {QStringLiteral("clone"), QStringLiteral("-q"), QStringLiteral("--bare"), forge, clone});
    git(clone, {QStringLiteral("config"), QStringLiteral("remote.origin.fetch"), QStringLiteral("+refs/heads/*:refs/remotes/origin/*")});
    const QString seed = m_dir->filePath(QStringLiteral("seed"));
    git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("--allow-empty"), QStringLiteral("-m"), QStringLiteral("later")});
    git(seed, {QStringLiteral("push"), QStringLiteral("-q"), forge, QStringLiteral("main")});
    const QString later = git(seed, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")});
    ProjectConfig p = project();
    p.repositoryPath = clone;
    const Workspace workspace(m_state);
    auto path = workspace.ensureWorktree(p, task(5, QStringLiteral("sluice/t5")));
    QVERIFY2(path, qPrintable(path ? QString() : path.error().toString()));
    QCOMPARE(git(*path, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")}), later);
    QCOMPARE(git(*path, {QStringLiteral("rev-parse"), QStringLiteral("origin/main")}), later);
    QCOMPARE(git(clone, {QStringLiteral("rev-parse"), QStringLiteral("refs/heads/main")}), m_main);
    QCOMPARE(git(clone, {QStringLiteral("rev-parse"), QStringLiteral("refs/remotes/origin/main")}), later);
    // A task whose branch the project's repository has already (an earlier visit, another
    // node) starts from there when no head is recorded yet.
    git(clone, {QStringLiteral("update-ref"), QStringLiteral("refs/heads/sluice/t6"), m_main});
    auto resumed = workspace.ensureWorktree(p, task(6, QStringLiteral("sluice/t6")));
    QVERIFY(resumed);
    QCOMPARE(git(*resumed, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")}), m_main);
    // No remote in the working copy: nothing to push to, nothing to fetch from.
    QCOMPARE(git(*resumed, {QStringLiteral("remote")}), QString());
}

void tst_WorkingCopy::sharedWorktreeOfAnOlderSluiceIsReplaced()
{
    const Workspace workspace(m_state);
    const TaskRecord t = task(7, QStringLiteral("sluice/t7"));
    const QString path = workspace.worktreePath(t.project, t.id);
    QVERIFY(QDir().mkpath(QFileInfo(path).absolutePath()));
    git(m_repo, {QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), QStringLiteral("-b"), t.branch, path, QStringLiteral("main")});
    QVERIFY(QFileInfo(path + QStringLiteral("/.git")).isFile());
    QCOMPARE(workspace.ensureWorktree(project(), t).value_or(QString()), path);
    QVERIFY(QFileInfo(path + QStringLiteral("/.git")).isDir());
    QVERIFY(!git(m_repo, {QStringLiteral("worktree"), QStringLiteral("list")}).contains(path));
    QCOMPARE(git(path, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")}), m_main);
    // Finished: the copy goes, the branch stays.
    QCOMPARE(workspace.removeWorktree(project(), t.id).value_or(false), true);
    QVERIFY(!QFileInfo::exists(path));
    QCOMPARE(git(m_repo, {QStringLiteral("rev-parse"), t.branch}), m_main);
}

// A gate (the merge gate) keeps a worktree of the project's repository per task. When a task
// finishes, its own goes, and nothing else: another task's `git worktree add` may be under way
// at that moment, its registration a directory without a gitdir file yet — which `git worktree
// prune` deletes, failing that add and blocking its task (seen in tst_mergedaemon).
void tst_WorkingCopy::finishingATaskLeavesOtherWorktreesAlone()
{
    const Workspace workspace(m_state);
    const ProjectRepository repo = workspace.repository(project());
    const QString scratch = repo.scratchPath(8);
    QVERIFY(!scratch.isEmpty());
    QVERIFY(QDir().mkpath(QFileInfo(scratch).absolutePath()));
    git(m_repo, {QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), scratch, QStringLiteral("other")});
    QVERIFY(git(m_repo, {QStringLiteral("worktree"), QStringLiteral("list")}).contains(scratch));
    // Another task's worktree half-made: registered, no gitdir file yet.
    const QString beingMade = m_repo + QStringLiteral("/worktrees/task-9");
    QVERIFY(QDir().mkpath(beingMade));

    QCOMPARE(workspace.removeWorktree(project(), 8).value_or(true), false); // no working copy of its own; the gate's worktree goes
    QVERIFY(!QFileInfo::exists(scratch));
    QVERIFY(!git(m_repo, {QStringLiteral("worktree"), QStringLiteral("list")}).contains(scratch));
    QVERIFY2(QFileInfo(beingMade).isDir(), "the registration of a worktree being made was deleted");

    // A registration whose directory is already gone (removed by hand, a crash) is cleared too.
    git(m_repo, {QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), scratch, QStringLiteral("other")});
    QVERIFY(QDir(scratch).removeRecursively());
    QCOMPARE(workspace.removeWorktree(project(), 8).value_or(true), false);
    QVERIFY(!git(m_repo, {QStringLiteral("worktree"), QStringLiteral("list")}).contains(scratch));
    QVERIFY(QFileInfo(beingMade).isDir());
}

// Tasks are published from the engine's thread pool, each fetching the target into the one
// project repository first (and other daemons on the machine may share it). Git fails some
// concurrent fetches of the same new tip ("cannot lock ref", "did not send all necessary
// objects"), which failed the publish step and blocked the task: they take turns.
void tst_WorkingCopy::concurrentFetchesIntoTheProjectRepositoryAllSucceed()
{
    const QString clone = m_dir->filePath(QStringLiteral("clone"));
    git(m_dir->path(), {QStringLiteral("clone"), QStringLiteral("-q"), m_repo, clone});
    ProjectConfig p = project();
    p.repositoryPath = clone;
    const QString seed = m_dir->filePath(QStringLiteral("seed"));
    for (int round = 0; round < 8; ++round) {
        // The forge's main moves on by a commit of many objects.
        for (int i = 0; i < 40; ++i) {
            QFile f(seed + QStringLiteral("/f%1.txt").arg(i));
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(QByteArray::number(round * 1000 + i) + '\n');
        }
        git(seed, {QStringLiteral("add"), QStringLiteral(".")});
        git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("round %1").arg(round)});
        git(seed, {QStringLiteral("push"), QStringLiteral("-q"), m_repo, QStringLiteral("main")});
        const QString tip = git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")});

        QList<Result<QString>> results;
        for (int t = 0; t < 4; ++t)
            results.append(Result<QString>(QString()));
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] { results[t] = ProjectRepository(p, m_state).refreshTarget(); });
        for (std::thread &thread : threads)
            thread.join();
        for (const Result<QString> &r : results) {
            QVERIFY2(r.has_value(), qPrintable(r ? QString() : r.error().toString()));
            QCOMPARE(*r, tip);
        }
    }
    QCOMPARE(git(clone, {QStringLiteral("fsck"), QStringLiteral("--connectivity-only"), QStringLiteral("--no-progress")}), QString());
}

// A node killed while a gate added its worktree of the shared repository leaves a registration
// locked "initializing" whose HEAD is no object; git's connectivity check then fails every
// fetch into the repository ("bad object worktrees/<id>/HEAD"), so every task's publish step.
// Found by tests/bench/nodes.sh. The fetch clears it (under the lock every Sluice add holds).
void tst_WorkingCopy::aWorktreeAddThatNeverFinishedDoesNotBreakFetches()
{
    const QString clone = m_dir->filePath(QStringLiteral("clone"));
    git(m_dir->path(), {QStringLiteral("clone"), QStringLiteral("-q"), m_repo, clone});
    ProjectConfig p = project();
    p.repositoryPath = clone;
    const QString scratch = m_dir->filePath(QStringLiteral("scratch/task-2"));
    git(clone, {QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("-q"), scratch, QStringLiteral("origin/other")});
    // What the killed add left: git writes these first and the real HEAD last.
    const QString admin = clone + QStringLiteral("/.git/worktrees/task-2");
    QFile locked(admin + QStringLiteral("/locked"));
    QVERIFY(locked.open(QIODevice::WriteOnly));
    locked.write("initializing");
    locked.close();
    QFile head(admin + QStringLiteral("/HEAD"));
    QVERIFY(head.open(QIODevice::WriteOnly));
    head.write("0000000000000000000000000000000000000000\n");
    head.close();

    const QString seed = m_dir->filePath(QStringLiteral("seed"));
    QFile f(seed + QStringLiteral("/moved.txt"));
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("moved\n");
    f.close();
    git(seed, {QStringLiteral("add"), QStringLiteral(".")});
    git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("moved")});
    git(seed, {QStringLiteral("push"), QStringLiteral("-q"), m_repo, QStringLiteral("main")});

    const Result<QString> target = ProjectRepository(p, m_state).refreshTarget();
    QVERIFY2(target.has_value(), qPrintable(target ? QString() : target.error().toString()));
    QCOMPARE(*target, git(m_repo, {QStringLiteral("rev-parse"), QStringLiteral("main")}));
    QVERIFY(!QFileInfo::exists(admin));
    QVERIFY(!git(clone, {QStringLiteral("worktree"), QStringLiteral("list")}).contains(scratch));
}

// A node stopped (SIGSTOP, a frozen VM) while it fetched keeps its flock on the fetch lock; the
// other nodes must not wait for it for ever (tests/bench/nodes.sh: a node stopped mid-fetch
// stopped its taker too). The fetch waits a little, then goes ahead without its turn.
void tst_WorkingCopy::aStoppedHolderOfTheFetchLockStopsNoOne()
{
    const QString clone = m_dir->filePath(QStringLiteral("clone"));
    git(m_dir->path(), {QStringLiteral("clone"), QStringLiteral("-q"), m_repo, clone});
    ProjectConfig p = project();
    p.repositoryPath = clone;
    const int held = ::open(QFile::encodeName(clone + QStringLiteral("/.git/sluice-fetch.lock")).constData(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    QVERIFY(held >= 0);
    QCOMPARE(::flock(held, LOCK_EX | LOCK_NB), 0);
    Result<QString> target = Result<QString>(QString());
    std::thread fetch([&] { target = ProjectRepository(p, m_state).refreshTarget(); });
    fetch.join(); // without the bound: never
    ::close(held);
    QVERIFY2(target.has_value(), qPrintable(target ? QString() : target.error().toString()));
    QCOMPARE(*target, m_main);
}

void tst_WorkingCopy::publishPushesTheTaskBranchWithALease()
{
    const QString forge = m_repo;
    const QString clone = m_dir->filePath(QStringLiteral("clone.git"));
    git(m_dir->path(), {QStringLiteral("clone"), QStringLiteral("-q"), QStringLiteral("--bare"), forge, clone});
    ProjectConfig p = project();
    p.repositoryPath = clone;
    const Workspace workspace(m_state);
    TaskRecord t = task(8, QStringLiteral("sluice/t8"));
    auto path = workspace.ensureWorktree(p, t);
    QVERIFY(path);
    QCOMPARE(agent(*path, QStringLiteral("echo a > a.txt && git add a.txt && git commit -qm a")), 0);
    auto head = workspace.harvest(p, t, QStringLiteral("test"));
    QVERIFY(head);
    const ProjectRepository repo = workspace.repository(p);
    QCOMPARE(repo.remote().value_or(QString()), QStringLiteral("origin"));
    QCOMPARE(repo.publish(t.branch, *head).value_or(QString()), *head);
    QCOMPARE(git(forge, {QStringLiteral("rev-parse"), t.branch}), *head);
    // Pushing the same head again changes nothing and succeeds.
    QCOMPARE(repo.publish(t.branch, *head).value_or(QString()), *head);
    // Someone else pushed the task branch at the forge: the next push is refused, not forced over it.
    const QString seed = m_dir->filePath(QStringLiteral("seed"));
    git(seed, {QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("--allow-empty"), QStringLiteral("-m"), QStringLiteral("someone")});
    git(seed, {QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("--force"), forge, QStringLiteral("HEAD:refs/heads/sluice/t8")});
    const QString theirs = git(seed, {QStringLiteral("rev-parse"), QStringLiteral("HEAD")});
    QCOMPARE(agent(*path, QStringLiteral("echo b > b.txt && git add b.txt && git commit -qm b")), 0);
    t.headSha = *head;
    auto second = workspace.harvest(p, t, QStringLiteral("test"));
    QVERIFY(second);
    auto refused = repo.publish(t.branch, *second);
    QVERIFY(!refused);
    QCOMPARE(refused.error().code, ErrorCode::Conflict);
    QCOMPARE(git(forge, {QStringLiteral("rev-parse"), t.branch}), theirs);
    // Never the target.
    QVERIFY(!repo.publish(QStringLiteral("main"), *second));
    QCOMPARE(git(forge, {QStringLiteral("rev-parse"), QStringLiteral("main")}), m_main);
}

QTEST_GUILESS_MAIN(tst_WorkingCopy)
#include "tst_workingcopy.moc"
