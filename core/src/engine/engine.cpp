// SPDX-License-Identifier: Apache-2.0
#include "engine/engine.h"

#include "engine/gateevaluation.h"
#include "store/store.h"

#include <sluice/gate.h>
#include <sluice/secrets.h>
#include <sluice/stage.h>

#include <QElapsedTimer>
#include <QFutureWatcher>
#include <QJsonArray>
#include <QLoggingCategory>
#include <QRegularExpression>
#include <QThreadPool>
#include <QTimer>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>

namespace Sluice {

Q_LOGGING_CATEGORY(lcEngine, "sluice.core.engine", QtInfoMsg)

namespace {
// Starts the feedback section of a description: "<!-- sluice:feedback from=STAGE -->" (an
// older description may hold the marker without a stage).
const QString feedbackMarker = QStringLiteral("<!-- sluice:feedback");

const QRegularExpression &feedbackMarkerPattern()
{
    static const QRegularExpression re(QStringLiteral("<!-- sluice:feedback(?: from=(\\S+))? -->"));
    return re;
}

// The feedback documents of a verdict's evidence, capped together at @p room characters.
QString handedOnDocuments(const GateVerdict &verdict, int room)
{
    QString out;
    for (const QJsonValue &value : verdict.evidence().value(QLatin1String("feedback")).toArray()) {
        const QJsonObject document = value.toObject();
        const QString file = document.value(QLatin1String("file")).toString();
        QString text = document.value(QLatin1String("text")).toString().trimmed();
        if (text.isEmpty())
            continue;
        bool cut = document.value(QLatin1String("cut")).toBool();
        if (room <= 0) {
            out += QStringLiteral("\n### Findings in %1\n\n(not copied here: the findings above fill the room; read the file)\n").arg(file);
            continue;
        }
        if (text.size() > room) {
            int at = text.lastIndexOf(QLatin1Char('\n'), room);
            text = text.left(at > room / 2 ? at : room);
            cut = true;
        }
        // A cut document used up the room: the next ones are only named.
        room = cut ? 0 : room - int(text.size());
        out += QStringLiteral("\n### Findings in %1\n\n").arg(file)
               + (cut ? QStringLiteral("The beginning of the findings; the whole text is in %1 in your worktree, below its front matter.\n\n")
                      : QStringLiteral("As written in %1 in your worktree, below its front matter:\n\n")).arg(file)
               + text + QLatin1Char('\n');
        if (cut)
            out += QStringLiteral("\n[... cut here; read the rest in %1]\n").arg(file);
    }
    return out;
}

// A verdict's findings for a notification's data, masked (they leave the process).
QJsonArray maskedFindings(const GateVerdict &verdict)
{
    QJsonArray out;
    for (const Finding &f : verdict.findings()) {
        QJsonObject o = f.toJson();
        o.insert(QStringLiteral("message"), Redaction::mask(f.message));
        out.append(o);
    }
    return out;
}

// The thread pool's priority of a woken re-evaluation's host steps (QThreadPool: higher
// first, first in first out within one priority; everything else runs at 0). Without it a
// task whose CI just turned green queued its publish and working copy steps behind every
// working copy, harvest and first evaluation in the pool: at 200 tasks submitted at once,
// 11 of the 12.7 s from the CI success to the stage move (bench_forgeloop, docs/forge-loop.md).
constexpr int WokenStepPriority = 1;

// Runs @p work on the global thread pool at @p priority: QtConcurrent::run with a priority.
template<typename T>
QFuture<T> runPooled(int priority, std::function<T()> work)
{
    QFutureInterface<T> promise;
    promise.reportStarted();
    QFuture<T> future = promise.future();
    QThreadPool::globalInstance()->start(
        [promise, work = std::move(work)]() mutable {
            const T result = work();
            promise.reportResult(result);
            promise.reportFinished();
        },
        priority);
    return future;
}

QString slug(const QString &title)
{
    QString s = title.toLower();
    s.replace(QRegularExpression(QStringLiteral("[^a-z0-9]+")), QStringLiteral("-"));
    s = s.left(40);
    while (s.startsWith(QLatin1Char('-')))
        s.remove(0, 1);
    while (s.endsWith(QLatin1Char('-')))
        s.chop(1);
    return s.isEmpty() ? QStringLiteral("task") : s;
}
} // namespace

AdvanceRun::AdvanceRun(qint64 taskId, QObject *parent)
    : QObject(parent)
    , m_taskId(taskId)
{
}

AdvanceRun::~AdvanceRun() = default;

QString AdvanceRun::outcomeName(Outcome outcome)
{
    switch (outcome) {
    case Outcome::Advanced: return QStringLiteral("advanced");
    case Outcome::Done: return QStringLiteral("done");
    case Outcome::RolledBack: return QStringLiteral("rolled-back");
    case Outcome::Blocked: return QStringLiteral("blocked");
    case Outcome::Lost: return QStringLiteral("lost");
    case Outcome::NotActive: return QStringLiteral("not-active");
    case Outcome::Failed: return QStringLiteral("failed");
    case Outcome::Waiting: return QStringLiteral("waiting");
    }
    return {};
}

QString descriptionWithFeedback(const QString &description, const QString &gate, const GateVerdict &verdict,
                                int rollback, int maxRetries, const QString &fromStage)
{
    const int at = description.indexOf(feedbackMarker);
    QString out = (at >= 0 ? description.left(at) : description).trimmed();
    QString feedback = QStringLiteral("## Sent back by gate '%1' (rollback %2 of %3)\n\n%4\n")
                           .arg(gate)
                           .arg(rollback)
                           .arg(maxRetries)
                           .arg(verdict.reason());
    if (!verdict.findings().isEmpty()) {
        feedback += QLatin1Char('\n');
        for (const Finding &f : verdict.findings()) {
            QString where = f.file;
            if (!where.isEmpty() && f.line > 0)
                where += QStringLiteral(":%1").arg(f.line);
            feedback += QStringLiteral("- [%1] %2%3\n").arg(f.rule, where.isEmpty() ? QString() : where + QStringLiteral(": "), f.message);
        }
    }
    if (feedback.size() > MaxFeedbackChars)
        feedback = feedback.left(MaxFeedbackChars) + QStringLiteral("\n[... more findings cut here]\n");
    feedback += handedOnDocuments(verdict, MaxFeedbackChars - int(feedback.size()));
    // A simple stage name goes into the marker; anything else would not read back.
    const bool plainStage = !fromStage.isEmpty() && !fromStage.contains(QRegularExpression(QStringLiteral("\\s|-->")));
    out += QStringLiteral("\n\n%1%2 -->\n").arg(feedbackMarker, plainStage ? QStringLiteral(" from=") + fromStage : QString())
           + Redaction::mask(feedback);
    return out;
}

QString descriptionWithoutFeedback(const QString &description, const QString &passedStage)
{
    const auto match = feedbackMarkerPattern().match(description);
    if (!match.hasMatch())
        return description;
    const QString from = match.captured(1);
    // Feedback of an older Sluice does not say its stage: it goes at the first stage passed.
    if (!from.isEmpty() && from != passedStage)
        return description;
    return description.left(match.capturedStart()).trimmed();
}

Engine::Engine(Store &store, const QString &node, const QString &stateDir, QObject *parent)
    : QObject(parent)
    , m_store(store)
    , m_tasks(store)
    , m_jobs(store)
    , m_workspace(stateDir)
    , m_node(node)
{
}

Engine::~Engine() = default;

const QString Engine::PublishStep = QStringLiteral("sluice/publish");
const QString Engine::WorkspaceStep = QStringLiteral("sluice/workspace");

void Engine::setProject(std::shared_ptr<ProjectRuntime> runtime)
{
    const ProjectConfig &config = runtime->config;
    m_publishing.remove(config.id);
    if (!config.repositoryPath.isEmpty()) {
        // Read once per load: a repository with the forge as a remote gets the task branch
        // pushed before gates judge it (adding the remote takes a reload).
        auto remote = m_workspace.repository(config).remote();
        if (!remote)
            qCWarning(lcEngine).noquote() << "project" << config.id << "- cannot read the remotes of" << config.repositoryPath << "-"
                                          << remote.error().toString();
        else if (!remote->isEmpty())
            m_publishing.insert(config.id);
    }
    m_projects.insert(config.id, std::move(runtime));
}

bool Engine::removeProject(const QString &id)
{
    m_publishing.remove(id);
    return m_projects.remove(id) > 0;
}

std::shared_ptr<ProjectRuntime> Engine::project(const QString &id) const
{
    return m_projects.value(id);
}

QStringList Engine::projectIds() const
{
    QStringList ids = m_projects.keys();
    ids.sort();
    return ids;
}

EngineStats Engine::stats() const
{
    QMutexLocker lock(&m_statsMutex);
    return m_stats;
}

void Engine::auditAction(const QString &actor, const QString &action, const TaskRecord &task, const QJsonObject &details)
{
    // Which node acted: with several nodes, `sluice task` tells their moves apart.
    QJsonObject withNode = details;
    if (!withNode.contains(QLatin1String("node")))
        withNode.insert(QStringLiteral("node"), m_node);
    if (auto r = m_store.audit(AuditEntry{actor, action, task.project, task.id, withNode}); !r)
        qCWarning(lcEngine).noquote() << "cannot write audit" << action << "for task" << task.id << "-" << r.error().toString();
}

Result<qint64> Engine::submit(const QString &projectId, const QString &title, const QString &description,
                              const QString &branch, const QString &actor, const QString &trackerRef)
{
    const auto runtime = project(projectId);
    if (!runtime)
        return fail(ErrorCode::NotFound, QStringLiteral("no valid project '%1' is loaded").arg(projectId));
    if (title.trimmed().isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a task needs a title"));
    const QString firstStage = runtime->config.stages.first().name;
    // The branch name is made from the title as it will be stored (masked): a token in a
    // tracker issue's title must not end up in a ref name.
    NewTask task{projectId, title.trimmed(), description,
                 branch.isEmpty() ? QStringLiteral("sluice/") + slug(Redaction::mask(title)) : branch, firstStage, trackerRef};
    // A task never works on the target branch (or on anything git would read as something else).
    if (auto ok = checkTaskBranchName(task.branch, runtime->config.targetBranch); !ok)
        return std::unexpected(ok.error());
    auto id = m_tasks.create(task);
    if (!id)
        return std::unexpected(id.error());
    auto record = m_tasks.task(*id);
    if (!record || !*record)
        return fail(ErrorCode::Storage, QStringLiteral("task %1 vanished after it was created").arg(*id));
    auditAction(actor, QStringLiteral("submit"), **record,
                QJsonObject{{QStringLiteral("stage"), firstStage}, {QStringLiteral("branch"), task.branch}});
    qCInfo(lcEngine).noquote() << "task" << *id << "submitted to" << projectId << "on branch" << task.branch;
    notifyTask(QStringLiteral("submitted"), **record, QStringLiteral("submitted, starts in %1").arg(firstStage), QString(),
               QJsonObject{{QStringLiteral("stage"), firstStage}, {QStringLiteral("branch"), task.branch}});
    if (auto entered = enterStage(*runtime, **record, firstStage, QStringLiteral("submitted")); !entered)
        return std::unexpected(entered.error());
    return *id;
}

Result<void> Engine::enterStage(const ProjectRuntime &runtime, const TaskRecord &task, const QString &stage,
                                const QString &cause)
{
    const StageConfig *config = runtime.config.stage(stage);
    if (!config)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("project %1 has no stage '%2'").arg(task.project, stage));
    if (stage == runtime.config.stages.last().name)
        return {};
    // A passive stage (no run) is a checkpoint: its gates decide. That decision is queued
    // as an "advance" job, so it survives the process that made the move (a CLI command).
    NewJob job;
    job.taskId = task.id;
    job.project = task.project;
    job.stage = stage;
    job.kind = config->run.isEmpty() ? QStringLiteral("advance") : QStringLiteral("stage");
    job.maxAttempts = runtime.config.jobMaxAttempts;
    // The task version the job belongs to: the reconciler tells this visit's job from one of
    // an earlier visit to the same stage by it.
    job.payload = QJsonObject{{QStringLiteral("cause"), cause}, {QStringLiteral("taskVersion"), double(task.version)}};
    auto enqueued = m_jobs.enqueue(job);
    if (!enqueued)
        return std::unexpected(enqueued.error());
    if (*enqueued) {
        qCDebug(lcEngine).noquote() << "enqueued job" << **enqueued << "for task" << task.id << "stage" << stage;
        Q_EMIT jobEnqueued();
    } else {
        qCInfo(lcEngine).noquote() << "task" << task.id << "already has an open job for stage" << stage;
    }
    return {};
}

AdvanceRun *Engine::advance(qint64 taskId, const QString &fromStage, const QString &cause)
{
    auto *run = new AdvanceRun(taskId, this);
    run->m_cause = cause;
    ++m_inFlight;
    ++m_advancing[taskId];
    auto task = m_tasks.task(taskId);
    if (!task) {
        QTimer::singleShot(0, run, [this, run, e = task.error()] { finish(run, AdvanceRun::Outcome::Failed, e.toString()); });
        return run;
    }
    if (!*task || (*task)->status != QLatin1String("active")) {
        const QString why = *task ? QStringLiteral("task %1 is %2").arg(taskId).arg((*task)->status)
                                  : QStringLiteral("no task %1").arg(taskId);
        QTimer::singleShot(0, run, [this, run, why] { finish(run, AdvanceRun::Outcome::NotActive, why); });
        return run;
    }
    run->m_task = **task;
    run->m_from = run->m_task.stage;
    if (!fromStage.isEmpty() && fromStage != run->m_from) {
        // The caller saw an older state: another caller moved the task already.
        QTimer::singleShot(0, run, [this, run, fromStage] {
            QMutexLocker lock(&m_statsMutex);
            ++m_stats.lostClaims;
            lock.unlock();
            finish(run, AdvanceRun::Outcome::Lost,
                   QStringLiteral("task %1 left stage %2 already (now in %3)").arg(run->m_taskId).arg(fromStage, run->m_from));
        });
        return run;
    }
    run->m_runtime = project(run->m_task.project);
    if (!run->m_runtime) {
        QTimer::singleShot(0, run, [this, run] {
            finish(run, AdvanceRun::Outcome::Failed, QStringLiteral("project %1 is not loaded").arg(run->m_task.project));
        });
        return run;
    }
    const ProjectConfig &config = run->m_runtime->config;
    int index = -1;
    for (int i = 0; i < config.stages.size(); ++i) {
        if (config.stages[i].name == run->m_from)
            index = i;
    }
    if (index < 0 || index + 1 >= config.stages.size()) {
        QTimer::singleShot(0, run, [this, run] {
            finish(run, AdvanceRun::Outcome::Failed,
                   QStringLiteral("stage '%1' has no next stage in project %2").arg(run->m_from, run->m_task.project));
        });
        return run;
    }
    run->m_to = config.stages[index + 1].name;
    for (const QString &gate : config.stages[index].exitGates)
        run->m_gates.append({gate, QString()});
    for (const EdgeConfig &edge : config.edges) {
        if (edge.from == run->m_from && edge.to == run->m_to) {
            for (const QString &gate : edge.gates)
                run->m_gates.append({gate, edge.to});
        }
    }
    // Gates read the task's working copy: on this node it is made to hold the task's head and
    // what its last job left for gates, wherever that job ran.
    if (!run->m_gates.isEmpty() && !config.repositoryPath.isEmpty())
        run->m_gates.prepend({WorkspaceStep, QString()});
    // Before any gate judges the task: the target is fetched and the task's head pushed to
    // the forge (for a repository with a remote), so every gate sees what the forge sees.
    if (m_publishing.contains(config.id))
        run->m_gates.prepend({PublishStep, QString()});
    qCDebug(lcEngine).noquote() << "advance task" << taskId << "from" << run->m_from << "(" << cause << ")," << run->m_gates.size() << "gate(s)";
    // Always asynchronous, so callers can connect to finished() after this returns.
    QTimer::singleShot(0, run, [this, run] { evaluateNextGate(run); });
    return run;
}

void Engine::evaluateNextGate(AdvanceRun *run)
{
    if (run->m_next >= run->m_gates.size()) {
        decide(run, QString(), GateVerdict());
        return;
    }
    const auto [instance, toStage] = run->m_gates.at(run->m_next);
    if (instance == PublishStep) {
        publish(run);
        return;
    }
    if (instance == WorkspaceStep) {
        prepareWorkspace(run);
        return;
    }
    Gate *gate = run->m_runtime->instances.as<Gate>(instance);
    GateRequest request;
    request.task = run->m_task.toInfo();
    request.fromStage = run->m_from;
    request.toStage = run->m_to;
    request.worktree = m_workspace.worktreePath(run->m_task.project, run->m_task.id);
    request.artifactsDir = m_workspace.artifactsPath(run->m_task.project, run->m_task.id);

    if (!gate) {
        recordVerdict(run, instance, toStage, GateVerdict::error(QStringLiteral("gate instance '%1' is not available").arg(instance)), 0);
        return;
    }
    run->m_evaluation = std::make_unique<GateEvaluation>(*gate, request, std::chrono::milliseconds(run->m_runtime->config.gateTimeoutMs));
    connect(run->m_evaluation.get(), &GateEvaluation::finished, run,
            [this, run, instance = instance, toStage = toStage](GateEvaluation *evaluation) {
                const GateVerdict verdict = evaluation->verdict();
                const qint64 duration = evaluation->durationMs();
                // The evaluation object goes away after this handler; recording may start the next one.
                QTimer::singleShot(0, run, [this, run, instance, toStage, verdict, duration] {
                    recordVerdict(run, instance, toStage, verdict, duration);
                });
            });
    run->m_evaluation->start();
}

// What the forge's copy of a task's branch means for the task (docs/forge-loop.md, "a push that
// Sluice did not make"). Read on the thread pool.
struct ForgeHeadRead {
    enum class Kind {
        Ours,   ///< The forge has nothing, or what Sluice pushed (or its head): publish as usual.
        Adopt,  ///< Someone else pushed @ref head: it becomes the task's head and is judged.
        Refuse, ///< Someone else pushed, and Sluice cannot take it: the task is blocked (@ref reason).
    };
    Kind kind = Kind::Ours;
    QString head;             ///< The forge's commit of the task branch (empty: no such branch).
    bool dropsPushed = false; ///< Adopt: the push drops commits Sluice had pushed (a force-push).
    QString reason;           ///< Refuse: why, and what a person does.
    QList<Finding> findings;  ///< Refuse for secrets: the findings, masked.
};

namespace {
QString shortSha(const QString &sha)
{
    return sha.isEmpty() ? QStringLiteral("nothing") : sha.left(12);
}

Result<ForgeHeadRead> readForgeHead(const ProjectRepository &repo, const TaskRecord &task, const QString &target,
                                    const Engine::CommitScanner &scanner, bool adopt)
{
    auto at = repo.forgeBranchHead(task.branch);
    if (!at)
        return std::unexpected(at.error());
    ForgeHeadRead read;
    if (!*at)
        return read;
    read.head = **at;
    if (read.head == task.pushedSha || read.head == task.headSha)
        return read;
    // The merge gate's push of the task's head rebased onto the target is Sluice's own.
    if (auto gatePushed = repo.sluicePushed(task.branch); gatePushed && *gatePushed == read.head)
        return read;
    // Someone else moved the task's branch at the forge.
    const QString moved = QStringLiteral("task branch %1 was moved at the forge to %2 by someone other than Sluice (Sluice last pushed %3)")
                              .arg(task.branch, shortSha(read.head), shortSha(task.pushedSha));
    read.kind = ForgeHeadRead::Kind::Refuse;
    if (!adopt) {
        read.reason = moved + QStringLiteral("; this project refuses outside pushes (repository.outside_pushes: block). Put Sluice's "
                                             "head back at the forge (git push --force-with-lease) or take the push by setting "
                                             "outside_pushes: adopt, then `sluice retry %1`").arg(task.id);
        return read;
    }
    if (!task.headSha.isEmpty() && task.headSha != task.pushedSha) {
        // The task's newer head (a job's work) is not at the forge yet, and the push there is
        // not built on it: neither replaces the other without a person.
        auto contains = repo.isAncestor(task.headSha, read.head);
        if (!contains)
            return std::unexpected(contains.error());
        if (!*contains) {
            read.reason = moved + QStringLiteral(" while the task's newer head %1 was not pushed yet: the two diverged, and Sluice "
                                                 "replaces neither. Push the version to keep to the task branch at the forge (the "
                                                 "task's head is refs/heads/%2 in %3), then `sluice retry %4`")
                                      .arg(shortSha(task.headSha), task.branch, repo.path()).arg(task.id);
            return read;
        }
    }
    // Judged like an agent's commits: the secret scan of what the branch adds to the target.
    if (!scanner)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("no secret scanner is available to check the commits pushed to %1").arg(task.branch));
    auto findings = scanner(repo.path(), target, read.head);
    if (!findings)
        return fail(findings.error().code, QStringLiteral("cannot scan the commits pushed to %1 at the forge: %2").arg(task.branch, findings.error().message));
    if (!findings->isEmpty()) {
        read.findings = *findings;
        read.reason = moved + QStringLiteral(", and its commits hold %1 secret(s): they are on the forge already. Rotate them, remove "
                                             "them from the branch's history at the forge, then `sluice retry %2`")
                                  .arg(findings->size()).arg(task.id);
        for (const Finding &f : std::as_const(*findings))
            read.reason += QStringLiteral("\n- [%1] %2%3").arg(f.rule, f.file.isEmpty() ? QString() : f.file + QStringLiteral(": "), f.message);
        return read;
    }
    if (!task.pushedSha.isEmpty()) {
        auto keeps = repo.isAncestor(task.pushedSha, read.head);
        if (!keeps)
            return std::unexpected(keeps.error());
        read.dropsPushed = !*keeps;
    }
    // The project's repository follows: the task branch there is the head the task has now
    // (the old one stays in the branch's reflog).
    auto local = repo.branchHead(task.branch);
    if (local) {
        if (auto moved2 = repo.moveBranch(task.branch, read.head, local->value_or(QString()), QStringLiteral("took a push at the forge"));
            !moved2)
            qCWarning(lcEngine).noquote() << "task" << task.id << "- cannot move" << task.branch << "to the forge's head:" << moved2.error().toString();
    }
    read.kind = ForgeHeadRead::Kind::Adopt;
    return read;
}

struct Publication {
    GateVerdict verdict;
    QString pushed;     ///< Set when this step pushed the head (or found it at the forge).
    ForgeHeadRead forge; ///< What the forge's branch held before anything was pushed.
};

// Runs on the thread pool: fetch the target, look at the forge's task branch, scan what would
// leave, push the task branch.
Publication publishHead(const ProjectRepository &repo, const TaskRecord &task, const Engine::CommitScanner &scanner, bool adopt)
{
    auto target = repo.refreshTarget();
    if (!target)
        return {GateVerdict::error(QStringLiteral("cannot read the target branch before judging the task: %1").arg(target.error().message)), {}, {}};
    if (task.headSha.isEmpty())
        return {GateVerdict::pass(QStringLiteral("no head recorded yet; nothing to push")), {}, {}};
    // A push Sluice did not make is never published over, and never passes unjudged.
    auto forge = readForgeHead(repo, task, *target, scanner, adopt);
    if (!forge)
        return {GateVerdict::error(QStringLiteral("cannot read the task branch at the forge before judging the task: %1").arg(forge.error().message)), {}, {}};
    if (forge->kind == ForgeHeadRead::Kind::Refuse)
        return {GateVerdict::fail(forge->reason, forge->findings), {}, *forge};
    if (forge->kind == ForgeHeadRead::Kind::Adopt)
        return {GateVerdict::pass(QStringLiteral("took %1, pushed to %2 at the forge by someone else").arg(forge->head.left(12), task.branch)), {}, *forge};
    if (task.pushedSha == task.headSha)
        return {GateVerdict::pass(QStringLiteral("the forge has head %1").arg(task.headSha.left(12))), {}, *forge};
    if (forge->head == task.headSha) // pushed by a node that did not get to record it
        return {GateVerdict::pass(QStringLiteral("the forge has head %1").arg(task.headSha.left(12))), task.headSha, *forge};
    // Another node may have taken the head into its own clone: then the forge may have it
    // (pushed there by that node), and otherwise nothing here can publish it.
    auto present = repo.hasCommit(task.headSha);
    if (present && !*present) {
        if (auto fetched = repo.fetchTaskBranch(task.branch); !fetched)
            return {GateVerdict::error(fetched.error().message), {}, *forge};
        present = repo.hasCommit(task.headSha);
    }
    if (!present)
        return {GateVerdict::error(QStringLiteral("cannot look for the task's head: %1").arg(present.error().message)), {}, *forge};
    if (!*present)
        return {GateVerdict::error(QStringLiteral("the task's head %1 is neither in %2 nor at the forge: the node whose job made it "
                                                  "has not pushed it").arg(task.headSha.left(12), repo.path())), {}, *forge};
    // Nothing leaves this machine before the secret scan: not even a task branch.
    if (!scanner)
        return {GateVerdict::error(QStringLiteral("no secret scanner is available to check the task's commits before they are "
                                                  "pushed; nothing was pushed")), {}, *forge};
    auto findings = scanner(repo.path(), *target, task.headSha);
    if (!findings)
        return {GateVerdict::error(QStringLiteral("cannot scan the task's commits for secrets, so nothing was pushed: %1")
                                       .arg(findings.error().message)), {}, *forge};
    if (!findings->isEmpty())
        return {GateVerdict::fail(QStringLiteral("%1 secret(s) in the task's commits; nothing was pushed to the forge. Remove them "
                                                 "from the branch's history (amend or rebase the commits that add them), not only "
                                                 "from the latest version").arg(findings->size()),
                                  *findings),
                {}, *forge};
    // The lease is what the store says Sluice pushed last, whichever node pushed it.
    auto pushed = repo.publish(task.branch, task.headSha, task.pushedSha);
    if (!pushed)
        return {GateVerdict::error(QStringLiteral("cannot push the task branch %1 to the forge: %2").arg(task.branch, pushed.error().message)), {}, *forge};
    return {GateVerdict::pass(QStringLiteral("pushed %1 to %2").arg(task.headSha.left(12), task.branch)), *pushed, *forge};
}
} // namespace

QString Engine::outsidePusher(const TaskRecord &task, const QString &head) const
{
    // The push delivery (ForgeListener) audits who pushed; found by polling, nobody is known.
    if (auto history = m_tasks.history(task.id)) {
        for (auto it = history->crbegin(); it != history->crend(); ++it) {
            if (it->action == QLatin1String("forge-push") && it->details.value(QLatin1String("after")).toString() == head)
                return it->actor;
        }
    }
    return QStringLiteral("forge");
}

Engine::ForgeHeadOutcome Engine::takeForgeHead(TaskRecord &task, const QString &stage, const ForgeHeadRead &read, const GateVerdict &verdict,
                                               const QString &how, bool onlyIdle)
{
    if (read.kind == ForgeHeadRead::Kind::Ours)
        return ForgeHeadOutcome::Ours;
    const QString actor = outsidePusher(task, read.head);
    if (read.kind == ForgeHeadRead::Kind::Refuse) {
        GateRunRecord r;
        r.taskId = task.id;
        r.project = task.project;
        r.stage = stage;
        r.gate = PublishStep;
        r.headSha = task.headSha;
        r.verdict = verdict;
        if (auto ok = m_tasks.recordGateRun(r); !ok)
            qCWarning(lcEngine).noquote() << "cannot record verdict of" << PublishStep << "-" << ok.error().toString();
        auto blocked = block(task.id, stage, read.reason, QStringLiteral("sluice"));
        if (!blocked) {
            qCWarning(lcEngine).noquote() << "cannot block task" << task.id << "-" << blocked.error().toString();
            return ForgeHeadOutcome::Failed;
        }
        return *blocked ? ForgeHeadOutcome::Blocked : ForgeHeadOutcome::Lost;
    }
    auto adopted = m_tasks.adoptForgeHead(task.id, task.headSha, task.pushedSha, read.head, onlyIdle);
    if (!adopted) {
        qCWarning(lcEngine).noquote() << "cannot record the forge's head of task" << task.id << "-" << adopted.error().toString();
        return ForgeHeadOutcome::Failed;
    }
    if (!*adopted)
        return ForgeHeadOutcome::Lost; // a job's new work or another node came first: it decides
    qCWarning(lcEngine).noquote() << "task" << task.id << "takes" << read.head.left(12) << "pushed to" << task.branch << "at the forge by"
                                  << actor << (read.dropsPushed ? "(a force-push dropping" : "(after") << shortSha(task.pushedSha)
                                  << (read.dropsPushed ? ")" : "pushed by Sluice)") << "- its gates judge it again";
    auditAction(actor, QStringLiteral("head-adopted"), task,
                QJsonObject{{QStringLiteral("branch"), task.branch}, {QStringLiteral("stage"), stage},
                            {QStringLiteral("from"), task.headSha}, {QStringLiteral("pushed"), task.pushedSha},
                            {QStringLiteral("to"), read.head}, {QStringLiteral("forced"), read.dropsPushed},
                            {QStringLiteral("found"), how}});
    task.headSha = read.head;
    task.pushedSha = read.head;
    Q_EMIT published(task.id, read.head);
    return ForgeHeadOutcome::Adopted;
}

void Engine::publish(AdvanceRun *run)
{
    const ProjectRepository repo = m_workspace.repository(run->m_runtime->config);
    const TaskRecord task = run->m_task;
    const CommitScanner scanner = m_commitScanner;
    const bool adopt = run->m_runtime->config.adoptOutsidePushes;
    auto *watcher = new QFutureWatcher<Publication>(run);
    QElapsedTimer clock;
    clock.start();
    connect(watcher, &QFutureWatcher<Publication>::finished, run, [this, run, watcher, clock] {
        const Publication done = watcher->result();
        watcher->deleteLater();
        switch (takeForgeHead(run->m_task, run->m_from, done.forge, done.verdict, QStringLiteral("publish step"))) {
        case ForgeHeadOutcome::Ours:
        case ForgeHeadOutcome::Adopted:
            break;
        case ForgeHeadOutcome::Blocked:
            return finish(run, AdvanceRun::Outcome::Blocked, done.forge.reason);
        case ForgeHeadOutcome::Lost:
            return finish(run, AdvanceRun::Outcome::Lost, QStringLiteral("task %1 changed while the forge's head of its branch was read").arg(run->m_task.id));
        case ForgeHeadOutcome::Failed:
            return finish(run, AdvanceRun::Outcome::Failed, QStringLiteral("cannot record what the forge holds of task %1").arg(run->m_task.id));
        }
        if (!done.pushed.isEmpty()) {
            run->m_task.pushedSha = done.pushed;
            if (auto recorded = m_tasks.recordPublication(run->m_task.id, done.pushed); !recorded)
                qCWarning(lcEngine).noquote() << "cannot record the push of task" << run->m_task.id << "-" << recorded.error().toString();
            else
                qCInfo(lcEngine).noquote() << "task" << run->m_task.id << "pushed" << done.pushed.left(12) << "to its branch"
                                           << run->m_task.branch << "at the forge";
            Q_EMIT published(run->m_task.id, done.pushed);
        }
        recordVerdict(run, PublishStep, QString(), done.verdict, clock.elapsed());
    });
    watcher->setFuture(runPooled<Publication>(run->m_woken ? WokenStepPriority : 0,
                                              [repo, task, scanner, adopt] { return publishHead(repo, task, scanner, adopt); }));
}

void Engine::lookAtForgeHead(qint64 taskId, const QString &cause)
{
    auto found = m_tasks.task(taskId);
    if (!found || !*found || (*found)->status != QLatin1String("active"))
        return;
    const TaskRecord task = **found;
    const auto runtime = project(task.project);
    if (!runtime || !m_publishing.contains(task.project))
        return;
    // A task at work keeps its head: the publish step after the job decides (a job claimed
    // after this look loses the compare-and-swap below instead).
    auto jobs = m_jobs.jobsForTask(task.id);
    if (!jobs) {
        qCWarning(lcEngine).noquote() << "cannot read the jobs of task" << task.id << "-" << jobs.error().toString();
        return;
    }
    for (const JobRecord &job : std::as_const(*jobs)) {
        if (job.status == QLatin1String("queued") || job.status == QLatin1String("running"))
            return;
    }
    const ProjectRepository repo = m_workspace.repository(runtime->config);
    const CommitScanner scanner = m_commitScanner;
    const bool adopt = runtime->config.adoptOutsidePushes;
    auto *watcher = new QFutureWatcher<Result<ForgeHeadRead>>(this);
    connect(watcher, &QFutureWatcher<Result<ForgeHeadRead>>::finished, this, [this, watcher, task, cause] {
        const Result<ForgeHeadRead> read = watcher->result();
        watcher->deleteLater();
        if (!read) {
            qCWarning(lcEngine).noquote() << "task" << task.id << "- cannot read its branch at the forge (" << cause << ") -" << read.error().toString()
                                          << "; its next evaluation looks again";
            return;
        }
        TaskRecord current = task;
        (void)takeForgeHead(current, task.stage, *read, GateVerdict::fail(read->reason, read->findings), cause, true);
    });
    watcher->setFuture(QtConcurrent::run([repo, task, scanner, adopt]() -> Result<ForgeHeadRead> {
        auto target = repo.refreshTarget();
        if (!target)
            return std::unexpected(target.error());
        return readForgeHead(repo, task, *target, scanner, adopt);
    }));
}

void Engine::prepareWorkspace(AdvanceRun *run)
{
    const Workspace workspace = m_workspace;
    const ProjectConfig config = run->m_runtime->config;
    const TaskRecord task = run->m_task;
    // Read here, on the advance's own thread: the task store's prepared statements belong to
    // the connection of the thread that prepared them, and a pool thread's connection may be
    // in use by another engine's store at the same moment (tst_engine's eight racers on
    // PostgreSQL hung in libpq when this read ran in the pool).
    const Result<TaskStore::StageFiles> files = m_tasks.stageFiles(task.id);
    auto *watcher = new QFutureWatcher<GateVerdict>(run);
    QElapsedTimer clock;
    clock.start();
    connect(watcher, &QFutureWatcher<GateVerdict>::finished, run, [this, run, watcher, clock] {
        const GateVerdict verdict = watcher->result();
        watcher->deleteLater();
        recordVerdict(run, WorkspaceStep, QString(), verdict, clock.elapsed());
    });
    watcher->setFuture(runPooled<GateVerdict>(run->m_woken ? WokenStepPriority : 0, [workspace, config, task, files]() -> GateVerdict {
        if (!files)
            return GateVerdict::error(QStringLiteral("cannot read what the task's last job left for gates: %1").arg(files.error().message));
        if (files->jobId == 0) {
            // No job of the task took work from a working copy yet (none has one, or they ran
            // before this version): whatever copy there is stays as it is.
            return GateVerdict::pass(QStringLiteral("no job recorded files for gates"));
        }
        auto copy = workspace.prepareForGates(config, task, files->files);
        if (!copy)
            return GateVerdict::error(QStringLiteral("cannot prepare the task's working copy for its gates: %1").arg(copy.error().message));
        return GateVerdict::pass(QStringLiteral("working copy %1 with %2 file(s) of job %3").arg(*copy).arg(files->files.size()).arg(files->jobId));
    }));
}

void Engine::recordVerdict(AdvanceRun *run, const QString &instance, const QString &toStage, const GateVerdict &verdict, qint64 durationMs)
{
    if ((instance == PublishStep || instance == WorkspaceStep) && verdict.allowsPassage()) {
        // The host's own step before the gates: heard of only when it stops a task.
        ++run->m_next;
        evaluateNextGate(run);
        return;
    }
    {
        QMutexLocker lock(&m_statsMutex);
        ++m_stats.verdicts[{instance, GateVerdict::resultName(verdict.result())}];
    }
    if (verdict.result() == GateVerdict::Result::Wait) {
        // Not a decision: no gate run is recorded and nobody is told of a failure.
        waitFor(run, instance, verdict);
        return;
    }
    GateRunRecord r;
    r.taskId = run->m_task.id;
    r.project = run->m_task.project;
    r.stage = run->m_from;
    r.toStage = toStage;
    r.gate = instance;
    r.headSha = run->m_task.headSha;
    r.verdict = verdict;
    r.durationMs = durationMs;
    if (auto ok = m_tasks.recordGateRun(r); !ok)
        qCWarning(lcEngine).noquote() << "cannot record verdict of" << instance << "-" << ok.error().toString();
    qCInfo(lcEngine).noquote() << "task" << run->m_task.id << "gate" << instance << "→"
                               << GateVerdict::resultName(verdict.result()) << "-" << verdict.reason();
    // A gate that found or opened the task's pull request says which (the merge gate).
    const qint64 pullRequest = verdict.evidence().value(QLatin1String("pullRequest")).toVariant().toLongLong();
    if (pullRequest > 0 && pullRequest != run->m_task.pullRequest) {
        run->m_task.pullRequest = pullRequest;
        if (auto recorded = m_tasks.recordPublication(run->m_task.id, QString(), pullRequest); !recorded)
            qCWarning(lcEngine).noquote() << "cannot record pull request" << pullRequest << "of task" << run->m_task.id << "-"
                                          << recorded.error().toString();
    }
    {
        const bool passed = verdict.allowsPassage();
        QString text = verdict.reason();
        for (const Finding &f : verdict.findings())
            text += QStringLiteral("\n- [%1] %2%3").arg(f.rule, f.file.isEmpty() ? QString() : f.file + QStringLiteral(": "), f.message);
        notifyTask(passed ? QStringLiteral("gate-passed") : QStringLiteral("gate-failed"), run->m_task,
                   QStringLiteral("gate %1 → %2 in %3").arg(instance, GateVerdict::resultName(verdict.result()), run->m_from), text,
                   QJsonObject{{QStringLiteral("gate"), instance}, {QStringLiteral("stage"), run->m_from},
                               {QStringLiteral("result"), GateVerdict::resultName(verdict.result())},
                               {QStringLiteral("reason"), verdict.reason()}, {QStringLiteral("head"), run->m_task.headSha}});
        // A gate that could only partly look (an auditor missing or timing out) says so
        // in its evidence: people hear of it even when the verdict lets the task pass.
        const int degraded = verdict.evidence().value(QLatin1String("degraded")).toInt();
        if (degraded > 0)
            notifyTask(QStringLiteral("audit-degraded"), run->m_task,
                       QStringLiteral("gate %1 ran degraded (%2) in %3").arg(instance).arg(degraded).arg(run->m_from), verdict.reason(),
                       QJsonObject{{QStringLiteral("gate"), instance}, {QStringLiteral("stage"), run->m_from},
                                   {QStringLiteral("degraded"), degraded}, {QStringLiteral("result"), GateVerdict::resultName(verdict.result())}});
    }
    if (verdict.allowsPassage()) {
        // A gate that moved the branch (the merge gate rebasing it) reports the new head:
        // the gates after it judge that head, and the transition records it.
        const QString head = verdict.evidence().value(QLatin1String("head")).toString();
        if (!head.isEmpty() && head != run->m_task.headSha) {
            qCInfo(lcEngine).noquote() << "task" << run->m_task.id << (run->m_task.headSha.isEmpty() ? "head set by gate" : "head moved by gate")
                                       << instance << "to" << head;
            run->m_task.headSha = head;
            run->m_headMoved = true;
        }
        ++run->m_next;
        evaluateNextGate(run);
    } else {
        decide(run, instance, verdict);
    }
}

void Engine::waitFor(AdvanceRun *run, const QString &gate, const GateVerdict &verdict)
{
    using namespace std::chrono;
    const milliseconds retry = std::clamp<milliseconds>(verdict.retryAfter(), seconds(1), hours(1));
    const TaskRecord &task = run->m_task;
    qCInfo(lcEngine).noquote() << "task" << task.id << "gate" << gate << "→ wait -" << verdict.reason() << "; evaluated again in"
                               << retry.count() << "ms";
    auditAction(QStringLiteral("engine"), QStringLiteral("gate-wait"), task,
                QJsonObject{{QStringLiteral("gate"), gate}, {QStringLiteral("stage"), run->m_from}, {QStringLiteral("to"), run->m_to},
                            {QStringLiteral("reason"), verdict.reason()}, {QStringLiteral("retryAfterMs"), double(retry.count())},
                            {QStringLiteral("evidence"), verdict.evidence()}});
    // Whoever shows the task's state (statuses on the pull request) hears of the wait too.
    notifyTask(QStringLiteral("gate-waiting"), task, QStringLiteral("gate %1 waits in %2").arg(gate, run->m_from), verdict.reason(),
               QJsonObject{{QStringLiteral("gate"), gate}, {QStringLiteral("stage"), run->m_from}, {QStringLiteral("result"), QStringLiteral("wait")},
                           {QStringLiteral("reason"), verdict.reason()}, {QStringLiteral("head"), task.headSha}});
    // One scheduled look per task, however many runs ended waiting (the reconciler may re-drive
    // a waiting task too). A look that finds the task moved, blocked or gone does nothing. A
    // forge event may bring it forward (wake()).
    if (!m_waiting.contains(task.id)) {
        auto *timer = new QTimer(this);
        timer->setSingleShot(true);
        m_waiting.insert(task.id, WaitingLook{timer, run->m_from, gate});
        connect(timer, &QTimer::timeout, this, [this, id = task.id, from = run->m_from, gate, timer] {
            m_waiting.remove(id);
            timer->deleteLater();
            if (!isAdvancing(id))
                (void)advance(id, from, QStringLiteral("gate %1 asked to wait").arg(gate));
        });
        timer->start(retry);
    }
    finish(run, AdvanceRun::Outcome::Waiting, verdict.reason());
}

Engine::Wake Engine::wake(qint64 taskId, const QString &cause)
{
    if (m_advancing.contains(taskId)) {
        m_lookAgain.insert(taskId, cause);
        return Wake::Deferred;
    }
    const auto it = m_waiting.find(taskId);
    if (it == m_waiting.end())
        return Wake::NotWaiting;
    const WaitingLook look = *it;
    m_waiting.erase(it);
    look.timer->stop();
    look.timer->deleteLater();
    qCDebug(lcEngine).noquote() << "task" << taskId << "waiting on gate" << look.gate << "in" << look.from << "looked at again now:" << cause;
    // Its steps start on the next event loop turn (advance() is always asynchronous): in time.
    advance(taskId, look.from, cause)->m_woken = true;
    return Wake::Woken;
}

void Engine::decide(AdvanceRun *run, const QString &failedGate, const GateVerdict &failure)
{
    if (failedGate.isEmpty()) {
        advancePassed(run);
        return;
    }
    // A gate said no: the red policy.
    if (run->m_task.retries + 1 > run->m_runtime->config.maxRetries)
        blockFailed(run, failedGate, failure);
    else
        rollBack(run, failedGate, failure);
}

bool Engine::claimMove(AdvanceRun *run, const QString &to, const TaskChange &change, LostClaim lost)
{
    auto won = m_tasks.claimTransition(run->m_task.id, run->m_from, to, change);
    if (!won) {
        finish(run, AdvanceRun::Outcome::Failed, won.error().toString());
        return false;
    }
    if (!*won) {
        if (lost == LostClaim::Counted) {
            QMutexLocker lock(&m_statsMutex);
            ++m_stats.lostClaims;
        }
        finish(run, AdvanceRun::Outcome::Lost, QStringLiteral("task %1 was moved by someone else").arg(run->m_task.id));
        return false;
    }
    return true;
}

void Engine::advancePassed(AdvanceRun *run)
{
    const ProjectRuntime &runtime = *run->m_runtime;
    const ProjectConfig &config = runtime.config;
    TaskRecord &task = run->m_task;
    const QString actor = QStringLiteral("engine");

    const bool last = run->m_to == config.stages.last().name;
    TaskChange change;
    change.ifVersion = task.version;
    if (run->m_headMoved)
        change.headSha = task.headSha;
    if (last)
        change.status = QStringLiteral("done");
    // The task passed the stage whose gate sent it back: that feedback is answered.
    if (const QString cleared = descriptionWithoutFeedback(task.description, run->m_from); cleared != task.description)
        change.description = cleared;
    if (!claimMove(run, run->m_to, change, LostClaim::Counted))
        return;
    // Won the claim: only now act.
    task.stage = run->m_to;
    if (change.description)
        task.description = *change.description;
    task.version = *change.ifVersion + 1;
    QJsonArray gates;
    for (const auto &[g, to] : std::as_const(run->m_gates))
        gates.append(g);
    auditAction(actor, last ? QStringLiteral("done") : QStringLiteral("advance"), task,
                QJsonObject{{QStringLiteral("from"), run->m_from}, {QStringLiteral("to"), run->m_to},
                            {QStringLiteral("cause"), run->m_cause}, {QStringLiteral("gates"), gates}});
    {
        QMutexLocker lock(&m_statsMutex);
        ++(last ? m_stats.done : m_stats.advances);
    }
    qCInfo(lcEngine).noquote() << "task" << task.id << "moved" << run->m_from << "→" << run->m_to << (last ? "(done)" : "");
    Q_EMIT taskChanged(task.id, last ? QStringLiteral("done") : QStringLiteral("advanced"), run->m_to);
    notifyTask(last ? QStringLiteral("done") : QStringLiteral("stage-changed"), task,
               last ? QStringLiteral("done (%1 → %2)").arg(run->m_from, run->m_to) : QStringLiteral("moved %1 → %2").arg(run->m_from, run->m_to),
               QString(), QJsonObject{{QStringLiteral("from"), run->m_from}, {QStringLiteral("to"), run->m_to}, {QStringLiteral("stage"), run->m_to}});
    if (last) {
        // The task is finished: its checkout goes (off the event loop), its branch stays.
        (void)QtConcurrent::run([workspace = m_workspace, config, id = task.id] {
            if (auto removed = workspace.removeWorktree(config, id); !removed)
                qCWarning(lcEngine).noquote() << "cannot remove the worktree of task" << id << "-" << removed.error().toString();
        });
    }
    if (!last) {
        if (auto entered = enterStage(runtime, task, run->m_to, QStringLiteral("advanced from %1").arg(run->m_from)); !entered) {
            // The move is claimed and stays; the missing job is reported and audited so it can be re-driven.
            auditAction(actor, QStringLiteral("enqueue-failed"), task,
                        QJsonObject{{QStringLiteral("stage"), run->m_to}, {QStringLiteral("error"), entered.error().toString()}});
            finish(run, AdvanceRun::Outcome::Failed, entered.error().toString());
            return;
        }
    }
    finish(run, last ? AdvanceRun::Outcome::Done : AdvanceRun::Outcome::Advanced, QString());
}

QJsonObject Engine::redEvidence(const AdvanceRun *run, const QString &failedGate, const GateVerdict &failure)
{
    return QJsonObject{{QStringLiteral("gate"), failedGate},
                       {QStringLiteral("verdict"), failure.toJson()},
                       {QStringLiteral("cause"), run->m_cause}};
}

void Engine::blockFailed(AdvanceRun *run, const QString &failedGate, const GateVerdict &failure)
{
    TaskRecord &task = run->m_task;
    const QString reason = QStringLiteral("gate '%1' failed after %2 rollback(s): %3")
                               .arg(failedGate).arg(task.retries).arg(failure.reason());
    TaskChange change;
    change.ifVersion = task.version;
    change.status = QStringLiteral("blocked");
    change.blockedReason = reason;
    if (!claimMove(run, run->m_from, change, LostClaim::Uncounted))
        return;
    if (auto released = m_store.releaseTaskLeases(task.id); !released)
        qCWarning(lcEngine).noquote() << "cannot release leases of task" << task.id << "-" << released.error().toString();
    auditAction(QStringLiteral("engine"), QStringLiteral("blocked"), task, redEvidence(run, failedGate, failure));
    {
        QMutexLocker lock(&m_statsMutex);
        ++m_stats.blocked;
    }
    qCWarning(lcEngine).noquote() << "task" << task.id << "blocked:" << reason;
    Q_EMIT taskChanged(task.id, QStringLiteral("blocked"), run->m_from);
    notifyTask(QStringLiteral("blocked"), task, QStringLiteral("blocked in %1").arg(run->m_from), reason,
               QJsonObject{{QStringLiteral("stage"), run->m_from}, {QStringLiteral("gate"), failedGate},
                           {QStringLiteral("reason"), failure.reason()}, {QStringLiteral("head"), task.headSha},
                           {QStringLiteral("findings"), maskedFindings(failure)}});
    finish(run, AdvanceRun::Outcome::Blocked, reason);
}

void Engine::rollBack(AdvanceRun *run, const QString &failedGate, const GateVerdict &failure)
{
    const ProjectRuntime &runtime = *run->m_runtime;
    const ProjectConfig &config = runtime.config;
    TaskRecord &task = run->m_task;
    const QString actor = QStringLiteral("engine");
    const int rollback = task.retries + 1;

    const QString target = config.rollbackTo;
    TaskChange change;
    change.ifVersion = task.version;
    change.retries = rollback;
    change.description = descriptionWithFeedback(task.description, failedGate, failure, rollback, config.maxRetries, run->m_from);
    if (!claimMove(run, target, change, LostClaim::Uncounted))
        return;
    task.stage = target;
    task.version = *change.ifVersion + 1;
    task.retries = rollback;
    task.description = *change.description;
    if (auto released = m_store.releaseTaskLeases(task.id); !released)
        qCWarning(lcEngine).noquote() << "cannot release leases of task" << task.id << "-" << released.error().toString();
    QJsonObject details = redEvidence(run, failedGate, failure);
    details.insert(QStringLiteral("from"), run->m_from);
    details.insert(QStringLiteral("to"), target);
    details.insert(QStringLiteral("rollback"), rollback);
    auditAction(actor, QStringLiteral("rollback"), task, details);
    {
        QMutexLocker lock(&m_statsMutex);
        ++m_stats.rollbacks;
    }
    qCWarning(lcEngine).noquote() << "task" << task.id << "rolled back" << run->m_from << "→" << target << "by gate" << failedGate
                                  << QStringLiteral("(%1 of %2)").arg(rollback).arg(config.maxRetries);
    Q_EMIT taskChanged(task.id, QStringLiteral("rolled-back"), target);
    notifyTask(QStringLiteral("rolled-back"), task,
               QStringLiteral("sent back %1 → %2 by %3 (%4 of %5)").arg(run->m_from, target, failedGate).arg(rollback).arg(config.maxRetries),
               failure.reason(),
               QJsonObject{{QStringLiteral("from"), run->m_from}, {QStringLiteral("to"), target}, {QStringLiteral("stage"), target},
                           {QStringLiteral("gate"), failedGate}, {QStringLiteral("reason"), failure.reason()},
                           {QStringLiteral("rollback"), rollback}, {QStringLiteral("max_retries"), config.maxRetries},
                           {QStringLiteral("head"), task.headSha}, {QStringLiteral("findings"), maskedFindings(failure)}});
    if (auto entered = enterStage(runtime, task, target, QStringLiteral("rolled back by %1").arg(failedGate)); !entered) {
        auditAction(actor, QStringLiteral("enqueue-failed"), task,
                    QJsonObject{{QStringLiteral("stage"), target}, {QStringLiteral("error"), entered.error().toString()}});
        finish(run, AdvanceRun::Outcome::Failed, entered.error().toString());
        return;
    }
    run->m_to = target;
    finish(run, AdvanceRun::Outcome::RolledBack, failure.reason());
}

void Engine::finish(AdvanceRun *run, AdvanceRun::Outcome outcome, const QString &detail)
{
    if (run->m_finished)
        return;
    run->m_finished = true;
    run->m_outcome = outcome;
    run->m_detail = detail;
    --m_inFlight;
    if (--m_advancing[run->m_taskId] <= 0) {
        m_advancing.remove(run->m_taskId);
        // Woken while this run evaluated: it may have read the state before the change.
        if (const QString cause = m_lookAgain.take(run->m_taskId); !cause.isNull() && outcome == AdvanceRun::Outcome::Waiting)
            QTimer::singleShot(0, this, [this, id = run->m_taskId, cause] { (void)wake(id, cause); });
    }
    if (outcome == AdvanceRun::Outcome::Failed)
        qCWarning(lcEngine).noquote() << "advance of task" << run->m_taskId << "failed:" << detail;
    Q_EMIT run->finished(run);
    run->deleteLater();
}

Result<SignalResult> Engine::signal(qint64 taskId, const QString &stage, const QString &signalName, const QString &source,
                                    const QString &deliveryId)
{
    if (!deliveryId.isEmpty()) {
        auto fresh = m_store.recordEvent(source, deliveryId, QStringLiteral("signal"),
                                         QJsonObject{{QStringLiteral("task"), taskId},
                                                     {QStringLiteral("stage"), stage},
                                                     {QStringLiteral("signal"), signalName}});
        if (!fresh)
            return std::unexpected(fresh.error());
        if (!*fresh)
            return SignalResult{SignalResult::Kind::Duplicate, QStringLiteral("delivery %1 from %2 was already handled").arg(deliveryId, source), nullptr};
    }
    auto task = m_tasks.task(taskId);
    if (!task)
        return std::unexpected(task.error());
    if (!*task)
        return fail(ErrorCode::NotFound, QStringLiteral("no task %1").arg(taskId));
    const TaskRecord &t = **task;
    auto ignore = [&](const QString &why) {
        qCInfo(lcEngine).noquote() << "signal" << signalName << "for task" << taskId << "ignored:" << why;
        auditAction(source, QStringLiteral("signal-ignored"), t,
                    QJsonObject{{QStringLiteral("signal"), signalName}, {QStringLiteral("stage"), stage},
                                {QStringLiteral("reason"), why}, {QStringLiteral("delivery"), deliveryId}});
        return SignalResult{SignalResult::Kind::Ignored, why, nullptr};
    };
    if (t.status != QLatin1String("active"))
        return ignore(QStringLiteral("task %1 is %2").arg(taskId).arg(t.status));
    if (t.stage != stage)
        return ignore(QStringLiteral("task %1 is in stage '%2', not '%3'").arg(taskId).arg(t.stage, stage));
    const auto runtime = project(t.project);
    if (!runtime)
        return ignore(QStringLiteral("project %1 is not loaded").arg(t.project));
    const StageConfig *config = runtime->config.stage(stage);
    Stage *plugin = config && !config->run.isEmpty() ? runtime->instances.as<Stage>(config->run) : nullptr;
    const QStringList accepted = plugin ? plugin->acceptedSignals() : QStringList();
    const bool rejecting = signalName == QLatin1String("reject") && !accepted.isEmpty() && !accepted.contains(signalName);
    if (rejecting || accepted.contains(signalName)) {
        // Only for a stage that asked, in this visit: a signal racing the stage's own run (sent
        // the moment the task entered it) would move a task nobody was asked about.
        auto asked = approvalRequested(t, stage);
        if (!asked)
            return std::unexpected(asked.error());
        if (!*asked)
            return ignore(QStringLiteral("stage '%1' has not asked for '%2' yet: its request for this visit is not recorded "
                                         "(the stage's run has not ended waiting); send it again once it has")
                              .arg(stage, signalName));
    }
    if (rejecting) {
        // A person said no where a person was asked: the red policy, as for a failed gate.
        auditAction(source, QStringLiteral("signal"), t,
                    QJsonObject{{QStringLiteral("signal"), signalName}, {QStringLiteral("stage"), stage}, {QStringLiteral("delivery"), deliveryId}});
        qCInfo(lcEngine).noquote() << "signal reject accepted for task" << taskId << "in stage" << stage;
        auto *run = new AdvanceRun(taskId, this);
        run->m_cause = QStringLiteral("signal reject from %1").arg(source);
        run->m_task = t;
        run->m_from = stage;
        run->m_to = runtime->config.rollbackTo;
        run->m_runtime = runtime;
        ++m_inFlight;
        const QString reason = QStringLiteral("rejected by a person (signal 'reject' from %1) while waiting in stage '%2'").arg(source, stage);
        QTimer::singleShot(0, run, [this, run, reason] { decide(run, QStringLiteral("reject"), GateVerdict::fail(reason)); });
        return SignalResult{SignalResult::Kind::Accepted, QString(), run};
    }
    if (!accepted.contains(signalName)) {
        return ignore(accepted.isEmpty()
                          ? QStringLiteral("stage '%1' waits for no signal").arg(stage)
                          : QStringLiteral("stage '%1' waits for '%2', not '%3'").arg(stage, accepted.join(QStringLiteral("' or '")), signalName));
    }
    auditAction(source, QStringLiteral("signal"), t,
                QJsonObject{{QStringLiteral("signal"), signalName}, {QStringLiteral("stage"), stage}, {QStringLiteral("delivery"), deliveryId}});
    qCInfo(lcEngine).noquote() << "signal" << signalName << "accepted for task" << taskId << "in stage" << stage;
    return SignalResult{SignalResult::Kind::Accepted, QString(), advance(taskId, stage, QStringLiteral("signal %1 from %2").arg(signalName, source))};
}

Result<int> Engine::blockTasksWithFailedJobs(const QString &actor)
{
    auto active = m_tasks.tasks(QString(), {QStringLiteral("active")});
    if (!active)
        return std::unexpected(active.error());
    int blocked = 0;
    for (const TaskRecord &task : *active) {
        auto jobs = m_jobs.jobsForTask(task.id);
        if (!jobs)
            return std::unexpected(jobs.error());
        const JobRecord *latest = nullptr;
        bool open = false;
        for (const JobRecord &j : *jobs) {
            open = open || j.status == QLatin1String("queued") || j.status == QLatin1String("running");
            if (j.stage == task.stage && (!latest || j.id > latest->id))
                latest = &j;
        }
        if (open || !latest || latest->status != QLatin1String("failed"))
            continue;
        auto won = block(task.id, task.stage,
                         QStringLiteral("job %1 of stage '%2' failed after %3 attempt(s): %4")
                             .arg(latest->id).arg(task.stage).arg(latest->attempts).arg(latest->lastError),
                         actor);
        if (!won)
            return std::unexpected(won.error());
        blocked += *won ? 1 : 0;
    }
    return blocked;
}

QString Engine::reportRepositoryChanged(const JobRecord &job, const QList<RefChange> &changes)
{
    // Defence in depth: agents work in a repository of their own, so a change to the
    // project's references while one ran is someone writing where only Sluice may.
    QStringList lines;
    QStringList undo;
    QJsonArray details;
    const auto runtime = project(job.project);
    const QString repo = runtime ? runtime->config.repositoryPath : QString();
    for (const RefChange &c : changes) {
        lines << QStringLiteral("%1 %2 → %3 (%4)").arg(c.ref, c.before.isEmpty() ? QStringLiteral("(none)") : c.before.left(12),
                                                      c.after.isEmpty() ? QStringLiteral("(deleted)") : c.after.left(12), c.how);
        undo << (c.before.isEmpty() ? QStringLiteral("git -C %1 update-ref -d %2").arg(repo, c.ref)
                                    : QStringLiteral("git -C %1 update-ref %2 %3").arg(repo, c.ref, c.before));
        details.append(QJsonObject{{QStringLiteral("ref"), c.ref}, {QStringLiteral("before"), c.before},
                                   {QStringLiteral("after"), c.after}, {QStringLiteral("how"), c.how}});
    }
    const QString reason = QStringLiteral("the project's repository was changed while job %1 ran, not by Sluice: %2; nothing "
                                          "was taken from the task's working copy. Check and undo: %3")
                               .arg(job.id).arg(lines.join(QStringLiteral("; ")), undo.join(QStringLiteral("; ")));
    qCCritical(lcEngine).noquote() << "task" << job.taskId << reason;
    (void)m_store.audit(AuditEntry{QStringLiteral("worker"), QStringLiteral("repository-changed"), job.project, job.taskId,
                                   QJsonObject{{QStringLiteral("job"), job.id}, {QStringLiteral("stage"), job.stage},
                                               {QStringLiteral("changes"), details}}});
    return reason;
}

Result<bool> Engine::block(qint64 taskId, const QString &stage, const QString &reason, const QString &actor)
{
    TaskChange change;
    change.status = QStringLiteral("blocked");
    change.blockedReason = reason;
    auto won = m_tasks.claimTransition(taskId, stage, stage, change);
    if (!won || !*won)
        return won;
    if (auto released = m_store.releaseTaskLeases(taskId); !released)
        qCWarning(lcEngine).noquote() << "cannot release leases of task" << taskId << "-" << released.error().toString();
    if (auto task = m_tasks.task(taskId); task && *task)
        auditAction(actor, QStringLiteral("blocked"), **task, QJsonObject{{QStringLiteral("reason"), reason}});
    {
        QMutexLocker lock(&m_statsMutex);
        ++m_stats.blocked;
    }
    qCWarning(lcEngine).noquote() << "task" << taskId << "blocked:" << reason;
    Q_EMIT taskChanged(taskId, QStringLiteral("blocked"), stage);
    if (auto task = m_tasks.task(taskId); task && *task)
        notifyTask(QStringLiteral("blocked"), **task, QStringLiteral("blocked in %1").arg(stage), reason,
                   QJsonObject{{QStringLiteral("stage"), stage}, {QStringLiteral("reason"), reason}});
    return true;
}

Result<RetryResult> Engine::retry(qint64 taskId, const QString &operatorName, const QString &reason, const QString &actor)
{
    if (reason.trimmed().isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a retry of task %1 needs a reason (it is audited)").arg(taskId));
    auto found = m_tasks.task(taskId);
    if (!found)
        return std::unexpected(found.error());
    if (!*found)
        return fail(ErrorCode::NotFound, QStringLiteral("no task %1").arg(taskId));
    TaskRecord task = **found;
    if (task.status != QLatin1String("blocked"))
        return fail(ErrorCode::Conflict, QStringLiteral("task %1 is %2 in stage %3; only a blocked task can be retried")
                                             .arg(taskId).arg(task.status, task.stage));
    const auto runtime = project(task.project);
    if (!runtime)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("task %1 belongs to project %2, which is not loaded (see sluice check)")
                                                  .arg(taskId).arg(task.project));
    if (!runtime->config.stage(task.stage))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("task %1 is blocked in stage '%2', which project %3 no longer has")
                                                  .arg(taskId).arg(task.stage, task.project));
    // Claim first: of two operators retrying at once, one wins and the other is told.
    auto won = m_tasks.claimUnblock(task.id, task.stage, task.version);
    if (!won)
        return std::unexpected(won.error());
    if (!*won)
        return fail(ErrorCode::Conflict, QStringLiteral("task %1 changed while it was being retried (another retry?); look at it again")
                                             .arg(taskId));
    const QString previousReason = task.blockedReason;
    // Typed by a person: a pasted token must not reach the audit or a notifier.
    const QString why = Redaction::redact(reason);
    task.status = QStringLiteral("active");
    task.blockedReason.clear();
    ++task.version;
    QJsonObject details{{QStringLiteral("stage"), task.stage},
                        {QStringLiteral("operator"), operatorName},
                        {QStringLiteral("reason"), why},
                        {QStringLiteral("blockedReason"), previousReason}};
    // A new job for the current visit (the reconciler tells visits apart by the task version
    // in the job); a failed job is never revived, so its history stays as it was.
    if (auto entered = enterStage(*runtime, task, task.stage, QStringLiteral("retried by %1").arg(operatorName)); !entered) {
        // The task is active again and the reconciler enqueues the missing job; say so.
        details.insert(QStringLiteral("error"), entered.error().toString());
        auditAction(actor, QStringLiteral("enqueue-failed"), task, details);
        return std::unexpected(entered.error());
    }
    RetryResult result;
    result.stage = task.stage;
    if (auto jobs = m_jobs.jobsForTask(task.id)) {
        for (const JobRecord &job : std::as_const(*jobs)) {
            if (job.stage == task.stage && (job.status == QLatin1String("queued") || job.status == QLatin1String("running")))
                result.jobId = job.id;
        }
    }
    details.insert(QStringLiteral("job"), result.jobId);
    auditAction(actor, QStringLiteral("retry"), task, details);
    qCWarning(lcEngine).noquote() << "task" << task.id << "retried in stage" << task.stage << "by" << operatorName << "-" << why;
    Q_EMIT taskChanged(task.id, QStringLiteral("unblocked"), task.stage);
    notifyTask(QStringLiteral("unblocked"), task, QStringLiteral("retried in %1 by %2").arg(task.stage, operatorName), why,
               QJsonObject{{QStringLiteral("stage"), task.stage}, {QStringLiteral("operator"), operatorName},
                           {QStringLiteral("reason"), why}, {QStringLiteral("job"), result.jobId}});
    return result;
}

void Engine::notifyTask(const QString &event, const TaskRecord &task, const QString &what, const QString &text, QJsonObject data)
{
    if (!task.trackerRef.isEmpty())
        data.insert(QStringLiteral("tracker_ref"), task.trackerRef);
    Notification n;
    n.event = event;
    n.projectId = task.project;
    n.taskId = task.id;
    n.title = QStringLiteral("task %1 (%2): %3").arg(task.id).arg(task.title, what);
    n.text = text;
    n.data = data;
    notify(n); // masks
}

Result<void> Engine::recordApprovalRequest(const JobRecord &job, const QString &summary)
{
    auto task = m_tasks.task(job.taskId);
    if (!task)
        return std::unexpected(task.error());
    if (!*task)
        return fail(ErrorCode::NotFound, QStringLiteral("no task %1").arg(job.taskId));
    const QString &stage = job.stage;
    // The visit the job belongs to; a job from before versions were recorded belongs to the
    // visit the task is in.
    const QJsonValue enqueuedFor = job.payload.value(QLatin1String("taskVersion"));
    const qint64 visit = enqueuedFor.isUndefined() ? (*task)->version : qint64(enqueuedFor.toDouble());
    QStringList signalNames;
    if (const auto runtime = project((*task)->project)) {
        const StageConfig *config = runtime->config.stage(stage);
        if (Stage *plugin = config && !config->run.isEmpty() ? runtime->instances.as<Stage>(config->run) : nullptr)
            signalNames = plugin->acceptedSignals();
    }
    // Told first, recorded second: a signal is taken only once people were asked.
    notifyTask(QStringLiteral("approval-requested"), **task,
               QStringLiteral("waits in %1 for %2").arg(stage, signalNames.isEmpty() ? QStringLiteral("a signal") : signalNames.join(QStringLiteral(" or "))),
               summary, QJsonObject{{QStringLiteral("stage"), stage}, {QStringLiteral("signals"), QJsonArray::fromStringList(signalNames)},
                                    {QStringLiteral("version"), double((*task)->version)}, {QStringLiteral("head"), (*task)->headSha}});
    if (auto recorded = m_store.audit(AuditEntry{QStringLiteral("worker"), QStringLiteral("approval-requested"), (*task)->project, job.taskId,
                                                 QJsonObject{{QStringLiteral("stage"), stage},
                                                             {QStringLiteral("summary"), summary},
                                                             {QStringLiteral("visit"), double(visit)},
                                                             {QStringLiteral("job"), double(job.id)}}});
        !recorded) {
        qCWarning(lcEngine).noquote() << "cannot record the approval request of task" << job.taskId << "in stage" << stage
                                      << "- its signals are refused until it is recorded:" << recorded.error().toString();
        return std::unexpected(recorded.error());
    }
    return {};
}

Result<bool> Engine::approvalRequested(const TaskRecord &task, const QString &stage) const
{
    auto history = m_tasks.history(task.id);
    if (!history)
        return std::unexpected(history.error());
    qsizetype entered = -1;   // the last entry that moved the task into the stage
    qsizetype unversioned = -1; // the last request that does not name its visit (older Sluice)
    for (qsizetype i = 0; i < history->size(); ++i) {
        const AuditRecord &a = history->at(i);
        const QJsonObject &d = a.details;
        if (a.action == QLatin1String("approval-requested") && d.value(QLatin1String("stage")).toString() == stage) {
            const QJsonValue visit = d.value(QLatin1String("visit"));
            if (visit.isUndefined())
                unversioned = i;
            else if (qint64(visit.toDouble()) == task.version)
                return true;
        } else if ((a.action == QLatin1String("submit") && d.value(QLatin1String("stage")).toString() == stage)
                   || ((a.action == QLatin1String("advance") || a.action == QLatin1String("rollback"))
                       && d.value(QLatin1String("to")).toString() == stage)) {
            entered = i;
        }
    }
    return unversioned > entered;
}

void Engine::notify(Notification notification)
{
    if (!notification.at.isValid())
        notification.at = QDateTime::currentDateTimeUtc();
    // Every field masked once here, for every notifier, the tracker and the outbox alike: a
    // reason quotes what a gate or a command saw, and data carries the reason too.
    notification.title = Redaction::mask(notification.title);
    notification.text = Redaction::mask(notification.text);
    notification.data = Redaction::maskJson(notification.data);
    if (m_outbox) {
        // Best effort like every notification: a failure is logged, never the caller's.
        if (auto queued = m_store.queueNotification(notification, m_node + QStringLiteral("/cli")); !queued)
            qCWarning(lcEngine).noquote() << "cannot keep the" << notification.event << "notification for the daemon -" << queued.error().toString();
        return;
    }
    Q_EMIT this->notification(notification);
}

} // namespace Sluice
