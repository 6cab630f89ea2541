// SPDX-License-Identifier: Apache-2.0
#include "requiredcheck.h"

#include <QJsonArray>
#include <QPointer>

#include <algorithm>
#include <memory>

namespace Sluice::Ci {

Outcome RequiredCheck::outcome() const
{
    bool pending = false;
    for (const ContextJudgement &j : contexts) {
        if (j.outcome == Outcome::Red)
            return Outcome::Red;
        pending = pending || j.outcome == Outcome::Pending;
    }
    // A red umbrella over required jobs none of which is red is stale (it aggregated before a
    // re-run finished, a runner was cancelled …): not the change's fault, so it waits for the
    // ci-umbrella repair or a re-run, bounded by the ci timeout. It is never a pass: the forge
    // would refuse the merge.
    if (umbrella && umbrella->outcome != Outcome::Passes)
        pending = true;
    return pending ? Outcome::Pending : Outcome::Passes;
}

QStringList RequiredCheck::notPassing() const
{
    QStringList out;
    for (const ContextJudgement &j : contexts) {
        if (!j.passes)
            out.append(j.reason);
    }
    if (umbrella && !umbrella->passes) {
        if (umbrella->outcome == Outcome::Red && outcome() != Outcome::Red)
            out.append(QStringLiteral("the umbrella %1 although no required job did: waiting for the ci-umbrella repair or a re-run of the umbrella job")
                           .arg(umbrella->reason));
        else
            out.append(QStringLiteral("the umbrella %1").arg(umbrella->reason));
    }
    return out;
}

QJsonObject RequiredCheck::evidence() const
{
    QJsonArray judged;
    for (const ContextJudgement &j : contexts)
        judged.append(j.toJson());
    QJsonObject ev{{QStringLiteral("sha"), sha},
                   {QStringLiteral("workflow"), workflow},
                   {QStringLiteral("contexts"), judged},
                   {QStringLiteral("semantics"), semantics == Semantics::Forge ? QStringLiteral("forge") : QStringLiteral("strict")},
                   {QStringLiteral("statusesRead"), statusesRead},
                   {QStringLiteral("checkRunsRead"), checkRunsRead}};
    if (umbrella)
        ev.insert(QStringLiteral("umbrella"), umbrella->toJson());
    return ev;
}

GateVerdict RequiredCheck::verdict() const
{
    QList<Finding> findings;
    for (const ContextJudgement &j : contexts) {
        if (!j.passes)
            findings.append(Finding{j.context, j.reason, QString(), 0, QStringLiteral("blocking")});
    }
    if (umbrella && !umbrella->passes)
        findings.append(Finding{umbrella->context, umbrella->reason, QString(), 0, QStringLiteral("blocking")});
    const int total = int(contexts.size()) + (umbrella ? 1 : 0);
    if (findings.isEmpty())
        return GateVerdict::pass(QStringLiteral("all %1 required CI contexts succeeded on %2").arg(total).arg(sha.left(12)), evidence());
    return GateVerdict::fail(QStringLiteral("%1 of %2 required CI contexts are not green on %3: %4")
                                 .arg(findings.size()).arg(total).arg(sha.left(12), notPassing().join(QStringLiteral("; "))),
                             findings, evidence());
}

Result<WaitPolicy> WaitPolicy::fromSettings(const QVariantMap &settings)
{
    WaitPolicy policy;
    policy.ciTimeout = std::chrono::milliseconds(settings.value(QStringLiteral("ci_timeout"), qint64(policy.ciTimeout.count())).toLongLong());
    policy.retryAfter = std::chrono::milliseconds(settings.value(QStringLiteral("retry_after"), qint64(policy.retryAfter.count())).toLongLong());
    if (policy.ciTimeout.count() <= 0)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("ci_timeout: must be positive"));
    if (policy.retryAfter.count() < 1000 || policy.retryAfter > std::chrono::hours(1))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("retry_after: between 1s and 1h (the engine's bounds for a wait)"));
    return policy;
}

namespace {

QString judgedKey(const QString &sha)
{
    return QStringLiteral("first-judged/%1").arg(sha);
}

} // namespace

Result<QDateTime> firstJudged(StateStore *state, QHash<QString, QDateTime> &memory, const QString &sha, const QDateTime &now)
{
    if (!state) {
        auto it = memory.find(sha);
        if (it == memory.end())
            it = memory.insert(sha, now);
        return *it;
    }
    auto stored = state->value(judgedKey(sha));
    if (!stored)
        return std::unexpected(stored.error());
    if (*stored) {
        const QDateTime at = QDateTime::fromString(QString::fromLatin1(**stored), Qt::ISODateWithMs);
        if (at.isValid())
            return at.toUTC();
        // An unreadable value is rewritten: starting the clock again is the safe side of a corrupt marker.
    }
    if (auto w = state->setValue(judgedKey(sha), now.toUTC().toString(Qt::ISODateWithMs).toLatin1()); !w)
        return std::unexpected(w.error());
    return now;
}

void forgetJudged(StateStore *state, QHash<QString, QDateTime> &memory, const QString &sha)
{
    memory.remove(sha);
    if (state)
        (void)state->remove(judgedKey(sha)); // a leftover marker only costs a small row
}

GateVerdict waitingVerdict(const RequiredCheck &check, const WaitPolicy &policy, const QDateTime &since, const QDateTime &now)
{
    const Outcome outcome = check.outcome();
    if (outcome != Outcome::Pending)
        return check.verdict();
    QJsonObject ev = check.evidence();
    const qint64 waited = since.msecsTo(now);
    ev.insert(QStringLiteral("firstJudgedAt"), since.toUTC().toString(Qt::ISODate));
    ev.insert(QStringLiteral("waitedMs"), waited);
    ev.insert(QStringLiteral("ciTimeoutMs"), qint64(policy.ciTimeout.count()));
    const QStringList pending = check.notPassing();
    ev.insert(QStringLiteral("pending"), QJsonArray::fromStringList(pending));
    if (waited >= policy.ciTimeout.count()) {
        GateVerdict failed = check.verdict();
        return GateVerdict::fail(QStringLiteral("CI did not finish on %1 within ci_timeout (%2 s since it was first judged at %3); still not green: %4")
                                     .arg(check.sha.left(12))
                                     .arg(policy.ciTimeout.count() / 1000)
                                     .arg(since.toUTC().toString(Qt::ISODate), pending.join(QStringLiteral("; "))),
                                 failed.findings(), ev);
    }
    return GateVerdict::wait(QStringLiteral("waiting for CI on %1 (%2 s of ci_timeout %3 s): %4")
                                 .arg(check.sha.left(12))
                                 .arg(std::max<qint64>(0, waited) / 1000)
                                 .arg(policy.ciTimeout.count() / 1000)
                                 .arg(pending.join(QStringLiteral("; "))),
                             policy.retryAfter, ev);
}

void checkRequired(Forge &forge, const RequiredSpec &spec, const QString &sha, const QString &targetBranch,
                   QObject *owner, std::function<void(Result<RequiredCheck>)> done)
{
    QPointer<Forge> guard(&forge);
    resolveRequired(forge, spec, sha, targetBranch, owner, [=](Result<RequiredContexts> required) {
        if (!required)
            return done(fail(required.error().code, QStringLiteral("required CI contexts unknown: %1").arg(required.error().message),
                             required.error().detail));
        if (!guard)
            return done(fail(ErrorCode::Cancelled, QStringLiteral("the forge connector went away")));
        // Commit statuses and, where the forge has them, check runs: two requirements per name,
        // read at once; the judgement waits for both and either failing fails it (fail-closed).
        CheckRunReader *checks = qobject_cast<CheckRunReader *>(guard.data());
        struct Reads {
            std::optional<QList<CommitStatus>> statuses;
            std::optional<QList<CheckRun>> runs;
            bool failed = false;
        };
        auto reads = std::make_shared<Reads>();
        if (!checks)
            reads->runs = QList<CheckRun>();
        const RequiredContexts contexts = *required;
        auto judge = [=] {
            if (reads->failed || !reads->statuses || !reads->runs)
                return;
            RequiredCheck check;
            check.sha = sha;
            check.workflow = spec.workflow;
            check.semantics = spec.semantics;
            const QHash<QString, CommitStatus> latest = latestByContext(*reads->statuses);
            const QHash<QString, CheckRun> runs = latestRunByName(*reads->runs);
            check.contexts = judgeRequired(contexts.contexts, latest, runs, spec.semantics);
            if (!contexts.umbrellaContext.isEmpty())
                check.umbrella = judgeContext(contexts.umbrellaContext, latest, runs, spec.semantics);
            check.statusesRead = int(reads->statuses->size());
            check.checkRunsRead = int(reads->runs->size());
            done(check);
        };
        runAsync<QList<CommitStatus>>(guard->statuses(sha), owner, [=](const Result<QList<CommitStatus>> &statuses) {
            if (reads->failed)
                return;
            if (!statuses) {
                reads->failed = true;
                return done(fail(statuses.error().code, QStringLiteral("cannot read the statuses of %1: %2").arg(sha, statuses.error().message),
                                 statuses.error().detail));
            }
            reads->statuses = *statuses;
            judge();
        });
        if (checks) {
            runAsync<QList<CheckRun>>(checks->checkRuns(sha), owner, [=](const Result<QList<CheckRun>> &runs) {
                if (reads->failed)
                    return;
                if (!runs) {
                    reads->failed = true;
                    return done(fail(runs.error().code, QStringLiteral("cannot read the check runs of %1: %2").arg(sha, runs.error().message),
                                     runs.error().detail));
                }
                reads->runs = *runs;
                judge();
            });
        }
    });
}

} // namespace Sluice::Ci
