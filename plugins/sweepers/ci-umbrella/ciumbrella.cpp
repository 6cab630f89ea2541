// SPDX-License-Identifier: Apache-2.0
#include "ciumbrella.h"

#include "statuscheck.h"

#include <sluice/checkruns.h>
#include <sluice/services.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QLoggingCategory>
#include <QPointer>
#include <QSet>

#include <map>
#include <optional>

namespace Sluice::Ci {

Result<UmbrellaSettings> UmbrellaSettings::fromSettings(const QVariantMap &s, const SecretRef &token)
{
    UmbrellaSettings out;
    out.enabled = s.value(QStringLiteral("enabled"), false).toBool();
    out.token = token;
    out.thresholdMs = s.value(QStringLiteral("threshold"), out.thresholdMs).toLongLong();
    out.intervalMs = s.value(QStringLiteral("interval"), out.intervalMs).toLongLong();
    out.targetUrl = s.value(QStringLiteral("target_url")).toString();
    out.inDaemon = s.value(QStringLiteral("in_daemon"), true).toBool();
    if (out.enabled && token.isNull())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("token: the compensator needs its own token; it never falls back to the forge's"));
    auto required = RequiredSpec::fromSettings(s);
    if (!required)
        return std::unexpected(required.error());
    out.required = *required;
    return out;
}

namespace {

QString markerKey(const QString &sha, qint64 umbrellaId)
{
    return QStringLiteral("compensated/%1/%2").arg(sha).arg(umbrellaId);
}

// A re-run of an umbrella check run: its own key, as check-run ids are not status ids.
QString rerunKey(const QString &sha, qint64 checkRunId)
{
    return QStringLiteral("rerun/%1/%2").arg(sha).arg(checkRunId);
}

QString repairKey(const QString &sha, const CompensationDecision &d)
{
    return d.rerun ? rerunKey(sha, d.umbrellaRun->id) : markerKey(sha, d.umbrella->id);
}

qint64 repairedId(const CompensationDecision &d)
{
    return d.rerun ? d.umbrellaRun->id : d.umbrella->id;
}

class UmbrellaSweepRun final : public SweepRun
{
public:
    UmbrellaSweepRun(PluginContext context, UmbrellaSettings settings, SweepOptions options)
        : m_context(std::move(context))
        , m_settings(std::move(settings))
        , m_options(options)
    {
    }

protected:
    void doStart() override
    {
        if (!m_settings.enabled) {
            SweepReport r;
            r.ok = true;
            r.summary = QStringLiteral("disabled: the project has not turned the compensator on (enabled: false); nothing read, nothing posted");
            return finishWith(r);
        }
        Forge *projectForge = m_context.forge();
        if (!projectForge)
            return abort(QStringLiteral("the project has no forge connector (repository.forge)"));
        auto dedicated = projectForge->withCredential(m_settings.token);
        if (!dedicated)
            return abort(QStringLiteral("cannot use the compensator's own token (%1): %2").arg(m_settings.token.describe(), dedicated.error().message));
        m_forge = std::move(*dedicated);
        if (!m_options.dryRun && !m_context.state())
            return abort(QStringLiteral("no state store to audit compensations in; refusing to post (a dry run works without one)"));

        // Contexts read at the target branch (or listed) are the same for every pull request:
        // resolve them once, while the pull requests are listed.
        const bool shared = !m_settings.required.listed.isEmpty() || m_settings.required.workflowRef == QLatin1String("target");
        m_waitingFor = shared ? 2 : 1;
        if (shared) {
            resolveRequired(*m_forge, m_settings.required, QString(), m_context.project().targetBranch, this, [this](Result<RequiredContexts> required) {
                if (!required)
                    return abort(QStringLiteral("required contexts unknown: %1").arg(required.error().message));
                m_shared = *required;
                if (--m_waitingFor == 0)
                    assessAll();
            });
        }
        runAsync<QList<PullRequest>>(m_forge->openPullRequests(), this, [this](const Result<QList<PullRequest>> &prs) {
            if (!prs)
                return abort(QStringLiteral("cannot list the open pull requests: %1").arg(prs.error().message));
            m_pulls = *prs;
            if (--m_waitingFor == 0)
                assessAll();
        });
    }

    void assessAll()
    {
        if (isFinished())
            return;
        // One assessment per pull request, and one at a time per head commit: two pull requests
        // of one commit (or one listed twice by a list that shifted while it was paged) would
        // otherwise both read the same stale umbrella and both repair it. The next one of a
        // commit starts when the one before is recorded, and reads what that one posted.
        QSet<qint64> listed;
        QList<PullRequest> unique;
        for (const PullRequest &pr : std::as_const(m_pulls)) {
            if (!listed.contains(pr.number)) {
                listed.insert(pr.number);
                unique.append(pr);
            }
        }
        m_pulls = unique;
        m_outstanding = int(m_pulls.size());
        m_report.examined = m_outstanding;
        if (m_pulls.isEmpty())
            return complete();
        QList<PullRequest> first;
        QSet<QString> started;
        for (const PullRequest &pr : std::as_const(m_pulls)) {
            if (started.contains(pr.headSha)) {
                m_waiting[pr.headSha].append(pr);
            } else {
                started.insert(pr.headSha);
                first.append(pr);
            }
        }
        for (const PullRequest &pr : std::as_const(first))
            assess(pr);
    }

    void doCancel() override
    {
        m_forge.reset();
        abort(QStringLiteral("cancelled"));
    }

private:
    void abort(const QString &why)
    {
        if (isFinished())
            return;
        qCWarning(m_context.logging()).noquote() << "ci-umbrella pass failed:" << why;
        m_report.ok = false;
        ++m_report.failures;
        m_report.decisions.append(QJsonObject{{QStringLiteral("decision"), QStringLiteral("error")}, {QStringLiteral("reason"), why}});
        m_report.summary = QStringLiteral("failed: %1").arg(why);
        finishWith(m_report);
    }

    void assess(const PullRequest &pr)
    {
        if (m_shared)
            return readAndDecide(pr, *m_shared, false);
        resolveRequired(*m_forge, m_settings.required, pr.headSha, m_context.project().targetBranch, this,
                        [this, pr](Result<RequiredContexts> required) {
                            if (!required)
                                return record(pr, QStringLiteral("error"), QStringLiteral("required contexts unknown: %1").arg(required.error().message), {}, true);
                            readAndDecide(pr, *required, false);
                        });
    }

    // Reads every status (and check run, where the forge has them) of the head commit, then
    // @p next gets both; a failed read is recorded as a failure of this pull request.
    void readAll(const PullRequest &pr, std::function<void(const QList<CommitStatus> &, const QList<CheckRun> &)> next)
    {
        auto statuses = std::make_shared<std::optional<QList<CommitStatus>>>();
        auto runs = std::make_shared<std::optional<QList<CheckRun>>>();
        auto failed = std::make_shared<bool>(false);
        CheckRunReader *checks = qobject_cast<CheckRunReader *>(m_forge.get());
        if (!checks)
            *runs = QList<CheckRun>();
        auto ready = [=] {
            if (!*failed && *statuses && *runs)
                next(**statuses, **runs);
        };
        runAsync<QList<CommitStatus>>(m_forge->statuses(pr.headSha), this, [=, this](const Result<QList<CommitStatus>> &read) {
            if (*failed)
                return;
            if (!read) {
                *failed = true;
                return record(pr, QStringLiteral("error"), QStringLiteral("cannot read the statuses of %1: %2").arg(pr.headSha, read.error().message), {}, true);
            }
            *statuses = *read;
            ready();
        });
        if (checks) {
            runAsync<QList<CheckRun>>(checks->checkRuns(pr.headSha), this, [=, this](const Result<QList<CheckRun>> &read) {
                if (*failed)
                    return;
                if (!read) {
                    *failed = true;
                    return record(pr, QStringLiteral("error"), QStringLiteral("cannot read the check runs of %1: %2").arg(pr.headSha, read.error().message), {}, true);
                }
                *runs = *read;
                ready();
            });
        }
    }

    // Reads every status of the head commit and decides; @p confirming is the re-read before a post.
    void readAndDecide(const PullRequest &pr, const RequiredContexts &required, bool confirming, qint64 expectedUmbrella = 0)
    {
        readAll(pr, [=, this](const QList<CommitStatus> &statuses, const QList<CheckRun> &runs) {
            CompensationInput input;
            input.statuses = statuses;
            input.checkRuns = runs;
            input.umbrella = required.umbrellaContext;
            input.required = required.contexts;
            input.now = m_context.clock().now();
            input.thresholdMs = m_settings.thresholdMs;
            CompensationDecision d = decideCompensation(input);
            // Only a pull request that would be compensated needs its audit marker read.
            if (d.decision == Decision::Compensate && m_context.state()) {
                auto marker = m_context.state()->value(repairKey(pr.headSha, d));
                if (!marker)
                    return record(pr, QStringLiteral("error"), QStringLiteral("cannot read the audit marker: %1").arg(marker.error().message), {}, true);
                if (*marker && QJsonDocument::fromJson(**marker).object().value(QStringLiteral("state")).toString() == QLatin1String("posted")) {
                    (d.rerun ? input.rerunUmbrellaRunIds : input.compensatedUmbrellaIds).insert(repairedId(d));
                    d = decideCompensation(input);
                }
            }
            if (d.decision != Decision::Compensate)
                return record(pr, decisionName(d.decision), confirming ? QStringLiteral("on re-read: %1").arg(d.reason) : d.reason, d.evidence(), false);
            if (confirming && repairedId(d) != expectedUmbrella)
                return record(pr, decisionName(Decision::UmbrellaNotFailure), QStringLiteral("on re-read the umbrella %1 changed (%2, was %3); left for the next pass").arg(d.rerun ? QStringLiteral("check run") : QStringLiteral("status")).arg(repairedId(d)).arg(expectedUmbrella), d.evidence(), false);
            if (m_options.dryRun) {
                ++m_report.acted;
                return record(pr, decisionName(d.decision), QStringLiteral("dry run, would %1: %2").arg(d.rerun ? QStringLiteral("re-run the umbrella job") : QStringLiteral("post")).arg(d.reason), d.evidence(), false);
            }
            if (!confirming)
                return readAndDecide(pr, required, true, repairedId(d));
            if (d.rerun)
                return rerun(pr, d);
            post(pr, required, d);
        });
    }

    void post(const PullRequest &pr, const RequiredContexts &required, const CompensationDecision &d)
    {
        StateStore *state = m_context.state();
        const QString key = markerKey(pr.headSha, d.umbrella->id);
        QJsonObject marker{{QStringLiteral("state"), QStringLiteral("posting")},
                           {QStringLiteral("pr"), pr.number},
                           {QStringLiteral("sha"), pr.headSha},
                           {QStringLiteral("at"), m_context.clock().now().toString(Qt::ISODate)},
                           {QStringLiteral("evidence"), d.evidence()}};
        if (auto w = state->setValue(key, QJsonDocument(marker).toJson(QJsonDocument::Compact)); !w)
            return record(pr, QStringLiteral("error"), QStringLiteral("cannot write the audit marker, so nothing was posted: %1").arg(w.error().message), d.evidence(), true);

        StatusUpdate update;
        update.context = required.umbrellaContext;
        update.state = StatusState::Success;
        update.targetUrl = m_settings.targetUrl;
        update.description = QStringLiteral("sluice compensation: all %1 required sub-jobs succeeded on %2; umbrella failure #%3 was stale")
                                 .arg(d.subJobs.size())
                                 .arg(pr.headSha.left(12))
                                 .arg(d.umbrella->id);
        runAsync<CommitStatus>(m_forge->postStatus(pr.headSha, update), this, [=, this](const Result<CommitStatus> &posted) mutable {
            if (!posted) {
                marker.insert(QStringLiteral("state"), QStringLiteral("failed"));
                marker.insert(QStringLiteral("error"), posted.error().message);
                (void)state->setValue(key, QJsonDocument(marker).toJson(QJsonDocument::Compact));
                return record(pr, QStringLiteral("error"), QStringLiteral("posting the compensating status failed: %1").arg(posted.error().message), d.evidence(), true);
            }
            marker.insert(QStringLiteral("state"), QStringLiteral("posted"));
            marker.insert(QStringLiteral("postedStatusId"), posted->id);
            if (auto w = state->setValue(key, QJsonDocument(marker).toJson(QJsonDocument::Compact)); !w) {
                // Posted but not audited: count it as a failure so someone looks.
                return record(pr, decisionName(Decision::Compensate), QStringLiteral("posted status %1 but the audit marker failed: %2").arg(posted->id).arg(w.error().message), d.evidence(), true, true);
            }
            qCWarning(m_context.logging()).noquote() << "compensated umbrella" << required.umbrellaContext << "on pull request" << pr.number
                                                     << pr.headSha << "status" << posted->id << "over stale failure" << d.umbrella->id;
            ++m_report.acted;
            record(pr, decisionName(Decision::Compensate), QStringLiteral("posted status %1: %2").arg(posted->id).arg(d.reason), d.evidence(), false, true);
        });
    }

    // A failed umbrella check run is repaired only by running it again (GitHub requires the
    // check run itself; a status of the same name is a second requirement and fixes nothing):
    // the job is re-run through the Actions API, with the same marker, evidence and audit as a
    // post. The new run shows up as pending and is judged when it ends.
    void rerun(const PullRequest &pr, const CompensationDecision &d)
    {
        CheckRunReader *checks = qobject_cast<CheckRunReader *>(m_forge.get());
        if (!checks)
            return record(pr, QStringLiteral("error"), QStringLiteral("the umbrella is a check run, and this forge connector cannot re-run check runs; re-run it on the forge"), d.evidence(), true);
        StateStore *state = m_context.state();
        const QString key = rerunKey(pr.headSha, d.umbrellaRun->id);
        QJsonObject marker{{QStringLiteral("state"), QStringLiteral("posting")},
                           {QStringLiteral("repair"), QStringLiteral("rerun")},
                           {QStringLiteral("pr"), pr.number},
                           {QStringLiteral("sha"), pr.headSha},
                           {QStringLiteral("checkRun"), d.umbrellaRun->id},
                           {QStringLiteral("at"), m_context.clock().now().toString(Qt::ISODate)},
                           {QStringLiteral("evidence"), d.evidence()}};
        if (auto w = state->setValue(key, QJsonDocument(marker).toJson(QJsonDocument::Compact)); !w)
            return record(pr, QStringLiteral("error"), QStringLiteral("cannot write the audit marker, so nothing was re-run: %1").arg(w.error().message), d.evidence(), true);
        runAsync<Done>(checks->rerunCheckRun(*d.umbrellaRun), this, [=, this](const Result<Done> &done) mutable {
            if (!done) {
                marker.insert(QStringLiteral("state"), QStringLiteral("failed"));
                marker.insert(QStringLiteral("error"), done.error().message);
                (void)state->setValue(key, QJsonDocument(marker).toJson(QJsonDocument::Compact));
                return record(pr, QStringLiteral("error"), QStringLiteral("re-running the umbrella check run %1 failed: %2").arg(d.umbrellaRun->id).arg(done.error().message), d.evidence(), true);
            }
            marker.insert(QStringLiteral("state"), QStringLiteral("posted"));
            if (auto w = state->setValue(key, QJsonDocument(marker).toJson(QJsonDocument::Compact)); !w)
                return record(pr, decisionName(Decision::Compensate), QStringLiteral("re-ran check run %1 but the audit marker failed: %2").arg(d.umbrellaRun->id).arg(w.error().message), d.evidence(), true, true);
            qCWarning(m_context.logging()).noquote() << "re-ran the umbrella check run" << d.umbrellaRun->name << d.umbrellaRun->id << "on pull request" << pr.number << pr.headSha;
            ++m_report.acted;
            record(pr, decisionName(Decision::Compensate), QStringLiteral("re-ran the umbrella job (check run %1): %2").arg(d.umbrellaRun->id).arg(d.reason), d.evidence(), false, true);
        });
    }

    void record(const PullRequest &pr, const QString &decision, const QString &reason, const QJsonObject &evidence, bool failure, bool posted = false)
    {
        if (isFinished())
            return;
        if (failure) {
            ++m_report.failures;
            qCWarning(m_context.logging()).noquote() << "pull request" << pr.number << "could not be assessed:" << reason;
        }
        m_results.emplace(pr.number, QJsonObject{{QStringLiteral("pullRequest"), pr.number},
                                                 {QStringLiteral("sha"), pr.headSha},
                                                 {QStringLiteral("decision"), decision},
                                                 {QStringLiteral("reason"), reason},
                                                 {QStringLiteral("posted"), posted},
                                                 {QStringLiteral("dryRun"), m_options.dryRun},
                                                 {QStringLiteral("failed"), failure},
                                                 {QStringLiteral("evidence"), evidence}});
        std::optional<PullRequest> next;
        if (auto it = m_waiting.find(pr.headSha); it != m_waiting.end() && !it->isEmpty())
            next = it->takeFirst();
        if (--m_outstanding == 0)
            return complete();
        if (next)
            assess(*next);
    }

    void complete()
    {
        for (const auto &[number, decision] : m_results)
            m_report.decisions.append(decision);
        m_report.ok = m_report.failures == 0;
        m_report.summary = QStringLiteral("%1 open pull request(s): %2 %3, %4 failure(s)%5")
                               .arg(m_report.examined)
                               .arg(m_report.acted)
                               .arg(m_options.dryRun ? QStringLiteral("would be compensated") : QStringLiteral("compensated"))
                               .arg(m_report.failures)
                               .arg(m_options.dryRun ? QStringLiteral(" (dry run, nothing posted)") : QString());
        finishWith(m_report);
    }

    PluginContext m_context;
    UmbrellaSettings m_settings;
    SweepOptions m_options;
    std::unique_ptr<Forge> m_forge;
    std::optional<RequiredContexts> m_shared; // when the contexts do not depend on the pull request
    QList<PullRequest> m_pulls;
    QHash<QString, QList<PullRequest>> m_waiting; // by head sha: assessed after the one before
    int m_waitingFor = 0;
    SweepReport m_report;
    std::map<qint64, QJsonObject> m_results; // by pull request number, for a stable report
    int m_outstanding = 0;
};

} // namespace

UmbrellaSweeper::UmbrellaSweeper(const PluginContext &context, UmbrellaSettings settings, QObject *parent)
    : Sweeper(context, parent)
    , m_settings(std::move(settings))
{
}

std::chrono::seconds UmbrellaSweeper::defaultInterval() const
{
    return std::chrono::seconds(m_settings.inDaemon ? m_settings.intervalMs / 1000 : 0);
}

std::unique_ptr<SweepRun> UmbrellaSweeper::sweep(const SweepOptions &options)
{
    return std::make_unique<UmbrellaSweepRun>(context(), m_settings, options);
}

Result<std::unique_ptr<PluginInstance>> UmbrellaSweeperFactory::create(const PluginContext &context)
{
    auto settings = UmbrellaSettings::fromSettings(context.settings(), context.secret(QStringLiteral("token")));
    if (!settings)
        return std::unexpected(settings.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<UmbrellaSweeper>(context, *settings));
}

} // namespace Sluice::Ci
