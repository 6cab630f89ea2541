// SPDX-License-Identifier: Apache-2.0
#pragma once

// What tests in the Sluice tree that also drive the host (engine, store, daemon) need from
// TestSupport beyond sluice/testsupport.h. Not installed: the installed header shows no host
// type. Only for targets that link sluice-testsupport-host (TestSupport built into the test
// with the host library, one copy of the host in the process); the shared TestSupport does
// not export it.

#include <sluice/testsupport.h>

namespace Sluice {
class Store;
}

namespace Sluice::Test {

struct TemporaryStoreAccess {
    /// The host store behind @p temporary; null if it could not be opened.
    [[nodiscard]] static Store *store(const TemporaryStore &temporary);
};

/// The host store behind @p temporary; null if it could not be opened.
[[nodiscard]] inline Store *hostStore(const TemporaryStore &temporary)
{
    return TemporaryStoreAccess::store(temporary);
}

} // namespace Sluice::Test
