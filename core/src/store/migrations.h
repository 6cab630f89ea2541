// SPDX-License-Identifier: Apache-2.0
#pragma once

// Versioned schema migrations: NNNN_name.sql files, one SQL text for both engines.

#include "store/store.h"

#include <QList>
#include <QString>
#include <QStringList>

namespace Sluice {

class StoreConnections;

/// One migration file.
struct Migration {
    int version = 0;  ///< NNNN of the file name.
    QString name;     ///< The part after "NNNN_", recorded in schema_migrations.
    QString fileName; ///< "0001_initial.sql", how errors name it.
    QString text;     ///< The SQL with its placeholders.
};

/// Where the migrations embedded in sluice-core live (resources/migrations/migrations.qrc).
[[nodiscard]] inline QString builtInMigrationsDirectory() { return QStringLiteral(":/migrations"); }

/**
 * Reads every *.sql file of @p directory, sorted by version. A .sql file not named
 * NNNN_name.sql, a version 0 or a version used twice is an error: such a migration would
 * otherwise silently never apply.
 */
[[nodiscard]] Result<QList<Migration>> loadMigrations(const QString &directory);

/**
 * The statements of @p migration for @p driver: placeholders ({{id}}, {{bytes}}) replaced,
 * comment lines dropped, split after each line that ends in ';'. QSQLITE runs one statement
 * per call, so both engines get them one by one.
 */
[[nodiscard]] Result<QStringList> migrationStatements(const Migration &migration,
                                                      StoreSettings::Driver driver);

/**
 * Applies the migrations of @p migrations that the database lacks, in order, in one
 * transaction, recording each in schema_migrations. Concurrent migrators (several nodes
 * starting at once) are serialised: BEGIN IMMEDIATE on SQLite, a transaction-scoped
 * advisory lock on PostgreSQL. Any failure rolls everything back. Returns how many applied.
 */
[[nodiscard]] Result<int> applyMigrations(StoreConnections &connections, const QList<Migration> &migrations);

} // namespace Sluice
