// SPDX-License-Identifier: Apache-2.0
#pragma once

// Real git repositories for the security gate's tests.

#include <sluice/testsupport.h>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QString>
#include <QStringList>

namespace SecurityTest {

// Secrets are assembled at run time, so the test sources hold none.
inline QByteArray awsKey()
{
    return QByteArray("AKIA") + "Z3MSJV4WWNKWW5FG";
}
inline QByteArray githubPat()
{
    return QByteArray("ghp_") + "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx";
}

/// A repository in @p dir with `main` checked out; git failures abort the test via the return value.
class GitRepo
{
public:
    explicit GitRepo(const QString &dir)
        : m_dir(dir)
    {
    }

    QString path() const { return m_dir; }

    bool git(const QStringList &args, QByteArray *out = nullptr) const
    {
        const Sluice::Test::GitOut run = Sluice::Test::runGit(args, m_dir);
        if (run.code != 0) {
            qWarning("git %s failed: %s", qPrintable(args.join(QLatin1Char(' '))), qPrintable(run.err));
            return false;
        }
        if (out)
            *out = run.out.toUtf8();
        return true;
    }

    bool init() const
    {
        QDir().mkpath(m_dir);
        return git({QStringLiteral("init"), QStringLiteral("-q"), QStringLiteral("-b"), QStringLiteral("main")})
               && write(QStringLiteral("README.md"), "# project\n") && commitAll(QStringLiteral("initial"));
    }

    bool write(const QString &relative, const QByteArray &content) const
    {
        const QString file = QDir(m_dir).filePath(relative);
        QDir().mkpath(QFileInfo(file).path());
        QFile f(file);
        return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(content) == content.size();
    }

    bool remove(const QString &relative) const { return QFile::remove(QDir(m_dir).filePath(relative)); }

    bool commitAll(const QString &message) const
    {
        return git({QStringLiteral("add"), QStringLiteral("-A")})
               && git({QStringLiteral("commit"), QStringLiteral("-q"), QStringLiteral("--allow-empty"), QStringLiteral("-m"), message});
    }

    bool checkout(const QString &branch, bool create = false) const
    {
        return create ? git({QStringLiteral("checkout"), QStringLiteral("-q"), QStringLiteral("-b"), branch})
                      : git({QStringLiteral("checkout"), QStringLiteral("-q"), branch});
    }

    QString head() const
    {
        QByteArray out;
        git({QStringLiteral("rev-parse"), QStringLiteral("HEAD")}, &out);
        return QString::fromUtf8(out);
    }

private:
    QString m_dir;
};

} // namespace SecurityTest
