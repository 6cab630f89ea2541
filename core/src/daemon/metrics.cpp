// SPDX-License-Identifier: Apache-2.0
#include "metrics.h"

#include <QLocale>
#include <QLoggingCategory>
#include <QMutex>
#include <QMutexLocker>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

Q_LOGGING_CATEGORY(lcMetrics, "sluice.core.metrics", QtInfoMsg)

namespace Sluice {

namespace {

bool validName(const QString &name, bool label)
{
    if (name.isEmpty() || (label && name.startsWith(QLatin1String("__"))))
        return false;
    for (qsizetype i = 0; i < name.size(); ++i) {
        const ushort c = name.at(i).unicode();
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
        const bool digit = c >= '0' && c <= '9';
        if (!letter && !(digit && i > 0))
            return false;
    }
    return true;
}

QByteArray escape(const QString &text, bool quotes)
{
    QByteArray out;
    for (const char c : text.toUtf8()) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (quotes && c == '"')
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

// The series key is its label block as rendered ("{a=\"1\",b=\"2\"}"), labels sorted by name:
// sorting keys sorts series, and rendering is a concatenation.
std::optional<QByteArray> seriesKey(const QString &name, Metrics::Labels labels)
{
    std::sort(labels.begin(), labels.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
    QByteArray key;
    for (qsizetype i = 0; i < labels.size(); ++i) {
        if (!validName(labels.at(i).first, true) || (i > 0 && labels.at(i).first == labels.at(i - 1).first)) {
            qCWarning(lcMetrics).noquote() << "metric" << name << "refused: invalid or repeated label" << labels.at(i).first;
            return std::nullopt;
        }
        key += (i == 0 ? "{" : ",") + labels.at(i).first.toUtf8() + "=\"" + escape(labels.at(i).second, true) + '"';
    }
    if (!key.isEmpty())
        key += '}';
    return key;
}

QByteArray formatValue(double v)
{
    if (std::isnan(v))
        return QByteArrayLiteral("NaN");
    if (std::isinf(v))
        return v > 0 ? QByteArrayLiteral("+Inf") : QByteArrayLiteral("-Inf");
    // Whole numbers as integers ("3", not "3e+00"); others in the shortest form that reads back exactly.
    if (v == std::trunc(v) && std::fabs(v) < 1e15)
        return QByteArray::number(qint64(v));
    return QByteArray::number(v, 'g', QLocale::FloatingPointShortest);
}

} // namespace

struct Metrics::Data {
    struct Family {
        Type type = Type::Counter;
        QString help;
        bool described = false;
        std::map<QByteArray, double> series;
    };
    mutable QMutex mutex;
    std::map<QByteArray, Family> families;

    // The family of @p name, created with @p type when new; null on an invalid name or
    // (when @p strict) a type mismatch.
    Family *family(const QString &name, Type type, bool strict)
    {
        const QByteArray key = name.toUtf8();
        auto it = families.find(key);
        if (it == families.end()) {
            if (!validName(name, false)) {
                qCWarning(lcMetrics).noquote() << "invalid metric name" << name;
                return nullptr;
            }
            it = families.emplace(key, Family{type, QString(), false, {}}).first;
        } else if (strict && it->second.type != type) {
            qCWarning(lcMetrics).noquote() << "metric" << name << "already has another type";
            return nullptr;
        }
        return &it->second;
    }
};

Metrics::Metrics()
    : d(std::make_unique<Data>())
{
}

Metrics::~Metrics() = default;

bool Metrics::describe(const QString &name, Type type, const QString &help)
{
    QMutexLocker lock(&d->mutex);
    Data::Family *f = d->family(name, type, true);
    if (!f)
        return false;
    f->help = help;
    f->described = true;
    return true;
}

bool Metrics::increment(const QString &name, const Labels &labels, double by)
{
    const std::optional<QByteArray> key = seriesKey(name, labels);
    if (!key || std::isnan(by))
        return false;
    QMutexLocker lock(&d->mutex);
    Data::Family *f = d->family(name, Type::Counter, false);
    if (!f || (f->type == Type::Counter && (by < 0 || std::isinf(by))))
        return false;
    f->series[*key] += by;
    return true;
}

bool Metrics::set(const QString &name, const Labels &labels, double value)
{
    const std::optional<QByteArray> key = seriesKey(name, labels);
    if (!key)
        return false;
    QMutexLocker lock(&d->mutex);
    Data::Family *f = d->family(name, Type::Gauge, false);
    if (!f)
        return false;
    f->series[*key] = value;
    return true;
}

bool Metrics::remove(const QString &name, const Labels &labels)
{
    const std::optional<QByteArray> key = seriesKey(name, labels);
    if (!key)
        return false;
    QMutexLocker lock(&d->mutex);
    auto it = d->families.find(name.toUtf8());
    return it != d->families.end() && it->second.series.erase(*key) > 0;
}

double Metrics::value(const QString &name, const Labels &labels) const
{
    const std::optional<QByteArray> key = seriesKey(name, labels);
    if (!key)
        return 0.0;
    QMutexLocker lock(&d->mutex);
    auto it = d->families.find(name.toUtf8());
    if (it == d->families.end())
        return 0.0;
    auto series = it->second.series.find(*key);
    return series == it->second.series.end() ? 0.0 : series->second;
}

QByteArray Metrics::render() const
{
    QMutexLocker lock(&d->mutex);
    QByteArray out;
    for (const auto &[name, family] : d->families) {
        if (family.described)
            out += "# HELP " + name + ' ' + escape(family.help, false) + '\n';
        out += "# TYPE " + name + (family.type == Type::Counter ? " counter\n" : " gauge\n");
        for (const auto &[labels, value] : family.series)
            out += name + labels + ' ' + formatValue(value) + '\n';
    }
    return out;
}

} // namespace Sluice
