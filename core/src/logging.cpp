// SPDX-License-Identifier: Apache-2.0
#include "logging.h"

#include <sluice/secrets.h>

#include <QLoggingCategory>
#include <QMutex>

#include <utility>

#include <cstdio>

namespace Sluice::Logging {

namespace {

bool underJournald()
{
    return !qEnvironmentVariableIsEmpty("JOURNAL_STREAM");
}

// syslog priorities, read by journald from a "<N>" prefix.
int priority(QtMsgType type)
{
    switch (type) {
    case QtDebugMsg: return 7;
    case QtInfoMsg: return 6;
    case QtWarningMsg: return 4;
    case QtCriticalMsg: return 3;
    case QtFatalMsg: return 2;
    }
    return 6;
}

const char *label(QtMsgType type)
{
    switch (type) {
    case QtDebugMsg: return "debug";
    case QtInfoMsg: return "info";
    case QtWarningMsg: return "warning";
    case QtCriticalMsg: return "error";
    case QtFatalMsg: return "fatal";
    }
    return "info";
}

// Set while this thread masks a message: a message logged from inside the masking (Qt
// itself may warn) is only redacted, never masked again, so the handler cannot recurse.
thread_local bool masking = false;

void write(QtMsgType type, const QByteArray &category, const QString &text)
{
    const QByteArray line = underJournald()
        ? QStringLiteral("<%1>%2: %3\n").arg(priority(type)).arg(QString::fromLatin1(category), text).toUtf8()
        : QStringLiteral("%1: %2: %3\n").arg(QString::fromLatin1(category), QLatin1String(label(type)), text).toUtf8();
    std::fwrite(line.constData(), 1, std::size_t(line.size()), stderr);
    std::fflush(stderr);
}

// Lines logged while the free-text masker was not ready yet (its rules compile for most of a
// second after the process starts): kept in order, written masked once it is, so no thread
// waits for the compilation just to log.
struct Waiting {
    QtMsgType type;
    QByteArray category;
    QString message;
};
struct WaitingLines {
    QMutex mutex; // also keeps the written lines in order
    QList<Waiting> lines;
};
WaitingLines &waitingLines()
{
    static WaitingLines w;
    return w;
}

QString masked(const QString &message)
{
    masking = true;
    QString text = Redaction::mask(message);
    masking = false;
    return text;
}

// Writes the waiting lines; with the lock held.
void writeWaiting(WaitingLines &w)
{
    for (const Waiting &line : std::exchange(w.lines, {}))
        write(line.type, line.category, masked(line.message));
}

void handler(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    const QByteArray category(context.category ? context.category : "default");
    if (masking) {
        write(type, category, Redaction::redact(message));
        return;
    }
    // Registered secrets, and tokens nobody registered that an agent's or a command's
    // output carried into the message (when a free-text masker is installed).
    WaitingLines &w = waitingLines();
    QMutexLocker lock(&w.mutex);
    const auto masker = Redaction::freeTextMasker();
    if (masker && !masker->isReady() && type != QtFatalMsg) {
        w.lines.append(Waiting{type, category, message});
        return;
    }
    writeWaiting(w);
    write(type, category, masked(message));
    if (type == QtFatalMsg)
        std::abort();
}

} // namespace

void flush()
{
    WaitingLines &w = waitingLines();
    QMutexLocker lock(&w.mutex);
    writeWaiting(w);
}

void install()
{
    qInstallMessageHandler(handler);
    applyRules(QString());
}

void applyRules(const QString &rules)
{
    // Defaults first, then the host file, then the environment wins (for debugging a unit).
    QString all = QStringLiteral("sluice.*.debug=false\n");
    if (!rules.isEmpty())
        all += QString(rules).replace(QLatin1Char(';'), QLatin1Char('\n')) + QLatin1Char('\n');
    const QString env = qEnvironmentVariable("QT_LOGGING_RULES");
    if (!env.isEmpty())
        all += QString(env).replace(QLatin1Char(';'), QLatin1Char('\n'));
    QLoggingCategory::setFilterRules(all);
}

} // namespace Sluice::Logging
