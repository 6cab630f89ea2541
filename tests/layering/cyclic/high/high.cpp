// SPDX-License-Identifier: Apache-2.0
// A fixture for tests/layering/check-layers.cmake, never compiled.
#include "high/high.h"
#include "low/low.h"
