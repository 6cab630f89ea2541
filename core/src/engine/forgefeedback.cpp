// SPDX-License-Identifier: Apache-2.0
#include "engine/forgefeedback.h"

#include "engine/metricsrecorder.h"
#include "engine/boundedcall.h"
#include "engine/engine.h"
#include "store/store.h"

#include <sluice/forge.h>
#include <sluice/forgeevents.h>
#include <sluice/secrets.h>
#include <sluice/services.h>

#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLoggingCategory>
#include <QTimer>

namespace Sluice {

Q_LOGGING_CATEGORY(lcFeedback, "sluice.core.forgefeedback", QtInfoMsg)

namespace {
const QString StateInstance = QStringLiteral("sluice-forge-feedback");
const QString FeedbackMarker = QStringLiteral("<!-- sluice:feedback -->");

QString cut(const QString &text, int limit)
{
    const QString line = text.simplified();
    if (line.size() <= limit)
        return line;
    return line.left(std::max(0, limit - 1)) + QChar(0x2026);
}

QString shortSha(const QString &sha)
{
    return sha.left(12);
}
} // namespace

struct ForgeFeedback::Speaker {
    std::shared_ptr<ProjectRuntime> runtime;     // kept while calls made for it run
    std::unique_ptr<Forge> forge;                // the project's forge under the feedback token
    PullRequestConversation *conversation = nullptr;
    std::unique_ptr<StateStore> state;           // what was last posted, per (head, context)
    QString source;                              // events source of its claims: "<project>/sluice-forge-feedback"
    [[nodiscard]] const ProjectConfig &config() const { return runtime->config; }
};

ForgeFeedback::ForgeFeedback(Engine &engine, QObject *parent)
    : QObject(parent)
    , m_engine(engine)
{
    connect(&engine, &Engine::notification, this, &ForgeFeedback::route);
    connect(&engine, &Engine::published, this, [this](qint64 taskId, const QString &) { taskPublished(taskId); });
}

ForgeFeedback::~ForgeFeedback()
{
    // Calls in flight go before the connectors that made them.
    for (PluginJob *job : findChildren<PluginJob *>(QString(), Qt::FindDirectChildrenOnly)) {
        job->disconnect(this);
        delete job;
    }
}

QString ForgeFeedback::masked(const QString &text)
{
    return Redaction::mask(text);
}

QString ForgeFeedback::statusStateFor(const QString &result)
{
    if (result == QLatin1String("pass") || result == QLatin1String("skip"))
        return QStringLiteral("success");
    if (result == QLatin1String("fail"))
        return QStringLiteral("failure");
    if (result == QLatin1String("wait"))
        return QStringLiteral("pending");
    return QStringLiteral("error");
}

bool ForgeFeedback::speaksFor(const QString &projectId) const
{
    return const_cast<ForgeFeedback *>(this)->speaker(projectId) != nullptr;
}

std::shared_ptr<ForgeFeedback::Speaker> ForgeFeedback::speaker(const QString &projectId)
{
    const std::shared_ptr<ProjectRuntime> runtime = m_engine.project(projectId);
    if (!runtime || !runtime->config.forgeFeedback.enabled)
        return nullptr;
    if (auto it = m_speakers.constFind(projectId); it != m_speakers.cend() && (*it)->runtime == runtime)
        return *it;
    const QString refusal = projectId + QLatin1Char('@') + QString::number(quintptr(runtime.get()));
    auto refuse = [&](const QString &why) -> std::shared_ptr<Speaker> {
        if (!m_refused.contains(refusal)) {
            m_refused.insert(refusal);
            qCWarning(lcFeedback).noquote() << "project" << projectId << "cannot speak on its pull requests:" << why;
        }
        return nullptr;
    };
    Forge *forge = runtime->instances.as<Forge>(runtime->config.forgeInstance);
    if (!forge)
        return refuse(QStringLiteral("its forge instance '%1' is not available").arg(runtime->config.forgeInstance));
    auto writer = forge->withCredential(SecretRef::fromVariant(runtime->config.forgeFeedback.token));
    if (!writer)
        return refuse(QStringLiteral("forge_feedback.token: %1").arg(masked(writer.error().message)));
    auto s = std::make_shared<Speaker>();
    s->runtime = runtime;
    s->forge = std::move(*writer);
    s->conversation = qobject_cast<PullRequestConversation *>(s->forge.get());
    s->state = m_engine.store().pluginState(projectId, StateInstance);
    s->source = projectId + QLatin1Char('/') + StateInstance;
    if (!s->conversation)
        qCWarning(lcFeedback).noquote() << "forge" << runtime->config.forgeInstance << "of project" << projectId
                                        << "cannot comment on pull requests; only statuses are posted";
    m_speakers.insert(projectId, s);
    return s;
}

template<typename V>
void ForgeFeedback::run(std::unique_ptr<AsyncCall<V>> call, std::function<void(const Result<V> &)> then)
{
    runBounded<V>(this, std::move(call), m_deadline, std::move(then));
}

void ForgeFeedback::enqueue(qint64 taskId, Step step)
{
    ++m_inFlight;
    QList<Step> &queue = m_queues[taskId];
    queue.append(std::move(step));
    if (queue.size() == 1)
        runNext(taskId);
}

void ForgeFeedback::runNext(qint64 taskId)
{
    const auto it = m_queues.constFind(taskId);
    if (it == m_queues.cend() || it->isEmpty())
        return;
    const Step step = it->first();
    auto once = std::make_shared<bool>(false);
    step([this, taskId, once] {
        if (*once)
            return;
        *once = true;
        --m_inFlight;
        auto queue = m_queues.find(taskId);
        if (queue == m_queues.end())
            return;
        queue->removeFirst();
        if (queue->isEmpty())
            m_queues.erase(queue);
        else
            QTimer::singleShot(0, this, [this, taskId] { runNext(taskId); });
    });
}

void ForgeFeedback::count(const QString &project, qint64 taskId, const QString &action, const QString &result, const QString &error)
{
    if (result == QLatin1String("failed") || result == QLatin1String("timeout") || result == QLatin1String("unavailable"))
        qCWarning(lcFeedback).noquote() << action << "for task" << taskId << "of" << project << "on the forge:" << result
                                        << (error.isEmpty() ? QString() : QStringLiteral("- ") + masked(error));
    if (m_metrics)
        m_metrics->increment(QStringLiteral("sluice_forge_feedback_total"),
                             {{QStringLiteral("project"), project}, {QStringLiteral("action"), action}, {QStringLiteral("result"), result}});
    Q_EMIT posted(project, taskId, action, result);
}

QString ForgeFeedback::targetUrl(const Speaker &speaker, qint64 taskId) const
{
    const QString configured = speaker.config().forgeFeedback.targetUrl;
    if (!configured.isEmpty())
        return QString(configured).replace(QLatin1String("{task}"), QString::number(taskId));
    return m_targetBase.isEmpty() ? QString() : m_targetBase + QString::number(taskId);
}

void ForgeFeedback::route(const Notification &n)
{
    static const QStringList verdicts{QStringLiteral("gate-passed"), QStringLiteral("gate-failed"), QStringLiteral("gate-waiting")};
    static const QStringList handled{QStringLiteral("gate-passed"), QStringLiteral("gate-failed"), QStringLiteral("gate-waiting"),
                                     QStringLiteral("rolled-back"), QStringLiteral("blocked"), QStringLiteral("approval-requested"),
                                     QStringLiteral("stage-changed")};
    if (!handled.contains(n.event) || n.taskId <= 0)
        return;
    const std::shared_ptr<Speaker> s = speaker(n.projectId);
    if (!s)
        return;
    const ForgeFeedbackConfig &config = s->config().forgeFeedback;
    if (verdicts.contains(n.event)) {
        if (config.statuses)
            postStatus(s, n);
        // A pull request that could not be opened before is tried again at every verdict.
        taskPublished(n.taskId);
        return;
    }
    if (n.event == QLatin1String("stage-changed")) {
        taskPublished(n.taskId);
        return;
    }
    if (!config.comments)
        return;
    const QString url = targetUrl(*s, n.taskId);
    const QString link = url.isEmpty() ? QStringLiteral("task %1").arg(n.taskId) : QStringLiteral("[task %1](%2)").arg(n.taskId).arg(url);
    const QString head = n.data.value(QLatin1String("head")).toString();
    if (n.event == QLatin1String("rolled-back") || n.event == QLatin1String("blocked")) {
        const bool rolledBack = n.event == QLatin1String("rolled-back");
        QString text = rolledBack ? QStringLiteral("**Sluice** sent %1 back from `%2` to `%3`: gate `%4` did not pass (rollback %5 of %6).")
                                        .arg(link, n.data.value(QLatin1String("from")).toString(), n.data.value(QLatin1String("to")).toString(),
                                             n.data.value(QLatin1String("gate")).toString())
                                        .arg(n.data.value(QLatin1String("rollback")).toInt())
                                        .arg(n.data.value(QLatin1String("max_retries")).toInt())
                                  : QStringLiteral("**Sluice** blocked %1 in `%2`: gate `%3` did not pass and no rollback is left; an operator "
                                                   "looks at it (`sluice retry %4 --reason …`).")
                                        .arg(link, n.data.value(QLatin1String("stage")).toString(), n.data.value(QLatin1String("gate")).toString())
                                        .arg(n.taskId);
        text += QStringLiteral("\n\n> %1").arg(n.data.value(QLatin1String("reason")).toString().trimmed().replace(QLatin1Char('\n'), QStringLiteral("\n> ")));
        const QJsonArray findings = n.data.value(QLatin1String("findings")).toArray();
        if (!findings.isEmpty()) {
            text += QStringLiteral("\n\nFindings:\n");
            for (const QJsonValue &v : findings) {
                const Finding f = Finding::fromJson(v.toObject());
                QString where = f.file;
                if (!where.isEmpty() && f.line > 0)
                    where += QStringLiteral(":%1").arg(f.line);
                text += QStringLiteral("- `%1` %2%3\n").arg(f.rule, where.isEmpty() ? QString() : where + QStringLiteral(": "), f.message);
            }
        }
        if (!head.isEmpty())
            text += QStringLiteral("\nJudged commit: %1").arg(shortSha(head));
        const QString key = rolledBack ? QStringLiteral("rollback/%1/%2").arg(n.taskId).arg(n.data.value(QLatin1String("rollback")).toInt())
                                       : QStringLiteral("blocked/%1/%2").arg(n.taskId).arg(n.at.toMSecsSinceEpoch());
        postComment(s, n.taskId, key, text);
        return;
    }
    // approval-requested: which signal, who may give it, and how.
    const QString stage = n.data.value(QLatin1String("stage")).toString();
    const QStringList signalNames = n.data.value(QLatin1String("signals")).toVariant().toStringList();
    const ForgeApprovalsConfig &approvals = s->config().forgeApprovals;
    QString text = QStringLiteral("**Sluice**: %1 waits in `%2` for a person to give the signal %3.")
                       .arg(link, stage, signalNames.isEmpty() ? QStringLiteral("it waits for")
                                                               : QStringLiteral("`%1`").arg(signalNames.join(QStringLiteral("` or `"))));
    if (approvals.enabled) {
        QStringList who;
        for (const QString &user : approvals.users)
            who.append(QStringLiteral("@") + user);
        for (const QString &team : approvals.teams)
            who.append(QStringLiteral("members of %1").arg(team));
        text += QStringLiteral("\n\nWho may give it here: %1.").arg(who.join(QStringLiteral(", ")));
        QStringList how;
        for (const QString &signal : signalNames) {
            if (signal == approvals.reviewSignal && !approvals.reviewSignal.isEmpty())
                how.append(QStringLiteral("approve this pull request (review) for `%1`").arg(signal));
            for (auto it = approvals.commands.cbegin(); it != approvals.commands.cend(); ++it) {
                if (it.value() == signal)
                    how.append(QStringLiteral("comment `%1` for `%2`").arg(it.key(), signal));
            }
        }
        if (!how.isEmpty())
            text += QStringLiteral(" How: %1.").arg(how.join(QStringLiteral("; ")));
        if (approvals.dismissStale && !head.isEmpty())
            text += QStringLiteral(" Only an approval of commit %1 counts.").arg(shortSha(head));
    } else {
        text += QStringLiteral("\n\nThis project takes no signals from the forge: an operator runs `sluice approve %1 %2`.").arg(n.taskId).arg(stage);
    }
    postComment(s, n.taskId, QStringLiteral("waits/%1/%2/%3").arg(n.taskId).arg(stage).arg(qint64(n.data.value(QLatin1String("version")).toDouble())),
                text);
}

void ForgeFeedback::taskPublished(qint64 taskId)
{
    auto task = m_engine.tasks().task(taskId);
    if (!task || !*task)
        return;
    const TaskRecord &t = **task;
    const std::shared_ptr<Speaker> s = speaker(t.project);
    if (!s)
        return;
    const ForgeFeedbackConfig &config = s->config().forgeFeedback;
    if (!config.openPullRequest || t.pullRequest > 0 || t.pushedSha.isEmpty() || t.status != QLatin1String("active"))
        return;
    if (!config.pullRequestStage.isEmpty()) {
        int at = -1;
        int from = -1;
        for (int i = 0; i < s->config().stages.size(); ++i) {
            if (s->config().stages[i].name == t.stage)
                at = i;
            if (s->config().stages[i].name == config.pullRequestStage)
                from = i;
        }
        if (at < from)
            return; // not yet the stage that needs it
    }
    openPullRequest(s, taskId);
}

void ForgeFeedback::comment(qint64 taskId, const QString &key, const QString &text)
{
    auto task = m_engine.tasks().task(taskId);
    if (!task || !*task)
        return;
    if (const std::shared_ptr<Speaker> s = speaker((*task)->project))
        postComment(s, taskId, key, text);
}

void ForgeFeedback::postStatus(const std::shared_ptr<Speaker> &s, const Notification &n)
{
    const QString sha = n.data.value(QLatin1String("head")).toString();
    const QString gate = n.data.value(QLatin1String("gate")).toString();
    const QString stage = n.data.value(QLatin1String("stage")).toString();
    // The publish step is the host's own: its failure is told in the rollback's comment (and
    // the head it failed to push is not at the forge to carry a status).
    if (sha.isEmpty() || gate.isEmpty() || gate == Engine::PublishStep)
        return;
    const QString state = statusStateFor(n.data.value(QLatin1String("result")).toString());
    const QString context = QStringLiteral("sluice/%1/%2").arg(stage, gate);
    const int limit = s->conversation ? s->conversation->statusDescriptionLimit() : 140;
    const QString description = cut(masked(n.data.value(QLatin1String("reason")).toString()), limit);
    const QString url = targetUrl(*s, n.taskId);
    const qint64 taskId = n.taskId;
    enqueue(taskId, [this, s, sha, state, context, description, url, taskId](std::function<void()> done) {
        const QString project = s->config().id;
        // The same verdict is posted once: a pending status stays until the state changes (a
        // wait's reason counts its seconds), any other until its text changes.
        const QString key = QStringLiteral("status/%1/%2").arg(sha, context);
        if (auto last = s->state ? s->state->value(key) : Result<std::optional<QByteArray>>(std::nullopt); last && *last) {
            const QJsonObject was = QJsonDocument::fromJson(**last).object();
            const QString wasState = was.value(QLatin1String("state")).toString();
            if (wasState == state && (state == QLatin1String("pending") || was.value(QLatin1String("description")).toString() == description)) {
                count(project, taskId, QStringLiteral("status"), QStringLiteral("duplicate"));
                return done();
            }
        }
        // Claimed in the store before it is posted: of two nodes judging the same head, one posts.
        const QString hash = state == QLatin1String("pending")
                                 ? QString()
                                 : QString::fromLatin1(QCryptographicHash::hash(description.toUtf8(), QCryptographicHash::Sha256).toHex().left(16));
        auto fresh = m_engine.store().recordEvent(s->source, QStringLiteral("status:%1:%2:%3:%4").arg(sha, context, state, hash),
                                                  QStringLiteral("forge-feedback"),
                                                  QJsonObject{{QStringLiteral("task"), taskId}, {QStringLiteral("context"), context},
                                                              {QStringLiteral("state"), state}});
        if (!fresh) {
            count(project, taskId, QStringLiteral("status"), QStringLiteral("failed"), fresh.error().toString());
            return done();
        }
        if (!*fresh) {
            count(project, taskId, QStringLiteral("status"), QStringLiteral("duplicate"));
            return done();
        }
        StatusUpdate update;
        update.context = context;
        update.state = statusStateFromName(state).value_or(StatusState::Error);
        update.description = description;
        update.targetUrl = url;
        run<CommitStatus>(s->forge->postStatus(sha, update), [this, s, key, state, description, project, taskId, sha, context, done](const Result<CommitStatus> &r) {
            if (!r) {
                count(project, taskId, QStringLiteral("status"), r.error().code == ErrorCode::Timeout ? QStringLiteral("timeout") : QStringLiteral("failed"),
                      r.error().toString());
                return done();
            }
            if (s->state) {
                if (auto kept = s->state->setValue(key, QJsonDocument(QJsonObject{{QStringLiteral("state"), state},
                                                                                  {QStringLiteral("description"), description}})
                                                            .toJson(QJsonDocument::Compact));
                    !kept)
                    qCWarning(lcFeedback).noquote() << "cannot keep the status posted for task" << taskId << "-" << kept.error().toString();
            }
            qCDebug(lcFeedback).noquote() << "task" << taskId << "status" << context << state << "on" << shortSha(sha);
            count(project, taskId, QStringLiteral("status"), QStringLiteral("ok"));
            done();
        });
    });
}

void ForgeFeedback::withPullRequest(const std::shared_ptr<Speaker> &s, qint64 taskId, std::function<void(qint64)> then)
{
    auto task = m_engine.tasks().task(taskId);
    if (!task || !*task)
        return then(-1);
    if ((*task)->pullRequest > 0)
        return then((*task)->pullRequest);
    const QString branch = (*task)->branch;
    const QString project = s->config().id;
    run<QList<PullRequest>>(s->forge->openPullRequests(), [this, s, taskId, branch, project, then](const Result<QList<PullRequest>> &open) {
        if (!open) {
            count(project, taskId, QStringLiteral("pull-request"), QStringLiteral("failed"), open.error().toString());
            return then(-1); // unknown, not "none": opening one now could open a second
        }
        for (const PullRequest &pr : *open) {
            if (pr.headBranch != branch)
                continue;
            if (auto recorded = m_engine.tasks().recordPublication(taskId, QString(), pr.number); !recorded)
                qCWarning(lcFeedback).noquote() << "cannot record pull request" << pr.number << "of task" << taskId << "-" << recorded.error().toString();
            return then(pr.number);
        }
        then(0);
    });
}

void ForgeFeedback::postComment(const std::shared_ptr<Speaker> &s, qint64 taskId, const QString &key, const QString &text)
{
    const QString body = masked(text);
    enqueue(taskId, [this, s, taskId, key, body](std::function<void()> done) {
        const QString project = s->config().id;
        if (!s->conversation) {
            count(project, taskId, QStringLiteral("comment"), QStringLiteral("unavailable"),
                  QStringLiteral("the forge connector cannot comment on pull requests"));
            return done();
        }
        withPullRequest(s, taskId, [this, s, taskId, key, body, project, done](qint64 number) {
            if (number < 0) {
                count(project, taskId, QStringLiteral("comment"), QStringLiteral("failed"), QStringLiteral("the task's pull request cannot be told"));
                return done();
            }
            if (number == 0) {
                qCInfo(lcFeedback).noquote() << "task" << taskId << "has no pull request to comment on (" << key << ")";
                count(project, taskId, QStringLiteral("comment"), QStringLiteral("no-pull-request"));
                return done();
            }
            auto fresh = m_engine.store().recordEvent(s->source, QStringLiteral("comment:") + key, QStringLiteral("forge-feedback"),
                                                      QJsonObject{{QStringLiteral("task"), taskId}, {QStringLiteral("pullRequest"), number}});
            if (!fresh) {
                count(project, taskId, QStringLiteral("comment"), QStringLiteral("failed"), fresh.error().toString());
                return done();
            }
            if (!*fresh) {
                count(project, taskId, QStringLiteral("comment"), QStringLiteral("duplicate"));
                return done();
            }
            run<PullRequestComment>(s->conversation->postComment(number, body),
                                    [this, s, taskId, project, number, done](const Result<PullRequestComment> &r) {
                                        if (!r)
                                            count(project, taskId, QStringLiteral("comment"),
                                                  r.error().code == ErrorCode::Timeout ? QStringLiteral("timeout") : QStringLiteral("failed"),
                                                  r.error().toString());
                                        else
                                            count(project, taskId, QStringLiteral("comment"), QStringLiteral("ok"));
                                        qCDebug(lcFeedback).noquote() << "task" << taskId << "comment on #" << number << (r ? "posted" : "failed");
                                        done();
                                    });
        });
    });
}

void ForgeFeedback::openPullRequest(const std::shared_ptr<Speaker> &s, qint64 taskId)
{
    enqueue(taskId, [this, s, taskId](std::function<void()> done) {
        const QString project = s->config().id;
        auto task = m_engine.tasks().task(taskId);
        if (!task || !*task || (*task)->pullRequest > 0 || (*task)->pushedSha.isEmpty())
            return done(); // known already (an earlier step of this queue), or not on the forge
        const TaskRecord t = **task;
        // Look before opening: a pull request opened by a run that crashed before recording it,
        // or by a person, is the task's.
        withPullRequest(s, taskId, [this, s, t, project, done](qint64 number) {
            // One open already, or the forge's list unreadable: the next occasion (a stage move,
            // a gate verdict) looks again.
            if (number != 0)
                return done();
            NewPullRequest request;
            request.headBranch = t.branch;
            request.baseBranch = s->config().targetBranch;
            request.title = masked(t.title);
            const int at = t.description.indexOf(FeedbackMarker);
            const QString described = (at >= 0 ? t.description.left(at) : t.description).trimmed();
            request.body = masked((described.isEmpty() ? QString() : described + QStringLiteral("\n\n---\n"))
                                  + QStringLiteral("Opened by Sluice for task %1 of project %2. Its gate verdicts appear here as "
                                                   "commit statuses `sluice/<stage>/<gate>`.")
                                        .arg(t.id)
                                        .arg(project));
            run<PullRequest>(s->forge->createPullRequest(request), [this, s, t, project, done](const Result<PullRequest> &pr) {
                if (pr) {
                    if (auto recorded = m_engine.tasks().recordPublication(t.id, QString(), pr->number); !recorded)
                        qCWarning(lcFeedback).noquote() << "cannot record pull request" << pr->number << "of task" << t.id << "-"
                                                        << recorded.error().toString();
                    (void)m_engine.store().audit(AuditEntry{QStringLiteral("forge-feedback"), QStringLiteral("pull-request-opened"), project, t.id,
                                                            QJsonObject{{QStringLiteral("pullRequest"), pr->number},
                                                                        {QStringLiteral("branch"), t.branch},
                                                                        {QStringLiteral("head"), pr->headSha}}});
                    qCInfo(lcFeedback).noquote() << "task" << t.id << "opened pull request #" << pr->number << "for" << t.branch;
                    count(project, t.id, QStringLiteral("pull-request"), QStringLiteral("ok"));
                    return done();
                }
                if (pr.error().code != ErrorCode::Conflict && pr.error().code != ErrorCode::NotFound) {
                    count(project, t.id, QStringLiteral("pull-request"), pr.error().code == ErrorCode::Timeout ? QStringLiteral("timeout") : QStringLiteral("failed"),
                          pr.error().toString());
                    return done();
                }
                // Opened meanwhile (by a person, another node): find it and record it.
                withPullRequest(s, t.id, [this, project, t, done](qint64 found) {
                    count(project, t.id, QStringLiteral("pull-request"), found > 0 ? QStringLiteral("duplicate") : QStringLiteral("failed"),
                          found > 0 ? QString() : QStringLiteral("the forge refused to open it and none is open for the branch"));
                    done();
                });
            });
        });
    });
}

} // namespace Sluice
