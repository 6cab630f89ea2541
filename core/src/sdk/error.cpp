// SPDX-License-Identifier: Apache-2.0
#include <sluice/error.h>

namespace Sluice {

QString errorCodeName(ErrorCode code)
{
    switch (code) {
    case ErrorCode::Unknown: return QStringLiteral("unknown");
    case ErrorCode::InvalidArgument: return QStringLiteral("invalid-argument");
    case ErrorCode::InvalidConfig: return QStringLiteral("invalid-config");
    case ErrorCode::NotFound: return QStringLiteral("not-found");
    case ErrorCode::PermissionDenied: return QStringLiteral("permission-denied");
    case ErrorCode::Io: return QStringLiteral("io");
    case ErrorCode::Network: return QStringLiteral("network");
    case ErrorCode::Malformed: return QStringLiteral("malformed");
    case ErrorCode::Timeout: return QStringLiteral("timeout");
    case ErrorCode::Cancelled: return QStringLiteral("cancelled");
    case ErrorCode::Conflict: return QStringLiteral("conflict");
    case ErrorCode::Storage: return QStringLiteral("storage");
    case ErrorCode::Incompatible: return QStringLiteral("incompatible");
    }
    return QStringLiteral("unknown");
}

QString Error::toString() const
{
    if (detail.isEmpty())
        return message;
    return QStringLiteral("%1 (%2)").arg(message, detail);
}

} // namespace Sluice
