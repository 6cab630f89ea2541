// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file pluginfactory.h
 * One line for a plugin library's factory, as KDE's K_PLUGIN_CLASS_WITH_JSON.
 *
 * @code
 * class LicenceGate final : public Sluice::Gate { ... };
 *
 * SLUICE_PLUGIN_CLASS_WITH_JSON(LicenceGate, "licence.json")
 * @endcode
 *
 * writes the class LicenceGateFactory (a QObject and a Sluice::PluginFactory carrying
 * Q_PLUGIN_METADATA with the file and SLUICE_PLUGIN_FACTORY_IID) whose create() makes a
 * LicenceGate with Sluice::createPluginInstance(). moc expands the macro as it reads the
 * file, so the file must be run through moc: a header among the target's sources with
 * AUTOMOC on, or a .cpp file that includes "<name>.moc". sluice_add_plugin() tells automoc
 * about the macro and the JSON file it names (CMake's AUTOMOC_MACRO_NAMES and
 * AUTOMOC_DEPEND_FILTERS). The JSON file is found beside the file that uses the macro.
 *
 * A factory that does more than create one class for a context (picks a class by the
 * settings, several IIDs) stays a hand-written class as shown in plugin.h.
 *
 * @since SDK API 2.0
 */

#include <sluice/plugin.h>

#include <memory>
#include <type_traits>
#include <utility>

namespace Sluice {

/**
 * A new @p Instance for @p context: `Instance::create(context)` when the class declares it (a
 * static function returning Result<std::unique_ptr<T>> for T = Instance or PluginInstance:
 * where settings are read and checked, and an Error refuses them), else `Instance(context)`.
 * @since SDK API 2.0
 */
template <typename Instance>
[[nodiscard]] Result<std::unique_ptr<PluginInstance>> createPluginInstance(const PluginContext &context)
{
    static_assert(std::is_base_of_v<PluginInstance, Instance>, "a plugin class derives from Sluice::PluginInstance");
    if constexpr (requires { Instance::create(context); }) {
        auto made = Instance::create(context);
        if (!made)
            return std::unexpected(made.error());
        return std::unique_ptr<PluginInstance>(std::move(*made));
    } else {
        static_assert(std::is_constructible_v<Instance, const PluginContext &>,
                      "give the plugin class a constructor taking the PluginContext, or a static create(context)");
        return std::unique_ptr<PluginInstance>(std::make_unique<Instance>(context));
    }
}

} // namespace Sluice

/**
 * Declares and defines `classname##Factory`, the factory a plugin library exports, with the
 * metadata in @p jsonFile; it creates @p classname with Sluice::createPluginInstance(). Use it
 * once per library, after @p classname is declared, in the same namespace (or none).
 * @since SDK API 2.0
 */
#define SLUICE_PLUGIN_CLASS_WITH_JSON(classname, jsonFile)                                                              \
    class classname##Factory final : public QObject, public ::Sluice::PluginFactory                                     \
    {                                                                                                                   \
        Q_OBJECT                                                                                                        \
        Q_PLUGIN_METADATA(IID SLUICE_PLUGIN_FACTORY_IID FILE jsonFile)                                                  \
        Q_INTERFACES(Sluice::PluginFactory)                                                                             \
    public:                                                                                                             \
        using QObject::QObject;                                                                                         \
        [[nodiscard]] ::Sluice::Result<std::unique_ptr<::Sluice::PluginInstance>>                                      \
        create(const ::Sluice::PluginContext &context) override                                                        \
        {                                                                                                               \
            return ::Sluice::createPluginInstance<classname>(context);                                                  \
        }                                                                                                               \
    };
