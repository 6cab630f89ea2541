// SPDX-License-Identifier: Apache-2.0
#include "statuscheck.h"

#include <QJsonArray>

namespace Sluice::Ci {

namespace {

bool newer(const CommitStatus &a, const CommitStatus &b)
{
    if (a.updatedAt != b.updatedAt)
        return a.updatedAt > b.updatedAt;
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

QJsonObject ContextJudgement::toJson() const
{
    QJsonObject o{{QStringLiteral("context"), context}, {QStringLiteral("passes"), passes}, {QStringLiteral("reason"), reason}};
    if (latest)
        o.insert(QStringLiteral("status"), statusJson(*latest));
    return o;
}

QList<ContextJudgement> judgeRequired(const QStringList &required, const QHash<QString, CommitStatus> &latest)
{
    QList<ContextJudgement> out;
    for (const QString &context : required) {
        ContextJudgement j;
        j.context = context;
        const auto it = latest.constFind(context);
        if (it == latest.cend()) {
            j.reason = QStringLiteral("'%1' has no status").arg(context);
        } else {
            j.latest = *it;
            j.passes = it->state == StatusState::Success;
            j.reason = stateReason(context, it->state);
        }
        out.append(j);
    }
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
    return o;
}

CompensationDecision decideCompensation(const CompensationInput &input)
{
    CompensationDecision d;
    const QHash<QString, CommitStatus> latest = latestByContext(input.statuses);
    QStringList required = input.required;
    required.removeAll(input.umbrella);
    d.subJobs = judgeRequired(required, latest);
    if (const auto it = latest.constFind(input.umbrella); it != latest.cend())
        d.umbrella = *it;

    if (!d.umbrella) {
        d.decision = Decision::UmbrellaMissing;
        d.reason = QStringLiteral("the umbrella '%1' has no status; nothing to compensate").arg(input.umbrella);
        return d;
    }
    if (d.umbrella->state == StatusState::Success) {
        d.decision = Decision::UmbrellaSuccess;
        d.reason = QStringLiteral("the umbrella '%1' is already success (status %2)").arg(input.umbrella).arg(d.umbrella->id);
        return d;
    }
    if (d.umbrella->state != StatusState::Failure) {
        d.decision = Decision::UmbrellaNotFailure;
        d.reason = QStringLiteral("the umbrella '%1' is %2; only a failure is compensated")
                       .arg(input.umbrella, statusStateName(d.umbrella->state));
        return d;
    }
    if (input.compensatedUmbrellaIds.contains(d.umbrella->id)) {
        d.decision = Decision::AlreadyCompensated;
        d.reason = QStringLiteral("umbrella failure %1 was compensated before; never twice").arg(d.umbrella->id);
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
    const qint64 age = d.umbrella->updatedAt.msecsTo(input.now);
    if (!d.umbrella->updatedAt.isValid() || age < input.thresholdMs) {
        d.decision = Decision::TooYoung;
        d.reason = QStringLiteral("the umbrella failed %1 s ago, under the %2 s threshold")
                       .arg(age / 1000)
                       .arg(input.thresholdMs / 1000);
        return d;
    }
    d.decision = Decision::Compensate;
    d.reason = QStringLiteral("the umbrella failed %1 s ago while all %2 required sub-jobs succeeded on this commit")
                   .arg(age / 1000)
                   .arg(required.size());
    return d;
}

} // namespace Sluice::Ci
