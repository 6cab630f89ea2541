// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file sweeper.h
 * Sweepers: periodic maintenance passes (the CI-umbrella compensator is one). A pass is
 * fail-closed: any read error, malformed answer or failed write makes it a failed pass,
 * while it still goes on with the rest of its work.
 */

#include <sluice/job.h>
#include <sluice/plugin.h>

#include <QJsonArray>

#include <chrono>

namespace Sluice {

/// How to run one pass.
struct SLUICE_EXPORT SweepOptions {
    bool dryRun = false; ///< Decide and report, write nothing.
};

/// What one pass saw and did.
struct SLUICE_EXPORT SweepReport {
    bool ok = false;        ///< False when anything could not be assessed or a write failed.
    int examined = 0;       ///< Objects looked at.
    int acted = 0;          ///< Writes made (or that would be made in a dry run).
    int failures = 0;       ///< Objects that could not be assessed, or writes that failed.
    QJsonArray decisions;   ///< One object per examined item: what was decided and why.
    QString summary;        ///< One line for people.
};

/// One pass of a sweeper.
class SLUICE_EXPORT SweepRun : public PluginJob
{
    Q_OBJECT
public:
    using PluginJob::PluginJob;
    ~SweepRun() override;

    [[nodiscard]] const SweepReport &report() const { return m_report; }
    /// Records @p report and emits finished(). Later calls are ignored.
    void finishWith(const SweepReport &report);

private:
    SweepReport m_report; // ok == false until finished
};

/// A sweeper plugin instance.
class SLUICE_EXPORT Sweeper : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::Sweeper; }

    /// Interval between passes in the daemon; zero: the daemon does not schedule this instance.
    [[nodiscard]] virtual std::chrono::seconds defaultInterval() const = 0;
    /// Returns a pass the host starts, watches and owns.
    [[nodiscard]] virtual std::unique_ptr<SweepRun> sweep(const SweepOptions &options) = 0;
};

} // namespace Sluice
