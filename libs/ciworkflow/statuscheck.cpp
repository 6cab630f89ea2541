// SPDX-License-Identifier: Apache-2.0
#include "statuscheck.h"

#include <QJsonArray>

namespace Sluice::Ci {

namespace {

// The status posted later: the greater id. Gitea takes the greatest per-commit index of a
// context as its latest (GetLatestCommitStatus), GitHub lists statuses in the order they were
// created; their timestamps come from a clock that may step back (another node, NTP), and a
// status with an earlier time posted later is still the latest the forge judges by.
bool newer(const CommitStatus &a, const CommitStatus &b)
{
    return a.id > b.id;
}

QJsonObject statusJson(const CommitStatus &s)
{
    return QJsonObject{{QStringLiteral("id"), s.id},
                       {QStringLiteral("context"), s.context},
                       {QStringLiteral("state"), statusStateName(s.state)},
                       {QStringLiteral("updatedAt"), s.updatedAt.toString(Qt::ISODate)},
                       {QStringLiteral("description"), s.description}};
}

QJsonObject runJson(const CheckRun &r)
{
    QJsonObject o{{QStringLiteral("id"), r.id},
                  {QStringLiteral("name"), r.name},
                  {QStringLiteral("status"), r.status},
                  {QStringLiteral("state"), statusStateName(r.state)}};
    if (!r.conclusion.isEmpty())
        o.insert(QStringLiteral("conclusion"), r.conclusion);
    if (r.completedAt.isValid())
        o.insert(QStringLiteral("completedAt"), r.completedAt.toString(Qt::ISODate));
    if (!r.appSlug.isEmpty())
        o.insert(QStringLiteral("app"), r.appSlug);
    return o;
}

QString stateReason(const QString &context, StatusState state)
{
    const QString quoted = QLatin1Char('\'') + context + QLatin1Char('\'');
    switch (state) {
    case StatusState::Success:
        return QStringLiteral("%1 succeeded").arg(quoted);
    case StatusState::Pending:
        return QStringLiteral("%1 is pending").arg(quoted);
    case StatusState::Failure:
        return QStringLiteral("%1 failed").arg(quoted);
    case StatusState::Error:
        return QStringLiteral("%1 errored").arg(quoted);
    case StatusState::Skipped:
        return QStringLiteral("%1 was skipped, and a required job must succeed").arg(quoted);
    case StatusState::Cancelled:
        return QStringLiteral("%1 was cancelled").arg(quoted);
    case StatusState::Warning:
        return QStringLiteral("%1 ended with a warning, not success").arg(quoted);
    }
    return QStringLiteral("%1 has an unknown state").arg(quoted);
}

} // namespace

QHash<QString, CommitStatus> latestByContext(const QList<CommitStatus> &statuses)
{
    QHash<QString, CommitStatus> latest;
    for (const CommitStatus &s : statuses) {
        auto it = latest.find(s.context);
        if (it == latest.end())
            latest.insert(s.context, s);
        else if (newer(s, *it))
            *it = s;
    }
    return latest;
}

QHash<QString, CheckRun> latestRunByName(const QList<CheckRun> &runs)
{
    QHash<QString, CheckRun> latest;
    for (const CheckRun &r : runs) {
        auto it = latest.find(r.name);
        if (it == latest.end())
            latest.insert(r.name, r);
        else if (r.id > it->id)
            *it = r;
    }
    return latest;
}

std::optional<Semantics> semanticsFromName(const QString &name)
{
    if (name == QLatin1String("strict"))
        return Semantics::Strict;
    if (name == QLatin1String("forge"))
        return Semantics::Forge;
    return std::nullopt;
}

QJsonObject ContextJudgement::toJson() const
{
    static const char *const outcomes[] = {"passes", "pending", "red"};
    QJsonObject o{{QStringLiteral("context"), context},
                  {QStringLiteral("passes"), passes},
                  {QStringLiteral("outcome"), QLatin1String(outcomes[int(outcome)])},
                  {QStringLiteral("reason"), reason}};
    if (latest)
        o.insert(QStringLiteral("status"), statusJson(*latest));
    if (checkRun)
        o.insert(QStringLiteral("checkRun"), runJson(*checkRun));
    if (passesOnlyAsForge)
        o.insert(QStringLiteral("passesOnlyAsForge"), true);
    return o;
}

namespace {

Outcome outcomeOf(StatusState state, bool checkRun, Semantics semantics, bool *onlyAsForge)
{
    switch (state) {
    case StatusState::Success:
        return Outcome::Passes;
    case StatusState::Pending:
        return Outcome::Pending;
    case StatusState::Skipped:
    case StatusState::Warning:
        // GitHub's branch protection takes a skipped or neutral check run as passing
        // (docs.github.com, "About status checks": a skipped job reports success to it).
        if (checkRun) {
            *onlyAsForge = true;
            if (semantics == Semantics::Forge)
                return Outcome::Passes;
        }
        return Outcome::Red;
    case StatusState::Failure:
    case StatusState::Error:
    case StatusState::Cancelled:
        return Outcome::Red;
    }
    return Outcome::Red;
}

} // namespace

ContextJudgement judgeContext(const QString &context, const QHash<QString, CommitStatus> &latest,
                              const QHash<QString, CheckRun> &runs, Semantics semantics)
{
    ContextJudgement j;
    j.context = context;
    if (const auto it = latest.constFind(context); it != latest.cend())
        j.latest = *it;
    if (const auto it = runs.constFind(context); it != runs.cend())
        j.checkRun = *it;
    if (!j.latest && !j.checkRun) {
        j.outcome = Outcome::Pending;
        j.reason = QStringLiteral("'%1' has no status yet").arg(context);
        return j;
    }
    QList<Outcome> outcomes;
    QStringList reasons;
    bool statusOnlyAsForge = false;
    bool runOnlyAsForge = false;
    if (j.latest) {
        outcomes.append(outcomeOf(j.latest->state, false, semantics, &statusOnlyAsForge));
        reasons.append((j.checkRun ? QStringLiteral("commit status ") : QString()) + stateReason(context, j.latest->state));
    }
    if (j.checkRun) {
        outcomes.append(outcomeOf(j.checkRun->state, true, semantics, &runOnlyAsForge));
        QString why = QStringLiteral("check run ") + stateReason(context, j.checkRun->state);
        if (runOnlyAsForge && semantics == Semantics::Forge)
            why += QStringLiteral(" (accepted: required_semantics is forge)");
        reasons.append(why);
    }
    j.outcome = outcomes.contains(Outcome::Red) ? Outcome::Red : outcomes.contains(Outcome::Pending) ? Outcome::Pending : Outcome::Passes;
    j.passes = j.outcome == Outcome::Passes;
    // Would pass as the forge judges it, but not strictly: the difference ci-drift reports.
    j.passesOnlyAsForge = runOnlyAsForge && !outcomes.contains(Outcome::Pending)
        && (!j.latest || j.latest->state == StatusState::Success);
    j.reason = reasons.join(QStringLiteral("; "));
    return j;
}

QList<ContextJudgement> judgeRequired(const QStringList &required, const QHash<QString, CommitStatus> &latest,
                                      const QHash<QString, CheckRun> &runs, Semantics semantics)
{
    QList<ContextJudgement> out;
    for (const QString &context : required)
        out.append(judgeContext(context, latest, runs, semantics));
    return out;
}

QString decisionName(Decision decision)
{
    switch (decision) {
    case Decision::Compensate: return QStringLiteral("compensate");
    case Decision::UmbrellaMissing: return QStringLiteral("umbrella-missing");
    case Decision::UmbrellaSuccess: return QStringLiteral("umbrella-success");
    case Decision::UmbrellaNotFailure: return QStringLiteral("umbrella-not-failure");
    case Decision::AlreadyCompensated: return QStringLiteral("already-compensated");
    case Decision::SubJobNotGreen: return QStringLiteral("sub-job-not-green");
    case Decision::TooYoung: return QStringLiteral("too-young");
    }
    return QStringLiteral("unknown");
}

QJsonObject CompensationDecision::evidence() const
{
    QJsonArray jobs;
    for (const ContextJudgement &j : subJobs)
        jobs.append(j.toJson());
    QJsonObject o{{QStringLiteral("subJobs"), jobs}};
    if (umbrella)
        o.insert(QStringLiteral("umbrella"), statusJson(*umbrella));
    if (umbrellaRun)
        o.insert(QStringLiteral("umbrellaCheckRun"), runJson(*umbrellaRun));
    if (decision == Decision::Compensate)
        o.insert(QStringLiteral("repair"), rerun ? QStringLiteral("re-run the umbrella check run") : QStringLiteral("post a success status"));
    return o;
}

CompensationDecision decideCompensation(const CompensationInput &input)
{
    CompensationDecision d;
    const QHash<QString, CommitStatus> latest = latestByContext(input.statuses);
    const QHash<QString, CheckRun> runs = latestRunByName(input.checkRuns);
    QStringList required = input.required;
    required.removeAll(input.umbrella);
    d.subJobs = judgeRequired(required, latest, runs, Semantics::Strict);
    if (const auto it = latest.constFind(input.umbrella); it != latest.cend())
        d.umbrella = *it;
    if (const auto it = runs.constFind(input.umbrella); it != runs.cend())
        d.umbrellaRun = *it;

    if (!d.umbrella && !d.umbrellaRun) {
        d.decision = Decision::UmbrellaMissing;
        d.reason = QStringLiteral("the umbrella '%1' has no status; nothing to compensate").arg(input.umbrella);
        return d;
    }
    // The failure to repair: a failed check run can only be re-run (a status never stands in for
    // it: GitHub requires both), a failed status gets a compensating status.
    const bool runFailed = d.umbrellaRun && d.umbrellaRun->state == StatusState::Failure;
    const bool statusFailed = d.umbrella && d.umbrella->state == StatusState::Failure;
    const bool runOk = !d.umbrellaRun || d.umbrellaRun->state == StatusState::Success;
    const bool statusOk = !d.umbrella || d.umbrella->state == StatusState::Success;
    if (runOk && statusOk) {
        d.decision = Decision::UmbrellaSuccess;
        d.reason = d.umbrellaRun ? QStringLiteral("the umbrella '%1' is already success (check run %2)").arg(input.umbrella).arg(d.umbrellaRun->id)
                                 : QStringLiteral("the umbrella '%1' is already success (status %2)").arg(input.umbrella).arg(d.umbrella->id);
        return d;
    }
    if (!runFailed && !statusFailed) {
        const StatusState state = !runOk ? d.umbrellaRun->state : d.umbrella->state;
        d.decision = Decision::UmbrellaNotFailure;
        d.reason = QStringLiteral("the umbrella '%1' is %2; only a failure is compensated").arg(input.umbrella, statusStateName(state));
        return d;
    }
    d.rerun = runFailed;
    const qint64 failedId = d.rerun ? d.umbrellaRun->id : d.umbrella->id;
    const QDateTime failedAt = d.rerun ? d.umbrellaRun->completedAt : d.umbrella->updatedAt;
    const QString what = d.rerun ? QStringLiteral("check run") : QStringLiteral("status");
    if (d.rerun ? input.rerunUmbrellaRunIds.contains(failedId) : input.compensatedUmbrellaIds.contains(failedId)) {
        d.decision = Decision::AlreadyCompensated;
        d.reason = d.rerun ? QStringLiteral("umbrella check run %1 was re-run before; never twice").arg(failedId)
                           : QStringLiteral("umbrella failure %1 was compensated before; never twice").arg(failedId);
        return d;
    }
    if (required.isEmpty()) {
        d.decision = Decision::SubJobNotGreen;
        d.reason = QStringLiteral("no required sub-job is known; nothing proves the umbrella wrong");
        return d;
    }
    QStringList blocking;
    for (const ContextJudgement &j : std::as_const(d.subJobs)) {
        if (!j.passes)
            blocking.append(j.reason);
    }
    if (!blocking.isEmpty()) {
        d.decision = Decision::SubJobNotGreen;
        d.reason = blocking.join(QStringLiteral("; "));
        return d;
    }
    const qint64 age = failedAt.msecsTo(input.now);
    if (!failedAt.isValid() || age < input.thresholdMs) {
        d.decision = Decision::TooYoung;
        d.reason = QStringLiteral("the umbrella failed %1 s ago, under the %2 s threshold")
                       .arg(age / 1000)
                       .arg(input.thresholdMs / 1000);
        return d;
    }
    d.decision = Decision::Compensate;
    d.reason = QStringLiteral("the umbrella %1 failed %2 s ago while all %3 required sub-jobs succeeded on this commit")
                   .arg(what)
                   .arg(age / 1000)
                   .arg(required.size());
    if (!d.rerun) // the wording the status path always had
        d.reason = QStringLiteral("the umbrella failed %1 s ago while all %2 required sub-jobs succeeded on this commit").arg(age / 1000).arg(required.size());
    return d;
}

} // namespace Sluice::Ci
