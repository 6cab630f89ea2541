// SPDX-License-Identifier: Apache-2.0
#pragma once

// An OCI image layout directory (oci-layout, index.json, blobs/sha256/...) as an ImageStore.
// Synchronous file reads: the gate runs it on the thread pool.

#include "ociimage.h"

namespace Sluice::ImageFreshness {

class LayoutStore final : public ImageStore
{
public:
    explicit LayoutStore(QString directory);

    /**
     * A digest reads that blob. A name is looked up in index.json by the annotation
     * org.opencontainers.image.ref.name; an empty name takes index.json's only entry. Several
     * entries of one name (one per platform) are answered as an index of those entries.
     */
    void manifest(const QString &reference, std::function<void(Result<FetchedManifest>)> done) override;
    void blob(const QString &digest, std::function<void(Result<QByteArray>)> done) override;

private:
    [[nodiscard]] Result<QByteArray> readFile(const QString &relative, const QString &what) const;
    [[nodiscard]] Result<QByteArray> readBlob(const QString &digest) const;
    [[nodiscard]] Result<FetchedManifest> resolveName(const QString &name) const;

    QString m_directory;
};

} // namespace Sluice::ImageFreshness
