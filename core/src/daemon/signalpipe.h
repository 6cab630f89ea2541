// SPDX-License-Identifier: Apache-2.0
#pragma once

// Unix signals delivered as Qt signals: the handler only writes the signal number to a
// socketpair; the event loop reads it and emits signalReceived().

#include <sluice/error.h>

#include <QList>
#include <QObject>

#include <csignal>
#include <memory>

namespace Sluice {

/**
 * Turns SIGTERM, SIGINT and SIGHUP (or the signals given to install()) into
 * signalReceived() on the thread that owns the object, where shutdown and reload can do
 * real work. The process-wide handler does nothing but write(2) one byte, so it is
 * async-signal-safe.
 *
 * One SignalPipe may be installed per process at a time. Destroying it restores the
 * handlers that were in place before install().
 */
class SignalPipe : public QObject
{
    Q_OBJECT
public:
    explicit SignalPipe(QObject *parent = nullptr);
    ~SignalPipe() override;

    /// Installs the handlers. Fails when another SignalPipe is installed or a call is refused.
    [[nodiscard]] Result<void> install(const QList<int> &signalNumbers = {SIGTERM, SIGINT, SIGHUP});
    [[nodiscard]] bool isInstalled() const;

Q_SIGNALS:
    /// @p signalNumber arrived (SIGTERM, SIGINT, SIGHUP, ...). Emitted on the event loop.
    void signalReceived(int signalNumber);

private:
    void readPending();
    void uninstall();
    struct Data;
    std::unique_ptr<Data> d;
};

} // namespace Sluice
