// SPDX-License-Identifier: Apache-2.0
#include "workflowcontexts.h"

#include <QFileInfo>
#include <QLocale>
#include <QRegularExpression>
#include <QSet>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>

namespace Sluice::Ci {

namespace {


struct Source {
    QString file;
    YAML::Node root;
};

QString text(const std::string &s)
{
    return QString::fromStdString(s);
}

// The value under @p key, or an undefined node: never a yaml-cpp exception, never an insert.
YAML::Node child(const YAML::Node &node, const std::string &key)
{
    if (!node.IsDefined() || !node.IsMap())
        return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node &map = node;
    const YAML::Node value = map[key];
    return value.IsDefined() ? value : YAML::Node(YAML::NodeType::Undefined);
}

std::unexpected<Error> errorAt(const QString &file, const YAML::Node &node, const QString &key, const QString &message)
{
    const int line = node.IsDefined() && node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
    return fail(ErrorCode::InvalidConfig,
                line > 0 ? QStringLiteral("%1:%2: %3: %4").arg(file).arg(line).arg(key, message)
                         : QStringLiteral("%1: %2: %3").arg(file, key, message));
}

Result<Source> load(const QByteArray &yaml, const QString &file)
{
    Source s;
    s.file = file;
    try {
        s.root = YAML::Load(yaml.toStdString());
    } catch (const YAML::Exception &e) {
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1:%2: not valid YAML: %3").arg(file).arg(e.mark.line + 1).arg(text(e.msg)));
    }
    if (!s.root.IsMap())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: a workflow is a YAML mapping").arg(file));
    if (!child(s.root, "jobs").IsMap())
        return errorAt(file, s.root, QStringLiteral("jobs"), QStringLiteral("missing or not a mapping"));
    return s;
}

// A plain scalar as the Actions expression engine sees it: numbers normalised (3.10 is 3.1).
QString scalarText(const YAML::Node &node)
{
    const QString raw = text(node.Scalar());
    if (node.Tag() != "?")
        return raw; // quoted: a string as written
    static const QRegularExpression integer(QStringLiteral("^[-+]?[0-9]+$"));
    static const QRegularExpression floating(QStringLiteral("^[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$"));
    if (integer.match(raw).hasMatch())
        return QString::number(raw.toLongLong());
    if (floating.match(raw).hasMatch())
        return QString::number(raw.toDouble(), 'g', QLocale::FloatingPointShortest);
    const QString lower = raw.toLower();
    if (lower == QLatin1String("true") || lower == QLatin1String("false"))
        return lower;
    if (lower == QLatin1String("null") || raw == QLatin1String("~"))
        return QString();
    return raw;
}

// A matrix value, copied out of yaml-cpp (whose nodes assign through to the document).
struct Value {
    enum class Kind { Null, Scalar, Sequence, Map };
    Kind kind = Kind::Null;
    QString scalar;
    QList<Value> items;
    QList<QPair<QString, Value>> entries;

    static Value from(const YAML::Node &node)
    {
        Value v;
        if (!node.IsDefined() || node.IsNull())
            return v;
        if (node.IsScalar()) {
            v.kind = Kind::Scalar;
            v.scalar = scalarText(node);
        } else if (node.IsSequence()) {
            v.kind = Kind::Sequence;
            for (const auto &item : node)
                v.items.append(from(item));
        } else if (node.IsMap()) {
            v.kind = Kind::Map;
            for (const auto &kv : node)
                v.entries.append({text(kv.first.Scalar()), from(kv.second)});
        }
        return v;
    }

    const Value *member(const QString &key) const
    {
        for (const auto &[k, val] : entries) {
            if (k == key)
                return &val;
        }
        return nullptr;
    }

    friend bool operator==(const Value &a, const Value &b)
    {
        if (a.kind != b.kind)
            return false;
        switch (a.kind) {
        case Kind::Null:
            return true;
        case Kind::Scalar:
            return a.scalar == b.scalar;
        case Kind::Sequence:
            return a.items == b.items;
        case Kind::Map:
            if (a.entries.size() != b.entries.size())
                return false;
            for (const auto &[k, val] : a.entries) {
                const Value *other = b.member(k);
                if (!other || !(*other == val))
                    return false;
            }
            return true;
        }
        return false;
    }
};

using Cell = QList<QPair<QString, Value>>;

// A value as a check name shows it.
QString valueText(const Value &v, Naming naming)
{
    switch (v.kind) {
    case Value::Kind::Null:
        return QString();
    case Value::Kind::Scalar:
        return v.scalar;
    case Value::Kind::Sequence: {
        QStringList parts;
        for (const Value &item : v.items)
            parts.append(valueText(item, naming));
        return QStringLiteral("[%1]").arg(parts.join(naming == Naming::Gitea ? QStringLiteral(" ") : QStringLiteral(", ")));
    }
    case Value::Kind::Map:
        break;
    }
    QList<QPair<QString, QString>> entries;
    for (const auto &[k, val] : v.entries)
        entries.append({k, valueText(val, naming)});
    QStringList parts;
    if (naming == Naming::Gitea) { // Go's fmt prints maps sorted by key
        std::sort(entries.begin(), entries.end());
        for (const auto &[k, val] : entries)
            parts.append(k + QLatin1Char(':') + val);
        return QStringLiteral("map[%1]").arg(parts.join(QLatin1Char(' ')));
    }
    for (const auto &[k, val] : entries)
        parts.append(k + QStringLiteral(": ") + val);
    return QStringLiteral("{%1}").arg(parts.join(QStringLiteral(", ")));
}

bool hasExpression(const YAML::Node &node)
{
    if (node.IsScalar())
        return text(node.Scalar()).contains(QLatin1String("${{"));
    for (const auto &item : node) {
        if (node.IsMap() ? hasExpression(item.second) : hasExpression(item))
            return true;
    }
    return false;
}

const Value *cellValue(const Cell &cell, const QString &key)
{
    for (const auto &[k, v] : cell) {
        if (k == key)
            return &v;
    }
    return nullptr;
}

struct Matrix {
    QList<Cell> cells;
    QStringList keyOrder; // matrix keys, then include-added keys as they appear
    bool present = false;
};

// GitHub's expansion: the product of the keys, minus excludes, then includes merged into
// every original cell they do not contradict, or added as new cells.
Result<Matrix> expandMatrix(const Source &src, const QString &jobId, const YAML::Node &job)
{
    Matrix m;
    const YAML::Node strategy = child(job, "strategy");
    if (!strategy.IsDefined() || !child(strategy, "matrix").IsDefined())
        return m;
    m.present = true;
    const YAML::Node matrix = child(strategy, "matrix");
    const QString key = QStringLiteral("jobs.%1.strategy.matrix").arg(jobId);
    if (!matrix.IsMap() || hasExpression(matrix))
        return errorAt(src.file, matrix, key, QStringLiteral("is not static (it uses an expression); list the names of job '%1' in job_names").arg(jobId));
    QList<QPair<QString, QList<Value>>> axes;
    for (const auto &kv : matrix) {
        const QString name = text(kv.first.Scalar());
        if (name == QLatin1String("include") || name == QLatin1String("exclude"))
            continue;
        if (!kv.second.IsSequence())
            return errorAt(src.file, kv.second, key + QLatin1Char('.') + name, QStringLiteral("is not a list"));
        QList<Value> values;
        for (const auto &item : kv.second)
            values.append(Value::from(item));
        axes.append({name, values});
        m.keyOrder.append(name);
    }
    QList<Cell> cells;
    if (!axes.isEmpty()) {
        cells.append(Cell());
        for (const auto &[name, values] : axes) {
            QList<Cell> next;
            for (const Cell &c : std::as_const(cells)) {
                for (const Value &v : values) {
                    Cell extended = c;
                    extended.append({name, v});
                    next.append(extended);
                }
            }
            cells = next;
        }
    }
    if (const YAML::Node exclude = child(matrix, "exclude"); exclude.IsDefined()) {
        if (!exclude.IsSequence())
            return errorAt(src.file, exclude, key + QStringLiteral(".exclude"), QStringLiteral("is not a list"));
        for (const auto &entry : exclude) {
            if (!entry.IsMap())
                return errorAt(src.file, entry, key + QStringLiteral(".exclude"), QStringLiteral("an entry is not a mapping"));
            cells.erase(std::remove_if(cells.begin(), cells.end(), [&](const Cell &c) {
                for (const auto &kv : entry) {
                    const Value *v = cellValue(c, text(kv.first.Scalar()));
                    if (!v || !(*v == Value::from(kv.second)))
                        return false;
                }
                return true;
            }), cells.end());
        }
    }
    const int original = int(cells.size());
    if (const YAML::Node include = child(matrix, "include"); include.IsDefined()) {
        if (!include.IsSequence())
            return errorAt(src.file, include, key + QStringLiteral(".include"), QStringLiteral("is not a list"));
        const QSet<QString> axisNames(m.keyOrder.cbegin(), m.keyOrder.cend());
        for (const auto &entry : include) {
            if (!entry.IsMap())
                return errorAt(src.file, entry, key + QStringLiteral(".include"), QStringLiteral("an entry is not a mapping"));
            bool merged = false;
            for (int i = 0; i < original; ++i) {
                Cell &c = cells[i];
                bool fits = true;
                for (const auto &kv : entry) {
                    const QString k = text(kv.first.Scalar());
                    if (!axisNames.contains(k))
                        continue;
                    const Value *v = cellValue(c, k);
                    if (!v || !(*v == Value::from(kv.second))) {
                        fits = false;
                        break;
                    }
                }
                if (!fits)
                    continue;
                merged = true;
                for (const auto &kv : entry) {
                    const QString k = text(kv.first.Scalar());
                    if (axisNames.contains(k))
                        continue;
                    auto it = std::find_if(c.begin(), c.end(), [&](const auto &p) { return p.first == k; });
                    if (it != c.end())
                        it->second = Value::from(kv.second); // values added by include may be overwritten
                    else
                        c.append({k, Value::from(kv.second)});
                    if (!m.keyOrder.contains(k))
                        m.keyOrder.append(k);
                }
            }
            if (!merged) {
                Cell c;
                for (const QString &k : std::as_const(m.keyOrder)) { // matrix key order first
                    if (child(entry, k.toStdString()).IsDefined())
                        c.append({k, Value::from(child(entry, k.toStdString()))});
                }
                for (const auto &kv : entry) {
                    const QString k = text(kv.first.Scalar());
                    if (!cellValue(c, k))
                        c.append({k, Value::from(kv.second)});
                    if (!m.keyOrder.contains(k))
                        m.keyOrder.append(k);
                }
                cells.append(c);
            }
        }
    }
    if (cells.isEmpty())
        return errorAt(src.file, matrix, key, QStringLiteral("expands to no combination"));
    m.cells = cells;
    return m;
}

// Resolves ${{ }} in a name with the static parts the expression engine would see:
// matrix values, string and number literals, and `||`. Anything else is not static.
std::optional<QString> interpolate(const QString &name, const Cell &cell, Naming naming)
{
    static const QRegularExpression expression(QStringLiteral(R"(\$\{\{(.*?)\}\})"));
    static const QRegularExpression matrixRef(QStringLiteral(R"(^matrix((?:\.[A-Za-z_][A-Za-z0-9_-]*)+)$)"));
    static const QRegularExpression literal(QStringLiteral(R"(^'((?:[^']|'')*)'$)"));
    static const QRegularExpression number(QStringLiteral(R"(^[-+]?[0-9]+(\.[0-9]+)?$)"));
    QString out;
    int last = 0;
    auto it = expression.globalMatch(name);
    while (it.hasNext()) {
        const auto m = it.next();
        out += name.mid(last, m.capturedStart() - last);
        last = m.capturedEnd();
        std::optional<QString> value;
        bool truthy = false;
        for (const QString &raw : m.captured(1).split(QStringLiteral("||"))) {
            const QString operand = raw.trimmed();
            if (const auto lm = literal.match(operand); lm.hasMatch()) {
                value = lm.captured(1).replace(QStringLiteral("''"), QStringLiteral("'"));
            } else if (number.match(operand).hasMatch()) {
                value = operand;
            } else if (const auto mm = matrixRef.match(operand); mm.hasMatch()) {
                const QStringList path = mm.captured(1).mid(1).split(QLatin1Char('.'));
                const Value *node = cellValue(cell, path.first());
                for (int i = 1; node && i < path.size(); ++i)
                    node = node->kind == Value::Kind::Map ? node->member(path[i]) : nullptr;
                value = node ? valueText(*node, naming) : QString();
            } else {
                return std::nullopt;
            }
            truthy = !value->isEmpty() && *value != QLatin1String("false") && *value != QLatin1String("0");
            if (truthy)
                break;
        }
        out += value.value_or(QString());
    }
    out += name.mid(last);
    return out.trimmed();
}

struct Deriver {
    const WorkflowOptions &options;
    const QHash<QString, QByteArray> &callees;
    QStringList contexts;
    QSet<QString> seen;

    void add(const QString &context)
    {
        if (!seen.contains(context)) {
            seen.insert(context);
            contexts.append(context);
        }
    }

    // The display names of one job: one per matrix cell.
    Result<QStringList> displayNames(const Source &src, const QString &jobId, const YAML::Node &job)
    {
        const YAML::Node nameNode = child(job, "name");
        const QString name = nameNode.IsScalar() ? text(nameNode.Scalar()).trimmed() : jobId;
        auto matrix = expandMatrix(src, jobId, job);
        if (!matrix)
            return std::unexpected(matrix.error());
        if (!matrix->present) {
            if (name.contains(QLatin1String("${{"))) {
                auto resolved = interpolate(name, Cell(), options.naming);
                if (!resolved)
                    return errorAt(src.file, nameNode, QStringLiteral("jobs.%1.name").arg(jobId),
                                   QStringLiteral("'%1' is not static; list the names of job '%2' in job_names").arg(name, jobId));
                return QStringList{*resolved};
            }
            return QStringList{name};
        }
        QStringList out;
        const bool expressive = name.contains(QLatin1String("${{"));
        for (const Cell &cell : std::as_const(matrix->cells)) {
            if (expressive) {
                auto resolved = interpolate(name, cell, options.naming);
                if (!resolved)
                    return errorAt(src.file, nameNode, QStringLiteral("jobs.%1.name").arg(jobId),
                                   QStringLiteral("'%1' is not static; list the names of job '%2' in job_names").arg(name, jobId));
                out.append(*resolved);
                continue;
            }
            QStringList values;
            if (options.naming == Naming::Gitea) {
                Cell sorted = cell;
                std::sort(sorted.begin(), sorted.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
                for (const auto &[k, v] : sorted)
                    values.append(valueText(v, options.naming));
            } else {
                for (const QString &k : std::as_const(matrix->keyOrder)) {
                    if (const auto v = cellValue(cell, k))
                        values.append(valueText(*v, options.naming));
                }
            }
            out.append(QStringLiteral("%1 (%2)").arg(name, values.join(QStringLiteral(", "))));
        }
        return out;
    }

    QString wrap(const QString &workflowName, const QString &display) const
    {
        if (options.naming == Naming::GitHub)
            return display;
        return QStringLiteral("%1 / %2 (%3)").arg(workflowName, display, options.event);
    }

    Result<QStringList> jobContexts(const Source &src, const QString &workflowName, const QString &jobId, const YAML::Node &job)
    {
        if (options.jobNames.contains(jobId)) {
            QStringList out;
            for (const QString &n : options.jobNames.value(jobId))
                out.append(wrap(workflowName, n));
            return out;
        }
        const YAML::Node uses = child(job, "uses");
        if (!uses.IsDefined()) {
            auto names = displayNames(src, jobId, job);
            if (!names)
                return std::unexpected(names.error());
            QStringList out;
            for (const QString &n : std::as_const(*names))
                out.append(wrap(workflowName, n));
            return out;
        }
        // A reusable-workflow call: its checks are "<caller> / <callee job>".
        const QString target = uses.IsScalar() ? text(uses.Scalar()) : QString();
        const QString key = QStringLiteral("jobs.%1.uses").arg(jobId);
        if (!target.startsWith(QLatin1String("./")))
            return errorAt(src.file, uses, key, QStringLiteral("calls the remote workflow '%1', whose jobs cannot be read here; list the names of job '%2' in job_names").arg(target, jobId));
        if (child(child(job, "strategy"), "matrix").IsDefined())
            return errorAt(src.file, child(job, "strategy"), QStringLiteral("jobs.%1.strategy").arg(jobId), QStringLiteral("a matrix over a reusable workflow call is not derived; list the names of job '%1' in job_names").arg(jobId));
        const QString path = target.mid(2);
        const auto content = callees.constFind(path);
        if (content == callees.cend())
            return errorAt(src.file, uses, key, QStringLiteral("the called workflow '%1' was not read").arg(path));
        auto callee = load(*content, path);
        if (!callee)
            return std::unexpected(callee.error());
        const YAML::Node callerName = child(job, "name");
        const QString caller = callerName.IsScalar() ? text(callerName.Scalar()).trimmed() : jobId;
        if (caller.contains(QLatin1String("${{")))
            return errorAt(src.file, callerName, QStringLiteral("jobs.%1.name").arg(jobId), QStringLiteral("'%1' is not static; list the names of job '%2' in job_names").arg(caller, jobId));
        QStringList out;
        for (const auto &kv : child(callee->root, "jobs")) {
            const QString calleeId = text(kv.first.Scalar());
            if (child(kv.second, "uses").IsDefined())
                return errorAt(callee->file, child(kv.second, "uses"), QStringLiteral("jobs.%1.uses").arg(calleeId), QStringLiteral("nested reusable workflows are not derived; list the names of job '%1' in job_names").arg(jobId));
            auto names = displayNames(*callee, calleeId, kv.second);
            if (!names)
                return std::unexpected(names.error());
            for (const QString &n : std::as_const(*names))
                out.append(wrap(workflowName, caller + QStringLiteral(" / ") + n));
        }
        if (out.isEmpty())
            return errorAt(callee->file, child(callee->root, "jobs"), QStringLiteral("jobs"), QStringLiteral("the called workflow has no jobs"));
        return out;
    }
};

Result<QStringList> needsOf(const Source &src, const QString &jobId, const YAML::Node &job, bool required)
{
    const YAML::Node needs = child(job, "needs");
    const QString key = QStringLiteral("jobs.%1.needs").arg(jobId);
    QStringList out;
    if (!needs.IsDefined() || needs.IsNull()) {
        if (required)
            return errorAt(src.file, job, key, QStringLiteral("the umbrella job needs nothing, so nothing would be required"));
        return out;
    }
    if (needs.IsScalar()) {
        out.append(text(needs.Scalar()));
    } else if (needs.IsSequence()) {
        for (const auto &n : needs) {
            if (!n.IsScalar())
                return errorAt(src.file, n, key, QStringLiteral("an entry is not a job id"));
            out.append(text(n.Scalar()));
        }
    } else {
        return errorAt(src.file, needs, key, QStringLiteral("is neither a job id nor a list of them"));
    }
    if (out.isEmpty() && required)
        return errorAt(src.file, needs, key, QStringLiteral("is empty, so nothing would be required"));
    for (const QString &id : std::as_const(out)) {
        if (!child(child(src.root, "jobs"), id.toStdString()).IsMap())
            return errorAt(src.file, needs, key, QStringLiteral("names job '%1', which the workflow does not define").arg(id));
    }
    return out;
}

QString workflowNameOf(const Source &src, const WorkflowOptions &options)
{
    const YAML::Node name = child(src.root, "name");
    if (name.IsScalar() && !text(name.Scalar()).trimmed().isEmpty())
        return text(name.Scalar()).trimmed();
    // Gitea names a workflow without `name:` after its file.
    return QFileInfo(options.workflowPath).fileName();
}

// The umbrella (checked) and the jobs it requires: its direct needs in file order, then,
// with options.transitive, what those need, breadth first.
struct Needed {
    YAML::Node umbrella;
    QStringList jobIds;
};

Result<Needed> neededJobs(const Source &src, const WorkflowOptions &options)
{
    if (options.umbrellaJob.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("umbrella_job: no umbrella job named"));
    const YAML::Node jobs = child(src.root, "jobs");
    Needed out;
    out.umbrella = child(jobs, options.umbrellaJob.toStdString());
    if (!out.umbrella.IsMap())
        return errorAt(src.file, jobs, QStringLiteral("jobs"), QStringLiteral("has no umbrella job '%1'").arg(options.umbrellaJob));
    auto direct = needsOf(src, options.umbrellaJob, out.umbrella, true);
    if (!direct)
        return std::unexpected(direct.error());
    QStringList queue = *direct;
    QSet<QString> visited;
    while (!queue.isEmpty()) {
        const QString id = queue.takeFirst();
        if (visited.contains(id) || id == options.umbrellaJob)
            continue;
        visited.insert(id);
        out.jobIds.append(id);
        if (options.transitive) {
            auto more = needsOf(src, id, child(jobs, id.toStdString()), false);
            if (!more)
                return std::unexpected(more.error());
            queue.append(*more);
        }
    }
    return out;
}

} // namespace

Result<QStringList> calledWorkflows(const QByteArray &yaml, const WorkflowOptions &options)
{
    auto src = load(yaml, options.workflowPath);
    if (!src)
        return std::unexpected(src.error());
    auto needed = neededJobs(*src, options);
    if (!needed)
        return std::unexpected(needed.error());
    QStringList out;
    for (const QString &id : std::as_const(needed->jobIds)) {
        const YAML::Node uses = child(child(child(src->root, "jobs"), id.toStdString()), "uses");
        if (uses.IsScalar() && text(uses.Scalar()).startsWith(QLatin1String("./")) && !options.jobNames.contains(id)) {
            const QString path = text(uses.Scalar()).mid(2);
            if (!out.contains(path))
                out.append(path);
        }
    }
    return out;
}

Result<RequiredContexts> deriveRequiredContexts(const QByteArray &yaml, const WorkflowOptions &options,
                                                const QHash<QString, QByteArray> &callees)
{
    auto src = load(yaml, options.workflowPath);
    if (!src)
        return std::unexpected(src.error());
    auto needed = neededJobs(*src, options);
    if (!needed)
        return std::unexpected(needed.error());
    const YAML::Node umbrella = needed->umbrella;

    RequiredContexts out;
    out.workflowName = workflowNameOf(*src, options);
    Deriver deriver{options, callees, {}, {}};
    auto umbrellaNames = deriver.displayNames(*src, options.umbrellaJob, umbrella);
    if (!umbrellaNames)
        return std::unexpected(umbrellaNames.error());
    if (umbrellaNames->size() != 1)
        return errorAt(src->file, umbrella, QStringLiteral("jobs.%1.strategy").arg(options.umbrellaJob), QStringLiteral("an umbrella job with a matrix posts several contexts"));
    out.umbrellaContext = deriver.wrap(out.workflowName, umbrellaNames->first());

    out.jobIds = needed->jobIds;
    for (const QString &id : std::as_const(out.jobIds)) {
        auto contexts = deriver.jobContexts(*src, out.workflowName, id, child(child(src->root, "jobs"), id.toStdString()));
        if (!contexts)
            return std::unexpected(contexts.error());
        for (const QString &c : std::as_const(*contexts))
            deriver.add(c);
    }
    out.contexts = deriver.contexts;
    if (out.contexts.isEmpty())
        return errorAt(src->file, umbrella, QStringLiteral("jobs.%1.needs").arg(options.umbrellaJob), QStringLiteral("derives no context"));
    return out;
}

} // namespace Sluice::Ci
