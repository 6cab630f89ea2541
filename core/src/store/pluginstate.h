// SPDX-License-Identifier: Apache-2.0
#pragma once

// The StateStore of one plugin instance, kept in the plugin_state table.

#include <sluice/services.h>

#include <memory>

namespace Sluice {

class StoreConnections;

/**
 * Rows of plugin_state with one (project, instance): keys of other instances are out of
 * reach. Holds the Store's connections weakly; once the Store is gone every call fails
 * with ErrorCode::Storage instead of touching a closed database.
 */
class PluginStateStore final : public StateStore
{
public:
    PluginStateStore(std::weak_ptr<StoreConnections> connections, QString projectId, QString instanceName);

    [[nodiscard]] Result<std::optional<QByteArray>> value(const QString &key) override;
    [[nodiscard]] Result<void> setValue(const QString &key, const QByteArray &value) override;
    [[nodiscard]] Result<void> remove(const QString &key) override;

private:
    [[nodiscard]] Result<std::shared_ptr<StoreConnections>> lockConnections(const QString &key) const;
    [[nodiscard]] QString describeKey(const QString &key) const;

    std::weak_ptr<StoreConnections> m_connections;
    QString m_projectId;
    QString m_instanceName;
};

} // namespace Sluice
