// SPDX-License-Identifier: Apache-2.0
#include "supervisedprocess.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QRegularExpression>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace Sluice::Processes {

namespace {

const QRegularExpression &environmentNamePattern()
{
    static const QRegularExpression re(QStringLiteral("^[A-Za-z_][A-Za-z0-9_]*$"));
    return re;
}

const QRegularExpression &placeholderPattern()
{
    static const QRegularExpression re(QStringLiteral("\\{([a-z_]+)\\}"));
    return re;
}

// Reading more than this from the end of a log is never needed for a summary.
constexpr qint64 TailWindowBytes = 64 * 1024;

} // namespace

bool isEnvironmentName(const QString &name)
{
    return environmentNamePattern().match(name).hasMatch();
}

Result<QStringList> stringListSetting(const QVariantMap &settings, const QString &key, const QString &owner)
{
    const QVariant value = settings.value(key);
    if (value.userType() == QMetaType::QStringList)
        return value.toStringList();
    if (value.userType() != QMetaType::QVariantList)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1 setting '%2' is missing or not a list of strings").arg(owner, key));
    QStringList out;
    const QVariantList items = value.toList();
    for (const QVariant &item : items) {
        if (item.userType() != QMetaType::QString)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting '%2' must be a list of strings").arg(owner, key));
        out.append(item.toString());
    }
    return out;
}

Result<std::chrono::milliseconds> durationSetting(const QVariantMap &settings, const QString &key,
                                                  const QString &owner, std::chrono::milliseconds minimum,
                                                  std::chrono::milliseconds maximum)
{
    const QVariant value = settings.value(key);
    bool ok = false;
    const qlonglong ms = value.toLongLong(&ok);
    if (!value.isValid() || !ok)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1 setting '%2' is missing or not a duration").arg(owner, key));
    const std::chrono::milliseconds duration(ms);
    if (duration < minimum || duration > maximum)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting '%2' must lie between %3 and %4")
                                                  .arg(owner, key, describeDuration(minimum),
                                                       describeDuration(maximum)));
    return duration;
}

Result<EnvironmentList> environmentSetting(const QVariantMap &settings, const QString &key, const QString &owner,
                                           const QStringList &reserved)
{
    const QVariant value = settings.value(key, QVariantMap());
    if (value.userType() != QMetaType::QVariantMap)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1 setting '%2' must be a map of variable names to strings").arg(owner, key));
    EnvironmentList out;
    const QVariantMap map = value.toMap();
    for (auto it = map.begin(); it != map.end(); ++it) {
        if (!isEnvironmentName(it.key()))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting '%2' has the invalid variable name '%3' "
                                       "(letters, digits and '_', not starting with a digit)")
                            .arg(owner, key, it.key()));
        if (reserved.contains(it.key()))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting '%2' sets '%3', which the plugin sets itself").arg(owner, key, it.key()));
        if (it.value().userType() != QMetaType::QString)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting '%2': the value of '%3' must be a string").arg(owner, key, it.key()));
        out.append({it.key(), it.value().toString()});
    }
    return out;
}

Result<QStringList> inheritSetting(const QVariantMap &settings, const QString &key, const QString &owner)
{
    auto names = stringListSetting(settings, key, owner);
    if (!names)
        return names;
    for (const QString &name : std::as_const(*names)) {
        if (!isEnvironmentName(name))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting '%2' has the invalid variable name '%3'").arg(owner, key, name));
    }
    names->removeDuplicates();
    return names;
}

QString expandPlaceholders(const QString &text, const QHash<QString, QString> &values)
{
    QString out;
    out.reserve(text.size());
    int copied = 0;
    auto matches = placeholderPattern().globalMatch(text);
    while (matches.hasNext()) {
        const QRegularExpressionMatch match = matches.next();
        const auto value = values.constFind(match.captured(1));
        if (value == values.constEnd())
            continue;
        out.append(QStringView(text).mid(copied, match.capturedStart() - copied));
        out.append(*value);
        copied = match.capturedEnd();
    }
    out.append(QStringView(text).mid(copied));
    return out;
}

QProcessEnvironment childEnvironment(const QStringList &inherit, const EnvironmentList &extra,
                                     const EnvironmentList &fixed)
{
    QProcessEnvironment environment;
    const QProcessEnvironment host = QProcessEnvironment::systemEnvironment();
    for (const QString &name : inherit) {
        if (host.contains(name))
            environment.insert(name, host.value(name));
    }
    for (const auto &[name, value] : extra)
        environment.insert(name, value);
    for (const auto &[name, value] : fixed)
        environment.insert(name, value);
    return environment;
}

std::optional<QString> findProgram(const QString &program, const QProcessEnvironment &environment)
{
    if (program.isEmpty())
        return std::nullopt;
    if (program.contains(QLatin1Char('/')))
        return program;
    const QString path = environment.contains(QStringLiteral("PATH")) ? environment.value(QStringLiteral("PATH"))
                                                                      : QStringLiteral("/bin:/usr/bin");
    const QStringList directories = path.split(QLatin1Char(':'));
    for (const QString &directory : directories) {
        // An empty PATH entry means the current directory; a service does not search it.
        if (directory.isEmpty() || QDir::isRelativePath(directory))
            continue;
        const QFileInfo candidate(QDir(directory).filePath(program));
        if (candidate.isFile() && candidate.isExecutable())
            return candidate.absoluteFilePath();
    }
    return std::nullopt;
}

Result<EnvironmentSettings> environmentSettings(const QVariantMap &settings, const QString &owner,
                                                const QStringList &reserved)
{
    auto environment = environmentSetting(settings, QStringLiteral("environment"), owner, reserved);
    if (!environment)
        return std::unexpected(environment.error());
    auto inherit = inheritSetting(settings, QStringLiteral("inherit_environment"), owner);
    if (!inherit)
        return std::unexpected(inherit.error());
    return EnvironmentSettings{*environment, *inherit};
}

QStringList tailOfFile(const QString &path, int maxLines, int maxChars)
{
    QFile file(path);
    if (maxLines <= 0 || maxChars <= 0 || !file.open(QIODevice::ReadOnly))
        return {};
    const qint64 size = file.size();
    const qint64 from = size > TailWindowBytes ? size - TailWindowBytes : 0;
    if (!file.seek(from))
        return {};
    QList<QByteArray> lines = file.read(TailWindowBytes).split('\n');
    if (from > 0 && !lines.isEmpty())
        lines.removeFirst(); // cut in the middle
    QStringList out;
    int chars = 0;
    for (auto it = lines.crbegin(); it != lines.crend() && out.size() < maxLines; ++it) {
        QString line = QString::fromUtf8(*it);
        for (QChar &c : line) {
            if (c.category() == QChar::Other_Control)
                c = QLatin1Char(' ');
        }
        line = line.trimmed();
        if (line.isEmpty())
            continue;
        if (chars + line.size() > maxChars) {
            const int room = maxChars - chars;
            if (room > 8)
                out.prepend(QStringLiteral("...") + line.right(room - 3));
            break;
        }
        chars += line.size();
        out.prepend(line);
    }
    return out;
}

QString describeDuration(std::chrono::milliseconds duration)
{
    const qint64 ms = duration.count();
    constexpr std::array<std::pair<qint64, const char *>, 4> units{
        {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}}};
    if (ms > 0) {
        for (const auto &[size, unit] : units) {
            if (ms % size == 0)
                return QString::number(ms / size) + QLatin1String(unit);
        }
    }
    return QString::number(ms) + QLatin1String("ms");
}

QString describeSignal(int signal)
{
    static constexpr std::array<std::pair<int, const char *>, 15> names{{
        {SIGHUP, "SIGHUP"}, {SIGINT, "SIGINT"}, {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"}, {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
    }};
    if (signal <= 0)
        return QStringLiteral("a signal");
    for (const auto &[number, name] : names) {
        if (number == signal)
            return QStringLiteral("signal %1 (%2)").arg(signal).arg(QLatin1String(name));
    }
    return QStringLiteral("signal %1").arg(signal);
}

void signalProcessTree(qint64 pid, qint64 group, int signal)
{
    if (group > 1 && group != qint64(::getpgrp()))
        ::kill(pid_t(-group), signal);
    if (pid > 1 && pid != qint64(::getpid()))
        ::kill(pid_t(pid), signal);
}

namespace {

// After SIGUSR1 (kill everything now) the supervisor gets this long to end on its own before
// the host kills its group and the run's cgroup itself.
constexpr int BackstopMs = 5000;

int timerInterval(std::chrono::milliseconds duration)
{
    return int(std::clamp<qint64>(duration.count(), 0, std::numeric_limits<int>::max()));
}

} // namespace

SupervisedProcess::SupervisedProcess(ProcessSpec spec, QObject *parent)
    : QObject(parent)
    , m_spec(std::move(spec))
{
    m_deadline.setSingleShot(true);
    m_grace.setSingleShot(true);
    m_backstop.setSingleShot(true);
    connect(&m_deadline, &QTimer::timeout, this, [this] { beginStop(ProcessEnding::Stop::Deadline); });
    connect(&m_grace, &QTimer::timeout, this, &SupervisedProcess::forceKill);
    connect(&m_backstop, &QTimer::timeout, this, &SupervisedProcess::killEverything);
}

SupervisedProcess::~SupervisedProcess()
{
    m_deadline.stop();
    m_grace.stop();
    m_backstop.stop();
    if (!m_process)
        return;
    disconnect(m_process.get(), nullptr, this, nullptr);
    if (m_process->state() == QProcess::NotRunning)
        return;
    if (m_spec.detachOnDestroy && !m_terminateSent) {
        // Leave it running; the QProcess object stays behind only to reap it. A process
        // being stopped is killed instead: nobody would finish the stop.
        QProcess *orphan = m_process.release();
        connect(orphan, qOverload<int, QProcess::ExitStatus>(&QProcess::finished), orphan, &QObject::deleteLater);
        connect(orphan, &QProcess::errorOccurred, orphan, [orphan](QProcess::ProcessError error) {
            if (error == QProcess::FailedToStart)
                orphan->deleteLater();
        });
        return;
    }
    if (m_pid <= 0)
        m_pid = m_process->processId();
    // The supervisor kills every process of the run, gives back what it lent and records the
    // status; it is waited for (it does not wait on the program's own work).
    if (m_pid > 1)
        ::kill(pid_t(m_pid), SIGUSR1);
    if (!m_process->waitForFinished(BackstopMs)) {
        killEverything();
        m_process->waitForFinished(1000);
    }
}

QString SupervisedProcess::containment() const
{
    QString limits = m_spec.limits.isEmpty() ? QString() : QStringLiteral("; limits ") + m_spec.limits.describe();
    if (m_containment.kind == Containment::Kind::Cgroup)
        return QStringLiteral("cgroup %1%2").arg(m_cgroup.isEmpty() ? m_containment.cgroupParent : m_cgroup, limits);
    return QStringLiteral("process group and child subreaper (no cgroup: %1)").arg(m_containment.reason);
}

QStringList SupervisedProcess::supervisorArguments(const QString &program) const
{
    QStringList arguments{QStringLiteral("--log"), m_spec.outputFile};
    if (!m_spec.detachOnDestroy) {
        // A run that must not outlive the host ends when the host does, a crash included.
        arguments << QStringLiteral("--ends-with-daemon") << QStringLiteral("--kill-grace")
                  << QString::number(m_spec.killGrace.count());
    }
    if (m_spec.logLimit > 0)
        arguments << QStringLiteral("--log-limit") << QString::number(m_spec.logLimit);
    if (!m_spec.statusFile.isEmpty())
        arguments << QStringLiteral("--status") << m_spec.statusFile;
    if (m_containment.kind == Containment::Kind::Cgroup) {
        arguments << QStringLiteral("--cgroup-parent") << m_containment.cgroupParent;
        if (m_spec.limits.memoryBytes)
            arguments << QStringLiteral("--memory-max") << QString::number(*m_spec.limits.memoryBytes);
        if (m_spec.limits.cpus) {
            // cpu.max: this much CPU time per 100 ms period.
            constexpr qint64 Period = 100000;
            const qint64 quota = std::max<qint64>(1000, qint64(*m_spec.limits.cpus * double(Period) + 0.5));
            arguments << QStringLiteral("--cpu-max") << QStringLiteral("%1 %2").arg(quota).arg(Period);
        }
        if (m_spec.limits.pids)
            arguments << QStringLiteral("--pids-max") << QString::number(*m_spec.limits.pids);
    }
    if (m_spec.runAs) {
        QStringList groups;
        for (const uint group : std::as_const(m_spec.runAs->groups))
            groups.append(QString::number(group));
        arguments << QStringLiteral("--user") << QString::number(m_spec.runAs->uid) << QStringLiteral("--group")
                  << QString::number(m_spec.runAs->gid);
        if (!groups.isEmpty())
            arguments << QStringLiteral("--groups") << groups.join(QLatin1Char(','));
        for (const QString &path : m_spec.givenToRunUser)
            arguments << QStringLiteral("--own") << QDir::cleanPath(path);
    }
    arguments << QStringLiteral("--") << program << m_spec.arguments;
    return arguments;
}

void SupervisedProcess::start()
{
    if (m_startCalled)
        return;
    m_startCalled = true;
    const auto notStarted = [this](const QString &why) {
        ProcessEnding ending;
        ending.startError = why;
        ending.stoppedFor = m_stop;
        conclude(ending);
    };
    if (m_stop != ProcessEnding::Stop::None)
        return notStarted(QStringLiteral("stopped before it started"));
    const auto supervisor = supervisorProgram();
    if (!supervisor)
        return notStarted(supervisor.error().message);
    auto containment = probeContainment();
    if (!containment)
        return notStarted(containment.error().message);
    m_containment = *containment;
    for (const QString &note : std::as_const(m_containment.notes))
        QMetaObject::invokeMethod(this, [this, note] { Q_EMIT warning(note); }, Qt::QueuedConnection);
    if (auto limits = prepareLimits(m_containment, m_spec.limits, m_spec.settingsOwner); !limits)
        return notStarted(limits.error().message);
    const QString program = QDir::isRelativePath(m_spec.program) ? QDir(m_spec.workingDirectory).absoluteFilePath(m_spec.program)
                                                                 : m_spec.program;

    auto process = std::make_unique<QProcess>();
    process->setProgram(*supervisor);
    process->setArguments(supervisorArguments(QDir::cleanPath(program)));
    process->setWorkingDirectory(m_spec.workingDirectory);
    process->setProcessEnvironment(m_spec.environment);
    // stdin: the "go"; stdout: the supervisor's reports; stderr: its warnings. The program's
    // own output goes to the log through the supervisor, never through the host.
    process->setProcessChannelMode(QProcess::SeparateChannels);
    connect(process.get(), &QProcess::started, this, &SupervisedProcess::onStarted);
    connect(process.get(), &QProcess::readyReadStandardOutput, this, &SupervisedProcess::readReports);
    connect(process.get(), &QProcess::readyReadStandardError, this, [this] { readWarnings(false); });
    connect(process.get(), qOverload<int, QProcess::ExitStatus>(&QProcess::finished), this,
            [this](int exitCode, QProcess::ExitStatus status) { onFinished(exitCode, int(status)); });
    connect(process.get(), &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
        if (error == QProcess::FailedToStart)
            onStartFailed(m_process ? m_process->errorString() : QString());
    });
    m_process = std::move(process);
    if (m_spec.timeout.count() > 0)
        m_deadline.start(timerInterval(m_spec.timeout));
    // Capabilities the daemon holds for run_as reach this supervisor only when it needs them.
    withSupervisorCapabilities(m_spec.runAs.has_value(), [this] { m_process->start(); });
    if (m_concluded)
        return;
    m_pid = m_process->processId();
    // The supervisor waits for "go" before it starts anything, so it is surely there to be
    // read, even when the program would end at once; exec does not change the start time.
    if (const auto stat = readProcStat(m_pid))
        m_startTicks = stat->startTicks;
    if (m_containment.kind == Containment::Kind::Cgroup)
        m_cgroup = runCgroupPath(m_containment.cgroupParent, m_pid, m_startTicks);
    m_process->write("go\n");
    // Kept open otherwise: its end tells the supervisor that this host is gone.
    if (m_spec.detachOnDestroy)
        m_process->closeWriteChannel();
}

void SupervisedProcess::readReports()
{
    if (!m_process)
        return;
    while (m_process->canReadLine()) {
        const QString line = QString::fromUtf8(m_process->readLine()).trimmed();
        if (line.startsWith(QLatin1String("error ")))
            m_startError = line.mid(6);
    }
}

void SupervisedProcess::readWarnings(bool all)
{
    if (!m_process)
        return;
    // Whole lines only: a line may arrive in pieces.
    m_warnings += m_process->readAllStandardError();
    int end;
    while ((end = m_warnings.indexOf('\n')) >= 0 || (all && !m_warnings.isEmpty())) {
        const QByteArray line = end >= 0 ? m_warnings.left(end) : m_warnings;
        m_warnings.remove(0, end >= 0 ? end + 1 : m_warnings.size());
        if (!line.trimmed().isEmpty())
            Q_EMIT warning(QString::fromUtf8(line.trimmed()));
    }
}

qint64 SupervisedProcess::processGroup()
{
    if (m_group > 0 || m_pid <= 1)
        return m_group;
    // The supervisor calls setsid() first thing, so it soon leads a group with its own id.
    // Checked, not assumed: signalling a group that is not the run's could hit the host.
    if (const auto stat = readProcStat(m_pid)) {
        if (stat->processGroup == m_pid && (m_startTicks == 0 || stat->startTicks == m_startTicks))
            m_group = m_pid;
    } else if (::kill(pid_t(-m_pid), 0) == 0) {
        // The supervisor is gone, but a group with its id lives on: only it could have made
        // that group, and whatever it left there goes with it.
        m_group = m_pid;
    }
    return m_group;
}

void SupervisedProcess::stop()
{
    beginStop(ProcessEnding::Stop::Cancel);
}

void SupervisedProcess::onStarted()
{
    m_pid = m_process->processId();
    if (m_startTicks == 0) {
        if (const auto stat = readProcStat(m_pid))
            m_startTicks = stat->startTicks;
    }
    Q_EMIT started(m_pid, m_startTicks);
}

void SupervisedProcess::onFinished(int exitCode, int exitStatus)
{
    m_deadline.stop();
    m_grace.stop();
    m_backstop.stop();
    readReports();
    readWarnings(true);
    // The supervisor killed everything of the run before it ended. Had it been killed itself,
    // what is left in its group or its cgroup goes now.
    if (const qint64 group = processGroup(); group > 0)
        signalProcessTree(0, group, SIGKILL);
    killCgroup(m_cgroup);
    ProcessEnding ending;
    if (!m_startError.isEmpty()) {
        ending.how = ProcessEnding::How::NotStarted;
        ending.startError = m_startError;
    } else if (exitStatus == QProcess::NormalExit) {
        ending.how = ProcessEnding::How::Exited;
        ending.exitCode = exitCode;
    } else {
        // Qt reports the terminating signal as the exit code of a crashed process on Unix.
        ending.how = ProcessEnding::How::Signalled;
        ending.signal = exitCode;
    }
    ending.stoppedFor = m_stop;
    ending.forced = m_forced;
    conclude(ending);
}

void SupervisedProcess::onStartFailed(const QString &error)
{
    m_deadline.stop();
    m_grace.stop();
    m_backstop.stop();
    ProcessEnding ending;
    ending.how = ProcessEnding::How::NotStarted;
    ending.startError = error.isEmpty() ? QStringLiteral("the supervisor could not be started") : error;
    ending.stoppedFor = m_stop;
    conclude(ending);
}

void SupervisedProcess::beginStop(ProcessEnding::Stop reason)
{
    if (m_concluded)
        return;
    if (m_stop == ProcessEnding::Stop::None)
        m_stop = reason;
    if (!m_startCalled || m_terminateSent)
        return; // start() concludes at once; or the stop is already under way
    m_deadline.stop();
    if (m_pid <= 0 && m_process)
        m_pid = m_process->processId();
    if (m_pid <= 0)
        return; // fork failed: the start failure concludes
    m_terminateSent = true;
    // To the supervisor only: it passes SIGTERM on to every process of the run, once each,
    // whatever session or group they moved to.
    ::kill(pid_t(m_pid), SIGTERM);
    m_grace.start(timerInterval(m_spec.killGrace));
}

void SupervisedProcess::forceKill()
{
    if (m_concluded || !m_process || m_process->state() == QProcess::NotRunning)
        return;
    m_forced = true;
    if (m_pid <= 0)
        m_pid = m_process->processId();
    // SIGUSR1: the supervisor kills every process of the run, then records and ends.
    ::kill(pid_t(m_pid), SIGUSR1);
    m_backstop.start(BackstopMs);
}

void SupervisedProcess::killEverything()
{
    if (m_concluded || !m_process || m_process->state() == QProcess::NotRunning)
        return;
    // The supervisor did not end after SIGUSR1: the host kills the run itself.
    killCgroup(m_cgroup);
    signalProcessTree(m_pid, processGroup(), SIGKILL);
}

void SupervisedProcess::conclude(const ProcessEnding &ending)
{
    if (m_concluded)
        return;
    m_concluded = true;
    // Queued: the receiver may delete this object, which must not happen inside QProcess.
    QMetaObject::invokeMethod(this, [this, ending] { Q_EMIT ended(ending); }, Qt::QueuedConnection);
}

} // namespace Sluice::Processes
