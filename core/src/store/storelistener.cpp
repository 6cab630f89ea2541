// SPDX-License-Identifier: Apache-2.0
#include "store/storelistener.h"

#include "store/connections.h"

#include <QSqlDriver>
#include <QSqlError>
#include <QSqlQuery>

#include <atomic>

namespace Sluice {

namespace {
std::atomic<quint64> nextListener{1};
} // namespace

Result<std::unique_ptr<StoreListener>> StoreListener::listen(Store &store, const QString &channel, QObject *parent)
{
    if (store.driver() != StoreSettings::Driver::Postgresql)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("only PostgreSQL has LISTEN/NOTIFY; SQLite workers poll"));
    std::unique_ptr<StoreListener> listener(new StoreListener(store.sharedConnections(), channel, parent));
    if (Result<void> subscribed = listener->subscribe(); !subscribed)
        return std::unexpected(subscribed.error());
    return listener;
}

StoreListener::StoreListener(std::shared_ptr<StoreConnections> connections, QString channel, QObject *parent)
    : QObject(parent)
    , m_connections(std::move(connections))
    , m_channel(std::move(channel))
    , m_name(QStringLiteral("sluice-listen-%1").arg(nextListener.fetch_add(1)))
{
    m_check.setInterval(30000);
    connect(&m_check, &QTimer::timeout, this, &StoreListener::check);
    m_check.start();
}

StoreListener::~StoreListener()
{
    if (m_db.isValid() && m_db.driver())
        m_db.driver()->disconnect(this);
    m_db = QSqlDatabase();
    m_connections->releaseConnection(m_name);
}

void StoreListener::setCheckInterval(std::chrono::milliseconds interval)
{
    m_check.start(int(interval.count()));
}

Result<void> StoreListener::subscribe()
{
    m_listening = false;
    if (m_db.isValid() && m_db.driver())
        m_db.driver()->disconnect(this);
    m_db = QSqlDatabase();
    auto db = m_connections->openDedicated(m_name);
    if (!db)
        return std::unexpected(db.error());
    m_db = *db;
    QSqlDriver *driver = m_db.driver();
    if (!driver || !driver->hasFeature(QSqlDriver::EventNotifications))
        return fail(ErrorCode::Storage, QStringLiteral("the Qt SQL driver cannot receive notifications"));
    connect(driver, QOverload<const QString &, QSqlDriver::NotificationSource, const QVariant &>::of(&QSqlDriver::notification), this,
            [this](const QString &name, QSqlDriver::NotificationSource, const QVariant &) {
                if (name == m_channel)
                    Q_EMIT notified();
            });
    if (!driver->subscribeToNotification(m_channel))
        return std::unexpected(m_connections->storageError(QStringLiteral("listening on %1").arg(m_channel), m_db.lastError().text()));
    m_listening = true;
    return {};
}

void StoreListener::check()
{
    // A statement on the listening connection tells whether it is still there; the driver
    // reads the socket only when it becomes readable, and a dead peer may never make it so.
    if (m_listening && m_db.isOpen()) {
        QSqlQuery ping(m_db);
        if (ping.exec(QStringLiteral("SELECT 1")))
            return;
    }
    qCWarning(lcStore).noquote() << "the connection listening on" << m_channel << "was lost; listening again";
    if (Result<void> again = subscribe(); !again) {
        qCWarning(lcStore).noquote() << "cannot listen on" << m_channel << "-" << again.error().toString() << "(workers poll meanwhile)";
        return;
    }
    Q_EMIT notified(); // what came meanwhile was missed
}

} // namespace Sluice
