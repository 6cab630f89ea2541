// SPDX-License-Identifier: Apache-2.0
// SLUICE_PLUGIN_CLASS_WITH_JSON and Sluice::createPluginInstance (sluice/pluginfactory.h):
// which way an instance is made, and what the written factory class is to the host.
#include <sluice/gate.h>
#include <sluice/pluginfactory.h>

#include <QJsonObject>
#include <QtTest>

using namespace Sluice;

namespace FactoryTest {

// Made with its constructor: no static create().
class ConstructedGate final : public Gate
{
public:
    using Gate::Gate;
    std::unique_ptr<GateRun> evaluate(const GateRequest &) override { return nullptr; }
};

// Has both a constructor taking the context and a static create(): create() must win, and
// its refusal must reach the host unchanged.
class RefusingGate final : public Gate
{
public:
    using Gate::Gate;
    static inline int calls = 0;
    static Result<std::unique_ptr<RefusingGate>> create(const PluginContext &)
    {
        ++calls;
        return fail(ErrorCode::InvalidConfig, QStringLiteral("pattern: not a regular expression"));
    }
    std::unique_ptr<GateRun> evaluate(const GateRequest &) override { return nullptr; }
};

// A static create() that returns the base type, as the plugins of this repository do.
class CheckedGate final : public Gate
{
public:
    explicit CheckedGate(const PluginContext &context, int rule)
        : Gate(context)
        , m_rule(rule)
    {
    }
    static Result<std::unique_ptr<PluginInstance>> create(const PluginContext &context)
    {
        return std::make_unique<CheckedGate>(context, 42);
    }
    std::unique_ptr<GateRun> evaluate(const GateRequest &) override { return nullptr; }
    int rule() const { return m_rule; }

private:
    int m_rule;
};

SLUICE_PLUGIN_CLASS_WITH_JSON(CheckedGate, "../plugins/meta/test-gate.json")

} // namespace FactoryTest

class tst_PluginFactory : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void constructorWhenThereIsNoCreate()
    {
        auto made = createPluginInstance<FactoryTest::ConstructedGate>(PluginContext());
        QVERIFY2(made, made ? "" : qPrintable(made.error().toString()));
        QVERIFY(dynamic_cast<FactoryTest::ConstructedGate *>(made->get()));
        QCOMPARE((*made)->kind(), PluginKind::Gate);
    }

    void staticCreateWinsAndItsRefusalPassesThrough()
    {
        FactoryTest::RefusingGate::calls = 0;
        auto made = createPluginInstance<FactoryTest::RefusingGate>(PluginContext());
        QVERIFY(!made);
        QCOMPARE(FactoryTest::RefusingGate::calls, 1);
        QCOMPARE(made.error().code, ErrorCode::InvalidConfig);
        QCOMPARE(made.error().message, QStringLiteral("pattern: not a regular expression"));
    }

    void writtenFactoryIsThePluginFactory()
    {
        FactoryTest::CheckedGateFactory factory;
        QCOMPARE(factory.metaObject()->className(), "FactoryTest::CheckedGateFactory");
        // What QPluginLoader hands the host: a QObject that casts to the interface by its IID.
        QObject *root = &factory;
        auto *pluginFactory = qobject_cast<PluginFactory *>(root);
        QVERIFY(pluginFactory);
        auto made = pluginFactory->create(PluginContext());
        QVERIFY2(made, made ? "" : qPrintable(made.error().toString()));
        auto *gate = dynamic_cast<FactoryTest::CheckedGate *>(made->get());
        QVERIFY(gate);
        QCOMPARE(gate->rule(), 42);
    }
};

QTEST_GUILESS_MAIN(tst_PluginFactory)
#include "tst_pluginfactory.moc"
