// SPDX-License-Identifier: Apache-2.0
#include "webhooksender.h"

#include <QDateTime>
#include <QMessageAuthenticationCode>
#include <QMutex>
#include <QTcpSocket>
#include <QThread>
#include <QTimer>
#include <QUuid>

#include <algorithm>
#include <deque>

namespace Sluice::Test {

namespace {
struct Outgoing {
    int index = 0; // into State::log
    QList<QPair<QByteArray, QByteArray>> headers;
};
} // namespace

struct WebhookSender::State {
    mutable QMutex mutex;
    Style style = Style::Gitea;
    QUrl target;
    QByteArray secret;
    QList<SentDelivery> log;
    std::deque<Outgoing> queue; // waiting to be sent, in order
    QList<Outgoing> held;
    int lose = 0;
    bool holding = false;
    int inFlight = 0;
    QThread thread;
    Worker *worker = nullptr;
};

// Lives on the sender's thread: sends one delivery at a time.
class WebhookSender::Worker : public QObject
{
public:
    explicit Worker(std::weak_ptr<State> state)
        : m_state(std::move(state))
    {
    }

    void pump()
    {
        auto state = m_state.lock();
        if (!state || m_busy)
            return;
        Outgoing next;
        QUrl target;
        QByteArray body;
        {
            QMutexLocker lock(&state->mutex);
            if (state->queue.empty())
                return;
            next = state->queue.front();
            state->queue.pop_front();
            target = state->target;
            SentDelivery &d = state->log[next.index];
            d.sentAtMs = QDateTime::currentMSecsSinceEpoch();
            body = d.body;
        }
        // A plain HTTP/1.1 exchange on a socket of its own: the answer is read even when the
        // receiver answers before the whole body is in (a 413), which Qt's network access
        // manager reports as an error without a status.
        auto *socket = new QTcpSocket(this);
        auto buffer = std::make_shared<QByteArray>();
        auto concluded = std::make_shared<bool>(false);
        const int index = next.index;
        auto conclude = [this, socket, buffer, concluded, index](const QString &failure) {
            if (*concluded)
                return;
            *concluded = true;
            int status = -1;
            QByteArray answer = failure.toUtf8();
            const int headerEnd = buffer->indexOf("\r\n\r\n");
            if (buffer->startsWith("HTTP/1.") && buffer->indexOf(' ') > 0) {
                status = buffer->mid(buffer->indexOf(' ') + 1, 3).toInt();
                answer = headerEnd >= 0 ? buffer->mid(headerEnd + 4) : QByteArray();
            }
            if (auto state = m_state.lock()) {
                QMutexLocker lock(&state->mutex);
                SentDelivery &d = state->log[index];
                d.status = status;
                d.answer = answer;
                d.answeredAtMs = QDateTime::currentMSecsSinceEpoch();
                --state->inFlight;
            }
            socket->deleteLater();
            m_busy = false;
            QMetaObject::invokeMethod(this, [this] { pump(); }, Qt::QueuedConnection);
        };
        // Complete once the headers and Content-Length bytes of body are in.
        auto complete = [buffer]() {
            const int headerEnd = buffer->indexOf("\r\n\r\n");
            if (headerEnd < 0)
                return false;
            for (const QByteArray &line : buffer->left(headerEnd).split('\n')) {
                if (line.toLower().startsWith("content-length:"))
                    return buffer->size() - headerEnd - 4 >= line.mid(15).trimmed().toInt();
            }
            return false;
        };
        connect(socket, &QTcpSocket::readyRead, this, [socket, buffer, complete, conclude] {
            buffer->append(socket->readAll());
            if (complete())
                conclude(QString());
        });
        connect(socket, &QTcpSocket::disconnected, this, [socket, buffer, conclude] {
            if (socket->isOpen())
                buffer->append(socket->readAll());
            conclude(QStringLiteral("connection closed"));
        });
        connect(socket, &QTcpSocket::errorOccurred, this, [socket, buffer, conclude] {
            if (socket->isOpen())
                buffer->append(socket->readAll());
            conclude(socket->errorString());
        });
        connect(socket, &QTcpSocket::connected, this, [socket, target, body, headers = next.headers] {
            QByteArray request = "POST " + target.path(QUrl::FullyEncoded).toLatin1() + " HTTP/1.1\r\nHost: " + target.host().toLatin1() + ':'
                                 + QByteArray::number(target.port()) + "\r\nContent-Type: application/json\r\nUser-Agent: fake-forge-hooks\r\n"
                                 + "Content-Length: " + QByteArray::number(body.size()) + "\r\nConnection: close\r\n";
            for (const auto &[name, value] : headers)
                request += name + ": " + value + "\r\n";
            socket->write(request + "\r\n" + body);
        });
        QTimer::singleShot(30000, socket, [conclude] { conclude(QStringLiteral("no answer within 30 s")); });
        m_busy = true;
        socket->connectToHost(target.host(), quint16(target.port()));
    }

private:
    std::weak_ptr<State> m_state;
    bool m_busy = false;
};

WebhookSender::WebhookSender(Style style)
    : m_state(std::make_shared<State>())
{
    m_state->style = style;
    m_state->thread.setObjectName(QStringLiteral("fake-forge-hooks"));
    m_state->worker = new Worker(m_state);
    m_state->worker->moveToThread(&m_state->thread);
    QObject::connect(&m_state->thread, &QThread::finished, m_state->worker, &QObject::deleteLater);
    m_state->thread.start();
}

WebhookSender::~WebhookSender()
{
    m_state->thread.quit();
    m_state->thread.wait();
}

QList<QPair<QByteArray, QByteArray>> WebhookSender::signatureHeaders(Style style, const QByteArray &secret, const QByteArray &body)
{
    const QByteArray hex = QMessageAuthenticationCode::hash(body, secret, QCryptographicHash::Sha256).toHex();
    if (style == Style::GitHub)
        return {{"X-Hub-Signature-256", "sha256=" + hex}};
    // Gitea signs with X-Gitea-Signature; Forgejo sends the same value as X-Forgejo-Signature too.
    return {{"X-Gitea-Signature", hex}, {"X-Forgejo-Signature", hex}};
}

void WebhookSender::setTarget(const QUrl &url, const QByteArray &secret)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->target = url;
    m_state->secret = secret;
}

bool WebhookSender::hasTarget() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->target.isValid();
}

QString WebhookSender::send(const QByteArray &event, const QByteArray &body)
{
    const QString id = QUuid::createUuid().toString(QUuid::WithoutBraces);
    QList<QPair<QByteArray, QByteArray>> headers;
    {
        QMutexLocker lock(&m_state->mutex);
        if (m_state->style == Style::GitHub) {
            headers = {{"X-GitHub-Event", event}, {"X-GitHub-Delivery", id.toLatin1()}, {"X-GitHub-Hook-ID", "4711"}};
        } else {
            headers = {{"X-Gitea-Event", event}, {"X-Gitea-Delivery", id.toLatin1()}, {"X-Forgejo-Event", event},
                       {"X-Forgejo-Delivery", id.toLatin1()}, {"X-Gitea-Event-Type", event}};
        }
        headers.append(signatureHeaders(m_state->style, m_state->secret, body));
    }
    SentDelivery d;
    d.id = id;
    d.event = event;
    d.body = body;
    QMutexLocker lock(&m_state->mutex);
    const int index = int(m_state->log.size());
    const bool lost = !m_state->target.isValid() || m_state->lose > 0;
    if (m_state->lose > 0)
        --m_state->lose;
    d.lost = lost;
    m_state->log.append(d);
    if (lost)
        return id;
    ++m_state->inFlight;
    if (m_state->holding) {
        m_state->held.append({index, headers});
        return id;
    }
    m_state->queue.push_back({index, headers});
    Worker *worker = m_state->worker;
    QMetaObject::invokeMethod(worker, [worker] { worker->pump(); }, Qt::QueuedConnection);
    return id;
}

QString WebhookSender::redeliver(const QString &id)
{
    QMutexLocker lock(&m_state->mutex);
    for (const SentDelivery &original : std::as_const(m_state->log)) {
        if (original.id != id || original.redelivery)
            continue;
        SentDelivery d = original;
        d.lost = false;
        d.redelivery = true;
        d.status = 0;
        d.answer.clear();
        d.sentAtMs = d.answeredAtMs = 0;
        QList<QPair<QByteArray, QByteArray>> headers;
        if (m_state->style == Style::GitHub)
            headers = {{"X-GitHub-Event", d.event}, {"X-GitHub-Delivery", id.toLatin1()}};
        else
            headers = {{"X-Gitea-Event", d.event}, {"X-Gitea-Delivery", id.toLatin1()}};
        headers.append(signatureHeaders(m_state->style, m_state->secret, d.body));
        const int index = int(m_state->log.size());
        m_state->log.append(d);
        ++m_state->inFlight;
        m_state->queue.push_back({index, headers});
        Worker *worker = m_state->worker;
        QMetaObject::invokeMethod(worker, [worker] { worker->pump(); }, Qt::QueuedConnection);
        return id;
    }
    return {};
}

QString WebhookSender::sendRaw(const QByteArray &body, const QList<QPair<QByteArray, QByteArray>> &headers)
{
    SentDelivery d;
    d.body = body;
    for (const auto &[name, value] : headers) {
        if (name.toLower().endsWith("-delivery"))
            d.id = QString::fromLatin1(value);
        if (name.toLower().endsWith("-event") && d.event.isEmpty())
            d.event = value;
    }
    QMutexLocker lock(&m_state->mutex);
    const int index = int(m_state->log.size());
    m_state->log.append(d);
    ++m_state->inFlight;
    m_state->queue.push_back({index, headers});
    Worker *worker = m_state->worker;
    QMetaObject::invokeMethod(worker, [worker] { worker->pump(); }, Qt::QueuedConnection);
    return d.id;
}

void WebhookSender::loseNext(int count)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->lose = std::max(0, count);
}

void WebhookSender::hold(bool on)
{
    QMutexLocker lock(&m_state->mutex);
    m_state->holding = on;
}

void WebhookSender::release(bool reversed)
{
    QMutexLocker lock(&m_state->mutex);
    QList<Outgoing> held = std::exchange(m_state->held, {});
    if (reversed)
        std::reverse(held.begin(), held.end());
    for (const Outgoing &o : std::as_const(held))
        m_state->queue.push_back(o);
    Worker *worker = m_state->worker;
    QMetaObject::invokeMethod(worker, [worker] { worker->pump(); }, Qt::QueuedConnection);
}

QList<SentDelivery> WebhookSender::deliveries() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->log;
}

QList<SentDelivery> WebhookSender::deliveries(const QByteArray &event) const
{
    QMutexLocker lock(&m_state->mutex);
    QList<SentDelivery> out;
    for (const SentDelivery &d : std::as_const(m_state->log)) {
        if (d.event == event)
            out.append(d);
    }
    return out;
}

int WebhookSender::pending() const
{
    QMutexLocker lock(&m_state->mutex);
    return m_state->inFlight;
}

} // namespace Sluice::Test
