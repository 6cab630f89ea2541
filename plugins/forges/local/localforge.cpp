// SPDX-License-Identifier: Apache-2.0
#include "localforge.h"

#include "forgecall.h"

#include <sluice/services.h>

#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPointer>
#include <QSet>
#include <QTimer>

#include <algorithm>

namespace Sluice::Forges {

using ForgeHttp::FunctionCall;

namespace {

// A ref or path handed to git must never read as an option.
Result<void> safeArgument(const QString &value, const char *what)
{
    if (value.isEmpty() || value.startsWith(QLatin1Char('-')) || value.contains(QLatin1Char('\0')))
        return fail(ErrorCode::InvalidArgument, QStringLiteral("%1 '%2' is not usable").arg(QLatin1String(what), value));
    return {};
}

QJsonObject statusJson(const CommitStatus &s)
{
    return QJsonObject{{QStringLiteral("id"), s.id},
                       {QStringLiteral("context"), s.context},
                       {QStringLiteral("state"), statusStateName(s.state)},
                       {QStringLiteral("description"), s.description},
                       {QStringLiteral("target_url"), s.targetUrl},
                       {QStringLiteral("created_at"), s.createdAt.toString(Qt::ISODateWithMs)},
                       {QStringLiteral("updated_at"), s.updatedAt.toString(Qt::ISODateWithMs)}};
}

} // namespace

LocalForge::LocalForge(const PluginContext &context, QString repository, QString git, int timeoutMs, QObject *parent)
    : Forge(context, parent)
    , m_repository(std::move(repository))
    , m_git(std::move(git))
    , m_timeoutMs(timeoutMs)
{
}

Result<void> LocalForge::initialize()
{
    if (!QFileInfo(m_repository).isDir() || !QFileInfo(QDir(m_repository).filePath(QStringLiteral("HEAD"))).isFile())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("path: '%1' is not a bare git repository").arg(m_repository));
    if (!context().state())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("the local forge keeps statuses in the state store, and the host has none"));
    if (auto target = safeArgument(context().project().targetBranch, "target branch"); !target)
        return target;
    return {};
}

void LocalForge::git(const QStringList &arguments, QObject *owner, std::function<void(Result<GitResult>)> done, QList<int> allowed)
{
    runGit(m_git, m_repository, arguments, m_timeoutMs, owner, [done, allowed, arguments](Result<GitResult> r) {
        if (r && r->exitCode != 0 && !allowed.contains(r->exitCode))
            return done(fail(ErrorCode::Io, QStringLiteral("git %1 failed with exit code %2").arg(arguments.join(QLatin1Char(' '))).arg(r->exitCode),
                             QString::fromUtf8(r->err.left(500)).trimmed()));
        done(std::move(r));
    });
}

namespace {

const QString OpenIndexKey = QStringLiteral("pr/open");
const QString NextNumberKey = QStringLiteral("pr/next");

QString recordKey(qint64 number)
{
    return QStringLiteral("pr/%1").arg(number);
}

PullRequest fromRecord(const QJsonObject &o)
{
    PullRequest pr;
    pr.number = o.value(QStringLiteral("number")).toVariant().toLongLong();
    pr.title = o.value(QStringLiteral("title")).toString();
    pr.state = o.value(QStringLiteral("state")).toString();
    pr.merged = o.value(QStringLiteral("merged")).toBool();
    pr.mergeCommit = o.value(QStringLiteral("merge_commit")).toString();
    pr.headBranch = o.value(QStringLiteral("head")).toString();
    pr.headSha = o.value(QStringLiteral("head_sha")).toString();
    pr.baseBranch = o.value(QStringLiteral("base")).toString();
    pr.updatedAt = QDateTime::fromString(o.value(QStringLiteral("updated_at")).toString(), Qt::ISODateWithMs);
    return pr;
}

// "refs/heads/x<NUL>sha" lines of for-each-ref → branch → sha.
QHash<QString, QString> branchShas(const QByteArray &out)
{
    QHash<QString, QString> shas;
    for (const QByteArray &line : out.split('\n')) {
        const QList<QByteArray> parts = line.split('\0');
        if (parts.size() == 2)
            shas.insert(QString::fromUtf8(parts[0]), QString::fromLatin1(parts[1]));
    }
    return shas;
}

} // namespace

Result<std::optional<QJsonObject>> LocalForge::readRecord(qint64 number) const
{
    auto stored = context().state()->value(recordKey(number));
    if (!stored)
        return std::unexpected(stored.error());
    if (!*stored)
        return std::optional<QJsonObject>();
    const QJsonDocument doc = QJsonDocument::fromJson(**stored);
    if (!doc.isObject() || doc.object().value(QStringLiteral("number")).toVariant().toLongLong() != number)
        return fail(ErrorCode::Malformed, QStringLiteral("stored pull request #%1 is not a pull request record").arg(number));
    return std::optional<QJsonObject>(doc.object());
}

Result<QList<qint64>> LocalForge::openNumbers() const
{
    auto stored = context().state()->value(OpenIndexKey);
    if (!stored)
        return std::unexpected(stored.error());
    QList<qint64> out;
    if (!*stored)
        return out;
    const QJsonDocument doc = QJsonDocument::fromJson(**stored);
    if (!doc.isArray())
        return fail(ErrorCode::Malformed, QStringLiteral("the stored list of open pull requests is not a list"));
    for (const QJsonValue &v : doc.array())
        out.append(v.toVariant().toLongLong());
    return out;
}

Result<void> LocalForge::writeRecord(const QJsonObject &record, bool wasOpen)
{
    const qint64 number = record.value(QStringLiteral("number")).toVariant().toLongLong();
    if (auto w = context().state()->setValue(recordKey(number), QJsonDocument(record).toJson(QJsonDocument::Compact)); !w)
        return w;
    const bool open = record.value(QStringLiteral("state")).toString() == QLatin1String("open");
    if (open == wasOpen)
        return {};
    auto numbers = openNumbers();
    if (!numbers)
        return std::unexpected(numbers.error());
    if (open)
        numbers->append(number);
    else
        numbers->removeAll(number);
    QJsonArray array;
    for (qint64 n : std::as_const(*numbers))
        array.append(n);
    return context().state()->setValue(OpenIndexKey, QJsonDocument(array).toJson(QJsonDocument::Compact));
}

Result<QJsonObject> LocalForge::refresh(QJsonObject record, const std::optional<QString> &headSha, bool headInBase)
{
    if (record.value(QStringLiteral("state")).toString() != QLatin1String("open"))
        return record;
    const QJsonObject before = record;
    const QString now = context().clock().now().toUTC().toString(Qt::ISODateWithMs);
    if (!headSha) {
        // The head branch is gone: closed without a merge, as GitHub closes it.
        record.insert(QStringLiteral("state"), QStringLiteral("closed"));
    } else {
        record.insert(QStringLiteral("head_sha"), *headSha);
        if (headInBase) {
            // Merged outside the forge (pushed into the base): merged, no merge commit of ours.
            record.insert(QStringLiteral("state"), QStringLiteral("closed"));
            record.insert(QStringLiteral("merged"), true);
        }
    }
    if (record == before)
        return record;
    record.insert(QStringLiteral("updated_at"), now);
    if (auto w = writeRecord(record, true); !w)
        return std::unexpected(w.error());
    return record;
}

void LocalForge::listOpen(QObject *owner, std::function<void(Result<QList<PullRequest>>)> done)
{
    auto numbers = openNumbers();
    if (!numbers)
        return done(std::unexpected(numbers.error()));
    auto records = std::make_shared<QList<QJsonObject>>();
    QStringList bases;
    for (qint64 number : std::as_const(*numbers)) {
        auto record = readRecord(number);
        if (!record)
            return done(std::unexpected(record.error()));
        if (!*record)
            return done(fail(ErrorCode::Malformed, QStringLiteral("open pull request #%1 has no stored record").arg(number)));
        records->append(**record);
        const QString base = (*record)->value(QStringLiteral("base")).toString();
        if (auto ok = safeArgument(base, "base branch"); !ok)
            return done(std::unexpected(ok.error()));
        if (!bases.contains(base))
            bases.append(base);
    }
    if (records->isEmpty())
        return done(QList<PullRequest>());
    // Every branch's tip, then per base the branches whose tip it contains (merged outside the forge).
    git({QStringLiteral("for-each-ref"), QStringLiteral("--format=%(refname:short)%00%(objectname)"), QStringLiteral("refs/heads/")}, owner,
        [this, owner, done, records, bases](Result<GitResult> heads) {
            if (!heads)
                return done(std::unexpected(heads.error()));
            auto shas = std::make_shared<QHash<QString, QString>>(branchShas(heads->out));
            auto merged = std::make_shared<QHash<QString, QSet<QString>>>();
            auto pending = std::make_shared<int>(int(bases.size()));
            auto failed = std::make_shared<bool>(false);
            for (const QString &base : bases) {
                git({QStringLiteral("for-each-ref"), QStringLiteral("--format=%(refname:short)"),
                     QStringLiteral("--merged=refs/heads/%1").arg(base), QStringLiteral("refs/heads/")},
                    owner, [this, done, records, shas, merged, pending, failed, base](Result<GitResult> in) {
                        if (*failed)
                            return;
                        if (!in) {
                            *failed = true;
                            return done(std::unexpected(in.error()));
                        }
                        QSet<QString> &set = (*merged)[base];
                        for (const QByteArray &line : in->out.split('\n')) {
                            if (!line.isEmpty())
                                set.insert(QString::fromUtf8(line));
                        }
                        if (--*pending > 0)
                            return;
                        QList<PullRequest> out;
                        for (const QJsonObject &record : std::as_const(*records)) {
                            const QString head = record.value(QStringLiteral("head")).toString();
                            const QString recordBase = record.value(QStringLiteral("base")).toString();
                            const auto sha = shas->constFind(head);
                            auto now = refresh(record, sha == shas->cend() ? std::nullopt : std::optional<QString>(*sha),
                                               sha != shas->cend() && merged->value(recordBase).contains(head) && head != recordBase);
                            if (!now)
                                return done(std::unexpected(now.error()));
                            const PullRequest pr = fromRecord(*now);
                            if (pr.state == QLatin1String("open"))
                                out.append(pr);
                        }
                        std::sort(out.begin(), out.end(), [](const PullRequest &a, const PullRequest &b) { return a.number < b.number; });
                        done(out);
                    });
            }
        });
}

std::unique_ptr<AsyncCall<QList<PullRequest>>> LocalForge::openPullRequests()
{
    return std::make_unique<FunctionCall<QList<PullRequest>>>([this](FunctionCall<QList<PullRequest>> *call) {
        listOpen(call, [call](Result<QList<PullRequest>> r) { call->finishWith(std::move(r)); });
    });
}

std::unique_ptr<AsyncCall<PullRequest>> LocalForge::createPullRequest(const NewPullRequest &request)
{
    return std::make_unique<FunctionCall<PullRequest>>([this, request](FunctionCall<PullRequest> *call) {
        auto checked = ForgeHttp::checkNewPullRequest(request, context().project().targetBranch);
        if (!checked)
            return call->finishWith(std::unexpected(checked.error()));
        const NewPullRequest pr = *checked;
        for (const QString &branch : {pr.headBranch, pr.baseBranch}) {
            if (auto ok = safeArgument(branch, "branch"); !ok)
                return call->finishWith(std::unexpected(ok.error()));
        }
        const QString headRef = QStringLiteral("refs/heads/%1").arg(pr.headBranch);
        const QString baseRef = QStringLiteral("refs/heads/%1").arg(pr.baseBranch);
        git({QStringLiteral("for-each-ref"), QStringLiteral("--format=%(refname)%00%(objectname)"), headRef, baseRef}, call,
            [this, call, pr, headRef, baseRef](Result<GitResult> refs) {
                if (!refs)
                    return call->finishWith(std::unexpected(refs.error()));
                const QHash<QString, QString> shas = branchShas(refs->out);
                for (const QString &ref : {headRef, baseRef}) {
                    if (!shas.contains(ref))
                        return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("branch %1 does not exist").arg(ref.mid(11))));
                }
                const QString headSha = shas.value(headRef);
                git({QStringLiteral("rev-list"), QStringLiteral("--count"), shas.value(baseRef) + QStringLiteral("..") + headSha}, call,
                    [this, call, pr, headSha](Result<GitResult> ahead) {
                        if (!ahead)
                            return call->finishWith(std::unexpected(ahead.error()));
                        if (ahead->out.trimmed() == "0")
                            return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("no commits between %1 and %2").arg(pr.baseBranch, pr.headBranch)));
                        // One open pull request per head and base, as Gitea and GitHub allow.
                        auto numbers = openNumbers();
                        if (!numbers)
                            return call->finishWith(std::unexpected(numbers.error()));
                        for (qint64 n : std::as_const(*numbers)) {
                            auto other = readRecord(n);
                            if (!other)
                                return call->finishWith(std::unexpected(other.error()));
                            if (*other && (*other)->value(QStringLiteral("head")).toString() == pr.headBranch
                                && (*other)->value(QStringLiteral("base")).toString() == pr.baseBranch)
                                return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("pull request #%1 of %2 into %3 is already open").arg(n).arg(pr.headBranch, pr.baseBranch)));
                        }
                        auto next = context().state()->value(NextNumberKey);
                        if (!next)
                            return call->finishWith(std::unexpected(next.error()));
                        const qint64 number = *next ? (*next)->toLongLong() : 1;
                        if (auto w = context().state()->setValue(NextNumberKey, QByteArray::number(number + 1)); !w)
                            return call->finishWith(std::unexpected(w.error()));
                        const QString now = context().clock().now().toUTC().toString(Qt::ISODateWithMs);
                        const QJsonObject record{{QStringLiteral("number"), number},
                                                 {QStringLiteral("title"), pr.title},
                                                 {QStringLiteral("body"), pr.body},
                                                 {QStringLiteral("head"), pr.headBranch},
                                                 {QStringLiteral("base"), pr.baseBranch},
                                                 {QStringLiteral("head_sha"), headSha},
                                                 {QStringLiteral("state"), QStringLiteral("open")},
                                                 {QStringLiteral("merged"), false},
                                                 {QStringLiteral("merge_commit"), QString()},
                                                 {QStringLiteral("created_at"), now},
                                                 {QStringLiteral("updated_at"), now}};
                        if (auto w = writeRecord(record, false); !w)
                            return call->finishWith(std::unexpected(w.error()));
                        call->finishWith(fromRecord(record));
                    });
            });
    });
}

std::unique_ptr<AsyncCall<PullRequest>> LocalForge::pullRequest(qint64 number)
{
    return std::make_unique<FunctionCall<PullRequest>>([this, number](FunctionCall<PullRequest> *call) {
        auto record = readRecord(number);
        if (!record)
            return call->finishWith(std::unexpected(record.error()));
        if (!*record)
            return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("pull request #%1 does not exist").arg(number)));
        const QJsonObject stored = **record;
        const PullRequest pr = fromRecord(stored);
        if (pr.state != QLatin1String("open"))
            return call->finishWith(pr);
        if (auto ok = safeArgument(pr.headBranch, "head branch"); !ok)
            return call->finishWith(std::unexpected(ok.error()));
        git({QStringLiteral("rev-parse"), QStringLiteral("-q"), QStringLiteral("--verify"), QStringLiteral("refs/heads/%1^{commit}").arg(pr.headBranch)}, call,
            [this, call, pr, stored](Result<GitResult> head) {
                if (!head)
                    return call->finishWith(std::unexpected(head.error()));
                if (head->exitCode != 0) {
                    auto now = refresh(stored, std::nullopt, false);
                    return call->finishWith(now ? Result<PullRequest>(fromRecord(*now)) : Result<PullRequest>(std::unexpected(now.error())));
                }
                const QString sha = QString::fromLatin1(head->out.trimmed());
                git({QStringLiteral("merge-base"), QStringLiteral("--is-ancestor"), sha, QStringLiteral("refs/heads/%1").arg(pr.baseBranch)}, call,
                    [this, call, stored, sha](Result<GitResult> ancestor) {
                        if (!ancestor)
                            return call->finishWith(std::unexpected(ancestor.error()));
                        auto now = refresh(stored, sha, ancestor->exitCode == 0);
                        if (!now)
                            return call->finishWith(std::unexpected(now.error()));
                        call->finishWith(fromRecord(*now));
                    }, {1});
            }, {1});
    });
}

Result<QList<CommitStatus>> LocalForge::storedStatuses(const QString &sha) const
{
    auto stored = context().state()->value(QStringLiteral("status/%1").arg(sha));
    if (!stored)
        return std::unexpected(stored.error());
    QList<CommitStatus> out;
    if (!*stored)
        return out;
    const QJsonDocument doc = QJsonDocument::fromJson(**stored);
    if (!doc.isArray())
        return fail(ErrorCode::Malformed, QStringLiteral("stored statuses of %1 are not a list").arg(sha));
    for (const QJsonValue &v : doc.array()) {
        auto s = ForgeHttp::parseCommitStatus(v);
        if (!s)
            return fail(ErrorCode::Malformed, QStringLiteral("stored statuses of %1: %2").arg(sha, s.error().message));
        out.append(*s);
    }
    std::stable_sort(out.begin(), out.end(), ForgeHttp::newerFirst);
    return out;
}

std::unique_ptr<AsyncCall<QList<CommitStatus>>> LocalForge::statuses(const QString &sha)
{
    return std::make_unique<FunctionCall<QList<CommitStatus>>>([this, sha](FunctionCall<QList<CommitStatus>> *call) {
        call->finishWith(storedStatuses(sha));
    });
}

std::unique_ptr<AsyncCall<CombinedStatus>> LocalForge::combinedStatus(const QString &sha)
{
    return std::make_unique<FunctionCall<CombinedStatus>>([this, sha](FunctionCall<CombinedStatus> *call) {
        auto all = storedStatuses(sha);
        if (!all)
            return call->finishWith(std::unexpected(all.error()));
        CombinedStatus out;
        out.sha = sha;
        QSet<QString> seen;
        for (const CommitStatus &s : std::as_const(*all)) { // newest first: the first per context is the latest
            if (!seen.contains(s.context)) {
                seen.insert(s.context);
                out.statuses.append(s);
            }
        }
        out.state = ForgeHttp::combinedState(out.statuses);
        call->finishWith(out);
    });
}

std::unique_ptr<AsyncCall<CommitStatus>> LocalForge::postStatus(const QString &sha, const StatusUpdate &status)
{
    return std::make_unique<FunctionCall<CommitStatus>>([this, sha, status](FunctionCall<CommitStatus> *call) {
        if (auto ok = safeArgument(sha, "commit"); !ok || status.context.isEmpty())
            return call->finishWith(fail(ErrorCode::InvalidArgument, QStringLiteral("a status needs a commit and a context")));
        // The commit must exist in the repository.
        git({QStringLiteral("cat-file"), QStringLiteral("-e"), sha + QStringLiteral("^{commit}")}, call, [this, call, sha, status](Result<GitResult> exists) {
            if (!exists)
                return call->finishWith(std::unexpected(exists.error()));
            if (exists->exitCode != 0)
                return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("commit %1 is not in the repository").arg(sha)));
            StateStore *state = context().state();
            auto all = storedStatuses(sha);
            auto next = state->value(QStringLiteral("status/next"));
            if (!all || !next)
                return call->finishWith(std::unexpected(!all ? all.error() : next.error()));
            CommitStatus s;
            s.id = *next ? (*next)->toLongLong() : 1;
            s.context = status.context;
            s.state = status.state;
            s.description = status.description;
            s.targetUrl = status.targetUrl;
            s.createdAt = s.updatedAt = context().clock().now().toUTC();
            QJsonArray array;
            for (const CommitStatus &old : std::as_const(*all))
                array.append(statusJson(old));
            array.append(statusJson(s));
            if (auto w = state->setValue(QStringLiteral("status/next"), QByteArray::number(s.id + 1)); !w)
                return call->finishWith(std::unexpected(w.error()));
            if (auto w = state->setValue(QStringLiteral("status/%1").arg(sha), QJsonDocument(array).toJson(QJsonDocument::Compact)); !w)
                return call->finishWith(std::unexpected(w.error()));
            call->finishWith(s);
        }, {1, 128});
    });
}

std::unique_ptr<AsyncCall<MergeOutcome>> LocalForge::merge(qint64 number, const MergeRequest &request)
{
    // Only a merge commit keeps the branch an ancestor of the target, which is how a merged
    // pull request is recognised here.
    if (request.method != QLatin1String("merge"))
        return ForgeHttp::failedCall<MergeOutcome>(Error{ErrorCode::InvalidArgument, QStringLiteral("the local forge merges with 'merge' only, not '%1'").arg(request.method), {}});
    return std::make_unique<FunctionCall<MergeOutcome>>([this, number, request](FunctionCall<MergeOutcome> *call) {
        withPull(number, call, [this, call, number, request](Result<PullRequest> read) {
            if (!read)
                return call->finishWith(std::unexpected(read.error()));
            const PullRequest pr = *read;
            if (pr.merged)
                return call->finishWith(MergeOutcome{true, pr.mergeCommit});
            if (pr.state != QLatin1String("open"))
                return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("pull request #%1 is closed").arg(number)));
            if (!request.expectedHeadSha.isEmpty() && pr.headSha != request.expectedHeadSha)
                return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("pull request #%1: head is %2, not the expected %3").arg(number).arg(pr.headSha, request.expectedHeadSha)));
            const QString targetRef = QStringLiteral("refs/heads/%1").arg(pr.baseBranch);
            git({QStringLiteral("rev-parse"), QStringLiteral("--verify"), targetRef + QStringLiteral("^{commit}")}, call, [=, this](Result<GitResult> target) {
                if (!target)
                    return call->finishWith(std::unexpected(target.error()));
                const QString old = QString::fromLatin1(target->out.trimmed());
                git({QStringLiteral("merge-tree"), QStringLiteral("--write-tree"), old, pr.headSha}, call, [=, this](Result<GitResult> tree) {
                    if (!tree)
                        return call->finishWith(std::unexpected(tree.error()));
                    if (tree->exitCode == 1)
                        return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("pull request #%1 does not merge cleanly into %2").arg(number).arg(pr.baseBranch)));
                    const QString treeId = QString::fromLatin1(tree->out.split('\n').value(0).trimmed());
                    const QString message = request.title.isEmpty() ? QStringLiteral("Merge %1 into %2").arg(pr.headBranch, pr.baseBranch)
                                                                    : request.title + (request.message.isEmpty() ? QString() : QStringLiteral("\n\n") + request.message);
                    const QStringList commitArgs{QStringLiteral("commit-tree"), treeId, QStringLiteral("-p"), old,
                                                 QStringLiteral("-p"), pr.headSha, QStringLiteral("-m"), message};
                    git(commitArgs, call, [=, this](Result<GitResult> commit) {
                        if (!commit)
                            return call->finishWith(std::unexpected(commit.error()));
                        const QString merged = QString::fromLatin1(commit->out.trimmed());
                        // Compare-and-swap: if the target moved meanwhile, nothing changes.
                        git({QStringLiteral("update-ref"), QStringLiteral("-m"), QStringLiteral("sluice: merge pull request #%1").arg(number), targetRef, merged, old}, call, [=, this](Result<GitResult> updated) {
                            if (!updated)
                                return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("%1 moved during the merge of #%2; nothing was changed").arg(pr.baseBranch).arg(number)));
                            auto record = readRecord(number);
                            if (!record || !*record)
                                return call->finishWith(record ? fail(ErrorCode::Malformed, QStringLiteral("pull request #%1 vanished from the store during its merge").arg(number))
                                                               : Result<MergeOutcome>(std::unexpected(record.error())));
                            QJsonObject done = **record;
                            done.insert(QStringLiteral("state"), QStringLiteral("closed"));
                            done.insert(QStringLiteral("merged"), true);
                            done.insert(QStringLiteral("merge_commit"), merged);
                            done.insert(QStringLiteral("head_sha"), pr.headSha);
                            done.insert(QStringLiteral("updated_at"), context().clock().now().toUTC().toString(Qt::ISODateWithMs));
                            if (auto w = writeRecord(done, (*record)->value(QStringLiteral("state")).toString() == QLatin1String("open")); !w)
                                return call->finishWith(std::unexpected(w.error()));
                            call->finishWith(MergeOutcome{false, merged});
                        });
                    });
                }, {1});
            });
        });
    });
}

void LocalForge::withPull(qint64 number, QObject *owner, std::function<void(Result<PullRequest>)> next)
{
    AsyncCall<PullRequest> *raw = pullRequest(number).release();
    raw->setParent(owner);
    connect(raw, &PluginJob::finished, owner, [raw, next] {
        raw->deleteLater();
        next(raw->result());
    });
    raw->start();
}

std::unique_ptr<AsyncCall<Comparison>> LocalForge::compare(const QString &base, const QString &head)
{
    return std::make_unique<FunctionCall<Comparison>>([this, base, head](FunctionCall<Comparison> *call) {
        for (const QString &ref : {base, head}) {
            if (auto ok = safeArgument(ref, "ref"); !ok)
                return call->finishWith(std::unexpected(ok.error()));
        }
        git({QStringLiteral("rev-list"), QStringLiteral("--left-right"), QStringLiteral("--count"), base + QStringLiteral("...") + head}, call,
            [this, call, base, head](Result<GitResult> counts) {
                if (!counts)
                    return call->finishWith(std::unexpected(counts.error()));
                const QList<QByteArray> parts = counts->out.trimmed().split('\t');
                bool behindOk = false;
                bool aheadOk = false;
                const int behind = parts.value(0).toInt(&behindOk);
                const int ahead = parts.value(1).toInt(&aheadOk);
                if (parts.size() != 2 || !behindOk || !aheadOk)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("git rev-list --count answered '%1'").arg(QString::fromUtf8(counts->out.trimmed()))));
                git({QStringLiteral("merge-base"), base, head}, call, [call, behind, ahead](Result<GitResult> mergeBase) {
                    if (!mergeBase)
                        return call->finishWith(std::unexpected(mergeBase.error()));
                    call->finishWith(Comparison{QString::fromLatin1(mergeBase->out.trimmed()), ahead, behind});
                }, {1});
            });
    });
}

std::unique_ptr<AsyncCall<QByteArray>> LocalForge::readFile(const QString &path, const QString &ref)
{
    return std::make_unique<FunctionCall<QByteArray>>([this, path, ref](FunctionCall<QByteArray> *call) {
        if (auto ok = ForgeHttp::checkRepositoryPath(path); !ok)
            return call->finishWith(std::unexpected(ok.error()));
        if (auto ok = safeArgument(ref, "ref"); !ok)
            return call->finishWith(std::unexpected(ok.error()));
        const QString object = ref + QLatin1Char(':') + path;
        git({QStringLiteral("cat-file"), QStringLiteral("-e"), object}, call, [this, call, object, path, ref](Result<GitResult> exists) {
            if (!exists)
                return call->finishWith(std::unexpected(exists.error()));
            if (exists->exitCode != 0)
                return call->finishWith(fail(ErrorCode::NotFound, QStringLiteral("%1 at %2: not found").arg(path, ref)));
            git({QStringLiteral("cat-file"), QStringLiteral("blob"), object}, call, [call](Result<GitResult> blob) {
                if (!blob)
                    return call->finishWith(std::unexpected(blob.error()));
                call->finishWith(blob->out);
            });
        }, {1, 128});
    });
}

Result<std::unique_ptr<PluginInstance>> LocalForgeFactory::create(const PluginContext &context)
{
    QString path = context.settings().value(QStringLiteral("path")).toString();
    if (path.isEmpty())
        path = context.project().repository;
    if (path.isEmpty() || path.contains(QLatin1String("://")))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("path: give the bare repository (the project's repository is '%1')").arg(context.project().repository));
    const QString git = context.settings().value(QStringLiteral("git"), QStringLiteral("git")).toString();
    const int timeoutMs = int(context.settings().value(QStringLiteral("timeout"), 30000).toLongLong());
    return std::unique_ptr<PluginInstance>(std::make_unique<LocalForge>(context, path, git, timeoutMs));
}

} // namespace Sluice::Forges
