// SPDX-License-Identifier: Apache-2.0
#pragma once

// Cases every forge connector must pass the same way, written once and run by each
// connector's test against the fake forge in that forge's flavour. A ForgeDialect says what
// differs between the forges' APIs (the merge's HTTP method, the words of a refusal); the
// rows and the checks are the same for all. Call a case from the test function, its rows from
// the _data() function.

#include "connectorfixture.h"
#include "fakeforge.h"

#include <sluice/forge.h>

#include <QtTest>

namespace Sluice::Test {

/// What differs between the forges' APIs, as far as the shared cases are concerned.
struct ForgeDialect {
    QByteArray mergeMethod;   ///< The method of the merge request: "POST" (Gitea), "PUT" (GitHub).
    QString headMovedRefusal; ///< Words of the forge's 409 when the head moved before the merge.
};

/// The flavours the fake forge speaks, with the name of their data rows: a case that runs on
/// every forge has a row (or a set of rows) per flavour.
inline const QList<QPair<const char *, FakeForge::Flavor>> &forgeFlavors()
{
    static const QList<QPair<const char *, FakeForge::Flavor>> flavors{{"gitea", FakeForge::Flavor::Gitea},
                                                                       {"github", FakeForge::Flavor::GitHub}};
    return flavors;
}

/// The int column "flavor" (a FakeForge::Flavor), for tables with more columns.
inline void addForgeFlavorColumn()
{
    QTest::addColumn<int>("flavor");
}

/// The column "flavor" with one row per forge flavour, named after it ("gitea", "github").
inline void addForgeFlavorRows()
{
    addForgeFlavorColumn();
    for (const auto &[name, flavor] : forgeFlavors())
        QTest::newRow(name) << int(flavor);
}

/// The flavour a "flavor" column holds.
inline FakeForge::Flavor flavorOf(int value)
{
    return FakeForge::Flavor(value);
}

inline QString fakeSha(int i)
{
    return QStringLiteral("%1").arg(i, 40, 16, QLatin1Char('0'));
}

/// Rows of mergeRefusedForAMovedHeadOnlyWhenReadWhole().
inline void mergeRefusedForAMovedHeadOnlyWhenReadWhole_data()
{
    QTest::addColumn<bool>("cut");
    QTest::addColumn<int>("code");
    QTest::newRow("409 read whole: a refusal") << false << int(ErrorCode::Conflict);
    QTest::newRow("409 with its body cut short: unreadable") << true << int(ErrorCode::Network);
}

/**
 * The pull request's head moves just before the merge: the forge refuses it with 409. Only a
 * refusal that can be read whole is one (Conflict: the merge gate fails); a 409 whose body
 * broke off is an answer that could not be read (Network: the merge gate waits or errs),
 * never a judgement (the fault campaign's seeds 0x89a21fef34eb31ba, 0x71911a0b890a0206).
 */
inline void mergeRefusedForAMovedHeadOnlyWhenReadWhole(FakeForge &fake, Forge &forge, ConnectorFixture &fixture,
                                                       const ForgeDialect &dialect)
{
    QFETCH(bool, cut);
    QFETCH(int, code);
    fake.addPullRequest({21, QString(), QStringLiteral("moving"), fakeSha(21)});
    FakeForge *hooked = &fake;
    const QByteArray method = dialect.mergeMethod;
    fake.setRequestHook([hooked, method](const FakeRequest &r) {
        if (r.method == method && r.path.endsWith(QLatin1String("/pulls/21/merge")))
            hooked->addPullRequest({21, QString(), QStringLiteral("moving"), fakeSha(22)}); // someone pushed
    });
    if (cut) {
        FakeFault truncated;
        truncated.kind = FakeFault::Kind::Truncated;
        truncated.method = dialect.mergeMethod;
        truncated.pathPattern = QStringLiteral("/merge$");
        fake.addFault(truncated);
    }
    MergeRequest request;
    request.expectedHeadSha = fakeSha(21);
    auto refused = fixture.run(forge.merge(21, request));
    fake.setRequestHook({});
    QVERIFY(!refused);
    QCOMPARE(int(refused.error().code), code);
    QVERIFY2(refused.error().message.contains(QLatin1String("409")), qPrintable(refused.error().message));
    if (!cut)
        QVERIFY2(refused.error().message.contains(dialect.headMovedRefusal) || refused.error().detail.contains(dialect.headMovedRefusal),
                 qPrintable(refused.error().toString()));
    QCOMPARE(fake.mergesApplied(), 0);
}

} // namespace Sluice::Test
