// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file tracker.h
 * Tracker connectors: where people steer tasks by issue status and read what happened.
 */

#include <sluice/job.h>
#include <sluice/plugin.h>
#include <sluice/webhook.h>

#include <QtPlugin>

namespace Sluice {

/// An issue in the tracker.
struct SLUICE_EXPORT TrackerIssue {
    QString id;          ///< Tracker id.
    QString key;         ///< Human key ("SLU-42").
    QString title;
    QString description;
    QString state;       ///< State name as the tracker shows it.
    QString signal;      ///< Logical signal the state maps to ("approve"), or empty.
    QString url;
};

/**
 * A tracker connector instance for one project.
 *
 * Logical states the host sets with setState(): "in-progress", "in-review", "needs-input",
 * "blocked", "done". A connector may also offer, through the meta-object system,
 * `Q_INVOKABLE QStringList statesForSignal(const QString &signal) const`: the tracker states
 * that send @p signal (empty when none exists), so that an approval request can name the
 * exact status to set.
 */
class SLUICE_EXPORT Tracker : public PluginInstance
{
    Q_OBJECT
public:
    using PluginInstance::PluginInstance;
    [[nodiscard]] PluginKind kind() const final { return PluginKind::Tracker; }

    /// The issue @p id with its current state and mapped signal.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<TrackerIssue>> issue(const QString &id) = 0;
    /// Posts @p text as a comment on issue @p id.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Done>> comment(const QString &id, const QString &text) = 0;
    /// Moves issue @p id to the state configured for logical state @p logicalState.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Done>> setState(const QString &id,
                                                                    const QString &logicalState) = 0;
    /// Reloads cached tracker data (state ids); called on SIGHUP and on a cache miss.
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Done>> refresh() = 0;
};

/**
 * A tracker whose comments can be made idempotent: posting with the same @p key again leaves
 * one comment, so a write whose answer was lost can be sent again without posting twice. The
 * host keeps tracker writes that failed and retries them (TrackerUpdates); with this it posts
 * each comment at most once. Callers find it with `qobject_cast<Sluice::IdempotentComments *>(tracker)`
 * (the connector declares `Q_INTERFACES(Sluice::IdempotentComments)`).
 * @since SDK API 1.3
 */
class SLUICE_EXPORT IdempotentComments
{
public:
    virtual ~IdempotentComments();

    /**
     * Posts @p text as a comment on issue @p id, unless a comment with @p key was posted on the
     * tracker project already: then it finishes with Done and posts nothing. @p key is opaque,
     * at most 200 characters.
     */
    [[nodiscard]] virtual std::unique_ptr<AsyncCall<Done>> commentOnce(const QString &id, const QString &text,
                                                                       const QString &key) = 0;
};

} // namespace Sluice

Q_DECLARE_INTERFACE(Sluice::IdempotentComments, "org.sluice.IdempotentComments/1.3")
