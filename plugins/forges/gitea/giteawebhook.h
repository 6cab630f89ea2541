// SPDX-License-Identifier: Apache-2.0
#pragma once

// Gitea's and Forgejo's webhook payloads, read into ForgeEvents. A pure function: bytes in,
// events or an Error out, no state and no I/O (a target of tests/fuzz).

#include <sluice/forgeevents.h>

#include <QByteArray>
#include <QList>

namespace Sluice::Forges {

/**
 * Reads one Gitea/Forgejo delivery. @p event is its X-Gitea-Event (X-Forgejo-Event) header:
 *
 * - `status`: a commit status (CommitStatusPayload: sha, context, state, repository);
 * - `push`: a branch moved (ref, before, after, pusher); tags give nothing;
 * - `pull_request`: opened, reopened, synchronized ("synchronize"), closed ("merged" when
 *   pull_request.merged); other actions give nothing;
 * - `pull_request_approved`, `pull_request_rejected`, `pull_request_comment`: a review
 *   (action "reviewed"; review.type) on pull_request.head.sha — Gitea's review payload names no
 *   commit of its own, so the pull request's head when the review was sent stands for it;
 * - `issue_comment`: a comment created on a pull request (is_pull); comments on issues,
 *   edits and deletions give nothing.
 *
 * Any other event type gives an empty list without reading the body. A body that is not JSON,
 * or lacks a field the event needs (repository.full_name, a sha, a number, a login), is
 * Malformed, naming the field.
 */
[[nodiscard]] Result<QList<ForgeEvent>> parseGiteaWebhook(const QByteArray &event, const QByteArray &body);

} // namespace Sluice::Forges
