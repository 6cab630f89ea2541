// SPDX-License-Identifier: Apache-2.0
// `sluice sweep <instance> --project P`: one pass of a project's sweeper instance, as an
// operator's cron job or the sluice-sweep@.timer runs it. Fail-closed: the exit status is
// non-zero when anything could not be assessed or a write failed.

#include "cli.h"

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
    const QString head = pr ? QStringLiteral("#%1 %2").arg(pr).arg(d.value(QStringLiteral("sha")).toString().left(12)) : QStringLiteral("pass");
    return QStringLiteral("%1 %2%3: %4")
        .arg(head, d.value(QStringLiteral("decision")).toString(),
             d.value(QStringLiteral("failed")).toBool() ? QStringLiteral(" (FAILED)") : QString(),
             d.value(QStringLiteral("reason")).toString());
}

} // namespace

int runSweep(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    parser.addOption({QStringLiteral("project"), QStringLiteral("Project id."), QStringLiteral("ID")});
    parser.addOption({QStringLiteral("dry-run"), QStringLiteral("Decide and report; write nothing.")});
    parser.addOption({QStringLiteral("timeout"), QStringLiteral("Give up on the pass after this long (default 15m)."), QStringLiteral("DURATION"), QStringLiteral("15m")});
    parser.addPositionalArgument(QStringLiteral("instance"), QStringLiteral("The sweeper instance in the project file, e.g. ci-umbrella."));
    if (!parse(parser, arguments,
               QStringLiteral("Run one pass of a project's sweeper instance and print what it decided for every item it "
                              "examined. Exits 1 when anything could not be assessed or a write failed.")))
        return UsageError;
    const QStringList positional = parser.positionalArguments();
    if (positional.size() != 1 || !parser.isSet(QStringLiteral("project"))) {
        printErr(QStringLiteral("sluice sweep: give one sweeper instance and --project"));
        return UsageError;
    }
    const auto timeoutMs = parseDuration(parser.value(QStringLiteral("timeout")));
    if (!timeoutMs || *timeoutMs <= 0) {
        printErr(QStringLiteral("sluice sweep: --timeout: '%1' is not a duration").arg(parser.value(QStringLiteral("timeout"))));
        return UsageError;
    }
    const QString instance = positional.first();
    const QString projectId = parser.value(QStringLiteral("project"));
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
    const std::shared_ptr<ProjectRuntime> project = (*host)->engine().project(projectId);
    if (!project) {
        printErr(QStringLiteral("sluice sweep: project '%1' is not loaded").arg(projectId));
        return Failure;
    }
    PluginInstance *found = project->instances.instance(instance);
    auto *sweeper = qobject_cast<Sweeper *>(found);
    if (!sweeper) {
        printErr(found ? QStringLiteral("sluice sweep: instance '%1' of project '%2' is a %3, not a sweeper").arg(instance, projectId, pluginKindName(found->kind()))
                       : QStringLiteral("sluice sweep: project '%1' has no instance '%2'").arg(projectId, instance));
        return Failure;
    }

    SweepOptions options;
    options.dryRun = parser.isSet(QStringLiteral("dry-run"));
    std::unique_ptr<SweepRun> run = sweeper->sweep(options);
    QEventLoop loop;
    QObject::connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
    QTimer deadline;
    deadline.setSingleShot(true);
    QObject::connect(&deadline, &QTimer::timeout, &loop, &QEventLoop::quit);
    deadline.start(int(std::min<qint64>(*timeoutMs, std::numeric_limits<int>::max())));
    run->start();
    if (!run->isFinished())
        loop.exec();
    SweepReport report = run->report();
    if (!run->isFinished()) {
        run->cancel();
        report = SweepReport{};
        report.failures = 1;
        report.summary = QStringLiteral("the pass did not finish within %1").arg(parser.value(QStringLiteral("timeout")));
    }

    // Every write the pass made is audited with its evidence, and so is the pass.
    bool audited = true;
    if (auto r = auditSweep((*host)->store(), projectId, instance, report, options.dryRun); !r) {
        printErr(QStringLiteral("sluice sweep: %1").arg(r.error().toString()));
        audited = false;
    }
    const bool ok = report.ok && audited;
    const QJsonObject pass{{QStringLiteral("ok"), ok},
                           {QStringLiteral("dryRun"), options.dryRun},
                           {QStringLiteral("examined"), report.examined},
                           {QStringLiteral("acted"), report.acted},
                           {QStringLiteral("failures"), report.failures},
                           {QStringLiteral("summary"), report.summary}};

    if (json) {
        QJsonObject out = pass;
        out.insert(QStringLiteral("instance"), instance);
        out.insert(QStringLiteral("project"), projectId);
        out.insert(QStringLiteral("decisions"), report.decisions);
        printJson(QJsonDocument(out));
    } else {
        QStringList lines;
        for (const QJsonValue &v : std::as_const(report.decisions))
            lines << decisionLine(v.toObject());
        lines << QStringLiteral("%1 %2: %3").arg(instance, ok ? QStringLiteral("ok") : QStringLiteral("FAILED"), report.summary);
        printOut(lines.join(QLatin1Char('\n')));
    }
    return ok ? Success : Failure;
}

} // namespace Sluice::Cli
