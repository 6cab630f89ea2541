// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the forge connectors share above HTTP: an AsyncCall run by a function, and strict
// readers of JSON fields (a missing or mistyped field is Malformed, naming the field).

#include "forgehttpclient.h"

#include <sluice/forge.h>
#include <sluice/forgeevents.h>
#include <sluice/job.h>
#include <sluice/secrets.h>

#include <QDateTime>
#include <QJsonObject>
#include <QJsonValue>

#include <functional>
#include <utility>

namespace Sluice::ForgeHttp {

/**
 * An AsyncCall whose work is @p run(call): it sends requests with the call as their guard
 * (so a call the host deleted gets no callback) and ends with call->finishWith().
 */
template<typename T>
class FunctionCall final : public AsyncCall<T>
{
public:
    explicit FunctionCall(std::function<void(FunctionCall<T> *)> run)
        : m_run(std::move(run))
    {
    }

protected:
    void doStart() override { m_run(this); }
    void doCancel() override
    {
        this->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("cancelled")));
    }

private:
    std::function<void(FunctionCall<T> *)> m_run;
};

/// A call that fails at once with @p error when started.
template<typename T>
std::unique_ptr<AsyncCall<T>> failedCall(Error error)
{
    return std::make_unique<FunctionCall<T>>([error](FunctionCall<T> *call) { call->finishWith(std::unexpected(error)); });
}

/// Strict field readers; @p what names the object in errors ("pull request #4").
class JsonFields
{
public:
    JsonFields(const QJsonValue &value, QString what);
    /// Named @p what followed by @p id ("commit status 12"), built only when an error needs it.
    JsonFields(const QJsonValue &value, QString what, qint64 id);
    [[nodiscard]] bool isObject() const { return m_value.isObject(); }
    [[nodiscard]] Result<void> requireObject() const;
    [[nodiscard]] Result<QString> string(const QString &key, bool allowEmpty = false) const;
    [[nodiscard]] QString optionalString(const QString &key) const;
    [[nodiscard]] Result<qint64> integer(const QString &key) const;
    [[nodiscard]] Result<bool> boolean(const QString &key) const;
    [[nodiscard]] Result<QDateTime> time(const QString &key) const;
    [[nodiscard]] JsonFields object(const QString &key) const;
    [[nodiscard]] QString what() const;

private:
    [[nodiscard]] std::unexpected<Error> missing(const QString &key, const char *expected) const;
    QJsonObject m_object;
    QJsonValue m_value;
    QString m_what;
    std::optional<qint64> m_id;
    QString m_path; // ".head" for a field's object
};

/// The time in @p text (ISO 8601, as Qt::ISODateWithMs reads it) in UTC; invalid when it is none.
[[nodiscard]] QDateTime parseIsoTime(const QString &text);

/// @p text percent-encoded as one URL path segment.
[[nodiscard]] QString segment(const QString &text);
/// A repository path with each segment percent-encoded.
[[nodiscard]] QString pathSegments(const QString &path);
/// The body of @p response as JSON; Malformed naming @p what otherwise.
[[nodiscard]] Result<QJsonDocument> jsonBody(const Response &response, const QString &what);
/**
 * The combined state of the latest status per context: none is pending, any failure or
 * error fails, anything else that is not success is pending.
 */
[[nodiscard]] StatusState combinedState(const QList<CommitStatus> &latest);
/// Order of Forge::statuses(): newest first, in the order the forge received them (greatest id
/// first), as Gitea and GitHub order a commit's statuses; timestamps may run backwards.
[[nodiscard]] bool newerFirst(const CommitStatus &a, const CommitStatus &b);

/**
 * A pull request in the Gitea/GitHub shape (number, state, head.sha, head.ref, base.ref,
 * merged or merged_at, merge_commit_sha). A missing or mistyped required field is Malformed.
 */
[[nodiscard]] Result<PullRequest> parsePullRequest(const QJsonValue &value);
/**
 * A commit status in the Gitea/GitHub shape: id, context, the state in "status" (Gitea's
 * answers) or "state" (GitHub, and Gitea's create form), times. Unknown states are Malformed.
 */
[[nodiscard]] Result<CommitStatus> parseCommitStatus(const QJsonValue &value);

/**
 * A comment on an issue or pull request in the Gitea/GitHub shape (id, body, user.login,
 * created_at). A missing or mistyped field is Malformed.
 */
[[nodiscard]] Result<PullRequestComment> parseComment(const QJsonValue &value);

/// The Authorization header value "@p scheme <token>" from @p token; errors name the reference only.
[[nodiscard]] Result<QByteArray> authorization(const SecretRef &token, const QByteArray &scheme);
/// OWNER and NAME from the `repository` setting.
[[nodiscard]] Result<std::pair<QString, QString>> ownerAndName(const QVariantMap &settings);
/// Timeout, concurrency, retries and back-off from the settings both connectors declare.
[[nodiscard]] ClientOptions clientOptions(const QVariantMap &settings, const QUrl &apiBase);

/// A call that sends @p request and reads its JSON body with @p parse.
template<typename T>
std::unique_ptr<AsyncCall<T>> objectCall(Client *http, Request request, std::function<Result<T>(const QJsonDocument &)> parse)
{
    return std::make_unique<FunctionCall<T>>([http, request, parse](FunctionCall<T> *call) {
        http->send(request, call, [call, request, parse](Result<Response> r) {
            if (!r)
                return call->finishWith(std::unexpected(r.error()));
            auto doc = jsonBody(*r, describe(request));
            if (!doc)
                return call->finishWith(std::unexpected(doc.error()));
            call->finishWith(parse(*doc));
        });
    });
}

/**
 * A call that reads every page of @p request (see fetchAllPages()) and each item with
 * @p parse; one bad item fails the call, naming @p what. @p arrange, if given, orders the list.
 */
template<typename T>
std::unique_ptr<AsyncCall<QList<T>>> listCall(Client *http, Request request, int pageSize, PageItems items,
                                              std::function<Result<T>(const QJsonValue &)> parse, QString what,
                                              std::function<void(QList<T> &)> arrange = {})
{
    return std::make_unique<FunctionCall<QList<T>>>([=](FunctionCall<QList<T>> *call) {
        fetchAllPages(*http, request, pageSize, items, call, [call, parse, what, arrange](Result<QJsonArray> all) {
            if (!all)
                return call->finishWith(std::unexpected(all.error()));
            QList<T> out;
            for (const QJsonValue &v : std::as_const(*all)) {
                auto item = parse(v);
                if (!item)
                    return call->finishWith(fail(ErrorCode::Malformed, QStringLiteral("%1: %2").arg(what, item.error().message)));
                out.append(*item);
            }
            if (arrange)
                arrange(out);
            call->finishWith(out);
        });
    });
}

/// A call that reads a file's raw bytes; NotFound names @p path at @p ref.
[[nodiscard]] std::unique_ptr<AsyncCall<QByteArray>> rawFileCall(Client *http, Request request, const QString &path, const QString &ref);
/// Refuses an empty path or one with a ".." component, before any request.
[[nodiscard]] Result<void> checkRepositoryPath(const QString &path);
/// The `url` setting as an http(s) URL without credentials, ending in '/'.
[[nodiscard]] Result<QUrl> baseUrl(const QString &url);

/**
 * @p request checked for opening (head and title given, head differs from base), with an
 * empty base replaced by @p targetBranch.
 */
[[nodiscard]] Result<NewPullRequest> checkNewPullRequest(NewPullRequest request, const QString &targetBranch);
/**
 * A call that POSTs @p request.path with the Gitea/GitHub create-pull-request body (head,
 * base, title, body) and reads the pull request answered; the answer must be open with the
 * head and base asked for (anything else is Malformed).
 */
[[nodiscard]] std::unique_ptr<AsyncCall<PullRequest>> createPullRequestCall(Client *http, Request request, const NewPullRequest &pr);

/**
 * How a connector reads a merge the forge refused with one of @p statuses: from the answer and
 * the pull request's JSON as read again right after (not merged), the Error to report. A
 * refusal that passes by itself (the forge is still computing mergeability, "try again later")
 * is Network, so the caller waits and tries again; a final one (conflict, not allowed) is
 * Conflict or PermissionDenied.
 */
struct MergeRefusal {
    QList<int> statuses;
    std::function<Error(const Response &answer, const QJsonObject &pullAfter, qint64 number)> classify;
};

/**
 * A merge that reads the pull request (@p readPull) first and reports alreadyMerged instead
 * of merging twice, refuses when the head is not @p expectedHeadSha, sends @p doMerge, and
 * reads again: a failed answer while the pull request is merged means someone else merged it;
 * a success answer while it is not merged is Network (the answer was not the forge's word, or
 * the forge has not caught up), never a refusal.
 * An answer with one of @p refusal's statuses is classified by it (see MergeRefusal).
 */
[[nodiscard]] std::unique_ptr<AsyncCall<MergeOutcome>> mergeReadingFirst(Client *http, Request readPull, Request doMerge,
                                                                         qint64 number, QString expectedHeadSha,
                                                                         MergeRefusal refusal = {});

} // namespace Sluice::ForgeHttp
