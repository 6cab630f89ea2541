// SPDX-License-Identifier: Apache-2.0
// An example third-party gate: checks licence headers in the task's worktree.

#include <sluice/gate.h>
#include <sluice/pluginfactory.h>

#include <QDirIterator>
#include <QFile>

using namespace Sluice;

namespace Licence {

GateVerdict checkTree(const QString &root, const QStringList &extensions, const QStringList &allowed, int headLines)
{
    if (root.isEmpty())
        return GateVerdict::error(QStringLiteral("no worktree to check"));
    QList<Finding> findings;
    int checked = 0;
    QDirIterator it(root, QDir::Files, QDirIterator::Subdirectories);
    while (it.hasNext()) {
        const QString path = it.next();
        const QString relative = QDir(root).relativeFilePath(path);
        if (relative.startsWith(QLatin1String(".git/")))
            continue;
        if (std::none_of(extensions.begin(), extensions.end(), [&](const QString &e) { return path.endsWith(e); }))
            continue;
        ++checked;
        QFile f(path);
        if (!f.open(QIODevice::ReadOnly)) {
            findings.append(Finding{QStringLiteral("licence"), QStringLiteral("unreadable"), relative, 0, {}});
            continue;
        }
        QString licence;
        for (int i = 0; i < headLines && !f.atEnd(); ++i) {
            const QString line = QString::fromUtf8(f.readLine());
            const int at = line.indexOf(QLatin1String("SPDX-License-Identifier:"));
            if (at >= 0) {
                licence = line.mid(at + 24).trimmed();
                break;
            }
        }
        if (licence.isEmpty())
            findings.append(Finding{QStringLiteral("licence"), QStringLiteral("no SPDX-License-Identifier line"), relative, 1, {}});
        else if (!allowed.contains(licence))
            findings.append(Finding{QStringLiteral("licence"), QStringLiteral("licence %1 is not allowed").arg(licence), relative, 1, {}});
    }
    if (!findings.isEmpty())
        return GateVerdict::fail(QStringLiteral("%1 of %2 files lack an allowed licence header").arg(findings.size()).arg(checked),
                                 findings);
    return GateVerdict::pass(QStringLiteral("%1 files carry an allowed licence header").arg(checked));
}

class LicenceGate final : public Gate
{
public:
    using Gate::Gate;

    std::unique_ptr<GateRun> evaluate(const GateRequest &request) override
    {
        const QVariantMap s = context().settings();
        const QStringList extensions = s.value(QStringLiteral("extensions")).toStringList();
        const QStringList allowed = s.value(QStringLiteral("allowed")).toStringList();
        const int headLines = int(s.value(QStringLiteral("head_lines")).toLongLong());
        const QString root = request.worktree;
        // File reading happens on the thread pool; the verdict comes back on our thread.
        return std::make_unique<ConcurrentGateRun>([=] { return checkTree(root, extensions, allowed, headLines); });
    }
};

// The factory the library exports: LicenceGateFactory, which creates a LicenceGate with its context.
SLUICE_PLUGIN_CLASS_WITH_JSON(LicenceGate, "licence.json")

} // namespace Licence

#include "licencegate.moc"
