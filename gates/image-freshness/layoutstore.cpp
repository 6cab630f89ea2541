// SPDX-License-Identifier: Apache-2.0
#include "layoutstore.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace Sluice::ImageFreshness {

namespace {

// Manifests, indexes and configs are small; a bigger file is not what it claims to be.
constexpr qint64 MaxDocumentBytes = 8 * 1024 * 1024;

const QString RefNameAnnotation = QStringLiteral("org.opencontainers.image.ref.name");

} // namespace

LayoutStore::LayoutStore(QString directory)
    : m_directory(std::move(directory))
{
}

Result<QByteArray> LayoutStore::readFile(const QString &relative, const QString &what) const
{
    QFile file(QDir(m_directory).filePath(relative));
    if (!file.exists())
        return fail(ErrorCode::NotFound, QStringLiteral("%1 does not exist in the OCI layout %2").arg(what, m_directory));
    if (file.size() > MaxDocumentBytes)
        return fail(ErrorCode::Malformed, QStringLiteral("%1 in the OCI layout %2 is larger than %3 bytes").arg(what, m_directory).arg(MaxDocumentBytes));
    if (!file.open(QIODevice::ReadOnly))
        return fail(ErrorCode::Io, QStringLiteral("cannot read %1 in the OCI layout %2: %3").arg(what, m_directory, file.errorString()));
    return file.readAll();
}

Result<QByteArray> LayoutStore::readBlob(const QString &digest) const
{
    // Checked before it becomes a path: nothing but blobs/sha256/<hex> is ever opened.
    if (!isSha256Digest(digest))
        return fail(ErrorCode::Malformed, QStringLiteral("blob digest '%1' is not a sha256 digest").arg(digest));
    auto bytes = readFile(QStringLiteral("blobs/sha256/") + digest.mid(7), QStringLiteral("blob %1").arg(digest));
    if (!bytes)
        return bytes;
    if (auto ok = verifyDigest(*bytes, digest, QStringLiteral("blob %1").arg(digest)); !ok)
        return std::unexpected(ok.error());
    return bytes;
}

Result<FetchedManifest> LayoutStore::resolveName(const QString &name) const
{
    auto marker = readFile(QStringLiteral("oci-layout"), QStringLiteral("oci-layout"));
    if (!marker)
        return fail(marker.error().code, QStringLiteral("%1 is not an OCI image layout: %2").arg(m_directory, marker.error().message));
    if (QJsonDocument::fromJson(*marker).object().value(QStringLiteral("imageLayoutVersion")).toString().isEmpty())
        return fail(ErrorCode::Malformed, QStringLiteral("%1/oci-layout has no imageLayoutVersion").arg(m_directory));
    auto indexBytes = readFile(QStringLiteral("index.json"), QStringLiteral("index.json"));
    if (!indexBytes)
        return std::unexpected(indexBytes.error());
    auto index = parseManifest(*indexBytes, MediaType::OciIndex);
    if (!index || index->kind != ManifestDocument::Kind::Index)
        return fail(ErrorCode::Malformed, QStringLiteral("%1/index.json is not an image index%2")
                                              .arg(m_directory, index ? QString() : QStringLiteral(": ") + index.error().message));
    const QJsonArray entries = QJsonDocument::fromJson(*indexBytes).object().value(QStringLiteral("manifests")).toArray();
    QJsonArray matching;
    QList<Descriptor> chosen;
    QStringList names;
    for (int i = 0; i < index->manifests.size(); ++i) {
        const Descriptor &d = index->manifests.at(i);
        const QString refName = d.annotations.value(RefNameAnnotation).toString();
        if (!refName.isEmpty())
            names.append(refName);
        if (name.isEmpty() || refName == name) {
            matching.append(entries.at(i));
            chosen.append(d);
        }
    }
    if (chosen.isEmpty())
        return fail(ErrorCode::NotFound, QStringLiteral("%1/index.json has no manifest named '%2' (names: %3)")
                                             .arg(m_directory, name, names.isEmpty() ? QStringLiteral("none") : names.join(QStringLiteral(", "))));
    if (chosen.size() == 1) {
        auto bytes = readBlob(chosen.first().digest);
        if (!bytes)
            return std::unexpected(bytes.error());
        if (chosen.first().size >= 0 && chosen.first().size != bytes->size())
            return fail(ErrorCode::Malformed, QStringLiteral("blob %1 is %2 bytes, index.json says %3").arg(chosen.first().digest).arg(bytes->size()).arg(chosen.first().size));
        return FetchedManifest{*bytes, chosen.first().mediaType.toLatin1()};
    }
    if (name.isEmpty())
        return fail(ErrorCode::NotFound, QStringLiteral("%1/index.json has %2 manifests; name one with 'image' (names: %3)")
                                             .arg(m_directory).arg(chosen.size()).arg(names.isEmpty() ? QStringLiteral("none") : names.join(QStringLiteral(", "))));
    // One entry per platform under one name: answered as an index, so a platform is chosen.
    const QJsonObject synthetic{{QStringLiteral("schemaVersion"), 2},
                                {QStringLiteral("mediaType"), QString::fromLatin1(MediaType::OciIndex)},
                                {QStringLiteral("manifests"), matching}};
    return FetchedManifest{QJsonDocument(synthetic).toJson(QJsonDocument::Compact), MediaType::OciIndex};
}

void LayoutStore::manifest(const QString &reference, std::function<void(Result<FetchedManifest>)> done)
{
    if (isSha256Digest(reference)) {
        auto bytes = readBlob(reference);
        if (!bytes)
            return done(std::unexpected(bytes.error()));
        return done(FetchedManifest{*bytes, QByteArray()});
    }
    done(resolveName(reference));
}

void LayoutStore::blob(const QString &digest, std::function<void(Result<QByteArray>)> done)
{
    done(readBlob(digest));
}

} // namespace Sluice::ImageFreshness
