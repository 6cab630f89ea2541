// SPDX-License-Identifier: Apache-2.0
#pragma once

// The per-thread database connections of one Store, and running statements on them.

#include "store/store.h"

#include <QLoggingCategory>
#include <QMutex>
#include <QSet>
#include <QSqlQuery>
#include <QVariantMap>

#include <memory>

Q_DECLARE_LOGGING_CATEGORY(lcStore)

namespace Sluice {

/// The SQL expression of the store's clock (milliseconds since the epoch): the database
/// server's for PostgreSQL, so nodes on several machines judge each other by one clock.
[[nodiscard]] QString storeClockSql(StoreSettings::Driver driver);

/// "SQLite database /var/lib/sluice/state.db", "PostgreSQL database sluice on db:5432 as sluice".
[[nodiscard]] QString describeDatabase(const StoreSettings &settings);

/**
 * Opens one named QSqlDatabase connection per thread, on first use in that thread, and
 * removes it again when the thread exits or when this object dies, whichever comes first.
 *
 * Connection names are "sluice-store-<store serial>-thread-<thread serial>". Both serials
 * come from process-wide counters that are never reused: a raw thread id can be reused by
 * a new thread after the old one exits, and the new thread would then find a connection
 * that Qt refuses to hand out because it belongs to another (dead) thread.
 *
 * Shared between the Store and the StateStores it hands out (which hold a weak reference),
 * so a StateStore that outlives its Store fails cleanly instead of touching freed memory.
 * When the last owner lets go, the connections still registered (those of other threads
 * that are still running) are removed from the destroying thread. That is safe only because
 * nobody may use a Store while it is being destroyed: the owner joins its workers first.
 */
class StoreConnections : public std::enable_shared_from_this<StoreConnections>
{
public:
    /// @p password is the already read PostgreSQL password (empty when none).
    StoreConnections(const StoreSettings &settings, const QByteArray &password);
    ~StoreConnections();

    StoreConnections(const StoreConnections &) = delete;
    StoreConnections &operator=(const StoreConnections &) = delete;

    [[nodiscard]] const StoreSettings &settings() const { return m_settings; }
    [[nodiscard]] bool isPostgresql() const { return m_settings.driver == StoreSettings::Driver::Postgresql; }
    /// describeDatabase() of the settings: how errors name this database.
    [[nodiscard]] QString databaseDescription() const { return m_description; }

    /// This thread's connection, opened and configured on first use, and opened again
    /// when it was lost (a statement on it failed because the server went away).
    [[nodiscard]] Result<QSqlDatabase> connection();

    /**
     * Prepares and runs @p sql with named @p binds on this thread's connection.
     * @p what says what the statement does ("recording event 42 from gitea"); it starts the
     * error message, which also names the database. The driver text goes to Error::detail.
     */
    [[nodiscard]] Result<QSqlQuery> run(const QString &what, const QString &sql,
                                        const QVariantMap &binds = {});
    /// Same, on an explicit connection (used inside a transaction).
    [[nodiscard]] Result<QSqlQuery> run(QSqlDatabase &db, const QString &what, const QString &sql,
                                        const QVariantMap &binds = {});

    /// An Error about this database: message "<what> failed on <database>", the driver text
    /// as detail, secrets removed from both.
    [[nodiscard]] Error storageError(const QString &what, const QString &driverText) const;
    /// Removes the password and every registered secret from @p text.
    [[nodiscard]] QString scrub(const QString &text) const;

    /// Drops @p name if it is still registered. Called at thread exit for that thread's connection.
    void releaseConnection(const QString &name);

    /**
     * Opens a connection of its own named @p name, configured like the others, for the
     * calling thread only and outside the per-thread scheme (a LISTEN connection must not
     * run the store's statements). Removed with the store, or by releaseConnection().
     */
    [[nodiscard]] Result<QSqlDatabase> openDedicated(const QString &name);

private:
    [[nodiscard]] QString connectionNameForThisThread() const;
    [[nodiscard]] Result<void> openAndConfigure(QSqlDatabase &db);
    // Sets a new connection's settings (host, options, SQLite busy timeout), then opens it.
    [[nodiscard]] Result<void> configureAndOpen(QSqlDatabase &db);

    StoreSettings m_settings;
    QByteArray m_password;
    QString m_description;
    quint64 m_serial;

    QMutex m_mutex;
    QSet<QString> m_names; // connections opened and not yet removed, of every thread
};

} // namespace Sluice
