// SPDX-License-Identifier: Apache-2.0
#include "cli.h"

#include <sluice/global.h>

#include <QJsonObject>

namespace Sluice::Cli {

int runVersion(const QStringList &arguments)
{
    QCommandLineParser parser;
    parser.addOption(jsonOption());
    if (!parse(parser, arguments, QStringLiteral("Print the version of sluice and its SDK.")))
        return UsageError;
    const QString api = QStringLiteral("%1.%2").arg(SdkAbiMajor).arg(SdkApiMinor);
    if (parser.isSet(QStringLiteral("json"))) {
        printJson(QJsonDocument(QJsonObject{{QStringLiteral("version"), QStringLiteral(SLUICE_VERSION_STRING)},
                                            {QStringLiteral("sdkAbi"), SdkAbiMajor},
                                            {QStringLiteral("sdkApi"), api},
                                            {QStringLiteral("pluginIid"), QStringLiteral(SLUICE_PLUGIN_FACTORY_IID)},
                                            {QStringLiteral("qt"), QLatin1String(qVersion())}}));
    } else {
        printOut(QStringLiteral("sluice %1 (SDK ABI %2, API %3; Qt %4)")
                     .arg(QStringLiteral(SLUICE_VERSION_STRING)).arg(SdkAbiMajor).arg(api, QLatin1String(qVersion())));
    }
    return Success;
}

} // namespace Sluice::Cli
