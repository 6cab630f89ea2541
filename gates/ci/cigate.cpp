// SPDX-License-Identifier: Apache-2.0
#include "cigate.h"

#include "requiredcheck.h"

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
        checkRequired(*m_forge, m_spec, m_sha, m_target, this, [this](Result<RequiredCheck> check) {
            if (!check)
                return finishWith(GateVerdict::error(check.error().message));
            finishWith(check->verdict());
        });
    }

private:
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
