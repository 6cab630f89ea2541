// SPDX-License-Identifier: Apache-2.0
// The image-freshness gate as the host runs it: the real plugin against a fake OCI registry
// on loopback, OCI image layout directories and skopeo output written by the test.
#include "fakeregistry.h"

#include <sluice/secrets.h>
#include <sluice/testsupport.h>

#include <QDir>
#include <QJsonArray>
#include <QJsonDocument>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QString Sha = QStringLiteral("0123456789abcdef0123456789abcdef01234567");
const QString OtherSha = QStringLiteral("fedcba9876543210fedcba9876543210fedcba98");
const QString Source = QStringLiteral("https://git.example/acme/widget");
const QString Repo = QStringLiteral("acme/widget");
const QByteArray Password = "registry-password-7a1c9e";

QJsonObject labels(const QString &revision, const QString &source)
{
    QJsonObject o{{QStringLiteral("maintainer"), QStringLiteral("acme")}};
    if (!revision.isNull())
        o.insert(QStringLiteral("org.opencontainers.image.revision"), revision);
    if (!source.isNull())
        o.insert(QStringLiteral("org.opencontainers.image.source"), source);
    return o;
}

QStringList captured;
QtMessageHandler previousHandler = nullptr;
void captureMessages(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    captured.append(message);
    if (previousHandler)
        previousHandler(type, context, message);
}

QString verdictText(const GateVerdict &v)
{
    return QString::fromUtf8(QJsonDocument(v.toJson()).toJson());
}

bool writeFile(const QString &path, const QByteArray &bytes)
{
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return false;
    return f.write(bytes) == bytes.size();
}

// An OCI image layout as `skopeo copy oci:` or buildah writes it.
struct Layout {
    QString dir;
    QJsonArray entries;

    bool blob(const QByteArray &bytes) const
    {
        return writeFile(dir + QStringLiteral("/blobs/sha256/") + digestOf(bytes).mid(7), bytes);
    }
    bool add(const FakeImage &image, const QString &name)
    {
        if (!blob(image.config) || !blob(image.manifest))
            return false;
        entries.append(QJsonObject{{QStringLiteral("mediaType"), image.manifestMediaType},
                                   {QStringLiteral("digest"), image.manifestDigest},
                                   {QStringLiteral("size"), image.manifest.size()},
                                   {QStringLiteral("annotations"), QJsonObject{{QStringLiteral("org.opencontainers.image.ref.name"), name}}}});
        return true;
    }
    bool addIndex(const QList<FakeImage> &images, const QString &name)
    {
        for (const FakeImage &image : images) {
            if (!blob(image.config) || !blob(image.manifest))
                return false;
        }
        const QByteArray index = buildIndex(images);
        entries.append(QJsonObject{{QStringLiteral("mediaType"), QStringLiteral("application/vnd.oci.image.index.v1+json")},
                                   {QStringLiteral("digest"), digestOf(index)},
                                   {QStringLiteral("size"), index.size()},
                                   {QStringLiteral("annotations"), QJsonObject{{QStringLiteral("org.opencontainers.image.ref.name"), name}}}});
        return blob(index);
    }
    bool write() const
    {
        return writeFile(dir + QStringLiteral("/oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}")
            && writeFile(dir + QStringLiteral("/index.json"),
                         QJsonDocument(QJsonObject{{QStringLiteral("schemaVersion"), 2},
                                                   {QStringLiteral("mediaType"), QStringLiteral("application/vnd.oci.image.index.v1+json")},
                                                   {QStringLiteral("manifests"), entries}})
                             .toJson());
    }
};

} // namespace

class tst_ImageFreshness : public QObject
{
    Q_OBJECT

private:
    LoadedPlugin m_plugin;
    std::unique_ptr<FakeRegistry> m_registry;
    std::unique_ptr<QTemporaryDir> m_dir;

    QByteArray registrySettings(const QString &image, const QByteArray &more = {}) const
    {
        return "image: \"" + image.toUtf8() + "\"\nplain_http: true\nexpected_source: " + Source.toUtf8() + "\ntimeout: 10s\n" + more;
    }
    QString ref(const QString &tagOrDigest) const
    {
        return m_registry->host() + QLatin1Char('/') + Repo + (tagOrDigest.startsWith(QLatin1String("sha256:")) ? QLatin1Char('@') : QLatin1Char(':')) + tagOrDigest;
    }
    QByteArray passwordSettings()
    {
        const QString file = m_dir->filePath(QStringLiteral("registry.password"));
        if (!writeFile(file, Password + "\n"))
            return {};
        return "username: deployer\npassword: {file: " + file.toUtf8() + "}\n";
    }

    GateVerdict judge(const QByteArray &settings, const QString &headSha = Sha)
    {
        auto created = createInstance(m_plugin, settings);
        if (!created)
            return GateVerdict::error(QStringLiteral("instance refused: ") + created.error().message);
        GateRequest request;
        request.task.id = 42;
        request.task.projectId = QStringLiteral("test-project");
        request.task.branch = QStringLiteral("sluice/add-widget");
        request.task.headSha = headSha;
        request.fromStage = QStringLiteral("deploy-staging");
        request.toStage = QStringLiteral("deploy");
        request.artifactsDir = m_dir->path();
        return evaluateGate(*qobject_cast<Gate *>(created->get()), request);
    }

private Q_SLOTS:
    void initTestCase()
    {
        auto plugin = loadPlugin(QStringLiteral(IMAGE_FRESHNESS_PLUGIN_FILE));
        QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
        m_plugin = *plugin;
        QCOMPARE(m_plugin.metaData.id(), QStringLiteral("image-freshness"));
    }

    void init()
    {
        m_registry = std::make_unique<FakeRegistry>();
        QVERIFY(m_registry->start());
        m_dir = std::make_unique<QTemporaryDir>();
        QVERIFY(m_dir->isValid());
    }

    void cleanup()
    {
        m_registry.reset();
        m_dir.reset();
    }

    // The label matrix, for OCI and Docker v2 media types, read from the registry.
    void labelMatrix_data()
    {
        QTest::addColumn<QString>("revision"); // null: no such label
        QTest::addColumn<QString>("source");
        QTest::addColumn<bool>("docker");
        QTest::addColumn<int>("result");
        QTest::addColumn<QStringList>("reasonParts");
        QTest::addColumn<int>("findings");
        const int pass = int(GateVerdict::Result::Pass);
        const int fail = int(GateVerdict::Result::Fail);
        for (const bool docker : {false, true}) {
            const QByteArray kind = docker ? "docker v2: " : "oci: ";
            QTest::newRow(kind + "match") << Sha << Source << docker << pass << QStringList{Sha, Source} << 0;
            QTest::newRow(kind + "match, source with .git and slash") << Sha << Source + QStringLiteral(".git/") << docker << pass << QStringList{Sha} << 0;
            QTest::newRow(kind + "match, upper-case revision") << Sha.toUpper() << QStringLiteral("HTTPS://Git.Example/acme/widget") << docker << pass << QStringList{Sha} << 0;
            QTest::newRow(kind + "revision of another commit") << OtherSha << Source << docker << fail
                                                             << QStringList{QStringLiteral("org.opencontainers.image.revision is '%1', expected '%2'").arg(OtherSha, Sha)} << 1;
            QTest::newRow(kind + "short revision is not the commit") << Sha.left(7) << Source << docker << fail << QStringList{QStringLiteral("is '0123456'")} << 1;
            QTest::newRow(kind + "missing revision") << QString() << Source << docker << fail
                                                   << QStringList{QStringLiteral("org.opencontainers.image.revision is missing (expected %1)").arg(Sha)} << 1;
            QTest::newRow(kind + "missing source") << Sha << QString() << docker << fail
                                                 << QStringList{QStringLiteral("org.opencontainers.image.source is missing (expected %1)").arg(Source)} << 1;
            QTest::newRow(kind + "no labels at all") << QString() << QString() << docker << fail
                                                   << QStringList{QStringLiteral("revision is missing"), QStringLiteral("source is missing")} << 2;
            QTest::newRow(kind + "source inherited from the base image") << Sha << QStringLiteral("https://github.com/docker-library/python") << docker << fail
                                                                       << QStringList{QStringLiteral("is 'https://github.com/docker-library/python', expected '%1'").arg(Source),
                                                                                      QStringLiteral("inherited from a base image")} << 1;
            QTest::newRow(kind + "both from the base image") << OtherSha << QStringLiteral("https://github.com/docker-library/python") << docker << fail
                                                           << QStringList{OtherSha, QStringLiteral("docker-library/python")} << 2;
            QTest::newRow(kind + "source of a fork") << Sha << QStringLiteral("https://git.example/someone/widget") << docker << fail
                                                   << QStringList{QStringLiteral("someone/widget")} << 1;
        }
    }

    void labelMatrix()
    {
        QFETCH(QString, revision);
        QFETCH(QString, source);
        QFETCH(bool, docker);
        QFETCH(int, result);
        QFETCH(QStringList, reasonParts);
        QFETCH(int, findings);
        const FakeImage image = buildImage(labels(revision, source), docker);
        m_registry->putImage(Repo, QStringLiteral("staging"), image);
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("staging"))));
        QCOMPARE(int(v.result()), result);
        for (const QString &part : reasonParts)
            QVERIFY2(v.reason().contains(part), qPrintable(v.reason()));
        QCOMPARE(v.findings().size(), findings);
        const QJsonObject evidence = v.evidence();
        QCOMPARE(evidence.value(QStringLiteral("manifestDigest")).toString(), image.manifestDigest);
        QCOMPARE(evidence.value(QStringLiteral("configDigest")).toString(), image.configDigest);
        QCOMPARE(evidence.value(QStringLiteral("mediaType")).toString(), image.manifestMediaType);
        const QJsonObject seen = evidence.value(QStringLiteral("seen")).toObject();
        QCOMPARE(seen.value(QStringLiteral("revision")).toString(), revision);
        QCOMPARE(seen.value(QStringLiteral("revision")).isNull(), revision.isNull());
        QCOMPARE(seen.value(QStringLiteral("source")).toString(), source);
        // The manifest was asked for with every supported media type, then the config blob by digest.
        const QList<FakeRequest> requests = m_registry->requests();
        QCOMPARE(requests.size(), 2);
        const QByteArray accept = requests.at(0).headers.value("accept");
        for (const char *type : {"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                                 "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"})
            QVERIFY2(accept.contains(type), accept.constData());
        QCOMPARE(requests.at(1).path, QStringLiteral("/v2/acme/widget/blobs/") + image.configDigest);
    }

    void placeholdersAndDigestReferences()
    {
        const FakeImage image = buildImage(labels(Sha, Source));
        m_registry->putImage(Repo, Sha, image);
        m_registry->putImage(Repo, QStringLiteral("sluice-add-widget-42"), image);
        QCOMPARE(judge(registrySettings(m_registry->host() + QStringLiteral("/acme/widget:{commit}"))).result(), GateVerdict::Result::Pass);
        QCOMPARE(judge(registrySettings(m_registry->host() + QStringLiteral("/acme/widget:{branch_tag}-{task}"))).result(), GateVerdict::Result::Pass);
        const GateVerdict byDigest = judge(registrySettings(ref(image.manifestDigest)));
        QCOMPARE(byDigest.result(), GateVerdict::Result::Pass);
        QCOMPARE(m_registry->requests().last().path, QStringLiteral("/v2/acme/widget/blobs/") + image.configDigest);
        // Another commit's tag does not exist: the image of this change was never pushed.
        const GateVerdict other = judge(registrySettings(m_registry->host() + QStringLiteral("/acme/widget:{commit}")), OtherSha);
        QCOMPARE(other.result(), GateVerdict::Result::Error);
        QVERIFY2(other.reason().contains(QStringLiteral("HTTP 404")) && other.reason().contains(QStringLiteral("MANIFEST_UNKNOWN")), qPrintable(other.reason()));
    }

    void imageFromArtifact()
    {
        const FakeImage image = buildImage(labels(Sha, Source));
        m_registry->putImage(Repo, QStringLiteral("build-77"), image);
        const QByteArray settings = "image_artifact: image-{task}.ref\nplain_http: true\nexpected_source: " + Source.toUtf8() + "\n";
        // Not written yet: the deploy-staging stage did not record an image.
        GateVerdict v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("image-42.ref does not exist")), qPrintable(v.reason()));
        QVERIFY(writeFile(m_dir->filePath(QStringLiteral("image-42.ref")), "# written by deploy-staging\n\n" + ref(QStringLiteral("build-77")).toUtf8() + "\n"));
        v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Pass);
        QVERIFY2(v.reason().contains(QStringLiteral("build-77")), qPrintable(v.reason()));
        QVERIFY(writeFile(m_dir->filePath(QStringLiteral("image-42.ref")), "# nothing\n\n"));
        v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("names no image")), qPrintable(v.reason()));
    }

    void indexChoosesThePlatform_data()
    {
        QTest::addColumn<bool>("docker");
        QTest::addColumn<QString>("platform"); // empty: the default
        QTest::addColumn<int>("result");
        QTest::addColumn<QString>("chosen");
        QTest::newRow("oci index, default linux/amd64") << false << QString() << int(GateVerdict::Result::Pass) << QStringLiteral("linux/amd64");
        QTest::newRow("docker list, default linux/amd64") << true << QString() << int(GateVerdict::Result::Pass) << QStringLiteral("linux/amd64");
        QTest::newRow("linux/arm64 carries a stale revision") << false << QStringLiteral("linux/arm64") << int(GateVerdict::Result::Fail) << QStringLiteral("linux/arm64/v8");
        QTest::newRow("linux/arm/v7 by variant") << false << QStringLiteral("linux/arm/v7") << int(GateVerdict::Result::Pass) << QStringLiteral("linux/arm/v7");
        QTest::newRow("linux/arm/v6 is not there") << false << QStringLiteral("linux/arm/v6") << int(GateVerdict::Result::Error) << QString();
        QTest::newRow("windows/amd64 is not there") << true << QStringLiteral("windows/amd64") << int(GateVerdict::Result::Error) << QString();
    }

    void indexChoosesThePlatform()
    {
        QFETCH(bool, docker);
        QFETCH(QString, platform);
        QFETCH(int, result);
        QFETCH(QString, chosen);
        const FakeImage arm64 = buildImage(labels(OtherSha, Source), docker, QStringLiteral("linux/arm64/v8"));
        const FakeImage amd64 = buildImage(labels(Sha, Source), docker, QStringLiteral("linux/amd64"));
        const FakeImage armv7 = buildImage(labels(Sha, Source), docker, QStringLiteral("linux/arm/v7"));
        m_registry->putIndex(Repo, QStringLiteral("multi"), {arm64, amd64, armv7}, docker);
        const QByteArray more = platform.isEmpty() ? QByteArray() : "platform: " + platform.toUtf8() + "\n";
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("multi")), more));
        QCOMPARE(int(v.result()), result);
        if (v.result() == GateVerdict::Result::Error) {
            QVERIFY2(v.reason().contains(QStringLiteral("no image for platform %1 (it has: linux/arm64/v8, linux/amd64, linux/arm/v7)").arg(platform)), qPrintable(v.reason()));
            return;
        }
        QCOMPARE(v.evidence().value(QStringLiteral("platform")).toString(), chosen);
        const FakeImage &expected = chosen == QLatin1String("linux/amd64") ? amd64 : chosen == QLatin1String("linux/arm/v7") ? armv7 : arm64;
        QCOMPARE(v.evidence().value(QStringLiteral("manifestDigest")).toString(), expected.manifestDigest);
        QVERIFY2(verdictText(v).contains(QStringLiteral("chose %1").arg(chosen)), qPrintable(verdictText(v)));
    }

    void registryFailuresAreErrors_data()
    {
        QTest::addColumn<QString>("fault"); // path pattern
        QTest::addColumn<int>("status");
        QTest::addColumn<QString>("reason");
        QTest::newRow("manifest 500") << QStringLiteral("/manifests/") << 500 << QStringLiteral("answered HTTP 500 (INJECTED: injected fault)");
        QTest::newRow("manifest 503") << QStringLiteral("/manifests/") << 503 << QStringLiteral("HTTP 503");
        QTest::newRow("manifest 403") << QStringLiteral("/manifests/") << 403 << QStringLiteral("HTTP 403");
        QTest::newRow("blob 404") << QStringLiteral("/blobs/") << 404 << QStringLiteral("answered HTTP 404");
        QTest::newRow("blob 500") << QStringLiteral("/blobs/") << 500 << QStringLiteral("HTTP 500");
    }

    void registryFailuresAreErrors()
    {
        QFETCH(QString, fault);
        QFETCH(int, status);
        QFETCH(QString, reason);
        m_registry->putImage(Repo, QStringLiteral("staging"), buildImage(labels(Sha, Source)));
        m_registry->failWith(fault, status);
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("staging"))));
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(reason), qPrintable(v.reason()));
        QVERIFY2(v.reason().startsWith(QStringLiteral("cannot read the labels of image ")), qPrintable(v.reason()));
        // Once the fault is gone the same gate passes: the error was the registry's, not the image's.
        QCOMPARE(judge(registrySettings(ref(QStringLiteral("staging")))).result(), GateVerdict::Result::Pass);
    }

    void malformedAnswersAreErrors_data()
    {
        QTest::addColumn<QByteArray>("body");
        QTest::addColumn<QString>("contentType");
        QTest::addColumn<QString>("reason");
        const QString oci = QStringLiteral("application/vnd.oci.image.manifest.v1+json");
        QTest::newRow("not JSON") << QByteArray("{\"schemaVersion\": 2, \"config\": ") << oci << QStringLiteral("is not JSON");
        QTest::newRow("an array") << QByteArray("[1,2]") << oci << QStringLiteral("not a JSON object");
        QTest::newRow("schema 1 body") << QByteArray("{\"schemaVersion\":1,\"name\":\"acme/widget\",\"fsLayers\":[]}") << QStringLiteral("application/vnd.docker.distribution.manifest.v2+json")
                                  << QStringLiteral("schemaVersion is 1, not 2");
        QTest::newRow("no config") << QByteArray("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}") << oci
                                   << QStringLiteral("config is not an object");
        QTest::newRow("config without digest") << QByteArray("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":3}}")
                                               << oci << QStringLiteral("config.digest is missing");
        QTest::newRow("index without manifests") << QByteArray("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\"}")
                                                 << QStringLiteral("application/vnd.oci.image.index.v1+json") << QStringLiteral("no 'manifests' list");
        QTest::newRow("not an image") << QByteArray("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\",\"digest\":\"sha256:"
                                                    + QByteArray(64, 'a') + "\",\"size\":2}}")
                                      << oci << QStringLiteral("is not a container image");
    }

    void malformedAnswersAreErrors()
    {
        QFETCH(QByteArray, body);
        QFETCH(QString, contentType);
        QFETCH(QString, reason);
        m_registry->putManifest(Repo, QStringLiteral("broken"), body, contentType);
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("broken"))));
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(reason), qPrintable(v.reason()));
    }

    void blobThatDoesNotMatchItsDigestIsAnError()
    {
        const FakeImage image = buildImage(labels(OtherSha, Source));
        m_registry->putImage(Repo, QStringLiteral("staging"), image);
        // The registry hands out a config with the right labels under the stale image's digest.
        const FakeImage forged = buildImage(labels(Sha, Source));
        m_registry->replaceBlob(image.configDigest, forged.config);
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("staging"))));
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("does not match its digest: expected %1, the content hashes to %2").arg(image.configDigest, forged.configDigest)),
                 qPrintable(v.reason()));
    }

    void basicAuthentication()
    {
        m_registry->putImage(Repo, QStringLiteral("staging"), buildImage(labels(Sha, Source)));
        m_registry->requireBasic("deployer", Password);
        GateVerdict v = judge(registrySettings(ref(QStringLiteral("staging"))));
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("asks for credentials (HTTP 401, Basic) and none are configured")), qPrintable(v.reason()));

        captured.clear();
        previousHandler = qInstallMessageHandler(captureMessages);
        v = judge(registrySettings(ref(QStringLiteral("staging")), passwordSettings()));
        qInstallMessageHandler(previousHandler);
        QCOMPARE(v.result(), GateVerdict::Result::Pass);
        QVERIFY(!verdictText(v).contains(QString::fromLatin1(Password)));
        QVERIFY(!captured.join(QLatin1Char('\n')).contains(QString::fromLatin1(Password)));
        QVERIFY(!captured.join(QLatin1Char('\n')).contains(QString::fromLatin1(("deployer:" + Password).toBase64())));
        const QList<FakeRequest> requests = m_registry->requests();
        QCOMPARE(requests.last().authorization, "Basic " + ("deployer:" + Password).toBase64());

        // A wrong password: refused once more after the retry, an error naming no secret.
        const QString file = m_dir->filePath(QStringLiteral("registry.password"));
        QVERIFY(writeFile(file, "not-the-password-3141"));
        v = judge(registrySettings(ref(QStringLiteral("staging")), "username: deployer\npassword: {file: " + file.toUtf8() + "}\n"));
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("refused the credentials (HTTP 401)")), qPrintable(v.reason()));
        QVERIFY(!verdictText(v).contains(QStringLiteral("not-the-password-3141")));
    }

    void tokenAuthentication_data()
    {
        QTest::addColumn<bool>("tokenNeedsCredentials");
        QTest::addColumn<bool>("giveCredentials");
        QTest::addColumn<bool>("refuseIssued");
        QTest::addColumn<int>("result");
        QTest::addColumn<QString>("reason");
        QTest::newRow("anonymous token") << false << false << false << int(GateVerdict::Result::Pass) << QString();
        QTest::newRow("token with credentials") << true << true << false << int(GateVerdict::Result::Pass) << QString();
        QTest::newRow("token endpoint wants credentials") << true << false << false << int(GateVerdict::Result::Error)
                                                          << QStringLiteral("cannot get a registry token: token for manifest acme/widget:staging");
        QTest::newRow("registry refuses the issued token") << false << false << true << int(GateVerdict::Result::Error)
                                                           << QStringLiteral("refused the token it issued (HTTP 401)");
    }

    void tokenAuthentication()
    {
        QFETCH(bool, tokenNeedsCredentials);
        QFETCH(bool, giveCredentials);
        QFETCH(bool, refuseIssued);
        QFETCH(int, result);
        QFETCH(QString, reason);
        m_registry->putImage(Repo, QStringLiteral("staging"), buildImage(labels(Sha, Source)));
        m_registry->requireToken(tokenNeedsCredentials ? QByteArray("deployer") : QByteArray(), tokenNeedsCredentials ? Password : QByteArray(), refuseIssued);
        captured.clear();
        previousHandler = qInstallMessageHandler(captureMessages);
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("staging")), giveCredentials ? passwordSettings() : QByteArray()));
        qInstallMessageHandler(previousHandler);
        QCOMPARE(int(v.result()), result);
        QVERIFY2(v.reason().contains(reason), qPrintable(v.reason()));
        const QList<FakeRequest> requests = m_registry->requests();
        QCOMPARE(requests.at(0).path, QStringLiteral("/v2/acme/widget/manifests/staging"));
        QVERIFY(requests.at(0).authorization.isEmpty());
        QCOMPARE(requests.at(1).path, QStringLiteral("/token"));
        QCOMPARE(requests.at(1).query.queryItemValue(QStringLiteral("scope")), QStringLiteral("repository:acme/widget:pull"));
        QCOMPARE(requests.at(1).query.queryItemValue(QStringLiteral("service")), QStringLiteral("fake-registry"));
        QCOMPARE(requests.at(1).authorization.isEmpty(), !giveCredentials);
        const QString all = verdictText(v) + captured.join(QLatin1Char('\n'));
        QVERIFY(!all.contains(QString::fromLatin1(Password)));
        for (const QByteArray &token : m_registry->issuedTokens())
            QVERIFY2(!all.contains(QString::fromLatin1(token)), "a token reached a verdict or a log line");
        if (v.result() == GateVerdict::Result::Pass) {
            QCOMPARE(m_registry->issuedTokens().size(), 1);
            // The token is fetched once and used for the manifest and the blob.
            QCOMPARE(requests.size(), 4);
            QCOMPARE(requests.at(2).authorization, "Bearer " + m_registry->issuedTokens().first());
            QCOMPARE(requests.at(3).authorization, "Bearer " + m_registry->issuedTokens().first());
        }
    }

    void unreachableRegistryIsAnError()
    {
        QTcpServer closed;
        QVERIFY(closed.listen(QHostAddress::LocalHost));
        const quint16 port = closed.serverPort();
        closed.close();
        const GateVerdict v = judge(registrySettings(QStringLiteral("127.0.0.1:%1/acme/widget:staging").arg(port)));
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("cannot read from 127.0.0.1:%1").arg(port)), qPrintable(v.reason()));
    }

    void slowRegistryTimesOut()
    {
        m_registry->putImage(Repo, QStringLiteral("staging"), buildImage(labels(Sha, Source)));
        m_registry->setLatency(std::chrono::seconds(4));
        const QByteArray settings = "image: \"" + ref(QStringLiteral("staging")).toUtf8() + "\"\nplain_http: true\nexpected_source: " + Source.toUtf8() + "\ntimeout: 1s\n";
        const GateVerdict v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("did not answer within 1000 ms")), qPrintable(v.reason()));
    }

    void noHeadCommitIsAnError()
    {
        m_registry->putImage(Repo, QStringLiteral("staging"), buildImage(labels(Sha, Source)));
        const GateVerdict v = judge(registrySettings(ref(QStringLiteral("staging"))), QString());
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("no head commit")), qPrintable(v.reason()));
        QVERIFY(m_registry->requests().isEmpty());
    }

    void settingsRefused_data()
    {
        QTest::addColumn<QByteArray>("settings");
        QTest::addColumn<QString>("message");
        QTest::newRow("no image") << QByteArray("expected_source: https://x.example/a/b\n") << QStringLiteral("needs 'image' or 'image_artifact'");
        QTest::newRow("both") << QByteArray("image: r.example/a/b:1\nimage_artifact: image.ref\nexpected_source: https://x.example/a/b\n") << QStringLiteral("not both");
        QTest::newRow("bad reference") << QByteArray("image: r.example/Acme/b:1\nexpected_source: https://x.example/a/b\n") << QStringLiteral("not a valid name");
        QTest::newRow("no source for a local repository") << QByteArray("image: r.example/a/b:1\n") << QStringLiteral("'expected_source' is required");
        QTest::newRow("bad platform") << QByteArray("image: r.example/a/b:1\nexpected_source: https://x.example/a/b\nplatform: amd64\n") << QStringLiteral("os/architecture");
        QTest::newRow("layout without a directory") << QByteArray("read_from: oci-layout\nexpected_source: https://x.example/a/b\n") << QStringLiteral("needs 'layout'");
        QTest::newRow("skopeo without a file") << QByteArray("read_from: skopeo-json\nexpected_source: https://x.example/a/b\n") << QStringLiteral("needs 'skopeo_output'");
        QTest::newRow("user without password") << QByteArray("image: r.example/a/b:1\nexpected_source: https://x.example/a/b\nusername: u\n") << QStringLiteral("go together");
        QTest::newRow("unknown key") << QByteArray("image: r.example/a/b:1\nexpected_source: https://x.example/a/b\nplatfrom: linux/amd64\n") << QStringLiteral("unknown key");
    }

    void settingsRefused()
    {
        QFETCH(QByteArray, settings);
        QFETCH(QString, message);
        auto created = createInstance(m_plugin, settings);
        QVERIFY(!created);
        QVERIFY2(created.error().message.contains(message), qPrintable(created.error().message));
    }

    void sourceDefaultsToTheProjectRepository()
    {
        m_registry->putImage(Repo, QStringLiteral("staging"), buildImage(labels(Sha, Source)));
        ProjectInfo project = fakeProject();
        project.repository = Source + QStringLiteral(".git");
        auto created = createInstance(m_plugin, "image: " + ref(QStringLiteral("staging")).toUtf8() + "\nplain_http: true\n", project);
        QVERIFY2(created, qPrintable(created ? QString() : created.error().message));
        GateRequest request;
        request.task.headSha = Sha;
        QCOMPARE(evaluateGate(*qobject_cast<Gate *>(created->get()), request).result(), GateVerdict::Result::Pass);
        project.repository = QStringLiteral("https://git.example/other/widget");
        created = createInstance(m_plugin, "image: " + ref(QStringLiteral("staging")).toUtf8() + "\nplain_http: true\n", project);
        QVERIFY(created);
        QCOMPARE(evaluateGate(*qobject_cast<Gate *>(created->get()), request).result(), GateVerdict::Result::Fail);
    }

    // The same judgement from an OCI image layout directory.
    void ociLayout()
    {
        Layout layout{m_dir->filePath(QStringLiteral("layout-42")), {}};
        const FakeImage fresh = buildImage(labels(Sha, Source));
        const FakeImage stale = buildImage(labels(OtherSha, Source));
        const FakeImage amd64 = buildImage(labels(Sha, Source), false, QStringLiteral("linux/amd64"));
        const FakeImage arm64 = buildImage(labels(OtherSha, Source), false, QStringLiteral("linux/arm64"));
        QVERIFY(layout.add(fresh, QStringLiteral("fresh")));
        QVERIFY(layout.add(stale, QStringLiteral("stale")));
        QVERIFY(layout.addIndex({arm64, amd64}, QStringLiteral("multi")));
        QVERIFY(layout.write());
        const QByteArray base = "read_from: oci-layout\nlayout: layout-{task}\nexpected_source: " + Source.toUtf8() + "\n";

        GateVerdict v = judge(base + "image: fresh\n");
        QCOMPARE(v.result(), GateVerdict::Result::Pass);
        QCOMPARE(v.evidence().value(QStringLiteral("manifestDigest")).toString(), fresh.manifestDigest);
        v = judge(base + "image: stale\n");
        QCOMPARE(v.result(), GateVerdict::Result::Fail);
        QVERIFY2(v.reason().contains(OtherSha), qPrintable(v.reason()));
        v = judge(base + "image: \"" + fresh.manifestDigest.toUtf8() + "\"\n");
        QCOMPARE(v.result(), GateVerdict::Result::Pass);
        v = judge(base + "image: multi\n");
        QCOMPARE(v.result(), GateVerdict::Result::Pass);
        QCOMPARE(v.evidence().value(QStringLiteral("platform")).toString(), QStringLiteral("linux/amd64"));
        v = judge(base + "image: multi\nplatform: linux/arm64\n");
        QCOMPARE(v.result(), GateVerdict::Result::Fail);
        v = judge(base + "image: multi\nplatform: linux/s390x\n");
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("no image for platform linux/s390x")), qPrintable(v.reason()));
        v = judge(base + "image: missing\n");
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("no manifest named 'missing' (names: fresh, stale, multi)")), qPrintable(v.reason()));
        v = judge(base);
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("has 3 manifests; name one")), qPrintable(v.reason()));

        // A config blob whose bytes are not those of its name.
        QVERIFY(writeFile(layout.dir + QStringLiteral("/blobs/sha256/") + stale.configDigest.mid(7), buildImage(labels(Sha, Source)).config));
        v = judge(base + "image: stale\n");
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("does not match its digest")), qPrintable(v.reason()));

        // Not a layout at all.
        QVERIFY(QFile::remove(layout.dir + QStringLiteral("/oci-layout")));
        v = judge(base + "image: fresh\n");
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("is not an OCI image layout")), qPrintable(v.reason()));
    }

    // Saved `skopeo inspect` and `skopeo inspect --config` output.
    void skopeoOutput_data()
    {
        QTest::addColumn<QByteArray>("output");
        QTest::addColumn<int>("result");
        QTest::addColumn<QString>("reason");
        const QByteArray summary = "{\"Name\":\"registry.example/acme/widget\",\"Digest\":\"sha256:" + QByteArray(64, 'c')
            + "\",\"RepoTags\":[\"staging\"],\"Created\":\"2026-06-06T10:00:00Z\",\"Labels\":{\"org.opencontainers.image.revision\":\"REV\",\"org.opencontainers.image.source\":\"SRC\"},\"Architecture\":\"ARCH\",\"Os\":\"linux\",\"Layers\":[]}";
        auto fill = [&](const QByteArray &tmpl, const QString &rev, const QString &src, const char *arch = "amd64") {
            QByteArray out = tmpl;
            return out.replace("REV", rev.toUtf8()).replace("SRC", src.toUtf8()).replace("ARCH", arch);
        };
        QTest::newRow("inspect: match") << fill(summary, Sha, Source) << int(GateVerdict::Result::Pass) << QStringLiteral("registry.example/acme/widget");
        QTest::newRow("inspect: mismatch") << fill(summary, OtherSha, Source) << int(GateVerdict::Result::Fail) << OtherSha;
        QTest::newRow("inspect: other platform") << fill(summary, Sha, Source, "arm64") << int(GateVerdict::Result::Error) << QStringLiteral("describes the image for linux/arm64, not linux/amd64");
        QTest::newRow("inspect: null labels") << QByteArray("{\"Name\":\"r.example/a/b\",\"Digest\":\"sha256:00\",\"Labels\":null,\"Architecture\":\"amd64\",\"Os\":\"linux\"}")
                                              << int(GateVerdict::Result::Fail) << QStringLiteral("revision is missing");
        QTest::newRow("inspect --config: match") << buildImage(labels(Sha, Source)).config << int(GateVerdict::Result::Pass) << Sha;
        QTest::newRow("inspect --config: base image source") << buildImage(labels(Sha, QStringLiteral("https://github.com/library/debian"))).config
                                                             << int(GateVerdict::Result::Fail) << QStringLiteral("library/debian");
        QTest::newRow("not skopeo output") << QByteArray("{\"hello\":\"world\"}") << int(GateVerdict::Result::Error) << QStringLiteral("neither");
        QTest::newRow("broken JSON") << QByteArray("{\"Labels\": {") << int(GateVerdict::Result::Error) << QStringLiteral("is not JSON");
    }

    void skopeoOutput()
    {
        QFETCH(QByteArray, output);
        QFETCH(int, result);
        QFETCH(QString, reason);
        QVERIFY(writeFile(m_dir->filePath(QStringLiteral("skopeo-42.json")), output));
        const GateVerdict v = judge("read_from: skopeo-json\nskopeo_output: skopeo-{task}.json\nexpected_source: " + Source.toUtf8() + "\n");
        QCOMPARE(int(v.result()), result);
        QVERIFY2(v.reason().contains(reason), qPrintable(v.reason()));
    }

    // skopeo_command: a real child process standing in for skopeo.
    void skopeoCommand()
    {
        const QString config = m_dir->filePath(QStringLiteral("config.json"));
        const QString script = m_dir->filePath(QStringLiteral("fake-skopeo"));
        QVERIFY(writeFile(script, "#!/bin/sh\n"
                                  "echo \"$@\" > args.txt\n"
                                  "if [ -n \"$FAIL\" ] || [ ! -f \"$(dirname \"$0\")/config.json\" ]; then echo 'manifest unknown' >&2; exit 1; fi\n"
                                  "cat \"$(dirname \"$0\")/config.json\"\n"));
        QVERIFY(QFile::setPermissions(script, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner));
        const QByteArray settings = "read_from: skopeo-json\nimage: registry.example/acme/widget:{commit}\nexpected_source: " + Source.toUtf8()
            + "\nskopeo_command: [" + script.toUtf8() + ", inspect, --config, 'docker://{image}']\n";

        GateVerdict v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("exited with code 1: manifest unknown")), qPrintable(v.reason()));

        QVERIFY(writeFile(config, buildImage(labels(Sha, Source)).config));
        v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Pass);
        QCOMPARE(readArgs(), QStringLiteral("inspect --config docker://registry.example/acme/widget:%1\n").arg(Sha));

        QVERIFY(writeFile(config, buildImage(labels(OtherSha, Source)).config));
        v = judge(settings);
        QCOMPARE(v.result(), GateVerdict::Result::Fail);
        QVERIFY2(v.reason().contains(OtherSha), qPrintable(v.reason()));

        v = judge("read_from: skopeo-json\nexpected_source: " + Source.toUtf8() + "\nskopeo_command: [no-such-skopeo-here, inspect]\n");
        QCOMPARE(v.result(), GateVerdict::Result::Error);
        QVERIFY2(v.reason().contains(QStringLiteral("not found in PATH")), qPrintable(v.reason()));
    }

private:
    QString readArgs() const
    {
        QFile f(m_dir->filePath(QStringLiteral("args.txt")));
        return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
    }
};

QTEST_GUILESS_MAIN(tst_ImageFreshness)
#include "tst_imagefreshness.moc"
