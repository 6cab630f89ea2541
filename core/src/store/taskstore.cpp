// SPDX-License-Identifier: Apache-2.0
#include "store/taskstore.h"

#include "store/connections.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QMutexLocker>
#include <QSet>
#include <QSqlDriver>
#include <QSqlError>
#include <QSqlField>

namespace Sluice {

// ---- prepared statements --------------------------------------------------------------

struct PreparedStatements::Connection {
    QString name;
    const void *handle = nullptr; // the driver's native handle (sqlite3*, PGconn*) when prepared
    bool postgresql = false;
    bool dirty = false;           // a statement failed: prepare everything again on next use
    QString description;          // describeDatabase(), how errors name the database
    QString password;             // removed from error texts
    QHash<QString, std::shared_ptr<QSqlQuery>> statements; // by SQL text
    QSet<QString> serverStatements;    // PostgreSQL: our own PREPAREd statements known to exist
    std::shared_ptr<QSqlQuery> script; // runs execScript()
};

namespace {

const void *nativeHandle(const QSqlDatabase &db)
{
    const QVariant handle = db.driver() ? db.driver()->handle() : QVariant();
    // Both drivers hand out a pointer type (sqlite3*, PGconn*) stored in place.
    return handle.isValid() ? *static_cast<const void *const *>(handle.constData()) : nullptr;
}

} // namespace

PreparedStatements::PreparedStatements(Store &store)
    : m_store(store)
{
}

PreparedStatements::~PreparedStatements() = default;

Result<PreparedStatements::Session> PreparedStatements::session() const
{
    Result<QSqlDatabase> db = m_store.connection();
    if (!db)
        return std::unexpected(db.error());
    const QString name = db->connectionName();

    std::shared_ptr<Connection> connection;
    {
        QMutexLocker lock(&m_mutex);
        connection = m_connections.value(name);
        if (!connection) {
            // A new thread: forget the statements of connections that are gone. Their driver
            // went with them, so destroying their queries here touches no database.
            for (auto it = m_connections.begin(); it != m_connections.end();) {
                if (!QSqlDatabase::contains(it.key()))
                    it = m_connections.erase(it);
                else
                    ++it;
            }
            connection = std::make_shared<Connection>();
            connection->name = name;
            connection->postgresql = db->driverName() == QLatin1String("QPSQL");
            StoreSettings settings;
            settings.driver = connection->postgresql ? StoreSettings::Driver::Postgresql : StoreSettings::Driver::Sqlite;
            settings.sqlitePath = db->databaseName();
            settings.database = db->databaseName();
            settings.host = db->hostName();
            settings.port = db->port();
            settings.user = db->userName();
            connection->description = describeDatabase(settings);
            connection->password = db->password();
            m_connections.insert(name, connection);
        }
    }

    // Only this thread uses its connection's statements: no lock from here on.
    if (connection->dirty || connection->handle != nativeHandle(*db)) {
        // Dropping a statement deallocates it on PostgreSQL: talking to the server can be
        // what reveals that the connection is gone, and then it is opened again here.
        connection->statements.clear();
        connection->script.reset();
        connection->serverStatements.clear(); // looked up again before use
        connection->dirty = false;
        if (!db->isOpen()) {
            db = m_store.connection();
            if (!db)
                return std::unexpected(db.error());
        }
        connection->handle = nativeHandle(*db);
    }
    return Session(*db, std::move(connection), m_store.nodeFence());
}

PreparedStatements::Session::Session(QSqlDatabase db, std::shared_ptr<Connection> connection, NodeFence fence)
    : m_db(std::move(db))
    , m_connection(std::move(connection))
    , m_fence(std::move(fence))
{
}

bool PreparedStatements::Session::isPostgresql() const
{
    return m_connection->postgresql;
}

QString PreparedStatements::Session::fenceCondition(StatementBinds &binds) const
{
    if (!m_fence.isSet())
        return QString();
    binds.append({QStringLiteral(":fence_node"), m_fence.node});
    binds.append({QStringLiteral(":fence_instance"), m_fence.instance});
    return QStringLiteral(" AND EXISTS (SELECT 1 FROM nodes fence WHERE fence.name = :fence_node AND fence.instance = :fence_instance)");
}

QString PreparedStatements::Session::clock() const
{
    return storeClockSql(m_connection->postgresql ? StoreSettings::Driver::Postgresql : StoreSettings::Driver::Sqlite);
}

Result<ExecutedQuery> PreparedStatements::Session::exec(const QString &what, const QString &sql,
                                                        const StatementBinds &binds)
{
    std::shared_ptr<QSqlQuery> &slot = m_connection->statements[sql];
    if (!slot) {
        auto query = std::make_shared<QSqlQuery>(m_db);
        query->setForwardOnly(true);
        if (!query->prepare(sql)) {
            m_connection->statements.remove(sql);
            m_connection->dirty = true;
            return std::unexpected(error(what, query->lastError().text()));
        }
        slot = std::move(query);
    }
    QSqlQuery *query = slot.get();
    for (const auto &[placeholder, value] : binds) {
        // Qt binds a null QString as SQL NULL; our text columns are NOT NULL DEFAULT ''.
        // SQL NULL is asked for with an invalid QVariant.
        if (value.userType() == QMetaType::QString && value.toString().isNull())
            query->bindValue(placeholder, QString(QLatin1String("")));
        else
            query->bindValue(placeholder, value);
    }
    if (!query->exec()) {
        const QString driverText = query->lastError().text();
        query->finish();
        m_connection->dirty = true;
        return std::unexpected(error(what, driverText));
    }
    return ExecutedQuery(query);
}

Result<void> PreparedStatements::Session::prepareOnServer(const QString &what, const QString &name,
                                                          const QString &parameterTypes, const QString &sql)
{
    if (m_connection->serverStatements.contains(name))
        return {};
    // Another JobQueue on this connection, or this one before an error, may have prepared it.
    {
        Result<ExecutedQuery> known = exec(
            what, QStringLiteral("SELECT COUNT(*) FROM pg_prepared_statements WHERE name = :name"),
            {{QStringLiteral(":name"), name}});
        if (!known)
            return std::unexpected(known.error());
        if ((*known)->next() && (*known)->value(0).toInt() > 0) {
            m_connection->serverStatements.insert(name);
            return {};
        }
    }
    QSqlQuery prepare(m_db);
    if (!prepare.exec(QStringLiteral("PREPARE %1 (%2) AS %3").arg(name, parameterTypes, sql))) {
        m_connection->dirty = true;
        return std::unexpected(error(what, prepare.lastError().text()));
    }
    m_connection->serverStatements.insert(name);
    return {};
}

QString PreparedStatements::Session::literal(const QVariant &value) const
{
    // Exactly how the driver writes values into the EXECUTE it sends for its own prepared
    // statements; a null QString is '' as in exec().
    QSqlField field(QString(), value.type());
    if (value.userType() == QMetaType::QString && value.toString().isNull())
        field.setValue(QString(QLatin1String("")));
    else if (value.isValid() && !value.isNull())
        field.setValue(value);
    return m_db.driver()->formatValue(field);
}

Result<ExecutedQuery> PreparedStatements::Session::execScript(const QString &what, const QString &script)
{
    if (!m_connection->script) {
        m_connection->script = std::make_shared<QSqlQuery>(m_db);
        m_connection->script->setForwardOnly(true);
    }
    QSqlQuery *query = m_connection->script.get();
    if (!query->exec(script)) {
        const QString driverText = query->lastError().text();
        query->finish();
        m_connection->dirty = true;
        return std::unexpected(error(what, driverText));
    }
    return ExecutedQuery(query);
}

Result<int> PreparedStatements::Session::execWrite(const QString &what, const QString &sql,
                                                   const StatementBinds &binds)
{
    Result<ExecutedQuery> query = exec(what, sql, binds);
    if (!query)
        return std::unexpected(query.error());
    const int rows = (*query)->numRowsAffected();
    if (rows < 0)
        return std::unexpected(error(what, QStringLiteral("the driver did not report how many rows changed")));
    return rows;
}

Result<void> PreparedStatements::Session::begin(const QString &what)
{
    if (m_connection->postgresql) {
        // PostgreSQL cannot PREPARE BEGIN; the driver sends it as it is.
        if (!m_db.transaction())
            return std::unexpected(error(QStringLiteral("starting a transaction for ") + what,
                                         m_db.lastError().text()));
        return {};
    }
    Result<ExecutedQuery> begun = exec(QStringLiteral("starting a transaction for ") + what,
                                       QStringLiteral("BEGIN IMMEDIATE"));
    if (!begun)
        return std::unexpected(begun.error());
    return {};
}

Result<void> PreparedStatements::Session::commit(const QString &what)
{
    if (m_connection->postgresql) {
        if (!m_db.commit())
            return std::unexpected(error(QStringLiteral("committing ") + what, m_db.lastError().text()));
        return {};
    }
    Result<ExecutedQuery> committed = exec(QStringLiteral("committing ") + what, QStringLiteral("COMMIT"));
    if (!committed)
        return std::unexpected(committed.error());
    return {};
}

void PreparedStatements::Session::rollback(const QString &what)
{
    bool rolledBack = false;
    QString driverText;
    if (m_connection->postgresql) {
        rolledBack = m_db.rollback();
        driverText = m_db.lastError().text();
    } else {
        Result<ExecutedQuery> done = exec(QStringLiteral("rolling back ") + what, QStringLiteral("ROLLBACK"));
        rolledBack = done.has_value();
        if (!done)
            driverText = done.error().detail;
    }
    if (!rolledBack)
        qCWarning(lcStore).noquote() << error(QStringLiteral("rolling back ") + what, driverText).toString();
}

Error PreparedStatements::Session::error(const QString &what, const QString &driverText) const
{
    const auto scrub = [this](const QString &text) {
        QString out = Redaction::redact(text);
        if (!m_connection->password.isEmpty())
            out.replace(m_connection->password, QStringLiteral("[REDACTED]"));
        return out;
    };
    return Error{ErrorCode::Storage, scrub(QStringLiteral("%1 failed on %2").arg(what, m_connection->description)),
                 scrub(driverText.trimmed())};
}

ExecutedQuery::~ExecutedQuery()
{
    if (m_query)
        m_query->finish();
}

Result<StoreTransaction> StoreTransaction::begin(PreparedStatements::Session &session, const QString &what)
{
    if (Result<void> begun = session.begin(what); !begun)
        return std::unexpected(begun.error());
    return StoreTransaction(&session, what);
}

StoreTransaction::~StoreTransaction()
{
    if (m_session)
        m_session->rollback(m_what);
}

Result<void> StoreTransaction::commit()
{
    PreparedStatements::Session *session = std::exchange(m_session, nullptr);
    if (!session)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("%1: the transaction is no longer open").arg(m_what));
    Result<void> committed = session->commit(m_what);
    if (!committed)
        session->rollback(m_what); // SQLite keeps the transaction open when COMMIT fails (busy)
    return committed;
}

// ---- tasks ----------------------------------------------------------------------------

namespace {

const QStringList TaskStatuses = {QStringLiteral("active"), QStringLiteral("blocked"), QStringLiteral("done")};

QLatin1String taskColumns()
{
    return QLatin1String("id, project, title, description, branch, stage, status, blocked_reason, head_sha, "
                         "tracker_ref, pull_request, retries, version, created_at, updated_at, pushed_sha");
}

QDateTime fromMsecs(const QVariant &value)
{
    return value.isNull() ? QDateTime() : QDateTime::fromMSecsSinceEpoch(value.toLongLong(), Qt::UTC);
}

TaskRecord taskFromRow(const QSqlQuery &query)
{
    TaskRecord task;
    task.id = query.value(0).toLongLong();
    task.project = query.value(1).toString();
    task.title = query.value(2).toString();
    task.description = query.value(3).toString();
    task.branch = query.value(4).toString();
    task.stage = query.value(5).toString();
    task.status = query.value(6).toString();
    task.blockedReason = query.value(7).toString();
    task.headSha = query.value(8).toString();
    task.trackerRef = query.value(9).toString();
    task.pullRequest = query.value(10).toLongLong();
    task.retries = query.value(11).toInt();
    task.version = query.value(12).toLongLong();
    task.createdAt = fromMsecs(query.value(13));
    task.updatedAt = fromMsecs(query.value(14));
    task.pushedSha = query.value(15).toString();
    return task;
}

QString compactJson(const QJsonDocument &document)
{
    return QString::fromUtf8(document.toJson(QJsonDocument::Compact));
}

Result<std::optional<TaskRecord>> oneTask(Result<ExecutedQuery> query)
{
    if (!query)
        return std::unexpected(query.error());
    if (!(*query)->next())
        return std::optional<TaskRecord>();
    return std::optional<TaskRecord>(taskFromRow(**query));
}

} // namespace

TaskInfo TaskRecord::toInfo() const
{
    TaskInfo info;
    info.id = id;
    info.projectId = project;
    info.title = title;
    info.description = description;
    info.branch = branch;
    info.stage = stage;
    info.headSha = headSha;
    info.trackerRef = trackerRef;
    info.pullRequest = pullRequest;
    info.retries = retries;
    info.createdAt = createdAt;
    info.updatedAt = updatedAt;
    return info;
}

TaskStore::TaskStore(Store &store)
    : m_statements(store)
{
}

TaskStore::~TaskStore() = default;

Result<qint64> TaskStore::create(const NewTask &task)
{
    if (task.project.isEmpty() || task.stage.isEmpty())
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("a task needs a project and a stage (got '%1' and '%2')").arg(task.project, task.stage));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());

    // The partial unique index tasks_open_branch decides, atomically, also between nodes:
    // the loser inserts nothing and gets no id back.
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    const QString what = QStringLiteral("creating a task of project %1 on branch '%2'").arg(task.project, task.branch);
    {
        Result<ExecutedQuery> inserted = session->exec(
            what,
            QStringLiteral("INSERT INTO tasks (project, title, description, branch, stage, status, tracker_ref, "
                           "created_at, updated_at) "
                           "VALUES (:project, :title, :description, :branch, :stage, 'active', :tracker_ref, :now, :now) "
                           "ON CONFLICT DO NOTHING RETURNING id"),
            {{QStringLiteral(":project"), task.project},
             // Masked on the way in (Redaction::mask): everything read back is masked already.
             {QStringLiteral(":title"), Redaction::mask(task.title)},
             {QStringLiteral(":description"), Redaction::mask(task.description)},
             {QStringLiteral(":branch"), task.branch},
             {QStringLiteral(":stage"), task.stage},
             {QStringLiteral(":tracker_ref"), task.trackerRef},
             {QStringLiteral(":now"), now}});
        if (!inserted)
            return std::unexpected(inserted.error());
        if ((*inserted)->next())
            return (*inserted)->value(0).toLongLong();
    }

    // Name the task that holds the branch, for the people reading the error.
    Result<ExecutedQuery> holder = session->exec(
        QStringLiteral("looking up the open task on branch '%1' of project %2").arg(task.branch, task.project),
        QStringLiteral("SELECT id FROM tasks WHERE project = :project AND branch = :branch AND status <> 'done' "
                       "AND branch <> ''"),
        {{QStringLiteral(":project"), task.project}, {QStringLiteral(":branch"), task.branch}});
    if (!holder)
        return std::unexpected(holder.error());
    const QString owner = (*holder)->next() ? QStringLiteral("task %1").arg((*holder)->value(0).toLongLong())
                                            : QStringLiteral("another open task");
    return fail(ErrorCode::Conflict, QStringLiteral("branch '%1' of project %2 is already used by %3")
                                         .arg(task.branch, task.project, owner));
}

Result<std::optional<TaskRecord>> TaskStore::task(qint64 id) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return oneTask(session->exec(QStringLiteral("reading task %1").arg(id),
                                 QStringLiteral("SELECT %1 FROM tasks WHERE id = :id").arg(taskColumns()),
                                 {{QStringLiteral(":id"), id}}));
}

Result<QHash<QPair<QString, QString>, int>> TaskStore::countsByProjectAndStatus() const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(QStringLiteral("counting tasks by project and status"),
                                                QStringLiteral("SELECT project, status, COUNT(*) FROM tasks GROUP BY project, status"));
    if (!query)
        return std::unexpected(query.error());
    QHash<QPair<QString, QString>, int> counts;
    while ((*query)->next())
        counts.insert({(*query)->value(0).toString(), (*query)->value(1).toString()}, (*query)->value(2).toInt());
    return counts;
}

Result<QList<TaskRecord>> TaskStore::tasks(const QString &project, const QStringList &statuses) const
{
    for (const QString &status : statuses) {
        if (!TaskStatuses.contains(status))
            return fail(ErrorCode::InvalidArgument, QStringLiteral("'%1' is not a task status (one of %2)")
                                                        .arg(status, TaskStatuses.join(QLatin1String(", "))));
    }
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());

    QStringList conditions;
    StatementBinds binds;
    if (!project.isEmpty()) {
        conditions << QStringLiteral("project = :project");
        binds.append({QStringLiteral(":project"), project});
    }
    if (!statuses.isEmpty()) {
        // Each distinct list is another statement to prepare: keep them few.
        QStringList distinct = statuses;
        distinct.removeDuplicates();
        distinct.sort();
        QStringList placeholders;
        for (qsizetype i = 0; i < distinct.size(); ++i) {
            placeholders << QStringLiteral(":status%1").arg(i);
            binds.append({placeholders.last(), distinct.at(i)});
        }
        conditions << QStringLiteral("status IN (%1)").arg(placeholders.join(QLatin1String(", ")));
    }
    const QString where = conditions.isEmpty() ? QString()
                                               : QStringLiteral(" WHERE ") + conditions.join(QLatin1String(" AND "));
    Result<ExecutedQuery> query = session->exec(
        project.isEmpty() ? QStringLiteral("listing tasks") : QStringLiteral("listing the tasks of project %1").arg(project),
        QStringLiteral("SELECT %1 FROM tasks%2 ORDER BY id").arg(taskColumns(), where), binds);
    if (!query)
        return std::unexpected(query.error());
    QList<TaskRecord> found;
    while ((*query)->next())
        found.append(taskFromRow(**query));
    return found;
}

Result<std::optional<TaskRecord>> TaskStore::findByTrackerRef(const QString &project, const QString &trackerRef) const
{
    // An empty reference would match every task that has none.
    if (project.isEmpty() || trackerRef.isEmpty())
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("finding a task by tracker reference needs a project and a reference (got '%1' and '%2')")
                        .arg(project, trackerRef));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    return oneTask(session->exec(
        QStringLiteral("finding the task of tracker issue %1 in project %2").arg(trackerRef, project),
        QStringLiteral("SELECT %1 FROM tasks WHERE project = :project AND tracker_ref = :tracker_ref "
                       "ORDER BY CASE WHEN status = 'done' THEN 1 ELSE 0 END, id DESC LIMIT 1").arg(taskColumns()),
        {{QStringLiteral(":project"), project}, {QStringLiteral(":tracker_ref"), trackerRef}}));
}

Result<bool> TaskStore::claimTransition(qint64 id, const QString &fromStage, const QString &toStage,
                                        const TaskChange &change)
{
    if (fromStage.isEmpty() || toStage.isEmpty())
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("moving task %1 needs the stage it is in and the stage it goes to (got '%2' and '%3')")
                        .arg(id).arg(fromStage, toStage));
    if (change.status && !TaskStatuses.contains(*change.status))
        return fail(ErrorCode::InvalidArgument, QStringLiteral("moving task %1: '%2' is not a task status (one of %3)")
                                                    .arg(id).arg(*change.status, TaskStatuses.join(QLatin1String(", "))));
    if (change.retries && *change.retries < 0)
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("moving task %1: retries cannot be negative (%2)").arg(id).arg(*change.retries));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());

    QStringList assignments = {QStringLiteral("stage = :to"), QStringLiteral("version = version + 1"),
                               QStringLiteral("updated_at = :now")};
    StatementBinds binds = {{QStringLiteral(":to"), toStage},
                            {QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
                            {QStringLiteral(":id"), id},
                            {QStringLiteral(":from"), fromStage}};
    const auto set = [&](const char *column, const QVariant &value) {
        const QString name = QLatin1String(column);
        assignments << QStringLiteral("%1 = :%1").arg(name);
        binds.append({QLatin1Char(':') + name, value});
    };
    if (change.status)
        set("status", *change.status);
    // Free text (gate feedback, a failure's output tail) is masked on the way in.
    if (change.description)
        set("description", Redaction::mask(*change.description));
    if (change.blockedReason)
        set("blocked_reason", Redaction::mask(*change.blockedReason));
    if (change.headSha)
        set("head_sha", *change.headSha);
    if (change.retries)
        set("retries", *change.retries);

    QString condition = QStringLiteral("id = :id AND stage = :from AND status = 'active'");
    if (change.ifVersion) {
        condition += QStringLiteral(" AND version = :version");
        binds.append({QStringLiteral(":version"), *change.ifVersion});
    }
    // A daemon whose node was taken over moves nothing.
    condition += session->fenceCondition(binds);
    // The compare-and-set on the stage: of concurrent callers exactly one changes the row.
    Result<int> rows = session->execWrite(
        QStringLiteral("moving task %1 from %2 to %3").arg(id).arg(fromStage, toStage),
        QStringLiteral("UPDATE tasks SET %1 WHERE %2").arg(assignments.join(QLatin1String(", ")), condition),
        binds);
    if (!rows)
        return std::unexpected(rows.error());
    if (*rows > 1)
        return std::unexpected(session->error(QStringLiteral("moving task %1").arg(id),
                                              QStringLiteral("%1 rows changed for one id").arg(*rows)));
    return *rows == 1;
}

Result<bool> TaskStore::recordHead(qint64 id, const QString &stage, const QString &headSha)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<int> rows = session->execWrite(
        QStringLiteral("recording the head of task %1").arg(id),
        QStringLiteral("UPDATE tasks SET head_sha = :head, updated_at = :now WHERE id = :id AND stage = :stage AND status = 'active'"),
        {{QStringLiteral(":head"), headSha}, {QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
         {QStringLiteral(":id"), id}, {QStringLiteral(":stage"), stage}});
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<bool> TaskStore::recordWork(qint64 id, const QString &stage, const QString &headSha,
                                   const std::optional<QList<StageFile>> &files, const JobClaim &claim)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    const QString what = QStringLiteral("recording the work of job %1 of task %2").arg(claim.jobId).arg(id);
    Result<StoreTransaction> transaction = StoreTransaction::begin(*session, what);
    if (!transaction)
        return std::unexpected(transaction.error());
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    StatementBinds binds = {{QStringLiteral(":head"), headSha}, {QStringLiteral(":now"), now},
                            {QStringLiteral(":id"), id}, {QStringLiteral(":stage"), stage},
                            {QStringLiteral(":job"), claim.jobId}, {QStringLiteral(":node"), claim.node},
                            {QStringLiteral(":token"), claim.token}};
    // The fence: the job is still this claim's (a survivor that took it over bumped the
    // token), and the node still holds its name.
    const QString fence = session->fenceCondition(binds);
    Result<int> rows = session->execWrite(
        what,
        QStringLiteral("UPDATE tasks SET head_sha = :head, updated_at = :now WHERE id = :id AND stage = :stage AND status = 'active' "
                       "AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = :job AND j.status = 'running' AND j.claimed_by = :node "
                       "AND (CAST(:token AS BIGINT) = 0 OR j.claim_token = CAST(:token AS BIGINT)))") + fence,
        binds);
    if (!rows)
        return std::unexpected(rows.error());
    if (*rows != 1)
        return false;
    if (files) {
        Result<int> cleared = session->execWrite(what, QStringLiteral("DELETE FROM stage_files WHERE task_id = :id"),
                                                 {{QStringLiteral(":id"), id}});
        if (!cleared)
            return std::unexpected(cleared.error());
        Result<int> marked = session->execWrite(what, QStringLiteral("UPDATE tasks SET stage_files_job = :job WHERE id = :id"),
                                                {{QStringLiteral(":id"), id}, {QStringLiteral(":job"), claim.jobId}});
        if (!marked)
            return std::unexpected(marked.error());
        for (const StageFile &file : *files) {
            Result<int> inserted = session->execWrite(
                what,
                QStringLiteral("INSERT INTO stage_files (task_id, path, job_id, content, recorded_at) VALUES (:id, :path, :job, :content, :now)"),
                {{QStringLiteral(":id"), id}, {QStringLiteral(":path"), file.path}, {QStringLiteral(":job"), claim.jobId},
                 {QStringLiteral(":content"), file.content}, {QStringLiteral(":now"), now}});
            if (!inserted)
                return std::unexpected(inserted.error());
        }
    }
    if (Result<void> committed = transaction->commit(); !committed)
        return std::unexpected(committed.error());
    return true;
}

Result<TaskStore::StageFiles> TaskStore::stageFiles(qint64 id) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StageFiles out;
    {
        Result<ExecutedQuery> job = session->exec(QStringLiteral("reading the stage files of task %1").arg(id),
                                                  QStringLiteral("SELECT stage_files_job FROM tasks WHERE id = :id"),
                                                  {{QStringLiteral(":id"), id}});
        if (!job)
            return std::unexpected(job.error());
        if ((*job)->next())
            out.jobId = (*job)->value(0).toLongLong();
    }
    Result<ExecutedQuery> query = session->exec(QStringLiteral("reading the stage files of task %1").arg(id),
                                                QStringLiteral("SELECT path, content FROM stage_files WHERE task_id = :id ORDER BY path"),
                                                {{QStringLiteral(":id"), id}});
    if (!query)
        return std::unexpected(query.error());
    while ((*query)->next())
        out.files.append(StageFile{(*query)->value(0).toString(), (*query)->value(1).toByteArray()});
    return out;
}

Result<void> TaskStore::recordPublication(qint64 id, const QString &pushedSha, std::optional<qint64> pullRequest)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StatementBinds binds = {{QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()}, {QStringLiteral(":id"), id}};
    QStringList assignments = {QStringLiteral("updated_at = :now")};
    if (!pushedSha.isNull()) {
        assignments << QStringLiteral("pushed_sha = :pushed");
        binds.append({QStringLiteral(":pushed"), pushedSha});
    }
    if (pullRequest) {
        assignments << QStringLiteral("pull_request = :pr");
        binds.append({QStringLiteral(":pr"), *pullRequest});
    }
    const QString fence = session->fenceCondition(binds);
    Result<int> rows = session->execWrite(QStringLiteral("recording what task %1 has at the forge").arg(id),
                                          QStringLiteral("UPDATE tasks SET %1 WHERE id = :id").arg(assignments.join(QLatin1String(", "))) + fence,
                                          binds);
    if (!rows)
        return std::unexpected(rows.error());
    return {};
}

Result<bool> TaskStore::adoptForgeHead(qint64 id, const QString &head, const QString &pushed, const QString &forgeHead, bool onlyIdle)
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    StatementBinds binds = {{QStringLiteral(":forge"), forgeHead}, {QStringLiteral(":forge_pushed"), forgeHead}, {QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
                            {QStringLiteral(":id"), id}, {QStringLiteral(":head"), head}, {QStringLiteral(":pushed"), pushed}};
    const QString fence = session->fenceCondition(binds);
    Result<int> rows = session->execWrite(
        QStringLiteral("taking the forge's head of task %1").arg(id),
        QStringLiteral("UPDATE tasks SET head_sha = :forge, pushed_sha = :forge_pushed, updated_at = :now WHERE id = :id AND status = 'active' "
                       "AND head_sha = :head AND pushed_sha = :pushed")
            + (onlyIdle ? QStringLiteral(" AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = tasks.id AND j.status IN ('queued', 'running'))")
                        : QString())
            + fence,
        binds);
    if (!rows)
        return std::unexpected(rows.error());
    return *rows == 1;
}

Result<bool> TaskStore::claimUnblock(qint64 id, const QString &stage, qint64 version)
{
    if (stage.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("unblocking task %1 needs the stage it is blocked in").arg(id));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    // The same compare-and-set as claimTransition(), from 'blocked': of two operators (or a
    // retry racing anything else that touches the task) exactly one changes the row.
    Result<int> rows = session->execWrite(
        QStringLiteral("unblocking task %1 in stage %2").arg(id).arg(stage),
        QStringLiteral("UPDATE tasks SET status = 'active', blocked_reason = '', version = version + 1, updated_at = :now "
                       "WHERE id = :id AND stage = :stage AND status = 'blocked' AND version = :version"),
        {{QStringLiteral(":now"), QDateTime::currentMSecsSinceEpoch()},
         {QStringLiteral(":id"), id},
         {QStringLiteral(":stage"), stage},
         {QStringLiteral(":version"), version}});
    if (!rows)
        return std::unexpected(rows.error());
    if (*rows > 1)
        return std::unexpected(session->error(QStringLiteral("unblocking task %1").arg(id),
                                              QStringLiteral("%1 rows changed for one id").arg(*rows)));
    return *rows == 1;
}

Result<void> TaskStore::recordGateRun(const GateRunRecord &run)
{
    if (run.taskId <= 0 || run.project.isEmpty() || run.stage.isEmpty() || run.gate.isEmpty())
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("a gate run needs a task, a project, a stage and a gate (got %1, '%2', '%3', '%4')")
                        .arg(run.taskId).arg(run.project, run.stage, run.gate));
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());

    // A verdict quotes what it judged (an artifact's values, a command's output): masked on the way in.
    QJsonArray findings;
    for (const Finding &finding : run.verdict.findings())
        findings.append(Redaction::maskJson(finding.toJson()));
    const qint64 at = run.createdAt.isValid() ? run.createdAt.toMSecsSinceEpoch() : QDateTime::currentMSecsSinceEpoch();
    // An invalid QVariant binds as SQL NULL: no job, or an exit gate (no stage entered).
    Result<int> rows = session->execWrite(
        QStringLiteral("recording the verdict of gate %1 for task %2").arg(run.gate).arg(run.taskId),
        QStringLiteral("INSERT INTO gate_runs (task_id, job_id, project, stage, to_stage, gate, head_sha, result, "
                       "reason, findings, evidence, duration_ms, created_at) "
                       "VALUES (:task_id, :job_id, :project, :stage, :to_stage, :gate, :head_sha, :result, "
                       ":reason, :findings, :evidence, :duration_ms, :created_at)"),
        {{QStringLiteral(":task_id"), run.taskId},
         {QStringLiteral(":job_id"), run.jobId > 0 ? QVariant(run.jobId) : QVariant()},
         {QStringLiteral(":project"), run.project},
         {QStringLiteral(":stage"), run.stage},
         {QStringLiteral(":to_stage"), run.toStage.isEmpty() ? QVariant() : QVariant(run.toStage)},
         {QStringLiteral(":gate"), run.gate},
         {QStringLiteral(":head_sha"), run.headSha},
         {QStringLiteral(":result"), GateVerdict::resultName(run.verdict.result())},
         {QStringLiteral(":reason"), Redaction::mask(run.verdict.reason())},
         {QStringLiteral(":findings"), compactJson(QJsonDocument(findings))},
         {QStringLiteral(":evidence"), compactJson(QJsonDocument(Redaction::maskJson(run.verdict.evidence())))},
         {QStringLiteral(":duration_ms"), run.durationMs},
         {QStringLiteral(":created_at"), at}});
    if (!rows)
        return std::unexpected(rows.error());
    return {};
}

Result<QList<GateRunRecord>> TaskStore::gateRuns(qint64 taskId) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("reading the gate runs of task %1").arg(taskId),
        QStringLiteral("SELECT id, task_id, job_id, project, stage, to_stage, gate, head_sha, result, reason, "
                       "findings, evidence, duration_ms, created_at FROM gate_runs WHERE task_id = :task_id "
                       "ORDER BY created_at, id"),
        {{QStringLiteral(":task_id"), taskId}});
    if (!query)
        return std::unexpected(query.error());
    QList<GateRunRecord> runs;
    while ((*query)->next()) {
        const QSqlQuery &row = **query;
        GateRunRecord run;
        run.id = row.value(0).toLongLong();
        run.taskId = row.value(1).toLongLong();
        run.jobId = row.value(2).toLongLong(); // NULL reads as 0
        run.project = row.value(3).toString();
        run.stage = row.value(4).toString();
        run.toStage = row.value(5).toString();
        run.gate = row.value(6).toString();
        run.headSha = row.value(7).toString();
        // Through GateVerdict::fromJson: an unknown result reads back as error (fail-closed).
        run.verdict = GateVerdict::fromJson(QJsonObject{
            {QStringLiteral("result"), row.value(8).toString()},
            {QStringLiteral("reason"), row.value(9).toString()},
            {QStringLiteral("findings"), QJsonDocument::fromJson(row.value(10).toString().toUtf8()).array()},
            {QStringLiteral("evidence"), QJsonDocument::fromJson(row.value(11).toString().toUtf8()).object()}});
        run.durationMs = row.value(12).toLongLong();
        run.createdAt = fromMsecs(row.value(13));
        runs.append(run);
    }
    return runs;
}

Result<QList<AuditRecord>> TaskStore::history(qint64 taskId) const
{
    Result<PreparedStatements::Session> session = m_statements.session();
    if (!session)
        return std::unexpected(session.error());
    Result<ExecutedQuery> query = session->exec(
        QStringLiteral("reading the history of task %1").arg(taskId),
        QStringLiteral("SELECT id, at, actor, action, project, task_id, details FROM audit WHERE task_id = :task_id "
                       "ORDER BY at, id"),
        {{QStringLiteral(":task_id"), taskId}});
    if (!query)
        return std::unexpected(query.error());
    QList<AuditRecord> entries;
    while ((*query)->next()) {
        const QSqlQuery &row = **query;
        AuditRecord entry;
        entry.id = row.value(0).toLongLong();
        entry.at = fromMsecs(row.value(1));
        entry.actor = row.value(2).toString();
        entry.action = row.value(3).toString();
        entry.project = row.value(4).toString();
        entry.taskId = row.value(5).toLongLong();
        entry.details = QJsonDocument::fromJson(row.value(6).toString().toUtf8()).object();
        entries.append(entry);
    }
    return entries;
}

} // namespace Sluice
