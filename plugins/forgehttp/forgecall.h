// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the forge connectors share above HTTP: an AsyncCall run by a function, and strict
// readers of JSON fields (a missing or mistyped field is Malformed, naming the field).

#include <sluice/job.h>

#include <QDateTime>
#include <QJsonObject>
#include <QJsonValue>

#include <functional>

namespace Sluice::ForgeHttp {

/**
 * An AsyncCall whose work is @p run(call): it sends requests with the call as their guard
 * (so a call the host deleted gets no callback) and ends with call->finishWith().
 */
template<typename T>
class FunctionCall final : public AsyncCall<T>
{
public:
    explicit FunctionCall(std::function<void(FunctionCall<T> *)> run)
        : m_run(std::move(run))
    {
    }

protected:
    void doStart() override { m_run(this); }
    void doCancel() override
    {
        this->finishWith(fail(ErrorCode::Cancelled, QStringLiteral("cancelled")));
    }

private:
    std::function<void(FunctionCall<T> *)> m_run;
};

/// A call that fails at once with @p error when started.
template<typename T>
std::unique_ptr<AsyncCall<T>> failedCall(Error error)
{
    return std::make_unique<FunctionCall<T>>([error](FunctionCall<T> *call) { call->finishWith(std::unexpected(error)); });
}

/// Strict field readers; @p what names the object in errors ("pull request #4").
class JsonFields
{
public:
    JsonFields(const QJsonValue &value, QString what);
    [[nodiscard]] bool isObject() const { return m_value.isObject(); }
    [[nodiscard]] Result<void> requireObject() const;
    [[nodiscard]] Result<QString> string(const QString &key, bool allowEmpty = false) const;
    [[nodiscard]] QString optionalString(const QString &key) const;
    [[nodiscard]] Result<qint64> integer(const QString &key) const;
    [[nodiscard]] Result<bool> boolean(const QString &key) const;
    [[nodiscard]] Result<QDateTime> time(const QString &key) const;
    [[nodiscard]] JsonFields object(const QString &key) const;
    [[nodiscard]] const QString &what() const { return m_what; }

private:
    [[nodiscard]] std::unexpected<Error> missing(const QString &key, const char *expected) const;
    QJsonObject m_object;
    QJsonValue m_value;
    QString m_what;
};

} // namespace Sluice::ForgeHttp
