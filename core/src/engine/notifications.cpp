// SPDX-License-Identifier: Apache-2.0
#include "engine/notifications.h"

#include "engine/metricsrecorder.h"
#include "engine/engine.h"

#include <sluice/secrets.h>
#include <sluice/tracker.h>

#include <QJsonArray>
#include <QLoggingCategory>
#include <QPointer>
#include <QTimer>
#include <QUuid>

namespace Sluice {

Q_LOGGING_CATEGORY(lcNotify, "sluice.core.notify", QtInfoMsg)

namespace {

QString doneError(PluginJob *job)
{
    const auto &result = static_cast<AsyncCall<Done> *>(job)->result();
    return result ? QString() : Redaction::redact(result.error().toString());
}

} // namespace

void BestEffortCall::run(std::unique_ptr<PluginJob> call, std::function<QString(PluginJob *)> errorOf,
                         std::chrono::milliseconds deadline, std::shared_ptr<ProjectRuntime> keepAlive, QObject *owner, Done done)
{
    auto *self = new BestEffortCall(owner);
    self->m_keepAlive = std::move(keepAlive);
    self->m_errorOf = std::move(errorOf);
    self->m_done = std::move(done);
    if (!call) {
        self->conclude(QStringLiteral("failed"), QStringLiteral("the plugin returned no call"));
        return;
    }
    self->m_call = std::move(call);
    PluginJob *job = self->m_call.get();
    connect(job, &PluginJob::finished, self, [self](PluginJob *j) {
        const QString error = self->m_errorOf(j);
        self->conclude(error.isEmpty() ? QStringLiteral("ok") : QStringLiteral("failed"), error);
    });
    QTimer::singleShot(deadline, self, [self, deadline] {
        self->conclude(QStringLiteral("timeout"), QStringLiteral("no result within %1 ms").arg(deadline.count()));
    });
    job->start();
}

void BestEffortCall::conclude(const QString &result, const QString &error)
{
    if (m_concluded)
        return;
    m_concluded = true;
    if (m_call && !m_call->isFinished())
        m_call->cancel();
    if (m_done)
        m_done(result, error);
    // The call object may be the sender of the signal being handled: delete both later.
    if (m_call)
        m_call.release()->deleteLater();
    deleteLater();
}

NotificationRouter::NotificationRouter(Engine &engine, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
{
    connect(&engine, &Engine::notification, this, &NotificationRouter::route);
}

NotificationRouter::~NotificationRouter() = default;

void NotificationRouter::route(const Notification &notification)
{
    const std::shared_ptr<ProjectRuntime> runtime = m_engine.project(notification.projectId);
    if (!runtime)
        return;
    for (const QString &name : runtime->config.notifiersFor(notification.event)) {
        auto count = [this, project = notification.projectId, name, event = notification.event](const QString &result) {
            if (m_metrics)
                m_metrics->increment(QStringLiteral("sluice_notifications_total"),
                                     {{QStringLiteral("notifier"), name}, {QStringLiteral("event"), event}, {QStringLiteral("result"), result}});
            Q_EMIT delivered(project, name, event, result);
        };
        Notifier *notifier = runtime->instances.as<Notifier>(name);
        if (!notifier) {
            qCWarning(lcNotify).noquote() << "project" << notification.projectId << "has no notifier" << name << "for" << notification.event;
            count(QStringLiteral("unavailable"));
            continue;
        }
        ++m_inFlight;
        BestEffortCall::run(notifier->notify(notification), doneError, m_deadline, runtime, this,
                            [this, count, name, notification](const QString &result, const QString &error) {
                                --m_inFlight;
                                if (result != QLatin1String("ok"))
                                    qCWarning(lcNotify).noquote() << "notifier" << name << "could not send" << notification.event
                                                                  << "of task" << notification.taskId << "-" << result + QLatin1Char(':') << error;
                                count(result == QLatin1String("ok") ? QStringLiteral("sent") : result);
                            });
    }
}

TrackerUpdates::TrackerUpdates(Engine &engine, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
    , m_outbox(std::make_unique<TrackerOutbox>(engine.store()))
{
    connect(&engine, &Engine::notification, this, &TrackerUpdates::route);
    // This node's earlier process ended: what it was sending is due again now, not when its
    // claims expire.
    if (auto released = m_outbox->releaseClaims(engine.node()); !released)
        qCWarning(lcNotify).noquote() << "cannot release the tracker writes of an earlier run of this node:" << released.error().toString();
    else if (*released > 0)
        qCInfo(lcNotify).noquote() << *released << "tracker write(s) left by an earlier run of this node are due again";
}

TrackerUpdates::~TrackerUpdates() = default;

void TrackerUpdates::setRetryBackoff(std::chrono::milliseconds first, std::chrono::milliseconds max)
{
    m_retryFirst = std::max(first, std::chrono::milliseconds(1));
    m_retryMax = std::max(max, m_retryFirst);
}

std::chrono::milliseconds TrackerUpdates::backoff(int attempts) const
{
    const qint64 first = m_retryFirst.count();
    const qint64 wait = attempts >= 30 ? m_retryMax.count() : std::min<qint64>(m_retryMax.count(), first << std::max(0, attempts - 1));
    return std::chrono::milliseconds(wait);
}

QString TrackerUpdates::commentFor(const Notification &n, const std::function<QStringList(const QString &)> &statesFor)
{
    QString text = QStringLiteral("Sluice: %1").arg(n.title);
    if (!n.text.trimmed().isEmpty())
        text += QStringLiteral("\n\n") + n.text.trimmed();
    if (n.event == QLatin1String("approval-requested")) {
        const QStringList signalNames = n.data.value(QLatin1String("signals")).toVariant().toStringList();
        QStringList asks;
        for (const QString &signal : signalNames) {
            const QStringList states = statesFor(signal);
            if (states.isEmpty())
                asks.append(QStringLiteral("No tracker status sends '%1' in this project; an operator can run: sluice approve %2 %3 --signal %1")
                                .arg(signal).arg(n.taskId).arg(n.data.value(QLatin1String("stage")).toString()));
            else
                asks.append(QStringLiteral("To go on (%1), set the status to \u201c%2\u201d.").arg(signal, states.join(QStringLiteral("\u201d or \u201c"))));
        }
        const QStringList reject = statesFor(QStringLiteral("reject"));
        if (!reject.isEmpty() && !signalNames.contains(QStringLiteral("reject")))
            asks.append(QStringLiteral("To send it back, set the status to \u201c%1\u201d.").arg(reject.join(QStringLiteral("\u201d or \u201c"))));
        text += QStringLiteral("\n\n") + asks.join(QLatin1Char('\n'));
    }
    return Redaction::mask(text);
}

void TrackerUpdates::route(const Notification &n)
{
    static const QStringList handled{QStringLiteral("submitted"), QStringLiteral("stage-changed"), QStringLiteral("rolled-back"),
                                     QStringLiteral("blocked"), QStringLiteral("unblocked"), QStringLiteral("done"),
                                     QStringLiteral("approval-requested")};
    if (!handled.contains(n.event))
        return;
    const QString ref = n.data.value(QLatin1String("tracker_ref")).toString();
    if (ref.isEmpty())
        return;
    const std::shared_ptr<ProjectRuntime> runtime = m_engine.project(n.projectId);
    if (!runtime || runtime->config.trackerInstance.isEmpty())
        return;
    Tracker *tracker = runtime->instances.as<Tracker>(runtime->config.trackerInstance);
    if (!tracker)
        return;
    QPointer<Tracker> guard(tracker);
    auto statesFor = [guard](const QString &signal) {
        QStringList states;
        // An optional capability of a tracker (the plane connector has it).
        if (guard && guard->metaObject()->indexOfMethod("statesForSignal(QString)") >= 0)
            QMetaObject::invokeMethod(guard.data(), "statesForSignal", Qt::DirectConnection, Q_RETURN_ARG(QStringList, states),
                                      Q_ARG(QString, signal));
        return states;
    };
    QString state;
    // An operator's retry puts the issue back where its stage has it.
    if (n.event == QLatin1String("stage-changed") || n.event == QLatin1String("rolled-back") || n.event == QLatin1String("unblocked"))
        state = runtime->config.trackerStateFor(n.data.value(QLatin1String("stage")).toString());
    else if (n.event == QLatin1String("blocked"))
        state = QStringLiteral("blocked");
    else if (n.event == QLatin1String("done"))
        state = QStringLiteral("done");
    else if (n.event == QLatin1String("approval-requested"))
        state = QStringLiteral("needs-input");
    // The visit of the stage the writes belong to: the reconciler trusts a tracker state only
    // once Sluice's own write for the current visit went through.
    qint64 version = 0;
    if (auto task = m_engine.tasks().task(n.taskId); task && *task)
        version = (*task)->version;
    TrackerWrite write;
    write.project = n.projectId;
    write.taskId = n.taskId;
    write.taskVersion = version;
    write.trackerRef = ref;
    write.event = n.event;
    write.stage = n.data.value(QLatin1String("stage")).toString();
    QList<TrackerWrite> writes;
    write.action = QStringLiteral("comment");
    write.value = commentFor(n, statesFor);
    writes.append(write);
    if (!state.isEmpty()) {
        write.action = QStringLiteral("state");
        write.value = state;
        writes.append(write);
    }
    const QString key = n.projectId + QLatin1Char('\n') + ref;
    const QDateTime now = QDateTime::currentDateTimeUtc();
    for (TrackerWrite &w : writes) {
        w.key = QUuid::createUuid().toString(QUuid::WithoutBraces);
        w.createdAt = now;
        // Kept first, sent second: a write that fails, or a process that ends before it is
        // sent, leaves it in the outbox for the next try.
        auto added = m_outbox->add(w, m_engine.node(), now, now.addMSecs(qint64(m_deadline.count()) * 10));
        if (added)
            w.id = *added;
        else
            qCWarning(lcNotify).noquote() << "cannot keep the tracker" << w.action << "for task" << w.taskId
                                          << "in the store; it is sent once, best effort -" << added.error().toString();
        enqueue(key, Pending{runtime, w});
    }
}

void TrackerUpdates::retryDue()
{
    const QDateTime now = QDateTime::currentDateTimeUtc();
    auto due = m_outbox->claimDue(m_engine.node(), now, now.addMSecs(qint64(m_deadline.count()) * 10), 100);
    if (!due) {
        qCWarning(lcNotify).noquote() << "cannot read the tracker writes to try again:" << due.error().toString();
        return;
    }
    for (const TrackerWrite &w : std::as_const(*due)) {
        if (m_queued.contains(w.id))
            continue; // queued here already (its claim was renewed by this pass)
        const std::shared_ptr<ProjectRuntime> runtime = m_engine.project(w.project);
        if (!runtime) {
            // The project is not loaded (an invalid file after a reload): later.
            (void)m_outbox->defer(w.id, now.addMSecs(backoff(w.attempts + 1).count()),
                                  QStringLiteral("project %1 is not loaded").arg(w.project));
            continue;
        }
        qCInfo(lcNotify).noquote() << "trying the tracker" << w.action << "for task" << w.taskId << "of" << w.project << "again ("
                                   << w.attempts << "attempt(s) failed, the last:" << w.lastError + QLatin1Char(')');
        enqueue(w.project + QLatin1Char('\n') + w.trackerRef, Pending{runtime, w});
    }
    if (++m_retryPasses % 1000 == 1) {
        if (auto pruned = m_outbox->prune(now.addDays(-7)); !pruned)
            qCWarning(lcNotify).noquote() << "cannot prune done tracker writes:" << pruned.error().toString();
    }
}

void TrackerUpdates::enqueue(const QString &key, Pending pending)
{
    QList<Pending> &queue = m_queues[key];
    if (pending.write.action == QLatin1String("state")) {
        // Only the newest state is owed: the older ones still waiting here go (the outbox
        // marked them superseded when this one was kept). The head may be running: it stays.
        for (qsizetype i = queue.size() - 1; i >= 1; --i) {
            if (queue[i].write.action == QLatin1String("state") && queue[i].write.id < pending.write.id) {
                m_queued.remove(queue[i].write.id);
                queue.removeAt(i);
                --m_inFlight;
            }
        }
    }
    if (pending.write.id > 0)
        m_queued.insert(pending.write.id);
    queue.append(std::move(pending));
    ++m_inFlight;
    if (queue.size() == 1)
        runNext(key);
}

std::unique_ptr<PluginJob> TrackerUpdates::callFor(const Pending &pending) const
{
    const ProjectRuntime &runtime = *pending.runtime;
    Tracker *tracker = runtime.config.trackerInstance.isEmpty() ? nullptr : runtime.instances.as<Tracker>(runtime.config.trackerInstance);
    if (!tracker)
        return nullptr;
    const TrackerWrite &w = pending.write;
    if (w.action == QLatin1String("state"))
        return tracker->setState(w.trackerRef, w.value);
    if (auto *once = qobject_cast<IdempotentComments *>(tracker))
        return once->commentOnce(w.trackerRef, w.value, w.key);
    // Without keyed comments a retry after a lost answer may post twice: twice rather than never.
    return tracker->comment(w.trackerRef, w.value);
}

void TrackerUpdates::runNext(const QString &key)
{
    auto it = m_queues.find(key);
    if (it == m_queues.end() || it->isEmpty())
        return;
    const Pending head = it->first();
    auto code = std::make_shared<ErrorCode>(ErrorCode::Network);
    auto errorOf = [code](PluginJob *job) {
        const auto &result = static_cast<AsyncCall<Done> *>(job)->result();
        if (result)
            return QString();
        *code = result.error().code;
        return Redaction::redact(result.error().toString());
    };
    BestEffortCall::run(callFor(head), errorOf, m_deadline, head.runtime, this,
                        [this, key, head, code](const QString &result, const QString &error) {
                            settle(key, head, result, error, result == QLatin1String("timeout") ? ErrorCode::Timeout : *code);
                        });
}

void TrackerUpdates::settle(const QString &key, const Pending &pending, const QString &result, const QString &error, ErrorCode code)
{
    --m_inFlight;
    const TrackerWrite &w = pending.write;
    const QString project = pending.runtime->config.id;
    const QDateTime now = QDateTime::currentDateTimeUtc();
    QString counted = result;
    if (result == QLatin1String("ok")) {
        if (w.id > 0) {
            if (auto done = m_outbox->finish(w.id, QStringLiteral("ok"), QString(), now); !done)
                qCWarning(lcNotify).noquote() << "tracker write" << w.id << "went through but cannot be marked so:" << done.error().toString();
        }
    } else {
        // A refusal that another try cannot change: the issue or the state does not exist, the
        // request is wrong. Anything else (an outage, a 5xx, a timeout, a revoked token an
        // operator will replace) is tried again, the wait doubling.
        const bool refused = code == ErrorCode::NotFound || code == ErrorCode::InvalidArgument || code == ErrorCode::Malformed
                             || code == ErrorCode::Conflict;
        if (w.id <= 0) {
            qCWarning(lcNotify).noquote() << "tracker" << w.action << "for task" << w.taskId << "of" << project << "failed and was not kept -"
                                          << result + QLatin1Char(':') << error;
        } else if (refused && w.attempts + 1 >= MaxRefusals) {
            counted = QStringLiteral("abandoned");
            qCWarning(lcNotify).noquote() << "tracker" << w.action << "for task" << w.taskId << "of" << project << "abandoned after"
                                          << w.attempts + 1 << "refusal(s):" << error;
            (void)m_outbox->finish(w.id, QStringLiteral("abandoned"), error, now);
            (void)m_engine.store().audit(AuditEntry{QStringLiteral("tracker-updates"), QStringLiteral("tracker-write-abandoned"), project, w.taskId,
                                                    QJsonObject{{QStringLiteral("write"), w.id}, {QStringLiteral("action"), w.action},
                                                                {QStringLiteral("issue"), w.trackerRef}, {QStringLiteral("attempts"), w.attempts + 1},
                                                                {QStringLiteral("error"), error}}});
        } else {
            const QDateTime next = now.addMSecs(backoff(w.attempts + 1).count());
            qCWarning(lcNotify).noquote() << "tracker" << w.action << "for task" << w.taskId << "of" << project << "failed -"
                                          << result + QLatin1Char(':') << error << "- kept, tried again at" << next.toString(Qt::ISODate);
            if (auto deferred = m_outbox->defer(w.id, next, error); !deferred)
                qCWarning(lcNotify).noquote() << "cannot keep tracker write" << w.id << "for another try:" << deferred.error().toString();
        }
    }
    if (m_metrics)
        m_metrics->increment(QStringLiteral("sluice_tracker_updates_total"),
                             {{QStringLiteral("project"), project}, {QStringLiteral("action"), w.action}, {QStringLiteral("result"), counted}});
    Q_EMIT updated(project, w.taskId, w.action, counted);
    m_queued.remove(w.id);
    auto queue = m_queues.find(key);
    if (queue == m_queues.end())
        return;
    queue->removeFirst();
    if (queue->isEmpty())
        m_queues.erase(queue);
    else
        QTimer::singleShot(0, this, [this, key] { runNext(key); });
}

} // namespace Sluice
