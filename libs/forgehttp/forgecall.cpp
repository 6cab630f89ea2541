// SPDX-License-Identifier: Apache-2.0
#include "forgecall.h"

#include <sluice/secrets.h>

#include <QJsonDocument>
#include <QJsonObject>

#include <cmath>

namespace Sluice::ForgeHttp {

JsonFields::JsonFields(const QJsonValue &value, QString what)
    : m_object(value.toObject())
    , m_value(value)
    , m_what(std::move(what))
{
}

JsonFields::JsonFields(const QJsonValue &value, QString what, qint64 id)
    : m_object(value.toObject())
    , m_value(value)
    , m_what(std::move(what))
    , m_id(id)
{
}

QString JsonFields::what() const
{
    return m_id ? m_what + QString::number(*m_id) + m_path : m_what + m_path;
}

Result<void> JsonFields::requireObject() const
{
    if (!m_value.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("%1 is not a JSON object").arg(what()));
    return {};
}

std::unexpected<Error> JsonFields::missing(const QString &key, const char *expected) const
{
    return fail(ErrorCode::Malformed, QStringLiteral("%1: field '%2' is missing or not %3").arg(what(), key, QLatin1String(expected)));
}

QDateTime parseIsoTime(const QString &text)
{
    // Forges send "2024-05-01T10:20:30Z", "…30.123Z" or "…30+02:00": read those directly,
    // leave anything else to QDateTime (the result is the same, this is only quicker).
    const auto digits = [&text](qsizetype at, qsizetype count, int &out) {
        out = 0;
        for (qsizetype i = at; i < at + count; ++i) {
            const ushort c = text.at(i).unicode();
            if (c < '0' || c > '9')
                return false;
            out = out * 10 + (c - '0');
        }
        return true;
    };
    const auto slow = [&text] { return QDateTime::fromString(text, Qt::ISODateWithMs).toUTC(); };
    const qsizetype n = text.size();
    int year, month, day, hour, minute, second, ms = 0;
    if (n < 20 || text.at(4) != QLatin1Char('-') || text.at(7) != QLatin1Char('-') || text.at(10) != QLatin1Char('T')
        || text.at(13) != QLatin1Char(':') || text.at(16) != QLatin1Char(':') || !digits(0, 4, year) || !digits(5, 2, month)
        || !digits(8, 2, day) || !digits(11, 2, hour) || !digits(14, 2, minute) || !digits(17, 2, second))
        return slow();
    qsizetype at = 19;
    if (text.at(at) == QLatin1Char('.')) {
        if (n < at + 4 || !digits(at + 1, 3, ms))
            return slow();
        at += 4;
    }
    int offsetSeconds = 0;
    if (n == at + 1 && text.at(at) == QLatin1Char('Z')) {
        // UTC
    } else if (n == at + 6 && (text.at(at) == QLatin1Char('+') || text.at(at) == QLatin1Char('-')) && text.at(at + 3) == QLatin1Char(':')) {
        int oh, om;
        if (!digits(at + 1, 2, oh) || !digits(at + 4, 2, om) || oh > 23 || om > 59)
            return slow();
        offsetSeconds = (oh * 3600 + om * 60) * (text.at(at) == QLatin1Char('-') ? -1 : 1);
    } else {
        return slow();
    }
    const QDate date(year, month, day);
    const QTime time(hour, minute, second, ms);
    if (!date.isValid() || !time.isValid())
        return slow();
    return QDateTime(date, time, Qt::UTC).addSecs(-offsetSeconds);
}

Result<QString> JsonFields::string(const QString &key, bool allowEmpty) const
{
    const QJsonValue v = m_object.value(key);
    if (!v.isString() || (!allowEmpty && v.toString().isEmpty()))
        return missing(key, allowEmpty ? "a string" : "a non-empty string");
    return v.toString();
}

QString JsonFields::optionalString(const QString &key) const
{
    return m_object.value(key).toString();
}

Result<qint64> JsonFields::integer(const QString &key) const
{
    const QJsonValue v = m_object.value(key);
    const double d = v.toDouble(std::nan(""));
    // JSON numbers are doubles here: an integer beyond 2^53 is not exact, and one beyond
    // qint64 cannot be converted at all (undefined behaviour). No forge id comes near either.
    if (!v.isDouble() || std::floor(d) != d || std::fabs(d) > 9007199254740992.0)
        return missing(key, "an integer");
    return qint64(d);
}

Result<bool> JsonFields::boolean(const QString &key) const
{
    const QJsonValue v = m_object.value(key);
    if (!v.isBool())
        return missing(key, "a boolean");
    return v.toBool();
}

Result<QDateTime> JsonFields::time(const QString &key) const
{
    const QDateTime t = parseIsoTime(m_object.value(key).toString());
    if (!t.isValid())
        return missing(key, "an ISO 8601 time");
    return t;
}

JsonFields JsonFields::object(const QString &key) const
{
    JsonFields child(m_object.value(key), m_what);
    child.m_id = m_id;
    child.m_path = m_path + QLatin1Char('.') + key;
    return child;
}

QString segment(const QString &text)
{
    return QString::fromLatin1(QUrl::toPercentEncoding(text));
}

QString pathSegments(const QString &path)
{
    QStringList parts;
    for (const QString &p : path.split(QLatin1Char('/'), Qt::SkipEmptyParts))
        parts.append(segment(p));
    return parts.join(QLatin1Char('/'));
}

Result<QJsonDocument> jsonBody(const Response &r, const QString &what)
{
    QJsonParseError error{};
    const QJsonDocument doc = QJsonDocument::fromJson(r.body, &error);
    if (error.error != QJsonParseError::NoError)
        return fail(ErrorCode::Malformed, QStringLiteral("%1: body is not JSON (%2)").arg(what, error.errorString()),
                    Redaction::redact(QString::fromUtf8(r.body.left(300))));
    return doc;
}

StatusState combinedState(const QList<CommitStatus> &latest)
{
    StatusState state = latest.isEmpty() ? StatusState::Pending : StatusState::Success;
    for (const CommitStatus &s : latest) {
        if (s.state == StatusState::Failure || s.state == StatusState::Error)
            state = StatusState::Failure;
        else if (s.state != StatusState::Success && state == StatusState::Success)
            state = StatusState::Pending;
    }
    return state;
}

bool newerFirst(const CommitStatus &a, const CommitStatus &b)
{
    return a.id > b.id;
}

Result<PullRequest> parsePullRequest(const QJsonValue &value)
{
    JsonFields f(value, QStringLiteral("pull request"));
    if (auto r = f.requireObject(); !r)
        return std::unexpected(r.error());
    PullRequest pr;
    auto number = f.integer(QStringLiteral("number"));
    if (!number)
        return std::unexpected(number.error());
    pr.number = *number;
    JsonFields g(value, QStringLiteral("pull request #"), pr.number);
    auto state = g.string(QStringLiteral("state"));
    auto head = g.object(QStringLiteral("head"));
    auto base = g.object(QStringLiteral("base"));
    auto sha = head.string(QStringLiteral("sha"));
    auto ref = head.string(QStringLiteral("ref"));
    auto baseRef = base.string(QStringLiteral("ref"));
    for (const auto *r : {&state, &sha, &ref, &baseRef}) {
        if (!*r)
            return std::unexpected(r->error());
    }
    pr.state = *state;
    pr.headSha = *sha;
    pr.headBranch = *ref;
    pr.baseBranch = *baseRef;
    pr.title = g.optionalString(QStringLiteral("title"));
    pr.url = g.optionalString(QStringLiteral("html_url"));
    const QJsonObject o = value.toObject();
    // Gitea and a single GitHub pull request say "merged"; GitHub's list only has "merged_at".
    pr.merged = o.value(QStringLiteral("merged")).toBool(false) || o.value(QStringLiteral("merged_at")).isString();
    pr.mergeCommit = g.optionalString(QStringLiteral("merge_commit_sha"));
    pr.updatedAt = g.time(QStringLiteral("updated_at")).value_or(QDateTime());
    return pr;
}

Result<CommitStatus> parseCommitStatus(const QJsonValue &value)
{
    JsonFields f(value, QStringLiteral("commit status"));
    if (auto r = f.requireObject(); !r)
        return std::unexpected(r.error());
    CommitStatus s;
    auto id = f.integer(QStringLiteral("id"));
    if (!id)
        return std::unexpected(id.error());
    s.id = *id;
    JsonFields g(value, QStringLiteral("commit status "), s.id);
    auto context = g.string(QStringLiteral("context"));
    if (!context)
        return std::unexpected(context.error());
    s.context = *context;
    const QJsonObject o = value.toObject();
    const QString stateName = o.contains(QStringLiteral("status")) ? o.value(QStringLiteral("status")).toString()
                                                                   : o.value(QStringLiteral("state")).toString();
    const auto state = statusStateFromName(stateName);
    if (!state)
        return fail(ErrorCode::Malformed, QStringLiteral("commit status %1 (%2): unknown state '%3'").arg(s.id).arg(s.context, stateName.left(40)));
    s.state = *state;
    s.description = g.optionalString(QStringLiteral("description"));
    s.targetUrl = g.optionalString(QStringLiteral("target_url"));
    auto created = g.time(QStringLiteral("created_at"));
    auto updated = g.time(QStringLiteral("updated_at"));
    if (!created && !updated)
        return std::unexpected(updated.error());
    s.createdAt = created ? *created : *updated;
    s.updatedAt = updated ? *updated : *created;
    return s;
}

Result<PullRequestComment> parseComment(const QJsonValue &value)
{
    JsonFields f(value, QStringLiteral("comment"));
    if (auto r = f.requireObject(); !r)
        return std::unexpected(r.error());
    PullRequestComment c;
    auto id = f.integer(QStringLiteral("id"));
    if (!id)
        return std::unexpected(id.error());
    c.id = *id;
    JsonFields g(value, QStringLiteral("comment "), c.id);
    auto body = g.string(QStringLiteral("body"), true);
    if (!body)
        return std::unexpected(body.error());
    auto login = g.object(QStringLiteral("user")).string(QStringLiteral("login"));
    if (!login)
        return std::unexpected(login.error());
    auto created = g.time(QStringLiteral("created_at"));
    if (!created)
        return std::unexpected(created.error());
    c.body = *body;
    c.author = *login;
    c.createdAt = *created;
    return c;
}

std::unique_ptr<AsyncCall<QByteArray>> rawFileCall(Client *http, Request request, const QString &path, const QString &ref)
{
    return std::make_unique<FunctionCall<QByteArray>>([http, request, path, ref](FunctionCall<QByteArray> *call) {
        http->send(request, call, [call, path, ref](Result<Response> r) {
            if (!r) {
                Error e = r.error();
                if (e.code == ErrorCode::NotFound)
                    e.message = QStringLiteral("%1 at %2: not found").arg(path, ref);
                return call->finishWith(std::unexpected(e));
            }
            call->finishWith(r->body);
        });
    });
}

Result<void> checkRepositoryPath(const QString &path)
{
    if (path.isEmpty() || path.split(QLatin1Char('/')).contains(QStringLiteral("..")))
        return fail(ErrorCode::InvalidArgument, QStringLiteral("file path '%1' is not usable").arg(path));
    return {};
}

Result<QUrl> baseUrl(const QString &url)
{
    QUrl base(url, QUrl::StrictMode);
    if (!base.isValid() || (base.scheme() != QLatin1String("https") && base.scheme() != QLatin1String("http")) || base.host().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("url: '%1' is not an http(s) URL").arg(url));
    if (!base.userInfo().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("url: credentials do not belong in the URL; use the token setting"));
    if (!base.path().endsWith(QLatin1Char('/')))
        base.setPath(base.path() + QLatin1Char('/'));
    return base;
}

Result<QByteArray> authorization(const SecretRef &token, const QByteArray &scheme)
{
    if (token.isNull())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("token: no token reference given"));
    auto value = token.read();
    if (!value)
        return fail(value.error().code, QStringLiteral("token: %1").arg(value.error().message));
    if (value->trimmed().isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("token: %1 is empty").arg(token.describe()));
    return scheme + ' ' + value->trimmed();
}

Result<std::pair<QString, QString>> ownerAndName(const QVariantMap &settings)
{
    const QString text = settings.value(QStringLiteral("repository")).toString();
    const QStringList repo = text.split(QLatin1Char('/'));
    if (repo.size() != 2 || repo[0].isEmpty() || repo[1].isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("repository: '%1' is not OWNER/NAME").arg(text));
    return std::pair(repo[0], repo[1]);
}

ClientOptions clientOptions(const QVariantMap &settings, const QUrl &apiBase)
{
    ClientOptions out;
    out.apiBase = apiBase;
    out.timeout = std::chrono::milliseconds(settings.value(QStringLiteral("timeout"), 30000).toLongLong());
    out.concurrency = int(settings.value(QStringLiteral("concurrency"), 16).toLongLong());
    out.maxRetries = int(settings.value(QStringLiteral("max_retries"), 4).toLongLong());
    out.retryBase = std::chrono::milliseconds(settings.value(QStringLiteral("retry_backoff"), 500).toLongLong());
    out.maxRetryWait = std::chrono::milliseconds(settings.value(QStringLiteral("max_retry_wait"), 60000).toLongLong());
    return out;
}

Result<NewPullRequest> checkNewPullRequest(NewPullRequest request, const QString &targetBranch)
{
    if (request.baseBranch.isEmpty())
        request.baseBranch = targetBranch;
    if (request.headBranch.isEmpty() || request.baseBranch.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a pull request needs a head and a base branch"));
    if (request.headBranch == request.baseBranch)
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a pull request of %1 into itself").arg(request.headBranch));
    if (request.title.trimmed().isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("a pull request of %1 needs a title").arg(request.headBranch));
    return request;
}

std::unique_ptr<AsyncCall<PullRequest>> createPullRequestCall(Client *http, Request request, const NewPullRequest &pr)
{
    request.method = "POST";
    request.body = QJsonDocument(QJsonObject{{QStringLiteral("head"), pr.headBranch},
                                             {QStringLiteral("base"), pr.baseBranch},
                                             {QStringLiteral("title"), pr.title},
                                             {QStringLiteral("body"), pr.body}})
                       .toJson(QJsonDocument::Compact);
    return objectCall<PullRequest>(http, request, [pr, what = describe(request)](const QJsonDocument &doc) -> Result<PullRequest> {
        auto created = parsePullRequest(doc.object());
        if (!created)
            return fail(ErrorCode::Malformed, QStringLiteral("%1: %2").arg(what, created.error().message));
        if (created->state != QLatin1String("open") || created->headBranch != pr.headBranch || created->baseBranch != pr.baseBranch)
            return fail(ErrorCode::Malformed, QStringLiteral("%1: answered #%2 %3 of %4 into %5, not an open pull request of %6 into %7")
                                                  .arg(what).arg(created->number)
                                                  .arg(created->state, created->headBranch, created->baseBranch, pr.headBranch, pr.baseBranch));
        return created;
    });
}

std::unique_ptr<AsyncCall<MergeOutcome>> mergeReadingFirst(Client *http, Request get, Request post, qint64 number,
                                                           QString expectedHeadSha, MergeRefusal refusal)
{
    post.answerStatuses = refusal.statuses;
    return std::make_unique<FunctionCall<MergeOutcome>>([http, get, post, number, expectedHeadSha, refusal](FunctionCall<MergeOutcome> *call) {
        // The pull request, and its JSON for a refusal's classification.
        using Read = std::function<void(Result<PullRequest>, const QJsonObject &)>;
        auto readPull = [http, get, call](Read next) {
            http->send(get, call, [get, next](Result<Response> r) {
                if (!r)
                    return next(std::unexpected(r.error()), {});
                auto doc = jsonBody(*r, describe(get));
                if (!doc)
                    return next(std::unexpected(doc.error()), {});
                next(parsePullRequest(doc->object()), doc->object());
            });
        };
        readPull([=](Result<PullRequest> before, const QJsonObject &) {
            if (!before)
                return call->finishWith(std::unexpected(before.error()));
            if (before->merged)
                return call->finishWith(MergeOutcome{true, before->mergeCommit});
            if (!expectedHeadSha.isEmpty() && before->headSha != expectedHeadSha)
                return call->finishWith(fail(ErrorCode::Conflict, QStringLiteral("pull request #%1: head is %2, not the expected %3")
                                                                      .arg(number).arg(before->headSha, expectedHeadSha)));
            http->send(post, call, [=](Result<Response> merged) {
                const bool refused = merged && refusal.statuses.contains(merged->status);
                readPull([=](Result<PullRequest> after, const QJsonObject &afterJson) {
                    if (!after)
                        return call->finishWith(std::unexpected(after.error()));
                    if (refused && !after->merged)
                        return call->finishWith(std::unexpected(refusal.classify(*merged, afterJson, number)));
                    if (!merged && !after->merged)
                        return call->finishWith(std::unexpected(merged.error()));
                    // Answered, yet not merged: the answer was not the forge's word (a proxy's page,
                    // a cut or garbled body) or the forge has not caught up. Nothing says the change
                    // cannot merge, so it is not a refusal: look again later (Network).
                    if (!after->merged)
                        return call->finishWith(fail(ErrorCode::Network, QStringLiteral("pull request #%1: the merge was answered (HTTP %2) but the pull request is not merged; looking again later")
                                                                             .arg(number).arg(merged->status)));
                    call->finishWith(MergeOutcome{!merged.has_value() || refused, after->mergeCommit});
                });
            });
        });
    });
}

} // namespace Sluice::ForgeHttp
