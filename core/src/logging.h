// SPDX-License-Identifier: Apache-2.0
#pragma once

// Logging to stderr for journald: one line per message, the category, and every registered
// secret replaced before anything is written — and, when the process installed a free-text
// masker (Redaction::installFreeTextMasker), every secret it recognises (Redaction::mask).
// While that masker is not ready, lines wait in memory, in order (see flush()).

#include <sluice/global.h>

#include <QString>

namespace Sluice::Logging {

/// Installs the message handler. Call once, early in main().
void install();
/**
 * Writes the lines that wait for the free-text masker to be ready (masked; waits for it if
 * need be). The handler writes them itself before the first line logged once the masker is
 * ready; call this before the process exits so none is left behind.
 */
void flush();
/// Applies Qt logging rules on top of the defaults (sluice.*.debug off) and $QT_LOGGING_RULES.
void applyRules(const QString &rules);

} // namespace Sluice::Logging
