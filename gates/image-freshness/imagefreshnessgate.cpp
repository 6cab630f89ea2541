// SPDX-License-Identifier: Apache-2.0
#include "imagefreshnessgate.h"

#include "layoutstore.h"
#include "registrystore.h"
#include "supervisedprocess.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QTimer>
#include <QLoggingCategory>
#include <QRegularExpression>

namespace Sluice::ImageFreshness {

namespace {

// An image reference file is one line; anything bigger is not one.
constexpr qint64 MaxArtifactBytes = 64 * 1024;
constexpr qint64 MaxSkopeoBytes = 8 * 1024 * 1024;

QString readFromName(FreshnessRule::ReadFrom from)
{
    switch (from) {
    case FreshnessRule::ReadFrom::Registry: return QStringLiteral("registry");
    case FreshnessRule::ReadFrom::OciLayout: return QStringLiteral("oci-layout");
    case FreshnessRule::ReadFrom::SkopeoJson: return QStringLiteral("skopeo-json");
    }
    return QString();
}

bool looksLikeUrl(const QString &text)
{
    static const QRegularExpression scp(QStringLiteral("^[^/\\s]+@[^/:\\s]+:.+$"));
    return text.contains(QLatin1String("://")) || scp.match(text).hasMatch();
}

// Everything one evaluation needs, expanded from the rule and the request.
struct Evaluation {
    FreshnessRule rule;
    Expectation expected;
    QString image;         // expanded
    QString imageArtifact; // absolute, or empty
    QString layout;        // absolute, or empty
    QString skopeoOutput;  // absolute, or empty
    QHash<QString, QString> values; // the placeholders
    QString artifactsDir;
    QJsonObject evidence;
};

QString inArtifacts(const QString &path, const QString &artifactsDir)
{
    if (path.isEmpty() || QDir::isAbsolutePath(path))
        return QDir::cleanPath(path);
    return QDir::cleanPath(QDir(artifactsDir).filePath(path));
}

Result<Evaluation> prepare(const FreshnessRule &rule, const GateRequest &request, const QString &projectId)
{
    Evaluation e;
    e.rule = rule;
    e.expected = Expectation{request.task.headSha.trimmed(), rule.expectedSource};
    e.evidence.insert(QStringLiteral("readFrom"), readFromName(rule.readFrom));
    e.evidence.insert(QStringLiteral("platformWanted"), rule.platform.toString());
    e.evidence.insert(QStringLiteral("expected"), QJsonObject{{QStringLiteral("revision"), e.expected.revision},
                                                              {QStringLiteral("source"), e.expected.source},
                                                              {QStringLiteral("sourceNormalised"), normaliseSourceUrl(e.expected.source)}});
    if (e.expected.revision.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("the task has no head commit to compare the image's revision label with"));
    QString branchTag = request.task.branch;
    branchTag.replace(QRegularExpression(QStringLiteral("[^A-Za-z0-9_.-]")), QStringLiteral("-"));
    const QHash<QString, QString> values{
        {QStringLiteral("commit"), e.expected.revision},
        {QStringLiteral("short_commit"), e.expected.revision.left(7)},
        {QStringLiteral("branch"), request.task.branch},
        {QStringLiteral("branch_tag"), branchTag.left(128)},
        {QStringLiteral("task"), QString::number(request.task.id)},
        {QStringLiteral("project"), request.task.projectId.isEmpty() ? projectId : request.task.projectId},
        {QStringLiteral("stage"), request.fromStage},
    };
    auto expand = [&](const QString &text) { return Processes::expandPlaceholders(text, values); };
    e.values = values;
    e.artifactsDir = request.artifactsDir;
    e.image = expand(rule.image);
    e.imageArtifact = rule.imageArtifact.isEmpty() ? QString() : inArtifacts(expand(rule.imageArtifact), request.artifactsDir);
    e.layout = rule.layout.isEmpty() ? QString() : inArtifacts(expand(rule.layout), request.artifactsDir);
    e.skopeoOutput = rule.skopeoOutput.isEmpty() ? QString() : inArtifacts(expand(rule.skopeoOutput), request.artifactsDir);
    if (!e.imageArtifact.isEmpty())
        e.evidence.insert(QStringLiteral("imageArtifact"), e.imageArtifact);
    if (!e.layout.isEmpty())
        e.evidence.insert(QStringLiteral("layout"), e.layout);
    if (!e.skopeoOutput.isEmpty())
        e.evidence.insert(QStringLiteral("skopeoOutput"), e.skopeoOutput);
    if ((!e.imageArtifact.isEmpty() || !e.layout.isEmpty() || !e.skopeoOutput.isEmpty()) && request.artifactsDir.isEmpty()
        && (QDir::isRelativePath(expand(rule.imageArtifact)) || QDir::isRelativePath(expand(rule.layout)) || QDir::isRelativePath(expand(rule.skopeoOutput))))
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a relative artifact path is configured and the request has no artifacts directory"));
    return e;
}

/// Reads the image the deploy-staging stage recorded (a small local file).
Result<QString> readImageArtifact(const QString &path)
{
    QFile file(path);
    if (!file.exists())
        return fail(ErrorCode::NotFound, QStringLiteral("the image artifact %1 does not exist").arg(path));
    if (file.size() > MaxArtifactBytes)
        return fail(ErrorCode::Malformed, QStringLiteral("the image artifact %1 is larger than %2 bytes").arg(path).arg(MaxArtifactBytes));
    if (!file.open(QIODevice::ReadOnly))
        return fail(ErrorCode::Io, QStringLiteral("cannot read the image artifact %1: %2").arg(path, file.errorString()));
    const QStringList lines = QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'));
    for (const QString &line : lines) {
        const QString t = line.trimmed();
        if (!t.isEmpty() && !t.startsWith(QLatin1Char('#')))
            return t;
    }
    return fail(ErrorCode::Malformed, QStringLiteral("the image artifact %1 names no image").arg(path));
}

Result<QString> imageOf(Evaluation &e)
{
    if (e.imageArtifact.isEmpty())
        return e.image;
    auto image = readImageArtifact(e.imageArtifact);
    if (image)
        e.image = *image;
    return image;
}

GateVerdict errorVerdict(const Evaluation &e, const QString &image, const Error &error)
{
    QJsonObject evidence = e.evidence;
    if (!image.isEmpty())
        evidence.insert(QStringLiteral("image"), image);
    evidence.insert(QStringLiteral("error"), errorCodeName(error.code));
    const QString what = image.isEmpty() ? QStringLiteral("the image") : QStringLiteral("image %1").arg(image);
    return GateVerdict::error(QStringLiteral("cannot read the labels of %1: %2").arg(what, error.message), evidence);
}

// oci-layout and skopeo-json: file work, on the thread pool.
GateVerdict judgeFromFiles(Evaluation e)
{
    auto image = imageOf(e);
    if (!image)
        return errorVerdict(e, QString(), image.error());
    if (e.rule.readFrom == FreshnessRule::ReadFrom::SkopeoJson) {
        QFile file(e.skopeoOutput);
        if (!file.exists())
            return errorVerdict(e, e.skopeoOutput, Error{ErrorCode::NotFound, QStringLiteral("%1 does not exist").arg(e.skopeoOutput), {}});
        if (file.size() > MaxSkopeoBytes || !file.open(QIODevice::ReadOnly))
            return errorVerdict(e, e.skopeoOutput, Error{ErrorCode::Io, QStringLiteral("cannot read %1 (or larger than %2 bytes)").arg(e.skopeoOutput).arg(MaxSkopeoBytes), {}});
        auto labels = parseSkopeoInspect(file.readAll(), e.skopeoOutput, e.rule.platform);
        if (!labels)
            return errorVerdict(e, e.skopeoOutput, labels.error());
        return judgeLabels(*labels, e.expected, e.evidence);
    }
    LayoutStore store(e.layout);
    const QString shown = image->isEmpty() ? e.layout : e.layout + QLatin1Char(':') + *image;
    Result<ImageLabels> read = fail(ErrorCode::Unknown, QStringLiteral("the layout was not read"));
    readImageLabels(store, shown, *image, e.rule.platform, [&read](Result<ImageLabels> r) { read = std::move(r); });
    if (!read)
        return errorVerdict(e, shown, read.error());
    return judgeLabels(*read, e.expected, e.evidence);
}

class RegistryGateRun final : public GateRun
{
public:
    RegistryGateRun(Evaluation evaluation, const QLoggingCategory &logging)
        : m_evaluation(std::move(evaluation))
        , m_logging(logging)
    {
    }

protected:
    void doStart() override
    {
        Evaluation &e = m_evaluation;
        auto image = imageOf(e);
        if (!image)
            return finishWith(errorVerdict(e, QString(), image.error()));
        auto reference = ImageReference::parse(*image);
        if (!reference)
            return finishWith(errorVerdict(e, *image, reference.error()));
        RegistryOptions options;
        options.image = *reference;
        options.plainHttp = e.rule.plainHttp;
        options.timeout = e.rule.timeout;
        if (!e.rule.username.isEmpty()) {
            auto password = e.rule.password.read();
            if (!password)
                return finishWith(errorVerdict(e, *image, Error{password.error().code,
                                                                QStringLiteral("cannot read the registry password: %1").arg(password.error().message), {}}));
            options.basicCredentials = e.rule.username.toUtf8() + ':' + *password;
        }
        m_store = std::make_unique<RegistryStore>(options);
        e.evidence.insert(QStringLiteral("registry"), m_store->baseUrl().toString());
        const QString shown = reference->toString();
        qCDebug(m_logging).noquote() << "reading the labels of" << shown << "from" << m_store->baseUrl().toString();
        readImageLabels(*m_store, shown, reference->manifestReference(), e.rule.platform, [this, shown](Result<ImageLabels> read) {
            if (!read)
                return finishWith(errorVerdict(m_evaluation, shown, read.error()));
            finishWith(judgeLabels(*read, m_evaluation.expected, m_evaluation.evidence));
        });
    }

    void doCancel() override
    {
        if (m_store)
            m_store->abort();
        finishWith(GateVerdict::error(QStringLiteral("cancelled"), m_evaluation.evidence));
    }

private:
    Evaluation m_evaluation;
    const QLoggingCategory &m_logging;
    std::unique_ptr<RegistryStore> m_store;
};


// skopeo-json with skopeo_command: runs the command and judges its standard output.
class SkopeoGateRun final : public GateRun
{
public:
    explicit SkopeoGateRun(Evaluation evaluation)
        : m_evaluation(std::move(evaluation))
    {
        m_deadline.setSingleShot(true);
        connect(&m_deadline, &QTimer::timeout, this, [this] {
            m_timedOut = true;
            m_process.kill();
        });
    }

    ~SkopeoGateRun() override
    {
        m_process.disconnect(this);
        if (m_process.state() != QProcess::NotRunning) {
            m_process.kill();
            m_process.waitForFinished(1000);
        }
    }

protected:
    void doStart() override
    {
        Evaluation &e = m_evaluation;
        auto image = imageOf(e);
        if (!image)
            return finishWith(errorVerdict(e, QString(), image.error()));
        QHash<QString, QString> values = e.values;
        values.insert(QStringLiteral("image"), *image);
        QStringList arguments;
        for (const QString &argument : std::as_const(e.rule.skopeoCommand))
            arguments.append(Processes::expandPlaceholders(argument, values));
        const QString program = arguments.takeFirst();
        m_shown = (QStringList{program} + arguments).join(QLatin1Char(' '));
        e.evidence.insert(QStringLiteral("skopeoCommand"), m_shown);
        const QProcessEnvironment environment = Processes::childEnvironment(
            {QStringLiteral("PATH"), QStringLiteral("HOME"), QStringLiteral("LANG"), QStringLiteral("XDG_RUNTIME_DIR"),
             QStringLiteral("REGISTRY_AUTH_FILE"), QStringLiteral("DOCKER_CONFIG")},
            {}, {});
        const auto resolved = Processes::findProgram(program, environment);
        if (!resolved)
            return finishWith(errorVerdict(e, *image, Error{ErrorCode::NotFound, QStringLiteral("'%1' is not found in PATH").arg(program), {}}));
        m_process.setProgram(*resolved);
        m_process.setArguments(arguments);
        m_process.setProcessEnvironment(environment);
        if (!e.artifactsDir.isEmpty() && QFileInfo(e.artifactsDir).isDir())
            m_process.setWorkingDirectory(e.artifactsDir);
        connect(&m_process, &QProcess::readyReadStandardOutput, this, [this] {
            m_output += m_process.readAllStandardOutput();
            if (m_output.size() > MaxSkopeoBytes && !m_tooLarge) {
                m_tooLarge = true;
                m_process.kill();
            }
        });
        connect(&m_process, &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
            if (error == QProcess::FailedToStart)
                finishWith(errorVerdict(m_evaluation, m_shown, Error{ErrorCode::Io, QStringLiteral("cannot start: %1").arg(m_process.errorString()), {}}));
        });
        connect(&m_process, qOverload<int, QProcess::ExitStatus>(&QProcess::finished), this, [this, image = *image](int code, QProcess::ExitStatus status) {
            m_deadline.stop();
            m_output += m_process.readAllStandardOutput();
            const Evaluation &ev = m_evaluation;
            if (m_timedOut)
                return finishWith(errorVerdict(ev, m_shown, Error{ErrorCode::Timeout, QStringLiteral("no result within %1 ms").arg(ev.rule.timeout.count()), {}}));
            if (m_tooLarge)
                return finishWith(errorVerdict(ev, m_shown, Error{ErrorCode::Malformed, QStringLiteral("more than %1 bytes of output").arg(MaxSkopeoBytes), {}}));
            if (status != QProcess::NormalExit || code != 0) {
                const QString err = QString::fromUtf8(m_process.readAllStandardError().right(300)).simplified();
                return finishWith(errorVerdict(ev, m_shown, Error{ErrorCode::Network, status != QProcess::NormalExit ? QStringLiteral("it crashed")
                                                                                                                   : QStringLiteral("it exited with code %1%2").arg(code).arg(err.isEmpty() ? QString() : QStringLiteral(": ") + err), {}}));
            }
            auto labels = parseSkopeoInspect(m_output, m_shown, ev.rule.platform);
            if (!labels)
                return finishWith(errorVerdict(ev, m_shown, labels.error()));
            if (labels->image == m_shown)
                labels->image = image;
            finishWith(judgeLabels(*labels, ev.expected, ev.evidence));
        });
        m_deadline.start(int(e.rule.timeout.count()));
        m_process.start();
    }

    void doCancel() override
    {
        m_deadline.stop();
        m_process.kill();
        finishWith(GateVerdict::error(QStringLiteral("cancelled"), m_evaluation.evidence));
    }

private:
    Evaluation m_evaluation;
    QProcess m_process;
    QTimer m_deadline;
    QByteArray m_output;
    QString m_shown;
    bool m_timedOut = false;
    bool m_tooLarge = false;
};

} // namespace

Result<FreshnessRule> FreshnessRule::fromSettings(const QVariantMap &settings, const QString &projectRepository)
{
    FreshnessRule rule;
    const QString from = settings.value(QStringLiteral("read_from")).toString();
    rule.readFrom = from == QLatin1String("oci-layout") ? ReadFrom::OciLayout
        : from == QLatin1String("skopeo-json")          ? ReadFrom::SkopeoJson
                                                        : ReadFrom::Registry;
    rule.image = settings.value(QStringLiteral("image")).toString().trimmed();
    rule.imageArtifact = settings.value(QStringLiteral("image_artifact")).toString().trimmed();
    rule.layout = settings.value(QStringLiteral("layout")).toString().trimmed();
    rule.skopeoOutput = settings.value(QStringLiteral("skopeo_output")).toString().trimmed();
    rule.skopeoCommand = settings.value(QStringLiteral("skopeo_command")).toStringList();
    auto invalid = [](const QString &message) { return fail(ErrorCode::InvalidConfig, QStringLiteral("image-freshness: ") + message); };

    if (!rule.image.isEmpty() && !rule.imageArtifact.isEmpty())
        return invalid(QStringLiteral("give 'image' or 'image_artifact', not both"));
    switch (rule.readFrom) {
    case ReadFrom::Registry:
        if (rule.image.isEmpty() && rule.imageArtifact.isEmpty())
            return invalid(QStringLiteral("read_from registry needs 'image' or 'image_artifact'"));
        if (!rule.image.contains(QLatin1Char('{')) && !rule.image.isEmpty()) {
            if (auto ref = ImageReference::parse(rule.image); !ref)
                return invalid(ref.error().message);
        }
        break;
    case ReadFrom::OciLayout:
        if (rule.layout.isEmpty())
            return invalid(QStringLiteral("read_from oci-layout needs 'layout'"));
        break;
    case ReadFrom::SkopeoJson:
        if (rule.skopeoOutput.isEmpty() == rule.skopeoCommand.isEmpty())
            return invalid(QStringLiteral("read_from skopeo-json needs 'skopeo_output' or 'skopeo_command' (one of them)"));
        if (!rule.skopeoCommand.isEmpty() && rule.skopeoCommand.first().trimmed().isEmpty())
            return invalid(QStringLiteral("'skopeo_command' needs a program as its first item"));
        break;
    }

    rule.expectedSource = settings.value(QStringLiteral("expected_source")).toString().trimmed();
    if (rule.expectedSource.isEmpty()) {
        if (!looksLikeUrl(projectRepository))
            return invalid(QStringLiteral("'expected_source' is required: the project's repository '%1' is not a URL").arg(projectRepository));
        rule.expectedSource = projectRepository;
    }
    auto platform = Platform::parse(settings.value(QStringLiteral("platform")).toString());
    if (!platform)
        return invalid(platform.error().message);
    rule.platform = *platform;
    rule.plainHttp = settings.value(QStringLiteral("plain_http")).toBool();
    rule.username = settings.value(QStringLiteral("username")).toString();
    if (settings.contains(QStringLiteral("password")))
        rule.password = SecretRef::fromVariant(settings.value(QStringLiteral("password")));
    if (rule.username.isEmpty() != rule.password.isNull())
        return invalid(QStringLiteral("'username' and 'password' go together"));
    if (rule.username.contains(QLatin1Char(':')))
        return invalid(QStringLiteral("'username' must not contain ':'"));
    rule.timeout = std::chrono::milliseconds(settings.value(QStringLiteral("timeout")).toLongLong());
    return rule;
}

ImageFreshnessGate::ImageFreshnessGate(const PluginContext &context, FreshnessRule rule, QObject *parent)
    : Gate(context, parent)
    , m_rule(std::move(rule))
{
}

std::unique_ptr<GateRun> ImageFreshnessGate::evaluate(const GateRequest &request)
{
    auto evaluation = prepare(m_rule, request, context().project().id);
    if (!evaluation) {
        const GateVerdict verdict = GateVerdict::error(evaluation.error().message);
        return std::make_unique<ConcurrentGateRun>([verdict] { return verdict; });
    }
    if (m_rule.readFrom == FreshnessRule::ReadFrom::Registry)
        return std::make_unique<RegistryGateRun>(std::move(*evaluation), context().logging());
    if (m_rule.readFrom == FreshnessRule::ReadFrom::SkopeoJson && !m_rule.skopeoCommand.isEmpty())
        return std::make_unique<SkopeoGateRun>(std::move(*evaluation));
    return std::make_unique<ConcurrentGateRun>([e = std::move(*evaluation)] { return judgeFromFiles(e); });
}

Result<std::unique_ptr<PluginInstance>> ImageFreshnessGate::create(const PluginContext &context)
{
    auto rule = FreshnessRule::fromSettings(context.settings(), context.project().repository);
    if (!rule)
        return std::unexpected(rule.error());
    return std::unique_ptr<PluginInstance>(std::make_unique<ImageFreshnessGate>(context, std::move(*rule)));
}

} // namespace Sluice::ImageFreshness
