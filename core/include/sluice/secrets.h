// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file secrets.h
 * Secret references and the process-wide redaction of secret values.
 *
 * Secrets reach Sluice only as references: a file path or a systemd credential name.
 * Every value read through SecretRef::read() is registered for redaction, and the host's
 * log handler replaces registered values in every message it writes.
 */

#include <sluice/error.h>

#include <QByteArray>
#include <QString>
#include <QVariantMap>

namespace Sluice {

/// Where a secret lives. Inline values do not exist by design.
class SLUICE_EXPORT SecretRef
{
public:
    enum class Source { None, File, Credential };

    SecretRef() = default;
    [[nodiscard]] static SecretRef file(const QString &path);
    [[nodiscard]] static SecretRef credential(const QString &name);
    /// Reads the validated settings form: a map with exactly one of "file" or "credential".
    [[nodiscard]] static SecretRef fromVariant(const QVariant &value);

    [[nodiscard]] Source source() const { return m_source; }
    [[nodiscard]] QString location() const { return m_location; }
    [[nodiscard]] bool isNull() const { return m_source == Source::None; }
    /// "file /etc/sluice/gitea.token" or "credential gitea-token": safe to log.
    [[nodiscard]] QString describe() const;

    /**
     * Reads the secret: the file's content, or $CREDENTIALS_DIRECTORY/NAME for a credential,
     * without one trailing newline. The value is registered for redaction before it is
     * returned. Errors name the reference, never the content.
     */
    [[nodiscard]] Result<QByteArray> read() const;

private:
    Source m_source = Source::None;
    QString m_location;
};

namespace Redaction {

/// Registers @p secret so that redact() replaces it. Values shorter than 4 bytes are ignored.
SLUICE_EXPORT void registerSecret(const QByteArray &secret);
/// Returns @p text with every registered secret replaced by "[REDACTED]".
[[nodiscard]] SLUICE_EXPORT QString redact(const QString &text);
/// Forgets all registered secrets (tests only).
SLUICE_EXPORT void clearForTests();

} // namespace Redaction

} // namespace Sluice
