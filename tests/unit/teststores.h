// SPDX-License-Identifier: Apache-2.0
#pragma once

// Fresh databases for tests that run on both engines: a SQLite file, or a new database on
// the PostgreSQL server the ctest fixture "postgres" started (SLUICE_TEST_PG_CONNINFO).

#include "store/store.h"

#include <QCoreApplication>
#include <QFile>
#include <QHash>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtTest>

namespace Sluice::Test {

/// Fills @p settings for a fresh database on @p engine; fails (or skips with SLUICE_TEST_NO_PG=1) the current test otherwise.
inline bool freshStore(const QString &engine, const QString &dir, StoreSettings *settings)
{
    static int counter = 0;
    ++counter;
    if (engine == QLatin1String("sqlite")) {
        settings->driver = StoreSettings::Driver::Sqlite;
        settings->sqlitePath = dir + QStringLiteral("/store-%1.db").arg(counter);
        return true;
    }
    const QString path = qEnvironmentVariable("SLUICE_TEST_PG_CONNINFO");
    QFile file(path);
    if (path.isEmpty() || !file.open(QIODevice::ReadOnly)) {
        if (qEnvironmentVariable("SLUICE_TEST_NO_PG") == QLatin1String("1"))
            QTest::qSkip("SLUICE_TEST_NO_PG=1: no PostgreSQL test server", __FILE__, __LINE__);
        else
            QTest::qFail("no PostgreSQL test server (run through ctest, fixture \"postgres\"); set SLUICE_TEST_NO_PG=1 to skip",
                         __FILE__, __LINE__);
        return false;
    }
    QHash<QString, QString> values;
    for (const QString &line : QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts))
        values.insert(line.section(QLatin1Char('='), 0, 0).trimmed(), line.section(QLatin1Char('='), 1).trimmed());
    const QString admin = QStringLiteral("test-admin");
    QSqlDatabase db = QSqlDatabase::contains(admin) ? QSqlDatabase::database(admin)
                                                    : QSqlDatabase::addDatabase(QStringLiteral("QPSQL"), admin);
    db.setHostName(values.value(QStringLiteral("host")));
    db.setPort(values.value(QStringLiteral("port")).toInt());
    db.setDatabaseName(values.value(QStringLiteral("dbname")));
    db.setUserName(values.value(QStringLiteral("user")));
    if (!db.isOpen() && !db.open()) {
        QTest::qFail(("cannot connect to the PostgreSQL test server: " + db.lastError().text().toUtf8()).constData(), __FILE__, __LINE__);
        return false;
    }
    const QString name = QStringLiteral("sluice_%1_%2_%3")
                             .arg(QCoreApplication::applicationName().toLower().remove(QLatin1Char('_')))
                             .arg(QCoreApplication::applicationPid())
                             .arg(counter);
    QSqlQuery create(db);
    if (!create.exec(QStringLiteral("CREATE DATABASE \"%1\"").arg(name))) {
        QTest::qFail(("cannot create a test database: " + create.lastError().text().toUtf8()).constData(), __FILE__, __LINE__);
        return false;
    }
    settings->driver = StoreSettings::Driver::Postgresql;
    settings->host = values.value(QStringLiteral("host"));
    settings->port = values.value(QStringLiteral("port")).toInt();
    settings->user = values.value(QStringLiteral("user"));
    settings->database = name;
    return true;
}

} // namespace Sluice::Test
