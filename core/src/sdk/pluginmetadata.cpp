// SPDX-License-Identifier: Apache-2.0
#include <sluice/pluginmetadata.h>

#include <QJsonArray>
#include <QRegularExpression>

namespace Sluice {

namespace {
const QRegularExpression &idPattern()
{
    static const QRegularExpression re(QStringLiteral("^[a-z0-9][a-z0-9-]{0,63}$"));
    return re;
}

Result<QVersionNumber> parseVersion(const QJsonObject &o, const char *key, int parts)
{
    const QJsonValue v = o.value(QLatin1String(key));
    if (!v.isString())
        return fail(ErrorCode::Malformed, QStringLiteral("metadata key '%1' is missing or not a string").arg(QLatin1String(key)));
    const QString pattern = parts == 3 ? QStringLiteral("^\\d+\\.\\d+\\.\\d+$") : QStringLiteral("^\\d+\\.\\d+$");
    if (!QRegularExpression(pattern).match(v.toString()).hasMatch())
        return fail(ErrorCode::Malformed,
                    QStringLiteral("metadata key '%1' must look like %2, not '%3'")
                        .arg(QLatin1String(key), parts == 3 ? QStringLiteral("1.2.3") : QStringLiteral("1.0"), v.toString()));
    return QVersionNumber::fromString(v.toString());
}
} // namespace

bool PluginMetaData::isApiCompatible(const QVersionNumber &apiVersion)
{
    return apiVersion.majorVersion() == SdkAbiMajor && apiVersion.minorVersion() <= SdkApiMinor;
}

Result<PluginMetaData> PluginMetaData::fromLoaderMetaData(const QJsonObject &loaderMetaData)
{
    const QString iid = loaderMetaData.value(QLatin1String("IID")).toString();
    if (iid != QLatin1String(SLUICE_PLUGIN_FACTORY_IID)) {
        if (iid.startsWith(QLatin1String("org.sluice.PluginFactory/")))
            return fail(ErrorCode::Incompatible,
                        QStringLiteral("built for SDK ABI %1, this host speaks %2")
                            .arg(iid.section(QLatin1Char('/'), 1), QString::number(SdkAbiMajor)));
        return fail(ErrorCode::Incompatible,
                    QStringLiteral("not a Sluice plugin (IID '%1', expected '%2')")
                        .arg(iid, QLatin1String(SLUICE_PLUGIN_FACTORY_IID)));
    }
    const QJsonValue meta = loaderMetaData.value(QLatin1String("MetaData"));
    if (!meta.isObject() || meta.toObject().isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("no metadata (Q_PLUGIN_METADATA needs FILE \"<id>.json\")"));
    return fromJson(meta.toObject());
}

Result<PluginMetaData> PluginMetaData::fromJson(const QJsonObject &o)
{
    static const QStringList known = {
        QStringLiteral("id"),          QStringLiteral("kind"),         QStringLiteral("version"),
        QStringLiteral("apiVersion"),  QStringLiteral("description"),  QStringLiteral("dependencies"),
        QStringLiteral("config")};
    for (auto it = o.begin(); it != o.end(); ++it) {
        if (!known.contains(it.key()))
            return fail(ErrorCode::Malformed, QStringLiteral("unknown metadata key '%1'").arg(it.key()));
    }

    PluginMetaData m;
    m.m_raw = o;
    const QJsonValue id = o.value(QLatin1String("id"));
    if (!id.isString() || !idPattern().match(id.toString()).hasMatch())
        return fail(ErrorCode::Malformed,
                    QStringLiteral("metadata key 'id' must be lower-case letters, digits and '-' (got %1)")
                        .arg(id.isString() ? QStringLiteral("'%1'").arg(id.toString()) : QStringLiteral("nothing")));
    m.m_id = id.toString();

    const QJsonValue kind = o.value(QLatin1String("kind"));
    const auto parsedKind = kind.isString() ? pluginKindFromName(kind.toString()) : std::nullopt;
    if (!parsedKind)
        return fail(ErrorCode::Malformed,
                    QStringLiteral("unknown plugin kind '%1' (stage, gate, agent-launcher, forge, tracker, notifier, sweeper)")
                        .arg(kind.toVariant().toString()));
    m.m_kind = *parsedKind;

    auto version = parseVersion(o, "version", 3);
    if (!version)
        return std::unexpected(version.error());
    m.m_version = *version;

    auto api = parseVersion(o, "apiVersion", 2);
    if (!api)
        return std::unexpected(api.error());
    m.m_apiVersion = *api;
    if (!isApiCompatible(m.m_apiVersion))
        return fail(ErrorCode::Incompatible,
                    QStringLiteral("needs SDK API %1, this host provides %2.%3 (same major, minor up to %3)")
                        .arg(m.m_apiVersion.toString())
                        .arg(SdkAbiMajor)
                        .arg(SdkApiMinor));

    const QJsonValue description = o.value(QLatin1String("description"));
    if (!description.isUndefined() && !description.isString())
        return fail(ErrorCode::Malformed, QStringLiteral("metadata key 'description' must be a string"));
    m.m_description = description.toString();

    const QJsonValue deps = o.value(QLatin1String("dependencies"));
    if (!deps.isUndefined()) {
        if (!deps.isArray())
            return fail(ErrorCode::Malformed, QStringLiteral("metadata key 'dependencies' must be a list of plugin ids"));
        for (const QJsonValue &dep : deps.toArray()) {
            if (!dep.isString() || !idPattern().match(dep.toString()).hasMatch())
                return fail(ErrorCode::Malformed, QStringLiteral("metadata key 'dependencies' must be a list of plugin ids"));
            if (dep.toString() == m.m_id)
                return fail(ErrorCode::Malformed, QStringLiteral("plugin '%1' depends on itself").arg(m.m_id));
            if (!m.m_dependencies.contains(dep.toString()))
                m.m_dependencies.append(dep.toString());
        }
    }

    const QJsonValue config = o.value(QLatin1String("config"));
    if (!config.isUndefined()) {
        if (!config.isObject())
            return fail(ErrorCode::Malformed, QStringLiteral("metadata key 'config' must be a schema object"));
        auto schema = ConfigSchema::fromJson(config.toObject());
        if (!schema)
            return fail(ErrorCode::Malformed, QStringLiteral("malformed config schema: %1").arg(schema.error().message));
        m.m_schema = std::move(*schema);
    }
    return m;
}

} // namespace Sluice
