// SPDX-License-Identifier: Apache-2.0
#include "requiredsource.h"

#include <QPointer>

#include <memory>

namespace Sluice::Ci {

Result<RequiredSpec> RequiredSpec::fromSettings(const QVariantMap &s)
{
    RequiredSpec spec;
    spec.workflow = s.value(QStringLiteral("workflow")).toString();
    spec.workflowRef = s.value(QStringLiteral("workflow_ref"), QStringLiteral("head")).toString();
    spec.listed = s.value(QStringLiteral("contexts")).toStringList();
    spec.umbrellaContext = s.value(QStringLiteral("umbrella_context")).toString();
    spec.extra = s.value(QStringLiteral("extra_contexts")).toStringList();
    spec.excluded = s.value(QStringLiteral("excluded_contexts")).toStringList();
    const QString semantics = s.value(QStringLiteral("required_semantics"), QStringLiteral("strict")).toString();
    if (const auto parsed = semanticsFromName(semantics))
        spec.semantics = *parsed;
    else
        return fail(ErrorCode::InvalidConfig, QStringLiteral("required_semantics: 'strict' or 'forge', not '%1'").arg(semantics));
    spec.options.workflowPath = spec.workflow;
    spec.options.umbrellaJob = s.value(QStringLiteral("umbrella_job")).toString();
    spec.options.naming = s.value(QStringLiteral("naming"), QStringLiteral("gitea")).toString() == QLatin1String("github")
                              ? Naming::GitHub
                              : Naming::Gitea;
    spec.options.event = s.value(QStringLiteral("event"), QStringLiteral("pull_request")).toString();
    spec.options.transitive = s.value(QStringLiteral("transitive_needs"), false).toBool();
    const QVariantMap names = s.value(QStringLiteral("job_names")).toMap();
    for (auto it = names.cbegin(); it != names.cend(); ++it) {
        const QStringList list = it.value().toStringList();
        if (list.isEmpty())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("job_names.%1: list at least one name").arg(it.key()));
        spec.options.jobNames.insert(it.key(), list);
    }

    if (spec.listed.isEmpty() && spec.workflow.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("workflow: name the CI workflow file (or list the contexts explicitly)"));
    if (!spec.listed.isEmpty() && !spec.workflow.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("contexts: give either the workflow or the contexts, not both"));
    if (!spec.workflow.isEmpty() && spec.options.umbrellaJob.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("umbrella_job: name the umbrella job of %1").arg(spec.workflow));
    if (spec.workflowRef != QLatin1String("head") && spec.workflowRef != QLatin1String("target"))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("workflow_ref: 'head' or 'target', not '%1'").arg(spec.workflowRef));
    for (const QString &e : std::as_const(spec.excluded)) {
        if (spec.extra.contains(e) || spec.listed.contains(e))
            return fail(ErrorCode::InvalidConfig, QStringLiteral("excluded_contexts: '%1' is also listed as required").arg(e));
    }
    return spec;
}

namespace {

Result<RequiredContexts> finish(const RequiredSpec &spec, RequiredContexts derived)
{
    if (!spec.umbrellaContext.isEmpty())
        derived.umbrellaContext = spec.umbrellaContext;
    for (const QString &e : spec.excluded) {
        if (!derived.contexts.contains(e))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("excluded_contexts: '%1' is not among the required contexts derived from %2 (%3)")
                            .arg(e, spec.workflow.isEmpty() ? QStringLiteral("the listed contexts") : spec.workflow,
                                 derived.contexts.join(QStringLiteral(", "))));
        derived.contexts.removeAll(e);
    }
    for (const QString &x : spec.extra) {
        if (!derived.contexts.contains(x))
            derived.contexts.append(x);
    }
    derived.contexts.removeAll(derived.umbrellaContext);
    if (derived.contexts.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("no required context is left; refusing to treat nothing as green"));
    return derived;
}

Result<RequiredContexts> derivedFinished(const RequiredSpec &spec, Result<RequiredContexts> derived)
{
    if (!derived)
        return derived;
    return finish(spec, *derived);
}

} // namespace

void resolveRequired(Forge &forge, const RequiredSpec &spec, const QString &commit, const QString &targetBranch,
                     QObject *owner, std::function<void(Result<RequiredContexts>)> done)
{
    if (!spec.listed.isEmpty()) {
        RequiredContexts listed;
        listed.contexts = spec.listed;
        listed.umbrellaContext = spec.umbrellaContext;
        return done(finish(spec, listed));
    }
    const QString ref = spec.workflowRef == QLatin1String("target") ? targetBranch : commit;
    if (ref.isEmpty())
        return done(fail(ErrorCode::InvalidArgument, QStringLiteral("no ref to read %1 at").arg(spec.workflow)));
    QPointer<Forge> forgeGuard(&forge);
    runAsync<QByteArray>(forge.readFile(spec.workflow, ref), owner, [=, &forge](const Result<QByteArray> &yaml) {
        if (!yaml)
            return done(fail(yaml.error().code, QStringLiteral("cannot read the workflow %1 at %2: %3").arg(spec.workflow, ref, yaml.error().message),
                             yaml.error().detail));
        auto called = calledWorkflows(*yaml, spec.options);
        if (!called)
            return done(std::unexpected(called.error()));
        if (called->isEmpty())
            return done(derivedFinished(spec, deriveRequiredContexts(*yaml, spec.options)));
        if (!forgeGuard)
            return done(fail(ErrorCode::Cancelled, QStringLiteral("the forge went away")));
        // Read every called workflow, then derive.
        auto callees = std::make_shared<QHash<QString, QByteArray>>();
        auto pending = std::make_shared<int>(int(called->size()));
        auto failed = std::make_shared<bool>(false);
        const QByteArray main = *yaml;
        for (const QString &path : std::as_const(*called)) {
            runAsync<QByteArray>(forge.readFile(path, ref), owner, [=](const Result<QByteArray> &content) {
                if (*failed)
                    return;
                if (!content) {
                    *failed = true;
                    return done(fail(content.error().code, QStringLiteral("cannot read the called workflow %1 at %2: %3").arg(path, ref, content.error().message)));
                }
                callees->insert(path, *content);
                if (--*pending == 0)
                    done(derivedFinished(spec, deriveRequiredContexts(main, spec.options, *callees)));
            });
        }
    });
}

} // namespace Sluice::Ci
