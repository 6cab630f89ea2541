// SPDX-License-Identifier: Apache-2.0
#pragma once

// Tasks, their gate verdict records and audit history; and the prepared-statement sessions
// that the store's hot paths (TaskStore, JobQueue) share.

#include "store/store.h"

#include <sluice/task.h>
#include <sluice/verdict.h>

#include <QDateTime>
#include <QHash>
#include <QJsonObject>
#include <QList>
#include <QMutex>
#include <QSqlQuery>
#include <QStringList>
#include <QVariant>

#include <memory>
#include <optional>
#include <utility>

namespace Sluice {

/// One row of the tasks table.
struct TaskRecord {
    qint64 id = 0;
    QString project;
    QString title;
    QString description;
    QString branch;
    QString stage;
    QString status;        ///< "active", "blocked" or "done".
    QString blockedReason; ///< Why a blocked task waits; may be empty.
    QString headSha;       ///< The task branch's commit the host took after the last job.
    QString pushedSha;     ///< The commit last pushed to the forge's task branch; may be empty.
    QString trackerRef;
    qint64 pullRequest = 0;
    int retries = 0;
    qint64 version = 0;    ///< Bumped by every claimed transition.
    QDateTime createdAt;
    QDateTime updatedAt;

    /// The task as plugins see it.
    [[nodiscard]] TaskInfo toInfo() const;
};

/// What create() needs; a new task is always active.
struct NewTask {
    QString project;     ///< Required.
    QString title;
    QString description;
    QString branch;      ///< May be empty; otherwise unique among the project's open tasks.
    QString stage;       ///< Required: the stage the task starts in.
    QString trackerRef;
};

/// Changes made together with a stage claim (all optional).
struct TaskChange {
    std::optional<QString> status; ///< "active", "blocked" or "done".
    std::optional<QString> description;
    std::optional<QString> blockedReason;
    std::optional<QString> headSha;
    std::optional<int> retries;
    /// Also require the task's version to be this one: the claim fails when the task moved
    /// and came back to the same stage since the caller read it.
    std::optional<qint64> ifVersion;
};

/// One gate evaluation, as recorded in gate_runs ("why is this not merging").
struct GateRunRecord {
    qint64 id = 0;     ///< Set when read back; ignored by recordGateRun().
    qint64 taskId = 0;
    qint64 jobId = 0;  ///< 0 when no job ran the gate.
    QString project;
    QString stage;     ///< The stage being left.
    QString toStage;   ///< The stage being entered (edge gates); empty for exit gates.
    QString gate;      ///< Gate instance name.
    QString headSha;
    GateVerdict verdict;
    qint64 durationMs = 0;
    QDateTime createdAt; ///< Invalid = now, when recording.
};

/// One row of the audit table.
struct AuditRecord {
    qint64 id = 0;
    QDateTime at;
    QString actor;
    QString action;
    QString project; ///< Empty when the entry has none.
    qint64 taskId = 0;
    QJsonObject details;
};

/// A file a job left in its working copy's .sluice/ directory for gates (kept in the store).
struct StageFile {
    QString path;       ///< Relative to the working copy: ".sluice/review.md".
    QByteArray content;
};

/**
 * A job as the node that claimed it holds it: the fencing token of every write made for the
 * job. Writes conditional on a claim succeed only while the job is running, claimed by
 * @ref node, with @ref token (0: any token of that node — for callers that hold none).
 */
struct JobClaim {
    qint64 jobId = 0;
    QString node;
    qint64 token = 0;
};

/// Named values for a statement's placeholders: {":id", 42}.
using StatementBinds = QList<std::pair<QString, QVariant>>;

/**
 * Prepared statements kept per thread connection of one Store, so hot paths prepare each
 * statement once per connection instead of once per call. Internal to the store; TaskStore
 * and JobQueue each own one. Safe to use from any thread: a call gets a Session on this
 * thread's connection (Store::connection()) and its statements, which no other thread touches.
 *
 * The statements of a connection are dropped (and prepared again on next use) when the
 * connection was reopened (another native handle) or when a statement on it failed, and
 * forgotten once their connection is gone (its thread exited or the Store was destroyed).
 * Like the Store, it may be destroyed only while no other thread uses it: the statements of
 * connections still open in other threads are released from the destroying thread.
 */
class PreparedStatements
{
public:
    class Session;

    explicit PreparedStatements(Store &store);
    ~PreparedStatements();

    PreparedStatements(const PreparedStatements &) = delete;
    PreparedStatements &operator=(const PreparedStatements &) = delete;

    /// This thread's connection and its statements, for the span of one call.
    [[nodiscard]] Result<Session> session() const;

private:
    struct Connection;

    Store &m_store;
    mutable QMutex m_mutex;
    mutable QHash<QString, std::shared_ptr<Connection>> m_connections; // by connection name
};

/**
 * A query run by PreparedStatements::Session::exec(). Reads its rows through -> and *;
 * resets the statement when it goes (on SQLite an unreset SELECT would keep its read
 * snapshot, and an unreset write would block COMMIT).
 */
class ExecutedQuery
{
public:
    explicit ExecutedQuery(QSqlQuery *query) : m_query(query) {}
    ~ExecutedQuery();
    ExecutedQuery(ExecutedQuery &&other) noexcept : m_query(std::exchange(other.m_query, nullptr)) {}
    ExecutedQuery &operator=(ExecutedQuery &&) = delete;
    ExecutedQuery(const ExecutedQuery &) = delete;
    ExecutedQuery &operator=(const ExecutedQuery &) = delete;

    QSqlQuery *operator->() const { return m_query; }
    QSqlQuery &operator*() const { return *m_query; }

private:
    QSqlQuery *m_query;
};

class PreparedStatements::Session
{
public:
    [[nodiscard]] bool isPostgresql() const;

    /**
     * Runs @p sql with @p binds, preparing it on first use on this connection. @p what says
     * what the statement does; it starts the error message, which also names the database.
     * A null QString binds as '' (Qt would bind SQL NULL); bind QVariant() for NULL.
     */
    [[nodiscard]] Result<ExecutedQuery> exec(const QString &what, const QString &sql,
                                             const StatementBinds &binds = {});
    /**
     * PostgreSQL: makes sure this connection has the server-side prepared statement @p name
     * for @p sql, whose parameters $1, $2... have @p parameterTypes ("text, bigint"), for an
     * EXECUTE in execScript().
     */
    [[nodiscard]] Result<void> prepareOnServer(const QString &what, const QString &name, const QString &parameterTypes,
                                               const QString &sql);
    /// PostgreSQL: @p value as an SQL literal, written the way the driver writes the values of
    /// its own prepared statements into the EXECUTE it sends.
    [[nodiscard]] QString literal(const QVariant &value) const;
    /**
     * PostgreSQL: sends @p script, several statements separated by ';', in one round trip.
     * The server runs them as one transaction (unless the script controls transactions), each
     * statement with a snapshot of its own. The query stands on the first statement's result;
     * nextResult() moves on.
     */
    [[nodiscard]] Result<ExecutedQuery> execScript(const QString &what, const QString &script);
    /// exec() of a write, returning the rows it changed.
    [[nodiscard]] Result<int> execWrite(const QString &what, const QString &sql, const StatementBinds &binds);

    /// Starts a transaction: BEGIN IMMEDIATE on SQLite (the write lock now, waiting up to
    /// the busy timeout, so a read-then-write never meets a stale snapshot), BEGIN on PostgreSQL.
    [[nodiscard]] Result<void> begin(const QString &what);
    [[nodiscard]] Result<void> commit(const QString &what);
    /// Rolls back; a failure is only logged (the caller already reports the first error).
    void rollback(const QString &what);

    /// "<what> failed on <database>", the driver text as detail, secrets removed from both.
    [[nodiscard]] Error error(const QString &what, const QString &driverText) const;

    /**
     * The condition a fenced write adds to its WHERE clause (" AND EXISTS (...)": the store's
     * node fence still holds its node), with its values appended to @p binds; empty when the
     * store has no fence (a CLI process).
     */
    [[nodiscard]] QString fenceCondition(StatementBinds &binds) const;
    /// The store's node fence (not set: empty).
    [[nodiscard]] const NodeFence &fence() const { return m_fence; }
    /// The SQL expression of the store's clock (storeClockSql()).
    [[nodiscard]] QString clock() const;

private:
    friend class PreparedStatements;
    Session(QSqlDatabase db, std::shared_ptr<Connection> connection, NodeFence fence);

    QSqlDatabase m_db;
    std::shared_ptr<Connection> m_connection;
    NodeFence m_fence;
};

/**
 * An open transaction of a Session that rolls back unless committed.
 */
class StoreTransaction
{
public:
    [[nodiscard]] static Result<StoreTransaction> begin(PreparedStatements::Session &session, const QString &what);
    StoreTransaction(StoreTransaction &&other) noexcept
        : m_session(std::exchange(other.m_session, nullptr)), m_what(std::move(other.m_what)) {}
    StoreTransaction &operator=(StoreTransaction &&) = delete;
    StoreTransaction(const StoreTransaction &) = delete;
    StoreTransaction &operator=(const StoreTransaction &) = delete;
    ~StoreTransaction();

    [[nodiscard]] Result<void> commit();

private:
    StoreTransaction(PreparedStatements::Session *session, QString what) : m_session(session), m_what(std::move(what)) {}

    PreparedStatements::Session *m_session; // null once committed or rolled back
    QString m_what;
};

/**
 * Tasks, their gate verdicts and their audit history. Usable from any thread (each thread
 * uses its own connection of the Store and its own prepared statements). Every call needs
 * the Store alive; destroying the TaskStore after the Store is fine. Destroy it, like the
 * Store, only while no other thread uses it.
 *
 * A task's stage changes only through claimTransition(), a compare-and-set on the stage:
 * of several callers racing to move the same task, exactly one wins.
 */
class TaskStore
{
public:
    explicit TaskStore(Store &store);
    ~TaskStore();

    TaskStore(const TaskStore &) = delete;
    TaskStore &operator=(const TaskStore &) = delete;

    /// Creates an active task and returns its id. ErrorCode::Conflict when an open (not
    /// done) task of the project already uses the branch.
    [[nodiscard]] Result<qint64> create(const NewTask &task);
    /// The task @p id, std::nullopt when there is none.
    [[nodiscard]] Result<std::optional<TaskRecord>> task(qint64 id) const;
    /// Tasks of @p project (empty: all projects) with one of @p statuses (empty: any), by id.
    [[nodiscard]] Result<QList<TaskRecord>> tasks(const QString &project, const QStringList &statuses) const;
    /// How many tasks each project has in each status, whoever moved them (the store's view).
    [[nodiscard]] Result<QHash<QPair<QString, QString>, int>> countsByProjectAndStatus() const;
    /// The task of a tracker issue: the open one if there is one, else the newest done one.
    [[nodiscard]] Result<std::optional<TaskRecord>> findByTrackerRef(const QString &project,
                                                                     const QString &trackerRef) const;

    /**
     * THE claim: UPDATE tasks SET stage=:to, version=version+1, updated_at=now, <change>
     * WHERE id=:id AND stage=:from AND status='active'. True when this caller won (exactly
     * one row), false when someone else moved the task first, or it is not active (blocked,
     * done) or does not exist. Losing is never an error.
     */
    [[nodiscard]] Result<bool> claimTransition(qint64 id, const QString &fromStage, const QString &toStage,
                                               const TaskChange &change = {});

    /**
     * Records @p headSha as the head of the task's branch after a job of @p stage. Only while
     * the task is active in that stage (a task that moved on keeps the head of its new
     * stage's work); false otherwise. Not a transition: the version stays.
     */
    [[nodiscard]] Result<bool> recordHead(qint64 id, const QString &stage, const QString &headSha);
    /**
     * Records what a completed job produced: the task's head @p headSha and, when given,
     * the files it left for gates (@p files replaces the task's earlier set). Only while
     * @p claim still holds the job and the task is active in @p stage, checked in the same
     * transaction (the fence of a node that was taken over); false otherwise, and nothing is
     * written.
     */
    [[nodiscard]] Result<bool> recordWork(qint64 id, const QString &stage, const QString &headSha,
                                          const std::optional<QList<StageFile>> &files, const JobClaim &claim);
    /// What the task's last completed job left for gates.
    struct StageFiles {
        qint64 jobId = 0;        ///< 0: no job recorded any (its jobs ran before this version).
        QList<StageFile> files;  ///< By path.
    };
    [[nodiscard]] Result<StageFiles> stageFiles(qint64 id) const;
    /**
     * Records what the forge holds of the task: the commit pushed to its branch (a null
     * QString leaves it) and the number of its pull request (std::nullopt leaves it).
     */
    [[nodiscard]] Result<void> recordPublication(qint64 id, const QString &pushedSha, std::optional<qint64> pullRequest = std::nullopt);
    /**
     * Takes @p forgeHead, a commit someone else pushed to the task's branch at the forge, as the
     * task's head and as what the forge holds (head_sha = pushed_sha = @p forgeHead). A
     * compare-and-swap: only while the task is active and its head and pushed head are still
     * @p head and @p pushed (a job that recorded new work meanwhile, or another node that took
     * the push first, wins). With @p onlyIdle, also only while no job of the task is queued or
     * running (its work would build on the old head). False when it did not hold; nothing is
     * written then.
     */
    [[nodiscard]] Result<bool> adoptForgeHead(qint64 id, const QString &head, const QString &pushed, const QString &forgeHead,
                                              bool onlyIdle = false);
    /**
     * The claim of an operator's retry: UPDATE tasks SET status='active', blocked_reason='',
     * version=version+1, updated_at=now WHERE id=:id AND stage=:stage AND status='blocked'
     * AND version=:version. True when this caller won; false when the task is not blocked in
     * @p stage at @p version any more (another retry was faster) or does not exist.
     */
    [[nodiscard]] Result<bool> claimUnblock(qint64 id, const QString &stage, qint64 version);

    /// Records a gate verdict (its reason, findings and evidence) for the task.
    [[nodiscard]] Result<void> recordGateRun(const GateRunRecord &run);
    /// The gate verdicts of a task, oldest first.
    [[nodiscard]] Result<QList<GateRunRecord>> gateRuns(qint64 taskId) const;
    /// The audit entries about a task, oldest first.
    [[nodiscard]] Result<QList<AuditRecord>> history(qint64 taskId) const;

private:
    PreparedStatements m_statements;
};

} // namespace Sluice
