// SPDX-License-Identifier: Apache-2.0
// parseGiteaWebhook(): Gitea's and Forgejo's delivery payloads (modules/structs/hook.go with the
// API objects of gitea-api-1.23) read into ForgeEvents, and everything else refused or ignored.
// The acceptance around it (signature, delivery id, repository) is tst_giteaforge's.

#include "giteawebhook.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

using namespace Sluice;
using namespace Sluice::Forges;

namespace {
const QByteArray Repo = R"("repository": {"id": 42, "name": "widget", "full_name": "acme/widget", "owner": {"login": "acme"}})";
const QByteArray Sha = "3f1c2a9e0b7d4c5e6f708192a3b4c5d6e7f80910";

QByteArray pull(const QByteArray &action, bool merged, const QByteArray &sender = "alice")
{
    return R"({"action": ")" + action + R"(", "number": 7, "pull_request": {"id": 1007, "number": 7, "state": ")"
           + (action == "closed" ? "closed" : "open") + R"(", "merged": )" + (merged ? "true" : "false")
           + R"(, "head": {"ref": "sluice/fix", "sha": ")" + Sha + R"(", "label": "sluice/fix"}, "base": {"ref": "main"}}, )" + Repo
           + R"(, "sender": {"login": ")" + sender + R"("}})";
}

QByteArray review(const QByteArray &type)
{
    return R"({"action": "reviewed", "number": 7, "pull_request": {"number": 7, "state": "open", "merged": false, "head": {"ref": "sluice/fix", "sha": ")"
           + Sha + R"("}, "base": {"ref": "main"}}, )" + Repo + R"(, "sender": {"login": "alice", "username": "alice"}, "review": {"type": ")"
           + type + R"(", "content": "\n  Looks good  \nsecond line"}})";
}
} // namespace

class tst_GiteaWebhook : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void parses_data();
    void parses();
    void refuses_data();
    void refuses();
};

void tst_GiteaWebhook::parses_data()
{
    QTest::addColumn<QByteArray>("event");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<int>("count");
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("sha");
    QTest::addColumn<QString>("branch");
    QTest::addColumn<qint64>("pullRequest");
    QTest::addColumn<QString>("action");
    QTest::addColumn<QString>("state");
    QTest::addColumn<QString>("context");
    QTest::addColumn<QString>("actor");
    QTest::addColumn<QString>("text");

    QTest::newRow("status")
        << QByteArray("status")
        << QByteArray(R"({"id": 12, "sha": ")" + Sha + R"j(", "context": "CI / test (pull_request)", "state": "pending", "description": "running",
                       "target_url": "https://ci.example/1", "commit": {"id": ")j" + Sha + R"("}, "created_at": "2026-12-01T10:00:00Z", )" + Repo
                      + R"(, "sender": {"login": "ci-bot"}})")
        << 1 << "status" << QString::fromLatin1(Sha) << "" << qint64(0) << "" << "pending" << "CI / test (pull_request)" << "ci-bot" << "";
    QTest::newRow("push to a branch")
        << QByteArray("push")
        << QByteArray(R"({"ref": "refs/heads/sluice/fix", "before": "0000000000000000000000000000000000000000", "after": ")" + Sha
                      + R"(", "commits": [], "total_commits": 0, )" + Repo + R"(, "pusher": {"login": "bob"}, "sender": {"login": "bob"}})")
        << 1 << "push" << QString::fromLatin1(Sha) << "sluice/fix" << qint64(0) << "" << "" << "" << "bob" << "";
    QTest::newRow("push of a tag gives nothing")
        << QByteArray("push") << QByteArray(R"({"ref": "refs/tags/v1", "before": "", "after": ")" + Sha + R"(", )" + Repo + "}")
        << 0 << "" << "" << "" << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("pull request opened") << QByteArray("pull_request") << pull("opened", false) << 1 << "pull_request" << QString::fromLatin1(Sha)
                                         << "sluice/fix" << qint64(7) << "opened" << "" << "" << "alice" << "";
    QTest::newRow("pull request synchronized") << QByteArray("pull_request") << pull("synchronized", false) << 1 << "pull_request"
                                               << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "synchronize" << "" << "" << "alice" << "";
    QTest::newRow("pull request merged") << QByteArray("pull_request") << pull("closed", true) << 1 << "pull_request" << QString::fromLatin1(Sha)
                                         << "sluice/fix" << qint64(7) << "merged" << "" << "" << "alice" << "";
    QTest::newRow("pull request closed") << QByteArray("pull_request") << pull("closed", false, "carol") << 1 << "pull_request"
                                         << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "closed" << "" << "" << "carol" << "";
    QTest::newRow("pull request reopened") << QByteArray("pull_request") << pull("reopened", false) << 1 << "pull_request"
                                           << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "reopened" << "" << "" << "alice" << "";
    QTest::newRow("pull request labelled gives nothing") << QByteArray("pull_request") << pull("label_updated", false) << 0 << "" << "" << ""
                                                         << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("review approved") << QByteArray("pull_request_approved") << review("pull_request_review_approved") << 1 << "review"
                                     << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "submitted" << "approved" << "" << "alice"
                                     << "Looks good";
    QTest::newRow("review rejected") << QByteArray("pull_request_rejected") << review("pull_request_review_rejected") << 1 << "review"
                                     << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "submitted" << "changes_requested" << ""
                                     << "alice" << "Looks good";
    QTest::newRow("comment on a pull request")
        << QByteArray("issue_comment")
        << QByteArray(R"({"action": "created", "issue": {"number": 7, "pull_request": {"merged": false}}, "comment": {"id": 901, "body": "/approve\nthanks",
                       "user": {"login": "alice"}, "created_at": "2026-12-01T10:00:00Z"}, )" + Repo + R"(, "sender": {"login": "alice"}, "is_pull": true})")
        << 1 << "comment" << "" << "" << qint64(7) << "created" << "" << "" << "alice" << "/approve";
    QTest::newRow("comment on an issue gives nothing")
        << QByteArray("issue_comment")
        << QByteArray(R"({"action": "created", "issue": {"number": 3, "pull_request": null}, "comment": {"id": 902, "body": "/approve",
                       "user": {"login": "alice"}}, )" + Repo + R"(, "is_pull": false})")
        << 0 << "" << "" << "" << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("edited comment gives nothing")
        << QByteArray("issue_comment") << QByteArray(R"({"action": "edited", "is_pull": true})") << 0 << "" << "" << "" << qint64(0) << "" << ""
        << "" << "" << "";
    QTest::newRow("unknown event, body not even read") << QByteArray("wiki") << QByteArray("not json at all") << 0 << "" << "" << "" << qint64(0)
                                                       << "" << "" << "" << "" << "";
}

void tst_GiteaWebhook::parses()
{
    QFETCH(QByteArray, event);
    QFETCH(QByteArray, body);
    QFETCH(int, count);
    QFETCH(QString, kind);
    QFETCH(QString, sha);
    QFETCH(QString, branch);
    QFETCH(qint64, pullRequest);
    QFETCH(QString, action);
    QFETCH(QString, state);
    QFETCH(QString, context);
    QFETCH(QString, actor);
    QFETCH(QString, text);
    auto events = parseGiteaWebhook(event, body);
    QVERIFY2(events, events ? "" : qPrintable(events.error().message));
    QCOMPARE(events->size(), count);
    if (count == 0)
        return;
    const ForgeEvent &e = events->first();
    QCOMPARE(forgeEventKindName(e.kind), kind);
    QCOMPARE(e.repository, QStringLiteral("acme/widget"));
    QCOMPARE(e.sha, sha);
    QCOMPARE(e.branch, branch);
    QCOMPARE(e.pullRequest, pullRequest);
    QCOMPARE(e.action, action);
    QCOMPARE(e.state, state);
    QCOMPARE(e.context, context);
    QCOMPARE(e.actor, actor);
    QCOMPARE(e.text, text);
    // What the host records and reads back is the same event.
    const std::optional<ForgeEvent> back = forgeEventFromWebhook(toWebhookEvent(e));
    QVERIFY(back);
    QCOMPARE(back->kind, e.kind);
    QCOMPARE(back->sha, e.sha);
    QCOMPARE(back->pullRequest, e.pullRequest);
    QCOMPARE(back->text, e.text);
    QCOMPARE(back->actor, e.actor);
}

void tst_GiteaWebhook::refuses_data()
{
    QTest::addColumn<QByteArray>("event");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QString>("names");

    QTest::newRow("not JSON") << QByteArray("status") << QByteArray(R"({"sha": ")") << "not JSON";
    QTest::newRow("a list") << QByteArray("push") << QByteArray("[]") << "not a JSON object";
    QTest::newRow("status without sha") << QByteArray("status") << QByteArray(R"({"context": "c", "state": "success", )" + Repo + "}") << "sha";
    QTest::newRow("status with an unknown state") << QByteArray("status")
                                                  << QByteArray(R"({"sha": "abc", "context": "c", "state": "green", )" + Repo + "}") << "green";
    QTest::newRow("status without repository") << QByteArray("status") << QByteArray(R"({"sha": "abc", "context": "c", "state": "success"})")
                                               << "full_name";
    QTest::newRow("push without after") << QByteArray("push") << QByteArray(R"({"ref": "refs/heads/x", )" + Repo + "}") << "after";
    QTest::newRow("pull request without head sha")
        << QByteArray("pull_request") << QByteArray(R"({"action": "opened", "pull_request": {"number": 7, "head": {"ref": "x"}}, )" + Repo + "}")
        << "sha";
    QTest::newRow("merged not a boolean")
        << QByteArray("pull_request")
        << QByteArray(R"({"action": "closed", "pull_request": {"number": 7, "merged": "yes", "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}")
        << "merged";
    QTest::newRow("review without reviewer")
        << QByteArray("pull_request_approved")
        << QByteArray(R"({"action": "reviewed", "pull_request": {"number": 7, "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}") << "reviewer";
    QTest::newRow("comment without author")
        << QByteArray("issue_comment")
        << QByteArray(R"({"action": "created", "is_pull": true, "issue": {"number": 7}, "comment": {"id": 1, "body": "/approve"}, )" + Repo + "}")
        << "author";
    // What fuzz_github_webhook found in the GitHub parser holds here too: no pull request 0.
    QTest::newRow("pull request number 0")
        << QByteArray("pull_request") << QByteArray(R"({"action": "opened", "pull_request": {"number": 0, "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}")
        << "not a pull request number";
}

void tst_GiteaWebhook::refuses()
{
    QFETCH(QByteArray, event);
    QFETCH(QByteArray, body);
    QFETCH(QString, names);
    auto events = parseGiteaWebhook(event, body);
    QVERIFY(!events);
    QCOMPARE(events.error().code, ErrorCode::Malformed);
    QVERIFY2(events.error().message.contains(names), qPrintable(events.error().message));
}

QTEST_GUILESS_MAIN(tst_GiteaWebhook)
#include "tst_giteawebhook.moc"
