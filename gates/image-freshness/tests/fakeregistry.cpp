// SPDX-License-Identifier: Apache-2.0
#include "fakeregistry.h"

#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QRegularExpression>

namespace Sluice::Test {

namespace {

const QString Service = QStringLiteral("fake-registry");

QByteArray compact(const QJsonObject &o)
{
    return QJsonDocument(o).toJson(QJsonDocument::Compact);
}

FakeAnswer registryError(int status, const char *code, const QString &message)
{
    FakeAnswer a;
    a.status = status;
    a.body = compact(QJsonObject{{QStringLiteral("errors"), QJsonArray{QJsonObject{{QStringLiteral("code"), QString::fromLatin1(code)},
                                                                                    {QStringLiteral("message"), message}}}}});
    a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
    return a;
}

} // namespace

QString digestOf(const QByteArray &bytes)
{
    return QStringLiteral("sha256:") + QString::fromLatin1(QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex());
}

FakeImage buildImage(const QJsonObject &labels, bool docker, const QString &platform)
{
    FakeImage image;
    image.platform = platform;
    const QStringList p = platform.split(QLatin1Char('/'));
    QJsonObject config{{QStringLiteral("architecture"), p.value(1)},
                       {QStringLiteral("os"), p.value(0)},
                       {QStringLiteral("created"), QStringLiteral("2026-06-06T10:00:00Z")},
                       {QStringLiteral("config"), QJsonObject{{QStringLiteral("Env"), QJsonArray{QStringLiteral("PATH=/usr/bin")}},
                                                              {QStringLiteral("Labels"), labels.isEmpty() ? QJsonValue() : QJsonValue(labels)}}},
                       {QStringLiteral("rootfs"), QJsonObject{{QStringLiteral("type"), QStringLiteral("layers")},
                                                              {QStringLiteral("diff_ids"), QJsonArray{QStringLiteral("sha256:") + QString(64, QLatin1Char('1'))}}}}};
    if (!p.value(2).isEmpty())
        config.insert(QStringLiteral("variant"), p.value(2));
    image.config = compact(config);
    image.configDigest = digestOf(image.config);
    image.manifestMediaType = docker ? QStringLiteral("application/vnd.docker.distribution.manifest.v2+json")
                                     : QStringLiteral("application/vnd.oci.image.manifest.v1+json");
    const QJsonObject manifest{
        {QStringLiteral("schemaVersion"), 2},
        {QStringLiteral("mediaType"), image.manifestMediaType},
        {QStringLiteral("config"), QJsonObject{{QStringLiteral("mediaType"), docker ? QStringLiteral("application/vnd.docker.container.image.v1+json")
                                                                                    : QStringLiteral("application/vnd.oci.image.config.v1+json")},
                                               {QStringLiteral("digest"), image.configDigest},
                                               {QStringLiteral("size"), image.config.size()}}},
        {QStringLiteral("layers"), QJsonArray{QJsonObject{{QStringLiteral("mediaType"), docker ? QStringLiteral("application/vnd.docker.image.rootfs.diff.tar.gzip")
                                                                                                : QStringLiteral("application/vnd.oci.image.layer.v1.tar+gzip")},
                                                          {QStringLiteral("digest"), QStringLiteral("sha256:") + QString(64, QLatin1Char('2'))},
                                                          {QStringLiteral("size"), 1234}}}},
    };
    image.manifest = compact(manifest);
    image.manifestDigest = digestOf(image.manifest);
    return image;
}

QByteArray buildIndex(const QList<FakeImage> &images, bool docker)
{
    QJsonArray manifests;
    for (const FakeImage &image : images) {
        const QStringList p = image.platform.split(QLatin1Char('/'));
        QJsonObject platform{{QStringLiteral("os"), p.value(0)}, {QStringLiteral("architecture"), p.value(1)}};
        if (!p.value(2).isEmpty())
            platform.insert(QStringLiteral("variant"), p.value(2));
        manifests.append(QJsonObject{{QStringLiteral("mediaType"), image.manifestMediaType},
                                     {QStringLiteral("digest"), image.manifestDigest},
                                     {QStringLiteral("size"), image.manifest.size()},
                                     {QStringLiteral("platform"), platform}});
    }
    return compact(QJsonObject{{QStringLiteral("schemaVersion"), 2},
                               {QStringLiteral("mediaType"), docker ? QStringLiteral("application/vnd.docker.distribution.manifest.list.v2+json")
                                                                    : QStringLiteral("application/vnd.oci.image.index.v1+json")},
                               {QStringLiteral("manifests"), manifests}});
}

FakeRegistry::FakeRegistry()
{
    m_server.setHandler([this](const FakeRequest &request) { return answer(request); });
}

FakeRegistry::~FakeRegistry()
{
    // The handler runs under the server's lock: once this returns, none runs or will run on
    // members about to be destroyed.
    m_server.setHandler({});
}

Result<void> FakeRegistry::start()
{
    return m_server.start();
}

QString FakeRegistry::host() const
{
    return QStringLiteral("127.0.0.1:%1").arg(m_server.url().port());
}

void FakeRegistry::putImage(const QString &repository, const QString &tag, const FakeImage &image)
{
    QMutexLocker lock(&m_mutex);
    m_blobs.insert(repository + QLatin1Char('@') + image.configDigest, image.config);
    const Manifest m{image.manifest, image.manifestMediaType};
    m_manifests.insert(repository + QLatin1Char('@') + image.manifestDigest, m);
    if (!tag.isEmpty())
        m_manifests.insert(repository + QLatin1Char(':') + tag, m);
}

void FakeRegistry::putManifest(const QString &repository, const QString &tag, const QByteArray &body, const QString &contentType)
{
    QMutexLocker lock(&m_mutex);
    const Manifest m{body, contentType};
    m_manifests.insert(repository + QLatin1Char('@') + digestOf(body), m);
    m_manifests.insert(repository + QLatin1Char(':') + tag, m);
}

QString FakeRegistry::putIndex(const QString &repository, const QString &tag, const QList<FakeImage> &images, bool docker)
{
    for (const FakeImage &image : images)
        putImage(repository, QString(), image);
    const QByteArray index = buildIndex(images, docker);
    putManifest(repository, tag, index, docker ? QStringLiteral("application/vnd.docker.distribution.manifest.list.v2+json")
                                               : QStringLiteral("application/vnd.oci.image.index.v1+json"));
    return digestOf(index);
}

void FakeRegistry::replaceBlob(const QString &digest, const QByteArray &bytes)
{
    QMutexLocker lock(&m_mutex);
    m_replacedBlobs.insert(digest, bytes);
}

void FakeRegistry::requireBasic(const QByteArray &user, const QByteArray &password)
{
    QMutexLocker lock(&m_mutex);
    m_auth = Auth::Basic;
    m_user = user;
    m_password = password;
}

void FakeRegistry::requireToken(const QByteArray &user, const QByteArray &password, bool refuseIssued)
{
    QMutexLocker lock(&m_mutex);
    m_auth = Auth::Token;
    m_user = user;
    m_password = password;
    m_refuseIssued = refuseIssued;
}

void FakeRegistry::failWith(const QString &pattern, int status, int times)
{
    QMutexLocker lock(&m_mutex);
    m_faults.append(Fault{pattern, status, times});
}

QList<QByteArray> FakeRegistry::issuedTokens() const
{
    QMutexLocker lock(&m_mutex);
    return m_tokens;
}

std::optional<FakeAnswer> FakeRegistry::authorize(const FakeRequest &request)
{
    static const QRegularExpression namePath(QStringLiteral("^/v2/(.+)/(?:manifests|blobs)/[^/]+$"));
    const QString name = namePath.match(request.path).captured(1);
    if (m_auth == Auth::Basic) {
        if (request.authorization == "Basic " + (m_user + ':' + m_password).toBase64())
            return std::nullopt;
        FakeAnswer a = registryError(401, "UNAUTHORIZED", QStringLiteral("authentication required"));
        a.headers.append(qMakePair(QByteArray("WWW-Authenticate"), QByteArray("Basic realm=\"fake-registry\"")));
        return a;
    }
    if (m_auth == Auth::Token) {
        if (request.authorization.startsWith("Bearer ") && m_tokens.contains(request.authorization.mid(7)) && !m_refuseIssued)
            return std::nullopt;
        FakeAnswer a = registryError(401, "UNAUTHORIZED", QStringLiteral("authentication required"));
        QByteArray challenge = "Bearer realm=\"http://" + host().toLatin1() + "/token\",service=\"" + Service.toLatin1() + "\"";
        if (!name.isEmpty())
            challenge += ",scope=\"repository:" + name.toLatin1() + ":pull\"";
        a.headers.append(qMakePair(QByteArray("WWW-Authenticate"), QByteArray(challenge)));
        return a;
    }
    return std::nullopt;
}

std::optional<FakeAnswer> FakeRegistry::answer(const FakeRequest &request)
{
    QMutexLocker lock(&m_mutex);
    if (request.path != QLatin1String("/token") && !request.path.startsWith(QLatin1String("/v2/")))
        return std::nullopt;
    for (int i = 0; i < m_faults.size(); ++i) {
        if (QRegularExpression(m_faults[i].pattern).match(request.path).hasMatch()) {
            const int status = m_faults[i].status;
            if (--m_faults[i].times <= 0)
                m_faults.removeAt(i);
            return registryError(status, "INJECTED", QStringLiteral("injected fault"));
        }
    }
    if (request.path == QLatin1String("/token")) {
        if (request.query.queryItemValue(QStringLiteral("service")) != Service
            || !request.query.queryItemValue(QStringLiteral("scope")).startsWith(QLatin1String("repository:")))
            return registryError(400, "UNSUPPORTED", QStringLiteral("service and scope required"));
        if (!m_user.isEmpty() && request.authorization != "Basic " + (m_user + ':' + m_password).toBase64())
            return registryError(401, "UNAUTHORIZED", QStringLiteral("bad credentials"));
        const QByteArray token = "issued-token-" + QByteArray::number(m_tokens.size() + 1) + "-4e8a1f";
        m_tokens.append(token);
        FakeAnswer a;
        a.body = compact(QJsonObject{{QStringLiteral("token"), QString::fromLatin1(token)}, {QStringLiteral("expires_in"), 300}});
        a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
        return a;
    }
    if (auto refused = authorize(request))
        return refused;
    if (request.path == QLatin1String("/v2/"))
        return FakeAnswer{200, "{}", {qMakePair(QByteArray("Content-Type"), QByteArray("application/json"))}};
    static const QRegularExpression manifestPath(QStringLiteral("^/v2/(.+)/manifests/([^/]+)$"));
    static const QRegularExpression blobPath(QStringLiteral("^/v2/(.+)/blobs/([^/]+)$"));
    if (const auto m = manifestPath.match(request.path); m.hasMatch()) {
        const QString reference = m.captured(2);
        const QString key = m.captured(1) + (reference.startsWith(QLatin1String("sha256:")) ? QLatin1Char('@') : QLatin1Char(':')) + reference;
        const auto it = m_manifests.constFind(key);
        // A registry serves only media types the client accepts.
        if (it == m_manifests.constEnd() || !request.headers.value("accept").contains(it->contentType.toLatin1()))
            return registryError(404, "MANIFEST_UNKNOWN", QStringLiteral("manifest unknown"));
        FakeAnswer a;
        a.body = it->body;
        a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray(it->contentType.toLatin1())));
        a.headers.append(qMakePair(QByteArray("Docker-Content-Digest"), QByteArray(digestOf(it->body).toLatin1())));
        return a;
    }
    if (const auto m = blobPath.match(request.path); m.hasMatch()) {
        const QString digest = m.captured(2);
        const auto it = m_blobs.constFind(m.captured(1) + QLatin1Char('@') + digest);
        if (it == m_blobs.constEnd())
            return registryError(404, "BLOB_UNKNOWN", QStringLiteral("blob unknown to registry"));
        FakeAnswer a;
        a.body = m_replacedBlobs.value(digest, *it);
        a.headers.append(qMakePair(QByteArray("Content-Type"), QByteArray("application/octet-stream")));
        return a;
    }
    return registryError(404, "NAME_UNKNOWN", QStringLiteral("repository name not known to registry"));
}

} // namespace Sluice::Test
