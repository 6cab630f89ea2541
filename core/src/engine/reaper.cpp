// SPDX-License-Identifier: Apache-2.0
#include "engine/reaper.h"

#include "engine/engine.h"
#include "procstat.h"
#include "engine/worker.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QLoggingCategory>
#include <QSysInfo>
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
std::optional<UnrecordedAgent> findUnrecordedAgent(const QString &artifacts, const JobRecord &job, const QString &node,
                                                   const QString &worktree)
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
        run.host = QSysInfo::machineHostName();
        run.worktree = worktree;
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
    if (!takenFrom.isEmpty())
        o.insert(QStringLiteral("takenFrom"), takenFrom);
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

QString leaseReclaimReason(const LeaseRecord &lease, const QString &node, const QDateTime &now, const NodeRecord *holder,
                           std::chrono::milliseconds nodeTimeout)
{
    if (lease.expiresAt.isValid() && lease.expiresAt <= now)
        return QStringLiteral("expired");
    if (lease.holder.node != node && holder) {
        // By the store's clock: nodes on several machines judge each other by one clock.
        if (holder->stoppedAt.isValid() || holder->heartbeatAgeMs > qint64(nodeTimeout.count()))
            return QStringLiteral("node-silent");
        if (lease.fenceToken > 0 && holder->generation > lease.fenceToken)
            return QStringLiteral("node-reclaimed");
        return QString();
    }
    if (lease.holder.node == node && holder && lease.fenceToken > 0 && holder->generation > lease.fenceToken)
        return QStringLiteral("node-reclaimed"); // taken by an earlier daemon of this node
    return leaseReclaimReason(lease, node, now, holder ? holder->heartbeatAt : QDateTime(), nodeTimeout);
}

struct Reaper::Decision {
    JobQueue::RunningJob running;
    int tier = 0;
    bool advance = false;     // exit 0: the gates decide; else requeue or fail
    bool terminated = false;
    bool recordEnd = false;   // the agent's end is recorded here, with exitCode
    std::optional<int> exitCode; // how the agent ended, as the store or its exit recorder has it
    QString reason;
    QString takenFrom;        // a takeover: the silent node that held the job
    bool adoptHere = false;   // a takeover of an agent on this machine: the job is adopted, not settled
    QString workingCopy;      // where its work is, when this machine has it
    std::optional<Result<QString>> head;                 // the work taken into the project's repository
    std::optional<Result<QList<StageFile>>> files;       // what it left for gates
    bool fenced = false;      // the job was no longer held when its work was to be taken
    QList<RefChange> changes; // made to the project's repository during the run, not by Sluice
    QString workError;        // the repository could not be looked at, or the branch not taken

    // The claim the reaper writes with: the job as the node that holds it holds it.
    [[nodiscard]] JobClaim claim(const QString &self) const
    {
        return JobClaim{running.job.id, takenFrom.isEmpty() ? self : takenFrom, running.job.claimToken};
    }
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
    QList<Decision> decisions = assess(Mode::Startup, {}, pidless, pass);
    const Projects projects = loadedProjects();
    for (Decision &d : decisions)
        takeWork(d, projects);
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
    // Working copies this node keeps of tasks another node finished: looked for now and then.
    const bool cleanUp = m_ticks++ % 20 == 0;
    // The projects as loaded now, for the thread (a reload replaces them on the event loop).
    const Projects projects = loadedProjects();
    m_watcher->setFuture(QtConcurrent::run([this, pass, decisions, pidless, monitored, cleanUp, projects] {
        *decisions = assess(Mode::Tick, monitored, *pidless, *pass);
        if (m_settings.takeover)
            *decisions += assessTakeovers(*pass);
        for (Decision &d : *decisions)
            takeWork(d, projects);
        if (cleanUp)
            removeFinishedWorkingCopies(projects);
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
            unrecorded = findUnrecordedAgent(m_engine.workspace().artifactsPath(job.project, job.taskId), job, node,
                                             m_engine.workspace().worktreePath(job.project, job.taskId));
        if (unrecorded && unrecorded->running && !recordUnrecordedAgent(r, *unrecorded->running, pass))
            continue;
        if (r.agent && r.agent->pid > 0) {
            if (auto d = assessAgent(mode, r, watched, runningMs, now, pass))
                out.append(*d);
            continue;
        }
        Decision d;
        d.running = r;
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

std::optional<Reaper::Decision> Reaper::assessAgent(Mode mode, const JobQueue::RunningJob &r, bool watched, qint64 runningMs,
                                                   const QDateTime &now, ReaperPass &pass)
{
    const QString node = m_engine.node();
    const JobRecord &job = r.job;
    const bool pastCeiling = runningMs > qint64(m_settings.ceiling.count());
    Decision d;
    d.running = r;
    const JobQueue::AgentRunRecord &agent = *r.agent;
    if (r.agentFinishedAt.isValid()) {
        // Tier 2: the end is recorded; the monitor had its grace to finalise.
        if (mode == Mode::Tick && msBetween(r.agentFinishedAt, now) < qint64(m_settings.finalizeGrace.count()))
            return std::nullopt;
        d.tier = mode == Mode::Startup ? 0 : 2;
        // An end stored without its code may still have it beside the log.
        d.exitCode = r.exitCode ? r.exitCode : recordedExit(agent);
        d.advance = d.exitCode == 0;
        d.reason = d.exitCode ? QStringLiteral("the agent ended with %1 but the job was not finalised").arg(describeStatus(*d.exitCode))
                              : QStringLiteral("the agent ended with an unknown exit code and the job was not finalised");
        return d;
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
            return std::nullopt;
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
            return d;
        }
        return std::nullopt;
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
        return d;
    }
    return std::nullopt;
}

bool Reaper::recordUnrecordedAgent(JobQueue::RunningJob &r, const JobQueue::AgentRunRecord &found, ReaperPass &pass)
{
    const JobRecord &job = r.job;
    // Recorded now, then treated as any agent of ours: adopted at startup, never
    // reaped alive below the ceiling, and never run a second time beside.
    JobQueue::AgentRunRecord agent = found;
    auto id = m_engine.jobs().recordAgentStart(agent);
    if (!id) {
        pass.ok = false;
        pass.errors.append(id.error().toString());
        return false;
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
    return true;
}

QList<Reaper::Decision> Reaper::assessTakeovers(ReaperPass &pass)
{
    QList<Decision> out;
    const QString self = m_engine.node();
    const qint64 timeout = m_settings.nodeTimeout.count();
    auto nodes = m_engine.store().nodes();
    if (!nodes) {
        pass.ok = false;
        pass.errors.append(nodes.error().toString());
        return out;
    }
    const QString host = QSysInfo::machineHostName();
    for (const NodeRecord &n : std::as_const(*nodes)) {
        if (n.name == self || n.heartbeatAgeMs <= timeout)
            continue;
        const bool claimed = !n.instance.isEmpty() && !n.stoppedAt.isValid();
        if (!claimed && n.runningJobs == 0)
            continue;
        TakenNode taken{n.name, n.heartbeatAgeMs, false};
        if (claimed) {
            // First the claim: from now on nothing that instance writes for its node counts,
            // should it come back (a paused process, a network cut).
            auto revoked = m_engine.store().revokeNode(n, self);
            if (!revoked) {
                pass.ok = false;
                pass.errors.append(revoked.error().toString());
                continue;
            }
            if (!*revoked) {
                // It beat meanwhile (alive after all), or another survivor was first.
                auto again = m_engine.store().nodes();
                bool alive = false;
                for (const NodeRecord &m : again ? *again : QList<NodeRecord>()) {
                    if (m.name == n.name)
                        alive = !m.instance.isEmpty() && !m.stoppedAt.isValid() && m.heartbeatAgeMs <= timeout;
                }
                if (!again || alive)
                    continue;
            }
            taken.revokedHere = *revoked;
            if (*revoked) {
                qCWarning(lcReaper).noquote() << "node" << n.name << "(pid" << n.pid << "on" << n.host << ") has been silent for"
                                              << n.heartbeatAgeMs / 1000 << "s, past node_timeout: its claim is taken over and its"
                                              << n.runningJobs << "running job(s) with it";
                (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), QStringLiteral("take-over-node"), QString(), 0,
                                                        QJsonObject{{QStringLiteral("node"), n.name}, {QStringLiteral("by"), self},
                                                                    {QStringLiteral("host"), n.host}, {QStringLiteral("pid"), n.pid},
                                                                    {QStringLiteral("generation"), double(n.generation)},
                                                                    {QStringLiteral("silentMs"), double(n.heartbeatAgeMs)},
                                                                    {QStringLiteral("runningJobs"), n.runningJobs}}});
            }
        }
        pass.takenNodes.append(taken);
        auto running = m_engine.jobs().runningOn(n.name);
        if (!running) {
            pass.ok = false;
            pass.errors.append(running.error().toString());
            continue;
        }
        const QString silence = QStringLiteral("node %1 was silent for %2 s").arg(n.name).arg(n.heartbeatAgeMs / 1000);
        for (const JobQueue::RunningJob &r : std::as_const(*running)) {
            ++pass.examined;
            Decision d;
            d.running = r;
            d.takenFrom = n.name;
            d.exitCode = r.exitCode;
            // Adopt when the agent is reachable: on this machine, its working copy and log
            // where they were. Alive, it is watched to its end; ended, what its recorder wrote
            // decides, and its work is taken from its copy.
            if (r.agent && r.agent->pid > 0 && !r.agent->host.isEmpty() && r.agent->host == host && !r.agent->worktree.isEmpty()
                && QFileInfo(r.agent->worktree + QStringLiteral("/.git")).isDir()
                && QFileInfo(QFileInfo(r.agent->logPath).absolutePath()).isDir()) {
                d.adoptHere = true;
                d.reason = QStringLiteral("%1: its agent pid %2 is on this machine; adopted with its working copy %3")
                               .arg(silence).arg(r.agent->pid).arg(r.agent->worktree);
                out.append(d);
                continue;
            }
            // Not reachable from here: what was recorded decides whether the work counts. A
            // recorded exit 0 does not bring the work, which is in that node's working copy.
            if (r.agent && r.agent->pid > 0) {
                const QString where = r.agent->host.isEmpty() ? QStringLiteral("an unknown machine") : r.agent->host;
                d.reason = r.exitCode
                               ? QStringLiteral("%1; its agent ended with %2 on %3, and its work stays in that machine's working copy: run again")
                                     .arg(silence, describeStatus(*r.exitCode), where)
                               : QStringLiteral("%1; its agent pid %2 runs on %3, out of reach: run again").arg(silence).arg(r.agent->pid).arg(where);
            } else {
                d.reason = QStringLiteral("%1; the job had no agent to adopt: run again").arg(silence);
            }
            out.append(d);
        }
    }
    return out;
}

Reaper::Projects Reaper::loadedProjects() const
{
    Projects projects;
    for (const QString &id : m_engine.projectIds())
        projects.insert(id, m_engine.project(id));
    return projects;
}

void Reaper::removeFinishedWorkingCopies(const Projects &projects)
{
    for (auto it = projects.cbegin(); it != projects.cend(); ++it) {
        const QString &id = it.key();
        const auto &runtime = it.value();
        if (!runtime || runtime->config.repositoryPath.isEmpty())
            continue;
        const int removed = m_engine.workspace().removeFinishedWorktrees(runtime->config, [this](qint64 taskId) {
            auto task = m_engine.tasks().task(taskId);
            return task && *task && (*task)->status == QLatin1String("done");
        });
        if (removed > 0)
            qCInfo(lcReaper).noquote() << "removed" << removed << "working cop(ies) of finished tasks of project" << id;
    }
}

void Reaper::takeWork(Decision &d, const Projects &projects)
{
    const JobRecord &job = d.running.job;
    const QString self = m_engine.node();
    if (d.takenFrom.isEmpty()) {
        // A run of this node that ended while no daemon watched it: what it did to the
        // project's repository and, when it completed, its work, exactly as the worker would
        // have taken it (docs/adr/0013) — when its snapshot from before the run is here.
        const auto runtime = projects.value(job.project);
        auto task = m_engine.tasks().task(job.taskId);
        if (runtime && !runtime->config.repositoryPath.isEmpty() && task && *task
            && m_engine.workspace().hasRefsBefore(runtime->config, **task, job.id)) {
            // The fence, right before the side effect: a job a survivor took over meanwhile is theirs.
            if (auto holds = m_engine.jobs().holds(d.claim(self)); holds && !*holds) {
                d.fenced = true;
                return;
            }
            const RunWork work = m_engine.workspace().takeWork(runtime->config, **task, job.id, d.advance);
            d.changes = work.changes;
            d.workError = work.error;
            if (work.head) {
                d.head = Result<QString>(*work.head);
                d.files = Workspace::stageFiles(m_engine.workspace().worktreePath(job.project, job.taskId));
            }
            return;
        }
    }
    if (!d.advance)
        return;
    QString copy = d.running.agent ? d.running.agent->worktree : QString();
    if (copy.isEmpty() && d.takenFrom.isEmpty())
        copy = m_engine.workspace().worktreePath(job.project, job.taskId);
    if (copy.isEmpty() || !QFileInfo(copy + QStringLiteral("/.git")).isDir()) {
        if (d.takenFrom.isEmpty() && !(d.running.agent && !d.running.agent->worktree.isEmpty()))
            return; // the job had no working copy: there is nothing to take
        d.advance = false;
        d.reason += QStringLiteral("; its working copy is not on this machine, so its work cannot be taken: run again");
        return;
    }
    const auto runtime = projects.value(job.project);
    auto task = m_engine.tasks().task(job.taskId);
    if (!runtime || !task || !*task) {
        d.advance = false;
        d.reason += runtime ? QStringLiteral("; its task cannot be read, so its work cannot be taken: run again")
                            : QStringLiteral("; project %1 is not loaded here, so its work cannot be taken: run again").arg(job.project);
        return;
    }
    // The fence, right before the side effect: a job a survivor took over meanwhile is theirs.
    if (auto holds = m_engine.jobs().holds(d.claim(self)); holds && !*holds) {
        d.fenced = true;
        return;
    }
    d.workingCopy = copy;
    d.head = m_engine.workspace().harvest(runtime->config, **task, QStringLiteral("task %1 job %2 (recovered)").arg(job.taskId).arg(job.id), copy);
    if (!*d.head) {
        d.advance = false;
        d.reason += QStringLiteral("; its work could not be taken from its working copy (%1): run again").arg(d.head->error().message);
        d.head.reset();
        return;
    }
    d.files = Workspace::stageFiles(copy);
}

void Reaper::settle(const QList<Decision> &decisions, const QSet<qint64> &monitored, ReaperPass &pass)
{
    for (const Decision &d : decisions)
        settleOne(d, monitored, pass);
}

void Reaper::settleOne(const Decision &d, const QSet<qint64> &monitored, ReaperPass &pass)
{
    const QString node = m_engine.node();
    const JobRecord &job = d.running.job;
    if (d.fenced) {
        qCInfo(lcReaper).noquote() << "job" << job.id << "was taken over by another node before the reaper took its work";
        return;
    }
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
    reaped.takenFrom = d.takenFrom;
    reaped.at = QDateTime::currentDateTimeUtc();
    const QString verbNoun = d.takenFrom.isEmpty() ? QStringLiteral("reaped") : QStringLiteral("taken over");
    bool advance = d.advance;
    QString failure = QStringLiteral("%1: %2").arg(verbNoun, d.reason);
    bool blockAfter = false;
    if (!d.changes.isEmpty()) {
        // The run changed the project's repository, not through Sluice (docs/adr/0013):
        // nothing is taken, and a person looks first.
        failure = m_engine.reportRepositoryChanged(job, d.changes);
        advance = false;
        blockAfter = true;
    } else if (!d.workError.isEmpty()) {
        failure = QStringLiteral("%1: %2; %3").arg(verbNoun, d.reason, d.workError);
        advance = false;
    }
    const JobClaim claim = d.claim(node);
    const std::optional<QString> outcome = d.adoptHere ? adoptTakenJob(d, claim, pass)
                                           : advance   ? completeJob(d, claim, pass)
                                                       : failJob(d, claim, failure, pass);
    if (!outcome)
        return;
    reaped.outcome = *outcome;
    if (reaped.outcome == QLatin1String("lost")) {
        // Someone else (the monitor, another recovery) settled it first: nothing to do.
        qCInfo(lcReaper).noquote() << "job" << job.id << "was settled by someone else before the reaper";
        return;
    }
    pass.reaped.append(reaped);
    const QString verb = !d.takenFrom.isEmpty() ? QStringLiteral("took over")
                         : d.tier == 0          ? QStringLiteral("recovered")
                                                : QStringLiteral("reaped (tier %1)").arg(d.tier);
    qCWarning(lcReaper).noquote() << verb << "job" << job.id << "of task" << job.taskId << "in stage" << job.stage << "-"
                                  << d.reason << "->" << reaped.outcome;
    const QString action = !d.takenFrom.isEmpty() ? QStringLiteral("take-over")
                           : d.tier == 0          ? QStringLiteral("recover-job")
                                                  : QStringLiteral("reap");
    QJsonObject details = reaped.toJson();
    details.insert(QStringLiteral("node"), node);
    (void)m_engine.store().audit(AuditEntry{QStringLiteral("reaper"), action, job.project, job.taskId, details});
    if (reaped.outcome == QLatin1String("adopted"))
        return; // its stage watches the agent; the one advance path follows its end
    followReaped(d, reaped, failure, blockAfter, pass);
}

namespace {
QString failOutcomeName(JobQueue::FailOutcome outcome)
{
    return outcome == JobQueue::FailOutcome::Requeued ? QStringLiteral("requeued")
           : outcome == JobQueue::FailOutcome::Failed ? QStringLiteral("failed")
                                                      : QStringLiteral("lost");
}
} // namespace

std::optional<QString> Reaper::adoptTakenJob(const Decision &d, const JobClaim &claim, ReaperPass &pass)
{
    const QString node = m_engine.node();
    const JobRecord &job = d.running.job;
    // The job becomes this node's as it is (same attempt, new token), its agent with it.
    auto taken = m_engine.jobs().transfer(claim, node, d.running.agent ? d.running.agent->id : 0);
    if (!taken) {
        pass.ok = false;
        pass.errors.append(taken.error().toString());
        return std::nullopt;
    }
    if (!*taken) {
        qCInfo(lcReaper).noquote() << "job" << job.id << "of node" << d.takenFrom << "was taken over by someone else first";
        return std::nullopt;
    }
    JobQueue::RunningJob adopted = d.running;
    adopted.job = **taken;
    if (adopted.agent)
        adopted.agent->node = node;
    if (m_adopt && m_adopt(adopted)) {
        pass.adopted.append(job.id);
        return QStringLiteral("adopted");
    }
    auto failed = m_engine.jobs().fail(adopted.job.claim(), QStringLiteral("taken over: %1, but this node cannot run its stage").arg(d.reason),
                                       std::chrono::milliseconds(0), QDateTime::currentDateTimeUtc());
    if (!failed) {
        pass.ok = false;
        pass.errors.append(failed.error().toString());
        return std::nullopt;
    }
    return failOutcomeName(*failed);
}

std::optional<QString> Reaper::completeJob(const Decision &d, const JobClaim &claim, ReaperPass &pass)
{
    const JobRecord &job = d.running.job;
    if (d.head) {
        // The work first, with the fence; the completion then.
        const QString head = **d.head;
        auto recorded = m_engine.tasks().recordWork(job.taskId, job.stage, head,
                                                    d.files && *d.files ? std::optional<QList<StageFile>>(**d.files) : std::nullopt,
                                                    claim);
        if (!recorded) {
            pass.ok = false;
            pass.errors.append(recorded.error().toString());
            return std::nullopt;
        }
        if (*recorded)
            qCInfo(lcReaper).noquote() << "task" << job.taskId << "head is" << head.left(12) << "after recovered job" << job.id;
    }
    auto won = m_engine.jobs().complete(QList<JobClaim>{claim});
    if (!won) {
        pass.ok = false;
        pass.errors.append(won.error().toString());
        return std::nullopt;
    }
    return !won->isEmpty() ? QStringLiteral("advance") : QStringLiteral("lost");
}

std::optional<QString> Reaper::failJob(const Decision &d, const JobClaim &claim, const QString &failure, ReaperPass &pass)
{
    const JobRecord &job = d.running.job;
    const auto runtime = m_engine.project(job.project);
    // Interrupted by a stop (startup recovery): available at once.
    const qint64 backoff = d.tier == 0 ? 0 : retryBackoff(runtime.get(), job.attempts).count();
    auto failed = m_engine.jobs().fail(claim, failure, std::chrono::milliseconds(backoff), QDateTime::currentDateTimeUtc());
    if (!failed) {
        pass.ok = false;
        pass.errors.append(failed.error().toString());
        return std::nullopt;
    }
    return failOutcomeName(*failed);
}

void Reaper::followReaped(const Decision &d, const ReapedJob &reaped, const QString &failure, bool blockAfter, ReaperPass &pass)
{
    const JobRecord &job = d.running.job;
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

void Reaper::reclaimLeases(ReaperPass &pass)
{
    auto leases = m_leases.leases();
    if (!leases) {
        pass.ok = false;
        pass.errors.append(leases.error().toString());
        return;
    }
    const QDateTime now = QDateTime::currentDateTimeUtc();
    auto nodes = m_engine.store().nodes();
    if (!nodes) {
        pass.ok = false;
        pass.errors.append(nodes.error().toString());
        return;
    }
    QHash<QString, NodeRecord> holders;
    for (const NodeRecord &n : std::as_const(*nodes))
        holders.insert(n.name, n);
    for (const LeaseRecord &lease : std::as_const(*leases)) {
        const auto holder = holders.constFind(lease.holder.node);
        const QString reason = leaseReclaimReason(lease, m_engine.node(), now, holder == holders.cend() ? nullptr : &*holder,
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
