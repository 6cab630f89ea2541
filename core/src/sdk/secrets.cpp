// SPDX-License-Identifier: Apache-2.0
#include <sluice/secrets.h>

#include <QFile>
#include <QFileInfo>
#include <QMutex>
#include <QReadWriteLock>
#include <QSet>

namespace Sluice {

SecretRef SecretRef::file(const QString &path)
{
    SecretRef r;
    r.m_source = Source::File;
    r.m_location = path;
    return r;
}

SecretRef SecretRef::credential(const QString &name)
{
    SecretRef r;
    r.m_source = Source::Credential;
    r.m_location = name;
    return r;
}

SecretRef SecretRef::fromVariant(const QVariant &value)
{
    const QVariantMap map = value.toMap();
    if (map.contains(QStringLiteral("file")))
        return file(map.value(QStringLiteral("file")).toString());
    if (map.contains(QStringLiteral("credential")))
        return credential(map.value(QStringLiteral("credential")).toString());
    return {};
}

QString SecretRef::describe() const
{
    switch (m_source) {
    case Source::None: return QStringLiteral("no secret");
    case Source::File: return QStringLiteral("file %1").arg(m_location);
    case Source::Credential: return QStringLiteral("credential %1").arg(m_location);
    }
    return {};
}

Result<QByteArray> SecretRef::read() const
{
    QString path;
    switch (m_source) {
    case Source::None:
        return fail(ErrorCode::NotFound, QStringLiteral("no secret configured"));
    case Source::File:
        path = m_location;
        break;
    case Source::Credential: {
        const QByteArray dir = qgetenv("CREDENTIALS_DIRECTORY");
        if (dir.isEmpty())
            return fail(ErrorCode::NotFound,
                        QStringLiteral("secret %1: CREDENTIALS_DIRECTORY is not set (not started by systemd with LoadCredential=?)")
                            .arg(describe()));
        if (m_location.contains(QLatin1Char('/')) || m_location.startsWith(QLatin1Char('.')))
            return fail(ErrorCode::InvalidConfig,
                        QStringLiteral("secret %1: a credential name is a plain file name").arg(describe()));
        path = QString::fromLocal8Bit(dir) + QLatin1Char('/') + m_location;
        break;
    }
    }
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return fail(ErrorCode::Io, QStringLiteral("cannot read secret %1").arg(describe()), f.errorString());
    constexpr qint64 maxSecretSize = 64 * 1024;
    QByteArray value = f.read(maxSecretSize + 1);
    if (value.size() > maxSecretSize)
        return fail(ErrorCode::InvalidConfig, QStringLiteral("secret %1 is larger than 64 KiB").arg(describe()));
    if (value.endsWith("\r\n"))
        value.chop(2);
    else if (value.endsWith('\n'))
        value.chop(1);
    if (value.isEmpty())
        return fail(ErrorCode::InvalidConfig, QStringLiteral("secret %1 is empty").arg(describe()));
    Redaction::registerSecret(value);
    return value;
}

FreeTextMasker::~FreeTextMasker() = default;

namespace Redaction {

namespace {
struct Registry {
    QMutex mutex;
    QList<QString> secrets; // longest first, so a secret containing another is replaced whole
};
Registry &registry()
{
    static Registry r;
    return r;
}
} // namespace

void registerSecret(const QByteArray &secret)
{
    if (secret.size() < 4)
        return;
    Registry &r = registry();
    QMutexLocker lock(&r.mutex);
    const QString text = QString::fromUtf8(secret);
    if (r.secrets.contains(text))
        return;
    r.secrets.append(text);
    std::sort(r.secrets.begin(), r.secrets.end(),
              [](const QString &a, const QString &b) { return a.size() > b.size(); });
}

QString redact(const QString &text)
{
    Registry &r = registry();
    QMutexLocker lock(&r.mutex);
    if (r.secrets.isEmpty())
        return text;
    QString out = text;
    for (const QString &s : std::as_const(r.secrets))
        out.replace(s, QStringLiteral("[REDACTED]"));
    return out;
}

namespace {
struct MaskerSlot {
    QReadWriteLock lock;
    std::shared_ptr<const FreeTextMasker> masker;
};
MaskerSlot &maskerSlot()
{
    static MaskerSlot slot;
    return slot;
}

template<typename Text>
QJsonValue eachString(const QJsonValue &value, const Text &text)
{
    switch (value.type()) {
    case QJsonValue::String:
        return text(value.toString());
    case QJsonValue::Array: {
        QJsonArray out;
        for (const QJsonValue &item : value.toArray())
            out.append(eachString(item, text));
        return out;
    }
    case QJsonValue::Object: {
        const QJsonObject object = value.toObject();
        QJsonObject out;
        // Keys too: a plugin's evidence may key by what it found (a file name, a value).
        for (auto it = object.begin(); it != object.end(); ++it)
            out.insert(text(it.key()), eachString(it.value(), text));
        return out;
    }
    default:
        return value;
    }
}
} // namespace

QJsonValue redactJson(const QJsonValue &value)
{
    return eachString(value, [](const QString &s) { return redact(s); });
}

QJsonObject redactJson(const QJsonObject &object)
{
    return redactJson(QJsonValue(object)).toObject();
}

void installFreeTextMasker(std::shared_ptr<const FreeTextMasker> masker)
{
    MaskerSlot &slot = maskerSlot();
    QWriteLocker lock(&slot.lock);
    slot.masker = std::move(masker);
}

std::shared_ptr<const FreeTextMasker> freeTextMasker()
{
    MaskerSlot &slot = maskerSlot();
    QReadLocker lock(&slot.lock);
    return slot.masker;
}

QString mask(const QString &text)
{
    QString out = redact(text);
    if (out.isEmpty())
        return out;
    if (const auto masker = freeTextMasker())
        out = masker->mask(out);
    return out;
}

QJsonValue maskJson(const QJsonValue &value)
{
    // One look-up of the masker for the whole value.
    const auto masker = freeTextMasker();
    return eachString(value, [&masker](const QString &s) {
        const QString redacted = redact(s);
        return masker && !redacted.isEmpty() ? masker->mask(redacted) : redacted;
    });
}

QJsonObject maskJson(const QJsonObject &object)
{
    return maskJson(QJsonValue(object)).toObject();
}

QJsonArray maskJson(const QJsonArray &array)
{
    return maskJson(QJsonValue(array)).toArray();
}

void clearForTests()
{
    Registry &r = registry();
    QMutexLocker lock(&r.mutex);
    r.secrets.clear();
}

} // namespace Redaction
} // namespace Sluice
