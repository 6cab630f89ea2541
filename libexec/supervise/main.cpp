// SPDX-License-Identifier: Apache-2.0
// sluice-supervise: runs one program for the daemon — an agent or a command stage's command —
// and contains it. It closes the descriptors it inherited, leads a session of its own, waits
// for the daemon's "go", then starts the program in the run's cgroup (or, without one, as a
// child of this child subreaper) as the run's user, with no capabilities and no way to gain
// any, its output going through a pipe into the run's capped log. It forwards a stop to
// every process of the run, kills them all when the program has ended, records the exit
// status beside the log, and ends the way the program ended.
//
// See docs/adr/0012-a-supervisor-executable-per-run.md for why it exists and for the
// protocol with the daemon.

#include "cappedlog.h"
#include "options.h"
#include "ownership.h"
#include "runcgroup.h"
#include "system.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <ctime>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace Sluice::Supervise {
namespace {

// Exit status (and recorded status) when the program could not be started, as a shell says
// "command not found".
constexpr int NotStarted = 127;
// How long the end of a run may take to kill what is left before the supervisor gives up.
constexpr int SweepMs = 10000;
// How long output still arriving after the sweep is read, at most.
constexpr long DrainMs = 2000;

// The signals the supervisor handles itself; all others keep their default.
sigset_t handledSignals()
{
    sigset_t set;
    sigemptyset(&set);
    for (const int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD})
        sigaddset(&set, signal);
    return set;
}

// Why the program could not be started: written by the child to the parent before _exit.
struct ChildFailure {
    enum Step : int { Stdio, Cgroup, Bounding, Groups, Group, User, Capabilities, NoNewPrivileges, ParentDeath, Exec };
    int step = 0;
    int error = 0;
};

const char *describeStep(int step)
{
    switch (step) {
    case ChildFailure::Stdio: return "cannot set up standard input and output";
    case ChildFailure::Cgroup: return "cannot join the run's cgroup";
    case ChildFailure::Bounding: return "cannot drop the capability bounding set";
    case ChildFailure::Groups: return "cannot set the supplementary groups (setgroups)";
    case ChildFailure::Group: return "cannot switch to the run's group (setresgid)";
    case ChildFailure::User: return "cannot switch to the run's user (setresuid)";
    case ChildFailure::Capabilities: return "cannot drop capabilities";
    case ChildFailure::NoNewPrivileges: return "cannot set no_new_privs";
    case ChildFailure::ParentDeath: return "the supervisor ended before the program started";
    default: return "execve";
    }
}

// Empties the inheritable set, and the permitted and effective sets unless @p keepPermitted.
bool dropCapabilities(bool keepPermitted)
{
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (keepPermitted && ::syscall(SYS_capget, &header, data) != 0)
        return false;
    for (auto &set : data) {
        set.inheritable = 0;
        if (!keepPermitted)
            set.permitted = set.effective = 0;
    }
    return ::syscall(SYS_capset, &header, data) == 0;
}

bool hasCapability(int capability)
{
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0)
        return false;
    return (data[capability / 32].effective >> (capability % 32)) & 1U;
}

int lastCapability()
{
    const auto text = readFile("/proc/sys/kernel/cap_last_cap");
    return text ? std::max(std::atoi(text->c_str()), CAP_LAST_CAP) : CAP_LAST_CAP;
}

// In the child, between fork and exec. Returns only to report a failure.
[[noreturn]] void runProgram(const Options &options, const RunCgroup &cgroup, int output, int failures, pid_t supervisor)
{
    const auto failed = [failures](int step, int error) {
        const ChildFailure failure{step, error};
        (void)writeAll(failures, std::string_view(reinterpret_cast<const char *>(&failure), sizeof failure));
        ::_exit(NotStarted);
    };

    // Signals as a fresh process has them, whatever the supervisor (or the daemon) does.
    struct sigaction standard{};
    standard.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; ++signal) {
        if (signal != SIGKILL && signal != SIGSTOP)
            ::sigaction(signal, &standard, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    // Nothing of the daemon's: stdin reads end-of-file, stdout and stderr go to the log.
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || ::dup2(null, STDIN_FILENO) < 0 || ::dup2(output, STDOUT_FILENO) < 0 || ::dup2(output, STDERR_FILENO) < 0)
        failed(ChildFailure::Stdio, errno);

    if (cgroup.isValid()) {
        if (auto joined = writeFile(cgroup.path() + "/cgroup.procs", "0"); !joined)
            failed(ChildFailure::Cgroup, joined.error());
    }

    const bool otherUser = options.uid.has_value();
    const uid_t runUid = otherUser ? *options.uid : ::geteuid();
    if (runUid != 0 && hasCapability(CAP_SETPCAP)) {
        // Nothing the program executes can have a capability, not even a file capability.
        for (int capability = 0; capability <= lastCapability(); ++capability) {
            if (::prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 && errno != EINVAL)
                failed(ChildFailure::Bounding, errno);
        }
    }
    if (otherUser) {
        if (::setgroups(options.groups.size(), options.groups.data()) != 0)
            failed(ChildFailure::Groups, errno);
        if (::setresgid(*options.gid, *options.gid, *options.gid) != 0)
            failed(ChildFailure::Group, errno);
        if (::setresuid(*options.uid, *options.uid, *options.uid) != 0)
            failed(ChildFailure::User, errno);
        if (::getuid() != *options.uid || ::geteuid() != *options.uid || ::getegid() != *options.gid)
            failed(ChildFailure::User, EPERM);
    }
    // No capability in any set: an unprivileged program has none to keep (root keeps its
    // permitted set, which exec recomputes for uid 0 anyway), none is inheritable or ambient.
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        failed(ChildFailure::Capabilities, errno);
    if (!dropCapabilities(runUid == 0))
        failed(ChildFailure::Capabilities, errno);
    // Nor can it gain any: setuid binaries and file capabilities do not elevate it.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        failed(ChildFailure::NoNewPrivileges, errno);
    // Unsupervised, it would run on with nobody to record its end or contain what it starts.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        failed(ChildFailure::ParentDeath, errno);
    if (::getppid() != supervisor)
        failed(ChildFailure::ParentDeath, ESRCH);

    closeDescriptorsFrom(3, failures);
    std::vector<char *> argv;
    for (const std::string &argument : options.command)
        argv.push_back(const_cast<char *>(argument.c_str()));
    argv.push_back(nullptr);
    ::execve(argv.front(), argv.data(), environ);
    failed(ChildFailure::Exec, errno);
    ::_exit(NotStarted); // not reached
}

class Supervisor
{
public:
    explicit Supervisor(Options options) : m_options(std::move(options)) {}

    int run();

private:
    bool waitForGo();
    void daemonGone();
    bool prepare();
    bool startProgram();
    void superviseUntilTheProgramEnds();
    void endRun();
    void readOutput(bool wait);
    void reapChildren();
    std::set<pid_t> processesOfRun() const;
    bool anythingLeft() const;
    void signalRun(int signal);
    void giveBack();
    void recordStatus(int status);
    [[noreturn]] void endLikeTheProgram();
    [[noreturn]] void notStarted(const std::string &why);

    Options m_options;
    pid_t m_self = ::getpid();
    int m_signals = -1;
    int m_output = -1;       ///< Read end of the program's stdout and stderr.
    CappedLog m_log;
    bool m_logOpen = false;
    RunCgroup m_cgroup;
    std::vector<std::string> m_given; ///< Paths given to the run's user, taken back at the end.
    int m_daemon = -1;       ///< Standard input while the run ends with the daemon, else -1.
    long m_killAtMs = -1;    ///< When the run gets SIGKILL after the daemon went away.
    pid_t m_program = 0;
    int m_status = 0;
    bool m_ended = false;
};

int Supervisor::run()
{
    const sigset_t handled = handledSignals();
    m_signals = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m_signals < 0)
        notStarted(describeError("signalfd", errno));
    if (!waitForGo())
        notStarted("stopped before the program started");
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        notStarted(describeError("cannot become the run's child subreaper", errno));
    if (!prepare() || !startProgram())
        return NotStarted; // notStarted() ended the process
    superviseUntilTheProgramEnds();
    endRun();
    endLikeTheProgram();
}

bool Supervisor::waitForGo()
{
    // The daemon reads this process's start time before it says go: a program that ends at
    // once must not take the supervisor with it before it was recorded.
    std::string received;
    pollfd fds[2]{{STDIN_FILENO, POLLIN, 0}, {m_signals, POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            while (::read(m_signals, &info, sizeof info) == ssize_t(sizeof info)) {
                if (info.ssi_signo != SIGCHLD)
                    return false;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char buffer[64];
            const ssize_t got = ::read(STDIN_FILENO, buffer, sizeof buffer);
            if (got <= 0)
                return false; // the daemon went away before go
            received.append(buffer, std::size_t(got));
            if (received.find("go\n") != std::string::npos) {
                // A run that must not outlive the daemon watches the pipe: it closes when the
                // daemon exits, however it exits.
                if (m_options.endsWithDaemon)
                    m_daemon = STDIN_FILENO;
                return true;
            }
            if (received.size() > 16)
                return false;
        }
    }
}

bool Supervisor::prepare()
{
    if (auto opened = m_log.open(m_options.log, m_options.logLimit); !opened)
        notStarted(opened.error());
    m_logOpen = true;

    if (!m_options.cgroupParent.empty()) {
        // Named after this process and its start time: unique on the machine, and a daemon
        // that finds it later can tell whether its supervisor still lives.
        const auto stat = readProcessStat(m_self);
        auto cgroup = RunCgroup::create(m_options.cgroupParent,
                                        "run-" + std::to_string(m_self) + "-" + std::to_string(stat ? stat->startTicks : 0));
        if (!cgroup)
            notStarted(cgroup.error());
        m_cgroup = std::move(*cgroup);
        const auto limit = [&](const char *file, const std::string &value) {
            if (auto set = m_cgroup.set(file, value); !set)
                notStarted(set.error());
        };
        if (m_options.memoryMax)
            limit("memory.max", std::to_string(*m_options.memoryMax));
        if (m_options.cpuMax)
            limit("cpu.max", *m_options.cpuMax);
        if (m_options.pidsMax)
            limit("pids.max", std::to_string(*m_options.pidsMax));
    }

    if (m_options.uid) {
        const uid_t daemon = ::geteuid();
        for (const std::string &path : m_options.own) {
            if (auto reachable = makeReachable(path, daemon); !reachable)
                notStarted(reachable.error());
            // Registered first: whatever part was given is taken back, even after a failure.
            m_given.push_back(path);
            const OwnerChangeResult given = changeOwner(path, {daemon, *m_options.uid, *m_options.gid, true});
            if (!given.firstError.empty())
                notStarted("cannot give " + path + " to the run's user: " + given.firstError
                           + " (the daemon needs root or CAP_CHOWN)");
            if (given.hardLinked > 0)
                warn("left " + std::to_string(given.hardLinked) + " file(s) with several hard links in " + path
                     + " to the daemon's user: another name of such a file may lie outside the tree");
            if (given.otherFileSystem > 0)
                warn("did not enter " + std::to_string(given.otherFileSystem) + " mount point(s) inside " + path);
        }
    }
    return true;
}

bool Supervisor::startProgram()
{
    int output[2];
    int failures[2];
    if (::pipe2(output, O_CLOEXEC) != 0 || ::pipe2(failures, O_CLOEXEC) != 0)
        notStarted(describeError("pipe", errno));
    m_program = ::fork();
    if (m_program < 0)
        notStarted(describeError("fork", errno));
    if (m_program == 0) {
        ::close(output[0]);
        ::close(failures[0]);
        runProgram(m_options, m_cgroup, output[1], failures[1], m_self);
    }
    ::close(output[1]);
    ::close(failures[1]);
    m_output = output[0];
    ChildFailure failure;
    ssize_t got;
    do {
        got = ::read(failures[0], &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    ::close(failures[0]);
    if (got == ssize_t(sizeof failure)) {
        // It never ran: collect it, then report why.
        int status = 0;
        while (::waitpid(m_program, &status, 0) < 0 && errno == EINTR) {
        }
        m_program = 0;
        std::string why = describeStep(failure.step);
        if (failure.step == ChildFailure::Exec)
            why += " '" + m_options.command.front() + "'";
        notStarted(describeError(why, failure.error));
    }
    report("running " + std::to_string(m_program));
    return true;
}

long monotonicMs()
{
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void Supervisor::daemonGone()
{
    ::close(m_daemon);
    m_daemon = -1;
    warn("the daemon is gone: stopping the run");
    signalRun(SIGTERM);
    m_killAtMs = monotonicMs() + m_options.killGraceMs;
}

void Supervisor::superviseUntilTheProgramEnds()
{
    while (!m_ended) {
        // Unused entries have fd -1, which poll() skips.
        pollfd fds[3]{{m_signals, POLLIN, 0}, {m_output, POLLIN, 0}, {m_daemon, POLLIN, 0}};
        int timeout = -1;
        if (m_killAtMs >= 0) {
            const long left = m_killAtMs - monotonicMs();
            if (left <= 0) {
                signalRun(SIGKILL);
                m_killAtMs = -1;
                continue;
            }
            timeout = int(left);
        }
        if (::poll(fds, 3, timeout) < 0 && errno != EINTR)
            break;
        if (m_daemon >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            char buffer[64];
            const ssize_t got = ::read(m_daemon, buffer, sizeof buffer);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
                daemonGone();
        }
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            while (::read(m_signals, &info, sizeof info) == ssize_t(sizeof info)) {
                switch (info.ssi_signo) {
                case SIGCHLD:
                    reapChildren();
                    break;
                case SIGUSR1:
                    // The daemon's grace is over: everything of the run goes now.
                    signalRun(SIGKILL);
                    break;
                default:
                    // A stop (the deadline, a cancel, a shutdown): every process of the run
                    // gets it, whichever session or group it moved to.
                    signalRun(int(info.ssi_signo));
                    break;
                }
            }
        }
        if (m_output >= 0 && (fds[1].revents & (POLLIN | POLLHUP)))
            readOutput(false);
    }
}

void Supervisor::readOutput(bool wait)
{
    char buffer[65536];
    // Draining ends at end-of-file (every writer is gone) or after DrainMs in all: a process
    // outside the run that got hold of the pipe must not keep the run from ending.
    const long start = monotonicMs();
    for (;;) {
        if (wait) {
            const long elapsed = monotonicMs() - start;
            pollfd fd{m_output, POLLIN, 0};
            if (elapsed >= DrainMs || ::poll(&fd, 1, int(DrainMs - elapsed)) <= 0)
                return;
        }
        const ssize_t got = ::read(m_output, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0 || errno != EAGAIN) {
                ::close(m_output);
                m_output = -1;
            }
            return;
        }
        m_log.append(std::string_view(buffer, std::size_t(got)));
        if (!wait)
            return; // back to the loop, so that signals are never starved by output
    }
}

void Supervisor::reapChildren()
{
    // As the child subreaper, orphans of the run become children of this process: collect them.
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m_program) {
            m_status = status;
            m_ended = true;
        }
    }
}

std::set<pid_t> Supervisor::processesOfRun() const
{
    std::set<pid_t> out;
    if (m_cgroup.isValid()) {
        for (const pid_t pid : m_cgroup.processes())
            out.insert(pid);
    }
    // Descendants too: without a cgroup they are the run; with one, they catch a process that
    // left it (it could only do so as the daemon's own user).
    std::vector<std::pair<pid_t, pid_t>> parents; // (pid, parent)
    for (const pid_t pid : allProcesses()) {
        if (const auto stat = readProcessStat(pid))
            parents.emplace_back(pid, stat->parent);
    }
    std::vector<pid_t> frontier{m_self};
    std::set<pid_t> seen{m_self};
    while (!frontier.empty()) {
        const pid_t parent = frontier.back();
        frontier.pop_back();
        for (const auto &[pid, itsParent] : parents) {
            if (itsParent == parent && seen.insert(pid).second) {
                out.insert(pid);
                frontier.push_back(pid);
            }
        }
    }
    out.erase(m_self);
    return out;
}

bool Supervisor::anythingLeft() const
{
    if (m_cgroup.isValid() && m_cgroup.populated())
        return true;
    for (const pid_t pid : processesOfRun()) {
        const auto stat = readProcessStat(pid);
        if (stat && stat->state != 'Z' && stat->state != 'X')
            return true;
    }
    return false;
}

void Supervisor::signalRun(int signal)
{
    if (signal == SIGKILL && m_cgroup.isValid())
        m_cgroup.killAll();
    for (const pid_t pid : processesOfRun())
        ::kill(pid, signal);
}

void Supervisor::endRun()
{
    // The program has ended: whatever it left, in any session or group, is killed now.
    for (int waited = 0; waited < SweepMs; waited += 10) {
        signalRun(SIGKILL);
        reapChildren();
        if (!anythingLeft())
            break;
        pause(10);
        reapChildren();
        if (waited + 10 >= SweepMs)
            warn("some processes of the run survived SIGKILL for " + std::to_string(SweepMs / 1000)
                 + " s (uninterruptible); giving up on them");
    }
    reapChildren();
    if (m_output >= 0)
        readOutput(true);
    if (m_cgroup.isValid()) {
        for (const std::string &event : m_cgroup.limitEvents()) {
            m_log.append("[sluice] " + event + "\n");
            warn(event);
        }
        bool removed = false;
        for (int attempt = 0; attempt < 100 && !(removed = m_cgroup.remove()); ++attempt)
            pause(10);
        if (!removed)
            warn("cannot remove the run's cgroup " + m_cgroup.path() + ": it is still in use");
    }
    giveBack();
    const int status = WIFEXITED(m_status) ? WEXITSTATUS(m_status) : 128 + WTERMSIG(m_status);
    m_log.close();
    recordStatus(status);
}

void Supervisor::giveBack()
{
    for (const std::string &path : m_given) {
        const OwnerChangeResult taken = changeOwner(path, {*m_options.uid, ::geteuid(), ::getegid(), false});
        if (!taken.firstError.empty())
            warn("cannot take " + path + " back from the run's user: " + taken.firstError);
    }
    m_given.clear();
}

void Supervisor::recordStatus(int status)
{
    if (m_options.status.empty())
        return;
    // Written beside, then renamed: the file is either absent or complete.
    const std::string temporary = m_options.status + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0 || !writeAll(fd, std::to_string(status) + "\n") || ::close(fd) != 0
        || ::rename(temporary.c_str(), m_options.status.c_str()) != 0)
        warn(describeError("cannot record the exit status in " + m_options.status, errno));
}

void Supervisor::endLikeTheProgram()
{
    if (WIFEXITED(m_status))
        ::_exit(WEXITSTATUS(m_status));
    // Killed by a signal: so is the supervisor, without a core dump of its own.
    const int signal = WTERMSIG(m_status);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const rlimit noCore{0, 0};
    ::setrlimit(RLIMIT_CORE, &noCore);
    ::signal(signal, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal);
    ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
    ::raise(signal);
    ::_exit(128 + signal);
}

void Supervisor::notStarted(const std::string &why)
{
    report("error " + why);
    if (m_logOpen)
        m_log.append("[sluice] the program was not started: " + why + "\n");
    if (m_program > 0) {
        // Not reached with a program running, but never leave one behind.
        ::kill(m_program, SIGKILL);
        m_status = 0;
    }
    if (m_cgroup.isValid())
        m_cgroup.remove();
    if (!m_given.empty())
        giveBack();
    m_log.close();
    recordStatus(NotStarted);
    ::_exit(NotStarted);
}

} // namespace
} // namespace Sluice::Supervise

int main(int argc, char **argv)
{
    using namespace Sluice::Supervise;
    // First of all: nothing the daemon had open (a database, a socket, a descriptor it
    // inherited itself) stays open here or reaches the program.
    closeDescriptorsFrom(3);
    // A session and process group of its own, which the program joins: the daemon can tell
    // the run from itself, and a signal to the group reaches both.
    ::setsid();
    ::signal(SIGPIPE, SIG_IGN); // the daemon may go away; its pipes then just fail
    const sigset_t handled = handledSignals();
    ::sigprocmask(SIG_BLOCK, &handled, nullptr);

    auto options = parseOptions(argc, argv);
    if (!options) {
        report("error " + options.error());
        return NotStarted;
    }
    Supervisor supervisor(std::move(*options));
    return supervisor.run();
}
