// SPDX-License-Identifier: Apache-2.0
#include "signalpipe.h"

#include <QLoggingCategory>
#include <QSocketNotifier>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

Q_LOGGING_CATEGORY(lcSignals, "sluice.core.signals", QtInfoMsg)

namespace Sluice {

namespace {

// The write end, read by the handler. Lock-free, so reading it in a handler is safe.
std::atomic<int> writeEnd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void onSignal(int signalNumber)
{
    const int saved = errno;
    const int fd = writeEnd.load(std::memory_order_relaxed);
    if (fd >= 0) {
        const unsigned char byte = static_cast<unsigned char>(signalNumber);
        // Non-blocking: should the buffer ever be full, that signal is already pending there.
        [[maybe_unused]] const ssize_t written = ::write(fd, &byte, 1);
    }
    errno = saved;
}

QString systemError(int error)
{
    return QString::fromLocal8Bit(std::strerror(error));
}

} // namespace

struct SignalPipe::Data {
    int fds[2] = {-1, -1}; // [0] read by the event loop, [1] written by the handler
    std::unique_ptr<QSocketNotifier> notifier;
    QList<QPair<int, struct sigaction>> previous;
};

SignalPipe::SignalPipe(QObject *parent)
    : QObject(parent)
    , d(std::make_unique<Data>())
{
}

SignalPipe::~SignalPipe()
{
    uninstall();
}

Result<void> SignalPipe::install(const QList<int> &signalNumbers)
{
    if (d->fds[0] >= 0)
        return fail(ErrorCode::Conflict, QStringLiteral("the signal pipe is installed already"));
    for (int number : signalNumbers) {
        if (number <= 0 || number > 255 || number == SIGKILL || number == SIGSTOP)
            return fail(ErrorCode::InvalidArgument, QStringLiteral("signal %1 cannot be handled").arg(number));
    }
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        return fail(ErrorCode::Io, QStringLiteral("cannot create the signal socketpair: %1").arg(systemError(errno)));
    int expected = -1;
    if (!writeEnd.compare_exchange_strong(expected, fds[1])) {
        ::close(fds[0]);
        ::close(fds[1]);
        return fail(ErrorCode::Conflict, QStringLiteral("another signal pipe is installed in this process"));
    }
    d->fds[0] = fds[0];
    d->fds[1] = fds[1];
    d->notifier = std::make_unique<QSocketNotifier>(d->fds[0], QSocketNotifier::Read);
    connect(d->notifier.get(), &QSocketNotifier::activated, this, &SignalPipe::readPending);

    for (int number : signalNumbers) {
        struct sigaction action {};
        action.sa_handler = onSignal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        struct sigaction old {};
        if (::sigaction(number, &action, &old) != 0) {
            const int error = errno;
            uninstall();
            return fail(ErrorCode::Io, QStringLiteral("cannot handle signal %1: %2").arg(number).arg(systemError(error)));
        }
        d->previous.append({number, old});
    }
    qCDebug(lcSignals) << "handling signals" << signalNumbers;
    return {};
}

bool SignalPipe::isInstalled() const
{
    return d->fds[0] >= 0;
}

void SignalPipe::readPending()
{
    unsigned char buffer[64];
    for (;;) {
        const ssize_t n = ::read(d->fds[0], buffer, sizeof buffer);
        if (n > 0) {
            for (ssize_t i = 0; i < n; ++i) {
                qCDebug(lcSignals) << "received signal" << int(buffer[i]);
                Q_EMIT signalReceived(int(buffer[i]));
                if (d->fds[0] < 0) // a receiver uninstalled us
                    return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return; // EAGAIN: drained
    }
}

void SignalPipe::uninstall()
{
    // Restore in reverse, so a signal listed twice ends with the first previous handler.
    for (auto it = d->previous.crbegin(); it != d->previous.crend(); ++it)
        ::sigaction(it->first, &it->second, nullptr);
    d->previous.clear();
    d->notifier.reset();
    if (d->fds[1] >= 0) {
        int mine = d->fds[1];
        writeEnd.compare_exchange_strong(mine, -1);
        ::close(d->fds[1]);
        d->fds[1] = -1;
    }
    if (d->fds[0] >= 0) {
        ::close(d->fds[0]);
        d->fds[0] = -1;
    }
}

} // namespace Sluice
