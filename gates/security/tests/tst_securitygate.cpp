// SPDX-License-Identifier: Apache-2.0
// The security gate as the host sees it: the real plugin library, real git repositories
// made here, real child processes as auditors (a script replaying recorded reports with
// every exit code), and the report it writes. Every verdict, report and log line is
// searched for the planted secrets.
#include "gitfixture.h"

#include <sluice/testsupport.h>

#include <QDate>
#include <QJsonArray>
#include <QJsonDocument>
#include <QMutex>
#include <QTemporaryDir>
#include <QTest>

using namespace Sluice;
using namespace SecurityTest;

namespace {

QMutex logMutex;
QStringList capturedLogs;
QtMessageHandler previousHandler = nullptr;

void captureLog(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    {
        QMutexLocker lock(&logMutex);
        capturedLogs.append(message);
    }
    if (previousHandler)
        previousHandler(type, context, message);
}

QString data(const char *name)
{
    return QStringLiteral(SECURITY_TEST_DIR "/data/") + QLatin1String(name);
}

QByteArray auditor(const char *tool, const QByteArray &report, int exitCode, const char *mode = "", const char *extra = "")
{
    return QByteArray("  - tool: ") + tool + "\n    command: [sh, " SECURITY_TEST_DIR "/fake-auditor.sh, '" + report + "', '"
           + QByteArray::number(exitCode) + "', '" + mode + "']\n    requires: ''\n" + extra;
}

struct Evaluation {
    GateVerdict verdict;
    QString report;
    QString reportPath;
};

} // namespace

class tst_SecurityGate : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void init();
    void metadata();
    void cleanBranchPasses();
    void secretInBranchFailsMasked();
    void secretOnTargetDoesNotFail();
    void secretAddedThenRemovedFails();
    void secretWrittenByAMergeFails();
    void cleanMergeAddsNoFindingOfItsOwn();
    void projectRulesComeFromTarget();
    void ignoreFileAndInlineMarker();
    void binaryFilesSkipped();
    void unscannableAndUtf16Files();
    void secretsBlockOff();
    void largeFilesBounded();
    void scannerErrorsAreErrors_data();
    void scannerErrorsAreErrors();
    void disabledSkips();
    void audit_data();
    void audit();
    void refusedSettings_data();
    void refusedSettings();

private:
    Evaluation evaluate(const QByteArray &settings, const QString &targetBranch = QStringLiteral("main"));
    void verifyNoSecret(const Evaluation &e);
    // A repository: main with one commit, and branch "task" checked out.
    bool makeRepo();

    Test::LoadedPlugin m_plugin;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<GitRepo> m_repo;
    QString m_smallRules;
};

void tst_SecurityGate::initTestCase()
{
    auto plugin = Test::loadPlugin(QStringLiteral(SECURITY_PLUGIN_FILE));
    QVERIFY2(plugin, qPrintable(plugin ? QString() : plugin.error().toString()));
    m_plugin = *plugin;
    previousHandler = qInstallMessageHandler(captureLog);
}

void tst_SecurityGate::cleanupTestCase()
{
    qInstallMessageHandler(previousHandler);
}

void tst_SecurityGate::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    m_repo = std::make_unique<GitRepo>(m_dir->filePath(QStringLiteral("repo")));
    // A small rule file keeps audit tests fast: compiling the default rules takes ~1 s.
    m_smallRules = m_dir->filePath(QStringLiteral("small.toml"));
    QFile rules(m_smallRules);
    QVERIFY(rules.open(QIODevice::WriteOnly));
    rules.write("[[rules]]\nid = 'aws-access-token'\nregex = '''\\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\\b'''\n"
                "keywords = ['akia']\n");
}

bool tst_SecurityGate::makeRepo()
{
    return m_repo->init() && m_repo->checkout(QStringLiteral("task"), true);
}

Evaluation tst_SecurityGate::evaluate(const QByteArray &settings, const QString &targetBranch)
{
    Evaluation e;
    ProjectInfo project = Test::fakeProject();
    project.targetBranch = targetBranch;
    auto instance = Test::createInstance(m_plugin, settings, project);
    if (!instance) {
        e.verdict = GateVerdict::error(QStringLiteral("create failed: ") + instance.error().toString());
        return e;
    }
    auto *gate = qobject_cast<Gate *>(instance->get());
    if (!gate || !(*instance)->initialize()) {
        e.verdict = GateVerdict::error(QStringLiteral("not a gate"));
        return e;
    }
    GateRequest request;
    request.task.id = 7;
    request.task.branch = QStringLiteral("task");
    request.fromStage = QStringLiteral("review");
    request.toStage = QStringLiteral("done");
    request.worktree = m_repo->path();
    request.artifactsDir = m_dir->filePath(QStringLiteral("artifacts"));
    e.verdict = Test::evaluateGate(*gate, request, std::chrono::seconds(60));
    e.reportPath = QDir(request.artifactsDir).filePath(QStringLiteral("security-report.md"));
    QFile report(e.reportPath);
    if (report.open(QIODevice::ReadOnly))
        e.report = QString::fromUtf8(report.readAll());
    return e;
}

void tst_SecurityGate::verifyNoSecret(const Evaluation &e)
{
    QStringList logs;
    {
        QMutexLocker lock(&logMutex);
        logs = capturedLogs;
    }
    const QByteArray verdictJson = QJsonDocument(e.verdict.toJson()).toJson(QJsonDocument::Compact);
    for (const QByteArray &secret : {awsKey(), githubPat()}) {
        // The secret without the prefix the mask may keep.
        const QByteArray tail = secret.mid(4);
        QVERIFY2(!verdictJson.contains(tail), verdictJson.constData());
        QVERIFY2(!e.report.toUtf8().contains(tail), qPrintable(e.report));
        for (const QString &line : std::as_const(logs))
            QVERIFY2(!line.toUtf8().contains(tail), qPrintable(line));
    }
}

void tst_SecurityGate::metadata()
{
    QCOMPARE(m_plugin.metaData.id(), QStringLiteral("security"));
    QCOMPARE(m_plugin.metaData.kind(), PluginKind::Gate);
    const ConfigSchema &schema = m_plugin.metaData.configSchema();
    for (const char *key : {"enabled", "secrets_block", "rules", "project_rules", "ignore_file", "max_file_size", "threads",
                            "git_timeout", "severity_threshold", "strict_audit", "auditors", "audit_ignores", "report"})
        QVERIFY2(schema.entry(QLatin1String(key)), key);
    QCOMPARE(schema.entry(QStringLiteral("severity_threshold"))->defaultValue().toString(), QStringLiteral("HIGH"));
    QCOMPARE(schema.entry(QStringLiteral("secrets_block"))->defaultValue().toBool(), true);
    QCOMPARE(schema.entry(QStringLiteral("strict_audit"))->defaultValue().toBool(), false);
}

void tst_SecurityGate::cleanBranchPasses()
{
    QVERIFY(makeRepo());
    QVERIFY(m_repo->write(QStringLiteral("src/app.py"), "def main():\n    return 42\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("feature")));
    const Evaluation e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("pass"));
    QVERIFY(e.report.startsWith(QLatin1String("---\nsecurity_status: PASS\nsecrets_found: 0\nsecrets_blocking: 0\ndeps_blocking: 0\n")));
    QCOMPARE(e.verdict.evidence().value(QLatin1String("scanned")).toString(), QStringLiteral("1 commit(s) in refs/heads/main..HEAD"));
}

void tst_SecurityGate::secretInBranchFailsMasked()
{
    QVERIFY(makeRepo());
    QVERIFY(m_repo->write(QStringLiteral("src/config.py"), "import os\n\nAWS_KEY = \"" + awsKey() + "\"\ntoken = '" + githubPat() + "'\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("add config")));
    const QString commit = m_repo->head();
    const Evaluation e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    const QList<Finding> findings = e.verdict.findings();
    QCOMPARE(findings.size(), 2);
    QCOMPARE(findings[0].rule, QStringLiteral("aws-access-token"));
    QCOMPARE(findings[0].file, QStringLiteral("src/config.py"));
    QCOMPARE(findings[0].line, 3);
    QCOMPARE(findings[0].severity, QStringLiteral("blocking"));
    QVERIFY2(findings[0].message.contains(QStringLiteral("fingerprint %1:src/config.py:aws-access-token:3").arg(commit)),
             qPrintable(findings[0].message));
    QCOMPARE(findings[1].rule, QStringLiteral("github-pat"));
    QCOMPARE(findings[1].line, 4);
    QVERIFY(e.verdict.reason().startsWith(QLatin1String("2 secret(s): aws-access-token in src/config.py:3")));
    QVERIFY(e.report.startsWith(QLatin1String("---\nsecurity_status: FAIL\nsecrets_found: 2\nsecrets_blocking: 2\n")));
    QCOMPARE(e.verdict.evidence().value(QLatin1String("secrets_found")).toInt(), 2);
    QVERIFY(e.report.contains(QLatin1String("ghp_*****")));
    verifyNoSecret(e);
}

void tst_SecurityGate::secretOnTargetDoesNotFail()
{
    QVERIFY(m_repo->init());
    QVERIFY(m_repo->write(QStringLiteral("legacy.env"), "KEY=" + awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("old secret on main")));
    QVERIFY(m_repo->checkout(QStringLiteral("task"), true));
    QVERIFY(m_repo->write(QStringLiteral("legacy.env"), "KEY=" + awsKey() + "\nOTHER=1\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("touch the file, not the secret line")));
    const Evaluation e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("pass"));
    verifyNoSecret(e);
}

void tst_SecurityGate::secretAddedThenRemovedFails()
{
    QVERIFY(makeRepo());
    QVERIFY(m_repo->write(QStringLiteral("deploy.sh"), "export GH=" + githubPat() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("oops")));
    QVERIFY(m_repo->write(QStringLiteral("deploy.sh"), "export GH=$(cat /run/secrets/gh)\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("remove it again")));
    const Evaluation e = evaluate("{}");
    // The net diff is clean, but the secret is in the branch's history.
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    QCOMPARE(e.verdict.findings().size(), 1);
    QCOMPARE(e.verdict.findings()[0].rule, QStringLiteral("github-pat"));
    verifyNoSecret(e);
}

void tst_SecurityGate::secretWrittenByAMergeFails()
{
    // Both sides change line 3; the branch merges the target and resolves the conflict by
    // writing a secret that neither parent has: only the merge commit adds it.
    QVERIFY(m_repo->init());
    QVERIFY(m_repo->write(QStringLiteral("conf.env"), "A=1\nB=2\nTOKEN=unset\nD=4\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("conf")));
    QVERIFY(m_repo->checkout(QStringLiteral("task"), true));
    QVERIFY(m_repo->write(QStringLiteral("conf.env"), "A=1\nB=2\nTOKEN=from-task\nD=4\n"));
    QVERIFY(m_repo->write(QStringLiteral("notes.txt"), "one\ntwo\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("task side")));
    QVERIFY(m_repo->checkout(QStringLiteral("main")));
    QVERIFY(m_repo->write(QStringLiteral("conf.env"), "A=1\nB=2\nTOKEN=from-main\nD=4\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("main side")));
    QVERIFY(m_repo->checkout(QStringLiteral("task")));
    QVERIFY(!m_repo->git({QStringLiteral("merge"), QStringLiteral("-q"), QStringLiteral("main")})); // the conflict
    QVERIFY(m_repo->write(QStringLiteral("conf.env"), "A=1\nB=2\nTOKEN=" + awsKey() + "\nD=4\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("merge main")));
    const QString merge = m_repo->head();

    const Evaluation e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    QCOMPARE(e.verdict.findings().size(), 1);
    const Finding f = e.verdict.findings().value(0);
    QCOMPARE(f.rule, QStringLiteral("aws-access-token"));
    QCOMPARE(f.file, QStringLiteral("conf.env"));
    QCOMPARE(f.line, 3);
    QVERIFY2(e.report.contains(merge.left(12)), qPrintable(e.report));
    verifyNoSecret(e);
}

void tst_SecurityGate::cleanMergeAddsNoFindingOfItsOwn()
{
    // A secret that is on the target already comes into the branch by a clean merge: the
    // merge adds no line of its own, so nothing is the branch's doing.
    QVERIFY(m_repo->init());
    QVERIFY(m_repo->checkout(QStringLiteral("task"), true));
    QVERIFY(m_repo->write(QStringLiteral("feature.txt"), "feature\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("feature")));
    QVERIFY(m_repo->checkout(QStringLiteral("main")));
    QVERIFY(m_repo->write(QStringLiteral("legacy.sh"), "export KEY=" + awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("legacy on main")));
    QVERIFY(m_repo->checkout(QStringLiteral("task")));
    QVERIFY(m_repo->git({QStringLiteral("merge"), QStringLiteral("-q"), QStringLiteral("--no-edit"), QStringLiteral("main")}));
    // After the merge the merge-base is main's head, so the range holds only the merge; scan
    // against the older target to see the merge itself judged.
    QVERIFY(m_repo->git({QStringLiteral("branch"), QStringLiteral("old-main"), QStringLiteral("main~1")}));
    const Evaluation e = evaluate("{}", QStringLiteral("old-main"));
    QVERIFY2(GateVerdict::resultName(e.verdict.result()) == QStringLiteral("fail"), qPrintable(e.verdict.reason()));
    // The secret came with main's own commit, which the range old-main..task holds; the merge
    // adds nothing more, so it is one finding, not two.
    QCOMPARE(e.verdict.findings().size(), 1);
    const Evaluation current = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(current.verdict.result()), QStringLiteral("pass"));
    verifyNoSecret(e);
}

void tst_SecurityGate::projectRulesComeFromTarget()
{
    QVERIFY(m_repo->init());
    QVERIFY(m_repo->write(QStringLiteral(".gitleaks.toml"),
                          "[extend]\nuseDefault = true\n[[allowlists]]\npaths = ['''^fixtures/''']\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("project rules")));
    QVERIFY(m_repo->checkout(QStringLiteral("task"), true));
    QVERIFY(m_repo->write(QStringLiteral("fixtures/keys.txt"), awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("fixture")));
    QCOMPARE(GateVerdict::resultName(evaluate("{}").verdict.result()), QStringLiteral("pass"));

    // The task widens the allowlist on its own branch: that does not count before it merges.
    QVERIFY(m_repo->write(QStringLiteral(".gitleaks.toml"),
                          "[extend]\nuseDefault = true\n[[allowlists]]\npaths = ['''.*''']\n"));
    QVERIFY(m_repo->write(QStringLiteral("src/x.txt"), awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("sneaky allowlist")));
    const Evaluation e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    QCOMPARE(e.verdict.findings().size(), 1);
    QCOMPARE(e.verdict.findings()[0].file, QStringLiteral("src/x.txt"));
    QVERIFY(e.report.contains(QLatin1String(".gitleaks.toml (on refs/heads/main)")));
}

void tst_SecurityGate::ignoreFileAndInlineMarker()
{
    QVERIFY(makeRepo());
    QVERIFY(m_repo->write(QStringLiteral("a.txt"), "key " + awsKey() + "\n"));
    QVERIFY(m_repo->write(QStringLiteral("b.txt"), "key " + awsKey() + " # gitleaks:allow\n"));
    QVERIFY(m_repo->write(QStringLiteral("c.txt"), "x\nkey " + awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("three keys")));
    const QString commit = m_repo->head();
    Evaluation e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    QCOMPARE(e.verdict.findings().size(), 2); // b.txt carries the inline marker

    // Ignore both by fingerprint on the target branch: a.txt by its global form, c.txt with its commit.
    QVERIFY(m_repo->checkout(QStringLiteral("main")));
    QVERIFY(m_repo->write(QStringLiteral(".gitleaksignore"),
                          "# accepted\na.txt:aws-access-token:1\n" + commit.toUtf8() + ":c.txt:aws-access-token:2\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("ignore")));
    QVERIFY(m_repo->checkout(QStringLiteral("task")));
    e = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("pass"));
    QVERIFY(e.report.contains(QLatin1String("2 finding(s) ignored by fingerprint")));
    verifyNoSecret(e);
}

void tst_SecurityGate::binaryFilesSkipped()
{
    QVERIFY(makeRepo());
    QVERIFY(m_repo->write(QStringLiteral("blob.bin"), QByteArray("\0\1\2", 3) + awsKey() + QByteArray("\0", 1)));
    QVERIFY(m_repo->write(QStringLiteral("keys/client.p12"), QByteArray("\x30\x82\x01\0", 4)));
    QVERIFY(m_repo->commitAll(QStringLiteral("binary")));
    const Evaluation e = evaluate("{}");
    // Binary content is not scanned, but the path rule for PKCS#12 files still applies; each
    // unread file is a warning (unscannable: warn, the default), except one the rules skip
    // by its path anyway (the default global allowlist has *.bin, images, fonts).
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    QStringList findings;
    for (const Finding &f : e.verdict.findings())
        findings.append(QStringLiteral("%1 %2 %3").arg(f.rule, f.file, f.severity));
    findings.sort();
    QCOMPARE(findings, QStringList({QStringLiteral("pkcs12-file keys/client.p12 blocking"),
                                    QStringLiteral("unscannable keys/client.p12 warning")}));
    QVERIFY(e.report.contains(QLatin1String("- keys/client.p12: binary, not scanned for secrets")));
    QVERIFY(!e.report.contains(QLatin1String("- blob.bin: binary")));
    QCOMPARE(e.verdict.evidence().value(QLatin1String("unscannable")).toInt(), 1);
}

// The bypass: a secret behind a leading NUL, or in UTF-16, passed as "0 secrets".
// UTF-16 (with or without a byte order mark, either byte order) is decoded and scanned, only
// its added lines; what stays unreadable is named, and fails with unscannable: fail.
void tst_SecurityGate::unscannableAndUtf16Files()
{
    auto utf16 = [](const QByteArray &text, bool bigEndian, bool bom) {
        QByteArray out = bom ? (bigEndian ? QByteArray("\xFE\xFF") : QByteArray("\xFF\xFE")) : QByteArray();
        for (char c : text)
            out += bigEndian ? QByteArray(1, '\0') + c : QByteArray(1, c) + QByteArray(1, '\0');
        return out;
    };
    QVERIFY(m_repo->init());
    QVERIFY(m_repo->write(QStringLiteral("old.ini"), utf16("[aws]\nkey = " + awsKey() + "\n", false, true)));
    QVERIFY(m_repo->commitAll(QStringLiteral("an old secret on the target")));
    QVERIFY(m_repo->checkout(QStringLiteral("task"), true));
    QVERIFY(m_repo->write(QStringLiteral("old.ini"), utf16("[aws]\nkey = " + awsKey() + "\nregion = eu\ntoken = " + githubPat() + "\n", false, true)));
    QVERIFY(m_repo->write(QStringLiteral("le.txt"), utf16("line one\npat " + githubPat() + "\n", false, false)));
    QVERIFY(m_repo->write(QStringLiteral("be.txt"), utf16("x\ny\nkey " + awsKey() + "\n", true, true)));
    QVERIFY(m_repo->write(QStringLiteral("nul.txt"), QByteArray(1, '\0') + "key = " + awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("hidden secrets")));

    const Evaluation warn = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(warn.verdict.result()), QStringLiteral("fail"));
    QStringList found;
    for (const Finding &f : warn.verdict.findings())
        found.append(QStringLiteral("%1 %2:%3 %4").arg(f.rule, f.file).arg(f.line).arg(f.severity));
    found.sort();
    // old.ini: only the added token line (4), not the key the target already had.
    QCOMPARE(found, QStringList({QStringLiteral("aws-access-token be.txt:3 blocking"),
                                 QStringLiteral("github-pat le.txt:2 blocking"),
                                 QStringLiteral("github-pat old.ini:4 blocking"),
                                 QStringLiteral("unscannable nul.txt:0 warning")}));
    QVERIFY(warn.report.contains(QLatin1String("- nul.txt: binary, not scanned for secrets")));
    QVERIFY(warn.report.contains(QLatin1String("- le.txt: UTF-16, scanned after decoding")));
    QVERIFY(!warn.report.contains(QString::fromLatin1(awsKey().mid(4))));

    // With only the NUL file on the branch, warn passes (saying so) and fail fails.
    QVERIFY(m_repo->checkout(QStringLiteral("main")));
    QVERIFY(m_repo->checkout(QStringLiteral("only-nul"), true));
    QVERIFY(m_repo->write(QStringLiteral("nul.txt"), QByteArray(1, '\0') + "key = " + awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("hidden")));
    const Evaluation passed = evaluate("{}");
    QCOMPARE(GateVerdict::resultName(passed.verdict.result()), QStringLiteral("pass"));
    QVERIFY2(passed.verdict.reason().contains(QLatin1String("1 file(s) not scanned (binary): nul.txt")), qPrintable(passed.verdict.reason()));
    const Evaluation failed = evaluate("unscannable: fail\n");
    QCOMPARE(GateVerdict::resultName(failed.verdict.result()), QStringLiteral("fail"));
    QVERIFY2(failed.verdict.reason().contains(QLatin1String("1 file(s) cannot be scanned for secrets (unscannable: fail): nul.txt")),
             qPrintable(failed.verdict.reason()));
    QCOMPARE(failed.verdict.findings().first().severity, QStringLiteral("blocking"));
}

void tst_SecurityGate::secretsBlockOff()
{
    QVERIFY(makeRepo());
    QVERIFY(m_repo->write(QStringLiteral("a.txt"), "key " + awsKey() + "\n"));
    QVERIFY(m_repo->commitAll(QStringLiteral("key")));
    const Evaluation e = evaluate("secrets_block: false\n");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("pass"));
    QCOMPARE(e.verdict.findings().size(), 1);
    QCOMPARE(e.verdict.findings()[0].severity, QStringLiteral("warning"));
    QVERIFY(e.report.contains(QLatin1String("secrets_found: 1\nsecrets_blocking: 0\n")));
}

void tst_SecurityGate::largeFilesBounded()
{
    QVERIFY(makeRepo());
    // The first secret is inside the scanned 4 KiB, the second past it.
    QByteArray big = "early " + awsKey() + "\n";
    while (big.size() < 6000)
        big += "filler line of ordinary text\n";
    big += "late " + githubPat() + "\n";
    QVERIFY(m_repo->write(QStringLiteral("big.txt"), big));
    QVERIFY(m_repo->commitAll(QStringLiteral("big")));
    const Evaluation e = evaluate("max_file_size: 4096\n");
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("fail"));
    QCOMPARE(e.verdict.findings().size(), 1);
    QCOMPARE(e.verdict.findings()[0].rule, QStringLiteral("aws-access-token"));
    QVERIFY2(e.report.contains(QLatin1String("- big.txt: only the first 4096 bytes of its added lines were scanned")), qPrintable(e.report));
}

void tst_SecurityGate::scannerErrorsAreErrors_data()
{
    QTest::addColumn<QString>("target");
    QTest::addColumn<QByteArray>("projectRules");
    QTest::addColumn<QString>("expected");
    QTest::newRow("missing-target-branch") << QStringLiteral("release") << QByteArray() << QStringLiteral("target branch 'release' does not exist");
    QTest::newRow("broken-project-rules") << QStringLiteral("main") << QByteArray("[[rules]]\nid = 'x'\nregex = '''(open'''\n")
                                          << QStringLiteral(".gitleaks.toml (on refs/heads/main):1: rule 'x': key 'regex' does not compile");
    QTest::newRow("project-rules-extend-path") << QStringLiteral("main") << QByteArray("[extend]\npath = 'other.toml'\n")
                                               << QStringLiteral("key 'extend.path': this rule file cannot extend another file");
}

void tst_SecurityGate::scannerErrorsAreErrors()
{
    QFETCH(QString, target);
    QFETCH(QByteArray, projectRules);
    QFETCH(QString, expected);
    QVERIFY(m_repo->init());
    if (!projectRules.isEmpty()) {
        QVERIFY(m_repo->write(QStringLiteral(".gitleaks.toml"), projectRules));
        QVERIFY(m_repo->commitAll(QStringLiteral("rules")));
    }
    QVERIFY(m_repo->checkout(QStringLiteral("task"), true));
    const Evaluation e = evaluate("{}", target);
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), QStringLiteral("error"));
    QVERIFY2(e.verdict.reason().contains(expected), qPrintable(e.verdict.reason()));
    QVERIFY(e.report.startsWith(QLatin1String("---\nsecurity_status: ERROR\n")));
}

void tst_SecurityGate::disabledSkips()
{
    QVERIFY(makeRepo());
    QCOMPARE(GateVerdict::resultName(evaluate("enabled: false\n").verdict.result()), QStringLiteral("skip"));
}

void tst_SecurityGate::audit_data()
{
    QTest::addColumn<QByteArray>("settings");
    QTest::addColumn<QString>("result");
    QTest::addColumn<int>("blocking");
    QTest::addColumn<int>("warnings");
    QTest::addColumn<int>("degraded");
    QTest::addColumn<QString>("reasonPart");

    const QByteArray osvHigh = data("osv-scanner-high.json").toUtf8();
    const QByteArray osvMedium = data("osv-scanner-medium.json").toUtf8();
    const QByteArray osvClean = data("osv-scanner-clean.json").toUtf8();
    const QByteArray pipVulns = data("pip-audit-vulns.json").toUtf8();
    const QByteArray pipClean = data("pip-audit-clean.json").toUtf8();
    const QByteArray npmCritical = data("npm-audit-critical.json").toUtf8();
    const QByteArray npmError = data("npm-audit-error.json").toUtf8();
    const QByteArray future = QDate::currentDate().addYears(1).toString(Qt::ISODate).toUtf8();
    const QByteArray past = QDate::currentDate().addDays(-1).toString(Qt::ISODate).toUtf8();

    QTest::newRow("osv-0-clean") << "auditors:\n" + auditor("osv-scanner", osvClean, 0) << "pass" << 0 << 0 << 0 << "clean";
    QTest::newRow("osv-1-high-blocks") << "auditors:\n" + auditor("osv-scanner", osvHigh, 1) << "fail" << 1 << 1 << 0
                                       << "1 blocking vulnerability(ies) at or above HIGH: jinja2 2.4.1 GHSA-462w-v97r-4m45 (HIGH)";
    QTest::newRow("osv-1-medium-warns") << "auditors:\n" + auditor("osv-scanner", osvMedium, 1) << "pass" << 0 << 1 << 0 << "passed with warnings: 0 secret(s) found, 0 blocking, 0 blocking vulnerability(ies), 1 warning(s)";
    QTest::newRow("threshold-critical-high-warns") << "severity_threshold: CRITICAL\nauditors:\n" + auditor("osv-scanner", osvHigh, 1)
                                                   << "pass" << 0 << 2 << 0 << "2 warning(s)";
    QTest::newRow("threshold-medium-both-block") << "severity_threshold: MEDIUM\nauditors:\n" + auditor("osv-scanner", osvHigh, 1)
                                                 << "fail" << 2 << 0 << 0 << "2 blocking";
    QTest::newRow("osv-1-but-empty-report") << "auditors:\n" + auditor("osv-scanner", osvClean, 1) << "pass" << 0 << 0 << 1
                                            << "exited with 1 (vulnerabilities found) but its report lists none";
    QTest::newRow("osv-127-degraded") << "auditors:\n" + auditor("osv-scanner", "-", 127) << "pass" << 0 << 0 << 1
                                      << "degraded (warning only): osv-scanner exited with 127, outside its contract";
    QTest::newRow("osv-128-degraded") << "auditors:\n" + auditor("osv-scanner", "-", 128) << "pass" << 0 << 0 << 1 << "exited with 128";
    QTest::newRow("osv-2-degraded") << "auditors:\n" + auditor("osv-scanner", osvHigh, 2) << "pass" << 0 << 0 << 1 << "exited with 2";
    QTest::newRow("strict-degraded-fails") << "strict_audit: true\nauditors:\n" + auditor("osv-scanner", "-", 127) << "fail" << 0 << 0
                                           << 1 << "dependency audit degraded (strict): osv-scanner exited with 127";
    QTest::newRow("garbage-degraded") << "auditors:\n" + auditor("osv-scanner", "-", 0, "garbage") << "pass" << 0 << 0 << 1
                                      << "osv-scanner printed no valid JSON";
    QTest::newRow("crash-degraded") << "auditors:\n" + auditor("osv-scanner", osvHigh, 0, "crash") << "pass" << 0 << 0 << 1
                                    << "osv-scanner crashed";
    QTest::newRow("timeout-degraded") << "auditors:\n" + auditor("osv-scanner", osvHigh, 0, "sleep", "    timeout: 1s\n") << "pass" << 0
                                      << 0 << 1 << "osv-scanner timed out after 1000 ms";
    QTest::newRow("missing-binary-degraded")
        << QByteArray("auditors:\n  - tool: pip-audit\n    command: [/nonexistent/pip-audit, -f, json]\n    requires: ''\n") << "pass" << 0
        << 0 << 1 << "pip-audit cannot be started";
    QTest::newRow("missing-binary-strict-fails")
        << QByteArray("strict_audit: true\nauditors:\n  - tool: pip-audit\n    command: [/nonexistent/pip-audit]\n    requires: ''\n")
        << "fail" << 0 << 0 << 1 << "not installed";
    QTest::newRow("pip-1-unknown-severity-warns") << "auditors:\n" + auditor("pip-audit", pipVulns, 1) << "pass" << 0 << 2 << 0
                                                  << "2 warning(s)";
    QTest::newRow("pip-0-clean") << "auditors:\n" + auditor("pip-audit", pipClean, 0) << "pass" << 0 << 0 << 0 << "clean";
    QTest::newRow("pip-not-applicable")
        << QByteArray("auditors:\n  - tool: pip-audit\n    command: [/nonexistent/pip-audit]\n") << "pass" << 0 << 0 << 0 << "clean";
    QTest::newRow("npm-1-critical-blocks") << "auditors:\n" + auditor("npm-audit", npmCritical, 1) << "fail" << 1 << 0 << 0
                                           << "minimist <0.2.4 GHSA-xvch-5gv4-984h (CRITICAL)";
    QTest::newRow("npm-1-error-object-degraded") << "auditors:\n" + auditor("npm-audit", npmError, 1) << "pass" << 0 << 0 << 1
                                                 << "npm audit reported an error: ENOLOCK";
    QTest::newRow("ignore-valid") << "auditors:\n" + auditor("osv-scanner", osvHigh, 1)
                                         + "audit_ignores:\n  - {id: CVE-2019-10906, reason: sandbox unused, expires: '" + future + "'}\n"
                                  << "pass" << 0 << 1 << 0 << "passed with warnings";
    QTest::newRow("ignore-expired-counts-again")
        << "auditors:\n" + auditor("osv-scanner", osvHigh, 1) + "audit_ignores:\n  - {id: GHSA-462w-v97r-4m45, reason: sandbox unused, expires: '"
               + past + "'}\n"
        << "fail" << 1 << 1 << 0 << "1 blocking";
    QTest::newRow("two-auditors") << "auditors:\n" + auditor("osv-scanner", osvMedium, 1) + auditor("npm-audit", npmCritical, 1) << "fail"
                                  << 1 << 1 << 0 << "GHSA-xvch-5gv4-984h";
}

void tst_SecurityGate::audit()
{
    QFETCH(QByteArray, settings);
    QFETCH(QString, result);
    QFETCH(int, blocking);
    QFETCH(int, warnings);
    QFETCH(int, degraded);
    QFETCH(QString, reasonPart);
    QVERIFY(makeRepo());
    const Evaluation e = evaluate("rules: " + m_smallRules.toUtf8() + "\n" + settings);
    QCOMPARE(GateVerdict::resultName(e.verdict.result()), result);
    QVERIFY2(e.verdict.reason().contains(reasonPart), qPrintable(e.verdict.reason()));
    const QJsonObject evidence = e.verdict.evidence();
    QCOMPARE(evidence.value(QLatin1String("deps_blocking")).toInt(), blocking);
    QCOMPARE(evidence.value(QLatin1String("deps_warning")).toInt(), warnings);
    QCOMPARE(evidence.value(QLatin1String("deps_degraded")).toInt(), degraded);
    // The report's front matter carries the same values.
    QVERIFY2(e.report.contains(QStringLiteral("security_status: %1\n").arg(result.toUpper())), qPrintable(e.report));
    QVERIFY(e.report.contains(QStringLiteral("deps_blocking: %1\ndeps_warning: %2\ndeps_degraded: %3\ndeps_audit_degraded: %4\n")
                                  .arg(blocking).arg(warnings).arg(degraded)
                                  .arg(degraded ? QStringLiteral("true") : QStringLiteral("false"))));
    int blockingFindings = 0;
    for (const Finding &f : e.verdict.findings())
        blockingFindings += f.severity == QLatin1String("blocking") ? 1 : 0;
    QVERIFY(blockingFindings >= blocking);
}

void tst_SecurityGate::refusedSettings_data()
{
    QTest::addColumn<QByteArray>("settings");
    QTest::addColumn<QString>("expected");
    QTest::newRow("ignore-without-reason") << QByteArray("audit_ignores:\n  - {id: X, reason: '', expires: '2030-01-01'}\n")
                                           << QStringLiteral("audit_ignores[0]': key 'reason' is required");
    QTest::newRow("ignore-bad-date") << QByteArray("audit_ignores:\n  - {id: X, reason: r, expires: 'next year'}\n")
                                     << QStringLiteral("key 'expires' must be a date YYYY-MM-DD");
    QTest::newRow("unknown-tool") << QByteArray("auditors:\n  - tool: snyk\n") << QStringLiteral("auditors");
    QTest::newRow("bad-threshold") << QByteArray("severity_threshold: SEVERE\n") << QStringLiteral("severity_threshold");
    QTest::newRow("absolute-project-rules") << QByteArray("project_rules: /etc/x.toml\n") << QStringLiteral("project_rules");
    QTest::newRow("report-path") << QByteArray("report: ../x.md\n") << QStringLiteral("'report' must be a plain file name");
}

void tst_SecurityGate::refusedSettings()
{
    QFETCH(QByteArray, settings);
    QFETCH(QString, expected);
    auto instance = Test::createInstance(m_plugin, settings);
    QVERIFY(!instance);
    QVERIFY2(instance.error().message.contains(expected), qPrintable(instance.error().toString()));
}

QTEST_GUILESS_MAIN(tst_SecurityGate)
#include "tst_securitygate.moc"
