// SPDX-License-Identifier: Apache-2.0
#include "forgecall.h"

#include <cmath>

namespace Sluice::ForgeHttp {

JsonFields::JsonFields(const QJsonValue &value, QString what)
    : m_object(value.toObject())
    , m_value(value)
    , m_what(std::move(what))
{
}

Result<void> JsonFields::requireObject() const
{
    if (!m_value.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("%1 is not a JSON object").arg(m_what));
    return {};
}

std::unexpected<Error> JsonFields::missing(const QString &key, const char *expected) const
{
    return fail(ErrorCode::Malformed, QStringLiteral("%1: field '%2' is missing or not %3").arg(m_what, key, QLatin1String(expected)));
}

Result<QString> JsonFields::string(const QString &key, bool allowEmpty) const
{
    const QJsonValue v = m_object.value(key);
    if (!v.isString() || (!allowEmpty && v.toString().isEmpty()))
        return missing(key, allowEmpty ? "a string" : "a non-empty string");
    return v.toString();
}

QString JsonFields::optionalString(const QString &key) const
{
    return m_object.value(key).toString();
}

Result<qint64> JsonFields::integer(const QString &key) const
{
    const QJsonValue v = m_object.value(key);
    const double d = v.toDouble(std::nan(""));
    if (!v.isDouble() || std::floor(d) != d)
        return missing(key, "an integer");
    return qint64(d);
}

Result<bool> JsonFields::boolean(const QString &key) const
{
    const QJsonValue v = m_object.value(key);
    if (!v.isBool())
        return missing(key, "a boolean");
    return v.toBool();
}

Result<QDateTime> JsonFields::time(const QString &key) const
{
    const QDateTime t = QDateTime::fromString(m_object.value(key).toString(), Qt::ISODateWithMs);
    if (!t.isValid())
        return missing(key, "an ISO 8601 time");
    return t.toUTC();
}

JsonFields JsonFields::object(const QString &key) const
{
    return JsonFields(m_object.value(key), QStringLiteral("%1.%2").arg(m_what, key));
}

} // namespace Sluice::ForgeHttp
