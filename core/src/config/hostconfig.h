// SPDX-License-Identifier: Apache-2.0
#pragma once

// The host file, sluice.yaml, in the configuration directory.

#include "config/diagnostic.h"
#include "config/hostsettings.h"

#include <sluice/configschema.h>

#include <QString>
#include <QStringList>

namespace Sluice {

struct HostConfig {
    QString configDir;      ///< The configuration directory.
    QString file;           ///< Path of sluice.yaml (it may not exist: all defaults then).
    bool filePresent = false;
    QString node;           ///< This machine's name.
    QString stateDir;
    QStringList pluginDirs; ///< Configured plugin directories, absolute.
    QString serviceUser;
    StoreSettings store;
    QString loggingRules;
    int workerConcurrency = 4;
    qint64 pollIntervalMs = 2000;
    qint64 stopTimeoutMs = 120000;
    ReaperSettings reaper;
    ReconcilerSettings reconciler;
    bool httpEnabled = true;
    QString httpAddress;
    int httpPort = 8420;
    qint64 httpMaxBody = 1024 * 1024;
    int httpMaxConnections = 256;
    int httpMaxConnectionsPerClient = 64;
    qint64 httpHeaderTimeoutMs = 10000;
    qint64 httpRequestTimeoutMs = 60000;
    qint64 httpIdleTimeoutMs = 30000;

    /// The configuration directory: @p explicitDir, else $SLUICE_CONFIG_DIR, else /etc/sluice.
    [[nodiscard]] static QString resolveConfigDir(const QString &explicitDir);
    /// Loads CONFIG_DIR/sluice.yaml; problems go to @p diagnostics, defaults fill the rest.
    [[nodiscard]] static HostConfig load(const QString &configDir, Diagnostics &diagnostics);
    /// CONFIG_DIR/projects.
    [[nodiscard]] QString projectDirectory() const;
    /**
     * Project files in CONFIG_DIR/projects: every entry named *.yaml or *.yml (hidden ones
     * aside), sorted, whatever its type, so that a dangling link or a FIFO is refused by name
     * when it is loaded. A directory that exists but cannot be listed is a problem in
     * @p problems (a missing one is not: no projects).
     */
    [[nodiscard]] QStringList projectFiles(Diagnostics &problems) const;
};

/// Loads a schema embedded in the core library (":/sluice/schema/NAME.json").
[[nodiscard]] const ConfigSchema &embeddedSchema(const QString &name);

} // namespace Sluice
