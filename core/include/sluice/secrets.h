// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file secrets.h
 * Secret references and the process-wide redaction of secret values.
 *
 * Secrets reach Sluice only as references: a file path or a systemd credential name.
 * Every value read through SecretRef::read() is registered for redaction, and the host's
 * log handler replaces registered values in every message it writes.
 *
 * Text that comes from outside — what agents and commands print or write, a gate's reason
 * — may hold secrets nobody registered (a token an agent found). Redaction::mask() handles
 * both: registered values become "[REDACTED]", and a FreeTextMasker installed by the host
 * (the `sluice` executable installs the security gate's secret scanner) replaces what it
 * recognises by "[REDACTED:<rule id>]". Use mask() for every text a plugin sends out
 * (comments, messages, statuses); the host masks what it stores, prints and serves.
 */

#include <sluice/error.h>

#include <QByteArray>
#include <QJsonArray>
#include <QJsonObject>
#include <QJsonValue>
#include <QString>
#include <QVariantMap>

#include <memory>

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

/**
 * Finds secrets in free text by their shape, without knowing their values: the masking of
 * tokens nobody registered. The host library holds at most one (see
 * Redaction::installFreeTextMasker()); the `sluice` executable installs one backed by the
 * security gate's secret scanner. Implementations are thread-safe and never log (they run
 * inside the log handler).
 *
 * @since SDK API 1.2
 */
class SLUICE_EXPORT FreeTextMasker
{
public:
    virtual ~FreeTextMasker();
    /// @p text with each secret found replaced by "[REDACTED:<rule id>]". May wait until the
    /// masker is ready (see isReady()).
    [[nodiscard]] virtual QString mask(const QString &text) const = 0;
    /// Whether mask() would answer at once. A masker that prepares itself in the background
    /// (compiles rules) says false until it is done; the log handler keeps lines until then.
    [[nodiscard]] virtual bool isReady() const { return true; }
};

namespace Redaction {

/// Registers @p secret so that redact() replaces it. Values shorter than 4 bytes are ignored.
SLUICE_EXPORT void registerSecret(const QByteArray &secret);
/// Returns @p text with every registered secret replaced by "[REDACTED]".
[[nodiscard]] SLUICE_EXPORT QString redact(const QString &text);
/// redact() of every string in @p value, object keys included. Since SDK API 1.2.
[[nodiscard]] SLUICE_EXPORT QJsonValue redactJson(const QJsonValue &value);
/// redactJson() of an object.
[[nodiscard]] SLUICE_EXPORT QJsonObject redactJson(const QJsonObject &object);

/**
 * THE call for text that leaves Sluice or is stored: redact(), then the installed
 * FreeTextMasker (if any). Without a masker it is redact(). Since SDK API 1.2.
 */
[[nodiscard]] SLUICE_EXPORT QString mask(const QString &text);
/// mask() of every string in @p value, object keys included.
[[nodiscard]] SLUICE_EXPORT QJsonValue maskJson(const QJsonValue &value);
/// maskJson() of an object.
[[nodiscard]] SLUICE_EXPORT QJsonObject maskJson(const QJsonObject &object);
/// maskJson() of an array.
[[nodiscard]] SLUICE_EXPORT QJsonArray maskJson(const QJsonArray &array);

/// Installs the process's free-text masker (null removes it). The host calls this once at start.
SLUICE_EXPORT void installFreeTextMasker(std::shared_ptr<const FreeTextMasker> masker);
/// The installed free-text masker; null when there is none.
[[nodiscard]] SLUICE_EXPORT std::shared_ptr<const FreeTextMasker> freeTextMasker();

/// Forgets all registered secrets (tests only).
SLUICE_EXPORT void clearForTests();

} // namespace Redaction

} // namespace Sluice
