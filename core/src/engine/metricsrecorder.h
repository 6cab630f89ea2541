// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the engine counts what it does (forge events and signals, feedback, notifications,
// tracker updates, sweeper passes). The daemon's Metrics implements it and renders it for
// GET /metrics; the interface lives in the engine so that the engine does not include the
// daemon, which builds on it (docs/architecture.md, "Layering").

#include <QList>
#include <QPair>
#include <QString>

namespace Sluice {

/**
 * Families of counters and gauges, each a set of series told apart by their labels. Calls
 * are thread-safe; one with an invalid name or label changes nothing and returns false.
 */
class MetricsRecorder
{
public:
    enum class Type { Counter, Gauge };
    /// Label name and value pairs; order does not matter.
    using Labels = QList<QPair<QString, QString>>;

    virtual ~MetricsRecorder() = default;

    /**
     * Declares family @p name as @p type with @p help. Series appear on first use:
     * increment(name, labels, 0) exports one at 0 before anything happened. Returns false
     * for an invalid name or when the family already has the other type.
     */
    virtual bool describe(const QString &name, Type type, const QString &help) = 0;
    /// Adds @p by to a series: >= 0 for a counter, any amount for a gauge.
    virtual bool increment(const QString &name, const Labels &labels = {}, double by = 1.0) = 0;

protected:
    MetricsRecorder() = default;
    MetricsRecorder(const MetricsRecorder &) = default;
    MetricsRecorder &operator=(const MetricsRecorder &) = default;
};

} // namespace Sluice
