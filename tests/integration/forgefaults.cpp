// SPDX-License-Identifier: Apache-2.0
// The forge-fault campaign: generator, timeline, truth and running a scenario. The judges are
// in forgefaultjudges.cpp. See tst_forgefaults.cpp for the invariant.
#include "forgefaults.h"

#include <QMutex>
#include <QMutexLocker>
#include <QRegularExpression>
#include <QUrlQuery>

#include <algorithm>
#include <vector>

namespace Sluice::Test::Faults {

quint64 Rng::next()
{
    // splitmix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number generators").
    quint64 z = (m_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int Rng::below(int n)
{
    if (n <= 0)
        return 0;
    return int(next() % quint64(n));
}

quint64 scenarioSeed(quint64 base, int index)
{
    Rng mix(base ^ (quint64(index) * 0xd1b54a32d192ed03ULL));
    return mix.next();
}

QString judgeName(JudgeKind kind)
{
    switch (kind) {
    case JudgeKind::CiGate: return QStringLiteral("ci-gate");
    case JudgeKind::Umbrella: return QStringLiteral("ci-umbrella");
    case JudgeKind::Merge: return QStringLiteral("merge-gate");
    case JudgeKind::Webhook: return QStringLiteral("webhook-intake");
    }
    return QStringLiteral("unknown");
}

QString truthName(Truth truth)
{
    switch (truth) {
    case Truth::Green: return QStringLiteral("green");
    case Truth::Pending: return QStringLiteral("pending");
    case Truth::Red: return QStringLiteral("red");
    }
    return QStringLiteral("unknown");
}

namespace {

QString triggerText(const Trigger &t)
{
    return QStringLiteral("before %1 %2 %3%4").arg(QString::fromLatin1(t.method), t.pathPattern)
        .arg(t.occurrence == 1 ? QStringLiteral("(1st)") : QStringLiteral("(#%1)").arg(t.occurrence))
        .arg(t.page ? QStringLiteral(" page %1").arg(t.page) : QString());
}

QString faultText(const FakeFault &f)
{
    QString text = QStringLiteral("%1 %2 %3").arg(faultKindName(f.kind), QString::fromLatin1(f.method), f.pathPattern);
    if (f.kind == FakeFault::Kind::Status) {
        text += QStringLiteral(" status %1").arg(f.status);
        if (!f.retryAfter.isEmpty())
            text += QStringLiteral(" Retry-After '%1'").arg(QString::fromLatin1(f.retryAfter));
        for (const auto &h : f.headers)
            text += QStringLiteral(" %1: %2").arg(QString::fromLatin1(h.first), QString::fromLatin1(h.second));
    }
    if (f.page)
        text += QStringLiteral(" page %1").arg(f.page);
    if (f.skip)
        text += QStringLiteral(" after %1 clean").arg(f.skip);
    text += QStringLiteral(" x%1").arg(f.times);
    return text;
}

} // namespace

QString Change::describe() const
{
    const QString at = triggerText(when);
    switch (kind) {
    case Kind::AddStatus:
        return QStringLiteral("%1: status %2 '%3' on %4").arg(at, state, name, sha.left(12));
    case Kind::AddCheckRun:
        return QStringLiteral("%1: check run '%2' %3 %4 on %5").arg(at, name, state, conclusion, sha.left(12));
    case Kind::MoveHead:
        return QStringLiteral("%1: pull request #%2 moves to %3").arg(at).arg(pull).arg(sha.left(12));
    case Kind::ClosePull:
        return QStringLiteral("%1: pull request #%2 closes").arg(at).arg(pull);
    case Kind::OpenPull:
        return QStringLiteral("%1: pull request #%2 (%3) opens at %4").arg(at).arg(pull).arg(branch, sha.left(12));
    }
    return at;
}

QString Delivery::describe() const
{
    switch (kind) {
    case Kind::CiReport:
        return checkRun ? QStringLiteral("CI: check run '%1' %2%3 on %4").arg(context, state, conclusion.isEmpty() ? QString() : QLatin1Char('/') + conclusion, sha.left(12))
                        : QStringLiteral("CI: status '%1' %2 on %3").arg(context, state, sha.left(12));
    case Kind::Hold: return QStringLiteral("the forge holds its deliveries");
    case Kind::Release: return QStringLiteral("the forge sends the held deliveries%1").arg(reversed ? QStringLiteral(", reversed") : QString());
    case Kind::Redeliver: return QStringLiteral("the forge redelivers taken delivery #%1 (same id)").arg(of);
    case Kind::NewId: return QStringLiteral("taken delivery #%1 again under a new id").arg(of);
    case Kind::Hostile: return QStringLiteral("hostile delivery: %1 (a status '%2' %3 on %4)").arg(how, context, state, sha.left(12));
    case Kind::Claim: return QStringLiteral("signed claim: status '%1' %2 on %3").arg(context, state, sha.left(12));
    case Kind::Push: return QStringLiteral("someone pushes %1 to the task's branch").arg(sha.left(12));
    case Kind::ClosePull: return QStringLiteral("someone closes pull request #1 without merging");
    case Kind::ReopenPull: return QStringLiteral("someone reopens pull request #1");
    }
    return {};
}

QString Scenario::describe() const
{
    QStringList out;
    out << QStringLiteral("seed %1 (0x%2): %3 on %4, page_size %5 (server cap %6), max_retries %7")
               .arg(seed).arg(seed, 0, 16).arg(judgeName(judge), flavor == FakeForge::Flavor::GitHub ? QStringLiteral("github") : QStringLiteral("gitea"))
               .arg(pageSize).arg(serverPageCap).arg(maxRetries);
    out << QStringLiteral("required %1%2 (%3, %4 semantics)%5")
               .arg(required.join(QStringLiteral(", ")), umbrella.isEmpty() ? QString() : QStringLiteral(", umbrella %1").arg(umbrella),
                    derived ? QStringLiteral("from the workflow at %1").arg(workflowRef) : QStringLiteral("listed"),
                    forgeSemantics ? QStringLiteral("forge") : QStringLiteral("strict"))
               .arg(judge == JudgeKind::Umbrella ? QStringLiteral("; threshold %1 s%2").arg(thresholdSeconds).arg(dryRun ? QStringLiteral(", dry run") : QString()) : QString());
    if (!head.isEmpty())
        out << QStringLiteral("judged head %1").arg(head.left(12));
    for (const SeedPull &p : pulls)
        out << QStringLiteral("pull request #%1 %2 at %3").arg(p.number).arg(p.branch, p.sha.left(12));
    for (const SeedCommit &c : commits) {
        QStringList items;
        for (const SeedStatus &s : c.statuses)
            items << QStringLiteral("%1=%2 (-%3s)").arg(s.context, s.state).arg(s.ageSeconds);
        for (const SeedRun &r : c.runs)
            items << QStringLiteral("run %1=%2%3 (-%4s)").arg(r.name, r.status, r.conclusion.isEmpty() ? QString() : QLatin1Char('/') + r.conclusion).arg(r.ageSeconds);
        out << QStringLiteral("commit %1: %2").arg(c.sha.left(12), items.isEmpty() ? QStringLiteral("nothing") : items.join(QStringLiteral(", ")));
    }
    for (const FakeFault &f : faults)
        out << QStringLiteral("fault: ") + faultText(f);
    for (const Change &c : changes)
        out << QStringLiteral("change: ") + c.describe();
    for (qsizetype i = 0; i < deliveries.size(); ++i)
        out << QStringLiteral("step %1: %2").arg(i).arg(deliveries.at(i).describe());
    return out.join(QLatin1Char('\n'));
}

bool breaksAnswer(const QString &fault)
{
    static const QStringList harmless = {QStringLiteral("extra-item"), QStringLiteral("reorder"), QStringLiteral("extra-page")};
    return !fault.isEmpty() && !harmless.contains(fault);
}

bool Timeline::anyFault() const
{
    return std::any_of(moments.cbegin(), moments.cend(), [](const Moment &m) { return !m.fault.isEmpty(); });
}

bool Timeline::anyChange() const
{
    return std::any_of(moments.cbegin(), moments.cend(), [](const Moment &m) { return !m.changes.isEmpty(); });
}

QStringList Timeline::unrecovered() const
{
    QStringList out;
    for (qsizetype i = 0; i < moments.size(); ++i) {
        const Moment &m = moments.at(i);
        if (!breaksAnswer(m.fault))
            continue;
        bool recovered = false;
        for (qsizetype j = i + 1; j < moments.size() && !recovered; ++j) {
            const Moment &later = moments.at(j);
            recovered = later.method == m.method && later.path == m.path && later.query == m.query && !breaksAnswer(later.fault);
        }
        if (!recovered)
            out << QStringLiteral("%1 %2%3: %4").arg(QString::fromLatin1(m.method), m.path, m.query.isEmpty() ? QString() : QLatin1Char('?') + m.query, m.fault);
    }
    return out;
}

QString Timeline::describe() const
{
    QStringList out;
    for (qsizetype i = 0; i < moments.size(); ++i) {
        const Moment &m = moments.at(i);
        for (const QString &c : m.changes)
            out << QStringLiteral("      change: %1").arg(c);
        out << QStringLiteral("  %1 %2 %3%4%5").arg(i, 3).arg(QString::fromLatin1(m.method), m.path,
                                                        m.query.isEmpty() ? QString() : QLatin1Char('?') + m.query,
                                                        m.fault.isEmpty() ? QString() : QStringLiteral("   <- ") + m.fault);
    }
    return out.join(QLatin1Char('\n'));
}

// ---- the truth -------------------------------------------------------------------------

namespace {

enum class Kind { Pass, Pending, Red };

// A commit status as branch protection judges it: only success passes.
Kind statusKind(const QString &state)
{
    if (state == QLatin1String("success"))
        return Kind::Pass;
    if (state == QLatin1String("pending"))
        return Kind::Pending;
    return Kind::Red; // failure, error, warning, skipped...
}

// A check run: not completed is pending; success passes; skipped and neutral pass as GitHub's
// branch protection takes them ("About status checks") only with forge semantics.
Kind runKind(const FakeCheckRun &run, bool forgeSemantics)
{
    if (run.status != QLatin1String("completed"))
        return Kind::Pending;
    if (run.conclusion == QLatin1String("success"))
        return Kind::Pass;
    if (forgeSemantics && (run.conclusion == QLatin1String("skipped") || run.conclusion == QLatin1String("neutral")))
        return Kind::Pass;
    return Kind::Red;
}

// The latest of each context / name: the greatest id, as the forge keeps it (fakeforge.h).
std::optional<FakeStatus> latestStatus(const QList<FakeStatus> &all, const QString &context)
{
    std::optional<FakeStatus> out;
    for (const FakeStatus &s : all) {
        if (s.context == context && (!out || s.id > out->id))
            out = s;
    }
    return out;
}

std::optional<FakeCheckRun> latestRun(const QList<FakeCheckRun> &all, const QString &name)
{
    std::optional<FakeCheckRun> out;
    for (const FakeCheckRun &r : all) {
        if (r.name == name && (!out || r.id > out->id))
            out = r;
    }
    return out;
}

// One required name: every kind present must pass; none present is pending (not reported yet).
Kind nameKind(const Snapshot &state, const QString &sha, const QString &name, bool forgeSemantics)
{
    const auto status = latestStatus(state.statuses.value(sha), name);
    const auto run = latestRun(state.runs.value(sha), name);
    if (!status && !run)
        return Kind::Pending;
    QList<Kind> kinds;
    if (status)
        kinds << statusKind(status->state);
    if (run)
        kinds << runKind(*run, forgeSemantics);
    if (kinds.contains(Kind::Red))
        return Kind::Red;
    if (kinds.contains(Kind::Pending))
        return Kind::Pending;
    return Kind::Pass;
}

} // namespace

Truth ciTruth(const Snapshot &state, const Scenario &scenario, const QString &sha)
{
    bool pending = false;
    for (const QString &name : scenario.required) {
        const Kind k = nameKind(state, sha, name, scenario.forgeSemantics);
        if (k == Kind::Red)
            return Truth::Red;
        pending = pending || k == Kind::Pending;
    }
    // The umbrella is required too; red over no red sub-job is a stale umbrella: pending.
    if (!scenario.umbrella.isEmpty() && nameKind(state, sha, scenario.umbrella, scenario.forgeSemantics) != Kind::Pass)
        pending = true;
    return pending ? Truth::Pending : Truth::Green;
}

QString umbrellaTruth(const Snapshot &state, const Scenario &scenario, const QString &sha, const QDateTime &now)
{
    const auto status = latestStatus(state.statuses.value(sha), scenario.umbrella);
    const auto run = latestRun(state.runs.value(sha), scenario.umbrella);
    if (!status && !run)
        return QStringLiteral("umbrella-missing");
    // A check run failed when it concluded failure, timed_out or startup_failure (what GitHub's
    // checks API calls failing runs; cancelled, skipped and neutral are not failures).
    static const QStringList failed = {QStringLiteral("failure"), QStringLiteral("timed_out"), QStringLiteral("startup_failure")};
    const bool runFailed = run && run->status == QLatin1String("completed") && failed.contains(run->conclusion);
    const bool statusFailed = status && status->state == QLatin1String("failure");
    const bool runOk = !run || (run->status == QLatin1String("completed") && run->conclusion == QLatin1String("success"));
    const bool statusOk = !status || status->state == QLatin1String("success");
    if (runOk && statusOk)
        return QStringLiteral("umbrella-success");
    if (!runFailed && !statusFailed)
        return QStringLiteral("umbrella-not-failure");
    // Sub-jobs strictly: the compensator never takes skipped or neutral as green.
    QStringList subs = scenario.required;
    subs.removeAll(scenario.umbrella);
    if (subs.isEmpty())
        return QStringLiteral("sub-job-not-green");
    for (const QString &name : std::as_const(subs)) {
        if (nameKind(state, sha, name, false) != Kind::Pass)
            return QStringLiteral("sub-job-not-green");
    }
    const QDateTime failedAt = runFailed ? run->completedAt : status->updatedAt;
    if (!failedAt.isValid() || failedAt.msecsTo(now) < scenario.thresholdSeconds * 1000)
        return QStringLiteral("too-young");
    return QStringLiteral("compensate");
}

// ---- running a scenario ------------------------------------------------------------------

namespace {

bool matches(const Trigger &t, const FakeRequest &req)
{
    if (t.method != req.method || !QRegularExpression(t.pathPattern).match(req.path).hasMatch())
        return false;
    const int page = std::max(1, req.query.queryItemValue(QStringLiteral("page")).toInt());
    return t.page == 0 || t.page == page;
}

void apply(const Change &c, FakeForge &fake)
{
    switch (c.kind) {
    case Change::Kind::AddStatus:
        fake.addStatus(c.sha, c.name, c.state);
        return;
    case Change::Kind::AddCheckRun:
        fake.addCheckRun(c.sha, c.name, c.state, c.conclusion);
        return;
    case Change::Kind::MoveHead:
    case Change::Kind::ClosePull:
        for (FakePullRequest pr : fake.pullRequests()) {
            if (pr.number != c.pull || pr.merged)
                continue;
            if (c.kind == Change::Kind::MoveHead)
                pr.headSha = c.sha;
            else
                pr.state = QStringLiteral("closed");
            fake.addPullRequest(pr);
        }
        return;
    case Change::Kind::OpenPull:
        fake.addPullRequest({c.pull, QStringLiteral("Change %1").arg(c.pull), c.branch, c.sha});
        return;
    }
}

} // namespace

void bindHead(Scenario &scenario, const QString &sha)
{
    auto bind = [&sha](QString &text) { text.replace(QStringLiteral("@HEAD@"), sha); };
    bind(scenario.head);
    for (SeedCommit &c : scenario.commits)
        bind(c.sha);
    for (SeedPull &p : scenario.pulls)
        bind(p.sha);
    for (FakeFault &f : scenario.faults)
        bind(f.pathPattern);
    for (Change &c : scenario.changes) {
        bind(c.sha);
        bind(c.when.pathPattern);
    }
}

ScenarioReport runScenario(const Scenario &given, Bench &bench)
{
    ScenarioReport report;
    Scenario scenario = given;
    scenario.run = ++bench.runs;
    if (const QString failed = judge(scenario.judge).prepare(scenario, bench); !failed.isEmpty()) {
        report.violations << QStringLiteral("the scenario could not be prepared: %1").arg(failed);
        report.scenario = scenario.describe();
        return report;
    }
    FakeForge fake(scenario.flavor);
    if (auto started = fake.start(); !started) {
        report.violations << QStringLiteral("the fake forge did not start: %1").arg(started.error().message);
        return report;
    }
    fake.setMaxPageSize(scenario.serverPageCap);

    const QDateTime start = QDateTime::currentDateTimeUtc();
    for (const SeedCommit &c : std::as_const(scenario.commits)) {
        for (const SeedStatus &s : c.statuses)
            fake.addStatus(c.sha, s.context, s.state, start.addSecs(-s.ageSeconds));
        for (const SeedRun &r : c.runs)
            fake.addCheckRun(c.sha, r.name, r.status, r.conclusion, start.addSecs(-r.ageSeconds));
    }
    for (const SeedPull &p : std::as_const(scenario.pulls)) {
        FakePullRequest pr{p.number, QStringLiteral("Change %1").arg(p.number), p.branch, p.sha};
        pr.mergeabilityPending = p.mergeabilityPending;
        fake.addPullRequest(pr);
    }
    for (const FakeFault &f : std::as_const(scenario.faults))
        fake.addFault(f);

    // Every sha whose state the truth needs, and the changes, each counted on its trigger.
    QStringList shas;
    for (const SeedCommit &c : std::as_const(scenario.commits))
        shas << c.sha;
    for (const Change &c : std::as_const(scenario.changes)) {
        if (!c.sha.isEmpty() && !shas.contains(c.sha))
            shas << c.sha;
    }
    struct Shared {
        QMutex mutex;
        Timeline timeline;
        std::vector<int> seen; // per change: matching requests so far
        bool closed = false;
    };
    auto shared = std::make_shared<Shared>();
    shared->seen.assign(std::size_t(scenario.changes.size()), 0);
    auto snapshot = [&fake, shas] {
        Snapshot s;
        for (const QString &sha : shas) {
            s.statuses.insert(sha, fake.statuses(sha));
            s.runs.insert(sha, fake.checkRuns(sha));
        }
        s.pulls = fake.pullRequests();
        s.at = QDateTime::currentDateTimeUtc();
        return s;
    };
    const QList<Change> changes = scenario.changes;
    fake.setRequestHook([shared, changes, snapshot, &fake](const FakeRequest &req) {
        QMutexLocker lock(&shared->mutex);
        if (shared->closed)
            return;
        Moment m;
        m.method = req.method;
        m.path = req.path;
        m.query = req.query.toString(QUrl::FullyDecoded);
        for (int i = 0; i < changes.size(); ++i) {
            if (!matches(changes.at(i).when, req) || ++shared->seen[std::size_t(i)] != changes.at(i).when.occurrence)
                continue;
            apply(changes.at(i), fake);
            m.changes << changes.at(i).describe();
        }
        m.state = snapshot();
        shared->timeline.moments.append(m);
    });

    auto finish = [shared, snapshot, &fake]() -> const Timeline & {
        QMutexLocker lock(&shared->mutex);
        if (!shared->closed) {
            shared->closed = true;
            // The fake logs requests in the order the hook saw them: its log names their faults.
            const QList<FakeRequest> log = fake.requests();
            for (qsizetype i = 0; i < shared->timeline.moments.size() && i < log.size(); ++i)
                shared->timeline.moments[i].fault = log.at(i).fault;
            shared->timeline.end = snapshot();
        }
        return shared->timeline;
    };

    report.violations = judge(scenario.judge).run(scenario, fake, bench, finish, report.outcome);
    const Timeline &timeline = finish();
    report.requests = int(timeline.moments.size());
    report.faulted = timeline.anyFault();
    report.changed = timeline.anyChange();
    report.scenario = scenario.describe();
    report.log = timeline.describe();
    fake.setRequestHook({});
    return report;
}

} // namespace Sluice::Test::Faults
