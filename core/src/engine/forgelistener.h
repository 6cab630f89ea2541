// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the host does with the forge's webhooks (docs/forge-loop.md): each event wakes exactly
// the tasks it concerns, found by repository and head commit or branch. A commit status or a
// check on a task's head evaluates the gate that waits for it at once; a push to a task's
// branch re-judges the head; a merged pull request is looked at by its gates, one closed
// without merging blocks its task (reopening it retries the task); reviews and comment
// commands go to ForgeSignals. Nothing here moves a task except through the engine's advance
// path, and polling (the gates' retryAfter, the reconciler) stays the backstop for a
// delivery that never came.

#include <sluice/forgeevents.h>

#include <QObject>

#include <memory>

namespace Sluice {

class Engine;
class ForgeFeedback;
class ForgeSignals;
class MetricsRecorder;
struct ProjectRuntime;
struct TaskRecord;

class ForgeListener : public QObject
{
    Q_OBJECT
public:
    /// @p feedback (may be null) answers people who may not give signals.
    ForgeListener(Engine &engine, ForgeFeedback *feedback, QObject *parent = nullptr);
    ~ForgeListener() override;

    /// Counts events in sluice_forge_events_total{project,kind,result} (may be null).
    void setMetrics(MetricsRecorder *metrics);
    /// Reads (team membership, a pull request's head) under way for signals.
    [[nodiscard]] int inFlight() const;

    /**
     * Handles one event of a recorded delivery (duplicates were dropped before) that the
     * project's forge instance @p instance received as @p deliveryId. Returns what became of
     * it (the result of handled()), for the delivery's answer.
     */
    [[nodiscard]] QString handle(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instance, const QString &deliveryId,
                const ForgeEvent &event);

Q_SIGNALS:
    /// One event was handled: @p result "woken", "deferred", "advanced", "recorded", "blocked",
    /// "retried", "signal" (handed to ForgeSignals) or "ignored".
    void handled(const QString &project, const QString &kind, const QString &result);

private:
    // Evaluates @p task again now if it waits for its gates: woken here, or advanced when no
    // job of it runs and nothing waits for it in this process (it waited in another one).
    QString wakeTask(const ProjectRuntime &runtime, const TaskRecord &task, const QString &cause);
    QString onCheck(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event);
    QString onPush(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event);
    // Empty when the answer comes later (a pull request read back from the forge); counted then.
    QString onPullRequest(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event);
    // A delivery says the pull request was closed or reopened: deliveries may come in any
    // order and late, so the forge's pull request as it is now decides whether the task is
    // blocked (closed, not merged) or retried (open again).
    /// Reads the pull request back before acting on a close or reopen; an unreadable answer is
    /// read again after 1 s and 5 s before the event is given up (counted "failed").
    void confirmPullRequest(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event, int attempt = 0);
    QString applyPullRequestState(const std::shared_ptr<ProjectRuntime> &runtime, const ForgeEvent &event, const PullRequest &now);
    QString count(const QString &project, const ForgeEvent &event, const QString &result);

    Engine &m_engine;
    MetricsRecorder *m_metrics = nullptr;
    int m_pullReads = 0; // pull requests being read back from the forge
    std::unique_ptr<ForgeSignals> m_signals;
};

} // namespace Sluice
