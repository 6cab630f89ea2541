// SPDX-License-Identifier: Apache-2.0
#pragma once

// An OCI distribution registry for tests, on the fake forge's loopback HTTP server
// (FakeForge::setHandler): GET /v2/<name>/manifests/<tag|digest> (with Content-Type and
// Docker-Content-Digest) and /v2/<name>/blobs/<digest>, 404 with the registry error body,
// Basic or token authentication (a 401 with a Bearer challenge whose realm is this server's
// /token), injected statuses, and a blob served with other bytes than its digest. Plus the
// JSON documents of images, built the way docker and buildah write them.

#include "fakeforge.h"

#include <QJsonObject>
#include <QMutex>

namespace Sluice::Test {

/// The documents of one single-platform image.
struct FakeImage {
    QByteArray config;
    QString configDigest;
    QByteArray manifest;
    QString manifestDigest;
    QString manifestMediaType;
    QString platform; ///< "linux/amd64"
};

/// Builds an image whose config carries @p labels; @p docker: Docker v2 media types, else OCI.
[[nodiscard]] FakeImage buildImage(const QJsonObject &labels, bool docker = false, const QString &platform = QStringLiteral("linux/amd64"));
/// An index (OCI) or manifest list (@p docker) of @p images, each with its platform.
[[nodiscard]] QByteArray buildIndex(const QList<FakeImage> &images, bool docker = false);
/// "sha256:<hex>" of @p bytes.
[[nodiscard]] QString digestOf(const QByteArray &bytes);

class FakeRegistry
{
public:
    FakeRegistry();
    ~FakeRegistry();

    [[nodiscard]] Result<void> start();
    /// "127.0.0.1:PORT": the registry part of an image reference.
    [[nodiscard]] QString host() const;

    /// Stores @p image's config blob and manifest in @p repository, the manifest also under @p tag (unless empty).
    void putImage(const QString &repository, const QString &tag, const FakeImage &image);
    /// Stores a manifest body under @p tag and its digest, served with @p contentType.
    void putManifest(const QString &repository, const QString &tag, const QByteArray &body, const QString &contentType);
    /// Stores an index of @p images (each image stored too) under @p tag; returns its digest.
    QString putIndex(const QString &repository, const QString &tag, const QList<FakeImage> &images, bool docker = false);
    /// Serves @p bytes for the blob @p digest instead of its content.
    void replaceBlob(const QString &digest, const QByteArray &bytes);

    /// Requests need "Basic base64(user:password)".
    void requireBasic(const QByteArray &user, const QByteArray &password);
    /**
     * Requests need a Bearer token from /token on this server, asked for with the challenge's
     * service and scope. With @p user set, /token needs Basic credentials; @p refuseIssued:
     * the registry rejects the token /token issued (a token for the wrong scope).
     */
    void requireToken(const QByteArray &user = {}, const QByteArray &password = {}, bool refuseIssued = false);
    /// The next @p times requests whose path matches @p pattern get @p status.
    void failWith(const QString &pattern, int status, int times = 1);

    /// Delay before every answer.
    void setLatency(std::chrono::milliseconds latency) { m_server.setLatency(latency); }

    [[nodiscard]] QList<FakeRequest> requests() const { return m_server.requests(); }
    /// Every token /token issued.
    [[nodiscard]] QList<QByteArray> issuedTokens() const;

private:
    std::optional<FakeAnswer> answer(const FakeRequest &request);
    std::optional<FakeAnswer> authorize(const FakeRequest &request);

    struct Manifest {
        QByteArray body;
        QString contentType;
    };
    struct Fault {
        QString pattern;
        int status = 500;
        int times = 1;
    };

    mutable QMutex m_mutex;
    FakeForge m_server;
    QHash<QString, QByteArray> m_blobs;          // repository + '@' + digest
    QHash<QString, Manifest> m_manifests;        // repository + ':' + tag, repository + '@' + digest
    QHash<QString, QByteArray> m_replacedBlobs;  // digest
    enum class Auth { None, Basic, Token } m_auth = Auth::None;
    QByteArray m_user;
    QByteArray m_password;
    bool m_refuseIssued = false;
    QList<QByteArray> m_tokens;
    QList<Fault> m_faults;
};

} // namespace Sluice::Test
