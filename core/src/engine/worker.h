// SPDX-License-Identifier: Apache-2.0
#pragma once

// The job worker: claims queued stage jobs within the concurrency limits, runs the stage
// plugin with the host's deadline, and hands a completed stage to the engine's advance path.

#include "store/jobqueue.h"

#include <sluice/stage.h>

#include <QElapsedTimer>
#include <QHash>
#include <QObject>
#include <QTimer>

#include <memory>

namespace Sluice {

class Engine;
struct ProjectRuntime;

class SLUICE_EXPORT Worker : public QObject
{
    Q_OBJECT
public:
    struct Running {
        JobRecord job;
        QString plugin;
        QDateTime startedAt;
    };

    explicit Worker(Engine &engine, QObject *parent = nullptr);
    ~Worker() override;

    void setGlobalConcurrency(int limit) { m_globalLimit = limit; }
    void setPollInterval(std::chrono::milliseconds interval);
    [[nodiscard]] int globalConcurrency() const { return m_globalLimit; }
    [[nodiscard]] ConcurrencyLimits limits() const;

    /// Starts claiming: now, on every enqueue signal, and at each poll.
    void start();
    /// Stops claiming. Runs in progress are left alone (their jobs stay running in the store
    /// and are recovered at the next start).
    void stop();

    [[nodiscard]] bool isRunning() const { return m_started; }
    [[nodiscard]] QList<Running> running() const;
    [[nodiscard]] int runningCount() const { return int(m_runs.size()); }

Q_SIGNALS:
    /// A job ended here: "completed", "waiting", "requeued", "failed", "stale", "lost".
    void jobFinished(qint64 jobId, const QString &outcome);

private:
    struct Run;
    void drain();
    void execute(const JobRecord &job);
    void conclude(qint64 jobId);
    void failJob(const JobRecord &job, const ProjectRuntime *runtime, const QString &error);

    Engine &m_engine;
    int m_globalLimit = 4;
    bool m_started = false;
    bool m_draining = false;
    QTimer m_poll;
    QHash<qint64, std::shared_ptr<Run>> m_runs;
};

} // namespace Sluice
