// SPDX-License-Identifier: Apache-2.0
// The free-text masker of the `sluice` executable: the secret scanner over text Sluice copies
// from agents and commands, each secret replaced by [REDACTED:<rule id>] — exact spans, the
// text around them kept, every labelled secret of the corpus gone, safe from several threads,
// and withholding (not passing) text when its rules cannot be compiled.
#include "ruleset.h"
#include "secretscanner.h"
#include "textmasker.h"

#include <sluice/secrets.h>

#include <QFile>
#include <QTemporaryDir>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTest>
#include <QtConcurrent/QtConcurrentRun>

using namespace Sluice;
using namespace Sluice::Security;

namespace {

// Secrets are assembled at run time so that this source file holds none.
QString awsKey() { return QStringLiteral("AKIA") + QStringLiteral("Z3MSJV4WWNKWW5FG"); }
QString githubPat() { return QStringLiteral("ghp_") + QStringLiteral("wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"); }
QString slackBot() { return QStringLiteral("xoxb-") + QStringLiteral("781236542736-2364535789652-GkwFDQoHqzXDVsC6GzqYUypD"); }
QString genericValue() { return QStringLiteral("Zx8Kq2Lm9V") + QStringLiteral("b4Nt7Rw1Yp"); }

// The compiled-rules cache of this test, not the user's.
const QString &cacheDirectory()
{
    static QTemporaryDir dir;
    static const QString path = dir.path();
    return path;
}

// One masker for the whole test: its rules compile once, like the executable's.
const ScannerTextMasker &masker()
{
    static const ScannerTextMasker instance(defaultRuleSet, cacheDirectory());
    return instance;
}

std::vector<SecretFinding> findingsIn(const QString &text)
{
    static const std::shared_ptr<const SecretScanner> scanner = [] {
        auto rules = defaultRuleSet();
        return rules ? SecretScanner::compile(*rules).value_or(nullptr) : nullptr;
    }();
    if (!scanner)
        qFatal("the default rules do not compile");
    const QByteArray bytes = text.toUtf8();
    Fragment fragment;
    fragment.text = std::string_view(bytes.constData(), std::size_t(bytes.size()));
    auto scratch = scanner->makeScratch();
    ScanOptions options;
    options.honorAllowMarker = false;
    return scanner->scan(fragment, *scratch, options);
}

} // namespace

class tst_TextMasker : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void masksTheSecretAndKeepsTheText_data();
    void masksTheSecretAndKeepsTheText();
    void everySecretOfTheCorpusIsGone();
    void severalThreadsAtOnce();
    void unusableRulesWithholdTheText();
    void redactionMaskIsTheOneCall();
    void oneScannerPerProcessAndTheDiskCache();
};

void tst_TextMasker::initTestCase()
{
    masker().warmUp();
    const auto ready = masker().ready();
    QVERIFY2(ready.has_value(), qPrintable(ready ? QString() : ready.error().toString()));
}

void tst_TextMasker::masksTheSecretAndKeepsTheText_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("expected");
    QTest::newRow("github token after a key") << QStringLiteral("export GITHUB_TOKEN=") + githubPat()
                                              << QStringLiteral("export GITHUB_TOKEN=[REDACTED:github-pat]");
    QTest::newRow("aws key id in a line of several") << QStringLiteral("start\nAWS_ACCESS_KEY_ID=") + awsKey() + QStringLiteral("\nend\n")
                                                     << QStringLiteral("start\nAWS_ACCESS_KEY_ID=[REDACTED:aws-access-token]\nend\n");
    QTest::newRow("slack token in an output tail") << QStringLiteral("exited with code 1; last output: a | slack: ") + slackBot() + QStringLiteral(" | b")
                                                   << QStringLiteral("exited with code 1; last output: a | slack: [REDACTED:slack-bot-token] | b");
    QTest::newRow("generic key: only the value goes") << QStringLiteral("config: api_key = \"") + genericValue() + QStringLiteral("\" (from .env)")
                                                      << QStringLiteral("config: api_key = \"[REDACTED:generic-api-key]\" (from .env)");
    QTest::newRow("non-ASCII text around it") << QStringLiteral("Prüfung fehlgeschlagen – Schlüssel ") + githubPat() + QStringLiteral(" ünd mehr")
                                              << QStringLiteral("Prüfung fehlgeschlagen – Schlüssel [REDACTED:github-pat] ünd mehr");
    QTest::newRow("two tokens on one line") << githubPat() + QLatin1Char(' ') + awsKey()
                                            << QStringLiteral("[REDACTED:github-pat] [REDACTED:aws-access-token]");
    QTest::newRow("the same token twice") << QStringLiteral("a ") + githubPat() + QStringLiteral("\nb ") + githubPat()
                                          << QStringLiteral("a [REDACTED:github-pat]\nb [REDACTED:github-pat]");
    QTest::newRow("an allow marker does not hide it") << QStringLiteral("token ") + githubPat() + QStringLiteral(" # gitleaks:allow")
                                                      << QStringLiteral("token [REDACTED:github-pat] # gitleaks:allow");
    QTest::newRow("nothing to mask") << QStringLiteral("job 12 failed: 'make' exited with code 2")
                                     << QStringLiteral("job 12 failed: 'make' exited with code 2");
    QTest::newRow("empty") << QString() << QString();
}

void tst_TextMasker::masksTheSecretAndKeepsTheText()
{
    QFETCH(QString, text);
    QFETCH(QString, expected);
    QCOMPARE(masker().mask(text), expected);
}

void tst_TextMasker::everySecretOfTheCorpusIsGone()
{
    // Every labelled secret of gitleaks' own rule examples, as free text: after masking, the
    // scanner finds nothing left, and the line changed.
    QFile corpus(QStringLiteral(SLUICE_SECRETS_DATA "/corpus.jsonl"));
    QVERIFY(corpus.open(QIODevice::ReadOnly));
    int checked = 0;
    QStringList left;
    while (!corpus.atEnd()) {
        const QJsonObject o = QJsonDocument::fromJson(corpus.readLine()).object();
        if (o.value(QLatin1String("expect")).toString() != QLatin1String("secret") || o.contains(QLatin1String("path")))
            continue;
        const QString text = o.value(QLatin1String("text")).toString();
        if (findingsIn(text).empty())
            continue; // a label that holds only for its file path
        const QString masked = masker().mask(text);
        ++checked;
        const auto remaining = findingsIn(masked);
        if (masked == text || !remaining.empty())
            left << QStringLiteral("%1: %2 finding(s) left in: %3")
                        .arg(o.value(QLatin1String("rule_id")).toString())
                        .arg(remaining.size())
                        .arg(masked.left(200));
    }
    QVERIFY2(checked > 200, qPrintable(QString::number(checked)));
    QVERIFY2(left.isEmpty(), qPrintable(left.join(QLatin1Char('\n'))));
}

void tst_TextMasker::severalThreadsAtOnce()
{
    const QString text = QStringLiteral("a ") + githubPat() + QStringLiteral(" b ") + awsKey() + QStringLiteral(" c");
    const QString expected = QStringLiteral("a [REDACTED:github-pat] b [REDACTED:aws-access-token] c");
    QList<QFuture<int>> runs;
    for (int t = 0; t < 4; ++t) {
        runs.append(QtConcurrent::run([&] {
            int wrong = 0;
            for (int i = 0; i < 300; ++i)
                wrong += masker().mask(text) == expected ? 0 : 1;
            return wrong;
        }));
    }
    for (QFuture<int> &run : runs)
        QCOMPARE(run.result(), 0);
}

void tst_TextMasker::unusableRulesWithholdTheText()
{
    const ScannerTextMasker broken([]() -> Result<RuleSet> {
        return loadRuleText("[[rules]]\nid = \"bad\"\nregex = '''(unclosed'''\n", QStringLiteral("broken.toml"), QString());
    });
    const auto ready = broken.ready();
    QVERIFY(!ready.has_value());
    const QString masked = broken.mask(QStringLiteral("token ") + githubPat());
    QVERIFY2(!masked.contains(githubPat()), qPrintable(masked));
    QVERIFY2(masked.startsWith(QLatin1String("[withheld")), qPrintable(masked));
}

void tst_TextMasker::redactionMaskIsTheOneCall()
{
    // Without a masker installed, Redaction::mask() is redact(); with it, both.
    Redaction::registerSecret("registered-value-1234");
    const QString text = QStringLiteral("key registered-value-1234 and ") + githubPat();
    QCOMPARE(Redaction::mask(text), QStringLiteral("key [REDACTED] and ") + githubPat());
    Redaction::installFreeTextMasker(std::shared_ptr<const FreeTextMasker>(&masker(), [](const FreeTextMasker *) {}));
    QCOMPARE(Redaction::mask(text), QStringLiteral("key [REDACTED] and [REDACTED:github-pat]"));
    const QJsonObject masked = Redaction::maskJson(QJsonObject{{QStringLiteral("reason"), text},
                                                               {QStringLiteral("list"), QJsonArray{text, 3}},
                                                               {githubPat(), QStringLiteral("a key")}});
    QCOMPARE(masked.value(QLatin1String("reason")).toString(), QStringLiteral("key [REDACTED] and [REDACTED:github-pat]"));
    QCOMPARE(masked.value(QLatin1String("list")).toArray().at(0).toString(), QStringLiteral("key [REDACTED] and [REDACTED:github-pat]"));
    QCOMPARE(masked.value(QLatin1String("list")).toArray().at(1).toInt(), 3);
    QCOMPARE(masked.value(QLatin1String("[REDACTED:github-pat]")).toString(), QStringLiteral("a key"));
    Redaction::installFreeTextMasker(nullptr);
    Redaction::clearForTests();
}

// The masker asks for the process's one scanner of its rules (SecretScanner::shared(), as
// the engine's commit scan and `sluice scan` do) and builds it with the compiled-rules cache:
// a second masker, or a commit scan in the same process, compiles nothing; a new process
// loads the cache file.
void tst_TextMasker::oneScannerPerProcessAndTheDiskCache()
{
    QTemporaryDir cache;
    QVERIFY(cache.isValid());
    // Rules of this test alone, so that nothing else in the process holds them.
    const std::string text = "[[rules]]\nid = 'zq-token'\nregex = '''zq_[a-z0-9]{20}'''\nkeywords = ['zq_']\n"
                             "[rules.allowlist]\nstopwords = ['example', 'sample']\n";
    auto source = [text]() { return loadRuleText(text, QStringLiteral("zq.toml"), QString()); };
    auto secret = [] { return QStringLiteral("zq_") + QStringLiteral("k3j5h7g9f1d3s5a7p9o1"); };
    QString file;
    {
        const ScannerTextMasker first(source, cache.path());
        const auto scanner = first.scanner();
        QVERIFY(scanner);
        QVERIFY2(scanner->cacheStatus().startsWith(QStringLiteral("compiled, saved to %1/secretscan-").arg(cache.path())),
                 qPrintable(scanner->cacheStatus()));
        file = scanner->cacheStatus().mid(QStringLiteral("compiled, saved to ").size());
        QVERIFY(QFile::exists(file));
        const ScannerTextMasker second(source, cache.path());
        QCOMPARE(second.scanner().get(), scanner.get());
        auto rules = source();
        QVERIFY(rules);
        const auto shared = SecretScanner::shared(*rules, CompileOptions{});
        QVERIFY(shared);
        QCOMPARE(shared->get(), scanner.get());
        QCOMPARE(second.mask(QStringLiteral("t=") + secret()), QStringLiteral("t=[REDACTED:zq-token]"));
    }
    // Nobody holds them any more: the next masker builds them again, from the cache file.
    const ScannerTextMasker third(source, cache.path());
    QVERIFY(third.scanner());
    QCOMPARE(third.scanner()->cacheStatus(), QStringLiteral("loaded from %1").arg(file));
    QCOMPARE(third.mask(QStringLiteral("t=") + secret() + QStringLiteral(" u=zq_examplexxxxxxxxxxxxx")),
             QStringLiteral("t=[REDACTED:zq-token] u=zq_examplexxxxxxxxxxxxx"));
}

QTEST_GUILESS_MAIN(tst_TextMasker)

#include "tst_textmasker.moc"
