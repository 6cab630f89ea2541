// SPDX-License-Identifier: Apache-2.0
// sd_notify for real: this test binds the Unix datagram socket systemd would, points
// NOTIFY_SOCKET at it and reads what the notifier sends.

#include "daemon/systemdnotifier.h"

#include <QSocketNotifier>
#include <QTemporaryDir>
#include <QtTest>

#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace Sluice;
using namespace std::chrono_literals;

class tst_SystemdNotifier : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void init();
    void cleanup();
    void readyStoppingStatus();
    void statusCannotSmuggleAssignments();
    void harmlessWithoutSystemd();
    void watchdogInterval();
    void watchdogPingsFromTheEventLoop();

private:
    QList<QByteArray> drain();

    QTemporaryDir m_dir;
    int m_socket = -1;
    std::unique_ptr<QSocketNotifier> m_notifier;
    QList<QByteArray> m_received;
};

void tst_SystemdNotifier::init()
{
    QVERIFY(m_dir.isValid());
    m_socket = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    QVERIFY(m_socket >= 0);
    const QByteArray path = QFile::encodeName(m_dir.filePath(QStringLiteral("notify")));
    ::unlink(path.constData());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    QVERIFY(size_t(path.size()) < sizeof address.sun_path);
    std::memcpy(address.sun_path, path.constData(), size_t(path.size()));
    QCOMPARE(::bind(m_socket, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    qputenv("NOTIFY_SOCKET", path);
    qunsetenv("WATCHDOG_USEC");
    qunsetenv("WATCHDOG_PID");
    m_received.clear();
    m_notifier = std::make_unique<QSocketNotifier>(m_socket, QSocketNotifier::Read);
    connect(m_notifier.get(), &QSocketNotifier::activated, this, [this] { m_received += drain(); });
}

void tst_SystemdNotifier::cleanup()
{
    m_notifier.reset();
    if (m_socket >= 0)
        ::close(m_socket);
    m_socket = -1;
    qunsetenv("NOTIFY_SOCKET");
    qunsetenv("WATCHDOG_USEC");
    qunsetenv("WATCHDOG_PID");
}

QList<QByteArray> tst_SystemdNotifier::drain()
{
    QList<QByteArray> datagrams;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::recv(m_socket, buffer, sizeof buffer, 0);
        if (n < 0)
            return datagrams;
        datagrams.append(QByteArray(buffer, int(n)));
    }
}

void tst_SystemdNotifier::readyStoppingStatus()
{
    SystemdNotifier notifier;
    QVERIFY(notifier.status(QStringLiteral("starting: 3 projects")));
    QVERIFY(notifier.ready());
    QVERIFY(notifier.reloading());
    QVERIFY(notifier.stopping());
    QVERIFY(notifier.watchdog());
    // sd_notify() has sent each datagram when it returns.
    QCOMPARE(drain(), (QList<QByteArray>{"STATUS=starting: 3 projects", "READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1"}));
}

void tst_SystemdNotifier::statusCannotSmuggleAssignments()
{
    SystemdNotifier notifier;
    QVERIFY(notifier.status(QStringLiteral("bad\nREADY=1\r\nMAINPID=1")));
    QCOMPARE(drain(), QList<QByteArray>{"STATUS=bad READY=1  MAINPID=1"});
}

void tst_SystemdNotifier::harmlessWithoutSystemd()
{
    qunsetenv("NOTIFY_SOCKET");
    SystemdNotifier notifier;
    QVERIFY(!notifier.ready());
    QVERIFY(!notifier.status(QStringLiteral("x")));
    QVERIFY(!notifier.stopping());
    QVERIFY(!notifier.startWatchdog());
    QVERIFY(!notifier.isWatchdogRunning());
    QVERIFY(drain().isEmpty());
    // A socket that is gone is reported, not fatal.
    qputenv("NOTIFY_SOCKET", QFile::encodeName(m_dir.filePath(QStringLiteral("gone"))));
    QVERIFY(!notifier.ready());
}

void tst_SystemdNotifier::watchdogInterval()
{
    QCOMPARE(SystemdNotifier::watchdogInterval(), 0us);
    qputenv("WATCHDOG_USEC", "30000000");
    qputenv("WATCHDOG_PID", QByteArray::number(qint64(::getpid())));
    QCOMPARE(SystemdNotifier::watchdogInterval(), 30s);
    // Meant for another process (a child inheriting the environment): not ours.
    qputenv("WATCHDOG_PID", QByteArray::number(qint64(::getpid()) + 1));
    QCOMPARE(SystemdNotifier::watchdogInterval(), 0us);
    qputenv("WATCHDOG_PID", QByteArray::number(qint64(::getpid())));
    qputenv("WATCHDOG_USEC", "not-a-number");
    QCOMPARE(SystemdNotifier::watchdogInterval(), 0us);
}

void tst_SystemdNotifier::watchdogPingsFromTheEventLoop()
{
    qputenv("WATCHDOG_USEC", "200000");
    qputenv("WATCHDOG_PID", QByteArray::number(qint64(::getpid())));
    SystemdNotifier notifier;
    QVERIFY(notifier.startWatchdog());
    QVERIFY(notifier.isWatchdogRunning());
    QTRY_VERIFY_WITH_TIMEOUT(m_received.count("WATCHDOG=1") >= 4, 10000);
    QCOMPARE(m_received.count(), m_received.count("WATCHDOG=1")); // nothing else was sent
    notifier.stopWatchdog();
    QVERIFY(!notifier.isWatchdogRunning());
}

QTEST_GUILESS_MAIN(tst_SystemdNotifier)
#include "tst_systemdnotifier.moc"
