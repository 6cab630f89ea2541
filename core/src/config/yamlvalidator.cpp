// SPDX-License-Identifier: Apache-2.0
#include "config/yamlvalidator.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <cmath>
#include <vector>

namespace Sluice {

namespace {

constexpr qint64 maxConfigFileSize = 4 * 1024 * 1024;

QString typeLabel(const YAML::Node &node)
{
    switch (node.Type()) {
    case YAML::NodeType::Map: return QStringLiteral("a mapping");
    case YAML::NodeType::Sequence: return QStringLiteral("a list");
    case YAML::NodeType::Null: return QStringLiteral("empty");
    default: return QStringLiteral("a scalar");
    }
}

QString joinKey(const QString &path, const QString &key)
{
    return path.isEmpty() ? key : path + QLatin1Char('.') + key;
}

// Levenshtein distance, for "did you mean" hints on typos.
int editDistance(const QString &a, const QString &b)
{
    std::vector<int> row(std::size_t(b.size()) + 1);
    for (int j = 0; j <= b.size(); ++j)
        row[std::size_t(j)] = j;
    for (int i = 1; i <= a.size(); ++i) {
        int diagonal = row[0];
        row[0] = i;
        for (int j = 1; j <= b.size(); ++j) {
            const int up = row[std::size_t(j)];
            row[std::size_t(j)] = std::min({row[std::size_t(j)] + 1, row[std::size_t(j - 1)] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[std::size_t(b.size())];
}

QString suggestion(const QString &key, const QStringList &known)
{
    QString best;
    int bestDistance = 3; // only close matches
    for (const QString &candidate : known) {
        const int d = editDistance(key, candidate);
        if (d < bestDistance) {
            bestDistance = d;
            best = candidate;
        }
    }
    return best.isEmpty() ? QString() : QStringLiteral(" (did you mean '%1'?)").arg(best);
}

} // namespace

QString yamlScalar(const YAML::Node &node)
{
    return QString::fromStdString(node.Scalar());
}

std::optional<YAML::Node> parseYaml(const QByteArray &text, const QString &fileName, Diagnostics &diagnostics)
{
    try {
        YAML::Node root = YAML::Load(text.toStdString());
        if (!root || root.IsNull())
            return YAML::Node(YAML::NodeType::Map);
        return root;
    } catch (const YAML::Exception &e) {
        diagnostics.append(Diagnostic{fileName, e.mark.line + 1, e.mark.column + 1, QString(),
                                      QStringLiteral("YAML syntax error: %1").arg(QString::fromStdString(e.msg))});
    }
    return std::nullopt;
}

std::optional<YAML::Node> loadYamlFile(const QString &path, Diagnostics &diagnostics)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        diagnostics.append(Diagnostic{path, 0, 0, QString(), QStringLiteral("cannot read: %1").arg(f.errorString())});
        return std::nullopt;
    }
    if (f.size() > maxConfigFileSize) {
        diagnostics.append(Diagnostic{path, 0, 0, QString(), QStringLiteral("larger than 4 MiB; refusing to parse")});
        return std::nullopt;
    }
    return parseYaml(f.readAll(), path, diagnostics);
}

YamlValidator::YamlValidator(const QString &file, Diagnostics &diagnostics)
    : m_file(file)
    , m_diagnostics(diagnostics)
{
}

void YamlValidator::report(const YAML::Mark &mark, const QString &key, const QString &message)
{
    const bool known = mark.line >= 0;
    m_diagnostics.append(Diagnostic{m_file, known ? mark.line + 1 : 0, known ? mark.column + 1 : 0, key, message});
}

void YamlValidator::report(const YAML::Node &node, const QString &key, const QString &message)
{
    report(node.Mark(), key, message);
}

QVariant YamlValidator::resolvedDefault(const SchemaEntry &entry) const
{
    const QVariant value = entry.defaultValue();
    const QDir base = QFileInfo(m_file).absoluteDir();
    if (entry.type() == SchemaEntry::Type::Path && value.isValid())
        return QDir::cleanPath(base.absoluteFilePath(value.toString()));
    if (entry.type() == SchemaEntry::Type::List && entry.element()->type() == SchemaEntry::Type::Path && value.isValid()) {
        QVariantList out;
        for (const QVariant &item : value.toList())
            out.append(QDir::cleanPath(base.absoluteFilePath(item.toString())));
        return out;
    }
    return value;
}

QVariantMap YamlValidator::resolvedDefaults(const ConfigSchema &schema) const
{
    QVariantMap out;
    for (const auto &[name, entry] : schema.entries()) {
        if (entry.type() == SchemaEntry::Type::Object && !entry.isRequired())
            out.insert(name, resolvedDefaults(*entry.keys()));
        else if (entry.defaultValue().isValid())
            out.insert(name, resolvedDefault(entry));
    }
    return out;
}

QVariantMap YamlValidator::validateObject(const YAML::Node &node, const ConfigSchema &schema, const QString &path,
                                          const QSet<QString> &passThrough)
{
    QVariantMap out;
    if (!node.IsMap()) {
        report(node, path, QStringLiteral("expected a mapping, found %1").arg(typeLabel(node)));
        return out;
    }
    QSet<QString> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node keyNode = it->first;
        if (!keyNode.IsScalar()) {
            report(keyNode, path, QStringLiteral("keys must be plain names"));
            continue;
        }
        const QString key = yamlScalar(keyNode);
        const QString keyPath = joinKey(path, key);
        if (seen.contains(key)) {
            report(keyNode, keyPath, QStringLiteral("duplicate key"));
            continue;
        }
        seen.insert(key);
        if (passThrough.contains(key))
            continue;
        const SchemaEntry *entry = schema.entry(key);
        if (!entry) {
            QStringList known = schema.keyNames();
            known.append(passThrough.values());
            report(keyNode, keyPath, QStringLiteral("unknown key%1").arg(suggestion(key, known)));
            continue;
        }
        const YAML::Node value = it->second;
        if (value.IsNull()) {
            if (entry->isRequired())
                report(keyNode, keyPath, QStringLiteral("required key has no value"));
            else if (entry->type() == SchemaEntry::Type::Object)
                out.insert(key, resolvedDefaults(*entry->keys()));
            else if (entry->defaultValue().isValid())
                out.insert(key, resolvedDefault(*entry));
            continue;
        }
        const QVariant v = validateValue(value, *entry, keyPath);
        if (v.isValid())
            out.insert(key, v);
    }
    for (const auto &[name, entry] : schema.entries()) {
        if (seen.contains(name))
            continue;
        if (entry.isRequired())
            report(node, joinKey(path, name), QStringLiteral("required key is missing"));
        else if (entry.type() == SchemaEntry::Type::Object)
            out.insert(name, resolvedDefaults(*entry.keys()));
        else if (entry.defaultValue().isValid())
            out.insert(name, resolvedDefault(entry));
    }
    return out;
}

QVariant YamlValidator::validateValue(const YAML::Node &node, const SchemaEntry &entry, const QString &path)
{
    using Type = SchemaEntry::Type;
    auto expectScalar = [&]() {
        if (node.IsScalar())
            return true;
        report(node, path, QStringLiteral("expected %1, found %2").arg(SchemaEntry::typeName(entry.type()), typeLabel(node)));
        return false;
    };
    auto checkRange = [&](double value, const QString &shown) {
        if (entry.minimum() && value < *entry.minimum()) {
            report(node, path, QStringLiteral("%1 is below the minimum").arg(shown));
            return false;
        }
        if (entry.maximum() && value > *entry.maximum()) {
            report(node, path, QStringLiteral("%1 is above the maximum").arg(shown));
            return false;
        }
        return true;
    };

    if (entry.isSecret()) {
        // The value is never echoed: it might be the secret itself.
        const QString hint = QStringLiteral("is a secret: give it as {file: PATH} or {credential: NAME}, never inline");
        if (!node.IsMap() || node.size() != 1) {
            report(node, path, hint);
            return {};
        }
        const auto it = node.begin();
        const QString kind = yamlScalar(it->first);
        if ((kind != QLatin1String("file") && kind != QLatin1String("credential")) || !it->second.IsScalar()
            || it->second.Scalar().empty()) {
            report(node, path, hint);
            return {};
        }
        QString location = yamlScalar(it->second);
        if (kind == QLatin1String("file"))
            location = QDir::cleanPath(QFileInfo(m_file).absoluteDir().absoluteFilePath(location));
        return QVariantMap{{kind, location}};
    }

    switch (entry.type()) {
    case Type::String: {
        if (!expectScalar())
            return {};
        const QString s = yamlScalar(node);
        if (!entry.allowedValues().isEmpty() && !entry.allowedValues().contains(s)) {
            report(node, path, QStringLiteral("'%1' is not one of: %2").arg(s, entry.allowedValues().join(QStringLiteral(", "))));
            return {};
        }
        return s;
    }
    case Type::Path: {
        if (!expectScalar())
            return {};
        const QString s = yamlScalar(node);
        if (s.isEmpty()) {
            report(node, path, QStringLiteral("expected a path, found an empty string"));
            return {};
        }
        return QDir::cleanPath(QFileInfo(m_file).absoluteDir().absoluteFilePath(s));
    }
    case Type::Integer: {
        long long n = 0;
        if (!expectScalar())
            return {};
        if (!YAML::convert<long long>::decode(node, n)) {
            report(node, path, QStringLiteral("expected an integer, found '%1'").arg(yamlScalar(node)));
            return {};
        }
        if (!checkRange(double(n), QString::number(n)))
            return {};
        return qlonglong(n);
    }
    case Type::Number: {
        double n = 0;
        if (!expectScalar())
            return {};
        if (!YAML::convert<double>::decode(node, n) || !std::isfinite(n)) {
            report(node, path, QStringLiteral("expected a number, found '%1'").arg(yamlScalar(node)));
            return {};
        }
        if (!checkRange(n, yamlScalar(node)))
            return {};
        return n;
    }
    case Type::Boolean: {
        bool b = false;
        if (!expectScalar())
            return {};
        if (!YAML::convert<bool>::decode(node, b)) {
            report(node, path, QStringLiteral("expected true or false, found '%1'").arg(yamlScalar(node)));
            return {};
        }
        return b;
    }
    case Type::Duration: {
        if (!expectScalar())
            return {};
        const auto ms = parseDuration(yamlScalar(node));
        if (!ms) {
            report(node, path, QStringLiteral("expected a duration such as 30s, 5m, 2h or 250ms, found '%1'").arg(yamlScalar(node)));
            return {};
        }
        if (!checkRange(double(*ms), yamlScalar(node)))
            return {};
        return qlonglong(*ms);
    }
    case Type::List: {
        if (!node.IsSequence()) {
            report(node, path, QStringLiteral("expected a list, found %1").arg(typeLabel(node)));
            return {};
        }
        QVariantList out;
        bool ok = true;
        for (std::size_t i = 0; i < node.size(); ++i) {
            const QVariant v = validateValue(node[i], *entry.element(), QStringLiteral("%1[%2]").arg(path).arg(i));
            ok = ok && v.isValid();
            out.append(v);
        }
        return ok ? QVariant(out) : QVariant();
    }
    case Type::Object:
        return validateObject(node, *entry.keys(), path);
    case Type::Map: {
        if (!node.IsMap()) {
            report(node, path, QStringLiteral("expected a mapping, found %1").arg(typeLabel(node)));
            return {};
        }
        QVariantMap out;
        for (auto it = node.begin(); it != node.end(); ++it) {
            const QString key = yamlScalar(it->first);
            if (out.contains(key)) {
                report(it->first, joinKey(path, key), QStringLiteral("duplicate key"));
                continue;
            }
            const QVariant v = validateValue(it->second, *entry.element(), joinKey(path, key));
            if (v.isValid())
                out.insert(key, v);
        }
        return out;
    }
    }
    return {};
}

} // namespace Sluice
