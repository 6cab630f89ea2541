// SPDX-License-Identifier: Apache-2.0
// Commands that read or move tasks: submit, status, queue, task, approve, retry. They talk
// to the store directly and move tasks only through the engine, like the daemon.

#include "cli.h"

#include "commitscan.h"
#include "engine/hostruntime.h"

#include <QDateTime>
#include <QEventLoop>
#include <QFile>
#include <QJsonArray>
#include <QJsonObject>
#include <QUuid>

#include <pwd.h>
#include <unistd.h>

namespace Sluice::Cli {

namespace {

// withProjects: a command that moves tasks; it loads the projects and may migrate the
// store. Without: a read-only command, which leaves the store as it finds it.
std::unique_ptr<HostRuntime> openHost(const QString &configDir, bool withProjects)
{
    Diagnostics diagnostics;
    auto host = HostRuntime::open(configDir, diagnostics,
                                  withProjects ? HostRuntime::StoreAccess::Migrate : HostRuntime::StoreAccess::ReadExisting);
    // What this process raises (submitted, stage-changed, done, ...) is routed by the daemon.
    if (host) {
        (*host)->engine().setNotificationOutbox(true);
        // A signal may move a task whose head must be pushed first.
        (*host)->engine().setCommitScanner(&Security::scanCommitRange);
    }
    for (const Diagnostic &d : diagnostics)
        printErr(d.toString());
    if (!host) {
        printErr(QStringLiteral("sluice: %1").arg(host.error().toString()));
        return nullptr;
    }
    if (withProjects) {
        for (const Diagnostic &d : (*host)->loadProjects())
            printErr(d.toString());
    } else {
        // What the projects' secret references hold is redacted from what this command
        // prints, as in the daemon: the command reads the files itself (no daemon needed).
        (*host)->registerProjectSecrets();
    }
    return std::move(*host);
}

// "head 1a2b3c4d5e6f (pushed), pull request #12": what the gates judge and what the forge has.
QString headLine(const QJsonObject &t)
{
    const QString head = t.value(QLatin1String("head")).toString();
    const QString pushed = t.value(QLatin1String("pushed")).toString();
    QString line = head.isEmpty() ? QStringLiteral("head: none recorded yet") : QStringLiteral("head %1").arg(head.left(12));
    if (!head.isEmpty() && !pushed.isEmpty())
        line += pushed == head ? QStringLiteral(" (pushed)") : QStringLiteral(" (forge has %1)").arg(pushed.left(12));
    const qint64 pr = t.value(QLatin1String("pullRequest")).toVariant().toLongLong();
    if (pr > 0)
        line += QStringLiteral(", pull request #%1").arg(pr);
    return line;
}

QString when(qint64 ms)
{
    return ms ? QDateTime::fromMSecsSinceEpoch(ms, Qt::UTC).toString(QStringLiteral("yyyy-MM-dd HH:mm:ss")) : QStringLiteral("-");
}

// Who runs this command, for the audit: the login of the effective user, and under sudo the
// person who asked for it.
QString operatorName()
{
    const struct passwd *user = ::getpwuid(::geteuid());
    QString name = user && user->pw_name ? QString::fromLocal8Bit(user->pw_name) : QStringLiteral("uid %1").arg(::geteuid());
    const QString sudoUser = qEnvironmentVariable("SUDO_USER");
    if (::geteuid() == 0 && !sudoUser.isEmpty())
        name = QStringLiteral("%1 (sudo from %2)").arg(name, sudoUser);
    return name;
}

// The retry command for a blocked task, as the operator would type it.
QString retryCommand(qint64 id, const QString &configDir)
{
    return QStringLiteral("sluice retry %1%2 --reason \"<why it may pass now>\"")
        .arg(id)
        .arg(configDir.isEmpty() ? QString() : QStringLiteral(" --config ") + configDir);
}

} // namespace

int runSubmit(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    parser.addOption({QStringLiteral("project"), QStringLiteral("Project id."), QStringLiteral("ID")});
    parser.addOption({QStringLiteral("title"), QStringLiteral("One-line title."), QStringLiteral("TEXT")});
    parser.addOption({QStringLiteral("description"), QStringLiteral("What to do."), QStringLiteral("TEXT")});
    parser.addOption({QStringLiteral("description-file"), QStringLiteral("Read the description from a file."), QStringLiteral("FILE")});
    parser.addOption({QStringLiteral("branch"), QStringLiteral("Branch of the task (default: sluice/<title slug>)."), QStringLiteral("NAME")});
    if (!parse(parser, arguments, QStringLiteral("Create a task by hand in a project's first stage and queue its first job.")))
        return UsageError;
    if (!parser.isSet(QStringLiteral("project")) || !parser.isSet(QStringLiteral("title"))) {
        printErr(QStringLiteral("sluice submit: --project and --title are required"));
        return UsageError;
    }
    QString description = parser.value(QStringLiteral("description"));
    if (parser.isSet(QStringLiteral("description-file"))) {
        QFile f(parser.value(QStringLiteral("description-file")));
        if (!f.open(QIODevice::ReadOnly)) {
            printErr(QStringLiteral("sluice submit: cannot read %1: %2").arg(f.fileName(), f.errorString()));
            return Failure;
        }
        description = QString::fromUtf8(f.readAll());
    }
    auto host = openHost(parser.value(QStringLiteral("config")), true);
    if (!host)
        return Failure;
    auto id = host->engine().submit(parser.value(QStringLiteral("project")), parser.value(QStringLiteral("title")), description,
                                     parser.value(QStringLiteral("branch")), QStringLiteral("cli:submit"));
    if (!id) {
        printErr(QStringLiteral("sluice submit: %1").arg(id.error().toString()));
        return Failure;
    }
    if (parser.isSet(QStringLiteral("json")))
        printJson(QJsonDocument(QJsonObject{{QStringLiteral("task"), *id}}));
    else
        printOut(QStringLiteral("task %1 submitted").arg(*id));
    return Success;
}

// The nodes as `status` and `queue` show them: one line each, the silent ones first to the eye.
QStringList nodeLines(const QJsonArray &nodes)
{
    QStringList lines{QStringLiteral("%1 %2 %3 %4 %5 %6").arg(QStringLiteral("NODE"), -16).arg(QStringLiteral("HOST"), -16)
                          .arg(QStringLiteral("PID"), -8).arg(QStringLiteral("STATE"), -11).arg(QStringLiteral("HEARTBEAT"), -12)
                          .arg(QStringLiteral("JOBS"))};
    for (const QJsonValue &v : nodes) {
        const QJsonObject n = v.toObject();
        QString line = QStringLiteral("%1 %2 %3 %4 %5 %6")
                           .arg(n.value(QLatin1String("name")).toString() + (n.value(QLatin1String("self")).toBool() ? QStringLiteral("*") : QString()), -16)
                           .arg(n.value(QLatin1String("host")).toString(), -16)
                           .arg(n.value(QLatin1String("pid")).toVariant().toLongLong(), -8)
                           .arg(n.value(QLatin1String("state")).toString(), -11)
                           .arg(QStringLiteral("%1 s ago").arg(n.value(QLatin1String("heartbeatAgeSeconds")).toDouble(), 0, 'f', 1), -12)
                           .arg(n.value(QLatin1String("runningJobs")).toInt());
        if (n.contains(QLatin1String("takenOverBy")))
            line += QStringLiteral("  taken over by %1 at %2").arg(n.value(QLatin1String("takenOverBy")).toString(),
                                                                n.value(QLatin1String("takenOverAt")).toString());
        lines << line;
    }
    return lines;
}

int runStatus(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    if (!parse(parser, arguments, QStringLiteral("Show every task: project, stage, status.")))
        return UsageError;
    auto host = openHost(parser.value(QStringLiteral("config")), false);
    if (!host)
        return Failure;
    auto report = statusReport(host->engine(), host->config());
    if (!report) {
        printErr(QStringLiteral("sluice status: %1").arg(report.error().toString()));
        return Failure;
    }
    if (parser.isSet(QStringLiteral("json"))) {
        printJson(QJsonDocument(*report));
        return Success;
    }
    QStringList lines{QStringLiteral("%1 %2 %3 %4 %5 %6").arg(QStringLiteral("TASK"), -6).arg(QStringLiteral("PROJECT"), -16)
                          .arg(QStringLiteral("STAGE"), -16).arg(QStringLiteral("STATUS"), -8).arg(QStringLiteral("RETRIES"), -8)
                          .arg(QStringLiteral("TITLE"))};
    for (const QJsonValue &v : report->value(QLatin1String("tasks")).toArray()) {
        const QJsonObject t = v.toObject();
        lines << QStringLiteral("%1 %2 %3 %4 %5 %6").arg(t.value(QLatin1String("id")).toVariant().toLongLong(), -6)
                     .arg(t.value(QLatin1String("project")).toString(), -16).arg(t.value(QLatin1String("stage")).toString(), -16)
                     .arg(t.value(QLatin1String("status")).toString(), -8).arg(t.value(QLatin1String("retries")).toInt(), -8)
                     .arg(t.value(QLatin1String("title")).toString());
    }
    lines << QString() << nodeLines(report->value(QLatin1String("nodes")).toArray());
    printOut(lines.join(QLatin1Char('\n')));
    return Success;
}

int runQueue(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    if (!parse(parser, arguments, QStringLiteral("Show the job queue: counts by state, running jobs, recent jobs.")))
        return UsageError;
    auto host = openHost(parser.value(QStringLiteral("config")), false);
    if (!host)
        return Failure;
    auto report = queueReport(host->engine(), host->config());
    if (!report) {
        printErr(QStringLiteral("sluice queue: %1").arg(report.error().toString()));
        return Failure;
    }
    if (parser.isSet(QStringLiteral("json"))) {
        printJson(QJsonDocument(*report));
        return Success;
    }
    const QJsonObject counts = report->value(QLatin1String("counts")).toObject();
    QStringList lines{QStringLiteral("queued %1, running %2, done %3, failed %4")
                          .arg(counts.value(QLatin1String("queued")).toInt()).arg(counts.value(QLatin1String("running")).toInt())
                          .arg(counts.value(QLatin1String("done")).toInt()).arg(counts.value(QLatin1String("failed")).toInt())};
    for (const char *name : {"reaper", "reconciler"}) {
        for (const QJsonValue &v : report->value(QLatin1String(name)).toArray()) {
            const QJsonObject s = v.toObject();
            const QString last = s.value(QLatin1String("lastRun")).toString();
            QString line = QStringLiteral("%1 on %2: %3, every %4 s, last run %5")
                               .arg(QLatin1String(name), s.value(QLatin1String("node")).toString(),
                                    s.value(QLatin1String("enabled")).toBool() ? QStringLiteral("on") : QStringLiteral("off"))
                               .arg(s.value(QLatin1String("intervalSeconds")).toDouble())
                               .arg(last.isEmpty() ? QStringLiteral("never")
                                                   : last + (s.value(QLatin1String("lastRunOk")).toBool(true) ? QString() : QStringLiteral(" (failed)")));
            if (QLatin1String(name) == QLatin1String("reaper")) {
                line += QStringLiteral(", reaped %1, leases reclaimed %2")
                            .arg(s.value(QLatin1String("reapedTotal")).toVariant().toLongLong())
                            .arg(s.value(QLatin1String("leasesReclaimedTotal")).toVariant().toLongLong());
                const QJsonObject r = s.value(QLatin1String("lastReaped")).toObject();
                if (!r.isEmpty())
                    line += QStringLiteral("\n  last reaped: job %1 task %2 tier %3 -> %4 at %5: %6")
                                .arg(r.value(QLatin1String("job")).toVariant().toLongLong()).arg(r.value(QLatin1String("task")).toVariant().toLongLong())
                                .arg(r.value(QLatin1String("tier")).toInt())
                                .arg(r.value(QLatin1String("outcome")).toString(), r.value(QLatin1String("at")).toString(),
                                     r.value(QLatin1String("reason")).toString());
            } else {
                line += QStringLiteral(", acted %1").arg(s.value(QLatin1String("actedTotal")).toVariant().toLongLong());
                const QJsonObject a = s.value(QLatin1String("lastAction")).toObject();
                if (!a.isEmpty())
                    line += QStringLiteral("\n  last action: task %1 %2 at %3: %4")
                                .arg(a.value(QLatin1String("task")).toVariant().toLongLong())
                                .arg(a.value(QLatin1String("action")).toString(), a.value(QLatin1String("at")).toString(),
                                     a.value(QLatin1String("reason")).toString());
            }
            lines << line;
        }
    }
    lines << nodeLines(report->value(QLatin1String("nodes")).toArray());
    const QJsonArray leases = report->value(QLatin1String("leases")).toArray();
    lines << QStringLiteral("leases: %1").arg(leases.size());
    for (const QJsonValue &v : leases) {
        const QJsonObject l = v.toObject();
        lines << QStringLiteral("  %1 held by task %2 (node %3 pid %4) until %5")
                     .arg(l.value(QLatin1String("resource")).toString())
                     .arg(l.value(QLatin1String("task")).toVariant().toLongLong())
                     .arg(l.value(QLatin1String("node")).toString())
                     .arg(l.value(QLatin1String("pid")).toVariant().toLongLong())
                     .arg(l.value(QLatin1String("expiresAt")).toString());
    }
    for (const QJsonValue &v : report->value(QLatin1String("leaseWaiters")).toArray()) {
        const QJsonObject w = v.toObject();
        lines << QStringLiteral("  %1 waited for by task %2 since %3 (last asked %4)")
                     .arg(w.value(QLatin1String("resource")).toString())
                     .arg(w.value(QLatin1String("task")).toVariant().toLongLong())
                     .arg(w.value(QLatin1String("firstAsked")).toString(), w.value(QLatin1String("lastAsked")).toString());
    }
    for (const char *section : {"running", "recent"}) {
        lines << QStringLiteral("%1:").arg(QLatin1String(section));
        for (const QJsonValue &v : report->value(QLatin1String(section)).toArray()) {
            const QJsonObject j = v.toObject();
            lines << QStringLiteral("  job %1 task %2 %3/%4 %5 attempt %6/%7 node %8 %9")
                         .arg(j.value(QLatin1String("id")).toVariant().toLongLong()).arg(j.value(QLatin1String("task")).toVariant().toLongLong())
                         .arg(j.value(QLatin1String("project")).toString(), j.value(QLatin1String("stage")).toString(),
                              j.value(QLatin1String("status")).toString())
                         .arg(j.value(QLatin1String("attempts")).toInt()).arg(j.value(QLatin1String("maxAttempts")).toInt())
                         .arg(j.value(QLatin1String("node")).toString(), j.value(QLatin1String("lastError")).toString());
        }
    }
    printOut(lines.join(QLatin1Char('\n')));
    return Success;
}

int runTask(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    parser.addPositionalArgument(QStringLiteral("id"), QStringLiteral("Task id."));
    if (!parse(parser, arguments, QStringLiteral("Show one task: its stage, why it is waiting, every gate verdict with its reason, its history.")))
        return UsageError;
    bool ok = false;
    const qint64 id = parser.positionalArguments().value(0).toLongLong(&ok);
    if (!ok) {
        printErr(QStringLiteral("sluice task: give a task id"));
        return UsageError;
    }
    auto host = openHost(parser.value(QStringLiteral("config")), false);
    if (!host)
        return Failure;
    auto report = taskReport(host->engine(), id);
    if (!report) {
        printErr(QStringLiteral("sluice task: %1").arg(report.error().toString()));
        return Failure;
    }
    const bool blocked = report->value(QLatin1String("status")).toString() == QLatin1String("blocked");
    if (blocked)
        report->insert(QStringLiteral("retryCommand"), retryCommand(id, parser.value(QStringLiteral("config"))));
    if (parser.isSet(QStringLiteral("json"))) {
        printJson(QJsonDocument(*report));
        return Success;
    }
    const QJsonObject &t = *report;
    QStringList lines;
    lines << QStringLiteral("task %1: %2").arg(id).arg(t.value(QLatin1String("title")).toString())
          << QStringLiteral("project %1, branch %2").arg(t.value(QLatin1String("project")).toString(), t.value(QLatin1String("branch")).toString())
          << QStringLiteral("stage %1, %2, %3 rollback(s)").arg(t.value(QLatin1String("stage")).toString(), t.value(QLatin1String("status")).toString())
                 .arg(t.value(QLatin1String("retries")).toInt())
          << headLine(t)
          << QStringLiteral("why: %1").arg(t.value(QLatin1String("waiting")).toString());
    if (blocked)
        lines << QStringLiteral("to retry it from stage %1 once the cause is fixed: %2")
                     .arg(t.value(QLatin1String("stage")).toString(), t.value(QLatin1String("retryCommand")).toString());
    lines << QStringLiteral("verdicts:");
    for (const QJsonValue &v : t.value(QLatin1String("verdicts")).toArray()) {
        const QJsonObject g = v.toObject();
        lines << QStringLiteral("  %1  %2 %3  %4: %5 - %6").arg(when(g.value(QLatin1String("at")).toVariant().toLongLong()),
                                                               g.value(QLatin1String("stage")).toString(),
                                                               g.value(QLatin1String("toStage")).toString().isEmpty()
                                                                   ? QStringLiteral("(exit)")
                                                                   : QStringLiteral("-> ") + g.value(QLatin1String("toStage")).toString(),
                                                               g.value(QLatin1String("gate")).toString(),
                                                               g.value(QLatin1String("result")).toString(),
                                                               g.value(QLatin1String("reason")).toString());
    }
    lines << QStringLiteral("history:");
    for (const QJsonValue &v : t.value(QLatin1String("history")).toArray()) {
        const QJsonObject h = v.toObject();
        const QJsonObject d = h.value(QLatin1String("details")).toObject();
        QString summary;
        if (d.contains(QLatin1String("from")))
            summary = QStringLiteral("%1 -> %2").arg(d.value(QLatin1String("from")).toString(), d.value(QLatin1String("to")).toString());
        else if (d.contains(QLatin1String("stage")))
            summary = d.value(QLatin1String("stage")).toString();
        if (d.contains(QLatin1String("gate")))
            summary += QStringLiteral(" (gate %1)").arg(d.value(QLatin1String("gate")).toString());
        if (d.contains(QLatin1String("operator")))
            summary += QStringLiteral(" by %1:").arg(d.value(QLatin1String("operator")).toString());
        if (d.contains(QLatin1String("reason")))
            summary += QStringLiteral(" %1").arg(d.value(QLatin1String("reason")).toString());
        lines << QStringLiteral("  %1  %2 %3 %4")
                     .arg(when(h.value(QLatin1String("at")).toVariant().toLongLong()))
                     .arg(h.value(QLatin1String("actor")).toString(), -12)
                     .arg(h.value(QLatin1String("action")).toString(), -20)
                     .arg(summary);
    }
    printOut(lines.join(QLatin1Char('\n')));
    return Success;
}

int runApprove(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    parser.addOption({QStringLiteral("signal"), QStringLiteral("Signal to send (default: approve; e.g. confirm-deploy)."),
                      QStringLiteral("NAME"), QStringLiteral("approve")});
    parser.addPositionalArgument(QStringLiteral("task"), QStringLiteral("Task id."));
    parser.addPositionalArgument(QStringLiteral("stage"), QStringLiteral("The stage the task waits in."));
    if (!parse(parser, arguments,
               QStringLiteral("Send an explicit approval signal for a task waiting in a stage. A signal the stage does not "
                              "wait for, or for a stage the task is not in, changes nothing.")))
        return UsageError;
    bool ok = false;
    const qint64 id = parser.positionalArguments().value(0).toLongLong(&ok);
    const QString stage = parser.positionalArguments().value(1);
    if (!ok || stage.isEmpty()) {
        printErr(QStringLiteral("sluice approve: give a task id and a stage"));
        return UsageError;
    }
    auto host = openHost(parser.value(QStringLiteral("config")), true);
    if (!host)
        return Failure;
    const QString signalName = parser.value(QStringLiteral("signal"));
    auto result = host->engine().signal(id, stage, signalName, QStringLiteral("cli:approve"),
                                        QUuid::createUuid().toString(QUuid::WithoutBraces));
    if (!result) {
        printErr(QStringLiteral("sluice approve: %1").arg(result.error().toString()));
        return Failure;
    }
    QJsonObject out{{QStringLiteral("task"), id}, {QStringLiteral("signal"), signalName}};
    int code = Success;
    if (result->kind != SignalResult::Kind::Accepted) {
        out.insert(QStringLiteral("accepted"), false);
        out.insert(QStringLiteral("reason"), result->reason);
        code = Failure;
    } else {
        AdvanceRun *run = result->advance;
        QEventLoop loop;
        AdvanceRun::Outcome outcome = AdvanceRun::Outcome::Failed;
        QString detail;
        QObject::connect(run, &AdvanceRun::finished, &loop, [&](AdvanceRun *r) {
            outcome = r->outcome();
            detail = r->detail();
            loop.quit();
        });
        loop.exec();
        out.insert(QStringLiteral("accepted"), true);
        out.insert(QStringLiteral("outcome"), AdvanceRun::outcomeName(outcome));
        if (!detail.isEmpty())
            out.insert(QStringLiteral("detail"), detail);
        // Where the task is now, as the store has it: not the stage the move aimed at
        // (a blocked or lost move did not get there).
        auto after = host->engine().tasks().task(id);
        if (after && *after) {
            out.insert(QStringLiteral("stage"), (*after)->stage);
            out.insert(QStringLiteral("status"), (*after)->status);
        }
        code = outcome == AdvanceRun::Outcome::Failed ? Failure : Success;
    }
    if (parser.isSet(QStringLiteral("json"))) {
        printJson(QJsonDocument(out));
    } else if (!out.value(QLatin1String("accepted")).toBool()) {
        printOut(QStringLiteral("not accepted: %1").arg(out.value(QLatin1String("reason")).toString()));
    } else {
        const QString outcomeName = out.value(QLatin1String("outcome")).toString();
        const QString where = out.contains(QLatin1String("stage"))
            ? QStringLiteral("; task %1 is %2 in stage %3").arg(id).arg(out.value(QLatin1String("status")).toString(),
                                                                  out.value(QLatin1String("stage")).toString())
            : QString();
        const QString detailText = out.contains(QLatin1String("detail"))
            ? QStringLiteral(" (%1)").arg(out.value(QLatin1String("detail")).toString())
            : QString();
        printOut(QStringLiteral("accepted: %1%2%3").arg(outcomeName, detailText, where));
    }
    return code;
}

int runRetry(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(configOption());
    parser.addOption(jsonOption());
    parser.addOption({QStringLiteral("reason"), QStringLiteral("Why the stage may pass now (required; audited and sent with the notification)."),
                      QStringLiteral("TEXT")});
    parser.addPositionalArgument(QStringLiteral("task"), QStringLiteral("Id of a blocked task."));
    if (!parse(parser, arguments,
               QStringLiteral("Retry a blocked task from the stage it is blocked in: the task is active again and the stage's "
                              "job runs afresh (new attempts; its rollback count is kept). Works with or without a running "
                              "sluice serve: the job waits in the queue for the next worker.")))
        return UsageError;
    bool ok = false;
    const qint64 id = parser.positionalArguments().value(0).toLongLong(&ok);
    if (!ok || parser.positionalArguments().size() != 1) {
        printErr(QStringLiteral("sluice retry: give one task id"));
        return UsageError;
    }
    const QString reason = parser.value(QStringLiteral("reason")).trimmed();
    if (reason.isEmpty()) {
        printErr(QStringLiteral("sluice retry: --reason TEXT is required (it is audited)"));
        return UsageError;
    }
    auto host = openHost(parser.value(QStringLiteral("config")), true);
    if (!host)
        return Failure;
    const QString who = operatorName();
    auto retried = host->engine().retry(id, who, reason, QStringLiteral("cli:retry"));
    if (!retried) {
        printErr(QStringLiteral("sluice retry: %1").arg(retried.error().toString()));
        return Failure;
    }
    const QJsonObject out{{QStringLiteral("task"), id},
                          {QStringLiteral("stage"), retried->stage},
                          {QStringLiteral("job"), retried->jobId},
                          {QStringLiteral("operator"), who},
                          {QStringLiteral("reason"), reason}};
    if (parser.isSet(QStringLiteral("json")))
        printJson(QJsonDocument(out));
    else
        printOut(QStringLiteral("task %1 retried from stage %2: job %3 is queued (a running sluice serve takes it at its next "
                                "poll; otherwise the next start does)")
                     .arg(id).arg(retried->stage).arg(retried->jobId));
    return Success;
}

} // namespace Sluice::Cli
