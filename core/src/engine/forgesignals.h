// SPDX-License-Identifier: Apache-2.0
#pragma once

// Approvals and confirmations from the forge (a project's `forge_approvals` section): an
// approving review, or a comment command ("/approve", "/confirm-deploy"), by a person the
// project allows (a login, or a member of a team) becomes the matching signal for the task's
// current stage through Engine::signal(), the path of `sluice approve`, audited with the
// forge user as actor. Anyone else gets no effect and one reply saying who may. An approval
// given before the task entered its current stage (a late delivery, a replay) does not count,
// nor, with dismiss_stale, one given on another commit than the task's head.
// See docs/forge-loop.md.

#include <sluice/forgeevents.h>

#include <QDateTime>
#include <QObject>

#include <chrono>
#include <memory>

namespace Sluice {

class Engine;
class ForgeFeedback;
class MetricsRecorder;
struct ForgeApprovalsConfig;
struct ProjectRuntime;
struct TaskRecord;

class ForgeSignals : public QObject
{
    Q_OBJECT
public:
    ForgeSignals(Engine &engine, ForgeFeedback *feedback, QObject *parent = nullptr);
    ~ForgeSignals() override;

    /// Counts outcomes in sluice_forge_signals_total{project,result} (may be null).
    void setMetrics(MetricsRecorder *metrics) { m_metrics = metrics; }
    /// Longest one forge read (team membership, the pull request) may take (default 30 s).
    void setDeadline(std::chrono::milliseconds deadline) { m_deadline = deadline; }
    [[nodiscard]] int inFlight() const { return m_inFlight; }

    /// Takes a review or comment event of a recorded delivery; anything that is no signal is left alone.
    void take(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instance, const QString &deliveryId, const ForgeEvent &event);

    /// The signal @p event asks for under @p config: the review signal for an approving
    /// review, the command's signal for a comment whose first word is a command; else empty.
    [[nodiscard]] static QString signalOf(const ForgeApprovalsConfig &config, const ForgeEvent &event);

Q_SIGNALS:
    /// @p result: "accepted", "ignored" (the engine did not take it), "refused" (not allowed),
    /// "stale" (another commit than the head), "no-task" or "failed".
    void taken(const QString &project, qint64 taskId, const QString &signal, const QString &result);

private:
    struct Request;
    void authorize(const std::shared_ptr<Request> &request, int team);
    void checkVisit(const std::shared_ptr<Request> &request);
    void checkHead(const std::shared_ptr<Request> &request);
    void stale(const std::shared_ptr<Request> &request, const QString &why, const QString &hint);
    /// When @p task last entered its current stage (invalid when no record says).
    [[nodiscard]] QDateTime enteredStage(const TaskRecord &task) const;
    void give(const std::shared_ptr<Request> &request);
    void refuse(const std::shared_ptr<Request> &request, const QString &why);
    void finish(const std::shared_ptr<Request> &request, const QString &result);

    Engine &m_engine;
    ForgeFeedback *m_feedback;
    MetricsRecorder *m_metrics = nullptr;
    std::chrono::milliseconds m_deadline{30'000};
    int m_inFlight = 0;
};

} // namespace Sluice
