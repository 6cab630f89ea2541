// SPDX-License-Identifier: Apache-2.0
#pragma once

// Sweeper passes as the host runs them: audited alike from `sluice sweep` and from the
// daemon, where each project's sweeper instances run on timers of their own.

#include <sluice/sweeper.h>

#include <QHash>
#include <QObject>
#include <QTimer>

#include <memory>

namespace Sluice {

class Engine;
class MetricsRecorder;
class Store;
struct ProjectRuntime;

/**
 * Audits one finished pass of @p instance in @p projectId: every write it made, with its
 * evidence (action "sweep-write"), then the pass itself (action "sweep").
 */
[[nodiscard]] Result<void> auditSweep(Store &store, const QString &projectId, const QString &instance,
                                                    const SweepReport &report, bool dryRun);

/**
 * Tells people about one finished pass through @p engine: "compensation-posted" for every
 * write the sweeper made to repair state, "sweep-failed" when the pass failed. Quiet passes
 * say nothing.
 */
void notifySweepPass(Engine &engine, const QString &projectId, const QString &instance, const SweepReport &report);

/**
 * Runs every sweeper instance of every project on its own timer (the instance's
 * defaultInterval()). A pass that is still running when its timer fires again is not doubled;
 * a pass that runs past its interval is cancelled and counted as failed. Every pass is
 * audited; a failed one is logged as a warning.
 */
class SweepSchedule : public QObject
{
    Q_OBJECT
public:
    SweepSchedule(Engine &engine, Store &store, QObject *parent = nullptr);
    ~SweepSchedule() override;

    /// (Re)creates the timers from the engine's current projects; passes in flight go on.
    void start();
    /// Stops the timers and cancels the passes in flight.
    void stop();
    /// Starts a pass of every scheduled sweeper now, unless one is running (tests, operators).
    void runAllNow();
    /// Passes started so far (tests).
    [[nodiscard]] int passesStarted() const { return m_started; }
    /**
     * Counts every finished pass in @p metrics (not owned; null: none): sluice_sweeps_total
     * by project, instance and result (ok/failed), and the items examined, writes made and
     * failures of the passes. Series of scheduled instances exist at 0 from start().
     */
    void setMetrics(MetricsRecorder *metrics);

Q_SIGNALS:
    /// A pass of @p instance in @p projectId ended (or was cancelled at its deadline).
    void passFinished(const QString &projectId, const QString &instance, const Sluice::SweepReport &report);

private:
    struct Entry;
    void runPass(const QString &key);
    void count(const Entry &entry, const SweepReport &report);

    Engine &m_engine;
    Store &m_store;
    MetricsRecorder *m_metrics = nullptr;
    QHash<QString, std::shared_ptr<Entry>> m_entries; // "project/instance"
    int m_started = 0;
};

} // namespace Sluice
