// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file gate.h
 * Gates: checks that decide whether a task may leave a stage or cross an edge.
 */

#include <sluice/job.h>
#include <sluice/plugin.h>
#include <sluice/task.h>
#include <sluice/verdict.h>

#include <QFutureWatcher>
#include <QtConcurrent/QtConcurrentRun>

#include <functional>

namespace Sluice {

/// What a gate is asked to judge.
struct SLUICE_EXPORT GateRequest {
    TaskInfo task;        ///< The task, as the store has it now.
    QString fromStage;    ///< Stage the task is leaving.
    QString toStage;      ///< Stage it would enter.
    QString worktree;     ///< Absolute path of the task's worktree; may be empty.
    QString artifactsDir; ///< Absolute path where stage artifacts and reports go.
};

/**
 * One evaluation of a gate. The host owns it and enforces its deadline: a run that does
 * not finish in time, or finishes without a verdict, is an Error verdict.
 */
class SLUICE_EXPORT GateRun : public PluginJob
{
    Q_OBJECT
public:
    using PluginJob::PluginJob;
    ~GateRun() override;

    /// The verdict; an Error verdict until the run finished with one.
    [[nodiscard]] const GateVerdict &verdict() const { return m_verdict; }

    /// Records @p verdict and emits finished(). Later calls are ignored.
    void finishWith(const GateVerdict &verdict);

private:
    GateVerdict m_verdict;
};

/**
 * A GateRun that computes its verdict on the global thread pool and reports back on the
 * creating thread. Use it for CPU or file work so the event loop never blocks.
 */
class SLUICE_EXPORT ConcurrentGateRun : public GateRun
{
    Q_OBJECT
public:
    explicit ConcurrentGateRun(std::function<GateVerdict()> work, QObject *parent = nullptr);
    ~ConcurrentGateRun() override;

protected:
    void doStart() override;

private:
    std::function<GateVerdict()> m_work;
    QFutureWatcher<GateVerdict> m_watcher;
};

/// A gate plugin instance.
class SLUICE_EXPORT Gate : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::Gate; }

    /// Starts nothing: returns a run the host starts, watches and owns.
    [[nodiscard]] virtual std::unique_ptr<GateRun> evaluate(const GateRequest &request) = 0;
};

} // namespace Sluice
