// SPDX-License-Identifier: Apache-2.0
#include "engine/reaper.h"

#include "engine/engine.h"
#include "engine/procstat.h"
#include "engine/worker.h"

#include <QDir>
#include <QJsonArray>
#include <QLoggingCategory>
#include <QtConcurrent/QtConcurrentRun>

namespace Sluice {

Q_LOGGING_CATEGORY(lcReaper, "sluice.core.reaper", QtInfoMsg)

namespace {
const QString StatusName = QStringLiteral("reaper");

qint64 msBetween(const QDateTime &from, const QDateTime &to)
{
    return from.isValid() && to.isValid() ? from.msecsTo(to) : 0;
}

// A recorded status as people read it: the recorder writes a signal N as 128 + N.
QString describeStatus(int status)
{
    if (status > 128 && status < 160)
        return QStringLiteral("signal %1 (status %2)").arg(status - 128).arg(status);
    return QStringLiteral("exit code %1").arg(status);
}

// What the agent's exit recorder wrote beside its log: how an agent that no monitor saw end
// actually ended. Nothing when no log is known or nothing was written.
std::optional<int> recordedExit(const JobQueue::AgentRunRecord &agent)
{
    return agent.logPath.isEmpty() ? std::nullopt : recordedExitStatus(exitStatusFile(agent.logPath));
}

// An agent of a job's current attempt that the store has no record of.
struct UnrecordedAgent {
    QString logPath;
    std::optional<JobQueue::AgentRunRecord> running; // its exit recorder still runs (pid, start ticks)
    std::optional<int> exitCode;                     // or what the recorder wrote when it ended
};

// The daemon records an agent once its launcher reports the start; killed in between, it
// leaves an agent nobody knows of. The job's artifacts tell: the agent stage writes each
// attempt's log as <artifacts>/agent-<role>-job<J>-attempt<N>.log (docs/plugins/agent.md),
// the exit recorder writes the status beside it, and while the agent runs its recorder — the
// leader of its process group — holds the log open for writing.
std::optional<UnrecordedAgent> findUnrecordedAgent(const QString &artifacts, const JobRecord &job, const QString &node)
{
    const QDir dir(artifacts);
    const QStringList logs = dir.entryList({QStringLiteral("agent-*-job%1-attempt%2.log").arg(job.id).arg(job.attempts)}, QDir::Files);
    if (logs.isEmpty())
        return std::nullopt;
    UnrecordedAgent found;
    found.logPath = dir.filePath(logs.first());
    found.exitCode = recordedExitStatus(exitStatusFile(found.logPath));
    if (found.exitCode)
        return found;
    for (const qint64 pid : processesWritingTo(found.logPath)) {
        const auto stat = readProcStat(pid);
        if (!stat || stat->processGroup != pid || stat->state == 'Z' || stat->state == 'X')
            continue; // the agent's children write the log too; the group's leader is the one
        JobQueue::AgentRunRecord run;
        run.jobId = job.id;
        run.attempt = job.attempts;
        run.node = node;
        run.pid = pid;
        run.startTicks = stat->startTicks;
        run.logPath = found.logPath;
        found.running = run;
        return found;
    }
    // It may have ended between the two looks.
    found.exitCode = recordedExitStatus(exitStatusFile(found.logPath));
    return found;
}
} // namespace

QJsonObject ReapedJob::toJson() const
{
    QJsonObject o{{QStringLiteral("job"), jobId},
                  {QStringLiteral("task"), taskId},
                  {QStringLiteral("project"), project},
                  {QStringLiteral("stage"), stage},
                  {QStringLiteral("tier"), tier},
                  {QStringLiteral("outcome"), outcome},
                  {QStringLiteral("reason"), reason},
                  {QStringLiteral("terminated"), terminated},
                  {QStringLiteral("at"), at.toString(Qt::ISODateWithMs)}};
    if (exitCode)
        o.insert(QStringLiteral("exitCode"), *exitCode);
    return o;
}

QString leaseReclaimReason(const LeaseRecord &lease, const QString &node, const QDateTime &now, const QDateTime &heartbeat,
                           std::chrono::milliseconds nodeTimeout)
{
    if (lease.expiresAt.isValid() && lease.expiresAt <= now)
        return QStringLiteral("expired");
    if (lease.holder.node == node) {
        // Our own node: the process itself tells. Without start ticks only the pid can.
        const bool alive = lease.holder.startTicks > 0 ? isSameLiveProcess(lease.holder.pid, lease.holder.startTicks)
                                                       : readProcStat(lease.holder.pid).has_value();
        return alive ? QString() : QStringLiteral("holder-dead");
    }
    const QDateTime silentSince = heartbeat.isValid() ? heartbeat : lease.acquiredAt;
    if (msBetween(silentSince, now) > qint64(nodeTimeout.count()))
        return QStringLiteral("node-silent");
    return QString();
}

struct Reaper::Decision {
    JobQueue::RunningJob running;
    int tier = 0;
    bool advance = false;     // exit 0: the gates decide; else requeue or fail
    bool terminated = false;
    bool recordEnd = false;   // the agent's end is recorded here, with exitCode
    std::optional<int> exitCode; // how the agent ended, as the store or its exit recorder has it
    QString reason;
};

Reaper::Reaper(Engine &engine, const ReaperSettings &settings, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
    , m_settings(settings)
    , m_leases(engine.store())
{
    qRegisterMetaType<Sluice::ReaperPass>();
    m_timer.setSingleShot(false);
    connect(&m_timer, &QTimer::timeout, this, &Reaper::tick);
    loadStatus();
}

Reaper::~Reaper()
{
    if (m_watcher)
        m_watcher->waitForFinished();
}

void Reaper::setMonitor(std::function<QSet<qint64>()> monitored, std::function<void(qint64, const QString &)> abandon)
{
    m_monitored = std::move(monitored);
    m_abandon = std::move(abandon);
}

void Reaper::setAdopter(std::function<bool(const JobQueue::RunningJob &)> adopt)
{
    m_adopt = std::move(adopt);
}

void Reaper::loadStatus()
{
    // Totals go on across restarts.
    auto rows = m_engine.store().sweeperStatus(StatusName);
    if (!rows)
        return;
    for (const auto &[node, status] : std::as_const(*rows)) {
        if (node != m_engine.node())
            continue;
        m_reapedTotal = status.value(QStringLiteral("reapedTotal")).toVariant().toLongLong();
        m_reclaimedTotal = status.value(QStringLiteral("leasesReclaimedTotal")).toVariant().toLongLong();
        m_lastReaped = status.value(QStringLiteral("lastReaped")).toObject();
        m_lastReclaim = status.value(QStringLiteral("lastReclaim")).toObject();
    }
}

QJsonObject Reaper::status() const
{
    return QJsonObject{{QStringLiteral("enabled"), m_settings.enabled},
                       {QStringLiteral("intervalSeconds"), double(m_settings.interval.count()) / 1000.0},
                       {QStringLiteral("deadTicks"), m_settings.deadTicks},
                       {QStringLiteral("finalizeGraceSeconds"), double(m_settings.finalizeGrace.count()) / 1000.0},
                       {QStringLiteral("ceilingSeconds"), double(m_settings.ceiling.count()) / 1000.0},
                       {QStringLiteral("lastRun"), m_lastRun.isValid() ? m_lastRun.toString(Qt::ISODateWithMs) : QString()},
                       {QStringLiteral("lastRunOk"), m_lastOk},
                       {QStringLiteral("reapedTotal"), double(m_reapedTotal)},
                       {QStringLiteral("lastReaped"), m_lastReaped},
                       {QStringLiteral("leasesReclaimedTotal"), double(m_reclaimedTotal)},
                       {QStringLiteral("lastReclaim"), m_lastReclaim}};
}

void Reaper::start()
{
    if (!m_settings.enabled) {
        qCInfo(lcReaper) << "the job reaper is off (reaper.enabled: false)";
        return;
    }
    m_timer.start(int(std::clamp<qint64>(m_settings.interval.count(), 100, std::numeric_limits<int>::max())));
}

void Reaper::stop()
{
    m_timer.stop();
}

ReaperPass Reaper::recoverAtStartup()
{
    ReaperPass pass;
    pass.at = QDateTime::currentDateTimeUtc();
    QHash<qint64, int> pidless;
    const QList<Decision> decisions = assess(Mode::Startup, {}, pidless, pass);
    settle(decisions, {}, pass);
    reclaimLeases(pass);
    finishPass(pass, true);
    return pass;
}

void Reaper::tick()
{
    if (m_watcher)
        return; // the last pass still runs: not doubled
    const QSet<qint64> monitored = m_monitored ? m_monitored() : QSet<qint64>();
    auto pass = std::make_shared<ReaperPass>();
    pass->at = QDateTime::currentDateTimeUtc();
    auto decisions = std::make_shared<QList<Decision>>();
    auto pidless = std::make_shared<QHash<qint64, int>>(m_pidlessTicks);
    // Reading /proc, stopping agents (up to the kill grace) and the store reads happen off
    // the event loop; every write that races the worker happens back on it, in settle().
    m_watcher = new QFutureWatcher<void>(this);
    connect(m_watcher, &QFutureWatcher<void>::finished, this, [this, pass, decisions, pidless, monitored] {
        m_watcher->deleteLater();
        m_watcher = nullptr;
        m_pidlessTicks = *pidless;
        // The worker may have finished some of these jobs meanwhile: the conditional writes
        // of settle() let exactly one of them act.
        settle(*decisions, monitored, *pass);
        reclaimLeases(*pass);
        // Advances that failed after an earlier reap are tried again.
        const QHash<qint64, QString> pending = std::exchange(m_pendingAdvance, {});
        for (auto it = pending.cbegin(); it != pending.cend(); ++it) {
            qCInfo(lcReaper).noquote() << "retrying the advance of task" << it.key() << "from stage" << it.value() << "after a reap";
            m_engine.advance(it.key(), it.value(), QStringLiteral("reaper: retry of the advance after a reap"));
        }
        finishPass(*pass, false);
    });
    m_watcher->setFuture(QtConcurrent::run([this, pass, decisions, pidless, monitored] {
        *decisions = assess(Mode::Tick, monitored, *pidless, *pass);
    }));
}

QList<Reaper::Decision> Reaper::assess(Mode mode, const QSet<qint64> &monitored, QHash<qint64, int> &pidless,
                                       ReaperPass &pass)
{
    QList<Decision> out;
    const QString node = m_engine.node();
    auto running = m_engine.jobs().runningOn(node);
    if (!running) {
        pass.ok = false;
        pass.errors.append(running.error().toString());
        return out;
    }
    const QDateTime now = QDateTime::currentDateTimeUtc();
    QHash<qint64, int> stillPidless;
    for (JobQueue::RunningJob r : std::as_const(*running)) {
        ++pass.examined;
        const JobRecord &job = r.job;
        const bool watched = monitored.contains(job.id);
        const qint64 runningMs = msBetween(job.claimedAt, now);
        const bool pastCeiling = runningMs > qint64(m_settings.ceiling.count());
        // No agent recorded for this attempt, and no monitor here: was one started anyway? In a
        // tick only once the job would be settled: a job the worker claimed after the monitor
        // was asked is watched by the next tick, and its agent is the worker's to record.
        std::optional<UnrecordedAgent> unrecorded;
        if (!r.agent && (mode == Mode::Startup || (!watched && pidless.value(job.id) + 1 >= m_settings.deadTicks)))
            unrecorded = findUnrecordedAgent(m_engine.workspace().artifactsPath(job.project, job.taskId), job, node);
        if (unrecorded && unrecorded->running) {
            // Recorded now, then treated as any agent of ours: adopted at startup, never
            // reaped alive below the ceiling, and never run a second time beside.
            JobQueue::AgentRunRecord agent = *unrecorded->running;
            auto id = m_engine.jobs().recordAgentStart(agent);
            if (!id) {
                pass.ok = false;
                pass.errors.append(id.error().toString());
                continue;
            }
            agent.id = *id;
            r.agent = agent;
            qCWarning(lcReaper).noquote() << "job" << job.id << "of task" << job.taskId << "has agent pid" << agent.pid
                                          << "that was never recorded (started right before a stop); recorded it from its log"
                                          << agent.logPath;
            (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), QStringLiteral("record-unrecorded-agent"), job.project,
                                                    job.taskId,
                                                    QJsonObject{{QStringLiteral("job"), job.id}, {QStringLiteral("pid"), agent.pid},
                                                                {QStringLiteral("log"), agent.logPath}}});
        }
        Decision d;
        d.running = r;
        if (r.agent && r.agent->pid > 0) {
            const JobQueue::AgentRunRecord &agent = *r.agent;
            if (r.agentFinishedAt.isValid()) {
                // Tier 2: the end is recorded; the monitor had its grace to finalise.
                if (mode == Mode::Tick && msBetween(r.agentFinishedAt, now) < qint64(m_settings.finalizeGrace.count()))
                    continue;
                d.tier = mode == Mode::Startup ? 0 : 2;
                // An end stored without its code may still have it beside the log.
                d.exitCode = r.exitCode ? r.exitCode : recordedExit(agent);
                d.advance = d.exitCode == 0;
                d.reason = d.exitCode ? QStringLiteral("the agent ended with %1 but the job was not finalised").arg(describeStatus(*d.exitCode))
                                      : QStringLiteral("the agent ended with an unknown exit code and the job was not finalised");
                out.append(d);
                continue;
            }
            const bool alive = isSameLiveProcess(agent.pid, agent.startTicks);
            if (alive) {
                if (agent.node == node && r.deadTicks > 0)
                    (void)m_engine.jobs().setDeadTicks(agent.id, 0);
                // After a restart, a living agent of ours is adopted rather than stopped: the
                // work goes on, and no second agent is started beside it.
                if (mode == Mode::Startup && !pastCeiling && m_adopt && m_adopt(r)) {
                    pass.adopted.append(job.id);
                    qCInfo(lcReaper).noquote() << "job" << job.id << "of task" << job.taskId << "keeps its agent pid" << agent.pid
                                               << "(adopted after the restart)";
                    (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), QStringLiteral("adopt-agent"), job.project, job.taskId,
                                                            QJsonObject{{QStringLiteral("job"), job.id}, {QStringLiteral("pid"), agent.pid}}});
                    continue;
                }
                if (mode == Mode::Startup || pastCeiling) {
                    // Never requeue beside a living agent: its whole group is stopped first.
                    // Only a status written before the stop is the agent's own end (it finished
                    // while its recorder was still exiting); what it writes after the stop is
                    // recorded, but an agent the reaper stopped never completes its job.
                    const std::optional<int> endedBefore = recordedExit(agent);
                    d.tier = mode == Mode::Startup ? 0 : 3;
                    d.terminated = stopProcessGroup(agent.pid, agent.startTicks, m_settings.killGrace);
                    d.recordEnd = true;
                    d.exitCode = endedBefore ? endedBefore : recordedExit(agent);
                    d.advance = endedBefore == 0;
                    d.reason = mode == Mode::Startup
                                   ? QStringLiteral("the agent (pid %1) outlived the daemon that started it; stopped").arg(agent.pid)
                                   : QStringLiteral("running for %1 s, past the %2 s ceiling; agent pid %3 stopped")
                                         .arg(runningMs / 1000).arg(m_settings.ceiling.count() / 1000).arg(agent.pid);
                    if (endedBefore)
                        d.reason = QStringLiteral("agent pid %1 had ended with %2 (its exit recorder wrote it before the stop)")
                                       .arg(agent.pid).arg(describeStatus(*endedBefore));
                    else if (d.exitCode)
                        d.reason += QStringLiteral(" (its exit recorder then wrote %1)").arg(describeStatus(*d.exitCode));
                    out.append(d);
                }
                continue;
            }
            // Dead (or its pid belongs to another process now), and no end in the store. Its
            // exit recorder (the agent's parent) is gone too, so what it wrote is final.
            const int ticks = r.deadTicks + 1;
            if (mode == Mode::Tick)
                (void)m_engine.jobs().setDeadTicks(agent.id, ticks);
            const bool monitorGone = mode == Mode::Startup || !watched;
            if ((monitorGone && (mode == Mode::Startup || ticks >= m_settings.deadTicks)) || pastCeiling) {
                d.tier = mode == Mode::Startup ? 0 : (pastCeiling && !monitorGone ? 3 : 1);
                d.recordEnd = true;
                d.exitCode = recordedExit(agent);
                d.advance = d.exitCode == 0;
                d.reason = d.exitCode
                               ? QStringLiteral("agent pid %1 ended with %2 while no monitor watched it (recorded by its exit recorder)")
                                     .arg(agent.pid).arg(describeStatus(*d.exitCode))
                               : QStringLiteral("agent pid %1 is gone (%2 consecutive check(s)) and nothing recorded its end")
                                     .arg(agent.pid).arg(ticks);
                out.append(d);
            }
            continue;
        }
        // No agent process: a command, a gate wait, or a run that died before its agent started
        // — or after, unrecorded: then what its exit recorder wrote decides.
        if (unrecorded && unrecorded->exitCode) {
            d.exitCode = unrecorded->exitCode;
            d.advance = d.exitCode == 0;
        }
        const QString recordedEnd = d.exitCode ? QStringLiteral("; its agent, never recorded, ended with %1 (written beside %2)")
                                                     .arg(describeStatus(*d.exitCode), unrecorded->logPath)
                                               : QString();
        if (mode == Mode::Startup) {
            d.reason = QStringLiteral("interrupted by the last stop of node %1").arg(node) + recordedEnd;
            out.append(d);
            continue;
        }
        if (watched) {
            if (pastCeiling) {
                d.tier = 3;
                d.reason = QStringLiteral("running for %1 s, past the %2 s ceiling").arg(runningMs / 1000).arg(m_settings.ceiling.count() / 1000);
                out.append(d);
            }
            continue;
        }
        const int ticks = pidless.value(job.id) + 1;
        if (ticks >= m_settings.deadTicks) {
            d.tier = 1;
            d.reason = QStringLiteral("no process and no monitor for %1 consecutive check(s)").arg(ticks) + recordedEnd;
            out.append(d);
        } else {
            stillPidless.insert(job.id, ticks);
        }
    }
    pidless = stillPidless;
    return out;
}

void Reaper::settle(const QList<Decision> &decisions, const QSet<qint64> &monitored, ReaperPass &pass)
{
    const QString node = m_engine.node();
    for (const Decision &d : decisions) {
        const JobRecord &job = d.running.job;
        if (monitored.contains(job.id) && m_abandon)
            m_abandon(job.id, d.reason);
        if (d.recordEnd && d.running.agent) {
            // The end is recorded with the code its exit recorder wrote; without one it is not
            // known, and not invented.
            if (auto ended = m_engine.jobs().recordAgentEnd(d.running.agent->id, d.exitCode); !ended) {
                pass.ok = false;
                pass.errors.append(ended.error().toString());
            }
        }
        ReapedJob reaped;
        reaped.jobId = job.id;
        reaped.taskId = job.taskId;
        reaped.project = job.project;
        reaped.stage = job.stage;
        reaped.tier = d.tier;
        reaped.reason = d.reason;
        reaped.terminated = d.terminated;
        reaped.exitCode = d.exitCode;
        reaped.at = QDateTime::currentDateTimeUtc();
        bool advance = d.advance;
        QString failure = QStringLiteral("reaped: %1").arg(d.reason);
        bool blockAfter = false;
        if (d.tier >= 0) {
            // The run ended: what it did to the project's repository and, when it completed,
            // its work, exactly as the worker would have taken it (docs/adr/0013).
            const auto runtime = m_engine.project(job.project);
            auto task = m_engine.tasks().task(job.taskId);
            if (runtime && !runtime->config.repositoryPath.isEmpty() && task && *task
                && m_engine.workspace().hasRefsBefore(runtime->config, **task, job.id)) {
                const RunWork work = m_engine.workspace().takeWork(runtime->config, **task, job.id, advance);
                if (!work.changes.isEmpty()) {
                    failure = m_engine.reportRepositoryChanged(job, work.changes);
                    advance = false;
                    blockAfter = true;
                } else if (!work.error.isEmpty()) {
                    failure = QStringLiteral("reaped: %1; %2").arg(d.reason, work.error);
                    advance = false;
                } else if (work.head) {
                    qCInfo(lcReaper).noquote() << "task" << job.taskId << "head is" << work.head->left(12) << "after job" << job.id;
                    if (auto recorded = m_engine.tasks().recordHead(job.taskId, job.stage, *work.head); !recorded) {
                        failure = QStringLiteral("reaped: %1; cannot record the task's head: %2").arg(d.reason, recorded.error().toString());
                        advance = false;
                    }
                }
            }
        }
        if (advance) {
            auto won = m_engine.jobs().complete(job.id, node);
            if (!won) {
                pass.ok = false;
                pass.errors.append(won.error().toString());
                continue;
            }
            reaped.outcome = *won ? QStringLiteral("advance") : QStringLiteral("lost");
        } else {
            const auto runtime = m_engine.project(job.project);
            // Interrupted by a stop (startup recovery): available at once.
            const qint64 backoff = d.tier == 0 ? 0 : retryBackoff(runtime.get(), job.attempts).count();
            auto failed = m_engine.jobs().fail(job.id, node, failure, std::chrono::milliseconds(backoff), QDateTime::currentDateTimeUtc());
            if (!failed) {
                pass.ok = false;
                pass.errors.append(failed.error().toString());
                continue;
            }
            reaped.outcome = *failed == JobQueue::FailOutcome::Requeued ? QStringLiteral("requeued")
                             : *failed == JobQueue::FailOutcome::Failed ? QStringLiteral("failed")
                                                                         : QStringLiteral("lost");
        }
        if (reaped.outcome == QLatin1String("lost")) {
            // Someone else (the monitor, another recovery) settled it first: nothing to do.
            qCInfo(lcReaper).noquote() << "job" << job.id << "was settled by someone else before the reaper";
            continue;
        }
        pass.reaped.append(reaped);
        qCWarning(lcReaper).noquote() << (d.tier == 0 ? QStringLiteral("recovered") : QStringLiteral("reaped (tier %1)").arg(d.tier))
                                      << "job" << job.id << "of task" << job.taskId << "in stage" << job.stage << "-"
                                      << d.reason << "->" << reaped.outcome;
        (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), d.tier == 0 ? QStringLiteral("recover-job") : QStringLiteral("reap"),
                                                job.project, job.taskId, reaped.toJson()});
        if (reaped.outcome == QLatin1String("advance")) {
            // The one advance path decides; if it cannot complete, the task is not stranded.
            AdvanceRun *run = m_engine.advance(job.taskId, job.stage,
                                               QStringLiteral("reaper: job %1 exited 0 (tier %2)").arg(job.id).arg(d.tier));
            const qint64 taskId = job.taskId;
            const QString project = job.project;
            const QString stage = job.stage;
            connect(run, &AdvanceRun::finished, this, [this, taskId, project, stage](AdvanceRun *finished) {
                if (finished->outcome() != AdvanceRun::Outcome::Failed)
                    return;
                m_pendingAdvance.insert(taskId, stage);
                qCWarning(lcReaper).noquote() << "the advance of task" << taskId << "after a reap failed:" << finished->detail()
                                              << "- retried at the next reaper tick; the reconciler also looks";
                (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), QStringLiteral("advance-after-reap-failed"), project, taskId,
                                                        QJsonObject{{QStringLiteral("detail"), finished->detail()},
                                                                    {QStringLiteral("handedTo"), QStringLiteral("reaper retry, reconciler")}}});
            });
        } else if (reaped.outcome == QLatin1String("failed") || blockAfter) {
            // A run that wrote the project's repository is not retried: a person looks first.
            auto blocked = m_engine.block(job.taskId, job.stage,
                                          blockAfter ? failure
                                                     : QStringLiteral("stage '%1' failed %2 time(s); the last attempt was reaped: %3")
                                                           .arg(job.stage).arg(job.attempts).arg(d.reason),
                                          QStringLiteral("reaper"));
            if (!blocked) {
                pass.ok = false;
                pass.errors.append(blocked.error().toString());
            }
        }
        Notification n;
        n.event = QStringLiteral("reaped");
        n.projectId = job.project;
        n.taskId = job.taskId;
        n.title = QStringLiteral("job %1 of task %2 reaped (%3)").arg(job.id).arg(job.taskId).arg(reaped.outcome);
        n.text = d.reason;
        n.data = reaped.toJson();
        m_engine.notify(n);
    }
}

void Reaper::reclaimLeases(ReaperPass &pass)
{
    auto leases = m_leases.leases();
    if (!leases) {
        pass.ok = false;
        pass.errors.append(leases.error().toString());
        return;
    }
    const QDateTime now = QDateTime::currentDateTimeUtc();
    QHash<QString, QDateTime> heartbeats;
    for (const LeaseRecord &lease : std::as_const(*leases)) {
        if (!heartbeats.contains(lease.holder.node)) {
            auto beat = m_engine.store().lastHeartbeat(lease.holder.node);
            if (!beat) {
                pass.ok = false;
                pass.errors.append(beat.error().toString());
                continue;
            }
            heartbeats.insert(lease.holder.node, *beat);
        }
        const QString reason = leaseReclaimReason(lease, m_engine.node(), now, heartbeats.value(lease.holder.node),
                                                  m_settings.nodeTimeout);
        if (reason.isEmpty())
            continue;
        auto reclaimed = m_leases.reclaim(lease);
        if (!reclaimed) {
            pass.ok = false;
            pass.errors.append(reclaimed.error().toString());
            continue;
        }
        if (!*reclaimed)
            continue; // renewed or released meanwhile: the holder lives
        pass.reclaimed.append(ReclaimedLease{lease, reason});
        const QJsonObject details{{QStringLiteral("resource"), lease.resource},
                                  {QStringLiteral("reason"), reason},
                                  {QStringLiteral("holderNode"), lease.holder.node},
                                  {QStringLiteral("holderPid"), lease.holder.pid},
                                  {QStringLiteral("holderTask"), lease.holder.taskId},
                                  {QStringLiteral("expiresAt"), lease.expiresAt.toString(Qt::ISODateWithMs)},
                                  {QStringLiteral("at"), now.toString(Qt::ISODateWithMs)}};
        qCWarning(lcReaper).noquote() << "reclaimed lease" << lease.resource << "of node" << lease.holder.node << "pid"
                                      << lease.holder.pid << "(task" << lease.holder.taskId << "):" << reason;
        QString project;
        if (lease.holder.taskId > 0) {
            if (auto task = m_engine.tasks().task(lease.holder.taskId); task && *task)
                project = (*task)->project;
        }
        (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), QStringLiteral("lease-reclaim"), project,
                                                lease.holder.taskId, details});
        Notification n;
        n.event = QStringLiteral("lease-reclaimed");
        n.projectId = project;
        n.taskId = lease.holder.taskId;
        n.title = QStringLiteral("lease %1 reclaimed (%2)").arg(lease.resource, reason);
        n.text = QStringLiteral("The lease %1 held by node %2 pid %3 was reclaimed: %4.")
                     .arg(lease.resource, lease.holder.node).arg(lease.holder.pid).arg(reason);
        n.data = details;
        m_engine.notify(n);
    }
}

void Reaper::finishPass(ReaperPass &pass, bool startup)
{
    m_lastRun = pass.at;
    m_lastOk = pass.ok;
    m_reapedTotal += pass.reaped.size();
    m_reclaimedTotal += pass.reclaimed.size();
    if (!pass.reaped.isEmpty())
        m_lastReaped = pass.reaped.last().toJson();
    if (!pass.reclaimed.isEmpty()) {
        const ReclaimedLease &last = pass.reclaimed.last();
        m_lastReclaim = QJsonObject{{QStringLiteral("resource"), last.lease.resource},
                                    {QStringLiteral("reason"), last.reason},
                                    {QStringLiteral("at"), pass.at.toString(Qt::ISODateWithMs)}};
    }
    for (const QString &error : std::as_const(pass.errors))
        qCWarning(lcReaper).noquote() << (startup ? "startup recovery:" : "reaper pass:") << error;
    if (auto written = m_engine.store().setSweeperStatus(m_engine.node(), StatusName, status()); !written)
        qCWarning(lcReaper).noquote() << "cannot record the reaper status:" << written.error().toString();
    Q_EMIT passFinished(pass);
}

} // namespace Sluice
