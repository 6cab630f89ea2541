// SPDX-License-Identifier: Apache-2.0
// Host overhead of one gate evaluation: a no-op gate (the test gate, pass, no delay) run
// through GateEvaluation — deadline armed, run created, started, verdict delivered back
// through the event loop — against the floor of one asynchronous hop through the same loop.
// Prints p50, p99 and max per evaluation and the ratio against the floor. Target: p99 < 1 ms.

#include "engine/gateevaluation.h"

#include <sluice/testsupport.h>

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <vector>

using namespace Sluice;

namespace {
struct Figures {
    double p50, p99, max;
};

Figures summarize(std::vector<qint64> &ns)
{
    std::sort(ns.begin(), ns.end());
    auto at = [&](double q) { return double(ns[std::min(ns.size() - 1, std::size_t(q * double(ns.size())))]) / 1e6; };
    return {at(0.50), at(0.99), double(ns.back()) / 1e6};
}
} // namespace

int main(int argc, char *argv[])
{
    QCoreApplication app(argc, argv);
    const int rounds = argc > 2 ? QByteArray(argv[2]).toInt() : 20000;
    auto plugin = Test::loadPlugin(QString::fromLocal8Bit(argc > 1 ? argv[1] : ""));
    if (!plugin) {
        std::fprintf(stderr, "cannot load the test gate: %s\n", qPrintable(plugin.error().message));
        return 1;
    }
    auto instance = Test::createInstance(*plugin, "result: pass");
    auto *gate = instance ? qobject_cast<Gate *>(instance->get()) : nullptr;
    if (!gate) {
        std::fprintf(stderr, "cannot create the test gate\n");
        return 1;
    }
    GateRequest request;
    request.task.id = 1;

    std::vector<qint64> floor;
    std::vector<qint64> evaluation;
    floor.reserve(std::size_t(rounds));
    evaluation.reserve(std::size_t(rounds));
    QElapsedTimer clock;
    int done = 0;
    bool failed = false;

    // Floor: one zero-timer round trip through the event loop.
    std::function<void()> hop = [&] {
        clock.start();
        QTimer::singleShot(0, &app, [&] {
            floor.push_back(clock.nsecsElapsed());
            if (++done < rounds)
                hop();
            else
                app.quit();
        });
    };
    QTimer::singleShot(0, &app, hop);
    app.exec();

    done = 0;
    std::unique_ptr<GateEvaluation> current;
    std::function<void()> evaluate = [&] {
        clock.start();
        current = std::make_unique<GateEvaluation>(*gate, request, std::chrono::seconds(30));
        QObject::connect(current.get(), &GateEvaluation::finished, &app, [&](GateEvaluation *e) {
            evaluation.push_back(clock.nsecsElapsed());
            failed = failed || e->verdict().result() != GateVerdict::Result::Pass;
            QTimer::singleShot(0, &app, [&] {
                current.reset();
                if (++done < rounds)
                    evaluate();
                else
                    app.quit();
            });
        });
        current->start();
    };
    QTimer::singleShot(0, &app, evaluate);
    app.exec();
    if (failed) {
        std::fprintf(stderr, "a no-op evaluation did not pass\n");
        return 1;
    }
    const Figures f = summarize(floor);
    const Figures e = summarize(evaluation);
    std::printf("gate evaluation overhead: %d evaluations of a no-op gate, one thread\n", rounds);
    std::printf("%-22s %9s %9s %9s %10s %8s\n", "name", "p50_ms", "p99_ms", "max_ms", "x_floor", "target");
    std::printf("%-22s %9.4f %9.4f %9.4f %10.2f %8s\n", "event-loop hop", f.p50, f.p99, f.max, 1.0, "-");
    std::printf("%-22s %9.4f %9.4f %9.4f %10.2f %8s\n", "gate evaluation", e.p50, e.p99, e.max, e.p99 / f.p99, "<1ms");
    std::printf("  p99 %.4f ms: %s\n", e.p99, e.p99 < 1.0 ? "meets the target" : "MISSES the target");
    return 0;
}
