// SPDX-License-Identifier: Apache-2.0
#pragma once

// The secret scan of a range of commits as the host runs it before anything leaves the
// machine (the task branch pushed to the forge): the security gate's scanner, with the rules
// and ignores the target commit holds, so a task cannot allowlist its own secret.

#include <sluice/error.h>
#include <sluice/verdict.h>

#include <QList>
#include <QString>

namespace Sluice::Security {

/**
 * Scans the lines added by @p base..@p head in @p repository for secrets: the rules of
 * `.gitleaks.toml` and the fingerprints of `.gitleaksignore` as committed in @p base, else the
 * built-in rules. Findings carry the rule, file, line and the masked match, never a secret.
 * Compiled rule sets are kept for the life of the process. Blocking; thread-safe.
 */
[[nodiscard]] Result<QList<Finding>> scanCommitRange(const QString &repository, const QString &base, const QString &head);

} // namespace Sluice::Security
