// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the Gitea/Forgejo or GitHub webhook payload parser (SLUICE_FUZZ_GITHUB picks
// the forge), reached through the shared acceptance a real delivery goes through
// (libs/forgehttp/forgewebhook.cpp): signed with the secret, with its delivery id and
// event header. The input's first line is the event type, the rest the body; a first line
// that is not one of the forge's event types is taken as one of them by its first byte, so
// both the known and unknown types are reached. The same bytes unsigned or wrongly signed
// must be refused.
#include "forgewebhook.h"
#ifdef SLUICE_FUZZ_GITHUB
#include "githubwebhook.h"
#else
#include "giteawebhook.h"
#endif

#include <QCoreApplication>
#include <QLoggingCategory>
#include <QMessageAuthenticationCode>

#include <cstdint>
#include <cstdlib>

using namespace Sluice;

Q_LOGGING_CATEGORY(lcFuzz, "sluice.fuzz.forgewebhook", QtWarningMsg)

namespace {

const QByteArray Secret = "fuzz-webhook-secret";

#ifdef SLUICE_FUZZ_GITHUB
const QList<QByteArray> Events{"status", "check_run", "check_suite", "push", "pull_request", "pull_request_review",
                               "issue_comment", "ping", "workflow_run"};
const ForgeHttp::WebhookHeaders Headers{{"x-hub-signature-256"}, {"x-github-delivery"}, {"x-github-event"}};
Result<QList<ForgeEvent>> parse(const QByteArray &event, const QByteArray &body) { return Forges::parseGitHubWebhook(event, body); }
#else
const QList<QByteArray> Events{"status", "push", "pull_request", "pull_request_approved", "pull_request_rejected",
                               "pull_request_comment", "issue_comment", "create", "release"};
const ForgeHttp::WebhookHeaders Headers{{"x-gitea-signature", "x-forgejo-signature"}, {"x-gitea-delivery", "x-forgejo-delivery"},
                                        {"x-gitea-event", "x-forgejo-event"}};
Result<QList<ForgeEvent>> parse(const QByteArray &event, const QByteArray &body) { return Forges::parseGiteaWebhook(event, body); }
#endif

WebhookRequest request(const QByteArray &event, const QByteArray &body, const QByteArray &signature)
{
    WebhookRequest r;
    r.body = body;
    r.headers.insert(Headers.delivery.first(), "d-1");
    r.headers.insert(Headers.event.first(), event);
    if (!signature.isEmpty())
        r.headers.insert(Headers.signature.first(), signature);
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    static int argc = 1;
    static char name[] = "fuzz_forge_webhook";
    static char *argv[] = {name, nullptr};
    static QCoreApplication app(argc, argv);

    const QByteArray input(reinterpret_cast<const char *>(data), qsizetype(size));
    const qsizetype newline = input.indexOf('\n');
    QByteArray event = newline < 0 ? QByteArray() : input.left(newline);
    const QByteArray body = newline < 0 ? input : input.mid(newline + 1);
    if (!Events.contains(event))
        event = Events.at(int(quint8(event.isEmpty() ? 0 : event.at(0)) % Events.size()));

    // The parser alone: a pure function, and what it reads obeys its contract.
    auto events = parse(event, body);
    if (events) {
        for (const ForgeEvent &e : std::as_const(*events)) {
            if (e.repository.isEmpty() || e.pullRequest < 0 || e.text.size() > 200 || e.text.contains(QLatin1Char('\n')))
                std::abort(); // a field the forge's events promise, or a command longer than one line
        }
    }

    const auto accept = [&](const QByteArray &signature) {
        return ForgeHttp::acceptForgeWebhook(request(event, body, signature), Secret, Headers, parse, QStringLiteral("acme/widget"), lcFuzz());
    };
    const QByteArray good = "sha256=" + QMessageAuthenticationCode::hash(body, Secret, QCryptographicHash::Sha256).toHex();
    auto delivery = accept(good);
    if (delivery) {
        if (delivery->deliveryId != QStringLiteral("d-1"))
            std::abort();
        if (!events)
            std::abort(); // accepted what the parser refused
    }
    if (accept(QByteArray()) || accept("sha256=" + QByteArray(64, '0')))
        std::abort(); // unsigned or wrongly signed: always refused
    return 0;
}
