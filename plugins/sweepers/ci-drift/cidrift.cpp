// SPDX-License-Identifier: Apache-2.0
#include "cidrift.h"

#include <sluice/checkruns.h>

#include <QJsonArray>
#include <QJsonObject>
#include <QPointer>

namespace Sluice::Ci {

QList<DriftFinding> compareWithProtection(const RequiredContexts &derived, const QStringList &protectedContexts)
{
    QList<DriftFinding> out;
    const bool umbrellaProtected = protectedContexts.contains(derived.umbrellaContext);
    for (const QString &c : protectedContexts) {
        if (c == derived.umbrellaContext)
            out.append({c, QStringLiteral("ok-umbrella"), QStringLiteral("protection requires the umbrella"), false});
        else if (derived.contexts.contains(c))
            out.append({c, QStringLiteral("ok-derived"), QStringLiteral("protection requires it and the workflow posts it"), false});
        else
            out.append({c, QStringLiteral("stale"), QStringLiteral("protection requires '%1' but no job of the workflow posts it: merges wait for it forever").arg(c), true});
    }
    for (const QString &c : derived.contexts) {
        if (protectedContexts.contains(c))
            continue;
        if (umbrellaProtected)
            out.append({c, QStringLiteral("not-required"), QStringLiteral("covered by the protected umbrella"), false});
        else
            out.append({c, QStringLiteral("unprotected"), QStringLiteral("the workflow requires '%1' but neither it nor the umbrella is required by protection").arg(c), true});
    }
    if (!umbrellaProtected && derived.contexts.isEmpty())
        out.append({derived.umbrellaContext, QStringLiteral("unprotected"), QStringLiteral("the umbrella is not required by protection"), true});
    return out;
}

DriftFinding compareSemantics(Semantics semantics, bool forgeHasCheckRuns)
{
    // GitHub's branch protection takes a skipped or neutral check run as passing (docs.github.com,
    // "About status checks"); Gitea's merge check takes only success (services/pull/commit_status.go).
    if (forgeHasCheckRuns && semantics == Semantics::Strict)
        return {QStringLiteral("required_semantics"), QStringLiteral("semantics-stricter"),
                QStringLiteral("Sluice requires success where GitHub's protection also accepts a skipped or neutral check run: a job skipped by `if:` "
                               "lets GitHub merge but keeps the ci gate red (set required_semantics: forge to judge as GitHub does)"),
                false};
    if (forgeHasCheckRuns && semantics == Semantics::Forge)
        return {QStringLiteral("required_semantics"), QStringLiteral("semantics-as-forge"),
                QStringLiteral("skipped and neutral check runs pass, as GitHub's protection takes them; a commit status must still be success"), false};
    if (semantics == Semantics::Forge)
        return {QStringLiteral("required_semantics"), QStringLiteral("semantics-as-forge"),
                QStringLiteral("this forge has no check runs and takes only success: 'forge' judges as 'strict' here"), false};
    return {};
}

namespace {

class DriftRun final : public SweepRun
{
public:
    DriftRun(QPointer<Forge> forge, RequiredSpec spec, QString branch)
        : m_forge(std::move(forge))
        , m_spec(std::move(spec))
        , m_branch(std::move(branch))
    {
    }

protected:
    void doStart() override
    {
        if (!m_forge)
            return failWith(QStringLiteral("the project has no forge connector (repository.forge)"));
        resolveRequired(*m_forge, m_spec, m_branch, m_branch, this, [this](Result<RequiredContexts> derived) {
            if (!derived)
                return failWith(QStringLiteral("required contexts unknown: %1").arg(derived.error().message));
            if (!m_forge)
                return failWith(QStringLiteral("the forge connector went away"));
            const RequiredContexts req = *derived;
            runAsync<QStringList>(m_forge->protectedContexts(m_branch), this, [this, req](const Result<QStringList> &prot) {
                if (!prot && prot.error().code != ErrorCode::NotFound)
                    return failWith(QStringLiteral("cannot read the protection of %1: %2").arg(m_branch, prot.error().message));
                report(req, prot ? *prot : QStringList(), !prot, qobject_cast<CheckRunReader *>(m_forge.data()) != nullptr);
            });
        });
    }

private:
    void failWith(const QString &why)
    {
        SweepReport r;
        r.failures = 1;
        r.summary = QStringLiteral("failed: %1").arg(why);
        r.decisions.append(QJsonObject{{QStringLiteral("decision"), QStringLiteral("error")}, {QStringLiteral("reason"), why}});
        finishWith(r);
    }

    void report(const RequiredContexts &derived, const QStringList &prot, bool unprotectedBranch, bool checkRuns)
    {
        SweepReport r;
        QList<DriftFinding> findings = compareWithProtection(derived, prot);
        const DriftFinding semantics = compareSemantics(m_spec.semantics, checkRuns);
        if (!semantics.problem.isEmpty())
            findings.append(semantics);
        for (const DriftFinding &f : findings) {
            r.decisions.append(QJsonObject{{QStringLiteral("context"), f.context},
                                           {QStringLiteral("decision"), f.problem},
                                           {QStringLiteral("reason"), f.reason},
                                           {QStringLiteral("failed"), f.drift}});
            r.failures += f.drift;
        }
        r.examined = int(findings.size()) - (semantics.problem.isEmpty() ? 0 : 1);
        r.ok = r.failures == 0;
        r.summary = QStringLiteral("%1: %2 derived context(s) and umbrella '%3' vs %4 protected context(s)%5: %6")
                        .arg(m_branch)
                        .arg(derived.contexts.size())
                        .arg(derived.umbrellaContext)
                        .arg(prot.size())
                        .arg(unprotectedBranch ? QStringLiteral(" (the branch is not protected)") : QString(),
                             r.ok ? QStringLiteral("no drift") : QStringLiteral("%1 drift finding(s)").arg(r.failures));
        finishWith(r);
    }

    QPointer<Forge> m_forge;
    RequiredSpec m_spec;
    QString m_branch;
};

} // namespace

DriftSweeper::DriftSweeper(const PluginContext &context, RequiredSpec spec, QString branch, QObject *parent)
    : Sweeper(context, parent)
    , m_spec(std::move(spec))
    , m_branch(std::move(branch))
{
}

std::chrono::seconds DriftSweeper::defaultInterval() const
{
    return context().settings().value(QStringLiteral("in_daemon"), true).toBool() ? std::chrono::seconds(std::chrono::hours(1))
                                                                                   : std::chrono::seconds(0);
}

std::unique_ptr<SweepRun> DriftSweeper::sweep(const SweepOptions &)
{
    return std::make_unique<DriftRun>(QPointer<Forge>(context().forge()), m_spec,
                                      m_branch.isEmpty() ? context().project().targetBranch : m_branch);
}

Result<std::unique_ptr<PluginInstance>> DriftSweeperFactory::create(const PluginContext &context)
{
    auto spec = RequiredSpec::fromSettings(context.settings());
    if (!spec)
        return std::unexpected(spec.error());
    spec->workflowRef = QStringLiteral("head"); // the branch compared is the ref read
    return std::unique_ptr<PluginInstance>(std::make_unique<DriftSweeper>(context, *spec, context.settings().value(QStringLiteral("branch")).toString()));
}

} // namespace Sluice::Ci
