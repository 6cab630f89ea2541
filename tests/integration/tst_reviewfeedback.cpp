// SPDX-License-Identifier: Apache-2.0
// The reviewer's findings reach the developer: the quickstart pipeline as shipped (its
// project file, its demo agent, the real plugins, `sluice serve`), with each task file an
// agent is handed kept aside. After the review asks for changes, the developer's next task
// file holds the text below the review's front matter and names the file it came from; once
// the review passed, the feedback is gone from later task files.

#include <sluice/testsupport.h>

#include <QDir>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

using namespace Sluice;

namespace {

struct Run {
    int exitCode = -1;
    QString out;
    QString err;
};

Run sluice(const QStringList &arguments, int timeoutMs = 60000)
{
    QProcess p;
    p.setProcessChannelMode(QProcess::SeparateChannels);
    p.start(QStringLiteral(SLUICE_EXECUTABLE), arguments);
    if (!p.waitForFinished(timeoutMs)) {
        p.kill();
        p.waitForFinished(5000);
        return Run{-1, QString::fromUtf8(p.readAllStandardOutput()), QString::fromUtf8(p.readAllStandardError())};
    }
    return Run{p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
               QString::fromUtf8(p.readAllStandardError())};
}

QString readAll(const QString &path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
}

} // namespace

class tst_ReviewFeedback : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void theDeveloperReadsTheReviewersFindings();
};

void tst_ReviewFeedback::theDeveloperReadsTheReviewersFindings()
{
    const QString top = QStringLiteral(SLUICE_SOURCE_DIR);
    Test::TemporaryConfig config;
    config.writeHostFile("node: feedback-node\nstate_dir: state\nworker: {poll_interval: 100ms}\nhttp: {port: 0}\n");
    // The demo agent as shipped, behind a wrapper that keeps a copy of every task file it is
    // handed, numbered in the order of the runs.
    const QString kept = config.path() + QStringLiteral("/task-files");
    QVERIFY(QDir().mkpath(kept));
    const QString wrapper = config.writeFile(QStringLiteral("keep-task-file.sh"),
        "#!/bin/sh\nn=$(( $(ls " + kept.toUtf8() + " | wc -l) + 1 ))\n"
        "cp \"$2\" " + kept.toUtf8() + "/$n-$1.md\n"
        "exec /bin/sh " + top.toUtf8() + "/resources/examples/quickstart/demo-agent.sh \"$@\"\n");
    QFile project(top + QStringLiteral("/resources/examples/quickstart/projects/quickstart.yaml"));
    QVERIFY(project.open(QIODevice::ReadOnly));
    QByteArray yaml = project.readAll();
    QVERIFY(yaml.contains("@DEMO_AGENT@"));
    yaml.replace("@DEMO_AGENT@", wrapper.toUtf8());
    config.writeProject(QStringLiteral("quickstart"), yaml);
    // The project's repository, as run.sh makes it.
    const QString repo = config.path() + QStringLiteral("/work/quickstart.git");
    const QString seed = config.path() + QStringLiteral("/seed");
    config.writeFile(QStringLiteral("seed/README.md"), "# quickstart\n");
    QCOMPARE(Test::runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), repo}).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("add"), QStringLiteral("README.md")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("Initial commit")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("push"), QStringLiteral("-q"), repo, QStringLiteral("main")}, seed).code, 0);

    const Run submit = sluice({QStringLiteral("submit"), QStringLiteral("--config"), config.path(), QStringLiteral("--project"),
                               QStringLiteral("quickstart"), QStringLiteral("--title"), QStringLiteral("Say hello"),
                               QStringLiteral("--description"), QStringLiteral("Add hello.txt that greets the world.")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const Run serve = sluice({QStringLiteral("serve"), QStringLiteral("--config"), config.path(), QStringLiteral("--exit-when-idle")}, 240000);
    QVERIFY2(serve.exitCode == 0, qPrintable(serve.err.right(4000)));

    // development, review (changes requested), development, review (approved), then the
    // testing command: the agents ran four times.
    const QStringList files = QDir(kept).entryList(QDir::Files, QDir::Name);
    QCOMPARE(files, QStringList({QStringLiteral("1-developer.md"), QStringLiteral("2-reviewer.md"), QStringLiteral("3-developer.md"),
                                 QStringLiteral("4-reviewer.md")}));
    const QString finding = QStringLiteral("hello.txt still holds a TODO line: finish the greeting before it ships.");
    const QString first = readAll(kept + QStringLiteral("/1-developer.md"));
    QVERIFY2(!first.contains(QLatin1String("Sent back")), qPrintable(first));
    // The second development run: the reviewer's own words, and where they are kept.
    const QString second = readAll(kept + QStringLiteral("/3-developer.md"));
    QVERIFY2(second.startsWith(QLatin1String("# Say hello\n\nAdd hello.txt that greets the world.")), qPrintable(second));
    QVERIFY2(second.contains(QLatin1String("Sent back by gate 'review-verdict' (rollback 1 of 3)")), qPrintable(second));
    QVERIFY2(second.contains(finding), qPrintable(second));
    QVERIFY2(second.contains(QLatin1String("### Findings in .sluice/review.md")), qPrintable(second));
    QVERIFY2(second.contains(QLatin1String("As written in .sluice/review.md in your worktree, below its front matter:")),
             qPrintable(second));
    QVERIFY2(!second.contains(QLatin1String("verdict: REQUEST_CHANGES")), qPrintable(second)); // the body, not the front matter
    QCOMPARE(second.count(finding), 1);
    // The second review still sees what it asked for; after it passed, the feedback is gone:
    // the testing stage's task file (the last one written) has none.
    QVERIFY(readAll(kept + QStringLiteral("/4-reviewer.md")).contains(finding));
    const QString last = readAll(config.path() + QStringLiteral("/state/artifacts/quickstart/task-1/task.md"));
    QVERIFY2(last.startsWith(QLatin1String("# Say hello")), qPrintable(last));
    QVERIFY2(!last.contains(QLatin1String("Sent back")) && !last.contains(finding), qPrintable(last));

    // The task is done, and the developer acted on the findings.
    const Run task = sluice({QStringLiteral("task"), QStringLiteral("--config"), config.path(), QStringLiteral("1"), QStringLiteral("--json")});
    QVERIFY2(task.exitCode == 0, qPrintable(task.err));
    const QJsonObject report = QJsonDocument::fromJson(task.out.toUtf8()).object();
    QCOMPARE(report.value(QLatin1String("status")).toString(), QStringLiteral("done"));
    QCOMPARE(report.value(QLatin1String("description")).toString(), QStringLiteral("Add hello.txt that greets the world."));
    const Test::GitOut log = Test::runGit({QStringLiteral("-C"), repo, QStringLiteral("log"), QStringLiteral("--format=%s"),
                                          QStringLiteral("main..sluice/say-hello")});
    QCOMPARE(log.code, 0);
    QVERIFY2(log.out.contains(QLatin1String("Greet the world properly (review feedback)")), qPrintable(log.out));
}

QTEST_GUILESS_MAIN(tst_ReviewFeedback)

#include "tst_reviewfeedback.moc"
