// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the merge gate's tests share: files and hooks written, and a CI system in miniature
// that posts one status on every new head of the forge repository's branches. Git itself runs
// through Test::runGit() (sluice/testsupport.h).

#include <sluice/testsupport.h>

#include <QDir>
#include <QFile>
#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTimer>

#include <functional>

namespace Sluice::Test {

inline bool writeFile(const QString &path, const QByteArray &content)
{
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return false;
    return f.write(content) == content.size();
}

/// Writes an executable hook script.
inline bool writeHook(const QString &path, const QByteArray &script)
{
    return writeFile(path, script) && QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
}

/// A CI system in miniature: every new head of a branch of the forge repository gets one status.
class MiniCi : public QObject
{
public:
    MiniCi(QString bare, std::function<void(const QString &sha, const QString &state)> post)
        : m_bare(std::move(bare))
        , m_post(std::move(post))
    {
        connect(&m_timer, &QTimer::timeout, this, [this] { tick(); });
        m_timer.start(20);
    }
    QString state = QStringLiteral("success"); ///< Empty: CI has not finished anything (pending forever).
    QStringList seen;

    void tick()
    {
        if (state.isEmpty())
            return;
        const GitOut heads = runGit({QStringLiteral("--git-dir"), m_bare, QStringLiteral("for-each-ref"), QStringLiteral("--format=%(objectname)"), QStringLiteral("refs/heads")});
        for (const QString &sha : heads.out.split(QLatin1Char('\n'), Qt::SkipEmptyParts)) {
            if (seen.contains(sha))
                continue;
            seen.append(sha);
            m_post(sha, state);
        }
    }

private:
    QString m_bare;
    std::function<void(const QString &, const QString &)> m_post;
    QTimer m_timer;
};

} // namespace Sluice::Test
