// SPDX-License-Identifier: Apache-2.0
#include "store/connections.h"

#include <QDir>
#include <QFileInfo>
#include <QMutexLocker>
#include <QSqlDriver>
#include <QSqlError>

#include <atomic>
#include <vector>

Q_LOGGING_CATEGORY(lcStore, "sluice.core.store", QtInfoMsg)

namespace Sluice {

namespace {

std::atomic<quint64> nextStoreSerial{1};
std::atomic<quint64> nextThreadSerial{1};

quint64 currentThreadSerial()
{
    thread_local const quint64 serial = nextThreadSerial.fetch_add(1);
    return serial;
}

/*
 * The connections this thread opened, of every Store. Its destructor runs when the thread
 * exits (after run() returns, in the exiting thread itself), which is the one moment a
 * connection can be closed in the thread that owns it without the thread's cooperation.
 */
struct ThreadConnections {
    struct Entry {
        std::weak_ptr<StoreConnections> owner;
        QString name;
    };
    std::vector<Entry> entries;

    ~ThreadConnections()
    {
        for (const Entry &entry : entries) {
            if (const std::shared_ptr<StoreConnections> owner = entry.owner.lock())
                owner->releaseConnection(entry.name);
        }
    }

    void add(const std::shared_ptr<StoreConnections> &owner, const QString &name)
    {
        // Forget the entries of Stores that are gone, so a long-lived thread that sees
        // many Stores (the tests' main thread) does not accumulate them.
        std::erase_if(entries, [](const Entry &e) { return e.owner.expired(); });
        entries.push_back({owner, name});
    }
};

thread_local ThreadConnections threadConnections;

// Connect options we add unless the operator set them: a bounded connect (libpq waits
// forever for a host that drops packets) and a name that shows in pg_stat_activity.
QString postgresqlConnectOptions(const QString &configured)
{
    QStringList options;
    if (!configured.trimmed().isEmpty())
        options << configured.trimmed();
    if (!configured.contains(QLatin1String("connect_timeout")))
        options << QStringLiteral("connect_timeout=10");
    if (!configured.contains(QLatin1String("application_name")))
        options << QStringLiteral("application_name=sluice");
    return options.join(QLatin1Char(';'));
}

} // namespace

QString describeDatabase(const StoreSettings &settings)
{
    if (settings.driver == StoreSettings::Driver::Sqlite)
        return QStringLiteral("SQLite database %1")
            .arg(QDir::toNativeSeparators(QFileInfo(settings.sqlitePath).absoluteFilePath()));
    const QString host = settings.host.isEmpty() ? QStringLiteral("the default socket") : settings.host;
    // A host starting with '/' is a Unix socket directory; "dir:port" would read as a path.
    const QString where = host.startsWith(QLatin1Char('/')) || settings.host.isEmpty()
        ? QStringLiteral("%1 (port %2)").arg(host).arg(settings.port)
        : QStringLiteral("%1:%2").arg(host).arg(settings.port);
    return QStringLiteral("PostgreSQL database %1 on %2 as %3")
        .arg(settings.database, where,
             settings.user.isEmpty() ? QStringLiteral("the default user") : settings.user);
}

StoreConnections::StoreConnections(const StoreSettings &settings, const QByteArray &password)
    : m_settings(settings)
    , m_password(password)
    , m_description(describeDatabase(settings))
    , m_serial(nextStoreSerial.fetch_add(1))
{
}

StoreConnections::~StoreConnections()
{
    // No other thread uses the Store now (see the class comment), so no lock is needed.
    for (const QString &name : std::as_const(m_names))
        QSqlDatabase::removeDatabase(name);
}

QString StoreConnections::connectionNameForThisThread() const
{
    return QStringLiteral("sluice-store-%1-thread-%2").arg(m_serial).arg(currentThreadSerial());
}

void StoreConnections::releaseConnection(const QString &name)
{
    {
        QMutexLocker lock(&m_mutex);
        if (!m_names.remove(name))
            return;
    }
    QSqlDatabase::removeDatabase(name);
}

Result<QSqlDatabase> StoreConnections::connection()
{
    const QString name = connectionNameForThisThread();
    const QString driverName = isPostgresql() ? QStringLiteral("QPSQL") : QStringLiteral("QSQLITE");
    const auto driverMissing = [&] {
        return fail(ErrorCode::Storage,
                    QStringLiteral("cannot open %1: the Qt SQL driver %2 is not installed").arg(m_description, driverName),
                    QStringLiteral("available drivers: %1").arg(QSqlDatabase::drivers().join(QLatin1String(", "))));
    };
    if (QSqlDatabase::contains(name)) {
        QSqlDatabase db = QSqlDatabase::database(name, false);
        if (!db.isValid())
            return driverMissing();
        if (!db.isOpen()) {
            // The server went away (QPSQL reports a broken connection as closed once a
            // statement has failed on it), or an earlier open failed: connect again.
            qCWarning(lcStore).noquote() << "reconnecting" << name << "to" << m_description;
            if (Result<void> opened = openAndConfigure(db); !opened)
                return std::unexpected(opened.error());
        }
        return db;
    }

    QSqlDatabase db = QSqlDatabase::addDatabase(driverName, name);
    {
        QMutexLocker lock(&m_mutex);
        m_names.insert(name);
    }
    threadConnections.add(shared_from_this(), name);
    if (!db.isValid())
        return driverMissing();
    if (Result<void> opened = configureAndOpen(db); !opened)
        return std::unexpected(opened.error());
    qCDebug(lcStore).noquote() << "opened connection" << name << "to" << m_description;
    return db;
}

Result<QSqlDatabase> StoreConnections::openDedicated(const QString &name)
{
    const QString driverName = isPostgresql() ? QStringLiteral("QPSQL") : QStringLiteral("QSQLITE");
    if (QSqlDatabase::contains(name))
        QSqlDatabase::removeDatabase(name);
    QSqlDatabase db = QSqlDatabase::addDatabase(driverName, name);
    {
        QMutexLocker lock(&m_mutex);
        m_names.insert(name);
    }
    if (!db.isValid())
        return fail(ErrorCode::Storage, QStringLiteral("cannot open %1: the Qt SQL driver %2 is not installed").arg(m_description, driverName));
    if (Result<void> opened = configureAndOpen(db); !opened)
        return std::unexpected(opened.error());
    return db;
}

Result<void> StoreConnections::configureAndOpen(QSqlDatabase &db)
{
    if (isPostgresql()) {
        db.setHostName(m_settings.host);
        db.setPort(m_settings.port);
        db.setDatabaseName(m_settings.database);
        db.setUserName(m_settings.user);
        if (!m_password.isEmpty())
            db.setPassword(QString::fromUtf8(m_password));
        db.setConnectOptions(postgresqlConnectOptions(m_settings.options));
    } else {
        db.setDatabaseName(m_settings.sqlitePath);
        // Waits for a writer of another connection instead of failing with SQLITE_BUSY.
        db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=%1").arg(m_settings.busyTimeoutMs));
    }
    return openAndConfigure(db);
}

Result<void> StoreConnections::openAndConfigure(QSqlDatabase &db)
{
    if (!db.open())
        return std::unexpected(Error{ErrorCode::Storage,
                                     scrub(QStringLiteral("cannot open %1").arg(m_description)),
                                     scrub(db.lastError().text())});
    if (isPostgresql())
        return {};

    // journal_mode is a property of the file, the others of each connection.
    Result<QSqlQuery> wal = run(db, QStringLiteral("switching to WAL"), QStringLiteral("PRAGMA journal_mode=WAL"));
    if (!wal)
        return std::unexpected(wal.error());
    const QString mode = wal->next() ? wal->value(0).toString() : QString();
    if (mode.compare(QLatin1String("wal"), Qt::CaseInsensitive) != 0) {
        db.close();
        return fail(ErrorCode::Storage,
                    QStringLiteral("cannot open %1: it cannot use write-ahead logging (journal mode stays '%2'; "
                                   "is it on a network file system?)").arg(m_description, mode));
    }
    for (const QString &pragma : {QStringLiteral("PRAGMA synchronous=NORMAL"), QStringLiteral("PRAGMA foreign_keys=ON")}) {
        if (Result<QSqlQuery> set = run(db, QStringLiteral("setting %1").arg(pragma), pragma); !set) {
            db.close();
            return std::unexpected(set.error());
        }
    }
    return {};
}

Result<QSqlQuery> StoreConnections::run(const QString &what, const QString &sql, const QVariantMap &binds)
{
    Result<QSqlDatabase> db = connection();
    if (!db)
        return std::unexpected(db.error());
    return run(*db, what, sql, binds);
}

Result<QSqlQuery> StoreConnections::run(QSqlDatabase &db, const QString &what, const QString &sql,
                                        const QVariantMap &binds)
{
    QSqlQuery query(db);
    query.setForwardOnly(true);
    if (binds.isEmpty()) {
        // Executed directly: PostgreSQL cannot PREPARE BEGIN, SET or DDL.
        if (!query.exec(sql))
            return std::unexpected(storageError(what, query.lastError().text()));
        return query;
    }
    if (!query.prepare(sql))
        return std::unexpected(storageError(what, query.lastError().text()));
    for (auto it = binds.cbegin(); it != binds.cend(); ++it)
        query.bindValue(QLatin1Char(':') + it.key(), it.value());
    if (!query.exec())
        return std::unexpected(storageError(what, query.lastError().text()));
    return query;
}

Error StoreConnections::storageError(const QString &what, const QString &driverText) const
{
    return Error{ErrorCode::Storage, scrub(QStringLiteral("%1 failed on %2").arg(what, m_description)),
                 scrub(driverText.trimmed())};
}

QString StoreConnections::scrub(const QString &text) const
{
    QString out = Redaction::redact(text);
    // The registry ignores very short values; the password is removed whatever its length.
    if (!m_password.isEmpty())
        out.replace(QString::fromUtf8(m_password), QStringLiteral("[REDACTED]"));
    return out;
}

} // namespace Sluice
