// SPDX-License-Identifier: Apache-2.0
#include "engine/forgesignals.h"

#include "engine/metricsrecorder.h"
#include "engine/boundedcall.h"
#include "engine/engine.h"
#include "engine/forgefeedback.h"
#include "store/store.h"

#include <sluice/forge.h>

#include <QLoggingCategory>

namespace Sluice {

Q_LOGGING_CATEGORY(lcForgeSignals, "sluice.core.forgesignals", QtInfoMsg)

struct ForgeSignals::Request {
    std::shared_ptr<ProjectRuntime> runtime;
    QString instance;
    QString deliveryId;
    QString signal;
    ForgeEvent event;
    TaskRecord task;
    [[nodiscard]] const ForgeApprovalsConfig &config() const { return runtime->config.forgeApprovals; }
    [[nodiscard]] QString actor() const { return instance + QLatin1Char(':') + event.actor; }
    // What a reply answers: the comment or review itself, so that the same comment delivered
    // again under a new delivery id (Gitea's "Replay" makes a new one) gets no second reply.
    [[nodiscard]] QString answered() const
    {
        return event.id > 0 ? QStringLiteral("%1-%2").arg(forgeEventKindName(event.kind)).arg(event.id) : QStringLiteral("delivery-") + deliveryId;
    }
};

ForgeSignals::ForgeSignals(Engine &engine, ForgeFeedback *feedback, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
    , m_feedback(feedback)
{
}

ForgeSignals::~ForgeSignals()
{
    for (PluginJob *job : findChildren<PluginJob *>(QString(), Qt::FindDirectChildrenOnly)) {
        job->disconnect(this);
        delete job;
    }
}

QString ForgeSignals::signalOf(const ForgeApprovalsConfig &config, const ForgeEvent &event)
{
    if (event.kind == ForgeEvent::Kind::Review)
        return event.state == QLatin1String("approved") ? config.reviewSignal : QString();
    if (event.kind != ForgeEvent::Kind::Comment)
        return {};
    const QString word = event.text.section(QLatin1Char(' '), 0, 0, QString::SectionSkipEmpty);
    return config.commands.value(word);
}

void ForgeSignals::take(const std::shared_ptr<ProjectRuntime> &runtime, const QString &instance, const QString &deliveryId,
                        const ForgeEvent &event)
{
    const ForgeApprovalsConfig &config = runtime->config.forgeApprovals;
    if (!config.enabled || event.actor.isEmpty())
        return;
    const QString signal = signalOf(config, event);
    if (signal.isEmpty())
        return; // a review or a comment that asks for nothing
    auto request = std::make_shared<Request>();
    request->runtime = runtime;
    request->instance = instance;
    request->deliveryId = deliveryId;
    request->signal = signal;
    request->event = event;
    // The task of the pull request: by its recorded number, else by the branch the event names.
    auto tasks = m_engine.tasks().tasks(runtime->config.id, {QStringLiteral("active")});
    if (!tasks) {
        qCWarning(lcForgeSignals).noquote() << "cannot read the tasks of" << runtime->config.id << "for signal" << signal << "-"
                                            << tasks.error().toString();
        return finish(request, QStringLiteral("failed"));
    }
    const TaskRecord *found = nullptr;
    for (const TaskRecord &t : std::as_const(*tasks)) {
        if ((event.pullRequest > 0 && t.pullRequest == event.pullRequest) || (!event.branch.isEmpty() && t.branch == event.branch))
            found = &t;
    }
    if (!found) {
        qCInfo(lcForgeSignals).noquote() << "signal" << signal << "from" << event.actor << "on pull request #" << event.pullRequest
                                         << "of" << runtime->config.id << "- no active task has it";
        return finish(request, QStringLiteral("no-task"));
    }
    request->task = *found;
    ++m_inFlight;
    authorize(request, 0);
}

void ForgeSignals::authorize(const std::shared_ptr<Request> &request, int team)
{
    const ForgeApprovalsConfig &config = request->config();
    const QString login = request->event.actor;
    for (const QString &user : config.users) {
        if (user.compare(login, Qt::CaseInsensitive) == 0)
            return checkVisit(request);
    }
    if (team >= config.teams.size())
        return refuse(request, QStringLiteral("%1 is not among the people allowed").arg(login));
    auto *forge = request->runtime->instances.as<Forge>(request->runtime->config.forgeInstance);
    auto *conversation = qobject_cast<PullRequestConversation *>(forge);
    if (!conversation) {
        qCWarning(lcForgeSignals).noquote() << "forge" << request->runtime->config.forgeInstance << "cannot tell team membership;"
                                            << "team" << config.teams.at(team) << "cannot allow anyone";
        return authorize(request, team + 1);
    }
    const QString name = config.teams.at(team);
    runBounded<bool>(this, conversation->isTeamMember(name, login), m_deadline, [this, request, team, name, login](const Result<bool> &member) {
        if (member && *member)
            return checkVisit(request);
        if (!member) // fail closed: an unreadable membership allows nobody
            qCWarning(lcForgeSignals).noquote() << "cannot read whether" << login << "is in team" << name << "-"
                                                << ForgeFeedback::masked(member.error().toString());
        authorize(request, team + 1);
    });
}

QDateTime ForgeSignals::enteredStage(const TaskRecord &task) const
{
    auto history = m_engine.tasks().history(task.id);
    if (!history)
        return {};
    QDateTime entered;
    for (const AuditRecord &a : std::as_const(*history)) {
        const QJsonObject &d = a.details;
        const bool into = ((a.action == QLatin1String("submit") || a.action == QLatin1String("retry"))
                           && d.value(QLatin1String("stage")).toString() == task.stage)
            || ((a.action == QLatin1String("advance") || a.action == QLatin1String("rollback")) && d.value(QLatin1String("to")).toString() == task.stage);
        if (into)
            entered = a.at;
    }
    return entered;
}

void ForgeSignals::checkVisit(const std::shared_ptr<Request> &request)
{
    // A comment or review counts only for the visit of the stage it was given in: one given
    // before the task (re-)entered its current stage, delivered late or replayed under a new
    // delivery id, is an answer to an earlier question. The delivery carries no time, so the
    // forge is asked for the comment's creation or the review's submission.
    auto current = m_engine.tasks().task(request->task.id);
    if (!current || !*current)
        return finish(request, QStringLiteral("failed"));
    request->task = **current;
    const QDateTime entered = enteredStage(request->task);
    if (!entered.isValid()) {
        qCWarning(lcForgeSignals).noquote() << "signal" << request->signal << "for task" << request->task.id
                                            << "not taken: when it entered stage" << request->task.stage << "is not recorded";
        return finish(request, QStringLiteral("failed"));
    }
    auto *forge = request->runtime->instances.as<Forge>(request->runtime->config.forgeInstance);
    auto *conversation = qobject_cast<PullRequestConversation *>(forge);
    if (!conversation) { // fail closed: nothing tells when it was given
        qCWarning(lcForgeSignals).noquote() << "forge" << request->runtime->config.forgeInstance
                                            << "cannot tell when a comment or review was given; signal" << request->signal << "not taken";
        return finish(request, QStringLiteral("failed"));
    }
    // Forges keep whole seconds: one given in the second of the entry counts (an approval
    // from before the entry in that same second would need the stage left and re-entered,
    // a job run and a push, within it; a fast approver is far likelier).
    const QDateTime since = entered.toUTC().addMSecs(-entered.toUTC().time().msec());
    auto judge = [this, request, since, entered](const QDateTime &given, const QString &what) {
        if (given.isValid() && given >= since)
            return checkHead(request);
        const QString why = given.isValid()
            ? QStringLiteral("the %1 was given at %2, before the task entered stage '%3' at %4 (it answers an earlier visit)")
                  .arg(what, given.toUTC().toString(Qt::ISODate), request->task.stage, entered.toUTC().toString(Qt::ISODateWithMs))
            : QStringLiteral("the %1 is not on the pull request any more").arg(what);
        stale(request, why, QStringLiteral("Give it again to go on."));
    };
    const qint64 number = request->event.pullRequest > 0 ? request->event.pullRequest : request->task.pullRequest;
    if (request->event.kind == ForgeEvent::Kind::Comment) {
        runBounded<QList<PullRequestComment>>(this, conversation->comments(number), m_deadline, [this, request, judge](const Result<QList<PullRequestComment>> &comments) {
            if (!comments) {
                qCWarning(lcForgeSignals).noquote() << "cannot read the comments of pull request #" << request->event.pullRequest
                                                    << "to tell when signal" << request->signal << "was given -" << ForgeFeedback::masked(comments.error().toString());
                return finish(request, QStringLiteral("failed"));
            }
            QDateTime given;
            for (const PullRequestComment &c : *comments) {
                if (c.id == request->event.id)
                    given = c.createdAt;
            }
            judge(given, QStringLiteral("comment"));
        });
        return;
    }
    runBounded<QList<PullRequestReview>>(this, conversation->reviews(number), m_deadline, [this, request, judge](const Result<QList<PullRequestReview>> &reviews) {
        if (!reviews) {
            qCWarning(lcForgeSignals).noquote() << "cannot read the reviews of pull request #" << request->event.pullRequest
                                                << "to tell when signal" << request->signal << "was given -" << ForgeFeedback::masked(reviews.error().toString());
            return finish(request, QStringLiteral("failed"));
        }
        // GitHub's delivery names the review; Gitea's does not: then the reviewer's latest
        // approving review stands for it (a replayed old approval counts only if they have
        // approved again since the task entered the stage).
        QDateTime given;
        for (const PullRequestReview &r : *reviews) {
            const bool same = request->event.id > 0 ? r.id == request->event.id
                                                    : r.author.compare(request->event.actor, Qt::CaseInsensitive) == 0 && r.state == QLatin1String("approved");
            if (same && r.state == QLatin1String("approved") && (!given.isValid() || r.submittedAt > given))
                given = r.submittedAt;
        }
        judge(given, QStringLiteral("approving review"));
    });
}

void ForgeSignals::stale(const std::shared_ptr<Request> &request, const QString &why, const QString &hint)
{
    qCInfo(lcForgeSignals).noquote() << "signal" << request->signal << "from" << request->event.actor << "for task" << request->task.id
                                     << "not taken:" << why;
    (void)m_engine.store().audit(AuditEntry{request->actor(), QStringLiteral("signal-ignored"), request->task.project, request->task.id,
                                            QJsonObject{{QStringLiteral("signal"), request->signal},
                                                        {QStringLiteral("stage"), request->task.stage},
                                                        {QStringLiteral("reason"), why},
                                                        {QStringLiteral("delivery"), request->deliveryId}}});
    if (m_feedback)
        m_feedback->comment(request->task.id, QStringLiteral("stale/%1").arg(request->answered()),
                            QStringLiteral("@%1: **Sluice** did not take `%2`: %3. %4").arg(request->event.actor, request->signal, why, hint));
    finish(request, QStringLiteral("stale"));
}

void ForgeSignals::checkHead(const std::shared_ptr<Request> &request)
{
    if (!request->config().dismissStale)
        return give(request);
    auto current = m_engine.tasks().task(request->task.id);
    if (!current || !*current)
        return finish(request, QStringLiteral("failed"));
    request->task = **current;
    const QString head = request->task.headSha;
    auto judge = [this, request, head](const QString &approved) {
        if (!head.isEmpty() && approved == head)
            return give(request);
        const QString why = QStringLiteral("the approval is for commit %1, and the task's head is %2")
                                .arg(approved.isEmpty() ? QStringLiteral("(unknown)") : approved.left(12), head.isEmpty() ? QStringLiteral("(none yet)") : head.left(12));
        stale(request, why, QStringLiteral("Approve the current head to go on."));
    };
    if (request->event.kind == ForgeEvent::Kind::Review)
        return judge(request->event.sha);
    // A comment names no commit: it is about the pull request as it is now.
    auto *forge = request->runtime->instances.as<Forge>(request->runtime->config.forgeInstance);
    if (!forge)
        return finish(request, QStringLiteral("failed"));
    runBounded<PullRequest>(this, forge->pullRequest(request->event.pullRequest), m_deadline,
                            [this, request, judge](const Result<PullRequest> &pr) {
                                if (!pr) {
                                    qCWarning(lcForgeSignals).noquote() << "cannot read pull request #" << request->event.pullRequest
                                                                        << "to check the head of signal" << request->signal << "-"
                                                                        << ForgeFeedback::masked(pr.error().toString());
                                    return finish(request, QStringLiteral("failed"));
                                }
                                judge(pr->headSha);
                            });
}

void ForgeSignals::give(const std::shared_ptr<Request> &request)
{
    auto current = m_engine.tasks().task(request->task.id);
    if (!current || !*current)
        return finish(request, QStringLiteral("failed"));
    request->task = **current;
    // The same path as `sluice approve`: the stage must wait for exactly this signal.
    auto taken = m_engine.signal(request->task.id, request->task.stage, request->signal, request->actor(), request->deliveryId);
    if (!taken) {
        qCWarning(lcForgeSignals).noquote() << "signal" << request->signal << "for task" << request->task.id << "failed:" << taken.error().toString();
        return finish(request, QStringLiteral("failed"));
    }
    finish(request, taken->kind == SignalResult::Kind::Accepted ? QStringLiteral("accepted") : QStringLiteral("ignored"));
}

void ForgeSignals::refuse(const std::shared_ptr<Request> &request, const QString &why)
{
    const ForgeApprovalsConfig &config = request->config();
    QStringList who;
    for (const QString &user : config.users)
        who.append(QStringLiteral("@") + user);
    for (const QString &team : config.teams)
        who.append(QStringLiteral("members of %1").arg(team));
    qCInfo(lcForgeSignals).noquote() << "signal" << request->signal << "for task" << request->task.id << "refused:" << why;
    (void)m_engine.store().audit(AuditEntry{request->actor(), QStringLiteral("signal-refused"), request->task.project, request->task.id,
                                            QJsonObject{{QStringLiteral("signal"), request->signal},
                                                        {QStringLiteral("stage"), request->task.stage},
                                                        {QStringLiteral("reason"), why},
                                                        {QStringLiteral("delivery"), request->deliveryId}}});
    if (m_feedback)
        m_feedback->comment(request->task.id, QStringLiteral("refusal/%1").arg(request->answered()),
                            QStringLiteral("@%1: **Sluice** did not take `%2` from you; nothing changed. Who may give it: %3.")
                                .arg(request->event.actor, request->signal, who.join(QStringLiteral(", "))));
    finish(request, QStringLiteral("refused"));
}

void ForgeSignals::finish(const std::shared_ptr<Request> &request, const QString &result)
{
    if (request->task.id > 0)
        --m_inFlight;
    if (m_metrics)
        m_metrics->increment(QStringLiteral("sluice_forge_signals_total"),
                             {{QStringLiteral("project"), request->runtime->config.id}, {QStringLiteral("result"), result}});
    Q_EMIT taken(request->runtime->config.id, request->task.id, request->signal, result);
}

} // namespace Sluice
