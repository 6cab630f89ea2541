# Secret-scanning benchmark helper (run by tests/bench/security.sh): corpus generator and a
# bare Vectorscan pass of the default rules.
add_executable(bench_secretscan bench_secretscan.cpp)
target_link_libraries(bench_secretscan PRIVATE sluice-secretscan PkgConfig::VECTORSCAN)
