// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file services.h
 * The narrow services the host hands to a plugin instance: a clock and a scoped state store.
 */

#include <sluice/error.h>

#include <QByteArray>
#include <QDateTime>
#include <QString>

#include <optional>

namespace Sluice {

/// The time source plugins must use, so tests can move time.
class SLUICE_EXPORT Clock
{
public:
    virtual ~Clock();
    /// The current time in UTC.
    [[nodiscard]] virtual QDateTime now() const = 0;
    /// The process-wide wall clock.
    [[nodiscard]] static const Clock &system();
};

/**
 * A key-value store scoped to one plugin instance of one project.
 *
 * Keys of different instances never collide. Values are opaque bytes; keep them small
 * (markers, cursors, cached ids). Never store secrets here.
 */
class SLUICE_EXPORT StateStore
{
public:
    virtual ~StateStore();
    /// The value of @p key, std::nullopt when it was never set.
    [[nodiscard]] virtual Result<std::optional<QByteArray>> value(const QString &key) = 0;
    /// Sets @p key to @p value, replacing what was there.
    [[nodiscard]] virtual Result<void> setValue(const QString &key, const QByteArray &value) = 0;
    /// Removes @p key; removing a missing key succeeds.
    [[nodiscard]] virtual Result<void> remove(const QString &key) = 0;
};

} // namespace Sluice
