// SPDX-License-Identifier: Apache-2.0
#pragma once

// A problem found in a configuration file, with the position a person needs to fix it.

#include <sluice/global.h>

#include <QJsonObject>
#include <QList>
#include <QString>

namespace Sluice {

struct Diagnostic {
    QString file;   ///< Absolute path of the file.
    int line = 0;   ///< 1-based; 0 when the problem is about the whole file.
    int column = 0; ///< 1-based; 0 when unknown.
    QString key;    ///< Dotted key path ("stages[2].exit_gates"); may be empty.
    QString message;

    /// "FILE:LINE:COLUMN: KEY: message" (or "FILE: message" without a position).
    [[nodiscard]] QString toString() const;
    [[nodiscard]] QJsonObject toJson() const;
};

using Diagnostics = QList<Diagnostic>;

} // namespace Sluice
