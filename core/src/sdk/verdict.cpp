// SPDX-License-Identifier: Apache-2.0
#include <sluice/verdict.h>

#include <QJsonArray>

#include <algorithm>

namespace Sluice {

QJsonObject Finding::toJson() const
{
    QJsonObject o{{QStringLiteral("rule"), rule}, {QStringLiteral("message"), message}};
    if (!file.isEmpty())
        o.insert(QStringLiteral("file"), file);
    if (line > 0)
        o.insert(QStringLiteral("line"), line);
    if (!severity.isEmpty())
        o.insert(QStringLiteral("severity"), severity);
    return o;
}

Finding Finding::fromJson(const QJsonObject &object)
{
    return Finding{object.value(QLatin1String("rule")).toString(),
                   object.value(QLatin1String("message")).toString(),
                   object.value(QLatin1String("file")).toString(),
                   object.value(QLatin1String("line")).toInt(),
                   object.value(QLatin1String("severity")).toString()};
}

GateVerdict GateVerdict::pass(QString reason, QJsonObject evidence)
{
    GateVerdict v;
    v.m_result = Result::Pass;
    v.m_reason = std::move(reason);
    v.m_evidence = std::move(evidence);
    return v;
}

GateVerdict GateVerdict::fail(QString reason, QList<Finding> findings, QJsonObject evidence)
{
    GateVerdict v;
    v.m_result = Result::Fail;
    v.m_reason = std::move(reason);
    v.m_findings = std::move(findings);
    v.m_evidence = std::move(evidence);
    return v;
}

GateVerdict GateVerdict::error(QString reason, QJsonObject evidence)
{
    GateVerdict v;
    v.m_result = Result::Error;
    v.m_reason = std::move(reason);
    v.m_evidence = std::move(evidence);
    return v;
}

GateVerdict GateVerdict::skip(QString reason)
{
    GateVerdict v;
    v.m_result = Result::Skip;
    v.m_reason = std::move(reason);
    return v;
}

GateVerdict GateVerdict::wait(QString reason, std::chrono::milliseconds retryAfter, QJsonObject evidence)
{
    GateVerdict v;
    v.m_result = Result::Wait;
    v.m_reason = std::move(reason);
    v.m_evidence = std::move(evidence);
    v.m_evidence.insert(QStringLiteral("retryAfterMs"), double(std::max<qint64>(0, retryAfter.count())));
    return v;
}

std::chrono::milliseconds GateVerdict::retryAfter() const
{
    if (m_result != Result::Wait)
        return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(std::max<qint64>(0, qint64(m_evidence.value(QLatin1String("retryAfterMs")).toDouble())));
}

bool GateVerdict::allowsPassage() const
{
    return m_result == Result::Pass || m_result == Result::Skip;
}

QString GateVerdict::resultName(Result result)
{
    switch (result) {
    case Result::Pass: return QStringLiteral("pass");
    case Result::Fail: return QStringLiteral("fail");
    case Result::Error: return QStringLiteral("error");
    case Result::Skip: return QStringLiteral("skip");
    case Result::Wait: return QStringLiteral("wait");
    }
    return QStringLiteral("error");
}

QJsonObject GateVerdict::toJson() const
{
    QJsonArray findings;
    for (const Finding &f : m_findings)
        findings.append(f.toJson());
    return QJsonObject{{QStringLiteral("result"), resultName(m_result)},
                       {QStringLiteral("reason"), m_reason},
                       {QStringLiteral("findings"), findings},
                       {QStringLiteral("evidence"), m_evidence}};
}

GateVerdict GateVerdict::fromJson(const QJsonObject &object)
{
    GateVerdict v; // unknown or missing result stays Error: fail-closed
    const QString result = object.value(QLatin1String("result")).toString();
    for (Result r : {Result::Pass, Result::Fail, Result::Error, Result::Skip, Result::Wait}) {
        if (resultName(r) == result)
            v.m_result = r;
    }
    v.m_reason = object.value(QLatin1String("reason")).toString();
    const QJsonArray findings = object.value(QLatin1String("findings")).toArray();
    for (const QJsonValue &f : findings)
        v.m_findings.append(Finding::fromJson(f.toObject()));
    v.m_evidence = object.value(QLatin1String("evidence")).toObject();
    return v;
}

} // namespace Sluice
