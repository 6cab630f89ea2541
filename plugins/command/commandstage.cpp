// SPDX-License-Identifier: Apache-2.0
#include "commandstage.h"

#include <QDir>
#include <QFileInfo>
#include <QHash>
#include <QLoggingCategory>

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

QString withTail(QString summary, const QString &logPath)
{
    const QStringList tail = Processes::tailOfFile(logPath, TailLines, TailChars);
    if (!tail.isEmpty())
        summary += QStringLiteral("; last output: ") + tail.join(QStringLiteral(" | "));
    return summary;
}

class CommandRun final : public StageRun
{
public:
    CommandRun(CommandRule rule, StageRequest request, QString project, QString instance,
               const QLoggingCategory &logging)
        : m_rule(std::move(rule))
        , m_request(std::move(request))
        , m_project(std::move(project))
        , m_instance(std::move(instance))
        , m_logging(logging)
    {
    }

protected:
    void doStart() override;
    void doCancel() override;

private:
    const QLoggingCategory &logging() const { return m_logging; }
    void finishFailed(const QString &summary);
    void onEnded(const Processes::ProcessEnding &ending);

    CommandRule m_rule;
    StageRequest m_request;
    QString m_project;
    QString m_instance;
    const QLoggingCategory &m_logging;
    QString m_programName;
    QString m_output;
    std::unique_ptr<Processes::SupervisedProcess> m_process;
};

void CommandRun::finishFailed(const QString &summary)
{
    qCWarning(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                   << "failed:" << summary;
    StageOutcome outcome;
    outcome.status = StageOutcome::Status::Failed;
    outcome.summary = summary;
    outcome.logPath = m_output;
    finishWith(outcome);
}

void CommandRun::doStart()
{
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
    spec.timeout = m_rule.timeout;
    spec.killGrace = m_rule.killGrace;
    spec.detachOnDestroy = false;
    m_process = std::make_unique<Processes::SupervisedProcess>(std::move(spec));
    connect(m_process.get(), &Processes::SupervisedProcess::started, this, [this](qint64 pid, quint64) {
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "started" << m_programName << "pid" << pid << "output" << m_output;
    });
    connect(m_process.get(), &Processes::SupervisedProcess::ended, this, &CommandRun::onEnded);
    m_process->start();
}

void CommandRun::doCancel()
{
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
        outcome.summary = withTail(QStringLiteral("%1 timed out after %2 (process group terminated%3)")
                                       .arg(name, Processes::describeDuration(m_rule.timeout), killedAfterGrace),
                                   m_output);
    } else if (ending.stoppedFor == ProcessEnding::Stop::Cancel) {
        outcome.summary = QStringLiteral("%1 was cancelled (process group terminated%2)").arg(name, killedAfterGrace);
    } else if (ending.how == ProcessEnding::How::NotStarted) {
        outcome.summary = QStringLiteral("cannot start %1: %2").arg(name, ending.startError);
    } else if (ending.how == ProcessEnding::How::Signalled) {
        outcome.summary = withTail(QStringLiteral("%1 was killed by %2").arg(name, Processes::describeSignal(ending.signal)),
                                   m_output);
    } else if (ending.exitCode == 0) {
        outcome.status = StageOutcome::Status::Completed;
        outcome.summary = QStringLiteral("%1 exited with code 0").arg(name);
    } else {
        outcome.summary = withTail(QStringLiteral("%1 exited with code %2").arg(name).arg(ending.exitCode), m_output);
    }

    if (outcome.status == StageOutcome::Status::Completed)
        qCInfo(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                    << "completed:" << outcome.summary;
    else
        qCWarning(logging()).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                       << "failed:" << outcome.summary;
    finishWith(outcome);
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
    return rule;
}

CommandStage::CommandStage(const PluginContext &context, CommandRule rule, QObject *parent)
    : Stage(context, parent)
    , m_rule(std::move(rule))
{
}

CommandStage::~CommandStage() = default;

std::unique_ptr<StageRun> CommandStage::run(const StageRequest &request)
{
    const QString project = request.task.projectId.isEmpty() ? context().project().id : request.task.projectId;
    return std::make_unique<CommandRun>(m_rule, request, project, context().instanceName(), context().logging());
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
