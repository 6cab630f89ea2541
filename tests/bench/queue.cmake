# Job queue throughput (claim+complete on SQLite and PostgreSQL); run on demand, not by ctest:
# tests/bench/run.sh, or bin/bench_queue with SLUICE_TEST_PG_CONNINFO set.
add_executable(bench_queue bench_queue.cpp)
target_link_libraries(bench_queue PRIVATE sluice-host Qt5::Sql)
