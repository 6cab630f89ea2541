// SPDX-License-Identifier: Apache-2.0
// The out-of-tree plugin tested with the installed test support, as its author would.

#include <sluice/testsupport.h>

#include <QtTest>

using namespace Sluice;

class tst_LicenceGate : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void verdicts();
};

void tst_LicenceGate::verdicts()
{
    auto plugin = Test::loadPlugin(QStringLiteral(PLUGIN_FILE));
    QVERIFY2(plugin.has_value(), qPrintable(plugin ? QString() : plugin.error().message));
    QCOMPARE(plugin->metaData.id(), QStringLiteral("licence"));
    auto instance = Test::createInstance(*plugin, "allowed: [MIT]");
    QVERIFY(instance.has_value());
    auto *gate = qobject_cast<Gate *>(instance->get());
    QVERIFY(gate);

    QTemporaryDir worktree;
    auto write = [&](const QString &name, const QByteArray &text) {
        QFile f(worktree.filePath(name));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(text);
    };
    write(QStringLiteral("a.cpp"), "// SPDX-License-Identifier: MIT\nint a;\n");
    GateRequest request;
    request.worktree = worktree.path();
    QCOMPARE(Test::evaluateGate(*gate, request).result(), GateVerdict::Result::Pass);

    write(QStringLiteral("b.h"), "#pragma once\n");
    write(QStringLiteral("c.cpp"), "// SPDX-License-Identifier: GPL-3.0-only\n");
    const GateVerdict verdict = Test::evaluateGate(*gate, request);
    QCOMPARE(verdict.result(), GateVerdict::Result::Fail);
    QCOMPARE(verdict.findings().size(), 2);

    // Settings are validated by the host's rules: a typo is refused.
    QVERIFY(!Test::createInstance(*plugin, "alowed: [MIT]").has_value());
}

QTEST_GUILESS_MAIN(tst_LicenceGate)
#include "tst_licencegate.moc"
