// SPDX-License-Identifier: Apache-2.0
#include "ociimage.h"

#include <QCryptographicHash>
#include <QJsonArray>
#include <QJsonDocument>
#include <QRegularExpression>
#include <QUrl>

namespace Sluice::ImageFreshness {

namespace {

QString str(const char *text)
{
    return QString::fromLatin1(text);
}

bool isIndexType(const QString &type)
{
    return type == str(MediaType::OciIndex) || type == str(MediaType::DockerList);
}

bool isImageType(const QString &type)
{
    return type == str(MediaType::OciManifest) || type == str(MediaType::DockerManifest);
}

bool isConfigType(const QString &type)
{
    return type == str(MediaType::OciConfig) || type == str(MediaType::DockerConfig);
}

QString shortDigest(const QString &digest)
{
    return digest.left(7 + 12); // "sha256:" and 12 hex digits
}

Result<QJsonObject> jsonObject(const QByteArray &body, const QString &what)
{
    QJsonParseError error{};
    const QJsonDocument doc = QJsonDocument::fromJson(body, &error);
    if (error.error != QJsonParseError::NoError)
        return fail(ErrorCode::Malformed, QStringLiteral("%1 is not JSON: %2 at offset %3").arg(what, error.errorString()).arg(error.offset));
    if (!doc.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("%1 is not a JSON object").arg(what));
    return doc.object();
}

Result<Descriptor> parseDescriptor(const QJsonValue &value, const QString &what)
{
    if (!value.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("%1 is not an object").arg(what));
    const QJsonObject o = value.toObject();
    Descriptor d;
    const QJsonValue type = o.value(QStringLiteral("mediaType"));
    if (!type.isUndefined() && !type.isString())
        return fail(ErrorCode::Malformed, QStringLiteral("%1.mediaType is not a string").arg(what));
    d.mediaType = type.toString();
    const QJsonValue digest = o.value(QStringLiteral("digest"));
    static const QRegularExpression digestForm(QStringLiteral("^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"));
    if (!digest.isString() || !digestForm.match(digest.toString()).hasMatch())
        return fail(ErrorCode::Malformed, QStringLiteral("%1.digest is missing or not a digest").arg(what));
    d.digest = digest.toString();
    const QJsonValue size = o.value(QStringLiteral("size"));
    if (!size.isUndefined()) {
        if (!size.isDouble() || size.toDouble() < 0 || size.toDouble() != double(qint64(size.toDouble())))
            return fail(ErrorCode::Malformed, QStringLiteral("%1.size is not a non-negative integer").arg(what));
        d.size = qint64(size.toDouble());
    }
    const QJsonValue platform = o.value(QStringLiteral("platform"));
    if (platform.isObject()) {
        const QJsonObject p = platform.toObject();
        d.platform = p.value(QStringLiteral("os")).toString() + QLatin1Char('/') + p.value(QStringLiteral("architecture")).toString();
        const QString variant = p.value(QStringLiteral("variant")).toString();
        if (!variant.isEmpty())
            d.platform += QLatin1Char('/') + variant;
    } else if (!platform.isUndefined() && !platform.isNull()) {
        return fail(ErrorCode::Malformed, QStringLiteral("%1.platform is not an object").arg(what));
    }
    d.annotations = o.value(QStringLiteral("annotations")).toObject();
    return d;
}

} // namespace

QByteArray manifestAccept()
{
    return QByteArray(MediaType::OciManifest) + ", " + MediaType::OciIndex + ", " + MediaType::DockerManifest + ", "
        + MediaType::DockerList;
}

QString sha256Digest(const QByteArray &bytes)
{
    return QStringLiteral("sha256:") + QString::fromLatin1(QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex());
}

bool isSha256Digest(const QString &digest)
{
    static const QRegularExpression form(QStringLiteral("^sha256:[0-9a-f]{64}$"));
    return form.match(digest).hasMatch();
}

Result<void> verifyDigest(const QByteArray &bytes, const QString &digest, const QString &what)
{
    if (!isSha256Digest(digest))
        return fail(ErrorCode::Malformed, QStringLiteral("%1 has digest '%2': only sha256 digests can be verified").arg(what, digest));
    const QString actual = sha256Digest(bytes);
    if (actual != digest)
        return fail(ErrorCode::Malformed, QStringLiteral("%1 does not match its digest: expected %2, the content hashes to %3").arg(what, digest, actual));
    return {};
}

QString ImageReference::toString() const
{
    QString text = registry + QLatin1Char('/') + repository;
    if (!tag.isEmpty())
        text += QLatin1Char(':') + tag;
    if (!digest.isEmpty())
        text += QLatin1Char('@') + digest;
    return text;
}

Result<ImageReference> ImageReference::parse(const QString &input)
{
    const QString text = input.trimmed();
    auto invalid = [&](const QString &why) {
        return fail(ErrorCode::InvalidArgument, QStringLiteral("image reference '%1' is invalid: %2").arg(text, why));
    };
    if (text.isEmpty())
        return fail(ErrorCode::InvalidArgument, QStringLiteral("the image reference is empty"));
    if (text.contains(QRegularExpression(QStringLiteral("\\s"))))
        return invalid(QStringLiteral("it contains white space"));
    ImageReference ref;
    QString rest = text;
    const int at = rest.indexOf(QLatin1Char('@'));
    if (at >= 0) {
        ref.digest = rest.mid(at + 1);
        rest = rest.left(at);
        if (!isSha256Digest(ref.digest))
            return invalid(QStringLiteral("the digest is not sha256:<64 lower-case hex digits>"));
    }
    const int slash = rest.indexOf(QLatin1Char('/'));
    if (slash > 0) {
        const QString first = rest.left(slash);
        if (first.contains(QLatin1Char('.')) || first.contains(QLatin1Char(':')) || first == QLatin1String("localhost")) {
            ref.registry = first;
            rest = rest.mid(slash + 1);
        }
    }
    const int colon = rest.lastIndexOf(QLatin1Char(':'));
    if (colon >= 0 && colon > rest.lastIndexOf(QLatin1Char('/'))) {
        ref.tag = rest.mid(colon + 1);
        rest = rest.left(colon);
        static const QRegularExpression tagForm(QStringLiteral("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"));
        if (!tagForm.match(ref.tag).hasMatch())
            return invalid(QStringLiteral("the tag '%1' is not a valid tag").arg(ref.tag));
    }
    if (ref.registry.isEmpty() || ref.registry == QLatin1String("docker.io") || ref.registry == QLatin1String("index.docker.io")) {
        ref.registry = QStringLiteral("registry-1.docker.io");
        if (!rest.contains(QLatin1Char('/')))
            rest.prepend(QStringLiteral("library/"));
    }
    static const QRegularExpression nameForm(
        QStringLiteral("^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"));
    if (!nameForm.match(rest).hasMatch())
        return invalid(QStringLiteral("the repository '%1' is not a valid name (lower-case letters, digits, separators)").arg(rest));
    ref.repository = rest;
    if (ref.tag.isEmpty() && ref.digest.isEmpty())
        ref.tag = QStringLiteral("latest");
    return ref;
}

QString Platform::toString() const
{
    return variant.isEmpty() ? os + QLatin1Char('/') + architecture : os + QLatin1Char('/') + architecture + QLatin1Char('/') + variant;
}

Result<Platform> Platform::parse(const QString &text)
{
    const QStringList parts = text.trimmed().split(QLatin1Char('/'));
    if (parts.size() < 2 || parts.size() > 3 || parts.contains(QString()))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("platform '%1' is not os/architecture[/variant]").arg(text));
    return Platform{parts[0], parts[1], parts.value(2)};
}

Result<ManifestDocument> parseManifest(const QByteArray &body, const QByteArray &contentType)
{
    auto object = jsonObject(body, QStringLiteral("the manifest"));
    if (!object)
        return std::unexpected(object.error());
    const QJsonObject o = *object;
    const QJsonValue schemaVersion = o.value(QStringLiteral("schemaVersion"));
    if (schemaVersion.toInt(-1) != 2) {
        const QString seen = schemaVersion.isUndefined() ? QStringLiteral("missing")
            : schemaVersion.isDouble()                   ? QString::number(schemaVersion.toDouble())
                                                         : QStringLiteral("not a number");
        return fail(ErrorCode::Malformed, QStringLiteral("the manifest's schemaVersion is %1, not 2 (Docker schema 1 is not supported)").arg(seen));
    }
    ManifestDocument doc;
    const QJsonValue type = o.value(QStringLiteral("mediaType"));
    if (!type.isUndefined() && !type.isString())
        return fail(ErrorCode::Malformed, QStringLiteral("the manifest's mediaType is not a string"));
    doc.mediaType = type.toString();
    if (doc.mediaType.isEmpty())
        doc.mediaType = QString::fromLatin1(contentType.split(';').value(0).trimmed()).toLower();
    if (isIndexType(doc.mediaType) || (!isImageType(doc.mediaType) && o.contains(QStringLiteral("manifests")) && !o.contains(QStringLiteral("config")))) {
        doc.kind = ManifestDocument::Kind::Index;
        if (doc.mediaType.isEmpty() || !isIndexType(doc.mediaType))
            doc.mediaType = str(MediaType::OciIndex);
        const QJsonValue list = o.value(QStringLiteral("manifests"));
        if (!list.isArray())
            return fail(ErrorCode::Malformed, QStringLiteral("the index has no 'manifests' list"));
        const QJsonArray entries = list.toArray();
        for (int i = 0; i < entries.size(); ++i) {
            auto d = parseDescriptor(entries.at(i), QStringLiteral("manifests[%1]").arg(i));
            if (!d)
                return fail(ErrorCode::Malformed, QStringLiteral("the index is malformed: %1").arg(d.error().message));
            doc.manifests.append(*d);
        }
        return doc;
    }
    if (isImageType(doc.mediaType)
        || ((doc.mediaType.isEmpty() || doc.mediaType == QLatin1String("application/json")) && o.contains(QStringLiteral("config")))) {
        doc.kind = ManifestDocument::Kind::Image;
        if (!isImageType(doc.mediaType))
            doc.mediaType = str(MediaType::OciManifest);
        auto config = parseDescriptor(o.value(QStringLiteral("config")), QStringLiteral("config"));
        if (!config)
            return fail(ErrorCode::Malformed, QStringLiteral("the manifest is malformed: %1").arg(config.error().message));
        doc.config = *config;
        return doc;
    }
    return fail(ErrorCode::Malformed, QStringLiteral("the manifest's media type '%1' is not an OCI or Docker v2 manifest or index")
                                          .arg(doc.mediaType.isEmpty() ? QStringLiteral("(none)") : doc.mediaType));
}

Result<Descriptor> choosePlatform(const QList<Descriptor> &index, const Platform &platform)
{
    QStringList available;
    const Descriptor *chosen = nullptr;
    for (const Descriptor &d : index) {
        if (!d.mediaType.isEmpty() && !isImageType(d.mediaType) && !isIndexType(d.mediaType))
            continue;
        if (d.annotations.value(QStringLiteral("vnd.docker.reference.type")).toString() == QLatin1String("attestation-manifest"))
            continue;
        if (!d.platform.isEmpty())
            available.append(d.platform);
        const QStringList parts = d.platform.split(QLatin1Char('/'));
        if (parts.value(0) != platform.os || parts.value(1) != platform.architecture)
            continue;
        const QString variant = parts.value(2);
        if (!platform.variant.isEmpty()) {
            if (variant == platform.variant && !chosen)
                chosen = &d;
            continue;
        }
        if (!chosen || (!chosen->platform.section(QLatin1Char('/'), 2).isEmpty() && variant.isEmpty()))
            chosen = &d;
    }
    if (!chosen)
        return fail(ErrorCode::NotFound, QStringLiteral("the index has no image for platform %1 (it has: %2)")
                                             .arg(platform.toString(), available.isEmpty() ? QStringLiteral("none") : available.join(QStringLiteral(", "))));
    return *chosen;
}

Result<QJsonObject> parseConfigLabels(const QByteArray &body)
{
    auto object = jsonObject(body, QStringLiteral("the image config"));
    if (!object)
        return std::unexpected(object.error());
    const QJsonValue config = object->value(QStringLiteral("config"));
    if (config.isUndefined() || config.isNull())
        return QJsonObject();
    if (!config.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("the image config's 'config' is not an object"));
    const QJsonValue labels = config.toObject().value(QStringLiteral("Labels"));
    if (labels.isUndefined() || labels.isNull())
        return QJsonObject();
    if (!labels.isObject())
        return fail(ErrorCode::Malformed, QStringLiteral("the image config's config.Labels is not an object"));
    return labels.toObject();
}

ImageStore::~ImageStore() = default;

namespace {

// One walk from a reference to the labels; kept alive by the callbacks it hands out.
class LabelWalk : public std::enable_shared_from_this<LabelWalk>
{
public:
    LabelWalk(ImageStore &store, Platform platform, std::function<void(Result<ImageLabels>)> done)
        : m_store(store)
        , m_platform(std::move(platform))
        , m_done(std::move(done))
    {
    }

    void start(const QString &image, const QString &reference)
    {
        m_out.image = image;
        const QString expected = isSha256Digest(reference) ? reference : QString();
        fetchManifest(reference, expected, -1, true);
    }

private:
    void fetchManifest(const QString &reference, const QString &expectedDigest, qint64 expectedSize, bool indexAllowed)
    {
        auto self = shared_from_this();
        m_store.manifest(reference, [self, reference, expectedDigest, expectedSize, indexAllowed](Result<FetchedManifest> fetched) {
            self->onManifest(reference, expectedDigest, expectedSize, indexAllowed, std::move(fetched));
        });
    }

    void onManifest(const QString &reference, const QString &expectedDigest, qint64 expectedSize, bool indexAllowed,
                    Result<FetchedManifest> fetched)
    {
        if (!fetched)
            return m_done(std::unexpected(fetched.error()));
        const QString what = QStringLiteral("the manifest %1").arg(reference);
        if (!expectedDigest.isEmpty()) {
            if (auto ok = verifyDigest(fetched->body, expectedDigest, what); !ok)
                return m_done(std::unexpected(ok.error()));
        }
        if (expectedSize >= 0 && expectedSize != fetched->body.size())
            return m_done(fail(ErrorCode::Malformed, QStringLiteral("%1 is %2 bytes, its descriptor says %3").arg(what).arg(fetched->body.size()).arg(expectedSize)));
        auto doc = parseManifest(fetched->body, fetched->contentType);
        if (!doc)
            return m_done(fail(ErrorCode::Malformed, QStringLiteral("%1: %2").arg(what, doc.error().message)));
        const QString digest = sha256Digest(fetched->body);
        if (doc->kind == ManifestDocument::Kind::Index) {
            if (!indexAllowed)
                return m_done(fail(ErrorCode::Malformed, QStringLiteral("%1 is an index inside an index; expected an image manifest").arg(what)));
            auto entry = choosePlatform(doc->manifests, m_platform);
            if (!entry)
                return m_done(std::unexpected(entry.error()));
            m_out.platform = entry->platform;
            m_out.steps.append(QStringLiteral("index %1 (%2, %3 entries): chose %4 %5")
                                   .arg(reference, doc->mediaType).arg(doc->manifests.size()).arg(entry->platform, entry->digest));
            return fetchManifest(entry->digest, entry->digest, entry->size, false);
        }
        m_out.manifestDigest = digest;
        m_out.mediaType = doc->mediaType;
        m_out.steps.append(QStringLiteral("manifest %1 (%2, %3)").arg(reference, doc->mediaType, digest));
        const Descriptor config = doc->config;
        if (!config.mediaType.isEmpty() && !isConfigType(config.mediaType))
            return m_done(fail(ErrorCode::Malformed, QStringLiteral("%1 is not a container image: its config media type is '%2'").arg(what, config.mediaType)));
        auto self = shared_from_this();
        m_store.blob(config.digest, [self, config](Result<QByteArray> bytes) { self->onConfig(config, std::move(bytes)); });
    }

    void onConfig(const Descriptor &config, Result<QByteArray> bytes)
    {
        if (!bytes)
            return m_done(std::unexpected(bytes.error()));
        const QString what = QStringLiteral("the config blob %1").arg(config.digest);
        if (auto ok = verifyDigest(*bytes, config.digest, what); !ok)
            return m_done(std::unexpected(ok.error()));
        if (config.size >= 0 && config.size != bytes->size())
            return m_done(fail(ErrorCode::Malformed, QStringLiteral("%1 is %2 bytes, the manifest says %3").arg(what).arg(bytes->size()).arg(config.size)));
        auto labels = parseConfigLabels(*bytes);
        if (!labels)
            return m_done(fail(ErrorCode::Malformed, QStringLiteral("%1: %2").arg(what, labels.error().message)));
        m_out.configDigest = config.digest;
        m_out.labels = *labels;
        m_out.steps.append(QStringLiteral("config %1 (%2 labels)").arg(config.digest).arg(labels->size()));
        m_done(m_out);
    }

    ImageStore &m_store;
    Platform m_platform;
    std::function<void(Result<ImageLabels>)> m_done;
    ImageLabels m_out;
};

} // namespace

void readImageLabels(ImageStore &store, const QString &image, const QString &reference, const Platform &platform,
                     std::function<void(Result<ImageLabels>)> done)
{
    std::make_shared<LabelWalk>(store, platform, std::move(done))->start(image, reference);
}

Result<ImageLabels> parseSkopeoInspect(const QByteArray &body, const QString &file, const Platform &platform)
{
    auto object = jsonObject(body, QStringLiteral("skopeo output %1").arg(file));
    if (!object)
        return std::unexpected(object.error());
    const QJsonObject o = *object;
    ImageLabels out;
    out.image = file;
    QString os;
    QString arch;
    QString variant;
    if (o.contains(QStringLiteral("config")) || o.contains(QStringLiteral("rootfs"))) {
        // `skopeo inspect --config`: the image config itself.
        auto labels = parseConfigLabels(body);
        if (!labels)
            return fail(ErrorCode::Malformed, QStringLiteral("skopeo output %1: %2").arg(file, labels.error().message));
        out.labels = *labels;
        out.configDigest = sha256Digest(body);
        os = o.value(QStringLiteral("os")).toString();
        arch = o.value(QStringLiteral("architecture")).toString();
        variant = o.value(QStringLiteral("variant")).toString();
        out.steps.append(QStringLiteral("skopeo inspect --config output %1").arg(file));
    } else if (o.contains(QStringLiteral("Labels")) || o.contains(QStringLiteral("Digest"))) {
        // `skopeo inspect`: the summary.
        const QJsonValue labels = o.value(QStringLiteral("Labels"));
        if (labels.isObject())
            out.labels = labels.toObject();
        else if (!labels.isUndefined() && !labels.isNull())
            return fail(ErrorCode::Malformed, QStringLiteral("skopeo output %1: 'Labels' is not an object").arg(file));
        out.manifestDigest = o.value(QStringLiteral("Digest")).toString();
        out.image = o.value(QStringLiteral("Name")).toString(file);
        os = o.value(QStringLiteral("Os")).toString();
        arch = o.value(QStringLiteral("Architecture")).toString();
        variant = o.value(QStringLiteral("Variant")).toString();
        out.steps.append(QStringLiteral("skopeo inspect output %1").arg(file));
    } else {
        return fail(ErrorCode::Malformed, QStringLiteral("skopeo output %1 is neither `skopeo inspect` nor `skopeo inspect --config` output").arg(file));
    }
    if ((!os.isEmpty() && os != platform.os) || (!arch.isEmpty() && arch != platform.architecture)
        || (!platform.variant.isEmpty() && !variant.isEmpty() && variant != platform.variant)) {
        const QString seen = variant.isEmpty() ? os + QLatin1Char('/') + arch : os + QLatin1Char('/') + arch + QLatin1Char('/') + variant;
        return fail(ErrorCode::NotFound, QStringLiteral("skopeo output %1 describes the image for %2, not %3").arg(file, seen, platform.toString()));
    }
    if (!os.isEmpty())
        out.platform = variant.isEmpty() ? os + QLatin1Char('/') + arch : os + QLatin1Char('/') + arch + QLatin1Char('/') + variant;
    return out;
}

QString normaliseSourceUrl(const QString &url)
{
    QString s = url.trimmed();
    if (s.startsWith(QLatin1String("git+")))
        s = s.mid(4);
    if (!s.contains(QLatin1String("://"))) {
        static const QRegularExpression scp(QStringLiteral("^(?:[^@/:]+@)?([^/:]+):(.+)$"));
        const auto m = scp.match(s);
        if (m.hasMatch())
            s = QStringLiteral("ssh://") + m.captured(1) + QLatin1Char('/') + m.captured(2);
    }
    auto trimPath = [](QString path) {
        while (path.endsWith(QLatin1Char('/')))
            path.chop(1);
        if (path.endsWith(QLatin1String(".git")))
            path.chop(4);
        while (path.endsWith(QLatin1Char('/')))
            path.chop(1);
        return path;
    };
    const QUrl u(s, QUrl::StrictMode);
    if (!u.isValid() || u.scheme().isEmpty() || u.host().isEmpty())
        return trimPath(s);
    const QString scheme = u.scheme().toLower();
    int port = u.port();
    if ((scheme == QLatin1String("https") && port == 443) || (scheme == QLatin1String("http") && port == 80)
        || (scheme == QLatin1String("ssh") && port == 22))
        port = -1;
    QString out = scheme + QLatin1String("://") + u.host().toLower();
    if (port != -1)
        out += QLatin1Char(':') + QString::number(port);
    QString path = trimPath(u.path(QUrl::FullyDecoded));
    if (!path.isEmpty() && !path.startsWith(QLatin1Char('/')))
        path.prepend(QLatin1Char('/'));
    return out + path;
}

GateVerdict judgeLabels(const ImageLabels &read, const Expectation &expected, QJsonObject evidence)
{
    const QString revisionKey = str(RevisionLabel);
    const QString sourceKey = str(SourceLabel);
    const QJsonValue revision = read.labels.value(revisionKey);
    const QJsonValue source = read.labels.value(sourceKey);
    const QString expectedSource = normaliseSourceUrl(expected.source);

    evidence.insert(QStringLiteral("image"), read.image);
    if (!read.manifestDigest.isEmpty())
        evidence.insert(QStringLiteral("manifestDigest"), read.manifestDigest);
    if (!read.configDigest.isEmpty())
        evidence.insert(QStringLiteral("configDigest"), read.configDigest);
    if (!read.platform.isEmpty())
        evidence.insert(QStringLiteral("platform"), read.platform);
    if (!read.mediaType.isEmpty())
        evidence.insert(QStringLiteral("mediaType"), read.mediaType);
    evidence.insert(QStringLiteral("steps"), QJsonArray::fromStringList(read.steps));
    evidence.insert(QStringLiteral("expected"), QJsonObject{{QStringLiteral("revision"), expected.revision},
                                                            {QStringLiteral("source"), expected.source},
                                                            {QStringLiteral("sourceNormalised"), expectedSource}});
    QJsonObject seen{{QStringLiteral("revision"), revision.isUndefined() ? QJsonValue() : revision},
                     {QStringLiteral("source"), source.isUndefined() ? QJsonValue() : source}};
    if (source.isString())
        seen.insert(QStringLiteral("sourceNormalised"), normaliseSourceUrl(source.toString()));
    evidence.insert(QStringLiteral("seen"), seen);

    QList<Finding> findings;
    auto finding = [&](const QString &rule, const QString &message) {
        findings.append(Finding{rule, message, QString(), 0, QStringLiteral("blocking")});
    };
    if (revision.isUndefined() || revision.isNull())
        finding(revisionKey, QStringLiteral("label %1 is missing (expected %2)").arg(revisionKey, expected.revision));
    else if (!revision.isString())
        finding(revisionKey, QStringLiteral("label %1 is not a string (expected %2)").arg(revisionKey, expected.revision));
    else if (revision.toString().trimmed().compare(expected.revision, Qt::CaseInsensitive) != 0)
        finding(revisionKey, QStringLiteral("label %1 is '%2', expected '%3'").arg(revisionKey, revision.toString(), expected.revision));

    if (source.isUndefined() || source.isNull())
        finding(sourceKey, QStringLiteral("label %1 is missing (expected %2)").arg(sourceKey, expected.source));
    else if (!source.isString())
        finding(sourceKey, QStringLiteral("label %1 is not a string (expected %2)").arg(sourceKey, expected.source));
    else if (normaliseSourceUrl(source.toString()) != expectedSource)
        finding(sourceKey, QStringLiteral("label %1 is '%2', expected '%3' (a label inherited from a base image stays unless the build sets it)")
                               .arg(sourceKey, source.toString(), expected.source));

    const QString digest = read.manifestDigest.isEmpty() ? QString() : QStringLiteral(" (%1)").arg(shortDigest(read.manifestDigest));
    if (findings.isEmpty())
        return GateVerdict::pass(QStringLiteral("image %1%2 carries revision %3 and source %4")
                                     .arg(read.image, digest, expected.revision, source.toString()),
                                 evidence);
    QStringList messages;
    for (const Finding &f : std::as_const(findings))
        messages.append(f.message);
    return GateVerdict::fail(QStringLiteral("image %1%2 is not the build of this change: %3").arg(read.image, digest, messages.join(QStringLiteral("; "))),
                             findings, evidence);
}

} // namespace Sluice::ImageFreshness
