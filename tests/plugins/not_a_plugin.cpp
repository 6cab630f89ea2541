// SPDX-License-Identifier: Apache-2.0
// A plain shared library with no plugin metadata: the loader must report and skip it.
extern "C" __attribute__((visibility("default"))) int sluice_not_a_plugin_answer()
{
    return 42;
}
