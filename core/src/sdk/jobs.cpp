// SPDX-License-Identifier: Apache-2.0
// The job base classes of the SDK: one finish, many kinds of result.
#include <sluice/agentlauncher.h>
#include <sluice/gate.h>
#include <sluice/stage.h>
#include <sluice/sweeper.h>
#include <sluice/webhook.h>

#include <QMessageAuthenticationCode>

namespace Sluice {

PluginJob::PluginJob(QObject *parent)
    : QObject(parent)
{
}

PluginJob::~PluginJob() = default;

void PluginJob::start()
{
    if (m_started || m_cancelled)
        return;
    m_started = true;
    doStart();
}

void PluginJob::cancel()
{
    if (m_cancelled || m_finished)
        return;
    m_cancelled = true;
    doCancel();
}

void PluginJob::doCancel() {}

bool PluginJob::markFinished()
{
    if (m_finished)
        return false;
    m_finished = true;
    Q_EMIT finished(this);
    return true;
}

GateRun::~GateRun() = default;

void GateRun::finishWith(const GateVerdict &verdict)
{
    if (isFinished())
        return;
    m_verdict = verdict;
    markFinished();
}

ConcurrentGateRun::ConcurrentGateRun(std::function<GateVerdict()> work, QObject *parent)
    : GateRun(parent)
    , m_work(std::move(work))
{
    connect(&m_watcher, &QFutureWatcher<GateVerdict>::finished, this, [this] {
        finishWith(m_watcher.future().result());
    });
}

ConcurrentGateRun::~ConcurrentGateRun()
{
    // The work owns nothing of ours; let it run out on the pool but never report back.
    m_watcher.disconnect(this);
}

void ConcurrentGateRun::doStart()
{
    m_watcher.setFuture(QtConcurrent::run(m_work));
}

StageRun::~StageRun() = default;

void StageRun::finishWith(const StageOutcome &outcome)
{
    if (isFinished())
        return;
    m_outcome = outcome;
    markFinished();
}

QStringList Stage::acceptedSignals() const
{
    return {};
}

AgentLaunch::~AgentLaunch() = default;

void AgentLaunch::finishWith(const Result<AgentExit> &result)
{
    if (isFinished())
        return;
    m_result = result;
    markFinished();
}

SweepRun::~SweepRun() = default;

void SweepRun::finishWith(const SweepReport &report)
{
    if (isFinished())
        return;
    m_report = report;
    markFinished();
}

WebhookReceiver::~WebhookReceiver() = default;

bool constantTimeEquals(const QByteArray &a, const QByteArray &b)
{
    if (a.size() != b.size())
        return false;
    unsigned char diff = 0;
    for (int i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

bool verifyHmacSha256(const QByteArray &secret, const QByteArray &body, const QByteArray &signature)
{
    QByteArray given = signature.trimmed();
    if (given.startsWith("sha256="))
        given = given.mid(7);
    const QByteArray expected = QMessageAuthenticationCode::hash(body, secret, QCryptographicHash::Sha256).toHex();
    return constantTimeEquals(expected, given.toLower());
}

} // namespace Sluice
