// SPDX-License-Identifier: Apache-2.0
#include "healthwatch.h"

#include <sluice/services.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLoggingCategory>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QPointer>
#include <QSaveFile>
#include <QTimer>
#include <QUrl>

namespace Sluice::HealthWatch {

namespace {

using namespace std::chrono_literals;

constexpr QLatin1String Owner("health-watch");
// The report lists every probe up to this many; a longer watch lists the first ones and the failures.
constexpr int MaxReportRows = 500;

const QStringList &fixedVariableNames()
{
    static const QStringList names{
        QStringLiteral("SLUICE_TASK_ID"),   QStringLiteral("SLUICE_PROJECT"),   QStringLiteral("SLUICE_STAGE"),
        QStringLiteral("SLUICE_BRANCH"),    QStringLiteral("SLUICE_COMMIT"),    QStringLiteral("SLUICE_WORKTREE"),
        QStringLiteral("SLUICE_ARTIFACTS"), QStringLiteral("SLUICE_HEALTH_URL"), QStringLiteral("SLUICE_HEALTH_REPORT"),
        QStringLiteral("SLUICE_JOB_ID"),    QStringLiteral("SLUICE_ATTEMPT")};
    return names;
}

// A string in the report's YAML front matter, quoted.
QString yamlString(const QString &text)
{
    return QString::fromUtf8(QJsonDocument(QJsonObject{{QStringLiteral("v"), text}}).toJson(QJsonDocument::Compact)).mid(5).chopped(1);
}

QString offset(qint64 ms)
{
    return ms < 10000 ? QStringLiteral("+%1ms").arg(ms) : QStringLiteral("+%1s").arg(double(ms) / 1000.0, 0, 'f', 1);
}

struct Probe {
    int number = 0;
    qint64 atMs = 0;
    bool ok = false;
    QString result; // "HTTP 200", "no answer within 5s", "Connection refused"
};

class WatchRun final : public StageRun
{
public:
    WatchRun(WatchRule rule, StageRequest request, QString project, QString instance, const QLoggingCategory &logging,
             StateStore *state)
        : m_rule(std::move(rule))
        , m_request(std::move(request))
        , m_project(std::move(project))
        , m_instance(std::move(instance))
        , m_logging(logging)
        , m_state(state)
    {
        m_next.setSingleShot(true);
        connect(&m_next, &QTimer::timeout, this, [this] { probe(); });
    }

    ~WatchRun() override
    {
        abortProbe();
    }

protected:
    void doStart() override;
    void doCancel() override;

private:
    enum class Health { Watching, Healthy, Degraded };

    [[nodiscard]] QString stateKey() const { return QStringLiteral("degraded/job/%1").arg(m_request.job); }
    void probe();
    void onProbeFinished(QNetworkReply *reply);
    void abortProbe();
    void degrade();
    void runRollback();
    void onRollbackEnded(const Processes::ProcessEnding &ending);
    void conclude();
    void finishFailed(const QString &summary);
    [[nodiscard]] QString counts() const;
    [[nodiscard]] QString actionTaken() const;
    [[nodiscard]] Result<void> writeReport(const QString &summary) const;
    void recordDegradation(const QString &summary);

    WatchRule m_rule;
    StageRequest m_request;
    QString m_project;
    QString m_instance;
    const QLoggingCategory &m_logging;
    StateStore *m_state = nullptr;

    QHash<QString, QString> m_values;
    QUrl m_url;
    QString m_reportPath;
    QString m_rollbackLog;
    QNetworkAccessManager m_network;
    QPointer<QNetworkReply> m_reply;
    bool m_probeTimedOut = false;
    QTimer m_next;
    QElapsedTimer m_clock;
    qint64 m_watchedMs = 0;
    QList<Probe> m_probes;
    int m_ok = 0;
    int m_failed = 0;
    QString m_firstFailure;
    Health m_health = Health::Watching;
    std::unique_ptr<Processes::SupervisedProcess> m_process;
    QString m_programName;
    bool m_rollbackRan = false;
    std::optional<int> m_rollbackExit;
    QString m_rollbackResult; // "'rollback.sh' exited with code 0"
};

void WatchRun::finishFailed(const QString &summary)
{
    qCWarning(m_logging).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage << "failed:" << summary;
    StageOutcome outcome;
    outcome.status = StageOutcome::Status::Failed;
    outcome.summary = summary;
    finishWith(outcome);
}

void WatchRun::doStart()
{
    m_values = {
        {QStringLiteral("task"), QString::number(m_request.task.id)},
        {QStringLiteral("branch"), m_request.task.branch},
        {QStringLiteral("commit"), m_request.task.headSha},
        {QStringLiteral("project"), m_project},
        {QStringLiteral("stage"), m_request.stage},
        {QStringLiteral("artifacts"), m_request.artifactsDir},
        {QStringLiteral("worktree"), m_request.worktree},
        {QStringLiteral("job"), QString::number(m_request.job)},
        {QStringLiteral("attempt"), QString::number(m_request.attempt)},
    };

    // A retry of a job that already saw a degradation replays it: watching again could see
    // the rolled-back (healthy) service and let a bad change through, or roll back twice.
    if (m_state) {
        auto recorded = m_state->value(stateKey());
        if (!recorded)
            return finishFailed(QStringLiteral("cannot read the health record of job %1: %2").arg(m_request.job).arg(recorded.error().message));
        if (recorded->has_value()) {
            const QJsonObject o = QJsonDocument::fromJson(**recorded).object();
            return finishFailed(QStringLiteral("DEGRADED, recorded by attempt %1 of job %2 (not watching or rolling back again): %3")
                                    .arg(o.value(QStringLiteral("attempt")).toInt())
                                    .arg(m_request.job)
                                    .arg(o.value(QStringLiteral("summary")).toString()));
        }
    }

    m_url = QUrl(Processes::expandPlaceholders(m_rule.url, m_values), QUrl::StrictMode);
    if (!m_url.isValid() || (m_url.scheme() != QLatin1String("http") && m_url.scheme() != QLatin1String("https")) || m_url.host().isEmpty())
        return finishFailed(QStringLiteral("cannot watch: '%1' is not an http(s) URL").arg(m_url.toString()));
    const QString report = Processes::expandPlaceholders(m_rule.report, m_values);
    if (QDir::isRelativePath(report) && m_request.artifactsDir.isEmpty())
        return finishFailed(QStringLiteral("cannot watch: the report '%1' is relative and the request has no artifacts directory").arg(report));
    m_reportPath = QDir::cleanPath(QDir(m_request.artifactsDir).filePath(report));
    qCInfo(m_logging).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage << "watching"
                                << m_url.toString() << "for" << Processes::describeDuration(m_rule.window) << "every"
                                << Processes::describeDuration(m_rule.interval);
    m_clock.start();
    probe();
}

void WatchRun::doCancel()
{
    m_next.stop();
    abortProbe();
    if (m_process) {
        m_process->stop(); // ended() concludes
        return;
    }
    finishFailed(QStringLiteral("cancelled after %1").arg(counts()));
}

void WatchRun::abortProbe()
{
    if (!m_reply)
        return;
    QNetworkReply *reply = m_reply;
    m_reply.clear();
    disconnect(reply, nullptr, this, nullptr);
    reply->abort();
    reply->deleteLater();
}

void WatchRun::probe()
{
    if (isFinished() || m_health != Health::Watching)
        return;
    const qint64 now = m_clock.elapsed();
    if (now >= m_rule.window.count()) {
        m_watchedMs = now;
        m_health = Health::Healthy;
        return conclude();
    }
    Probe p;
    p.number = int(m_probes.size()) + 1;
    p.atMs = now;
    m_probes.append(p);
    QNetworkRequest request(m_url);
    request.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::NoLessSafeRedirectPolicy);
    request.setAttribute(QNetworkRequest::CacheLoadControlAttribute, QNetworkRequest::AlwaysNetwork);
    request.setRawHeader("User-Agent", "sluice-health-watch");
    QNetworkReply *reply = m_network.get(request);
    m_reply = reply;
    m_probeTimedOut = false;
    // The whole probe, not only a silence, must fit in probe_timeout.
    auto *deadline = new QTimer(reply);
    deadline->setSingleShot(true);
    connect(deadline, &QTimer::timeout, reply, [this, reply] {
        m_probeTimedOut = true;
        reply->abort();
    });
    deadline->start(int(m_rule.probeTimeout.count()));
    connect(reply, &QNetworkReply::finished, this, [this, reply] { onProbeFinished(reply); });
}

void WatchRun::onProbeFinished(QNetworkReply *reply)
{
    reply->deleteLater();
    if (m_reply == reply)
        m_reply.clear();
    Probe &p = m_probes.last();
    const QVariant status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    if (m_probeTimedOut) {
        p.result = QStringLiteral("no answer within %1").arg(Processes::describeDuration(m_rule.probeTimeout));
    } else if (status.isValid()) {
        p.result = QStringLiteral("HTTP %1").arg(status.toInt());
        p.ok = m_rule.expectedStatus.contains(status.toInt());
    } else if (reply->error() == QNetworkReply::OperationCanceledError) {
        p.result = QStringLiteral("no answer within %1").arg(Processes::describeDuration(m_rule.probeTimeout));
    } else {
        p.result = reply->errorString();
    }
    if (p.ok) {
        ++m_ok;
    } else {
        ++m_failed;
        if (m_firstFailure.isEmpty())
            m_firstFailure = QStringLiteral("probe %1 at %2: %3").arg(p.number).arg(offset(p.atMs)).arg(p.result);
        qCWarning(m_logging).noquote() << m_instance << "task" << m_request.task.id << "probe" << p.number << "of" << m_url.toString()
                                       << "failed:" << p.result;
        if (m_failed > m_rule.maxFailures) {
            m_watchedMs = m_clock.elapsed();
            return degrade();
        }
    }
    const qint64 nextSlot = qint64(m_probes.size()) * m_rule.interval.count();
    const qint64 now = m_clock.elapsed();
    if (nextSlot >= m_rule.window.count()) {
        // No probe starts after the window: wait for its end, then conclude.
        m_next.start(int(std::max<qint64>(0, m_rule.window.count() - now)));
        return;
    }
    m_next.start(int(std::max<qint64>(0, nextSlot - now)));
}

QString WatchRun::counts() const
{
    return QStringLiteral("%1 probe(s) of %2 over %3, %4 ok, %5 failed")
        .arg(m_probes.size())
        .arg(m_url.toString(), Processes::describeDuration(std::chrono::milliseconds(m_watchedMs ? m_watchedMs : (m_clock.isValid() ? m_clock.elapsed() : 0))))
        .arg(m_ok)
        .arg(m_failed);
}

QString WatchRun::actionTaken() const
{
    if (m_health != Health::Degraded)
        return QStringLiteral("NONE");
    if (!m_rollbackRan)
        return QStringLiteral("ALERT");
    return m_rollbackExit == 0 ? QStringLiteral("ROLLBACK") : QStringLiteral("ROLLBACK_FAILED");
}

void WatchRun::recordDegradation(const QString &summary)
{
    if (!m_state)
        return;
    const QJsonObject record{{QStringLiteral("attempt"), m_request.attempt},
                             {QStringLiteral("summary"), summary},
                             {QStringLiteral("action"), actionTaken()}};
    if (auto ok = m_state->setValue(stateKey(), QJsonDocument(record).toJson(QJsonDocument::Compact)); !ok)
        qCWarning(m_logging).noquote() << m_instance << "task" << m_request.task.id << "cannot record the degradation:" << ok.error().message;
}

void WatchRun::degrade()
{
    m_health = Health::Degraded;
    m_next.stop();
    // Recorded before the rollback runs, so a crash during it never leads to a second one.
    recordDegradation(QStringLiteral("%1; first failure: %2%3")
                          .arg(counts(), m_firstFailure, m_rule.rollsBack() ? QStringLiteral("; rollback started") : QString()));
    if (m_rule.rollsBack())
        return runRollback();
    conclude();
}

void WatchRun::runRollback()
{
    m_rollbackRan = true;
    Processes::EnvironmentList extra;
    for (const auto &[name, value] : std::as_const(m_rule.environment))
        extra.append({name, Processes::expandPlaceholders(value, m_values)});
    const Processes::EnvironmentList fixed{
        {QStringLiteral("SLUICE_TASK_ID"), m_values.value(QStringLiteral("task"))},
        {QStringLiteral("SLUICE_PROJECT"), m_project},
        {QStringLiteral("SLUICE_STAGE"), m_request.stage},
        {QStringLiteral("SLUICE_BRANCH"), m_request.task.branch},
        {QStringLiteral("SLUICE_COMMIT"), m_request.task.headSha},
        {QStringLiteral("SLUICE_WORKTREE"), m_request.worktree},
        {QStringLiteral("SLUICE_ARTIFACTS"), m_request.artifactsDir},
        {QStringLiteral("SLUICE_HEALTH_URL"), m_url.toString()},
        {QStringLiteral("SLUICE_HEALTH_REPORT"), m_reportPath},
        {QStringLiteral("SLUICE_JOB_ID"), m_values.value(QStringLiteral("job"))},
        {QStringLiteral("SLUICE_ATTEMPT"), m_values.value(QStringLiteral("attempt"))},
    };
    const QProcessEnvironment environment = Processes::childEnvironment(m_rule.inheritEnvironment, extra, fixed);
    QStringList arguments;
    for (const QString &argument : std::as_const(m_rule.rollbackCommand))
        arguments.append(Processes::expandPlaceholders(argument, m_values));
    const QString program = arguments.takeFirst();
    m_programName = QFileInfo(program).fileName();
    const auto resolved = Processes::findProgram(program, environment);
    if (!resolved) {
        m_rollbackResult = QStringLiteral("cannot start '%1': not found in the command's PATH").arg(program);
        return conclude();
    }
    QString workingDirectory = m_request.worktree;
    if (workingDirectory.isEmpty() || !QFileInfo(workingDirectory).isDir())
        workingDirectory = m_request.artifactsDir;
    if (workingDirectory.isEmpty() || !QFileInfo(workingDirectory).isDir()) {
        m_rollbackResult = QStringLiteral("cannot start '%1': the request has neither a worktree nor an artifacts directory").arg(m_programName);
        return conclude();
    }
    m_rollbackLog = QDir(m_request.artifactsDir.isEmpty() ? workingDirectory : m_request.artifactsDir)
                        .filePath(QStringLiteral("%1-rollback-job%2-attempt%3.log").arg(m_request.stage).arg(m_request.job).arg(m_request.attempt));
    Processes::ProcessSpec spec;
    spec.program = *resolved;
    spec.arguments = arguments;
    spec.workingDirectory = workingDirectory;
    spec.environment = environment;
    spec.outputFile = m_rollbackLog;
    spec.timeout = m_rule.rollbackTimeout;
    spec.killGrace = m_rule.rollbackKillGrace;
    spec.detachOnDestroy = false;
    m_process = std::make_unique<Processes::SupervisedProcess>(std::move(spec));
    connect(m_process.get(), &Processes::SupervisedProcess::started, this, [this](qint64 pid, quint64) {
        qCWarning(m_logging).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage
                                       << "service DEGRADED; rolling back with" << m_programName << "pid" << pid;
    });
    connect(m_process.get(), &Processes::SupervisedProcess::ended, this, &WatchRun::onRollbackEnded);
    m_process->start();
}

void WatchRun::onRollbackEnded(const Processes::ProcessEnding &ending)
{
    using Processes::ProcessEnding;
    const QString name = QStringLiteral("'%1'").arg(m_programName);
    if (ending.how == ProcessEnding::How::Exited)
        m_rollbackExit = ending.exitCode;
    if (ending.stoppedFor == ProcessEnding::Stop::Deadline)
        m_rollbackResult = QStringLiteral("%1 timed out after %2").arg(name, Processes::describeDuration(m_rule.rollbackTimeout));
    else if (ending.stoppedFor == ProcessEnding::Stop::Cancel)
        m_rollbackResult = QStringLiteral("%1 was cancelled").arg(name);
    else if (ending.how == ProcessEnding::How::NotStarted)
        m_rollbackResult = QStringLiteral("cannot start %1: %2").arg(name, ending.startError);
    else if (ending.how == ProcessEnding::How::Signalled)
        m_rollbackResult = QStringLiteral("%1 was killed by %2").arg(name, Processes::describeSignal(ending.signal));
    else
        m_rollbackResult = QStringLiteral("%1 exited with code %2").arg(name).arg(ending.exitCode);
    if (ending.stoppedFor != ProcessEnding::Stop::None || ending.how != ProcessEnding::How::Exited)
        m_rollbackExit.reset();
    conclude();
}

void WatchRun::conclude()
{
    if (isFinished())
        return;
    QString summary;
    StageOutcome outcome;
    if (m_health == Health::Healthy) {
        summary = QStringLiteral("HEALTHY: %1").arg(counts());
        if (!m_firstFailure.isEmpty())
            summary += QStringLiteral(" (tolerated, max_failures %1; first failure: %2)").arg(m_rule.maxFailures).arg(m_firstFailure);
        outcome.status = StageOutcome::Status::Completed;
    } else {
        summary = QStringLiteral("DEGRADED: %1 (max_failures %2); first failure: %3; ").arg(counts()).arg(m_rule.maxFailures).arg(m_firstFailure);
        if (m_rollbackRan)
            summary += (m_rollbackExit == 0 ? QStringLiteral("rolled back: ") : QStringLiteral("rollback failed: ")) + m_rollbackResult;
        else if (m_rule.self)
            summary += QStringLiteral("alert only (self: the service's own deployment is never rolled back)");
        else
            summary += QStringLiteral("alert only (mode alert)");
        outcome.status = StageOutcome::Status::Failed;
        outcome.exitCode = m_rollbackExit;
        recordDegradation(summary);
    }
    if (auto written = writeReport(summary); !written)
        summary += QStringLiteral(" (report not written: %1)").arg(written.error().message);
    outcome.summary = summary;
    outcome.logPath = m_rollbackRan && !m_rollbackLog.isEmpty() ? m_rollbackLog : m_reportPath;
    if (outcome.status == StageOutcome::Status::Completed)
        qCInfo(m_logging).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage << summary;
    else
        qCWarning(m_logging).noquote() << m_instance << "task" << m_request.task.id << "stage" << m_request.stage << summary;
    finishWith(outcome);
}

Result<void> WatchRun::writeReport(const QString &summary) const
{
    const QString status = m_health == Health::Healthy ? QStringLiteral("HEALTHY") : QStringLiteral("DEGRADED");
    QString text;
    text += QStringLiteral("---\n");
    text += QStringLiteral("health_status: %1\n").arg(status);
    text += QStringLiteral("action_taken: %1\n").arg(actionTaken());
    text += QStringLiteral("mode: %1\n").arg(m_rule.mode == WatchRule::Mode::Rollback ? QStringLiteral("rollback") : QStringLiteral("alert"));
    text += QStringLiteral("self: %1\n").arg(m_rule.self ? QStringLiteral("true") : QStringLiteral("false"));
    text += QStringLiteral("url: %1\n").arg(yamlString(m_url.toString()));
    text += QStringLiteral("window_ms: %1\ninterval_ms: %2\nprobe_timeout_ms: %3\nwatched_ms: %4\n")
                .arg(m_rule.window.count()).arg(m_rule.interval.count()).arg(m_rule.probeTimeout.count()).arg(m_watchedMs);
    text += QStringLiteral("probes: %1\nok: %2\nfailed: %3\nmax_failures: %4\n").arg(m_probes.size()).arg(m_ok).arg(m_failed).arg(m_rule.maxFailures);
    text += QStringLiteral("first_failure: %1\n").arg(m_firstFailure.isEmpty() ? QStringLiteral("null") : yamlString(m_firstFailure));
    text += QStringLiteral("rollback_exit_code: %1\n").arg(m_rollbackExit ? QString::number(*m_rollbackExit) : QStringLiteral("null"));
    if (m_rollbackRan)
        text += QStringLiteral("rollback: %1\nrollback_log: %2\n").arg(yamlString(m_rollbackResult), yamlString(m_rollbackLog));
    text += QStringLiteral("task: %1\nstage: %2\njob: %3\nattempt: %4\n").arg(m_request.task.id).arg(yamlString(m_request.stage)).arg(m_request.job).arg(m_request.attempt);
    text += QStringLiteral("---\n\n# Health watch: %1\n\n%2\n\n| probe | at | result |\n|---|---|---|\n").arg(status, summary);
    int rows = 0;
    for (const Probe &p : m_probes) {
        if (rows >= MaxReportRows && p.ok)
            continue;
        text += QStringLiteral("| %1 | %2 | %3%4 |\n").arg(p.number).arg(offset(p.atMs), p.result.isEmpty() ? QStringLiteral("(cancelled)") : p.result,
                                                              p.ok ? QString() : QStringLiteral(" (failed)"));
        ++rows;
    }
    QDir().mkpath(QFileInfo(m_reportPath).absolutePath());
    QSaveFile file(m_reportPath);
    if (!file.open(QIODevice::WriteOnly))
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1: %2").arg(m_reportPath, file.errorString()));
    file.write(text.toUtf8());
    if (!file.commit())
        return fail(ErrorCode::Io, QStringLiteral("cannot write %1: %2").arg(m_reportPath, file.errorString()));
    return {};
}

} // namespace

Result<WatchRule> WatchRule::fromSettings(const QVariantMap &settings)
{
    WatchRule rule;
    auto invalid = [](const QString &message) { return fail(ErrorCode::InvalidConfig, QStringLiteral("health-watch: ") + message); };
    rule.url = settings.value(QStringLiteral("url")).toString().trimmed();
    if (rule.url.isEmpty())
        return invalid(QStringLiteral("'url' is empty"));
    if (!rule.url.contains(QLatin1Char('{'))) {
        const QUrl url(rule.url, QUrl::StrictMode);
        if (!url.isValid() || (url.scheme() != QLatin1String("http") && url.scheme() != QLatin1String("https")) || url.host().isEmpty())
            return invalid(QStringLiteral("'url' must be an http(s) URL, not '%1'").arg(rule.url));
    }
    auto duration = [&](const char *key, std::chrono::milliseconds minimum, std::chrono::milliseconds maximum) {
        return Processes::durationSetting(settings, QString::fromLatin1(key), Owner, minimum, maximum);
    };
    auto interval = duration("interval", 10ms, 1h);
    auto window = duration("window", 10ms, 24h);
    auto probeTimeout = duration("probe_timeout", 10ms, 5min);
    auto rollbackTimeout = duration("rollback_timeout", 1s, 24h);
    auto killGrace = duration("rollback_kill_grace", 0ms, 1h);
    for (const auto *d : {&interval, &window, &probeTimeout, &rollbackTimeout, &killGrace}) {
        if (!*d)
            return std::unexpected(d->error());
    }
    rule.interval = *interval;
    rule.window = *window;
    rule.probeTimeout = *probeTimeout;
    rule.rollbackTimeout = *rollbackTimeout;
    rule.rollbackKillGrace = *killGrace;
    for (const QVariant &v : settings.value(QStringLiteral("expected_status")).toList()) {
        const qlonglong code = v.toLongLong();
        if (code < 100 || code > 599)
            return invalid(QStringLiteral("'expected_status' holds %1, not an HTTP status code").arg(code));
        rule.expectedStatus.append(int(code));
    }
    if (rule.expectedStatus.isEmpty())
        return invalid(QStringLiteral("'expected_status' is empty"));
    rule.maxFailures = int(settings.value(QStringLiteral("max_failures")).toLongLong());
    rule.mode = settings.value(QStringLiteral("mode")).toString() == QLatin1String("rollback") ? Mode::Rollback : Mode::Alert;
    rule.self = settings.value(QStringLiteral("self")).toBool();
    auto command = Processes::stringListSetting(settings, QStringLiteral("rollback_command"), Owner);
    if (!command)
        return std::unexpected(command.error());
    rule.rollbackCommand = *command;
    if (!rule.rollbackCommand.isEmpty() && rule.rollbackCommand.first().trimmed().isEmpty())
        return invalid(QStringLiteral("'rollback_command' needs a program as its first item"));
    if (rule.mode == Mode::Rollback && !rule.self && rule.rollbackCommand.isEmpty())
        return invalid(QStringLiteral("mode rollback needs 'rollback_command'"));
    auto environment = Processes::environmentSettings(settings, Owner, fixedVariableNames());
    if (!environment)
        return std::unexpected(environment.error());
    rule.environment = environment->environment;
    rule.inheritEnvironment = environment->inherit;
    rule.report = settings.value(QStringLiteral("report")).toString().trimmed();
    if (rule.report.isEmpty())
        return invalid(QStringLiteral("'report' is empty"));
    return rule;
}

HealthWatchStage::HealthWatchStage(const PluginContext &context, WatchRule rule, QObject *parent)
    : Stage(context, parent)
    , m_rule(std::move(rule))
{
}

std::unique_ptr<StageRun> HealthWatchStage::run(const StageRequest &request)
{
    const QString project = request.task.projectId.isEmpty() ? context().project().id : request.task.projectId;
    return std::make_unique<WatchRun>(m_rule, request, project, context().instanceName(), context().logging(), context().state());
}

Result<std::unique_ptr<PluginInstance>> HealthWatchStageFactory::create(const PluginContext &context)
{
    auto rule = WatchRule::fromSettings(context.settings());
    if (!rule)
        return std::unexpected(rule.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<HealthWatchStage>(context, std::move(*rule)));
}

} // namespace Sluice::HealthWatch
