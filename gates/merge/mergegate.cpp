// SPDX-License-Identifier: Apache-2.0
#include "mergegate.h"

#include "gitrun.h"
#include "mergeprogress.h"
#include "requiredcheck.h"

#include <sluice/forge.h>
#include <sluice/repository.h>
#include <sluice/services.h>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QPointer>
#include <QProcess>
#include <QTimer>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace Sluice::Merge {

namespace {
// The project repository's turn: the lock the host holds while it fetches into the repository
// (GIT_COMMON_DIR/sluice-fetch.lock, taken by every Sluice process on the machine). A worktree
// being added has a HEAD that is no object yet; a fetch at that moment reads it through its
// connectivity check and fails ("bad object worktrees/<id>/HEAD"), failing a task's step.
class RepositoryTurn
{
public:
    ~RepositoryTurn() { give(); }
    /// Takes the turn if nobody holds it; an empty string, or why it cannot be taken at all.
    bool tryTake(const QString &commonDir, QString *error)
    {
        if (m_fd < 0) {
            m_fd = ::open(QFile::encodeName(QDir(commonDir).filePath(QStringLiteral("sluice-fetch.lock"))).constData(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (m_fd < 0) {
                *error = QString::fromLocal8Bit(strerror(errno));
                return false;
            }
        }
        if (::flock(m_fd, LOCK_EX | LOCK_NB) == 0)
            return true;
        if (errno != EWOULDBLOCK && errno != EINTR)
            *error = QString::fromLocal8Bit(strerror(errno));
        return false;
    }
    void give()
    {
        if (m_fd >= 0)
            ::close(m_fd);
        m_fd = -1;
    }

private:
    int m_fd = -1;
};
} // namespace


using Forges::GitResult;

namespace {

std::chrono::milliseconds duration(const QVariantMap &s, const char *key)
{
    return std::chrono::milliseconds(s.value(QLatin1String(key)).toLongLong());
}

QString shortSha(const QString &sha)
{
    return sha.left(12);
}

// Everything one evaluation needs from the instance, copied so the run does not reach back.
struct RunContext {
    QPointer<Forge> forge;
    std::shared_ptr<RepositoryService> repository;
    LeaseService *leases = nullptr;
    StateStore *state = nullptr;
    const Clock *clock = nullptr;
    const QLoggingCategory *log = nullptr;
    ProjectInfo project;
    MergeSettings settings;
};

/**
 * One evaluation, a chain of asynchronous steps: read the pull request → take the lease →
 * look at the worktree → fetch the target → rebase if behind → push → wait for the forge to
 * show the head and for the checks → read the pull request again → merge → see it merged →
 * release the lease. Each step records a progress marker; a re-drive skips what the marker
 * and the outside state say is done.
 */
class MergeRun final : public GateRun
{
public:
    MergeRun(RunContext context, GateRequest request)
        : m_ctx(std::move(context))
        , m_request(std::move(request))
        , m_resource(QStringLiteral("merge:%1:%2").arg(m_ctx.project.id, m_ctx.project.targetBranch))
    {
    }

protected:
    void doStart() override
    {
        if (!m_ctx.forge)
            return conclude(GateVerdict::error(QStringLiteral("the project has no forge connector (repository.forge) to merge through")));
        if (!m_ctx.leases || !m_ctx.state)
            return conclude(GateVerdict::error(QStringLiteral("the merge gate needs the host's store (merge lease and progress markers), and this host has none")));
        if (m_request.task.id <= 0 || m_request.task.branch.isEmpty())
            return conclude(GateVerdict::error(QStringLiteral("the task has no id or no branch to merge")));
        // The merge works in a worktree of the project's repository that belongs to the host,
        // never in the agent's working copy (docs/adr/0013-task-working-copies.md).
        if (!m_ctx.repository)
            return conclude(GateVerdict::error(QStringLiteral("the merge gate needs the project's repository (repository.path)")));
        m_scratch = m_ctx.repository->scratchPath(m_request.task.id);
        if (m_scratch.isEmpty())
            return conclude(GateVerdict::error(QStringLiteral("the host gives the merge gate no place to work in")));
        if (m_request.task.headSha.isEmpty())
            return conclude(GateVerdict::error(QStringLiteral("the task has no recorded head to merge yet")));
        m_started = now();
        readPull([this](const PullRequest &pr) { firstRead(pr); });
    }

    // The host gave up on this run (deadline, shutdown): stop every process and call, and let
    // no continuation start another step.
    void doCancel() override
    {
        m_timer.stop();
        for (QProcess *process : findChildren<QProcess *>(QString(), Qt::FindDirectChildrenOnly))
            process->kill();
        for (PluginJob *job : findChildren<PluginJob *>(QString(), Qt::FindDirectChildrenOnly))
            job->cancel();
    }

private:
    QDateTime now() const { return m_ctx.clock->now(); }
    const QLoggingCategory &log() const { return *m_ctx.log; }
    bool elapsed(const QDateTime &since, std::chrono::milliseconds limit) const { return since.msecsTo(now()) >= limit.count(); }

    // Every verdict goes through here: a run that does not pass gives the lease back (the
    // engine would on the rollback that follows; doing it now frees the target sooner).
    void conclude(GateVerdict verdict)
    {
        if (isFinished() || isCancelled())
            return; // the host has its own verdict for a cancelled run (and the engine releases the lease)
        if (m_ctx.leases && m_request.task.id > 0 && verdict.result() != GateVerdict::Result::Pass) {
            if (auto released = m_ctx.leases->release(m_resource, m_request.task.id); !released)
                qCWarning(log()) << "task" << m_request.task.id << "could not release" << m_resource << released.error().toString();
        }
        QJsonObject ev = verdict.evidence();
        ev.insert(QStringLiteral("lease"), m_resource);
        if (m_pull > 0)
            ev.insert(QStringLiteral("pullRequest"), m_pull);
        if (!m_head.isEmpty()) {
            ev.insert(QStringLiteral("head"), m_head);
            ev.insert(QStringLiteral("base"), m_base);
            ev.insert(QStringLiteral("previousHead"), m_previous);
        }
        if (m_waitedFor > 0)
            ev.insert(QStringLiteral("leaseWaitedFor"), m_waitedFor);
        if (!m_checks.isEmpty())
            ev.insert(QStringLiteral("checks"), m_checks);
        verdict.setEvidence(ev);
        qCInfo(log()).noquote() << "task" << m_request.task.id << GateVerdict::resultName(verdict.result()) << verdict.reason();
        finishWith(verdict);
    }

    void later(std::function<void()> next)
    {
        m_timer.disconnect();
        m_timer.setSingleShot(true);
        QObject::connect(&m_timer, &QTimer::timeout, this, [this, next = std::move(next)] {
            if (!isCancelled())
                next();
        });
        m_timer.start(int(m_ctx.settings.pollInterval.count()));
    }

    void setProgress(MergeStep step)
    {
        if (m_progress && m_progress->head == m_head && m_progress->step >= step)
            return; // a re-drive passing a step it had reached
        m_progress = MergeProgress{step, m_head, m_base, m_previous, m_pull};
        if (auto w = writeProgress(*m_ctx.state, m_request.task.id, *m_progress); !w)
            qCWarning(log()) << "task" << m_request.task.id << "could not record merge progress" << w.error().toString();
        else
            qCDebug(log()) << "task" << m_request.task.id << "merge progress" << mergeStepName(step) << m_head;
    }

    bool reached(MergeStep step) const { return m_progress && m_progress->step >= step; }

    // --- the forge --------------------------------------------------------------------

    template<typename T>
    void call(std::unique_ptr<AsyncCall<T>> job, std::function<void(const Result<T> &)> done)
    {
        Ci::runAsync<T>(std::move(job), this, [this, done = std::move(done)](const Result<T> &r) {
            if (!isCancelled())
                done(r);
        });
    }

    // The task's pull request, checked for the fields the merge relies on; any doubt is an error.
    void readPull(std::function<void(const PullRequest &)> next)
    {
        if (!m_ctx.forge)
            return conclude(GateVerdict::error(QStringLiteral("the forge connector went away")));
        qint64 number = m_pull > 0 ? m_pull : m_request.task.pullRequest;
        const QString pullKey = QStringLiteral("pull/%1").arg(m_request.task.id);
        if (number <= 0) {
            // Found by its branch on an earlier run: a merged pull request is no longer listed as open.
            auto stored = m_ctx.state->value(pullKey);
            if (!stored)
                return conclude(GateVerdict::error(QStringLiteral("cannot read the state store: %1").arg(stored.error().message)));
            if (*stored)
                number = (*stored)->toLongLong();
        }
        auto checked = [this, next, number, pullKey](const PullRequest &pr) {
            if (pr.number <= 0 || (number > 0 && pr.number != number) || pr.headSha.isEmpty()
                || (pr.state != QLatin1String("open") && pr.state != QLatin1String("closed")))
                return conclude(GateVerdict::error(QStringLiteral("the forge answered a malformed pull request for #%1 (number %2, state '%3', head '%4')")
                                                       .arg(number).arg(pr.number).arg(pr.state, pr.headSha)));
            if (number <= 0) {
                if (auto w = m_ctx.state->setValue(pullKey, QByteArray::number(pr.number)); !w)
                    return conclude(GateVerdict::error(QStringLiteral("cannot record pull request #%1: %2").arg(pr.number).arg(w.error().message)));
            }
            m_pull = pr.number;
            next(pr);
        };
        if (number > 0) {
            return call<PullRequest>(m_ctx.forge->pullRequest(number), [this, checked, number](const Result<PullRequest> &pr) {
                if (!pr)
                    return conclude(GateVerdict::error(QStringLiteral("cannot read pull request #%1: %2").arg(number).arg(pr.error().message)));
                checked(*pr);
            });
        }
        call<QList<PullRequest>>(m_ctx.forge->openPullRequests(), [this, checked](const Result<QList<PullRequest>> &open) {
            if (!open)
                return conclude(GateVerdict::error(QStringLiteral("cannot list the open pull requests: %1").arg(open.error().message)));
            for (const PullRequest &pr : *open) {
                if (pr.headBranch == m_request.task.branch)
                    return checked(pr);
            }
            conclude(GateVerdict::error(QStringLiteral("no open pull request of branch '%1' (the task records none)").arg(m_request.task.branch)));
        });
    }

    // Returns true when @p pr ended the run: merged (pass, no second merge) or closed (fail).
    bool settledAlready(const PullRequest &pr)
    {
        if (pr.merged) {
            if (m_ctx.leases)
                (void)m_ctx.leases->release(m_resource, m_request.task.id);
            if (!m_head.isEmpty())
                setProgress(MergeStep::Merged);
            const QString reason = m_mergeCalled
                ? QStringLiteral("merged pull request #%1 at %2 with '%3' (%4)").arg(pr.number).arg(shortSha(m_head), m_ctx.settings.method, shortSha(pr.mergeCommit))
                : QStringLiteral("pull request #%1 is already merged (%2); nothing to do").arg(pr.number).arg(shortSha(pr.mergeCommit));
            if (m_head.isEmpty()) {
                // Merged before this run looked at the worktree (by an earlier run whose answer
                // was lost, or by someone else): the head the forge merged is the task's head now.
                m_head = m_previous = pr.headSha;
            }
            conclude(GateVerdict::pass(reason, QJsonObject{{QStringLiteral("mergeCommit"), pr.mergeCommit},
                                                           {QStringLiteral("alreadyMerged"), !m_mergeCalled},
                                                           {QStringLiteral("rebased"), m_rebased},
                                                           {QStringLiteral("pushed"), m_pushed}}));
            return true;
        }
        if (pr.state == QLatin1String("closed")) {
            conclude(GateVerdict::fail(QStringLiteral("pull request #%1 was closed without being merged").arg(pr.number),
                                       {Finding{QStringLiteral("merge/closed"), QStringLiteral("pull request #%1 is closed").arg(pr.number), {}, 0, QStringLiteral("blocking")}}));
            return true;
        }
        return false;
    }

    void firstRead(const PullRequest &pr)
    {
        if (settledAlready(pr))
            return;
        if (!pr.baseBranch.isEmpty() && pr.baseBranch != m_ctx.project.targetBranch)
            return conclude(GateVerdict::fail(QStringLiteral("pull request #%1 targets '%2', not the project's target branch '%3'")
                                                  .arg(pr.number).arg(pr.baseBranch, m_ctx.project.targetBranch)));
        takeLease();
    }

    // --- the lease --------------------------------------------------------------------

    void takeLease()
    {
        auto hold = m_ctx.leases->acquire(m_resource, m_request.task.id, m_ctx.settings.leaseTtl);
        if (!hold)
            return conclude(GateVerdict::error(QStringLiteral("cannot take the merge lease %1: %2").arg(m_resource, hold.error().message)));
        if (hold->held) {
            qCInfo(log()) << "task" << m_request.task.id << "holds" << m_resource;
            return prepareScratch();
        }
        // Another task merging is not this change's fault: "not yet", no rollback, no retry spent;
        // the engine evaluates the edge again after wait_retry.
        if (elapsed(m_started, m_ctx.settings.leaseWait)) {
            const QString who = hold->holderNode.isEmpty()
                ? QStringLiteral("is promised to task %1, which asked for it first").arg(hold->holderTask)
                : QStringLiteral("is held by task %1 (node %2, until %3)").arg(hold->holderTask).arg(hold->holderNode, hold->expiresAt.toString(Qt::ISODate));
            return conclude(GateVerdict::wait(QStringLiteral("the merge lease %1 %2; waited %3 ms, looking again in %4 ms")
                                                  .arg(m_resource, who).arg(m_ctx.settings.leaseWait.count()).arg(m_ctx.settings.waitRetry.count()),
                                              m_ctx.settings.waitRetry, QJsonObject{{QStringLiteral("leaseHolderTask"), hold->holderTask}}));
        }
        qCDebug(log()) << "task" << m_request.task.id << "waits for" << m_resource << "held by task" << hold->holderTask;
        m_waitedFor = hold->holderTask;
        later([this] { takeLease(); });
    }

    // Renews the hold (acquire is idempotent for the task) before a wait's next look.
    bool keepLease()
    {
        auto hold = m_ctx.leases->acquire(m_resource, m_request.task.id, m_ctx.settings.leaseTtl);
        if (!hold) {
            conclude(GateVerdict::error(QStringLiteral("cannot renew the merge lease %1: %2").arg(m_resource, hold.error().message)));
            return false;
        }
        if (!hold->held) {
            conclude(GateVerdict::error(QStringLiteral("lost the merge lease %1 to task %2").arg(m_resource).arg(hold->holderTask)));
            return false;
        }
        return true;
    }

    // --- git in the host's worktree of the task branch ---------------------------------

    void git(const QStringList &arguments, const QList<int> &allowed, std::function<void(const GitResult &)> next)
    {
        runGitIn(QDir(m_scratch).filePath(QStringLiteral(".git")), QStringList{QStringLiteral("--work-tree"), m_scratch} + arguments, allowed,
                 std::move(next));
    }

    // git in the project's repository itself.
    void repositoryGit(const QStringList &arguments, const QList<int> &allowed, std::function<void(const GitResult &)> next)
    {
        const QString path = m_ctx.repository->path();
        const QString dotGit = QDir(path).filePath(QStringLiteral(".git"));
        runGitIn(QFileInfo(dotGit).isDir() ? dotGit : path, arguments, allowed, std::move(next));
    }

    void runGitIn(const QString &gitDir, const QStringList &arguments, const QList<int> &allowed, std::function<void(const GitResult &)> next)
    {
        Forges::runGit(m_ctx.settings.git, gitDir, arguments,
                       m_ctx.settings.gitTimeoutMs, this, [this, arguments, allowed, next](Result<GitResult> r) {
                           if (isCancelled())
                               return;
                           if (!r)
                               return conclude(GateVerdict::error(QStringLiteral("git %1: %2").arg(arguments.value(0), r.error().message)));
                           if (r->exitCode != 0 && !allowed.contains(r->exitCode))
                               return conclude(GateVerdict::error(QStringLiteral("git %1 failed (exit code %2): %3")
                                                                      .arg(arguments.join(QLatin1Char(' '))).arg(r->exitCode)
                                                                      .arg(QString::fromUtf8(r->err.left(500)).trimmed())));
                           next(*r);
                       });
    }

    static QString firstLine(const QByteArray &out) { return QString::fromUtf8(out).section(QLatin1Char('\n'), 0, 0).trimmed(); }

    static QString readSmall(const QString &path)
    {
        QFile f(path);
        return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.read(4096)).trimmed() : QString();
    }

    // The task branch checked out in a worktree of the project's repository kept for this
    // task (made on the first evaluation; a later one finds it, with a rebase a crash left).
    void prepareScratch()
    {
        if (QFileInfo::exists(m_scratch + QStringLiteral("/.git"))) {
            // Its registration in the project's repository may be gone (cleared as a dead
            // half-made worktree, see ProjectRepository): then it is made anew.
            const QString link = readSmall(m_scratch + QStringLiteral("/.git"));
            if (!link.startsWith(QLatin1String("gitdir: ")) || QFileInfo::exists(link.mid(8)))
                return inspectWorktree();
            qCWarning(log()).noquote() << "task" << m_request.task.id << "worktree" << m_scratch << "lost its registration; made anew";
            QDir(m_scratch).removeRecursively();
        }
        if (!QDir().mkpath(QFileInfo(m_scratch).absolutePath()))
            return conclude(GateVerdict::error(QStringLiteral("cannot create %1").arg(QFileInfo(m_scratch).absolutePath())));
        QString error;
        const QString path = m_ctx.repository->path();
        const QString dotGit = QDir(path).filePath(QStringLiteral(".git"));
        if (!m_turn.tryTake(QFileInfo(dotGit).isDir() ? dotGit : path, &error)) {
            if (!error.isEmpty())
                return conclude(GateVerdict::error(QStringLiteral("cannot take the turn of the project's repository %1: %2").arg(path, error)));
            if (!m_turnAsked.isValid())
                m_turnAsked = now();
            // A fetch is under way: look again. A holder stopped rather than dead keeps the
            // lock; past 2 s the add goes ahead without its turn (as the host's fetches do).
            if (!elapsed(m_turnAsked, std::chrono::seconds(2)))
                return later([this] { prepareScratch(); });
            qCWarning(log()).noquote() << "task" << m_request.task.id << "- the turn of" << path << "has been held for over 2 s; adding the worktree without it";
        }
        // --force: another node on this machine (sharing the local forge's repository) may
        // keep a worktree of the same branch in its own state directory; the merge lease
        // keeps them from working at once, and each is reset to the branch before a look.
        // Twice: a registration of this path whose directory is gone — even one a crash left
        // locked half-made — is taken over. Never `worktree prune` here: it deletes the
        // registration of any other task's worktree being added at that moment.
        repositoryGit({QStringLiteral("worktree"), QStringLiteral("add"), QStringLiteral("--quiet"), QStringLiteral("--force"), QStringLiteral("--force"),
                       m_scratch, m_request.task.branch},
                      {}, [this](const GitResult &) {
                          m_turn.give();
                          inspectWorktree();
                      });
    }

    // A crash can leave a rebase in progress. If it had finished its work — every commit
    // picked, the branch moved onto the target — and only its clean-up was lost (git killed
    // by the broken pipe of its dead parent, right after the post-rewrite hook), it is kept
    // (`rebase --quit`): rebasing again would make new commits for the same change. A rebase
    // stopped half-way is undone (`rebase --abort`): the branch is back at its old head.
    void inspectWorktree()
    {
        git({QStringLiteral("rev-parse"), QStringLiteral("--absolute-git-dir")}, {}, [this](const GitResult &dir) {
            const QString gitDir = firstLine(dir.out);
            const QString merge = gitDir + QStringLiteral("/rebase-merge");
            if (QFileInfo::exists(gitDir + QStringLiteral("/rebase-apply")))
                return endRebase(QStringLiteral("--abort"));
            if (!QFileInfo::exists(merge))
                return inspectCheckout();
            const QString branch = readSmall(merge + QStringLiteral("/head-name"));
            const QString onto = readSmall(merge + QStringLiteral("/onto"));
            const QString original = readSmall(merge + QStringLiteral("/orig-head"));
            bool todoLeft = false;
            for (const QString &line : readSmall(merge + QStringLiteral("/git-rebase-todo")).split(QLatin1Char('\n'))) {
                const QString l = line.trimmed();
                todoLeft = todoLeft || (!l.isEmpty() && !l.startsWith(QLatin1Char('#')));
            }
            if (todoLeft || !branch.startsWith(QLatin1String("refs/heads/")) || onto.isEmpty() || original.isEmpty())
                return endRebase(QStringLiteral("--abort"));
            git({QStringLiteral("rev-parse"), QStringLiteral("--verify"), branch + QStringLiteral("^{commit}")}, {}, [this, onto, original](const GitResult &at) {
                const QString moved = firstLine(at.out);
                if (moved == original)
                    return endRebase(QStringLiteral("--abort"));
                git({QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), onto, moved}, {1}, [this, original](const GitResult &ancestor) {
                    if (ancestor.exitCode == 0)
                        m_keptFrom = original; // the rebase of that head is kept
                    endRebase(ancestor.exitCode == 0 ? QStringLiteral("--quit") : QStringLiteral("--abort"));
                });
            });
        });
    }

    void endRebase(const QString &how)
    {
        qCInfo(log()) << "task" << m_request.task.id << "found a rebase left in progress by a crash:"
                      << (how == QLatin1String("--quit") ? "it had finished, keeping its result" : "undoing it");
        git({QStringLiteral("rebase"), how}, {1, 128}, [this](const GitResult &) { inspectCheckout(); });
    }

    // The worktree is the host's: whatever it holds is made to match the branch (the branch
    // moves under it when the host takes a new head from the task's working copy).
    void inspectCheckout()
    {
        git({QStringLiteral("reset"), QStringLiteral("--hard"), QStringLiteral("--quiet")}, {}, [this](const GitResult &) {
            git({QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("HEAD^{commit}")}, {}, [this](const GitResult &head) {
                m_head = firstLine(head.out);
                m_previous = m_keptFrom.isEmpty() ? m_head : m_keptFrom;
                fetchTarget();
            });
        });
    }

    void fetchTarget()
    {
        const QString target = m_ctx.project.targetBranch;
        auto resolved = [this](const GitResult &sha) {
            m_base = firstLine(sha.out);
            auto marker = readProgress(*m_ctx.state, m_request.task.id, m_head);
            if (!marker)
                return conclude(GateVerdict::error(QStringLiteral("cannot read the merge progress of task %1: %2").arg(m_request.task.id).arg(marker.error().message)));
            if (*marker && (*marker)->base == m_base) {
                m_progress = **marker;
                m_previous = m_progress->previous;
                qCInfo(log()) << "task" << m_request.task.id << "resumes the merge of" << m_head << "after" << mergeStepName(m_progress->step);
            }
            // What is merged is what the other gates judged: the task's recorded head, or this
            // gate's own rebase of it.
            if (m_head != m_request.task.headSha && m_previous != m_request.task.headSha
                && !(m_progress && m_progress->previous == m_request.task.headSha))
                return judgeMovedBranch();
            if (reached(MergeStep::Pushed))
                return waitForHead();
            rebaseIfBehind();
        };
        if (m_ctx.settings.remote.isEmpty())
            return git({QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("refs/heads/%1^{commit}").arg(target)}, {}, resolved);
        // Into the object store this worktree shares with the project's repository, where the
        // host may be fetching at the same moment: kept as a pack, the objects appear whole
        // (a loose commit without its trees yet would fail the host's fetch of the same tip).
        // --refmap= : into FETCH_HEAD only. Without it git also updates the repository's
        // refs/remotes/<remote>/<target> ("opportunistic" update) outside the host's fetch
        // lock, and the host's own fetch of the target fails ("cannot lock ref").
        git({QStringLiteral("-c"), QStringLiteral("fetch.unpackLimit=1"), QStringLiteral("fetch"), QStringLiteral("--no-tags"), QStringLiteral("--quiet"),
             QStringLiteral("--refmap="), m_ctx.settings.remote, QStringLiteral("refs/heads/%1").arg(target)},
            {},
            [this, resolved](const GitResult &) {
                git({QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("FETCH_HEAD^{commit}")}, {}, resolved);
            });
    }

    /*
     * The branch is not at the recorded head, and no record of ours says why. Several nodes
     * share the local forge's repository (and a forge's branch): a node stopped or killed
     * after its rebase moved the branch but before it recorded that leaves exactly this. Such
     * a rebase of the recorded head onto the target is kept — rebasing again would make new
     * commits for the same change — when every commit it adds over the target is
     * patch-equivalent to one of the recorded head and the other way round (git cherry both
     * ways). Anything else is not what the other gates judged: an error.
     */
    void judgeMovedBranch()
    {
        const QString recorded = m_request.task.headSha;
        auto refuse = [this, recorded] {
            conclude(GateVerdict::error(QStringLiteral("the task branch in the project's repository is at %1, not at the task's "
                                                       "recorded head %2")
                                            .arg(shortSha(m_head), shortSha(recorded))));
        };
        auto allEquivalent = [](const GitResult &r) {
            for (const QByteArray &line : r.out.split('\n')) {
                if (!line.trimmed().isEmpty() && !line.startsWith("- "))
                    return false;
            }
            return true;
        };
        git({QStringLiteral("merge-base"), m_head, m_base}, {1}, [this, recorded, refuse, allEquivalent](const GitResult &base) {
            const QString onto = firstLine(base.out);
            if (base.exitCode != 0 || onto.isEmpty() || onto == m_head)
                return refuse();
            // Every commit of the recorded head has its equivalent on the branch ...
            git({QStringLiteral("cherry"), m_head, recorded}, {128}, [this, recorded, onto, refuse, allEquivalent](const GitResult &mine) {
                if (mine.exitCode != 0 || !allEquivalent(mine))
                    return refuse();
                // ... and the branch adds nothing over the target that the recorded head lacks.
                git({QStringLiteral("cherry"), recorded, m_head, onto}, {128}, [this, recorded, refuse, allEquivalent](const GitResult &theirs) {
                    if (theirs.exitCode != 0 || !allEquivalent(theirs) || theirs.out.trimmed().isEmpty())
                        return refuse();
                    qCInfo(log()) << "task" << m_request.task.id << "finds its branch at" << m_head << ", a rebase of its recorded head"
                                  << recorded << "left unrecorded by an earlier evaluation (another node, or a crash): keeping it";
                    m_keptFrom = recorded;
                    m_previous = recorded;
                    if (reached(MergeStep::Pushed))
                        return waitForHead();
                    rebaseIfBehind();
                });
            });
        });
    }

    void rebaseIfBehind()
    {
        git({QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), m_base, m_head}, {1}, [this](const GitResult &ancestor) {
            if (ancestor.exitCode == 0) {
                setProgress(MergeStep::Rebased);
                return push();
            }
            qCInfo(log()) << "task" << m_request.task.id << "is behind" << m_ctx.project.targetBranch << "; rebasing" << m_head << "onto" << m_base;
            git({QStringLiteral("rebase"), QStringLiteral("--no-autosquash"), m_base}, {1, 128}, [this](const GitResult &rebase) {
                if (rebase.exitCode != 0)
                    return rebaseFailed(rebase);
                git({QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("HEAD^{commit}")}, {}, [this](const GitResult &head) {
                    m_head = firstLine(head.out);
                    m_rebased = true;
                    setProgress(MergeStep::Rebased);
                    push();
                });
            });
        });
    }

    void rebaseFailed(const GitResult &rebase)
    {
        git({QStringLiteral("diff"), QStringLiteral("--name-only"), QStringLiteral("--diff-filter=U")}, {}, [this, rebase](const GitResult &diff) {
            QStringList files;
            for (const QByteArray &line : diff.out.split('\n')) {
                if (!line.trimmed().isEmpty())
                    files.append(QString::fromUtf8(line.trimmed()));
            }
            // Leave the worktree as it was: the task's head, no rebase in progress.
            git({QStringLiteral("rebase"), QStringLiteral("--abort")}, {1, 128}, [this, files, rebase](const GitResult &) {
                const QString target = QStringLiteral("%1 (%2)").arg(m_ctx.project.targetBranch, shortSha(m_base));
                if (files.isEmpty())
                    return conclude(GateVerdict::error(QStringLiteral("rebasing onto %1 failed: %2").arg(target, QString::fromUtf8(rebase.err.left(500)).trimmed())));
                QList<Finding> findings;
                for (const QString &f : files)
                    findings.append(Finding{QStringLiteral("merge/conflict"), QStringLiteral("%1 conflicts with %2").arg(f, target), f, 0, QStringLiteral("blocking")});
                conclude(GateVerdict::fail(QStringLiteral("the branch does not rebase onto %1: conflicts in %2").arg(target, files.join(QStringLiteral(", "))),
                                           findings, QJsonObject{{QStringLiteral("conflicts"), QJsonArray::fromStringList(files)}}));
            });
        });
    }

    void push()
    {
        if (m_ctx.settings.remote.isEmpty()) {
            setProgress(MergeStep::Pushed);
            return waitForHead();
        }
        const QString ref = QStringLiteral("refs/heads/%1").arg(m_request.task.branch);
        git({QStringLiteral("ls-remote"), m_ctx.settings.remote, ref}, {}, [this, ref](const GitResult &remote) {
            const QString there = firstLine(remote.out).section(QLatin1Char('\t'), 0, 0);
            if (there == m_head) {
                setProgress(MergeStep::Pushed);
                return waitForHead();
            }
            // Replace only the head the gates judged (before this run's rebase): a push someone
            // else made is never pushed over, and it is judged before anything merges.
            if (!there.isEmpty() && movedByOthers(there))
                return movedAtForge(there);
            git({QStringLiteral("push"), QStringLiteral("--quiet"), QStringLiteral("--force-with-lease=%1:%2").arg(ref, there), m_ctx.settings.remote,
                 QStringLiteral("%1:%2").arg(m_head, ref)},
                {}, [this](const GitResult &) {
                    m_pushed = true;
                    setProgress(MergeStep::Pushed);
                    if (!m_ctx.repository)
                        return waitForHead();
                    // Said where the host's publish step looks (ProjectRepository::sluicePushed()):
                    // the rebased head at the forge is Sluice's own push, not someone else's.
                    repositoryGit({QStringLiteral("update-ref"), QStringLiteral("-m"), QStringLiteral("sluice: merge gate pushed"),
                                   QStringLiteral("refs/sluice/pushed/%1").arg(m_request.task.branch), m_head},
                                  {}, [this](const GitResult &) { waitForHead(); });
                });
        });
    }

    // Whether @p sha at the forge is none of the heads this run knows (the one it merges, the
    // judged head it was rebased from): someone else pushed the task branch.
    bool movedByOthers(const QString &sha) const
    {
        return !sha.isEmpty() && sha != m_head && sha != m_previous && sha != m_request.task.headSha;
    }

    // Someone else pushed the task branch while this run held the lease: nothing is merged or
    // pushed over it. A wait, not a failure: the next evaluation's publish step takes the
    // pushed head as the task's (or blocks the task), and every gate judges it again.
    void movedAtForge(const QString &sha)
    {
        conclude(GateVerdict::wait(QStringLiteral("the task branch %1 was moved at the forge to %2 by someone else while merging %3; "
                                                  "nothing was merged, the task judges the pushed head first")
                                       .arg(m_request.task.branch, shortSha(sha), shortSha(m_head)),
                                   std::chrono::milliseconds(1000), QJsonObject{{QStringLiteral("forgeHead"), sha}}));
    }

    // --- the head at the forge and its checks ------------------------------------------

    void waitForHead()
    {
        if (!m_waitStarted.isValid())
            m_waitStarted = now();
        readPull([this](const PullRequest &pr) {
            if (settledAlready(pr))
                return;
            if (pr.headSha == m_head)
                return checks();
            if (movedByOthers(pr.headSha))
                return movedAtForge(pr.headSha);
            if (elapsed(m_waitStarted, m_ctx.settings.checksTimeout))
                return conclude(GateVerdict::fail(QStringLiteral("pull request #%1 still shows head %2, not the pushed %3, after %4 ms")
                                                      .arg(pr.number).arg(shortSha(pr.headSha), shortSha(m_head)).arg(m_ctx.settings.checksTimeout.count())));
            later([this] {
                if (keepLease())
                    waitForHead();
            });
        });
    }

    void checks()
    {
        if (!m_ctx.settings.checks || reached(MergeStep::Checked))
            return mergeNow();
        if (!m_ctx.forge)
            return conclude(GateVerdict::error(QStringLiteral("the forge connector went away")));
        Ci::checkRequired(*m_ctx.forge, *m_ctx.settings.checks, m_head, m_ctx.project.targetBranch, this, [this](Result<Ci::RequiredCheck> check) {
            if (isCancelled())
                return;
            if (!check)
                return conclude(GateVerdict::error(check.error().message));
            if (check->green()) {
                Ci::forgetJudged(m_ctx.state, m_firstJudged, m_head);
                m_checks = check->verdict().evidence();
                setProgress(MergeStep::Checked);
                return mergeNow();
            }
            const GateVerdict judged = check->verdict();
            if (check->red()) {
                Ci::forgetJudged(m_ctx.state, m_firstJudged, m_head);
                return conclude(GateVerdict::fail(QStringLiteral("required checks are red on %1 head %2: %3")
                                                      .arg(m_rebased ? QStringLiteral("the rebased") : QStringLiteral("the"), shortSha(m_head), judged.reason()),
                                                  judged.findings(), judged.evidence()));
            }
            // Pending: the ci gate's rules. Past ci_timeout since this head was first judged (a
            // time kept in the state store, across evaluations and restarts) it fails; otherwise
            // this evaluation polls until checks_timeout and then hands back a wait, releasing
            // the lease so other tasks can merge meanwhile.
            auto since = Ci::firstJudged(m_ctx.state, m_firstJudged, m_head, now());
            if (!since)
                return conclude(GateVerdict::error(QStringLiteral("cannot read when %1 was first judged: %2").arg(shortSha(m_head), since.error().message)));
            const Ci::WaitPolicy policy{m_ctx.settings.ciTimeout, m_ctx.settings.waitRetry};
            const GateVerdict waiting = Ci::waitingVerdict(*check, policy, *since, now());
            if (waiting.result() != GateVerdict::Result::Wait) {
                Ci::forgetJudged(m_ctx.state, m_firstJudged, m_head);
                return conclude(waiting);
            }
            if (elapsed(m_waitStarted, m_ctx.settings.checksTimeout))
                return conclude(GateVerdict::wait(QStringLiteral("required checks still pending on %1 after %2 ms of this evaluation; %3")
                                                      .arg(shortSha(m_head)).arg(m_ctx.settings.checksTimeout.count()).arg(waiting.reason()),
                                                  m_ctx.settings.waitRetry, waiting.evidence()));
            later([this] {
                if (keepLease())
                    checks();
            });
        });
    }

    // --- the merge --------------------------------------------------------------------

    void mergeNow()
    {
        if (!keepLease())
            return;
        // Always read the pull request right before merging: a merge sent before a crash may
        // have gone through, and a second merge call is never sent for a merged one.
        readPull([this](const PullRequest &pr) {
            if (settledAlready(pr))
                return;
            if (pr.headSha != m_head && movedByOthers(pr.headSha))
                return movedAtForge(pr.headSha);
            if (pr.headSha != m_head)
                return conclude(GateVerdict::error(QStringLiteral("pull request #%1 moved to %2 while merging %3").arg(pr.number).arg(shortSha(pr.headSha), shortSha(m_head))));
            // The lease once more, right before the merge call: a node that was paused while
            // the read was out, and whose lease (and node) were taken over, merges nothing.
            if (!keepLease())
                return;
            setProgress(MergeStep::Merging);
            MergeRequest request;
            request.method = m_ctx.settings.method;
            request.expectedHeadSha = m_head;
            request.title = pr.title;
            m_mergeCalled = true;
            qCInfo(log()) << "task" << m_request.task.id << "merges #" << pr.number << "at" << m_head << "with" << request.method;
            call<MergeOutcome>(m_ctx.forge->merge(pr.number, request), [this, number = pr.number](const Result<MergeOutcome> &merged) {
                if (!merged) {
                    const QString reason = QStringLiteral("the forge did not merge pull request #%1: %2").arg(number).arg(merged.error().message);
                    // A refusal that passes by itself (the forge still computing mergeability,
                    // "try again later") or a forge not answering: not the change's fault, and the
                    // connector saw the pull request still unmerged. Wait and evaluate again; a real
                    // conflict shows in the next evaluation's rebase.
                    if (merged.error().code == ErrorCode::Network || merged.error().code == ErrorCode::Timeout)
                        return conclude(GateVerdict::wait(reason + QStringLiteral("; trying again in %1 s").arg(m_ctx.settings.waitRetry.count() / 1000),
                                                          m_ctx.settings.waitRetry, QJsonObject{{QStringLiteral("mergeRefusal"), merged.error().message}}));
                    if (merged.error().code == ErrorCode::Conflict)
                        return conclude(GateVerdict::fail(reason, {Finding{QStringLiteral("merge/refused"), merged.error().message, {}, 0, QStringLiteral("blocking")}}));
                    return conclude(GateVerdict::error(reason));
                }
                // The merge is seen only when the forge shows the pull request merged.
                readPull([this](const PullRequest &after) {
                    if (!settledAlready(after))
                        conclude(GateVerdict::error(QStringLiteral("the forge answered the merge of #%1, but shows it %2 and not merged").arg(after.number).arg(after.state)));
                });
            });
        });
    }

    RunContext m_ctx;
    GateRequest m_request;
    QString m_resource;
    QTimer m_timer;
    QDateTime m_started;
    QDateTime m_waitStarted;
    qint64 m_pull = 0;
    qint64 m_waitedFor = 0; // the task that held the lease while this one waited
    QString m_head;
    QString m_previous;
    QString m_base;
    QString m_scratch;  // the host's worktree of the task branch
    RepositoryTurn m_turn; // held while this gate adds its worktree (see RepositoryTurn)
    QDateTime m_turnAsked; // when this evaluation first asked for the turn
    QString m_keptFrom; // the head a rebase a crash left finished was made from
    std::optional<MergeProgress> m_progress;
    QJsonObject m_checks;
    QHash<QString, QDateTime> m_firstJudged; // only without a state store, which the gate refuses to run without
    bool m_rebased = false;
    bool m_pushed = false;
    bool m_mergeCalled = false;
};

} // namespace

Result<MergeSettings> MergeSettings::fromSettings(const QVariantMap &s)
{
    MergeSettings out;
    out.method = s.value(QStringLiteral("method"), QStringLiteral("merge")).toString();
    out.remote = s.value(QStringLiteral("remote")).toString();
    out.leaseTtl = duration(s, "lease_ttl");
    out.leaseWait = duration(s, "lease_wait");
    out.waitRetry = duration(s, "wait_retry");
    out.pollInterval = duration(s, "poll_interval");
    out.checksTimeout = duration(s, "checks_timeout");
    if (s.contains(QStringLiteral("ci_timeout")))
        out.ciTimeout = duration(s, "ci_timeout");
    out.git = s.value(QStringLiteral("git"), QStringLiteral("git")).toString();
    out.gitTimeoutMs = int(s.value(QStringLiteral("git_timeout")).toLongLong());
    if (out.remote.startsWith(QLatin1Char('-')))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("remote: '%1' is not a remote").arg(out.remote));
    if (out.leaseWait.count() < 0)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("lease_wait: must not be negative"));
    if (s.value(QStringLiteral("retest"), true).toBool()) {
        auto spec = Ci::RequiredSpec::fromSettings(s.value(QStringLiteral("checks")).toMap());
        if (!spec)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("checks.%1").arg(spec.error().message), spec.error().detail);
        out.checks = *spec;
    }
    return out;
}

MergeGate::MergeGate(const PluginContext &context, MergeSettings settings, QObject *parent)
    : Gate(context, parent)
    , m_settings(std::move(settings))
{
}

std::unique_ptr<GateRun> MergeGate::evaluate(const GateRequest &request)
{
    RunContext run;
    run.forge = context().forge();
    run.repository = context().repository();
    run.leases = context().leases();
    run.state = context().state();
    run.clock = &context().clock();
    run.log = &context().logging();
    run.project = context().project();
    run.settings = m_settings;
    return std::make_unique<MergeRun>(std::move(run), request);
}

Result<std::unique_ptr<PluginInstance>> MergeGate::create(const PluginContext &context)
{
    auto settings = MergeSettings::fromSettings(context.settings());
    if (!settings)
        return std::unexpected(settings.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<MergeGate>(context, *settings));
}

} // namespace Sluice::Merge
