// SPDX-License-Identifier: Apache-2.0
#pragma once

// The sections of the host file (sluice.yaml) that the store, the reaper and the reconciler
// are built with. They live with the configuration, the lowest layer, so that the host file
// can be read without the layers above it (docs/architecture.md, "Layering").

#include <sluice/global.h>
#include <sluice/secrets.h>

#include <QString>

#include <chrono>

namespace Sluice {

/// How to reach the database. Filled from the host file's `store:` section.
struct StoreSettings {
    enum class Driver { Sqlite, Postgresql };
    Driver driver = Driver::Sqlite;
    QString sqlitePath;        ///< SQLite database file (created if missing).
    int busyTimeoutMs = 5000;  ///< SQLite busy_timeout.
    QString host;              ///< PostgreSQL host name or Unix socket directory.
    int port = 5432;
    QString database;
    QString user;
    SecretRef password;        ///< PostgreSQL password reference; may be null.
    QString options;           ///< Extra libpq connect options ("sslmode=require").
};

/// The `reaper:` section of sluice.yaml (docs/runbooks/reaper.md).
struct ReaperSettings {
    bool enabled = true;                              ///< Off: no ticks (startup recovery still runs).
    std::chrono::milliseconds interval{30000};
    int deadTicks = 2;                                ///< Tier 1: consecutive ticks (≥ 2).
    std::chrono::milliseconds finalizeGrace{60000};   ///< Tier 2: time a monitor has to finalise.
    std::chrono::milliseconds ceiling{3 * 3600 * 1000}; ///< Tier 3: longest a job may run.
    std::chrono::milliseconds killGrace{10000};       ///< SIGTERM → SIGKILL for a living agent.
    std::chrono::milliseconds nodeTimeout{60000};     ///< A node silent this long holds no lease, and its jobs are taken over.
    bool takeover = true;                             ///< Off: a silent node's jobs wait for its own restart.

    /// How often a daemon beats its heartbeat: a quarter of node_timeout, at most 10 s.
    [[nodiscard]] std::chrono::milliseconds heartbeatInterval() const;
};

/// The `reconciler:` section of sluice.yaml (docs/runbooks/reconciler.md).
struct ReconcilerSettings {
    bool enabled = true;
    std::chrono::milliseconds interval{60000};
    /// A task is looked at only when nothing happened to it (no stage change, no job ending)
    /// for this long: work in flight on any node is left to finish.
    std::chrono::milliseconds settle{300000};
};

} // namespace Sluice
