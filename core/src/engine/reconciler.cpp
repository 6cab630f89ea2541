// SPDX-License-Identifier: Apache-2.0
#include "engine/reconciler.h"

#include "engine/engine.h"
#include "store/trackeroutbox.h"

#include <sluice/stage.h>
#include <sluice/tracker.h>

#include <QLoggingCategory>

#include <algorithm>

namespace Sluice {

Q_LOGGING_CATEGORY(lcReconciler, "sluice.core.reconciler", QtInfoMsg)

namespace {
const QString StatusName = QStringLiteral("reconciler");

// The job of the task's current visit to its stage: the newest job of that stage, if it was
// enqueued for the task's current version (jobs from before versions were recorded count).
const JobRecord *currentVisitJob(const QList<JobRecord> &jobs, const TaskRecord &task)
{
    const JobRecord *latest = nullptr;
    for (const JobRecord &job : jobs) {
        if (job.stage == task.stage && (!latest || job.id > latest->id))
            latest = &job;
    }
    if (!latest)
        return nullptr;
    const QJsonValue version = latest->payload.value(QLatin1String("taskVersion"));
    if (!version.isUndefined() && qint64(version.toDouble()) != task.version)
        return nullptr;
    return latest;
}
// The signals the stage's plugin waits for from people (none: it waits for nobody).
QStringList acceptedSignals(const ProjectRuntime &runtime, const StageConfig &stage)
{
    Stage *plugin = stage.run.isEmpty() ? nullptr : runtime.instances.as<Stage>(stage.run);
    return plugin ? plugin->acceptedSignals() : QStringList();
}
bool waitsForPeople(const ProjectRuntime &runtime, const StageConfig &stage)
{
    return !acceptedSignals(runtime, stage).isEmpty();
}
} // namespace

Reconciler::Reconciler(Engine &engine, const ReconcilerSettings &settings, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
    , m_settings(settings)
    , m_outbox(std::make_unique<TrackerOutbox>(engine.store()))
{
    qRegisterMetaType<Sluice::ReconcilerPass>();
    connect(&m_timer, &QTimer::timeout, this, &Reconciler::tick);
    m_deadline.setSingleShot(true);
    connect(&m_deadline, &QTimer::timeout, this, [this] {
        m_pass.ok = false;
        m_pass.errors.append(QStringLiteral("%1 tracker read(s) did not answer within the pass").arg(m_pendingReads));
        finishPass();
    });
    if (auto rows = m_engine.store().sweeperStatus(StatusName)) {
        for (const auto &[node, status] : std::as_const(*rows)) {
            if (node == m_engine.node()) {
                m_actedTotal = status.value(QStringLiteral("actedTotal")).toVariant().toLongLong();
                m_lastAction = status.value(QStringLiteral("lastAction")).toObject();
            }
        }
    }
}

Reconciler::~Reconciler() = default;

void Reconciler::start()
{
    if (!m_settings.enabled) {
        qCInfo(lcReconciler) << "the reconciler is off (reconciler.enabled: false)";
        return;
    }
    m_timer.start(int(std::clamp<qint64>(m_settings.interval.count(), 100, std::numeric_limits<int>::max())));
}

void Reconciler::stop()
{
    m_timer.stop();
}

QJsonObject Reconciler::status() const
{
    return QJsonObject{{QStringLiteral("enabled"), m_settings.enabled},
                       {QStringLiteral("intervalSeconds"), double(m_settings.interval.count()) / 1000.0},
                       {QStringLiteral("settleSeconds"), double(m_settings.settle.count()) / 1000.0},
                       {QStringLiteral("lastRun"), m_lastRun.isValid() ? m_lastRun.toString(Qt::ISODateWithMs) : QString()},
                       {QStringLiteral("lastRunOk"), m_lastOk},
                       {QStringLiteral("actedTotal"), double(m_actedTotal)},
                       {QStringLiteral("lastAction"), m_lastAction}};
}

void Reconciler::tick()
{
    if (m_running)
        return;
    m_running = true;
    m_pass = ReconcilerPass();
    m_pass.at = QDateTime::currentDateTimeUtc();
    const QDateTime settledBefore = m_pass.at.addMSecs(-qint64(m_settings.settle.count()));

    for (const QString &projectId : m_engine.projectIds()) {
        const auto runtime = m_engine.project(projectId);
        if (!runtime)
            continue;
        auto tasks = m_engine.tasks().tasks(projectId, {QStringLiteral("active")});
        if (!tasks) {
            failPass(tasks.error().toString());
            continue;
        }
        Tracker *tracker = runtime->config.trackerInstance.isEmpty() ? nullptr
                                                                     : runtime->instances.as<Tracker>(runtime->config.trackerInstance);
        for (const TaskRecord &task : std::as_const(*tasks))
            reconcileTask(*runtime, task, settledBefore);
        if (!tracker)
            continue;
        // The tracker's truth: a state change whose webhook was lost (or answered wrong, or
        // handled by a process that ended) is taken as the signal it maps to, once per
        // (issue, state, stage visit), through Engine::signal like a delivery.
        for (const TaskRecord &task : std::as_const(*tasks))
            readTrackerState(runtime, *tracker, task);
    }
    if (m_pendingReads == 0) {
        finishPass();
        return;
    }
    // Tracker reads that do not answer within the interval fail the pass; the next one asks again.
    m_deadline.start(int(std::clamp<qint64>(m_settings.interval.count(), 1000, std::numeric_limits<int>::max())));
}

void Reconciler::failPass(const QString &error)
{
    m_pass.ok = false;
    m_pass.errors.append(error);
}

void Reconciler::reconcileTask(const ProjectRuntime &runtime, const TaskRecord &task, const QDateTime &settledBefore)
{
    ++m_pass.examined;
    const StageConfig *stage = runtime.config.stage(task.stage);
    if (!stage || task.stage == runtime.config.stages.last().name) {
        ++m_pass.skipped;
        return;
    }
    if (waitsForPeople(runtime, *stage)) {
        if (!askPeopleAgain(runtime, task, settledBefore))
            ++m_pass.skipped;
        return;
    }
    if (m_engine.isAdvancing(task.id) || m_engine.isWaiting(task.id) || task.updatedAt > settledBefore) {
        ++m_pass.skipped;
        return;
    }
    auto jobs = m_engine.jobs().jobsForTask(task.id);
    if (!jobs) {
        failPass(jobs.error().toString());
        return;
    }
    bool open = false;
    for (const JobRecord &job : std::as_const(*jobs))
        open = open || job.status == QLatin1String("queued") || job.status == QLatin1String("running");
    if (open) {
        ++m_pass.skipped;
        return;
    }
    const JobRecord *job = currentVisitJob(*jobs, task);
    if (job && job->finishedAt.isValid() && job->finishedAt > settledBefore) {
        ++m_pass.skipped;
        return;
    }
    if (!job) {
        recordAction(task.id, task.project, task.stage, QStringLiteral("enter-stage"),
                     QStringLiteral("the task is in the stage but its job was never enqueued"));
        if (auto entered = m_engine.enterStage(runtime, task, task.stage, QStringLiteral("reconciler")); !entered)
            failPass(entered.error().toString());
        else
            ++m_pass.entered;
        return;
    }
    if (job->status == QLatin1String("failed")) {
        recordAction(task.id, task.project, task.stage, QStringLiteral("block"),
                     QStringLiteral("job %1 failed for good and the task was not blocked").arg(job->id));
        auto blocked = m_engine.block(task.id, task.stage,
                                      QStringLiteral("stage '%1' failed %2 time(s): %3").arg(task.stage).arg(job->attempts).arg(job->lastError),
                                      QStringLiteral("reconciler"));
        if (!blocked)
            failPass(blocked.error().toString());
        else if (*blocked)
            ++m_pass.blocked;
        return;
    }
    // Done, and the task did not move: the advance after it was lost (a crash after
    // the completion, a failed advance, a gate webhook that never came). The gates
    // decide again.
    recordAction(task.id, task.project, task.stage, QStringLiteral("advance"),
                 QStringLiteral("job %1 finished but the task did not move on").arg(job->id));
    m_engine.advance(task.id, task.stage, QStringLiteral("reconciler: job %1 finished, the task did not move").arg(job->id));
    ++m_pass.advanced;
}

bool Reconciler::askPeopleAgain(const ProjectRuntime &runtime, const TaskRecord &task, const QDateTime &settledBefore)
{
    // A stage that waits for people (an approval, a deploy confirmation) is theirs: never
    // moved from here. Only a request for people that was lost — the stage's job finished,
    // but the request was never recorded (the process died between the two), so no signal
    // would ever be taken — is made again: the stage runs again and asks.
    if (m_engine.isAdvancing(task.id) || task.updatedAt > settledBefore)
        return false;
    auto jobs = m_engine.jobs().jobsForTask(task.id);
    const JobRecord *job = jobs ? currentVisitJob(*jobs, task) : nullptr;
    const bool open = jobs && std::any_of(jobs->cbegin(), jobs->cend(), [](const JobRecord &j) {
        return j.status == QLatin1String("queued") || j.status == QLatin1String("running");
    });
    if (!job || open || job->status != QLatin1String("done") || !job->finishedAt.isValid() || job->finishedAt > settledBefore)
        return false;
    auto asked = m_engine.approvalRequested(task, task.stage);
    if (!asked) {
        failPass(asked.error().toString());
        return false;
    }
    if (*asked)
        return false;
    recordAction(task.id, task.project, task.stage, QStringLiteral("enter-stage"),
                 QStringLiteral("job %1 finished but the stage's request for people was never recorded").arg(job->id));
    if (auto entered = m_engine.enterStage(runtime, task, task.stage, QStringLiteral("reconciler: request lost")); !entered)
        failPass(entered.error().toString());
    else
        ++m_pass.entered;
    return true;
}

void Reconciler::readTrackerState(const std::shared_ptr<ProjectRuntime> &runtime, Tracker &tracker, const TaskRecord &task)
{
    if (task.trackerRef.isEmpty())
        return;
    const StageConfig *stage = runtime->config.stage(task.stage);
    if (!stage)
        return;
    const bool waiting = waitsForPeople(*runtime, *stage);
    if (waiting) {
        // A task waiting for a person moves on the tracker's state only when that state
        // was set after the wait began: Sluice's own state write for this visit (the
        // "needs input" of the approval request) went through, and nothing Sluice owes
        // the issue is pending. Otherwise the issue may still show a state from an
        // earlier visit ("Approved" for the last stage, "Rejected" before a rollback),
        // which is no answer to this request.
        if (m_engine.isAdvancing(task.id))
            return;
        auto own = m_outbox->latestStateWrite(task.project, task.id);
        if (!own) {
            failPass(own.error().toString());
            return;
        }
        if (!*own || (*own)->outcome != QLatin1String("ok") || (*own)->taskVersion != task.version
            || (*own)->stage != task.stage || (*own)->event != QLatin1String("approval-requested"))
            return;
    }
    std::shared_ptr<AsyncCall<TrackerIssue>> call(tracker.issue(task.trackerRef).release());
    if (!call)
        return;
    ++m_pendingReads;
    const qint64 taskId = task.id;
    const qint64 version = task.version;
    const QString taskStage = task.stage;
    const std::shared_ptr<ProjectRuntime> keep = runtime;
    const QStringList accepted = waiting ? acceptedSignals(*runtime, *stage) : QStringList();
    m_calls.append(call);
    connect(call.get(), &PluginJob::finished, this, [this, call, keep, taskId, version, taskStage, waiting, accepted] {
        if (!m_running)
            return; // the pass ended at its deadline
        const Result<TrackerIssue> &issue = call->result();
        if (!issue) {
            failPass(QStringLiteral("reading the tracker issue of task %1: %2").arg(taskId).arg(issue.error().message));
        } else if (waiting) {
            // Only an answer the stage takes (its signals, or a person's reject): the
            // echo of Sluice's own "needs input" is no answer.
            if (accepted.contains(issue->signal) || issue->signal == QLatin1String("reject")) {
                const QString delivery = QStringLiteral("reconcile:%1:%2:%3:%4").arg(issue->id, issue->state, taskStage).arg(version);
                auto taken = m_engine.signal(taskId, taskStage, issue->signal, QStringLiteral("reconciler"), delivery);
                if (taken && taken->kind == SignalResult::Kind::Accepted) {
                    ++m_pass.signalled;
                    recordAction(taskId, keep->config.id, taskStage, QStringLiteral("signal"),
                                 QStringLiteral("issue %1 shows \u201c%2\u201d (%3), set after the task began to wait; its delivery never moved the task")
                                     .arg(issue->key.isEmpty() ? issue->id : issue->key, issue->state, issue->signal));
                }
            }
        } else if (!issue->signal.isEmpty()) {
            const QString delivery = QStringLiteral("reconcile:%1:%2:%3").arg(issue->id, issue->state, taskStage);
            auto taken = m_engine.signal(taskId, taskStage, issue->signal, QStringLiteral("reconciler"), delivery);
            if (taken && taken->kind == SignalResult::Kind::Accepted)
                ++m_pass.signalled;
        }
        if (--m_pendingReads == 0)
            finishPass();
    });
    call->start();
}

void Reconciler::recordAction(qint64 taskId, const QString &project, const QString &stage, const QString &action, const QString &why)
{
    const QJsonObject entry{{QStringLiteral("task"), taskId},
                            {QStringLiteral("project"), project},
                            {QStringLiteral("stage"), stage},
                            {QStringLiteral("action"), action},
                            {QStringLiteral("reason"), why},
                            {QStringLiteral("at"), QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs)}};
    m_pass.actions.append(entry);
    m_lastAction = entry;
    ++m_actedTotal;
    qCWarning(lcReconciler).noquote() << "task" << taskId << "in stage" << stage << "-" << why << "->" << action;
    (void)m_engine.store().audit(AuditEntry{QStringLiteral("reconciler"), QStringLiteral("reconcile"), project, taskId, entry});
}

void Reconciler::finishPass()
{
    m_deadline.stop();
    for (const auto &call : std::exchange(m_calls, {})) {
        call->disconnect(this);
        if (!call->isFinished())
            call->cancel();
    }
    m_pendingReads = 0;
    m_running = false;
    m_lastRun = m_pass.at;
    m_lastOk = m_pass.ok;
    for (const QString &error : std::as_const(m_pass.errors))
        qCWarning(lcReconciler).noquote() << "reconciler pass:" << error;
    if (auto written = m_engine.store().setSweeperStatus(m_engine.node(), StatusName, status()); !written)
        qCWarning(lcReconciler).noquote() << "cannot record the reconciler status:" << written.error().toString();
    Q_EMIT passFinished(m_pass);
}

} // namespace Sluice
