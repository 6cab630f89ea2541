# The ci-umbrella sweep benchmark: 1,000 open pull requests against the fake forge with
# 20 ms latency, beside a serial client (run on demand: bin/bench_sweep [prs] [ms] [concurrency]).
add_executable(bench_sweep "${CMAKE_CURRENT_LIST_DIR}/bench_sweep.cpp")
target_link_libraries(bench_sweep PRIVATE sluice-core sluice-testsupport sluice-fakeforge Qt5::Network)
target_compile_definitions(bench_sweep PRIVATE
    GITEA_PLUGIN_FILE="$<TARGET_FILE:sluice_forge_gitea>"
    UMBRELLA_PLUGIN_FILE="$<TARGET_FILE:sluice_sweeper_ci_umbrella>")
add_dependencies(bench_sweep sluice_forge_gitea sluice_sweeper_ci_umbrella)
