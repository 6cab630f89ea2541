// SPDX-License-Identifier: Apache-2.0
#include "pluginhost/pluginloader.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QHash>
#include <QJsonArray>
#include <QLibrary>
#include <QMutex>
#include <QPluginLoader>

#include <functional>
#include <map>

namespace Sluice {

Q_LOGGING_CATEGORY(lcLoader, "sluice.core.loader", QtInfoMsg)

QString PluginSearchPath::defaultInstallDir()
{
    const QString appDir = QCoreApplication::applicationDirPath();
    if (appDir.isEmpty())
        return {};
    return QDir::cleanPath(appDir + QLatin1Char('/') + QLatin1String(SLUICE_PLUGIN_DIR_RELATIVE));
}

PluginSearchPath PluginSearchPath::standard(const QStringList &configuredDirs)
{
    PluginSearchPath p;
    p.configuredDirs = configuredDirs;
    const QString env = QString::fromLocal8Bit(qgetenv("SLUICE_PLUGIN_PATH"));
    for (const QString &dir : env.split(QLatin1Char(':'), Qt::SkipEmptyParts))
        p.environmentDirs.append(QDir(dir).absolutePath());
    p.installDir = defaultInstallDir();
    return p;
}

QStringList PluginSearchPath::directories() const
{
    QStringList out;
    auto add = [&](const QString &dir) {
        const QString clean = QDir::cleanPath(QDir(dir).absolutePath());
        if (!dir.isEmpty() && !out.contains(clean))
            out.append(clean);
    };
    for (const QString &d : configuredDirs)
        add(d);
    for (const QString &d : environmentDirs)
        add(d);
    add(installDir);
    return out;
}

QString PluginRecord::stateName(State state)
{
    switch (state) {
    case State::Rejected: return QStringLiteral("rejected");
    case State::Resolved: return QStringLiteral("resolved");
    case State::Loaded: return QStringLiteral("loaded");
    case State::Failed: return QStringLiteral("failed");
    }
    return {};
}

QJsonObject PluginRecord::toJson() const
{
    QJsonObject o{{QStringLiteral("path"), path}, {QStringLiteral("state"), stateName(state)}};
    if (!declaredId.isEmpty())
        o.insert(QStringLiteral("id"), declaredId);
    if (!reason.isEmpty())
        o.insert(QStringLiteral("reason"), reason);
    if (metaData) {
        o.insert(QStringLiteral("id"), metaData->id());
        o.insert(QStringLiteral("kind"), pluginKindName(metaData->kind()));
        o.insert(QStringLiteral("version"), metaData->version().toString());
        o.insert(QStringLiteral("apiVersion"), metaData->apiVersion().toString());
        o.insert(QStringLiteral("description"), metaData->description());
        o.insert(QStringLiteral("dependencies"), QJsonArray::fromStringList(metaData->dependencies()));
        o.insert(QStringLiteral("config"), metaData->configSchema().toJson());
    }
    return o;
}

PluginCatalog::PluginCatalog(const PluginSearchPath &searchPath, const TrustedOwners &owners)
    : m_searchPath(searchPath)
    , m_owners(owners)
{
}

// Plugins never unload: the loaders are released, not destroyed, so the libraries stay
// mapped for objects that may still reference their code.
PluginCatalog::~PluginCatalog()
{
    for (auto &loader : m_loaders)
        (void)loader.release();
}

void PluginCatalog::discover()
{
    m_records.clear();
    m_refusedDirs.clear();
    QHash<QString, int> firstById;

    for (const QString &dir : m_searchPath.directories()) {
        if (!QFileInfo(dir).isDir()) {
            qCDebug(lcLoader) << "plugin directory" << dir << "does not exist; skipped";
            continue;
        }
        if (auto ok = checkPluginDirectory(dir, m_owners); !ok) {
            qCWarning(lcLoader).noquote() << "refusing plugin directory:" << ok.error().message;
            m_refusedDirs.append({dir, ok.error().message});
            continue;
        }
        const QFileInfoList entries = QDir(dir).entryInfoList(QDir::Files | QDir::System, QDir::Name);
        for (const QFileInfo &entry : entries) {
            if (!QLibrary::isLibrary(entry.fileName()))
                continue;
            PluginRecord rec;
            rec.path = entry.absoluteFilePath();
            rec.directory = dir;
            if (auto ok = checkPluginFile(rec.path, m_owners); !ok) {
                rec.reason = ok.error().message;
            } else {
                QPluginLoader probe(rec.path);
                const QJsonObject raw = probe.metaData(); // reads the ELF section; runs no code
                rec.declaredId = raw.value(QLatin1String("MetaData")).toObject().value(QLatin1String("id")).toString();
                if (raw.isEmpty()) {
                    rec.reason = QStringLiteral("not a Qt plugin, or unreadable: %1").arg(probe.errorString());
                } else if (auto meta = PluginMetaData::fromLoaderMetaData(raw); !meta) {
                    rec.reason = meta.error().message;
                } else {
                    rec.metaData = std::move(*meta);
                    const auto dup = firstById.constFind(rec.metaData->id());
                    if (dup != firstById.cend()) {
                        rec.reason = QStringLiteral("duplicate plugin id '%1', already provided by %2")
                                         .arg(rec.metaData->id(), m_records.at(*dup).path);
                    } else {
                        rec.state = PluginRecord::State::Resolved;
                        firstById.insert(rec.metaData->id(), int(m_records.size()));
                    }
                }
            }
            if (rec.state == PluginRecord::State::Rejected)
                qCWarning(lcLoader).noquote() << "rejected plugin" << rec.path << "-" << rec.reason;
            m_records.append(std::move(rec));
        }
    }
    resolveDependencies();
}

void PluginCatalog::resolveDependencies()
{
    QHash<QString, int> byId;
    for (int i = 0; i < m_records.size(); ++i) {
        if (m_records[i].state == PluginRecord::State::Resolved)
            byId.insert(m_records[i].id(), i);
    }
    auto reject = [&](int index, const QString &reason) {
        PluginRecord &rec = m_records[index];
        if (rec.state != PluginRecord::State::Resolved)
            return;
        rec.state = PluginRecord::State::Rejected;
        rec.reason = reason;
        qCWarning(lcLoader).noquote() << "rejected plugin" << rec.path << "-" << reason;
    };

    // Cycles first, so every member of a cycle says so.
    enum class Mark { White, Grey, Black };
    QHash<QString, Mark> marks;
    QStringList stack;
    std::function<void(const QString &)> visit = [&](const QString &id) {
        marks[id] = Mark::Grey;
        stack.append(id);
        for (const QString &dep : m_records[byId[id]].metaData->dependencies()) {
            if (!byId.contains(dep))
                continue;
            if (marks.value(dep) == Mark::Grey) {
                const QStringList cycle = stack.mid(stack.indexOf(dep)) << dep;
                for (const QString &member : cycle)
                    reject(byId[member], QStringLiteral("dependency cycle: %1").arg(cycle.join(QStringLiteral(" -> "))));
            } else if (marks.value(dep) == Mark::White) {
                visit(dep);
            }
        }
        stack.removeLast();
        marks[id] = Mark::Black;
    };
    for (auto it = byId.cbegin(); it != byId.cend(); ++it)
        marks.insert(it.key(), Mark::White);
    QStringList ids = byId.keys();
    ids.sort();
    for (const QString &id : ids) {
        if (marks.value(id) == Mark::White)
            visit(id);
    }

    // Missing and rejected dependencies, to a fixed point.
    for (bool changed = true; changed;) {
        changed = false;
        for (const QString &id : ids) {
            const PluginRecord &rec = m_records[byId[id]];
            if (rec.state != PluginRecord::State::Resolved)
                continue;
            for (const QString &dep : rec.metaData->dependencies()) {
                if (!byId.contains(dep)) {
                    reject(byId[id], QStringLiteral("missing dependency '%1'").arg(dep));
                    changed = true;
                    break;
                }
                if (m_records[byId[dep]].state != PluginRecord::State::Resolved) {
                    reject(byId[id], QStringLiteral("dependency '%1' was rejected").arg(dep));
                    changed = true;
                    break;
                }
            }
        }
    }

    // Load order: dependencies first.
    m_loadOrder.clear();
    QSet<QString> placed;
    std::function<void(const QString &)> place = [&](const QString &id) {
        if (placed.contains(id))
            return;
        placed.insert(id);
        for (const QString &dep : m_records[byId[id]].metaData->dependencies())
            place(dep);
        m_loadOrder.append(id);
    };
    for (const QString &id : ids) {
        if (m_records[byId[id]].state == PluginRecord::State::Resolved)
            place(id);
    }
}

void PluginCatalog::loadAll()
{
    for (const QString &id : std::as_const(m_loadOrder)) {
        auto it = std::find_if(m_records.begin(), m_records.end(), [&](const PluginRecord &r) {
            return r.state == PluginRecord::State::Resolved && r.id() == id;
        });
        if (it == m_records.end())
            continue;
        PluginRecord &rec = *it;
        for (const QString &dep : rec.metaData->dependencies()) {
            const PluginRecord *d = plugin(dep);
            if (!d || d->state != PluginRecord::State::Loaded) {
                rec.state = PluginRecord::State::Failed;
                rec.reason = QStringLiteral("dependency '%1' failed to load").arg(dep);
                break;
            }
        }
        if (rec.state == PluginRecord::State::Failed) {
            qCWarning(lcLoader).noquote() << "plugin" << rec.path << "not loaded -" << rec.reason;
            continue;
        }
        auto loader = std::make_unique<QPluginLoader>(rec.path);
        // Resolve every symbol now: a missing one fails here, not later in the middle of a call.
        loader->setLoadHints(QLibrary::ResolveAllSymbolsHint);
        QObject *root = loader->instance();
        if (!root) {
            rec.state = PluginRecord::State::Failed;
            rec.reason = QStringLiteral("cannot load: %1").arg(loader->errorString());
        } else if (auto *factory = qobject_cast<PluginFactory *>(root); !factory) {
            rec.state = PluginRecord::State::Failed;
            rec.reason = QStringLiteral("its root object %1 does not implement Sluice::PluginFactory")
                             .arg(QString::fromLatin1(root->metaObject()->className()));
        } else {
            rec.state = PluginRecord::State::Loaded;
            rec.factory = factory;
            qCDebug(lcLoader).noquote() << "loaded plugin" << rec.id() << "from" << rec.path;
        }
        if (rec.state == PluginRecord::State::Failed)
            qCWarning(lcLoader).noquote() << "plugin" << rec.path << "not loaded -" << rec.reason;
        m_loaders.push_back(std::move(loader));
    }
}

const PluginRecord *PluginCatalog::plugin(const QString &id) const
{
    for (const PluginRecord &rec : m_records) {
        if (rec.state != PluginRecord::State::Rejected && rec.id() == id)
            return &rec;
    }
    return nullptr;
}

PluginAvailability PluginCatalog::availability(const QString &id) const
{
    PluginAvailability found;
    if (const PluginRecord *record = plugin(id)) {
        if (record->state == PluginRecord::State::Failed) {
            found.state = PluginAvailability::State::Failed;
            found.reason = record->reason;
        } else {
            found.state = PluginAvailability::State::Usable;
            found.metaData = &*record->metaData;
        }
        return found;
    }
    for (const PluginRecord &record : m_records) {
        if (record.declaredId == id && record.state == PluginRecord::State::Rejected) {
            found.state = PluginAvailability::State::Rejected;
            found.reason = record.reason;
            break;
        }
    }
    return found;
}

const QLoggingCategory *pluginLoggingCategory(PluginKind kind, const QString &id)
{
    static QMutex mutex;
    static std::map<QByteArray, std::pair<QByteArray, std::unique_ptr<QLoggingCategory>>> categories;
    QMutexLocker lock(&mutex);
    const QByteArray name = QStringLiteral("sluice.%1.%2").arg(pluginKindName(kind), id).toUtf8();
    auto it = categories.find(name);
    if (it == categories.end()) {
        it = categories.emplace(name, std::make_pair(name, nullptr)).first;
        // QLoggingCategory keeps the name pointer: it points into the map's own copy.
        it->second.second = std::make_unique<QLoggingCategory>(it->second.first.constData(), QtInfoMsg);
    }
    return it->second.second.get();
}

} // namespace Sluice
