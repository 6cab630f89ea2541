// SPDX-License-Identifier: Apache-2.0
#pragma once

// The service manager protocol (sd_notify): readiness, stopping, status text, watchdog.

#include <sluice/global.h>

#include <QObject>
#include <QString>
#include <QTimer>

#include <chrono>

namespace Sluice {

/**
 * Tells systemd how the service is doing. Every call is harmless when the process does not
 * run under systemd (NOTIFY_SOCKET unset): it sends nothing and returns false.
 *
 * The watchdog ping is driven by a QTimer on the owner's event loop at half the interval
 * systemd asked for: a ping leaves only when the loop turns, so a stuck loop misses its
 * pings and systemd restarts the service.
 */
class SystemdNotifier : public QObject
{
    Q_OBJECT
public:
    explicit SystemdNotifier(QObject *parent = nullptr);
    ~SystemdNotifier() override;

    /// READY=1: start-up is complete. Returns whether a message was sent.
    bool ready();
    /// RELOADING=1: a reload (SIGHUP) began; call ready() when it is done.
    bool reloading();
    /// STOPPING=1: shutdown began.
    bool stopping();
    /// STATUS=<text>, shown by `systemctl status`. Line breaks become spaces.
    bool status(const QString &text);
    /// WATCHDOG=1: one ping.
    bool watchdog();

    /// The watchdog interval systemd set for this process (WATCHDOG_USEC/WATCHDOG_PID), 0 when none.
    [[nodiscard]] static std::chrono::microseconds watchdogInterval();

    /// Pings at half of watchdogInterval() from now on. Returns false when no watchdog is enabled.
    bool startWatchdog();
    void stopWatchdog();
    [[nodiscard]] bool isWatchdogRunning() const;

private:
    bool notify(const QByteArray &state);
    QTimer m_watchdog;
};

} // namespace Sluice
