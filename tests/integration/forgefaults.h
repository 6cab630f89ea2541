// SPDX-License-Identifier: Apache-2.0
#pragma once

// The seeded forge-fault campaign (issue 23.4): scenarios generated from a seed, the fake
// forge's true state recorded at every request, and the judges that drive the real plugins.
// tst_forgefaults.cpp runs it; its header comment states the invariant and how to replay.

#include "fakeforge.h"

#include <sluice/gate.h>
#include <sluice/sweeper.h>
#include <sluice/testsupport.h>

#include <QDateTime>
#include <QHash>
#include <QList>
#include <QString>
#include <QStringList>

#include <functional>
#include <memory>
#include <optional>

namespace Sluice::Test::Faults {

/**
 * A small generator of our own (splitmix64): the same seed gives the same numbers with any
 * compiler, library and machine, so a scenario replays from its seed alone.
 */
class Rng
{
public:
    explicit Rng(quint64 seed)
        : m_state(seed)
    {
    }
    quint64 next();
    /// In [0, n); 0 when n <= 0.
    int below(int n);
    /// In [lo, hi].
    int between(int lo, int hi) { return lo + below(hi - lo + 1); }
    /// True with probability @p p percent.
    bool percent(int p) { return below(100) < p; }
    template<typename T>
    const T &pick(const QList<T> &list) { return list.at(below(int(list.size()))); }

private:
    quint64 m_state;
};

/// The seed of scenario @p index of a campaign started from @p base (splitmix64's mixing).
[[nodiscard]] quint64 scenarioSeed(quint64 base, int index);

/// What the campaign judges. A new judge adds a kind and a Judge subclass.
enum class JudgeKind { CiGate, Umbrella, Merge, Webhook };
[[nodiscard]] QString judgeName(JudgeKind kind);

/// A commit status as the forge holds it before the judgement starts.
struct SeedStatus {
    QString context;
    QString state;
    qint64 ageSeconds = 0; ///< Its timestamp is this long before the scenario starts.
};

/// A check run (GitHub) as the forge holds it before the judgement starts.
struct SeedRun {
    QString name;
    QString status;     ///< queued, in_progress, completed
    QString conclusion; ///< when completed
    qint64 ageSeconds = 0;
};

/// One commit and its CI results, in the order the forge received them (ids grow in that order).
struct SeedCommit {
    QString sha;
    QList<SeedStatus> statuses;
    QList<SeedRun> runs;
};

struct SeedPull {
    qint64 number = 0;
    QString branch;
    QString sha;
    int mergeabilityPending = 0; ///< Merges refused as "try again later" first (FakePullRequest).
};

/// Before the @p occurrence-th request (counting from 1) whose method is @p method, whose path
/// matches @p pathPattern and whose page is @p page (0: any), the forge changes. Keyed by what
/// the request is, not by when it comes, so a change lands on the same read however concurrent
/// requests interleave.
struct Trigger {
    QByteArray method = "GET";
    QString pathPattern;
    int page = 0;
    int occurrence = 1;
};

/// A change of the forge's state while it is read: someone else's status, a CI job ending, a
/// push to the pull request, a pull request closed or opened.
struct Change {
    enum class Kind { AddStatus, AddCheckRun, MoveHead, ClosePull, OpenPull };
    Kind kind = Kind::AddStatus;
    Trigger when;
    QString sha;        ///< AddStatus, AddCheckRun: the commit; MoveHead, OpenPull: the new head.
    QString name;       ///< Context or check-run name.
    QString state;      ///< Status state, or check-run status.
    QString conclusion; ///< Check-run conclusion when completed.
    qint64 pull = 0;    ///< MoveHead, ClosePull, OpenPull.
    QString branch;     ///< OpenPull.

    [[nodiscard]] QString describe() const;
};

/**
 * One step of a webhook-intake scenario (the Webhook judge): something happening at the forge
 * (which the forge then delivers, signed, as its flavour does) or a delivery arriving at the
 * daemon's POST /webhooks/<project>/<instance>.
 */
struct Delivery {
    enum class Kind {
        CiReport, ///< CI posts a status (or a check run) on a commit; the forge delivers it.
        Hold,     ///< The forge holds its deliveries from here ...
        Release,  ///< ... and sends them, in order or reversed.
        Redeliver, ///< The forge delivers again a delivery the daemon took (same id).
        NewId,    ///< A delivery the daemon took, its body again under a new id (Gitea's "Replay").
        Hostile,  ///< A delivery that must be refused or ignored (see how).
        Claim,    ///< A signed status delivery claiming a state the forge need not hold.
        Push,     ///< Someone else pushes a new head to the task's branch (the forge delivers push and pull request).
        ClosePull,  ///< Someone closes the task's pull request without merging (the forge delivers it).
        ReopenPull, ///< Someone reopens it (the forge delivers it).
    };
    Kind kind = Kind::CiReport;
    QString sha;
    QString context;
    QString state;      ///< Status state; check-run status (CiReport with checkRun).
    QString conclusion; ///< Check-run conclusion when completed.
    bool checkRun = false;
    bool reversed = false; ///< Release.
    int of = 0;            ///< Redeliver, NewId: which delivery the daemon took (modulo their count).
    /**
     * Hostile: wrong-secret, no-signature, other-body-signature, cut-signature,
     * truncated-unsigned (cut body, the whole body's signature), truncated (cut body, signed),
     * malformed, not-object, wrong-type, missing-field, unknown-state, no-id, no-event,
     * empty-body, other-repo, unknown-event, oversized.
     */
    QString how;

    [[nodiscard]] QString describe() const;
};

/// Everything one scenario is: the forge's state, its faults and its changes, and the judge's settings.
struct Scenario {
    quint64 seed = 0;
    /// Which run of the process this is (runScenario() numbers them): the project the judges
    /// keep their records under is the seed's and the run's, so a seed run twice in one
    /// process (a regression row, then the campaign) does not find the first run's records.
    int run = 0;
    JudgeKind judge = JudgeKind::CiGate;
    FakeForge::Flavor flavor = FakeForge::Flavor::Gitea;
    int pageSize = 50;      ///< The connector's page_size.
    int serverPageCap = 50; ///< The largest page the fake serves.
    int maxRetries = 4;

    // Which contexts are required, and how the judge is told.
    bool derived = false;   ///< From the workflow file (else listed in the settings).
    QString workflowRef = QStringLiteral("head"); ///< head or target (sweeper).
    QByteArray workflow;
    QStringList required;   ///< The sub-job contexts (check-run names on GitHub).
    QString umbrella;       ///< Empty: none.
    bool forgeSemantics = false;

    QString head;           ///< The commit judged (ci gate, merge gate); "@HEAD@" for a commit made at run time.
    QList<SeedCommit> commits;
    QList<SeedPull> pulls;
    QList<FakeFault> faults;
    QList<Change> changes;

    QList<Delivery> deliveries;    ///< Webhook intake: the steps, in order.

    bool dryRun = false;           ///< Sweeper.
    qint64 thresholdSeconds = 300; ///< Sweeper.

    /// One line per element, for a failure report.
    [[nodiscard]] QString describe() const;
};

/// The forge's state at one moment, as the fake holds it (never as a client read it).
struct Snapshot {
    QHash<QString, QList<FakeStatus>> statuses; ///< Per sha, in id order.
    QHash<QString, QList<FakeCheckRun>> runs;   ///< Per sha, in id order.
    QList<FakePullRequest> pulls;
    QDateTime at;
};

/// One request the forge served, with the state it was served from.
struct Moment {
    QByteArray method;
    QString path;
    QString query;
    QString fault;          ///< The fault injected (empty: none).
    QStringList changes;    ///< Changes made just before it.
    Snapshot state;         ///< The state the request was answered from (before its own write).
};

/// Every request of one scenario in the order the forge served them, and the state after the last.
struct Timeline {
    QList<Moment> moments;
    Snapshot end;

    [[nodiscard]] bool anyFault() const;
    [[nodiscard]] bool anyChange() const;
    /// Requests whose fault broke the answer (an error status, no answer, a cut or unreadable
    /// body, a page with an item missing or unreadable) with no later identical request answered
    /// cleanly: what the client could not read. Each as "GET path?query: fault".
    [[nodiscard]] QStringList unrecovered() const;
    /// The request log, one line each, for a failure report.
    [[nodiscard]] QString describe() const;
};

/// Whether a fault makes the answer unusable (as opposed to harmless or detectable-but-equivalent).
[[nodiscard]] bool breaksAnswer(const QString &fault);

// ---- the truth, from a snapshot ----------------------------------------------------------

enum class Truth { Green, Pending, Red };
[[nodiscard]] QString truthName(Truth truth);

/// What the forge's branch protection would say about @p sha's CI (see tst_forgefaults.cpp).
[[nodiscard]] Truth ciTruth(const Snapshot &state, const Scenario &scenario, const QString &sha);

/// What the ci-umbrella rule says about @p sha: "compensate", "rerun" (a failed umbrella check
/// run), or why not (the sweeper's decision names).
[[nodiscard]] QString umbrellaTruth(const Snapshot &state, const Scenario &scenario, const QString &sha, const QDateTime &now);

// ---- running one scenario ----------------------------------------------------------------

/// What the plugins under test are, loaded once per campaign.
struct Plugins {
    LoadedPlugin gitea;
    LoadedPlugin github;
    LoadedPlugin ci;
    LoadedPlugin umbrella;
    LoadedPlugin merge;
};

/// What scenarios share: the plugins, a store, a directory (each scenario keeps to its own keys).
struct Bench {
    Plugins plugins;
    QString dir;
    TemporaryStore *store = nullptr;
    QString bareRepository; ///< For the merge gate: a repository with main, each scenario adds a branch.
    QString pluginDir;      ///< For the webhook intake's daemon: where the gitea, github and ci plugins are.
    /// The connectors' concurrency. 1 (the default) makes the order of requests a function of
    /// the scenario, so a seed replays exactly; more explores how concurrent reads interleave,
    /// at the price of replays that may take another order.
    int concurrency = 1;
    int runs = 0; ///< Scenarios run so far (Scenario::run).
};

/**
 * One kind of judge: how to make a scenario for it, how to run it against the fake forge, and
 * how to check what it concluded against the timeline. Adding a judge (webhook intake) is one
 * subclass and one entry in judges().
 */
class Judge
{
public:
    virtual ~Judge() = default;
    [[nodiscard]] virtual JudgeKind kind() const = 0;
    /// Fills @p scenario's state, faults and changes (flavor, page sizes and retries are set).
    virtual void generate(Rng &rng, Scenario &scenario) const = 0;
    /// Makes what the scenario needs outside the forge before the forge gets its state (the
    /// merge gate's commit, whose sha replaces "@HEAD@"); an error string stops the scenario.
    [[nodiscard]] virtual QString prepare(Scenario &scenario, Bench &bench) const
    {
        Q_UNUSED(scenario);
        Q_UNUSED(bench);
        return {};
    }
    /**
     * Runs the judgement against @p fake (state installed, hook set), calls @p finish for the
     * timeline once the judgement is over, and checks what it concluded against it. Returns the
     * violations of the invariant (empty: none) and sets @p outcome to what it concluded, in a
     * word ("pass", "wait", "sweep-ok", …) for the campaign's figures.
     */
    [[nodiscard]] virtual QStringList run(const Scenario &scenario, FakeForge &fake, Bench &bench,
                                          std::function<const Timeline &()> finish, QString &outcome) const = 0;
};

/// Replaces "@HEAD@" with @p sha everywhere in @p scenario (shas, patterns, triggers).
void bindHead(Scenario &scenario, const QString &sha);

/// The judges, by kind.
[[nodiscard]] const Judge &judge(JudgeKind kind);

/// The scenario of @p seed.
[[nodiscard]] Scenario generate(quint64 seed);

/// What running one scenario found.
struct ScenarioReport {
    QStringList violations; ///< Empty: the invariant held.
    QString scenario;       ///< Scenario::describe().
    QString log;            ///< Timeline::describe().
    QString outcome;        ///< What the judge concluded, in a word.
    int requests = 0;
    bool faulted = false;   ///< Some request met a fault.
    bool changed = false;   ///< The forge changed while it was read.
};

/// Runs @p scenario from start to end (a fresh fake forge and connector).
[[nodiscard]] ScenarioReport runScenario(const Scenario &scenario, Bench &bench);

} // namespace Sluice::Test::Faults
