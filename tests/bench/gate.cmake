# Host overhead of a no-op gate evaluation (run by tests/bench/run.sh).
add_executable(bench_gate bench_gate.cpp)
target_link_libraries(bench_gate PRIVATE sluice-host sluice-testsupport-host)
add_dependencies(bench_gate test_plugin_test_gate)
