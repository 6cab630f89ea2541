// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file job.h
 * Asynchronous work a plugin does for the host.
 *
 * The host owns every job object, starts it once, enforces its deadline and may cancel it.
 * A job finishes exactly once: the first result wins, later ones are ignored. Jobs run on
 * the thread that created them and must never block it; network work is asynchronous and
 * CPU work goes to QtConcurrent (see ConcurrentGateRun in gate.h for the usual pattern).
 */

#include <sluice/error.h>

#include <QObject>

#include <optional>
#include <utility>

namespace Sluice {

/// Base of every asynchronous plugin job.
class SLUICE_EXPORT PluginJob : public QObject
{
    Q_OBJECT
public:
    explicit PluginJob(QObject *parent = nullptr);
    ~PluginJob() override;

    /// Starts the work. Only the first call has an effect.
    void start();
    /**
     * Asks the job to stop. The host calls this on timeout and shutdown and does not wait:
     * from then on it ignores the job's result. Only the first call has an effect.
     */
    void cancel();

    [[nodiscard]] bool isStarted() const { return m_started; }
    [[nodiscard]] bool isFinished() const { return m_finished; }
    [[nodiscard]] bool isCancelled() const { return m_cancelled; }

Q_SIGNALS:
    /// Emitted exactly once when the job has its result (or was cancelled and stopped).
    void finished(Sluice::PluginJob *job);

protected:
    /// Begins the work; must return quickly.
    virtual void doStart() = 0;
    /// Stops outstanding work (abort replies, kill processes). Default: nothing.
    virtual void doCancel();
    /// Marks the job finished and emits finished() once. Returns false if it already was.
    bool markFinished();

private:
    bool m_started = false;
    bool m_finished = false;
    bool m_cancelled = false;
};

/**
 * A job whose outcome is a Result<T>: the shape of every forge, tracker and notifier call.
 * Subclasses implement doStart() and call finishWith() once.
 */
template<typename T>
class AsyncCall : public PluginJob
{
public:
    using PluginJob::PluginJob;

    /// The outcome; an Error (code Cancelled) until the call has finished.
    [[nodiscard]] const Result<T> &result() const { return m_result; }

    /// Records the outcome and emits finished(). Later calls are ignored.
    void finishWith(Result<T> result)
    {
        if (isFinished())
            return;
        m_result = std::move(result);
        markFinished();
    }

private:
    Result<T> m_result = fail(ErrorCode::Cancelled, QStringLiteral("call did not finish"));
};

/// The value type of calls that return nothing but success or an Error.
struct Done {};

} // namespace Sluice
