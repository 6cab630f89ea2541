// SPDX-License-Identifier: Apache-2.0
// `sluice sweep <instance> [--project P]`: one pass of a sweeper instance, as an operator's
// cron job or the sluice-sweep@.timer runs it. Without --project, every project that has an
// instance of that name gets a pass. Fail-closed: the exit status is non-zero when anything
// could not be assessed or a write failed.

#include "cli.h"

#include "engine/engine.h"
#include "engine/hostruntime.h"
#include "engine/sweeps.h"

#include <sluice/sweeper.h>

#include <QDateTime>
#include <QEventLoop>
#include <QJsonArray>
#include <QJsonObject>
#include <QTimer>

namespace Sluice::Cli {

namespace {

QString decisionLine(const QJsonObject &d)
{
    const qint64 pr = qint64(d.value(QStringLiteral("pullRequest")).toDouble());
    const QString subject = pr ? QStringLiteral("#%1 %2").arg(pr).arg(d.value(QStringLiteral("sha")).toString().left(12))
                               : d.value(QStringLiteral("context")).toString(QStringLiteral("pass"));
    return QStringLiteral("%1 %2%3: %4")
        .arg(subject, d.value(QStringLiteral("decision")).toString(),
             d.value(QStringLiteral("failed")).toBool() ? QStringLiteral(" (FAILED)") : QString(),
             d.value(QStringLiteral("reason")).toString());
}

// One pass of @p sweeper, waited for (at most @p timeoutMs), audited; returns its JSON form.
QJsonObject runPass(Engine &engine, const QString &projectId, const QString &instance, Sweeper &sweeper, bool dryRun, qint64 timeoutMs,
                    const QString &timeoutText)
{
    SweepOptions options;
    options.dryRun = dryRun;
    std::unique_ptr<SweepRun> run = sweeper.sweep(options);
    QEventLoop loop;
    QObject::connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
    QTimer deadline;
    deadline.setSingleShot(true);
    QObject::connect(&deadline, &QTimer::timeout, &loop, &QEventLoop::quit);
    deadline.start(int(std::min<qint64>(timeoutMs, std::numeric_limits<int>::max())));
    run->start();
    if (!run->isFinished())
        loop.exec();
    SweepReport report = run->report();
    if (!run->isFinished()) {
        run->cancel();
        report = SweepReport{};
        report.failures = 1;
        report.summary = QStringLiteral("the pass did not finish within %1").arg(timeoutText);
    }
    // Every write the pass made is audited with its evidence, and so is the pass; what
    // people hear of (compensations, a failed pass) the daemon routes from the store.
    bool ok = report.ok;
    if (auto r = auditSweep(engine.store(), projectId, instance, report, dryRun); !r) {
        printErr(QStringLiteral("sluice sweep: %1").arg(r.error().toString()));
        ok = false;
    }
    notifySweepPass(engine, projectId, instance, report);
    return QJsonObject{{QStringLiteral("ok"), ok},
                       {QStringLiteral("instance"), instance},
                       {QStringLiteral("project"), projectId},
                       {QStringLiteral("dryRun"), dryRun},
                       {QStringLiteral("examined"), report.examined},
                       {QStringLiteral("acted"), report.acted},
                       {QStringLiteral("failures"), report.failures},
                       {QStringLiteral("summary"), report.summary},
                       {QStringLiteral("decisions"), report.decisions}};
}

} // namespace

int runSweep(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    parser.addOption({QStringLiteral("project"), QStringLiteral("Only this project (default: every project with the instance)."), QStringLiteral("ID")});
    parser.addOption({QStringLiteral("dry-run"), QStringLiteral("Decide and report; write nothing.")});
    parser.addOption({QStringLiteral("timeout"), QStringLiteral("Give up on a pass after this long (default 15m)."), QStringLiteral("DURATION"), QStringLiteral("15m")});
    parser.addPositionalArgument(QStringLiteral("instance"), QStringLiteral("The sweeper instance in the project file, e.g. ci-umbrella."));
    if (!parse(parser, arguments,
               QStringLiteral("Run one pass of a sweeper instance (in one project, or in every project that has it) and "
                              "print what it decided for every item it examined. Exits 1 when anything could not be "
                              "assessed or a write failed.")))
        return UsageError;
    const QStringList positional = parser.positionalArguments();
    if (positional.size() != 1) {
        printErr(QStringLiteral("sluice sweep: give one sweeper instance"));
        return UsageError;
    }
    const auto timeoutMs = parseDuration(parser.value(QStringLiteral("timeout")));
    if (!timeoutMs || *timeoutMs <= 0) {
        printErr(QStringLiteral("sluice sweep: --timeout: '%1' is not a duration").arg(parser.value(QStringLiteral("timeout"))));
        return UsageError;
    }
    const QString instance = positional.first();
    const bool json = parser.isSet(QStringLiteral("json"));

    Diagnostics diagnostics;
    auto host = HostRuntime::open(parser.value(QStringLiteral("config")), diagnostics);
    for (const Diagnostic &d : std::as_const(diagnostics))
        printErr(d.toString());
    if (!host) {
        printErr(QStringLiteral("sluice sweep: %1").arg(host.error().toString()));
        return Failure;
    }
    for (const Diagnostic &d : (*host)->loadProjects())
        printErr(d.toString());
    (*host)->engine().setNotificationOutbox(true); // the daemon routes what this pass raises

    // The projects to sweep: the one named, or every one with a sweeper of that name.
    QList<std::pair<QString, std::shared_ptr<ProjectRuntime>>> targets;
    const bool oneProject = parser.isSet(QStringLiteral("project"));
    const QStringList projectIds = oneProject ? QStringList{parser.value(QStringLiteral("project"))} : (*host)->engine().projectIds();
    for (const QString &id : projectIds) {
        const std::shared_ptr<ProjectRuntime> project = (*host)->engine().project(id);
        if (!project) {
            printErr(QStringLiteral("sluice sweep: project '%1' is not loaded").arg(id));
            return Failure;
        }
        PluginInstance *found = project->instances.instance(instance);
        if (!found && !oneProject)
            continue;
        if (!qobject_cast<Sweeper *>(found)) {
            printErr(found ? QStringLiteral("sluice sweep: instance '%1' of project '%2' is a %3, not a sweeper").arg(instance, id, pluginKindName(found->kind()))
                           : QStringLiteral("sluice sweep: project '%1' has no instance '%2'").arg(id, instance));
            return Failure;
        }
        targets.append({id, project});
    }
    if (targets.isEmpty()) {
        printErr(QStringLiteral("sluice sweep: no loaded project has a sweeper instance '%1'").arg(instance));
        return Failure;
    }

    bool ok = true;
    QJsonArray passes;
    QStringList lines;
    for (const auto &[id, project] : std::as_const(targets)) {
        const QJsonObject pass = runPass((*host)->engine(), id, instance, *project->instances.as<Sweeper>(instance),
                                         parser.isSet(QStringLiteral("dry-run")), *timeoutMs, parser.value(QStringLiteral("timeout")));
        ok = ok && pass.value(QStringLiteral("ok")).toBool();
        passes.append(pass);
        for (const QJsonValue &v : pass.value(QStringLiteral("decisions")).toArray())
            lines << decisionLine(v.toObject());
        lines << QStringLiteral("%1 in %2 %3: %4")
                     .arg(instance, id, pass.value(QStringLiteral("ok")).toBool() ? QStringLiteral("ok") : QStringLiteral("FAILED"),
                          pass.value(QStringLiteral("summary")).toString());
    }
    if (json)
        printJson(QJsonDocument(oneProject ? passes.first().toObject() : QJsonObject{{QStringLiteral("ok"), ok}, {QStringLiteral("passes"), passes}}));
    else
        printOut(lines.join(QLatin1Char('\n')));
    return ok ? Success : Failure;
}

} // namespace Sluice::Cli
