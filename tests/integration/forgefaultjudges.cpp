// SPDX-License-Identifier: Apache-2.0
// The judges of the forge-fault campaign: for each thing that judges the forge, how to make a
// scenario for it, how to run it against the fake forge through the real connector, and what
// the invariant demands of its answer (tst_forgefaults.cpp states it).
#include "forgefaults.h"

#include "daemon/daemon.h"
#include "engine/hostruntime.h"
#include "webhooksender.h"

#include <sluice/forge.h>

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QSet>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QThread>
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


// ---- the webhook intake -----------------------------------------------------------------------

/**
 * The forge's webhook intake as it runs in `sluice serve`: the real daemon (Daemon, in this
 * process, with its HTTP server on loopback), the real gitea or github connector as the
 * project's forge instance (its WebhookReceiver checks and reads each delivery), the store
 * recording deliveries, the forge listener waking the task, and the ci gate reading the fake
 * forge through the same connector when woken. One task waits in `testing` (exit gate ci) on its
 * head; the steps make CI report (the fake forge delivers, signed, in its flavour's shapes),
 * hold and reorder deliveries, redeliver them, replay them under new ids, push another head to
 * the task's branch, and send hostile deliveries of every kind the intake must refuse or ignore.
 */
class WebhookJudge final : public Judge
{
public:
    JudgeKind kind() const override { return JudgeKind::Webhook; }

    static QByteArray secret() { return QByteArrayLiteral("campaign-hook-secret-5151"); }

    void generate(Rng &rng, Scenario &s) const override
    {
        static const QStringList jobs = {QStringLiteral("lint"), QStringLiteral("unit"), QStringLiteral("build")};
        for (int i = rng.between(1, 3); i > 0; --i)
            s.required << QStringLiteral("ci/%1").arg(jobs.at(s.required.size()));
        s.forgeSemantics = isGitHub(s) && rng.percent(25);
        s.head = newSha(rng);
        // CI of the head when the task comes to wait: mostly under way, sometimes over already.
        const int r = rng.below(100);
        std::function<Final()> sub;
        if (r < 70)
            sub = [&rng] { return pickFinal(rng, 3, 5, 0, 3, 0); };
        else if (r < 85)
            sub = [] { return Final::Pass; };
        else
            sub = [&rng] { return pickFinal(rng, 4, 2, 2, 1, 1); };
        s.commits << ciCommit(rng, s, s.head, sub, Final::Pass);
        const QString moved = newSha(rng);    // the head someone else pushes
        const QString stranger = newSha(rng); // a commit no task has
        s.commits << SeedCommit{moved, {}, {}} << SeedCommit{stranger, {}, {}};
        SeedPull p;
        p.number = 1;
        p.branch = QStringLiteral("task-%1").arg(hex(s.seed));
        p.sha = s.head;
        s.pulls << p;

        // Faults on the reads the woken gate makes.
        for (int n = faultCount(rng) - 1; n > 0; --n) {
            const SeedCommit &head = s.commits.first();
            if (isGitHub(s) && rng.percent(35))
                s.faults << makeFault(rng, Endpoint::ObjectList, "GET", checkRunsPath(s, s.head), pagesOf(int(head.runs.size()), s), true);
            else
                s.faults << makeFault(rng, Endpoint::List, "GET", statusesPath(s, s.head), pagesOf(int(head.statuses.size()), s), !isGitHub(s), !isGitHub(s));
        }

        auto anyState = [&rng] {
            return rng.pick(QStringList{QStringLiteral("success"), QStringLiteral("success"), QStringLiteral("success"), QStringLiteral("failure"),
                                        QStringLiteral("pending"), QStringLiteral("pending"), QStringLiteral("error")});
        };
        bool pushed = false;
        bool holding = false;
        bool closed = false;
        const int steps = rng.between(3, 10);
        for (int i = 0; i < steps; ++i) {
            Delivery d;
            d.sha = pushed && rng.percent(50) ? moved : s.head;
            d.context = rng.pick(s.required);
            const int k = rng.below(100);
            if (k < 32 || (holding && k < 60)) {
                d.kind = Delivery::Kind::CiReport;
                if (rng.percent(8))
                    d.sha = stranger;
                d.checkRun = isGitHub(s) && rng.percent(40);
                if (d.checkRun) {
                    const SeedRun run = runFor(rng, d.context, pickFinal(rng, 5, 2, 2, 0, s.forgeSemantics ? 1 : 0));
                    d.state = run.status;
                    d.conclusion = run.conclusion;
                } else {
                    d.state = anyState();
                }
            } else if (k < 60) {
                d.kind = Delivery::Kind::Hostile;
                static const QStringList hows = {
                    QStringLiteral("wrong-secret"), QStringLiteral("no-signature"), QStringLiteral("other-body-signature"),
                    QStringLiteral("cut-signature"), QStringLiteral("truncated-unsigned"), QStringLiteral("truncated"),
                    QStringLiteral("malformed"), QStringLiteral("not-object"), QStringLiteral("wrong-type"),
                    QStringLiteral("missing-field"), QStringLiteral("unknown-state"), QStringLiteral("no-id"),
                    QStringLiteral("no-event"), QStringLiteral("empty-body"), QStringLiteral("other-repo"),
                    QStringLiteral("unknown-event"), QStringLiteral("oversized")};
                d.how = rng.pick(hows);
                // What a forger wants: the head green.
                d.state = QStringLiteral("success");
            } else if (k < 70) {
                d.kind = Delivery::Kind::Claim;
                d.state = rng.percent(75) ? QStringLiteral("success") : anyState();
                if (rng.percent(15))
                    d.sha = stranger;
            } else if (k < 79) {
                d.kind = Delivery::Kind::Redeliver;
                d.of = rng.below(1000);
            } else if (k < 85) {
                d.kind = Delivery::Kind::NewId;
                d.of = rng.below(1000);
            } else if (k < 89) {
                // Someone closes the pull request, or reopens it: with the deliveries held,
                // the forge may send them in either order.
                d.kind = closed ? Delivery::Kind::ReopenPull : Delivery::Kind::ClosePull;
                closed = !closed;
            } else if (k < 95) {
                d.kind = holding ? Delivery::Kind::Release : Delivery::Kind::Hold;
                d.reversed = rng.percent(70);
                holding = !holding;
            } else if (!pushed) {
                d.kind = Delivery::Kind::Push;
                d.sha = moved;
                pushed = true;
            } else {
                d.kind = Delivery::Kind::CiReport;
                d.sha = moved;
                d.state = QStringLiteral("success");
            }
            s.deliveries << d;
        }
        if (holding) {
            Delivery d;
            d.kind = Delivery::Kind::Release;
            d.reversed = rng.percent(70);
            s.deliveries << d;
        }
        // The pull request closed and reopened at once, its two deliveries sent in either order.
        if (!closed && rng.percent(15)) {
            QList<Delivery> burst{Delivery{}, Delivery{}, Delivery{}, Delivery{}};
            burst[0].kind = Delivery::Kind::Hold;
            burst[1].kind = Delivery::Kind::ClosePull;
            burst[2].kind = Delivery::Kind::ReopenPull;
            burst[3].kind = Delivery::Kind::Release;
            burst[3].reversed = rng.percent(60);
            const int at = rng.below(int(s.deliveries.size()) + 1);
            // Not inside a hold of the steps themselves.
            int held = 0;
            for (int i = 0; i < at; ++i)
                held += s.deliveries.at(i).kind == Delivery::Kind::Hold ? 1 : s.deliveries.at(i).kind == Delivery::Kind::Release ? -1 : 0;
            if (held == 0) {
                for (int i = 0; i < burst.size(); ++i)
                    s.deliveries.insert(at + i, burst.at(i));
            }
        }
        // Faults on the pull request the intake reads back for a closed or reopened one (drawn
        // last, so the scenarios drawn before this read existed stay as they were).
        if (rng.percent(35))
            s.faults << makeFault(rng, Endpoint::Single, "GET", pullPath(s, 1), 1, false);
    }

    QStringList run(const Scenario &s, FakeForge &fake, Bench &bench, std::function<const Timeline &()> finish, QString &outcome) const override;
};

namespace {

// A status payload as both forges deliver it (Gitea's CommitStatusPayload, GitHub's status event).
QJsonObject statusPayload(const QString &sha, const QString &context, const QString &state, qint64 id)
{
    return QJsonObject{{QStringLiteral("id"), id},
                       {QStringLiteral("sha"), sha},
                       {QStringLiteral("context"), context},
                       {QStringLiteral("state"), state},
                       {QStringLiteral("description"), QStringLiteral("claimed")},
                       {QStringLiteral("repository"), QJsonObject{{QStringLiteral("full_name"), QStringLiteral("acme/widget")},
                                                                  {QStringLiteral("name"), QStringLiteral("widget")},
                                                                  {QStringLiteral("owner"), QJsonObject{{QStringLiteral("login"), QStringLiteral("acme")}}}}},
                       {QStringLiteral("sender"), QJsonObject{{QStringLiteral("login"), QStringLiteral("mallory")}}}};
}

QByteArray compactJson(const QJsonObject &o)
{
    return QJsonDocument(o).toJson(QJsonDocument::Compact);
}

// What the daemon must answer a hostile delivery: 401 unsigned or signed wrong, 400 unreadable,
// 202 signed and readable but nothing Sluice uses, 413 too large (-1: the server closed the
// connection before the client finished sending, also a refusal).
int expectedStatus(const QString &how)
{
    static const QStringList unauthorized = {QStringLiteral("wrong-secret"), QStringLiteral("no-signature"), QStringLiteral("other-body-signature"),
                                             QStringLiteral("cut-signature"), QStringLiteral("truncated-unsigned")};
    if (unauthorized.contains(how))
        return 401;
    if (how == QLatin1String("other-repo") || how == QLatin1String("unknown-event"))
        return 202;
    if (how == QLatin1String("oversized"))
        return 413;
    return 400;
}

constexpr int WebhookMaxBody = 16384;

} // namespace

QStringList WebhookJudge::run(const Scenario &s, FakeForge &fake, Bench &bench, std::function<const Timeline &()> finish, QString &outcome) const
{
    QStringList violations;
    const QString project = QStringLiteral("wh%1-%2").arg(hex(s.seed)).arg(s.run);
    const QString branch = s.pulls.first().branch;
    // The daemon's configuration: one per campaign (the store, the node and the state directory
    // are shared; each scenario's project is its own), the project file rewritten per scenario.
    const QDir config(QDir(bench.dir).filePath(QStringLiteral("webhook-daemon")));
    QDir().mkpath(config.filePath(QStringLiteral("projects")));
    auto write = [](const QString &path, const QByteArray &content) {
        QFile f(path);
        return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(content) == content.size();
    };
    const QString secretFile = config.filePath(QStringLiteral("hook.secret"));
    bool written = write(config.filePath(QStringLiteral("sluice.yaml")),
                         "node: campaign\nstate_dir: " + config.filePath(QStringLiteral("state")).toUtf8() + "\nplugin_dirs: [" + bench.pluginDir.toUtf8()
                             + "]\nworker: {poll_interval: 50ms}\nhttp: {port: 0, max_body: " + QByteArray::number(WebhookMaxBody)
                             + "}\nreconciler: {interval: 1h, settle: 1h}\n")
                   && write(secretFile, secret() + '\n');
    for (const QString &old : QDir(config.filePath(QStringLiteral("projects"))).entryList(QDir::Files))
        QFile::remove(config.filePath(QStringLiteral("projects/") + old));
    QByteArray contexts;
    for (const QString &c : s.required)
        contexts += QByteArray(contexts.isEmpty() ? "" : ", ") + '"' + c.toUtf8() + '"';
    written = written
              && write(config.filePath(QStringLiteral("projects/%1.yaml").arg(project)),
                       "id: " + project.toUtf8() + "\nrepository: {path: " + bench.bareRepository.toUtf8()
                           + ", target_branch: main, forge: forge}\nred_policy: {rollback_to: testing, max_retries: 0}\njobs: {max_attempts: 1}\n"
                             "timeouts: {stage: 2m, gate: 1m}\nstages:\n  - name: testing\n    exit_gates: [ci]\n  - name: done\ninstances:\n  forge:\n    plugin: "
                           + (isGitHub(s) ? "github" : "gitea") + "\n    settings:\n      url: " + fake.url().toString().toUtf8()
                           + "\n      repository: acme/widget\n      token: {file: " + tokenFile(bench).toUtf8() + "}\n      webhook_secret: {file: "
                           + secretFile.toUtf8() + "}\n      timeout: 300ms\n      retry_backoff: 0ms\n      max_retry_wait: 2s\n      max_retries: "
                           + QByteArray::number(s.maxRetries) + "\n      page_size: " + QByteArray::number(s.pageSize) + "\n      concurrency: 1"
                           + "\n  ci:\n    plugin: ci\n    settings:\n      contexts: [" + contexts + "]\n      retry_after: 1h\n      ci_timeout: 2h\n"
                           + (s.forgeSemantics ? "      required_semantics: forge\n" : ""));
    if (!written)
        return {QStringLiteral("cannot write the daemon's configuration under %1").arg(config.path())};

    Diagnostics diagnostics;
    auto opened = HostRuntime::open(config.path(), diagnostics);
    if (!opened)
        return {QStringLiteral("cannot open the host: %1").arg(opened.error().toString())};
    std::unique_ptr<HostRuntime> host = std::move(*opened);
    auto daemon = std::make_unique<Daemon>(*host, Daemon::Options{});
    if (auto started = daemon->start(); !started)
        return {QStringLiteral("the daemon did not start: %1").arg(started.error().toString())};
    Engine &engine = host->engine();
    if (!engine.project(project))
        return {QStringLiteral("the daemon did not load project %1").arg(project)};
    const QString source = QStringLiteral("%1/forge").arg(project);

    // Reading the store as an operator would (a connection of its own).
    const QString connection = QStringLiteral("campaign-webhook-%1").arg(s.run);
    struct Closer {
        QString name;
        ~Closer() { QSqlDatabase::removeDatabase(name); }
    } closer{connection};
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), connection);
        db.setDatabaseName(host->config().store.sqlitePath);
        if (!db.open())
            return {QStringLiteral("cannot read the store: %1").arg(db.lastError().text())};
    }
    auto sql = [connection](const QString &query) {
        QSqlQuery q(QSqlDatabase::database(connection));
        QStringList rows;
        if (!q.exec(query))
            return QStringList{QStringLiteral("(%1)").arg(q.lastError().text())};
        while (q.next()) {
            QStringList cells;
            for (int c = 0; c < q.record().count(); ++c)
                cells << q.value(c).toString();
            rows << cells.join(QLatin1Char('|'));
        }
        return rows;
    };

    // The task: waiting in testing on the head, its branch pushed, pull request #1 recorded.
    auto submitted = engine.submit(project, QStringLiteral("Scenario %1").arg(hex(s.seed)), QString(), branch, QStringLiteral("campaign"));
    if (!submitted)
        return {QStringLiteral("cannot submit the task: %1").arg(submitted.error().toString())};
    const qint64 task = *submitted;
    if (auto recorded = engine.tasks().recordHead(task, QStringLiteral("testing"), s.head); !recorded || !*recorded)
        return {QStringLiteral("cannot record the task's head")};
    if (auto published = engine.tasks().recordPublication(task, s.head, 1); !published)
        return {QStringLiteral("cannot record the task's pull request: %1").arg(published.error().toString())};
    fake.setWebhook(QUrl(QStringLiteral("http://127.0.0.1:%1/webhooks/%2/forge").arg(daemon->httpPort()).arg(project)), secret());
    WebhookSender &hooks = fake.webhooks();

    // Quiet: every delivery answered and handled, nothing evaluating, no job open. Checked
    // twice around a turn of the event loop (a deferred look starts when the one before ends).
    auto quietNow = [&] {
        if (hooks.pending() != 0 || engine.runsInFlight() != 0 || daemon->forgeEventsInFlight() != 0)
            return false;
        auto unclaimed = host->store().unclaimedEvents(QStringLiteral("webhook"), QDateTime::currentDateTimeUtc().addSecs(3600), 1000);
        if (!unclaimed)
            return false;
        for (const Store::RecordedEvent &e : std::as_const(*unclaimed)) {
            if (e.source == source)
                return false;
        }
        auto counts = engine.jobs().countsByStatus();
        return counts && counts->value(QStringLiteral("queued")) == 0 && counts->value(QStringLiteral("running")) == 0;
    };
    auto settle = [&]() -> bool {
        QElapsedTimer clock;
        clock.start();
        int quietTurns = 0;
        qsizetype requests = -1;
        while (clock.elapsed() < 30000) {
            QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
            // And no forge request arriving (a connector's retry after an advance ended).
            const qsizetype now = fake.requests().size();
            quietTurns = quietNow() && now == requests ? quietTurns + 1 : 0;
            requests = now;
            if (quietTurns >= 3)
                return true;
            if (quietTurns == 0)
                QThread::msleep(1);
        }
        return false;
    };
    auto taskRow = [&] {
        const QStringList rows = sql(QStringLiteral("SELECT stage || '/' || status || '/' || version FROM tasks WHERE id = %1").arg(task));
        return rows.value(0);
    };
    // Everything a delivery could change: what the forge was asked, the deliveries recorded, the
    // gate runs, the audit and the task.
    auto print = [&] {
        return QStringLiteral("events %1, gate runs %2, audit %3, task %4")
            .arg(sql(QStringLiteral("SELECT COUNT(*) FROM events WHERE source = '%1'").arg(source)).value(0),
                 sql(QStringLiteral("SELECT COUNT(*) FROM gate_runs WHERE task_id = %1").arg(task)).value(0),
                 sql(QStringLiteral("SELECT COUNT(*) FROM audit WHERE task_id = %1").arg(task)).value(0), taskRow());
    };

    if (!settle())
        violations << QStringLiteral("the task's first evaluation did not end within 30 s");

    const auto style = isGitHub(s) ? WebhookSender::Style::GitHub : WebhookSender::Style::Gitea;
    const QByteArray eventHeader = isGitHub(s) ? "X-GitHub-Event" : "X-Gitea-Event";
    const QByteArray deliveryHeader = isGitHub(s) ? "X-GitHub-Delivery" : "X-Gitea-Delivery";
    int rawIds = 0;
    auto rawHeaders = [&](const QByteArray &event, const QByteArray &signedBody) {
        QList<QPair<QByteArray, QByteArray>> h{{eventHeader, event}, {deliveryHeader, QStringLiteral("campaign-%1-%2").arg(hex(s.seed)).arg(rawIds++).toLatin1()}};
        h.append(WebhookSender::signatureHeaders(style, secret(), signedBody));
        return h;
    };
    // Deliveries the daemon took (200 with events), by id, in the order they were answered.
    auto taken = [&hooks] {
        QStringList ids;
        for (const SentDelivery &d : hooks.deliveries()) {
            if (d.status == 200 && d.answer.contains("\"events\"") && !ids.contains(d.id))
                ids << d.id;
        }
        return ids;
    };
    // What each delivery must be answered: "accept" (200, taken), "duplicate", or a status.
    QHash<int, QString> expected; // index in hooks.deliveries()
    QHash<int, int> stepOf;
    bool holding = false;
    qint64 claimIds = 900000;

    for (int i = 0; i < s.deliveries.size(); ++i) {
        const Delivery &d = s.deliveries.at(i);
        const int first = int(hooks.deliveries().size());
        QString before;
        bool mustChangeNothing = false;
        switch (d.kind) {
        case Delivery::Kind::CiReport:
            if (d.checkRun)
                fake.addCheckRun(d.sha, d.context, d.state, d.conclusion);
            else
                fake.addStatus(d.sha, d.context, d.state);
            break;
        case Delivery::Kind::Hold:
            hooks.hold(true);
            holding = true;
            break;
        case Delivery::Kind::Release:
            hooks.hold(false);
            hooks.release(d.reversed);
            holding = false;
            break;
        case Delivery::Kind::Redeliver:
        case Delivery::Kind::NewId: {
            const QStringList ids = taken();
            if (ids.isEmpty())
                break;
            const QString id = ids.at(d.of % ids.size());
            if (d.kind == Delivery::Kind::Redeliver) {
                before = print();
                mustChangeNothing = true;
                hooks.redeliver(id);
                break;
            }
            for (const SentDelivery &sent : hooks.deliveries()) {
                if (sent.id == id) {
                    hooks.sendRaw(sent.body, rawHeaders(sent.event, sent.body));
                    break;
                }
            }
            break;
        }
        case Delivery::Kind::Claim: {
            const QByteArray body = compactJson(statusPayload(d.sha, d.context, d.state, ++claimIds));
            hooks.sendRaw(body, rawHeaders("status", body));
            break;
        }
        case Delivery::Kind::Push:
            fake.notifyPush(branch, s.head, d.sha, QStringLiteral("mallory"));
            break;
        case Delivery::Kind::ClosePull:
            fake.closePullRequest(1, QStringLiteral("dave"));
            break;
        case Delivery::Kind::ReopenPull:
            fake.reopenPullRequest(1, QStringLiteral("dave"));
            break;
        case Delivery::Kind::Hostile: {
            before = print();
            mustChangeNothing = true;
            QJsonObject payload = statusPayload(d.sha, d.context, d.state, ++claimIds);
            QByteArray event = "status";
            if (d.how == QLatin1String("wrong-type"))
                payload.insert(QStringLiteral("sha"), 5);
            else if (d.how == QLatin1String("missing-field"))
                payload.remove(QStringLiteral("repository"));
            else if (d.how == QLatin1String("unknown-state"))
                payload.insert(QStringLiteral("state"), QStringLiteral("greenish"));
            else if (d.how == QLatin1String("other-repo"))
                payload.insert(QStringLiteral("repository"), QJsonObject{{QStringLiteral("full_name"), QStringLiteral("mallory/widget")}});
            else if (d.how == QLatin1String("unknown-event"))
                event = "wiki";
            else if (d.how == QLatin1String("oversized"))
                payload.insert(QStringLiteral("padding"), QString(WebhookMaxBody + 1024, QLatin1Char('x')));
            QByteArray body = compactJson(payload);
            QByteArray signedBody = body;
            if (d.how == QLatin1String("truncated") || d.how == QLatin1String("truncated-unsigned")) {
                body = body.left(body.size() * 2 / 3);
                if (d.how == QLatin1String("truncated"))
                    signedBody = body;
            } else if (d.how == QLatin1String("malformed")) {
                body = signedBody = "{\"sha\": \"" + d.sha.toLatin1() + "\", \"state\": ";
            } else if (d.how == QLatin1String("not-object")) {
                body = signedBody = "[\"" + d.sha.toLatin1() + "\", \"success\"]";
            } else if (d.how == QLatin1String("empty-body")) {
                body = signedBody = QByteArray();
            } else if (d.how == QLatin1String("other-body-signature")) {
                signedBody = compactJson(statusPayload(d.sha, d.context, QStringLiteral("pending"), claimIds));
            }
            QList<QPair<QByteArray, QByteArray>> headers = rawHeaders(event, signedBody);
            auto drop = [&headers](const QByteArray &suffix) {
                headers.erase(std::remove_if(headers.begin(), headers.end(), [&suffix](const auto &h) { return h.first.toLower().endsWith(suffix); }),
                              headers.end());
            };
            if (d.how == QLatin1String("wrong-secret")) {
                drop("signature");
                drop("signature-256");
                headers.append(WebhookSender::signatureHeaders(style, "not-" + secret(), body));
            } else if (d.how == QLatin1String("no-signature")) {
                drop("signature");
                drop("signature-256");
            } else if (d.how == QLatin1String("cut-signature")) {
                for (auto &h : headers) {
                    if (h.first.toLower().contains("signature"))
                        h.second = h.second.left(h.second.size() - 8);
                }
            } else if (d.how == QLatin1String("no-id")) {
                drop("-delivery");
            } else if (d.how == QLatin1String("no-event")) {
                drop("-event");
            }
            hooks.sendRaw(body, headers);
            expected.insert(first, QString::number(expectedStatus(d.how)));
            break;
        }
        }
        // The forge's own deliveries (and replays under a new id) are taken; a redelivery of
        // a taken one is a duplicate.
        for (int n = first; n < hooks.deliveries().size(); ++n) {
            stepOf.insert(n, i);
            if (!expected.contains(n))
                expected.insert(n, d.kind == Delivery::Kind::Redeliver ? QStringLiteral("duplicate") : QStringLiteral("accept"));
        }
        if (holding)
            continue; // nothing is sent while the forge holds
        if (!settle()) {
            violations << QStringLiteral("step %1 (%2): the daemon did not settle within 30 s").arg(i).arg(d.describe());
            break;
        }
        if (mustChangeNothing && print() != before)
            violations << QStringLiteral("step %1 (%2) changed something: %3 → %4").arg(i).arg(d.describe(), before, print());
    }
    if (holding) {
        hooks.hold(false);
        hooks.release(false);
        (void)settle();
    }
    const Timeline &t = finish();

    // Every delivery answered as it must be: refused or ignored means not recorded.
    const QList<SentDelivery> sent = hooks.deliveries();
    QSet<QString> accepted;
    for (int n = 0; n < sent.size(); ++n) {
        const SentDelivery &d = sent.at(n);
        if (d.lost)
            continue; // the forge's state seeded before the webhook was set: never sent
        const QString want = expected.value(n, QStringLiteral("accept"));
        const QString step = QStringLiteral("delivery %1 (step %2, %3 %4)").arg(n).arg(stepOf.value(n, -1)).arg(QString::fromLatin1(d.event), d.id);
        const QString got = QStringLiteral("%1 %2").arg(d.status).arg(QString::fromUtf8(d.answer.left(200)));
        if (want == QLatin1String("accept")) {
            if (d.status != 200 || !d.answer.contains("\"events\""))
                violations << QStringLiteral("%1: a delivery the forge made was not taken: %2").arg(step, got);
            else
                accepted.insert(d.id);
        } else if (want == QLatin1String("duplicate")) {
            if (d.status != 200 || !d.answer.contains("\"duplicate\""))
                violations << QStringLiteral("%1: a redelivery was not answered as a duplicate: %2").arg(step, got);
        } else {
            const int status = want.toInt();
            const bool refused = d.status == status || (status == 413 && d.status == -1);
            if (!refused)
                violations << QStringLiteral("%1: answered %2, must be %3%4").arg(step, got, want,
                                                                                  d.status >= 200 && d.status < 300 && status >= 400 ? QStringLiteral(" (a SILENT ACCEPT)") : QString());
        }
    }
    QSet<QString> recorded;
    for (const QString &id : sql(QStringLiteral("SELECT delivery_id FROM events WHERE source = '%1'").arg(source)))
        recorded.insert(id);
    if (recorded != accepted)
        violations << QStringLiteral("the deliveries recorded (%1) are not the ones taken (%2)")
                          .arg(QStringList(recorded.cbegin(), recorded.cend()).join(QLatin1Char(' ')), QStringList(accepted.cbegin(), accepted.cend()).join(QLatin1Char(' ')));

    // The task moved only as the forge's true state of its head let it.
    const QStringList runs = sql(QStringLiteral("SELECT result || '|' || head_sha || '|' || reason FROM gate_runs WHERE task_id = %1 ORDER BY id").arg(task));
    const QString row = taskRow();
    const QString truths = truthsOver(t, s, s.head);
    bool passed = false;
    bool failed = false;
    QString last;
    for (const QString &r : runs) {
        const QString result = r.section(QLatin1Char('|'), 0, 0);
        last = result;
        const QString judged = r.section(QLatin1Char('|'), 1, 1);
        if (judged != s.head && (result == QLatin1String("pass") || result == QLatin1String("fail")))
            violations << QStringLiteral("the ci gate judged %1, not the task's head %2: %3").arg(judged.left(12), s.head.left(12), r);
        passed = passed || result == QLatin1String("pass");
        failed = failed || result == QLatin1String("fail");
    }
    if ((passed || row.startsWith(QLatin1String("done/"))) && !everTruth(t, s, s.head, Truth::Green))
        violations << QStringLiteral("an ADVANCE it does not justify: the task is %1, but its head %2 was never green at the forge (%3)").arg(row, s.head.left(12), truths);
    if (passed && !row.startsWith(QLatin1String("done/")))
        violations << QStringLiteral("the ci gate passed but the task is %1").arg(row);
    if (failed && !everTruth(t, s, s.head, Truth::Red))
        violations << QStringLiteral("a fail it does not justify: the task is %1, but its head %2 was never red at the forge (%3)").arg(row, s.head.left(12), truths);
    // An error verdict applies the red policy too (fail-closed: the task is blocked here), but
    // only over something the forge could not give.
    if (last == QLatin1String("error") && !t.anyFault() && !clientTimeout(runs.last()))
        violations << QStringLiteral("an error verdict with a forge that answered every request cleanly: %1").arg(runs.last());
    // Blocked for its pull request closed on the forge: only while the forge has it closed.
    const QString blockedReason = sql(QStringLiteral("SELECT blocked_reason FROM tasks WHERE id = %1").arg(task)).value(0);
    const bool blockedForClosed = row.contains(QLatin1String("/blocked/")) && blockedReason.contains(QLatin1String("closed on the forge"));
    if (blockedForClosed) {
        QString forgeState;
        for (const FakePullRequest &p : fake.pullRequests()) {
            if (p.number == 1)
                forgeState = p.merged ? QStringLiteral("merged") : p.state;
        }
        if (forgeState != QLatin1String("closed"))
            violations << QStringLiteral("a BLOCK it does not justify: the task is blocked ('%1') while the forge has pull request #1 %2")
                              .arg(blockedReason, forgeState);
    } else if (row.contains(QLatin1String("/blocked/")) && last != QLatin1String("fail") && last != QLatin1String("error")) {
        violations << QStringLiteral("the task is %1 without a failed or errored gate: %2").arg(row, blockedReason);
    }
    outcome = row.startsWith(QLatin1String("done/")) ? QStringLiteral("passed") : row.contains(QLatin1String("/blocked/")) ? QStringLiteral("blocked") : QStringLiteral("waits");
    if (!violations.isEmpty())
        violations << QStringLiteral("gate runs: %1; task %2").arg(runs.join(QStringLiteral("; ")), row);

    fake.setWebhook(QUrl(), QByteArray());
    daemon->stop(QStringLiteral("scenario over"));
    daemon.reset();
    host.reset();
    return violations;
}

} // namespace

const Judge &judge(JudgeKind kind)
{
    static const CiGateJudge ci;
    static const UmbrellaJudge umbrella;
    static const MergeJudge merge;
    static const WebhookJudge webhook;
    switch (kind) {
    case JudgeKind::CiGate: return ci;
    case JudgeKind::Umbrella: return umbrella;
    case JudgeKind::Merge: return merge;
    case JudgeKind::Webhook: return webhook;
    }
    return ci;
}

Scenario generate(quint64 seed)
{
    constexpr quint64 WebhookSalt = 0x3b9ac9ff5eedULL;
    constexpr int WebhookShare = 20; // percent of the scenarios
    Rng rng(seed);
    Scenario s;
    s.seed = seed;
    const int r = rng.below(100);
    s.judge = r < 45 ? JudgeKind::CiGate : r < 78 ? JudgeKind::Umbrella : JudgeKind::Merge;
    // The webhook intake came fourth: it is chosen by a draw of its own from the seed, not from
    // rng, so every seed it does not take names the same scenario as before it came (the seeds
    // kept as regressions among them).
    if (Rng(seed ^ WebhookSalt).below(100) < WebhookShare)
        s.judge = JudgeKind::Webhook;
    s.flavor = rng.percent(50) ? FakeForge::Flavor::Gitea : FakeForge::Flavor::GitHub;
    s.pageSize = rng.between(1, 5);
    // Gitea may serve fewer than asked (MAX_RESPONSE_ITEMS); GitHub serves per_page up to 100.
    s.serverPageCap = !isGitHub(s) && rng.percent(25) ? rng.between(1, s.pageSize) : s.pageSize + rng.below(3);
    s.maxRetries = rng.between(0, 3);
    judge(s.judge).generate(rng, s);
    return s;
}

} // namespace Sluice::Test::Faults
