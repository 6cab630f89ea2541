// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a plugin's JSON metadata as the loader reads it before any of the plugin's
// code runs (core/src/sdk/pluginmetadata.cpp), both the bare form and QPluginLoader's
// wrapper ({"IID": ..., "MetaData": {...}}), and the configuration schema inside it.
#include <sluice/pluginmetadata.h>

#include <QJsonDocument>
#include <QJsonObject>

#include <cstdint>

namespace {

void parse(const std::uint8_t *data, std::size_t size)
{
    const QJsonDocument document = QJsonDocument::fromJson(QByteArray(reinterpret_cast<const char *>(data), qsizetype(size)));
    if (!document.isObject())
        return;
    const QJsonObject object = document.object();
    if (auto metaData = Sluice::PluginMetaData::fromJson(object))
        (void)metaData->configSchema();
    else
        (void)metaData.error().toString();
    (void)Sluice::PluginMetaData::fromLoaderMetaData(object);
    (void)Sluice::PluginMetaData::fromLoaderMetaData(QJsonObject{{QStringLiteral("IID"), QStringLiteral("org.sluice.Plugin/1")},
                                                                 {QStringLiteral("MetaData"), object}});
}

} // namespace

// Qt makes some allocations once, at the first JSON document it parses, and keeps them
// where LeakSanitizer does not see them: parse one before fuzzing so they are not reported
// as a leak of the first input.
extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    const QByteArray sample = R"({"id":"x","kind":"gate","version":"1.0.0","apiVersion":"2.0","description":"d",)"
                              R"("config":{"a":{"type":"string","default":"b"},"n":{"type":"integer","minimum":1}}})";
    parse(reinterpret_cast<const std::uint8_t *>(sample.constData()), std::size_t(sample.size()));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    parse(data, size);
    return 0;
}
