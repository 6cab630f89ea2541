// SPDX-License-Identifier: Apache-2.0
#pragma once

/**
 * @file project.h
 * What a plugin may know about the project it serves.
 */

#include <sluice/global.h>

#include <QString>
#include <QStringList>

namespace Sluice {

/// A project as plugins see it: one repository plus its pipeline.
struct SLUICE_EXPORT ProjectInfo {
    QString id;             ///< Project id from its file ("quickstart").
    QString repository;     ///< Repository location: a local path or a forge URL.
    QString targetBranch;   ///< The branch changes merge into ("main").
    QStringList stages;     ///< Stage names in pipeline order.
    QString configFile;     ///< Absolute path of the project file.
};

} // namespace Sluice
