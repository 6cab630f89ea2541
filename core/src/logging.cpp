// SPDX-License-Identifier: Apache-2.0
#include "logging.h"

#include <sluice/secrets.h>

#include <QLoggingCategory>

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

void handler(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    // Registered secrets, and tokens nobody registered that an agent's or a command's
    // output carried into the message (when a free-text masker is installed).
    QString text;
    if (masking) {
        text = Redaction::redact(message);
    } else {
        masking = true;
        text = Redaction::mask(message);
        masking = false;
    }
    const QByteArray line = underJournald()
        ? QStringLiteral("<%1>%2: %3\n").arg(priority(type)).arg(QLatin1String(context.category), text).toUtf8()
        : QStringLiteral("%1: %2: %3\n").arg(QLatin1String(context.category), QLatin1String(label(type)), text).toUtf8();
    std::fwrite(line.constData(), 1, std::size_t(line.size()), stderr);
    std::fflush(stderr);
    if (type == QtFatalMsg)
        std::abort();
}

} // namespace

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
