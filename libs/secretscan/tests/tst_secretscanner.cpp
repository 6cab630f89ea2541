// SPDX-License-Identifier: Apache-2.0
// The secret scanner on its own: the TOML reader, the rule loader, every rule feature,
// masking, entropy, and the labelled corpus of gitleaks' own rule examples.
#include "ruleset.h"
#include "scantargets.h"
#include "secretscanner.h"
#include "tomlreader.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

#include <map>

using namespace Sluice;
using namespace Sluice::Security;

namespace {

// Secrets are assembled at run time so that this source file holds none.
std::string awsKey() { return std::string("AKIA") + "Z3MSJV4WWNKWW5FG"; }
std::string githubPat() { return std::string("ghp_") + "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"; }

std::shared_ptr<const SecretScanner> compileText(const std::string &toml)
{
    auto rules = loadRuleText(toml, QStringLiteral("test.toml"), QDir::tempPath());
    if (!rules) {
        qWarning("%s", qPrintable(rules.error().toString()));
        return {};
    }
    auto scanner = SecretScanner::compile(*rules);
    if (!scanner) {
        qWarning("%s", qPrintable(scanner.error().toString()));
        return {};
    }
    return *scanner;
}

std::vector<SecretFinding> scanText(const SecretScanner &scanner, const std::string &text, const std::string &path = "f.txt",
                                    const std::string &commit = {}, ScanOptions options = {})
{
    auto scratch = scanner.makeScratch();
    Fragment fragment;
    fragment.text = text;
    fragment.path = path;
    fragment.commit = commit;
    return scanner.scan(fragment, *scratch, options);
}

QStringList ids(std::initializer_list<const char *> names)
{
    QStringList out;
    for (const char *n : names)
        out.append(QString::fromUtf8(n));
    return out;
}

QStringList ruleIds(const std::vector<SecretFinding> &findings)
{
    QStringList out;
    for (const auto &f : findings)
        out.append(QString::fromStdString(f.ruleId));
    return out;
}

} // namespace

class tst_SecretScanner : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void toml_data();
    void toml();
    void tomlErrorsNameFileLineAndKey_data();
    void tomlErrorsNameFileLineAndKey();
    void defaultRulesLoad();
    void gitleaksTestdataConfigs_data();
    void gitleaksTestdataConfigs();
    void ruleFeatures_data();
    void ruleFeatures();
    void extendUseDefault();
    void invalidRegexNamesRule();
    void vectorscanRefusalIsReportedNotDropped();
    void nonAsciiTextDoesNotHideSecrets();
    void entropyAsGitleaks();
    void masking();
    void lineNumbersAndFingerprint();
    void threadsGiveTheSameFindings();
    void boundedSearchGivesTheSameFindings();
    void corpus();
    void cachedRulesCompileLazilyWithTheSameFindings();
    void cacheKeyCoversEveryPattern();
    void sharedIsOneScannerPerRuleSet();
    void cacheKeepsTheNewestFiles();
    void longLinesKeepLineSemantics();
    void utf16Detection_data();
    void utf16Detection();
    void diffReadersRefuseMalformedText_data();
    void diffReadersRefuseMalformedText();

private:
    std::shared_ptr<const SecretScanner> m_default;
};

void tst_SecretScanner::initTestCase()
{
    auto rules = defaultRuleSet();
    QVERIFY2(rules, qPrintable(rules ? QString() : rules.error().toString()));
    auto scanner = SecretScanner::compile(*rules);
    QVERIFY2(scanner, qPrintable(scanner ? QString() : scanner.error().toString()));
    m_default = *scanner;
}

void tst_SecretScanner::toml_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("expected"); // compact rendering

    QTest::newRow("literal-multiline") << QByteArray("a = '''\n\\d{3}\nx'''\n") << QStringLiteral("a=\\d{3}\nx");
    QTest::newRow("basic-escapes") << QByteArray("a = \"x\\ty\\u00e9\"\n") << QStringLiteral("a=x\ty\u00e9");
    QTest::newRow("ml-basic-continuation") << QByteArray("a = \"\"\"one \\\n   two\"\"\"\n") << QStringLiteral("a=one two");
    QTest::newRow("array-multiline-comments") << QByteArray("a = [\n 'x', # c\n \"y\",\n]\n") << QStringLiteral("a=[x,y]");
    QTest::newRow("numbers-bools") << QByteArray("a = 3\nb = 3.5\nc = true\nd = -1_000\n") << QStringLiteral("a=3;b=3.5;c=true;d=-1000");
    QTest::newRow("array-of-tables") << QByteArray("[[r]]\nid='x'\n[[r.al]]\np=['a']\n[[r]]\nid='y'\n")
                                     << QStringLiteral("r=[{id=x;al=[{p=[a]}]},{id=y}]");
    QTest::newRow("keys-case-insensitive") << QByteArray("SecretGroup = 2\n") << QStringLiteral("secretgroup=2");
    QTest::newRow("dotted-and-inline") << QByteArray("a.b = 1\nc = { d = 'e' }\n") << QStringLiteral("a={b=1};c={d=e}");
}

static QString render(const TomlValue &v)
{
    switch (v.kind) {
    case TomlValue::Kind::String: return QString::fromStdString(v.text);
    case TomlValue::Kind::Integer: return QString::number(v.integer);
    case TomlValue::Kind::Float: return QString::number(v.number);
    case TomlValue::Kind::Boolean: return v.boolean ? QStringLiteral("true") : QStringLiteral("false");
    case TomlValue::Kind::Array: {
        QStringList items;
        for (const auto &i : v.items)
            items.append(v.arrayOfTables ? QStringLiteral("{%1}").arg(render(i)) : render(i));
        return QStringLiteral("[%1]").arg(items.join(QLatin1Char(',')));
    }
    case TomlValue::Kind::Table: {
        QStringList entries;
        for (const auto &[k, e] : v.entries) {
            const QString value = e.kind == TomlValue::Kind::Table ? QStringLiteral("{%1}").arg(render(e)) : render(e);
            entries.append(QString::fromStdString(k) + QLatin1Char('=') + value);
        }
        return entries.join(QLatin1Char(';'));
    }
    }
    return {};
}

void tst_SecretScanner::toml()
{
    QFETCH(QByteArray, text);
    QFETCH(QString, expected);
    auto doc = parseToml(text.toStdString(), QStringLiteral("t.toml"));
    QVERIFY2(doc, qPrintable(doc ? QString() : doc.error().toString()));
    QCOMPARE(render(*doc), expected);
}

void tst_SecretScanner::tomlErrorsNameFileLineAndKey_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("expected");

    QTest::newRow("unclosed-literal") << QByteArray("a = 1\nb = '''x\n") << QStringLiteral("t.toml:2: multi-line literal");
    QTest::newRow("duplicate-key") << QByteArray("a = 1\n\na = 2\n") << QStringLiteral("t.toml:3: key 'a' is defined twice");
    QTest::newRow("date") << QByteArray("\nwhen = 1979-05-27\n") << QStringLiteral("t.toml:2: key 'when'");
    QTest::newRow("bad-escape") << QByteArray("[[rules]]\nregex = \"\\d+\"\n") << QStringLiteral("t.toml:2: unknown escape");
    QTest::newRow("garbage-after-value") << QByteArray("a = 'x' y\n") << QStringLiteral("t.toml:1: unexpected 'y'");
    QTest::newRow("table-twice") << QByteArray("[x]\n[x]\n") << QStringLiteral("t.toml:2: table [x] is defined twice");
    QTest::newRow("unknown-rule-key") << QByteArray("[[rules]]\nid = 'a'\nregex = 'x'\n\nregx = 'y'\n")
                                      << QStringLiteral("t.toml:5: key 'rules[0].regx': unknown key");
    QTest::newRow("secretGroup-type") << QByteArray("[[rules]]\nid = 'a'\nregex = 'x'\nsecretGroup = 'one'\n")
                                      << QStringLiteral("t.toml:4: key 'rules 'a'.secretGroup': must be a non-negative integer");
}

void tst_SecretScanner::tomlErrorsNameFileLineAndKey()
{
    QFETCH(QByteArray, text);
    QFETCH(QString, expected);
    auto rules = loadRuleText(text.toStdString(), QStringLiteral("t.toml"), QDir::tempPath());
    QVERIFY(!rules);
    QVERIFY2(rules.error().message.startsWith(expected), qPrintable(rules.error().message));
}

void tst_SecretScanner::defaultRulesLoad()
{
    auto rules = defaultRuleSet();
    QVERIFY2(rules, qPrintable(rules ? QString() : rules.error().toString()));
    QCOMPARE(int(rules->rules.size()), 222);
    QCOMPARE(int(rules->allowlists.size()), 1);
    QCOMPARE(int(rules->allowlists.front().paths.size()), 25);
    QCOMPARE(int(rules->allowlists.front().regexes.size()), 13);
    const Rule *generic = rules->rule("generic-api-key");
    QVERIFY(generic);
    QCOMPARE(int(generic->allowlists.size()), 4);
    std::size_t stopwords = 0;
    for (const Allowlist &a : generic->allowlists)
        stopwords += a.stopwords.size();
    QCOMPARE(stopwords, std::size_t(1446));
    QCOMPARE(rules->rule("sonar-api-token")->secretGroup, 2);
    QVERIFY(rules->rule("pkcs12-file")->regex.empty());

    QCOMPARE(m_default->ruleCount(), 222);
    // Every default rule regex compiles in Vectorscan (RULES-NOTES.md); the 12 that count
    // characters (`.`, negated classes, \\S) are matched by RE2 alone behind their keywords.
    QCOMPARE(m_default->prefilteredRuleCount(), 209);
    QVERIFY2(m_default->diagnostics().isEmpty(), qPrintable(m_default->diagnostics().join(QLatin1Char('\n'))));
}

void tst_SecretScanner::gitleaksTestdataConfigs_data()
{
    QTest::addColumn<QString>("file");
    QTest::addColumn<bool>("valid");
    const QDir base(QStringLiteral(SLUICE_SECRETS_DATA "/gitleaks-testdata-config"));
    for (const char *kind : {"valid", "invalid"}) {
        const QDir dir(base.filePath(QLatin1String(kind)));
        for (const QString &name : dir.entryList({QStringLiteral("*.toml")}, QDir::Files, QDir::Name)) {
            // Paths in [extend] are relative to gitleaks' own source tree; those files cannot
            // resolve here.
            QFile f(dir.filePath(name));
            QVERIFY(f.open(QIODevice::ReadOnly));
            if (f.readAll().contains("../testdata/"))
                continue;
            QTest::newRow(qPrintable(QStringLiteral("%1/%2").arg(QLatin1String(kind), name)))
                << dir.filePath(name) << (QLatin1String(kind) == QLatin1String("valid"));
        }
    }
}

void tst_SecretScanner::gitleaksTestdataConfigs()
{
    QFETCH(QString, file);
    QFETCH(bool, valid);
    auto rules = loadRuleFile(file);
    Result<std::shared_ptr<const SecretScanner>> scanner = fail(ErrorCode::Unknown, QString());
    if (rules)
        scanner = SecretScanner::compile(*rules);
    const bool ok = rules && scanner;
    const QString error = !rules ? rules.error().toString() : (!scanner ? scanner.error().toString() : QString());
    QVERIFY2(ok == valid, qPrintable(valid ? error : QStringLiteral("loaded, but gitleaks refuses it")));
    if (!valid)
        QVERIFY2(error.contains(QFileInfo(file).fileName()), qPrintable(error));
}

void tst_SecretScanner::ruleFeatures_data()
{
    QTest::addColumn<QByteArray>("rules");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("path");
    QTest::addColumn<QStringList>("expected");

    const QByteArray token = "tok_[a-z0-9]{12}";
    const QByteArray base = "[[rules]]\nid = 'tok'\nregex = '''" + token + "'''\nkeywords = ['tok_']\n";
    QTest::newRow("plain") << base << QByteArray("x = tok_abcdef123456\n") << QString() << ids({"tok"});
    QTest::newRow("keyword-missing-skips-rule")
        << QByteArray("[[rules]]\nid = 'tok'\nregex = '''[a-z]{4}_[a-z0-9]{12}'''\nkeywords = ['zzz']\n")
        << QByteArray("x = abcd_abcdef123456\n") << QString() << QStringList{};
    // The keyword is looked for in the first match, then in the whole fragment: outside the
    // match (before it, after it, on another line, in another case) it counts the same.
    const QByteArray elsewhere = "[[rules]]\nid = 'tok'\nregex = '''[a-z]{4}_[a-z0-9]{12}'''\nkeywords = ['zzz']\n";
    QTest::newRow("keyword-before-the-match") << elsewhere << QByteArray("zzz\nx = abcd_abcdef123456\n") << QString() << ids({"tok"});
    QTest::newRow("keyword-after-the-match") << elsewhere << QByteArray("x = abcd_abcdef123456 # ZZZ\n") << QString() << ids({"tok"});
    QTest::newRow("keyword-in-the-match") << elsewhere << QByteArray("x = abcd_zzzdef123456\n") << QString() << ids({"tok"});
    QTest::newRow("keyword-in-a-later-match-only")
        << elsewhere << QByteArray("x = abcd_abcdef123456\ny = abcd_zzzdef123456\n") << QString() << ids({"tok", "tok"});
    QTest::newRow("keyword-case-insensitive")
        << QByteArray("[[rules]]\nid = 'tok'\nregex = '''(?i)tok_[a-z0-9]{12}'''\nkeywords = ['TOK_']\n")
        << QByteArray("x = ToK_abcdef123456\n") << QString() << ids({"tok"});
    QTest::newRow("entropy-below") << base + "entropy = 3.5\n" << QByteArray("x = tok_aaaaaaaaaaaa\n") << QString() << QStringList{};
    QTest::newRow("entropy-above") << base + "entropy = 3.0\n" << QByteArray("x = tok_a1b2c3d4e5f6\n") << QString() << ids({"tok"});
    QTest::newRow("secretGroup-entropy")
        << QByteArray("[[rules]]\nid = 'pair'\nregex = '''(aaaaaaaaaaaa)=([a-z0-9]{12})'''\nsecretGroup = 2\nentropy = 3\n")
        << QByteArray("aaaaaaaaaaaa=q1w2e3r4t5y6\n") << QString() << ids({"pair"});
    QTest::newRow("first-group-low-entropy")
        << QByteArray("[[rules]]\nid = 'pair'\nregex = '''(aaaaaaaaaaaa)=([a-z0-9]{12})'''\nentropy = 3\n")
        << QByteArray("aaaaaaaaaaaa=q1w2e3r4t5y6\n") << QString() << QStringList{};
    QTest::newRow("path-rule-matches") << base + "path = '''\\.env$'''\n" << QByteArray("tok_abcdef123456\n")
                                       << QStringLiteral("app/.env") << ids({"tok"});
    QTest::newRow("path-rule-other-file") << base + "path = '''\\.env$'''\n" << QByteArray("tok_abcdef123456\n")
                                          << QStringLiteral("app/main.c") << QStringList{};
    QTest::newRow("path-only-rule") << QByteArray("[[rules]]\nid = 'p12'\npath = '''\\.p12$'''\n") << QByteArray("")
                                    << QStringLiteral("keys/a.p12") << ids({"p12"});
    QTest::newRow("allowlist-regex-secret")
        << base + "[[rules.allowlists]]\nregexes = ['''abcdef''']\n" << QByteArray("x = tok_abcdef123456\n") << QString() << QStringList{};
    QTest::newRow("allowlist-regex-match-target")
        << base + "[[rules.allowlists]]\nregexTarget = 'match'\nregexes = ['''^tok_''']\n" << QByteArray("x = tok_abcdef123456\n")
        << QString() << QStringList{};
    QTest::newRow("allowlist-regex-secret-target-misses-line")
        << base + "[[rules.allowlists]]\nregexes = ['''^x = ''']\n" << QByteArray("x = tok_abcdef123456\n") << QString()
        << ids({"tok"});
    QTest::newRow("allowlist-regex-line-target")
        << base + "[[rules.allowlists]]\nregexTarget = 'line'\nregexes = ['''^x = ''']\n" << QByteArray("x = tok_abcdef123456\n")
        << QString() << QStringList{};
    QTest::newRow("allowlist-stopword")
        << base + "[[rules.allowlists]]\nstopwords = ['ABCDEF']\n" << QByteArray("x = tok_abcdef123456\n") << QString() << QStringList{};
    QTest::newRow("allowlist-path")
        << base + "[[rules.allowlists]]\npaths = ['''^test/''']\n" << QByteArray("tok_abcdef123456\n") << QStringLiteral("test/a")
        << QStringList{};
    QTest::newRow("allowlist-and-both-hold")
        << base + "[[rules.allowlists]]\ncondition = 'AND'\npaths = ['''^test/''']\nstopwords = ['abcdef']\n"
        << QByteArray("tok_abcdef123456\n") << QStringLiteral("test/a") << QStringList{};
    QTest::newRow("allowlist-and-one-fails")
        << base + "[[rules.allowlists]]\ncondition = 'AND'\npaths = ['''^test/''']\nstopwords = ['abcdef']\n"
        << QByteArray("tok_abcdef123456\n") << QStringLiteral("src/a") << ids({"tok"});
    QTest::newRow("allowlist-or-one-holds")
        << base + "[[rules.allowlists]]\ncondition = 'OR'\npaths = ['''^test/''']\nstopwords = ['abcdef']\n"
        << QByteArray("tok_abcdef123456\n") << QStringLiteral("src/a") << QStringList{};
    QTest::newRow("global-allowlist")
        << base + "[allowlist]\nregexes = ['''123456$''']\n" << QByteArray("tok_abcdef123456\n") << QString() << QStringList{};
    QTest::newRow("global-allowlist-targetRules-other-rule")
        << base + "[[rules]]\nid = 'other'\nregex = 'zzz_[0-9]{4}'\n[[allowlists]]\ntargetRules = ['other']\nregexes = ['''.''']\n"
        << QByteArray("tok_abcdef123456 zzz_1234\n") << QString() << ids({"tok"});
    QTest::newRow("inline-allow-marker") << base << QByteArray("x = tok_abcdef123456 # gitleaks:allow\n") << QString() << QStringList{};
    QTest::newRow("multi-line-match")
        << QByteArray("[[rules]]\nid = 'block'\nregex = '''BEGIN\\n[a-z0-9]{12}\\nEND'''\n")
        << QByteArray("x\nBEGIN\nq1w2e3r4t5y6\nEND\n") << QString() << ids({"block"});
    QTest::newRow("generic-dedupe")
        << base + "[[rules]]\nid = 'generic-x'\nregex = '''x = (tok_[a-z0-9]{12})'''\n" << QByteArray("x = tok_abcdef123456\n")
        << QString() << ids({"tok"});
}

void tst_SecretScanner::ruleFeatures()
{
    QFETCH(QByteArray, rules);
    QFETCH(QByteArray, text);
    QFETCH(QString, path);
    QFETCH(QStringList, expected);
    auto scanner = compileText(rules.toStdString());
    QVERIFY(scanner);
    const auto findings = scanText(*scanner, text.toStdString(), path.isEmpty() ? "f.txt" : path.toStdString());
    QCOMPARE(ruleIds(findings), expected);
}

void tst_SecretScanner::extendUseDefault()
{
    // Extending the defaults keeps every default rule, merges one and adds one.
    const std::string toml = "[extend]\nuseDefault = true\ndisabledRules = ['github-pat']\n"
                             "[[rules]]\nid = 'aws-access-token'\ndescription = 'overridden'\n"
                             "[[rules.allowlists]]\nregexes = ['''WNKWW5FG$''']\n"
                             "[[rules]]\nid = 'own'\nregex = '''own_[0-9]{8}'''\n";
    auto scanner = compileText(toml);
    QVERIFY(scanner);
    QCOMPARE(scanner->ruleCount(), 222); // -1 disabled, +1 own
    const std::string text = "a = " + awsKey() + "\nb = " + githubPat() + "\nc = own_12345678\n";
    QCOMPARE(ruleIds(scanText(*scanner, text)), ids({"own"}));

    auto plain = compileText("[extend]\nuseDefault = true\n");
    QVERIFY(plain);
    QCOMPARE(ruleIds(scanText(*plain, text)), ids({"aws-access-token", "github-pat"}));
    // Without [extend] only the file's own rules exist.
    auto alone = compileText("[[rules]]\nid = 'own'\nregex = '''own_[0-9]{8}'''\n");
    QCOMPARE(alone->ruleCount(), 1);
}

void tst_SecretScanner::invalidRegexNamesRule()
{
    auto rules = loadRuleText("title = 'x'\n\n[[rules]]\nid = 'broken'\nregex = '''(unclosed'''\n", QStringLiteral("p.toml"), {});
    QVERIFY(rules);
    auto scanner = SecretScanner::compile(*rules);
    QVERIFY(!scanner);
    QVERIFY2(scanner.error().message.contains(QLatin1String("p.toml:3: rule 'broken': key 'regex'")),
             qPrintable(scanner.error().message));
    auto group = loadRuleText("[[rules]]\nid = 'g'\nregex = '''(a)(b)'''\nsecretGroup = 3\n", QStringLiteral("p.toml"), {});
    QVERIFY(group);
    auto groupScanner = SecretScanner::compile(*group);
    QVERIFY(!groupScanner);
    QVERIFY(groupScanner.error().message.contains(QLatin1String("'secretGroup' is 3 but the regex has only 2 groups")));
}

void tst_SecretScanner::vectorscanRefusalIsReportedNotDropped()
{
    // RE2 knows the ungreedy flag (?U), Vectorscan does not, not even as a prefilter.
    auto scanner = compileText("[[rules]]\nid = 'lazy'\nregex = '''(?U)zz_[a-z]{6}'''\nkeywords = ['zz_']\n"
                               "[[rules]]\nid = 'plain'\nregex = '''qq_[0-9]{6}'''\n");
    QVERIFY(scanner);
    QCOMPARE(scanner->ruleCount(), 2);
    QCOMPARE(scanner->prefilteredRuleCount(), 1);
    QCOMPARE(scanner->diagnostics().size(), 2); // tried exactly, then as an approximate prefilter
    QVERIFY2(scanner->diagnostics().last().startsWith(QLatin1String("rule 'lazy' (test.toml:1): Vectorscan cannot compile it")),
             qPrintable(scanner->diagnostics().join(QLatin1Char('\n'))));
    // It still runs, in RE2, where its keyword occurs.
    QCOMPARE(ruleIds(scanText(*scanner, "a = zz_abcdef qq_123456\n")), ids({"lazy", "plain"}));
    QCOMPARE(ruleIds(scanText(*scanner, "a = zz_abc\n")), QStringList());
}

void tst_SecretScanner::nonAsciiTextDoesNotHideSecrets()
{
    // `.{0,6}` spans six characters in RE2 and in Go (gitleaks), but six bytes in Vectorscan's
    // ASCII mode: four two-byte characters are eight bytes. The rule must still fire.
    auto scanner = compileText("[[rules]]\nid = 'near'\nregex = '''pw.{0,6}=(zz_[0-9]{6})'''\n"
                               "[[rules]]\nid = 'negated'\nregex = '''pk[^=]{0,6}=(yy_[0-9]{6})'''\n"
                               "[[rules]]\nid = 'ascii'\nregex = '''aa_[0-9a-f]{6}'''\n");
    QVERIFY(scanner);
    QCOMPARE(scanner->prefilteredRuleCount(), 1);
    QCOMPARE(ruleIds(scanText(*scanner, "pw\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9=zz_123456\n")), ids({"near"}));
    QCOMPARE(ruleIds(scanText(*scanner, "pk\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9=yy_123456\n")), ids({"negated"}));
    QCOMPARE(ruleIds(scanText(*scanner, "pw\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9=zz_123456\n")), QStringList());
}

void tst_SecretScanner::entropyAsGitleaks()
{
    QCOMPARE(shannonEntropy(""), 0.0);
    QCOMPARE(shannonEntropy("aaaa"), 0.0);
    QCOMPARE(shannonEntropy("ab"), 1.0);
    QCOMPARE(shannonEntropy("abcd"), 2.0);
    // Counts per code point, divided by bytes: "é" is one rune of two bytes, so "éé" has
    // frequency 2/4 for its only symbol: -0.5*log2(0.5) = 0.5 (not 0 as a per-rune count would give).
    QCOMPARE(shannonEntropy("\xC3\xA9\xC3\xA9"), 0.5);
}

void tst_SecretScanner::masking()
{
    QCOMPARE(maskSecret("short"), std::string("*****"));
    QCOMPARE(maskSecret("0123456789abcdefghij"), std::string("0123*****"));
    QVERIFY(m_default);
    const std::string secret = githubPat();
    const auto findings = scanText(*m_default, "token: " + secret + "\n");
    QCOMPARE(findings.size(), std::size_t(1));
    const SecretFinding &f = findings.front();
    for (const std::string *field : {&f.masked, &f.fingerprint, &f.file, &f.description})
        QVERIFY(field->find(secret.substr(4)) == std::string::npos);
    QCOMPARE(f.masked, std::string("ghp_*****"));
}

void tst_SecretScanner::lineNumbersAndFingerprint()
{
    QVERIFY(m_default);
    auto scratch = m_default->makeScratch();
    const std::string text = "one\ntwo\n  key = " + awsKey() + "\n";
    Fragment fragment;
    fragment.text = text;
    fragment.path = "src/a.py";
    fragment.commit = "c0ffee";
    fragment.startLine = 10;
    const auto findings = m_default->scan(fragment, *scratch);
    QCOMPARE(findings.size(), std::size_t(1));
    QCOMPARE(findings[0].line, 12);
    QCOMPARE(findings[0].column, 9);
    QCOMPARE(findings[0].fingerprint, std::string("c0ffee:src/a.py:aws-access-token:12"));
    // Global allowlist paths skip whole files (e.g. lock files).
    fragment.path = "web/package-lock.json";
    QVERIFY(m_default->scan(fragment, *scratch).empty());
}

void tst_SecretScanner::threadsGiveTheSameFindings()
{
    QTemporaryDir dir;
    for (int i = 0; i < 64; ++i) {
        QFile f(dir.filePath(QStringLiteral("d%1/f%2.txt").arg(i % 5).arg(i)));
        QDir().mkpath(QFileInfo(f).path());
        QVERIFY(f.open(QIODevice::WriteOnly));
        for (int line = 0; line < 200; ++line)
            f.write(line == i ? QByteArray::fromStdString("key = " + awsKey() + "\n") : QByteArray("int x = 1;\n"));
        if (i % 7 == 0)
            f.write(QByteArray::fromStdString(githubPat() + "\n"));
    }
    auto targets = collectPath(dir.path(), ScanLimits());
    QVERIFY(targets);
    auto render = [](const ScanOutcome &o) {
        QStringList out;
        for (const auto &f : o.findings)
            out.append(QString::fromStdString(f.fingerprint));
        out.sort();
        return out;
    };
    const ScanOutcome one = scanTargets(*m_default, *targets, ScanLimits(), 1);
    const ScanOutcome four = scanTargets(*m_default, *targets, ScanLimits(), 4);
    QCOMPARE(int(one.findings.size()), 64 + 10);
    QCOMPARE(render(four), render(one));
    QCOMPARE(four.files, 64);
    QCOMPARE(four.bytes, one.bytes);
}

// The refinement pass bounds where RE2 searches for rules of unbounded width
// (ScanOptions::boundSearch); it must never change a finding. Every labelled example, alone and run together in one fragment in several
// orders, between lines of source text, with KELVIN SIGN / LONG S folds, CRLF and
// adjacent matches.
void tst_SecretScanner::boundedSearchGivesTheSameFindings()
{
    QVERIFY(m_default);
    QFile file(QStringLiteral(SLUICE_SECRETS_DATA "/corpus.jsonl"));
    QVERIFY2(file.open(QIODevice::ReadOnly), qPrintable(file.fileName()));
    std::vector<std::string> examples;
    while (!file.atEnd()) {
        const QByteArray raw = file.readLine().trimmed();
        if (!raw.isEmpty())
            examples.push_back(QJsonDocument::fromJson(raw).object().value(QLatin1String("text")).toString().toStdString());
    }
    QVERIFY(examples.size() > 500);
    const std::string filler = "int key, value; // the key of the map\nconst char *token = lookup(\"name\", 42);\n"
                               "  password: \"short\"\nauth = None\n";
    std::vector<std::string> fragments = examples;
    std::string forward, backward, mixed, folded, crlf, adjacent;
    for (std::size_t i = 0; i < examples.size(); ++i) {
        forward += examples[i] + "\n";
        backward += examples[examples.size() - 1 - i] + "\n";
        mixed += filler + examples[(i * 7) % examples.size()] + "\n" + filler;
        std::string f = examples[i];
        for (std::size_t at = f.find('k'); at != std::string::npos; at = f.find('k', at + 3))
            f.replace(at, 1, "\xE2\x84\xAA"); // KELVIN SIGN, folds to k in (?i)
        folded += f + "\n" + (i % 2 ? "s\xC5\xBF\n" : "");
        std::string c = examples[i];
        for (std::size_t at = c.find('\n'); at != std::string::npos; at = c.find('\n', at + 2))
            c.replace(at, 1, "\r\n");
        crlf += c + "\r\n";
        adjacent += examples[i];
    }
    for (std::string *s : {&forward, &backward, &mixed, &folded, &crlf, &adjacent})
        fragments.push_back(*s);
    ScanOptions bounded;
    ScanOptions whole;
    whole.boundSearch = false;
    auto scratch = m_default->makeScratch();
    auto render = [](const std::vector<SecretFinding> &found) {
        QStringList out;
        for (const SecretFinding &f : found)
            out.append(QStringLiteral("%1 %2:%3-%4 %5 %6")
                           .arg(QString::fromStdString(f.ruleId))
                           .arg(f.line)
                           .arg(f.column)
                           .arg(f.endLine)
                           .arg(QString::fromStdString(f.masked), QString::fromStdString(f.fingerprint)));
        return out;
    };
    int total = 0;
    for (std::size_t i = 0; i < fragments.size(); ++i) {
        for (bool dedupe : {true, false}) {
            bounded.dedupeGeneric = whole.dedupeGeneric = dedupe;
            Fragment fragment;
            fragment.text = fragments[i];
            fragment.path = "src/config.txt";
            const QStringList a = render(m_default->scan(fragment, *scratch, bounded));
            const QStringList b = render(m_default->scan(fragment, *scratch, whole));
            if (a != b)
                QFAIL(qPrintable(QStringLiteral("fragment %1 (dedupe %2): bounded\n%3\nwhole\n%4")
                                     .arg(i)
                                     .arg(dedupe)
                                     .arg(a.join(QLatin1Char('\n')), b.join(QLatin1Char('\n')))));
            total += int(a.size());
        }
    }
    QVERIFY(total > 1000);
}

void tst_SecretScanner::corpus()
{
    QVERIFY(m_default);
    QFile file(QStringLiteral(SLUICE_SECRETS_DATA "/corpus.jsonl"));
    QVERIFY2(file.open(QIODevice::ReadOnly), qPrintable(file.fileName()));
    struct Counts {
        int tp = 0, fn = 0, fp = 0, tn = 0;
    };
    std::map<std::string, Counts> perRule;
    QStringList wrong;
    int lines = 0;
    auto scratch = m_default->makeScratch();
    ScanOptions options;
    options.dedupeGeneric = false; // labels are per rule, as gitleaks validates each rule alone
    while (!file.atEnd()) {
        const QByteArray raw = file.readLine().trimmed();
        if (raw.isEmpty())
            continue;
        ++lines;
        const QJsonObject record = QJsonDocument::fromJson(raw).object();
        const std::string rule = record.value(QLatin1String("rule_id")).toString().toStdString();
        const std::string text = record.value(QLatin1String("text")).toString().toStdString();
        const bool expectSecret = record.value(QLatin1String("expect")).toString() == QLatin1String("secret");
        Fragment fragment;
        fragment.text = text;
        fragment.path = record.value(QLatin1String("path")).toString().toStdString();
        const auto findings = m_default->scan(fragment, *scratch, options);
        const bool fired = std::any_of(findings.begin(), findings.end(), [&](const SecretFinding &f) { return f.ruleId == rule; });
        Counts &c = perRule[rule];
        if (expectSecret && fired)
            ++c.tp;
        else if (expectSecret)
            ++c.fn;
        else if (fired)
            ++c.fp;
        else
            ++c.tn;
        if (fired != expectSecret)
            wrong.append(QStringLiteral("line %1: rule %2 expected %3").arg(lines).arg(QString::fromStdString(rule),
                                                                                         expectSecret ? QStringLiteral("secret") : QStringLiteral("clean")));
    }
    QCOMPARE(lines, 631);
    QCOMPARE(int(perRule.size()), 94);
    int tp = 0, fn = 0, fp = 0, tn = 0;
    QString table = QStringLiteral("\n%1 %2 %3 %4 %5 %6 %7\n")
                        .arg(QStringLiteral("rule"), -45).arg(QStringLiteral("tp"), 4).arg(QStringLiteral("fn"), 4)
                        .arg(QStringLiteral("fp"), 4).arg(QStringLiteral("tn"), 4).arg(QStringLiteral("precision"), 10)
                        .arg(QStringLiteral("recall"), 8);
    for (const auto &[rule, c] : perRule) {
        tp += c.tp, fn += c.fn, fp += c.fp, tn += c.tn;
        const QString precision = c.tp + c.fp ? QString::number(double(c.tp) / (c.tp + c.fp), 'f', 3) : QStringLiteral("-");
        const QString recall = c.tp + c.fn ? QString::number(double(c.tp) / (c.tp + c.fn), 'f', 3) : QStringLiteral("-");
        table += QStringLiteral("%1 %2 %3 %4 %5 %6 %7\n").arg(QString::fromStdString(rule), -45).arg(c.tp, 4).arg(c.fn, 4)
                     .arg(c.fp, 4).arg(c.tn, 4).arg(precision, 10).arg(recall, 8);
    }
    table += QStringLiteral("%1 %2 %3 %4 %5 %6 %7")
                 .arg(QStringLiteral("all"), -45).arg(tp, 4).arg(fn, 4).arg(fp, 4).arg(tn, 4)
                 .arg(QString::number(tp + fp ? double(tp) / (tp + fp) : 0, 'f', 3), 10)
                 .arg(QString::number(tp + fn ? double(tp) / (tp + fn) : 0, 'f', 3), 8);
    qInfo().noquote() << table;
    QVERIFY2(wrong.isEmpty(), qPrintable(QStringLiteral("%1 label(s) do not hold:\n").arg(wrong.size()) + wrong.join(QLatin1Char('\n'))));
}

// A rule set loaded from the compiled-rules cache compiles its RE2 programs on first use
// (a warm start compiles none of them): every finding of the labelled corpus is the same,
// field by field, as with the rules compiled at once.
void tst_SecretScanner::cachedRulesCompileLazilyWithTheSameFindings()
{
    QTemporaryDir cache;
    QVERIFY(cache.isValid());
    auto rules = defaultRuleSet();
    QVERIFY(rules);
    CompileOptions options;
    options.cacheDirectory = cache.path();
    auto eager = SecretScanner::compile(*rules, options);
    QVERIFY(eager);
    QVERIFY2((*eager)->cacheStatus().startsWith(QLatin1String("compiled, saved to ")), qPrintable((*eager)->cacheStatus()));
    auto lazy = SecretScanner::compile(*rules, options);
    QVERIFY(lazy);
    QVERIFY2((*lazy)->cacheStatus().startsWith(QLatin1String("loaded from ")), qPrintable((*lazy)->cacheStatus()));
    QCOMPARE((*lazy)->diagnostics(), (*eager)->diagnostics());
    QCOMPARE((*lazy)->prefilteredRuleCount(), (*eager)->prefilteredRuleCount());

    QFile file(QStringLiteral(SLUICE_SECRETS_DATA "/corpus.jsonl"));
    QVERIFY(file.open(QIODevice::ReadOnly));
    auto eagerScratch = (*eager)->makeScratch();
    auto lazyScratch = (*lazy)->makeScratch();
    auto describe = [](const std::vector<SecretFinding> &findings) {
        QStringList out;
        for (const SecretFinding &f : findings)
            out.append(QStringLiteral("%1 %2:%3-%4 %5 %6 %7")
                           .arg(QString::fromStdString(f.ruleId)).arg(f.line).arg(f.column).arg(f.endLine)
                           .arg(QString::fromStdString(f.masked), QString::fromStdString(f.fingerprint))
                           .arg(f.entropy, 0, 'f', 6));
        return out;
    };
    int records = 0, found = 0;
    while (!file.atEnd()) {
        const QByteArray raw = file.readLine().trimmed();
        if (raw.isEmpty())
            continue;
        const QJsonObject record = QJsonDocument::fromJson(raw).object();
        const std::string text = record.value(QLatin1String("text")).toString().toStdString();
        Fragment fragment;
        fragment.text = text;
        fragment.path = record.value(QLatin1String("path")).toString().toStdString();
        const FragmentScan fromLazy = (*lazy)->scanFragment(fragment, *lazyScratch);
        QVERIFY(!fromLazy.incomplete);
        const QStringList expected = describe((*eager)->scan(fragment, *eagerScratch));
        QCOMPARE(describe(fromLazy.findings), expected);
        ++records;
        found += int(expected.size());
    }
    QCOMPARE(records, 631);
    QVERIFY(found > 300);
}

// The cache key covers every pattern RE2 compiles, not only the rule regexes: a cache file
// says "these patterns all compiled", so a rule set that differs in an allowlist, a path or
// a stopword must not be taken for it (it would skip the check that names a broken pattern).
void tst_SecretScanner::cacheKeyCoversEveryPattern()
{
    QTemporaryDir cache;
    QVERIFY(cache.isValid());
    CompileOptions options;
    options.cacheDirectory = cache.path();
    const std::string base = "[[rules]]\nid = 'zz'\nregex = '''zz_[a-z0-9]{12}'''\npath = '''\\.txt$'''\n"
                             "[[rules.allowlists]]\nregexes = ['''zz_allowed''']\nstopwords = ['sample']\n";
    auto load = [](const std::string &text) {
        auto rules = loadRuleText(text, QStringLiteral("k.toml"), QString());
        if (!rules)
            qWarning("%s", qPrintable(rules.error().toString()));
        return rules;
    };
    auto rules = load(base);
    QVERIFY(rules);
    auto first = SecretScanner::compile(*rules, options);
    QVERIFY(first);
    QVERIFY((*first)->cacheStatus().startsWith(QLatin1String("compiled, saved to ")));
    QVERIFY((*SecretScanner::compile(*rules, options))->cacheStatus().startsWith(QLatin1String("loaded from ")));

    struct Variant {
        const char *what;
        std::string from, to;
    };
    const std::vector<Variant> broken{
        {"allowlist regex", "'''zz_allowed'''", "'''zz_(allowed'''"},
        {"path", "'''\\.txt$'''", "'''(\\.txt$'''"},
    };
    for (const Variant &v : broken) {
        std::string text = base;
        text.replace(text.find(v.from), v.from.size(), v.to);
        auto changed = load(text);
        QVERIFY2(changed, v.what);
        auto scanner = SecretScanner::compile(*changed, options);
        QVERIFY2(!scanner, v.what);
        QVERIFY2(scanner.error().message.contains(QLatin1String("k.toml")), qPrintable(scanner.error().message));
    }
    // A changed stopword is another rule set: compiled (and cached) on its own.
    std::string text = base;
    text.replace(text.find("'sample'"), 8, "'example'");
    auto changed = load(text);
    QVERIFY(changed);
    auto other = SecretScanner::compile(*changed, options);
    QVERIFY(other);
    QVERIFY2((*other)->cacheStatus().startsWith(QLatin1String("compiled, saved to ")), qPrintable((*other)->cacheStatus()));
    QCOMPARE(ruleIds(scanText(**other, "a = zz_sample123abcd\n")), ids({"zz"}));
    QCOMPARE(ruleIds(scanText(**first, "a = zz_sample123abcd\n")), QStringList());
}

// Every rule set writes a file (the daemon one per revision of a project's rules): writing
// one removes all but the 16 newest, never other files, and never the one just written.
void tst_SecretScanner::cacheKeepsTheNewestFiles()
{
    QTemporaryDir cache;
    QVERIFY(cache.isValid());
    const QDateTime old = QDateTime::currentDateTime().addDays(-1);
    for (int i = 0; i < 20; ++i) {
        QFile f(QStringLiteral("%1/secretscan-old%2.hsdb").arg(cache.path()).arg(i, 2, 10, QLatin1Char('0')));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("x");
        QVERIFY(f.flush()); // written before the time is set, or closing would set it again
        QVERIFY(f.setFileTime(old.addSecs(i), QFileDevice::FileModificationTime));
    }
    QFile other(cache.path() + QStringLiteral("/notes.txt"));
    QVERIFY(other.open(QIODevice::WriteOnly));
    other.close();
    auto rules = loadRuleText("[[rules]]\nid = 'ev'\nregex = '''ev_[a-z]{10}'''\n", QStringLiteral("e.toml"), QString());
    QVERIFY(rules);
    CompileOptions options;
    options.cacheDirectory = cache.path();
    auto scanner = SecretScanner::compile(*rules, options);
    QVERIFY(scanner);
    const QString written = (*scanner)->cacheStatus().mid(QStringLiteral("compiled, saved to ").size());
    QVERIFY2(QFile::exists(written), qPrintable((*scanner)->cacheStatus()));
    const QStringList left = QDir(cache.path()).entryList({QStringLiteral("secretscan-*.hsdb")}, QDir::Files, QDir::Name);
    QCOMPARE(left.size(), 16);
    QVERIFY(left.contains(QFileInfo(written).fileName()));
    QVERIFY(!left.contains(QStringLiteral("secretscan-old04.hsdb"))); // the oldest five went
    QVERIFY(left.contains(QStringLiteral("secretscan-old05.hsdb")));
    QVERIFY(other.exists());
}

// One compiled scanner per rule set and process, for as long as anybody holds it.
void tst_SecretScanner::sharedIsOneScannerPerRuleSet()
{
    auto rules = loadRuleText("[[rules]]\nid = 'sh'\nregex = '''sh_[a-z]{10}'''\n", QStringLiteral("s.toml"), QString());
    auto otherRules = loadRuleText("[[rules]]\nid = 'sh'\nregex = '''sh_[a-z]{11}'''\n", QStringLiteral("s.toml"), QString());
    QVERIFY(rules && otherRules);
    auto a = SecretScanner::shared(*rules, CompileOptions{});
    auto b = SecretScanner::shared(*rules, CompileOptions{});
    auto c = SecretScanner::shared(*otherRules, CompileOptions{});
    QVERIFY(a && b && c);
    QCOMPARE(a->get(), b->get());
    QVERIFY(a->get() != c->get());
    QCOMPARE(ruleIds(scanText(**b, "x sh_abcdefghij\n")), ids({"sh"}));
    QVERIFY(ruleSetDigest(*rules) != ruleSetDigest(*otherRules));
    // A rule's origin is part of its messages: another file name, another scanner.
    auto moved = loadRuleText("[[rules]]\nid = 'sh'\nregex = '''sh_[a-z]{10}'''\n", QStringLiteral("t.toml"), QString());
    QVERIFY(moved);
    QVERIFY(ruleSetDigest(*moved) != ruleSetDigest(*rules));
}

// One line holding thousands of matches (the issue's quadratic case, and what a minified file
// looks like): every match found where it is, the line's allow marker and the line
// allowlists judged for the whole line, as on a short line.
void tst_SecretScanner::longLinesKeepLineSemantics()
{
    QVERIFY(m_default);
    const std::string unit = "x = \"" + awsKey() + "\"; ";
    std::string line;
    for (int i = 0; i < 3000; ++i)
        line += unit;
    const std::string text = line + "\n" + line + " # gitleaks:allow\n" + line + "\n";
    Fragment fragment;
    fragment.text = text;
    fragment.path = "min.js";
    auto scratch = m_default->makeScratch();
    const FragmentScan all = m_default->scanFragment(fragment, *scratch);
    QVERIFY(!all.capped);
    QCOMPARE(int(all.findings.size()), 6000);
    for (int i = 0; i < 6000; ++i) {
        const SecretFinding &f = all.findings[std::size_t(i)];
        QCOMPARE(f.ruleId, std::string("aws-access-token"));
        QCOMPARE(f.line, i < 3000 ? 1 : 3); // line 2 carries the allow marker
        QCOMPARE(f.column, int((i % 3000) * unit.size()) + 6);
    }

    // A cap stops the fragment there, and says so.
    ScanOptions capped;
    capped.maxFindings = 100;
    const FragmentScan some = m_default->scanFragment(fragment, *scratch, capped);
    QVERIFY(some.capped);
    QCOMPARE(int(some.findings.size()), 100);
    QCOMPARE(some.findings.back().column, 99 * int(unit.size()) + 6);
}

void tst_SecretScanner::utf16Detection_data()
{
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<bool>("text");
    QTest::addColumn<QString>("decoded");
    auto encode = [](const QString &s, bool bigEndian, bool bom) {
        QByteArray out = bom ? (bigEndian ? QByteArray("\xFE\xFF") : QByteArray("\xFF\xFE")) : QByteArray();
        for (QChar c : s) {
            const char hi = char(c.unicode() >> 8), lo = char(c.unicode() & 0xFF);
            out += bigEndian ? QByteArray(1, hi) + lo : QByteArray(1, lo) + hi;
        }
        return out;
    };
    const QString sample = QStringLiteral("key = \"v\u00e9rit\u00e9\"\nsecond line\n");
    QTest::newRow("LE with BOM") << encode(sample, false, true) << true << sample;
    QTest::newRow("BE with BOM") << encode(sample, true, true) << true << sample;
    QTest::newRow("LE without BOM") << encode(sample, false, false) << true << sample;
    QTest::newRow("BE without BOM") << encode(sample, true, false) << true << sample;
    QTest::newRow("leading NUL, then ASCII") << QByteArray("\0key = value\n", 13) << false << QString();
    QTest::newRow("binary") << QByteArray("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0", 20) << false << QString();
    QTest::newRow("NUL code unit") << encode(QStringLiteral("ab"), false, true) + QByteArray(2, '\0') + encode(QStringLiteral("cd"), false, false)
                                   << false << QString();
    QTest::newRow("one byte") << QByteArray(1, '\0') << false << QString();
}

void tst_SecretScanner::utf16Detection()
{
    QFETCH(QByteArray, bytes);
    QFETCH(bool, text);
    QFETCH(QString, decoded);
    const auto result = decodeUtf16Text(std::string_view(bytes.constData(), std::size_t(bytes.size())));
    QCOMPARE(result.has_value(), text);
    if (text)
        QCOMPARE(QString::fromStdString(*result), decoded);
}

// Found by fuzz_diff_reader: a combined-diff line of nothing but '@' made the merge reader
// size a string by npos and throw std::length_error out of the scan. Malformed diff text is
// an error naming the file, never a crash.
void tst_SecretScanner::diffReadersRefuseMalformedText_data()
{
    QTest::addColumn<QByteArray>("log");
    QTest::addColumn<bool>("merge");
    const QByteArray commit = QByteArray(1, '\0') + "0123456789abcdef0123456789abcdef01234567\n";
    QTest::newRow("bare @@@") << commit + "diff --cc a.txt\n--- a/a.txt\n+++ b/a.txt\n@@@\n" << true;
    QTest::newRow("@@@@@@ only") << commit + "diff --cc a.txt\n+++ b/a.txt\n@@@@@@\n+x\n" << true;
    QTest::newRow("merge header, no ranges") << commit + "diff --cc a.txt\n+++ b/a.txt\n@@@ -x +y @@@\n" << true;
    QTest::newRow("hunk header, no ranges") << commit + "diff --git a/a b/a\n+++ b/a\n@@ -1 @@\n+x\n" << false;
    QTest::newRow("hunk header, huge numbers") << commit + "diff --git a/a b/a\n+++ b/a\n@@ -99999999999999999999 +1,1 @@\n+x\n" << false;
    QTest::newRow("Binary files, cut short") << commit + "diff --git a/a b/a\nBinary files a\n" << false;
}

void tst_SecretScanner::diffReadersRefuseMalformedText()
{
    QFETCH(QByteArray, log);
    QFETCH(bool, merge);
    ScanTargets targets;
    const std::string_view text(log.constData(), std::size_t(log.size()));
    const Result<void> read = merge ? readMergePatch(text, ScanLimits(), targets) : readLogPatch(text, ScanLimits(), targets);
    if (!read)
        QVERIFY2(read.error().message.contains(QLatin1String("a.txt")) || read.error().message.contains(QLatin1String("hunk header")),
                 qPrintable(read.error().message));
}

QTEST_GUILESS_MAIN(tst_SecretScanner)
#include "tst_secretscanner.moc"
