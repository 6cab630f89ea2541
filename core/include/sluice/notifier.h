// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file notifier.h
 * Notifiers: best-effort messages to people. A notifier failure never blocks or fails the
 * pipeline; the host counts it and moves on.
 */

#include <sluice/job.h>
#include <sluice/plugin.h>

#include <QDateTime>
#include <QJsonObject>

namespace Sluice {

/// One event worth telling people about.
struct SLUICE_EXPORT Notification {
    QString event;     ///< "stage-changed", "gate-failed", "blocked", "reaped", ...
    QString projectId;
    qint64 taskId = 0;
    QString title;     ///< One line.
    QString text;      ///< Plain text body; secrets already masked.
    QJsonObject data;  ///< Machine-readable details.
    QDateTime at;
};

/// A notifier plugin instance.
class SLUICE_EXPORT Notifier : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::Notifier; }

    /// Delivers @p notification, retrying as the plugin sees fit within the host deadline.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Done>> notify(const Notification &notification) = 0;
};

} // namespace Sluice

Q_DECLARE_METATYPE(Sluice::Notification)
