// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the verdict gate's reading of a stage artifact (gates/verdict): the YAML front
// matter between '---' lines and the values under the decisive key. The agent being judged
// writes that file. The gate's reading functions are internal to its source file, which is
// compiled into this target.
#include "verdictgate.cpp" // NOLINT: the functions under test have internal linkage

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    using namespace Sluice::Gates;
    const QByteArray content(reinterpret_cast<const char *>(data), qsizetype(size));
    auto frontMatter = extractFrontMatter(content, QStringLiteral("review.md"));
    if (!frontMatter)
        return 0;
    for (const char *key : {"verdict", "result"}) {
        ArtifactReading reading;
        reading.file = QStringLiteral("review.md");
        collectValues(*frontMatter, QLatin1String(key), reading);
    }
    return 0;
}
