// SPDX-License-Identifier: Apache-2.0
#pragma once

// The store fixture of the tests that run on both databases: a real SQLite file in a
// temporary directory, and the PostgreSQL server the CTest fixture "postgres" started (its
// connection file is named by SLUICE_TEST_PG_CONNINFO; tests/postgres.cmake), with fresh
// databases on it that are dropped again. Also the plumbing those tests share: the "engine"
// data rows, VERIFY_OK for a Result, errorText() and inspection queries.
//
// Without $SLUICE_TEST_PG_CONNINFO a PostgreSQL row fails; SLUICE_TEST_NO_PG=1 turns that into
// a skip, for a deliberate SQLite-only run.

#include "store/store.h"

#include <sluice/error.h>

#include <QCoreApplication>
#include <QFile>
#include <QHash>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QTemporaryDir>
#include <QtTest>

#include <memory>
#include <optional>

namespace Sluice::Test {

/// What tests/support/pg-test-server.sh wrote into its connection file.
struct PostgresServer {
    QString host;
    int port = 0;
    QString dbname;
    QString user;
    QString socket;
    QString passwordUser;
    QString passwordFile;
};

/**
 * Reads the test server's connection file. Without one the current test fails — or skips
 * when SLUICE_TEST_NO_PG=1 says so explicitly.
 */
inline bool postgresServer(PostgresServer *server)
{
    const QString path = qEnvironmentVariable("SLUICE_TEST_PG_CONNINFO");
    QFile file(path);
    if (path.isEmpty() || !file.open(QIODevice::ReadOnly)) {
        const QByteArray why = path.isEmpty()
            ? QByteArray("SLUICE_TEST_PG_CONNINFO is not set (run through ctest, fixture \"postgres\")")
            : "cannot read SLUICE_TEST_PG_CONNINFO " + path.toLocal8Bit();
        if (qEnvironmentVariable("SLUICE_TEST_NO_PG") == QLatin1String("1"))
            QTest::qSkip(("SLUICE_TEST_NO_PG=1: " + why).constData(), __FILE__, __LINE__);
        else
            QTest::qFail(("no PostgreSQL test server: " + why + "; set SLUICE_TEST_NO_PG=1 to skip").constData(),
                         __FILE__, __LINE__);
        return false;
    }
    QHash<QString, QString> values;
    const QStringList lines = QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    for (const QString &line : lines)
        values.insert(line.section(QLatin1Char('='), 0, 0).trimmed(), line.section(QLatin1Char('='), 1).trimmed());
    server->host = values.value(QStringLiteral("host"));
    server->port = values.value(QStringLiteral("port")).toInt();
    server->dbname = values.value(QStringLiteral("dbname"));
    server->user = values.value(QStringLiteral("user"));
    server->socket = values.value(QStringLiteral("socket"));
    server->passwordUser = values.value(QStringLiteral("password_user"));
    server->passwordFile = values.value(QStringLiteral("password_file"));
    if (server->host.isEmpty() || server->port == 0 || server->dbname.isEmpty() || server->user.isEmpty()) {
        QTest::qFail(("incomplete conninfo file " + path.toLocal8Bit()).constData(), __FILE__, __LINE__);
        return false;
    }
    return true;
}

/// Databases a test creates on the test server, dropped by dropAll() (and on destruction).
class TestDatabases
{
public:
    /// @p prefix starts every database name and names the admin connection.
    explicit TestDatabases(const QString &prefix) : m_prefix(prefix) {}
    ~TestDatabases()
    {
        dropAll();
        if (QSqlDatabase::contains(connectionName()))
            QSqlDatabase::removeDatabase(connectionName());
    }
    TestDatabases(const TestDatabases &) = delete;
    TestDatabases &operator=(const TestDatabases &) = delete;

    /// A connection to the server's maintenance database as its superuser.
    QSqlDatabase admin(QString *failure)
    {
        if (QSqlDatabase::contains(connectionName()))
            return QSqlDatabase::database(connectionName());
        PostgresServer server;
        if (!postgresServer(&server))
            return {};
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QPSQL"), connectionName());
        db.setHostName(server.host);
        db.setPort(server.port);
        db.setDatabaseName(server.dbname);
        db.setUserName(server.user);
        if (!db.open() && failure)
            *failure = db.lastError().text();
        return db;
    }

    /// Creates a new database (owned by @p owner when given); fails the current test otherwise.
    std::optional<QString> create(const QString &owner = {})
    {
        QString failure;
        QSqlDatabase db = admin(&failure);
        if (!db.isOpen()) {
            QTest::qFail(("cannot connect to the PostgreSQL test server: " + failure.toUtf8()).constData(), __FILE__, __LINE__);
            return std::nullopt;
        }
        const QString name = QStringLiteral("%1%2_%3").arg(m_prefix).arg(QCoreApplication::applicationPid()).arg(++m_counter);
        const QString ownerClause = owner.isEmpty() ? QString() : QStringLiteral(" OWNER \"%1\"").arg(owner);
        QSqlQuery query(db);
        if (!query.exec(QStringLiteral("CREATE DATABASE \"%1\"%2").arg(name, ownerClause))) {
            QTest::qFail(("cannot create a test database: " + query.lastError().text().toUtf8()).constData(), __FILE__, __LINE__);
            return std::nullopt;
        }
        m_created.append(name);
        return name;
    }

    /// Drops every database created so far. WITH (FORCE) ends connections a failed test left.
    void dropAll()
    {
        if (m_created.isEmpty())
            return;
        QString failure;
        QSqlDatabase db = admin(&failure);
        for (const QString &name : std::as_const(m_created)) {
            QSqlQuery drop(db);
            if (!drop.exec(QStringLiteral("DROP DATABASE IF EXISTS \"%1\" WITH (FORCE)").arg(name)))
                qWarning() << "cannot drop test database" << name << drop.lastError().text();
        }
        m_created.clear();
    }

private:
    QString connectionName() const { return QStringLiteral("test-admin-") + m_prefix; }

    QString m_prefix;
    QStringList m_created;
    int m_counter = 0;
};

/// Fills @p settings for a fresh database on @p engine ("sqlite": a file in @p dir).
inline bool freshStore(const QString &engine, const QString &dir, StoreSettings *settings)
{
    static int counter = 0;
    ++counter;
    if (engine == QLatin1String("sqlite")) {
        settings->driver = StoreSettings::Driver::Sqlite;
        settings->sqlitePath = dir + QStringLiteral("/store-%1.db").arg(counter);
        return true;
    }
    PostgresServer server;
    if (!postgresServer(&server))
        return false;
    // Never destroyed: the fixture removes the whole server after the run.
    static auto *databases = new TestDatabases(QStringLiteral("sluice_fresh"));
    const auto name = databases->create();
    if (!name)
        return false;
    settings->driver = StoreSettings::Driver::Postgresql;
    settings->host = server.host;
    settings->port = server.port;
    settings->user = server.user;
    settings->database = *name;
    return true;
}

/// The "engine" column with one row per database: "sqlite" and "postgresql".
inline void addEngineRows()
{
    QTest::addColumn<QString>("engine");
    QTest::newRow("sqlite") << QStringLiteral("sqlite");
    QTest::newRow("postgresql") << QStringLiteral("postgresql");
}

/// The databases a data row of addEngineRows() can name, for tables with more columns.
inline const QStringList &engineNames()
{
    static const QStringList names{QStringLiteral("sqlite"), QStringLiteral("postgresql")};
    return names;
}

/// An error as the tests show it: its code's name and its text.
inline QString errorText(const Error &error)
{
    return errorCodeName(error.code) + QLatin1String(": ") + error.toString();
}

/**
 * Runs @p sql on @p db for inspection and returns its rows. On failure the list is empty and
 * the database's message is in @p failure, or logged when @p failure is null.
 */
inline QList<QVariantList> select(QSqlDatabase db, const QString &sql, QString *failure = nullptr)
{
    QSqlQuery query(db);
    QList<QVariantList> rows;
    if (!query.exec(sql)) {
        if (failure)
            *failure = query.lastError().text();
        else
            qWarning() << "inspection query failed:" << sql << query.lastError().text();
        return rows;
    }
    while (query.next()) {
        QVariantList row;
        for (int i = 0; i < query.record().count(); ++i)
            row.append(query.value(i));
        rows.append(row);
    }
    return rows;
}

/**
 * The databases of one test function on the engine of its data row. init() and cleanup()
 * go into the test's own; settings() names a database of the current test: the same name
 * gives the same database until cleanup(), which removes the SQLite files and drops the
 * PostgreSQL databases.
 */
class StoreFixture
{
public:
    /// @p prefix starts the PostgreSQL databases' names; @p sqliteBusyTimeoutMs is the
    /// SQLite busy_timeout of the settings (0: the default of StoreSettings).
    explicit StoreFixture(const QString &prefix, int sqliteBusyTimeoutMs = 0)
        : m_databases(prefix), m_busyTimeoutMs(sqliteBusyTimeoutMs)
    {
    }

    /// A new temporary directory for the test function; false (and a failure) without one.
    bool init()
    {
        m_tmp = std::make_unique<QTemporaryDir>();
        if (!m_tmp->isValid()) {
            QTest::qFail("cannot create a temporary directory", __FILE__, __LINE__);
            return false;
        }
        return true;
    }

    /// Drops every database of the test (WITH (FORCE) ends connections a failed one left).
    void cleanup()
    {
        m_databases.dropAll();
        m_pgDatabases.clear();
        m_tmp.reset();
    }

    /// The test server's maintenance database as its superuser (see TestDatabases::admin()).
    QSqlDatabase admin(QString *failure) { return m_databases.admin(failure); }

    /// A path in the test function's temporary directory.
    [[nodiscard]] QString filePath(const QString &name) const { return m_tmp->filePath(name); }

    /**
     * Fills @p settings for the database @p name on @p engine: SQLite, a file state/NAME.db
     * in a directory open() creates; PostgreSQL, a database on the test server (owned by
     * @p owner when given). False, with the current test failed or skipped, when the engine
     * is not available.
     */
    [[nodiscard]] bool settings(const QString &engine, StoreSettings *settings, const QString &name = QStringLiteral("sluice"),
                                const QString &owner = {})
    {
        if (engine == QLatin1String("sqlite")) {
            settings->driver = StoreSettings::Driver::Sqlite;
            settings->sqlitePath = m_tmp->filePath(QStringLiteral("state/%1.db").arg(name));
            if (m_busyTimeoutMs > 0)
                settings->busyTimeoutMs = m_busyTimeoutMs;
            return true;
        }
        PostgresServer server;
        if (!postgresServer(&server))
            return false;
        settings->driver = StoreSettings::Driver::Postgresql;
        settings->host = server.host;
        settings->port = server.port;
        settings->user = server.user;
        if (m_pgDatabases.contains(name)) {
            settings->database = m_pgDatabases.value(name);
            return true;
        }
        const auto database = m_databases.create(owner);
        if (!database)
            return false;
        m_pgDatabases.insert(name, *database);
        settings->database = *database;
        return true;
    }

private:
    std::unique_ptr<QTemporaryDir> m_tmp;
    TestDatabases m_databases;
    QHash<QString, QString> m_pgDatabases; // name in the test -> PostgreSQL database
    int m_busyTimeoutMs = 0;
};

} // namespace Sluice::Test

// Verifies a Result (evaluating the expression once) and shows its error when it has none.
#define VERIFY_OK(expression)                                                                                  \
    do {                                                                                                       \
        const auto &verifiedResult = (expression);                                                             \
        QVERIFY2(verifiedResult.has_value(),                                                                   \
                 qPrintable(verifiedResult ? QString() : ::Sluice::Test::errorText(verifiedResult.error())));  \
    } while (false)

// Declares StoreSettings @p var for the database of the current test on @p engine, from the
// StoreFixture @p fixture; returns from the test (failed or skipped) when that engine is not
// available. STORE_SETTINGS_NAMED: the database named @p name (a string literal).
#define STORE_SETTINGS(fixture, var, engine)                                                                   \
    StoreSettings var;                                                                                         \
    do {                                                                                                       \
        if (!(fixture).settings(engine, &var))                                                                 \
            return;                                                                                            \
    } while (false)

#define STORE_SETTINGS_NAMED(fixture, var, engine, name)                                                       \
    StoreSettings var;                                                                                         \
    do {                                                                                                       \
        if (!(fixture).settings(engine, &var, QStringLiteral(name)))                                           \
            return;                                                                                            \
    } while (false)

// The first lines of a test on the database of its row: fetches the "engine" column, declares
// StoreSettings @p settings for the test's database (STORE_SETTINGS) and opens it as @p store,
// a Result<std::unique_ptr<Store>>, verified. OPEN_STORE_NAMED: the database named @p name.
#define OPEN_STORE(fixture, settings, store)                                                                   \
    QFETCH(QString, engine);                                                                                   \
    STORE_SETTINGS(fixture, settings, engine);                                                                 \
    auto store = Store::open(settings);                                                                        \
    VERIFY_OK(store)

#define OPEN_STORE_NAMED(fixture, settings, store, name)                                                       \
    QFETCH(QString, engine);                                                                                   \
    STORE_SETTINGS_NAMED(fixture, settings, engine, name);                                                     \
    auto store = Store::open(settings);                                                                        \
    VERIFY_OK(store)
