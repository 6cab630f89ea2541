// SPDX-License-Identifier: Apache-2.0
// The local forge as the host loads it, on real bare repositories in a temporary directory,
// with a real SQLite state store.
#include "fakeforge.h" // runCall()

#include <sluice/forge.h>
#include <sluice/testsupport.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

class tst_LocalForge : public QObject
{
    Q_OBJECT

private:
    LoadedPlugin m_plugin;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<TemporaryStore> m_store;
    std::unique_ptr<StateStore> m_state;
    std::unique_ptr<PluginInstance> m_instance;

    QString bare() const { return m_dir->filePath(QStringLiteral("repo.git")); }
    QString work() const { return m_dir->filePath(QStringLiteral("work")); }
    Forge &forge() { return *qobject_cast<Forge *>(m_instance.get()); }

    QByteArray git(const QStringList &args, const QString &dir)
    {
        const Test::GitOut run = Test::runGit(args, dir);
        if (run.code != 0)
            qWarning() << "git" << args << run.err;
        return run.out.toUtf8();
    }

    QString commitOn(const QString &branch, const QString &file, const QByteArray &content)
    {
        git({QStringLiteral("checkout"), QStringLiteral("-q"), QStringLiteral("-B"), branch, QStringLiteral("origin/main")}, work());
        QFile f(QDir(work()).filePath(file));
        if (!f.open(QIODevice::WriteOnly))
            return {};
        f.write(content);
        f.close();
        git({QStringLiteral("add"), file}, work());
        git({QStringLiteral("commit"), QStringLiteral("-qm"), branch}, work());
        git({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), branch}, work());
        return QString::fromLatin1(git({QStringLiteral("rev-parse"), QStringLiteral("HEAD")}, work()));
    }

    // Opens a pull request of @p branch into main.
    Result<PullRequest> open(const QString &branch)
    {
        auto created = runCall(forge().createPullRequest({branch, QString(), QStringLiteral("Change on %1").arg(branch), QStringLiteral("body")}));
        if (!created)
            qWarning() << created.error().toString();
        return created;
    }

    void deleteBranch(const QString &branch)
    {
        git({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral(":") + branch}, work());
    }

private Q_SLOTS:
    void initTestCase()
    {
        auto plugin = loadPlugin(QStringLiteral(LOCAL_PLUGIN_FILE));
        QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
        m_plugin = *plugin;
    }

    void init()
    {
        m_dir = std::make_unique<QTemporaryDir>();
        git({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), bare()}, m_dir->path());
        git({QStringLiteral("clone"), QStringLiteral("-q"), bare(), work()}, m_dir->path());
        git({QStringLiteral("checkout"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}, work());
        QFile f(QDir(work()).filePath(QStringLiteral("README")));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("hello\n");
        f.close();
        git({QStringLiteral("add"), QStringLiteral("README")}, work());
        git({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("first")}, work());
        git({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("main")}, work());
        git({QStringLiteral("fetch"), QStringLiteral("-q")}, work());

        m_store = std::make_unique<TemporaryStore>();
        QVERIFY(m_store->store());
        m_state = m_store->state(QStringLiteral("test-project"), QStringLiteral("local"));
        ProjectInfo project = fakeProject();
        project.repository = bare();
        project.targetBranch = QStringLiteral("main");
        auto created = createInstance(m_plugin, QByteArray(), project, m_state.get());
        QVERIFY2(created, qPrintable(created ? QString() : created.error().toString()));
        m_instance = std::move(*created);
        auto ready = m_instance->initialize();
        QVERIFY2(ready, qPrintable(ready ? QString() : ready.error().toString()));
    }

    void cleanup()
    {
        m_instance.reset();
        m_state.reset();
        m_store.reset();
        m_dir.reset();
    }

    void pullRequestsStatusesAndMerge()
    {
        const QString a = commitOn(QStringLiteral("feature-a"), QStringLiteral("a.txt"), "a\n");
        const QString b = commitOn(QStringLiteral("feature-b"), QStringLiteral("b.txt"), "b\n");
        QVERIFY(open(QStringLiteral("feature-a")));
        QVERIFY(open(QStringLiteral("feature-b")));
        auto open = runCall(forge().openPullRequests());
        QVERIFY2(open, qPrintable(open ? QString() : open.error().toString()));
        QCOMPARE(open->size(), 2);
        QCOMPARE(open->at(0).headBranch, QStringLiteral("feature-a"));
        QCOMPARE(open->at(0).headSha, a);
        const qint64 numberA = open->at(0).number;
        // Numbers are stable across reads.
        auto again = runCall(forge().openPullRequests());
        QVERIFY(again);
        QCOMPARE(again->at(0).number, numberA);

        // No statuses is pending; statuses are kept newest first, duplicates kept.
        auto combined = runCall(forge().combinedStatus(a));
        QVERIFY(combined);
        QCOMPARE(combined->state, StatusState::Pending);
        QVERIFY(runCall(forge().postStatus(a, StatusUpdate{QStringLiteral("ci"), StatusState::Failure, QString(), QString()})));
        QVERIFY(runCall(forge().postStatus(a, StatusUpdate{QStringLiteral("ci"), StatusState::Success, QString(), QString()})));
        auto all = runCall(forge().statuses(a));
        QVERIFY(all);
        QCOMPARE(all->size(), 2);
        QCOMPARE(all->first().state, StatusState::Success);
        combined = runCall(forge().combinedStatus(a));
        QCOMPARE(combined->state, StatusState::Success);
        QCOMPARE(combined->statuses.size(), 1);
        auto unknown = runCall(forge().postStatus(QStringLiteral("0123456789012345678901234567890123456789"),
                                                  StatusUpdate{QStringLiteral("ci"), StatusState::Success, QString(), QString()}));
        QVERIFY(!unknown);
        QCOMPARE(unknown.error().code, ErrorCode::NotFound);

        // Files and comparisons.
        auto file = runCall(forge().readFile(QStringLiteral("a.txt"), QStringLiteral("feature-a")));
        QVERIFY(file);
        QCOMPARE(*file, QByteArray("a\n"));
        auto missing = runCall(forge().readFile(QStringLiteral("a.txt"), QStringLiteral("main")));
        QVERIFY(!missing);
        QCOMPARE(missing.error().code, ErrorCode::NotFound);
        QVERIFY(!runCall(forge().readFile(QStringLiteral("a.txt"), QStringLiteral("--output=/tmp/x"))));
        auto cmp = runCall(forge().compare(QStringLiteral("main"), QStringLiteral("feature-a")));
        QVERIFY2(cmp, qPrintable(cmp ? QString() : cmp.error().toString()));
        QCOMPARE(cmp->aheadBy, 1);
        QCOMPARE(cmp->behindBy, 0);

        // Merge: a stale expected head is refused, the right one merges, a second call reports it.
        MergeRequest stale;
        stale.expectedHeadSha = b;
        QCOMPARE(runCall(forge().merge(numberA, stale)).error().code, ErrorCode::Conflict);
        MergeRequest request;
        request.expectedHeadSha = a;
        auto merged = runCall(forge().merge(numberA, request));
        QVERIFY2(merged, qPrintable(merged ? QString() : merged.error().toString()));
        QVERIFY(!merged->alreadyMerged);
        QCOMPARE(QString::fromLatin1(git({QStringLiteral("--git-dir"), bare(), QStringLiteral("rev-parse"), QStringLiteral("main")}, m_dir->path())),
                 merged->mergeCommit);
        auto twice = runCall(forge().merge(numberA, request));
        QVERIFY(twice);
        QVERIFY(twice->alreadyMerged);
        QCOMPARE(twice->mergeCommit, merged->mergeCommit);
        open = runCall(forge().openPullRequests());
        QCOMPARE(open->size(), 1);
        QCOMPARE(open->at(0).headBranch, QStringLiteral("feature-b"));
        auto pr = runCall(forge().pullRequest(numberA));
        QVERIFY(pr);
        QVERIFY(pr->merged);
    }

    void pullRequestsAreKeptInTheStore()
    {
        const QString a = commitOn(QStringLiteral("feature-a"), QStringLiteral("a.txt"), "a\n");
        commitOn(QStringLiteral("unproposed"), QStringLiteral("u.txt"), "u\n");
        // A branch is not a pull request until one is opened.
        auto none = runCall(forge().openPullRequests());
        QVERIFY2(none, qPrintable(none ? QString() : none.error().toString()));
        QVERIFY(none->isEmpty());

        auto created = open(QStringLiteral("feature-a"));
        QVERIFY(created);
        QCOMPARE(created->number, 1);
        QCOMPARE(created->state, QStringLiteral("open"));
        QVERIFY(!created->merged);
        QCOMPARE(created->headSha, a);
        QCOMPARE(created->baseBranch, QStringLiteral("main"));
        QCOMPARE(created->title, QStringLiteral("Change on feature-a"));
        // Refused: the same branches again, an unknown branch, no commits, an option-like name.
        auto twice = runCall(forge().createPullRequest({QStringLiteral("feature-a"), QStringLiteral("main"), QStringLiteral("again"), QString()}));
        QCOMPARE(twice.error().code, ErrorCode::Conflict);
        QCOMPARE(runCall(forge().createPullRequest({QStringLiteral("nope"), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::NotFound);
        git({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("origin/main:refs/heads/empty")}, work());
        QCOMPARE(runCall(forge().createPullRequest({QStringLiteral("empty"), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::Conflict);
        QCOMPARE(runCall(forge().createPullRequest({QStringLiteral("--all"), QString(), QStringLiteral("t"), QString()})).error().code, ErrorCode::InvalidArgument);
        QCOMPARE(runCall(forge().createPullRequest({QStringLiteral("feature-a"), QString(), QString(), QString()})).error().code, ErrorCode::InvalidArgument);

        // A new push to the head shows as the new head sha.
        const QString a2 = [&] {
            git({QStringLiteral("checkout"), QStringLiteral("-q"), QStringLiteral("feature-a")}, work());
            QFile f(QDir(work()).filePath(QStringLiteral("a2.txt")));
            if (!f.open(QIODevice::WriteOnly))
                return QString();
            f.write("a2\n");
            f.close();
            git({QStringLiteral("add"), QStringLiteral("a2.txt")}, work());
            git({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("a2")}, work());
            git({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("feature-a")}, work());
            return QString::fromLatin1(git({QStringLiteral("rev-parse"), QStringLiteral("HEAD")}, work()));
        }();
        auto listed = runCall(forge().openPullRequests());
        QVERIFY(listed);
        QCOMPARE(listed->size(), 1);
        QCOMPARE(listed->at(0).number, 1);
        QCOMPARE(listed->at(0).headSha, a2);

        // Numbers and records outlive the instance: a new one on the same store reads them.
        auto again = createInstance(m_plugin, QByteArray(), [&] {
            ProjectInfo p = fakeProject();
            p.repository = bare();
            p.targetBranch = QStringLiteral("main");
            return p;
        }(), m_state.get());
        QVERIFY(again);
        QVERIFY((*again)->initialize());
        auto *second = qobject_cast<Forge *>(again->get());
        auto one = runCall(second->pullRequest(1));
        QVERIFY(one);
        QCOMPARE(one->headBranch, QStringLiteral("feature-a"));
        QCOMPARE(one->state, QStringLiteral("open"));
        auto b = commitOn(QStringLiteral("feature-b"), QStringLiteral("b.txt"), "b\n");
        auto createdB = runCall(second->createPullRequest({QStringLiteral("feature-b"), QString(), QStringLiteral("b"), QString()}));
        QVERIFY(createdB);
        QCOMPARE(createdB->number, 2);

        // A head branch deleted: closed, not merged, and no longer listed.
        deleteBranch(QStringLiteral("feature-b"));
        auto gone = runCall(forge().pullRequest(2));
        QVERIFY(gone);
        QCOMPARE(gone->state, QStringLiteral("closed"));
        QVERIFY(!gone->merged);
        QCOMPARE(gone->headSha, b);
        QCOMPARE(runCall(forge().merge(2, MergeRequest{})).error().code, ErrorCode::Conflict);

        // Merged outside the forge (pushed into main): merged once read.
        git({QStringLiteral("push"), QStringLiteral("-q"), QStringLiteral("origin"), QStringLiteral("feature-a:main")}, work());
        listed = runCall(forge().openPullRequests());
        QVERIFY(listed);
        QVERIFY(listed->isEmpty());
        one = runCall(forge().pullRequest(1));
        QVERIFY(one);
        QVERIFY(one->merged);
        QCOMPARE(one->state, QStringLiteral("closed"));
        auto mergedAlready = runCall(forge().merge(1, MergeRequest{}));
        QVERIFY(mergedAlready);
        QVERIFY(mergedAlready->alreadyMerged);

        // A closed pull request does not block a new one for the same branches.
        commitOn(QStringLiteral("feature-b"), QStringLiteral("b.txt"), "b again\n");
        auto reopened = open(QStringLiteral("feature-b"));
        QVERIFY(reopened);
        QCOMPARE(reopened->number, 3);
    }

    void conflictsAreRefused()
    {
        commitOn(QStringLiteral("one"), QStringLiteral("README"), "one\n");
        commitOn(QStringLiteral("two"), QStringLiteral("README"), "two\n");
        QVERIFY(open(QStringLiteral("one")));
        QVERIFY(open(QStringLiteral("two")));
        auto open = runCall(forge().openPullRequests());
        QVERIFY(open);
        QCOMPARE(open->size(), 2);
        QVERIFY(runCall(forge().merge(open->at(0).number, MergeRequest{})));
        auto conflict = runCall(forge().merge(open->at(1).number, MergeRequest{}));
        QVERIFY(!conflict);
        QCOMPARE(conflict.error().code, ErrorCode::Conflict);
        QVERIFY(!runCall(forge().merge(open->at(1).number, MergeRequest{QStringLiteral("rebase"), QString(), QString(), QString()})));
        QCOMPARE(runCall(forge().pullRequest(999)).error().code, ErrorCode::NotFound);
    }
};

QTEST_GUILESS_MAIN(tst_LocalForge)
#include "tst_localforge.moc"
