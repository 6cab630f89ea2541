// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file loopbackserver.h
 * The HTTP machinery of the fake servers tests talk to (forge, tracker, chat): a real
 * HTTP/1.1 server on 127.0.0.1, on a thread of its own, that hands every request to a
 * handler and writes its answer, with optional delay, truncation or no answer at all.
 *
 * The handler runs on the server thread, one request at a time; a test (or a blocking
 * client in a benchmark) may wait on its own event loop meanwhile.
 */

#include <sluice/job.h>

#include <QEventLoop>
#include <QTimer>

#include <QByteArray>
#include <QHash>
#include <QJsonDocument>
#include <QList>
#include <QPair>
#include <QString>
#include <QUrl>
#include <QUrlQuery>

#include <chrono>
#include <functional>
#include <memory>

class QThread;

namespace Sluice::Test {

/// One request as the server read it.
struct LoopbackRequest {
    QByteArray method;
    QString path;                          ///< Decoded path.
    QUrlQuery query;
    QHash<QByteArray, QByteArray> headers; ///< Names in lower case.
    QByteArray body;
    qint64 receivedMs = 0;                 ///< Monotonic milliseconds since the server started.

    [[nodiscard]] QByteArray header(const QByteArray &lowerCaseName) const { return headers.value(lowerCaseName); }
};

/// What the server answers.
struct LoopbackAnswer {
    int status = 200;
    QByteArray body;
    QList<QPair<QByteArray, QByteArray>> headers;
    std::chrono::milliseconds delay{0}; ///< Wait before answering (the server serves others meanwhile).
    bool truncate = false;              ///< Declare a longer body than sent, then close.
    bool hang = false;                  ///< Never answer.
    /// Close the connection without answering (a server or proxy dropping it: the client sees
    /// the connection reset or closed before any answer).
    bool drop = false;

    /// @p doc as application/json.
    [[nodiscard]] static LoopbackAnswer json(const QJsonDocument &doc, int status = 200);
};

class LoopbackServer
{
public:
    using Handler = std::function<LoopbackAnswer(const LoopbackRequest &)>;

    /// @p name names the server thread.
    explicit LoopbackServer(const QString &name);
    ~LoopbackServer();
    LoopbackServer(const LoopbackServer &) = delete;
    LoopbackServer &operator=(const LoopbackServer &) = delete;

    /**
     * Listens on 127.0.0.1 (a free port). @p handler answers every request; @p answered, if
     * set, runs (on the server thread) after each answer was written or its client left.
     */
    [[nodiscard]] Result<void> start(Handler handler, std::function<void()> answered = {});
    /// http://127.0.0.1:PORT/
    [[nodiscard]] QUrl url() const;

    class Worker;

private:
    std::unique_ptr<QThread> m_thread;
    Worker *m_worker = nullptr; // lives on m_thread, deleted there
    quint16 m_port = 0;
};

/// Starts @p call and waits (on a local event loop) until it finishes or @p timeout passes.
template<typename T>
[[nodiscard]] Result<T> runCall(std::unique_ptr<AsyncCall<T>> call, std::chrono::milliseconds timeout = std::chrono::seconds(30))
{
    QEventLoop loop;
    QObject::connect(call.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
    QTimer::singleShot(timeout, &loop, &QEventLoop::quit);
    call->start();
    if (!call->isFinished())
        loop.exec();
    if (!call->isFinished())
        return fail(ErrorCode::Timeout, QStringLiteral("call did not finish in time"));
    return call->result();
}

} // namespace Sluice::Test
