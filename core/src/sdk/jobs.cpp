// SPDX-License-Identifier: Apache-2.0
// The job base classes of the SDK: one finish, many kinds of result.
#include <sluice/agentlauncher.h>
#include <sluice/gate.h>
#include <sluice/stage.h>
#include <sluice/sweeper.h>
#include <sluice/webhook.h>

namespace Sluice {

PluginJob::PluginJob(QObject *parent)
    : QObject(parent)
{
}

PluginJob::~PluginJob() = default;

void PluginJob::start()
{
    if (m_started || m_cancelled)
        return;
    m_started = true;
    doStart();
}

void PluginJob::cancel()
{
    if (m_cancelled || m_finished)
        return;
    m_cancelled = true;
    doCancel();
}

void PluginJob::doCancel() {}

bool PluginJob::markFinished()
{
    if (m_finished)
        return false;
    m_finished = true;
    Q_EMIT finished(this);
    return true;
}

GateRun::~GateRun() = default;

void GateRun::finishWith(const GateVerdict &verdict)
{
    if (isFinished())
        return;
    m_verdict = verdict;
    markFinished();
}

ConcurrentGateRun::ConcurrentGateRun(std::function<GateVerdict()> work, QObject *parent)
    : GateRun(parent)
    , m_work(std::move(work))
{
    connect(&m_watcher, &QFutureWatcher<GateVerdict>::finished, this, [this] {
        finishWith(m_watcher.future().result());
    });
}

ConcurrentGateRun::~ConcurrentGateRun()
{
    // The work owns nothing of ours; let it run out on the pool but never report back.
    m_watcher.disconnect(this);
}

void ConcurrentGateRun::doStart()
{
    m_watcher.setFuture(QtConcurrent::run(m_work));
}

StageRun::~StageRun() = default;

void StageRun::finishWith(const StageOutcome &outcome)
{
    if (isFinished())
        return;
    m_outcome = outcome;
    markFinished();
}

QStringList Stage::acceptedSignals() const
{
    return {};
}

AgentLaunch::~AgentLaunch() = default;

void AgentLaunch::finishWith(const Result<AgentExit> &result)
{
    if (isFinished())
        return;
    m_result = result;
    markFinished();
}

SweepRun::~SweepRun() = default;

void SweepRun::finishWith(const SweepReport &report)
{
    if (isFinished())
        return;
    m_report = report;
    markFinished();
}

WebhookReceiver::~WebhookReceiver() = default;

} // namespace Sluice
