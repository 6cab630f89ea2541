// SPDX-License-Identifier: Apache-2.0
#include "agentstage.h"

#include <QDir>
#include <QFile>
#include <QLoggingCategory>
#include <QRegularExpression>

#include <optional>

namespace Sluice {
namespace Stages {

namespace {

using namespace std::chrono_literals;

// The role becomes part of a file name and of the agent's arguments.
const QRegularExpression &rolePattern()
{
    static const QRegularExpression re(QStringLiteral("^[A-Za-z0-9][A-Za-z0-9._-]*$"));
    return re;
}

QString describeDuration(std::chrono::milliseconds duration)
{
    const qint64 ms = duration.count();
    if (ms > 0 && ms % 3600000 == 0)
        return QStringLiteral("%1h").arg(ms / 3600000);
    if (ms > 0 && ms % 60000 == 0)
        return QStringLiteral("%1m").arg(ms / 60000);
    if (ms > 0 && ms % 1000 == 0)
        return QStringLiteral("%1s").arg(ms / 1000);
    return QStringLiteral("%1ms").arg(ms);
}

// A launcher that cut the run's log for its size says so on the log's first line, in the form
// "[sluice] output cut: N bytes ..." (the process launcher's log_limit); the summary says it too.
QString logCutNote(const QString &logPath)
{
    QFile log(logPath);
    if (!log.open(QIODevice::ReadOnly))
        return {};
    static const QRegularExpression notice(QStringLiteral("^\\[sluice\\] output cut: (\\d+) bytes"));
    const auto match = notice.match(QString::fromUtf8(log.readLine(512)));
    return match.hasMatch() ? QStringLiteral("; log cut: the first %1 bytes of output were dropped (log_limit)").arg(match.captured(1))
                            : QString();
}

class AgentRun final : public StageRun
{
public:
    AgentRun(std::unique_ptr<AgentLaunch> launch, AgentRequest request, std::optional<QString> problem,
             QString stage, const QLoggingCategory &logging)
        : m_launch(std::move(launch))
        , m_request(std::move(request))
        , m_problem(std::move(problem))
        , m_stage(std::move(stage))
        , m_logging(logging)
    {
    }

protected:
    void doStart() override
    {
        if (m_problem)
            return finishFailed(*m_problem, {});
        if (!m_launch)
            return finishFailed(QStringLiteral("agent '%1': the agent launcher returned no launch").arg(m_request.role), {});
        connect(m_launch.get(), &AgentLaunch::started, this, [this](const AgentProcess &process) {
            qCInfo(m_logging).noquote() << "task" << m_request.task.id << "stage" << m_stage << "agent" << m_request.role
                                        << "runs on" << process.node << "pid" << process.pid << "start ticks"
                                        << process.startTicks << "log" << m_request.logPath;
            Q_EMIT processStarted(process, m_request.logPath);
        });
        connect(m_launch.get(), &PluginJob::finished, this, [this] { onLaunchFinished(); });
        m_launch->start();
    }

    void doCancel() override
    {
        if (m_launch && m_launch->isStarted() && !m_launch->isFinished()) {
            // The launch stops the agent and reports back; that ends this run.
            m_launch->cancel();
            return;
        }
        if (m_launch)
            m_launch->cancel();
        if (!isFinished())
            finishFailed(QStringLiteral("agent '%1': cancelled before it started").arg(m_request.role), {});
    }

private:
    void finishFailed(const QString &reason, std::optional<int> exitCode)
    {
        const QString summary = reason + logCutNote(m_request.logPath);
        qCWarning(m_logging).noquote() << "task" << m_request.task.id << "stage" << m_stage << "failed:" << summary;
        StageOutcome outcome;
        outcome.status = StageOutcome::Status::Failed;
        outcome.exitCode = exitCode;
        outcome.summary = summary;
        outcome.logPath = m_request.logPath;
        finishWith(outcome);
    }

    void onLaunchFinished()
    {
        const QString agent = QStringLiteral("agent '%1'").arg(m_request.role);
        const Result<AgentExit> &result = m_launch->result();
        if (!result)
            return finishFailed(QStringLiteral("%1: %2").arg(agent, result.error().message), {});
        const AgentExit &exit = *result;
        if (exit.timedOut)
            return finishFailed(QStringLiteral("%1 timed out after %2").arg(agent, describeDuration(m_request.timeout)),
                                exit.exitCode);
        if (exit.crashed)
            return finishFailed(QStringLiteral("%1 crashed (ended by a signal)").arg(agent), {});
        if (!exit.exitCode)
            return finishFailed(QStringLiteral("%1 ended with an unknown exit code").arg(agent), {});
        if (*exit.exitCode != 0)
            return finishFailed(QStringLiteral("%1 exited with code %2").arg(agent).arg(*exit.exitCode), exit.exitCode);

        StageOutcome outcome;
        outcome.status = StageOutcome::Status::Completed;
        outcome.exitCode = 0;
        outcome.summary = QStringLiteral("%1 exited with code 0").arg(agent) + logCutNote(m_request.logPath);
        outcome.logPath = m_request.logPath;
        qCInfo(m_logging).noquote() << "task" << m_request.task.id << "stage" << m_stage << "completed:" << outcome.summary
                                    << (exit.logArchive.isEmpty() ? QString() : QStringLiteral("(log archived in %1)").arg(exit.logArchive));
        finishWith(outcome);
    }

    std::unique_ptr<AgentLaunch> m_launch;
    AgentRequest m_request;
    std::optional<QString> m_problem;
    QString m_stage;
    const QLoggingCategory &m_logging;
};

} // namespace

Result<AgentRule> AgentRule::fromSettings(const QVariantMap &settings)
{
    AgentRule rule;
    const QVariant role = settings.value(QStringLiteral("role"));
    if (role.userType() != QMetaType::QString || role.toString().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("agent setting 'role' is required"));
    rule.role = role.toString().trimmed();
    if (!rolePattern().match(rule.role).hasMatch())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("agent setting 'role' is '%1'; use letters, digits, '.', '_' and '-' (e.g. 'developer')")
                        .arg(rule.role));
    bool ok = false;
    const qlonglong ms = settings.value(QStringLiteral("timeout")).toLongLong(&ok);
    if (!ok || ms < 1000)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("agent setting 'timeout' is missing or shorter than 1s"));
    rule.timeout = std::chrono::milliseconds(ms);
    return rule;
}

AgentStage::AgentStage(const PluginContext &context, AgentRule rule, AgentLauncher &launcher, QObject *parent)
    : Stage(context, parent)
    , m_rule(std::move(rule))
    , m_launcher(launcher)
{
}

AgentStage::~AgentStage() = default;

std::unique_ptr<StageRun> AgentStage::run(const StageRequest &request)
{
    AgentRequest agentRequest;
    agentRequest.task = request.task;
    if (agentRequest.task.projectId.isEmpty())
        agentRequest.task.projectId = context().project().id;
    agentRequest.role = m_rule.role;
    agentRequest.worktree = request.worktree;
    agentRequest.taskFile = request.taskFile;
    agentRequest.timeout = m_rule.timeout;

    std::optional<QString> problem;
    std::unique_ptr<AgentLaunch> launch;
    if (request.artifactsDir.isEmpty()) {
        problem = QStringLiteral("agent '%1': the request has no artifacts directory for the agent's log").arg(m_rule.role);
    } else {
        // One log per run: a retry is another attempt, a rollback's re-run another job, and
        // neither overwrites what the earlier run left.
        agentRequest.logPath = QDir(request.artifactsDir)
                                   .filePath(QStringLiteral("agent-%1-job%2-attempt%3.log")
                                                 .arg(m_rule.role).arg(request.job).arg(request.attempt));
        // Created here, not when the host starts the run: the run never reaches back to the
        // launcher, which a project reload may replace in between.
        if (request.adopt) {
            launch = m_launcher.adopt(*request.adopt, agentRequest);
            if (!launch)
                problem = QStringLiteral("agent '%1': pid %2 from before the restart cannot be adopted (it ended, or the pid is another process's now)")
                              .arg(m_rule.role).arg(request.adopt->pid);
        } else {
            launch = m_launcher.launch(agentRequest);
        }
    }
    qCDebug(context().logging()).noquote() << context().instanceName() << "task" << request.task.id << "stage"
                                           << request.stage << "launches agent" << m_rule.role << "through"
                                           << m_launcher.context().instanceName();
    return std::make_unique<AgentRun>(std::move(launch), agentRequest, problem, request.stage, context().logging());
}

Result<std::unique_ptr<PluginInstance>> AgentStageFactory::create(const PluginContext &context)
{
    auto rule = AgentRule::fromSettings(context.settings());
    if (!rule)
        return std::unexpected(rule.error());
    AgentLauncher *launcher = context.agentLauncher();
    if (!launcher)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("the agent stage needs an agent launcher, and project '%1' has none: set the project "
                                   "key 'agent_launcher' to an agent-launcher instance (e.g. one of plugin 'process')")
                        .arg(context.project().id));
    return std::make_unique<AgentStage>(context, std::move(*rule), *launcher);
}

} // namespace Stages
} // namespace Sluice
