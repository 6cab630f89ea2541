// SPDX-License-Identifier: Apache-2.0
// Secrets are read from files or systemd credentials and never reach a log line.

#include "logging.h"

#include <sluice/secrets.h>

#include <QJsonObject>
#include <QRegularExpression>
#include <QtTest>

#include <functional>

#include <unistd.h>

using namespace Sluice;

class tst_Secrets : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void cleanup() { Redaction::clearForTests(); }
    void readsFileWithoutTrailingNewline();
    void readsCredential();
    void errorsNameTheReferenceNotTheValue();
    void redaction();
    void logLinesAreRedacted();
    void maskAppliesTheInstalledMasker();
    void logLinesAreMaskedWithoutRecursion();
    void logLinesWaitForAMaskerThatIsNotReady();
};

namespace {
// A free-text masker for tests: "tok_" followed by letters is a secret of rule "fake". It
// logs while it masks, as Qt might: the log handler must not call it again from there.
class FakeMasker final : public FreeTextMasker
{
public:
    QString mask(const QString &text) const override
    {
        ++calls;
        qWarning("fake masker at work");
        QString out = text;
        static const QRegularExpression token(QStringLiteral("tok_[a-z]+"));
        return out.replace(token, QStringLiteral("[REDACTED:fake]"));
    }
    mutable int calls = 0;
};

// A masker still preparing itself (compiling rules) until the test says it is ready.
class SlowMasker final : public FreeTextMasker
{
public:
    QString mask(const QString &text) const override
    {
        QString out = text;
        static const QRegularExpression token(QStringLiteral("tok_[a-z]+"));
        return out.replace(token, QStringLiteral("[REDACTED:slow]"));
    }
    bool isReady() const override { return ready; }
    bool ready = false;
};

// Runs @p log with the host's log handler installed, stderr captured; returns what it wrote.
QByteArray capturedLog(const std::function<void()> &log)
{
    QTemporaryDir dir;
    const QString capture = dir.filePath(QStringLiteral("stderr"));
    const int saved = ::dup(STDERR_FILENO);
    FILE *out = std::fopen(QFile::encodeName(capture).constData(), "w");
    if (!out)
        return {};
    ::dup2(::fileno(out), STDERR_FILENO);
    Logging::install();
    log();
    std::fflush(stderr);
    qInstallMessageHandler(nullptr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::fclose(out);
    QFile captured(capture);
    return captured.open(QIODevice::ReadOnly) ? captured.readAll() : QByteArray();
}
} // namespace

void tst_Secrets::readsFileWithoutTrailingNewline()
{
    QTemporaryDir dir;
    QFile f(dir.filePath(QStringLiteral("token")));
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("tok-123456\n");
    f.close();
    const auto value = SecretRef::file(f.fileName()).read();
    QVERIFY(value.has_value());
    QCOMPARE(*value, QByteArray("tok-123456"));
    QCOMPARE(SecretRef::fromVariant(QVariantMap{{QStringLiteral("file"), f.fileName()}}).location(), f.fileName());
}

void tst_Secrets::readsCredential()
{
    QTemporaryDir dir;
    QFile f(dir.filePath(QStringLiteral("gitea-token")));
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("cred-abcdef");
    f.close();
    qputenv("CREDENTIALS_DIRECTORY", dir.path().toLocal8Bit());
    const auto value = SecretRef::credential(QStringLiteral("gitea-token")).read();
    QVERIFY(value.has_value());
    QCOMPARE(*value, QByteArray("cred-abcdef"));
    const auto escape = SecretRef::credential(QStringLiteral("../etc/passwd")).read();
    QVERIFY(!escape.has_value());
    QCOMPARE(escape.error().code, ErrorCode::InvalidConfig);
    qunsetenv("CREDENTIALS_DIRECTORY");
    const auto outside = SecretRef::credential(QStringLiteral("gitea-token")).read();
    QVERIFY(!outside.has_value());
    QVERIFY(outside.error().message.contains(QLatin1String("CREDENTIALS_DIRECTORY is not set")));
}

void tst_Secrets::errorsNameTheReferenceNotTheValue()
{
    const auto missing = SecretRef::file(QStringLiteral("/nonexistent/token")).read();
    QVERIFY(!missing.has_value());
    QVERIFY(missing.error().message.contains(QLatin1String("file /nonexistent/token")));
    QTemporaryDir dir;
    QFile empty(dir.filePath(QStringLiteral("empty")));
    QVERIFY(empty.open(QIODevice::WriteOnly));
    empty.close();
    QVERIFY(SecretRef::file(empty.fileName()).read().error().message.contains(QLatin1String("is empty")));
}

void tst_Secrets::redaction()
{
    QCOMPARE(Redaction::redact(QStringLiteral("token=abcd1234")), QStringLiteral("token=abcd1234"));
    Redaction::registerSecret("abcd1234");
    Redaction::registerSecret("abcd1234-longer");
    Redaction::registerSecret("xyz"); // too short to register: would mangle ordinary text
    QCOMPARE(Redaction::redact(QStringLiteral("a=abcd1234 b=abcd1234-longer c=xyz")),
             QStringLiteral("a=[REDACTED] b=[REDACTED] c=xyz"));
}

void tst_Secrets::logLinesAreRedacted()
{
    QTemporaryDir dir;
    QFile f(dir.filePath(QStringLiteral("token")));
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("planted-secret-9f8e7d");
    f.close();
    QVERIFY(SecretRef::file(f.fileName()).read().has_value());

    // Capture stderr while the host's handler writes a warning that contains the secret.
    const QString capture = dir.filePath(QStringLiteral("stderr"));
    const int saved = ::dup(STDERR_FILENO);
    FILE *out = std::fopen(QFile::encodeName(capture).constData(), "w");
    QVERIFY(out);
    ::dup2(::fileno(out), STDERR_FILENO);
    Logging::install();
    qWarning("remote said: bad credentials planted-secret-9f8e7d for user x");
    std::fflush(stderr);
    qInstallMessageHandler(nullptr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::fclose(out);

    QFile captured(capture);
    QVERIFY(captured.open(QIODevice::ReadOnly));
    const QByteArray text = captured.readAll();
    QVERIFY2(text.contains("remote said: bad credentials [REDACTED] for user x"), text.constData());
    QVERIFY(!text.contains("planted-secret-9f8e7d"));
}

void tst_Secrets::maskAppliesTheInstalledMasker()
{
    Redaction::registerSecret("registered-9f8e7d");
    const QString text = QStringLiteral("key registered-9f8e7d, token tok_abc");
    // No masker installed: mask() is redact().
    QCOMPARE(Redaction::mask(text), QStringLiteral("key [REDACTED], token tok_abc"));
    auto masker = std::make_shared<FakeMasker>();
    Redaction::installFreeTextMasker(masker);
    QCOMPARE(Redaction::mask(text), QStringLiteral("key [REDACTED], token [REDACTED:fake]"));
    // Registered values go first: the masker never sees them.
    QCOMPARE(Redaction::maskJson(QJsonObject{{QStringLiteral("a"), text}, {QStringLiteral("n"), 5}, {QStringLiteral("tok_key"), true}}),
             QJsonObject({{QStringLiteral("a"), QStringLiteral("key [REDACTED], token [REDACTED:fake]")}, {QStringLiteral("n"), 5},
                          {QStringLiteral("[REDACTED:fake]"), true}}));
    // redactJson() is registered values only (what the CLI's read-only commands print).
    QCOMPARE(Redaction::redactJson(QJsonObject{{QStringLiteral("a"), text}}),
             QJsonObject({{QStringLiteral("a"), QStringLiteral("key [REDACTED], token tok_abc")}}));
    Redaction::installFreeTextMasker(nullptr);
    QCOMPARE(Redaction::mask(text), QStringLiteral("key [REDACTED], token tok_abc"));
}

void tst_Secrets::logLinesAreMaskedWithoutRecursion()
{
    auto masker = std::make_shared<FakeMasker>();
    Redaction::installFreeTextMasker(masker);
    const QByteArray text = capturedLog([] { qWarning("job 7 failed: last output: export T=tok_secret | done"); });
    Redaction::installFreeTextMasker(nullptr);
    QVERIFY2(text.contains("job 7 failed: last output: export T=[REDACTED:fake] | done"), text.constData());
    QVERIFY(!text.contains("tok_secret"));
    // The masker's own warning was written (redacted only), and it was called once, not for it too.
    QVERIFY2(text.contains("fake masker at work"), text.constData());
    QCOMPARE(masker->calls, 1);
}

void tst_Secrets::logLinesWaitForAMaskerThatIsNotReady()
{
    // No thread waits for the masker to log: lines wait, in order, and are written masked
    // before the first line logged once it is ready — or by flush() at the latest.
    auto masker = std::make_shared<SlowMasker>();
    Redaction::installFreeTextMasker(masker);
    const QByteArray early = capturedLog([] {
        qWarning("first: tok_one");
        qInfo("second: tok_two");
    });
    QCOMPARE(early, QByteArray()); // nothing written while the masker is not ready
    masker->ready = true;
    const QByteArray text = capturedLog([] { qWarning("third: tok_three"); });
    QVERIFY2(text.contains("first: [REDACTED:slow]\n") && text.contains("second: [REDACTED:slow]\n")
                 && text.contains("third: [REDACTED:slow]\n"),
             text.constData());
    QVERIFY(text.indexOf("first") < text.indexOf("second") && text.indexOf("second") < text.indexOf("third"));
    QVERIFY(!text.contains("tok_"));

    masker->ready = false;
    const QByteArray flushed = capturedLog([&masker] {
        qWarning("waiting: tok_four");
        masker->ready = true;
        Logging::flush();
    });
    QVERIFY2(flushed.contains("waiting: [REDACTED:slow]"), flushed.constData());
    Redaction::installFreeTextMasker(nullptr);
}

QTEST_GUILESS_MAIN(tst_Secrets)
#include "tst_secrets.moc"
