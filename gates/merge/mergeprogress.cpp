// SPDX-License-Identifier: Apache-2.0
#include "mergeprogress.h"

#include <QJsonDocument>

#include <algorithm>
#include <array>

namespace Sluice::Merge {

namespace {

constexpr std::array<const char *, 5> StepNames{"rebased", "pushed", "checked", "merging", "merged"};

} // namespace

QString mergeStepName(MergeStep step)
{
    return QLatin1String(StepNames.at(std::size_t(step)));
}

QJsonObject MergeProgress::toJson() const
{
    return QJsonObject{{QStringLiteral("step"), mergeStepName(step)},
                       {QStringLiteral("head"), head},
                       {QStringLiteral("base"), base},
                       {QStringLiteral("previous"), previous},
                       {QStringLiteral("pull_request"), pullRequest}};
}

Result<MergeProgress> MergeProgress::fromJson(const QByteArray &bytes)
{
    const QJsonDocument doc = QJsonDocument::fromJson(bytes);
    if (!doc.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("merge progress marker is not a JSON object"));
    const QJsonObject o = doc.object();
    MergeProgress p;
    const QString step = o.value(QStringLiteral("step")).toString();
    const auto found = std::find_if(StepNames.cbegin(), StepNames.cend(), [&](const char *n) { return step == QLatin1String(n); });
    if (found == StepNames.cend())
        return fail(ErrorCode::Malformed, QStringLiteral("merge progress marker has an unknown step '%1'").arg(step));
    p.step = MergeStep(found - StepNames.cbegin());
    p.head = o.value(QStringLiteral("head")).toString();
    p.base = o.value(QStringLiteral("base")).toString();
    p.previous = o.value(QStringLiteral("previous")).toString();
    p.pullRequest = o.value(QStringLiteral("pull_request")).toVariant().toLongLong();
    if (p.head.isEmpty() || p.base.isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("merge progress marker lacks its head or base"));
    return p;
}

QString progressKey(qint64 taskId, const QString &head)
{
    return QStringLiteral("progress/%1/%2").arg(taskId).arg(head);
}

Result<std::optional<MergeProgress>> readProgress(StateStore &state, qint64 taskId, const QString &head)
{
    auto stored = state.value(progressKey(taskId, head));
    if (!stored)
        return std::unexpected(stored.error());
    if (!*stored)
        return std::optional<MergeProgress>();
    auto progress = MergeProgress::fromJson(**stored);
    if (!progress)
        return std::unexpected(progress.error());
    if (progress->head != head)
        return fail(ErrorCode::Malformed, QStringLiteral("merge progress marker of %1 names the head %2").arg(head, progress->head));
    return std::optional<MergeProgress>(*progress);
}

Result<void> writeProgress(StateStore &state, qint64 taskId, const MergeProgress &progress)
{
    return state.setValue(progressKey(taskId, progress.head), QJsonDocument(progress.toJson()).toJson(QJsonDocument::Compact));
}

} // namespace Sluice::Merge
