// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the connector tests (forges, trackers, notifiers against their fake service on
// loopback) share: the log every message goes to while the test runs, for the checks that a
// secret reaches no log line; the plugin loaded as the host loads it; secrets written to
// files; instances made from settings YAML and initialised; and the text of every error an
// operation returned, for the checks that a secret reaches no error either. Calls run through
// runCall() (loopbackserver.h).

#include "loopbackserver.h"

#include <sluice/plugin.h>
#include <sluice/testsupport.h>

#include <QByteArray>
#include <QFile>
#include <QMutex>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>
#include <QtTest>

#include <memory>

namespace Sluice::Test {

/// Every message logged between install() and uninstall(), passed on to the handler before.
class LogCapture
{
public:
    static void install() { state().previous = qInstallMessageHandler(&LogCapture::capture); }
    static void uninstall() { qInstallMessageHandler(state().previous); }
    /// The messages so far.
    [[nodiscard]] static QStringList lines()
    {
        QMutexLocker lock(&state().mutex);
        return state().lines;
    }

private:
    struct State {
        QMutex mutex;
        QStringList lines;
        QtMessageHandler previous = nullptr;
    };
    static State &state()
    {
        static State s;
        return s;
    }
    static void capture(QtMsgType type, const QMessageLogContext &context, const QString &message)
    {
        {
            QMutexLocker lock(&state().mutex);
            state().lines.append(message);
        }
        if (state().previous)
            state().previous(type, context, message);
    }
};

/// One connector plugin under test, its secret files and the errors its calls returned.
class ConnectorFixture
{
public:
    /// Loads @p pluginFile (initTestCase) and checks it is a plugin of @p kind.
    [[nodiscard]] bool load(const QString &pluginFile, PluginKind kind)
    {
        if (!m_dir.isValid()) {
            QTest::qFail("cannot create a temporary directory", __FILE__, __LINE__);
            return false;
        }
        auto plugin = loadPlugin(pluginFile);
        if (!plugin) {
            QTest::qFail(qPrintable(plugin.error().toString()), __FILE__, __LINE__);
            return false;
        }
        m_plugin = *plugin;
        if (m_plugin.metaData.kind() != kind) {
            QTest::qFail(qPrintable(QStringLiteral("%1 is a %2, not a %3")
                                        .arg(pluginFile, pluginKindName(m_plugin.metaData.kind()), pluginKindName(kind))),
                         __FILE__, __LINE__);
            return false;
        }
        return true;
    }

    [[nodiscard]] const LoadedPlugin &plugin() const { return m_plugin; }

    /// The path of @p name in the fixture's temporary directory.
    [[nodiscard]] QString filePath(const QString &name) const { return m_dir.filePath(name); }

    /// Writes @p value and a newline to the file @p name of the temporary directory; its path.
    QString writeSecret(const QString &name, const QByteArray &value)
    {
        const QString path = m_dir.filePath(name);
        QFile f(path);
        if (!f.open(QIODevice::WriteOnly))
            return {};
        f.write(value + '\n');
        return path;
    }

    /// An instance with the settings @p yaml, initialised; null (the error logged) otherwise.
    std::unique_ptr<PluginInstance> instance(const QByteArray &yaml)
    {
        auto created = createInstance(m_plugin, yaml);
        if (!created) {
            qWarning() << created.error().toString();
            return nullptr;
        }
        if (auto ready = (*created)->initialize(); !ready) {
            qWarning() << ready.error().toString();
            return nullptr;
        }
        return std::move(*created);
    }

    /// Runs @p call to its end; an error's message and detail are kept in errors().
    template<typename T>
    Result<T> run(std::unique_ptr<AsyncCall<T>> call)
    {
        Result<T> r = runCall(std::move(call));
        if (!r)
            record(r.error());
        return r;
    }
    void record(const Error &error) { m_errors << error.message << error.detail; }
    /// The message and detail of every error seen.
    [[nodiscard]] const QStringList &errors() const { return m_errors; }

private:
    QTemporaryDir m_dir;
    LoadedPlugin m_plugin;
    QStringList m_errors;
};

} // namespace Sluice::Test
