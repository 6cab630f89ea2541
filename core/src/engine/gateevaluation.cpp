// SPDX-License-Identifier: Apache-2.0
#include "engine/gateevaluation.h"

#include <QLoggingCategory>

namespace Sluice {

Q_LOGGING_CATEGORY(lcGateEvaluation, "sluice.core.gates", QtInfoMsg)

GateEvaluation::GateEvaluation(Gate &gate, const GateRequest &request, std::chrono::milliseconds timeout,
                               QObject *parent)
    : QObject(parent)
    , m_gate(gate)
    , m_request(request)
    , m_timeout(timeout)
{
    m_deadline.setSingleShot(true);
    connect(&m_deadline, &QTimer::timeout, this, [this] {
        qCWarning(lcGateEvaluation).noquote() << "gate" << m_gate.context().instanceName() << "timed out after"
                                              << m_timeout.count() << "ms on task" << m_request.task.id;
        if (m_run)
            m_run->cancel();
        conclude(GateVerdict::error(QStringLiteral("gate '%1' timed out after %2 ms")
                                        .arg(m_gate.context().instanceName())
                                        .arg(m_timeout.count())));
    });
}

GateEvaluation::~GateEvaluation()
{
    if (m_run && !m_run->isFinished())
        m_run->cancel();
}

void GateEvaluation::start()
{
    m_clock.start();
    m_run = m_gate.evaluate(m_request);
    if (!m_run) {
        conclude(GateVerdict::error(QStringLiteral("gate '%1' returned no run").arg(m_gate.context().instanceName())));
        return;
    }
    connect(m_run.get(), &PluginJob::finished, this, [this] {
        // A run that finished without delivering a verdict keeps GateRun's default: Error.
        conclude(m_run->verdict());
    });
    m_deadline.start(m_timeout);
    m_run->start();
}

void GateEvaluation::cancel()
{
    if (m_finished)
        return;
    if (m_run)
        m_run->cancel();
    conclude(GateVerdict::error(QStringLiteral("gate '%1' was cancelled").arg(m_gate.context().instanceName())));
}

void GateEvaluation::conclude(const GateVerdict &verdict)
{
    if (m_finished)
        return;
    m_finished = true;
    m_deadline.stop();
    m_durationMs = m_clock.isValid() ? m_clock.elapsed() : 0;
    m_verdict = verdict;
    Q_EMIT finished(this);
}

} // namespace Sluice
