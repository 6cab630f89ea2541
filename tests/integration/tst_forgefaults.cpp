// SPDX-License-Identifier: Apache-2.0
//
// A seeded fault campaign against everything that judges the forge (issue 23.4): the ci gate,
// the ci-umbrella sweeper and the merge gate, each the real plugin with the real gitea or github
// connector (the connectors are what parse the forge) against the fake forge on loopback.
//
// A scenario is a pure function of its seed (splitmix64, ours: the same on every machine):
//  - the forge's true state: required contexts (listed, or derived from a workflow file the
//    forge serves), each commit's statuses and check runs with their history, umbrella cases,
//    pull requests (two may share a head), page sizes and the server's page cap;
//  - faults, each on the n-th request of one endpoint and page: 500/502/503/504, 429 with and
//    without Retry-After (0, an HTTP date, too long, unreadable), GitHub's primary and secondary
//    rate limits as 403, a hang past the client's timeout, a reset connection (before or after
//    the write took effect), a truncated body, malformed JSON, a non-list, a list object without
//    its items, a page with an item missing, duplicated, reordered or unreadable, a link past the
//    last page — for up to six requests in a row, after zero to two clean ones;
//  - changes while the forge is read, each before the n-th request of one endpoint and page:
//    a status or check run arriving (pages that change between reads), a pull request's head
//    moving, a pull request closed or opened.
//
// The forge lies only in ways a careful client can notice, or harmlessly: a page cut short
// where GitHub sends no total and no further link (the last page of its status and pull request
// lists) looks exactly like a shorter list and is never generated.
//
// The invariant, checked against the fake's true state alone (recorded before every request,
// never taken from the code under test):
//  - never a pass it does not justify: the ci gate passes only if, at some moment while it read,
//    every required context and the umbrella were green as the forge holds them (the latest
//    status of a context is the one posted last — the greatest id, whatever its timestamp — and
//    the latest check run of a name the greatest id; every kind present must pass; skipped or
//    neutral check runs pass only with required_semantics forge);
//  - never a compensation it does not justify: every status the sweeper posts and every
//    umbrella job it re-runs meets the ci-umbrella rule (umbrella failure, every sub-job
//    success, failure older than the threshold) at the moment the write reaches the forge — or
//    met it at the sweeper's last read of that commit with only someone else's change between;
//    a dry run writes nothing;
//  - never a merge it does not justify: the forge merged the task's head, and that head was
//    green at some moment before the merge request; a pass means the forge shows it merged;
//  - something could not be read → an error verdict (the merge gate may answer wait for a merge
//    request whose answer was lost, as documented) or a failed sweep (non-zero `sluice sweep`):
//    a request whose fault broke the answer with no later identical request answered cleanly
//    leaves no other verdict;
//  - and every other conclusion is true of some moment of the judgement: fail only over a red
//    context, wait only over pending CI, each sweeper decision is what the rule said of that head,
//    a sweep that exits 0 assessed every pull request open all along (on GitHub, unless one was
//    closed while the list was paged: no total shows the shift); an error or a failed sweep only
//    when a fault or a change was met (or the client's own timeout ran out on a loaded machine).
//
// Running it:
//   ctest -R tst_forgefaults                       1,000 scenarios from a fixed base seed
//   tests/bench/faults.sh [N] [BASE]               N (10,000) from a random (or given) base
//   SLUICE_FAULTS_SCENARIOS=N SLUICE_FAULTS_BASE=B build/bin/tst_forgefaults campaign
//   SLUICE_FAULTS_SEED=0x… build/bin/tst_forgefaults campaign   replays one scenario, printing
//                                                  it and every request with its faults and changes
// A failing scenario prints its seed and that replay command. See docs/testing.md.
#include "forgefaults.h"

#include <sluice/forge.h>
#include <sluice/testsupport.h>

#include <QDir>
#include <QFileInfo>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;
using namespace Sluice::Test::Faults;

namespace {

// The campaign in CI starts here, so a run there is the same 1,000 scenarios every time.
constexpr quint64 DefaultBase = 0x5eedf0a17ca3ULL;

QtMessageHandler previousHandler = nullptr;
bool quiet = false;

// The plugins log every retry and every failed read: thousands of lines a campaign does not
// need. Quiet, only the test's own lines (category "default") and criticals get through.
void campaignMessages(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    if (quiet && type != QtCriticalMsg && type != QtFatalMsg && qstrcmp(context.category, "default") != 0)
        return;
    previousHandler(type, context, message);
}

quint64 envSeed(const char *name, bool *set)
{
    const QByteArray text = qgetenv(name);
    *set = !text.isEmpty();
    bool ok = false;
    const quint64 value = text.toULongLong(&ok, 0);
    *set = *set && ok;
    return value;
}

} // namespace

class tst_ForgeFaults : public QObject
{
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    std::unique_ptr<TemporaryStore> m_store;
    Bench m_bench;

    void report(const ScenarioReport &r, quint64 seed, bool verbose)
    {
        qInfo().noquote() << QStringLiteral("FAILED seed 0x%1: %2").arg(seed, 0, 16).arg(r.violations.join(QStringLiteral("\n    ")));
        qInfo().noquote() << QStringLiteral("  replay: %1SLUICE_FAULTS_SEED=0x%2 %3 campaign")
                                 .arg(m_bench.concurrency != 1 ? QStringLiteral("SLUICE_FAULTS_CONCURRENCY=%1 ").arg(m_bench.concurrency) : QString())
                                 .arg(seed, 0, 16).arg(QCoreApplication::applicationFilePath());
        if (verbose) {
            qInfo().noquote() << r.scenario;
            qInfo().noquote() << QStringLiteral("requests, in the order the forge served them:\n") + r.log;
        }
    }

private Q_SLOTS:
    void initTestCase()
    {
        previousHandler = qInstallMessageHandler(campaignMessages);
        QVERIFY(m_dir.isValid());
        auto load = [](const char *path, LoadedPlugin &into) {
            auto p = loadPlugin(QString::fromUtf8(path));
            if (!p)
                qWarning() << p.error().toString();
            else
                into = *p;
            return bool(p);
        };
        QVERIFY(load(GITEA_PLUGIN_FILE, m_bench.plugins.gitea));
        QVERIFY(load(GITHUB_PLUGIN_FILE, m_bench.plugins.github));
        QVERIFY(load(CI_PLUGIN_FILE, m_bench.plugins.ci));
        QVERIFY(load(UMBRELLA_PLUGIN_FILE, m_bench.plugins.umbrella));
        QVERIFY(load(MERGE_PLUGIN_FILE, m_bench.plugins.merge));
        // The webhook intake's daemon loads its plugins where this build puts them.
        m_bench.pluginDir = QFileInfo(QString::fromUtf8(GITEA_PLUGIN_FILE)).absolutePath();
        m_store = std::make_unique<TemporaryStore>();
        QVERIFY2(m_store->store(), qPrintable(m_store->error()));
        m_bench.store = m_store.get();
        m_bench.dir = m_dir.path();
        if (qEnvironmentVariableIsSet("SLUICE_FAULTS_CONCURRENCY"))
            m_bench.concurrency = std::max(1, qEnvironmentVariableIntValue("SLUICE_FAULTS_CONCURRENCY"));
        // The project's repository for the merge gate: main with one commit; each merge
        // scenario adds a branch with a commit of its own on top.
        m_bench.bareRepository = m_dir.filePath(QStringLiteral("project.git"));
        QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), m_bench.bareRepository}).code, 0);
        const QString seed = m_dir.filePath(QStringLiteral("seed"));
        QCOMPARE(runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main"), seed}).code, 0);
        QFile readme(QDir(seed).filePath(QStringLiteral("README")));
        QVERIFY(readme.open(QIODevice::WriteOnly));
        readme.write("widget\n");
        readme.close();
        QCOMPARE(runGit({QStringLiteral("add"), QStringLiteral(".")}, seed).code, 0);
        QCOMPARE(runGit({QStringLiteral("commit"), QStringLiteral("-qm"), QStringLiteral("initial")}, seed).code, 0);
        QCOMPARE(runGit({QStringLiteral("push"), QStringLiteral("-q"), m_bench.bareRepository, QStringLiteral("main")}, seed).code, 0);
    }

    void cleanupTestCase()
    {
        quiet = false;
        m_store.reset();
    }

    // A seed names one scenario on every machine: the generator is ours and pure.
    void scenariosReplayFromTheirSeed()
    {
        Rng rng(0);
        QCOMPARE(rng.next(), 0xe220a8397b1dcdafULL); // splitmix64's first output from 0
        QCOMPARE(rng.next(), 0x6e789e6aa1b965f4ULL);
        for (int i = 0; i < 50; ++i) {
            const quint64 seed = scenarioSeed(DefaultBase, i);
            QCOMPARE(generate(seed).describe(), generate(seed).describe());
        }
        QVERIFY(generate(scenarioSeed(DefaultBase, 0)).describe() != generate(scenarioSeed(DefaultBase, 1)).describe());
        // Every judge, both flavours and faults of every kind come up within a thousand seeds.
        QSet<QString> seen;
        for (int i = 0; i < 1000; ++i) {
            const Scenario s = generate(scenarioSeed(DefaultBase, i));
            seen.insert(judgeName(s.judge) + (s.flavor == FakeForge::Flavor::GitHub ? QStringLiteral("/github") : QStringLiteral("/gitea")));
            for (const FakeFault &f : s.faults)
                seen.insert(faultKindName(f.kind));
            for (const Change &c : s.changes)
                seen.insert(QStringLiteral("change %1").arg(int(c.kind)));
            for (const Delivery &d : s.deliveries)
                seen.insert(d.kind == Delivery::Kind::Hostile ? QStringLiteral("hostile ") + d.how : QStringLiteral("step %1").arg(int(d.kind)));
        }
        for (const char *want : {"step 0", "step 1", "step 2", "step 3", "step 4", "step 6", "step 7", "step 8", "step 9", "hostile wrong-secret", "hostile no-signature",
                                 "hostile other-body-signature", "hostile cut-signature", "hostile truncated-unsigned", "hostile truncated",
                                 "hostile malformed", "hostile not-object", "hostile wrong-type", "hostile missing-field", "hostile unknown-state",
                                 "hostile no-id", "hostile no-event", "hostile empty-body", "hostile other-repo", "hostile unknown-event",
                                 "hostile oversized"})
            QVERIFY2(seen.contains(QLatin1String(want)), want);
        for (const char *want : {"ci-gate/gitea", "ci-gate/github", "ci-umbrella/gitea", "ci-umbrella/github", "merge-gate/gitea", "merge-gate/github",
                                 "webhook-intake/gitea", "webhook-intake/github",
                                 "status", "reset", "apply-then-reset", "hang", "truncated", "malformed", "not-a-list", "missing-statuses",
                                 "short-page", "extra-item", "reorder", "extra-page", "bad-item", "shifted-page", "change 0", "change 1", "change 2", "change 3",
                                 "change 4"})
            QVERIFY2(seen.contains(QLatin1String(want)), want);
    }

    // The fake forge's campaign behaviours reach a real connector as the real thing would: a
    // fault that breaks the answer is an error, a harmless one leaves the true list.
    void fakeForgeBehaviours_data()
    {
        QTest::addColumn<int>("flavor");
        QTest::addColumn<int>("kind");
        QTest::addColumn<int>("page");
        QTest::addColumn<QString>("expect"); // "error", "list" (the true list), "list-or-error"
        using K = FakeFault::Kind;
        const int gitea = int(FakeForge::Flavor::Gitea);
        const int github = int(FakeForge::Flavor::GitHub);
        for (const auto &[name, flavor] : {std::pair{"gitea", gitea}, std::pair{"github", github}}) {
            auto row = [name = name](const char *what) -> QTestData & {
                return QTest::newRow(qPrintable(QStringLiteral("%1 %2").arg(QLatin1String(name), QLatin1String(what))));
            };
            row("reset") << flavor << int(K::Reset) << 1 << QStringLiteral("error");
            row("bad item") << flavor << int(K::BadItem) << 2 << QStringLiteral("error");
            row("reordered page") << flavor << int(K::Reorder) << 1 << QStringLiteral("list");
            row("short first page") << flavor << int(K::ShortPage) << 1 << QStringLiteral("error");
        }
        // Gitea's X-Total-Count shows a duplicate and a link past the end; GitHub's last page
        // has neither total nor link: a duplicate there is harmless, an empty extra page too.
        QTest::newRow("gitea extra item") << gitea << int(K::ExtraItem) << 1 << QStringLiteral("error");
        QTest::newRow("gitea extra page") << gitea << int(K::ExtraPage) << 3 << QStringLiteral("error");
        QTest::newRow("github extra item on the last page") << github << int(K::ExtraItem) << 3 << QStringLiteral("list");
        QTest::newRow("github extra item on a full page") << github << int(K::ExtraItem) << 1 << QStringLiteral("error");
        QTest::newRow("github extra page") << github << int(K::ExtraPage) << 3 << QStringLiteral("list-or-error");
    }

    void fakeForgeBehaviours()
    {
        QFETCH(int, flavor);
        QFETCH(int, kind);
        QFETCH(int, page);
        QFETCH(QString, expect);
        Scenario s;
        s.flavor = FakeForge::Flavor(flavor);
        FakeForge fake(s.flavor);
        QVERIFY(fake.start());
        const QString sha = QStringLiteral("ab").repeated(20);
        for (int i = 0; i < 7; ++i) // three pages of three: 3, 3, 1
            fake.addStatus(sha, QStringLiteral("ci/%1").arg(i), QStringLiteral("success"));
        FakeFault f;
        f.kind = FakeFault::Kind(kind);
        f.pathPattern = QStringLiteral("/statuses$");
        f.page = page;
        f.times = 10; // past every retry
        fake.addFault(f);
        QFile token(m_dir.filePath(QStringLiteral("behaviour-token")));
        QVERIFY(token.open(QIODevice::WriteOnly));
        token.write("t");
        token.close();
        auto forge = createInstance(s.flavor == FakeForge::Flavor::GitHub ? m_bench.plugins.github : m_bench.plugins.gitea,
                                    "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: " + token.fileName().toUtf8()
                                        + "}\nretry_backoff: 1ms\nmax_retries: 1\npage_size: 3\n");
        QVERIFY(forge);
        QVERIFY((*forge)->initialize());
        const Sluice::Result<QList<CommitStatus>> read = runCall(qobject_cast<Forge *>(forge->get())->statuses(sha));
        bool met = false;
        for (const FakeRequest &r : fake.requests())
            met = met || !r.fault.isEmpty();
        QVERIFY2(met, "the fault was not met");
        if (expect == QLatin1String("error")) {
            QVERIFY2(!read, "a fault that breaks the answer gave a list");
            return;
        }
        if (!read) {
            QVERIFY2(expect == QLatin1String("list-or-error"), qPrintable(read.error().message));
            return;
        }
        QSet<qint64> ids;
        for (const CommitStatus &st : *read)
            ids.insert(st.id);
        QCOMPARE(ids.size(), 7);
        for (int i = 1; i < read->size(); ++i) // newest first whatever order the pages had
            QVERIFY(read->at(i - 1).id >= read->at(i).id);
    }

    // A connection reset after the write took effect: the status is there, the client errs;
    // the request hook changes the forge between two requests, and the fault's skip lets the
    // first matching request through.
    void writesLostAndStateChangingBetweenReads()
    {
        FakeForge fake;
        QVERIFY(fake.start());
        const QString sha = QStringLiteral("cd").repeated(20);
        FakeFault lost;
        lost.kind = FakeFault::Kind::ApplyThenReset;
        lost.method = "POST";
        lost.pathPattern = QStringLiteral("/statuses/");
        fake.addFault(lost);
        FakeFault second;
        second.kind = FakeFault::Kind::Status;
        second.status = 500;
        second.pathPattern = QStringLiteral("/statuses$");
        second.skip = 1;
        fake.addFault(second);
        int seen = 0;
        fake.setRequestHook([&fake, &seen, sha](const FakeRequest &req) {
            if (req.method == "GET" && ++seen == 1)
                fake.addStatus(sha, QStringLiteral("ci/late"), QStringLiteral("failure")); // arrives before the first read is answered
        });
        QFile token(m_dir.filePath(QStringLiteral("behaviour-token")));
        QVERIFY(token.open(QIODevice::WriteOnly));
        token.write("t");
        token.close();
        auto forge = createInstance(m_bench.plugins.gitea, "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                                               + token.fileName().toUtf8() + "}\nretry_backoff: 1ms\nmax_retries: 0\n");
        QVERIFY(forge);
        QVERIFY((*forge)->initialize());
        Forge *f = qobject_cast<Forge *>(forge->get());
        const auto posted = runCall(f->postStatus(sha, StatusUpdate{QStringLiteral("ci/umbrella"), StatusState::Success, QStringLiteral("x"), {}}));
        QVERIFY(!posted);
        QCOMPARE(fake.statuses(sha).size(), 1); // it took effect, once
        const auto first = runCall(f->statuses(sha));
        QVERIFY2(first, qPrintable(first ? QString() : first.error().message));
        QCOMPARE(first->size(), 2); // the status added by the hook is in the answer
        const auto again = runCall(f->statuses(sha));
        QVERIFY(!again);
        QCOMPARE(fake.requests().last().fault, QStringLiteral("status 500"));
        fake.setRequestHook({});
    }

    // Seeds that found defects, kept so the defects stay fixed (see docs/testing.md).
    void regressions_data()
    {
        QTest::addColumn<quint64>("seed");
        // The ci gate took the status with the latest timestamp for a context's latest; a later
        // status from a node with a slower clock was shadowed: a green head failed, a red passed.
        QTest::newRow("later status, earlier clock: a green head failed") << quint64(0x66fde0224af86756ULL);
        QTest::newRow("later status, earlier clock: a pass not justified") << quint64(0x8d373beb73cf6d43ULL);
        // Qt resent a POST whose connection dropped after the forge applied it: two compensations.
        QTest::newRow("a write resent by Qt after a reset") << quint64(0x89d53bd2e5cc2ac2ULL);
        // Two pull requests of one commit: both compensated the same stale umbrella.
        QTest::newRow("two pull requests of one commit") << quint64(0xfc0e8b145ed6c35fULL);
        // A merge answered 200 with a garbled body and not merged was a refusal: a rollback.
        QTest::newRow("a garbled merge answer rolled the change back") << quint64(0xc93a110aeb17a243ULL);
        // A job re-run answered 200 with a garbled body was taken as done: the sweep exited 0.
        QTest::newRow("a garbled re-run answer taken as done") << quint64(0x741a9f5820b28e70ULL);
        // Webhook intake: a pull request closed and reopened, the deliveries sent reopened
        // first: the late "closed" blocked the task while the forge had the pull request open.
        QTest::newRow("a late 'closed' delivery blocked a task whose pull request is open") << quint64(0x509886ddc1a4625dULL);
        // The pull request's head moved just before the merge; the merge was answered 409 with
        // a cut body: the merge gate failed on the status line of an answer it could not read.
        QTest::newRow("a 409 with a cut body failed the merge (github)") << quint64(0x89a21fef34eb31baULL);
        QTest::newRow("a 409 with a cut body failed the merge (gitea)") << quint64(0x71911a0b890a0206ULL);
        // Gitea: a status arrived between page 1 and page 2 of the statuses, and page 2 came
        // from a replica without it: a consistent read of the list as page 1 saw it, which the
        // campaign took for an unreadable page (its fake now names no fault there).
        QTest::newRow("a page as stale as page 1: a consistent read (pass)") << quint64(0x45464eb294dbe228ULL);
        QTest::newRow("a page as stale as page 1: a consistent read (fail)") << quint64(0x9781e12990874218ULL);
        QTest::newRow("a reopen whose confirming read failed left the task blocked") << quint64(0x345bcd52c59ae957ULL);
    }

    void regressions()
    {
        QFETCH(quint64, seed);
        const ScenarioReport r = runScenario(generate(seed), m_bench);
        if (!r.violations.isEmpty())
            report(r, seed, true);
        QVERIFY2(r.violations.isEmpty(), qPrintable(r.violations.join(QLatin1Char('\n'))));
    }

    void campaign()
    {
        bool replay = false;
        const quint64 only = envSeed("SLUICE_FAULTS_SEED", &replay);
        bool baseSet = false;
        const quint64 base = envSeed("SLUICE_FAULTS_BASE", &baseSet);
        const quint64 start = baseSet ? base : DefaultBase;
        const int count = replay ? 1 : qEnvironmentVariableIsSet("SLUICE_FAULTS_SCENARIOS") ? qEnvironmentVariableIntValue("SLUICE_FAULTS_SCENARIOS") : 1000;
        if (!replay)
            qInfo("forge-fault campaign: %d scenarios from base 0x%llx (SLUICE_FAULTS_BASE=0x%llx SLUICE_FAULTS_SCENARIOS=%d replays the run)",
                  count, static_cast<unsigned long long>(start), static_cast<unsigned long long>(start), count);
        quiet = !replay;

        QElapsedTimer clock;
        clock.start();
        QMap<QString, int> outcomes;
        QMap<QString, int> afterFaults; // outcomes of scenarios whose forge met a fault
        QMap<QString, qint64> timePerJudge;
        int failed = 0;
        int faulted = 0;
        int changed = 0;
        qint64 requests = 0;
        QList<quint64> failures;
        for (int i = 0; i < count; ++i) {
            const quint64 seed = replay ? only : scenarioSeed(start, i);
            const Scenario scenario = generate(seed);
            QElapsedTimer took;
            took.start();
            const ScenarioReport r = runScenario(scenario, m_bench);
            timePerJudge[judgeName(scenario.judge)] += took.elapsed();
            requests += r.requests;
            faulted += r.faulted;
            changed += r.changed;
            outcomes[judgeName(scenario.judge) + QLatin1Char(' ') + r.outcome] += 1;
            if (r.faulted)
                afterFaults[judgeName(scenario.judge) + QLatin1Char(' ') + r.outcome] += 1;
            if (replay) {
                qInfo().noquote() << r.scenario;
                qInfo().noquote() << QStringLiteral("requests, in the order the forge served them:\n") + r.log;
                qInfo().noquote() << "concluded:" << r.outcome;
            }
            if (!r.violations.isEmpty()) {
                ++failed;
                failures << seed;
                report(r, seed, replay || failed <= 3);
            }
        }
        quiet = false;
        const qint64 ms = clock.elapsed();
        QStringList figures;
        for (auto it = outcomes.cbegin(); it != outcomes.cend(); ++it)
            figures << QStringLiteral("%1 %2 (%3 after faults)").arg(it.key()).arg(it.value()).arg(afterFaults.value(it.key()));
        QStringList times;
        for (auto it = timePerJudge.cbegin(); it != timePerJudge.cend(); ++it)
            times << QStringLiteral("%1 %2 ms").arg(it.key()).arg(it.value());
        qInfo().noquote() << QStringLiteral("forge-fault campaign: %1 scenarios in %2 ms (%3 ms each), %4 requests, %5 with faults met, %6 with the forge changing; %7 violated the invariant")
                                 .arg(count).arg(ms).arg(count ? double(ms) / count : 0.0, 0, 'f', 1).arg(requests).arg(faulted).arg(changed).arg(failed);
        qInfo().noquote() << "  concluded:" << figures.join(QStringLiteral(", "));
        qInfo().noquote() << "  time per judge:" << times.join(QStringLiteral(", "));
        if (!failures.isEmpty()) {
            QStringList seeds;
            for (quint64 s : std::as_const(failures))
                seeds << QStringLiteral("0x%1").arg(s, 0, 16);
            qInfo().noquote() << "  failing seeds:" << seeds.join(QLatin1Char(' '));
        }
        QVERIFY2(failed == 0, qPrintable(QStringLiteral("%1 of %2 scenarios violated the invariant; each seed above replays with SLUICE_FAULTS_SEED").arg(failed).arg(count)));
    }
};

QTEST_GUILESS_MAIN(tst_ForgeFaults)
#include "tst_forgefaults.moc"
