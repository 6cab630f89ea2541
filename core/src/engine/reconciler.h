// SPDX-License-Identifier: Apache-2.0
#pragma once

// The reconciler: a level-triggered core sweeper. It re-reads the truth for active tasks and
// re-drives, through the one advance path, those an edge left behind — a lost webhook, an
// advance that failed after its job was finalised, a stage entered without its job. A task
// that waits for people is never advanced by it; it moves only when the tracker shows a
// person's answer set after the wait began (taken as that signal, once), which catches a
// tracker delivery that was lost. See docs/runbooks/reconciler.md.

#include "config/hostsettings.h"

#include <sluice/error.h>

#include <QDateTime>
#include <QJsonArray>
#include <QJsonObject>
#include <QObject>
#include <QTimer>

#include <chrono>
#include <memory>

namespace Sluice {

class Engine;
class PluginJob;
class Tracker;
class TrackerOutbox;
struct ProjectRuntime;
struct TaskRecord;

/// What one pass saw and did.
struct ReconcilerPass {
    bool ok = true;
    QStringList errors;
    int examined = 0;
    int skipped = 0;   ///< Waiting for people, busy, or not settled yet.
    int advanced = 0;  ///< Advances started (the gates decide).
    int entered = 0;   ///< Stage jobs enqueued that were missing.
    int blocked = 0;   ///< Tasks blocked whose job had failed for good.
    int signalled = 0; ///< Tracker states taken as signals.
    QJsonArray actions;
    QDateTime at;
};

class Reconciler : public QObject
{
    Q_OBJECT
public:
    Reconciler(Engine &engine, const ReconcilerSettings &settings, QObject *parent = nullptr);
    ~Reconciler() override;

    void start();
    void stop();
    /// Runs a pass now unless one runs; emits passFinished() (tracker reads are asynchronous).
    void tick();

    [[nodiscard]] const ReconcilerSettings &settings() const { return m_settings; }
    [[nodiscard]] QJsonObject status() const;

Q_SIGNALS:
    void passFinished(const Sluice::ReconcilerPass &pass);

private:
    // One pass's look at one active task: re-drives it when an edge left it behind.
    void reconcileTask(const ProjectRuntime &runtime, const TaskRecord &task, const QDateTime &settledBefore);
    // A task in a stage that waits for people: runs the stage again when its request for
    // people was lost. False when it left the task alone (skipped).
    bool askPeopleAgain(const ProjectRuntime &runtime, const TaskRecord &task, const QDateTime &settledBefore);
    // Reads the task's tracker issue and takes the state it shows as its signal.
    void readTrackerState(const std::shared_ptr<ProjectRuntime> &runtime, Tracker &tracker, const TaskRecord &task);
    void failPass(const QString &error);
    void finishPass();
    void recordAction(qint64 taskId, const QString &project, const QString &stage, const QString &action, const QString &why);

    Engine &m_engine;
    ReconcilerSettings m_settings;
    std::unique_ptr<TrackerOutbox> m_outbox; // Sluice's own state writes, to tell a person's answer from a stale state
    QTimer m_timer;
    QTimer m_deadline;
    QList<std::shared_ptr<PluginJob>> m_calls;
    bool m_running = false;
    int m_pendingReads = 0;
    ReconcilerPass m_pass;
    // Status.
    QDateTime m_lastRun;
    bool m_lastOk = true;
    qint64 m_actedTotal = 0;
    QJsonObject m_lastAction;
};

} // namespace Sluice

Q_DECLARE_METATYPE(Sluice::ReconcilerPass)
