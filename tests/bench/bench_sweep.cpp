// SPDX-License-Identifier: Apache-2.0
// A ci-umbrella sweep over 1,000 open pull requests (50 per page) against the fake forge with
// 20 ms latency per request, beside a plain serial client making the same requests in the
// same run. Prints wall times, the sweep's CPU time, request counts, the machine's load
// average, and PASS or MISS for each target: at least 20x faster than serial, and within
// 1.5x of requests x latency / concurrency. Exits 2 on a MISS.
//
//   bench_sweep [pull requests] [latency ms] [concurrency] [--sweep-only]
//
// --sweep-only skips the serial client (for profiling the sweep: perf record -g).
//
// Where the CPU goes (measured at 0 ms latency on 2 CPUs): about half in Qt's network
// threads ("QNetworkAccessM"), which with Qt 5.15 read a response's status line and headers
// one read(2) per byte (strace: ~100 reads per request here), a third in the sweep's thread,
// the rest in the fake forge.
#include "fakeforge.h"

#include <sluice/forge.h>
#include <sluice/sweeper.h>
#include <sluice/testsupport.h>

#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QTemporaryDir>
#include <QThread>

#include <cstdio>
#include <ctime>
#include <map>

#include <unistd.h>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "bench-token-0123456789";
const QString Umbrella = QStringLiteral("CI / all-required (pull_request)");

QString sha(int i)
{
    return QStringLiteral("%1").arg(i, 40, 16, QLatin1Char('0'));
}

// The machine's load as /proc/loadavg has it ("1.02 0.87 0.66"), or "unknown".
QByteArray loadAverage()
{
    QFile f(QStringLiteral("/proc/loadavg"));
    if (!f.open(QIODevice::ReadOnly))
        return "unknown";
    const QList<QByteArray> fields = f.readAll().simplified().split(' ');
    return fields.size() >= 3 ? fields[0] + ' ' + fields[1] + ' ' + fields[2] : QByteArray("unknown");
}

// CPU time (user + system, ms) of this process's threads, summed by thread name: tells the
// sweep's own thread, Qt's network threads and the fake forge apart.
std::map<QByteArray, qint64> cpuByThread()
{
    std::map<QByteArray, qint64> out;
    const long ticks = sysconf(_SC_CLK_TCK);
    for (const QString &tid : QDir(QStringLiteral("/proc/self/task")).entryList(QDir::Dirs | QDir::NoDotAndDotDot)) {
        QFile f(QStringLiteral("/proc/self/task/%1/stat").arg(tid));
        if (!f.open(QIODevice::ReadOnly))
            continue;
        const QByteArray stat = f.readAll();
        const int open = stat.indexOf('('), close = stat.lastIndexOf(')');
        if (open < 0 || close < open)
            continue;
        const QList<QByteArray> fields = stat.mid(close + 2).split(' '); // from field 3 (state) on
        if (fields.size() < 13)
            continue;
        out[stat.mid(open + 1, close - open - 1)] += (fields[11].toLongLong() + fields[12].toLongLong()) * 1000 / ticks;
    }
    return out;
}

QByteArray cpuDifference(const std::map<QByteArray, qint64> &before, const std::map<QByteArray, qint64> &after)
{
    QByteArray out;
    for (const auto &[name, ms] : after) {
        const qint64 used = ms - (before.count(name) ? before.at(name) : 0);
        if (used > 0)
            out += (out.isEmpty() ? "" : ", ") + name + ' ' + QByteArray::number(used) + " ms";
    }
    return out;
}

int fail(const QString &what)
{
    std::fprintf(stderr, "bench_sweep: %s\n", qPrintable(what));
    return 1;
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    const int pulls = argc > 1 ? QByteArray(argv[1]).toInt() : 1000;
    const int latencyMs = argc > 2 ? QByteArray(argv[2]).toInt() : 20;
    const int concurrency = argc > 3 ? QByteArray(argv[3]).toInt() : 24;
    const bool sweepOnly = argc > 4 && QByteArray(argv[4]) == "--sweep-only";

    FakeForge fake;
    if (!fake.start())
        return fail(QStringLiteral("fake forge did not start"));
    fake.setToken(Token);
    fake.setMaxPageSize(50);
    fake.setFile(QStringLiteral("main"), QStringLiteral(".gitea/workflows/ci.yml"),
                 "name: CI\njobs:\n  lint: {runs-on: x}\n  test:\n    strategy:\n      matrix:\n        os: [linux, mac]\n"
                 "  all-required:\n    needs: [lint, test]\n");
    const QDateTime old = QDateTime::currentDateTimeUtc().addSecs(-3600);
    for (int n = 1; n <= pulls; ++n) {
        fake.addPullRequest({n, QString(), QStringLiteral("b%1").arg(n), sha(n)});
        for (const char *c : {"CI / lint (pull_request)", "CI / test (linux) (pull_request)", "CI / test (mac) (pull_request)"})
            fake.addStatus(sha(n), QString::fromLatin1(c), n % 7 == 0 ? QStringLiteral("failure") : QStringLiteral("success"), old);
        // One in ten has a stale umbrella failure to compensate.
        fake.addStatus(sha(n), Umbrella, n % 10 == 0 ? QStringLiteral("failure") : QStringLiteral("success"), old.addSecs(60));
    }
    fake.setLatency(std::chrono::milliseconds(latencyMs));

    QTemporaryDir dir;
    QFile tokenFile(dir.filePath(QStringLiteral("token")));
    if (!tokenFile.open(QIODevice::WriteOnly) || tokenFile.write(Token) != Token.size())
        return fail(QStringLiteral("cannot write the token file"));
    tokenFile.close();
    auto gitea = loadPlugin(QStringLiteral(GITEA_PLUGIN_FILE));
    auto umbrella = loadPlugin(QStringLiteral(UMBRELLA_PLUGIN_FILE));
    if (!gitea || !umbrella)
        return fail(QStringLiteral("cannot load the plugins"));
    TemporaryStore store;
    if (!store.isValid())
        return fail(store.error());
    auto state = store.state(QStringLiteral("test-project"), QStringLiteral("ci-umbrella"));
    auto forge = createInstance(*gitea, "url: " + fake.url().toString().toUtf8() + "\nrepository: acme/widget\ntoken: {file: "
                                            + tokenFile.fileName().toUtf8() + "}\nconcurrency: " + QByteArray::number(concurrency) + "\n");
    if (!forge || !(*forge)->initialize())
        return fail(QStringLiteral("cannot create the gitea connector"));
    auto sweeperInstance = createInstance(*umbrella, "enabled: true\ntoken: {file: " + tokenFile.fileName().toUtf8()
                                                         + "}\nworkflow: .gitea/workflows/ci.yml\numbrella_job: all-required\nworkflow_ref: target\n",
                                          fakeProject(), state.get(), qobject_cast<Forge *>(forge->get()));
    if (!sweeperInstance)
        return fail(sweeperInstance.error().toString());
    auto *sweeper = qobject_cast<Sweeper *>(sweeperInstance->get());

    // The sweep.
    fake.clearRequests();
    const QByteArray loadBefore = loadAverage();
    const std::clock_t cpuBefore = std::clock();
    const std::map<QByteArray, qint64> threadsBefore = cpuByThread();
    QElapsedTimer timer;
    timer.start();
    std::unique_ptr<SweepRun> run = sweeper->sweep(SweepOptions{});
    QEventLoop loop;
    QObject::connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
    run->start();
    if (!run->isFinished())
        loop.exec();
    const qint64 sweepMs = timer.elapsed();
    // Process CPU time (this thread, the fake forge's and Qt's network thread).
    const qint64 sweepCpuMs = qint64(std::clock() - cpuBefore) * 1000 / CLOCKS_PER_SEC;
    const QByteArray sweepThreads = cpuDifference(threadsBefore, cpuByThread());
    const SweepReport report = run->report();
    const QList<FakeRequest> requests = fake.requests();
    if (!report.ok)
        return fail(QStringLiteral("the sweep failed: %1").arg(report.summary));

    if (sweepOnly) {
        std::printf("sweep of %d open pull requests, %d ms latency, concurrency %d: %lld ms, CPU %lld ms (%s), %lld requests\n", pulls,
                    latencyMs, concurrency, (long long)sweepMs, (long long)sweepCpuMs, sweepThreads.constData(), (long long)requests.size());
        return 0;
    }

    // A plain serial client: the same requests, one after the other.
    QNetworkAccessManager nam;
    timer.restart();
    for (const FakeRequest &r : requests) {
        QUrl url = fake.url().resolved(QUrl(r.path.mid(1)));
        url.setQuery(r.query);
        QNetworkRequest req(url);
        req.setRawHeader("Authorization", "token " + Token);
        req.setHeader(QNetworkRequest::ContentTypeHeader, QByteArrayLiteral("application/json"));
        QNetworkReply *reply = nam.sendCustomRequest(req, r.method, r.body);
        QEventLoop wait;
        QObject::connect(reply, &QNetworkReply::finished, &wait, &QEventLoop::quit);
        wait.exec();
        if (reply->error() != QNetworkReply::NoError)
            return fail(QStringLiteral("serial client: %1 %2: %3").arg(QString::fromLatin1(r.method), r.path, reply->errorString()));
        reply->deleteLater();
    }
    const qint64 serialMs = timer.elapsed();

    const double bound = double(requests.size()) * latencyMs / concurrency;
    const double speedup = double(serialMs) / double(std::max<qint64>(1, sweepMs));
    const double overBound = double(sweepMs) / bound;
    const bool fastEnough = speedup >= 20;
    const bool nearBound = overBound <= 1.5;
    std::printf("sweep of %d open pull requests, %d ms latency, concurrency %d; load average %s (%d CPUs)\n", pulls, latencyMs,
                concurrency, loadBefore.constData(), QThread::idealThreadCount());
    std::printf("  sweep:   %6lld ms  %5lld requests  (%d compensated, %d examined)  CPU %lld ms\n", (long long)sweepMs,
                (long long)requests.size(), report.acted, report.examined, (long long)sweepCpuMs);
    std::printf("           CPU by thread: %s\n", sweepThreads.constData());
    std::printf("  serial:  %6lld ms  %5lld requests\n", (long long)serialMs, (long long)requests.size());
    std::printf("  %s  speed-up vs serial: %.2fx (target >= 20x)\n", fastEnough ? "PASS" : "MISS", speedup);
    std::printf("  %s  latency bound (requests x latency / concurrency): %.0f ms; the sweep took %.2fx of it (target <= 1.5x)\n",
                nearBound ? "PASS" : "MISS", bound, overBound);
    std::printf("  load average after: %s\n", loadAverage().constData());
    return fastEnough && nearBound ? 0 : 2;
}
