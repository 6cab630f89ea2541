// SPDX-License-Identifier: Apache-2.0
// Fuzz targets fuzz_project_yaml and fuzz_host_yaml (this file built with
// SLUICE_FUZZ_HOST_FILE): a project file or the host file as the daemon and `sluice check`
// read them (core/src/config): YAML parsing with its expansion limits, validation against
// the embedded schemas, the project's cross-references.
#include "config/hostconfig.h"
#include "config/projectconfig.h"
#include "config/yamlvalidator.h"
#include "pluginhost/pluginloader.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QTemporaryDir>

#include <cstdint>
#include <cstdlib>

namespace {

struct Fixture {
    QTemporaryDir dir;
    std::unique_ptr<Sluice::PluginCatalog> catalog;
    Fixture()
    {
        if (!dir.isValid() || !QDir().mkpath(dir.filePath(QStringLiteral("projects"))))
            std::abort();
        Sluice::PluginSearchPath path; // no plugin directory: every instance names an unknown plugin
        catalog = std::make_unique<Sluice::PluginCatalog>(path, Sluice::TrustedOwners::forServiceUser(QString()));
    }
};

Fixture &fixture()
{
    static int argc = 1;
    static char name[] = "fuzz_config";
    static char *argv[] = {name, nullptr};
    static QCoreApplication app(argc, argv);
    static Fixture f;
    return f;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    Fixture &f = fixture();
#ifdef SLUICE_FUZZ_HOST_FILE
    constexpr bool host = true;
#else
    constexpr bool host = false;
#endif
    const QByteArray text(reinterpret_cast<const char *>(data), qsizetype(size));
    Sluice::Diagnostics diagnostics;
    if constexpr (host) {
        QFile file(f.dir.filePath(QStringLiteral("sluice.yaml")));
        if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate) || file.write(text) != text.size())
            std::abort();
        file.close();
        const Sluice::HostConfig config = Sluice::HostConfig::load(f.dir.path(), diagnostics);
        (void)config;
    } else {
        const QString path = f.dir.filePath(QStringLiteral("projects/p.yaml"));
        QFile file(path);
        if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate) || file.write(text) != text.size())
            std::abort();
        file.close();
        const auto project = Sluice::ProjectConfig::load(path, *f.catalog, diagnostics);
        // A project is valid exactly when nothing was reported.
        if (project.has_value() != diagnostics.isEmpty())
            std::abort();
    }
    if (diagnostics.size() > Sluice::YamlLimits::maxDiagnosticsPerFile + 1 + 2)
        std::abort();
    for (const Sluice::Diagnostic &d : std::as_const(diagnostics))
        (void)d.toString();
    return 0;
}
