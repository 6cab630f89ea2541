// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file error.h
 * The error value and result type used by every fallible SDK call.
 */

#include <sluice/global.h>

#include <QString>

#include <expected>

namespace Sluice {

/// What kind of failure an Error describes. Callers branch on the code, people read the message.
enum class ErrorCode {
    Unknown,          ///< Anything not covered below.
    InvalidArgument,  ///< The caller passed something unusable.
    InvalidConfig,    ///< A configuration value is missing, mistyped or inconsistent.
    NotFound,         ///< A file, key, plugin or remote object does not exist.
    PermissionDenied, ///< Refused for ownership or permission reasons.
    Io,               ///< A local read or write failed.
    Network,          ///< A remote call failed or timed out.
    Malformed,        ///< Input or a response could not be parsed or has the wrong shape.
    Timeout,          ///< The operation ran past its deadline.
    Cancelled,        ///< The operation was cancelled by the host.
    Conflict,         ///< The state changed underneath (a lost race, a lease held by another).
    Storage,          ///< The database refused or failed.
    Incompatible,     ///< A plugin or schema version does not match this host.
};

/// Returns the stable lower-case name of @p code ("invalid-config", ...).
SLUICE_EXPORT QString errorCodeName(ErrorCode code);

/**
 * A failure: a code for programs, a message for people and a raw detail for the log.
 *
 * Messages and details must never contain secret values; see sluice/secrets.h.
 */
struct SLUICE_EXPORT Error {
    ErrorCode code = ErrorCode::Unknown;
    QString message; ///< One line, for people; names the file, key or object concerned.
    QString detail;  ///< Raw detail (driver text, response excerpt) for the log; may be empty.

    /// "message (detail)" or just the message.
    [[nodiscard]] QString toString() const;
};

/// Shorthand to build an unexpected Error.
[[nodiscard]] inline std::unexpected<Error> fail(ErrorCode code, QString message, QString detail = {})
{
    return std::unexpected<Error>(Error{code, std::move(message), std::move(detail)});
}

/// The result of a fallible call: a value or an Error. Results must be looked at.
template<typename T>
using Result = std::expected<T, Error>;

} // namespace Sluice
