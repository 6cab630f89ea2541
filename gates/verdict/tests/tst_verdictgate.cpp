// SPDX-License-Identifier: Apache-2.0
// The verdict gate as the host sees it: the real plugin library, loaded with QPluginLoader,
// created with its schema defaults and judging real files in a temporary worktree.
#include <sluice/gate.h>
#include <sluice/pluginmetadata.h>

#include "sdk/plugincontext_p.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLoggingCategory>
#include <QPluginLoader>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <optional>

#include <unistd.h>

using namespace Sluice;

namespace {

// The category the host gives the plugin.
Q_LOGGING_CATEGORY(lcVerdictGate, "sluice.gate.verdict")

constexpr qint64 ArtifactLimit = 1024 * 1024; // the gate's documented size limit

QVariantList strings(std::initializer_list<const char *> values)
{
    QVariantList out;
    for (const char *value : values)
        out.append(QString::fromUtf8(value));
    return out;
}

QVariantMap settingsWith(std::initializer_list<std::pair<const char *, QVariant>> values)
{
    QVariantMap out;
    for (const auto &[key, value] : values)
        out.insert(QString::fromUtf8(key), value);
    return out;
}

QVariantMap filesWith(std::initializer_list<std::pair<const char *, QByteArray>> files)
{
    QVariantMap out;
    for (const auto &[path, content] : files)
        out.insert(QString::fromUtf8(path), content);
    return out;
}

QVariantMap artifactOnly(const char *artifact)
{
    return settingsWith({{"artifact", QString::fromUtf8(artifact)}});
}

// A front-matter document padded with prose to exactly @p size bytes.
QByteArray paddedTo(qint64 size)
{
    QByteArray content = "---\nverdict: APPROVED\n---\n";
    content.append(QByteArray(int(size - content.size()), 'x'));
    return content;
}

bool writeFile(const QString &path, const QByteArray &content)
{
    if (!QDir().mkpath(QFileInfo(path).path()))
        return false;
    QFile file(path);
    return file.open(QIODevice::WriteOnly) && file.write(content) == content.size();
}

} // namespace

class tst_VerdictGate : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void metadata();
    void evaluate_data();
    void evaluate();
    void evidence();
    void findingsAreHandedOn_data();
    void findingsAreHandedOn();
    void runOutlivesGate();
    void refusedSettings_data();
    void refusedSettings();

private:
    QVariantMap withSchemaDefaults(const QVariantMap &rowSettings) const;
    Result<std::unique_ptr<Gate>> createGate(const QVariantMap &rowSettings);
    static GateVerdict runToEnd(GateRun &run);

    QPluginLoader m_loader;
    std::optional<PluginMetaData> m_metaData;
    PluginFactory *m_factory = nullptr;
};

void tst_VerdictGate::initTestCase()
{
    m_loader.setFileName(QStringLiteral(VERDICT_PLUGIN_FILE));
    auto metaData = PluginMetaData::fromLoaderMetaData(m_loader.metaData());
    QVERIFY2(metaData, qPrintable(metaData ? QString() : metaData.error().toString()));
    m_metaData = *metaData;
    QObject *instance = m_loader.instance();
    QVERIFY2(instance, qPrintable(m_loader.errorString()));
    m_factory = qobject_cast<PluginFactory *>(instance);
    QVERIFY(m_factory);
}

void tst_VerdictGate::metadata()
{
    QCOMPARE(m_metaData->id(), QStringLiteral("verdict"));
    QCOMPARE(m_metaData->kind(), PluginKind::Gate);
    QCOMPARE(m_metaData->version(), QVersionNumber(1, 0, 0));
    QVERIFY(PluginMetaData::isApiCompatible(m_metaData->apiVersion()));
    QVERIFY(!m_metaData->description().isEmpty());
    QVERIFY(m_metaData->dependencies().isEmpty());

    const ConfigSchema &schema = m_metaData->configSchema();
    QCOMPARE(schema.keyNames().size(), 5);
    for (const auto &[name, entry] : schema.entries())
        QVERIFY2(!entry.description().isEmpty(), qPrintable(name));

    const SchemaEntry *artifact = schema.entry(QStringLiteral("artifact"));
    QVERIFY(artifact);
    QCOMPARE(artifact->type(), SchemaEntry::Type::String);
    QVERIFY(artifact->isRequired());
    QVERIFY(!artifact->defaultValue().isValid());

    const SchemaEntry *key = schema.entry(QStringLiteral("key"));
    QVERIFY(key);
    QCOMPARE(key->defaultValue(), QVariant(QStringLiteral("verdict")));

    const SchemaEntry *pass = schema.entry(QStringLiteral("pass"));
    QVERIFY(pass);
    QCOMPARE(pass->type(), SchemaEntry::Type::List);
    QCOMPARE(pass->defaultValue().toList(), strings({"APPROVED", "PASS", "SUCCESS"}));

    const SchemaEntry *failing = schema.entry(QStringLiteral("fail"));
    QVERIFY(failing);
    QCOMPARE(failing->defaultValue().toList(),
             strings({"REQUEST_CHANGES", "REJECTED", "FAIL", "FAILED", "FAILURE"}));

    const SchemaEntry *caseSensitive = schema.entry(QStringLiteral("case_sensitive"));
    QVERIFY(caseSensitive);
    QCOMPARE(caseSensitive->type(), SchemaEntry::Type::Boolean);
    QCOMPARE(caseSensitive->defaultValue(), QVariant(false));
}

QVariantMap tst_VerdictGate::withSchemaDefaults(const QVariantMap &rowSettings) const
{
    QVariantMap settings;
    for (const auto &[name, entry] : m_metaData->configSchema().entries()) {
        if (entry.defaultValue().isValid())
            settings.insert(name, entry.defaultValue());
    }
    for (auto it = rowSettings.begin(); it != rowSettings.end(); ++it)
        settings.insert(it.key(), it.value());
    return settings;
}

Result<std::unique_ptr<Gate>> tst_VerdictGate::createGate(const QVariantMap &rowSettings)
{
    PluginContext context;
    PluginContextWriter writer(context);
    writer.setPluginId(QStringLiteral("verdict"));
    writer.setInstanceName(QStringLiteral("review-verdict"));
    writer.setLogging(&lcVerdictGate());
    writer.setSettings(withSchemaDefaults(rowSettings));
    auto instance = m_factory->create(context);
    if (!instance)
        return std::unexpected(instance.error());
    if (!qobject_cast<Gate *>(instance->get()))
        return fail(ErrorCode::Incompatible, QStringLiteral("the factory did not create a gate"));
    if (auto initialized = (*instance)->initialize(); !initialized)
        return std::unexpected(initialized.error());
    return std::unique_ptr<Gate>(static_cast<Gate *>(instance->release()));
}

GateVerdict tst_VerdictGate::runToEnd(GateRun &run)
{
    QSignalSpy finished(&run, &PluginJob::finished);
    if (run.isFinished())
        return GateVerdict::error(QStringLiteral("test: the run finished before it was started"));
    run.start();
    if (!run.isFinished() && !finished.wait(10000))
        return GateVerdict::error(QStringLiteral("test: the run did not finish"));
    if (finished.count() != 1)
        return GateVerdict::error(QStringLiteral("test: finished was emitted %1 times").arg(finished.count()));
    return run.verdict();
}

void tst_VerdictGate::evaluate_data()
{
    QTest::addColumn<QVariantMap>("settings");
    QTest::addColumn<QVariantMap>("files");        // worktree-relative path -> content
    QTest::addColumn<QVariantMap>("links");        // link path -> target ("outside:" = outside dir)
    QTest::addColumn<QVariantMap>("outsideFiles"); // files in a directory beside the worktree
    QTest::addColumn<QString>("unreadable");       // a file to make unreadable
    QTest::addColumn<QString>("worktree");         // "temp", "empty" or "nonexistent"
    QTest::addColumn<QString>("fromStage");
    QTest::addColumn<qlonglong>("taskId");
    QTest::addColumn<QString>("expected");
    QTest::addColumn<QString>("reasonContains");
    QTest::addColumn<QString>("findingFile");      // a finding must name it (fail rows)
    QTest::addColumn<int>("findingLine");          // and this line; -1 = any
    QTest::addColumn<QString>("why");              // the reason must also say this

    const QVariantMap none;
    const QVariantMap review = artifactOnly("review.md");
    const QString temp = QStringLiteral("temp");
    const QString stage = QStringLiteral("review");
    const QString pass = QStringLiteral("pass");
    const QString failed = QStringLiteral("fail");
    const QString error = QStringLiteral("error");
    const QString reviewMd = QStringLiteral("review.md");
    auto row = [&](const char *name, const QVariantMap &settings, const QVariantMap &files,
                   const QString &expected, const QString &reasonContains, int findingLine = -1,
                   const char *why = "") {
        QTest::newRow(name) << settings << files << none << none << QString() << temp << stage
                            << qlonglong(42) << expected << reasonContains
                            << (expected == QLatin1String("fail") ? reasonContains : QString())
                            << findingLine << QString::fromUtf8(why);
    };

    // The plain cases.
    row("approved passes", review,
        filesWith({{"review.md", "---\nverdict: APPROVED\n---\n\nLooks good.\n"}}), pass, reviewMd);
    row("request changes fails", review,
        filesWith({{"review.md", "---\nreviewer: bot\nverdict: REQUEST_CHANGES\n---\nPlease fix.\n"}}),
        failed, reviewMd, 3, "'REQUEST_CHANGES', a failing value");
    row("quoted value passes", review,
        filesWith({{"review.md", "---\nverdict: \"APPROVED\" # signed off\n---\n"}}), pass, reviewMd);
    row("missing file fails", review, filesWith({{"other.md", "---\nverdict: APPROVED\n---\n"}}),
        failed, reviewMd, 0, "is missing");
    row("no front matter fails", review, filesWith({{"review.md", "# Review\n\nAll good.\n"}}),
        failed, reviewMd, 1, "no YAML front matter");
    row("front matter not on the first line fails", review,
        filesWith({{"review.md", "\n---\nverdict: APPROVED\n---\n"}}), failed, reviewMd, 1);
    row("unclosed front matter fails", review,
        filesWith({{"review.md", "---\nverdict: APPROVED\n\nThe rest is prose.\n"}}), failed, reviewMd, 1);
    row("empty front matter fails", review, filesWith({{"review.md", "---\n---\nverdict: APPROVED\n"}}),
        failed, reviewMd);
    row("broken YAML fails", review,
        filesWith({{"review.md", "---\ntitle: Review\nverdict: [APPROVED\nnotes: \"open\n---\n"}}),
        failed, reviewMd, 4, "not valid YAML at line 4");
    row("YAML that is not a mapping fails", review,
        filesWith({{"review.md", "---\n- verdict: APPROVED\n---\n"}}), failed, reviewMd);
    row("missing key fails", review,
        filesWith({{"review.md", "---\nreviewer: bot\n---\nverdict: APPROVED\n"}}), failed, reviewMd, 1,
        "'verdict' is missing");
    row("nested key does not count", review,
        filesWith({{"review.md", "---\nreview:\n  verdict: APPROVED\n---\n"}}), failed, reviewMd);
    row("empty value fails", review, filesWith({{"review.md", "---\nverdict:\n---\n"}}), failed, reviewMd, 2);
    row("mapping value fails", review,
        filesWith({{"review.md", "---\nverdict: {state: APPROVED}\n---\n"}}), failed, reviewMd);
    row("unknown value fails", review, filesWith({{"review.md", "---\nverdict: LGTM\n---\n"}}),
        failed, reviewMd, 2, "unknown value 'LGTM'");
    row("a boolean is an unknown value", review, filesWith({{"review.md", "---\nverdict: yes\n---\n"}}),
        failed, reviewMd);

    // Prose never counts.
    row("prose-only approval fails", review,
        filesWith({{"review.md", "# Review\n\nverdict: APPROVED\n"}}), failed, reviewMd);
    row("front matter rejects, prose approves", review,
        filesWith({{"review.md", "---\nverdict: REQUEST_CHANGES\n---\n\nverdict: APPROVED\n"}}),
        failed, reviewMd, 2);
    row("a second front-matter block in the body does not count", review,
        filesWith({{"review.md", "---\nverdict: REQUEST_CHANGES\n---\n---\nverdict: APPROVED\n---\n"}}),
        failed, reviewMd, 2);
    row("'...' closes the front matter", review,
        filesWith({{"review.md", "---\nverdict: APPROVED\n...\nverdict: REJECTED\n"}}), pass, reviewMd);

    // Every occurrence counts; a failing value is authoritative.
    row("list with a pass and a fail value fails", review,
        filesWith({{"review.md", "---\nverdict: [APPROVED, REJECTED]\n---\n"}}), failed, reviewMd, 2,
        "'REJECTED', a failing value");
    row("block list of passing values passes", review,
        filesWith({{"review.md", "---\nverdict:\n  - APPROVED\n  - PASS\n---\n"}}), pass, reviewMd);
    row("list with an unknown value fails", review,
        filesWith({{"review.md", "---\nverdict:\n  - APPROVED\n  - MAYBE\n---\n"}}), failed, reviewMd, 4);
    row("empty list fails", review, filesWith({{"review.md", "---\nverdict: []\n---\n"}}), failed, reviewMd);
    row("duplicate key, pass then fail, fails", review,
        filesWith({{"review.md", "---\nverdict: APPROVED\nreviewer: bot\nverdict: REQUEST_CHANGES\n---\n"}}),
        failed, reviewMd, 4, "'REQUEST_CHANGES', a failing value");
    row("duplicate key, fail then pass, fails", review,
        filesWith({{"review.md", "---\nverdict: FAILED\nverdict: APPROVED\n---\n"}}), failed, reviewMd, 2,
        "'FAILED', a failing value");

    // Case.
    row("lowercase passes when case-insensitive", review,
        filesWith({{"review.md", "---\nverdict: approved\n---\n"}}), pass, reviewMd);
    row("lowercase fails when case-sensitive",
        settingsWith({{"artifact", QStringLiteral("review.md")}, {"case_sensitive", true}}),
        filesWith({{"review.md", "---\nverdict: approved\n---\n"}}), failed, reviewMd, 2,
        "unknown value 'approved'");
    row("uppercase passes when case-sensitive",
        settingsWith({{"artifact", QStringLiteral("review.md")}, {"case_sensitive", true}}),
        filesWith({{"review.md", "---\nverdict: APPROVED\n---\n"}}), pass, reviewMd);
    row("lowercase failing value fails when case-insensitive", review,
        filesWith({{"review.md", "---\nverdict: request_changes\n---\n"}}), failed, reviewMd, 2,
        "'request_changes', a failing value");

    // Other keys and value lists.
    const QVariantMap testResult =
        settingsWith({{"artifact", QStringLiteral("test-report.md")}, {"key", QStringLiteral("result")}});
    row("custom key passes", testResult,
        filesWith({{"test-report.md", "---\nresult: PASS\nverdict: REJECTED\n---\n"}}), pass,
        QStringLiteral("test-report.md"));
    row("custom key missing fails", testResult,
        filesWith({{"test-report.md", "---\nverdict: APPROVED\n---\n"}}), failed,
        QStringLiteral("test-report.md"));
    const QVariantMap deploy = settingsWith({{"artifact", QStringLiteral("deploy/{stage}.md")},
                                             {"key", QStringLiteral("deploy_status")},
                                             {"pass", strings({"SUCCESS"})},
                                             {"fail", strings({"FAILURE", "ROLLED_BACK"})}});
    row("custom lists pass", deploy,
        filesWith({{"deploy/review.md", "---\ndeploy_status: SUCCESS\n---\n"}}), pass,
        QStringLiteral("deploy/review.md"));
    row("custom lists fail", deploy,
        filesWith({{"deploy/review.md", "---\ndeploy_status: ROLLED_BACK\n---\n"}}), failed,
        QStringLiteral("deploy/review.md"), 2, "'ROLLED_BACK', a failing value");
    row("custom lists replace the defaults", deploy,
        filesWith({{"deploy/review.md", "---\ndeploy_status: APPROVED\n---\n"}}), failed,
        QStringLiteral("deploy/review.md"), 2, "unknown value 'APPROVED'");

    // Several files.
    const QVariantMap reviews = artifactOnly("reviews/*.md");
    row("glob: all files pass", reviews,
        filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/b.md", "---\nverdict: PASS\n---\n"}}),
        pass, QStringLiteral("reviews/b.md"));
    row("glob: one of two files fails", reviews,
        filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/b.md", "---\nverdict: REQUEST_CHANGES\n---\n"}}),
        failed, QStringLiteral("reviews/b.md"), 2, "'REQUEST_CHANGES', a failing value");
    row("glob: one of two files lacks the key", reviews,
        filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/b.md", "no front matter\n"}}),
        failed, QStringLiteral("reviews/b.md"), 1);
    row("glob: no match fails", reviews, filesWith({{"reviews/notes.txt", "---\nverdict: APPROVED\n---\n"}}),
        failed, QStringLiteral("reviews/*.md"), 0, "no file matches");
    row("glob: missing directory fails", reviews, none, failed, QStringLiteral("reviews/*.md"));
    row("glob: ? and [..] match", artifactOnly("reviews/r?-[ab].md"),
        filesWith({{"reviews/r1-a.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/r1-c.md", "---\nverdict: REJECTED\n---\n"}}),
        pass, QStringLiteral("reviews/r1-a.md"));
    row("glob: hidden files are not matched by *", reviews,
        filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/.draft.md", "---\nverdict: REJECTED\n---\n"}}),
        pass, QStringLiteral("reviews/a.md"));
    row("glob: a matched directory is not a file", reviews,
        filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/old.md/x.md", "---\nverdict: REJECTED\n---\n"}}),
        pass, QStringLiteral("reviews/a.md"));
    row("a directory in place of the file fails", review,
        filesWith({{"review.md/x.md", "---\nverdict: APPROVED\n---\n"}}), failed, reviewMd, 0,
        "not a regular file");

    // Placeholders: task 42 leaving stage "review".
    const QVariantMap perTask = artifactOnly("reviews/{task}-{stage}.md");
    row("placeholders are expanded", perTask,
        filesWith({{"reviews/42-review.md", "---\nverdict: APPROVED\n---\n"}}), pass,
        QStringLiteral("reviews/42-review.md"));
    row("placeholders: another stage's artifact does not count", perTask,
        filesWith({{"reviews/42-testing.md", "---\nverdict: APPROVED\n---\n"},
                   {"reviews/41-review.md", "---\nverdict: APPROVED\n---\n"}}),
        failed, QStringLiteral("reviews/42-review.md"));
    row("placeholders with a glob", artifactOnly("{stage}/{task}-*.md"),
        filesWith({{"review/42-alice.md", "---\nverdict: APPROVED\n---\n"},
                   {"review/42-bob.md", "---\nverdict: REJECTED\n---\n"},
                   {"review/43-carol.md", "---\nverdict: APPROVED\n---\n"}}),
        failed, QStringLiteral("review/42-bob.md"), 2);
    QTest::newRow("placeholders: a stage name that climbs out is an error")
        << artifactOnly("{stage}/review.md") << none << none << none << QString() << temp
        << QStringLiteral("..") << qlonglong(42) << error << QStringLiteral("..") << QString() << -1 << QString();
    QTest::newRow("placeholders: no task id is an error")
        << perTask << none << none << none << QString() << temp << stage << qlonglong(0) << error
        << QStringLiteral("{task}") << QString() << -1 << QString();

    // The worktree is the boundary.
    const QByteArray approved = "---\nverdict: APPROVED\n---\n";
    QTest::newRow("symlink to a file outside the worktree fails")
        << review << none << filesWith({{"review.md", "outside:review.md"}})
        << filesWith({{"review.md", approved}}) << QString() << temp << stage << qlonglong(42) << failed
        << reviewMd << reviewMd << 0 << QStringLiteral("outside the worktree");
    QTest::newRow("symlinked directory outside the worktree fails")
        << artifactOnly("reviews/review.md") << none << filesWith({{"reviews", "outside:"}})
        << filesWith({{"review.md", approved}}) << QString() << temp << stage << qlonglong(42) << failed
        << QStringLiteral("reviews/review.md") << QStringLiteral("reviews/review.md") << 0
        << QStringLiteral("outside the worktree");
    QTest::newRow("glob: a symlink outside among matches fails")
        << reviews << filesWith({{"reviews/a.md", approved}})
        << filesWith({{"reviews/b.md", "outside:review.md"}}) << filesWith({{"review.md", approved}})
        << QString() << temp << stage << qlonglong(42) << failed << QStringLiteral("reviews/b.md")
        << QStringLiteral("reviews/b.md") << 0 << QStringLiteral("outside the worktree");
    QTest::newRow("symlink inside the worktree is followed")
        << review << filesWith({{"notes/final.md", approved}}) << filesWith({{"review.md", "notes/final.md"}})
        << none << QString() << temp << stage << qlonglong(42) << pass << reviewMd << QString() << -1 << QString();
    QTest::newRow("dangling symlink fails")
        << review << none << filesWith({{"review.md", "nowhere.md"}}) << none << QString() << temp << stage
        << qlonglong(42) << failed << reviewMd << reviewMd << 0 << QStringLiteral("leads nowhere");
    QTest::newRow("unreadable file fails")
        << review << filesWith({{"review.md", approved}}) << none << none << reviewMd << temp << stage
        << qlonglong(42) << failed << reviewMd << reviewMd << 0 << QStringLiteral("cannot be read");
    QTest::newRow("no worktree is an error")
        << review << none << none << none << QString() << QStringLiteral("empty") << stage << qlonglong(42)
        << error << reviewMd << QString() << -1 << QStringLiteral("no worktree");
    QTest::newRow("a worktree that does not exist is an error")
        << review << none << none << none << QString() << QStringLiteral("nonexistent") << stage
        << qlonglong(42) << error << QStringLiteral("does not exist") << QString() << -1 << QString();

    // Size and encodings.
    row("a file at the size limit is read", review, filesWith({{"review.md", paddedTo(ArtifactLimit)}}),
        pass, reviewMd);
    row("a file over the size limit fails", review,
        filesWith({{"review.md", paddedTo(ArtifactLimit + 1)}}), failed, reviewMd, 0, "1048577 bytes");
    row("a much larger file fails", review, filesWith({{"review.md", paddedTo(8 * ArtifactLimit)}}),
        failed, reviewMd, 0, "8388608 bytes");
    row("CRLF line endings pass", review,
        filesWith({{"review.md", "---\r\nverdict: APPROVED\r\n---\r\n\r\nLooks good.\r\n"}}), pass, reviewMd);
    row("CRLF line endings fail", review,
        filesWith({{"review.md", "---\r\nreviewer: bot\r\nverdict: REJECTED\r\n---\r\n"}}), failed, reviewMd, 3);
    row("UTF-8 byte order mark is skipped", review,
        filesWith({{"review.md", "\xEF\xBB\xBF---\nverdict: APPROVED\n---\n"}}), pass, reviewMd);
}

void tst_VerdictGate::evaluate()
{
    QFETCH(QVariantMap, settings);
    QFETCH(QVariantMap, files);
    QFETCH(QVariantMap, links);
    QFETCH(QVariantMap, outsideFiles);
    QFETCH(QString, unreadable);
    QFETCH(QString, worktree);
    QFETCH(QString, fromStage);
    QFETCH(qlonglong, taskId);
    QFETCH(QString, expected);
    QFETCH(QString, reasonContains);
    QFETCH(QString, findingFile);
    QFETCH(int, findingLine);
    QFETCH(QString, why);

    if (!unreadable.isEmpty() && ::geteuid() == 0)
        QSKIP("root reads every file; run as another user to check unreadable files");

    QTemporaryDir worktreeDir;
    QTemporaryDir outsideDir;
    QVERIFY(worktreeDir.isValid() && outsideDir.isValid());
    for (auto it = files.begin(); it != files.end(); ++it)
        QVERIFY(writeFile(worktreeDir.filePath(it.key()), it.value().toByteArray()));
    for (auto it = outsideFiles.begin(); it != outsideFiles.end(); ++it)
        QVERIFY(writeFile(outsideDir.filePath(it.key()), it.value().toByteArray()));
    for (auto it = links.begin(); it != links.end(); ++it) {
        QString target = it.value().toString();
        if (target.startsWith(QLatin1String("outside:")))
            target = QDir::cleanPath(outsideDir.filePath(target.mid(8)));
        const QString link = worktreeDir.filePath(it.key());
        QVERIFY(QDir().mkpath(QFileInfo(link).path()));
        QVERIFY2(QFile::link(target, link), qPrintable(link));
    }
    if (!unreadable.isEmpty())
        QVERIFY(QFile::setPermissions(worktreeDir.filePath(unreadable), QFileDevice::Permissions()));

    auto gate = createGate(settings);
    QVERIFY2(gate, qPrintable(gate ? QString() : gate.error().toString()));

    GateRequest request;
    request.task.id = taskId;
    request.task.stage = fromStage;
    request.fromStage = fromStage;
    request.toStage = QStringLiteral("next");
    if (worktree == QLatin1String("temp"))
        request.worktree = worktreeDir.path();
    else if (worktree == QLatin1String("nonexistent"))
        request.worktree = worktreeDir.filePath(QStringLiteral("no-such-dir"));

    std::unique_ptr<GateRun> run = (*gate)->evaluate(request);
    QVERIFY(run);
    const GateVerdict verdict = runToEnd(*run);

    QCOMPARE(GateVerdict::resultName(verdict.result()), expected);
    QVERIFY2(verdict.reason().contains(reasonContains), qPrintable(verdict.reason()));
    QVERIFY2(verdict.reason().contains(why), qPrintable(verdict.reason()));
    if (expected == QLatin1String("fail")) {
        const QString key = withSchemaDefaults(settings).value(QStringLiteral("key")).toString();
        QVERIFY2(verdict.reason().contains(QStringLiteral("'%1'").arg(key)), qPrintable(verdict.reason()));
        QVERIFY(!verdict.findings().isEmpty());
        bool named = false;
        for (const Finding &finding : verdict.findings()) {
            QCOMPARE(finding.rule, QStringLiteral("verdict"));
            QVERIFY(!finding.file.isEmpty());
            QVERIFY(!finding.message.isEmpty());
            if (finding.file == findingFile && (findingLine < 0 || finding.line == findingLine))
                named = true;
        }
        QVERIFY2(named, qPrintable(QStringLiteral("no finding on %1 line %2 in: %3")
                                       .arg(findingFile).arg(findingLine).arg(verdict.reason())));
    } else {
        QVERIFY(verdict.findings().isEmpty());
    }
}

void tst_VerdictGate::evidence()
{
    QTemporaryDir worktreeDir;
    QVERIFY(worktreeDir.isValid());
    QVERIFY(writeFile(worktreeDir.filePath(QStringLiteral("reviews/a.md")),
                      "---\nverdict: [APPROVED, SUCCESS]\n---\n"));
    QVERIFY(writeFile(worktreeDir.filePath(QStringLiteral("reviews/b.md")),
                      "---\nverdict: PASS\n---\nverdict: REJECTED\n"));

    auto gate = createGate(artifactOnly("reviews/*.md"));
    QVERIFY(gate);
    GateRequest request;
    request.task.id = 7;
    request.fromStage = QStringLiteral("review");
    request.worktree = worktreeDir.path();
    std::unique_ptr<GateRun> run = (*gate)->evaluate(request);
    const GateVerdict verdict = runToEnd(*run);

    QCOMPARE(verdict.result(), GateVerdict::Result::Pass);
    const QJsonObject evidence = verdict.evidence();
    QCOMPARE(evidence.value(QLatin1String("artifact")).toString(), QStringLiteral("reviews/*.md"));
    QCOMPARE(evidence.value(QLatin1String("key")).toString(), QStringLiteral("verdict"));
    QCOMPARE(evidence.value(QLatin1String("values")).toArray(),
             QJsonArray({QStringLiteral("APPROVED"), QStringLiteral("SUCCESS"), QStringLiteral("PASS")}));
    const QJsonArray read = evidence.value(QLatin1String("files")).toArray();
    QCOMPARE(read.size(), 2);
    QCOMPARE(read.at(0).toObject().value(QLatin1String("file")).toString(), QStringLiteral("reviews/a.md"));
    QCOMPARE(read.at(1).toObject().value(QLatin1String("file")).toString(), QStringLiteral("reviews/b.md"));
    QCOMPARE(read.at(1).toObject().value(QLatin1String("values")).toArray(),
             QJsonArray({QStringLiteral("PASS")}));
}

void tst_VerdictGate::findingsAreHandedOn_data()
{
    // The prose below a failing artifact's front matter goes to the evidence's "feedback"
    // (the engine puts it into the agent's next task), capped; nothing for a passing one.
    QTest::addColumn<QVariantMap>("files");
    QTest::addColumn<QString>("expected");  // "file=text" per handed-on document, joined by "|"
    QTest::addColumn<bool>("cut");

    QTest::newRow("changes requested: the prose, not the front matter")
        << filesWith({{"reviews/a.md", "---\nverdict: REQUEST_CHANGES\nnotes: 2\n---\nRename foo.\n\n- the test misses the empty case\n"}})
        << QStringLiteral("reviews/a.md=Rename foo.\n\n- the test misses the empty case") << false;
    QTest::newRow("approved: nothing handed on")
        << filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\nLooks good.\n"}}) << QString() << false;
    QTest::newRow("of two files only the one that failed")
        << filesWith({{"reviews/a.md", "---\nverdict: APPROVED\n---\nFine by me.\n"},
                      {"reviews/b.md", "---\nverdict: REJECTED\n---\nNot like this.\n"}})
        << QStringLiteral("reviews/b.md=Not like this.") << false;
    QTest::newRow("failing without prose: nothing to hand on")
        << filesWith({{"reviews/a.md", "---\nverdict: REJECTED\n---\n\n"}}) << QString() << false;
    QTest::newRow("key missing: the prose still goes")
        << filesWith({{"reviews/a.md", "---\nstatus: done\n---\nI could not decide.\n"}})
        << QStringLiteral("reviews/a.md=I could not decide.") << false;
    QByteArray longReview = "---\nverdict: REQUEST_CHANGES\n---\n";
    for (int i = 0; i < 2000; ++i)
        longReview += "Finding number " + QByteArray::number(i) + " of a very long review.\n";
    QTest::newRow("long prose is cut at a line") << filesWith({{"reviews/a.md", longReview}}) << QStringLiteral("reviews/a.md=Finding number 0")
                                                 << true;
}

void tst_VerdictGate::findingsAreHandedOn()
{
    QFETCH(QVariantMap, files);
    QFETCH(QString, expected);
    QFETCH(bool, cut);
    QTemporaryDir worktreeDir;
    for (auto it = files.cbegin(); it != files.cend(); ++it)
        QVERIFY(writeFile(worktreeDir.filePath(it.key()), it.value().toByteArray()));
    auto gate = createGate(artifactOnly("reviews/*.md"));
    QVERIFY(gate);
    GateRequest request;
    request.task.id = 7;
    request.fromStage = QStringLiteral("review");
    request.worktree = worktreeDir.path();
    std::unique_ptr<GateRun> run = (*gate)->evaluate(request);
    const GateVerdict verdict = runToEnd(*run);
    const QJsonArray feedback = verdict.evidence().value(QLatin1String("feedback")).toArray();
    if (expected.isEmpty()) {
        QVERIFY2(!verdict.evidence().contains(QLatin1String("feedback")), QJsonDocument(verdict.evidence()).toJson().constData());
        return;
    }
    QCOMPARE(verdict.result(), GateVerdict::Result::Fail);
    QStringList got;
    for (const QJsonValue &v : feedback) {
        const QJsonObject document = v.toObject();
        const QString text = document.value(QLatin1String("text")).toString();
        QCOMPARE(document.value(QLatin1String("cut")).toBool(), cut);
        if (cut) {
            QVERIFY(text.size() <= 16 * 1024);
            QVERIFY(text.endsWith(QLatin1String("of a very long review.")));
            // The whole prose's size: the file less its front matter (33 bytes) and last newline.
            QCOMPARE(document.value(QLatin1String("chars")).toInt(), int(files.first().toByteArray().size()) - 33 - 1);
            got << document.value(QLatin1String("file")).toString() + QLatin1Char('=') + text.left(16);
        } else {
            got << document.value(QLatin1String("file")).toString() + QLatin1Char('=') + text;
        }
    }
    QCOMPARE(got.join(QLatin1Char('|')), expected);
}

void tst_VerdictGate::runOutlivesGate()
{
    // The host may drop a gate (project reload) while a run it started is still out.
    QTemporaryDir worktreeDir;
    QVERIFY(worktreeDir.isValid());
    QVERIFY(writeFile(worktreeDir.filePath(QStringLiteral("review.md")), "---\nverdict: APPROVED\n---\n"));
    auto gate = createGate(artifactOnly("review.md"));
    QVERIFY(gate);
    GateRequest request;
    request.task.id = 7;
    request.fromStage = QStringLiteral("review");
    request.worktree = worktreeDir.path();
    std::unique_ptr<GateRun> run = (*gate)->evaluate(request);
    gate->reset();
    QCOMPARE(runToEnd(*run).result(), GateVerdict::Result::Pass);
}

void tst_VerdictGate::refusedSettings_data()
{
    QTest::addColumn<QVariantMap>("settings");
    QTest::addColumn<QString>("messageContains");

    QTest::newRow("no artifact") << QVariantMap() << QStringLiteral("'artifact'");
    QTest::newRow("empty artifact") << artifactOnly("") << QStringLiteral("empty");
    QTest::newRow("absolute artifact") << artifactOnly("/etc/review.md") << QStringLiteral("absolute");
    QTest::newRow("'..' artifact") << artifactOnly("../review.md") << QStringLiteral("'..'");
    QTest::newRow("'..' inside the artifact") << artifactOnly("reviews/../../review.md")
                                              << QStringLiteral("'..'");
    QTest::newRow("'..' after a placeholder") << artifactOnly("{stage}/../../review.md")
                                              << QStringLiteral("'..'");
    QTest::newRow("directory artifact") << artifactOnly("reviews/") << QStringLiteral("directory");
    QTest::newRow("wildcard in a directory") << artifactOnly("*/review.md") << QStringLiteral("wildcards");
    QTest::newRow("unknown placeholder") << artifactOnly("{stag}.md") << QStringLiteral("{stag}");
    QTest::newRow("empty key") << settingsWith({{"artifact", QStringLiteral("r.md")}, {"key", QString()}})
                               << QStringLiteral("'key'");
    QTest::newRow("empty pass list")
        << settingsWith({{"artifact", QStringLiteral("r.md")}, {"pass", QVariantList()}})
        << QStringLiteral("'pass'");
    QTest::newRow("empty value in a list")
        << settingsWith({{"artifact", QStringLiteral("r.md")}, {"fail", strings({"FAIL", " "})}})
        << QStringLiteral("'fail'");
    QTest::newRow("value in both lists")
        << settingsWith({{"artifact", QStringLiteral("r.md")}, {"pass", strings({"APPROVED", "failed"})}})
        << QStringLiteral("'failed'");
}

void tst_VerdictGate::refusedSettings()
{
    QFETCH(QVariantMap, settings);
    QFETCH(QString, messageContains);

    auto gate = createGate(settings);
    QVERIFY(!gate);
    QCOMPARE(gate.error().code, ErrorCode::InvalidConfig);
    QVERIFY2(gate.error().message.contains(messageContains), qPrintable(gate.error().message));
}

QTEST_GUILESS_MAIN(tst_VerdictGate)

#include "tst_verdictgate.moc"
