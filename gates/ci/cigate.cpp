// SPDX-License-Identifier: Apache-2.0
#include "cigate.h"

#include <sluice/services.h>

#include <QLoggingCategory>
#include <QPointer>

namespace Sluice::Ci {

namespace {

class CiGateRun final : public GateRun
{
public:
    CiGateRun(const PluginContext &context, RequiredSpec spec, WaitPolicy policy, QString sha,
              std::shared_ptr<QHash<QString, QDateTime>> memory)
        : m_forge(context.forge())
        , m_state(context.state())
        , m_clock(&context.clock())
        , m_log(&context.logging())
        , m_spec(std::move(spec))
        , m_policy(policy)
        , m_sha(std::move(sha))
        , m_target(context.project().targetBranch)
        , m_memory(std::move(memory))
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
            if (!check) // fail-closed: an unreadable status is never a pass, and not a wait either
                return finishWith(GateVerdict::error(check.error().message));
            if (check->outcome() != Outcome::Pending) { // final: green or red
                forgetJudged(m_state, *m_memory, m_sha);
                return finishWith(check->verdict());
            }
            const QDateTime now = m_clock->now();
            auto since = firstJudged(m_state, *m_memory, m_sha, now);
            if (!since)
                return finishWith(GateVerdict::error(QStringLiteral("cannot read when %1 was first judged: %2").arg(m_sha.left(12), since.error().message)));
            GateVerdict verdict = waitingVerdict(*check, m_policy, *since, now);
            if (verdict.result() != GateVerdict::Result::Wait)
                forgetJudged(m_state, *m_memory, m_sha);
            else {
                const QLoggingCategory &log = *m_log;
                qCDebug(log).noquote() << verdict.reason();
            }
            finishWith(verdict);
        });
    }

private:
    QPointer<Forge> m_forge;
    StateStore *m_state = nullptr;
    const Clock *m_clock = nullptr;
    const QLoggingCategory *m_log = nullptr;
    RequiredSpec m_spec;
    WaitPolicy m_policy;
    QString m_sha;
    QString m_target;
    std::shared_ptr<QHash<QString, QDateTime>> m_memory;
};

} // namespace

CiGate::CiGate(const PluginContext &context, RequiredSpec spec, WaitPolicy policy, QObject *parent)
    : Gate(context, parent)
    , m_spec(std::move(spec))
    , m_policy(policy)
{
}

std::unique_ptr<GateRun> CiGate::evaluate(const GateRequest &request)
{
    return std::make_unique<CiGateRun>(context(), m_spec, m_policy, request.task.headSha, m_firstJudged);
}

Result<std::unique_ptr<PluginInstance>> CiGate::create(const PluginContext &context)
{
    auto spec = RequiredSpec::fromSettings(context.settings());
    if (!spec)
        return std::unexpected(spec.error());
    auto policy = WaitPolicy::fromSettings(context.settings());
    if (!policy)
        return std::unexpected(policy.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<CiGate>(context, *spec, *policy));
}

} // namespace Sluice::Ci
