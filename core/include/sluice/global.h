// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file global.h
 * Export macro and the SDK version contract shared by the host and every plugin.
 */

#include <QtGlobal>

#if defined(SLUICE_CORE_BUILDING)
#  define SLUICE_EXPORT Q_DECL_EXPORT
#else
#  define SLUICE_EXPORT Q_DECL_IMPORT
#endif

#include <sluice/version.h>

namespace Sluice {

/// ABI major of this SDK. It is part of the plugin IID: a plugin built against another
/// major is refused before its code runs.
inline constexpr int SdkAbiMajor = SLUICE_SDK_ABI_MAJOR;

/// API minor of this SDK. A plugin declares the API version it was built against in its
/// metadata ("apiVersion": "MAJOR.MINOR"); the host accepts it when MAJOR equals
/// SdkAbiMajor and MINOR is not newer than SdkApiMinor.
inline constexpr int SdkApiMinor = SLUICE_SDK_API_MINOR;

} // namespace Sluice
