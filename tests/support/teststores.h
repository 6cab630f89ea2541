// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test databases on both engines: the PostgreSQL server the ctest fixture "postgres"
// started (its connection file is named by SLUICE_TEST_PG_CONNINFO), fresh databases on it
// that are dropped again, and a one-call fresh store for tests that only need one.

#include "store/store.h"

#include <QCoreApplication>
#include <QFile>
#include <QHash>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtTest>

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

} // namespace Sluice::Test
