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

// Runs the child in a session of its own, so that the child and everything it starts form
// one process group that can be signalled as a whole, and gives it default signal handling:
// a host that ignores SIGPIPE or blocks signals must not pass that on to the commands it runs.
//
// It also holds the child before exec until the parent has read the child's start time: a
// command that ends at once could otherwise be gone, and reaped, before anyone looked.
class SessionLeaderProcess final : public QProcess
{
public:
    using QProcess::QProcess;
    ~SessionLeaderProcess() override { releaseChild(); }

    /// Makes the next child wait before exec until releaseChild(). False if no pipe.
    bool holdChild()
    {
        if (::pipe2(m_hold, O_CLOEXEC) == 0)
            return true;
        m_hold[0] = m_hold[1] = -1;
        return false;
    }

    void releaseChild()
    {
        if (m_hold[1] >= 0) {
            // Closing alone would do, but another child forked meanwhile may hold a copy.
            const char go = 1;
            [[maybe_unused]] const ssize_t written = ::write(m_hold[1], &go, 1);
            ::close(m_hold[1]);
        }
        if (m_hold[0] >= 0)
            ::close(m_hold[0]);
        m_hold[0] = m_hold[1] = -1;
    }

protected:
    void setupChildProcess() override
    {
        // In the child, between fork and exec: async-signal-safe calls only.
        ::setsid();
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction standard;
        std::memset(&standard, 0, sizeof standard);
        standard.sa_handler = SIG_DFL;
        for (int signalNumber = 1; signalNumber < NSIG; ++signalNumber) {
            if (signalNumber != SIGKILL && signalNumber != SIGSTOP)
                ::sigaction(signalNumber, &standard, nullptr);
        }
        if (m_hold[0] >= 0) {
            // A byte or end-of-file from the parent; the child's own write end must not
            // keep the pipe open.
            ::close(m_hold[1]);
            char go = 0;
            while (::read(m_hold[0], &go, 1) < 0 && errno == EINTR) {
            }
            ::close(m_hold[0]);
        }
    }

private:
    int m_hold[2] = {-1, -1};
};

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

namespace {
/*
 * The wrapper: runs the child, writes its status to the file named by $1 (atomically:
 * written beside, then renamed), and ends the way the child ended — with its exit code, or
 * by the same signal (the shell reports a signal N as 128 + N). It outlives a SIGTERM sent
 * to the group (a trap, reset for the child at exec) so that a child that handles SIGTERM
 * and exits still has its status recorded.
 */
constexpr const char ExitRecorder[] =
    "trap : TERM INT HUP; f=$1; shift; \"$@\"; s=$?; printf '%d\\n' \"$s\" > \"$f.tmp\" && mv -f \"$f.tmp\" \"$f\"; "
    "if [ \"$s\" -gt 128 ] && [ \"$s\" -lt 160 ]; then trap - TERM INT HUP; kill -$((s - 128)) $$; fi; exit \"$s\"";
} // namespace

void wrapWithExitRecorder(ProcessSpec &spec, const QString &statusFile, const QString &program,
                          const QStringList &arguments, const QString &name)
{
    spec.program = QStringLiteral("/bin/sh");
    spec.arguments = QStringList{QStringLiteral("-c"), QString::fromLatin1(ExitRecorder), name, statusFile, program}
                     + arguments;
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

SupervisedProcess::SupervisedProcess(ProcessSpec spec, QObject *parent)
    : QObject(parent)
    , m_spec(std::move(spec))
{
    m_deadline.setSingleShot(true);
    m_grace.setSingleShot(true);
    connect(&m_deadline, &QTimer::timeout, this, [this] { beginStop(ProcessEnding::Stop::Deadline); });
    connect(&m_grace, &QTimer::timeout, this, &SupervisedProcess::forceKill);
}

SupervisedProcess::~SupervisedProcess()
{
    m_deadline.stop();
    m_grace.stop();
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
    signalProcessTree(m_pid, processGroup(), SIGKILL);
    // A killed child is reaped at once; this does not wait on the child's own work.
    m_process->waitForFinished(5000);
}

void SupervisedProcess::start()
{
    if (m_startCalled)
        return;
    m_startCalled = true;
    if (m_stop != ProcessEnding::Stop::None) {
        ProcessEnding ending;
        ending.startError = QStringLiteral("stopped before it started");
        ending.stoppedFor = m_stop;
        conclude(ending);
        return;
    }
    auto process = std::make_unique<SessionLeaderProcess>();
    process->setProgram(m_spec.program);
    process->setArguments(m_spec.arguments);
    process->setWorkingDirectory(m_spec.workingDirectory);
    process->setProcessEnvironment(m_spec.environment);
    process->setProcessChannelMode(QProcess::MergedChannels);
    process->setStandardInputFile(QProcess::nullDevice());
    process->setStandardOutputFile(m_spec.outputFile, QIODevice::Truncate);
    connect(process.get(), &QProcess::started, this, &SupervisedProcess::onStarted);
    connect(process.get(), qOverload<int, QProcess::ExitStatus>(&QProcess::finished), this,
            [this](int exitCode, QProcess::ExitStatus status) { onFinished(exitCode, int(status)); });
    connect(process.get(), &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
        if (error == QProcess::FailedToStart)
            onStartFailed(m_process ? m_process->errorString() : QString());
    });
    SessionLeaderProcess *leader = process.get();
    const bool held = leader->holdChild();
    m_process = std::move(process);
    if (m_spec.timeout.count() > 0)
        m_deadline.start(int(std::min<qint64>(m_spec.timeout.count(), std::numeric_limits<int>::max())));
    m_process->start();
    if (!m_concluded) {
        m_pid = m_process->processId();
        // The child waits before exec until released, so it is surely there to be read; exec
        // does not change its start time.
        if (const auto stat = held ? readProcStat(m_pid) : std::nullopt)
            m_startTicks = stat->startTicks;
    }
    leader->releaseChild();
}

qint64 SupervisedProcess::processGroup()
{
    if (m_group > 0 || m_pid <= 1)
        return m_group;
    // setsid() runs in the child before exec, so the child soon leads a group with its own
    // id. Checked, not assumed: signalling a group that is not the child's could hit the host.
    if (const auto stat = readProcStat(m_pid)) {
        if (stat->processGroup == m_pid && (m_startTicks == 0 || stat->startTicks == m_startTicks))
            m_group = m_pid;
    } else if (::kill(pid_t(-m_pid), 0) == 0) {
        // The child is gone, but a group with its id lives on: only the child could have made
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
    if (m_terminateSent && !m_concluded) // stopped while starting: now the group is known
        signalProcessTree(m_pid, processGroup(), SIGTERM);
}

void SupervisedProcess::onFinished(int exitCode, int exitStatus)
{
    m_deadline.stop();
    m_grace.stop();
    // Whatever the process left behind in its group goes with it.
    if (const qint64 group = processGroup(); group > 0)
        signalProcessTree(0, group, SIGKILL);
    ProcessEnding ending;
    if (exitStatus == QProcess::NormalExit) {
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
    ProcessEnding ending;
    ending.how = ProcessEnding::How::NotStarted;
    ending.startError = error.isEmpty() ? QStringLiteral("the process could not be started") : error;
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
    signalProcessTree(m_pid, processGroup(), SIGTERM);
    m_grace.start(int(std::min<qint64>(m_spec.killGrace.count(), std::numeric_limits<int>::max())));
}

void SupervisedProcess::forceKill()
{
    if (m_concluded || !m_process || m_process->state() == QProcess::NotRunning)
        return;
    m_forced = true;
    if (m_pid <= 0)
        m_pid = m_process->processId();
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
