// SPDX-License-Identifier: Apache-2.0
#pragma once

// Containment of the runs of agents and commands, as the daemon prepares it: which cgroup v2
// a run gets (or why none, and the fallback), the limits of the `limits` setting and whether
// this machine can enforce them, the `run_as` user, the `log_limit`, and the supervisor
// executable that applies all of it (libexec/supervise). See docs/security.md and
// docs/adr/0012-a-supervisor-executable-per-run.md.

#include <sluice/error.h>

#include <QList>
#include <QString>
#include <QStringList>
#include <QVariantMap>

#include <functional>
#include <optional>

namespace Sluice::Processes {

/// Resource limits of one run, enforced through the controllers of its cgroup.
struct ResourceLimits {
    std::optional<qint64> memoryBytes; ///< memory.max
    std::optional<double> cpus;        ///< cpu.max, in CPUs (1.5: one and a half)
    std::optional<qint64> pids;        ///< pids.max
    [[nodiscard]] bool isEmpty() const { return !memoryBytes && !cpus && !pids; }
    /// "memory 2G, cpu 1.5, pids 256".
    [[nodiscard]] QString describe() const;
};

/// "512M", "2G", "64K", "1048576": bytes (K, M, G, T are powers of 1024). nullopt if malformed.
[[nodiscard]] std::optional<qint64> parseSize(const QString &text);
/// The largest exact unit: "64M", "1536K", "100".
[[nodiscard]] QString describeSize(qint64 bytes);

/// Reads a size setting (a string such as "64M") that must lie within [@p minimum, @p maximum].
[[nodiscard]] Result<qint64> sizeSetting(const QVariantMap &settings, const QString &key, const QString &owner,
                                         qint64 minimum, qint64 maximum);
/// Reads the `limits` object (memory, cpu, pids; each optional).
[[nodiscard]] Result<ResourceLimits> limitsSetting(const QVariantMap &settings, const QString &owner);

/// The `run_as` setting: a user, and a group (empty: the user's own).
struct RunAsSetting {
    QString user;
    QString group;
    [[nodiscard]] bool isSet() const { return !user.isEmpty(); }
};
[[nodiscard]] Result<RunAsSetting> runAsSetting(const QVariantMap &settings, const QString &owner);

/// A run_as user as this machine knows it, looked up at each run.
struct RunAsUser {
    QString name;
    uint uid = 0;
    uint gid = 0;
    QList<uint> groups; ///< Supplementary groups of the user (with gid).
    QString home;
};
/// Looks the user and group up, refuses root, and checks that this daemon may switch to them.
[[nodiscard]] Result<RunAsUser> resolveRunAs(const RunAsSetting &setting, const QString &owner);

/**
 * The capabilities a daemon gets for run_as from its unit (AmbientCapabilities=CAP_SETUID
 * CAP_SETGID CAP_CHOWN CAP_KILL) would pass, as ambient capabilities, to every program it
 * starts — git, a gate's tool, a hook in a repository an agent wrote. This takes them out of
 * the calling thread's ambient set (they stay permitted), so that only a supervisor started
 * inside withSupervisorCapabilities() gets them. Called when the plugins initialize.
 */
void confineAmbientCapabilities();

/// Runs @p start with this thread's ambient set empty, or, with @p runAs, holding just the
/// run_as capabilities it is permitted to raise; empties it again afterwards.
void withSupervisorCapabilities(bool runAs, const std::function<void()> &start);

/// How this daemon contains its runs.
struct Containment {
    enum class Kind {
        Cgroup,       ///< A cgroup v2 per run, created in cgroupParent.
        ProcessGroup, ///< The process group plus a child subreaper per run.
    };
    Kind kind = Kind::ProcessGroup;
    QString cgroupParent;
    QString reason;      ///< ProcessGroup: why no cgroup.
    QStringList notes;   ///< Things done on the way, for the log (leftovers of dead runs killed).
};

/**
 * Finds the containment for the next run. SLUICE_CONTAINMENT (an operator's and the tests'
 * switch) chooses: `auto` (default: a cgroup where one is usable, else the fallback),
 * `cgroup` (a run without a cgroup is refused: the error) or `process-group` (the fallback,
 * always). Under a delegated cgroup (systemd's Delegate=yes) the daemon moves itself into
 * the leaf `daemon` of its cgroup and creates the runs' cgroups beside it; in the root cgroup
 * (a container's, or a machine without systemd) it uses `<cgroup2 mount>/sluice`. Leftovers
 * of runs whose supervisor is gone are killed and their cgroups removed on the way.
 */
[[nodiscard]] Result<Containment> probeContainment();

/**
 * Makes sure the controllers @p limits need are enabled for the runs' cgroups; the error
 * names the first setting that cannot be enforced here (`<owner> setting 'limits.memory'`).
 */
[[nodiscard]] Result<void> prepareLimits(const Containment &containment, const ResourceLimits &limits,
                                         const QString &owner);

/// The cgroup the supervisor @p pid (started at @p startTicks) creates for its run.
[[nodiscard]] QString runCgroupPath(const QString &parent, qint64 pid, quint64 startTicks);

/// The supervisor executable, beside the plugins as installed; refused when it is missing or
/// writable by anyone but its owner (root or the daemon's user).
[[nodiscard]] Result<QString> supervisorProgram();

/// When @p pid is a supervisor (checked by its command line): the cgroup of its run, or an
/// empty string when it has none. nullopt when it is not a supervisor.
[[nodiscard]] std::optional<QString> supervisedRunCgroup(qint64 pid, quint64 startTicks);

/// SIGKILL to every process in the cgroup @p path and below (cgroup.kill, else one by one).
void killCgroup(const QString &path);

/// How many bytes of output the supervisor cut from the start of the log at @p logPath;
/// nullopt when nothing was cut.
[[nodiscard]] std::optional<qint64> logCutBytes(const QString &logPath);

} // namespace Sluice::Processes
