// SPDX-License-Identifier: Apache-2.0
#include "config/hostconfig.h"

#include "config/yamlvalidator.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QHash>
#include <QHostInfo>
#include <QJsonDocument>
#include <QMutex>

namespace Sluice {

const ConfigSchema &embeddedSchema(const QString &name)
{
    static QMutex mutex;
    static QHash<QString, ConfigSchema> cache;
    QMutexLocker lock(&mutex);
    auto it = cache.find(name);
    if (it != cache.end())
        return *it;
    QFile f(QStringLiteral(":/sluice/schema/%1.json").arg(name));
    const bool opened = f.open(QIODevice::ReadOnly);
    Q_ASSERT_X(opened, "embeddedSchema", "schema resource missing");
    auto schema = ConfigSchema::fromJson(QJsonDocument::fromJson(f.readAll()).object(), name);
    // The embedded schemas are part of the build and tested; a broken one is a build defect.
    Q_ASSERT_X(schema.has_value(), "embeddedSchema", "embedded schema is malformed");
    Q_UNUSED(opened)
    return *cache.insert(name, schema.value_or(ConfigSchema()));
}

QString HostConfig::resolveConfigDir(const QString &explicitDir)
{
    if (!explicitDir.isEmpty())
        return QDir(explicitDir).absolutePath();
    const QByteArray env = qgetenv("SLUICE_CONFIG_DIR");
    if (!env.isEmpty())
        return QDir(QString::fromLocal8Bit(env)).absolutePath();
    return QStringLiteral("/etc/sluice");
}

HostConfig HostConfig::load(const QString &configDir, Diagnostics &diagnostics)
{
    HostConfig c;
    c.configDir = configDir;
    c.file = QDir(configDir).filePath(QStringLiteral("sluice.yaml"));
    c.filePresent = QFileInfo::exists(c.file);
    if (!QFileInfo(configDir).isDir())
        diagnostics.append(Diagnostic{configDir, 0, 0, QString(), QStringLiteral("configuration directory does not exist")});

    const ConfigSchema &schema = embeddedSchema(QStringLiteral("host"));
    QVariantMap v;
    if (c.filePresent) {
        if (auto root = loadYamlFile(c.file, diagnostics)) {
            YamlValidator validator(c.file, diagnostics);
            v = validator.validateObject(*root, schema, QString());
        }
    }
    const QVariantMap defaults = YamlValidator(c.file, diagnostics).resolvedDefaults(schema);
    for (auto it = defaults.begin(); it != defaults.end(); ++it) {
        if (!v.contains(it.key()))
            v.insert(it.key(), it.value());
    }

    c.node = v.value(QStringLiteral("node")).toString();
    if (c.node.isEmpty())
        c.node = QHostInfo::localHostName();
    c.stateDir = v.value(QStringLiteral("state_dir")).toString();
    for (const QVariant &dir : v.value(QStringLiteral("plugin_dirs")).toList())
        c.pluginDirs.append(dir.toString());
    c.serviceUser = v.value(QStringLiteral("service_user")).toString();
    c.loggingRules = v.value(QStringLiteral("logging")).toMap().value(QStringLiteral("rules")).toString();

    const QVariantMap worker = v.value(QStringLiteral("worker")).toMap();
    c.workerConcurrency = int(worker.value(QStringLiteral("concurrency")).toLongLong());
    c.pollIntervalMs = worker.value(QStringLiteral("poll_interval")).toLongLong();
    c.stopTimeoutMs = worker.value(QStringLiteral("stop_timeout")).toLongLong();
    auto ms = [](const QVariant &value) { return std::chrono::milliseconds(value.toLongLong()); };
    const QVariantMap reaper = v.value(QStringLiteral("reaper")).toMap();
    c.reaper.enabled = reaper.value(QStringLiteral("enabled")).toBool();
    c.reaper.interval = ms(reaper.value(QStringLiteral("interval")));
    c.reaper.deadTicks = int(reaper.value(QStringLiteral("dead_ticks")).toLongLong());
    c.reaper.finalizeGrace = ms(reaper.value(QStringLiteral("finalize_grace")));
    c.reaper.ceiling = ms(reaper.value(QStringLiteral("ceiling")));
    c.reaper.killGrace = ms(reaper.value(QStringLiteral("kill_grace")));
    c.reaper.nodeTimeout = ms(reaper.value(QStringLiteral("node_timeout")));
    c.reaper.takeover = reaper.value(QStringLiteral("takeover")).toBool();
    const QVariantMap reconciler = v.value(QStringLiteral("reconciler")).toMap();
    c.reconciler.enabled = reconciler.value(QStringLiteral("enabled")).toBool();
    c.reconciler.interval = ms(reconciler.value(QStringLiteral("interval")));
    c.reconciler.settle = ms(reconciler.value(QStringLiteral("settle")));
    const QVariantMap http = v.value(QStringLiteral("http")).toMap();
    c.httpEnabled = http.value(QStringLiteral("enabled")).toBool();
    c.httpAddress = http.value(QStringLiteral("address")).toString();
    c.httpPort = int(http.value(QStringLiteral("port")).toLongLong());
    c.httpMaxBody = http.value(QStringLiteral("max_body")).toLongLong();

    const QVariantMap store = v.value(QStringLiteral("store")).toMap();
    const QVariantMap sqlite = store.value(QStringLiteral("sqlite")).toMap();
    const QVariantMap pg = store.value(QStringLiteral("postgresql")).toMap();
    c.store.driver = store.value(QStringLiteral("driver")).toString() == QLatin1String("postgresql")
                         ? StoreSettings::Driver::Postgresql
                         : StoreSettings::Driver::Sqlite;
    c.store.sqlitePath = sqlite.value(QStringLiteral("path")).toString();
    if (c.store.sqlitePath.isEmpty())
        c.store.sqlitePath = QDir(c.stateDir).filePath(QStringLiteral("sluice.db"));
    c.store.busyTimeoutMs = int(sqlite.value(QStringLiteral("busy_timeout")).toLongLong());
    c.store.host = pg.value(QStringLiteral("host")).toString();
    c.store.port = int(pg.value(QStringLiteral("port")).toLongLong());
    c.store.database = pg.value(QStringLiteral("database")).toString();
    c.store.user = pg.value(QStringLiteral("user")).toString();
    c.store.password = SecretRef::fromVariant(pg.value(QStringLiteral("password")));
    c.store.options = pg.value(QStringLiteral("options")).toString();
    return c;
}

QStringList HostConfig::projectFiles() const
{
    QDir dir(QDir(configDir).filePath(QStringLiteral("projects")));
    QStringList out;
    const QStringList names = dir.entryList({QStringLiteral("*.yaml"), QStringLiteral("*.yml")},
                                            QDir::Files, QDir::Name); // unreadable files are reported, not skipped
    for (const QString &name : names)
        out.append(dir.absoluteFilePath(name));
    return out;
}

} // namespace Sluice
