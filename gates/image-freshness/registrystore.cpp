// SPDX-License-Identifier: Apache-2.0
#include "registrystore.h"

#include <sluice/secrets.h>

#include <QHostAddress>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QTimer>
#include <QUrlQuery>

namespace Sluice::ImageFreshness {

namespace {

// Manifests and configs are small; a bigger answer is not what it claims to be.
constexpr qint64 MaxAnswerBytes = 8 * 1024 * 1024;
constexpr int MaxRedirects = 5;

// "MANIFEST_UNKNOWN: manifest unknown" from a registry's error body, else a short excerpt.
QString errorDetail(const QByteArray &body)
{
    const QJsonArray errors = QJsonDocument::fromJson(body).object().value(QStringLiteral("errors")).toArray();
    QStringList parts;
    for (const QJsonValue &e : errors) {
        const QJsonObject o = e.toObject();
        parts.append(QStringLiteral("%1: %2").arg(o.value(QStringLiteral("code")).toString(), o.value(QStringLiteral("message")).toString()));
    }
    if (!parts.isEmpty())
        return parts.join(QStringLiteral("; "));
    QString excerpt = QString::fromUtf8(body.left(160)).simplified();
    return excerpt;
}

ErrorCode codeForStatus(int status)
{
    if (status == 404)
        return ErrorCode::NotFound;
    if (status == 401 || status == 403)
        return ErrorCode::PermissionDenied;
    return ErrorCode::Network;
}

} // namespace

AuthChallenge parseChallenge(const QByteArray &header)
{
    AuthChallenge out;
    const QString h = QString::fromLatin1(header).trimmed();
    const int space = h.indexOf(QLatin1Char(' '));
    out.scheme = (space < 0 ? h : h.left(space)).toLower();
    if (space < 0)
        return out;
    const QString rest = h.mid(space + 1);
    int i = 0;
    const int n = int(rest.size());
    while (i < n) {
        while (i < n && (rest[i].isSpace() || rest[i] == QLatin1Char(',')))
            ++i;
        const int nameStart = i;
        while (i < n && rest[i] != QLatin1Char('=') && !rest[i].isSpace() && rest[i] != QLatin1Char(','))
            ++i;
        const QString name = rest.mid(nameStart, i - nameStart).toLower();
        while (i < n && rest[i].isSpace())
            ++i;
        if (name.isEmpty() || i >= n || rest[i] != QLatin1Char('='))
            break; // the next challenge starts here
        ++i;
        while (i < n && rest[i].isSpace())
            ++i;
        QString value;
        if (i < n && rest[i] == QLatin1Char('"')) {
            ++i;
            while (i < n && rest[i] != QLatin1Char('"')) {
                if (rest[i] == QLatin1Char('\\') && i + 1 < n)
                    ++i;
                value += rest[i++];
            }
            ++i; // closing quote
        } else {
            while (i < n && rest[i] != QLatin1Char(','))
                value += rest[i++];
            value = value.trimmed();
        }
        out.parameters.insert(name, value);
    }
    return out;
}

struct RegistryStore::Get {
    QUrl url;
    QByteArray accept;
    QString what;             // "manifest acme/widget:v1", for messages
    bool registry = true;     // a request to the registry: its 401 starts authentication
    QUrl origin;              // not a registry request: where @ref authorization may go
    QByteArray authorization; // not a registry request: sent to @ref origin only
    int redirectsLeft = MaxRedirects;
    bool authRetried = false;
    bool tooLarge = false;
    bool timedOut = false;
    std::function<void(Result<Reply>)> done;
};

RegistryStore::RegistryStore(RegistryOptions options, QObject *parent)
    : QObject(parent)
    , m_options(std::move(options))
{
    m_base = QUrl(QStringLiteral("%1://%2/").arg(m_options.plainHttp ? QStringLiteral("http") : QStringLiteral("https"), m_options.image.registry));
}

RegistryStore::~RegistryStore()
{
    abort();
}

void RegistryStore::abort()
{
    if (!m_reply)
        return;
    QNetworkReply *reply = m_reply;
    m_reply.clear();
    disconnect(reply, nullptr, this, nullptr);
    reply->abort();
    reply->deleteLater();
}

bool RegistryStore::sameOrigin(const QUrl &a, const QUrl &b) const
{
    return a.scheme() == b.scheme() && a.host().compare(b.host(), Qt::CaseInsensitive) == 0
        && a.port(a.scheme() == QLatin1String("https") ? 443 : 80) == b.port(b.scheme() == QLatin1String("https") ? 443 : 80);
}

Result<void> RegistryStore::mayCarryCredentials(const QUrl &url) const
{
    if (url.scheme() == QLatin1String("https"))
        return {};
    const QHostAddress address(url.host());
    if (url.host() == QLatin1String("localhost") || (!address.isNull() && address.isLoopback()))
        return {};
    return fail(ErrorCode::PermissionDenied, QStringLiteral("refusing to send registry credentials over plain http to %1").arg(url.host()));
}

void RegistryStore::manifest(const QString &reference, std::function<void(Result<FetchedManifest>)> done)
{
    get(QStringLiteral("v2/%1/manifests/%2").arg(m_options.image.repository, reference), manifestAccept(),
        QStringLiteral("manifest %1:%2").arg(m_options.image.repository, reference), [done](Result<Reply> r) {
            if (!r)
                return done(std::unexpected(r.error()));
            done(FetchedManifest{r->body, r->contentType});
        });
}

void RegistryStore::blob(const QString &digest, std::function<void(Result<QByteArray>)> done)
{
    if (!isSha256Digest(digest))
        return done(fail(ErrorCode::Malformed, QStringLiteral("blob digest '%1' is not a sha256 digest").arg(digest)));
    get(QStringLiteral("v2/%1/blobs/%2").arg(m_options.image.repository, digest), "*/*",
        QStringLiteral("blob %1@%2").arg(m_options.image.repository, digest), [done](Result<Reply> r) {
            if (!r)
                return done(std::unexpected(r.error()));
            done(r->body);
        });
}

void RegistryStore::get(const QString &path, QByteArray accept, QString what, std::function<void(Result<Reply>)> done)
{
    auto g = std::make_shared<Get>();
    g->url = m_base.resolved(QUrl(path));
    g->accept = std::move(accept);
    g->what = std::move(what);
    g->done = std::move(done);
    send(g);
}

void RegistryStore::send(const std::shared_ptr<Get> &get)
{
    QNetworkRequest request(get->url);
    request.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::ManualRedirectPolicy);
    request.setRawHeader("Accept", get->accept);
    request.setRawHeader("User-Agent", "sluice-image-freshness");
    const QByteArray authorization = get->registry ? (sameOrigin(get->url, m_base) ? m_authorization : QByteArray())
                                                   : (sameOrigin(get->url, get->origin) ? get->authorization : QByteArray());
    if (!authorization.isEmpty())
        request.setRawHeader("Authorization", authorization);
    QNetworkReply *reply = m_network.get(request);
    m_reply = reply;
    // The whole request, not only a silence, must fit in the timeout.
    get->timedOut = false;
    auto *deadline = new QTimer(reply);
    deadline->setSingleShot(true);
    connect(deadline, &QTimer::timeout, reply, [get, reply] {
        get->timedOut = true;
        reply->abort();
    });
    deadline->start(int(m_options.timeout.count()));
    connect(reply, &QNetworkReply::downloadProgress, this, [get, reply](qint64 received, qint64 total) {
        if (!get->tooLarge && (received > MaxAnswerBytes || total > MaxAnswerBytes)) {
            get->tooLarge = true;
            reply->abort();
        }
    });
    connect(reply, &QNetworkReply::finished, this, [this, get, reply] { onFinished(get, reply); });
}

void RegistryStore::onFinished(const std::shared_ptr<Get> &get, QNetworkReply *reply)
{
    reply->deleteLater();
    if (m_reply == reply)
        m_reply.clear();
    const QString host = get->url.host() + (get->url.port() > 0 ? QStringLiteral(":%1").arg(get->url.port()) : QString());
    if (get->tooLarge)
        return get->done(fail(ErrorCode::Malformed, QStringLiteral("%1 from %2 is larger than %3 bytes").arg(get->what, host).arg(MaxAnswerBytes)));
    if (get->timedOut)
        return get->done(fail(ErrorCode::Timeout, QStringLiteral("%1: %2 did not answer within %3 ms").arg(get->what, host).arg(m_options.timeout.count())));
    const QVariant statusAttribute = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute);
    if (!statusAttribute.isValid()) {
        if (reply->error() == QNetworkReply::OperationCanceledError)
            return get->done(fail(ErrorCode::Timeout, QStringLiteral("%1: %2 did not answer within %3 ms").arg(get->what, host).arg(m_options.timeout.count())));
        return get->done(fail(ErrorCode::Network, QStringLiteral("%1: cannot read from %2: %3").arg(get->what, host, reply->errorString())));
    }
    const int status = statusAttribute.toInt();
    const QByteArray body = reply->readAll();

    if (status >= 300 && status < 400 && status != 304) {
        const QByteArray location = reply->rawHeader("Location");
        const QUrl target = get->url.resolved(QUrl::fromEncoded(location));
        if (location.isEmpty() || !target.isValid())
            return get->done(fail(ErrorCode::Malformed, QStringLiteral("%1: %2 answered HTTP %3 without a usable Location").arg(get->what, host).arg(status)));
        if (get->redirectsLeft-- <= 0)
            return get->done(fail(ErrorCode::Network, QStringLiteral("%1: more than %2 redirects").arg(get->what).arg(MaxRedirects)));
        if (target.scheme() != QLatin1String("https") && (target.scheme() != QLatin1String("http") || get->url.scheme() == QLatin1String("https")))
            return get->done(fail(ErrorCode::Network, QStringLiteral("%1: refusing a redirect from %2 to a %3 URL").arg(get->what, get->url.scheme(), target.scheme())));
        get->url = target;
        return send(get);
    }
    if (status == 401 && get->registry && sameOrigin(get->url, m_base)) {
        if (get->authRetried)
            return get->done(fail(ErrorCode::PermissionDenied, QStringLiteral("%1: %2 refused the %3 (HTTP 401)")
                                                                   .arg(get->what, host, m_authorization.startsWith("Bearer") ? QStringLiteral("token it issued") : QStringLiteral("credentials"))));
        return authenticate(get, reply->rawHeader("WWW-Authenticate"));
    }
    if (status < 200 || status >= 300) {
        const QString detail = errorDetail(body);
        return get->done(fail(codeForStatus(status), QStringLiteral("%1: %2 answered HTTP %3%4")
                                                         .arg(get->what, host).arg(status).arg(detail.isEmpty() ? QString() : QStringLiteral(" (%1)").arg(detail))));
    }
    get->done(Reply{body, reply->rawHeader("Content-Type")});
}

void RegistryStore::authenticate(const std::shared_ptr<Get> &get, const QByteArray &challengeHeader)
{
    get->authRetried = true;
    const AuthChallenge challenge = parseChallenge(challengeHeader);
    const QString host = m_base.authority();
    if (challenge.scheme == QLatin1String("basic")) {
        if (m_options.basicCredentials.isEmpty())
            return get->done(fail(ErrorCode::PermissionDenied, QStringLiteral("%1: %2 asks for credentials (HTTP 401, Basic) and none are configured").arg(get->what, host)));
        if (auto ok = mayCarryCredentials(m_base); !ok)
            return get->done(std::unexpected(ok.error()));
        m_authorization = "Basic " + m_options.basicCredentials.toBase64();
        return send(get);
    }
    if (challenge.scheme != QLatin1String("bearer"))
        return get->done(fail(ErrorCode::PermissionDenied, QStringLiteral("%1: %2 answered HTTP 401 without a Bearer or Basic challenge ('%3')")
                                                               .arg(get->what, host, challenge.scheme)));
    QUrl realm(challenge.parameters.value(QStringLiteral("realm")));
    if (!realm.isValid() || (realm.scheme() != QLatin1String("https") && realm.scheme() != QLatin1String("http")) || realm.host().isEmpty())
        return get->done(fail(ErrorCode::Malformed, QStringLiteral("%1: the Bearer challenge of %2 has no usable realm").arg(get->what, host)));
    QUrlQuery query(realm);
    if (challenge.parameters.contains(QStringLiteral("service")))
        query.addQueryItem(QStringLiteral("service"), challenge.parameters.value(QStringLiteral("service")));
    query.addQueryItem(QStringLiteral("scope"), challenge.parameters.value(QStringLiteral("scope"),
                                                                            QStringLiteral("repository:%1:pull").arg(m_options.image.repository)));
    realm.setQuery(query);

    auto token = std::make_shared<Get>();
    token->url = realm;
    token->origin = realm;
    token->registry = false;
    token->accept = "application/json";
    token->what = QStringLiteral("token for %1 from %2").arg(get->what, realm.authority());
    if (!m_options.basicCredentials.isEmpty()) {
        if (auto ok = mayCarryCredentials(realm); !ok)
            return get->done(std::unexpected(ok.error()));
        token->authorization = "Basic " + m_options.basicCredentials.toBase64();
    }
    token->done = [this, get](Result<Reply> answer) {
        if (!answer)
            return get->done(fail(answer.error().code, QStringLiteral("cannot get a registry token: %1").arg(answer.error().message)));
        const QJsonObject o = QJsonDocument::fromJson(answer->body).object();
        QString value = o.value(QStringLiteral("token")).toString();
        if (value.isEmpty())
            value = o.value(QStringLiteral("access_token")).toString();
        if (value.isEmpty())
            return get->done(fail(ErrorCode::Malformed, QStringLiteral("%1: the token answer holds no token").arg(get->what)));
        Redaction::registerSecret(value.toUtf8());
        m_authorization = "Bearer " + value.toUtf8();
        send(get);
    };
    send(token);
}

} // namespace Sluice::ImageFreshness
