// SPDX-License-Identifier: Apache-2.0
#pragma once

// The host side of one gate evaluation: starts the plugin's run, enforces the deadline and
// turns every way a run can go wrong into an Error verdict. Fail-closed by construction:
// only a verdict the run itself delivered in time can pass.

#include <sluice/gate.h>

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <chrono>
#include <memory>

namespace Sluice {

class GateEvaluation : public QObject
{
    Q_OBJECT
public:
    GateEvaluation(Gate &gate, const GateRequest &request, std::chrono::milliseconds timeout,
                   QObject *parent = nullptr);
    ~GateEvaluation() override;

    /// Starts the run; finished() follows exactly once (possibly before start() returns).
    void start();
    /// Cancels the run; the verdict becomes an Error ("cancelled").
    void cancel();

    [[nodiscard]] bool isFinished() const { return m_finished; }
    [[nodiscard]] const GateVerdict &verdict() const { return m_verdict; }
    [[nodiscard]] qint64 durationMs() const { return m_durationMs; }

Q_SIGNALS:
    void finished(Sluice::GateEvaluation *evaluation);

private:
    void conclude(const GateVerdict &verdict);

    Gate &m_gate;
    GateRequest m_request;
    std::chrono::milliseconds m_timeout;
    std::unique_ptr<GateRun> m_run;
    QTimer m_deadline;
    QElapsedTimer m_clock;
    GateVerdict m_verdict;
    qint64 m_durationMs = 0;
    bool m_finished = false;
};

} // namespace Sluice
