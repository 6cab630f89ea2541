// SPDX-License-Identifier: Apache-2.0
// A ci-umbrella sweep over 1,000 open pull requests (50 per page) against the fake forge with
// 20 ms latency per request, beside a plain serial client making the same requests in the
// same run. Prints wall times, request counts and how they compare with the targets:
// at least 20x faster than serial, and within 1.5x of requests x latency / concurrency.
//
//   bench_sweep [pull requests] [latency ms] [concurrency]
#include "fakeforge.h"

#include <sluice/forge.h>
#include <sluice/sweeper.h>
#include <sluice/testsupport.h>

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QTemporaryDir>

#include <cstdio>

using namespace Sluice;
using namespace Sluice::Test;

namespace {

const QByteArray Token = "bench-token-0123456789";
const QString Umbrella = QStringLiteral("CI / all-required (pull_request)");

QString sha(int i)
{
    return QStringLiteral("%1").arg(i, 40, 16, QLatin1Char('0'));
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
    if (!store.store())
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
    QElapsedTimer timer;
    timer.start();
    std::unique_ptr<SweepRun> run = sweeper->sweep(SweepOptions{});
    QEventLoop loop;
    QObject::connect(run.get(), &PluginJob::finished, &loop, &QEventLoop::quit);
    run->start();
    if (!run->isFinished())
        loop.exec();
    const qint64 sweepMs = timer.elapsed();
    const SweepReport report = run->report();
    const QList<FakeRequest> requests = fake.requests();
    if (!report.ok)
        return fail(QStringLiteral("the sweep failed: %1").arg(report.summary));

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
    std::printf("sweep of %d open pull requests, %d ms latency, concurrency %d\n", pulls, latencyMs, concurrency);
    std::printf("  sweep:   %6lld ms  %5lld requests  (%d compensated, %d examined)\n", (long long)sweepMs, (long long)requests.size(),
                report.acted, report.examined);
    std::printf("  serial:  %6lld ms  %5lld requests\n", (long long)serialMs, (long long)requests.size());
    std::printf("  speed-up vs serial: %.1fx (target >= 20x)  %s\n", speedup, speedup >= 20 ? "ok" : "MISSED");
    std::printf("  latency bound (requests x latency / concurrency): %.0f ms; sweep is %.2fx of it (target <= 1.5x)  %s\n", bound,
                overBound, overBound <= 1.5 ? "ok" : "MISSED");
    return speedup >= 20 && overBound <= 1.5 ? 0 : 2;
}
