// SPDX-License-Identifier: Apache-2.0
#include "engine/sweeps.h"

#include "engine/metricsrecorder.h"
#include "engine/engine.h"
#include "store/store.h"

#include <QJsonArray>
#include <QJsonObject>
#include <QLoggingCategory>

namespace Sluice {

Q_LOGGING_CATEGORY(lcSweeps, "sluice.core.sweeps", QtInfoMsg)

namespace {
const QString PassesMetric = QStringLiteral("sluice_sweeps_total");
const QString ExaminedMetric = QStringLiteral("sluice_sweep_items_examined_total");
const QString WritesMetric = QStringLiteral("sluice_sweep_writes_total");
const QString FailuresMetric = QStringLiteral("sluice_sweep_failures_total");

MetricsRecorder::Labels sweepLabels(const QString &projectId, const QString &instance)
{
    return {{QStringLiteral("project"), projectId}, {QStringLiteral("instance"), instance}};
}
} // namespace

Result<void> auditSweep(Store &store, const QString &projectId, const QString &instance, const SweepReport &report, bool dryRun)
{
    const QString actor = QStringLiteral("sweeper:%1").arg(instance);
    QStringList failed;
    for (const QJsonValue &v : report.decisions) {
        const QJsonObject d = v.toObject();
        if (!d.value(QStringLiteral("posted")).toBool())
            continue;
        if (auto r = store.audit(AuditEntry{actor, QStringLiteral("sweep-write"), projectId, 0, d}); !r)
            failed.append(r.error().message);
    }
    const QJsonObject pass{{QStringLiteral("ok"), report.ok},
                           {QStringLiteral("dryRun"), dryRun},
                           {QStringLiteral("examined"), report.examined},
                           {QStringLiteral("acted"), report.acted},
                           {QStringLiteral("failures"), report.failures},
                           {QStringLiteral("summary"), report.summary}};
    if (auto r = store.audit(AuditEntry{actor, QStringLiteral("sweep"), projectId, 0, pass}); !r)
        failed.append(r.error().message);
    if (!failed.isEmpty())
        return fail(ErrorCode::Storage, QStringLiteral("cannot audit sweep of %1 in %2: %3").arg(instance, projectId, failed.join(QStringLiteral("; "))));
    return {};
}

struct SweepSchedule::Entry {
    QString projectId;
    QString instance;
    QTimer timer;
    QTimer deadline;
    std::shared_ptr<ProjectRuntime> runtime; // kept while a pass runs, so a reload cannot pull the instance away
    std::unique_ptr<SweepRun> run;
};

SweepSchedule::SweepSchedule(Engine &engine, Store &store, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
    , m_store(store)
{
}

SweepSchedule::~SweepSchedule()
{
    stop();
}

void SweepSchedule::setMetrics(MetricsRecorder *metrics)
{
    m_metrics = metrics;
    if (!m_metrics)
        return;
    m_metrics->describe(PassesMetric, MetricsRecorder::Type::Counter, QStringLiteral("Sweeper passes finished by this daemon, by project, instance and result (ok, failed)."));
    m_metrics->describe(ExaminedMetric, MetricsRecorder::Type::Counter, QStringLiteral("Items (e.g. open pull requests) the sweeper passes of this daemon examined."));
    m_metrics->describe(WritesMetric, MetricsRecorder::Type::Counter, QStringLiteral("Writes (e.g. compensating statuses) the sweeper passes of this daemon made."));
    m_metrics->describe(FailuresMetric, MetricsRecorder::Type::Counter, QStringLiteral("Items that could not be assessed and writes that failed in the sweeper passes of this daemon."));
}

void SweepSchedule::count(const Entry &entry, const SweepReport &report)
{
    if (!m_metrics)
        return;
    MetricsRecorder::Labels labels = sweepLabels(entry.projectId, entry.instance);
    m_metrics->increment(ExaminedMetric, labels, std::max(0, report.examined));
    m_metrics->increment(WritesMetric, labels, std::max(0, report.acted));
    m_metrics->increment(FailuresMetric, labels, std::max(0, report.failures));
    labels.append({QStringLiteral("result"), report.ok ? QStringLiteral("ok") : QStringLiteral("failed")});
    m_metrics->increment(PassesMetric, labels);
}

void SweepSchedule::start()
{
    // Timers follow the current projects; a pass in flight finishes with the runtime it began with.
    QHash<QString, std::shared_ptr<Entry>> next;
    for (const QString &projectId : m_engine.projectIds()) {
        const std::shared_ptr<ProjectRuntime> runtime = m_engine.project(projectId);
        if (!runtime)
            continue;
        for (const QString &name : runtime->instances.names()) {
            auto *sweeper = runtime->instances.as<Sweeper>(name);
            if (!sweeper || sweeper->defaultInterval().count() <= 0)
                continue; // not a sweeper, or run by a timer outside the daemon
            const QString key = projectId + QLatin1Char('/') + name;
            std::shared_ptr<Entry> entry = m_entries.value(key);
            if (!entry) {
                entry = std::make_shared<Entry>();
                entry->projectId = projectId;
                entry->instance = name;
                entry->timer.setSingleShot(false);
                connect(&entry->timer, &QTimer::timeout, this, [this, key] { runPass(key); });
            }
            const qint64 ms = std::max<qint64>(1000, qint64(sweeper->defaultInterval().count()) * 1000);
            entry->timer.start(int(std::min<qint64>(ms, std::numeric_limits<int>::max())));
            next.insert(key, entry);
            if (m_metrics) {
                // Every scheduled instance shows at 0 before its first pass, so a rate() alert has a series.
                const MetricsRecorder::Labels labels = sweepLabels(projectId, name);
                for (const QString &metric : {ExaminedMetric, WritesMetric, FailuresMetric})
                    m_metrics->increment(metric, labels, 0);
                for (const char *result : {"ok", "failed"})
                    m_metrics->increment(PassesMetric, labels + MetricsRecorder::Labels{{QStringLiteral("result"), QLatin1String(result)}}, 0);
            }
            qCInfo(lcSweeps).noquote() << "sweeper" << name << "of" << projectId << "every" << ms / 1000 << "s";
        }
    }
    for (auto it = m_entries.cbegin(); it != m_entries.cend(); ++it) {
        if (!next.contains(it.key()))
            it.value()->timer.stop(); // a pass in flight still finishes
    }
    m_entries = next;
}

void SweepSchedule::stop()
{
    for (const std::shared_ptr<Entry> &e : std::as_const(m_entries)) {
        e->timer.stop();
        e->deadline.stop();
        if (e->run && !e->run->isFinished())
            e->run->cancel();
        e->run.reset();
        e->runtime.reset();
    }
    m_entries.clear();
}

void notifySweepPass(Engine &engine, const QString &projectId, const QString &instance, const SweepReport &report)
{
    // Compensations (writes a sweeper made to repair state) and failed passes reach people.
    for (const QJsonValue &v : report.decisions) {
        const QJsonObject d = v.toObject();
        if (!d.value(QStringLiteral("posted")).toBool())
            continue;
        Notification n;
        n.event = QStringLiteral("compensation-posted");
        n.projectId = projectId;
        n.title = QStringLiteral("%1 of %2 posted a compensation").arg(instance, projectId);
        n.text = d.value(QStringLiteral("reason")).toString();
        n.data = d;
        engine.notify(n);
    }
    if (report.ok)
        return;
    Notification n;
    n.event = QStringLiteral("sweep-failed");
    n.projectId = projectId;
    n.title = QStringLiteral("sweeper %1 of %2 failed").arg(instance, projectId);
    n.text = report.summary;
    n.data = QJsonObject{{QStringLiteral("instance"), instance},
                         {QStringLiteral("examined"), report.examined},
                         {QStringLiteral("failures"), report.failures},
                         {QStringLiteral("summary"), report.summary}};
    engine.notify(n);
}

void SweepSchedule::runAllNow()
{
    const QStringList keys = m_entries.keys();
    for (const QString &key : keys)
        runPass(key);
}

void SweepSchedule::runPass(const QString &key)
{
    const std::shared_ptr<Entry> entry = m_entries.value(key);
    if (!entry)
        return;
    if (entry->run) {
        qCInfo(lcSweeps).noquote() << "sweeper" << entry->instance << "of" << entry->projectId << "is still running; tick skipped";
        return;
    }
    entry->runtime = m_engine.project(entry->projectId);
    auto *sweeper = entry->runtime ? entry->runtime->instances.as<Sweeper>(entry->instance) : nullptr;
    if (!sweeper) {
        entry->runtime.reset();
        return;
    }
    ++m_started;
    entry->run = sweeper->sweep(SweepOptions{});
    const auto finish = [this, entry](SweepReport report) {
        entry->deadline.stop();
        if (auto audited = auditSweep(m_store, entry->projectId, entry->instance, report, false); !audited) {
            report.ok = false;
            qCWarning(lcSweeps).noquote() << audited.error().toString();
        }
        count(*entry, report);
        notifySweepPass(m_engine, entry->projectId, entry->instance, report);
        if (report.ok)
            qCInfo(lcSweeps).noquote() << "sweeper" << entry->instance << "of" << entry->projectId << ":" << report.summary;
        else
            qCWarning(lcSweeps).noquote() << "sweeper" << entry->instance << "of" << entry->projectId << "FAILED:" << report.summary;
        Q_EMIT passFinished(entry->projectId, entry->instance, report);
        // Deleting the run inside its own finished() is not safe: do it from the event loop.
        if (entry->run)
            entry->run.release()->deleteLater();
        entry->runtime.reset();
    };
    connect(entry->run.get(), &PluginJob::finished, this, [entry, finish] {
        if (entry->run && !entry->run->isCancelled())
            finish(entry->run->report());
    });
    entry->deadline.setSingleShot(true);
    disconnect(&entry->deadline, nullptr, this, nullptr);
    connect(&entry->deadline, &QTimer::timeout, this, [entry, finish] {
        if (!entry->run)
            return;
        entry->run->cancel();
        SweepReport late;
        late.failures = 1;
        late.summary = QStringLiteral("the pass ran past its interval and was cancelled");
        finish(late);
    });
    entry->deadline.start(entry->timer.interval());
    entry->run->start();
}

} // namespace Sluice
