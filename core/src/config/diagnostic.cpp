// SPDX-License-Identifier: Apache-2.0
#include "config/diagnostic.h"

namespace Sluice {

QString Diagnostic::toString() const
{
    QString out = file;
    if (line > 0)
        out += QStringLiteral(":%1:%2").arg(line).arg(column > 0 ? column : 1);
    out += QStringLiteral(": ");
    if (!key.isEmpty())
        out += key + QStringLiteral(": ");
    return out + message;
}

QJsonObject Diagnostic::toJson() const
{
    return QJsonObject{{QStringLiteral("file"), file},     {QStringLiteral("line"), line},
                       {QStringLiteral("column"), column}, {QStringLiteral("key"), key},
                       {QStringLiteral("message"), message}};
}

} // namespace Sluice
