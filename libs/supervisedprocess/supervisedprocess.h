// SPDX-License-Identifier: Apache-2.0
#pragma once

// A child process supervised the way the command stage and the process agent launcher need
// it: started by the supervisor executable (libexec/supervise) in a session of its own and
// contained in a cgroup of its own (or, without one, under a child subreaper), with an
// environment built from nothing, no inherited descriptors, stdout and stderr merged into a
// capped log, optional limits and another user, a deadline, and a stop that reaches every
// process of the run and kills them all after a grace. Built as a static library linked into
// both plugins; see docs/plugins/command.md, docs/agents/process.md and docs/security.md for
// the behaviour people rely on.

#include "containment.h"
#include "procstat.h"

#include <sluice/error.h>

#include <QHash>
#include <QList>
#include <QObject>
#include <QProcessEnvironment>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <QVariantMap>

#include <chrono>
#include <memory>
#include <optional>
#include <utility>

class QProcess;

namespace Sluice::Processes {

/// Environment variables in the order they are set.
using EnvironmentList = QList<std::pair<QString, QString>>;

/// A POSIX-portable variable name: a letter or '_' followed by letters, digits and '_'.
[[nodiscard]] bool isEnvironmentName(const QString &name);

/// Reads a validated list of strings; @p owner names the plugin in messages.
[[nodiscard]] Result<QStringList> stringListSetting(const QVariantMap &settings, const QString &key,
                                                    const QString &owner);
/// Reads a validated duration (milliseconds) that must lie within [@p minimum, @p maximum].
[[nodiscard]] Result<std::chrono::milliseconds> durationSetting(const QVariantMap &settings, const QString &key,
                                                                const QString &owner, std::chrono::milliseconds minimum,
                                                                std::chrono::milliseconds maximum);
/// Reads the `environment` map: names checked, none of @p reserved, values left unexpanded.
[[nodiscard]] Result<EnvironmentList> environmentSetting(const QVariantMap &settings, const QString &key,
                                                         const QString &owner, const QStringList &reserved);
/// Reads the `inherit_environment` list: names checked.
[[nodiscard]] Result<QStringList> inheritSetting(const QVariantMap &settings, const QString &key,
                                                 const QString &owner);
/// A child's environment settings: `environment` (none of @p reserved) and `inherit_environment`.
struct EnvironmentSettings {
    EnvironmentList environment;
    QStringList inherit;
};
[[nodiscard]] Result<EnvironmentSettings> environmentSettings(const QVariantMap &settings, const QString &owner,
                                                              const QStringList &reserved);

/**
 * Replaces every "{name}" whose name is a key of @p values, in one pass: a replacement is
 * never expanded again, and braces around anything else ("${HOME}", "awk '{print}'") stay.
 */
[[nodiscard]] QString expandPlaceholders(const QString &text, const QHash<QString, QString> &values);

/**
 * The environment of a child, built from nothing: the @p inherit names the host has, then
 * @p extra, then @p fixed (which always wins).
 */
[[nodiscard]] QProcessEnvironment childEnvironment(const QStringList &inherit, const EnvironmentList &extra,
                                                   const EnvironmentList &fixed);

/**
 * The file to execute for @p program: a name without '/' is looked up in the PATH of
 * @p environment (the child's, not the host's; "/bin:/usr/bin" when it has none, as
 * execvp does); a path is returned as given. std::nullopt when a name is not found.
 */
[[nodiscard]] std::optional<QString> findProgram(const QString &program, const QProcessEnvironment &environment);

// /proc/<pid>/stat, shared with the host's startup recovery (libs/procstat).
using Sluice::ProcStat;
using Sluice::readProcStat;

/// The last non-empty lines of a text file, at most @p maxLines and @p maxChars.
[[nodiscard]] QStringList tailOfFile(const QString &path, int maxLines, int maxChars);

/// "10m", "90s", "1h", "250ms": the largest exact unit.
[[nodiscard]] QString describeDuration(std::chrono::milliseconds duration);
/// "signal 9 (SIGKILL)", or "a signal" when @p signal is unknown (0).
[[nodiscard]] QString describeSignal(int signal);

/**
 * Sends @p signal to the process group @p group (when non-zero) and to @p pid. Never
 * signals the caller's own process group.
 */
void signalProcessTree(qint64 pid, qint64 group, int signal);

/// What to run, and how.
struct ProcessSpec {
    QString program;            ///< Resolved with findProgram() by the caller; relative: from workingDirectory.
    QStringList arguments;
    QString workingDirectory;   ///< Must exist.
    QProcessEnvironment environment;
    QString outputFile;         ///< stdout and stderr, merged; truncated at start.
    /// Where the supervisor records the exit status when the program ends (see
    /// recordedExitStatus()); empty: not recorded.
    QString statusFile;
    qint64 logLimit = 0;        ///< The output file keeps at most this many bytes (the latest); 0: all.
    std::chrono::milliseconds timeout{0};    ///< 0: no deadline of its own.
    std::chrono::milliseconds killGrace{10000};
    /// When the supervisor is destroyed while the process runs: true leaves it running
    /// (an agent survives a host restart and is adopted) unless a stop was under way,
    /// false kills every process of the run.
    bool detachOnDestroy = false;
    ResourceLimits limits;      ///< Enforced through the run's cgroup; a run is refused when they cannot be.
    QString settingsOwner;      ///< The plugin id, for errors that name a setting ("process setting 'limits.memory'").
    std::optional<RunAsUser> runAs; ///< Run the program as this user.
    /// With runAs: paths the user gets for the run (the worktree, the task file) and gives back after.
    QStringList givenToRunUser;
};

// The exit-status file and its reader, shared with the host's reaper (libs/procstat).
using Sluice::exitStatusFile;
using Sluice::recordedExitStatus;


/// How a supervised process ended.
struct ProcessEnding {
    enum class How {
        Exited,     ///< exitCode is valid.
        Signalled,  ///< Ended by a signal; signal holds it when known.
        NotStarted, ///< startError says why.
    };
    enum class Stop {
        None,     ///< It ended by itself.
        Deadline, ///< The supervisor's timeout stopped it.
        Cancel,   ///< stop() was called.
    };
    How how = How::NotStarted;
    int exitCode = 0;
    int signal = 0;
    QString startError;
    Stop stoppedFor = Stop::None;
    bool forced = false; ///< It outlived SIGTERM by the grace and was killed.
};

/**
 * Starts one program under the supervisor executable, watches it and stops it.
 *
 * The process recorded (pid(), startTicks()) is the supervisor's: it leads the run's session
 * and process group and ends the way the program ended. On a deadline or stop(): SIGTERM to
 * every process of the run, SIGKILL to all of them after the grace. When the program ends,
 * whatever it left — in its group, in another session, double-forked — is killed. ended() is
 * emitted once, queued, so the receiver may delete this object. Never blocks the event loop.
 */
class SupervisedProcess final : public QObject
{
    Q_OBJECT
public:
    explicit SupervisedProcess(ProcessSpec spec, QObject *parent = nullptr);
    ~SupervisedProcess() override;

    /// Starts the process. Only the first call has an effect.
    void start();
    /// Terminates the process group, then kills it after the grace. ended() follows.
    void stop();

    /// The process id once started, else 0.
    [[nodiscard]] qint64 pid() const { return m_pid; }
    /// The process's start time in clock ticks after boot, read right after the fork (a
    /// process that ends at once may be gone before started() is delivered); 0 if unknown.
    [[nodiscard]] quint64 startTicks() const { return m_startTicks; }
    [[nodiscard]] const ProcessSpec &spec() const { return m_spec; }
    /// How the run is contained, for the log: "cgroup /sys/fs/cgroup/.../run-12-345" or
    /// "process group and child subreaper (no cgroup: ...)"; known once started.
    [[nodiscard]] QString containment() const;

Q_SIGNALS:
    /// The supervisor exists and will start the program; see startTicks().
    void started(qint64 pid, quint64 startTicks);
    /// Something the supervisor or the containment says, for the plugin's log as a warning.
    void warning(const QString &message);
    /// The process ended, or never started.
    void ended(const Sluice::Processes::ProcessEnding &ending);

private:
    qint64 processGroup();
    QStringList supervisorArguments(const QString &program) const;
    void readReports();
    void readWarnings(bool all);
    void onStarted();
    void onFinished(int exitCode, int exitStatus);
    void onStartFailed(const QString &error);
    void beginStop(ProcessEnding::Stop reason);
    void forceKill();
    void killEverything();
    void conclude(const ProcessEnding &ending);

    ProcessSpec m_spec;
    std::unique_ptr<QProcess> m_process;
    QTimer m_deadline;
    QTimer m_grace;
    QTimer m_backstop;
    Containment m_containment;
    QString m_cgroup;   // the run's cgroup, once the supervisor's pid is known
    QString m_startError; // the supervisor's "error ..." report: the program never ran
    QByteArray m_warnings; // the supervisor's stderr not yet split into lines
    qint64 m_pid = 0;
    quint64 m_startTicks = 0;
    qint64 m_group = 0; // verified to be the process's own group, else 0 (see processGroup())
    ProcessEnding::Stop m_stop = ProcessEnding::Stop::None;
    bool m_startCalled = false;
    bool m_terminateSent = false;
    bool m_forced = false;
    bool m_concluded = false;
};

} // namespace Sluice::Processes
