// SPDX-License-Identifier: Apache-2.0
//
// The store on both engines: a real SQLite file in a temporary directory, and a real
// PostgreSQL server started by the CTest fixture "postgres" (tests/postgres.cmake). Each
// test function gets its own SQLite directory and its own fresh PostgreSQL databases.
//
// Without $SLUICE_TEST_PG_CONNINFO the PostgreSQL rows fail; SLUICE_TEST_NO_PG=1 turns
// that into a skip, for a deliberate SQLite-only run.

#include "storefixture.h"
#include "store/store.h"
#include "store/trackeroutbox.h"

#include <QDir>
#include <QFile>
#include <QHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QMap>
#include <QRandomGenerator>
#include <QSqlDriver>
#include <QSqlError>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QtTest>

#include <atomic>
#include <barrier>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

using namespace Sluice;
using Sluice::Test::errorText;
using Sluice::Test::select;

namespace {

/// What tests/support/pg-test-server.sh wrote into its conninfo file.
const QStringList ExpectedTables = {
    QStringLiteral("agent_runs"), QStringLiteral("audit"),       QStringLiteral("events"),
    QStringLiteral("gate_runs"),  QStringLiteral("jobs"),        QStringLiteral("lease_queue"), QStringLiteral("leases"),
    QStringLiteral("nodes"),      QStringLiteral("notification_outbox"), QStringLiteral("plugin_state"), QStringLiteral("schema_migrations"),
    QStringLiteral("stage_files"), QStringLiteral("sweeper_status"), QStringLiteral("tasks"), QStringLiteral("tracker_writes"),
};

QStringList tableNames(QSqlDatabase db)
{
    const bool sqlite = db.driverName() == QLatin1String("QSQLITE");
    const QString sql = sqlite
        ? QStringLiteral("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        : QStringLiteral("SELECT table_name FROM information_schema.tables "
                         "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'");
    QStringList names;
    for (const QVariantList &row : select(db, sql))
        names.append(row.at(0).toString());
    names.sort();
    return names;
}

// "column" or "column not null", in declaration order. A SQLite INTEGER PRIMARY KEY is the
// rowid and cannot be NULL, though table_info reports notnull = 0 for it.
QStringList columnsOf(QSqlDatabase db, const QString &table)
{
    QStringList columns;
    if (db.driverName() == QLatin1String("QSQLITE")) {
        const QList<QVariantList> rows = select(db, QStringLiteral("PRAGMA table_info(%1)").arg(table));
        int primaryKeyColumns = 0;
        for (const QVariantList &row : rows)
            primaryKeyColumns += row.at(5).toInt() > 0 ? 1 : 0;
        for (const QVariantList &row : rows) {
            const bool rowid = primaryKeyColumns == 1 && row.at(5).toInt() == 1
                && row.at(2).toString().compare(QLatin1String("INTEGER"), Qt::CaseInsensitive) == 0;
            const bool notNull = row.at(3).toInt() != 0 || rowid;
            columns.append(row.at(1).toString() + (notNull ? QLatin1String(" not null") : QLatin1String("")));
        }
        return columns;
    }
    const QList<QVariantList> rows = select(
        db, QStringLiteral("SELECT column_name, is_nullable FROM information_schema.columns "
                           "WHERE table_schema = current_schema() AND table_name = '%1' ORDER BY ordinal_position")
                .arg(table));
    for (const QVariantList &row : rows)
        columns.append(row.at(0).toString() + (row.at(1).toString() == QLatin1String("NO") ? QLatin1String(" not null")
                                                                                          : QLatin1String("")));
    return columns;
}

// Indexes written with CREATE INDEX, not those that back a PRIMARY KEY or UNIQUE constraint
// (their names are engine-made).
QStringList explicitIndexNames(QSqlDatabase db)
{
    const QString sql = db.driverName() == QLatin1String("QSQLITE")
        ? QStringLiteral("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        : QStringLiteral("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                         "AND indexname NOT IN (SELECT conname FROM pg_constraint)");
    QStringList names;
    for (const QVariantList &row : select(db, sql))
        names.append(row.at(0).toString());
    names.sort();
    return names;
}

QString randomHex(int bytes)
{
    QByteArray raw(bytes, Qt::Uninitialized);
    for (char &c : raw)
        c = char(QRandomGenerator::global()->bounded(256));
    return QString::fromLatin1(raw.toHex());
}

} // namespace

class tst_Store : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void migrationsApplyOnce_data() { Test::addEngineRows(); }
    void migrationsApplyOnce();
    void concurrentOpensMigrateOnce_data() { Test::addEngineRows(); }
    void concurrentOpensMigrateOnce();
    void bothEnginesHaveTheSameSchema();
    void sqliteUsesWalAndTheBusyTimeout();
    void foreignKeysAreEnforced_data() { Test::addEngineRows(); }
    void foreignKeysAreEnforced();
    void brokenMigrationRollsBack_data() { Test::addEngineRows(); }
    void brokenMigrationRollsBack();
    void unknownPlaceholderIsRefused_data() { Test::addEngineRows(); }
    void unknownPlaceholderIsRefused();
    void newerDatabaseIsRefused_data() { Test::addEngineRows(); }
    void newerDatabaseIsRefused();
    void recordEventDropsDuplicates_data() { Test::addEngineRows(); }
    void recordEventDropsDuplicates();
    void concurrentDuplicatesHaveOneWinner_data() { Test::addEngineRows(); }
    void concurrentDuplicatesHaveOneWinner();
    void heartbeatUpsertsOneRowPerNode_data() { Test::addEngineRows(); }
    void heartbeatUpsertsOneRowPerNode();
    void auditAppendsEntries_data() { Test::addEngineRows(); }
    void auditAppendsEntries();
    void notificationOutboxHandsEachToOneNode_data() { Test::addEngineRows(); }
    void notificationOutboxHandsEachToOneNode();
    void webhookDeliveriesAreTakenOnce_data() { Test::addEngineRows(); }
    void webhookDeliveriesAreTakenOnce();
    void trackerOutboxKeepsWritesUntilTaken_data() { Test::addEngineRows(); }
    void trackerOutboxKeepsWritesUntilTaken();
    void pluginStateIsScopedToOneInstance_data() { Test::addEngineRows(); }
    void pluginStateIsScopedToOneInstance();
    void worksFromAnotherThread_data() { Test::addEngineRows(); }
    void worksFromAnotherThread();
    void destroyingTheStoreRemovesItsConnections_data() { Test::addEngineRows(); }
    void destroyingTheStoreRemovesItsConnections();
    void openErrorsNameTheDatabase_data() { Test::addEngineRows(); }
    void openErrorsNameTheDatabase();
    void postgresqlPasswordIsUsedAndNeverShown();
    void postgresqlAcceptsASocketDirectory();
    void postgresqlReconnectsAfterLosingTheServer();

private:
    [[nodiscard]] QString migrationsWith(const QString &extraFileName, const QByteArray &extraText);

    Test::StoreFixture m_stores{QStringLiteral("sluice_t")};
};

void tst_Store::init()
{
    QVERIFY(m_stores.init());
}

void tst_Store::cleanup()
{
    // Every Store of the test is gone by now; the fixture drops its databases.
    m_stores.cleanup();
}

// A directory with the built-in migrations plus @p extraFileName.
QString tst_Store::migrationsWith(const QString &extraFileName, const QByteArray &extraText)
{
    const QString dir = m_stores.filePath(QStringLiteral("migrations-") + extraFileName);
    QDir().mkpath(dir);
    const QDir builtIn(QStringLiteral(":/migrations"));
    for (const QString &file : builtIn.entryList({QStringLiteral("*.sql")}, QDir::Files)) {
        if (!QFile::copy(builtIn.filePath(file), dir + QLatin1Char('/') + file))
            return {};
    }
    QFile extra(dir + QLatin1Char('/') + extraFileName);
    if (!extra.open(QIODevice::WriteOnly) || extra.write(extraText) != extraText.size())
        return {};
    return dir;
}

void tst_Store::migrationsApplyOnce()
{
    QFETCH(QString, engine);
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");

    const QStringList files = QDir(QStringLiteral(":/migrations")).entryList({QStringLiteral("*.sql")}, QDir::Files, QDir::Name);
    QVERIFY(!files.isEmpty());
    QCOMPARE(Store::latestSchemaVersion(), files.last().left(4).toInt());

    QList<QVariantList> firstRows;
    {
        auto store = Store::open(settings);
        VERIFY_OK(store);
        QCOMPARE((*store)->driver(), settings.driver);
        auto version = (*store)->schemaVersion();
        VERIFY_OK(version);
        QCOMPARE(*version, Store::latestSchemaVersion());
        auto db = (*store)->connection();
        VERIFY_OK(db);
        firstRows = select(*db, QStringLiteral("SELECT version, name, applied_at FROM schema_migrations ORDER BY version"));
        QCOMPARE(firstRows.size(), files.size());
        for (qsizetype i = 0; i < files.size(); ++i) {
            QCOMPARE(firstRows.at(i).at(0).toInt(), files.at(i).left(4).toInt());
            QCOMPARE(firstRows.at(i).at(1).toString(), files.at(i).mid(5).chopped(4));
            QVERIFY(firstRows.at(i).at(2).toLongLong() > 0);
        }
        QCOMPARE(tableNames(*db), ExpectedTables);
    }
    // A second open finds everything applied: same rows, same applied_at. (Running a
    // migration again would also fail outright: its CREATE TABLEs have no IF NOT EXISTS.)
    auto again = Store::open(settings);
    VERIFY_OK(again);
    auto version = (*again)->schemaVersion();
    VERIFY_OK(version);
    QCOMPARE(*version, Store::latestSchemaVersion());
    auto db = (*again)->connection();
    VERIFY_OK(db);
    QCOMPARE(select(*db, QStringLiteral("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")),
             firstRows);
}

void tst_Store::concurrentOpensMigrateOnce()
{
    QFETCH(QString, engine);
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");
    // Several nodes start at once on an empty database: one migrates, the others wait for
    // it and find nothing left to do. Without the lock they would collide on CREATE TABLE.
    constexpr int nodes = 6;
    std::vector<QString> errors(nodes);
    std::barrier start(nodes);
    std::vector<std::thread> starters;
    for (int n = 0; n < nodes; ++n) {
        starters.emplace_back([&, n] {
            start.arrive_and_wait();
            auto store = Store::open(settings);
            if (!store)
                errors[n] = errorText(store.error());
        });
    }
    for (std::thread &starter : starters)
        starter.join();
    for (const QString &error : errors)
        QVERIFY2(error.isEmpty(), qPrintable(error));

    auto store = Store::open(settings);
    VERIFY_OK(store);
    auto db = (*store)->connection();
    VERIFY_OK(db);
    const int files = QDir(QStringLiteral(":/migrations")).entryList({QStringLiteral("*.sql")}, QDir::Files).size();
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM schema_migrations")).first().first().toInt(), files);
}

void tst_Store::bothEnginesHaveTheSameSchema()
{
    STORE_SETTINGS_NAMED(m_stores, sqliteSettings, QStringLiteral("sqlite"), "main");
    STORE_SETTINGS_NAMED(m_stores, pgSettings, QStringLiteral("postgresql"), "main");
    auto sqlite = Store::open(sqliteSettings);
    VERIFY_OK(sqlite);
    auto pg = Store::open(pgSettings);
    VERIFY_OK(pg);
    auto sqliteDb = (*sqlite)->connection();
    VERIFY_OK(sqliteDb);
    auto pgDb = (*pg)->connection();
    VERIFY_OK(pgDb);

    QCOMPARE(tableNames(*sqliteDb), ExpectedTables);
    QCOMPARE(tableNames(*pgDb), ExpectedTables);
    for (const QString &table : ExpectedTables) {
        const QStringList sqliteColumns = columnsOf(*sqliteDb, table);
        QVERIFY2(!sqliteColumns.isEmpty(), qPrintable(table));
        QCOMPARE(columnsOf(*pgDb, table), sqliteColumns);
    }
    const QStringList indexes = explicitIndexNames(*sqliteDb);
    QVERIFY(indexes.contains(QStringLiteral("jobs_claimable")));
    QCOMPARE(explicitIndexNames(*pgDb), indexes);
}

void tst_Store::sqliteUsesWalAndTheBusyTimeout()
{
    STORE_SETTINGS_NAMED(m_stores, settings, QStringLiteral("sqlite"), "main");
    settings.busyTimeoutMs = 1234; // not the default, so it must come from the settings
    auto store = Store::open(settings);
    VERIFY_OK(store);
    QVERIFY(QFileInfo::exists(settings.sqlitePath));

    const auto pragmas = [](QSqlDatabase db) {
        QStringList values;
        for (const char *pragma : {"journal_mode", "busy_timeout", "synchronous", "foreign_keys"}) {
            const QList<QVariantList> rows = select(db, QStringLiteral("PRAGMA %1").arg(QLatin1String(pragma)));
            values.append(rows.isEmpty() ? QStringLiteral("?") : rows.first().first().toString().toLower());
        }
        return values;
    };
    const QStringList expected = {QStringLiteral("wal"), QStringLiteral("1234"), QStringLiteral("1"), QStringLiteral("1")};
    auto db = (*store)->connection();
    VERIFY_OK(db);
    QCOMPARE(pragmas(*db), expected);

    // The last three are per connection: another thread's connection needs them too.
    QStringList inThread;
    std::thread([&] {
        if (auto threadDb = (*store)->connection())
            inThread = pragmas(*threadDb);
    }).join();
    QCOMPARE(inThread, expected);
}

void tst_Store::foreignKeysAreEnforced()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    auto db = (*store)->connection();
    VERIFY_OK(db);
    // SQLite ignores foreign keys unless each connection turns them on.
    QSqlQuery insert(*db);
    QVERIFY(!insert.exec(QStringLiteral("INSERT INTO jobs (task_id, project, kind, available_at, created_at, updated_at) "
                                        "VALUES (999, 'p', 'stage', 0, 0, 0)")));
    QSqlQuery task(*db);
    QVERIFY2(task.exec(QStringLiteral("INSERT INTO tasks (project, stage, created_at, updated_at) "
                                      "VALUES ('p', 'development', 0, 0)")),
             qPrintable(task.lastError().text()));
    const QList<QVariantList> ids = select(*db, QStringLiteral("SELECT id FROM tasks"));
    QCOMPARE(ids.size(), 1);
    QSqlQuery job(*db);
    QVERIFY2(job.exec(QStringLiteral("INSERT INTO jobs (task_id, project, kind, available_at, created_at, updated_at) "
                                     "VALUES (%1, 'p', 'stage', 0, 0, 0)").arg(ids.first().first().toLongLong())),
             qPrintable(job.lastError().text()));
}

void tst_Store::brokenMigrationRollsBack()
{
    QFETCH(QString, engine);
    const int broken = Store::latestSchemaVersion() + 1;
    const QString fileName = QStringLiteral("%1_broken.sql").arg(broken, 4, 10, QLatin1Char('0'));
    const QString dir = migrationsWith(fileName,
                                       "CREATE TABLE rollback_probe (id INTEGER NOT NULL);\n"
                                       "INSERT INTO rollback_probe (id) VALUES (1);\n"
                                       "INSERT INTO no_such_table (id) VALUES (1);\n");
    QVERIFY(!dir.isEmpty());

    // On an empty database every migration is pending; the failure of the last one takes
    // all of them back, schema_migrations included.
    {
        STORE_SETTINGS_NAMED(m_stores, fresh, engine, "fresh");
        auto store = Store::openWithMigrations(fresh, dir);
        QVERIFY(!store);
        QCOMPARE(store.error().code, ErrorCode::Storage);
        QVERIFY2(store.error().message.contains(fileName.chopped(4)), qPrintable(store.error().message));
        QVERIFY2(store.error().message.contains(QLatin1String("statement 3")), qPrintable(store.error().message));
        QVERIFY(store.error().detail.contains(QLatin1String("no_such_table")));

        // Look with a connection of our own: there is no Store to ask.
        QStringList tables;
        {
            QSqlDatabase raw = QSqlDatabase::addDatabase(fresh.driver == StoreSettings::Driver::Sqlite
                                                             ? QStringLiteral("QSQLITE") : QStringLiteral("QPSQL"),
                                                         QStringLiteral("tst-store-raw"));
            raw.setDatabaseName(fresh.driver == StoreSettings::Driver::Sqlite ? fresh.sqlitePath : fresh.database);
            raw.setHostName(fresh.host);
            raw.setPort(fresh.port);
            raw.setUserName(fresh.user);
            QVERIFY2(raw.open(), qPrintable(raw.lastError().text()));
            tables = tableNames(raw);
            raw.close();
        }
        QSqlDatabase::removeDatabase(QStringLiteral("tst-store-raw"));
        QCOMPARE(tables, QStringList());
    }

    // On a migrated database only the broken one is pending; it leaves no trace.
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");
    {
        auto store = Store::open(settings);
        VERIFY_OK(store);
    }
    auto failed = Store::openWithMigrations(settings, dir);
    QVERIFY(!failed);
    QVERIFY2(failed.error().message.contains(fileName.chopped(4)), qPrintable(failed.error().message));

    auto store = Store::open(settings);
    VERIFY_OK(store);
    auto version = (*store)->schemaVersion();
    VERIFY_OK(version);
    QCOMPARE(*version, broken - 1);
    auto db = (*store)->connection();
    VERIFY_OK(db);
    QCOMPARE(tableNames(*db), ExpectedTables);
}

void tst_Store::unknownPlaceholderIsRefused()
{
    QFETCH(QString, engine);
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");
    const QString fileName = QStringLiteral("%1_typo.sql").arg(Store::latestSchemaVersion() + 1, 4, 10, QLatin1Char('0'));
    const QString dir = migrationsWith(fileName, "CREATE TABLE typo_probe (id {{identity}});\n");
    QVERIFY(!dir.isEmpty());
    auto store = Store::openWithMigrations(settings, dir);
    QVERIFY(!store);
    QCOMPARE(store.error().code, ErrorCode::Malformed);
    QVERIFY2(store.error().message.contains(fileName), qPrintable(store.error().message));
    QVERIFY2(store.error().message.contains(QLatin1String("{{identity}}")), qPrintable(store.error().message));
}

void tst_Store::newerDatabaseIsRefused()
{
    QFETCH(QString, engine);
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");
    const int future = Store::latestSchemaVersion() + 1;
    const QString dir = migrationsWith(QStringLiteral("%1_future.sql").arg(future, 4, 10, QLatin1Char('0')),
                                       "CREATE TABLE future_probe (id INTEGER NOT NULL);\n");
    QVERIFY(!dir.isEmpty());
    {
        auto newer = Store::openWithMigrations(settings, dir);
        VERIFY_OK(newer);
        auto version = (*newer)->schemaVersion();
        VERIFY_OK(version);
        QCOMPARE(*version, future);
    }
    // A downgrade: this build does not know the schema it would write to.
    auto store = Store::open(settings);
    QVERIFY(!store);
    QCOMPARE(store.error().code, ErrorCode::Incompatible);
    QVERIFY2(store.error().message.contains(QString::number(future)), qPrintable(store.error().message));
}

void tst_Store::recordEventDropsDuplicates()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    Store &s = **store;
    const QJsonObject first{{QStringLiteral("action"), QStringLiteral("opened")}};
    const QJsonObject second{{QStringLiteral("action"), QStringLiteral("edited")}};

    auto fresh = s.recordEvent(QStringLiteral("gitea"), QStringLiteral("d-1"), QStringLiteral("pull_request"), first);
    VERIFY_OK(fresh);
    QCOMPARE(*fresh, true);
    auto duplicate = s.recordEvent(QStringLiteral("gitea"), QStringLiteral("d-1"), QStringLiteral("pull_request"), second);
    VERIFY_OK(duplicate);
    QCOMPARE(*duplicate, false);
    auto otherSource = s.recordEvent(QStringLiteral("plane"), QStringLiteral("d-1"), QStringLiteral("issue"), second);
    VERIFY_OK(otherSource);
    QCOMPARE(*otherSource, true);
    auto otherId = s.recordEvent(QStringLiteral("gitea"), QStringLiteral("d-2"), QStringLiteral("push"), second);
    VERIFY_OK(otherId);
    QCOMPARE(*otherId, true);

    auto db = s.connection();
    VERIFY_OK(db);
    const QList<QVariantList> rows = select(
        *db, QStringLiteral("SELECT source, delivery_id, kind, payload FROM events ORDER BY source, delivery_id"));
    QCOMPARE(rows.size(), 3);
    // The duplicate changed nothing: the first delivery's payload stays.
    QCOMPARE(rows.at(0).at(2).toString(), QStringLiteral("pull_request"));
    QCOMPARE(QJsonDocument::fromJson(rows.at(0).at(3).toString().toUtf8()).object(), first);

    auto invalid = s.recordEvent(QStringLiteral("gitea"), QString(), QStringLiteral("push"), {});
    QVERIFY(!invalid);
    QCOMPARE(invalid.error().code, ErrorCode::InvalidArgument);
}

void tst_Store::concurrentDuplicatesHaveOneWinner()
{
    OPEN_STORE_NAMED(m_stores, settings, opened, "main");
    Store *store = opened->get();

    // Several threads deliver the same ids at the same moment, round after round, each on
    // its own connection. Per round exactly one may see a new event.
    constexpr int threads = 8;
    constexpr int rounds = 25;
    std::vector<std::vector<int>> outcome(rounds, std::vector<int>(threads, -1)); // 1 new, 0 duplicate, -1 error
    std::vector<QString> errors(threads);
    std::barrier start(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int round = 0; round < rounds; ++round) {
                start.arrive_and_wait();
                auto recorded = store->recordEvent(QStringLiteral("gitea"), QStringLiteral("race-%1").arg(round),
                                                   QStringLiteral("push"), {{QStringLiteral("thread"), t}});
                if (recorded)
                    outcome[round][t] = *recorded ? 1 : 0;
                else if (errors[t].isEmpty())
                    errors[t] = errorText(recorded.error());
            }
        });
    }
    for (std::thread &worker : workers)
        worker.join();

    for (int t = 0; t < threads; ++t)
        QVERIFY2(errors[t].isEmpty(), qPrintable(errors[t]));
    for (int round = 0; round < rounds; ++round) {
        QCOMPARE(std::count(outcome[round].cbegin(), outcome[round].cend(), 1), 1);
        QCOMPARE(std::count(outcome[round].cbegin(), outcome[round].cend(), 0), threads - 1);
    }
    auto db = store->connection();
    VERIFY_OK(db);
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM events")).first().first().toInt(), rounds);
}

void tst_Store::heartbeatUpsertsOneRowPerNode()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    Store &s = **store;

    auto never = s.lastHeartbeat(QStringLiteral("node-a"));
    VERIFY_OK(never);
    QVERIFY(!never->isValid());

    const QDateTime t1 = QDateTime::fromMSecsSinceEpoch(Q_INT64_C(1700000000123), Qt::UTC);
    const QDateTime t2 = t1.addSecs(15);
    const QDateTime t3 = t1.addSecs(600);
    VERIFY_OK(s.heartbeat(QStringLiteral("node-a"), 100, t1));
    auto last = s.lastHeartbeat(QStringLiteral("node-a"));
    VERIFY_OK(last);
    QCOMPARE(*last, t1);
    QCOMPARE(last->timeSpec(), Qt::UTC);

    VERIFY_OK(s.heartbeat(QStringLiteral("node-a"), 100, t2));
    last = s.lastHeartbeat(QStringLiteral("node-a"));
    VERIFY_OK(last);
    QCOMPARE(*last, t2);

    auto db = s.connection();
    VERIFY_OK(db);
    const auto nodeRow = [&] {
        return select(*db, QStringLiteral("SELECT pid, heartbeat_at, started_at FROM nodes WHERE name = 'node-a'"));
    };
    QList<QVariantList> rows = nodeRow();
    QCOMPARE(rows.size(), 1);
    QCOMPARE(rows.first().at(2).toLongLong(), t1.toMSecsSinceEpoch()); // same process: started_at kept

    // The node's process restarted: a new pid starts a new started_at.
    VERIFY_OK(s.heartbeat(QStringLiteral("node-a"), 200, t3));
    rows = nodeRow();
    QCOMPARE(rows.size(), 1);
    QCOMPARE(rows.first().at(0).toLongLong(), 200);
    QCOMPARE(rows.first().at(1).toLongLong(), t3.toMSecsSinceEpoch());
    QCOMPARE(rows.first().at(2).toLongLong(), t3.toMSecsSinceEpoch());

    VERIFY_OK(s.heartbeat(QStringLiteral("node-b"), 300, t2));
    last = s.lastHeartbeat(QStringLiteral("node-a"));
    VERIFY_OK(last);
    QCOMPARE(*last, t3);
    QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM nodes")).first().first().toInt(), 2);

    QVERIFY(!s.heartbeat(QStringLiteral("node-a"), 100, QDateTime()));
}

void tst_Store::auditAppendsEntries()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    Store &s = **store;

    const qint64 before = QDateTime::currentMSecsSinceEpoch();
    AuditEntry reap;
    reap.actor = QStringLiteral("reaper");
    reap.action = QStringLiteral("reap");
    reap.projectId = QStringLiteral("shop");
    reap.taskId = 42;
    reap.details = {{QStringLiteral("job"), 7}, {QStringLiteral("tier"), 1}, {QStringLiteral("pid"), QStringLiteral("1234")}};
    VERIFY_OK(s.audit(reap));
    AuditEntry reclaim;
    reclaim.actor = QStringLiteral("sweeper");
    reclaim.action = QStringLiteral("lease-reclaim");
    VERIFY_OK(s.audit(reclaim));
    const qint64 after = QDateTime::currentMSecsSinceEpoch();

    AuditEntry anonymous;
    anonymous.action = QStringLiteral("advance");
    auto refused = s.audit(anonymous);
    QVERIFY(!refused);
    QCOMPARE(refused.error().code, ErrorCode::InvalidArgument);

    auto db = s.connection();
    VERIFY_OK(db);
    const QList<QVariantList> rows =
        select(*db, QStringLiteral("SELECT at, actor, action, project, task_id, details FROM audit ORDER BY id"));
    QCOMPARE(rows.size(), 2);
    for (const QVariantList &row : rows) {
        QVERIFY(row.at(0).toLongLong() >= before);
        QVERIFY(row.at(0).toLongLong() <= after);
    }
    QCOMPARE(rows.at(0).at(1).toString(), QStringLiteral("reaper"));
    QCOMPARE(rows.at(0).at(2).toString(), QStringLiteral("reap"));
    QCOMPARE(rows.at(0).at(3).toString(), QStringLiteral("shop"));
    QCOMPARE(rows.at(0).at(4).toLongLong(), 42);
    QCOMPARE(QJsonDocument::fromJson(rows.at(0).at(5).toString().toUtf8()).object(), reap.details);
    // No project, no task: NULL, not '' or 0, so "WHERE task_id = 0" never matches by accident.
    QCOMPARE(rows.at(1).at(1).toString(), QStringLiteral("sweeper"));
    QVERIFY(rows.at(1).at(3).isNull());
    QVERIFY(rows.at(1).at(4).isNull());
    QCOMPARE(QJsonDocument::fromJson(rows.at(1).at(5).toString().toUtf8()).object(), QJsonObject());
}

// What a CLI process raises waits in the store; each notification goes to exactly one
// daemon, oldest first, whole; routed ones are pruned.
void tst_Store::notificationOutboxHandsEachToOneNode()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    Store &s = **store;
    auto other = Store::open(settings); // another node on the same database
    VERIFY_OK(other);

    for (int i = 1; i <= 5; ++i) {
        Notification n;
        n.event = QStringLiteral("stage-changed");
        n.projectId = QStringLiteral("shop");
        n.taskId = i;
        n.title = QStringLiteral("task %1 moved").arg(i);
        n.text = QStringLiteral("moved review \u2192 approval");
        n.data = QJsonObject{{QStringLiteral("from"), QStringLiteral("review")}, {QStringLiteral("to"), QStringLiteral("approval")}};
        n.at = QDateTime::fromMSecsSinceEpoch(1700000000000 + i, Qt::UTC);
        VERIFY_OK(s.queueNotification(n, QStringLiteral("build-01/cli")));
    }
    QVERIFY(!s.queueNotification(Notification{}, QStringLiteral("x"))); // no event: refused

    // Two nodes claim at once, from two threads: every notification exactly once.
    QList<Notification> mine, theirs;
    QThread *thread = QThread::create([&] {
        for (int k = 0; k < 5; ++k) {
            auto got = (*other)->claimNotifications(QStringLiteral("node-b"), 2);
            if (got)
                theirs.append(*got);
        }
    });
    thread->start();
    for (int k = 0; k < 5; ++k) {
        auto got = s.claimNotifications(QStringLiteral("node-a"), 2);
        VERIFY_OK(got);
        mine.append(*got);
    }
    thread->wait();
    delete thread;
    QSet<qint64> tasks;
    for (const Notification &n : mine + theirs)
        tasks.insert(n.taskId);
    QCOMPARE(mine.size() + theirs.size(), 5);
    QCOMPARE(tasks.size(), 5);
    for (const QList<Notification> &claimed : {mine, theirs}) { // oldest first within a claim
        for (int k = 1; k < claimed.size(); ++k)
            QVERIFY(claimed.at(k - 1).at <= claimed.at(k).at);
    }
    const QList<Notification> all = mine + theirs;
    const Notification &first = all.first();
    QCOMPARE(first.event, QStringLiteral("stage-changed"));
    QCOMPARE(first.projectId, QStringLiteral("shop"));
    QCOMPARE(first.title, QStringLiteral("task %1 moved").arg(first.taskId));
    QCOMPARE(first.text, QStringLiteral("moved review \u2192 approval"));
    QCOMPARE(first.data.value(QStringLiteral("to")).toString(), QStringLiteral("approval"));
    QCOMPARE(first.at, QDateTime::fromMSecsSinceEpoch(1700000000000 + first.taskId, Qt::UTC));
    auto none = s.claimNotifications(QStringLiteral("node-a"), 10);
    VERIFY_OK(none);
    QVERIFY(none->isEmpty());
    // A bare notification (no project, title or text) is kept too, its text empty, not NULL.
    Notification bare;
    bare.event = QStringLiteral("sweep-failed");
    VERIFY_OK(s.queueNotification(bare, QStringLiteral("build-01/cli")));
    auto one = s.claimNotifications(QStringLiteral("node-a"), 10);
    VERIFY_OK(one);
    QCOMPARE(one->size(), 1);
    QCOMPARE(one->first().event, QStringLiteral("sweep-failed"));
    QVERIFY(one->first().text.isEmpty() && one->first().projectId.isEmpty() && one->first().taskId == 0);
    // Routed notifications go once they are old enough; fresh ones stay.
    auto kept = s.pruneNotifications(QDateTime::currentDateTimeUtc().addSecs(-60));
    VERIFY_OK(kept);
    QCOMPARE(*kept, 0);
    auto pruned = s.pruneNotifications(QDateTime::currentDateTimeUtc().addSecs(60));
    VERIFY_OK(pruned);
    QCOMPARE(*pruned, 6);
}

// A webhook delivery is answered once recorded and handled afterwards: of two nodes (or a
// handler and the start-up pass) exactly one takes it; deliveries nobody took are listed for
// the next start, oldest first, and not once taken.
void tst_Store::webhookDeliveriesAreTakenOnce()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    Store &s = **store;
    auto other = Store::open(settings);
    VERIFY_OK(other);
    const QJsonObject payload{{QStringLiteral("events"), QJsonArray{QJsonObject{{QStringLiteral("kind"), QStringLiteral("signal")}}}}};
    for (const char *id : {"d-1", "d-2", "d-3"})
        VERIFY_OK(s.recordEvent(QStringLiteral("shop/plane"), QLatin1String(id), QStringLiteral("webhook"), payload));
    VERIFY_OK(s.recordEvent(QStringLiteral("reconciler"), QStringLiteral("reconcile:x"), QStringLiteral("signal"), QJsonObject()));
    auto left = s.unclaimedEvents(QStringLiteral("webhook"), QDateTime::currentDateTimeUtc().addSecs(5), 10);
    VERIFY_OK(left);
    QCOMPARE(left->size(), 3);
    QCOMPARE(left->first().deliveryId, QStringLiteral("d-1"));
    QCOMPARE(left->first().source, QStringLiteral("shop/plane"));
    QCOMPARE(left->first().payload, payload);
    // Recent ones are left to whoever answered them.
    auto recent = s.unclaimedEvents(QStringLiteral("webhook"), QDateTime::currentDateTimeUtc().addSecs(-60), 10);
    VERIFY_OK(recent);
    QVERIFY(recent->isEmpty());

    std::atomic<int> taken{0};
    QThread *thread = QThread::create([&] {
        for (const char *id : {"d-1", "d-2", "d-3"}) {
            if (auto t = (*other)->claimEvent(QStringLiteral("shop/plane"), QLatin1String(id)); t && *t)
                ++taken;
        }
    });
    thread->start();
    for (const char *id : {"d-1", "d-2", "d-3"}) {
        auto t = s.claimEvent(QStringLiteral("shop/plane"), QLatin1String(id));
        VERIFY_OK(t);
        if (*t)
            ++taken;
    }
    thread->wait();
    delete thread;
    QCOMPARE(taken.load(), 3);
    auto none = s.unclaimedEvents(QStringLiteral("webhook"), QDateTime::currentDateTimeUtc().addSecs(5), 10);
    VERIFY_OK(none);
    QVERIFY(none->isEmpty());
    auto again = s.claimEvent(QStringLiteral("shop/plane"), QStringLiteral("d-2"));
    VERIFY_OK(again);
    QVERIFY(!*again);
}

// Tracker writes stay until the tracker took them: a failed one is released until its next
// try, each due write goes to one node, a newer state supersedes the older open ones, the
// newest state write of a task is found, and done writes are pruned.
void tst_Store::trackerOutboxKeepsWritesUntilTaken()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    auto other = Store::open(settings);
    VERIFY_OK(other);
    TrackerOutbox outbox(**store);
    TrackerOutbox otherOutbox(**other);
    const QDateTime t0 = QDateTime::fromMSecsSinceEpoch(1700000000000, Qt::UTC);
    TrackerWrite w;
    w.project = QStringLiteral("shop");
    w.taskId = 7;
    w.taskVersion = 3;
    w.trackerRef = QStringLiteral("issue-7");
    w.action = QStringLiteral("comment");
    w.value = QStringLiteral("Sluice: task 7 moved");
    w.event = QStringLiteral("stage-changed");
    w.stage = QStringLiteral("review");
    w.key = QStringLiteral("k-1");
    auto comment = outbox.add(w, QStringLiteral("node-a"), t0, t0.addSecs(600));
    VERIFY_OK(comment);
    w.action = QStringLiteral("state");
    w.value = QStringLiteral("in-review");
    w.key = QStringLiteral("k-2");
    auto review = outbox.add(w, QStringLiteral("node-a"), t0, t0.addSecs(600));
    VERIFY_OK(review);
    QVERIFY(!outbox.add(TrackerWrite{}, QStringLiteral("node-a"), t0, t0)); // refused: nothing to write

    // Claimed by node-a while it sends them: nobody else gets them.
    auto due = otherOutbox.claimDue(QStringLiteral("node-b"), t0.addSecs(1), t0.addSecs(601), 10);
    VERIFY_OK(due);
    QVERIFY(due->isEmpty());
    // The comment failed: released until its next try, then due for anyone.
    auto deferred = outbox.defer(*comment, t0.addSecs(5), QStringLiteral("HTTP 500"));
    VERIFY_OK(deferred);
    QVERIFY(*deferred);
    due = otherOutbox.claimDue(QStringLiteral("node-b"), t0.addSecs(4), t0.addSecs(604), 10);
    VERIFY_OK(due);
    QVERIFY(due->isEmpty());
    due = otherOutbox.claimDue(QStringLiteral("node-b"), t0.addSecs(5), t0.addSecs(605), 10);
    VERIFY_OK(due);
    QCOMPARE(due->size(), 1);
    QCOMPARE(due->first().id, *comment);
    QCOMPARE(due->first().attempts, 1);
    QCOMPARE(due->first().lastError, QStringLiteral("HTTP 500"));
    QCOMPARE(due->first().value, QStringLiteral("Sluice: task 7 moved"));
    QCOMPARE(due->first().key, QStringLiteral("k-1"));
    auto twice = outbox.claimDue(QStringLiteral("node-a"), t0.addSecs(6), t0.addSecs(606), 10);
    VERIFY_OK(twice);
    QVERIFY(twice->isEmpty()); // node-b holds it
    auto finished = otherOutbox.finish(*comment, QStringLiteral("ok"), QString(), t0.addSecs(6));
    VERIFY_OK(finished);
    QVERIFY(*finished);

    // A newer state supersedes the older open one; a late end of the older one changes nothing.
    w.value = QStringLiteral("needs-input");
    w.event = QStringLiteral("approval-requested");
    w.stage = QStringLiteral("approval");
    w.taskVersion = 4;
    w.key = QStringLiteral("k-3");
    auto needsInput = outbox.add(w, QStringLiteral("node-a"), t0.addSecs(7), t0.addSecs(607));
    VERIFY_OK(needsInput);
    auto late = outbox.finish(*review, QStringLiteral("ok"), QString(), t0.addSecs(8));
    VERIFY_OK(late);
    QVERIFY(!*late);
    auto open = outbox.open();
    VERIFY_OK(open);
    QCOMPARE(open->size(), 1);
    QCOMPARE(open->first().id, *needsInput);
    auto latest = outbox.latestStateWrite(QStringLiteral("shop"), 7);
    VERIFY_OK(latest);
    QVERIFY(latest->has_value());
    QCOMPARE((*latest)->value, QStringLiteral("needs-input"));
    QCOMPARE((*latest)->taskVersion, 4);
    QCOMPARE((*latest)->event, QStringLiteral("approval-requested"));
    QVERIFY(!(*latest)->doneAt.isValid());
    VERIFY_OK(outbox.finish(*needsInput, QStringLiteral("ok"), QString(), t0.addSecs(9)));
    latest = outbox.latestStateWrite(QStringLiteral("shop"), 7);
    VERIFY_OK(latest);
    QCOMPARE((*latest)->outcome, QStringLiteral("ok"));
    auto none = outbox.latestStateWrite(QStringLiteral("shop"), 8);
    VERIFY_OK(none);
    QVERIFY(!none->has_value());

    // A node that ended while it held a write: its next start releases it.
    w.key = QStringLiteral("k-4");
    w.action = QStringLiteral("comment");
    auto orphan = outbox.add(w, QStringLiteral("node-a"), t0.addSecs(10), t0.addSecs(610));
    VERIFY_OK(orphan);
    auto released = outbox.releaseClaims(QStringLiteral("node-a"));
    VERIFY_OK(released);
    QCOMPARE(*released, 1);
    due = otherOutbox.claimDue(QStringLiteral("node-b"), t0.addSecs(11), t0.addSecs(611), 10);
    VERIFY_OK(due);
    QCOMPARE(due->size(), 1);
    QCOMPARE(due->first().id, *orphan);

    auto pruned = outbox.prune(t0.addSecs(30));
    VERIFY_OK(pruned);
    QCOMPARE(*pruned, 3); // the comment, the superseded and the finished state; the orphan is open
}

void tst_Store::pluginStateIsScopedToOneInstance()
{
    QFETCH(QString, engine);
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");
    const QByteArray binary("\x00\xff\x01\x80\x7f' \\x--tail", 17);
    {
        auto store = Store::open(settings);
        VERIFY_OK(store);
        Store &s = **store;
        std::unique_ptr<StateStore> ci = s.pluginState(QStringLiteral("shop"), QStringLiteral("ci"));
        std::unique_ptr<StateStore> merge = s.pluginState(QStringLiteral("shop"), QStringLiteral("merge"));
        std::unique_ptr<StateStore> otherProject = s.pluginState(QStringLiteral("blog"), QStringLiteral("ci"));

        auto missing = ci->value(QStringLiteral("cursor"));
        VERIFY_OK(missing);
        QVERIFY(!missing->has_value());

        VERIFY_OK(ci->setValue(QStringLiteral("cursor"), "page-1"));
        VERIFY_OK(merge->setValue(QStringLiteral("cursor"), "merge-cursor"));
        auto none = otherProject->value(QStringLiteral("cursor"));
        VERIFY_OK(none);
        QVERIFY(!none->has_value());
        auto value = ci->value(QStringLiteral("cursor"));
        VERIFY_OK(value);
        QCOMPARE(value->value_or("<none>"), QByteArray("page-1"));
        value = merge->value(QStringLiteral("cursor"));
        VERIFY_OK(value);
        QCOMPARE(value->value_or("<none>"), QByteArray("merge-cursor"));

        // Overwrite replaces, in place.
        VERIFY_OK(ci->setValue(QStringLiteral("cursor"), "page-2"));
        value = ci->value(QStringLiteral("cursor"));
        VERIFY_OK(value);
        QCOMPARE(value->value_or("<none>"), QByteArray("page-2"));
        auto db = s.connection();
        VERIFY_OK(db);
        QCOMPARE(select(*db, QStringLiteral("SELECT COUNT(*) FROM plugin_state WHERE key = 'cursor'")).first().first().toInt(), 2);

        // Values are bytes: NUL, high bytes and quote characters survive; empty is a value.
        VERIFY_OK(ci->setValue(QStringLiteral("binary"), binary));
        VERIFY_OK(ci->setValue(QStringLiteral("empty"), QByteArray()));
        auto empty = ci->value(QStringLiteral("empty"));
        VERIFY_OK(empty);
        QVERIFY(empty->has_value());
        QCOMPARE(empty->value(), QByteArray(""));

        // Removing is scoped too, and removing a missing key succeeds.
        VERIFY_OK(ci->remove(QStringLiteral("cursor")));
        value = ci->value(QStringLiteral("cursor"));
        VERIFY_OK(value);
        QVERIFY(!value->has_value());
        value = merge->value(QStringLiteral("cursor"));
        VERIFY_OK(value);
        QCOMPARE(value->value_or("<none>"), QByteArray("merge-cursor"));
        VERIFY_OK(ci->remove(QStringLiteral("never-set")));

        QVERIFY(!ci->setValue(QString(), "x"));
    }
    // The state survives the process.
    auto reopened = Store::open(settings);
    VERIFY_OK(reopened);
    auto value = (*reopened)->pluginState(QStringLiteral("shop"), QStringLiteral("ci"))->value(QStringLiteral("binary"));
    VERIFY_OK(value);
    QCOMPARE(value->value_or("<none>"), binary);
}

void tst_Store::worksFromAnotherThread()
{
    OPEN_STORE_NAMED(m_stores, settings, store, "main");
    Store &s = **store;
    auto mainDb = s.connection();
    VERIFY_OK(mainDb);
    const QString mainName = mainDb->connectionName();

    QString threadName;
    QString threadError;
    bool recorded = false;
    std::thread([&] {
        auto db = s.connection();
        if (!db) {
            threadError = errorText(db.error());
            return;
        }
        threadName = db->connectionName();
        auto fresh = s.recordEvent(QStringLiteral("cli"), QStringLiteral("from-thread"), QStringLiteral("approve"), {});
        if (!fresh)
            threadError = errorText(fresh.error());
        else
            recorded = *fresh;
    }).join();

    QVERIFY2(threadError.isEmpty(), qPrintable(threadError));
    QVERIFY(recorded);
    QVERIFY(!threadName.isEmpty());
    QVERIFY(threadName != mainName);
    // The thread has exited: its connection went with it.
    QVERIFY2(!QSqlDatabase::contains(threadName), qPrintable(threadName));
    QVERIFY(QSqlDatabase::contains(mainName));
    // What the thread wrote is committed and visible here.
    auto duplicate = s.recordEvent(QStringLiteral("cli"), QStringLiteral("from-thread"), QStringLiteral("approve"), {});
    VERIFY_OK(duplicate);
    QCOMPARE(*duplicate, false);
    // The same thread asking twice gets the same connection.
    auto mainAgain = s.connection();
    VERIFY_OK(mainAgain);
    QCOMPARE(mainAgain->connectionName(), mainName);
}

void tst_Store::destroyingTheStoreRemovesItsConnections()
{
    OPEN_STORE_NAMED(m_stores, settings, opened, "main");
    std::unique_ptr<Store> store = std::move(*opened);
    auto db = store->connection();
    VERIFY_OK(db);
    const QString mainName = db->connectionName();
    db = QSqlDatabase(); // drop our handle, as callers do at the end of a call
    std::unique_ptr<StateStore> state = store->pluginState(QStringLiteral("shop"), QStringLiteral("ci"));
    VERIFY_OK(state->setValue(QStringLiteral("k"), "v"));

    // A worker that used the store and is still alive (idle) when the store goes.
    QString workerName;
    std::latch used(1);
    std::latch release(1);
    std::thread worker([&] {
        if (auto workerDb = store->connection())
            workerName = workerDb->connectionName();
        used.count_down();
        release.wait();
    });
    used.wait();
    QVERIFY(!workerName.isEmpty());
    QVERIFY(QSqlDatabase::contains(workerName));

    store.reset();
    QVERIFY(!QSqlDatabase::contains(mainName));
    QVERIFY(!QSqlDatabase::contains(workerName));
    release.count_down();
    worker.join();

    // A StateStore that outlives its Store fails instead of crashing.
    auto afterwards = state->value(QStringLiteral("k"));
    QVERIFY(!afterwards);
    QCOMPARE(afterwards.error().code, ErrorCode::Storage);
}

void tst_Store::openErrorsNameTheDatabase()
{
    QFETCH(QString, engine);
    STORE_SETTINGS_NAMED(m_stores, settings, engine, "main");
    QString where;
    QString password;
    if (settings.driver == StoreSettings::Driver::Sqlite) {
        // The database "file" is a directory: the driver refuses it.
        settings.sqlitePath = m_stores.filePath(QStringLiteral("not-a-file.db"));
        QVERIFY(QDir().mkpath(settings.sqlitePath));
        where = settings.sqlitePath;
    } else {
        // A port nobody listens on, with a password that must not show.
        QTcpServer probe;
        QVERIFY(probe.listen(QHostAddress::LocalHost));
        settings.host = QStringLiteral("127.0.0.1");
        settings.port = probe.serverPort();
        probe.close();
        where = QStringLiteral("127.0.0.1:%1").arg(settings.port);
        password = QStringLiteral("sluice-unused-password-%1").arg(randomHex(8));
        QFile file(m_stores.filePath(QStringLiteral("password")));
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write(password.toUtf8());
        file.close();
        settings.password = SecretRef::file(file.fileName());
    }
    auto store = Store::open(settings);
    QVERIFY(!store);
    QCOMPARE(store.error().code, ErrorCode::Storage);
    QVERIFY2(store.error().message.contains(where), qPrintable(errorText(store.error())));
    QVERIFY2(!store.error().detail.isEmpty(), qPrintable(errorText(store.error())));
    if (!password.isEmpty())
        QVERIFY2(!errorText(store.error()).contains(password), qPrintable(errorText(store.error())));
}

void tst_Store::postgresqlPasswordIsUsedAndNeverShown()
{
    Test::PostgresServer server;
    if (!Test::postgresServer(&server))
        return;
    QVERIFY(!server.passwordUser.isEmpty());
    StoreSettings settings;
    if (!m_stores.settings(QStringLiteral("postgresql"), &settings, QStringLiteral("password"), server.passwordUser))
        return;
    settings.user = server.passwordUser;

    // The right password (from the server's file) gets in.
    settings.password = SecretRef::file(server.passwordFile);
    {
        auto store = Store::open(settings);
        VERIFY_OK(store);
        auto version = (*store)->schemaVersion();
        VERIFY_OK(version);
        QCOMPARE(*version, Store::latestSchemaVersion());
    }

    // A wrong one is refused, and the error names the server but not the password.
    const QString wrong = QStringLiteral("sluice-wrong-password-%1").arg(randomHex(8));
    const QString passwordPath = m_stores.filePath(QStringLiteral("wrong-password"));
    QFile file(passwordPath);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(wrong.toUtf8() + '\n');
    file.close();
    settings.password = SecretRef::file(passwordPath);
    auto store = Store::open(settings);
    QVERIFY(!store);
    const QString text = errorText(store.error());
    QVERIFY2(!text.contains(wrong), qPrintable(text));
    QVERIFY2(!text.contains(wrong.right(16)), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("%1:%2").arg(server.host).arg(server.port)), qPrintable(text));
    QVERIFY2(text.contains(settings.database), qPrintable(text));
    QVERIFY2(text.contains(server.passwordUser), qPrintable(text));
    QVERIFY2(text.contains(QLatin1String("password authentication failed")), qPrintable(text));

    // A password file that cannot be read names the file, not a value.
    settings.password = SecretRef::file(m_stores.filePath(QStringLiteral("no-such-password")));
    auto unreadable = Store::open(settings);
    QVERIFY(!unreadable);
    QVERIFY2(unreadable.error().message.contains(QLatin1String("no-such-password")), qPrintable(errorText(unreadable.error())));
}

void tst_Store::postgresqlAcceptsASocketDirectory()
{
    Test::PostgresServer server;
    if (!Test::postgresServer(&server))
        return;
    QVERIFY(!server.socket.isEmpty());
    STORE_SETTINGS_NAMED(m_stores, settings, QStringLiteral("postgresql"), "main");
    settings.host = server.socket;
    auto store = Store::open(settings);
    VERIFY_OK(store);
    auto db = (*store)->connection();
    VERIFY_OK(db);
    // inet_client_addr() is NULL on a Unix socket connection.
    const QList<QVariantList> rows = select(*db, QStringLiteral("SELECT inet_client_addr()"));
    QCOMPARE(rows.size(), 1);
    QVERIFY(rows.first().first().isNull());
}

void tst_Store::postgresqlReconnectsAfterLosingTheServer()
{
    STORE_SETTINGS_NAMED(m_stores, settings, QStringLiteral("postgresql"), "main");
    auto store = Store::open(settings);
    VERIFY_OK(store);
    Store &s = **store;
    VERIFY_OK(s.heartbeat(QStringLiteral("node-a"), 1, QDateTime::currentDateTimeUtc()));

    // What a server restart or an operator's pg_terminate_backend does to our connection.
    QString failure;
    QSqlDatabase admin = m_stores.admin(&failure);
    QVERIFY2(admin.isOpen(), qPrintable(failure));
    QSqlQuery kill(admin);
    QVERIFY2(kill.exec(QStringLiteral("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                                      "WHERE datname = '%1' AND pid <> pg_backend_pid()").arg(settings.database)),
             qPrintable(kill.lastError().text()));
    QVERIFY(kill.next());
    QVERIFY(kill.value(0).toBool());

    // The call that meets the dead connection fails (it cannot know whether it ran)...
    auto lost = s.heartbeat(QStringLiteral("node-a"), 1, QDateTime::currentDateTimeUtc());
    QVERIFY(!lost);
    QCOMPARE(lost.error().code, ErrorCode::Storage);
    // ...and the next one reconnects.
    const QDateTime later = QDateTime::currentDateTimeUtc().addSecs(1);
    VERIFY_OK(s.heartbeat(QStringLiteral("node-a"), 1, later));
    auto last = s.lastHeartbeat(QStringLiteral("node-a"));
    VERIFY_OK(last);
    QCOMPARE(last->toMSecsSinceEpoch(), later.toMSecsSinceEpoch());
}

QTEST_GUILESS_MAIN(tst_Store)
#include "tst_store.moc"
