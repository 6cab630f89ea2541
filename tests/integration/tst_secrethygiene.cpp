// SPDX-License-Identifier: Apache-2.0
// Secret hygiene end to end: a registered secret (the webhook notifier's key) and tokens
// nobody registered (a GitHub token, an AWS key id, a Slack token) are printed by a failing
// command stage and written by an agent into its review. A real `sluice serve` runs the
// task; then every channel Sluice has is read — the CLI (text and JSON), the HTTP API, the
// daemon's log, the webhook notifier's bodies and every column of the database — and none
// may hold any of them. The masks must be there instead, so the text did travel.

#include "daemonprocess.h"
#include "testdaemon.h"
#include "loopbackserver.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMutex>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QSqlRecord>
#include <QtTest>

#include <cmath>

using namespace Sluice;

namespace {

using Run = Sluice::Test::CliRun;

Run cli(const QStringList &arguments)
{
    return Sluice::Test::runCli(QStringLiteral(SLUICE_EXECUTABLE), arguments);
}

double entropy(const QString &text)
{
    QHash<QChar, int> counts;
    for (QChar c : text)
        ++counts[c];
    double e = 0;
    for (int n : std::as_const(counts)) {
        const double p = double(n) / double(text.size());
        e -= p * std::log2(p);
    }
    return e;
}

// A token of the given shape with enough entropy for the scanner's rule (gitleaks asks > 3).
QString token(QRandomGenerator &random, const QString &prefix, const QString &alphabet, int length)
{
    for (;;) {
        QString out = prefix;
        for (int i = 0; i < length; ++i)
            out += alphabet.at(int(random.bounded(quint32(alphabet.size()))));
        if (entropy(out) > 3.5)
            return out;
    }
}

// The first Slack bot token of the shared corpus: a real shape, not one made up here.
QString slackTokenFromCorpus()
{
    QFile corpus(QStringLiteral(SLUICE_SOURCE_DIR "/tests/data/secrets/corpus.jsonl"));
    if (!corpus.open(QIODevice::ReadOnly))
        return {};
    static const QRegularExpression shape(QStringLiteral("xoxb-[0-9A-Za-z-]{20,}"));
    while (!corpus.atEnd()) {
        const QJsonObject o = QJsonDocument::fromJson(corpus.readLine()).object();
        if (o.value(QLatin1String("rule_id")).toString() == QLatin1String("slack-bot-token")
            && o.value(QLatin1String("expect")).toString() == QLatin1String("secret")) {
            const auto m = shape.match(o.value(QLatin1String("text")).toString());
            if (m.hasMatch())
                return m.captured(0);
        }
    }
    return {};
}

} // namespace

class tst_SecretHygiene : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void noChannelShowsAPlantedSecret();

private:
    // Notes a leak when @p text holds a planted value; @p channel names where it was read.
    void expectClean(const QString &channel, const QString &text);

    Test::TemporaryConfig m_config;
    Test::DaemonProcess m_daemon{QStringLiteral(SLUICE_EXECUTABLE)};
    Test::LoopbackServer m_receiver{QStringLiteral("webhook-receiver")};
    QMutex m_mutex;
    QList<QByteArray> m_bodies; // what the webhook notifier delivered
    QStringList m_planted;      // every value that must not appear anywhere
    QStringList m_leaks;        // where one did, with some context
    QString m_registered;
    QString m_github;
    QString m_aws;
    QString m_slack;
};

void tst_SecretHygiene::initTestCase()
{
    QRandomGenerator random(20261122);
    const QString alnum = QStringLiteral("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    m_registered = token(random, QStringLiteral("hooksecret-"), alnum, 24);
    m_github = token(random, QStringLiteral("ghp_"), alnum, 36);
    m_aws = token(random, QStringLiteral("AKIA"), QStringLiteral("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), 16);
    m_slack = slackTokenFromCorpus();
    QVERIFY2(!m_slack.isEmpty(), "no slack-bot-token example in tests/data/secrets/corpus.jsonl");
    m_planted = QStringList{m_registered, m_github, m_aws, m_slack};

    QVERIFY(m_receiver.start([this](const Test::LoopbackRequest &request) {
        QMutexLocker lock(&m_mutex);
        m_bodies.append(request.body);
        Test::LoopbackAnswer ok;
        ok.body = "{}";
        return ok;
    }));

    const QString top = m_config.path();
    m_config.writeHostFile("node: hygiene-node\nstate_dir: state\nworker: {poll_interval: 100ms}\nhttp: {port: 0}\n");
    m_config.writeFile(QStringLiteral("secrets/hook"), m_registered.toUtf8() + '\n');
    const QByteArray tokens = "github " + m_github.toUtf8() + " aws " + m_aws.toUtf8() + " slack " + m_slack.toUtf8();
    // The agent: prints the secret and the tokens on its output; as reviewer it asks for
    // changes once, naming them in its findings and in a value of its verdict key.
    const QString agent = m_config.writeFile(QStringLiteral("agent.sh"),
        "#!/bin/sh\nrole=\"$1\"\n"
        "echo \"$role sees $(cat " + top.toUtf8() + "/secrets/hook) and " + tokens + "\"\n"
        "case \"$role\" in\n"
        "developer)\n"
        "  if grep -q 'Sent back by gate' \"$2\"; then echo fixed > work.txt; else echo draft > work.txt; fi\n"
        "  git add -A && git -c user.name=a -c user.email=a@a commit -q -m work || true ;;\n"
        "reviewer)\n"
        "  mkdir -p .sluice\n"
        "  if grep -q fixed work.txt; then printf -- '---\\nverdict: APPROVED\\n---\\nFine.\\n' > .sluice/review.md\n"
        "  else printf -- '---\\nverdict: [REQUEST_CHANGES, %s]\\n---\\nThe change logs the hook key %s.\\n"
        "Also found: %s and %s in the config.\\n' '" + m_aws.toUtf8() + "' \"$(cat " + top.toUtf8() + "/secrets/hook)\" '"
            + m_github.toUtf8() + "' '" + m_slack.toUtf8() + "' > .sluice/review.md; fi ;;\n"
        "esac\n");
    // The build: prints the secret and the tokens, then fails (its output's tail becomes the reason).
    const QString build = m_config.writeFile(QStringLiteral("build.sh"),
        "#!/bin/sh\necho \"building with key $(cat " + top.toUtf8() + "/secrets/hook)\"\n"
        "echo 'export GITHUB_TOKEN=" + m_github.toUtf8() + "'\n"
        "echo 'AWS_ACCESS_KEY_ID=" + m_aws.toUtf8() + "'\n"
        "echo 'slack: " + m_slack.toUtf8() + "'\nexit 1\n");
    const QString repo = top + QStringLiteral("/repo.git");
    m_config.writeFile(QStringLiteral("seed/README"), "seed\n");
    QCOMPARE(Test::runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("--bare"), QStringLiteral("-b"), QStringLiteral("main"), repo}).code, 0);
    const QString seed = top + QStringLiteral("/seed");
    QCOMPARE(Test::runGit({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("add"), QStringLiteral("README")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("-m"), QStringLiteral("seed")}, seed).code, 0);
    QCOMPARE(Test::runGit({QStringLiteral("push"), QStringLiteral("-q"), repo, QStringLiteral("main")}, seed).code, 0);
    m_config.writeProject(QStringLiteral("leaky"), R"(id: leaky
repository: {path: ../repo.git}
agent_launcher: agents
stages:
  - name: development
    run: developer
  - name: review
    run: reviewer
    exit_gates: [review-verdict]
  - name: build
    run: build
  - name: done
red_policy: {rollback_to: development, max_retries: 2}
jobs: {max_attempts: 1}
notifications:
  - notifier: hook
    events: [submitted, stage-changed, gate-passed, gate-failed, rolled-back, blocked, done]
instances:
  hook:
    plugin: webhook-notifier
    settings: {url: ")" + m_receiver.url().toString().toUtf8() + R"(hook", secret: {file: ../secrets/hook}, max_retries: 0}
  agents:
    plugin: process
    settings: {command: [/bin/sh, )" + agent.toUtf8() + R"(, "{role}", "{task_file}"]}
  developer: {plugin: agent, settings: {role: developer}}
  reviewer: {plugin: agent, settings: {role: reviewer}}
  review-verdict:
    plugin: verdict
    settings: {artifact: .sluice/review.md, key: verdict, pass: [APPROVED], fail: [REQUEST_CHANGES]}
  build:
    plugin: command
    settings: {command: [/bin/sh, )" + build.toUtf8() + R"(]}
)");
}

void tst_SecretHygiene::cleanupTestCase()
{
    if (m_daemon.state() != QProcess::NotRunning) {
        m_daemon.kill();
        m_daemon.waitForFinished(5000);
    }
}

void tst_SecretHygiene::expectClean(const QString &channel, const QString &text)
{
    for (const QString &value : std::as_const(m_planted)) {
        const qsizetype at = text.indexOf(value);
        if (at >= 0)
            m_leaks << QStringLiteral("%1 shows the planted value %2…: …%3…")
                           .arg(channel, value.left(6), text.mid(std::max<qsizetype>(0, at - 60), 120 + value.size()));
    }
}

void tst_SecretHygiene::noChannelShowsAPlantedSecret()
{
    const QString config = m_config.path();
    QVERIFY2(m_daemon.serve(config), m_daemon.log().constData());
    const Run submit = cli({QStringLiteral("submit"), QStringLiteral("--config"), config, QStringLiteral("--project"),
                            QStringLiteral("leaky"), QStringLiteral("--title"), QStringLiteral("Leak nothing"), QStringLiteral("--json")});
    QVERIFY2(submit.exitCode == 0, qPrintable(submit.err));
    const qint64 id = QJsonDocument::fromJson(submit.out.toUtf8()).object().value(QLatin1String("task")).toVariant().toLongLong();
    QVERIFY(id > 0);
    const QString path = QStringLiteral("/api/tasks/%1").arg(id);

    // development → review (changes requested: rollback) → development → review → build fails → blocked.
    QTRY_VERIFY2_WITH_TIMEOUT(m_daemon.request("GET", path).json().value(QLatin1String("status")).toString() == QLatin1String("blocked"),
                              m_daemon.log().right(3000).constData(), 60000);
    // The blocked notification is the last: wait until it was delivered.
    QTRY_VERIFY_WITH_TIMEOUT(([this] {
                                 QMutexLocker lock(&m_mutex);
                                 for (const QByteArray &body : std::as_const(m_bodies))
                                     if (QJsonDocument::fromJson(body).object().value(QLatin1String("event")).toString() == QLatin1String("blocked"))
                                         return true;
                                 return false;
                             }()),
                             20000);

    // The HTTP API.
    const Test::HttpReply task = m_daemon.request("GET", path);
    QCOMPARE(task.status, 200);
    const QJsonObject report = task.json();
    expectClean(QStringLiteral("GET ") + path, QString::fromUtf8(task.body));
    const Test::HttpReply queue = m_daemon.request("GET", QStringLiteral("/api/queue"));
    QCOMPARE(queue.status, 200);
    expectClean(QStringLiteral("GET /api/queue"), QString::fromUtf8(queue.body));
    const Test::HttpReply status = m_daemon.request("GET", QStringLiteral("/api/status"));
    expectClean(QStringLiteral("GET /api/status"), QString::fromUtf8(status.body));

    // The CLI, text and JSON.
    for (const QStringList &command : {QStringList{QStringLiteral("task"), QString::number(id)},
                                       QStringList{QStringLiteral("task"), QString::number(id), QStringLiteral("--json")},
                                       QStringList{QStringLiteral("queue")}, QStringList{QStringLiteral("queue"), QStringLiteral("--json")},
                                       QStringList{QStringLiteral("status")}, QStringList{QStringLiteral("status"), QStringLiteral("--json")}}) {
        const Run run = cli(QStringList{command.first(), QStringLiteral("--config"), config} + command.mid(1));
        QVERIFY2(run.exitCode == 0, qPrintable(run.err));
        expectClean(QStringLiteral("sluice ") + command.join(QLatin1Char(' ')), run.out + run.err);
    }

    // What the webhook notifier sent: every body, and its text and data in particular.
    bool sawMaskedReason = false;
    {
        QMutexLocker lock(&m_mutex);
        QVERIFY(m_bodies.size() >= 5);
        for (const QByteArray &body : std::as_const(m_bodies)) {
            const QJsonObject event = QJsonDocument::fromJson(body).object();
            const QString what = QStringLiteral("webhook event %1").arg(event.value(QLatin1String("event")).toString());
            expectClean(what, QString::fromUtf8(body));
            expectClean(what + QStringLiteral(" text"), event.value(QLatin1String("text")).toString());
            expectClean(what + QStringLiteral(" data"),
                        QString::fromUtf8(QJsonDocument(event.value(QLatin1String("data")).toObject()).toJson()));
            sawMaskedReason = sawMaskedReason
                || event.value(QLatin1String("data")).toObject().value(QLatin1String("reason")).toString().contains(QLatin1String("[REDACTED"));
        }
    }

    // The daemon's log (stop it first: everything it will ever say about this task is said).
    m_daemon.terminate();
    QVERIFY(m_daemon.waitForFinished(30000));
    expectClean(QStringLiteral("the daemon log"), QString::fromUtf8(m_daemon.log()));

    // Every column of every table of the database.
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("dump"));
        db.setDatabaseName(config + QStringLiteral("/state/sluice.db"));
        QVERIFY(db.open());
        QSqlQuery tables(db);
        QVERIFY(tables.exec(QStringLiteral("SELECT name FROM sqlite_master WHERE type = 'table'")));
        int cells = 0;
        while (tables.next()) {
            const QString table = tables.value(0).toString();
            QSqlQuery rows(db);
            QVERIFY(rows.exec(QStringLiteral("SELECT * FROM \"%1\"").arg(table)));
            while (rows.next()) {
                for (int c = 0; c < rows.record().count(); ++c) {
                    const QVariant value = rows.value(c);
                    const QString text = value.userType() == QMetaType::QByteArray ? QString::fromUtf8(value.toByteArray()) : value.toString();
                    expectClean(QStringLiteral("column %1.%2").arg(table, rows.record().fieldName(c)), text);
                    ++cells;
                }
            }
        }
        QVERIFY(cells > 100);
    }
    QSqlDatabase::removeDatabase(QStringLiteral("dump"));
    // Every channel is read before the verdict, so a failure lists all the leaks at once.
    for (const QString &leak : std::as_const(m_leaks))
        qWarning().noquote() << "LEAK:" << leak;
    QVERIFY2(m_leaks.isEmpty(), qPrintable(QStringLiteral("%1 leak(s), listed above").arg(m_leaks.size())));

    // The text travelled, masked: the command's output tail in the blocked reason, the
    // reviewer's values in the verdict's reason and its prose in what the verdict handed on.
    const QString blocked = report.value(QLatin1String("blockedReason")).toString();
    QVERIFY2(blocked.contains(QLatin1String("building with key [REDACTED]")), qPrintable(blocked));
    QVERIFY2(blocked.contains(QLatin1String("[REDACTED:github-pat]")), qPrintable(blocked));
    QVERIFY2(blocked.contains(QLatin1String("[REDACTED:aws-access-token]")), qPrintable(blocked));
    QVERIFY2(blocked.contains(QLatin1String("[REDACTED:slack-bot-token]")), qPrintable(blocked));
    QString reasons;
    QString findings; // the reviewer's prose the verdict handed on to the developer
    for (const QJsonValue &v : report.value(QLatin1String("verdicts")).toArray()) {
        reasons += v.toObject().value(QLatin1String("reason")).toString() + QLatin1Char('\n');
        for (const QJsonValue &f : v.toObject().value(QLatin1String("evidence")).toObject().value(QLatin1String("feedback")).toArray())
            findings += f.toObject().value(QLatin1String("text")).toString();
    }
    QVERIFY2(reasons.contains(QLatin1String("[REDACTED:aws-access-token]")), qPrintable(reasons));
    QVERIFY2(findings.contains(QLatin1String("hook key [REDACTED]")) && findings.contains(QLatin1String("[REDACTED:github-pat]"))
                 && findings.contains(QLatin1String("[REDACTED:slack-bot-token]")),
             qPrintable(findings));
    QVERIFY(sawMaskedReason); // the webhook's data.reason carried the masked reason
}

QTEST_GUILESS_MAIN(tst_SecretHygiene)

#include "tst_secrethygiene.moc"
