// SPDX-License-Identifier: Apache-2.0
// The image-freshness gate's OCI model on its own: image references, source URL
// normalisation, WWW-Authenticate challenges, manifests and platform choice.
#include "ociimage.h"
#include "registrystore.h"

#include <QTest>

using namespace Sluice;
using namespace Sluice::ImageFreshness;

class tst_OciImage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void references_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("registry"); // empty: invalid
        QTest::addColumn<QString>("repository");
        QTest::addColumn<QString>("tag");
        QTest::addColumn<QString>("digest");
        const QString d = QStringLiteral("sha256:") + QString(64, QLatin1Char('a'));
        QTest::newRow("full") << QStringLiteral("registry.example:5000/acme/widget:v1") << QStringLiteral("registry.example:5000") << QStringLiteral("acme/widget") << QStringLiteral("v1") << QString();
        QTest::newRow("digest") << QStringLiteral("r.example/acme/widget@") + d << QStringLiteral("r.example") << QStringLiteral("acme/widget") << QString() << d;
        QTest::newRow("tag and digest") << QStringLiteral("r.example/a/b:v2@") + d << QStringLiteral("r.example") << QStringLiteral("a/b") << QStringLiteral("v2") << d;
        QTest::newRow("no tag is latest") << QStringLiteral("localhost/widget") << QStringLiteral("localhost") << QStringLiteral("widget") << QStringLiteral("latest") << QString();
        QTest::newRow("docker hub official") << QStringLiteral("debian:bookworm") << QStringLiteral("registry-1.docker.io") << QStringLiteral("library/debian") << QStringLiteral("bookworm") << QString();
        QTest::newRow("docker hub user") << QStringLiteral("docker.io/acme/widget") << QStringLiteral("registry-1.docker.io") << QStringLiteral("acme/widget") << QStringLiteral("latest") << QString();
        QTest::newRow("port with no dot") << QStringLiteral("127.0.0.1:5000/a/b/c:1.2.3-rc_1") << QStringLiteral("127.0.0.1:5000") << QStringLiteral("a/b/c") << QStringLiteral("1.2.3-rc_1") << QString();
        QTest::newRow("upper case name") << QStringLiteral("r.example/Acme/widget") << QString() << QString() << QString() << QString();
        QTest::newRow("short digest") << QStringLiteral("r.example/a/b@sha256:abc") << QString() << QString() << QString() << QString();
        QTest::newRow("bad tag") << QStringLiteral("r.example/a/b:-x") << QString() << QString() << QString() << QString();
        QTest::newRow("empty") << QString() << QString() << QString() << QString() << QString();
        QTest::newRow("space") << QStringLiteral("r.example/a b") << QString() << QString() << QString() << QString();
    }

    void references()
    {
        QFETCH(QString, text);
        QFETCH(QString, registry);
        QFETCH(QString, repository);
        QFETCH(QString, tag);
        QFETCH(QString, digest);
        const auto ref = ImageReference::parse(text);
        QCOMPARE(ref.has_value(), !registry.isEmpty());
        if (!ref)
            return;
        QCOMPARE(ref->registry, registry);
        QCOMPARE(ref->repository, repository);
        QCOMPARE(ref->tag, tag);
        QCOMPARE(ref->digest, digest);
        QCOMPARE(ref->manifestReference(), digest.isEmpty() ? tag : digest);
    }

    void sourceUrls_data()
    {
        QTest::addColumn<QString>("url");
        QTest::addColumn<QString>("normalised");
        const QString n = QStringLiteral("https://git.example/acme/widget");
        QTest::newRow("as is") << n << n;
        QTest::newRow(".git") << n + QStringLiteral(".git") << n;
        QTest::newRow("slashes") << n + QStringLiteral("//") << n;
        QTest::newRow(".git/") << n + QStringLiteral(".git/") << n;
        QTest::newRow("host and scheme case") << QStringLiteral("HTTPS://Git.Example/acme/widget") << n;
        QTest::newRow("default port") << QStringLiteral("https://git.example:443/acme/widget") << n;
        QTest::newRow("user info") << QStringLiteral("https://bot@git.example/acme/widget") << n;
        QTest::newRow("space") << QStringLiteral("  https://git.example/acme/widget \n") << n;
        QTest::newRow("git+ prefix") << QStringLiteral("git+https://git.example/acme/widget.git") << n;
        QTest::newRow("path case kept") << QStringLiteral("https://git.example/Acme/Widget") << QStringLiteral("https://git.example/Acme/Widget");
        QTest::newRow("other port kept") << QStringLiteral("https://git.example:3000/acme/widget") << QStringLiteral("https://git.example:3000/acme/widget");
        QTest::newRow("scp form") << QStringLiteral("git@git.example:acme/widget.git") << QStringLiteral("ssh://git.example/acme/widget");
        QTest::newRow("ssh url") << QStringLiteral("ssh://git@git.example:22/acme/widget.git") << QStringLiteral("ssh://git.example/acme/widget");
        QTest::newRow("http stays http") << QStringLiteral("http://git.example/acme/widget") << QStringLiteral("http://git.example/acme/widget");
        QTest::newRow("only .git once") << QStringLiteral("https://git.example/acme/widget.git.git") << QStringLiteral("https://git.example/acme/widget.git");
    }

    void sourceUrls()
    {
        QFETCH(QString, url);
        QFETCH(QString, normalised);
        QCOMPARE(normaliseSourceUrl(url), normalised);
    }

    void challenges_data()
    {
        QTest::addColumn<QByteArray>("header");
        QTest::addColumn<QString>("scheme");
        QTest::addColumn<QString>("realm");
        QTest::addColumn<QString>("service");
        QTest::addColumn<QString>("scope");
        QTest::newRow("docker hub") << QByteArray("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/debian:pull\"")
                                    << QStringLiteral("bearer") << QStringLiteral("https://auth.docker.io/token") << QStringLiteral("registry.docker.io")
                                    << QStringLiteral("repository:library/debian:pull");
        QTest::newRow("comma in scope, spaces") << QByteArray("Bearer realm=\"https://r.example/token\", service=\"r\", scope=\"repository:a/b:pull,push\"")
                                                << QStringLiteral("bearer") << QStringLiteral("https://r.example/token") << QStringLiteral("r")
                                                << QStringLiteral("repository:a/b:pull,push");
        QTest::newRow("no scope") << QByteArray("Bearer realm=\"https://r.example/token\",service=\"r\"") << QStringLiteral("bearer")
                                  << QStringLiteral("https://r.example/token") << QStringLiteral("r") << QString();
        QTest::newRow("basic") << QByteArray("Basic realm=\"Registry Realm\"") << QStringLiteral("basic") << QStringLiteral("Registry Realm") << QString() << QString();
        QTest::newRow("escaped quote") << QByteArray("Bearer realm=\"https://r.example/t\\\"x\"") << QStringLiteral("bearer") << QStringLiteral("https://r.example/t\"x") << QString() << QString();
    }

    void challenges()
    {
        QFETCH(QByteArray, header);
        QFETCH(QString, scheme);
        QFETCH(QString, realm);
        QFETCH(QString, service);
        QFETCH(QString, scope);
        const AuthChallenge c = parseChallenge(header);
        QCOMPARE(c.scheme, scheme);
        QCOMPARE(c.parameters.value(QStringLiteral("realm")), realm);
        QCOMPARE(c.parameters.value(QStringLiteral("service")), service);
        QCOMPARE(c.parameters.value(QStringLiteral("scope")), scope);
    }

    void manifestKinds()
    {
        // An OCI manifest without mediaType is recognised from the Content-Type, then the shape.
        const QByteArray noType = "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:" + QByteArray(64, 'b') + "\",\"size\":5}}";
        auto doc = parseManifest(noType, "application/vnd.oci.image.manifest.v1+json; charset=utf-8");
        QVERIFY(doc);
        QCOMPARE(doc->kind, ManifestDocument::Kind::Image);
        doc = parseManifest(noType, QByteArray());
        QVERIFY(doc);
        QCOMPARE(doc->mediaType, QString::fromLatin1(MediaType::OciManifest));
        const QByteArray index = "{\"schemaVersion\":2,\"manifests\":[]}";
        doc = parseManifest(index, QByteArray());
        QVERIFY(doc);
        QCOMPARE(doc->kind, ManifestDocument::Kind::Index);
        QVERIFY(!parseManifest("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\"}", QByteArray()));
    }

    void platformChoice_data()
    {
        QTest::addColumn<QStringList>("entries");
        QTest::addColumn<QString>("wanted");
        QTest::addColumn<int>("chosen"); // index, -1: none
        QTest::newRow("amd64 among others") << QStringList{QStringLiteral("linux/arm64/v8"), QStringLiteral("linux/amd64")} << QStringLiteral("linux/amd64") << 1;
        QTest::newRow("no variant preferred") << QStringList{QStringLiteral("linux/arm64/v8"), QStringLiteral("linux/arm64")} << QStringLiteral("linux/arm64") << 1;
        QTest::newRow("any variant when asked for none") << QStringList{QStringLiteral("linux/arm64/v8")} << QStringLiteral("linux/arm64") << 0;
        QTest::newRow("variant asked for") << QStringList{QStringLiteral("linux/arm/v6"), QStringLiteral("linux/arm/v7")} << QStringLiteral("linux/arm/v7") << 1;
        QTest::newRow("missing") << QStringList{QStringLiteral("linux/arm64")} << QStringLiteral("linux/amd64") << -1;
        QTest::newRow("unknown/unknown attestation") << QStringList{QStringLiteral("unknown/unknown")} << QStringLiteral("linux/amd64") << -1;
    }

    void platformChoice()
    {
        QFETCH(QStringList, entries);
        QFETCH(QString, wanted);
        QFETCH(int, chosen);
        QList<Descriptor> index;
        for (int i = 0; i < entries.size(); ++i)
            index.append(Descriptor{QString::fromLatin1(MediaType::OciManifest), QStringLiteral("sha256:%1").arg(i, 64, 10, QLatin1Char('0')), 10, entries.at(i), {}});
        const auto platform = Platform::parse(wanted);
        QVERIFY(platform);
        const auto d = choosePlatform(index, *platform);
        QCOMPARE(d.has_value(), chosen >= 0);
        if (d)
            QCOMPARE(d->digest, index.at(chosen).digest);
    }
};

QTEST_GUILESS_MAIN(tst_OciImage)
#include "tst_ociimage.moc"
