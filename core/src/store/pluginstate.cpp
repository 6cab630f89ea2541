// SPDX-License-Identifier: Apache-2.0
#include "store/pluginstate.h"

#include "store/connections.h"

#include <QDateTime>

namespace Sluice {

PluginStateStore::PluginStateStore(std::weak_ptr<StoreConnections> connections, QString projectId,
                                   QString instanceName)
    : m_connections(std::move(connections))
    , m_projectId(std::move(projectId))
    , m_instanceName(std::move(instanceName))
{
}

QString PluginStateStore::describeKey(const QString &key) const
{
    return QStringLiteral("state key '%1' of plugin instance %2 in project %3").arg(key, m_instanceName, m_projectId);
}

Result<std::shared_ptr<StoreConnections>> PluginStateStore::lockConnections(const QString &key) const
{
    if (key.isEmpty())
        return fail(ErrorCode::InvalidArgument,
                    QStringLiteral("plugin instance %1 in project %2 used an empty state key").arg(m_instanceName, m_projectId));
    std::shared_ptr<StoreConnections> connections = m_connections.lock();
    if (!connections)
        return fail(ErrorCode::Storage, QStringLiteral("%1: the store is closed").arg(describeKey(key)));
    return connections;
}

Result<std::optional<QByteArray>> PluginStateStore::value(const QString &key)
{
    Result<std::shared_ptr<StoreConnections>> connections = lockConnections(key);
    if (!connections)
        return std::unexpected(connections.error());
    Result<QSqlQuery> query = (*connections)->run(
        QStringLiteral("reading %1").arg(describeKey(key)),
        QStringLiteral("SELECT value FROM plugin_state WHERE project = :project AND instance = :instance AND key = :key"),
        {{QStringLiteral("project"), m_projectId},
         {QStringLiteral("instance"), m_instanceName},
         {QStringLiteral("key"), key}});
    if (!query)
        return std::unexpected(query.error());
    if (!query->next())
        return std::optional<QByteArray>();
    // An empty value is a value: a SQLite zero-length blob reads back as a null QByteArray.
    QByteArray bytes = query->value(0).toByteArray();
    if (bytes.isNull())
        bytes = QByteArray("");
    return std::optional<QByteArray>(bytes);
}

Result<void> PluginStateStore::setValue(const QString &key, const QByteArray &value)
{
    Result<std::shared_ptr<StoreConnections>> connections = lockConnections(key);
    if (!connections)
        return std::unexpected(connections.error());
    // A null QByteArray would bind as SQL NULL; the column holds bytes, possibly none.
    const QByteArray bytes = value.isNull() ? QByteArray("") : value;
    Result<QSqlQuery> query = (*connections)->run(
        QStringLiteral("writing %1").arg(describeKey(key)),
        QStringLiteral("INSERT INTO plugin_state (project, instance, key, value, updated_at) "
                       "VALUES (:project, :instance, :key, :value, :updated_at) "
                       "ON CONFLICT (project, instance, key) "
                       "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"),
        {{QStringLiteral("project"), m_projectId},
         {QStringLiteral("instance"), m_instanceName},
         {QStringLiteral("key"), key},
         {QStringLiteral("value"), bytes},
         {QStringLiteral("updated_at"), QDateTime::currentMSecsSinceEpoch()}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

Result<void> PluginStateStore::remove(const QString &key)
{
    Result<std::shared_ptr<StoreConnections>> connections = lockConnections(key);
    if (!connections)
        return std::unexpected(connections.error());
    Result<QSqlQuery> query = (*connections)->run(
        QStringLiteral("removing %1").arg(describeKey(key)),
        QStringLiteral("DELETE FROM plugin_state WHERE project = :project AND instance = :instance AND key = :key"),
        {{QStringLiteral("project"), m_projectId},
         {QStringLiteral("instance"), m_instanceName},
         {QStringLiteral("key"), key}});
    if (!query)
        return std::unexpected(query.error());
    return {};
}

} // namespace Sluice
