// SPDX-License-Identifier: Apache-2.0
#pragma once

// Sluice speaking on the task's pull request (a project's `forge_feedback` section): a commit
// status sluice/<stage>/<gate> for every gate verdict on the task's head, one comment per
// rollback, block and wait for a person, replies to people, and the pull request itself.
// Everything goes through the project's own least-privilege token (Forge::withCredential)
// and through one masking function (masked()). Best effort, like notifications: every call
// runs under a deadline, a failure is logged and counted, the pipeline never waits for it.
// See docs/forge-loop.md.

#include <sluice/error.h>
#include <sluice/job.h>
#include <sluice/notifier.h>

#include <QHash>
#include <QObject>
#include <QSet>

#include <chrono>
#include <functional>
#include <memory>

namespace Sluice {

class Engine;
class Forge;
class MetricsRecorder;
class PullRequestConversation;
class StateStore;
struct ProjectRuntime;
struct TaskRecord;

class ForgeFeedback : public QObject
{
    Q_OBJECT
public:
    explicit ForgeFeedback(Engine &engine, QObject *parent = nullptr);
    ~ForgeFeedback() override;

    /// Counts posts in sluice_forge_feedback_total{project,action,result} (may be null).
    void setMetrics(MetricsRecorder *metrics) { m_metrics = metrics; }
    /// Where a task's page is when a project sets no target_url: @p base + the task id.
    void setDefaultTargetBase(const QString &base) { m_targetBase = base; }
    /// Longest one forge call may take (default 60 s).
    void setDeadline(std::chrono::milliseconds deadline) { m_deadline = deadline; }
    /// Posts and reads under way or queued.
    [[nodiscard]] int inFlight() const { return m_inFlight; }

    /// Handles @p notification (connected to Engine::notification): statuses, comments, pull requests.
    void route(const Notification &notification);
    /// The task's branch reached the forge (connected to Engine::published): it may need its pull request.
    void taskPublished(qint64 taskId);
    /**
     * Comments @p text on the pull request of @p taskId, once per @p key in the whole cluster
     * (a reply to a person is keyed by what the person did). Nothing when the project does not
     * speak on its pull requests or the task has none.
     */
    void comment(qint64 taskId, const QString &key, const QString &text);
    /// Whether @p projectId speaks on its pull requests (a usable forge_feedback section).
    [[nodiscard]] bool speaksFor(const QString &projectId) const;

    /**
     * The one function every text posted on the forge goes through: secrets registered with
     * the host (tokens, passwords) are masked.
     */
    [[nodiscard]] static QString masked(const QString &text);
    /// The commit status state of a gate result ("pass" → success, "wait" → pending, ...).
    [[nodiscard]] static QString statusStateFor(const QString &result);

Q_SIGNALS:
    /// One forge write ended: @p action "status", "comment" or "pull-request"; @p result "ok",
    /// "failed", "timeout", "duplicate" (already posted) or "unavailable".
    void posted(const QString &project, qint64 taskId, const QString &action, const QString &result);

private:
    struct Speaker;
    using Step = std::function<void(std::function<void()> done)>;

    [[nodiscard]] std::shared_ptr<Speaker> speaker(const QString &projectId);
    void enqueue(qint64 taskId, Step step);
    void runNext(qint64 taskId);
    void count(const QString &project, qint64 taskId, const QString &action, const QString &result, const QString &error = {});
    [[nodiscard]] QString targetUrl(const Speaker &speaker, qint64 taskId) const;

    void postStatus(const std::shared_ptr<Speaker> &speaker, const Notification &n);
    void postComment(const std::shared_ptr<Speaker> &speaker, qint64 taskId, const QString &key, const QString &text);
    void openPullRequest(const std::shared_ptr<Speaker> &speaker, qint64 taskId);
    // Finds the task's pull request (recorded, else an open one of its branch, then recorded) for
    // @p then: its number, 0 when the branch has none open, -1 when the forge could not be read.
    void withPullRequest(const std::shared_ptr<Speaker> &speaker, qint64 taskId, std::function<void(qint64 number)> then);
    // Runs @p call under the deadline; @p then gets its result (Timeout when it did not end).
    template<typename V>
    void run(std::unique_ptr<AsyncCall<V>> call, std::function<void(const Result<V> &)> then);

    Engine &m_engine;
    MetricsRecorder *m_metrics = nullptr;
    QString m_targetBase;
    std::chrono::milliseconds m_deadline{60'000};
    int m_inFlight = 0;
    QHash<QString, std::shared_ptr<Speaker>> m_speakers; // by project id
    QHash<qint64, QList<Step>> m_queues;                 // per task, one at a time: statuses keep their order
    QSet<QString> m_refused;                             // projects whose token could not be used, told once per runtime
};

} // namespace Sluice
