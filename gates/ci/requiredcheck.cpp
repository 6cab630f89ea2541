// SPDX-License-Identifier: Apache-2.0
#include "requiredcheck.h"

#include <QJsonArray>

#include <algorithm>
#include <QPointer>

namespace Sluice::Ci {

bool RequiredCheck::green() const
{
    return std::all_of(contexts.cbegin(), contexts.cend(), [](const ContextJudgement &j) { return j.passes; });
}

bool RequiredCheck::red() const
{
    return std::any_of(contexts.cbegin(), contexts.cend(), [](const ContextJudgement &j) {
        return j.latest && j.latest->state != StatusState::Pending && j.latest->state != StatusState::Success;
    });
}

GateVerdict RequiredCheck::verdict() const
{
    QJsonArray evidence;
    QList<Finding> findings;
    for (const ContextJudgement &j : contexts) {
        evidence.append(j.toJson());
        if (!j.passes)
            findings.append(Finding{j.context, j.reason, QString(), 0, QStringLiteral("blocking")});
    }
    const QJsonObject ev{{QStringLiteral("sha"), sha},
                         {QStringLiteral("workflow"), workflow},
                         {QStringLiteral("contexts"), evidence},
                         {QStringLiteral("statusesRead"), statusesRead}};
    if (findings.isEmpty())
        return GateVerdict::pass(QStringLiteral("all %1 required CI contexts succeeded on %2").arg(contexts.size()).arg(sha.left(12)), ev);
    QStringList reasons;
    for (const Finding &f : std::as_const(findings))
        reasons.append(f.message);
    return GateVerdict::fail(QStringLiteral("%1 of %2 required CI contexts are not green on %3: %4")
                                 .arg(findings.size()).arg(contexts.size()).arg(sha.left(12), reasons.join(QStringLiteral("; "))),
                             findings, ev);
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
        const QStringList contexts = required->contexts;
        runAsync<QList<CommitStatus>>(guard->statuses(sha), owner, [=](const Result<QList<CommitStatus>> &statuses) {
            if (!statuses)
                return done(fail(statuses.error().code, QStringLiteral("cannot read the statuses of %1: %2").arg(sha, statuses.error().message),
                                 statuses.error().detail));
            RequiredCheck check;
            check.sha = sha;
            check.workflow = spec.workflow;
            check.contexts = judgeRequired(contexts, latestByContext(*statuses));
            check.statusesRead = int(statuses->size());
            done(check);
        });
    });
}

} // namespace Sluice::Ci
