// SPDX-License-Identifier: Apache-2.0
#include "systemdnotifier.h"

#include <QLoggingCategory>

#include <systemd/sd-daemon.h>

#include <cstring>

Q_LOGGING_CATEGORY(lcSystemd, "sluice.core.systemd", QtInfoMsg)

namespace Sluice {

SystemdNotifier::SystemdNotifier(QObject *parent)
    : QObject(parent)
{
    m_watchdog.setTimerType(Qt::PreciseTimer);
    connect(&m_watchdog, &QTimer::timeout, this, &SystemdNotifier::watchdog);
}

SystemdNotifier::~SystemdNotifier() = default;

bool SystemdNotifier::ready()
{
    return notify(QByteArrayLiteral("READY=1"));
}

bool SystemdNotifier::reloading()
{
    return notify(QByteArrayLiteral("RELOADING=1"));
}

bool SystemdNotifier::stopping()
{
    return notify(QByteArrayLiteral("STOPPING=1"));
}

bool SystemdNotifier::status(const QString &text)
{
    // One assignment per line in the protocol: a line break in the text would smuggle in another.
    QString line = text;
    line.replace(QLatin1Char('\r'), QLatin1Char(' ')).replace(QLatin1Char('\n'), QLatin1Char(' '));
    return notify("STATUS=" + line.toUtf8());
}

bool SystemdNotifier::watchdog()
{
    return notify(QByteArrayLiteral("WATCHDOG=1"));
}

std::chrono::microseconds SystemdNotifier::watchdogInterval()
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return std::chrono::microseconds(0);
    return std::chrono::microseconds(usec);
}

bool SystemdNotifier::startWatchdog()
{
    const auto interval = watchdogInterval();
    if (interval.count() <= 0) {
        m_watchdog.stop();
        return false;
    }
    const auto half = std::chrono::duration_cast<std::chrono::milliseconds>(interval / 2);
    m_watchdog.start(std::max(std::chrono::milliseconds(1), half));
    qCInfo(lcSystemd) << "watchdog ping every" << m_watchdog.interval() << "ms";
    watchdog();
    return true;
}

void SystemdNotifier::stopWatchdog()
{
    m_watchdog.stop();
}

bool SystemdNotifier::isWatchdogRunning() const
{
    return m_watchdog.isActive();
}

bool SystemdNotifier::notify(const QByteArray &state)
{
    const int r = sd_notify(0, state.constData());
    if (r < 0) {
        qCWarning(lcSystemd) << "cannot notify systemd of" << state.left(state.indexOf('=')).constData() << ":"
                             << std::strerror(-r);
        return false;
    }
    return r > 0;
}

} // namespace Sluice
