// SPDX-License-Identifier: Apache-2.0
// The judges of the forge-fault campaign: for each thing that judges the forge, how to make a
// scenario for it, how to run it against the fake forge through the real connector, and what
// the invariant demands of its answer (tst_forgefaults.cpp states it).
#include "forgefaults.h"

#include <sluice/forge.h>

#include <QDir>
#include <QEventLoop>
#include <QFile>
#include <QJsonArray>
#include <QJsonObject>
#include <QRegularExpression>
#include <QSet>
#include <QTimer>

#include <algorithm>
#include <cstring>

namespace Sluice::Test::Faults {

namespace {

// ---- generating ----------------------------------------------------------------------------

QString newSha(Rng &rng)
{
    QString s;
    while (s.size() < 40)
        s += QStringLiteral("%1").arg(rng.next(), 16, 16, QLatin1Char('0'));
    return s.left(40);
}

QString hex(quint64 v)
{
    return QString::number(v, 16);
}

bool isGitHub(const Scenario &s)
{
    return s.flavor == FakeForge::Flavor::GitHub;
}

QString workflowPath(const Scenario &s)
{
    return isGitHub(s) ? QStringLiteral(".github/workflows/ci.yml") : QStringLiteral(".gitea/workflows/ci.yml");
}

// Paths as the fake serves them (the request path, decoded), for faults and triggers.
QString repoPrefix(const Scenario &s)
{
    return isGitHub(s) ? QStringLiteral("^/repos/acme/widget/") : QStringLiteral("^/api/v1/repos/acme/widget/");
}
QString statusesPath(const Scenario &s, const QString &sha) { return repoPrefix(s) + QStringLiteral("commits/%1/statuses$").arg(sha); }
QString checkRunsPath(const Scenario &s, const QString &sha) { return repoPrefix(s) + QStringLiteral("commits/%1/check-runs$").arg(sha); }
QString workflowReadPath(const Scenario &s) { return repoPrefix(s) + (isGitHub(s) ? QStringLiteral("contents/") : QStringLiteral("raw/")); }
QString pullsPath(const Scenario &s) { return repoPrefix(s) + QStringLiteral("pulls$"); }
QString pullPath(const Scenario &s, qint64 n) { return repoPrefix(s) + QStringLiteral("pulls/%1$").arg(n); }
QString mergePath(const Scenario &s, qint64 n) { return repoPrefix(s) + QStringLiteral("pulls/%1/merge$").arg(n); }
QString postStatusPath(const Scenario &s, const QString &sha) { return repoPrefix(s) + QStringLiteral("statuses/%1$").arg(sha); }

// The required names: jobs of a workflow (derived) or listed contexts, and the umbrella.
void chooseRequired(Rng &rng, Scenario &s, bool umbrellaAlways)
{
    static const QStringList jobs = {QStringLiteral("lint"), QStringLiteral("unit"), QStringLiteral("build"), QStringLiteral("docs")};
    const int n = rng.between(1, 3);
    s.derived = rng.percent(50);
    const bool withUmbrella = umbrellaAlways || s.derived || rng.percent(60);
    auto named = [&s](const QString &job) {
        if (!s.derived)
            return QStringLiteral("ci/%1").arg(job);
        return isGitHub(s) ? job : QStringLiteral("CI / %1 (pull_request)").arg(job);
    };
    QByteArray yaml = "name: CI\non: pull_request\njobs:\n";
    QStringList needs;
    for (int i = 0; i < n; ++i) {
        s.required << named(jobs.at(i));
        yaml += "  " + jobs.at(i).toUtf8() + ":\n    runs-on: docker\n";
        needs << jobs.at(i);
    }
    yaml += "  all-required:\n    runs-on: docker\n    needs: [" + needs.join(QStringLiteral(", ")).toUtf8() + "]\n";
    if (withUmbrella)
        s.umbrella = s.derived ? named(QStringLiteral("all-required")) : QStringLiteral("ci/all-required");
    if (s.derived)
        s.workflow = yaml;
}

QByteArray requiredSettings(const Scenario &s, bool forSweeper)
{
    QByteArray out;
    if (s.derived) {
        out += "workflow: " + workflowPath(s).toUtf8() + "\numbrella_job: all-required\nnaming: " + (isGitHub(s) ? "github" : "gitea") + "\n";
        if (forSweeper)
            out += "workflow_ref: " + s.workflowRef.toUtf8() + "\n";
    } else {
        QStringList quoted;
        for (const QString &c : s.required)
            quoted << QLatin1Char('"') + c + QLatin1Char('"');
        out += "contexts: [" + quoted.join(QStringLiteral(", ")).toUtf8() + "]\n";
        if (!s.umbrella.isEmpty())
            out += "umbrella_context: \"" + s.umbrella.toUtf8() + "\"\n";
    }
    return out;
}

enum class Final { Pass, Pending, Red, Missing, Lenient };

Final pickFinal(Rng &rng, int pass, int pending, int red, int missing, int lenient)
{
    int r = rng.below(pass + pending + red + missing + lenient);
    if ((r -= pass) < 0)
        return Final::Pass;
    if ((r -= pending) < 0)
        return Final::Pending;
    if ((r -= red) < 0)
        return Final::Red;
    if ((r -= missing) < 0)
        return Final::Missing;
    return Final::Lenient;
}

struct Entry {
    bool run = false;
    SeedStatus status;
    SeedRun checkRun;
};

QString statusStateFor(Rng &rng, Final f, bool gitea)
{
    switch (f) {
    case Final::Pass: return QStringLiteral("success");
    case Final::Pending: return QStringLiteral("pending");
    case Final::Red: return gitea && rng.percent(10) ? QStringLiteral("warning") : rng.pick(QStringList{QStringLiteral("failure"), QStringLiteral("failure"), QStringLiteral("error")});
    case Final::Lenient: return rng.percent(50) ? QStringLiteral("skipped") : QStringLiteral("warning");
    case Final::Missing: break;
    }
    return QStringLiteral("success");
}

SeedRun runFor(Rng &rng, const QString &name, Final f)
{
    SeedRun r;
    r.name = name;
    r.status = QStringLiteral("completed");
    switch (f) {
    case Final::Pass: r.conclusion = QStringLiteral("success"); break;
    case Final::Pending: r.status = rng.percent(50) ? QStringLiteral("queued") : QStringLiteral("in_progress"); break;
    case Final::Red: r.conclusion = rng.pick(QStringList{QStringLiteral("failure"), QStringLiteral("failure"), QStringLiteral("cancelled"), QStringLiteral("timed_out")}); break;
    case Final::Lenient: r.conclusion = rng.percent(50) ? QStringLiteral("skipped") : QStringLiteral("neutral"); break;
    case Final::Missing: break;
    }
    return r;
}

/**
 * The entries of one name ending in @p f, with up to two earlier ones (a re-run, a status
 * replaced). On GitHub a name has a commit status, a check run or both (@p kinds: 0 status,
 * 1 run, 2 both, -1 drawn); on Gitea statuses only.
 */
QList<Entry> nameEntries(Rng &rng, bool github, const QString &name, Final f, int kinds = -1)
{
    QList<Entry> out;
    if (f == Final::Missing)
        return out;
    if (!github)
        kinds = 0;
    else if (kinds < 0)
        kinds = rng.percent(30) ? 0 : rng.percent(70) ? 1 : 2;
    const bool withStatus = kinds != 1;
    const bool withRun = kinds != 0;
    // With both kinds, the final says what the name is: one kind decides, the other agrees or passes.
    Final statusFinal = f;
    Final runFinal = f;
    if (withStatus && withRun) {
        if (f == Final::Pending || f == Final::Red) {
            Final &other = rng.percent(50) ? statusFinal : runFinal;
            other = f == Final::Red ? pickFinal(rng, 2, 1, 1, 0, 0) : pickFinal(rng, 2, 1, 0, 0, 0);
        } else if (f == Final::Lenient) {
            statusFinal = Final::Pass;
        }
    } else if (withStatus && f == Final::Lenient) {
        statusFinal = Final::Lenient;
    }
    for (int h = rng.below(3); h > 0; --h) {
        const Final earlier = pickFinal(rng, 2, 2, 2, 0, 0);
        Entry e;
        e.run = withRun && (!withStatus || rng.percent(50));
        if (e.run)
            e.checkRun = runFor(rng, name, earlier);
        else
            e.status = {name, statusStateFor(rng, earlier, !github), 0};
        out << e;
    }
    QList<Entry> last;
    if (withStatus) {
        Entry e;
        e.status = {name, statusStateFor(rng, statusFinal, !github), 0};
        last << e;
    }
    if (withRun) {
        Entry e;
        e.run = true;
        e.checkRun = runFor(rng, name, runFinal);
        last << e;
    }
    if (last.size() == 2 && rng.percent(50))
        std::swap(last[0], last[1]);
    out << last;
    return out;
}

/**
 * Posts the queues of entries to @p commit interleaved at random (each queue in order), with
 * times growing with the order (ids grow the same way); @p skew then gives one later status an
 * older time than an earlier one of its context (a forge node with a slow clock).
 */
void post(Rng &rng, SeedCommit &commit, QList<QList<Entry>> queues, bool skew)
{
    int i = int(commit.statuses.size() + commit.runs.size());
    for (;;) {
        QList<int> open;
        for (int q = 0; q < queues.size(); ++q) {
            if (!queues.at(q).isEmpty())
                open << q;
        }
        if (open.isEmpty())
            break;
        Entry e = queues[open.at(rng.below(int(open.size())))].takeFirst();
        const qint64 age = 7200 - 13 * i++;
        if (e.run) {
            e.checkRun.ageSeconds = age;
            commit.runs << e.checkRun;
        } else {
            e.status.ageSeconds = age;
            commit.statuses << e.status;
        }
    }
    if (!skew)
        return;
    QList<int> candidates;
    for (int s = 1; s < commit.statuses.size(); ++s) {
        for (int p = 0; p < s; ++p) {
            if (commit.statuses.at(p).context == commit.statuses.at(s).context) {
                candidates << s;
                break;
            }
        }
    }
    if (candidates.isEmpty())
        return;
    const int s = rng.pick(candidates);
    qint64 previous = 0;
    for (int p = 0; p < s; ++p) {
        if (commit.statuses.at(p).context == commit.statuses.at(s).context)
            previous = commit.statuses.at(p).ageSeconds;
    }
    commit.statuses[s].ageSeconds = previous + rng.between(5, 900);
}

// The CI of one commit: every required name ends as drawn; the umbrella as @p umbrella says.
SeedCommit ciCommit(Rng &rng, const Scenario &s, const QString &sha, std::function<Final()> subFinal, Final umbrella,
                    int umbrellaKinds = -1)
{
    SeedCommit c;
    c.sha = sha;
    QList<QList<Entry>> queues;
    for (const QString &name : s.required)
        queues << nameEntries(rng, isGitHub(s), name, subFinal());
    if (!s.umbrella.isEmpty())
        queues << nameEntries(rng, isGitHub(s), s.umbrella, umbrella, umbrellaKinds);
    post(rng, c, queues, rng.percent(15));
    return c;
}

// ---- faults ----

enum class Endpoint { List, ObjectList, Single, Write };

FakeFault statusFault(Rng &rng, bool write)
{
    FakeFault f;
    f.kind = FakeFault::Kind::Status;
    const int r = rng.below(write ? 45 : 41);
    if (r < 25) {
        f.status = rng.pick(QList<int>{500, 502, 503, 504});
    } else if (r < 37 || write) {
        f.status = 429;
        f.retryAfter = rng.pick(QList<QByteArray>{"", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "3600", "soon"});
        f.message = QStringLiteral("rate limited");
    } else {
        // GitHub's primary rate limit (X-RateLimit-Remaining: 0, a reset already past) or its
        // secondary one (the message says so; Retry-After 0 or none, then at least a minute: too long).
        f.status = 403;
        if (rng.percent(60)) {
            f.headers = {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "1"}};
            f.message = QStringLiteral("API rate limit exceeded");
        } else {
            f.message = QStringLiteral("You have exceeded a secondary rate limit");
            if (rng.percent(50))
                f.retryAfter = "0";
        }
    }
    return f;
}

/// A fault for an endpoint. @p shortDetectable: a page with one item missing can be noticed
/// there (a total is sent, or the page links on); never generated where it cannot. @p counted:
/// the list's pages carry X-Total-Count (Gitea), which alone shows a page answered from a list
/// that changed since the first page (a shifted page is generated only there).
FakeFault makeFault(Rng &rng, Endpoint endpoint, const QByteArray &method, const QString &pattern, int pages, bool shortDetectable,
                    bool counted = false)
{
    using K = FakeFault::Kind;
    struct Weighted {
        int weight;
        K kind;
    };
    QList<Weighted> table;
    if (endpoint == Endpoint::Write) {
        table = {{45, K::Status}, {15, K::Reset}, {15, K::ApplyThenReset}, {10, K::Truncated}, {10, K::Malformed}, {3, K::Hang}};
    } else {
        table = {{41, K::Status}, {10, K::Reset}, {3, K::Hang}, {8, K::Truncated}, {8, K::Malformed}, {5, K::NotAList}};
        if (endpoint == Endpoint::ObjectList)
            table << Weighted{4, K::MissingStatuses};
        if (endpoint != Endpoint::Single) {
            if (shortDetectable)
                table << Weighted{7, K::ShortPage};
            table << Weighted{5, K::ExtraItem} << Weighted{5, K::Reorder} << Weighted{3, K::ExtraPage} << Weighted{5, K::BadItem};
            if (counted && endpoint == Endpoint::List && pages > 1)
                table << Weighted{8, K::ShiftedPage};
        }
    }
    int total = 0;
    for (const Weighted &w : table)
        total += w.weight;
    int r = rng.below(total);
    K kind = K::Status;
    for (const Weighted &w : table) {
        if ((r -= w.weight) < 0) {
            kind = w.kind;
            break;
        }
    }
    FakeFault f = kind == K::Status ? statusFault(rng, endpoint == Endpoint::Write) : FakeFault{};
    f.kind = kind;
    f.method = method;
    f.pathPattern = pattern;
    if (endpoint == Endpoint::List || endpoint == Endpoint::ObjectList)
        f.page = rng.percent(30) ? 0 : rng.between(1, std::max(1, pages));
    if (kind == K::ShiftedPage) {
        f.page = rng.between(2, pages);
        f.shift = rng.percent(50) ? 1 : -1;
    }
    const int t = rng.below(100);
    f.times = t < 55 ? 1 : t < 75 ? 2 : rng.between(3, 6);
    if (kind == K::Hang)
        f.times = 1; // each costs a client timeout
    f.skip = rng.percent(80) ? 0 : rng.between(1, 2);
    return f;
}

int pagesOf(int items, const Scenario &s)
{
    const int size = std::max(1, std::min(s.pageSize, s.serverPageCap));
    return std::max(1, (items + size - 1) / size);
}

int faultCount(Rng &rng)
{
    const int r = rng.below(100);
    return r < 25 ? 0 : r < 60 ? 1 : r < 85 ? 2 : 3;
}

// ---- running ---------------------------------------------------------------------------------

QString tokenFile(const Bench &bench)
{
    const QString path = QDir(bench.dir).filePath(QStringLiteral("token"));
    if (!QFile::exists(path)) {
        QFile f(path);
        if (f.open(QIODevice::WriteOnly))
            f.write("campaign-token-0123456789");
    }
    return path;
}

// The real connector of the scenario's flavour in front of @p fake.
std::unique_ptr<PluginInstance> connector(const Scenario &s, FakeForge &fake, Bench &bench, QStringList &violations)
{
    // timeout: a hung request costs this much per attempt; 300 ms keeps a campaign quick and
    // leaves a loaded machine room (a timeout of a request the fake answered is no violation).
    // concurrency 1 and no back-off: requests reach the forge one at a time in an order that
    // depends only on the scenario (a retry goes after the request queued behind it), so a
    // seed replays exactly; Bench::concurrency > 1 explores real interleavings instead.
    const QByteArray settings = "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: " + tokenFile(bench).toUtf8()
        + "}\ntimeout: 300ms\nretry_backoff: 0ms\nmax_retry_wait: 2s\nmax_retries: " + QByteArray::number(s.maxRetries)
        + "\npage_size: " + QByteArray::number(s.pageSize) + "\nconcurrency: " + QByteArray::number(bench.concurrency) + "\n";
    auto forge = createInstance(isGitHub(s) ? bench.plugins.github : bench.plugins.gitea, settings);
    if (!forge) {
        violations << QStringLiteral("cannot create the connector: %1").arg(forge.error().toString());
        return {};
    }
    if (auto ready = (*forge)->initialize(); !ready) {
        violations << QStringLiteral("cannot initialise the connector: %1").arg(ready.error().toString());
        return {};
    }
    return std::move(*forge);
}

QString projectId(const Scenario &s)
{
    return QStringLiteral("p%1-%2").arg(hex(s.seed)).arg(s.run);
}

// An error caused by the client's own deadline on a request the fake answered late (a loaded
// machine), not by the forge: no false alarm.
bool clientTimeout(const QString &reason)
{
    return reason.contains(QLatin1String("no answer within")) || reason.contains(QLatin1String("did not finish"));
}

QString truthsOver(const Timeline &t, const Scenario &s, const QString &sha)
{
    QStringList out;
    for (const Moment &m : t.moments) {
        const QString n = truthName(ciTruth(m.state, s, sha));
        if (out.isEmpty() || out.last() != n)
            out << n;
    }
    return out.isEmpty() ? QStringLiteral("(no request)") : out.join(QStringLiteral(" → "));
}

bool everTruth(const Timeline &t, const Scenario &s, const QString &sha, Truth want, qsizetype upTo = -1)
{
    for (qsizetype i = 0; i < t.moments.size() && (upTo < 0 || i <= upTo); ++i) {
        if (ciTruth(t.moments.at(i).state, s, sha) == want)
            return true;
    }
    return false;
}

QString verdictText(const GateVerdict &v)
{
    return QStringLiteral("%1: %2").arg(GateVerdict::resultName(v.result()), v.reason());
}

// ---- the ci gate ----------------------------------------------------------------------------

class CiGateJudge final : public Judge
{
public:
    JudgeKind kind() const override { return JudgeKind::CiGate; }

    void generate(Rng &rng, Scenario &s) const override
    {
        chooseRequired(rng, s, false);
        s.forgeSemantics = isGitHub(s) && rng.percent(25);
        s.head = newSha(rng);
        const bool allGreen = rng.percent(45);
        auto sub = [&rng, allGreen] { return allGreen ? Final::Pass : pickFinal(rng, 70, 10, 10, 5, 5); };
        const Final umbrella = allGreen ? Final::Pass : pickFinal(rng, 75, 10, 10, 5, 0);
        s.commits << ciCommit(rng, s, s.head, sub, umbrella);
        const SeedCommit &head = s.commits.first();

        for (int n = faultCount(rng); n > 0; --n) {
            const int r = rng.below(isGitHub(s) ? 100 : 80);
            if (r < 60 || (!s.derived && r < 80)) {
                // GitHub sends no total for statuses: a short page shows only where it links on.
                const int pages = pagesOf(int(head.statuses.size()), s);
                const bool detectable = !isGitHub(s);
                FakeFault f = makeFault(rng, Endpoint::List, "GET", statusesPath(s, s.head), pages, detectable, !isGitHub(s));
                if (isGitHub(s) && pages > 1 && rng.percent(20)) {
                    f.kind = FakeFault::Kind::ShortPage;
                    f.page = rng.between(1, pages - 1);
                }
                s.faults << f;
            } else if (r < 80) {
                s.faults << makeFault(rng, Endpoint::Single, "GET", workflowReadPath(s), 1, false);
            } else {
                s.faults << makeFault(rng, Endpoint::ObjectList, "GET", checkRunsPath(s, s.head), pagesOf(int(head.runs.size()), s), true);
            }
        }
        // The forge changing while it is read: a status or a check run arriving between pages.
        const int changes = rng.percent(65) ? 0 : rng.percent(70) ? 1 : 2;
        QStringList names = s.required;
        if (!s.umbrella.isEmpty())
            names << s.umbrella;
        for (int n = 0; n < changes; ++n) {
            Change c;
            c.sha = s.head;
            c.name = rng.pick(names);
            const bool onRuns = isGitHub(s) && rng.percent(40);
            c.when.pathPattern = onRuns ? checkRunsPath(s, s.head) : statusesPath(s, s.head);
            c.when.page = rng.between(1, 2);
            c.when.occurrence = rng.between(1, 2);
            if (isGitHub(s) && rng.percent(40)) {
                c.kind = Change::Kind::AddCheckRun;
                const SeedRun r = runFor(rng, c.name, pickFinal(rng, 2, 1, 2, 0, 0));
                c.state = r.status;
                c.conclusion = r.conclusion;
            } else {
                c.kind = Change::Kind::AddStatus;
                c.state = rng.pick(QStringList{QStringLiteral("success"), QStringLiteral("failure"), QStringLiteral("pending")});
            }
            s.changes << c;
        }
    }

    QStringList run(const Scenario &s, FakeForge &fake, Bench &bench, std::function<const Timeline &()> finish, QString &outcome) const override
    {
        QStringList violations;
        if (s.derived)
            fake.setFile(s.head, workflowPath(s), s.workflow);
        auto forge = connector(s, fake, bench, violations);
        if (!forge)
            return violations;
        auto state = bench.store->state(projectId(s), QStringLiteral("ci"));
        QByteArray settings = requiredSettings(s, false) + "ci_timeout: 2h\nretry_after: 1m\n";
        if (s.forgeSemantics)
            settings += "required_semantics: forge\n";
        auto gate = createInstance(bench.plugins.ci, settings, fakeProject(projectId(s)), state.get(), qobject_cast<Forge *>(forge.get()));
        if (!gate)
            return {QStringLiteral("cannot create the ci gate: %1").arg(gate.error().toString())};
        GateRequest request;
        request.task.id = 1;
        request.task.projectId = projectId(s);
        request.task.headSha = s.head;
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(gate->get()), request, std::chrono::seconds(60));
        const Timeline &t = finish();
        outcome = GateVerdict::resultName(v.result());

        const QString said = verdictText(v);
        const QString truths = truthsOver(t, s, s.head);
        switch (v.result()) {
        case GateVerdict::Result::Pass:
            if (!everTruth(t, s, s.head, Truth::Green))
                violations << QStringLiteral("PASS it does not justify: the head was never green while it was read (%1); the gate said %2").arg(truths, said);
            break;
        case GateVerdict::Result::Fail:
            if (!everTruth(t, s, s.head, Truth::Red))
                violations << QStringLiteral("fail without a red context while it was read (%1); the gate said %2").arg(truths, said);
            break;
        case GateVerdict::Result::Wait:
            if (!everTruth(t, s, s.head, Truth::Pending))
                violations << QStringLiteral("wait although CI was never pending while it was read (%1); the gate said %2").arg(truths, said);
            break;
        case GateVerdict::Result::Error:
            if (!t.anyFault() && !t.anyChange() && !clientTimeout(v.reason()))
                violations << QStringLiteral("error with a forge that answered every request cleanly: %1").arg(said);
            break;
        case GateVerdict::Result::Skip:
            violations << QStringLiteral("skip: %1").arg(said);
            break;
        }
        if (const QStringList lost = t.unrecovered(); !lost.isEmpty() && v.result() != GateVerdict::Result::Error)
            violations << QStringLiteral("%1 although a read failed for good (%2)").arg(said, lost.join(QStringLiteral("; ")));
        return violations;
    }
};

// ---- the ci-umbrella sweeper ------------------------------------------------------------------

class UmbrellaJudge final : public Judge
{
public:
    JudgeKind kind() const override { return JudgeKind::Umbrella; }

    // The CI of one pull request's head, as one of the cases the compensator tells apart.
    SeedCommit umbrellaCase(Rng &rng, const Scenario &s, const QString &sha, bool umbrellaIsRun) const
    {
        const int r = rng.below(100);
        const int umbrellaKinds = isGitHub(s) ? (umbrellaIsRun ? 1 : 0) : 0;
        auto all = [](Final f) { return [f] { return f; }; };
        SeedCommit c;
        if (r < 40) { // the stale umbrella: compensable
            c = ciCommit(rng, s, sha, all(Final::Pass), Final::Red, umbrellaKinds);
        } else if (r < 50) { // a sub-job red
            c = ciCommit(rng, s, sha, [&rng] { return pickFinal(rng, 1, 0, 1, 0, 0); }, Final::Red, umbrellaKinds);
        } else if (r < 60) { // a sub-job pending, missing or only lenient
            c = ciCommit(rng, s, sha, [&rng] { return pickFinal(rng, 2, 1, 0, 1, 1); }, Final::Red, umbrellaKinds);
        } else if (r < 70) {
            c = ciCommit(rng, s, sha, all(Final::Pass), Final::Pass, umbrellaKinds);
        } else if (r < 78) {
            c = ciCommit(rng, s, sha, all(Final::Pass), Final::Pending, umbrellaKinds);
        } else if (r < 84) {
            c = ciCommit(rng, s, sha, all(Final::Pass), Final::Missing, umbrellaKinds);
        } else {
            c = ciCommit(rng, s, sha, [&rng] { return pickFinal(rng, 6, 1, 1, 1, 1); }, pickFinal(rng, 1, 1, 3, 1, 0), umbrellaKinds);
        }
        // A young failure: the newest umbrella entry a minute or two old.
        if (rng.percent(15)) {
            for (qsizetype i = c.statuses.size() - 1; i >= 0; --i) {
                if (c.statuses.at(i).context == s.umbrella) {
                    c.statuses[i].ageSeconds = rng.between(20, 120);
                    break;
                }
            }
            for (qsizetype i = c.runs.size() - 1; i >= 0; --i) {
                if (c.runs.at(i).name == s.umbrella) {
                    c.runs[i].ageSeconds = rng.between(20, 120);
                    break;
                }
            }
        }
        return c;
    }

    void generate(Rng &rng, Scenario &s) const override
    {
        chooseRequired(rng, s, true);
        s.workflowRef = rng.percent(50) ? QStringLiteral("head") : QStringLiteral("target");
        s.dryRun = rng.percent(15);
        const bool umbrellaIsRun = isGitHub(s) && rng.percent(50);
        const int pulls = rng.between(1, 6);
        for (int n = 1; n <= pulls; ++n) {
            SeedPull p;
            p.number = n;
            p.branch = QStringLiteral("b%1").arg(n);
            if (n > 1 && rng.percent(15)) {
                p.sha = s.pulls.at(rng.below(int(s.pulls.size()))).sha; // two pull requests of one commit
            } else {
                p.sha = newSha(rng);
                s.commits << umbrellaCase(rng, s, p.sha, umbrellaIsRun);
            }
            s.pulls << p;
        }

        for (int n = faultCount(rng) + (rng.percent(30) ? 1 : 0); n > 0; --n) {
            const int r = rng.below(100);
            const SeedPull &p = s.pulls.at(rng.below(int(s.pulls.size())));
            const SeedCommit *c = nullptr;
            for (const SeedCommit &commit : std::as_const(s.commits)) {
                if (commit.sha == p.sha)
                    c = &commit;
            }
            if (r < 25) {
                // GitHub lists pull requests without a total: a short page shows only where it links on.
                const int pages = pagesOf(int(s.pulls.size()), s);
                FakeFault f = makeFault(rng, Endpoint::List, "GET", pullsPath(s), pages, !isGitHub(s), !isGitHub(s));
                s.faults << f;
            } else if (r < 55) {
                s.faults << makeFault(rng, Endpoint::List, "GET", statusesPath(s, p.sha), pagesOf(int(c->statuses.size()), s), !isGitHub(s), !isGitHub(s));
            } else if (r < 70 && isGitHub(s)) {
                s.faults << makeFault(rng, Endpoint::ObjectList, "GET", checkRunsPath(s, p.sha), pagesOf(int(c->runs.size()), s), true);
            } else if (r < 80 && s.derived) {
                s.faults << makeFault(rng, Endpoint::Single, "GET", workflowReadPath(s), 1, false);
            } else if (umbrellaIsRun) {
                if (rng.percent(40))
                    s.faults << makeFault(rng, Endpoint::Single, "GET", repoPrefix(s) + QStringLiteral("actions/jobs/\\d+$"), 1, false);
                else
                    s.faults << makeFault(rng, Endpoint::Write, "POST", repoPrefix(s) + QStringLiteral("actions/jobs/\\d+/rerun$"), 1, false);
            } else {
                s.faults << makeFault(rng, Endpoint::Write, "POST", postStatusPath(s, p.sha), 1, false);
            }
        }

        const int changes = rng.percent(55) ? 0 : rng.percent(70) ? 1 : 2;
        qint64 nextNumber = pulls + 1;
        for (int n = 0; n < changes; ++n) {
            const SeedPull &p = s.pulls.at(rng.below(int(s.pulls.size())));
            Change c;
            // Before a page of the pull request list, or before a read of a head's statuses.
            if (rng.percent(50)) {
                c.when.pathPattern = pullsPath(s);
                c.when.page = rng.between(1, 2);
            } else {
                c.when.pathPattern = statusesPath(s, p.sha);
                c.when.occurrence = rng.between(1, 2);
            }
            const int r = rng.below(100);
            if (r < 40) {
                c.kind = Change::Kind::AddStatus;
                c.sha = p.sha;
                c.name = rng.percent(60) ? s.umbrella : rng.pick(s.required);
                c.state = rng.pick(QStringList{QStringLiteral("success"), QStringLiteral("failure"), QStringLiteral("pending")});
                if (umbrellaIsRun && c.name == s.umbrella) {
                    c.kind = Change::Kind::AddCheckRun;
                    const SeedRun run = runFor(rng, c.name, pickFinal(rng, 2, 1, 1, 0, 0));
                    c.state = run.status;
                    c.conclusion = run.conclusion;
                }
            } else if (r < 65) {
                c.kind = Change::Kind::MoveHead;
                c.pull = p.number;
                c.sha = newSha(rng);
                s.commits << umbrellaCase(rng, s, c.sha, umbrellaIsRun);
            } else if (r < 82) {
                c.kind = Change::Kind::ClosePull;
                c.pull = p.number;
            } else {
                c.kind = Change::Kind::OpenPull;
                c.pull = nextNumber++;
                c.branch = QStringLiteral("b%1").arg(c.pull);
                c.sha = newSha(rng);
                s.commits << umbrellaCase(rng, s, c.sha, umbrellaIsRun);
            }
            s.changes << c;
        }
    }

    QStringList run(const Scenario &s, FakeForge &fake, Bench &bench, std::function<const Timeline &()> finish, QString &outcome) const override
    {
        QStringList violations;
        if (s.derived) {
            if (s.workflowRef == QLatin1String("target")) {
                fake.setFile(QStringLiteral("main"), workflowPath(s), s.workflow);
            } else {
                for (const SeedCommit &c : s.commits)
                    fake.setFile(c.sha, workflowPath(s), s.workflow);
            }
        }
        auto forge = connector(s, fake, bench, violations);
        if (!forge)
            return violations;
        auto state = bench.store->state(projectId(s), QStringLiteral("ci-umbrella"));
        const QByteArray settings = "enabled: true\ntoken: {file: " + tokenFile(bench).toUtf8() + "}\nthreshold: " + QByteArray::number(s.thresholdSeconds)
            + "s\n" + requiredSettings(s, true);
        auto created = createInstance(bench.plugins.umbrella, settings, fakeProject(projectId(s)), state.get(), qobject_cast<Forge *>(forge.get()));
        if (!created)
            return {QStringLiteral("cannot create the sweeper: %1").arg(created.error().toString())};
        SweepOptions options;
        options.dryRun = s.dryRun;
        std::unique_ptr<SweepRun> sweep = qobject_cast<Sweeper *>(created->get())->sweep(options);
        QEventLoop loop;
        QObject::connect(sweep.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
        QTimer::singleShot(60000, &loop, &QEventLoop::quit);
        sweep->start();
        if (!sweep->isFinished())
            loop.exec();
        if (!sweep->isFinished())
            return {QStringLiteral("the sweep did not finish within 60 s")};
        const SweepReport report = sweep->report();
        const Timeline &t = finish();
        outcome = report.ok ? QStringLiteral("sweep-ok") : QStringLiteral("sweep-failed");
        if (report.acted > 0)
            outcome += s.dryRun ? QStringLiteral("+would-act") : QStringLiteral("+acted");
        const QString summary = QStringLiteral("sweep %1: %2").arg(report.ok ? QStringLiteral("ok") : QStringLiteral("FAILED"), report.summary);

        // Every write is justified at the moment it reaches the forge: the rule holds then, or
        // held at the sweeper's last read and only someone else's change came between.
        for (qsizetype i = 0; i < t.moments.size(); ++i) {
            const Moment &m = t.moments.at(i);
            if (m.method == "GET")
                continue;
            if (s.dryRun) {
                violations << QStringLiteral("a dry run wrote: %1 %2").arg(QString::fromLatin1(m.method), m.path);
                continue;
            }
            QString sha;
            static const QRegularExpression postStatus(QStringLiteral("/statuses/([0-9a-f]{40})$"));
            static const QRegularExpression rerun(QStringLiteral("/actions/jobs/(\\d+)/rerun$"));
            if (auto mm = postStatus.match(m.path); mm.hasMatch() && m.method == "POST") {
                sha = mm.captured(1);
            } else if (auto rm = rerun.match(m.path); rm.hasMatch() && m.method == "POST") {
                for (auto it = m.state.runs.cbegin(); it != m.state.runs.cend() && sha.isEmpty(); ++it) {
                    for (const FakeCheckRun &run : it.value()) {
                        if (run.id == rm.captured(1).toLongLong())
                            sha = run.sha;
                    }
                }
            } else {
                violations << QStringLiteral("an unexpected write: %1 %2").arg(QString::fromLatin1(m.method), m.path);
                continue;
            }
            const QString now = umbrellaTruth(m.state, s, sha, m.state.at);
            if (now == QLatin1String("compensate"))
                continue;
            qsizetype lastRead = -1;
            for (qsizetype j = 0; j < i; ++j) {
                if (t.moments.at(j).method == "GET" && t.moments.at(j).path.endsWith(QStringLiteral("commits/%1/statuses").arg(sha)))
                    lastRead = j;
            }
            bool othersChanged = false;
            for (qsizetype j = lastRead + 1; j <= i && lastRead >= 0; ++j)
                othersChanged = othersChanged || !t.moments.at(j).changes.isEmpty();
            if (othersChanged && umbrellaTruth(t.moments.at(lastRead).state, s, sha, t.moments.at(lastRead).state.at) == QLatin1String("compensate"))
                continue;
            violations << QStringLiteral("a COMPENSATION it does not justify: request %1 (%2 %3) while the rule says '%4'").arg(i).arg(QString::fromLatin1(m.method), m.path, now);
        }

        const QStringList lost = t.unrecovered();
        if (report.ok && !lost.isEmpty())
            violations << QStringLiteral("%1, although a read or write failed for good (%2)").arg(summary, lost.join(QStringLiteral("; ")));
        if (!report.ok && !t.anyFault() && !t.anyChange()) {
            bool timeout = false;
            for (const QJsonValue &d : report.decisions)
                timeout = timeout || clientTimeout(d.toObject().value(QStringLiteral("reason")).toString());
            if (!timeout)
                violations << QStringLiteral("%1 with a forge that answered every request cleanly").arg(summary);
        }

        // Every decision is what the rule said of that head at some moment of the sweep.
        QSet<qint64> decided;
        for (const QJsonValue &value : report.decisions) {
            const QJsonObject d = value.toObject();
            const QString decision = d.value(QStringLiteral("decision")).toString();
            if (decision == QLatin1String("error"))
                continue;
            const qint64 pr = qint64(d.value(QStringLiteral("pullRequest")).toDouble());
            const QString sha = d.value(QStringLiteral("sha")).toString();
            decided.insert(pr);
            bool headSeen = false;
            bool ruleSeen = false;
            QStringList said;
            for (const Moment &m : t.moments) {
                for (const FakePullRequest &p : m.state.pulls)
                    headSeen = headSeen || (p.number == pr && p.headSha == sha && p.state == QLatin1String("open"));
                const QString truth = umbrellaTruth(m.state, s, sha, m.state.at);
                ruleSeen = ruleSeen || truth == decision;
                if (said.isEmpty() || said.last() != truth)
                    said << truth;
            }
            if (!headSeen)
                violations << QStringLiteral("pull request #%1 was never open at %2, yet it was decided ('%3')").arg(pr).arg(sha.left(12), decision);
            if (!ruleSeen)
                violations << QStringLiteral("pull request #%1 at %2 decided '%3' (%4), but the rule said %5 while it was read")
                                  .arg(pr).arg(sha.left(12), decision, d.value(QStringLiteral("reason")).toString(), said.join(QStringLiteral(" → ")));
        }

        // A sweep that exits 0 assessed every pull request open all along. GitHub sends no total
        // with its list: a pull request closed between two pages shifts the next page by one,
        // which no client can see, so there a closed one excuses the gap (docs/testing.md).
        bool closedWhileListed = false;
        for (const Moment &m : t.moments) {
            for (const QString &c : m.changes)
                closedWhileListed = closedWhileListed || c.contains(QLatin1String(" closes"));
        }
        if (report.ok && !(isGitHub(s) && closedWhileListed)) {
            QSet<qint64> always;
            for (const SeedPull &p : s.pulls)
                always.insert(p.number);
            for (const Change &c : s.changes) {
                if (c.kind == Change::Kind::OpenPull)
                    always.insert(c.pull);
            }
            QList<const Snapshot *> states;
            for (const Moment &m : t.moments)
                states << &m.state;
            states << &t.end;
            for (const Snapshot *snapshot : std::as_const(states)) {
                for (qint64 n : QSet<qint64>(always)) {
                    const auto it = std::find_if(snapshot->pulls.cbegin(), snapshot->pulls.cend(), [n](const FakePullRequest &p) { return p.number == n; });
                    if (it == snapshot->pulls.cend() || it->state != QLatin1String("open"))
                        always.remove(n);
                }
            }
            for (qint64 n : std::as_const(always)) {
                if (!decided.contains(n))
                    violations << QStringLiteral("%1, but pull request #%2, open all along, was not assessed").arg(summary).arg(n);
            }
        }
        if (!violations.isEmpty())
            violations << summary;
        return violations;
    }
};

// ---- the merge gate ---------------------------------------------------------------------------

class MergeJudge final : public Judge
{
public:
    JudgeKind kind() const override { return JudgeKind::Merge; }

    void generate(Rng &rng, Scenario &s) const override
    {
        chooseRequired(rng, s, false);
        s.forgeSemantics = isGitHub(s) && rng.percent(25);
        s.head = QStringLiteral("@HEAD@");
        const int r = rng.below(100);
        std::function<Final()> sub;
        Final umbrella = Final::Pass;
        if (r < 55) {
            sub = [] { return Final::Pass; };
        } else if (r < 70) {
            sub = [&rng] { return pickFinal(rng, 2, 0, 1, 0, 0); };
            umbrella = pickFinal(rng, 1, 0, 1, 0, 0);
        } else if (r < 75) { // pending: the gate polls until checks_timeout (1 s, its least), then waits
            sub = [&rng] { return pickFinal(rng, 3, 1, 0, 0, 0); };
            umbrella = pickFinal(rng, 3, 1, 0, 0, 0);
        } else {
            sub = [&rng] { return pickFinal(rng, 12, 1, 2, 1, 1); };
            umbrella = pickFinal(rng, 12, 1, 2, 1, 0);
        }
        s.commits << ciCommit(rng, s, s.head, sub, umbrella);
        SeedPull p;
        p.number = 1;
        p.branch = QStringLiteral("task-%1").arg(hex(s.seed));
        p.sha = s.head;
        if (rng.percent(10))
            p.mergeabilityPending = rng.between(1, 2);
        s.pulls << p;
        const SeedCommit &head = s.commits.first();

        for (int n = faultCount(rng); n > 0; --n) {
            const int q = rng.below(100);
            if (q < 30) {
                FakeFault f = makeFault(rng, Endpoint::Single, "GET", pullPath(s, 1), 1, false);
                f.skip = rng.between(0, 3); // the first read, the one before the merge, the one after
                s.faults << f;
            } else if (q < 55) {
                s.faults << makeFault(rng, Endpoint::List, "GET", statusesPath(s, s.head), pagesOf(int(head.statuses.size()), s), !isGitHub(s), !isGitHub(s));
            } else if (q < 65 && isGitHub(s)) {
                s.faults << makeFault(rng, Endpoint::ObjectList, "GET", checkRunsPath(s, s.head), pagesOf(int(head.runs.size()), s), true);
            } else if (q < 75 && s.derived) {
                s.faults << makeFault(rng, Endpoint::Single, "GET", workflowReadPath(s), 1, false);
            } else {
                s.faults << makeFault(rng, Endpoint::Write, isGitHub(s) ? "PUT" : "POST", mergePath(s, 1), 1, false);
            }
        }
        // A head that moves, or CI turning red, while the gate is at it: before the merge, before
        // the read right before it (the third), or before the second read (the gate then waits
        // checks_timeout for the forge to show its head, and fails).
        if (rng.percent(25)) {
            Change c;
            const int at = rng.below(100);
            if (at < 40) {
                c.when.method = isGitHub(s) ? "PUT" : "POST";
                c.when.pathPattern = mergePath(s, 1);
            } else {
                c.when.pathPattern = pullPath(s, 1);
                c.when.occurrence = at < 90 ? 3 : 2;
            }
            if (rng.percent(50)) {
                c.kind = Change::Kind::MoveHead;
                c.pull = 1;
                c.sha = newSha(rng);
            } else {
                c.kind = Change::Kind::AddStatus;
                c.sha = s.head;
                c.name = rng.pick(s.required);
                c.state = QStringLiteral("failure");
            }
            s.changes << c;
        }
    }

    QString prepare(Scenario &s, Bench &bench) const override
    {
        // A commit of its own on a branch of its own, on top of main: nothing to rebase.
        const QString branch = s.pulls.first().branch;
        const GitOut tree = runGit({QStringLiteral("--git-dir"), bench.bareRepository, QStringLiteral("rev-parse"), QStringLiteral("main^{tree}")});
        const GitOut commit = runGit({QStringLiteral("--git-dir"), bench.bareRepository, QStringLiteral("commit-tree"), tree.out, QStringLiteral("-p"),
                                      QStringLiteral("main"), QStringLiteral("-m"), QStringLiteral("task of scenario %1").arg(hex(s.seed))});
        if (tree.code != 0 || commit.code != 0)
            return QStringLiteral("git: %1 %2").arg(tree.err, commit.err);
        const GitOut ref = runGit({QStringLiteral("--git-dir"), bench.bareRepository, QStringLiteral("update-ref"), QStringLiteral("refs/heads/") + branch, commit.out});
        if (ref.code != 0)
            return QStringLiteral("git update-ref: %1").arg(ref.err);
        bindHead(s, commit.out);
        return {};
    }

    QStringList run(const Scenario &s, FakeForge &fake, Bench &bench, std::function<const Timeline &()> finish, QString &outcome) const override
    {
        QStringList violations;
        if (s.derived)
            fake.setFile(s.head, workflowPath(s), s.workflow);
        auto forge = connector(s, fake, bench, violations);
        if (!forge)
            return violations;
        const QString project = projectId(s);
        auto state = bench.store->state(project, QStringLiteral("merge"));
        auto leases = bench.store->leases();
        QByteArray checks = requiredSettings(s, false).trimmed().replace('\n', ", ");
        if (s.forgeSemantics)
            checks += ", required_semantics: forge";
        const QByteArray settings = "poll_interval: 20ms\nchecks_timeout: 1s\nlease_wait: 0s\nwait_retry: 1s\nci_timeout: 2h\nchecks: {" + checks + "}\n";
        ProjectInfo info = fakeProject(project);
        info.repository = bench.bareRepository;
        const QString stateDir = QDir(bench.dir).filePath(QStringLiteral("state"));
        auto gate = createInstance(bench.plugins.merge, settings, info, state.get(), qobject_cast<Forge *>(forge.get()), leases.get(),
                                   hostRepository(bench.bareRepository, QStringLiteral("main"), QString(), stateDir, project));
        if (!gate)
            return {QStringLiteral("cannot create the merge gate: %1").arg(gate.error().toString())};
        GateRequest request;
        request.task.id = qint64(s.seed & 0x3fffffff) + 1;
        request.task.projectId = project;
        request.task.branch = s.pulls.first().branch;
        request.task.pullRequest = 1;
        request.task.headSha = s.head;
        request.fromStage = QStringLiteral("review");
        request.toStage = QStringLiteral("done");
        const GateVerdict v = evaluateGate(*qobject_cast<Gate *>(gate->get()), request, std::chrono::seconds(60));
        const Timeline &t = finish();
        outcome = GateVerdict::resultName(v.result());
        // The host's worktree of the task is not needed again.
        runGit({QStringLiteral("--git-dir"), bench.bareRepository, QStringLiteral("worktree"), QStringLiteral("remove"), QStringLiteral("--force"),
                hostRepository(bench.bareRepository, QStringLiteral("main"), QString(), stateDir, project)->scratchPath(request.task.id)});

        const QString said = verdictText(v);
        std::optional<FakePullRequest> after;
        for (const FakePullRequest &p : t.end.pulls) {
            if (p.number == 1)
                after = p;
        }
        const bool merged = after && after->merged;
        if (merged) {
            const QString mergedHead = after->mergeCommit.mid(int(strlen("merge-")));
            qsizetype at = -1; // the merge request that merged it
            for (qsizetype i = 0; i < t.moments.size(); ++i) {
                const Moment &m = t.moments.at(i);
                if (m.method != "GET" && m.path.endsWith(QLatin1String("/pulls/1/merge")))
                    at = i;
            }
            if (mergedHead != s.head)
                violations << QStringLiteral("a MERGE it does not justify: the forge merged %1, not the task's head %2; the gate said %3").arg(mergedHead.left(12), s.head.left(12), said);
            else if (at < 0 || !everTruth(t, s, mergedHead, Truth::Green, at))
                violations << QStringLiteral("a MERGE it does not justify: %1 was never green before the merge (%2); the gate said %3").arg(mergedHead.left(12), truthsOver(t, s, mergedHead), said);
        }
        bool changed = t.anyChange();
        const QStringList lost = t.unrecovered();
        bool mergeFault = false;
        for (const Moment &m : t.moments)
            mergeFault = mergeFault || (m.method != "GET" && !m.fault.isEmpty());
        switch (v.result()) {
        case GateVerdict::Result::Pass:
            if (!merged)
                violations << QStringLiteral("PASS although the forge shows pull request #1 not merged: %1").arg(said);
            break;
        case GateVerdict::Result::Fail:
            if (!everTruth(t, s, s.head, Truth::Red) && !changed)
                violations << QStringLiteral("fail without a red check or a change at the forge (%1): %2").arg(truthsOver(t, s, s.head), said);
            break;
        case GateVerdict::Result::Wait:
            // Documented waits: pending checks, a merge refused for now, the merge call (its
            // reads before and after included) without an answer.
            if (!everTruth(t, s, s.head, Truth::Pending) && s.pulls.first().mergeabilityPending == 0 && !mergeFault && lost.isEmpty() && !changed)
                violations << QStringLiteral("wait without pending checks, a merge refused for now or a request failed for good (%1): %2").arg(truthsOver(t, s, s.head), said);
            break;
        case GateVerdict::Result::Error:
            if (!t.anyFault() && !changed && !clientTimeout(v.reason()))
                violations << QStringLiteral("error with a forge that answered every request cleanly: %1").arg(said);
            break;
        case GateVerdict::Result::Skip:
            violations << QStringLiteral("skip: %1").arg(said);
            break;
        }
        if (!lost.isEmpty() && v.result() != GateVerdict::Result::Error && v.result() != GateVerdict::Result::Wait
            && !(v.result() == GateVerdict::Result::Pass && merged))
            violations << QStringLiteral("%1 although a request failed for good (%2)").arg(said, lost.join(QStringLiteral("; ")));
        return violations;
    }
};

} // namespace

const Judge &judge(JudgeKind kind)
{
    static const CiGateJudge ci;
    static const UmbrellaJudge umbrella;
    static const MergeJudge merge;
    switch (kind) {
    case JudgeKind::CiGate: return ci;
    case JudgeKind::Umbrella: return umbrella;
    case JudgeKind::Merge: return merge;
    }
    return ci;
}

Scenario generate(quint64 seed)
{
    Rng rng(seed);
    Scenario s;
    s.seed = seed;
    const int r = rng.below(100);
    s.judge = r < 45 ? JudgeKind::CiGate : r < 78 ? JudgeKind::Umbrella : JudgeKind::Merge;
    s.flavor = rng.percent(50) ? FakeForge::Flavor::Gitea : FakeForge::Flavor::GitHub;
    s.pageSize = rng.between(1, 5);
    // Gitea may serve fewer than asked (MAX_RESPONSE_ITEMS); GitHub serves per_page up to 100.
    s.serverPageCap = !isGitHub(s) && rng.percent(25) ? rng.between(1, s.pageSize) : s.pageSize + rng.below(3);
    s.maxRetries = rng.between(0, 3);
    judge(s.judge).generate(rng, s);
    return s;
}

} // namespace Sluice::Test::Faults
