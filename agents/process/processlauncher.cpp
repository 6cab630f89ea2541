// SPDX-License-Identifier: Apache-2.0
#include "processlauncher.h"

#include <sluice/services.h>

#include <KTar>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QHash>
#include <QLoggingCategory>
#include <QSysInfo>
#include <QTimer>
#include <QtConcurrent>

#include <algorithm>
#include <limits>

#include <signal.h>

namespace Sluice {
namespace Agents {

namespace {

using namespace std::chrono_literals;
using Processes::ProcessEnding;

constexpr QLatin1String Owner("process");

// An adopted agent is not our child, so nothing tells us when it ends: we look.
constexpr int AdoptedPollMs = 1000;
// After SIGUSR1 its supervisor gets this long to kill the run and end before we kill it all.
constexpr int AdoptedBackstopMs = 5000;

const QStringList &fixedVariableNames()
{
    static const QStringList names{
        QStringLiteral("SLUICE_TASK_ID"),  QStringLiteral("SLUICE_PROJECT"),   QStringLiteral("SLUICE_STAGE"),
        QStringLiteral("SLUICE_BRANCH"),   QStringLiteral("SLUICE_WORKTREE"),  QStringLiteral("SLUICE_TASK_FILE"),
        QStringLiteral("SLUICE_ROLE"),     QStringLiteral("SLUICE_LOG")};
    return names;
}

int timerInterval(std::chrono::milliseconds duration)
{
    return int(std::clamp<qint64>(duration.count(), 0, std::numeric_limits<int>::max()));
}

struct ArchivedLog {
    QString path;  ///< Set when the archive was written.
    QString error; ///< Why not, otherwise.
};

// Runs on the thread pool: compressing a long log is CPU work.
ArchivedLog archiveLog(const QString &logPath)
{
    const QFileInfo log(logPath);
    if (!log.isFile())
        return {{}, QStringLiteral("the log '%1' does not exist").arg(logPath)};
    const QString archivePath = logPath + QStringLiteral(".tar.gz");
    KTar tar(archivePath, QStringLiteral("application/x-gzip"));
    if (!tar.open(QIODevice::WriteOnly))
        return {{}, QStringLiteral("cannot create '%1': %2").arg(archivePath, tar.errorString())};
    if (!tar.addLocalFile(logPath, log.fileName())) {
        const QString error = tar.errorString();
        tar.close();
        QFile::remove(archivePath);
        return {{}, QStringLiteral("cannot add '%1' to '%2': %3").arg(logPath, archivePath, error)};
    }
    if (!tar.close()) {
        const QString error = tar.errorString();
        QFile::remove(archivePath);
        return {{}, QStringLiteral("cannot write '%1': %2").arg(archivePath, error)};
    }
    return {archivePath, {}};
}

// A launch that, when its agent has ended, archives the log and only then finishes.
class ArchivingLaunch : public AgentLaunch
{
public:
    ArchivingLaunch(QString logPath, QString label, const QLoggingCategory &logging, const Clock &clock)
        : m_logPath(std::move(logPath))
        , m_label(std::move(label))
        , m_logging(logging)
        , m_clock(clock)
    {
    }

protected:
    const QLoggingCategory &logging() const { return m_logging; }
    const Clock &clock() const { return m_clock; }
    const QString &label() const { return m_label; }
    const QString &logPath() const { return m_logPath; }

    // The log is archived even when the run failed or was cancelled: that is when it is read.
    void archiveThenFinish(Result<AgentExit> result)
    {
        if (m_archiving || isFinished())
            return;
        m_archiving = std::make_unique<QFutureWatcher<ArchivedLog>>();
        connect(m_archiving.get(), &QFutureWatcherBase::finished, this, [this, result]() mutable {
            const ArchivedLog archived = m_archiving->result();
            if (archived.error.isEmpty()) {
                if (result)
                    result->logArchive = archived.path;
            } else {
                qCWarning(logging()).noquote() << m_label << "log not archived:" << archived.error;
            }
            finishWith(result);
        });
        m_archiving->setFuture(QtConcurrent::run(archiveLog, m_logPath));
    }

    void finishWithError(const Error &error)
    {
        qCWarning(logging()).noquote() << m_label << error.toString();
        finishWith(std::unexpected(error));
    }

private:
    QString m_logPath;
    QString m_label;
    const QLoggingCategory &m_logging;
    const Clock &m_clock;
    std::unique_ptr<QFutureWatcher<ArchivedLog>> m_archiving;
};

QString launchLabel(const AgentRequest &request)
{
    return QStringLiteral("agent '%1' for task %2").arg(request.role).arg(request.task.id);
}

class ProcessLaunch final : public ArchivingLaunch
{
public:
    ProcessLaunch(ProcessAgentRule rule, AgentRequest request, QString project, const QLoggingCategory &logging,
                  const Clock &clock)
        : ArchivingLaunch(request.logPath, launchLabel(request), logging, clock)
        , m_rule(std::move(rule))
        , m_request(std::move(request))
        , m_project(std::move(project))
    {
    }

protected:
    void doStart() override;
    void doCancel() override;

private:
    void onStarted(qint64 pid, quint64 startTicks);
    void onEnded(const ProcessEnding &ending);

    ProcessAgentRule m_rule;
    AgentRequest m_request;
    QString m_project;
    std::chrono::milliseconds m_timeout{0};
    std::unique_ptr<Processes::SupervisedProcess> m_process;
};

void ProcessLaunch::doStart()
{
    const QString &worktree = m_request.worktree;
    if (worktree.isEmpty() || QDir::isRelativePath(worktree) || !QFileInfo(worktree).isDir())
        return finishWithError(Error{ErrorCode::InvalidArgument,
                                     QStringLiteral("cannot start: the worktree '%1' does not exist (the host creates it before launching)")
                                         .arg(worktree), {}});
    if (m_request.logPath.isEmpty() || QDir::isRelativePath(m_request.logPath))
        return finishWithError(Error{ErrorCode::InvalidArgument,
                                     QStringLiteral("cannot start: the log path '%1' is not an absolute path").arg(m_request.logPath), {}});
    if (!QDir().mkpath(QFileInfo(m_request.logPath).absolutePath()))
        return finishWithError(Error{ErrorCode::Io,
                                     QStringLiteral("cannot start: cannot create the directory of the log '%1'").arg(m_request.logPath), {}});

    const QString task = QString::number(m_request.task.id);
    const QHash<QString, QString> values{
        {QStringLiteral("task_file"), m_request.taskFile},
        {QStringLiteral("role"), m_request.role},
        {QStringLiteral("worktree"), worktree},
        {QStringLiteral("branch"), m_request.task.branch},
        {QStringLiteral("task"), task},
        {QStringLiteral("project"), m_project},
        {QStringLiteral("log"), m_request.logPath},
    };
    auto expand = [&](const QString &text) { return Processes::expandPlaceholders(text, values); };

    Processes::EnvironmentList extra;
    for (const auto &[name, value] : std::as_const(m_rule.environment))
        extra.append({name, expand(value)});
    const Processes::EnvironmentList fixed{
        {QStringLiteral("SLUICE_TASK_ID"), task},
        {QStringLiteral("SLUICE_PROJECT"), m_project},
        {QStringLiteral("SLUICE_STAGE"), m_request.task.stage},
        {QStringLiteral("SLUICE_BRANCH"), m_request.task.branch},
        {QStringLiteral("SLUICE_WORKTREE"), worktree},
        {QStringLiteral("SLUICE_TASK_FILE"), m_request.taskFile},
        {QStringLiteral("SLUICE_ROLE"), m_request.role},
        {QStringLiteral("SLUICE_LOG"), m_request.logPath},
    };
    const QProcessEnvironment environment = Processes::childEnvironment(m_rule.inheritEnvironment, extra, fixed);

    QStringList arguments;
    for (const QString &argument : std::as_const(m_rule.command))
        arguments.append(expand(argument));
    const QString program = arguments.takeFirst();
    const auto resolved = Processes::findProgram(program, environment);
    if (!resolved)
        return finishWithError(Error{ErrorCode::NotFound,
                                     QStringLiteral("cannot start: '%1' is not found in the agent's PATH (%2)")
                                         .arg(program, environment.value(QStringLiteral("PATH"), QStringLiteral("unset"))),
                                     {}});

    m_timeout = m_request.timeout.count() > 0 ? m_request.timeout : m_rule.timeout;
    if (!QFileInfo(*resolved).isExecutable())
        return finishWithError(Error{ErrorCode::Io, QStringLiteral("cannot start '%1': it does not exist or is not executable").arg(*resolved), {}});
    Processes::ProcessSpec spec;
    spec.program = *resolved;
    spec.arguments = arguments;
    // The supervisor records the agent's exit status next to the log: a daemon restarted
    // while the agent runs adopts it, and can then learn how it ended (an adopted process is
    // not our child; nothing else could tell).
    spec.statusFile = Processes::exitStatusFile(m_request.logPath);
    QFile::remove(spec.statusFile);
    spec.workingDirectory = worktree;
    spec.environment = environment;
    spec.outputFile = m_request.logPath;
    spec.logLimit = m_rule.logLimit;
    spec.timeout = m_timeout;
    spec.killGrace = m_rule.killGrace;
    spec.detachOnDestroy = true; // a host restart must not take the agent with it
    spec.limits = m_rule.limits;
    spec.settingsOwner = Owner;
    if (m_rule.runAs.isSet()) {
        auto user = Processes::resolveRunAs(m_rule.runAs, Owner);
        if (!user)
            return finishWithError(Error{user.error().code, QStringLiteral("cannot start: %1").arg(user.error().message), {}});
        // The agent's own home and name, unless the project sets them.
        const auto setExplicitly = [this](const QString &name) {
            return std::any_of(m_rule.environment.begin(), m_rule.environment.end(),
                               [&](const auto &variable) { return variable.first == name; });
        };
        for (const auto &[name, value] : {std::pair{QStringLiteral("HOME"), user->home}, std::pair{QStringLiteral("USER"), user->name},
                                          std::pair{QStringLiteral("LOGNAME"), user->name}}) {
            if (!setExplicitly(name))
                spec.environment.insert(name, value);
        }
        // Lent to the agent's user for the run, taken back when it has ended.
        spec.givenToRunUser.append(worktree);
        if (!m_request.taskFile.isEmpty() && QFileInfo(m_request.taskFile).isFile()
            && !QDir::cleanPath(m_request.taskFile).startsWith(QDir::cleanPath(worktree) + QLatin1Char('/')))
            spec.givenToRunUser.append(m_request.taskFile);
        spec.runAs = *user;
    }
    m_process = std::make_unique<Processes::SupervisedProcess>(std::move(spec));
    connect(m_process.get(), &Processes::SupervisedProcess::started, this, &ProcessLaunch::onStarted);
    connect(m_process.get(), &Processes::SupervisedProcess::warning, this,
            [this](const QString &message) { qCWarning(logging()).noquote() << label() << message; });
    connect(m_process.get(), &Processes::SupervisedProcess::ended, this, &ProcessLaunch::onEnded);
    m_process->start();
}

void ProcessLaunch::doCancel()
{
    if (m_process) {
        qCInfo(logging()).noquote() << label() << "cancelled; stopping every process of its run";
        m_process->stop();
        return;
    }
    if (!isFinished())
        finishWithError(Error{ErrorCode::Cancelled, QStringLiteral("cancelled before the agent started"), {}});
}

void ProcessLaunch::onStarted(qint64 pid, quint64 startTicks)
{
    AgentProcess process;
    process.node = QSysInfo::machineHostName();
    process.pid = pid;
    // Read right after the fork: it tells this process from a later one that gets the same pid.
    process.startTicks = startTicks;
    process.startedAt = clock().now();
    qCInfo(logging()).noquote() << label() << "started on" << process.node << "pid" << pid << "start ticks"
                                << process.startTicks << "deadline" << Processes::describeDuration(m_timeout)
                                << "log" << logPath() << "containment" << m_process->containment()
                                << (m_process->spec().runAs ? QStringLiteral("as user ") + m_process->spec().runAs->name : QString());
    Q_EMIT started(process);
}

void ProcessLaunch::onEnded(const ProcessEnding &ending)
{
    const QString forced = ending.forced
        ? QStringLiteral(", SIGKILL after the %1 grace").arg(Processes::describeDuration(m_rule.killGrace))
        : QString();
    if (ending.how == ProcessEnding::How::NotStarted) {
        if (ending.stoppedFor == ProcessEnding::Stop::Cancel)
            return finishWithError(Error{ErrorCode::Cancelled, QStringLiteral("cancelled before the agent started"), {}});
        return finishWithError(Error{ErrorCode::Io,
                                     QStringLiteral("cannot start '%1': %2").arg(m_process->spec().program, ending.startError),
                                     {}});
    }
    if (const auto cut = Processes::logCutBytes(logPath())) {
        qCInfo(logging()).noquote() << label() << "log cut:" << *cut << "bytes of earlier output dropped to keep it within"
                                    << Processes::describeSize(m_rule.logLimit) << "(log_limit)";
    }
    if (ending.stoppedFor == ProcessEnding::Stop::Cancel) {
        qCInfo(logging()).noquote() << label() << QStringLiteral("stopped after a cancel%1").arg(forced);
        return archiveThenFinish(std::unexpected(
            Error{ErrorCode::Cancelled, QStringLiteral("cancelled: the agent and every process it started were terminated%1").arg(forced), {}}));
    }
    AgentExit exit;
    if (ending.how == ProcessEnding::How::Exited)
        exit.exitCode = ending.exitCode;
    exit.timedOut = ending.stoppedFor == ProcessEnding::Stop::Deadline;
    exit.crashed = ending.how == ProcessEnding::How::Signalled && !exit.timedOut;
    exit.finishedAt = clock().now();
    // The recorded process is the wrapper. Killed after it wrote the agent's status (the
    // agent had ended), it is the wrapper that died, not the agent: the record says how the
    // agent ended. A record of a signal (above 128) leaves it a crash.
    const std::optional<int> recorded = exit.crashed ? Processes::recordedExitStatus(Processes::exitStatusFile(logPath()))
                                                     : std::nullopt;
    if (recorded && *recorded <= 128) {
        exit.crashed = false;
        exit.exitCode = *recorded;
        qCWarning(logging()).noquote() << label() << "exited with code" << *recorded << "(recorded by its wrapper, which was then killed by"
                                       << Processes::describeSignal(ending.signal) + QLatin1Char(')');
    } else if (exit.timedOut) {
        qCWarning(logging()).noquote() << label()
                                       << QStringLiteral("timed out after %1%2").arg(Processes::describeDuration(m_timeout), forced);
    } else if (exit.crashed) {
        qCWarning(logging()).noquote() << label() << "was killed by" << Processes::describeSignal(ending.signal);
    } else {
        qCInfo(logging()).noquote() << label() << "exited with code" << ending.exitCode;
    }
    archiveThenFinish(exit);
}

// Watches an agent a previous host process started. It is not our child, and its parent
// (init) reaps it: how it ended is what its supervisor recorded beside the log. Signals go to
// it only after its start ticks were checked again, so a reused pid is never signalled.
class AdoptedLaunch final : public ArchivingLaunch
{
public:
    AdoptedLaunch(AgentProcess process, qint64 group, std::optional<QString> runCgroup, QDateTime deadline,
                  std::chrono::milliseconds killGrace, const AgentRequest &request, const QLoggingCategory &logging,
                  const Clock &clock)
        : ArchivingLaunch(request.logPath, launchLabel(request) + QStringLiteral(" (adopted)"), logging, clock)
        , m_process(std::move(process))
        , m_group(group)
        , m_runCgroup(std::move(runCgroup))
        , m_deadline(std::move(deadline))
        , m_killGrace(killGrace)
    {
        m_poll.setInterval(AdoptedPollMs);
        m_grace.setSingleShot(true);
        m_backstop.setSingleShot(true);
        connect(&m_poll, &QTimer::timeout, this, [this] { check(); });
        connect(&m_grace, &QTimer::timeout, this, [this] {
            if (!isSameProcess())
                return;
            m_forced = true;
            if (m_runCgroup) {
                // Its supervisor kills every process of the run, records and ends.
                ::kill(pid_t(m_process.pid), SIGUSR1);
                m_backstop.start(AdoptedBackstopMs);
            } else {
                Processes::signalProcessTree(m_process.pid, m_group, SIGKILL);
            }
        });
        connect(&m_backstop, &QTimer::timeout, this, [this] {
            if (!isSameProcess())
                return;
            Processes::killCgroup(*m_runCgroup);
            Processes::signalProcessTree(m_process.pid, m_group, SIGKILL);
        });
    }

protected:
    void doStart() override
    {
        qCInfo(logging()).noquote() << label() << "watching pid" << m_process.pid << "on" << m_process.node
                                    << "deadline" << m_deadline.toString(Qt::ISODate);
        m_poll.start();
        check();
    }

    void doCancel() override
    {
        if (!isStarted()) {
            finishWithError(Error{ErrorCode::Cancelled, QStringLiteral("cancelled before watching the adopted agent"), {}});
            return;
        }
        if (m_stop == ProcessEnding::Stop::None)
            m_stop = ProcessEnding::Stop::Cancel;
        stopProcess();
        check();
    }

private:
    bool isSameProcess() const
    {
        const auto stat = Processes::readProcStat(m_process.pid);
        return stat && stat->startTicks == m_process.startTicks && stat->state != 'Z' && stat->state != 'X';
    }

    void stopProcess()
    {
        if (m_terminateSent || m_ended)
            return;
        m_terminateSent = true;
        if (isSameProcess()) {
            // A supervisor passes SIGTERM on to every process of the run, once each; an agent
            // started before there was one (under the old /bin/sh wrapper) gets it by its group.
            if (m_runCgroup)
                ::kill(pid_t(m_process.pid), SIGTERM);
            else
                Processes::signalProcessTree(m_process.pid, m_group, SIGTERM);
        }
        m_grace.start(timerInterval(m_killGrace));
    }

    void check()
    {
        if (m_ended)
            return;
        if (!isSameProcess()) {
            concluded();
            return;
        }
        if (m_stop == ProcessEnding::Stop::None && m_deadline.isValid() && clock().now() >= m_deadline) {
            qCWarning(logging()).noquote() << label() << "ran past its deadline; stopping its process group";
            m_stop = ProcessEnding::Stop::Deadline;
            stopProcess();
        }
    }

    void concluded()
    {
        m_ended = true;
        m_poll.stop();
        m_grace.stop();
        m_backstop.stop();
        // Nothing else of its group is touched after a natural end: its pid, and so its
        // group id, may already belong to someone else. Its supervisor killed what was left.
        const QString forced = m_forced ? QStringLiteral(", SIGKILL after the %1 grace")
                                              .arg(Processes::describeDuration(m_killGrace))
                                        : QString();
        if (m_stop == ProcessEnding::Stop::Cancel) {
            archiveThenFinish(std::unexpected(Error{ErrorCode::Cancelled,
                QStringLiteral("cancelled: the adopted agent and every process it started were terminated%1").arg(forced), {}}));
            return;
        }
        AgentExit exit;
        exit.timedOut = m_stop == ProcessEnding::Stop::Deadline;
        exit.finishedAt = clock().now();
        // The wrapper wrote the status when the agent ended; without it the code is unknown,
        // and never made up.
        const std::optional<int> status = exit.timedOut ? std::nullopt : Processes::recordedExitStatus(Processes::exitStatusFile(logPath()));
        const int recorded = status.value_or(-1);
        if (recorded > 128 && recorded < 160)
            exit.crashed = true;
        else if (status)
            exit.exitCode = recorded;
        qCInfo(logging()).noquote() << label() << (exit.timedOut ? QStringLiteral("timed out") + forced : QStringLiteral("ended"))
                                    << (exit.exitCode ? QStringLiteral("with exit code %1 (recorded by its supervisor)").arg(*exit.exitCode)
                                        : exit.crashed ? QStringLiteral("killed by signal %1 (recorded by its supervisor)").arg(recorded - 128)
                                                       : QStringLiteral("(exit code unknown)"));
        archiveThenFinish(exit);
    }

    AgentProcess m_process;
    qint64 m_group = 0;
    // Set when the process is a supervisor: its run's cgroup, empty without one.
    std::optional<QString> m_runCgroup;
    QDateTime m_deadline;
    std::chrono::milliseconds m_killGrace;
    QTimer m_poll;
    QTimer m_grace;
    QTimer m_backstop;
    ProcessEnding::Stop m_stop = ProcessEnding::Stop::None;
    bool m_terminateSent = false;
    bool m_forced = false;
    bool m_ended = false;
};

} // namespace

Result<ProcessAgentRule> ProcessAgentRule::fromSettings(const QVariantMap &settings)
{
    ProcessAgentRule rule;
    auto command = Processes::stringListSetting(settings, QStringLiteral("command"), Owner);
    if (!command)
        return std::unexpected(command.error());
    if (command->isEmpty() || command->first().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("process setting 'command' needs a program as its first item"));
    rule.command = *command;
    auto timeout = Processes::durationSetting(settings, QStringLiteral("timeout"), Owner, 1s, 24h * 7);
    if (!timeout)
        return std::unexpected(timeout.error());
    rule.timeout = *timeout;
    auto killGrace = Processes::durationSetting(settings, QStringLiteral("kill_grace"), Owner, 0ms, 1h);
    if (!killGrace)
        return std::unexpected(killGrace.error());
    rule.killGrace = *killGrace;
    auto environment = Processes::environmentSettings(settings, Owner, fixedVariableNames());
    if (!environment)
        return std::unexpected(environment.error());
    rule.environment = environment->environment;
    rule.inheritEnvironment = environment->inherit;
    auto limits = Processes::limitsSetting(settings, Owner);
    if (!limits)
        return std::unexpected(limits.error());
    rule.limits = *limits;
    auto runAs = Processes::runAsSetting(settings, Owner);
    if (!runAs)
        return std::unexpected(runAs.error());
    rule.runAs = *runAs;
    auto logLimit = Processes::sizeSetting(settings, QStringLiteral("log_limit"), Owner, qint64(64) << 10, qint64(1) << 40);
    if (!logLimit)
        return std::unexpected(logLimit.error());
    rule.logLimit = *logLimit;
    return rule;
}

ProcessLauncher::ProcessLauncher(const PluginContext &context, ProcessAgentRule rule, QObject *parent)
    : AgentLauncher(context, parent)
    , m_rule(std::move(rule))
{
}

ProcessLauncher::~ProcessLauncher() = default;

Result<void> ProcessLauncher::initialize()
{
    Processes::confineAmbientCapabilities();
    return {};
}

std::unique_ptr<AgentLaunch> ProcessLauncher::launch(const AgentRequest &request)
{
    const QString project = request.task.projectId.isEmpty() ? context().project().id : request.task.projectId;
    return std::make_unique<ProcessLaunch>(m_rule, request, project, context().logging(), context().clock());
}

std::unique_ptr<AgentLaunch> ProcessLauncher::adopt(const AgentProcess &process, const AgentRequest &request)
{
    const QString label = launchLabel(request);
    const QString here = QSysInfo::machineHostName();
    if (process.node != here) {
        qCInfo(context().logging()).noquote() << label << "cannot be adopted here: it runs on" << process.node
                                              << "and this is" << here;
        return nullptr;
    }
    if (process.pid <= 1 || process.startTicks == 0) {
        qCInfo(context().logging()).noquote() << label << "cannot be adopted: no pid and start ticks recorded";
        return nullptr;
    }
    const std::chrono::milliseconds timeout = request.timeout.count() > 0 ? request.timeout : m_rule.timeout;
    const QDateTime start = process.startedAt.isValid() ? process.startedAt : context().clock().now();
    const QDateTime deadline = start.addMSecs(timeout.count());
    const auto stat = Processes::readProcStat(process.pid);
    const bool ended = !stat || stat->state == 'Z' || stat->state == 'X' || stat->startTicks != process.startTicks;
    if (ended) {
        // The host saw it running and chose to adopt it; it ended before this look (or its pid
        // went to another process). Its end is still known: the launch concludes at once from
        // what its wrapper recorded, and never signals anything.
        qCInfo(context().logging()).noquote() << label << "pid" << process.pid
                                              << "ended before it could be watched; its end is read from its wrapper's record";
        return std::make_unique<AdoptedLaunch>(process, 0, std::nullopt, deadline, m_rule.killGrace, request, context().logging(),
                                               context().clock());
    }
    // It was started as a session leader; if it has left its group since, only it is signalled.
    const qint64 group = stat->processGroup == process.pid ? process.pid : 0;
    return std::make_unique<AdoptedLaunch>(process, group, Processes::supervisedRunCgroup(process.pid, process.startTicks),
                                           deadline, m_rule.killGrace, request, context().logging(), context().clock());
}

Result<std::unique_ptr<PluginInstance>> ProcessLauncher::create(const PluginContext &context)
{
    auto rule = ProcessAgentRule::fromSettings(context.settings());
    if (!rule)
        return std::unexpected(rule.error());
    return std::make_unique<ProcessLauncher>(context, std::move(*rule));
}

} // namespace Agents
} // namespace Sluice
