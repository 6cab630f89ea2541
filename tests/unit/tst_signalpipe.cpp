// SPDX-License-Identifier: Apache-2.0
// Unix signals through the socketpair: raised in this process and sent by another one,
// delivered as Qt signals on the event loop, previous handlers back after destruction.

#include "daemon/signalpipe.h"

#include <QDir>
#include <QProcess>
#include <QSet>
#include <QThread>
#include <QtTest>

#include <csignal>
#include <unistd.h>

using namespace Sluice;

namespace {

volatile sig_atomic_t previousHandlerRan = 0;

extern "C" void previousHandler(int)
{
    previousHandlerRan = 1;
}

// The socket inodes this process holds open ("socket:[123]").
QSet<QString> openSockets()
{
    QSet<QString> sockets;
    const QDir fds(QStringLiteral("/proc/self/fd"));
    for (const QString &name : fds.entryList(QDir::NoDotAndDotDot | QDir::AllEntries | QDir::System)) {
        char target[128];
        const ssize_t n = ::readlink(QFile::encodeName(fds.filePath(name)).constData(), target, sizeof target - 1);
        if (n > 0 && QByteArray(target, n).startsWith("socket:"))
            sockets.insert(QString::fromLatin1(target, int(n)));
    }
    return sockets;
}

} // namespace

class tst_SignalPipe : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void raisedSignalsArriveOnTheEventLoop();
    void signalFromAnotherProcess();
    void severalSignalsInOrder();
    void previousHandlersAreRestored();
    void onePipePerProcess();
    void refusesSignalsThatCannotBeHandled();
    void childProcessesDoNotInheritThePipe();
};

void tst_SignalPipe::raisedSignalsArriveOnTheEventLoop()
{
    SignalPipe pipe;
    QVERIFY(!pipe.isInstalled());
    QVERIFY(pipe.install());
    QVERIFY(pipe.isInstalled());
    QThread *receiverThread = nullptr;
    connect(&pipe, &SignalPipe::signalReceived, this, [&receiverThread] { receiverThread = QThread::currentThread(); });
    QSignalSpy spy(&pipe, &SignalPipe::signalReceived);
    QCOMPARE(::raise(SIGHUP), 0);
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(0).toInt(), SIGHUP);
    QCOMPARE(receiverThread, QThread::currentThread());
}

void tst_SignalPipe::signalFromAnotherProcess()
{
    SignalPipe pipe;
    QVERIFY(pipe.install());
    QSignalSpy spy(&pipe, &SignalPipe::signalReceived);
    // A real kill(1) from a child process; without the handler, SIGTERM would end this test.
    QCOMPARE(QProcess::execute(QStringLiteral("kill"), {QStringLiteral("-TERM"), QString::number(::getpid())}), 0);
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    QCOMPARE(spy.at(0).at(0).toInt(), SIGTERM);
}

void tst_SignalPipe::severalSignalsInOrder()
{
    SignalPipe pipe;
    QVERIFY(pipe.install());
    QSignalSpy spy(&pipe, &SignalPipe::signalReceived);
    for (int s : {SIGINT, SIGHUP, SIGTERM, SIGHUP})
        QCOMPARE(::raise(s), 0);
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 4, 10000);
    QList<int> received;
    for (const QList<QVariant> &arguments : spy)
        received.append(arguments.at(0).toInt());
    QCOMPARE(received, (QList<int>{SIGINT, SIGHUP, SIGTERM, SIGHUP}));
}

void tst_SignalPipe::previousHandlersAreRestored()
{
    struct sigaction mine {};
    mine.sa_handler = previousHandler;
    sigemptyset(&mine.sa_mask);
    struct sigaction original {};
    QCOMPARE(::sigaction(SIGHUP, &mine, &original), 0);
    previousHandlerRan = 0;
    {
        SignalPipe pipe;
        QVERIFY(pipe.install({SIGHUP}));
        QSignalSpy spy(&pipe, &SignalPipe::signalReceived);
        QCOMPARE(::raise(SIGHUP), 0);
        QVERIFY(spy.count() == 1 || spy.wait(10000));
        QCOMPARE(previousHandlerRan, sig_atomic_t(0)); // the pipe had it, not the old handler
    }
    struct sigaction now {};
    QCOMPARE(::sigaction(SIGHUP, nullptr, &now), 0);
    QVERIFY(now.sa_handler == previousHandler);
    QCOMPARE(::raise(SIGHUP), 0);
    QCOMPARE(previousHandlerRan, sig_atomic_t(1));
    QCOMPARE(::sigaction(SIGHUP, &original, nullptr), 0);
}

void tst_SignalPipe::onePipePerProcess()
{
    auto first = std::make_unique<SignalPipe>();
    QVERIFY(first->install());
    SignalPipe second;
    auto r = second.install();
    QVERIFY(!r);
    QCOMPARE(r.error().code, ErrorCode::Conflict);
    QVERIFY(!second.isInstalled());
    auto again = first->install();
    QVERIFY(!again);
    QCOMPARE(again.error().code, ErrorCode::Conflict);
    first.reset();
    QVERIFY(second.install());
    QSignalSpy spy(&second, &SignalPipe::signalReceived);
    QCOMPARE(::raise(SIGINT), 0);
    QVERIFY(spy.count() == 1 || spy.wait(10000));
    QCOMPARE(spy.at(0).at(0).toInt(), SIGINT);
}

void tst_SignalPipe::refusesSignalsThatCannotBeHandled()
{
    struct sigaction before {};
    QCOMPARE(::sigaction(SIGTERM, nullptr, &before), 0);
    SignalPipe pipe;
    auto r = pipe.install({SIGTERM, SIGKILL});
    QVERIFY(!r);
    QCOMPARE(r.error().code, ErrorCode::InvalidArgument);
    QVERIFY(r.error().message.contains(QString::number(SIGKILL)));
    QVERIFY(!pipe.isInstalled());
    struct sigaction now {};
    QCOMPARE(::sigaction(SIGTERM, nullptr, &now), 0);
    QVERIFY(now.sa_handler == before.sa_handler); // nothing half-installed
}

void tst_SignalPipe::childProcessesDoNotInheritThePipe()
{
    const QSet<QString> before = openSockets();
    SignalPipe pipe;
    QVERIFY(pipe.install());
    const QSet<QString> ours = openSockets() - before;
    QCOMPARE(ours.size(), 2);
    QProcess child;
    child.start(QStringLiteral("sh"), {QStringLiteral("-c"), QStringLiteral("ls -l /proc/$$/fd")});
    QVERIFY(child.waitForFinished(20000));
    QCOMPARE(child.exitCode(), 0);
    const QString listing = QString::fromLocal8Bit(child.readAllStandardOutput());
    QVERIFY2(listing.contains(QLatin1String("/proc/")) || listing.contains(QLatin1String("->")), qPrintable(listing));
    for (const QString &socket : ours)
        QVERIFY2(!listing.contains(socket), qPrintable(socket + QLatin1Char('\n') + listing));
}

QTEST_GUILESS_MAIN(tst_SignalPipe)
#include "tst_signalpipe.moc"
