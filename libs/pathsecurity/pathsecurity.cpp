// SPDX-License-Identifier: Apache-2.0
#include "pathsecurity.h"

#include <QDir>
#include <QFileInfo>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace Sluice {

TrustedOwners TrustedOwners::forServiceUser(const QString &serviceUser)
{
    TrustedOwners owners;
    owners.add(0);
    owners.add(geteuid());
    if (!serviceUser.isEmpty()) {
        const QByteArray name = serviceUser.toLocal8Bit();
        if (const passwd *pw = getpwnam(name.constData()))
            owners.add(pw->pw_uid);
    }
    return owners;
}

namespace {

Result<struct stat> statPath(const QString &path, bool followLinks)
{
    struct stat st {};
    const QByteArray native = QFile::encodeName(path);
    const int rc = followLinks ? ::stat(native.constData(), &st) : ::lstat(native.constData(), &st);
    if (rc != 0)
        return fail(ErrorCode::Io, QStringLiteral("cannot stat %1").arg(path), QString::fromLocal8Bit(strerror(errno)));
    return st;
}

Result<void> checkOwnerAndMode(const QString &path, const struct stat &st, const TrustedOwners &owners,
                               bool acceptStickyRoot)
{
    if (acceptStickyRoot && st.st_uid == 0 && (st.st_mode & S_ISVTX))
        return {};
    if (!owners.contains(st.st_uid))
        return fail(ErrorCode::PermissionDenied,
                    QStringLiteral("%1 is owned by uid %2, not by root or the service user").arg(path).arg(st.st_uid));
    if (st.st_mode & S_IWGRP)
        return fail(ErrorCode::PermissionDenied, QStringLiteral("%1 is writable by its group").arg(path));
    if (st.st_mode & S_IWOTH)
        return fail(ErrorCode::PermissionDenied, QStringLiteral("%1 is writable by others").arg(path));
    return {};
}

} // namespace

Result<void> checkPluginDirectory(const QString &path, const TrustedOwners &owners)
{
    const QString canonical = QFileInfo(path).canonicalFilePath();
    if (canonical.isEmpty())
        return fail(ErrorCode::NotFound, QStringLiteral("plugin directory %1 does not exist").arg(path));
    auto st = statPath(canonical, true);
    if (!st)
        return std::unexpected(st.error());
    if (!S_ISDIR(st->st_mode))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("plugin directory %1 is not a directory").arg(path));
    if (auto r = checkOwnerAndMode(canonical, *st, owners, false); !r)
        return r;
    // Whoever can rename an ancestor can swap the whole directory.
    QDir dir(canonical);
    while (dir.cdUp()) {
        auto parent = statPath(dir.absolutePath(), true);
        if (!parent)
            return std::unexpected(parent.error());
        if (auto r = checkOwnerAndMode(dir.absolutePath(), *parent, owners, true); !r)
            return fail(r.error().code, QStringLiteral("plugin directory %1 is unsafe: %2").arg(path, r.error().message));
        if (dir.isRoot())
            break;
    }
    return {};
}

Result<void> checkPluginFile(const QString &path, const TrustedOwners &owners)
{
    auto link = statPath(path, false);
    if (!link)
        return std::unexpected(link.error());
    QString target = path;
    if (S_ISLNK(link->st_mode)) {
        target = QFileInfo(path).canonicalFilePath();
        if (target.isEmpty())
            return fail(ErrorCode::NotFound, QStringLiteral("%1 is a dangling symlink").arg(path));
    }
    auto st = statPath(target, true);
    if (!st)
        return std::unexpected(st.error());
    if (!S_ISREG(st->st_mode))
        return fail(ErrorCode::InvalidConfig, QStringLiteral("%1 is not a regular file").arg(path));
    if (auto r = checkOwnerAndMode(target, *st, owners, false); !r)
        return r;
    if (target != path) {
        // The target's directory must be as safe as a plugin directory.
        if (auto r = checkPluginDirectory(QFileInfo(target).absolutePath(), owners); !r)
            return fail(r.error().code, QStringLiteral("%1 links to an unsafe place: %2").arg(path, r.error().message));
    }
    return {};
}

} // namespace Sluice
