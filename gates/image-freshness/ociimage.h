// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the image-freshness gate knows about OCI images, without any I/O of its own: image
// references, media types, manifests, indexes and configs, choosing a platform, digests,
// and the walk from a reference to the image's labels over an ImageStore (a registry, an
// OCI image layout directory). Also the provenance judgement itself. See
// docs/gates/image-freshness.md.

#include <sluice/error.h>
#include <sluice/verdict.h>

#include <QByteArray>
#include <QJsonObject>
#include <QList>
#include <QString>
#include <QStringList>

#include <functional>
#include <memory>

namespace Sluice::ImageFreshness {

namespace MediaType {
inline constexpr char OciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char OciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char DockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char DockerList[] = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char OciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char DockerConfig[] = "application/vnd.docker.container.image.v1+json";
} // namespace MediaType

inline constexpr char RevisionLabel[] = "org.opencontainers.image.revision";
inline constexpr char SourceLabel[] = "org.opencontainers.image.source";

/// The Accept header value for a manifest request: the four manifest media types.
[[nodiscard]] QByteArray manifestAccept();

/// "sha256:<64 lower-case hex>" of @p bytes.
[[nodiscard]] QString sha256Digest(const QByteArray &bytes);
/// True for "sha256:<64 hex>" (the only algorithm this gate verifies).
[[nodiscard]] bool isSha256Digest(const QString &digest);
/// Checks that @p bytes hash to @p digest; the error names @p what and both digests.
[[nodiscard]] Result<void> verifyDigest(const QByteArray &bytes, const QString &digest, const QString &what);

/// A parsed image reference: [registry/]repository[:tag][@digest].
struct ImageReference {
    QString registry;   ///< "registry.example:5000"; Docker Hub is "registry-1.docker.io".
    QString repository; ///< "acme/widget"; Docker Hub's one-part names get "library/".
    QString tag;        ///< Empty when only a digest is given.
    QString digest;     ///< "sha256:..."; empty when not given.

    /// What to ask the registry for: the digest if given, else the tag.
    [[nodiscard]] QString manifestReference() const { return digest.isEmpty() ? tag : digest; }
    /// "registry/repository:tag@digest", as people write it.
    [[nodiscard]] QString toString() const;

    /**
     * Parses @p text: a first component with '.', ':' or "localhost" names the registry,
     * else Docker Hub; tag "latest" when neither tag nor digest is given. A malformed
     * reference is InvalidArgument.
     */
    [[nodiscard]] static Result<ImageReference> parse(const QString &text);
};

/// An OS/architecture[/variant] platform, as in "linux/amd64" or "linux/arm64/v8".
struct Platform {
    QString os;
    QString architecture;
    QString variant; ///< Empty: any variant (one without a variant preferred).

    [[nodiscard]] QString toString() const;
    [[nodiscard]] static Result<Platform> parse(const QString &text);
};

/// A content descriptor from an index or a manifest.
struct Descriptor {
    QString mediaType;
    QString digest;
    qint64 size = -1; ///< -1 when absent.
    QString platform; ///< "os/arch[/variant]" from the descriptor's platform, empty when none.
    QJsonObject annotations;
};

/// A parsed manifest document: an index (manifests) or an image manifest (config).
struct ManifestDocument {
    enum class Kind { Index, Image };
    Kind kind = Kind::Image;
    QString mediaType;              ///< From the body, else the Content-Type it came with.
    QList<Descriptor> manifests;    ///< Index only.
    Descriptor config;              ///< Image only.
};

/**
 * Parses a manifest or index body. The kind is the body's mediaType, else @p contentType,
 * else the shape (OCI allows an absent mediaType). Schema version 2 only; an unknown media
 * type, a missing field or a wrong type is Malformed naming the field.
 */
[[nodiscard]] Result<ManifestDocument> parseManifest(const QByteArray &body, const QByteArray &contentType);

/**
 * The entry of @p index for @p platform: os and architecture equal, the variant equal when
 * one is asked for (else one without a variant first, then the first). Entries that are
 * not manifests or indexes (attestations, artefacts) are never chosen. NotFound lists the
 * platforms the index has.
 */
[[nodiscard]] Result<Descriptor> choosePlatform(const QList<Descriptor> &index, const Platform &platform);

/// Labels of an image config body (config.Labels; null or absent is none). Malformed otherwise.
[[nodiscard]] Result<QJsonObject> parseConfigLabels(const QByteArray &body);

/// What was read: the labels and how they were found.
struct ImageLabels {
    QString image;          ///< The image as read ("127.0.0.1:5000/acme/widget:v1", a layout path).
    QString manifestDigest; ///< Digest of the image manifest whose config was read.
    QString configDigest;   ///< Digest of the config blob.
    QString platform;       ///< Platform chosen from an index; empty when there was none.
    QString mediaType;      ///< Media type of the image manifest.
    QJsonObject labels;     ///< config.Labels.
    QStringList steps;      ///< What was read, in order, for the evidence.
};

/// A fetched manifest body with its Content-Type.
struct FetchedManifest {
    QByteArray body;
    QByteArray contentType;
};

/**
 * Where manifests and blobs come from. Calls may complete at once (a directory) or later
 * (a registry); @p done is called exactly once unless the store is destroyed first.
 */
class ImageStore
{
public:
    virtual ~ImageStore();
    /// The manifest or index for @p reference (a tag, a name, or a digest).
    virtual void manifest(const QString &reference, std::function<void(Result<FetchedManifest>)> done) = 0;
    /// The blob @p digest's bytes (not yet verified).
    virtual void blob(const QString &digest, std::function<void(Result<QByteArray>)> done) = 0;
};

/**
 * Walks from @p reference to the labels: the manifest (verified against @p reference when
 * that is a digest); for an index the entry for @p platform, then its manifest (verified);
 * then the config blob (digest and size verified) and its labels. @p image names what is
 * read in messages. @p done gets the labels, or the first Error.
 */
void readImageLabels(ImageStore &store, const QString &image, const QString &reference, const Platform &platform,
                     std::function<void(Result<ImageLabels>)> done);

/**
 * Labels from saved `skopeo inspect` output: the image config shape (`skopeo inspect
 * --config`: config.Labels) or the summary shape (`skopeo inspect`: Labels). In the
 * summary shape an Os/Architecture that differs from @p platform is an error.
 */
[[nodiscard]] Result<ImageLabels> parseSkopeoInspect(const QByteArray &body, const QString &file, const Platform &platform);

/**
 * A repository URL in the form compared: surrounding space, a "git+" prefix, user
 * information, default ports, trailing slashes and one trailing ".git" dropped; scheme and
 * host lower-cased; "user@host:path" read as ssh://host/path. The path's case is kept.
 */
[[nodiscard]] QString normaliseSourceUrl(const QString &url);

/// What the image must carry.
struct Expectation {
    QString revision; ///< The commit, full hex; compared case-insensitively.
    QString source;   ///< The repository URL; compared after normaliseSourceUrl().
};

/**
 * The gate's judgement of what was read: pass when both labels equal what is expected, fail
 * with one finding per missing or different label (the values seen in reason, findings and
 * evidence). @p evidence is extended, not replaced.
 */
[[nodiscard]] GateVerdict judgeLabels(const ImageLabels &read, const Expectation &expected, QJsonObject evidence);

} // namespace Sluice::ImageFreshness
