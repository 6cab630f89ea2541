// SPDX-License-Identifier: Apache-2.0
// Required contexts derived from workflow files: the real-world corpus with hand-derived
// expectations (tests/data/workflows/corpus, see its README), then cases of our own.
#include "workflowcontexts.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Ci;

namespace {

QByteArray readFile(const QString &path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

QStringList strings(const QJsonValue &v)
{
    QStringList out;
    for (const QJsonValue &s : v.toArray())
        out.append(s.toString());
    return out;
}

bool isPlaceholder(const QString &expected)
{
    return expected.startsWith(QLatin1String("<dynamic")) || expected.endsWith(QLatin1String(" / *"));
}

struct CorpusResult {
    Result<RequiredContexts> first = fail(ErrorCode::Unknown, QString());
    Result<RequiredContexts> final = fail(ErrorCode::Unknown, QString());
    QStringList listedJobs; // jobs that had to be listed by hand, in the order asked
};

// Derives; when a job cannot be derived statically, lists it by hand ("@<job>") and retries,
// as an operator would with job_names.
CorpusResult deriveWithListing(const QByteArray &yaml, WorkflowOptions options, const QHash<QString, QByteArray> &callees)
{
    static const QRegularExpression asks(QStringLiteral("list the names of job '([^']+)'"));
    CorpusResult out;
    for (int round = 0; round < 10; ++round) {
        auto r = deriveRequiredContexts(yaml, options, callees);
        if (round == 0)
            out.first = r;
        out.final = r;
        if (r)
            break;
        const auto m = asks.match(r.error().message);
        if (!m.hasMatch() || options.jobNames.contains(m.captured(1)))
            break;
        options.jobNames.insert(m.captured(1), {QLatin1Char('@') + m.captured(1)});
        out.listedJobs.append(m.captured(1));
    }
    return out;
}

// The expected names with each placeholder ("<dynamic …>", "Caller / *") replaced by the
// hand-listed name of the job it stands for.
QStringList withListings(QStringList expected, const QStringList &requiredJobIds, const QStringList &listed)
{
    QStringList ordered;
    for (const QString &id : requiredJobIds) {
        if (listed.contains(id))
            ordered.append(QLatin1Char('@') + id);
    }
    int next = 0;
    for (QString &e : expected) {
        if (isPlaceholder(e))
            e = ordered.value(next++);
    }
    return expected;
}

} // namespace

class tst_WorkflowContexts : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void corpus_data()
    {
        QTest::addColumn<QString>("file");
        QTest::addColumn<int>("naming");
        const QDir dir(QStringLiteral(WORKFLOW_CORPUS "/corpus"));
        const QStringList files = dir.entryList({QStringLiteral("*.expected.json")}, QDir::Files, QDir::Name);
        QVERIFY(files.size() >= 10);
        for (const QString &f : files) {
            const QString base = f.chopped(int(strlen(".expected.json")));
            QTest::newRow(qPrintable(base + QStringLiteral(" github"))) << dir.filePath(base) << int(Naming::GitHub);
            QTest::newRow(qPrintable(base + QStringLiteral(" gitea"))) << dir.filePath(base) << int(Naming::Gitea);
        }
    }

    void corpus()
    {
        QFETCH(QString, file);
        QFETCH(int, naming);
        const QJsonObject expected = QJsonDocument::fromJson(readFile(file + QStringLiteral(".expected.json"))).object();
        QVERIFY(!expected.isEmpty());
        const QByteArray yaml = readFile(file + QStringLiteral(".yml"));
        QVERIFY(!yaml.isEmpty());

        WorkflowOptions options;
        options.workflowPath = QStringLiteral(".github/workflows/") + QFileInfo(file).fileName() + QStringLiteral(".yml");
        options.umbrellaJob = expected.value(QStringLiteral("umbrella_job_id")).toString();
        options.naming = Naming(naming);
        // Callees saved beside the corpus: NN-…-<name>.callee.yml for ./.github/workflows/<name>.yml.
        QHash<QString, QByteArray> callees;
        auto called = calledWorkflows(yaml, options);
        QVERIFY2(called, qPrintable(called ? QString() : called.error().toString()));
        const QString prefix = QFileInfo(file).fileName().section(QLatin1Char('-'), 0, 0);
        for (const QString &path : *called) {
            const QDir dir = QFileInfo(file).dir();
            const QStringList matches = dir.entryList({prefix + QStringLiteral("-*") + QFileInfo(path).completeBaseName() + QStringLiteral(".callee.yml")});
            QCOMPARE(matches.size(), 1);
            callees.insert(path, readFile(dir.filePath(matches.first())));
        }

        const CorpusResult r = deriveWithListing(yaml, options, callees);
        QVERIFY2(r.final, qPrintable(r.final ? QString() : r.final.error().toString()));
        const QStringList requiredIds = strings(expected.value(QStringLiteral("required_job_ids")));
        QCOMPARE(r.final->jobIds, requiredIds);
        QCOMPARE(r.final->workflowName, expected.value(QStringLiteral("workflow_name")).toString());

        QStringList names = strings(expected.value(QStringLiteral("required_display_names")));
        if (Naming(naming) == Naming::Gitea && expected.contains(QStringLiteral("gitea_forgejo_display_names")))
            names = strings(expected.value(QStringLiteral("gitea_forgejo_display_names")));
        const bool needsListing = std::any_of(names.cbegin(), names.cend(), isPlaceholder);
        // A job that cannot be derived is an error first, never a shorter list.
        QCOMPARE(bool(r.first), !needsListing);
        if (!r.first)
            QVERIFY2(r.first.error().message.contains(QLatin1String(".yml:")), qPrintable(r.first.error().message));
        names = withListings(names, requiredIds, r.listedJobs);

        QStringList expectedContexts;
        for (const QString &n : std::as_const(names)) {
            expectedContexts.append(Naming(naming) == Naming::GitHub
                                        ? n
                                        : QStringLiteral("%1 / %2 (pull_request)").arg(r.final->workflowName, n));
        }
        expectedContexts.removeDuplicates();
        QCOMPARE(r.final->contexts, expectedContexts);

        const QString umbrellaName = expected.value(QStringLiteral("umbrella_display_name")).toString();
        QCOMPARE(r.final->umbrellaContext, Naming(naming) == Naming::GitHub
                                               ? umbrellaName
                                               : QStringLiteral("%1 / %2 (pull_request)").arg(r.final->workflowName, umbrellaName));
        if (Naming(naming) == Naming::Gitea && expected.contains(QStringLiteral("umbrella_context_forgejo")))
            QCOMPARE(r.final->umbrellaContext, expected.value(QStringLiteral("umbrella_context_forgejo")).toString());
        if (Naming(naming) == Naming::Gitea && expected.contains(QStringLiteral("required_contexts_forgejo"))) {
            // Written as the forge posts them; a dynamic cell stands for the hand-listed name.
            QStringList wrapped = strings(expected.value(QStringLiteral("required_contexts_forgejo")));
            int next = 0;
            for (QString &c : wrapped) {
                if (c.contains(QLatin1String("<dynamic")))
                    c = QStringLiteral("%1 / @%2 (pull_request)").arg(r.final->workflowName, r.listedJobs.value(next++));
            }
            QCOMPARE(r.final->contexts, wrapped);
        }

        // With transitive needs, the hand-derived transitive names are required too.
        if (expected.contains(QStringLiteral("transitive_required_display_names")) && Naming(naming) == Naming::GitHub) {
            WorkflowOptions deep = options;
            deep.transitive = true;
            auto deepCalled = calledWorkflows(yaml, deep);
            QVERIFY(deepCalled);
            QHash<QString, QByteArray> deepCallees;
            for (const QString &path : *deepCalled) {
                const QDir dir = QFileInfo(file).dir();
                const QStringList matches = dir.entryList({prefix + QStringLiteral("-*") + QFileInfo(path).completeBaseName() + QStringLiteral(".callee.yml")});
                QCOMPARE(matches.size(), 1);
                deepCallees.insert(path, readFile(dir.filePath(matches.first())));
            }
            const CorpusResult t = deriveWithListing(yaml, deep, deepCallees);
            QVERIFY2(t.final, qPrintable(t.final ? QString() : t.final.error().toString()));
            for (const QString &n : strings(expected.value(QStringLiteral("transitive_required_display_names"))))
                QVERIFY2(t.final->contexts.contains(n), qPrintable(n + QStringLiteral(" missing from ") + t.final->contexts.join(QStringLiteral(" | "))));
        }
    }

    void ownCases_data()
    {
        QTest::addColumn<QByteArray>("yaml");
        QTest::addColumn<int>("naming");
        QTest::addColumn<QStringList>("contexts"); // empty: an error is expected
        QTest::addColumn<QString>("error");        // a part of the error message

        QTest::newRow("single-string needs, workflow name from the file")
            << QByteArray("on: pull_request\njobs:\n  build:\n    runs-on: x\n  all:\n    needs: build\n    runs-on: x\n")
            << int(Naming::Gitea) << QStringList{QStringLiteral("ci.yml / build (pull_request)")} << QString();
        QTest::newRow("gitea sorts matrix keys, floats are numbers")
            << QByteArray("name: CI\njobs:\n  t:\n    strategy:\n      matrix:\n        python: [3.10, \"3.10\"]\n        os: [linux]\n  all:\n    needs: [t]\n")
            << int(Naming::Gitea) << QStringList{QStringLiteral("CI / t (linux, 3.1) (pull_request)"), QStringLiteral("CI / t (linux, 3.10) (pull_request)")} << QString();
        QTest::newRow("exclude, include extending and creating cells")
            << QByteArray("name: CI\njobs:\n  t:\n    name: Test\n    strategy:\n      matrix:\n        os: [a, b]\n        v: [1, 2]\n"
                          "        exclude:\n          - {os: b, v: 2}\n        include:\n          - {os: a, extra: x}\n          - {os: c, v: 9}\n  all:\n    needs: [t]\n")
            << int(Naming::GitHub)
            << QStringList{QStringLiteral("Test (a, 1, x)"), QStringLiteral("Test (a, 2, x)"), QStringLiteral("Test (b, 1)"), QStringLiteral("Test (c, 9)")}
            << QString();
        QTest::newRow("name expression with a literal fallback")
            << QByteArray("name: CI\njobs:\n  t:\n    name: \"run ${{ matrix.label || 'default' }}\"\n    strategy:\n      matrix:\n        label: ['', x]\n  all:\n    needs: [t]\n")
            << int(Naming::GitHub) << QStringList{QStringLiteral("run default"), QStringLiteral("run x")} << QString();
        QTest::newRow("missing umbrella")
            << QByteArray("name: CI\njobs:\n  build:\n    runs-on: x\n") << int(Naming::Gitea) << QStringList()
            << QStringLiteral("ci.yml:3: jobs: has no umbrella job 'all'");
        QTest::newRow("umbrella needs nothing")
            << QByteArray("name: CI\njobs:\n  all:\n    runs-on: x\n") << int(Naming::Gitea) << QStringList()
            << QStringLiteral("jobs.all.needs: the umbrella job needs nothing");
        QTest::newRow("needs an undefined job")
            << QByteArray("name: CI\njobs:\n  all:\n    needs: [ghost]\n") << int(Naming::Gitea) << QStringList()
            << QStringLiteral("ci.yml:4: jobs.all.needs: names job 'ghost'");
        QTest::newRow("broken YAML")
            << QByteArray("name: CI\njobs:\n  all:\n    needs: [a\n  b: {\n") << int(Naming::Gitea) << QStringList()
            << QStringLiteral("not valid YAML");
        QTest::newRow("not a mapping")
            << QByteArray("- just\n- a list\n") << int(Naming::Gitea) << QStringList() << QStringLiteral("a workflow is a YAML mapping");
        QTest::newRow("dynamic matrix")
            << QByteArray("name: CI\njobs:\n  t:\n    strategy:\n      matrix: ${{ fromJSON(needs.plan.outputs.m) }}\n  all:\n    needs: [t]\n")
            << int(Naming::Gitea) << QStringList() << QStringLiteral("ci.yml:5: jobs.t.strategy.matrix: is not static");
        QTest::newRow("name from a non-matrix expression")
            << QByteArray("name: CI\njobs:\n  t:\n    name: build ${{ github.ref }}\n  all:\n    needs: t\n")
            << int(Naming::Gitea) << QStringList() << QStringLiteral("ci.yml:4: jobs.t.name:");
        QTest::newRow("remote reusable workflow")
            << QByteArray("name: CI\njobs:\n  r:\n    uses: org/repo/.github/workflows/x.yml@v1\n  all:\n    needs: [r]\n")
            << int(Naming::GitHub) << QStringList() << QStringLiteral("ci.yml:4: jobs.r.uses: calls the remote workflow");
        QTest::newRow("local reusable workflow not read")
            << QByteArray("name: CI\njobs:\n  r:\n    uses: ./.github/workflows/missing.yml\n  all:\n    needs: [r]\n")
            << int(Naming::GitHub) << QStringList() << QStringLiteral("was not read");
    }

    void ownCases()
    {
        QFETCH(QByteArray, yaml);
        QFETCH(int, naming);
        QFETCH(QStringList, contexts);
        QFETCH(QString, error);
        WorkflowOptions options;
        options.workflowPath = QStringLiteral(".gitea/workflows/ci.yml");
        options.umbrellaJob = QStringLiteral("all");
        options.naming = Naming(naming);
        auto r = deriveRequiredContexts(yaml, options);
        if (contexts.isEmpty()) {
            QVERIFY(!r);
            QVERIFY2(r.error().message.contains(error), qPrintable(r.error().message));
            QCOMPARE(r.error().code, ErrorCode::InvalidConfig);
        } else {
            QVERIFY2(r, qPrintable(r ? QString() : r.error().toString()));
            QCOMPARE(r->contexts, contexts);
        }
    }
};

QTEST_GUILESS_MAIN(tst_WorkflowContexts)
#include "tst_workflowcontexts.moc"
