// SPDX-License-Identifier: Apache-2.0
// `sluice scan` as people and hooks run it: the real executable on real files and a real git
// repository; exit codes 0/1/2, text and JSON output, never the secret.
#include "gitfixture.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

using namespace SecurityTest;

namespace {
struct Run {
    int exitCode = -1;
    QByteArray out;
    QByteArray err;
};

// The compiled-rules cache of every run goes here, not into the user's ~/.cache.
QTemporaryDir &cacheHome()
{
    static QTemporaryDir dir;
    return dir;
}

Run sluice(const QStringList &args, const QString &cwd = QString())
{
    QProcess p;
    if (!cwd.isEmpty())
        p.setWorkingDirectory(cwd);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("XDG_CACHE_HOME"), cacheHome().path());
    p.setProcessEnvironment(env);
    p.start(QStringLiteral(SLUICE_EXECUTABLE), QStringList{QStringLiteral("scan")} + args);
    Run r;
    if (!p.waitForFinished(60000))
        return r;
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
    return r;
}
} // namespace

class tst_SecurityScanCli : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void pathExitCodes();
    void gitRange();
    void errors();
    void unreadableFilesAreNamed();
    void compiledRulesCache();
};

void tst_SecurityScanCli::pathExitCodes()
{
    QTemporaryDir dir;
    GitRepo files(dir.filePath(QStringLiteral("tree")));
    QVERIFY(files.write(QStringLiteral("clean.py"), "print('hello')\n"));
    Run r = sluice({files.path()});
    QCOMPARE(r.exitCode, 0);

    QVERIFY(files.write(QStringLiteral("src/conf.js"), "const a = 1;\nconst t = '" + githubPat() + "';\n"));
    r = sluice({files.path()});
    QCOMPARE(r.exitCode, 1);
    QVERIFY2(r.out.startsWith("src/conf.js:2: [github-pat] ghp_*****"), r.out.constData());
    QVERIFY(!r.out.contains(githubPat().mid(4)) && !r.err.contains(githubPat().mid(4)));

    r = sluice({QStringLiteral("--json"), files.path()});
    QCOMPARE(r.exitCode, 1);
    const QJsonObject json = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(json.value(QLatin1String("findings")).toArray().size(), 1);
    const QJsonObject finding = json.value(QLatin1String("findings")).toArray().first().toObject();
    QCOMPARE(finding.value(QLatin1String("fingerprint")).toString(), QStringLiteral("src/conf.js:github-pat:2"));
    QCOMPARE(json.value(QLatin1String("rules")).toInt(), 222);
    QVERIFY(!r.out.contains(githubPat().mid(4)));

    // The root's .gitleaksignore and .gitleaks.toml apply.
    QVERIFY(files.write(QStringLiteral(".gitleaksignore"), "src/conf.js:github-pat:2\n"));
    QCOMPARE(sluice({files.path()}).exitCode, 0);
    QVERIFY(files.remove(QStringLiteral(".gitleaksignore")));
    QVERIFY(files.write(QStringLiteral(".gitleaks.toml"), "[extend]\nuseDefault = true\n[[allowlists]]\npaths = ['''^src/''']\n"));
    QCOMPARE(sluice({files.path()}).exitCode, 0);
    // --rules replaces them: a rule set without a GitHub rule finds nothing.
    QVERIFY(files.write(QStringLiteral("../only-aws.toml"), "[[rules]]\nid = 'aws'\nregex = '''AKIA[A-Z2-7]{16}'''\n"));
    QCOMPARE(sluice({QStringLiteral("--rules"), dir.filePath(QStringLiteral("only-aws.toml")), files.path()}).exitCode, 0);
}

void tst_SecurityScanCli::gitRange()
{
    QTemporaryDir dir;
    GitRepo repo(dir.filePath(QStringLiteral("repo")));
    QVERIFY(repo.init());
    QVERIFY(repo.checkout(QStringLiteral("feature"), true));
    QVERIFY(repo.write(QStringLiteral("a.env"), "AWS=" + awsKey() + "\n"));
    QVERIFY(repo.commitAll(QStringLiteral("add")));
    QVERIFY(repo.write(QStringLiteral("a.env"), "AWS=from-vault\n"));
    QVERIFY(repo.commitAll(QStringLiteral("remove")));
    Run r = sluice({QStringLiteral("main..feature")}, repo.path());
    QCOMPARE(r.exitCode, 1); // added then removed: still in the range's history
    QVERIFY2(r.out.contains("a.env:1: [aws-access-token] AKIA*****"), r.out.constData());
    QVERIFY(r.err.contains("2 commit(s) in main..feature"));
    QCOMPARE(sluice({QStringLiteral("--repo"), repo.path(), QStringLiteral("feature..main")}).exitCode, 0);
    QCOMPARE(sluice({QStringLiteral("--repo"), repo.path(), QStringLiteral("main...feature")}).exitCode, 1);
}

void tst_SecurityScanCli::errors()
{
    QTemporaryDir dir;
    QCOMPARE(sluice({}).exitCode, 2);
    QCOMPARE(sluice({dir.filePath(QStringLiteral("missing"))}).exitCode, 2);
    QCOMPARE(sluice({QStringLiteral("--repo"), dir.path(), QStringLiteral("main..nope")}).exitCode, 2);
    GitRepo files(dir.filePath(QStringLiteral("t")));
    QVERIFY(files.write(QStringLiteral("bad.toml"), "[[rules]]\nid = 'x'\n\nregex = '''(unclosed'''\n"));
    const Run r = sluice({QStringLiteral("--rules"), files.path() + QStringLiteral("/bad.toml"), files.path()});
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(r.err.contains("bad.toml:1: rule 'x': key 'regex' does not compile in RE2"), r.err.constData());
}

// A file that starts with a NUL is not read (binary), and says so in the text output too;
// a UTF-16 file is decoded and scanned.
void tst_SecurityScanCli::unreadableFilesAreNamed()
{
    QTemporaryDir dir;
    GitRepo files(dir.filePath(QStringLiteral("tree")));
    QVERIFY(files.write(QStringLiteral("hidden.txt"), QByteArray(1, '\0') + "key = " + awsKey() + "\n"));
    Run r = sluice({files.path()});
    QCOMPARE(r.exitCode, 0);
    QVERIFY2(r.err.contains("warning: hidden.txt: binary, not scanned for secrets"), r.err.constData());
    QVERIFY(r.err.contains("1 file(s) not scanned (binary)"));

    QByteArray utf16 = "\xFF\xFE";
    for (char c : QByteArray("# settings\nkey = " + awsKey() + "\n"))
        utf16 += QByteArray(1, c) + QByteArray(1, '\0');
    QVERIFY(files.write(QStringLiteral("settings.ini"), utf16));
    r = sluice({files.path()});
    QCOMPARE(r.exitCode, 1);
    QVERIFY2(r.out.startsWith("settings.ini:2: [aws-access-token] AKIA*****"), r.out.constData());
    QVERIFY(r.err.contains("note: settings.ini: UTF-16, scanned after decoding"));
    r = sluice({QStringLiteral("--json"), files.path()});
    const QJsonObject json = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(json.value(QLatin1String("binarySkipped")).toArray(), QJsonArray{QStringLiteral("hidden.txt")});
    QCOMPARE(json.value(QLatin1String("decoded")).toArray(), QJsonArray{QStringLiteral("settings.ini")});
}

// The Vectorscan database is cached by the rules' hash: compiled once, then loaded; a file
// that fails its checks is compiled again and replaced, never used.
void tst_SecurityScanCli::compiledRulesCache()
{
    QTemporaryDir dir;
    GitRepo files(dir.filePath(QStringLiteral("tree")));
    QVERIFY(files.write(QStringLiteral("a.txt"), "key = " + awsKey() + "\n"));
    QVERIFY(files.write(QStringLiteral("../rules.toml"), "[[rules]]\nid = 'aws'\nregex = '''AKIA[A-Z2-7]{16}'''\nkeywords = ['akia']\n"));
    const QStringList args{QStringLiteral("--json"), QStringLiteral("--rules"), dir.filePath(QStringLiteral("rules.toml")), files.path()};
    auto cache = [](const Run &run) { return QJsonDocument::fromJson(run.out).object().value(QLatin1String("cache")).toString(); };
    auto findings = [](const Run &run) { return QJsonDocument::fromJson(run.out).object().value(QLatin1String("findings")).toArray().size(); };

    const Run first = sluice(args);
    QCOMPARE(first.exitCode, 1);
    QVERIFY2(cache(first).startsWith(QLatin1String("compiled, saved to ") + cacheHome().path() + QLatin1String("/sluice/secretscan-")),
             qPrintable(cache(first)));
    const QString file = cache(first).mid(QStringLiteral("compiled, saved to ").size());
    QVERIFY(QFileInfo(file).isFile());
    QCOMPARE(QFileInfo(file).permissions() & (QFileDevice::WriteGroup | QFileDevice::WriteOther), QFileDevice::Permissions());

    const Run second = sluice(args);
    QCOMPARE(cache(second), QStringLiteral("loaded from %1").arg(file));
    QCOMPARE(findings(second), 1);

    // One byte flipped in the middle: refused, compiled again, rewritten, same findings.
    QFile f(file);
    QVERIFY(f.open(QIODevice::ReadWrite));
    QByteArray bytes = f.readAll();
    bytes[bytes.size() / 2] = char(bytes[bytes.size() / 2] ^ 0x40);
    QVERIFY(f.seek(0) && f.write(bytes) == bytes.size());
    f.close();
    const Run corrupt = sluice(args);
    QVERIFY2(cache(corrupt).contains(QLatin1String("refused (checksum mismatch); compiled, saved to")), qPrintable(cache(corrupt)));
    QCOMPARE(findings(corrupt), 1);
    QCOMPARE(cache(sluice(args)), QStringLiteral("loaded from %1").arg(file));

    // Cut short, or writable by others: refused as well.
    QVERIFY(f.resize(100));
    QVERIFY2(cache(sluice(args)).contains(QLatin1String("refused (checksum mismatch)")), "short file");
    QVERIFY(QFile::setPermissions(file, QFileInfo(file).permissions() | QFileDevice::WriteOther));
    QVERIFY(cache(sluice(args)).contains(QLatin1String("refused (not a regular file of this user, or writable by others)")));
    QVERIFY(QFile::remove(file));

    // Other rules, another file; --no-cache touches none.
    QVERIFY(files.write(QStringLiteral("../rules.toml"), "[[rules]]\nid = 'aws2'\nkeywords = ['akia']\nregex = '''AKIA[A-Z2-7]{16}'''\n"));
    const Run other = sluice(args);
    QVERIFY2(cache(other).startsWith(QLatin1String("compiled, saved to ")), other.out.left(300).constData());
    QVERIFY(cache(other) != QStringLiteral("compiled, saved to ") + file);
    QCOMPARE(cache(sluice(QStringList{QStringLiteral("--no-cache")} + args)), QString());
}

QTEST_GUILESS_MAIN(tst_SecurityScanCli)
#include "tst_securityscancli.moc"
