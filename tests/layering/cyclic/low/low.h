// SPDX-License-Identifier: Apache-2.0
// A fixture for tests/layering/check-layers.cmake, never compiled: the lower folder
// including the higher one closes a cycle the check must report.
#pragma once
#include "high/high.h"
