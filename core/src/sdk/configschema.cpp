// SPDX-License-Identifier: Apache-2.0
#include <sluice/configschema.h>

#include <QJsonArray>
#include <QRegularExpression>

namespace Sluice {

struct SchemaEntry::Data {
    Type type = Type::String;
    QString description;
    bool required = false;
    bool secret = false;
    QVariant defaultValue;
    QStringList allowed;
    std::optional<double> minimum;
    std::optional<double> maximum;
    std::unique_ptr<SchemaEntry> element;
    std::unique_ptr<ConfigSchema> keys;

    Data() = default;
    Data(const Data &o)
        : type(o.type), description(o.description), required(o.required), secret(o.secret),
          defaultValue(o.defaultValue), allowed(o.allowed), minimum(o.minimum), maximum(o.maximum),
          element(o.element ? std::make_unique<SchemaEntry>(*o.element) : nullptr),
          keys(o.keys ? std::make_unique<ConfigSchema>(*o.keys) : nullptr)
    {
    }
};

SchemaEntry::SchemaEntry() : d(std::make_unique<Data>()) {}
SchemaEntry::SchemaEntry(const SchemaEntry &other) : d(std::make_unique<Data>(*other.d)) {}
SchemaEntry &SchemaEntry::operator=(const SchemaEntry &other)
{
    if (this != &other)
        d = std::make_unique<Data>(*other.d);
    return *this;
}
SchemaEntry::~SchemaEntry() = default;

SchemaEntry::Type SchemaEntry::type() const { return d->type; }
QString SchemaEntry::description() const { return d->description; }
bool SchemaEntry::isRequired() const { return d->required; }
bool SchemaEntry::isSecret() const { return d->secret; }
QVariant SchemaEntry::defaultValue() const { return d->defaultValue; }
QStringList SchemaEntry::allowedValues() const { return d->allowed; }
std::optional<double> SchemaEntry::minimum() const { return d->minimum; }
std::optional<double> SchemaEntry::maximum() const { return d->maximum; }
const SchemaEntry *SchemaEntry::element() const { return d->element.get(); }
const ConfigSchema *SchemaEntry::keys() const { return d->keys.get(); }

namespace {

constexpr std::pair<SchemaEntry::Type, const char *> typeNames[] = {
    {SchemaEntry::Type::String, "string"},     {SchemaEntry::Type::Integer, "integer"},
    {SchemaEntry::Type::Number, "number"},     {SchemaEntry::Type::Boolean, "boolean"},
    {SchemaEntry::Type::Duration, "duration"}, {SchemaEntry::Type::Path, "path"},
    {SchemaEntry::Type::List, "list"},         {SchemaEntry::Type::Object, "object"},
    {SchemaEntry::Type::Map, "map"},
};

std::optional<SchemaEntry::Type> typeFromName(const QString &name)
{
    for (const auto &[t, n] : typeNames) {
        if (name == QLatin1String(n))
            return t;
    }
    return std::nullopt;
}

const QRegularExpression &keyNamePattern()
{
    static const QRegularExpression re(QStringLiteral("^[a-z][a-z0-9_-]*$"));
    return re;
}

// Converts a JSON default to the validated form the entry describes.
Result<QVariant> jsonToValue(const SchemaEntry &entry, const QJsonValue &value, const QString &path)
{
    auto wrongType = [&] {
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1: default is not a %2").arg(path, SchemaEntry::typeName(entry.type())));
    };
    switch (entry.type()) {
    case SchemaEntry::Type::String:
    case SchemaEntry::Type::Path:
        if (!value.isString())
            return wrongType();
        if (!entry.allowedValues().isEmpty() && !entry.allowedValues().contains(value.toString()))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1: default '%2' is not one of its enum values").arg(path, value.toString()));
        return QVariant(value.toString());
    case SchemaEntry::Type::Integer: {
        if (!value.isDouble())
            return wrongType();
        const double n = value.toDouble();
        // Range first: casting a double outside 64 bits to an integer is undefined behaviour
        // (found by fuzz_plugin_metadata with a default of 4.4e31).
        if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0) || n != static_cast<double>(static_cast<qlonglong>(n)))
            return wrongType();
        return QVariant(static_cast<qlonglong>(n));
    }
    case SchemaEntry::Type::Number:
        if (!value.isDouble())
            return wrongType();
        return QVariant(value.toDouble());
    case SchemaEntry::Type::Boolean:
        if (!value.isBool())
            return wrongType();
        return QVariant(value.toBool());
    case SchemaEntry::Type::Duration: {
        const auto ms = value.isString() ? parseDuration(value.toString()) : std::nullopt;
        if (!ms)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1: default is not a duration such as \"30s\"").arg(path));
        return QVariant(*ms);
    }
    case SchemaEntry::Type::List: {
        if (!value.isArray())
            return wrongType();
        QVariantList out;
        const QJsonArray items = value.toArray();
        for (int i = 0; i < items.size(); ++i) {
            auto item = jsonToValue(*entry.element(), items.at(i), QStringLiteral("%1[%2]").arg(path).arg(i));
            if (!item)
                return std::unexpected(item.error());
            out.append(*item);
        }
        return QVariant(out);
    }
    case SchemaEntry::Type::Map: {
        if (!value.isObject())
            return wrongType();
        QVariantMap out;
        const QJsonObject o = value.toObject();
        for (auto it = o.begin(); it != o.end(); ++it) {
            auto item = jsonToValue(*entry.element(), it.value(), path + QLatin1Char('.') + it.key());
            if (!item)
                return std::unexpected(item.error());
            out.insert(it.key(), *item);
        }
        return QVariant(out);
    }
    case SchemaEntry::Type::Object:
        break;
    }
    return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: objects take no default; give defaults to their keys").arg(path));
}

} // namespace

QString SchemaEntry::typeName(Type type)
{
    for (const auto &[t, n] : typeNames) {
        if (t == type)
            return QString::fromLatin1(n);
    }
    return {};
}

ConfigSchema::ConfigSchema() = default;
ConfigSchema::ConfigSchema(const ConfigSchema &other) = default;
ConfigSchema &ConfigSchema::operator=(const ConfigSchema &other) = default;
ConfigSchema::~ConfigSchema() = default;


Result<ConfigSchema> ConfigSchema::fromJson(const QJsonObject &schema, const QString &path)
{
    ConfigSchema out;
    out.m_source = schema;
    for (auto it = schema.begin(); it != schema.end(); ++it) {
        const QString entryPath = path + QLatin1Char('.') + it.key();
        if (!keyNamePattern().match(it.key()).hasMatch())
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1: key names are lower case letters, digits, '_' and '-'").arg(entryPath));
        auto entry = SchemaEntry::parse(it.value(), entryPath);
        if (!entry)
            return std::unexpected(entry.error());
        out.m_entries.append({it.key(), std::move(*entry)});
    }
    return out;
}

Result<SchemaEntry> SchemaEntry::parse(const QJsonValue &json, const QString &path)
{
    if (!json.isObject())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: a schema entry is an object").arg(path));
    const QJsonObject o = json.toObject();
    static const QStringList known = {
        QStringLiteral("type"),    QStringLiteral("description"), QStringLiteral("required"),
        QStringLiteral("default"), QStringLiteral("secret"),      QStringLiteral("enum"),
        QStringLiteral("minimum"), QStringLiteral("maximum"),     QStringLiteral("items"),
        QStringLiteral("keys"),    QStringLiteral("values")};
    for (auto it = o.begin(); it != o.end(); ++it) {
        if (!known.contains(it.key()))
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: unknown schema attribute '%2'").arg(path, it.key()));
    }
    SchemaEntry entry;
    SchemaEntry::Data &d = *entry.d;
    const QJsonValue type = o.value(QLatin1String("type"));
    const auto parsedType = type.isString() ? typeFromName(type.toString()) : std::nullopt;
    if (!parsedType)
        return fail(ErrorCode::InvalidConfig,
                    QStringLiteral("%1.type: %2").arg(path, type.isUndefined()
                        ? QStringLiteral("missing")
                        : QStringLiteral("unknown type '%1'").arg(type.toVariant().toString())));
    d.type = *parsedType;

    auto boolAttr = [&](const char *name, bool &target) -> Result<void> {
        const QJsonValue v = o.value(QLatin1String(name));
        if (v.isUndefined())
            return {};
        if (!v.isBool())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.%2: must be true or false").arg(path, QLatin1String(name)));
        target = v.toBool();
        return {};
    };
    if (auto r = boolAttr("required", d.required); !r)
        return std::unexpected(r.error());
    if (auto r = boolAttr("secret", d.secret); !r)
        return std::unexpected(r.error());

    const QJsonValue description = o.value(QLatin1String("description"));
    if (!description.isUndefined() && !description.isString())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.description: must be a string").arg(path));
    d.description = description.toString();

    if (d.secret && d.type != SchemaEntry::Type::String)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.secret: only string keys can be secret").arg(path));

    if (o.contains(QLatin1String("enum"))) {
        if (d.type != SchemaEntry::Type::String)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.enum: only string keys take an enum").arg(path));
        const QJsonValue e = o.value(QLatin1String("enum"));
        if (!e.isArray() || e.toArray().isEmpty())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.enum: must be a non-empty list of strings").arg(path));
        for (const QJsonValue &v : e.toArray()) {
            if (!v.isString())
                return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.enum: must be a non-empty list of strings").arg(path));
            d.allowed.append(v.toString());
        }
    }

    const bool ranged = d.type == SchemaEntry::Type::Integer || d.type == SchemaEntry::Type::Number
                        || d.type == SchemaEntry::Type::Duration;
    for (const char *name : {"minimum", "maximum"}) {
        const QJsonValue v = o.value(QLatin1String(name));
        if (v.isUndefined())
            continue;
        if (!ranged)
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("%1.%2: only integer, number and duration keys take bounds").arg(path, QLatin1String(name)));
        std::optional<double> bound;
        if (d.type == SchemaEntry::Type::Duration && v.isString()) {
            if (auto ms = parseDuration(v.toString()))
                bound = double(*ms);
        } else if (v.isDouble()) {
            bound = d.type == SchemaEntry::Type::Duration ? v.toDouble() * 1000.0 : v.toDouble();
        }
        if (!bound)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.%2: not a valid bound").arg(path, QLatin1String(name)));
        (qstrcmp(name, "minimum") == 0 ? d.minimum : d.maximum) = bound;
    }
    if (d.minimum && d.maximum && *d.minimum > *d.maximum)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: minimum is greater than maximum").arg(path));

    const bool isList = d.type == SchemaEntry::Type::List;
    const bool isMap = d.type == SchemaEntry::Type::Map;
    const bool isObject = d.type == SchemaEntry::Type::Object;
    if (o.contains(QLatin1String("items")) != isList)
        return fail(ErrorCode::InvalidConfig,
                    isList ? QStringLiteral("%1.items: a list needs an items entry").arg(path)
                           : QStringLiteral("%1.items: only lists take items").arg(path));
    if (isList) {
        auto items = SchemaEntry::parse(o.value(QLatin1String("items")), path + QStringLiteral(".items"));
        if (!items)
            return std::unexpected(items.error());
        d.element = std::make_unique<SchemaEntry>(std::move(*items));
    }
    if (o.contains(QLatin1String("values")) && !isMap)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.values: only maps take values").arg(path));
    if (isMap) {
        if (o.contains(QLatin1String("values"))) {
            auto values = SchemaEntry::parse(o.value(QLatin1String("values")), path + QStringLiteral(".values"));
            if (!values)
                return std::unexpected(values.error());
            d.element = std::make_unique<SchemaEntry>(std::move(*values));
        } else {
            d.element = std::make_unique<SchemaEntry>(); // string values
        }
    }
    if (o.contains(QLatin1String("keys")) != isObject)
        return fail(ErrorCode::InvalidConfig,
                    isObject ? QStringLiteral("%1.keys: an object needs a keys schema").arg(path)
                             : QStringLiteral("%1.keys: only objects take keys").arg(path));
    if (isObject) {
        const QJsonValue keys = o.value(QLatin1String("keys"));
        if (!keys.isObject())
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1.keys: must be an object").arg(path));
        auto nested = ConfigSchema::fromJson(keys.toObject(), path + QStringLiteral(".keys"));
        if (!nested)
            return std::unexpected(nested.error());
        d.keys = std::make_unique<ConfigSchema>(std::move(*nested));
    }

    if (o.contains(QLatin1String("default"))) {
        if (d.required)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: a required key cannot have a default").arg(path));
        if (d.secret)
            return fail(ErrorCode::InvalidConfig, QStringLiteral("%1: a secret cannot have a default").arg(path));
        auto value = jsonToValue(entry, o.value(QLatin1String("default")), path + QStringLiteral(".default"));
        if (!value)
            return std::unexpected(value.error());
        d.defaultValue = *value;
    }
    return entry;
}

bool ConfigSchema::isEmpty() const { return m_entries.isEmpty(); }

QStringList ConfigSchema::keyNames() const
{
    QStringList names;
    for (const auto &[name, entry] : m_entries)
        names.append(name);
    return names;
}

const SchemaEntry *ConfigSchema::entry(const QString &key) const
{
    for (const auto &[name, entry] : m_entries) {
        if (name == key)
            return &entry;
    }
    return nullptr;
}

const QList<std::pair<QString, SchemaEntry>> &ConfigSchema::entries() const { return m_entries; }

QJsonObject ConfigSchema::toJson() const { return m_source; }

std::optional<qint64> parseDuration(const QString &text)
{
    static const QRegularExpression re(QStringLiteral("^\\s*(\\d{1,12})\\s*(ms|s|m|h|d)?\\s*$"));
    const auto m = re.match(text);
    if (!m.hasMatch())
        return std::nullopt;
    const qint64 n = m.captured(1).toLongLong();
    const QString unit = m.captured(2);
    if (unit == QLatin1String("ms"))
        return n;
    if (unit.isEmpty() || unit == QLatin1String("s"))
        return n * 1000;
    if (unit == QLatin1String("m"))
        return n * 60 * 1000;
    if (unit == QLatin1String("h"))
        return n * 3600 * 1000;
    return n * 24 * 3600 * 1000;
}

} // namespace Sluice
