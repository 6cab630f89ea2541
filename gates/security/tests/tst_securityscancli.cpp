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

Run sluice(const QStringList &args, const QString &cwd = QString())
{
    QProcess p;
    if (!cwd.isEmpty())
        p.setWorkingDirectory(cwd);
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

QTEST_GUILESS_MAIN(tst_SecurityScanCli)
#include "tst_securityscancli.moc"
