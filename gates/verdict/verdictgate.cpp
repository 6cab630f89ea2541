// SPDX-License-Identifier: Apache-2.0
#include "verdictgate.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonObject>
#include <QRegularExpression>

#include <yaml-cpp/yaml.h>

#include <exception>
#include <expected>
#include <string>

namespace Sluice {
namespace Gates {

namespace {

// Artifacts are short review notes; anything bigger is not one, and reading it unbounded
// would let a worktree exhaust the host's memory.
constexpr qint64 MaxArtifactBytes = 1024 * 1024;
// A pattern matching more files than this is a mistake, not a set of reviews.
constexpr int MaxArtifactFiles = 64;
// Of the prose below a failing artifact's front matter (the reviewer's findings), this much
// in all is handed on to the agent's next task; the file holds the rest.
constexpr int MaxFeedbackChars = 16 * 1024;

const QLatin1String FindingRule("verdict");

bool hasWildcard(const QString &text)
{
    return text.contains(QLatin1Char('*')) || text.contains(QLatin1Char('?'))
           || text.contains(QLatin1Char('['));
}

// Path components of a relative pattern without empty and "." parts.
QStringList pathComponents(const QString &pattern)
{
    QStringList parts;
    const QStringList raw = pattern.split(QLatin1Char('/'));
    for (const QString &part : raw) {
        if (!part.isEmpty() && part != QLatin1String("."))
            parts.append(part);
    }
    return parts;
}

// Null when the pattern is a safe relative file pattern; otherwise why it is not.
QString patternProblem(const QString &pattern)
{
    if (pattern.trimmed().isEmpty())
        return QStringLiteral("is empty");
    if (pattern.startsWith(QLatin1Char('/')))
        return QStringLiteral("'%1' is absolute; give a path relative to the worktree").arg(pattern);
    if (pattern.endsWith(QLatin1Char('/')))
        return QStringLiteral("'%1' names a directory, not a file").arg(pattern);
    const QStringList parts = pathComponents(pattern);
    if (parts.isEmpty())
        return QStringLiteral("'%1' names no file").arg(pattern);
    for (int i = 0; i < parts.size(); ++i) {
        if (parts.at(i) == QLatin1String(".."))
            return QStringLiteral("'%1' leaves the worktree through '..'").arg(pattern);
        if (i + 1 < parts.size() && hasWildcard(parts.at(i)))
            return QStringLiteral("'%1' has wildcards in a directory; only the file name may have them")
                .arg(pattern);
    }
    return {};
}

const QRegularExpression &placeholderPattern()
{
    static const QRegularExpression re(QStringLiteral("\\{([^{}]*)\\}"));
    return re;
}

// Placeholder values become path components, so they must be plain names.
const QRegularExpression &plainNamePattern()
{
    static const QRegularExpression re(QStringLiteral("^[A-Za-z0-9][A-Za-z0-9._-]*$"));
    return re;
}

QRegularExpression globExpression(const QString &glob)
{
    return QRegularExpression(QRegularExpression::anchoredPattern(
        QRegularExpression::wildcardToRegularExpression(glob)));
}

Result<QStringList> stringListSetting(const QVariantMap &settings, const QString &name)
{
    const QVariant value = settings.value(name);
    QStringList out;
    if (value.userType() == QMetaType::QStringList) {
        out = value.toStringList();
    } else if (value.userType() == QMetaType::QVariantList) {
        const QVariantList items = value.toList();
        for (const QVariant &item : items) {
            if (item.userType() != QMetaType::QString)
                return fail(ErrorCode::InvalidConfig,
                            QStringLiteral("verdict setting '%1' must be a list of strings").arg(name));
            out.append(item.toString());
        }
    } else {
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("verdict setting '%1' is missing or not a list of strings").arg(name));
    }
    for (QString &item : out) {
        item = item.trimmed();
        if (item.isEmpty())
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("verdict setting '%1' has an empty value").arg(name));
    }
    return out;
}

struct ArtifactFile {
    QString relative; // as shown to people: relative to the worktree
    QString absolute;
};

struct FoundValue {
    QString text;
    int line = 0;
};

// What one artifact said: the values under the key, or why it could not say anything, and
// the prose below its front matter.
struct ArtifactReading {
    QString file;
    QList<FoundValue> values;
    QList<Finding> problems;
    QString body;
};

Finding blocking(const QString &file, int line, const QString &message)
{
    Finding finding;
    finding.rule = FindingRule;
    finding.file = file;
    finding.line = line;
    finding.message = message;
    finding.severity = QStringLiteral("blocking");
    return finding;
}

struct FrontMatter {
    std::string yaml;
    int firstLine = 2; // file line of the first YAML line
    QByteArray body;   // everything after the closing line
};

// The YAML between the opening "---" line and the next "---" or "..." line.
std::expected<FrontMatter, Finding> extractFrontMatter(QByteArray content, const QString &file)
{
    if (content.startsWith("\xEF\xBB\xBF"))
        content.remove(0, 3);
    const QList<QByteArray> lines = content.split('\n');
    auto bare = [](QByteArray line) {
        while (!line.isEmpty() && (line.endsWith('\r') || line.endsWith(' ') || line.endsWith('\t')))
            line.chop(1);
        return line;
    };
    if (lines.isEmpty() || bare(lines.first()) != "---")
        return std::unexpected(blocking(file, 1,
            QStringLiteral("has no YAML front matter (the first line must be '---')")));
    std::string yaml;
    for (int i = 1; i < lines.size(); ++i) {
        const QByteArray line = bare(lines.at(i));
        if (line == "---" || line == "...")
            return FrontMatter{yaml, 2, lines.mid(i + 1).join('\n')};
        QByteArray text = lines.at(i);
        if (text.endsWith('\r'))
            text.chop(1);
        yaml.append(text.constData(), std::size_t(text.size()));
        yaml.push_back('\n');
    }
    return std::unexpected(blocking(file, 1,
        QStringLiteral("front matter is not closed (no '---' or '...' line after the opening '---')")));
}

// Collects every occurrence of the key at the top of the front matter. Duplicate keys are
// kept by yaml-cpp and iterated here on purpose: a second "verdict:" must not hide.
void collectValues(const FrontMatter &frontMatter, const QString &key, ArtifactReading &reading)
{
    const QString &file = reading.file;
    auto lineOf = [&](const YAML::Node &node) {
        const YAML::Mark mark = node.Mark();
        return mark.is_null() ? 0 : mark.line + frontMatter.firstLine;
    };
    try {
        const YAML::Node root = YAML::Load(frontMatter.yaml);
        if (!root.IsDefined() || root.IsNull()) {
            reading.problems.append(blocking(file, 1,
                QStringLiteral("front matter is empty: key '%1' is missing").arg(key)));
            return;
        }
        if (!root.IsMap()) {
            reading.problems.append(blocking(file, lineOf(root),
                QStringLiteral("front matter is not a mapping of keys, so key '%1' is missing").arg(key)));
            return;
        }
        bool found = false;
        for (auto it = root.begin(); it != root.end(); ++it) {
            const YAML::Node name = it->first;
            if (!name.IsScalar() || QString::fromStdString(name.Scalar()) != key)
                continue;
            found = true;
            const YAML::Node value = it->second;
            const int line = value.Mark().is_null() ? lineOf(name) : lineOf(value);
            auto addScalar = [&](const YAML::Node &node, int at) {
                const QString text = QString::fromStdString(node.Scalar()).trimmed();
                if (text.isEmpty())
                    reading.problems.append(blocking(file, at,
                        QStringLiteral("key '%1' has an empty value").arg(key)));
                else
                    reading.values.append({text, at});
            };
            if (value.IsScalar()) {
                addScalar(value, line);
            } else if (value.IsSequence()) {
                if (value.size() == 0)
                    reading.problems.append(blocking(file, line,
                        QStringLiteral("key '%1' is an empty list").arg(key)));
                for (const YAML::Node &item : value) {
                    const int itemLine = item.Mark().is_null() ? line : lineOf(item);
                    if (item.IsScalar())
                        addScalar(item, itemLine);
                    else
                        reading.problems.append(blocking(file, itemLine,
                            QStringLiteral("key '%1' lists something that is not a single value").arg(key)));
                }
            } else if (value.IsMap()) {
                reading.problems.append(blocking(file, line,
                    QStringLiteral("key '%1' holds a mapping, not a value or a list of values").arg(key)));
            } else {
                reading.problems.append(blocking(file, lineOf(name),
                    QStringLiteral("key '%1' has no value").arg(key)));
            }
        }
        if (!found)
            reading.problems.append(blocking(file, 1,
                QStringLiteral("key '%1' is missing from the front matter").arg(key)));
    } catch (const YAML::Exception &e) {
        const int line = e.mark.is_null() ? 0 : e.mark.line + frontMatter.firstLine;
        reading.problems.append(blocking(file, line,
            QStringLiteral("front matter is not valid YAML%1: %2 (key '%3' cannot be read)")
                .arg(line > 0 ? QStringLiteral(" at line %1").arg(line) : QString(),
                     QString::fromStdString(e.msg), key)));
    }
}

bool isInside(const QString &canonicalPath, const QString &canonicalRoot)
{
    const QString prefix = canonicalRoot.endsWith(QLatin1Char('/'))
                               ? canonicalRoot
                               : canonicalRoot + QLatin1Char('/');
    return canonicalPath.startsWith(prefix);
}

ArtifactReading readArtifact(const ArtifactFile &artifact, const QString &canonicalRoot,
                             const QString &key)
{
    ArtifactReading reading;
    reading.file = artifact.relative;
    auto refuse = [&](const QString &message) {
        reading.problems.append(blocking(artifact.relative, 0,
            QStringLiteral("%1, so key '%2' cannot be read").arg(message, key)));
        return reading;
    };

    const QFileInfo info(artifact.absolute);
    if (!info.exists() && !info.isSymLink())
        return refuse(QStringLiteral("is missing"));
    const QString canonical = info.canonicalFilePath();
    if (canonical.isEmpty())
        return refuse(QStringLiteral("is a symbolic link that leads nowhere"));
    if (!isInside(canonical, canonicalRoot))
        return refuse(QStringLiteral("resolves outside the worktree"));
    const QFileInfo real(canonical);
    if (!real.isFile())
        return refuse(QStringLiteral("is not a regular file"));
    if (real.size() > MaxArtifactBytes)
        return refuse(QStringLiteral("is %1 bytes, more than the %2 bytes an artifact may have")
                          .arg(real.size())
                          .arg(MaxArtifactBytes));

    QFile file(canonical);
    if (!file.open(QIODevice::ReadOnly))
        return refuse(QStringLiteral("cannot be read (%1)").arg(file.errorString()));
    // Read one byte past the limit: the file may have grown since it was measured.
    const QByteArray content = file.read(MaxArtifactBytes + 1);
    if (content.size() > MaxArtifactBytes)
        return refuse(QStringLiteral("is more than the %1 bytes an artifact may have").arg(MaxArtifactBytes));
    if (file.error() != QFileDevice::NoError)
        return refuse(QStringLiteral("cannot be read (%1)").arg(file.errorString()));

    auto frontMatter = extractFrontMatter(content, artifact.relative);
    if (!frontMatter) {
        Finding finding = frontMatter.error();
        finding.message = QStringLiteral("%1, so key '%2' is missing").arg(finding.message, key);
        reading.problems.append(finding);
        return reading;
    }
    collectValues(*frontMatter, key, reading);
    reading.body = QString::fromUtf8(frontMatter->body).trimmed();
    return reading;
}

// The expanded pattern, or why the request cannot be judged with it.
std::expected<QString, QString> expandPattern(const QString &pattern, const GateRequest &request)
{
    QString expanded = pattern;
    if (expanded.contains(QLatin1String("{stage}"))) {
        if (!plainNamePattern().match(request.fromStage).hasMatch())
            return std::unexpected(QStringLiteral("stage name '%1' cannot be used in the artifact path '%2'")
                                       .arg(request.fromStage, pattern));
        expanded.replace(QLatin1String("{stage}"), request.fromStage);
    }
    if (expanded.contains(QLatin1String("{task}"))) {
        if (request.task.id <= 0)
            return std::unexpected(QStringLiteral("the request carries no task id for the artifact path '%1'")
                                       .arg(pattern));
        expanded.replace(QLatin1String("{task}"), QString::number(request.task.id));
    }
    if (const QString problem = patternProblem(expanded); !problem.isNull())
        return std::unexpected(QStringLiteral("artifact path %1").arg(problem));
    return expanded;
}

// The files the expanded pattern names. A plain name is one file whether it exists or not;
// a wildcard name is every matching directory entry, dot files only for a dot pattern.
QList<ArtifactFile> matchArtifacts(const QString &expanded, const QString &worktree)
{
    const QStringList parts = pathComponents(expanded);
    const QString name = parts.last();
    const QString dirRelative = QStringList(parts.mid(0, parts.size() - 1)).join(QLatin1Char('/'));
    const QString dirAbsolute = dirRelative.isEmpty() ? worktree
                                                       : worktree + QLatin1Char('/') + dirRelative;
    auto relativeOf = [&](const QString &fileName) {
        return dirRelative.isEmpty() ? fileName : dirRelative + QLatin1Char('/') + fileName;
    };
    if (!hasWildcard(name))
        return {ArtifactFile{relativeOf(name), dirAbsolute + QLatin1Char('/') + name}};

    const QRegularExpression glob = globExpression(name);
    const bool dotFiles = name.startsWith(QLatin1Char('.'));
    QList<ArtifactFile> files;
    const QStringList entries = QDir(dirAbsolute).entryList(
        QDir::Files | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot, QDir::Name);
    for (const QString &entry : entries) {
        if (entry.startsWith(QLatin1Char('.')) && !dotFiles)
            continue;
        if (glob.match(entry).hasMatch())
            files.append({relativeOf(entry), dirAbsolute + QLatin1Char('/') + entry});
    }
    return files;
}

QString joinReasons(const QList<Finding> &findings)
{
    constexpr int shown = 5;
    QStringList parts;
    for (int i = 0; i < findings.size() && i < shown; ++i) {
        const Finding &f = findings.at(i);
        parts.append(f.line > 0 ? QStringLiteral("%1:%2: %3").arg(f.file).arg(f.line).arg(f.message)
                                : QStringLiteral("%1: %2").arg(f.file, f.message));
    }
    if (findings.size() > shown)
        parts.append(QStringLiteral("and %1 more").arg(findings.size() - shown));
    return parts.join(QStringLiteral("; "));
}

GateVerdict judgeArtifacts(const VerdictRule &rule, const GateRequest &request)
{
    if (request.worktree.isEmpty())
        return GateVerdict::error(QStringLiteral("no worktree given, so artifact '%1' cannot be read")
                                      .arg(rule.artifact));
    if (QDir::isRelativePath(request.worktree))
        return GateVerdict::error(QStringLiteral("worktree '%1' is not an absolute path").arg(request.worktree));
    const QFileInfo worktreeInfo(request.worktree);
    const QString canonicalRoot = worktreeInfo.canonicalFilePath();
    if (canonicalRoot.isEmpty() || !worktreeInfo.isDir())
        return GateVerdict::error(QStringLiteral("worktree '%1' does not exist").arg(request.worktree));

    const auto expanded = expandPattern(rule.artifact, request);
    if (!expanded)
        return GateVerdict::error(expanded.error());

    QJsonObject evidence{{QStringLiteral("artifact"), *expanded}, {QStringLiteral("key"), rule.key}};
    const QList<ArtifactFile> files = matchArtifacts(*expanded, QDir::cleanPath(request.worktree));
    if (files.isEmpty()) {
        const Finding finding = blocking(*expanded, 0,
            QStringLiteral("no file matches, so key '%1' is missing").arg(rule.key));
        return GateVerdict::fail(joinReasons({finding}), {finding}, evidence);
    }
    if (files.size() > MaxArtifactFiles) {
        const Finding finding = blocking(*expanded, 0,
            QStringLiteral("matches %1 files, more than the %2 the gate reads (key '%3')")
                .arg(files.size())
                .arg(MaxArtifactFiles)
                .arg(rule.key));
        return GateVerdict::fail(joinReasons({finding}), {finding}, evidence);
    }

    // A failing value is authoritative, so its findings come first in the reason.
    QList<Finding> failing;
    QList<Finding> other;
    QJsonArray filesEvidence;
    QJsonArray allValues;
    QStringList passedSummary;
    // The prose of each artifact that did not pass, for the agent's next task (the engine
    // copies evidence "feedback" into it after a rollback).
    QJsonArray feedback;
    int feedbackRoom = MaxFeedbackChars;
    for (const ArtifactFile &file : files) {
        const ArtifactReading reading = readArtifact(file, canonicalRoot, rule.key);
        const qsizetype findingsBefore = failing.size() + other.size();
        other.append(reading.problems);
        QJsonArray values;
        QStringList texts;
        for (const FoundValue &value : reading.values) {
            values.append(value.text);
            allValues.append(value.text);
            texts.append(value.text);
            if (rule.failValues.contains(value.text, rule.valueCase)) {
                failing.append(blocking(reading.file, value.line,
                    QStringLiteral("key '%1' is '%2', a failing value").arg(rule.key, value.text)));
            } else if (!rule.passValues.contains(value.text, rule.valueCase)) {
                other.append(blocking(reading.file, value.line,
                    QStringLiteral("key '%1' has the unknown value '%2' (passing: %3; failing: %4)")
                        .arg(rule.key, value.text, rule.passValues.join(QStringLiteral(", ")),
                             rule.failValues.join(QStringLiteral(", ")))));
            }
        }
        if (failing.size() + other.size() > findingsBefore && !reading.body.isEmpty()) {
            QString text = reading.body;
            const bool cut = text.size() > feedbackRoom;
            if (cut) {
                const qsizetype at = text.lastIndexOf(QLatin1Char('\n'), feedbackRoom);
                text = text.left(at > feedbackRoom / 2 ? at : feedbackRoom);
            }
            feedbackRoom = cut ? 0 : feedbackRoom - int(text.size());
            feedback.append(QJsonObject{{QStringLiteral("file"), reading.file}, {QStringLiteral("text"), text},
                                        {QStringLiteral("cut"), cut}, {QStringLiteral("chars"), int(reading.body.size())}});
        }
        QJsonObject fileEvidence{{QStringLiteral("file"), reading.file}, {QStringLiteral("values"), values}};
        if (!reading.problems.isEmpty())
            fileEvidence.insert(QStringLiteral("problems"), int(reading.problems.size()));
        filesEvidence.append(fileEvidence);
        passedSummary.append(QStringLiteral("%1: %2 %3").arg(reading.file, rule.key, texts.join(QStringLiteral(", "))));
    }
    evidence.insert(QStringLiteral("files"), filesEvidence);
    evidence.insert(QStringLiteral("values"), allValues);
    if (!feedback.isEmpty())
        evidence.insert(QStringLiteral("feedback"), feedback);

    const QList<Finding> findings = failing + other;
    if (!findings.isEmpty())
        return GateVerdict::fail(joinReasons(findings), findings, evidence);
    return GateVerdict::pass(passedSummary.join(QStringLiteral("; ")), evidence);
}

} // namespace

Result<VerdictRule> VerdictRule::fromSettings(const QVariantMap &settings)
{
    VerdictRule rule;
    const QVariant artifact = settings.value(QStringLiteral("artifact"));
    if (artifact.userType() != QMetaType::QString)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("verdict setting 'artifact' is required"));
    rule.artifact = artifact.toString().trimmed();
    if (const QString problem = patternProblem(rule.artifact); !problem.isNull())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("verdict setting 'artifact' %1").arg(problem));
    auto placeholders = placeholderPattern().globalMatch(rule.artifact);
    while (placeholders.hasNext()) {
        const QString name = placeholders.next().captured(1);
        if (name != QLatin1String("stage") && name != QLatin1String("task"))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("verdict setting 'artifact' has the unknown placeholder {%1}; "
                                       "known are {stage} and {task}").arg(name));
    }
    const QString fileName = pathComponents(rule.artifact).last();
    if (hasWildcard(fileName) && !globExpression(fileName).isValid())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("verdict setting 'artifact' has a malformed wildcard in '%1'").arg(fileName));

    const QVariant key = settings.value(QStringLiteral("key"));
    if (key.userType() != QMetaType::QString || key.toString().trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("verdict setting 'key' is missing or empty"));
    rule.key = key.toString().trimmed();

    const QVariant caseSensitive = settings.value(QStringLiteral("case_sensitive"));
    if (caseSensitive.userType() != QMetaType::Bool)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("verdict setting 'case_sensitive' is missing or not a boolean"));
    rule.valueCase = caseSensitive.toBool() ? Qt::CaseSensitive : Qt::CaseInsensitive;

    auto passValues = stringListSetting(settings, QStringLiteral("pass"));
    if (!passValues)
        return std::unexpected(passValues.error());
    auto failValues = stringListSetting(settings, QStringLiteral("fail"));
    if (!failValues)
        return std::unexpected(failValues.error());
    if (passValues->isEmpty())
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("verdict setting 'pass' is empty, so nothing could ever pass"));
    for (const QString &value : std::as_const(*passValues)) {
        if (failValues->contains(value, rule.valueCase))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("verdict settings 'pass' and 'fail' both list '%1'").arg(value));
    }
    rule.passValues = *passValues;
    rule.failValues = *failValues;
    return rule;
}

VerdictGate::VerdictGate(const PluginContext &context, VerdictRule rule, QObject *parent)
    : Gate(context, parent)
    , m_rule(std::move(rule))
{
}

VerdictGate::~VerdictGate() = default;

std::unique_ptr<GateRun> VerdictGate::evaluate(const GateRequest &request)
{
    qCDebug(context().logging()) << "task" << request.task.id << "leaving" << request.fromStage
                                 << "reads" << m_rule.artifact << "key" << m_rule.key;
    // The work runs on the pool and may outlive this gate, so it owns copies of everything
    // and logs nothing; the verdict is logged here when it comes back.
    auto run = std::make_unique<ConcurrentGateRun>([rule = m_rule, request]() -> GateVerdict {
        try {
            return judgeArtifacts(rule, request);
        } catch (const std::exception &e) {
            return GateVerdict::error(QStringLiteral("verdict gate failed internally: %1")
                                          .arg(QString::fromLocal8Bit(e.what())));
        } catch (...) {
            return GateVerdict::error(QStringLiteral("verdict gate failed internally"));
        }
    });
    const qint64 taskId = request.task.id;
    connect(run.get(), &PluginJob::finished, this, [this, taskId](PluginJob *job) {
        const GateVerdict &verdict = static_cast<GateRun *>(job)->verdict();
        const QString result = GateVerdict::resultName(verdict.result()) + QLatin1Char(':');
        if (verdict.result() == GateVerdict::Result::Error)
            qCWarning(context().logging()).noquote() << "task" << taskId << result << verdict.reason();
        else
            qCInfo(context().logging()).noquote() << "task" << taskId << result << verdict.reason();
    });
    return run;
}

Result<std::unique_ptr<PluginInstance>> VerdictGate::create(const PluginContext &context)
{
    auto rule = VerdictRule::fromSettings(context.settings());
    if (!rule)
        return std::unexpected(rule.error());
    return std::make_unique<VerdictGate>(context, std::move(*rule));
}

} // namespace Gates
} // namespace Sluice
