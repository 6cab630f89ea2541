// SPDX-License-Identifier: Apache-2.0
#pragma once

// One plugin call run by the host under a deadline, its result handed on once.

#include <sluice/job.h>

#include <QObject>
#include <QTimer>

#include <chrono>
#include <functional>
#include <memory>

namespace Sluice {

/**
 * Starts @p call as a child of @p owner and hands its result to @p then exactly once: the
 * call's own result, or Timeout when it has not finished after @p deadline (it is cancelled
 * then). A null call is an Error at once. @p then must keep alive whatever the call uses.
 */
template<typename V>
void runBounded(QObject *owner, std::unique_ptr<AsyncCall<V>> call, std::chrono::milliseconds deadline,
                std::function<void(const Result<V> &)> then)
{
    if (!call) {
        then(fail(ErrorCode::Unknown, QStringLiteral("the connector returned no call")));
        return;
    }
    AsyncCall<V> *raw = call.release();
    raw->setParent(owner);
    auto concluded = std::make_shared<bool>(false);
    QObject::connect(raw, &PluginJob::finished, owner, [raw, then, concluded] {
        if (*concluded)
            return;
        *concluded = true;
        const Result<V> result = raw->result();
        raw->deleteLater();
        then(result);
    });
    QTimer::singleShot(deadline, raw, [raw, then, concluded, deadline] {
        if (*concluded)
            return;
        *concluded = true;
        raw->cancel();
        raw->deleteLater();
        then(fail(ErrorCode::Timeout, QStringLiteral("no answer within %1 ms").arg(deadline.count())));
    });
    raw->start();
}

} // namespace Sluice
