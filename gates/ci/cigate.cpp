// SPDX-License-Identifier: Apache-2.0
#include "cigate.h"

#include "statuscheck.h"

#include <QJsonArray>
#include <QPointer>

namespace Sluice::Ci {

namespace {

class CiGateRun final : public GateRun
{
public:
    CiGateRun(QPointer<Forge> forge, RequiredSpec spec, QString sha, QString targetBranch)
        : m_forge(std::move(forge))
        , m_spec(std::move(spec))
        , m_sha(std::move(sha))
        , m_target(std::move(targetBranch))
    {
    }

protected:
    void doStart() override
    {
        if (!m_forge)
            return finishWith(GateVerdict::error(QStringLiteral("the project has no forge connector (repository.forge) to read CI statuses from")));
        if (m_sha.isEmpty())
            return finishWith(GateVerdict::error(QStringLiteral("the task has no head commit to judge")));
        resolveRequired(*m_forge, m_spec, m_sha, m_target, this, [this](Result<RequiredContexts> required) {
            if (!required)
                return finishWith(GateVerdict::error(QStringLiteral("required CI contexts unknown: %1").arg(required.error().message)));
            if (!m_forge)
                return finishWith(GateVerdict::error(QStringLiteral("the forge connector went away")));
            const RequiredContexts req = *required;
            runAsync<QList<CommitStatus>>(m_forge->statuses(m_sha), this, [this, req](const Result<QList<CommitStatus>> &statuses) {
                if (!statuses)
                    return finishWith(GateVerdict::error(QStringLiteral("cannot read the statuses of %1: %2").arg(m_sha, statuses.error().message)));
                judge(req, *statuses);
            });
        });
    }

private:
    void judge(const RequiredContexts &required, const QList<CommitStatus> &statuses)
    {
        const QList<ContextJudgement> judged = judgeRequired(required.contexts, latestByContext(statuses));
        QJsonArray evidence;
        QList<Finding> findings;
        for (const ContextJudgement &j : judged) {
            evidence.append(j.toJson());
            if (!j.passes)
                findings.append(Finding{j.context, j.reason, QString(), 0, QStringLiteral("blocking")});
        }
        const QJsonObject ev{{QStringLiteral("sha"), m_sha},
                             {QStringLiteral("workflow"), m_spec.workflow},
                             {QStringLiteral("contexts"), evidence},
                             {QStringLiteral("statusesRead"), int(statuses.size())}};
        if (findings.isEmpty())
            return finishWith(GateVerdict::pass(QStringLiteral("all %1 required CI contexts succeeded on %2").arg(judged.size()).arg(m_sha.left(12)), ev));
        QStringList reasons;
        for (const Finding &f : std::as_const(findings))
            reasons.append(f.message);
        finishWith(GateVerdict::fail(QStringLiteral("%1 of %2 required CI contexts are not green on %3: %4")
                                         .arg(findings.size()).arg(judged.size()).arg(m_sha.left(12), reasons.join(QStringLiteral("; "))),
                                     findings, ev));
    }

    QPointer<Forge> m_forge;
    RequiredSpec m_spec;
    QString m_sha;
    QString m_target;
};

} // namespace

CiGate::CiGate(const PluginContext &context, RequiredSpec spec, QObject *parent)
    : Gate(context, parent)
    , m_spec(std::move(spec))
{
}

std::unique_ptr<GateRun> CiGate::evaluate(const GateRequest &request)
{
    return std::make_unique<CiGateRun>(QPointer<Forge>(context().forge()), m_spec, request.task.headSha, context().project().targetBranch);
}

Result<std::unique_ptr<PluginInstance>> CiGateFactory::create(const PluginContext &context)
{
    auto spec = RequiredSpec::fromSettings(context.settings());
    if (!spec)
        return std::unexpected(spec.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<CiGate>(context, *spec));
}

} // namespace Sluice::Ci
