// SPDX-License-Identifier: Apache-2.0
#pragma once

// GitHub's webhook payloads, read into ForgeEvents. A pure function: bytes in, events or an
// Error out, no state and no I/O (a target of tests/fuzz).

#include <sluice/forgeevents.h>

#include <QByteArray>
#include <QList>

namespace Sluice::Forges {

/**
 * Reads one GitHub delivery. @p event is its X-GitHub-Event header (GitHub's "Webhook events
 * and payloads"):
 *
 * - `status`: a commit status (sha, context, state);
 * - `check_run` and `check_suite`: a check on check_run.head_sha / check_suite.head_sha, its
 *   conclusion once completed, else "pending"; the pull requests it belongs to when GitHub
 *   lists one;
 * - `push`: a branch moved (ref, before, after); tags and deleted branches give nothing;
 * - `pull_request`: opened, reopened, synchronize, closed ("merged" when pull_request.merged);
 *   other actions give nothing;
 * - `pull_request_review`: a submitted review (review.state, review.commit_id, review.user);
 *   edits and dismissals give nothing;
 * - `issue_comment`: a comment created on a pull request (issue.pull_request present).
 *
 * `ping` and any other event type give an empty list. A body that is not JSON, or lacks a field
 * the event needs, is Malformed, naming the field.
 */
[[nodiscard]] Result<QList<ForgeEvent>> parseGitHubWebhook(const QByteArray &event, const QByteArray &body);

} // namespace Sluice::Forges
