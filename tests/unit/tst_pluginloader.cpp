// SPDX-License-Identifier: Apache-2.0
// The plugin loader against real plugin libraries: every way a plugin can be wrong is
// reported with its reason and skipped, and the host keeps running.

#include "pluginhost/pluginloader.h"

#include <sluice/testsupport.h>

#include <QtTest>

#include <sys/stat.h>
#include <unistd.h>

using namespace Sluice;

namespace {
const QString testPlugins = QStringLiteral(SLUICE_TEST_PLUGIN_DIR);

const PluginRecord *recordAt(const PluginCatalog &catalog, const QString &fileName)
{
    for (const PluginRecord &r : catalog.plugins()) {
        if (QFileInfo(r.path).fileName() == fileName)
            return &r;
    }
    return nullptr;
}

QString describe(const PluginCatalog &catalog)
{
    QStringList lines;
    for (const PluginRecord &r : catalog.plugins())
        lines << QStringLiteral("%1 %2 %3").arg(r.path, PluginRecord::stateName(r.state), r.reason);
    for (const RefusedDirectory &d : catalog.refusedDirectories())
        lines << QStringLiteral("refused dir %1: %2").arg(d.path, d.reason);
    return lines.join(QLatin1Char('\n'));
}

std::unique_ptr<PluginCatalog> scan(const QStringList &dirs)
{
    PluginSearchPath path;
    path.configuredDirs = dirs;
    auto catalog = std::make_unique<PluginCatalog>(path, TrustedOwners::forServiceUser(QString()));
    catalog->discover();
    catalog->loadAll();
    return catalog;
}
} // namespace

class tst_PluginLoader : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void goodPluginsLoad();
    void badPlugin_data();
    void badPlugin();
    void allTogetherNothingCrashes();
    void duplicateIdFirstInSearchOrderWins();
    void searchPathOrder();
    void dependencyOrderAndCycles();
    void corruptLibraries_data();
    void corruptLibraries();
    void unsafeDirectory_data();
    void unsafeDirectory();
    void unsafeFile_data();
    void unsafeFile();
    void foreignOwner_data();
    void foreignOwner();
    void symlinkToUnsafePlace();
    void missingDirectoryIsSkipped();
    void loggingCategoryPerPlugin();
};

void tst_PluginLoader::goodPluginsLoad()
{
    Test::PluginDirectory dir;
    dir.add(testPlugins, QStringLiteral("test-gate"));
    dir.add(testPlugins, QStringLiteral("test-stage"));
    const auto catalog = scan({dir.path()});
    QCOMPARE(catalog->plugins().size(), 2);
    const PluginRecord *gate = catalog->plugin(QStringLiteral("test-gate"));
    QVERIFY(gate);
    QCOMPARE(gate->state, PluginRecord::State::Loaded);
    QVERIFY(gate->factory);
    QCOMPARE(gate->metaData->kind(), PluginKind::Gate);
    QCOMPARE(gate->metaData->version(), QVersionNumber(1, 0, 0));
    QCOMPARE(gate->metaData->apiVersion(), QVersionNumber(1, 0));
    QVERIFY(gate->metaData->configSchema().entry(QStringLiteral("token"))->isSecret());
    const QJsonObject json = gate->toJson();
    QCOMPARE(json.value(QLatin1String("state")).toString(), QStringLiteral("loaded"));
    QCOMPARE(json.value(QLatin1String("kind")).toString(), QStringLiteral("gate"));
    QCOMPARE(catalog->plugin(QStringLiteral("test-stage"))->metaData->kind(), PluginKind::Stage);
}

void tst_PluginLoader::badPlugin_data()
{
    QTest::addColumn<QString>("plugin");
    QTest::addColumn<int>("state");
    QTest::addColumn<QString>("reason");
    const int rejected = int(PluginRecord::State::Rejected);
    const int failed = int(PluginRecord::State::Failed);
    QTest::newRow("wrong IID") << QStringLiteral("wrong-iid") << rejected << QStringLiteral("not a Sluice plugin (IID 'org.example.SomethingElse/1'");
    QTest::newRow("other ABI major") << QStringLiteral("wrong-abi") << rejected << QStringLiteral("built for SDK ABI 99, this host speaks 1");
    QTest::newRow("API minor too new") << QStringLiteral("api-too-new") << rejected << QStringLiteral("needs SDK API 1.99, this host provides 1.3");
    QTest::newRow("API other major") << QStringLiteral("api-other-major") << rejected << QStringLiteral("needs SDK API 2.0");
    QTest::newRow("unknown kind") << QStringLiteral("unknown-kind") << rejected << QStringLiteral("unknown plugin kind 'teleporter'");
    QTest::newRow("malformed metadata") << QStringLiteral("malformed-meta") << rejected << QStringLiteral("metadata key 'id'");
    QTest::newRow("malformed schema") << QStringLiteral("bad-schema") << rejected << QStringLiteral("malformed config schema: config.mode.type: unknown type 'strng'");
    QTest::newRow("missing dependency") << QStringLiteral("missing-dep") << rejected << QStringLiteral("missing dependency 'no-such-plugin'");
    QTest::newRow("missing symbol") << QStringLiteral("missing-symbol") << failed << QStringLiteral("sluice_test_symbol_nobody_defines");
    QTest::newRow("not a factory") << QStringLiteral("not-factory") << failed << QStringLiteral("does not implement Sluice::PluginFactory");
    QTest::newRow("not a plugin") << QStringLiteral("not-a-plugin") << rejected << QStringLiteral("not a Qt plugin");
}

void tst_PluginLoader::badPlugin()
{
    QFETCH(QString, plugin);
    QFETCH(int, state);
    QFETCH(QString, reason);
    Test::PluginDirectory dir;
    dir.add(testPlugins, plugin);
    dir.add(testPlugins, QStringLiteral("test-gate"));
    const auto catalog = scan({dir.path()});
    const PluginRecord *bad = recordAt(*catalog, plugin + QStringLiteral(".so"));
    QVERIFY(bad);
    QVERIFY2(int(bad->state) == state, qPrintable(describe(*catalog)));
    QVERIFY2(bad->reason.contains(reason), qPrintable(bad->reason));
    QVERIFY(!bad->factory);
    // The good plugin next to it is unaffected.
    QCOMPARE(catalog->plugin(QStringLiteral("test-gate"))->state, PluginRecord::State::Loaded);
}

void tst_PluginLoader::allTogetherNothingCrashes()
{
    // Every test plugin in one directory, as an operator might drop them.
    const auto catalog = scan({testPlugins});
    int loaded = 0;
    for (const PluginRecord &r : catalog->plugins()) {
        QVERIFY2(r.state != PluginRecord::State::Resolved, qPrintable(r.path)); // everything was decided
        if (r.state == PluginRecord::State::Loaded)
            ++loaded;
        else
            QVERIFY2(!r.reason.isEmpty(), qPrintable(r.path));
    }
    // dep-base, dep-child, test-stage, test-tracker, and whichever file provides test-gate first
    // (duplicate-id.so sorts before test-gate.so), plus wrong-kind (caught at creation).
    QCOMPARE(loaded, 6);
    QCOMPARE(catalog->plugin(QStringLiteral("test-gate"))->path, testPlugins + QStringLiteral("/duplicate-id.so"));
    QVERIFY(recordAt(*catalog, QStringLiteral("test-gate.so"))->reason.startsWith(QLatin1String("duplicate plugin id 'test-gate'")));
}

void tst_PluginLoader::duplicateIdFirstInSearchOrderWins()
{
    Test::PluginDirectory first;
    Test::PluginDirectory second;
    first.add(testPlugins, QStringLiteral("test-gate"));
    second.add(testPlugins, QStringLiteral("duplicate-id"));
    const auto catalog = scan({first.path(), second.path()});
    QCOMPARE(catalog->plugin(QStringLiteral("test-gate"))->path, first.path() + QStringLiteral("/test-gate.so"));
    const PluginRecord *dup = recordAt(*catalog, QStringLiteral("duplicate-id.so"));
    QCOMPARE(dup->state, PluginRecord::State::Rejected);
    QCOMPARE(dup->reason, QStringLiteral("duplicate plugin id 'test-gate', already provided by %1/test-gate.so").arg(first.path()));
}

void tst_PluginLoader::searchPathOrder()
{
    Test::PluginDirectory configured;
    Test::PluginDirectory fromEnvironment;
    configured.add(testPlugins, QStringLiteral("duplicate-id"));
    fromEnvironment.add(testPlugins, QStringLiteral("test-gate"));
    fromEnvironment.add(testPlugins, QStringLiteral("test-stage"));
    qputenv("SLUICE_PLUGIN_PATH", (QStringLiteral("/nonexistent/dir:") + fromEnvironment.path()).toLocal8Bit());
    const PluginSearchPath path = PluginSearchPath::standard({configured.path()});
    qunsetenv("SLUICE_PLUGIN_PATH");
    const QStringList dirs = path.directories();
    QCOMPARE(dirs.size(), 4);
    QCOMPARE(dirs[0], configured.path());
    QCOMPARE(dirs[1], QStringLiteral("/nonexistent/dir"));
    QCOMPARE(dirs[2], fromEnvironment.path());
    QCOMPARE(dirs[3], PluginSearchPath::defaultInstallDir());
    QVERIFY(dirs[3].endsWith(QLatin1String("/sluice/plugins")));

    PluginSearchPath withoutInstall = path;
    withoutInstall.installDir.clear();
    PluginCatalog catalog(withoutInstall, TrustedOwners::forServiceUser(QString()));
    catalog.discover();
    // The configured directory wins over the environment for the same id.
    QCOMPARE(catalog.plugin(QStringLiteral("test-gate"))->path, configured.path() + QStringLiteral("/duplicate-id.so"));
    QCOMPARE(catalog.plugin(QStringLiteral("test-stage"))->path, fromEnvironment.path() + QStringLiteral("/test-stage.so"));
}

void tst_PluginLoader::dependencyOrderAndCycles()
{
    Test::PluginDirectory dir;
    dir.add(testPlugins, QStringLiteral("dep-child"));
    dir.add(testPlugins, QStringLiteral("dep-base"));
    dir.add(testPlugins, QStringLiteral("cycle-a"));
    dir.add(testPlugins, QStringLiteral("cycle-b"));
    const auto catalog = scan({dir.path()});
    QCOMPARE(catalog->plugin(QStringLiteral("dep-base"))->state, PluginRecord::State::Loaded);
    QCOMPARE(catalog->plugin(QStringLiteral("dep-child"))->state, PluginRecord::State::Loaded);
    for (const QString &name : {QStringLiteral("cycle-a.so"), QStringLiteral("cycle-b.so")}) {
        const PluginRecord *r = recordAt(*catalog, name);
        QCOMPARE(r->state, PluginRecord::State::Rejected);
        QVERIFY2(r->reason.startsWith(QLatin1String("dependency cycle: ")), qPrintable(r->reason));
        QVERIFY(r->reason.contains(QLatin1String("cycle-a -> cycle-b -> cycle-a")));
    }

    // Without its dependency, the child is rejected and says which one is missing.
    Test::PluginDirectory alone;
    alone.add(testPlugins, QStringLiteral("dep-child"));
    const auto lonely = scan({alone.path()});
    QCOMPARE(recordAt(*lonely, QStringLiteral("dep-child.so"))->reason, QStringLiteral("missing dependency 'dep-base'"));

    // A dependency that fails to load takes its dependents with it.
    Test::PluginDirectory broken;
    const QString base = broken.add(testPlugins, QStringLiteral("missing-symbol"));
    QFile::rename(base, broken.path() + QStringLiteral("/dep-base.so")); // id stays missing-symbol
    broken.add(testPlugins, QStringLiteral("dep-child"));
    const auto chain = scan({broken.path()});
    QCOMPARE(recordAt(*chain, QStringLiteral("dep-child.so"))->reason, QStringLiteral("missing dependency 'dep-base'"));
}

void tst_PluginLoader::corruptLibraries_data()
{
    QTest::addColumn<QByteArray>("content");
    QTest::addColumn<bool>("truncatedCopy");
    QTest::newRow("random bytes") << QByteArray(64 * 1024, '\x5a') << false;
    QTest::newRow("ELF magic, then garbage") << QByteArray("\x7f" "ELF\x02\x01\x01").append(4096, '\x01') << false;
    QTest::newRow("empty file") << QByteArray() << false;
    QTest::newRow("truncated real plugin") << QByteArray() << true;
}

void tst_PluginLoader::corruptLibraries()
{
    QFETCH(QByteArray, content);
    QFETCH(bool, truncatedCopy);
    Test::PluginDirectory dir;
    dir.add(testPlugins, QStringLiteral("test-stage"));
    QByteArray bytes = content;
    if (truncatedCopy) {
        QFile real(testPlugins + QStringLiteral("/test-gate.so"));
        QVERIFY(real.open(QIODevice::ReadOnly));
        bytes = real.read(real.size() / 3);
    }
    QFile corrupt(dir.path() + QStringLiteral("/corrupt.so"));
    QVERIFY(corrupt.open(QIODevice::WriteOnly));
    corrupt.write(bytes);
    corrupt.close();
    const auto catalog = scan({dir.path()});
    const PluginRecord *r = recordAt(*catalog, QStringLiteral("corrupt.so"));
    QVERIFY(r);
    QVERIFY2(r->state == PluginRecord::State::Rejected || r->state == PluginRecord::State::Failed, qPrintable(describe(*catalog)));
    QVERIFY(!r->reason.isEmpty());
    QCOMPARE(catalog->plugin(QStringLiteral("test-stage"))->state, PluginRecord::State::Loaded);
}

void tst_PluginLoader::unsafeDirectory_data()
{
    QTest::addColumn<int>("mode");
    QTest::addColumn<QString>("reason");
    QTest::newRow("group-writable") << 0775 << QStringLiteral("is writable by its group");
    QTest::newRow("world-writable") << 0757 << QStringLiteral("is writable by others");
    QTest::newRow("world-writable sticky") << 01757 << QStringLiteral("is writable by others");
}

void tst_PluginLoader::unsafeDirectory()
{
    QFETCH(int, mode);
    QFETCH(QString, reason);
    Test::PluginDirectory dir;
    dir.add(testPlugins, QStringLiteral("test-gate"));
    QCOMPARE(::chmod(QFile::encodeName(dir.path()).constData(), mode_t(mode)), 0);
    const auto catalog = scan({dir.path()});
    QCOMPARE(catalog->plugins().size(), 0); // nothing in it was even looked at
    QCOMPARE(catalog->refusedDirectories().size(), 1);
    QVERIFY2(catalog->refusedDirectories().first().reason.contains(reason), qPrintable(describe(*catalog)));
    QVERIFY(!catalog->plugin(QStringLiteral("test-gate")));

    // An unsafe parent is as bad: whoever can write it can swap the plugin directory.
    QCOMPARE(::chmod(QFile::encodeName(dir.path()).constData(), 0755), 0);
    QTemporaryDir parent;
    QCOMPARE(::chmod(QFile::encodeName(parent.path()).constData(), mode_t(mode & 0777)), 0);
    const QString nested = parent.path() + QStringLiteral("/plugins");
    QVERIFY(QDir().mkpath(nested));
    QCOMPARE(::chmod(QFile::encodeName(nested).constData(), 0755), 0);
    QVERIFY(QFile::copy(testPlugins + QStringLiteral("/test-gate.so"), nested + QStringLiteral("/test-gate.so")));
    const auto viaParent = scan({nested});
    QCOMPARE(viaParent->refusedDirectories().size(), 1);
    QVERIFY2(viaParent->refusedDirectories().first().reason.contains(QLatin1String("is unsafe")), qPrintable(describe(*viaParent)));
}

void tst_PluginLoader::unsafeFile_data()
{
    QTest::addColumn<int>("mode");
    QTest::addColumn<QString>("reason");
    QTest::newRow("group-writable") << 0664 << QStringLiteral("is writable by its group");
    QTest::newRow("world-writable") << 0646 << QStringLiteral("is writable by others");
}

void tst_PluginLoader::unsafeFile()
{
    QFETCH(int, mode);
    QFETCH(QString, reason);
    Test::PluginDirectory dir;
    const QString file = dir.add(testPlugins, QStringLiteral("test-gate"));
    dir.add(testPlugins, QStringLiteral("test-stage"));
    QCOMPARE(::chmod(QFile::encodeName(file).constData(), mode_t(mode)), 0);
    const auto catalog = scan({dir.path()});
    const PluginRecord *r = recordAt(*catalog, QStringLiteral("test-gate.so"));
    QCOMPARE(r->state, PluginRecord::State::Rejected);
    QVERIFY2(r->reason.contains(reason), qPrintable(r->reason));
    QVERIFY(!r->metaData.has_value()); // refused before its metadata was read
    QCOMPARE(catalog->plugin(QStringLiteral("test-stage"))->state, PluginRecord::State::Loaded);
}

void tst_PluginLoader::foreignOwner_data()
{
    QTest::addColumn<bool>("directory");
    QTest::newRow("file owned by another user") << false;
    QTest::newRow("directory owned by another user") << true;
}

void tst_PluginLoader::foreignOwner()
{
    QFETCH(bool, directory);
    if (geteuid() != 0)
        QSKIP("changing a file's owner needs root; CI runs this as root");
    const uid_t nobody = 65534;
    Test::PluginDirectory dir;
    const QString file = dir.add(testPlugins, QStringLiteral("test-gate"));
    const QString target = directory ? dir.path() : file;
    QCOMPARE(::chown(QFile::encodeName(target).constData(), nobody, gid_t(-1)), 0);
    const auto catalog = scan({dir.path()});
    const QString expected = QStringLiteral("is owned by uid 65534, not by root or the service user");
    if (directory) {
        QCOMPARE(catalog->refusedDirectories().size(), 1);
        QVERIFY(catalog->refusedDirectories().first().reason.contains(expected));
    } else {
        const PluginRecord *r = recordAt(*catalog, QStringLiteral("test-gate.so"));
        QCOMPARE(r->state, PluginRecord::State::Rejected);
        QVERIFY2(r->reason.contains(expected), qPrintable(r->reason));
    }
    QVERIFY(!catalog->plugin(QStringLiteral("test-gate")));

    // The service user is trusted: the same owner is accepted when it is the service user.
    TrustedOwners owners = TrustedOwners::forServiceUser(QString());
    owners.add(nobody);
    PluginSearchPath path;
    path.configuredDirs = QStringList{dir.path()};
    PluginCatalog trusted(path, owners);
    trusted.discover();
    QVERIFY(trusted.plugin(QStringLiteral("test-gate")));
}

void tst_PluginLoader::symlinkToUnsafePlace()
{
    QTemporaryDir unsafe;
    QCOMPARE(::chmod(QFile::encodeName(unsafe.path()).constData(), 0777), 0);
    const QString real = unsafe.path() + QStringLiteral("/test-gate.so");
    QVERIFY(QFile::copy(testPlugins + QStringLiteral("/test-gate.so"), real));
    QCOMPARE(::chmod(QFile::encodeName(real).constData(), 0755), 0);
    Test::PluginDirectory dir;
    QVERIFY(QFile::link(real, dir.path() + QStringLiteral("/test-gate.so")));
    const auto catalog = scan({dir.path()});
    const PluginRecord *r = recordAt(*catalog, QStringLiteral("test-gate.so"));
    QCOMPARE(r->state, PluginRecord::State::Rejected);
    QVERIFY2(r->reason.contains(QLatin1String("links to an unsafe place")), qPrintable(r->reason));
}

void tst_PluginLoader::missingDirectoryIsSkipped()
{
    Test::PluginDirectory dir;
    dir.add(testPlugins, QStringLiteral("test-gate"));
    const auto catalog = scan({QStringLiteral("/nonexistent/plugins"), dir.path()});
    QVERIFY(catalog->refusedDirectories().isEmpty());
    QCOMPARE(catalog->plugin(QStringLiteral("test-gate"))->state, PluginRecord::State::Loaded);
}

void tst_PluginLoader::loggingCategoryPerPlugin()
{
    const QLoggingCategory *a = pluginLoggingCategory(PluginKind::Gate, QStringLiteral("verdict"));
    QCOMPARE(QByteArray(a->categoryName()), QByteArray("sluice.gate.verdict"));
    QCOMPARE(pluginLoggingCategory(PluginKind::Gate, QStringLiteral("verdict")), a);
    QCOMPARE(QByteArray(pluginLoggingCategory(PluginKind::AgentLauncher, QStringLiteral("process"))->categoryName()),
             QByteArray("sluice.agent-launcher.process"));
}

QTEST_GUILESS_MAIN(tst_PluginLoader)
#include "tst_pluginloader.moc"
