// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file verdict.h
 * What a gate decides: pass, fail, error or skip, with a reason, findings and evidence.
 */

#include <sluice/global.h>

#include <QJsonObject>
#include <QList>
#include <QString>

#include <chrono>

namespace Sluice {

/// One concrete thing a gate found: a failing check, a leaked secret, a vulnerable package.
struct SLUICE_EXPORT Finding {
    QString rule;     ///< What found it: a rule id, a CI context, an advisory id.
    QString message;  ///< What is wrong, for the agent and for people. Secrets are masked.
    QString file;     ///< File the finding is about, relative to the worktree; may be empty.
    int line = 0;     ///< 1-based line in @ref file, or 0.
    QString severity; ///< Free-form severity ("high", "blocking", ...); may be empty.

    [[nodiscard]] QJsonObject toJson() const;
    [[nodiscard]] static Finding fromJson(const QJsonObject &object);
    friend bool operator==(const Finding &, const Finding &) = default;
};

/**
 * The decision of one gate evaluation.
 *
 * Fail-closed: anything but Pass or Skip stops the task. Error means the gate could not
 * decide (unreadable input, remote failure, timeout) and is treated as Fail by the engine.
 * Wait means the gate cannot decide *yet* for a reason that is not the change's fault (a
 * resource another task holds): the task stays where it is, no retry is spent, and the
 * engine evaluates the edge again after retryAfter().
 */
class SLUICE_EXPORT GateVerdict
{
public:
    enum class Result {
        Pass,  ///< The task may move on.
        Fail,  ///< The task may not move on; the findings say why.
        Error, ///< The gate could not decide. Treated as Fail.
        Skip,  ///< The gate does not apply to this project; passes and is recorded.
        Wait,  ///< Not yet: the task stays, nothing is rolled back; evaluated again after retryAfter(). Since SDK API 1.1.
    };

    GateVerdict() = default;

    [[nodiscard]] static GateVerdict pass(QString reason, QJsonObject evidence = {});
    [[nodiscard]] static GateVerdict fail(QString reason, QList<Finding> findings = {},
                                          QJsonObject evidence = {});
    [[nodiscard]] static GateVerdict error(QString reason, QJsonObject evidence = {});
    [[nodiscard]] static GateVerdict skip(QString reason);
    /// Not yet decidable; ask again after @p retryAfter (the engine keeps it between 1 s and 1 h).
    /// The time is kept in the evidence as "retryAfterMs" (the class layout is part of the ABI).
    /// Since SDK API 1.1.
    [[nodiscard]] static GateVerdict wait(QString reason, std::chrono::milliseconds retryAfter, QJsonObject evidence = {});

    [[nodiscard]] Result result() const { return m_result; }
    /// True for Pass and Skip: the only results that let a task through.
    [[nodiscard]] bool allowsPassage() const;
    [[nodiscard]] QString reason() const { return m_reason; }
    [[nodiscard]] QList<Finding> findings() const { return m_findings; }
    /**
     * What the gate looked at, for the record. One key has a meaning for the host:
     * "feedback", a list of {"file": path in the worktree, "text": findings, "cut": bool} —
     * documents the agent should read (a reviewer's findings). After a rollback by this
     * verdict the engine copies them, capped and masked, into the agent's next task file.
     */
    [[nodiscard]] QJsonObject evidence() const { return m_evidence; }
    /// For Wait: when to evaluate again (the evidence's "retryAfterMs"). Zero for the other results. Since SDK API 1.1.
    [[nodiscard]] std::chrono::milliseconds retryAfter() const;

    void setReason(const QString &reason) { m_reason = reason; }
    void addFinding(const Finding &finding) { m_findings.append(finding); }
    void setEvidence(const QJsonObject &evidence) { m_evidence = evidence; }

    [[nodiscard]] QJsonObject toJson() const;
    [[nodiscard]] static GateVerdict fromJson(const QJsonObject &object);

    /// "pass", "fail", "error", "skip" or "wait".
    [[nodiscard]] static QString resultName(Result result);

private:
    Result m_result = Result::Error; // a default-constructed verdict never lets anything pass
    QString m_reason = QStringLiteral("no verdict");
    QList<Finding> m_findings;
    QJsonObject m_evidence;
};

} // namespace Sluice
