// SPDX-License-Identifier: Apache-2.0
// A real `sluice serve` given hostile input (issue 16): project files that would cost
// gigabytes to load, files that are not files, a projects directory that cannot be listed,
// and slow clients holding HTTP connections. Each is refused or cut off by name, and the
// daemon keeps running with what it had.

#include "daemonprocess.h"

#include <sluice/testsupport.h>

#include <QJsonArray>
#include <QTcpSocket>
#include <QtTest>

#include <csignal>
#include <memory>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using namespace Sluice;

namespace {

const char *const project = R"(id: p
repository: {path: ../repo.git}
stages:
  - name: work
    run: worker
  - name: done
instances:
  worker: {plugin: test-stage, settings: {role: developer}}
)";

// The issue's reproduction: a 1 MB string referenced 3,000 times.
QByteArray aliasBomb()
{
    QByteArray yaml = "id: p\ndescription: &s \"" + QByteArray(1000 * 1000, 'A') + "\"\nstages:\n  - name: work\n    exit_gates: [";
    for (int i = 0; i < 3000; ++i)
        yaml += i ? ", *s" : "*s";
    return yaml + "]\n  - name: done\n";
}

} // namespace

class tst_HostileInput : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanup();
    void reloadRefusesHostileProjectFilesAndKeepsRunning();
    void slowClientsDoNotLockOutHealthz();

private:
    QJsonArray projects() { return m_daemon.request("GET", QStringLiteral("/api/status")).json().value(QLatin1String("projects")).toArray(); }
    void hangUp() { QCOMPARE(::kill(pid_t(m_daemon.processId()), SIGHUP), 0); }

    Test::PluginDirectory m_plugins;
    Test::TemporaryConfig m_config;
    Test::DaemonProcess m_daemon{QStringLiteral(SLUICE_EXECUTABLE)};
};

void tst_HostileInput::initTestCase()
{
    m_plugins.add(QStringLiteral(SLUICE_TEST_PLUGIN_DIR), QStringLiteral("test-stage"));
    m_config.writeHostFile("node: test-node\nstate_dir: state\nplugin_dirs: [" + m_plugins.path().toUtf8()
                           + "]\nworker: {poll_interval: 100ms}\n"
                             "http: {port: 0, max_connections: 8, max_connections_per_client: 3, header_timeout: 1s}\n");
    m_config.writeProject(QStringLiteral("p"), project);
}

void tst_HostileInput::cleanup()
{
    if (m_daemon.state() != QProcess::NotRunning) {
        m_daemon.kill();
        m_daemon.waitForFinished(5000);
    }
}

void tst_HostileInput::reloadRefusesHostileProjectFilesAndKeepsRunning()
{
    QVERIFY(m_daemon.serve(m_config.path()));
    QVERIFY(projects().contains(QStringLiteral("p")));
    const QString projectsDir = m_config.path() + QStringLiteral("/projects");

    // The alias bomb killed the daemon on SIGHUP (std::bad_alloc past 5.9 GB): now refused
    // with its position, and the running version of p stays.
    m_config.writeProject(QStringLiteral("p"), aliasBomb());
    m_daemon.clearLog();
    hangUp();
    QTRY_VERIFY_WITH_TIMEOUT(m_daemon.log().contains("the previous version of p keeps running"), 20000);
    QVERIFY2(m_daemon.log().contains("p.yaml:5:"), m_daemon.log().right(2000).constData());
    QVERIFY(m_daemon.log().contains("aliases expand the file past 8 MiB"));
    QVERIFY(m_daemon.log().size() < 100000);
    QCOMPARE(m_daemon.request("GET", QStringLiteral("/healthz")).status, 200);
    QVERIFY(projects().contains(QStringLiteral("p")));

    // Files that are not files: each named, none hangs the reload.
    m_config.writeProject(QStringLiteral("p"), project);
    QCOMPARE(::mkfifo(QFile::encodeName(projectsDir + QStringLiteral("/fifo.yaml")).constData(), 0600), 0);
    QCOMPARE(::symlink("nowhere.yaml", QFile::encodeName(projectsDir + QStringLiteral("/dangling.yaml")).constData()), 0);
    QCOMPARE(::symlink("loop.yaml", QFile::encodeName(projectsDir + QStringLiteral("/loop.yaml")).constData()), 0);
    QCOMPARE(::symlink("/dev/zero", QFile::encodeName(projectsDir + QStringLiteral("/zero.yaml")).constData()), 0);
    m_daemon.clearLog();
    hangUp();
    QTRY_VERIFY_WITH_TIMEOUT(m_daemon.log().contains("zero.yaml"), 20000);
    const QByteArray log = m_daemon.log();
    QVERIFY2(log.contains("fifo.yaml: is a FIFO, not a regular file"), log.constData());
    QVERIFY(log.contains("dangling.yaml: is a symbolic link to nowhere.yaml, which does not exist"));
    QVERIFY(log.contains("loop.yaml: is a symbolic link loop"));
    QVERIFY(log.contains("zero.yaml: is a character device, not a regular file"));
    QVERIFY(projects().contains(QStringLiteral("p")));

    // A projects directory that cannot be listed says nothing about which projects are gone:
    // they keep running.
    QVERIFY(QDir(m_config.path()).rename(QStringLiteral("projects"), QStringLiteral("projects.off")));
    m_config.writeFile(QStringLiteral("projects"), "not a directory");
    m_daemon.clearLog();
    hangUp();
    QTRY_VERIFY_WITH_TIMEOUT(m_daemon.log().contains("cannot list the project files: Not a directory"), 20000);
    QVERIFY(projects().contains(QStringLiteral("p")));
    QCOMPARE(m_daemon.request("GET", QStringLiteral("/healthz")).status, 200);
    QVERIFY(QFile::remove(projectsDir));
    QVERIFY(QDir(m_config.path()).rename(QStringLiteral("projects.off"), QStringLiteral("projects")));

    ::kill(pid_t(m_daemon.processId()), SIGTERM);
    QVERIFY(m_daemon.waitForFinished(20000));
    QCOMPARE(m_daemon.exitCode(), 0);
}

// The host file's limits reach the server: slow clients from other loopback addresses take
// at most three slots each, lose them after the one-second header deadline, and /healthz
// stays answerable (DaemonProcess::request gives up after 20 s).
void tst_HostileInput::slowClientsDoNotLockOutHealthz()
{
    QVERIFY(m_daemon.serve(m_config.path()));
    std::vector<std::unique_ptr<QTcpSocket>> slow;
    for (int address = 2; address <= 5; ++address) {
        for (int i = 0; i < 4; ++i) {
            auto socket = std::make_unique<QTcpSocket>();
            QVERIFY(socket->bind(QHostAddress(QStringLiteral("127.0.0.%1").arg(address))));
            socket->connectToHost(QHostAddress::LocalHost, m_daemon.port());
            socket->write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            slow.push_back(std::move(socket));
        }
    }
    for (int i = 0; i < 3; ++i)
        QCOMPARE(m_daemon.request("GET", QStringLiteral("/healthz")).status, 200);
    QTRY_VERIFY_WITH_TIMEOUT(std::all_of(slow.begin(), slow.end(),
                                         [](const auto &s) { return s->state() == QAbstractSocket::UnconnectedState; }),
                             20000);
    QVERIFY(std::all_of(slow.begin(), slow.end(), [](const auto &s) { return s->bytesAvailable() == 0; }));
}

QTEST_GUILESS_MAIN(tst_HostileInput)
#include "tst_hostileinput.moc"
