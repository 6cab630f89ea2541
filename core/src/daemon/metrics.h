// SPDX-License-Identifier: Apache-2.0
#pragma once

// Counters and gauges, rendered in the Prometheus text exposition format 0.0.4 for
// GET /metrics.

#include "engine/metricsrecorder.h"

#include <sluice/global.h>

#include <QByteArray>
#include <QList>
#include <QPair>
#include <QString>

#include <memory>

namespace Sluice {

/**
 * The metrics of one process: families of counters and gauges, each family a set of series
 * told apart by their labels. All calls are thread-safe.
 *
 * A family's type comes from describe(), or else from its first use: increment() makes a
 * counter, set() a gauge. Counters only go up through increment(); set() on a counter
 * mirrors a count kept elsewhere (a table), which Prometheus reads as a counter reset when
 * it goes down.
 *
 * render() is deterministic: families sorted by name, each with "# HELP" (when described)
 * and "# TYPE", series sorted by their labels, labels sorted by name. Names follow
 * Prometheus' rules ([a-zA-Z_:][a-zA-Z0-9_:]*; label names without ':' and not starting
 * with "__"); a call with an invalid name or label changes nothing and returns false.
 */
class Metrics : public MetricsRecorder
{
public:
    using MetricsRecorder::Labels;
    using MetricsRecorder::Type;

    /// The Content-Type of render()'s output.
    static constexpr const char *contentType = "text/plain; version=0.0.4; charset=utf-8";

    Metrics();
    ~Metrics() override;
    Metrics(const Metrics &) = delete;
    Metrics &operator=(const Metrics &) = delete;

    /**
     * Declares family @p name as @p type with @p help. Series appear on first use:
     * increment(name, labels, 0) exports one at 0 before anything happened. Returns false
     * for an invalid name or when the family already has the other type.
     */
    bool describe(const QString &name, Type type, const QString &help) override;
    /// Adds @p by to a series: >= 0 for a counter, any amount for a gauge.
    bool increment(const QString &name, const Labels &labels = {}, double by = 1.0) override;
    /// Sets a series to @p value.
    bool set(const QString &name, const Labels &labels, double value);
    /// Removes one series (a thing that is gone); false when there was none.
    bool remove(const QString &name, const Labels &labels);
    /// Current value of a series, 0 when there is none.
    [[nodiscard]] double value(const QString &name, const Labels &labels = {}) const;

    /// The exposition text.
    [[nodiscard]] QByteArray render() const;

private:
    struct Data;
    std::unique_ptr<Data> d;
};

} // namespace Sluice
