// SPDX-License-Identifier: Apache-2.0
#include "engine/forgelistener.h"

#include "engine/metricsrecorder.h"
#include "engine/boundedcall.h"
#include "engine/engine.h"
#include "engine/forgesignals.h"
#include "store/store.h"

#include <sluice/stage.h>

#include <QLoggingCategory>
#include <QTimer>

namespace Sluice {

Q_LOGGING_CATEGORY(lcForgeListener, "sluice.core.forgelistener", QtInfoMsg)

namespace {
// The status contexts Sluice itself posts (ForgeFeedback): they come back as events and
// concern no gate.
const QString OwnContextPrefix = QStringLiteral("sluice/");

bool waitsForPeople(const ProjectRuntime &runtime, const StageConfig &stage)
{
    Stage *plugin = stage.run.isEmpty() ? nullptr : runtime.instances.as<Stage>(stage.run);
    return plugin && !plugin->acceptedSignals().isEmpty();
}

QString closedReason(qint64 number)
{
    return QStringLiteral("pull request #%1 was closed on the forge without merging").arg(number);
}
} // namespace

ForgeListener::ForgeListener(Engine &engine, ForgeFeedback *feedback, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
    , m_signals(std::make_unique<ForgeSignals>(engine, feedback))
{
}

ForgeListener::~ForgeListener() = default;

void ForgeListener::setMetrics(MetricsRecorder *metrics)
{
    m_metrics = metrics;
    m_signals->setMetrics(metrics);
}

int ForgeListener::inFlight() const
{
    return m_signals->inFlight() + m_pullReads;
}

QString ForgeListener::count(const QString &project, const ForgeEvent &event, const QString &result)
{
    const QString kind = forgeEventKindName(event.kind);
    if (m_metrics)
        m_metrics->increment(QStringLiteral("sluice_forge_events_total"),
                             {{QStringLiteral("project"), project}, {QStringLiteral("kind"), kind}, {QStringLiteral("result"), result}});
    Q_EMIT handled(project, kind, result);
    return result;
}

QString ForgeListener::handle(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instance, const QString &deliveryId,
                           const ForgeEvent &event)
{
    const QString project = runtime->config.id;
    if (instance != runtime->config.forgeInstance) {
        qCDebug(lcForgeListener).noquote() << "delivery" << deliveryId << "came to" << instance << "- project" << project
                                           << "uses forge" << runtime->config.forgeInstance << "; ignored";
        return count(project, event, QStringLiteral("ignored"));
    }
    switch (event.kind) {
    case ForgeEvent::Kind::CommitStatus:
    case ForgeEvent::Kind::CheckRun:
    case ForgeEvent::Kind::CheckSuite:
        return count(project, event, onCheck(runtime, event));
    case ForgeEvent::Kind::Push:
        return count(project, event, onPush(runtime, event));
    case ForgeEvent::Kind::PullRequest: {
        const QString result = onPullRequest(runtime, event);
        return result.isEmpty() ? QStringLiteral("reading") : count(project, event, result);
    }
    case ForgeEvent::Kind::Review:
    case ForgeEvent::Kind::Comment:
        m_signals->take(runtime, instance, deliveryId, event);
        return count(project, event, QStringLiteral("signal"));
    }
    return count(project, event, QStringLiteral("ignored"));
}

QString ForgeListener::wakeTask(const ProjectRuntime &runtime, const TaskRecord &task, const QString &cause)
{
    switch (m_engine.wake(task.id, cause)) {
    case Engine::Wake::Woken:
        return QStringLiteral("woken");
    case Engine::Wake::Deferred:
        return QStringLiteral("deferred");
    case Engine::Wake::NotWaiting:
        break;
    }
    // Nothing of the task waits or evaluates here: it may have waited in a process that is
    // gone (a CLI command, a node restarted). An idle task — its stage's work done, no job
    // open — lets its gates decide now; a task at work, or one waiting for people, is left alone.
    const StageConfig *stage = runtime.config.stage(task.stage);
    if (!stage || task.stage == runtime.config.stages.last().name || waitsForPeople(runtime, *stage))
        return QStringLiteral("ignored");
    auto jobs = m_engine.jobs().jobsForTask(task.id);
    if (!jobs) {
        qCWarning(lcForgeListener).noquote() << "cannot read the jobs of task" << task.id << "-" << jobs.error().toString();
        return QStringLiteral("ignored");
    }
    bool ran = false;
    for (const JobRecord &job : std::as_const(*jobs)) {
        if (job.status == QLatin1String("queued") || job.status == QLatin1String("running"))
            return QStringLiteral("ignored"); // its end advances the task
        ran = ran || job.stage == task.stage;
    }
    if (!ran)
        return QStringLiteral("ignored"); // its stage's job was never enqueued: the reconciler's case
    (void)m_engine.advance(task.id, task.stage, cause);
    return QStringLiteral("advanced");
}

QString ForgeListener::onCheck(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event)
{
    if (event.kind == ForgeEvent::Kind::CommitStatus && event.context.startsWith(OwnContextPrefix))
        return QStringLiteral("ignored");
    if (event.sha.isEmpty())
        return QStringLiteral("ignored");
    auto tasks = m_engine.tasks().tasks(runtime->config.id, {QStringLiteral("active")});
    if (!tasks) {
        qCWarning(lcForgeListener).noquote() << "cannot read the tasks of" << runtime->config.id << "-" << tasks.error().toString();
        return QStringLiteral("failed");
    }
    const QString cause = QStringLiteral("forge: %1 '%2' %3 on %4")
                              .arg(forgeEventKindName(event.kind), event.context, event.state, event.sha.left(12));
    QString result = QStringLiteral("ignored");
    for (const TaskRecord &task : std::as_const(*tasks)) {
        // The head the gates judge, or the one the forge has (pushed, not recorded yet as head).
        if (task.headSha != event.sha && task.pushedSha != event.sha)
            continue;
        const QString woke = wakeTask(*runtime, task, cause);
        qCDebug(lcForgeListener).noquote() << "task" << task.id << "-" << cause << "->" << woke;
        if (woke != QLatin1String("ignored"))
            result = woke;
    }
    return result;
}

QString ForgeListener::onPush(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event)
{
    if (event.branch.isEmpty() || event.branch == runtime->config.targetBranch)
        return QStringLiteral("ignored");
    auto tasks = m_engine.tasks().tasks(runtime->config.id, {QStringLiteral("active")});
    if (!tasks)
        return QStringLiteral("failed");
    for (const TaskRecord &task : std::as_const(*tasks)) {
        if (task.branch != event.branch)
            continue;
        if (event.sha == task.pushedSha || event.sha == task.headSha) {
            // Sluice's own push (or its echo): CI starts on it; the gates that wait for CI look again.
            return wakeTask(*runtime, task, QStringLiteral("forge: push of %1 to %2").arg(event.sha.left(12), event.branch));
        }
        // Someone else moved the task's branch at the forge: never published over, never
        // passed unjudged. The task's gates look now (the publish step before them takes the
        // pushed head as the task's, or blocks the task: docs/forge-loop.md); a task waiting
        // for people takes it now, so approvals are judged against it.
        qCWarning(lcForgeListener).noquote() << "branch" << event.branch << "of task" << task.id << "was moved at the forge to"
                                             << event.sha.left(12) << "by" << event.actor << "- Sluice last pushed"
                                             << (task.pushedSha.isEmpty() ? QStringLiteral("nothing") : task.pushedSha.left(12));
        (void)m_engine.store().audit(AuditEntry{QStringLiteral("forge:") + event.actor, QStringLiteral("forge-push"), task.project, task.id,
                                                QJsonObject{{QStringLiteral("branch"), event.branch},
                                                            {QStringLiteral("before"), event.before},
                                                            {QStringLiteral("after"), event.sha},
                                                            {QStringLiteral("pushed"), task.pushedSha}}});
        const QString cause = QStringLiteral("forge: %1 pushed %2 to %3").arg(event.actor, event.sha.left(12), event.branch);
        const StageConfig *stage = runtime->config.stage(task.stage);
        if (stage && waitsForPeople(*runtime, *stage)) {
            m_engine.lookAtForgeHead(task.id, cause);
            return QStringLiteral("recorded");
        }
        const QString woke = wakeTask(*runtime, task, cause);
        return woke == QLatin1String("ignored") ? QStringLiteral("recorded") : woke;
    }
    return QStringLiteral("ignored");
}

QString ForgeListener::onPullRequest(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event)
{
    // Open tasks only (a done task's branch may be reused by a new task).
    auto tasks = m_engine.tasks().tasks(runtime->config.id, {QStringLiteral("active"), QStringLiteral("blocked")});
    if (!tasks)
        return QStringLiteral("failed");
    const TaskRecord *found = nullptr;
    for (const TaskRecord &t : std::as_const(*tasks)) {
        if ((event.pullRequest > 0 && t.pullRequest == event.pullRequest) || (t.pullRequest == 0 && t.branch == event.branch))
            found = &t;
    }
    if (!found || event.branch.isEmpty() || found->branch != event.branch)
        return QStringLiteral("ignored");
    const TaskRecord task = *found;
    const QString actor = QStringLiteral("forge:") + event.actor;
    if (task.pullRequest != event.pullRequest && event.action != QLatin1String("closed")) {
        if (auto recorded = m_engine.tasks().recordPublication(task.id, QString(), event.pullRequest); !recorded)
            qCWarning(lcForgeListener).noquote() << "cannot record pull request" << event.pullRequest << "of task" << task.id << "-"
                                                 << recorded.error().toString();
        else
            qCInfo(lcForgeListener).noquote() << "task" << task.id << "has pull request #" << event.pullRequest << "(" << event.action << ")";
    }
    if (event.action == QLatin1String("merged")) {
        // The gates see it merged (the merge gate: "already merged").
        return task.status == QLatin1String("active") ? wakeTask(*runtime, task, QStringLiteral("forge: pull request #%1 merged").arg(event.pullRequest))
                                                      : QStringLiteral("ignored");
    }
    if (event.action == QLatin1String("closed")) {
        if (task.status != QLatin1String("active") || task.pullRequest != event.pullRequest)
            return QStringLiteral("ignored");
        confirmPullRequest(runtime, event);
        return QString();
    }
    if (event.action == QLatin1String("reopened") && task.status == QLatin1String("blocked")
        && task.blockedReason.startsWith(closedReason(event.pullRequest))) {
        confirmPullRequest(runtime, event);
        return QString();
    }
    if (event.action == QLatin1String("synchronize") && task.status == QLatin1String("active")
        && (event.sha == task.pushedSha || event.sha == task.headSha))
        return wakeTask(*runtime, task, QStringLiteral("forge: pull request #%1 has head %2").arg(event.pullRequest).arg(event.sha.left(12)));
    return QStringLiteral("recorded");
}

void ForgeListener::confirmPullRequest(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event, int attempt)
{
    const QString project = runtime->config.id;
    auto *forge = runtime->instances.as<Forge>(runtime->config.forgeInstance);
    if (!forge) {
        qCWarning(lcForgeListener).noquote() << "pull request #" << event.pullRequest << "was" << event.action << "but forge"
                                             << runtime->config.forgeInstance << "of" << project << "cannot be asked how it is now; nothing changed";
        count(project, event, QStringLiteral("failed"));
        return;
    }
    ++m_pullReads;
    runBounded<PullRequest>(this, forge->pullRequest(event.pullRequest), std::chrono::seconds(60),
                            [this, runtime, event, project, attempt](const Result<PullRequest> &now) {
                                --m_pullReads;
                                // A read that failed is tried again a little later: dropped, a
                                // reopen would leave its task blocked while the forge has the
                                // pull request open (fault campaign seed 0x345bcd52c59ae957).
                                static constexpr int AgainAfterMs[] = {1000, 5000};
                                if (!now && attempt < int(std::size(AgainAfterMs))) {
                                    qCWarning(lcForgeListener).noquote()
                                        << "pull request #" << event.pullRequest << "was" << event.action << "- cannot read it back from the forge to confirm:"
                                        << now.error().toString() << "; reading it again in" << AgainAfterMs[attempt] << "ms";
                                    ++m_pullReads; // still in flight
                                    QTimer::singleShot(AgainAfterMs[attempt], this, [this, runtime, event, attempt] {
                                        --m_pullReads;
                                        confirmPullRequest(runtime, event, attempt + 1);
                                    });
                                    return;
                                }
                                if (!now) {
                                    // Unconfirmed, nothing is changed: the merge gate reads the pull
                                    // request itself, so a closed one is never merged meanwhile.
                                    qCWarning(lcForgeListener).noquote()
                                        << "pull request #" << event.pullRequest << "was" << event.action << "- cannot read it back from the forge to confirm;"
                                        << "nothing changed:" << now.error().toString();
                                    count(project, event, QStringLiteral("failed"));
                                    return;
                                }
                                count(project, event, applyPullRequestState(runtime, event, *now));
                            });
}

QString ForgeListener::applyPullRequestState(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event, const PullRequest &now)
{
    const bool closedNow = now.state == QLatin1String("closed") && !now.merged;
    const bool openNow = now.state == QLatin1String("open");
    // The task as it is now: it may have moved while the forge was read.
    auto tasks = m_engine.tasks().tasks(runtime->config.id, {QStringLiteral("active"), QStringLiteral("blocked")});
    if (!tasks)
        return QStringLiteral("failed");
    const TaskRecord *found = nullptr;
    for (const TaskRecord &t : std::as_const(*tasks)) {
        if (t.pullRequest == event.pullRequest && t.branch == event.branch)
            found = &t;
    }
    if (!found)
        return QStringLiteral("ignored");
    const TaskRecord task = *found;
    const QString actor = QStringLiteral("forge:") + event.actor;
    if (event.action == QLatin1String("closed")) {
        if (!closedNow) {
            qCInfo(lcForgeListener).noquote() << "pull request #" << event.pullRequest << "was closed by" << event.actor << "but the forge has it"
                                              << (now.merged ? QStringLiteral("merged") : now.state) << "now; task" << task.id << "is not blocked";
            return QStringLiteral("ignored");
        }
        if (task.status != QLatin1String("active"))
            return QStringLiteral("ignored");
        // Someone decided against the change: nothing more happens to it until a person says so.
        auto blocked = m_engine.block(task.id, task.stage, QStringLiteral("%1 by %2; reopen it to go on").arg(closedReason(event.pullRequest), event.actor),
                                      actor);
        if (!blocked) {
            qCWarning(lcForgeListener).noquote() << "cannot block task" << task.id << "-" << blocked.error().toString();
            return QStringLiteral("failed");
        }
        return *blocked ? QStringLiteral("blocked") : QStringLiteral("ignored");
    }
    // Reopened.
    if (!openNow) {
        qCInfo(lcForgeListener).noquote() << "pull request #" << event.pullRequest << "was reopened by" << event.actor << "but the forge has it"
                                          << (now.merged ? QStringLiteral("merged") : now.state) << "now; task" << task.id << "stays blocked";
        return QStringLiteral("ignored");
    }
    if (task.status != QLatin1String("blocked") || !task.blockedReason.startsWith(closedReason(event.pullRequest)))
        return QStringLiteral("ignored");
    auto retried = m_engine.retry(task.id, actor, QStringLiteral("pull request #%1 reopened on the forge").arg(event.pullRequest), actor);
    if (!retried) {
        qCWarning(lcForgeListener).noquote() << "cannot retry task" << task.id << "after its pull request was reopened -" << retried.error().message;
        return QStringLiteral("failed");
    }
    return QStringLiteral("retried");
}

} // namespace Sluice
