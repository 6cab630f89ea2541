// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the Plane connector's webhook payload parser (plugins/trackers/plane), reached the way
// a real delivery reaches it: signed with the instance's webhook secret (so the signature
// check passes and the JSON is read), against a tracker whose project states were read from
// a loopback server playing Plane's states endpoint. The same bytes also go in unsigned and
// wrongly signed: both must be refused.
#include "planetracker.h"

#include <QCoreApplication>
#include <QMessageAuthenticationCode>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>

#include <cstdint>
#include <cstdlib>

using namespace Sluice;

namespace {

const QByteArray HookSecret = "fuzz-webhook-secret";

// Answers every request with one page of the project's states, as Plane does.
class StatesServer : public QTcpServer
{
public:
    StatesServer()
    {
        connect(this, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket *socket = nextPendingConnection()) {
                connect(socket, &QTcpSocket::readyRead, socket, [socket] {
                    if (!socket->readAll().contains("\r\n\r\n"))
                        return;
                    const QByteArray body = R"({"results":[{"id":"s-progress","name":"In Progress"},{"id":"s-approved","name":"Approved"},)"
                                            R"({"id":"s-rejected","name":"Rejected"},{"id":"s-blocked","name":"Blocked"},)"
                                            R"({"id":"s-done","name":"Done"}],"next_page_results":false})";
                    socket->write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
                                  + QByteArray::number(body.size()) + "\r\n\r\n" + body);
                    socket->disconnectFromHost();
                });
                connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
            }
        });
        if (!listen(QHostAddress::LocalHost, 0))
            std::abort();
    }
};

WebhookRequest request(const QByteArray &body, const QByteArray &signature)
{
    WebhookRequest r;
    r.body = body;
    r.headers.insert("x-plane-delivery", "d-1");
    if (!signature.isEmpty())
        r.headers.insert("x-plane-signature", signature);
    return r;
}

WebhookRequest signedRequest(const QByteArray &body)
{
    return request(body, "sha256=" + QMessageAuthenticationCode::hash(body, HookSecret, QCryptographicHash::Sha256).toHex());
}

struct Fixture {
    QTemporaryDir dir;
    StatesServer server;
    std::unique_ptr<Trackers::PlaneTracker> tracker;

    Fixture()
    {
        auto write = [&](const QString &name, const QByteArray &content) {
            QFile f(dir.filePath(name));
            if (!f.open(QIODevice::WriteOnly) || f.write(content) != content.size())
                std::abort();
            return f.fileName();
        };
        const QVariantMap settings{
            {QStringLiteral("url"), QStringLiteral("http://127.0.0.1:%1").arg(server.serverPort())},
            {QStringLiteral("workspace"), QStringLiteral("acme")},
            {QStringLiteral("project"), QStringLiteral("p-1")},
            {QStringLiteral("identifier"), QStringLiteral("SLU")},
            {QStringLiteral("api_key"), QVariantMap{{QStringLiteral("file"), write(QStringLiteral("key"), "fuzz-api-key\n")}}},
            {QStringLiteral("webhook_secret"), QVariantMap{{QStringLiteral("file"), write(QStringLiteral("hook"), HookSecret + '\n')}}},
            {QStringLiteral("signals"), QVariantMap{{QStringLiteral("start"), QStringList{QStringLiteral("In Progress")}},
                                                    {QStringLiteral("approve"), QStringList{QStringLiteral("Approved")}},
                                                    {QStringLiteral("hold"), QStringList{QStringLiteral("Blocked")}}}},
            {QStringLiteral("states"), QVariantMap{{QStringLiteral("done"), QStringLiteral("Done")}}},
            {QStringLiteral("rate_limit"), 0},
            {QStringLiteral("timeout"), 5000},
            {QStringLiteral("max_retries"), 0},
            {QStringLiteral("retry_backoff"), 10},
            {QStringLiteral("max_retry_wait"), 1000},
        };
        PluginContext context;
        context.setInstanceName(QStringLiteral("plane"));
        context.setPluginId(QStringLiteral("plane"));
        context.setSettings(settings);
        auto parsed = Trackers::PlaneSettings::fromSettings(settings);
        if (!parsed)
            std::abort();
        tracker = std::make_unique<Trackers::PlaneTracker>(context, std::move(*parsed));
        if (!tracker->initialize())
            std::abort();
        // initialize() reads the states; until it has, a move to a state is handed over as a
        // work item to read again ("tracker-issue") and the signal mapping is never reached.
        const QByteArray probe = R"({"event":"issue","action":"updated","data":{"id":"i-1","project":"p-1","state":"s-approved"},)"
                                 R"("activity":{"field":"state","old_value":"s-progress","new_value":"s-approved"}})";
        for (int i = 0; i < 3000; ++i) {
            QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
            auto answer = tracker->acceptWebhook(signedRequest(probe));
            if (!answer)
                std::abort(); // a well-formed signed delivery is never refused
            if (!answer->events.isEmpty() && answer->events.first().kind == QLatin1String("signal"))
                return;
        }
        std::abort(); // the states never arrived
    }
};

Fixture &fixture()
{
    static int argc = 1;
    static char name[] = "fuzz_plane_webhook";
    static char *argv[] = {name, nullptr};
    static QCoreApplication app(argc, argv);
    static Fixture f;
    return f;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    Fixture &f = fixture();
    const QByteArray body(reinterpret_cast<const char *>(data), qsizetype(size));
    auto delivery = f.tracker->acceptWebhook(signedRequest(body));
    // The id that de-duplicates is what stays the same across Plane's redeliveries (v2's
    // event_id, v1's payload digest), never the header, which is new on every attempt.
    if (delivery && !delivery->deliveryId.startsWith(QLatin1String("v1:")) && !delivery->deliveryId.startsWith(QLatin1String("v2:")))
        std::abort();
    if (delivery) {
        for (const WebhookEvent &e : std::as_const(delivery->events)) {
            if (e.subject.isEmpty() || (e.kind != QLatin1String("signal") && e.kind != QLatin1String("tracker-issue")))
                std::abort(); // an event about nothing, or of a kind the host does not take
        }
    }
    if (f.tracker->acceptWebhook(request(body, QByteArray())) || f.tracker->acceptWebhook(request(body, "sha256=" + QByteArray(64, '0'))))
        std::abort(); // unsigned or wrongly signed: always refused
    // A delivery naming a state not known yet has the states read again: let that finish, so
    // requests do not pile up.
    QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
    return 0;
}
