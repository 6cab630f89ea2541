// SPDX-License-Identifier: Apache-2.0
#include "approvalstage.h"

#include <QLoggingCategory>
#include <QRegularExpression>

namespace Sluice {
namespace Stages {

namespace {

const QRegularExpression &signalPattern()
{
    static const QRegularExpression re(QStringLiteral("^[A-Za-z0-9][A-Za-z0-9._-]*$"));
    return re;
}

// Finishes as Waiting the moment the host starts it: there is nothing to run.
class ApprovalRun final : public StageRun
{
public:
    explicit ApprovalRun(QString summary)
        : m_summary(std::move(summary))
    {
    }

protected:
    void doStart() override
    {
        StageOutcome outcome;
        outcome.status = StageOutcome::Status::Waiting;
        outcome.summary = m_summary;
        finishWith(outcome);
    }

    void doCancel() override
    {
        if (isFinished())
            return;
        StageOutcome outcome;
        outcome.status = StageOutcome::Status::Failed;
        outcome.summary = QStringLiteral("cancelled before the approval request was made");
        finishWith(outcome);
    }

private:
    QString m_summary;
};

} // namespace

Result<ApprovalRule> ApprovalRule::fromSettings(const QVariantMap &settings)
{
    ApprovalRule rule;
    const QVariant signal = settings.value(QStringLiteral("signal"));
    if (signal.userType() != QMetaType::QString || signal.toString().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("approval setting 'signal' is missing or empty"));
    rule.signal = signal.toString().trimmed();
    if (!signalPattern().match(rule.signal).hasMatch())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("approval setting 'signal' is '%1'; use letters, digits, '.', '_' and '-' "
                                   "(e.g. 'approve' or 'confirm-deploy')").arg(rule.signal));
    const QVariant instructions = settings.value(QStringLiteral("instructions"), QString());
    if (instructions.userType() != QMetaType::QString)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("approval setting 'instructions' must be a string"));
    // One line in the summary, however the YAML wrapped it.
    rule.instructions = instructions.toString().simplified();
    return rule;
}

ApprovalStage::ApprovalStage(const PluginContext &context, ApprovalRule rule, QObject *parent)
    : Stage(context, parent)
    , m_rule(std::move(rule))
{
}

ApprovalStage::~ApprovalStage() = default;

std::unique_ptr<StageRun> ApprovalStage::run(const StageRequest &request)
{
    QString summary = QStringLiteral("waiting for signal '%1'").arg(m_rule.signal);
    if (!m_rule.instructions.isEmpty())
        summary += QStringLiteral(": ") + m_rule.instructions;
    qCInfo(context().logging()).noquote() << context().instanceName() << "task" << request.task.id << "stage"
                                          << request.stage << summary;
    return std::make_unique<ApprovalRun>(summary);
}

QStringList ApprovalStage::acceptedSignals() const
{
    return {m_rule.signal};
}

Result<std::unique_ptr<PluginInstance>> ApprovalStageFactory::create(const PluginContext &context)
{
    auto rule = ApprovalRule::fromSettings(context.settings());
    if (!rule)
        return std::unexpected(rule.error());
    return std::make_unique<ApprovalStage>(context, std::move(*rule));
}

} // namespace Stages
} // namespace Sluice
