// SPDX-License-Identifier: Apache-2.0
#pragma once

// LISTEN on PostgreSQL: how an idle worker hears at once that a job became claimable
// (JobQueue::wakeChannel()), instead of at its next poll. SQLite has nothing like it, and
// its workers keep polling.

#include "store/store.h"

#include <QObject>
#include <QSqlDatabase>
#include <QTimer>

namespace Sluice {

class StoreConnections;

/**
 * A connection of its own that LISTENs on one channel and emits notified() for every
 * notification. It lives on the thread that created it (its event loop reads the socket).
 * A lost connection is found by a look every @c checkInterval; it is opened again and
 * notified() emitted once, since notifications may have been missed meanwhile. The poll of
 * the listening worker stays the backstop either way.
 */
class StoreListener : public QObject
{
    Q_OBJECT
public:
    /// InvalidArgument on SQLite (it has no notifications).
    [[nodiscard]] static Result<std::unique_ptr<StoreListener>> listen(Store &store, const QString &channel,
                                                                      QObject *parent = nullptr);
    ~StoreListener() override;

    [[nodiscard]] bool isListening() const { return m_listening; }
    /// How often the connection is looked at (default 30 s).
    void setCheckInterval(std::chrono::milliseconds interval);

Q_SIGNALS:
    void notified();

private:
    StoreListener(std::shared_ptr<StoreConnections> connections, QString channel, QObject *parent);
    Result<void> subscribe();
    void check();

    std::shared_ptr<StoreConnections> m_connections;
    QString m_channel;
    QString m_name;
    QSqlDatabase m_db;
    QTimer m_check;
    bool m_listening = false;
};

} // namespace Sluice
