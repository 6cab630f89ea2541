// SPDX-License-Identifier: Apache-2.0
#include "engine/notifications.h"

#include "daemon/metrics.h"
#include "engine/engine.h"

#include <sluice/secrets.h>
#include <sluice/tracker.h>

#include <QJsonArray>
#include <QLoggingCategory>
#include <QPointer>
#include <QTimer>

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
{
    connect(&engine, &Engine::notification, this, &TrackerUpdates::route);
}

TrackerUpdates::~TrackerUpdates() = default;

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
    const QString text = commentFor(n, statesFor);
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
    const QString key = n.projectId + QLatin1Char('\n') + ref;
    enqueue(key, Pending{runtime, n.taskId, QStringLiteral("comment"), [guard, ref, text]() -> std::unique_ptr<PluginJob> {
                             if (!guard)
                                 return nullptr;
                             return guard->comment(ref, text);
                         }});
    if (!state.isEmpty())
        enqueue(key, Pending{runtime, n.taskId, QStringLiteral("state"), [guard, ref, state]() -> std::unique_ptr<PluginJob> {
                                 if (!guard)
                                     return nullptr;
                                 return guard->setState(ref, state);
                             }});
}

void TrackerUpdates::enqueue(const QString &key, Pending pending)
{
    QList<Pending> &queue = m_queues[key];
    queue.append(std::move(pending));
    ++m_inFlight;
    if (queue.size() == 1)
        runNext(key);
}

void TrackerUpdates::runNext(const QString &key)
{
    auto it = m_queues.find(key);
    if (it == m_queues.end() || it->isEmpty())
        return;
    const Pending &head = it->first();
    const QString project = head.runtime->config.id;
    const qint64 taskId = head.taskId;
    const QString action = head.action;
    BestEffortCall::run(head.make(), doneError, m_deadline, head.runtime, this,
                        [this, key, project, taskId, action](const QString &result, const QString &error) {
                            --m_inFlight;
                            if (result != QLatin1String("ok"))
                                qCWarning(lcNotify).noquote() << "tracker" << action << "for task" << taskId << "of" << project
                                                              << "failed -" << result + QLatin1Char(':') << error;
                            if (m_metrics)
                                m_metrics->increment(QStringLiteral("sluice_tracker_updates_total"),
                                                     {{QStringLiteral("project"), project}, {QStringLiteral("action"), action},
                                                      {QStringLiteral("result"), result}});
                            Q_EMIT updated(project, taskId, action, result);
                            auto queue = m_queues.find(key);
                            if (queue == m_queues.end())
                                return;
                            queue->removeFirst();
                            if (queue->isEmpty())
                                m_queues.erase(queue);
                            else
                                QTimer::singleShot(0, this, [this, key] { runNext(key); });
                        });
}

} // namespace Sluice
