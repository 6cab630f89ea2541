// SPDX-License-Identifier: Apache-2.0
#include "config/yamlvalidator.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>

#include <yaml-cpp/eventhandler.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice {

namespace {

constexpr qint64 maxConfigFileSize = YamlLimits::maxFileBytes;

// Walks the parser's events of the first document once, before any node is built, and
// measures the document as the validator would see it: every alias counted with the full
// size of what it refers to. yaml-cpp shares an aliased node instead of copying it, but
// everything that reads the tree (validation, QVariant conversion, messages) expands it, so
// a megabyte scalar referenced a thousand times costs a gigabyte downstream.
class ExpansionMeter : public YAML::EventHandler
{
public:
    struct Problem {
        YAML::Mark mark;
        QString message;
    };
    std::optional<Problem> problem;

    void OnDocumentStart(const YAML::Mark &) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark &mark, YAML::anchor_t anchor) override { add(mark, anchor, Size{0, 1}, false); }
    void OnAlias(const YAML::Mark &mark, YAML::anchor_t anchor) override
    {
        const auto it = m_anchors.find(anchor);
        if (it == m_anchors.end()) {
            // An alias of a collection that is still open refers to its own ancestor: the
            // tree would be a cycle, and whatever walks it would never end.
            fail(mark, QStringLiteral("this alias refers to a node that contains it; a configuration file cannot be recursive"));
            return;
        }
        add(mark, 0, it->second, true);
    }
    void OnScalar(const YAML::Mark &mark, const std::string &, YAML::anchor_t anchor, const std::string &value) override
    {
        add(mark, anchor, Size{quint64(value.size()), 1}, false);
    }
    void OnSequenceStart(const YAML::Mark &mark, const std::string &, YAML::anchor_t anchor, YAML::EmitterStyle::value) override
    {
        open(mark, anchor, false);
    }
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark &mark, const std::string &, YAML::anchor_t anchor, YAML::EmitterStyle::value) override
    {
        open(mark, anchor, true);
    }
    void OnMapEnd() override { close(); }

private:
    struct Size {
        quint64 bytes = 0; // scalar bytes, aliases expanded
        quint64 nodes = 0; // nodes, aliases expanded
    };
    struct Frame {
        YAML::Mark mark;
        YAML::anchor_t anchor = 0;
        bool map = false;
        quint64 children = 0;
        Size size{0, 1};
    };

    void fail(const YAML::Mark &mark, const QString &message)
    {
        if (!problem)
            problem = Problem{mark, message};
    }
    void open(const YAML::Mark &mark, YAML::anchor_t anchor, bool map)
    {
        m_stack.push_back(Frame{mark, anchor, map, 0, Size{0, 1}});
        ++m_total.nodes;
    }
    void close()
    {
        if (m_stack.empty())
            return;
        const Frame frame = m_stack.back();
        m_stack.pop_back();
        // Its content is in the total already; only its parent and its anchor learn its size.
        add(frame.mark, frame.anchor, frame.size, false, false);
    }
    void add(const YAML::Mark &mark, YAML::anchor_t anchor, Size size, bool alias, bool counted = true)
    {
        if (anchor != 0)
            m_anchors[anchor] = size;
        if (!m_stack.empty()) {
            Frame &parent = m_stack.back();
            const bool key = parent.map && parent.children % 2 == 0;
            ++parent.children;
            if (key && size.bytes > YamlLimits::maxKeyBytes)
                fail(mark, QStringLiteral("a key of %1 bytes%2; keys and names are at most %3 bytes")
                               .arg(size.bytes)
                               .arg(alias ? QStringLiteral(" (through this alias)") : QString())
                               .arg(YamlLimits::maxKeyBytes));
            parent.size.bytes += size.bytes;
            parent.size.nodes += size.nodes;
        }
        if (!counted)
            return;
        m_total.bytes += size.bytes;
        m_total.nodes += size.nodes;
        if (alias && m_total.bytes > YamlLimits::maxExpandedBytes)
            fail(mark, QStringLiteral("aliases expand the file past %1 MiB of text at this alias; refusing to load it")
                           .arg(YamlLimits::maxExpandedBytes >> 20));
        else if (m_total.bytes > YamlLimits::maxExpandedBytes)
            fail(mark, QStringLiteral("more than %1 MiB of text; refusing to load it").arg(YamlLimits::maxExpandedBytes >> 20));
        if (m_total.nodes > YamlLimits::maxExpandedNodes)
            fail(mark, QStringLiteral("more than %1 values%2; refusing to load it")
                           .arg(YamlLimits::maxExpandedNodes)
                           .arg(alias ? QStringLiteral(" once aliases are expanded (at this alias)") : QString()));
    }

    std::vector<Frame> m_stack;
    std::unordered_map<YAML::anchor_t, Size> m_anchors;
    Size m_total;
};

QString fileTypeName(mode_t mode)
{
    if (S_ISDIR(mode))
        return QStringLiteral("a directory");
    if (S_ISFIFO(mode))
        return QStringLiteral("a FIFO");
    if (S_ISSOCK(mode))
        return QStringLiteral("a socket");
    if (S_ISCHR(mode))
        return QStringLiteral("a character device");
    if (S_ISBLK(mode))
        return QStringLiteral("a block device");
    return QStringLiteral("not a regular file");
}

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

QString elided(const QString &text, int maxCharacters)
{
    if (text.size() <= maxCharacters)
        return text;
    return text.left(maxCharacters) + QStringLiteral("... (%1 characters)").arg(text.size());
}

YAML::Node yamlChild(const YAML::Node &node, const char *key)
{
    if (!node.IsMap())
        return YAML::Node();
    for (auto it = node.begin(); it != node.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == key)
            return it->second;
    }
    return YAML::Node();
}

QString yamlScalar(const YAML::Node &node)
{
    return QString::fromStdString(node.Scalar());
}

std::optional<YAML::Node> parseYaml(const QByteArray &text, const QString &fileName, Diagnostics &diagnostics)
{
    // yaml-cpp stops reading at a NUL byte and blames the wrong place; a configuration file
    // is text, so say where the NUL is.
    if (const qsizetype nul = text.indexOf('\0'); nul >= 0) {
        const qsizetype lineStart = text.lastIndexOf('\n', nul) + 1;
        diagnostics.append(Diagnostic{fileName, int(text.left(nul).count('\n')) + 1, int(nul - lineStart) + 1, QString(),
                                      QStringLiteral("contains a NUL byte; a configuration file is UTF-8 text")});
        return std::nullopt;
    }
    try {
        const std::string source = text.toStdString();
        {
            std::istringstream stream(source);
            YAML::Parser parser(stream);
            ExpansionMeter meter;
            parser.HandleNextDocument(meter);
            if (meter.problem) {
                const YAML::Mark &mark = meter.problem->mark;
                diagnostics.append(Diagnostic{fileName, mark.line >= 0 ? mark.line + 1 : 0, mark.column >= 0 ? mark.column + 1 : 0,
                                              QString(), meter.problem->message});
                return std::nullopt;
            }
        }
        YAML::Node root = YAML::Load(source);
        if (!root || root.IsNull())
            return YAML::Node(YAML::NodeType::Map);
        return root;
    } catch (const YAML::Exception &e) {
        diagnostics.append(Diagnostic{fileName, e.mark.line + 1, e.mark.column + 1, QString(),
                                      QStringLiteral("YAML syntax error: %1").arg(QString::fromStdString(e.msg))});
    }
    return std::nullopt;
}

Result<QByteArray> readConfigFile(const QString &path)
{
    const QByteArray name = QFile::encodeName(path);
    // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked right after.
    const int fd = ::open(name.constData(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int error = errno;
        struct stat link {};
        if (error == ENOENT && ::lstat(name.constData(), &link) == 0 && S_ISLNK(link.st_mode)) {
            char target[4096];
            const ssize_t length = ::readlink(name.constData(), target, sizeof target);
            return fail(ErrorCode::NotFound, QStringLiteral("is a symbolic link to %1, which does not exist")
                                                 .arg(length > 0 ? QFile::decodeName(QByteArray(target, int(length))) : QStringLiteral("?")));
        }
        if (error == ELOOP)
            return fail(ErrorCode::Io, QStringLiteral("is a symbolic link loop"));
        return fail(error == ENOENT ? ErrorCode::NotFound : ErrorCode::Io,
                    QStringLiteral("cannot read: %1").arg(QString::fromLocal8Bit(std::strerror(error))));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const QString what = fileTypeName(st.st_mode);
        ::close(fd);
        return fail(ErrorCode::InvalidArgument, QStringLiteral("is %1, not a regular file; refusing to read it").arg(what));
    }
    // The size stat() gave may change under us: read at most one byte past the limit.
    QByteArray content;
    content.resize(qsizetype(std::min<qint64>(qint64(st.st_size), maxConfigFileSize) + 1));
    qint64 got = 0;
    while (got < qint64(content.size())) {
        const ssize_t n = ::read(fd, content.data() + got, std::size_t(content.size() - got));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            return fail(ErrorCode::Io, QStringLiteral("cannot read: %1").arg(QString::fromLocal8Bit(std::strerror(error))));
        }
        if (n == 0)
            break;
        got += n;
        if (got == qint64(content.size()) && got <= maxConfigFileSize)
            content.resize(qsizetype(std::min<qint64>(2 * got, maxConfigFileSize + 1))); // the file grew
    }
    ::close(fd);
    if (got > maxConfigFileSize)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("larger than %1 MiB; refusing to parse").arg(maxConfigFileSize >> 20));
    content.truncate(qsizetype(got));
    return content;
}

std::optional<YAML::Node> loadYamlFile(const QString &path, Diagnostics &diagnostics)
{
    auto content = readConfigFile(path);
    if (!content) {
        diagnostics.append(Diagnostic{path, 0, 0, QString(), content.error().message});
        return std::nullopt;
    }
    return parseYaml(*content, path, diagnostics);
}

YamlValidator::YamlValidator(const QString &file, Diagnostics &diagnostics)
    : m_file(file)
    , m_diagnostics(diagnostics)
{
}

void YamlValidator::report(const YAML::Mark &mark, const QString &key, const QString &message)
{
    // A file that is wrong everywhere gets its first problems listed, not a flood.
    ++m_reported;
    if (m_reported > YamlLimits::maxDiagnosticsPerFile) {
        if (m_reported == YamlLimits::maxDiagnosticsPerFile + 1)
            m_diagnostics.append(Diagnostic{m_file, 0, 0, QString(),
                                            QStringLiteral("more than %1 problems; the rest are not listed")
                                                .arg(YamlLimits::maxDiagnosticsPerFile)});
        return;
    }
    const bool known = mark.line >= 0;
    m_diagnostics.append(Diagnostic{m_file, known ? mark.line + 1 : 0, known ? mark.column + 1 : 0,
                                    elided(key, YamlLimits::maxShownBytes), elided(message, 2 * YamlLimits::maxShownBytes)});
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
