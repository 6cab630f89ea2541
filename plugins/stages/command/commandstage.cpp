// SPDX-License-Identifier: Apache-2.0
#include "commandstage.h"

#include <sluice/services.h>

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QHash>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QSysInfo>
#include <QTimer>

namespace Sluice {
namespace Stages {

namespace {

using namespace std::chrono_literals;

constexpr QLatin1String Owner("command");

// The summary is one line for people and the audit: a few last lines of output, bounded.
constexpr int TailLines = 5;
constexpr int TailChars = 400;

const QStringList &fixedVariableNames()
{
    static const QStringList names{
        QStringLiteral("SLUICE_TASK_ID"),  QStringLiteral("SLUICE_PROJECT"),   QStringLiteral("SLUICE_STAGE"),
        QStringLiteral("SLUICE_BRANCH"),   QStringLiteral("SLUICE_WORKTREE"),  QStringLiteral("SLUICE_ARTIFACTS"),
        QStringLiteral("SLUICE_TASK_FILE"), QStringLiteral("SLUICE_ATTEMPT")};
    return names;
}

Result<QString> nonEmptyString(const QVariantMap &settings, const QString &key)
{
    const QVariant value = settings.value(key);
    if (value.userType() != QMetaType::QString || value.toString().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("command setting '%1' is missing or empty").arg(key));
    return value.toString().trimmed();
}

// The note a cut log gets in the summary: the log itself says so on its first line.
QString cutNote(const QString &logPath)
{
    const auto cut = Processes::logCutBytes(logPath);
    return cut ? QStringLiteral("; log cut: the first %1 bytes of output were dropped (log_limit)").arg(*cut) : QString();
}

QString withTail(QString summary, const QString &logPath)
{
    summary += cutNote(logPath);
    const QStringList tail = Processes::tailOfFile(logPath, TailLines, TailChars);
    if (!tail.isEmpty())
        summary += QStringLiteral("; last output: ") + tail.join(QStringLiteral(" | "));
    return summary;
}

// With once: true, where the command's start is recorded: one key per task, job and head, so
// a retry or a restarted host's re-run of the same job for the same commit finds it.
QString initiatedMarkerKey(const StageRequest &request)
{
    return QStringLiteral("initiated/task-%1/job-%2/head-%3")
        .arg(request.task.id)
        .arg(request.job)
        .arg(request.task.headSha.isEmpty() ? QStringLiteral("unknown") : request.task.headSha);
}

// How often a re-run looks whether a command started by an earlier run has ended: it is not
// our child (or no longer watched by a SupervisedProcess), so nothing else would tell.
constexpr int WatchIntervalMs = 500;

// The initiated marker: written before the command starts, completed with its pid once it
// exists and with its exit status once known.
struct InitiatedMarker {
    QString node;
    qint64 pid = 0;
    quint64 startTicks = 0;
    QString statusFile;
    QString output;
    QString startedAt;
    std::optional<int> exitStatus; // set once the outcome is final (or recorded)

    QByteArray toJson() const
    {
        QJsonObject o{{QStringLiteral("state"), exitStatus ? QStringLiteral("finished") : QStringLiteral("initiated")},
                      {QStringLiteral("node"), node},
                      {QStringLiteral("pid"), pid},
                      {QStringLiteral("start_ticks"), QString::number(startTicks)},
                      {QStringLiteral("status_file"), statusFile},
                      {QStringLiteral("output"), output},
                      {QStringLiteral("started_at"), startedAt}};
        if (exitStatus)
            o.insert(QStringLiteral("exit_status"), *exitStatus);
        return QJsonDocument(o).toJson(QJsonDocument::Compact);
    }

    static std::optional<InitiatedMarker> fromJson(const QByteArray &json)
    {
        const QJsonDocument doc = QJsonDocument::fromJson(json);
        if (!doc.isObject())
            return std::nullopt;
        const QJsonObject o = doc.object();
        InitiatedMarker m;
        m.node = o.value(QStringLiteral("node")).toString();
        m.pid = qint64(o.value(QStringLiteral("pid")).toDouble());
        m.startTicks = o.value(QStringLiteral("start_ticks")).toString().toULongLong();
        m.statusFile = o.value(QStringLiteral("status_file")).toString();
        m.output = o.value(QStringLiteral("output")).toString();
        m.startedAt = o.value(QStringLiteral("started_at")).toString();
        const QString state = o.value(QStringLiteral("state")).toString();
        if (state == QLatin1String("finished")) {
            const QJsonValue status = o.value(QStringLiteral("exit_status"));
            if (!status.isDouble())
                return std::nullopt;
            m.exitStatus = status.toInt();
        } else if (state != QLatin1String("initiated")) {
            return std::nullopt;
        }
        return m;
    }
};

class CommandRun final : public StageRun
{
public:
    CommandRun(CommandRule rule, StageRequest request, QString project, QString instance,
               const QLoggingCategory &logging, StateStore *state)
        : m_rule(std::move(rule))
        , m_request(std::move(request))
        , m_project(std::move(project))
        , m_instance(std::move(instance))
        , m_logging(logging)
        , m_state(state)
    {
        m_watch.setInterval(WatchIntervalMs);
        connect(&m_watch, &QTimer::timeout, this, [this] { watchEarlierRun(); });
    }

protected:
    void doStart() override;
    void doCancel() override;

private:
    const QLoggingCategory &logging() const { return m_logging; }
    void finishFailed(const QString &summary);
    // Logs @p outcome (completed: info, anything else: warning) and finishes with it.
    void conclude(const StageOutcome &outcome);
    void onEnded(const Processes::ProcessEnding &ending);

    // once: true
    void resumeFromMarker(const QByteArray &json);
    void watchEarlierRun();
    bool earlierRunIsAlive() const;
    void concludeOnce(const Processes::ProcessEnding &ending);
    void finalise(std::optional<int> status, bool recordedEarlier, const QString &context);
    void finishUnknown(const QString &why);
    QString markerLabel() const;

    CommandRule m_rule;
    StageRequest m_request;
    QString m_project;
    QString m_instance;
    const QLoggingCategory &m_logging;
    QString m_programName;
    QString m_output;
    std::unique_ptr<Processes::SupervisedProcess> m_process;
    StateStore *m_state = nullptr;
    QString m_markerKey;
    InitiatedMarker m_marker;
    QTimer m_watch;
};

void CommandRun::conclude(const StageOutcome &outcome)
{
    if (outcome.status == StageOutcome::Status::Completed)
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "completed:" << outcome.summary;
    else
        qCWarning(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                       << "failed:" << outcome.summary;
    finishWith(outcome);
}

void CommandRun::finishFailed(const QString &summary)
{
    StageOutcome outcome;
    outcome.status = StageOutcome::Status::Failed;
    outcome.summary = summary;
    outcome.logPath = m_output;
    conclude(outcome);
}

void CommandRun::doStart()
{
    m_programName = QFileInfo(m_rule.command.value(0)).fileName();
    if (m_rule.once) {
        // The marker decides before anything else: a command initiated before is never run
        // again for this task, job and head.
        if (!m_state)
            return finishFailed(QStringLiteral("'once' needs the host's state store; the command was not run"));
        m_markerKey = initiatedMarkerKey(m_request);
        const auto existing = m_state->value(m_markerKey);
        if (!existing)
            return finishFailed(QStringLiteral("cannot read the initiated marker '%1': %2; the command was not run")
                                    .arg(m_markerKey, existing.error().message));
        if (existing->has_value())
            return resumeFromMarker(**existing);
    }

    const QHash<QString, QString> values{
        {QStringLiteral("worktree"), m_request.worktree},
        {QStringLiteral("artifacts"), m_request.artifactsDir},
        {QStringLiteral("task"), QString::number(m_request.task.id)},
        {QStringLiteral("stage"), m_request.stage},
        {QStringLiteral("branch"), m_request.task.branch},
        {QStringLiteral("task_file"), m_request.taskFile},
        {QStringLiteral("attempt"), QString::number(m_request.attempt)},
        {QStringLiteral("job"), QString::number(m_request.job)},
        {QStringLiteral("project"), m_project},
    };
    auto expand = [&](const QString &text) { return Processes::expandPlaceholders(text, values); };

    QString workingDirectory = expand(m_rule.workingDirectory);
    if (workingDirectory.isEmpty())
        return finishFailed(QStringLiteral("cannot start: the working directory '%1' is empty (the request has no worktree)")
                                .arg(m_rule.workingDirectory));
    if (QDir::isRelativePath(workingDirectory)) {
        if (m_request.worktree.isEmpty())
            return finishFailed(QStringLiteral("cannot start: the working directory '%1' is relative and the request has no worktree")
                                    .arg(workingDirectory));
        workingDirectory = QDir(m_request.worktree).filePath(workingDirectory);
    }
    workingDirectory = QDir::cleanPath(workingDirectory);
    if (!QFileInfo(workingDirectory).isDir())
        return finishFailed(QStringLiteral("cannot start: the working directory '%1' does not exist").arg(workingDirectory));

    QString output = expand(m_rule.output);
    if (QDir::isRelativePath(output)) {
        if (m_request.artifactsDir.isEmpty())
            return finishFailed(QStringLiteral("cannot start: the output file '%1' is relative and the request has no artifacts directory")
                                    .arg(output));
        output = QDir(m_request.artifactsDir).filePath(output);
    }
    output = QDir::cleanPath(output);
    if (QFileInfo(output).isDir())
        return finishFailed(QStringLiteral("cannot start: the output file '%1' is a directory").arg(output));
    if (!QDir().mkpath(QFileInfo(output).absolutePath()))
        return finishFailed(QStringLiteral("cannot start: cannot create the directory of the output file '%1'").arg(output));
    m_output = output;

    Processes::EnvironmentList extra;
    for (const auto &[name, value] : std::as_const(m_rule.environment))
        extra.append({name, expand(value)});
    const Processes::EnvironmentList fixed{
        {QStringLiteral("SLUICE_TASK_ID"), values.value(QStringLiteral("task"))},
        {QStringLiteral("SLUICE_PROJECT"), m_project},
        {QStringLiteral("SLUICE_STAGE"), m_request.stage},
        {QStringLiteral("SLUICE_BRANCH"), m_request.task.branch},
        {QStringLiteral("SLUICE_WORKTREE"), m_request.worktree},
        {QStringLiteral("SLUICE_ARTIFACTS"), m_request.artifactsDir},
        {QStringLiteral("SLUICE_TASK_FILE"), m_request.taskFile},
        {QStringLiteral("SLUICE_ATTEMPT"), values.value(QStringLiteral("attempt"))},
        {QStringLiteral("SLUICE_JOB_ID"), values.value(QStringLiteral("job"))},
    };
    const QProcessEnvironment environment = Processes::childEnvironment(m_rule.inheritEnvironment, extra, fixed);

    QStringList arguments;
    for (const QString &argument : std::as_const(m_rule.command))
        arguments.append(expand(argument));
    const QString program = arguments.takeFirst();
    m_programName = QFileInfo(program).fileName();
    const auto resolved = Processes::findProgram(program, environment);
    if (!resolved)
        return finishFailed(QStringLiteral("cannot start: '%1' is not found in the command's PATH (%2)")
                                .arg(program, environment.value(QStringLiteral("PATH"), QStringLiteral("unset"))));

    Processes::ProcessSpec spec;
    spec.program = *resolved;
    spec.arguments = arguments;
    spec.workingDirectory = workingDirectory;
    spec.environment = environment;
    spec.outputFile = output;
    spec.logLimit = m_rule.logLimit;
    spec.timeout = m_rule.timeout;
    spec.killGrace = m_rule.killGrace;
    spec.detachOnDestroy = false;
    spec.limits = m_rule.limits;
    spec.settingsOwner = Owner;
    if (m_rule.once) {
        // A relative program is taken from the working directory: check (and pass) that file.
        const QString executable = QDir::isRelativePath(*resolved) ? QDir(workingDirectory).filePath(*resolved) : *resolved;
        if (!QFileInfo(executable).isExecutable())
            return finishFailed(QStringLiteral("cannot start '%1': it does not exist or is not executable").arg(executable));
        m_marker.node = QSysInfo::machineHostName();
        m_marker.statusFile = Processes::exitStatusFile(output);
        m_marker.output = output;
        m_marker.startedAt = QDateTime::currentDateTimeUtc().toString(Qt::ISODate);
        if (QFileInfo::exists(m_marker.statusFile) && !QFile::remove(m_marker.statusFile))
            return finishFailed(QStringLiteral("cannot remove the stale exit-status file '%1'; the command was not run")
                                    .arg(m_marker.statusFile));
        // Written before the start: if we die from here on, a re-run never starts it again.
        if (auto written = m_state->setValue(m_markerKey, m_marker.toJson()); !written)
            return finishFailed(QStringLiteral("cannot write the initiated marker '%1': %2; the command was not run")
                                    .arg(m_markerKey, written.error().message));
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "initiated marker written:" << m_markerKey;
        // The supervisor records the exit status there when the command ends.
        spec.program = executable;
        spec.statusFile = m_marker.statusFile;
        // A deploy under way is not killed because the host stops; its status is recorded.
        spec.detachOnDestroy = true;
    }
    m_process = std::make_unique<Processes::SupervisedProcess>(std::move(spec));
    connect(m_process.get(), &Processes::SupervisedProcess::warning, this, [this](const QString &message) {
        qCWarning(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage << message;
    });
    connect(m_process.get(), &Processes::SupervisedProcess::started, this, [this](qint64 pid, quint64 startTicks) {
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "started" << m_programName << "pid" << pid << "output" << m_output
                                    << "containment" << m_process->containment();
        if (m_rule.once) {
            m_marker.pid = pid;
            m_marker.startTicks = startTicks;
            if (auto written = m_state->setValue(m_markerKey, m_marker.toJson()); !written)
                qCWarning(logging()).noquote() << m_instance << "task" << m_request.task.id
                                               << "cannot record the pid in the initiated marker:" << written.error().message;
        }
    });
    connect(m_process.get(), &Processes::SupervisedProcess::ended, this, &CommandRun::onEnded);
    m_process->start();
}

void CommandRun::doCancel()
{
    if (m_watch.isActive()) {
        m_watch.stop();
        return finishFailed(QStringLiteral("cancelled while waiting for %1 (pid %2), which an earlier run started; it was "
                                           "left running and a later run finalises from its recorded exit status")
                                .arg(markerLabel())
                                .arg(m_marker.pid));
    }
    if (m_process && m_rule.once) {
        // A deploy under way is not interrupted by the host's own lifecycle (a shutdown, its
        // stage deadline): it is left running, its wrapper records the status, and the next
        // run of this job finalises from it. Only the command's own timeout stops it.
        const qint64 pid = m_process->pid();
        m_process.reset(); // detachOnDestroy: left running, reaped when it ends
        return finishFailed(QStringLiteral("cancelled by the host; %1 (pid %2) was left running so that its exit status "
                                           "is recorded; the next run of this job finalises from it")
                                .arg(markerLabel())
                                .arg(pid));
    }
    if (m_process) {
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "cancelled; stopping" << m_programName;
        m_process->stop();
        return;
    }
    if (!isFinished())
        finishFailed(QStringLiteral("cancelled before the command started"));
}

void CommandRun::onEnded(const Processes::ProcessEnding &ending)
{
    using Processes::ProcessEnding;
    if (m_rule.once)
        return concludeOnce(ending);
    const QString name = QStringLiteral("'%1'").arg(m_programName);
    StageOutcome outcome;
    outcome.status = StageOutcome::Status::Failed;
    outcome.logPath = m_output;
    if (ending.how == ProcessEnding::How::Exited)
        outcome.exitCode = ending.exitCode;

    const QString killedAfterGrace = ending.forced
        ? QStringLiteral("; SIGKILL after the %1 grace").arg(Processes::describeDuration(m_rule.killGrace))
        : QString();
    if (ending.stoppedFor == ProcessEnding::Stop::Deadline) {
        outcome.summary = withTail(QStringLiteral("%1 timed out after %2 (every process of the run terminated%3)")
                                       .arg(name, Processes::describeDuration(m_rule.timeout), killedAfterGrace),
                                   m_output);
    } else if (ending.stoppedFor == ProcessEnding::Stop::Cancel) {
        outcome.summary = QStringLiteral("%1 was cancelled (every process of the run terminated%2)").arg(name, killedAfterGrace)
                          + cutNote(m_output);
    } else if (ending.how == ProcessEnding::How::NotStarted) {
        outcome.summary = QStringLiteral("cannot start %1: %2").arg(name, ending.startError);
    } else if (ending.how == ProcessEnding::How::Signalled) {
        outcome.summary = withTail(QStringLiteral("%1 was killed by %2").arg(name, Processes::describeSignal(ending.signal)),
                                   m_output);
    } else if (ending.exitCode == 0) {
        outcome.status = StageOutcome::Status::Completed;
        outcome.summary = QStringLiteral("%1 exited with code 0").arg(name) + cutNote(m_output);
    } else {
        outcome.summary = withTail(QStringLiteral("%1 exited with code %2").arg(name).arg(ending.exitCode), m_output);
    }

    conclude(outcome);
}

QString CommandRun::markerLabel() const
{
    return QStringLiteral("'%1'").arg(m_programName);
}

void CommandRun::resumeFromMarker(const QByteArray &json)
{
    const auto marker = InitiatedMarker::fromJson(json);
    if (!marker)
        return finishUnknown(QStringLiteral("the initiated marker '%1' is unreadable").arg(m_markerKey));
    m_marker = *marker;
    m_output = m_marker.output;
    qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                << "found the initiated marker" << m_markerKey << "- not running" << m_programName << "again";
    if (m_marker.exitStatus)
        return finalise(m_marker.exitStatus, true, QString());
    if (const auto status = Processes::recordedExitStatus(m_marker.statusFile))
        return finalise(status, true, QString());
    if (earlierRunIsAlive()) {
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "waiting for" << m_programName << "pid" << m_marker.pid << "started by an earlier run";
        return m_watch.start();
    }
    watchEarlierRun();
}

bool CommandRun::earlierRunIsAlive() const
{
    if (m_marker.pid <= 1 || m_marker.startTicks == 0 || m_marker.node != QSysInfo::machineHostName())
        return false;
    const auto stat = Processes::readProcStat(m_marker.pid);
    return stat && stat->startTicks == m_marker.startTicks && stat->state != 'Z' && stat->state != 'X';
}

void CommandRun::watchEarlierRun()
{
    if (isFinished() || earlierRunIsAlive())
        return;
    m_watch.stop();
    // The wrapper writes the status before it ends: once the process is gone, the file is final.
    if (const auto status = Processes::recordedExitStatus(m_marker.statusFile))
        return finalise(status, true, QString());
    finishUnknown(m_marker.pid > 0
                      ? QStringLiteral("pid %1 on %2 is gone and no exit status was recorded in '%3'")
                            .arg(m_marker.pid)
                            .arg(m_marker.node, m_marker.statusFile)
                      : QStringLiteral("no exit status was recorded in '%1'").arg(m_marker.statusFile));
}

void CommandRun::concludeOnce(const Processes::ProcessEnding &ending)
{
    using Processes::ProcessEnding;
    if (ending.how == ProcessEnding::How::NotStarted) {
        // Nothing ran: the marker goes, so that a retry may start it.
        if (auto removed = m_state->remove(m_markerKey); !removed)
            qCWarning(logging()).noquote() << m_instance << "cannot remove the initiated marker" << m_markerKey << ":"
                                           << removed.error().message;
        return finishFailed(QStringLiteral("cannot start %1: %2").arg(markerLabel(), ending.startError));
    }
    QString context;
    if (ending.stoppedFor == ProcessEnding::Stop::Deadline)
        context = QStringLiteral("timed out after %1 (every process of the run terminated)").arg(Processes::describeDuration(m_rule.timeout));
    else if (ending.stoppedFor == ProcessEnding::Stop::Cancel)
        context = QStringLiteral("was cancelled (every process of the run terminated)");
    // The wrapper ends as the command ended; when it was stopped or killed itself, only its
    // file can tell.
    std::optional<int> status = Processes::recordedExitStatus(m_marker.statusFile);
    if (!status && ending.how == ProcessEnding::How::Exited && ending.stoppedFor == ProcessEnding::Stop::None)
        status = ending.exitCode;
    finalise(status, false, context);
}

void CommandRun::finalise(std::optional<int> status, bool recordedEarlier, const QString &context)
{
    if (!status)
        return finishUnknown(context.isEmpty() ? QStringLiteral("no exit status was recorded in '%1'").arg(m_marker.statusFile)
                                               : context + QStringLiteral(" and no exit status was recorded in '%1'").arg(m_marker.statusFile));
    const int code = *status;
    const QString name = markerLabel();
    const QString origin = recordedEarlier ? QStringLiteral(" (recorded by an earlier run; not run again)") : QString();
    const QString prefix = context.isEmpty() ? name : name + QLatin1Char(' ') + context + QStringLiteral(";");
    StageOutcome outcome;
    outcome.status = StageOutcome::Status::Failed;
    outcome.logPath = m_output;
    const bool retry = code > 0 && m_rule.retryExitCodes.contains(code);
    if (retry) {
        // The command declared that it changed nothing: the next attempt may run it again.
        if (auto removed = m_state->remove(m_markerKey); !removed)
            outcome.summary = QStringLiteral("%1 exited with code %2 (temporary failure), but the initiated marker could not be "
                                             "cleared (%3): it is not run again").arg(prefix).arg(code).arg(removed.error().message);
        else
            outcome.summary = withTail(QStringLiteral("%1 exited with code %2%3 (temporary failure: the next attempt runs it again)")
                                           .arg(prefix).arg(code).arg(origin),
                                       m_output);
    } else {
        if (!m_marker.exitStatus) {
            m_marker.exitStatus = code;
            if (auto written = m_state->setValue(m_markerKey, m_marker.toJson()); !written)
                qCWarning(logging()).noquote() << m_instance << "cannot record the exit status in the initiated marker"
                                               << m_markerKey << ":" << written.error().message;
        }
        if (code > 128 && code < 160) {
            outcome.summary = withTail(QStringLiteral("%1 was killed by %2%3").arg(prefix, Processes::describeSignal(code - 128), origin),
                                       m_output);
        } else if (code == 0 && context.isEmpty()) {
            outcome.status = StageOutcome::Status::Completed;
            outcome.exitCode = 0;
            outcome.summary = QStringLiteral("%1 exited with code 0%2").arg(name, origin) + cutNote(m_output);
        } else {
            outcome.exitCode = code;
            outcome.summary = withTail(QStringLiteral("%1 exited with code %2%3; not run again for this job and head")
                                           .arg(prefix).arg(code).arg(origin),
                                       m_output);
        }
    }
    conclude(outcome);
}

void CommandRun::finishUnknown(const QString &why)
{
    // Never guessed and never run again: a person checks what happened.
    finishFailed(QStringLiteral("deploy outcome unknown, check manually: %1 was started for task %2, job %3, head %4 "
                                "(marker '%5'), %6; it is not run again")
                     .arg(markerLabel())
                     .arg(m_request.task.id)
                     .arg(m_request.job)
                     .arg(m_request.task.headSha.isEmpty() ? QStringLiteral("unknown") : m_request.task.headSha,
                          m_markerKey, why));
}

} // namespace

Result<CommandRule> CommandRule::fromSettings(const QVariantMap &settings)
{
    CommandRule rule;
    auto command = Processes::stringListSetting(settings, QStringLiteral("command"), Owner);
    if (!command)
        return std::unexpected(command.error());
    if (command->isEmpty() || command->first().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("command setting 'command' needs a program as its first item"));
    rule.command = *command;

    auto timeout = Processes::durationSetting(settings, QStringLiteral("timeout"), Owner, 1s, 24h * 7);
    if (!timeout)
        return std::unexpected(timeout.error());
    rule.timeout = *timeout;
    auto killGrace = Processes::durationSetting(settings, QStringLiteral("kill_grace"), Owner, 0ms, 1h);
    if (!killGrace)
        return std::unexpected(killGrace.error());
    rule.killGrace = *killGrace;

    auto workingDirectory = nonEmptyString(settings, QStringLiteral("working_directory"));
    if (!workingDirectory)
        return std::unexpected(workingDirectory.error());
    rule.workingDirectory = *workingDirectory;
    auto output = nonEmptyString(settings, QStringLiteral("output"));
    if (!output)
        return std::unexpected(output.error());
    rule.output = *output;

    auto environment = Processes::environmentSettings(settings, Owner, fixedVariableNames());
    if (!environment)
        return std::unexpected(environment.error());
    rule.environment = environment->environment;
    rule.inheritEnvironment = environment->inherit;
    auto limits = Processes::limitsSetting(settings, Owner);
    if (!limits)
        return std::unexpected(limits.error());
    rule.limits = *limits;
    auto logLimit = Processes::sizeSetting(settings, QStringLiteral("log_limit"), Owner, qint64(64) << 10, qint64(1) << 40);
    if (!logLimit)
        return std::unexpected(logLimit.error());
    rule.logLimit = *logLimit;

    const QVariant once = settings.value(QStringLiteral("once"), false);
    if (once.userType() != QMetaType::Bool)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("command setting 'once' must be a boolean"));
    rule.once = once.toBool();
    const QVariantList retry = settings.value(QStringLiteral("retry_exit_codes"), QVariantList{75}).toList();
    for (const QVariant &code : retry) {
        bool ok = false;
        const qlonglong value = code.toLongLong(&ok);
        if (!ok || value < 1 || value > 125)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("command setting 'retry_exit_codes' holds '%1'; give exit codes from 1 to 125")
                            .arg(code.toString()));
        rule.retryExitCodes.append(int(value));
    }
    return rule;
}

CommandStage::CommandStage(const PluginContext &context, CommandRule rule, QObject *parent)
    : Stage(context, parent)
    , m_rule(std::move(rule))
{
}

CommandStage::~CommandStage() = default;

Result<void> CommandStage::initialize()
{
    Processes::confineAmbientCapabilities();
    if (m_rule.once && !context().state())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("command setting 'once' needs the host's state store to keep the initiated marker"));
    return {};
}

std::unique_ptr<StageRun> CommandStage::run(const StageRequest &request)
{
    const QString project = request.task.projectId.isEmpty() ? context().project().id : request.task.projectId;
    return std::make_unique<CommandRun>(m_rule, request, project, context().instanceName(), context().logging(),
                                        m_rule.once ? context().state() : nullptr);
}

Result<std::unique_ptr<PluginInstance>> CommandStageFactory::create(const PluginContext &context)
{
    auto rule = CommandRule::fromSettings(context.settings());
    if (!rule)
        return std::unexpected(rule.error());
    return std::make_unique<CommandStage>(context, std::move(*rule));
}

} // namespace Stages
} // namespace Sluice
