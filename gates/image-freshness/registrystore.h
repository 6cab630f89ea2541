// SPDX-License-Identifier: Apache-2.0
#pragma once

// An OCI distribution registry as an ImageStore: GET /v2/<name>/manifests/<ref> and
// /v2/<name>/blobs/<digest> on QNetworkAccessManager, one request at a time, with
// registry token authentication (a 401 with a Bearer challenge fetches a token from its
// realm, anonymously or with the configured credentials, and retries once), Basic
// authentication, redirects followed by hand (credentials never leave the origin that asked
// for them) and a size limit. Credentials and tokens never appear in an Error.

#include "ociimage.h"

#include <QNetworkAccessManager>
#include <QObject>
#include <QPointer>
#include <QUrl>

#include <chrono>

class QNetworkReply;

namespace Sluice::ImageFreshness {

struct RegistryOptions {
    ImageReference image;
    bool plainHttp = false;             ///< http:// instead of https:// (a loopback or lab registry).
    QByteArray basicCredentials;        ///< "user:password", empty: anonymous.
    std::chrono::milliseconds timeout{30'000}; ///< Per request.
};

/// One challenge of a WWW-Authenticate header: the scheme ("bearer", lower case) and its parameters.
struct AuthChallenge {
    QString scheme;
    QHash<QString, QString> parameters; ///< Names in lower case.
};
/// Parses the first challenge of a WWW-Authenticate value; quoted values may hold commas.
[[nodiscard]] AuthChallenge parseChallenge(const QByteArray &header);

class RegistryStore final : public QObject, public ImageStore
{
    Q_OBJECT
public:
    explicit RegistryStore(RegistryOptions options, QObject *parent = nullptr);
    ~RegistryStore() override;

    void manifest(const QString &reference, std::function<void(Result<FetchedManifest>)> done) override;
    void blob(const QString &digest, std::function<void(Result<QByteArray>)> done) override;

    /// Aborts the request in flight; its callback is not called.
    void abort();

    /// The registry's base URL ("https://registry.example/").
    [[nodiscard]] QUrl baseUrl() const { return m_base; }

private:
    struct Get;
    struct Reply {
        QByteArray body;
        QByteArray contentType;
    };
    void get(const QString &path, QByteArray accept, QString what, std::function<void(Result<Reply>)> done);
    void send(const std::shared_ptr<Get> &get);
    void onFinished(const std::shared_ptr<Get> &get, QNetworkReply *reply);
    void authenticate(const std::shared_ptr<Get> &get, const QByteArray &challengeHeader);
    [[nodiscard]] bool sameOrigin(const QUrl &a, const QUrl &b) const;
    [[nodiscard]] Result<void> mayCarryCredentials(const QUrl &url) const;

    RegistryOptions m_options;
    QUrl m_base;
    QNetworkAccessManager m_network;
    QPointer<QNetworkReply> m_reply;
    QByteArray m_authorization; // for the registry's origin; never logged
};

} // namespace Sluice::ImageFreshness
