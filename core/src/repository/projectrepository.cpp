// SPDX-License-Identifier: Apache-2.0
#include "repository/projectrepository.h"

#include <QCryptographicHash>
#include <QDeadlineTimer>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLoggingCategory>
#include <QProcess>
#include <QProcessEnvironment>
#include <QThread>
#include <QRegularExpression>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace Sluice {

Q_LOGGING_CATEGORY(lcRepository, "sluice.core.repository", QtInfoMsg)

namespace {
const QString ZeroSha = QStringLiteral("0000000000000000000000000000000000000000");

QString trimmed(const QByteArray &bytes)
{
    return QString::fromUtf8(bytes).trimmed();
}

// One fetch at a time into a repository, across the threads of this process and every other
// process on this machine (daemons of several nodes sharing a local repository, the CLI). Git
// does not make concurrent fetches into one repository safe: two fetches of the same new tip
// both read the old value of the remote-tracking ref and the later one fails ("cannot lock
// ref … is at X but expected Y"), and one can find the tip's commit written as a loose object
// by the other before that one's trees are, skip the transfer and fail its connectivity check
// ("did not send all necessary objects"). Either failed a task's publish step. Held for the
// life of the object: an exclusive flock on GIT_COMMON_DIR/sluice-fetch.lock.
class FetchLock
{
public:
    explicit FetchLock(const QString &repository)
    {
        auto dir = runHostGit(repository, {QStringLiteral("rev-parse"), QStringLiteral("--path-format=absolute"), QStringLiteral("--git-common-dir")});
        if (!dir) {
            m_error = dir.error();
            return;
        }
        m_commonDir = trimmed(dir->out);
        const QByteArray path = QFile::encodeName(QDir(m_commonDir).filePath(QStringLiteral("sluice-fetch.lock")));
        m_fd = ::open(path.constData(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (m_fd < 0) {
            m_error = Error{ErrorCode::Io, QStringLiteral("cannot open the fetch lock %1: %2").arg(QFile::decodeName(path), QString::fromLocal8Bit(strerror(errno)))};
            return;
        }
        // Bounded: a holder that is stopped rather than dead (SIGSTOP, a frozen VM, a node
        // being taken over) keeps its flock, and waiting for it would stop this node too. Past
        // the bound the fetch goes ahead without its turn — the races above are rare, and at
        // worst fail that one step, as they did before there was a lock.
        QDeadlineTimer deadline(std::chrono::seconds(2));
        while (::flock(m_fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) {
                m_error = Error{ErrorCode::Io, QStringLiteral("cannot lock %1: %2").arg(QFile::decodeName(path), QString::fromLocal8Bit(strerror(errno)))};
                return;
            }
            if (deadline.hasExpired()) {
                qCWarning(lcRepository).noquote() << "another process has held" << QFile::decodeName(path)
                                                  << "for over 2 s (stopped?); fetching without waiting for it";
                return;
            }
            QThread::msleep(20);
        }
    }
    ~FetchLock()
    {
        if (m_fd >= 0)
            ::close(m_fd); // releases the flock
    }
    FetchLock(const FetchLock &) = delete;
    FetchLock &operator=(const FetchLock &) = delete;
    [[nodiscard]] const std::optional<Error> &error() const { return m_error; }
    [[nodiscard]] const QString &commonDir() const { return m_commonDir; }

private:
    QString m_commonDir;
    int m_fd = -1;
    std::optional<Error> m_error;
};

// A `git worktree add` killed half-way (its process, or the node running it) leaves a
// registration locked "initializing" whose HEAD is no object, and every later fetch into the
// repository fails its connectivity check on it ("bad object worktrees/<id>/HEAD"). Sluice's
// own adds hold the FetchLock, so one found while holding it is dead: it is removed (the gate
// that owned it makes its worktree anew).
void clearDeadWorktreeAdds(const QString &repository, const QString &commonDir)
{
    const QDir admin(QDir(commonDir).filePath(QStringLiteral("worktrees")));
    if (!admin.exists())
        return;
    for (const QString &id : admin.entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
        QFile locked(admin.filePath(id + QStringLiteral("/locked")));
        if (!locked.open(QIODevice::ReadOnly) || !locked.read(64).startsWith("initializing"))
            continue;
        QFile gitdir(admin.filePath(id + QStringLiteral("/gitdir")));
        const QString dotGit = gitdir.open(QIODevice::ReadOnly) ? trimmed(gitdir.read(4096)) : QString();
        qCWarning(lcRepository).noquote() << "removing the registration of a worktree whose add never finished:" << admin.filePath(id)
                                          << (dotGit.isEmpty() ? QString() : QStringLiteral("(%1)").arg(QFileInfo(dotGit).path()));
        if (dotGit.isEmpty()
            || !runHostGit(repository, {QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"), QStringLiteral("--force"),
                                        QFileInfo(dotGit).path()}))
            QDir(admin.filePath(id)).removeRecursively();
    }
}

// `git fetch` into @p repository under its FetchLock. Fetched objects are always kept as a
// pack (fetch.unpackLimit=1): a pack appears whole when its index is renamed into place, so a
// process reading the shared object store without the lock (a gate's worktree fetching, an
// agent's working copy through alternates) never sees a commit before its trees.
// @p config: more `-c name=value` settings for this fetch.
Result<GitOutput> fetchInto(const QString &repository, const QStringList &arguments, const QList<int> &allowed = {},
                            const QStringList &config = {})
{
    FetchLock lock(repository);
    if (lock.error())
        return std::unexpected(*lock.error());
    clearDeadWorktreeAdds(repository, lock.commonDir());
    QStringList command{QStringLiteral("-c"), QStringLiteral("fetch.unpackLimit=1")};
    for (const QString &setting : config)
        command << QStringLiteral("-c") << setting;
    command << QStringLiteral("fetch");
    auto fetched = runHostGit(repository, command + arguments, allowed);
    // A ref moved under it by a git outside the lock (a person, a fetch that waited past the
    // bound): the fetch is idempotent, so once more reads the ref as it is now.
    const bool lostRefRace = fetched ? fetched->exitCode != 0 && fetched->err.contains("cannot lock ref")
                                     : fetched.error().detail.contains(QLatin1String("cannot lock ref"));
    if (lostRefRace)
        fetched = runHostGit(repository, command + arguments, allowed);
    return fetched;
}
} // namespace

RepositoryService::~RepositoryService() = default;

Result<GitOutput> runHostGit(const QString &directory, const QStringList &arguments, const QList<int> &allowed, int timeoutMs)
{
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    // Never wait for a password on a terminal nobody watches; plain C messages to parse.
    env.insert(QStringLiteral("GIT_TERMINAL_PROMPT"), QStringLiteral("0"));
    env.insert(QStringLiteral("LC_ALL"), QStringLiteral("C"));
    // Reference updates made by the host carry "sluice" in their reflog message: that is how
    // a change made by someone else is told apart (ProjectRepository::changesNotBySluice).
    env.insert(QStringLiteral("GIT_REFLOG_ACTION"), QStringLiteral("sluice"));
    p.setProcessEnvironment(env);
    p.start(QStringLiteral("git"), QStringList{QStringLiteral("-C"), directory} + arguments);
    const QString what = QStringLiteral("git %1").arg(arguments.join(QLatin1Char(' ')));
    if (!p.waitForStarted(30000))
        return fail(ErrorCode::Io, QStringLiteral("%1 did not start").arg(what), p.errorString());
    if (!p.waitForFinished(timeoutMs)) {
        p.kill();
        p.waitForFinished(5000);
        return fail(ErrorCode::Timeout, QStringLiteral("%1 did not finish in %2 s").arg(what).arg(timeoutMs / 1000));
    }
    GitOutput out{p.exitCode(), p.readAllStandardOutput(), p.readAllStandardError()};
    if (p.exitStatus() != QProcess::NormalExit)
        return fail(ErrorCode::Io, QStringLiteral("%1 crashed").arg(what), QString::fromUtf8(out.err));
    if (out.exitCode != 0 && !allowed.contains(out.exitCode))
        return fail(ErrorCode::Io, QStringLiteral("%1 failed (exit code %2): %3").arg(what).arg(out.exitCode).arg(trimmed(out.err.left(800))),
                    QString::fromUtf8(out.err));
    return out;
}

Result<void> checkTaskBranchName(const QString &name, const QString &target)
{
    if (name.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a task branch needs a name"));
    if (name == target)
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("'%1' is the project's target branch; a task works on a branch of its own").arg(name));
    if (name.startsWith(QLatin1Char('-')) || name.startsWith(QLatin1String("refs/")) || name == QLatin1String("HEAD"))
        return fail(ErrorCode::InvalidArgument, QStringLiteral("'%1' is not a branch name a task can use").arg(name));
    auto checked = runHostGit(QDir::tempPath(), {QStringLiteral("check-ref-format"), QStringLiteral("--branch"), name}, {1, 128}, 30000);
    if (!checked)
        return std::unexpected(checked.error());
    if (checked->exitCode != 0)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("'%1' is not a valid git branch name").arg(name));
    return {};
}

ProjectRepository::ProjectRepository(const ProjectConfig &project, const QString &stateDir)
    : m_path(project.repositoryPath)
    , m_target(project.targetBranch)
    , m_remoteName(project.repositoryRemote)
    , m_scratchRoot(stateDir.isEmpty() ? QString() : QDir(stateDir).filePath(QStringLiteral("scratch/%1").arg(project.id)))
{
}

Result<QString> ProjectRepository::remote() const
{
    if (m_remoteName.isEmpty())
        return QString();
    auto url = runHostGit(m_path, {QStringLiteral("config"), QStringLiteral("--get"), QStringLiteral("remote.%1.url").arg(m_remoteName)}, {1});
    if (!url)
        return std::unexpected(url.error());
    return url->exitCode == 0 && !trimmed(url->out).isEmpty() ? m_remoteName : QString();
}

Result<QString> ProjectRepository::taskBranchRemote(const QString &branch) const
{
    if (auto ok = checkTaskBranchName(branch, m_target); !ok)
        return std::unexpected(ok.error());
    return remote();
}

Result<QString> ProjectRepository::targetRef() const
{
    auto name = remote();
    if (!name)
        return std::unexpected(name.error());
    return name->isEmpty() ? QStringLiteral("refs/heads/") + m_target : QStringLiteral("refs/remotes/%1/%2").arg(*name, m_target);
}

Result<QString> ProjectRepository::refreshTarget() const
{
    auto name = remote();
    if (!name)
        return std::unexpected(name.error());
    if (!name->isEmpty()) {
        auto fetched = fetchInto(m_path, {QStringLiteral("--no-tags"), QStringLiteral("--quiet"), QStringLiteral("--no-write-fetch-head"), *name,
                                          QStringLiteral("+refs/heads/%1:refs/remotes/%2/%1").arg(m_target, *name)});
        if (!fetched)
            return fail(fetched.error().code, QStringLiteral("cannot fetch the target branch '%1' from %2: %3").arg(m_target, *name, fetched.error().message));
    }
    auto ref = targetRef();
    if (!ref)
        return std::unexpected(ref.error());
    auto commit = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("--quiet"), *ref + QStringLiteral("^{commit}")}, {1});
    if (!commit)
        return std::unexpected(commit.error());
    if (commit->exitCode != 0)
        return fail(ErrorCode::NotFound, QStringLiteral("the target branch '%1' does not exist in %2 (%3)").arg(m_target, m_path, *ref));
    return trimmed(commit->out);
}

Result<std::optional<QString>> ProjectRepository::branchHead(const QString &branch) const
{
    auto commit = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("--quiet"),
                                      QStringLiteral("refs/heads/%1^{commit}").arg(branch)}, {1});
    if (!commit)
        return std::unexpected(commit.error());
    if (commit->exitCode != 0)
        return std::optional<QString>();
    return std::optional<QString>(trimmed(commit->out));
}

Result<QString> ProjectRepository::objectsDirectory() const
{
    auto dir = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--path-format=absolute"), QStringLiteral("--git-common-dir")});
    if (!dir)
        return std::unexpected(dir.error());
    return QDir(trimmed(dir->out)).filePath(QStringLiteral("objects"));
}

QString ProjectRepository::scratchPath(qint64 taskId) const
{
    return m_scratchRoot.isEmpty() ? QString() : QDir(m_scratchRoot).filePath(QStringLiteral("task-%1").arg(taskId));
}

Result<void> ProjectRepository::ensureReflogs() const
{
    auto current = runHostGit(m_path, {QStringLiteral("config"), QStringLiteral("--get"), QStringLiteral("core.logAllRefUpdates")}, {1});
    if (!current)
        return std::unexpected(current.error());
    if (trimmed(current->out) == QLatin1String("always"))
        return {};
    auto set = runHostGit(m_path, {QStringLiteral("config"), QStringLiteral("core.logAllRefUpdates"), QStringLiteral("always")});
    if (!set)
        return std::unexpected(set.error());
    return {};
}

Result<RefSnapshot> ProjectRepository::snapshot() const
{
    auto refs = runHostGit(m_path, {QStringLiteral("for-each-ref"), QStringLiteral("--format=%(refname) %(objectname)"),
                                    QStringLiteral("refs/heads"), QStringLiteral("refs/tags")});
    if (!refs)
        return std::unexpected(refs.error());
    RefSnapshot out;
    for (const QByteArray &line : refs->out.split('\n')) {
        const int space = line.indexOf(' ');
        if (space > 0)
            out.insert(QString::fromUtf8(line.left(space)), QString::fromUtf8(line.mid(space + 1)));
    }
    return out;
}

Result<QList<RefChange>> ProjectRepository::changesNotBySluice(const RefSnapshot &before, const QDateTime &since) const
{
    auto after = snapshot();
    if (!after)
        return std::unexpected(after.error());
    auto common = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--path-format=absolute"), QStringLiteral("--git-common-dir")});
    if (!common)
        return std::unexpected(common.error());
    const QDir gitDir(trimmed(common->out));
    // Reflog times are whole seconds: a line written in the second the run started counts.
    const qint64 from = since.toSecsSinceEpoch() - 1;
    QStringList refs = before.keys() + after->keys();
    refs.removeDuplicates();
    QList<RefChange> out;
    for (const QString &ref : std::as_const(refs)) {
        const QString was = before.value(ref);
        const QString now = after->value(ref);
        if (was == now)
            continue;
        RefChange change{ref, was, now, {}};
        if (now.isEmpty()) {
            // The host never deletes a branch or tag of this repository.
            change.how = QStringLiteral("deleted");
            out.append(change);
            continue;
        }
        QFile log(gitDir.filePath(QStringLiteral("logs/") + ref));
        bool bySluice = false;
        bool byOther = false;
        if (log.open(QIODevice::ReadOnly)) {
            for (const QByteArray &line : log.readAll().split('\n')) {
                const int tab = line.indexOf('\t');
                if (tab < 0)
                    continue;
                // "<old> <new> <name> <<email>> <seconds> <zone>\t<message>"
                const QList<QByteArray> head = line.left(tab).split(' ');
                if (head.size() < 2 || head.at(head.size() - 2).toLongLong() < from)
                    continue;
                const QString message = QString::fromUtf8(line.mid(tab + 1));
                if (message.startsWith(QLatin1String("sluice"))) {
                    bySluice = true;
                } else {
                    byOther = true;
                    change.how = message.isEmpty() ? QStringLiteral("updated without a reflog message") : message;
                }
            }
        }
        if (byOther || !bySluice) {
            if (change.how.isEmpty())
                change.how = QStringLiteral("changed without a reflog entry");
            out.append(change);
        }
    }
    return out;
}

Result<QString> ProjectRepository::takeBranch(const QString &source, const QString &branch, const QString &expected,
                                              const QString &why) const
{
    if (auto ok = checkTaskBranchName(branch, m_target); !ok)
        return std::unexpected(ok.error());
    const QString incoming = QStringLiteral("refs/sluice/incoming/%1").arg(branch);
    // The working copy is the agent's: its objects are checked as they arrive.
    auto fetched = fetchInto(m_path, {QStringLiteral("--no-tags"), QStringLiteral("--quiet"), QStringLiteral("--no-write-fetch-head"),
                                      QStringLiteral("--no-recurse-submodules"), source, QStringLiteral("+refs/heads/%1:%2").arg(branch, incoming)},
                             {1, 128}, {QStringLiteral("transfer.fsckObjects=true")});
    if (!fetched)
        return std::unexpected(fetched.error());
    if (fetched->exitCode != 0)
        return fail(ErrorCode::NotFound, QStringLiteral("cannot take branch '%1' from the working copy %2: %3")
                                             .arg(branch, source, trimmed(fetched->err.left(500))));
    auto commit = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--verify"), incoming + QStringLiteral("^{commit}")});
    if (!commit)
        return std::unexpected(commit.error());
    const QString head = trimmed(commit->out);
    auto cleared = runHostGit(m_path, {QStringLiteral("update-ref"), QStringLiteral("-d"), incoming});
    if (!cleared)
        qCWarning(lcRepository).noquote() << "cannot remove" << incoming << "-" << cleared.error().toString();
    if (head == expected)
        return head;
    // A compare-and-swap: whatever else moved the branch meanwhile wins, and this is an error.
    if (auto moved = moveBranch(branch, head, expected, why); !moved)
        return std::unexpected(moved.error());
    return head;
}

Result<bool> ProjectRepository::hasCommit(const QString &sha) const
{
    if (sha.isEmpty())
        return false;
    auto r = runHostGit(m_path, {QStringLiteral("cat-file"), QStringLiteral("-e"), sha + QStringLiteral("^{commit}")}, {1, 128});
    if (!r)
        return std::unexpected(r.error());
    return r->exitCode == 0;
}

Result<void> ProjectRepository::fetchTaskBranch(const QString &branch) const
{
    auto name = taskBranchRemote(branch);
    if (!name)
        return std::unexpected(name.error());
    if (name->isEmpty())
        return {};
    auto fetched = fetchInto(m_path, {QStringLiteral("--no-tags"), QStringLiteral("--quiet"), QStringLiteral("--no-write-fetch-head"), *name,
                                      QStringLiteral("+refs/heads/%1:refs/remotes/%2/%1").arg(branch, *name)},
                             {1, 128});
    if (!fetched)
        return fail(fetched.error().code, QStringLiteral("cannot fetch the task branch '%1' from %2: %3").arg(branch, *name, fetched.error().message));
    if (fetched->exitCode != 0 && !fetched->err.contains("couldn't find remote ref"))
        return fail(ErrorCode::Network, QStringLiteral("cannot fetch the task branch '%1' from %2: %3")
                                            .arg(branch, *name, trimmed(fetched->err.left(500))));
    return {};
}

Result<std::optional<QString>> ProjectRepository::forgeBranchHead(const QString &branch) const
{
    auto name = taskBranchRemote(branch);
    if (!name)
        return std::unexpected(name.error());
    if (name->isEmpty())
        return std::optional<QString>();
    auto listed = runHostGit(m_path, {QStringLiteral("ls-remote"), *name, QStringLiteral("refs/heads/") + branch});
    if (!listed)
        return fail(listed.error().code, QStringLiteral("cannot read the task branch '%1' at %2: %3").arg(branch, *name, listed.error().message));
    const QString sha = trimmed(listed->out).section(QLatin1Char('\t'), 0, 0);
    if (sha.isEmpty())
        return std::optional<QString>();
    static const QRegularExpression hex(QStringLiteral("^[0-9a-f]{40}([0-9a-f]{24})?$"));
    if (!hex.match(sha).hasMatch())
        return fail(ErrorCode::Network, QStringLiteral("the forge answered '%1' for the task branch '%2'").arg(sha.left(80), branch));
    auto present = hasCommit(sha);
    if (!present)
        return std::unexpected(present.error());
    if (!*present) {
        if (auto fetched = fetchTaskBranch(branch); !fetched)
            return std::unexpected(fetched.error());
        present = hasCommit(sha);
        if (!present)
            return std::unexpected(present.error());
        if (!*present)
            return fail(ErrorCode::Conflict, QStringLiteral("the task branch '%1' moved at %2 while it was fetched (was %3)").arg(branch, *name, sha.left(12)));
    }
    return std::optional<QString>(sha);
}

Result<QString> ProjectRepository::sluicePushed(const QString &branch) const
{
    auto r = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("--quiet"),
                                 QStringLiteral("refs/sluice/pushed/%1^{commit}").arg(branch)}, {1});
    if (!r)
        return std::unexpected(r.error());
    return r->exitCode == 0 ? trimmed(r->out) : QString();
}

Result<void> ProjectRepository::moveBranch(const QString &branch, const QString &commit, const QString &expected, const QString &why) const
{
    if (auto ok = checkTaskBranchName(branch, m_target); !ok)
        return std::unexpected(ok.error());
    auto updated = runHostGit(m_path, {QStringLiteral("update-ref"), QStringLiteral("-m"), QStringLiteral("sluice: %1").arg(why),
                                       QStringLiteral("refs/heads/") + branch, commit, expected.isEmpty() ? ZeroSha : expected},
                              {1, 128});
    if (!updated)
        return std::unexpected(updated.error());
    if (updated->exitCode != 0)
        return fail(ErrorCode::Conflict, QStringLiteral("branch '%1' of %2 is no longer at %3: %4")
                                             .arg(branch, m_path, expected.isEmpty() ? QStringLiteral("(absent)") : expected,
                                                  trimmed(updated->err.left(500))));
    return {};
}

Result<bool> ProjectRepository::isAncestor(const QString &ancestor, const QString &descendant) const
{
    auto r = runHostGit(m_path, {QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), ancestor, descendant}, {1});
    if (!r)
        return std::unexpected(r.error());
    return r->exitCode == 0;
}

Result<QString> ProjectRepository::publish(const QString &branch, const QString &commit) const
{
    auto name = taskBranchRemote(branch);
    if (!name)
        return std::unexpected(name.error());
    if (name->isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("%1 has no remote '%2' to publish to").arg(m_path, m_remoteName));
    const QString tracking = QStringLiteral("refs/remotes/%1/%2").arg(*name, branch);
    auto seen = runHostGit(m_path, {QStringLiteral("rev-parse"), QStringLiteral("--verify"), QStringLiteral("--quiet"), tracking}, {1});
    if (!seen)
        return std::unexpected(seen.error());
    return push(*name, branch, commit, seen->exitCode == 0 ? trimmed(seen->out) : QString());
}

Result<QString> ProjectRepository::publish(const QString &branch, const QString &commit, const QString &lastPushed) const
{
    auto name = taskBranchRemote(branch);
    if (!name)
        return std::unexpected(name.error());
    if (name->isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("%1 has no remote '%2' to publish to").arg(m_path, m_remoteName));
    return push(*name, branch, commit, lastPushed);
}

Result<QString> ProjectRepository::push(const QString &name, const QString &branch, const QString &commit, const QString &lease) const
{
    const QString tracking = QStringLiteral("refs/remotes/%1/%2").arg(name, branch);
    if (lease == commit)
        return commit;
    // Replace exactly what Sluice last saw there (nothing: the branch must not exist yet).
    auto pushed = runHostGit(m_path, {QStringLiteral("push"), QStringLiteral("--quiet"), QStringLiteral("--no-verify"),
                                      QStringLiteral("--force-with-lease=refs/heads/%1:%2").arg(branch, lease), name,
                                      QStringLiteral("%1:refs/heads/%2").arg(commit, branch)},
                             {1, 128});
    if (!pushed)
        return std::unexpected(pushed.error());
    if (pushed->exitCode != 0)
        return fail(ErrorCode::Conflict, QStringLiteral("push of %1 to %2 %3 refused: %4")
                                             .arg(commit.left(12), name, branch, trimmed(pushed->err.left(600))));
    // A bare clone has no fetch refspec, so git may not update the tracking ref itself.
    auto tracked = runHostGit(m_path, {QStringLiteral("update-ref"), QStringLiteral("-m"), QStringLiteral("sluice: published"), tracking, commit});
    if (!tracked)
        qCWarning(lcRepository).noquote() << "cannot record" << tracking << "-" << tracked.error().toString();
    return commit;
}

HostRepositoryService::HostRepositoryService(ProjectRepository repository)
    : m_repository(std::move(repository))
{
}

QString HostRepositoryService::path() const
{
    return m_repository.path();
}

QString HostRepositoryService::remote() const
{
    auto name = m_repository.remote();
    return name ? *name : QString();
}

QString HostRepositoryService::targetRef() const
{
    auto ref = m_repository.targetRef();
    return ref ? *ref : QStringLiteral("refs/heads/") + m_repository.targetBranch();
}

Result<QString> HostRepositoryService::refreshTarget()
{
    return m_repository.refreshTarget();
}

QString HostRepositoryService::scratchPath(qint64 taskId) const
{
    return m_repository.scratchPath(taskId);
}

} // namespace Sluice
