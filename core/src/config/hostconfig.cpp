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

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <dirent.h>

// The schemas are a resource of the host's static library, whose object the linker keeps only
// when something refers to it: registering it here is that reference. Outside any namespace,
// as Q_INIT_RESOURCE requires.
static void registerEmbeddedSchemas()
{
    Q_INIT_RESOURCE(schemas);
}

namespace Sluice {

namespace {

// Secrets are references (ADR 0003): libpq's connection string must not carry one inline.
// Keywords as libpq reads them: "key = value" pairs, values bare or in single quotes with
// backslash escapes, separated by spaces (or ';', which Qt's driver turns into spaces). The
// value itself is never shown.
void checkPostgresqlOptions(const YAML::Node &root, YamlValidator &validator)
{
    const YAML::Node options = yamlChild(yamlChild(yamlChild(root, "store"), "postgresql"), "options");
    if (!options.IsDefined() || !options.IsScalar())
        return;
    const std::string text = options.Scalar();
    std::size_t i = 0;
    auto separator = [&](char ch) { return ch == ';' || std::isspace(static_cast<unsigned char>(ch)); };
    auto skipSpace = [&] {
        while (i < text.size() && separator(text[i]))
            ++i;
    };
    while (true) {
        skipSpace();
        if (i >= text.size())
            return;
        const std::size_t keyStart = i;
        while (i < text.size() && text[i] != '=' && !separator(text[i]))
            ++i;
        const std::string key = text.substr(keyStart, i - keyStart);
        skipSpace();
        if (i >= text.size() || text[i] != '=') {
            validator.report(options, QStringLiteral("store.postgresql.options"),
                             QStringLiteral("expected libpq 'keyword=value' pairs"));
            return;
        }
        ++i;
        skipSpace();
        if (i < text.size() && text[i] == '\'') {
            for (++i; i < text.size() && text[i] != '\''; ++i) {
                if (text[i] == '\\')
                    ++i;
            }
            ++i;
        } else {
            while (i < text.size() && !separator(text[i]))
                ++i;
        }
        if (key == "password" || key == "sslpassword") {
            validator.report(options, QStringLiteral("store.postgresql.options"),
                             QStringLiteral("holds '%1=': secrets are never inline; give the password as "
                                            "store.postgresql.password: {file: PATH} or {credential: NAME}")
                                 .arg(QString::fromStdString(key)));
            return;
        }
    }
}

} // namespace

const ConfigSchema &embeddedSchema(const QString &name)
{
    static QMutex mutex;
    static QHash<QString, ConfigSchema> cache;
    static const bool registered = (registerEmbeddedSchemas(), true);
    Q_UNUSED(registered)
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

std::chrono::milliseconds ReaperSettings::heartbeatInterval() const
{
    return std::clamp(std::chrono::milliseconds(nodeTimeout.count() / 4), std::chrono::milliseconds(250),
                      std::chrono::milliseconds(10000));
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
    // A link to nowhere is a broken host file, not an absent one: reported, not defaulted.
    c.filePresent = QFileInfo::exists(c.file) || QFileInfo(c.file).isSymLink();
    if (!QFileInfo(configDir).isDir())
        diagnostics.append(Diagnostic{configDir, 0, 0, QString(), QStringLiteral("configuration directory does not exist")});

    const ConfigSchema &schema = embeddedSchema(QStringLiteral("host"));
    QVariantMap v;
    if (c.filePresent) {
        if (auto root = loadYamlFile(c.file, diagnostics)) {
            YamlValidator validator(c.file, diagnostics);
            v = validator.validateObject(*root, schema, QString());
            checkPostgresqlOptions(*root, validator);
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
    c.httpMaxConnections = int(http.value(QStringLiteral("max_connections")).toLongLong());
    c.httpMaxConnectionsPerClient = int(http.value(QStringLiteral("max_connections_per_client")).toLongLong());
    c.httpHeaderTimeoutMs = http.value(QStringLiteral("header_timeout")).toLongLong();
    c.httpRequestTimeoutMs = http.value(QStringLiteral("request_timeout")).toLongLong();
    c.httpIdleTimeoutMs = http.value(QStringLiteral("idle_timeout")).toLongLong();

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

QString HostConfig::projectDirectory() const
{
    return QDir(configDir).filePath(QStringLiteral("projects"));
}

QStringList HostConfig::projectFiles(Diagnostics &problems) const
{
    // Every entry named *.yaml or *.yml is a project file, whatever it is: a dangling link, a
    // link loop, a FIFO or a directory is then refused by name when it is loaded, instead of
    // vanishing from the listing.
    const QString path = projectDirectory();
    const QByteArray encoded = QFile::encodeName(path);
    DIR *dir = ::opendir(encoded.constData());
    if (!dir) {
        const int error = errno;
        if (error != ENOENT)
            problems.append(Diagnostic{path, 0, 0, QString(), QStringLiteral("cannot list the project files: %1")
                                                                  .arg(QString::fromLocal8Bit(std::strerror(error)))});
        return {};
    }
    QStringList names;
    errno = 0;
    while (const dirent *entry = ::readdir(dir)) {
        const QString name = QFile::decodeName(entry->d_name);
        if (name.startsWith(QLatin1Char('.')))
            continue; // hidden files, "." and ".."
        if (name.endsWith(QLatin1String(".yaml")) || name.endsWith(QLatin1String(".yml")))
            names.append(name);
        errno = 0;
    }
    const int error = errno;
    ::closedir(dir);
    if (error != 0)
        problems.append(Diagnostic{path, 0, 0, QString(), QStringLiteral("cannot list all project files: %1")
                                                              .arg(QString::fromLocal8Bit(std::strerror(error)))});
    names.sort();
    QStringList out;
    for (const QString &name : std::as_const(names))
        out.append(QDir(path).absoluteFilePath(name));
    return out;
}

} // namespace Sluice
