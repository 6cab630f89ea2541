// SPDX-License-Identifier: Apache-2.0
#include "containment.h"

#include "procstat.h"
#include "pathsecurity.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QTimer>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include <dlfcn.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice::Processes {

namespace {

constexpr QLatin1String SupervisorName("sluice-supervise");
constexpr QLatin1String RunPrefix("run-");

QByteArray readFile(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly | QIODevice::Unbuffered) ? file.readAll() : QByteArray();
}

// One write to a cgroup interface file; the error is errno.
int writeFile(const QString &path, const QByteArray &value)
{
    const int fd = ::open(QFile::encodeName(path).constData(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    const ssize_t written = ::write(fd, value.constData(), size_t(value.size()));
    const int error = written == value.size() ? 0 : (written < 0 ? errno : EIO);
    ::close(fd);
    return error;
}

QString errorText(int error)
{
    return QString::fromLocal8Bit(std::strerror(error));
}

bool writable(const QString &path)
{
    return ::access(QFile::encodeName(path).constData(), W_OK) == 0;
}

struct CgroupMount {
    QString point; ///< Where it is mounted.
    QString root;  ///< Which cgroup is at the mount point ("/" unless bind-mounted from below).
};

std::optional<CgroupMount> cgroup2Mount()
{
    const QList<QByteArray> lines = readFile(QStringLiteral("/proc/self/mountinfo")).split('\n');
    for (const QByteArray &line : lines) {
        const QList<QByteArray> fields = line.split(' ');
        const int separator = fields.indexOf("-");
        if (separator > 4 && fields.size() > separator + 1 && fields.at(separator + 1) == "cgroup2")
            return CgroupMount{QString::fromUtf8(fields.at(4)), QString::fromUtf8(fields.at(3))};
    }
    return std::nullopt;
}

QString ownCgroup()
{
    const QList<QByteArray> lines = readFile(QStringLiteral("/proc/self/cgroup")).split('\n');
    for (const QByteArray &line : lines) {
        if (line.startsWith("0::"))
            return QString::fromUtf8(line.mid(3));
    }
    return {};
}

// Removes the cgroup @p path once the processes killed in it are gone: now, or from the event
// loop a little later (a kill takes a moment to land), never blocking it.
void removeWhenEmpty(const QString &path, int attempts)
{
    if (::rmdir(QFile::encodeName(path).constData()) == 0 || errno != EBUSY || attempts <= 0 || !QCoreApplication::instance())
        return;
    QTimer::singleShot(100, QCoreApplication::instance(), [path, attempts] { removeWhenEmpty(path, attempts - 1); });
}

// Kills what is left in the cgroups of runs whose supervisor has gone (killed with the
// daemon, say) and removes them. A living supervisor's run is never touched.
void sweepDeadRuns(const QString &parent, QStringList &notes)
{
    static const QRegularExpression name(QStringLiteral("^run-(\\d+)-(\\d+)$"));
    const QStringList entries = QDir(parent).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
    for (const QString &entry : entries) {
        const auto match = name.match(entry);
        if (!match.hasMatch())
            continue;
        if (isSameLiveProcess(match.captured(1).toLongLong(), match.captured(2).toULongLong()))
            continue;
        const QString path = QDir(parent).filePath(entry);
        const QList<QByteArray> pids = readFile(path + QStringLiteral("/cgroup.procs")).split('\n');
        int alive = 0;
        for (const QByteArray &pid : pids)
            alive += pid.trimmed().isEmpty() ? 0 : 1;
        if (alive > 0) {
            killCgroup(path);
            notes.append(QStringLiteral("killed %1 process(es) left in %2 by a run whose supervisor is gone").arg(alive).arg(path));
        }
        removeWhenEmpty(path, 20);
    }
}

// The directory the runs' cgroups go in, or why there is none.
Result<QString> findCgroupParent(QStringList &notes)
{
    const auto mount = cgroup2Mount();
    if (!mount)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("no cgroup v2 is mounted"));
    const QString own = ownCgroup();
    if (own.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("this process is in no cgroup v2 (a cgroup v1 only system)"));
    const QString mountRoot = mount->root == QLatin1String("/") ? QString() : mount->root;
    if (!own.startsWith(mountRoot + QLatin1Char('/')) && own != mount->root)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("this process's cgroup %1 is outside the cgroup v2 mount at %2").arg(own, mount->point));
    const QString relative = own.mid(mountRoot.size());
    const QString ownDir = QDir::cleanPath(mount->point + relative);

    QString parent;
    if (relative == QLatin1String("/") || relative.isEmpty()) {
        // The root cgroup (a container's, or a machine without systemd): runs go below a
        // directory of ours, never among the system's own cgroups.
        parent = QDir(mount->point).filePath(QStringLiteral("sluice"));
        if (!QFileInfo(parent).isDir() && ::mkdir(QFile::encodeName(parent).constData(), 0755) != 0 && errno != EEXIST)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("cannot create %1: %2").arg(parent, errorText(errno)));
    } else if (QFileInfo(ownDir).fileName() == QLatin1String("daemon")
               && writable(QFileInfo(ownDir).absolutePath() + QStringLiteral("/cgroup.procs"))) {
        parent = QFileInfo(ownDir).absolutePath(); // moved into the leaf before
    } else if (writable(ownDir) && writable(ownDir + QStringLiteral("/cgroup.procs"))) {
        // A delegated cgroup (systemd's Delegate=yes). cgroup v2 lets only leaves hold
        // processes once controllers are enabled: the daemon moves to the leaf `daemon` and
        // the runs' cgroups go beside it.
        const QString leaf = ownDir + QStringLiteral("/daemon");
        if (::mkdir(QFile::encodeName(leaf).constData(), 0755) != 0 && errno != EEXIST)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("cannot create %1: %2").arg(leaf, errorText(errno)));
        if (const int error = writeFile(leaf + QStringLiteral("/cgroup.procs"), QByteArray::number(qint64(::getpid()))))
            return fail(ErrorCode::InvalidConfig, QStringLiteral("cannot move the daemon into %1: %2").arg(leaf, errorText(error)));
        notes.append(QStringLiteral("moved the daemon into the cgroup %1; runs get cgroups beside it").arg(leaf));
        parent = ownDir;
    } else {
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("the cgroup %1 is not writable by uid %2 (under systemd, give the unit Delegate=yes: docs/runbooks/systemd.md)")
                        .arg(ownDir)
                        .arg(::geteuid()));
    }
    if (!writable(parent) || !writable(parent + QStringLiteral("/cgroup.procs")))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("the cgroup %1 is not writable by uid %2").arg(parent).arg(::geteuid()));
    sweepDeadRuns(parent, notes);
    return parent;
}

QStringList words(const QByteArray &content)
{
    return QString::fromUtf8(content).split(QRegularExpression(QStringLiteral("\\s+")), Qt::SkipEmptyParts);
}

// Enables @p controller for the children of @p dir; within the cgroup2 mount at @p top, a
// parent that does not pass it down yet is asked first (the root case: <mount>/sluice).
Result<void> enableController(const QString &dir, const QString &top, const QString &controller)
{
    if (words(readFile(dir + QStringLiteral("/cgroup.subtree_control"))).contains(controller))
        return {};
    if (!words(readFile(dir + QStringLiteral("/cgroup.controllers"))).contains(controller)) {
        const QString above = QFileInfo(dir).absolutePath();
        if (dir == top || !above.startsWith(top) || !writable(above + QStringLiteral("/cgroup.subtree_control")))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("the %1 controller is not available in the cgroup %2 (its cgroup.controllers: %3)")
                            .arg(controller, dir,
                                 words(readFile(dir + QStringLiteral("/cgroup.controllers"))).join(QLatin1Char(' ')).isEmpty()
                                     ? QStringLiteral("none")
                                     : words(readFile(dir + QStringLiteral("/cgroup.controllers"))).join(QLatin1Char(' '))));
        if (auto enabled = enableController(above, top, controller); !enabled)
            return enabled;
    }
    if (const int error = writeFile(dir + QStringLiteral("/cgroup.subtree_control"), "+" + controller.toUtf8()))
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("cannot enable the %1 controller in %2: %3%4")
                        .arg(controller, dir, errorText(error),
                             error == EBUSY ? QStringLiteral(" (the cgroup holds processes of its own, which cgroup v2 forbids "
                                                             "for a cgroup that passes controllers down)")
                                            : QString()));
    return {};
}

// A capability set of the calling thread ("CapEff", "CapAmb", ...), from /proc/thread-self/status.
quint64 capabilitySet(const char *name)
{
    const QList<QByteArray> lines = readFile(QStringLiteral("/proc/thread-self/status")).split('\n');
    for (const QByteArray &line : lines) {
        if (line.startsWith(name) && line.size() > int(std::strlen(name)) && line.at(int(std::strlen(name))) == ':')
            return line.mid(int(std::strlen(name)) + 1).trimmed().toULongLong(nullptr, 16);
    }
    return 0;
}

quint64 effectiveCapabilities()
{
    return capabilitySet("CapEff");
}

// What a supervisor of a run_as run needs: switch user and group, lend the worktree, stop the
// run's processes one by one.
constexpr std::array<int, 4> RunAsCapabilities{CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_KILL};

} // namespace

QString ResourceLimits::describe() const
{
    QStringList parts;
    if (memoryBytes)
        parts.append(QStringLiteral("memory %1").arg(describeSize(*memoryBytes)));
    if (cpus)
        parts.append(QStringLiteral("cpu %1").arg(*cpus));
    if (pids)
        parts.append(QStringLiteral("pids %1").arg(*pids));
    return parts.join(QStringLiteral(", "));
}

std::optional<qint64> parseSize(const QString &text)
{
    static const QRegularExpression pattern(QStringLiteral("^\\s*(\\d+)\\s*([KMGT]?)i?B?\\s*$"),
                                            QRegularExpression::CaseInsensitiveOption);
    const auto match = pattern.match(text);
    if (!match.hasMatch())
        return std::nullopt;
    bool ok = false;
    const qint64 number = match.captured(1).toLongLong(&ok);
    if (!ok)
        return std::nullopt;
    const QString unit = match.captured(2).toUpper();
    const int shift = unit == QLatin1String("K") ? 10 : unit == QLatin1String("M") ? 20 : unit == QLatin1String("G") ? 30
                    : unit == QLatin1String("T") ? 40 : 0;
    if (number > (std::numeric_limits<qint64>::max() >> shift))
        return std::nullopt;
    return number << shift;
}

QString describeSize(qint64 bytes)
{
    constexpr std::array<std::pair<int, const char *>, 4> units{{{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}}};
    if (bytes > 0) {
        for (const auto &[shift, unit] : units) {
            if (bytes % (qint64(1) << shift) == 0)
                return QString::number(bytes >> shift) + QLatin1String(unit);
        }
    }
    return QString::number(bytes);
}

Result<qint64> sizeSetting(const QVariantMap &settings, const QString &key, const QString &owner, qint64 minimum,
                           qint64 maximum)
{
    const QVariant value = settings.value(key);
    const auto size = value.userType() == QMetaType::QString ? parseSize(value.toString()) : std::nullopt;
    if (!size)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting '%2' is '%3'; give a size such as 64M or 2G "
                                                             "(K, M, G, T: powers of 1024)")
                                                  .arg(owner, key, value.toString()));
    if (*size < minimum || *size > maximum)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting '%2' must lie between %3 and %4")
                                                  .arg(owner, key, describeSize(minimum), describeSize(maximum)));
    return *size;
}

Result<ResourceLimits> limitsSetting(const QVariantMap &settings, const QString &owner)
{
    ResourceLimits limits;
    const QVariantMap map = settings.value(QStringLiteral("limits")).toMap();
    if (map.contains(QStringLiteral("memory"))) {
        // At least a few pages more than a shell needs; the kernel accepts less and then kills at once.
        auto memory = sizeSetting(map, QStringLiteral("memory"), owner, qint64(4) << 20, qint64(1) << 50);
        if (!memory)
            return fail(ErrorCode::InvalidConfig, memory.error().message.replace(QStringLiteral("'memory'"), QStringLiteral("'limits.memory'")));
        limits.memoryBytes = *memory;
    }
    if (map.contains(QStringLiteral("cpu"))) {
        bool ok = false;
        const double cpus = map.value(QStringLiteral("cpu")).toDouble(&ok);
        if (!ok || !std::isfinite(cpus) || cpus < 0.01 || cpus > 4096)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting 'limits.cpu' is a number of CPUs from 0.01 to 4096 (1.5: one and a half)").arg(owner));
        limits.cpus = cpus;
    }
    if (map.contains(QStringLiteral("pids"))) {
        bool ok = false;
        const qlonglong pids = map.value(QStringLiteral("pids")).toLongLong(&ok);
        if (!ok || pids < 1 || pids > 4194304)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting 'limits.pids' is a number of processes from 1 up").arg(owner));
        limits.pids = pids;
    }
    return limits;
}

Result<RunAsSetting> runAsSetting(const QVariantMap &settings, const QString &owner)
{
    const QVariantMap map = settings.value(QStringLiteral("run_as")).toMap();
    RunAsSetting setting;
    setting.user = map.value(QStringLiteral("user")).toString().trimmed();
    setting.group = map.value(QStringLiteral("group")).toString().trimmed();
    if (setting.user.isEmpty() && !setting.group.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting 'run_as.group' needs 'run_as.user'").arg(owner));
    static const QRegularExpression name(QStringLiteral("^[A-Za-z0-9_][A-Za-z0-9_.-]*\\$?$"));
    for (const auto &[key, value] : {std::pair{QStringLiteral("user"), setting.user}, std::pair{QStringLiteral("group"), setting.group}}) {
        if (!value.isEmpty() && !name.match(value).hasMatch())
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1 setting 'run_as.%2' is '%3', which is not a user or group name").arg(owner, key, value));
    }
    if (setting.user == QLatin1String("root") || setting.user == QLatin1String("0"))
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1 setting 'run_as.user' must name an unprivileged user, not root").arg(owner));
    return setting;
}

Result<RunAsUser> resolveRunAs(const RunAsSetting &setting, const QString &owner)
{
    std::array<char, 16384> buffer{};
    passwd entry{};
    passwd *found = nullptr;
    const QByteArray userName = setting.user.toUtf8();
    int error = ::getpwnam_r(userName.constData(), &entry, buffer.data(), buffer.size(), &found);
    if (!found) {
        bool numeric = false;
        const uint uid = setting.user.toUInt(&numeric);
        if (numeric)
            error = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
    }
    if (!found)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting 'run_as.user' names '%2', which is not a user on this machine%3")
                                                  .arg(owner, setting.user, error ? QStringLiteral(" (%1)").arg(errorText(error)) : QString()));
    RunAsUser user;
    user.name = QString::fromUtf8(entry.pw_name);
    user.uid = entry.pw_uid;
    user.gid = entry.pw_gid;
    user.home = QString::fromUtf8(entry.pw_dir);
    if (user.uid == 0)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting 'run_as.user' must name an unprivileged user, not root").arg(owner));
    if (!setting.group.isEmpty()) {
        group groupEntry{};
        group *groupFound = nullptr;
        std::array<char, 16384> groupBuffer{};
        ::getgrnam_r(setting.group.toUtf8().constData(), &groupEntry, groupBuffer.data(), groupBuffer.size(), &groupFound);
        if (!groupFound)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting 'run_as.group' names '%2', which is not a group on this machine")
                                                      .arg(owner, setting.group));
        if (groupFound->gr_gid == 0)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 setting 'run_as.group' must not be root's group").arg(owner));
        user.gid = groupFound->gr_gid;
    }
    std::array<gid_t, 256> groups{};
    int count = int(groups.size());
    if (::getgrouplist(entry.pw_name, user.gid, groups.data(), &count) < 0)
        count = 1, groups[0] = user.gid;
    for (int i = 0; i < count; ++i) {
        // Root's group is never handed on, whatever the group file says.
        if (groups[size_t(i)] != 0 && !user.groups.contains(groups[size_t(i)]))
            user.groups.append(groups[size_t(i)]);
    }

    // Switching users takes root or these capabilities (chown for the worktree, kill to stop
    // the run's processes one by one).
    constexpr std::array<std::pair<int, const char *>, 4> needed{
        {{CAP_SETUID, "CAP_SETUID"}, {CAP_SETGID, "CAP_SETGID"}, {CAP_CHOWN, "CAP_CHOWN"}, {CAP_KILL, "CAP_KILL"}}};
    const quint64 effective = effectiveCapabilities();
    QStringList missing;
    for (const auto &[bit, name] : needed) {
        if (!(effective & (quint64(1) << bit)))
            missing.append(QLatin1String(name));
    }
    if (!missing.isEmpty())
        return fail(ErrorCode::PermissionDenied,
                    QStringLiteral("%1 setting 'run_as' needs the daemon to run as root or with the capabilities "
                                   "CAP_SETUID, CAP_SETGID, CAP_CHOWN and CAP_KILL; missing: %2 (docs/runbooks/systemd.md)")
                        .arg(owner, missing.join(QStringLiteral(", "))));
    return user;
}

void confineAmbientCapabilities()
{
    const quint64 ambient = capabilitySet("CapAmb");
    for (int capability = 0; capability < 64; ++capability) {
        if (ambient & (quint64(1) << capability))
            ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, capability, 0, 0);
    }
}

void withSupervisorCapabilities(bool runAs, const std::function<void()> &start)
{
    // Only this thread's ambient set changes, and only while it forks the supervisor.
    confineAmbientCapabilities();
    const quint64 raisable = runAs ? capabilitySet("CapPrm") & capabilitySet("CapInh") : 0;
    for (const int capability : RunAsCapabilities) {
        if (raisable & (quint64(1) << capability))
            ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, capability, 0, 0);
    }
    start();
    confineAmbientCapabilities();
}

Result<Containment> probeContainment()
{
    const QString mode = qEnvironmentVariable("SLUICE_CONTAINMENT", QStringLiteral("auto")).trimmed();
    if (mode != QLatin1String("auto") && mode != QLatin1String("cgroup") && mode != QLatin1String("process-group"))
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("SLUICE_CONTAINMENT is '%1'; use auto, cgroup or process-group").arg(mode));
    Containment containment;
    if (mode == QLatin1String("process-group")) {
        containment.reason = QStringLiteral("SLUICE_CONTAINMENT=process-group");
        return containment;
    }
    auto parent = findCgroupParent(containment.notes);
    if (parent) {
        containment.kind = Containment::Kind::Cgroup;
        containment.cgroupParent = *parent;
        return containment;
    }
    if (mode == QLatin1String("cgroup"))
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("no cgroup for the run: %1; SLUICE_CONTAINMENT=cgroup requires one").arg(parent.error().message));
    containment.reason = parent.error().message;
    return containment;
}

Result<void> prepareLimits(const Containment &containment, const ResourceLimits &limits, const QString &owner)
{
    const std::array<std::tuple<bool, const char *, const char *, QString>, 3> wanted{{
        {limits.memoryBytes.has_value(), "memory", "limits.memory", limits.memoryBytes ? describeSize(*limits.memoryBytes) : QString()},
        {limits.cpus.has_value(), "cpu", "limits.cpu", limits.cpus ? QString::number(*limits.cpus) : QString()},
        {limits.pids.has_value(), "pids", "limits.pids", limits.pids ? QString::number(*limits.pids) : QString()},
    }};
    for (const auto &[set, controller, key, value] : wanted) {
        if (!set)
            continue;
        const QString refused = QStringLiteral("%1 setting '%2' (%3) cannot be enforced on this machine: ")
                                    .arg(owner, QLatin1String(key), value);
        if (containment.kind != Containment::Kind::Cgroup)
            return fail(ErrorCode::InvalidConfig,
                        refused + QStringLiteral("limits need a cgroup v2 per run, and there is none (%1); remove the "
                                                 "limit or give sluice a delegated cgroup (docs/runbooks/systemd.md)")
                                      .arg(containment.reason));
        const auto mount = cgroup2Mount();
        const QString top = mount ? mount->point : containment.cgroupParent;
        if (auto enabled = enableController(containment.cgroupParent, top, QLatin1String(controller)); !enabled)
            return fail(ErrorCode::InvalidConfig,
                        refused + enabled.error().message
                            + QStringLiteral("; remove the limit or give sluice a cgroup with the %1 controller (under systemd: "
                                             "Delegate=yes; docs/runbooks/systemd.md)").arg(QLatin1String(controller)));
    }
    return {};
}

QString runCgroupPath(const QString &parent, qint64 pid, quint64 startTicks)
{
    return QDir(parent).filePath(QStringLiteral("%1%2-%3").arg(RunPrefix).arg(pid).arg(startTicks));
}

Result<QString> supervisorProgram()
{
    // Beside this plugin's own library as installed (the build tree mirrors the install
    // tree); else beside the executable (plugins copied elsewhere, as tests do); else where
    // it is installed.
    QStringList candidates;
    Dl_info info{};
    if (::dladdr(reinterpret_cast<const void *>(&supervisorProgram), &info) != 0 && info.dli_fname && *info.dli_fname) {
        const QString library = QFileInfo(QFile::decodeName(info.dli_fname)).absolutePath();
        candidates.append(QDir::cleanPath(QDir(library).filePath(QStringLiteral(SLUICE_SUPERVISOR_FROM_PLUGINS))));
    }
    if (QCoreApplication::instance())
        candidates.append(QDir::cleanPath(QDir(QCoreApplication::applicationDirPath()).filePath(QStringLiteral(SLUICE_SUPERVISOR_FROM_BINDIR))));
    candidates.append(QStringLiteral(SLUICE_SUPERVISOR_INSTALLED));
    candidates.removeDuplicates();
    const auto found = std::find_if(candidates.cbegin(), candidates.cend(), [](const QString &candidate) {
        const QFileInfo file(candidate);
        return file.isFile() && file.isExecutable();
    });
    if (found == candidates.cend())
        return fail(ErrorCode::NotFound, QStringLiteral("the supervisor %1 is missing (looked for %2): an incomplete installation")
                                             .arg(SupervisorName, candidates.join(QStringLiteral(", "))));
    // It runs with the daemon's privileges: the same trust as a plugin file.
    TrustedOwners owners;
    owners.add(0);
    owners.add(::geteuid());
    if (auto trusted = checkPluginFile(*found, owners); !trusted)
        return fail(ErrorCode::PermissionDenied, QStringLiteral("the supervisor is not trusted: %1").arg(trusted.error().message));
    return *found;
}

std::optional<QString> supervisedRunCgroup(qint64 pid, quint64 startTicks)
{
    const QList<QByteArray> argv = readFile(QStringLiteral("/proc/%1/cmdline").arg(pid)).split('\0');
    if (argv.isEmpty() || QFileInfo(QFile::decodeName(argv.first())).fileName() != SupervisorName)
        return std::nullopt;
    for (int i = 1; i + 1 < argv.size(); ++i) {
        if (argv.at(i) == "--")
            break;
        if (argv.at(i) == "--cgroup-parent")
            return runCgroupPath(QFile::decodeName(argv.at(i + 1)), pid, startTicks);
    }
    return QString();
}

void killCgroup(const QString &path)
{
    if (path.isEmpty() || !QFileInfo(path).isDir())
        return;
    if (writeFile(path + QStringLiteral("/cgroup.kill"), "1") == 0)
        return;
    // Before Linux 5.14: one by one, in this cgroup and below.
    QStringList cgroups{path};
    for (int i = 0; i < cgroups.size(); ++i) {
        const QStringList children = QDir(cgroups.at(i)).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
        for (const QString &child : children)
            cgroups.append(QDir(cgroups.at(i)).filePath(child));
    }
    for (const QString &cgroup : std::as_const(cgroups)) {
        const QList<QByteArray> pids = readFile(cgroup + QStringLiteral("/cgroup.procs")).split('\n');
        for (const QByteArray &pid : pids) {
            if (const qint64 number = pid.trimmed().toLongLong(); number > 1)
                ::kill(pid_t(number), SIGKILL);
        }
    }
}

std::optional<qint64> logCutBytes(const QString &logPath)
{
    QFile log(logPath);
    if (!log.open(QIODevice::ReadOnly))
        return std::nullopt;
    static const QRegularExpression notice(QStringLiteral("^\\[sluice\\] output cut: (\\d+) bytes"));
    const auto match = notice.match(QString::fromUtf8(log.readLine(512)));
    if (!match.hasMatch())
        return std::nullopt;
    return match.captured(1).toLongLong();
}

} // namespace Sluice::Processes
