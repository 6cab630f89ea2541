// SPDX-License-Identifier: Apache-2.0
// Webhook ingestion under load: the daemon's HTTP server with what every delivery costs —
// an HMAC-SHA256 check of the body (constant-time compare), the JSON parse and the de-dup
// insert of the delivery id into a real SQLite store. tests/bench/run.sh drives it with wrk.
//
//   POST /webhooks/bench  X-Signature-256: sha256=<hex>, X-Delivery-Id: <id>
//                         202 new, 200 duplicate, 401 bad signature, 400 malformed
//   POST /webhooks/verify the same without the insert: what the store costs, by difference
//   POST /webhooks/noop   202 and nothing else: the baseline (HTTP server alone)
//   GET  /stats           counters and the events table's row count, for the sanity checks
//
// Usage: bench_webhooks --secret-file FILE --database FILE [--port N] [--address A]
// Prints "port <N>" on stdout once listening; exits on SIGTERM or SIGINT.

#include "daemon/httpserver.h"
#include "daemon/signalpipe.h"
#include "logging.h"
#include "store/store.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QFile>
#include <QJsonObject>
#include <QMessageAuthenticationCode>
#include <QSqlQuery>

#include <cstdio>
#include <optional>

using namespace Sluice;

namespace {

// Equal length is public (a SHA-256 is 32 bytes); the content comparison takes the same time
// whichever byte differs.
bool constantTimeEquals(const QByteArray &a, const QByteArray &b)
{
    if (a.size() != b.size())
        return false;
    unsigned char difference = 0;
    for (int i = 0; i < a.size(); ++i)
        difference |= static_cast<unsigned char>(a.at(i) ^ b.at(i));
    return difference == 0;
}

// "sha256=<64 hex digits>" to the 32 raw bytes; empty when malformed.
QByteArray signatureBytes(const QByteArray &header)
{
    static const QByteArray prefix = QByteArrayLiteral("sha256=");
    if (!header.startsWith(prefix) || header.size() != prefix.size() + 64)
        return {};
    for (int i = prefix.size(); i < header.size(); ++i) {
        const char c = header.at(i);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return {};
    }
    return QByteArray::fromHex(header.mid(prefix.size()));
}

struct Counts {
    qint64 accepted = 0;
    qint64 duplicates = 0;
    qint64 rejected = 0;
    qint64 failed = 0;
};

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    Logging::install();

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Webhook ingestion benchmark server"));
    parser.addHelpOption();
    const QCommandLineOption secretOption(QStringLiteral("secret-file"), QStringLiteral("HMAC secret file."), QStringLiteral("FILE"));
    const QCommandLineOption databaseOption(QStringLiteral("database"), QStringLiteral("SQLite file."), QStringLiteral("FILE"));
    const QCommandLineOption portOption(QStringLiteral("port"), QStringLiteral("Port (0: any free)."), QStringLiteral("N"),
                                        QStringLiteral("0"));
    const QCommandLineOption addressOption(QStringLiteral("address"), QStringLiteral("Address."), QStringLiteral("A"),
                                           QStringLiteral("127.0.0.1"));
    parser.addOptions({secretOption, databaseOption, portOption, addressOption});
    parser.process(app);
    if (!parser.isSet(secretOption) || !parser.isSet(databaseOption)) {
        std::fprintf(stderr, "bench_webhooks: --secret-file and --database are required\n");
        return 2;
    }

    QFile secretFile(parser.value(secretOption));
    if (!secretFile.open(QIODevice::ReadOnly)) {
        std::fprintf(stderr, "bench_webhooks: cannot read %s\n", qPrintable(secretFile.fileName()));
        return 1;
    }
    const QByteArray secret = secretFile.readAll().trimmed();
    if (secret.isEmpty()) {
        std::fprintf(stderr, "bench_webhooks: the secret is empty\n");
        return 1;
    }

    StoreSettings settings;
    settings.sqlitePath = parser.value(databaseOption);
    Result<std::unique_ptr<Store>> opened = Store::open(settings);
    if (!opened) {
        std::fprintf(stderr, "bench_webhooks: %s\n", qPrintable(opened.error().toString()));
        return 1;
    }
    Store &store = **opened;

    Counts counts;
    // Signature, then delivery id and JSON; an error response, or the id and payload.
    auto verify = [&secret, &counts](const HttpRequest &request, QString &deliveryId, QJsonObject &payload)
        -> std::optional<HttpResponse> {
        const QByteArray given = signatureBytes(request.header("x-signature-256"));
        const QByteArray expected = QMessageAuthenticationCode::hash(request.body, secret, QCryptographicHash::Sha256);
        if (given.isEmpty() || !constantTimeEquals(given, expected)) {
            ++counts.rejected;
            return HttpResponse::error(401, QStringLiteral("bad signature"));
        }
        deliveryId = QString::fromUtf8(request.header("x-delivery-id"));
        const QJsonDocument document = QJsonDocument::fromJson(request.body);
        if (deliveryId.isEmpty() || deliveryId.size() > 200 || !document.isObject()) {
            ++counts.rejected;
            return HttpResponse::error(400, QStringLiteral("a delivery needs an X-Delivery-Id and a JSON object"));
        }
        payload = document.object();
        return std::nullopt;
    };
    const QJsonDocument acceptedBody(QJsonObject{{QStringLiteral("status"), QStringLiteral("accepted")}});

    HttpServer http;
    http.route("POST", QStringLiteral("/webhooks/bench"), [&](const HttpRequest &request) {
        QString deliveryId;
        QJsonObject payload;
        if (std::optional<HttpResponse> refused = verify(request, deliveryId, payload))
            return *refused;
        Result<bool> recorded = store.recordEvent(QStringLiteral("bench"), deliveryId, QStringLiteral("push"), payload);
        if (!recorded) {
            ++counts.failed;
            return HttpResponse::error(500, recorded.error().message);
        }
        if (!*recorded) {
            ++counts.duplicates;
            return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("status"), QStringLiteral("duplicate")}}), 200);
        }
        ++counts.accepted;
        return HttpResponse::json(acceptedBody, 202);
    });
    http.route("POST", QStringLiteral("/webhooks/verify"), [&](const HttpRequest &request) {
        QString deliveryId;
        QJsonObject payload;
        if (std::optional<HttpResponse> refused = verify(request, deliveryId, payload))
            return *refused;
        return HttpResponse::json(acceptedBody, 202);
    });
    http.route("POST", QStringLiteral("/webhooks/noop"), [&acceptedBody](const HttpRequest &) {
        return HttpResponse::json(acceptedBody, 202);
    });
    http.route("GET", QStringLiteral("/stats"), [&](const HttpRequest &) {
        qint64 rows = -1;
        if (Result<QSqlDatabase> db = store.connection()) {
            QSqlQuery query(*db);
            if (query.exec(QStringLiteral("SELECT COUNT(*) FROM events WHERE source = 'bench'")) && query.next())
                rows = query.value(0).toLongLong();
        }
        return HttpResponse::json(QJsonDocument(QJsonObject{{QStringLiteral("accepted"), counts.accepted},
                                                            {QStringLiteral("duplicates"), counts.duplicates},
                                                            {QStringLiteral("rejected"), counts.rejected},
                                                            {QStringLiteral("failed"), counts.failed},
                                                            {QStringLiteral("events"), rows}}));
    });

    SignalPipe signalPipe;
    if (Result<void> installed = signalPipe.install(); !installed) {
        std::fprintf(stderr, "bench_webhooks: %s\n", qPrintable(installed.error().toString()));
        return 1;
    }
    QObject::connect(&signalPipe, &SignalPipe::signalReceived, &app, [&http] {
        http.close();
        QCoreApplication::quit();
    });

    Result<quint16> port = http.listen(QHostAddress(parser.value(addressOption)), quint16(parser.value(portOption).toUInt()));
    if (!port) {
        std::fprintf(stderr, "bench_webhooks: %s\n", qPrintable(port.error().toString()));
        return 1;
    }
    std::printf("port %u\n", unsigned(*port));
    std::fflush(stdout);
    return app.exec();
}
