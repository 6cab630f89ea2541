// SPDX-License-Identifier: Apache-2.0
// The schema language and plugin metadata: what is accepted, what is refused and why.

#include <sluice/configschema.h>
#include <sluice/pluginmetadata.h>

#include "config/hostconfig.h"

#include <QJsonDocument>
#include <QtTest>

using namespace Sluice;

class tst_ConfigSchema : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void schema_data();
    void schema();
    void defaultsAreConverted();
    void duration_data();
    void duration();
    void metadata_data();
    void metadata();
    void loaderMetadataChecksIid_data();
    void loaderMetadataChecksIid();
    void embeddedSchemasParse();
};

static QJsonObject json(const char *text)
{
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(QByteArray(text), &error);
    if (error.error != QJsonParseError::NoError)
        qFatal("bad JSON in test: %s", text);
    return doc.object();
}

void tst_ConfigSchema::schema_data()
{
    QTest::addColumn<QByteArray>("schema");
    QTest::addColumn<QString>("error"); // empty: valid

    QTest::newRow("scalars") << QByteArray(R"({"a":{"type":"string"},"b":{"type":"integer","default":3},
        "c":{"type":"number"},"d":{"type":"boolean","default":true},"e":{"type":"duration","default":"5m"},
        "f":{"type":"path"}})") << QString();
    QTest::newRow("nested") << QByteArray(R"({"o":{"type":"object","keys":{"x":{"type":"string","required":true}}},
        "l":{"type":"list","items":{"type":"object","keys":{"y":{"type":"integer"}}}},"m":{"type":"map","values":{"type":"integer"}}})")
                            << QString();
    QTest::newRow("secret") << QByteArray(R"({"token":{"type":"string","secret":true,"required":true}})") << QString();
    QTest::newRow("unknown type") << QByteArray(R"({"a":{"type":"strng"}})") << QStringLiteral("config.a.type: unknown type 'strng'");
    QTest::newRow("missing type") << QByteArray(R"({"a":{"default":"x"}})") << QStringLiteral("config.a.type: missing");
    QTest::newRow("unknown attribute") << QByteArray(R"({"a":{"type":"string","requird":true}})")
                                       << QStringLiteral("config.a: unknown schema attribute 'requird'");
    QTest::newRow("entry not object") << QByteArray(R"({"a":"string"})") << QStringLiteral("config.a: a schema entry is an object");
    QTest::newRow("default type mismatch") << QByteArray(R"({"n":{"type":"integer","default":"three"}})")
                                           << QStringLiteral("config.n.default: default is not a integer");
    QTest::newRow("fractional integer default") << QByteArray(R"({"n":{"type":"integer","default":1.5}})")
                                                << QStringLiteral("default is not a integer");
    // Found by fuzz_plugin_metadata: the check cast the double to 64 bits first (undefined
    // behaviour outside their range; UBSan aborted).
    QTest::newRow("integer default beyond 64 bits") << QByteArray(R"({"n":{"type":"integer","default":4.4e31}})")
                                                    << QStringLiteral("default is not a integer");
    QTest::newRow("integer default -1e300") << QByteArray(R"({"n":{"type":"integer","default":-1e300}})")
                                            << QStringLiteral("default is not a integer");
    QTest::newRow("bad duration default") << QByteArray(R"({"t":{"type":"duration","default":"soon"}})")
                                          << QStringLiteral("config.t.default: default is not a duration");
    QTest::newRow("required with default") << QByteArray(R"({"a":{"type":"string","required":true,"default":"x"}})")
                                           << QStringLiteral("a required key cannot have a default");
    QTest::newRow("secret on integer") << QByteArray(R"({"a":{"type":"integer","secret":true}})")
                                       << QStringLiteral("only string keys can be secret");
    QTest::newRow("secret with default") << QByteArray(R"({"a":{"type":"string","secret":true,"default":"hunter2"}})")
                                         << QStringLiteral("a secret cannot have a default");
    QTest::newRow("enum on integer") << QByteArray(R"({"a":{"type":"integer","enum":["1"]}})")
                                     << QStringLiteral("only string keys take an enum");
    QTest::newRow("default outside enum") << QByteArray(R"({"a":{"type":"string","enum":["x","y"],"default":"z"}})")
                                          << QStringLiteral("is not one of its enum values");
    QTest::newRow("list without items") << QByteArray(R"({"a":{"type":"list"}})") << QStringLiteral("a list needs an items entry");
    QTest::newRow("items on string") << QByteArray(R"({"a":{"type":"string","items":{"type":"string"}}})")
                                     << QStringLiteral("only lists take items");
    QTest::newRow("bad items") << QByteArray(R"({"a":{"type":"list","items":{"type":"bogus"}}})")
                               << QStringLiteral("config.a.items.type: unknown type 'bogus'");
    QTest::newRow("object without keys") << QByteArray(R"({"a":{"type":"object"}})") << QStringLiteral("an object needs a keys schema");
    QTest::newRow("bad nested key") << QByteArray(R"({"a":{"type":"object","keys":{"b":{"type":"nope"}}}})")
                                    << QStringLiteral("config.a.keys.b.type");
    QTest::newRow("bounds on string") << QByteArray(R"({"a":{"type":"string","minimum":1}})")
                                      << QStringLiteral("only integer, number and duration keys take bounds");
    QTest::newRow("min above max") << QByteArray(R"({"a":{"type":"integer","minimum":5,"maximum":1}})")
                                   << QStringLiteral("minimum is greater than maximum");
    QTest::newRow("bad key name") << QByteArray(R"({"Bad Key":{"type":"string"}})") << QStringLiteral("key names are lower case");
    QTest::newRow("object default") << QByteArray(R"({"a":{"type":"object","keys":{},"default":{}}})")
                                    << QStringLiteral("objects take no default");
}

void tst_ConfigSchema::schema()
{
    QFETCH(QByteArray, schema);
    QFETCH(QString, error);
    const auto parsed = ConfigSchema::fromJson(json(schema.constData()));
    if (error.isEmpty()) {
        QVERIFY2(parsed.has_value(), qPrintable(parsed ? QString() : parsed.error().message));
    } else {
        QVERIFY(!parsed.has_value());
        QVERIFY2(parsed.error().message.contains(error), qPrintable(parsed.error().message));
        QCOMPARE(parsed.error().code, ErrorCode::InvalidConfig);
    }
}

void tst_ConfigSchema::defaultsAreConverted()
{
    const auto schema = ConfigSchema::fromJson(json(R"({"t":{"type":"duration","default":"2m"},
        "n":{"type":"integer","default":7},"l":{"type":"list","items":{"type":"string"},"default":["a","b"]}})"));
    QVERIFY(schema.has_value());
    QCOMPARE(schema->entry(QStringLiteral("t"))->defaultValue().toLongLong(), 120000LL);
    QCOMPARE(schema->entry(QStringLiteral("n"))->defaultValue().toLongLong(), 7LL);
    QCOMPARE(schema->entry(QStringLiteral("l"))->defaultValue().toStringList(), QStringList({QStringLiteral("a"), QStringLiteral("b")}));
    QCOMPARE(schema->keyNames(), QStringList({QStringLiteral("l"), QStringLiteral("n"), QStringLiteral("t")}));
}

void tst_ConfigSchema::duration_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<qlonglong>("ms"); // -1: invalid
    QTest::newRow("ms") << QStringLiteral("250ms") << 250LL;
    QTest::newRow("s") << QStringLiteral("90s") << 90000LL;
    QTest::newRow("m") << QStringLiteral("5m") << 300000LL;
    QTest::newRow("h") << QStringLiteral("2h") << 7200000LL;
    QTest::newRow("d") << QStringLiteral("1d") << 86400000LL;
    QTest::newRow("bare seconds") << QStringLiteral("30") << 30000LL;
    QTest::newRow("spaces") << QStringLiteral(" 10 s ") << 10000LL;
    QTest::newRow("negative") << QStringLiteral("-5s") << -1LL;
    QTest::newRow("fraction") << QStringLiteral("1.5s") << -1LL;
    QTest::newRow("unit only") << QStringLiteral("s") << -1LL;
    QTest::newRow("unknown unit") << QStringLiteral("5w") << -1LL;
    QTest::newRow("empty") << QString() << -1LL;
}

void tst_ConfigSchema::duration()
{
    QFETCH(QString, text);
    QFETCH(qlonglong, ms);
    const auto parsed = parseDuration(text);
    if (ms < 0)
        QVERIFY(!parsed.has_value());
    else
        QCOMPARE(parsed.value_or(-1), ms);
}

void tst_ConfigSchema::metadata_data()
{
    QTest::addColumn<QByteArray>("metadata");
    QTest::addColumn<QString>("error");

    QTest::newRow("valid") << QByteArray(R"({"id":"licence","kind":"gate","version":"1.2.3","apiVersion":"2.0",
        "description":"d","dependencies":["gitea"],"config":{"a":{"type":"string"}}})") << QString();
    QTest::newRow("every kind: agent-launcher") << QByteArray(R"({"id":"p","kind":"agent-launcher","version":"1.0.0","apiVersion":"2.0"})") << QString();
    QTest::newRow("every kind: sweeper") << QByteArray(R"({"id":"p","kind":"sweeper","version":"1.0.0","apiVersion":"2.0"})") << QString();
    QTest::newRow("missing id") << QByteArray(R"({"kind":"gate","version":"1.0.0","apiVersion":"2.0"})") << QStringLiteral("'id'");
    QTest::newRow("bad id") << QByteArray(R"({"id":"Bad_ID","kind":"gate","version":"1.0.0","apiVersion":"2.0"})") << QStringLiteral("'id'");
    QTest::newRow("unknown kind") << QByteArray(R"({"id":"p","kind":"teleporter","version":"1.0.0","apiVersion":"2.0"})")
                                  << QStringLiteral("unknown plugin kind 'teleporter'");
    QTest::newRow("bad version") << QByteArray(R"({"id":"p","kind":"gate","version":"one","apiVersion":"2.0"})")
                                 << QStringLiteral("'version' must look like 1.2.3");
    QTest::newRow("missing api") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0"})")
                                 << QStringLiteral("'apiVersion' is missing");
    QTest::newRow("api minor too new") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"2.99"})")
                                       << QStringLiteral("needs SDK API 2.99");
    QTest::newRow("api other major") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"1.0"})")
                                     << QStringLiteral("needs SDK API 1.0");
    QTest::newRow("unknown key") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"2.0","dependecies":[]})")
                                 << QStringLiteral("unknown metadata key 'dependecies'");
    QTest::newRow("self dependency") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"2.0","dependencies":["p"]})")
                                     << QStringLiteral("depends on itself");
    QTest::newRow("dependencies not list") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"2.0","dependencies":"x"})")
                                           << QStringLiteral("must be a list of plugin ids");
    QTest::newRow("bad schema") << QByteArray(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"2.0","config":{"a":{"type":"x"}}})")
                                << QStringLiteral("malformed config schema: config.a.type");
}

void tst_ConfigSchema::metadata()
{
    QFETCH(QByteArray, metadata);
    QFETCH(QString, error);
    const auto parsed = PluginMetaData::fromJson(json(metadata.constData()));
    if (error.isEmpty()) {
        QVERIFY2(parsed.has_value(), qPrintable(parsed ? QString() : parsed.error().message));
    } else {
        QVERIFY(!parsed.has_value());
        QVERIFY2(parsed.error().message.contains(error), qPrintable(parsed.error().message));
    }
}

void tst_ConfigSchema::loaderMetadataChecksIid_data()
{
    QTest::addColumn<QString>("iid");
    QTest::addColumn<QString>("error");
    QTest::newRow("ours") << QStringLiteral(SLUICE_PLUGIN_FACTORY_IID) << QString();
    QTest::newRow("other ABI") << QStringLiteral("org.sluice.PluginFactory/7") << QStringLiteral("built for SDK ABI 7");
    QTest::newRow("foreign") << QStringLiteral("org.qt-project.Qt.QSqlDriverFactoryInterface") << QStringLiteral("not a Sluice plugin");
    QTest::newRow("empty") << QString() << QStringLiteral("not a Sluice plugin");
}

void tst_ConfigSchema::loaderMetadataChecksIid()
{
    QFETCH(QString, iid);
    QFETCH(QString, error);
    const QJsonObject loader{{QStringLiteral("IID"), iid},
                             {QStringLiteral("MetaData"), json(R"({"id":"p","kind":"gate","version":"1.0.0","apiVersion":"2.0"})")}};
    const auto parsed = PluginMetaData::fromLoaderMetaData(loader);
    if (error.isEmpty()) {
        QVERIFY(parsed.has_value());
        QCOMPARE(parsed->id(), QStringLiteral("p"));
    } else {
        QVERIFY(!parsed.has_value());
        QVERIFY2(parsed.error().message.contains(error), qPrintable(parsed.error().message));
        QCOMPARE(parsed.error().code, ErrorCode::Incompatible);
    }
}

void tst_ConfigSchema::embeddedSchemasParse()
{
    for (const QString &name : {QStringLiteral("host"), QStringLiteral("project")}) {
        QFile f(QStringLiteral(":/sluice/schema/%1.json").arg(name));
        QVERIFY(f.open(QIODevice::ReadOnly));
        const auto schema = ConfigSchema::fromJson(QJsonDocument::fromJson(f.readAll()).object(), name);
        QVERIFY2(schema.has_value(), qPrintable(schema ? QString() : schema.error().message));
        QVERIFY(!embeddedSchema(name).isEmpty());
    }
}

QTEST_GUILESS_MAIN(tst_ConfigSchema)
#include "tst_configschema.moc"
