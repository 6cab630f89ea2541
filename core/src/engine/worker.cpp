// SPDX-License-Identifier: Apache-2.0
#include "engine/worker.h"

#include "engine/engine.h"
#include "procstat.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QJsonArray>
#include <QLoggingCategory>
#include <QSysInfo>
#include <QtConcurrent/QtConcurrentRun>

namespace Sluice {

Q_LOGGING_CATEGORY(lcWorker, "sluice.core.worker", QtInfoMsg)

struct Worker::Run {
    JobRecord job;
    TaskRecord task;          // as it was when the job started
    QString worktree;         // the task's working copy, when the stage has one
    QString artifacts;        // where its logs go (an adopted agent's: where it writes them)
    RefSnapshot refsBefore;   // the project's repository just before the run
    QDateTime refsAt;
    bool refsKnown = false;
    QString plugin;
    QDateTime startedAt;
    std::shared_ptr<ProjectRuntime> runtime; // keeps the instances alive across a reload
    std::unique_ptr<StageRun> stageRun;
    QTimer deadline;
    bool timedOut = false;
    bool interrupted = false; // cancelled by shutdown(): the job goes back to the queue
    qint64 agentRunId = 0;    // agent_runs row of the process the run started, if any
    std::optional<AgentProcess> adopt; // an agent from before a restart, watched instead of launched
};

struct Worker::Prepared {
    QString worktree;
    RefSnapshot refs;
    QDateTime at;
    bool known = false;
};

struct Worker::Finished {
    QList<RefChange> changes;           // made to the project's repository by someone else
    QString changesError;               // the repository could not be looked at
    std::optional<Result<QString>> head; // the task branch taken from the working copy
    std::optional<Result<QList<StageFile>>> files; // what it left for gates in .sluice/
    bool fenced = false;                // the job was taken over: nothing was taken, nothing is recorded
};

namespace {
// The snapshot of the project's references taken before a run, kept next to the task's
// artifacts so a restarted daemon that adopts the run can still compare.
QString refsFile(const Workspace &workspace, const TaskRecord &task, qint64 jobId)
{
    return QDir(workspace.artifactsPath(task.project, task.id)).filePath(QStringLiteral("refs-before-job%1.txt").arg(jobId));
}

Result<void> writeRefs(const QString &path, const QDateTime &at, const RefSnapshot &refs)
{
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(path), f.errorString());
    QByteArray text = QByteArray::number(at.toMSecsSinceEpoch()) + '\n';
    for (auto it = refs.cbegin(); it != refs.cend(); ++it)
        text += it.key().toUtf8() + ' ' + it.value().toUtf8() + '\n';
    if (f.write(text) != text.size())
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1").arg(path), f.errorString());
    return {};
}

bool readRefs(const QString &path, QDateTime &at, RefSnapshot &refs)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return false;
    const QList<QByteArray> lines = f.readAll().split('\n');
    bool ok = false;
    at = QDateTime::fromMSecsSinceEpoch(lines.value(0).toLongLong(&ok), Qt::UTC);
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const int space = lines.at(i).indexOf(' ');
        if (space > 0)
            refs.insert(QString::fromUtf8(lines.at(i).left(space)), QString::fromUtf8(lines.at(i).mid(space + 1)));
    }
    return ok;
}
} // namespace

Worker::Worker(Engine &engine, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
{
    m_poll.setInterval(2000);
    connect(&m_poll, &QTimer::timeout, this, &Worker::drain);
    m_flush.setSingleShot(true);
    m_flush.setInterval(0);
    connect(&m_flush, &QTimer::timeout, this, &Worker::flushCompletions);
    connect(&m_engine, &Engine::jobEnqueued, this, [this] {
        if (m_started)
            QTimer::singleShot(0, this, &Worker::drain);
    });
}

Worker::~Worker()
{
    // Runs are cancelled by their owners going away; their jobs stay "running" in the store
    // and startup recovery takes them back.
    for (const auto &run : std::as_const(m_runs)) {
        if (run->stageRun)
            run->stageRun->disconnect(this);
    }
}

void Worker::setPollInterval(std::chrono::milliseconds interval)
{
    m_poll.setInterval(int(interval.count()));
}

ConcurrencyLimits Worker::limits() const
{
    ConcurrencyLimits limits;
    limits.global = m_globalLimit;
    // Jobs of projects this node has not loaded (another node's, or one unloaded by a
    // reload) are not ours to claim.
    limits.perProjectDefault = 0;
    for (const QString &id : m_engine.projectIds()) {
        if (const auto runtime = m_engine.project(id))
            limits.perProject.insert(id, runtime->config.jobConcurrency);
    }
    return limits;
}

void Worker::start()
{
    m_started = true;
    m_poll.start();
    QTimer::singleShot(0, this, &Worker::drain);
}

void Worker::wake()
{
    if (m_started)
        QTimer::singleShot(0, this, &Worker::drain);
}

void Worker::forsake()
{
    stop();
    for (const auto &run : std::as_const(m_runs)) {
        run->deadline.stop();
        if (!run->stageRun)
            continue;
        // Not cancelled: cancelling stops the process group, and an agent a survivor adopted
        // is the survivor's now. The run object goes with the process's end (or ours).
        StageRun *stageRun = run->stageRun.release();
        stageRun->disconnect(this);
        connect(stageRun, &PluginJob::finished, stageRun, &QObject::deleteLater);
    }
    m_runs.clear();
    m_completions.clear();
    m_flush.stop();
}

void Worker::stop()
{
    m_started = false;
    m_poll.stop();
}

void Worker::shutdown()
{
    stop();
    m_shuttingDown = true;
    for (const auto &run : std::as_const(m_runs)) {
        if (!run->stageRun || run->interrupted)
            continue;
        qCInfo(lcWorker).noquote() << "job" << run->job.id << "of task" << run->job.taskId
                                   << "interrupted by the shutdown; stopping its run";
        run->interrupted = true;
        run->stageRun->cancel();
    }
    checkDrained();
}

void Worker::checkDrained()
{
    if (m_shuttingDown && m_runs.isEmpty() && m_completions.isEmpty() && m_settling.isEmpty())
        QTimer::singleShot(0, this, &Worker::drained);
}

QList<Worker::Running> Worker::running() const
{
    QList<Running> out;
    for (const auto &run : m_runs)
        out.append(Running{run->job, run->plugin, run->startedAt});
    return out;
}

std::chrono::milliseconds retryBackoff(const ProjectRuntime *runtime, int attempts)
{
    const qint64 base = runtime ? runtime->config.jobRetryBackoffMs : 30000;
    const qint64 cap = std::max<qint64>(base, 15 * 60 * 1000);
    return std::chrono::milliseconds(std::min(base << std::clamp(attempts - 1, 0, 6), cap));
}

QSet<qint64> Worker::monitoredJobs() const
{
    QSet<qint64> out;
    for (auto it = m_runs.cbegin(); it != m_runs.cend(); ++it)
        out.insert(it.key());
    for (const Completion &completion : m_completions)
        out.insert(completion.job.id);
    out.unite(m_settling);
    return out;
}

void Worker::abandon(qint64 jobId, const QString &why)
{
    for (qsizetype i = m_completions.size() - 1; i >= 0; --i) {
        if (m_completions.at(i).job.id == jobId)
            m_completions.removeAt(i);
    }
    const auto run = m_runs.take(jobId);
    if (!run)
        return;
    qCWarning(lcWorker).noquote() << "job" << jobId << "taken over by the reaper:" << why;
    run->deadline.stop();
    if (run->stageRun) {
        StageRun *stageRun = run->stageRun.release();
        stageRun->disconnect(this);
        if (stageRun->isFinished()) {
            stageRun->deleteLater();
        } else {
            connect(stageRun, &PluginJob::finished, stageRun, &QObject::deleteLater);
            stageRun->cancel();
        }
    }
    checkDrained();
}

void Worker::drain()
{
    if (!m_started || m_draining)
        return;
    m_draining = true;
    // Only this node's own running jobs count against what it may still start; one claim
    // transaction takes as many jobs as there is room for.
    while (m_started && int(m_runs.size()) < m_globalLimit) {
        auto claimed = m_engine.jobs().claim(m_engine.node(), limits(), QDateTime::currentDateTimeUtc(),
                                             m_globalLimit - int(m_runs.size()));
        if (!claimed) {
            qCWarning(lcWorker).noquote() << "cannot claim jobs:" << claimed.error().toString();
            break;
        }
        if (claimed->isEmpty())
            break;
        for (const JobRecord &job : std::as_const(*claimed))
            execute(job);
    }
    m_draining = false;
}

void Worker::completeLater(const JobRecord &job, Followup followup, const QString &summary)
{
    m_completions.append(Completion{job, followup, summary});
    m_flush.start();
}

void Worker::flushCompletions()
{
    if (m_completions.isEmpty())
        return;
    QList<JobClaim> claims;
    for (const Completion &completion : std::as_const(m_completions))
        claims.append(completion.job.claim());
    // The room these jobs leave is filled in the same transaction.
    const int room = m_started ? m_globalLimit - int(m_runs.size()) : 0;
    auto turnover = m_engine.jobs().completeAndClaim(claims, m_engine.node(), limits(), QDateTime::currentDateTimeUtc(), room);
    const Result<QList<qint64>> completed = turnover ? Result<QList<qint64>>(turnover->completed)
                                                    : Result<QList<qint64>>(std::unexpected(turnover.error()));
    if (!completed) {
        // The jobs stay running in the store; nothing follows until the store has them done.
        qCWarning(lcWorker).noquote() << "cannot record" << claims.size() << "completed job(s), retrying in 1 s:"
                                      << completed.error().toString();
        m_flush.start(1000);
        return;
    }
    m_flush.setInterval(0);
    const QList<Completion> batch = std::exchange(m_completions, {});
    for (const Completion &completion : batch) {
        const JobRecord &job = completion.job;
        const bool won = completed->contains(job.id);
        switch (completion.followup) {
        case Followup::Stale:
            Q_EMIT jobFinished(job.id, QStringLiteral("stale"));
            break;
        case Followup::Advance:
            if (!won) {
                qCWarning(lcWorker).noquote() << "job" << job.id << "completed but was finalised elsewhere (or taken over); not advancing";
                Q_EMIT jobFinished(job.id, QStringLiteral("lost"));
                break;
            }
            if (!completion.summary.isEmpty())
                qCInfo(lcWorker).noquote() << "job" << job.id << "completed:" << completion.summary;
            Q_EMIT jobFinished(job.id, QStringLiteral("completed"));
            // The gates, not the exit code, decide whether the task leaves the stage.
            m_engine.advance(job.taskId, job.stage,
                             job.kind == QLatin1String("advance")
                                 ? QStringLiteral("job %1 entered passive stage %2").arg(job.id).arg(job.stage)
                                 : QStringLiteral("job %1 completed stage %2").arg(job.id).arg(job.stage));
            break;
        case Followup::Wait:
            qCInfo(lcWorker).noquote() << "task" << job.taskId << "waits in stage" << job.stage << "-" << completion.summary;
            if (won)
                (void)m_engine.recordApprovalRequest(job, completion.summary); // logs its own failure
            Q_EMIT jobFinished(job.id, won ? QStringLiteral("waiting") : QStringLiteral("lost"));
            break;
        }
    }
    for (const JobRecord &job : std::as_const(turnover->claimed))
        execute(job);
    checkDrained();
    if (m_started)
        drain();
}

bool Worker::adopt(const JobRecord &job, const JobQueue::AgentRunRecord &agent)
{
    const auto runtime = m_engine.project(job.project);
    const StageConfig *stageConfig = runtime ? runtime->config.stage(job.stage) : nullptr;
    if (!stageConfig || !runtime->instances.as<Stage>(stageConfig->run) || job.kind != QLatin1String("stage"))
        return false;
    qCInfo(lcWorker).noquote() << "job" << job.id << "of task" << job.taskId << "adopts agent pid" << agent.pid
                               << "started before the restart";
    execute(job, agent);
    return true;
}

void Worker::execute(const JobRecord &job, const std::optional<JobQueue::AgentRunRecord> &adopted)
{
    auto run = std::make_shared<Run>();
    run->job = job;
    run->startedAt = QDateTime::currentDateTimeUtc();
    run->runtime = m_engine.project(job.project);
    if (adopted) {
        AgentProcess process;
        // The launcher knows machines by host name; the store row names this node. An agent
        // another node started on this machine is watched where it works and logs.
        process.node = QSysInfo::machineHostName();
        if (!adopted->worktree.isEmpty())
            run->worktree = adopted->worktree;
        if (!adopted->logPath.isEmpty())
            run->artifacts = QFileInfo(adopted->logPath).absolutePath();
        process.pid = adopted->pid;
        process.startTicks = adopted->startTicks;
        // The agent started after the claim: its deadline, counted from the claim, is not later than its own.
        process.startedAt = job.claimedAt;
        run->adopt = process;
        run->agentRunId = adopted->id;
        run->startedAt = job.claimedAt.isValid() ? job.claimedAt : run->startedAt;
    }
    m_runs.insert(job.id, run);

    auto task = m_engine.tasks().task(job.taskId);
    if (!run->runtime || !task) {
        failJob(job, run->runtime.get(), run->runtime ? task.error().toString()
                                                     : QStringLiteral("project %1 is not loaded on this node").arg(job.project));
        m_runs.remove(job.id);
        return;
    }
    // A job whose task has moved on (a signal or another node was faster) must not run.
    if (!*task || (*task)->status != QLatin1String("active") || (*task)->stage != job.stage) {
        const QString why = *task ? QStringLiteral("task %1 is %2 in stage %3").arg(job.taskId).arg((*task)->status, (*task)->stage)
                                  : QStringLiteral("task %1 is gone").arg(job.taskId);
        qCInfo(lcWorker).noquote() << "job" << job.id << "is stale:" << why;
        m_runs.remove(job.id);
        completeLater(job, Followup::Stale);
        return;
    }
    const TaskRecord &record = **task;
    if (job.kind == QLatin1String("advance")) {
        // A passive stage's checkpoint: no plugin runs, the gates decide.
        m_runs.remove(job.id);
        completeLater(job, Followup::Advance);
        return;
    }
    const StageConfig *stageConfig = run->runtime->config.stage(job.stage);
    Stage *stage = stageConfig ? run->runtime->instances.as<Stage>(stageConfig->run) : nullptr;
    if (!stage) {
        failJob(job, run->runtime.get(), QStringLiteral("stage '%1' has no stage plugin instance").arg(job.stage));
        m_runs.remove(job.id);
        return;
    }
    run->plugin = stageConfig->run;
    run->task = record;
    // The working copy is made off the event loop: checking out a large repository takes
    // seconds, and the daemon answers HTTP and pings the watchdog meanwhile.
    const qint64 jobId = job.id;
    const Workspace *workspace = &m_engine.workspace();
    const ProjectConfig config = run->runtime->config;
    const bool adopting = run->adopt.has_value();
    const QString adoptedCopy = run->worktree;
    const QString adoptedArtifacts = run->artifacts;
    auto *preparing = new QFutureWatcher<Result<Prepared>>(this);
    connect(preparing, &QFutureWatcher<Result<Prepared>>::finished, this, [this, preparing, jobId, record] {
        preparing->deleteLater();
        const Result<Prepared> prepared = preparing->result();
        startStage(jobId, record, prepared);
    });
    preparing->setFuture(QtConcurrent::run([workspace, config, record, jobId, adopting, adoptedCopy, adoptedArtifacts]() -> Result<Prepared> {
        Prepared prepared;
        const QString file = refsFile(*workspace, record, jobId);
        if (adopting) {
            // The agent still works in its copy: leave it exactly as it is (another node's
            // copy on this machine, when it started it).
            prepared.worktree = adoptedCopy.isEmpty() ? workspace->worktreePath(config.id, record.id) : adoptedCopy;
            const QString adoptedFile = adoptedArtifacts.isEmpty() ? file
                                                                   : QDir(adoptedArtifacts).filePath(QFileInfo(file).fileName());
            prepared.known = readRefs(adoptedFile, prepared.at, prepared.refs);
            return prepared;
        }
        auto worktree = workspace->ensureWorktree(config, record);
        if (!worktree)
            return std::unexpected(worktree.error());
        prepared.worktree = *worktree;
        prepared.at = QDateTime::currentDateTimeUtc();
        auto refs = workspace->repository(config).snapshot();
        if (!refs)
            return std::unexpected(refs.error());
        prepared.refs = *refs;
        if (auto written = writeRefs(file, prepared.at, prepared.refs); !written)
            return std::unexpected(written.error());
        prepared.known = true;
        return prepared;
    }));
}

void Worker::startStage(qint64 jobId, const TaskRecord &record, const Result<Prepared> &prepared)
{
    const auto run = m_runs.value(jobId);
    if (!run)
        return;
    const JobRecord &job = run->job;
    if (m_shuttingDown) {
        m_runs.remove(jobId);
        auto released = m_engine.jobs().release(job.claim(), QStringLiteral("interrupted: sluice stopped"));
        if (!released)
            qCWarning(lcWorker).noquote() << "cannot give job" << jobId << "back; startup recovery will -"
                                          << released.error().toString();
        Q_EMIT jobFinished(jobId, QStringLiteral("interrupted"));
        checkDrained();
        return;
    }
    auto taskFile = prepared ? m_engine.workspace().writeTaskFile(record) : Result<QString>(std::unexpected(prepared.error()));
    if (!taskFile) {
        failJob(job, run->runtime.get(), taskFile.error().toString());
        m_runs.remove(job.id);
        return;
    }
    const StageConfig *stageConfig = run->runtime->config.stage(job.stage);
    Stage *stage = stageConfig ? run->runtime->instances.as<Stage>(stageConfig->run) : nullptr;
    if (!stage) {
        failJob(job, run->runtime.get(), QStringLiteral("stage '%1' has no stage plugin instance").arg(job.stage));
        m_runs.remove(job.id);
        return;
    }

    // The last look before a process starts: a job another node took over meanwhile (this
    // node was silent past node_timeout) is theirs now.
    if (auto holds = m_engine.jobs().holds(job.claim()); !holds || !*holds) {
        qCWarning(lcWorker).noquote() << "job" << job.id << "of task" << job.taskId << "is no longer this node's"
                                      << (holds ? QStringLiteral("(taken over by another node)") : holds.error().toString())
                                      << "- not starting it";
        m_runs.remove(job.id);
        Q_EMIT jobFinished(job.id, QStringLiteral("fenced"));
        checkDrained();
        return;
    }
    run->worktree = prepared->worktree;
    if (run->artifacts.isEmpty())
        run->artifacts = m_engine.workspace().artifactsPath(record.project, record.id);
    run->refsBefore = prepared->refs;
    run->refsAt = prepared->at;
    run->refsKnown = prepared->known;
    if (!prepared->known)
        qCWarning(lcWorker).noquote() << "job" << job.id << "adopted a run whose view of the project's repository before it"
                                      << "is lost; its changes there cannot be checked";

    StageRequest request;
    request.task = record.toInfo();
    request.stage = job.stage;
    request.worktree = prepared->worktree;
    request.artifactsDir = run->artifacts;
    request.taskFile = *taskFile;
    request.attempt = job.attempts;
    request.job = job.id;
    request.adopt = run->adopt;
    run->stageRun = stage->run(request);
    if (!run->stageRun) {
        failJob(job, run->runtime.get(), QStringLiteral("stage plugin '%1' returned no run").arg(run->plugin));
        m_runs.remove(job.id);
        return;
    }
    qCInfo(lcWorker).noquote() << "job" << job.id << "attempt" << job.attempts << "runs stage" << job.stage << "of task"
                               << job.taskId << "with" << run->plugin;
    connect(run->stageRun.get(), &StageRun::processStarted, this,
            [this, jobId](const AgentProcess &process, const QString &logPath) {
                const auto it = m_runs.find(jobId);
                if (it == m_runs.end())
                    return;
                JobQueue::AgentRunRecord agentRun;
                agentRun.jobId = jobId;
                agentRun.attempt = (*it)->job.attempts;
                agentRun.node = m_engine.node();
                agentRun.pid = process.pid;
                agentRun.startTicks = process.startTicks;
                agentRun.logPath = logPath;
                agentRun.host = QSysInfo::machineHostName();
                agentRun.worktree = (*it)->worktree;
                auto id = m_engine.jobs().recordAgentStart(agentRun, (*it)->job.claim());
                if (!id && id.error().code == ErrorCode::Conflict) {
                    // The job was taken over between the last look and the start: this agent
                    // is nobody's, and must not work beside the one that runs the job now.
                    qCWarning(lcWorker).noquote() << id.error().message << "- stopping it";
                    abandon(jobId, QStringLiteral("taken over by another node before its agent was recorded"));
                    Q_EMIT jobFinished(jobId, QStringLiteral("fenced"));
                } else if (!id) {
                    qCWarning(lcWorker).noquote() << "cannot record agent pid" << process.pid << "of job" << jobId << "-"
                                                  << id.error().toString();
                } else {
                    (*it)->agentRunId = *id;
                }
            });
    connect(run->stageRun.get(), &PluginJob::finished, this, [this, jobId] { QTimer::singleShot(0, this, [this, jobId] { conclude(jobId); }); });
    run->deadline.setSingleShot(true);
    connect(&run->deadline, &QTimer::timeout, this, [this, jobId] {
        auto it = m_runs.find(jobId);
        if (it == m_runs.end())
            return;
        qCWarning(lcWorker).noquote() << "job" << jobId << "ran past the stage deadline; cancelling";
        (*it)->timedOut = true;
        (*it)->stageRun->cancel();
        // The run reports Failed/cancelled; if it never does, conclude on its behalf.
        QTimer::singleShot(30000, this, [this, jobId] { conclude(jobId); });
    });
    // An adopted run has used part of its time already.
    const qint64 used = std::max<qint64>(0, run->startedAt.msecsTo(QDateTime::currentDateTimeUtc()));
    run->deadline.start(int(std::clamp<qint64>(run->runtime->config.stageTimeoutMs - used, 0, std::numeric_limits<int>::max())));
    run->stageRun->start();
}

void Worker::failJob(const JobRecord &job, const ProjectRuntime *runtime, const QString &error)
{
    const qint64 backoff = retryBackoff(runtime, job.attempts).count();
    auto outcome = m_engine.jobs().fail(job.claim(), error, std::chrono::milliseconds(backoff), QDateTime::currentDateTimeUtc());
    if (!outcome) {
        qCWarning(lcWorker).noquote() << "cannot record the failure of job" << job.id << "-" << outcome.error().toString();
        return;
    }
    switch (*outcome) {
    case JobQueue::FailOutcome::Requeued:
        qCWarning(lcWorker).noquote() << "job" << job.id << "failed (attempt" << job.attempts << "of" << job.maxAttempts
                                      << "), retry in" << backoff / 1000 << "s:" << error;
        Q_EMIT jobFinished(job.id, QStringLiteral("requeued"));
        break;
    case JobQueue::FailOutcome::Failed: {
        qCWarning(lcWorker).noquote() << "job" << job.id << "failed for good after" << job.attempts << "attempt(s):" << error;
        auto blocked = m_engine.block(job.taskId, job.stage,
                                      QStringLiteral("stage '%1' failed %2 time(s): %3").arg(job.stage).arg(job.attempts).arg(error),
                                      QStringLiteral("worker"));
        if (!blocked)
            qCWarning(lcWorker).noquote() << "cannot block task" << job.taskId << "-" << blocked.error().toString();
        Q_EMIT jobFinished(job.id, QStringLiteral("failed"));
        break;
    }
    case JobQueue::FailOutcome::Lost:
        qCWarning(lcWorker).noquote() << "job" << job.id << "was finalised by someone else (or taken over by another node)";
        Q_EMIT jobFinished(job.id, QStringLiteral("lost"));
        break;
    }
}

void Worker::conclude(qint64 jobId)
{
    const auto run = m_runs.take(jobId);
    if (!run)
        return;
    run->deadline.stop();
    StageOutcome outcome = run->stageRun->outcome();
    if (run->timedOut)
        outcome = StageOutcome{StageOutcome::Status::Failed, std::nullopt,
                               QStringLiteral("stage ran past its %1 s deadline").arg(run->runtime->config.stageTimeoutMs / 1000), {}};
    else if (!run->stageRun->isFinished())
        outcome = StageOutcome{StageOutcome::Status::Failed, std::nullopt, QStringLiteral("stage run did not finish"), {}};

    const JobRecord &job = run->job;
    if (run->adopt && isSameLiveProcess(run->adopt->pid, run->adopt->startTicks)) {
        // An adopted agent the stage could not watch must not outlive its job: a retry would
        // otherwise work beside it.
        qCWarning(lcWorker).noquote() << "job" << job.id << "could not watch its adopted agent pid" << run->adopt->pid << "- stopping it";
        stopProcessGroup(run->adopt->pid, run->adopt->startTicks, std::chrono::seconds(10));
    }
    // The agent's end, once its run reported it (a run that never finished may still have
    // its process: startup recovery deals with that one).
    if (run->agentRunId > 0 && run->stageRun->isFinished()) {
        if (auto recorded = m_engine.jobs().recordAgentEnd(run->agentRunId, run->stageRun->outcome().exitCode); !recorded)
            qCWarning(lcWorker).noquote() << "cannot record the end of agent run" << run->agentRunId << "-"
                                          << recorded.error().toString();
    }
    if (run->interrupted) {
        // Stopped by shutdown(), whatever the run reported: the job did nothing wrong.
        auto released = m_engine.jobs().release(job.claim(), QStringLiteral("interrupted: sluice stopped"));
        if (!released)
            qCWarning(lcWorker).noquote() << "cannot give job" << job.id << "back; startup recovery will -"
                                          << released.error().toString();
        else
            qCInfo(lcWorker).noquote() << "job" << job.id << "given back to the queue (attempt not counted)";
        Q_EMIT jobFinished(job.id, QStringLiteral("interrupted"));
        checkDrained();
        return;
    }
    if (run->worktree.isEmpty() || outcome.status == StageOutcome::Status::Waiting) {
        settle(run, outcome, Finished{});
        return;
    }
    // Off the event loop: what the run did to the project's repository, and its work.
    m_settling.insert(job.id);
    const Workspace *workspace = &m_engine.workspace();
    const bool completed = outcome.status == StageOutcome::Status::Completed;
    auto *finishing = new QFutureWatcher<Finished>(this);
    connect(finishing, &QFutureWatcher<Finished>::finished, this, [this, finishing, run, outcome] {
        finishing->deleteLater();
        m_settling.remove(run->job.id);
        settle(run, outcome, finishing->result());
    });
    JobQueue *jobs = &m_engine.jobs();
    finishing->setFuture(QtConcurrent::run([workspace, jobs, run, completed]() -> Finished {
        Finished finished;
        // Nothing leaves the working copy for a job this node no longer holds: a survivor
        // took it over while this node was silent, and its outcome is the survivor's.
        if (auto holds = jobs->holds(run->job.claim()); holds && !*holds) {
            finished.fenced = true;
            return finished;
        }
        const ProjectRepository repo = workspace->repository(run->runtime->config);
        if (run->refsKnown) {
            auto changes = repo.changesNotBySluice(run->refsBefore, run->refsAt);
            if (changes)
                finished.changes = *changes;
            else
                finished.changesError = changes.error().toString();
        }
        if (completed && finished.changes.isEmpty() && finished.changesError.isEmpty()) {
            finished.head = workspace->harvest(run->runtime->config, run->task,
                                               QStringLiteral("task %1 job %2").arg(run->task.id).arg(run->job.id), run->worktree);
            if (*finished.head)
                finished.files = Workspace::stageFiles(run->worktree);
        }
        if (finished.changes.isEmpty())
            QFile::remove(refsFile(*workspace, run->task, run->job.id));
        return finished;
    }));
}

void Worker::settle(const std::shared_ptr<Run> &run, const StageOutcome &outcome, const Finished &finished)
{
    const JobRecord &job = run->job;
    const ProjectRuntime *runtime = run->runtime.get();
    if (finished.fenced) {
        qCWarning(lcWorker).noquote() << "job" << job.id << "of task" << job.taskId
                                      << "was taken over by another node while this one was silent; nothing of its run is taken or recorded here";
        Q_EMIT jobFinished(job.id, QStringLiteral("fenced"));
        checkDrained();
        return;
    }
    if (!finished.changes.isEmpty()) {
        const QString reason = m_engine.reportRepositoryChanged(job, finished.changes);
        failJob(job, runtime, reason);
        // Not a failure to retry: a person looks first.
        if (auto blocked = m_engine.block(job.taskId, job.stage, reason, QStringLiteral("worker")); !blocked)
            qCWarning(lcWorker).noquote() << "cannot block task" << job.taskId << "-" << blocked.error().toString();
    } else if (!finished.changesError.isEmpty()) {
        failJob(job, runtime, QStringLiteral("cannot look at the project's repository after the run: %1").arg(finished.changesError));
    } else {
        switch (outcome.status) {
        case StageOutcome::Status::Completed:
            if (finished.head && !*finished.head) {
                failJob(job, runtime, QStringLiteral("cannot take the task branch from its working copy: %1").arg(finished.head->error().toString()));
                break;
            }
            if (finished.head) {
                const QString head = **finished.head;
                if (finished.files && !*finished.files) {
                    failJob(job, runtime, QStringLiteral("cannot keep what the job left for gates: %1").arg(finished.files->error().toString()));
                    break;
                }
                // The head and the files for gates, with the fence: only while this node still
                // holds the job.
                auto recorded = m_engine.tasks().recordWork(job.taskId, job.stage, head,
                                                            finished.files ? std::optional<QList<StageFile>>(**finished.files) : std::nullopt,
                                                            job.claim());
                if (!recorded) {
                    failJob(job, runtime, QStringLiteral("cannot record the task's head %1: %2").arg(head, recorded.error().toString()));
                    break;
                }
                if (!*recorded) {
                    // The task left the stage meanwhile (its completion below finds nothing to
                    // advance), or a survivor took the job over (the completion is refused too).
                    qCWarning(lcWorker).noquote() << "job" << job.id << "of task" << job.taskId
                                                  << "- its head" << head.left(12) << "is not recorded: the task left stage" << job.stage
                                                  << "or the job is no longer this node's";
                }
                if (head != run->task.headSha)
                    qCInfo(lcWorker).noquote() << "task" << job.taskId << "head is" << head.left(12) << "after job" << job.id;
            }
            completeLater(job, Followup::Advance, outcome.summary);
            break;
        case StageOutcome::Status::Waiting:
            completeLater(job, Followup::Wait, outcome.summary);
            break;
        case StageOutcome::Status::Failed:
            failJob(job, runtime, outcome.summary.isEmpty() ? QStringLiteral("stage failed") : outcome.summary);
            break;
        }
    }
    checkDrained();
    if (m_started)
        QTimer::singleShot(0, this, &Worker::drain);
}

} // namespace Sluice
