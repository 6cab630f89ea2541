// SPDX-License-Identifier: Apache-2.0
// parseGitHubWebhook(): GitHub's delivery payloads ("Webhook events and payloads") read into
// ForgeEvents, and everything else refused or ignored.

#include "githubwebhook.h"

#include <QtTest>

using namespace Sluice;
using namespace Sluice::Forges;

namespace {
const QByteArray Repo = R"("repository": {"id": 42, "name": "widget", "full_name": "acme/widget", "owner": {"login": "acme"}})";
const QByteArray Sha = "3f1c2a9e0b7d4c5e6f708192a3b4c5d6e7f80910";
const QByteArray Old = "1111111111111111111111111111111111111111";

QByteArray pull(const QByteArray &action, bool merged)
{
    return R"({"action": ")" + action + R"(", "number": 7, "pull_request": {"id": 1007, "number": 7, "state": "open", "merged": )"
           + (merged ? "true" : "false") + R"(, "head": {"ref": "sluice/fix", "sha": ")" + Sha + R"("}, "base": {"ref": "main"}}, )" + Repo
           + R"(, "sender": {"login": "alice"}})";
}

QByteArray check(const QByteArray &status, const QByteArray &conclusion, const QByteArray &pulls)
{
    return R"j({"action": "completed", "check_run": {"id": 5001, "name": "test (linux)", "head_sha": ")j" + Sha + R"(", "status": ")" + status
           + R"(", "conclusion": )" + conclusion + R"(, "check_suite": {"id": 7000, "head_branch": "sluice/fix"}, "pull_requests": )" + pulls
           + "}, " + Repo + R"(, "sender": {"login": "github-actions[bot]"}})";
}
} // namespace

class tst_GitHubWebhook : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void parses_data();
    void parses();
    void refuses_data();
    void refuses();
};

void tst_GitHubWebhook::parses_data()
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
        << QByteArray(R"({"id": 12, "sha": ")" + Sha + R"(", "name": "acme/widget", "context": "ci/test", "state": "failure", "description": "2 failed",
                       "branches": [], "commit": {"sha": ")" + Sha + R"("}, )" + Repo + R"(, "sender": {"login": "ci-bot"}})")
        << 1 << "status" << QString::fromLatin1(Sha) << "" << qint64(0) << "" << "failure" << "ci/test" << "ci-bot" << "";
    QTest::newRow("check run completed") << QByteArray("check_run") << check("completed", R"("success")", "[]") << 1 << "check_run"
                                         << QString::fromLatin1(Sha) << "sluice/fix" << qint64(0) << "completed" << "success" << "test (linux)"
                                         << "github-actions[bot]" << "";
    QTest::newRow("check run of a pull request in progress") << QByteArray("check_run") << check("in_progress", "null", R"([{"number": 7}])") << 1
                                                             << "check_run" << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "completed"
                                                             << "pending" << "test (linux)" << "github-actions[bot]" << "";
    QTest::newRow("check suite")
        << QByteArray("check_suite")
        << QByteArray(R"({"action": "completed", "check_suite": {"id": 7000, "head_sha": ")" + Sha + R"(", "head_branch": "sluice/fix", "status": "completed",
                       "conclusion": "failure", "pull_requests": []}, )" + Repo + R"(, "sender": {"login": "github-actions[bot]"}})")
        << 1 << "check_suite" << QString::fromLatin1(Sha) << "sluice/fix" << qint64(0) << "completed" << "failure" << "" << "github-actions[bot]" << "";
    QTest::newRow("push")
        << QByteArray("push")
        << QByteArray(R"({"ref": "refs/heads/sluice/fix", "before": ")" + Old + R"(", "after": ")" + Sha + R"(", "created": false, "deleted": false,
                       "forced": false, )" + Repo + R"(, "pusher": {"name": "bob", "email": "bob@example.org"}, "sender": {"login": "bob"}})")
        << 1 << "push" << QString::fromLatin1(Sha) << "sluice/fix" << qint64(0) << "" << "" << "" << "bob" << "";
    QTest::newRow("deleted branch gives nothing")
        << QByteArray("push")
        << QByteArray(R"({"ref": "refs/heads/x", "before": ")" + Old + R"(", "after": "0000000000000000000000000000000000000000", "deleted": true, )" + Repo + "}")
        << 0 << "" << "" << "" << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("pull request synchronize") << QByteArray("pull_request") << pull("synchronize", false) << 1 << "pull_request"
                                              << QString::fromLatin1(Sha) << "sluice/fix" << qint64(7) << "synchronize" << "" << "" << "alice" << "";
    QTest::newRow("pull request merged") << QByteArray("pull_request") << pull("closed", true) << 1 << "pull_request" << QString::fromLatin1(Sha)
                                         << "sluice/fix" << qint64(7) << "merged" << "" << "" << "alice" << "";
    QTest::newRow("pull request ready for review gives nothing") << QByteArray("pull_request") << pull("ready_for_review", false) << 0 << ""
                                                                 << "" << "" << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("review approved on an older commit")
        << QByteArray("pull_request_review")
        << QByteArray(R"({"action": "submitted", "review": {"id": 80, "user": {"login": "alice"}, "body": "LGTM", "commit_id": ")" + Old
                      + R"(", "state": "approved", "submitted_at": "2026-12-01T10:00:00Z"}, "pull_request": {"number": 7, "head": {"ref": "sluice/fix", "sha": ")"
                      + Sha + R"("}}, )" + Repo + R"(, "sender": {"login": "alice"}})")
        << 1 << "review" << QString::fromLatin1(Old) << "sluice/fix" << qint64(7) << "submitted" << "approved" << "" << "alice" << "LGTM";
    QTest::newRow("review dismissed gives nothing") << QByteArray("pull_request_review") << QByteArray(R"({"action": "dismissed"})") << 0 << "" << ""
                                                    << "" << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("comment on a pull request")
        << QByteArray("issue_comment")
        << QByteArray(R"({"action": "created", "issue": {"number": 7, "pull_request": {"url": "https://api.github.com/repos/acme/widget/pulls/7"}},
                       "comment": {"id": 901, "body": "  \n/confirm-deploy now", "user": {"login": "bob"}}, )" + Repo + R"(, "sender": {"login": "bob"}})")
        << 1 << "comment" << "" << "" << qint64(7) << "created" << "" << "" << "bob" << "/confirm-deploy now";
    QTest::newRow("comment on an issue gives nothing")
        << QByteArray("issue_comment")
        << QByteArray(R"({"action": "created", "issue": {"number": 3}, "comment": {"id": 902, "body": "/approve", "user": {"login": "bob"}}, )" + Repo + "}")
        << 0 << "" << "" << "" << qint64(0) << "" << "" << "" << "" << "";
    QTest::newRow("ping") << QByteArray("ping") << QByteArray(R"({"zen": "Keep it logically awesome.", "hook_id": 1})") << 0 << "" << "" << ""
                          << qint64(0) << "" << "" << "" << "" << "";
}

void tst_GitHubWebhook::parses()
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
    auto events = parseGitHubWebhook(event, body);
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
}

void tst_GitHubWebhook::refuses_data()
{
    QTest::addColumn<QByteArray>("event");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QString>("names");

    QTest::newRow("truncated") << QByteArray("status") << QByteArray(R"({"sha": "abc", "context": )") << "not JSON";
    QTest::newRow("status without context") << QByteArray("status") << QByteArray(R"({"sha": "abc", "state": "success", )" + Repo + "}") << "context";
    QTest::newRow("check run without head_sha")
        << QByteArray("check_run") << QByteArray(R"({"action": "completed", "check_run": {"id": 1, "status": "completed"}, )" + Repo + "}") << "head_sha";
    QTest::newRow("check run completed without conclusion") << QByteArray("check_run") << check("completed", "null", "[]") << "conclusion";
    QTest::newRow("review without commit")
        << QByteArray("pull_request_review")
        << QByteArray(R"({"action": "submitted", "review": {"id": 1, "state": "approved", "user": {"login": "a"}},
                       "pull_request": {"number": 7, "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}")
        << "commit_id";
    QTest::newRow("comment with a number for a body")
        << QByteArray("issue_comment")
        << QByteArray(R"({"action": "created", "issue": {"number": 7, "pull_request": {}}, "comment": {"id": 1, "body": 5, "user": {"login": "a"}}, )" + Repo + "}")
        << "body";
    QTest::newRow("pull request number as a string")
        << QByteArray("pull_request") << QByteArray(R"({"action": "opened", "pull_request": {"number": "7", "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}")
        << "number";
    // Found by fuzz_github_webhook: a negative number was taken as a pull request's.
    QTest::newRow("negative pull request number")
        << QByteArray("pull_request") << QByteArray(R"({"action": "opened", "pull_request": {"number": -7, "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}")
        << "not a pull request number";
    // A number no double holds exactly (and beyond qint64, whose conversion is undefined).
    QTest::newRow("pull request number beyond 2^53")
        << QByteArray("pull_request") << QByteArray(R"({"action": "opened", "pull_request": {"number": 1e300, "head": {"ref": "x", "sha": "y"}}, )" + Repo + "}")
        << "number";
    QTest::newRow("check run of pull request 0") << QByteArray("check_run") << check("completed", R"("success")", R"([{"number": 0}])")
                                                 << "not a pull request number";
}

void tst_GitHubWebhook::refuses()
{
    QFETCH(QByteArray, event);
    QFETCH(QByteArray, body);
    QFETCH(QString, names);
    auto events = parseGitHubWebhook(event, body);
    QVERIFY(!events);
    QCOMPARE(events.error().code, ErrorCode::Malformed);
    QVERIFY2(events.error().message.contains(names), qPrintable(events.error().message));
}

QTEST_GUILESS_MAIN(tst_GitHubWebhook)
#include "tst_githubwebhook.moc"
