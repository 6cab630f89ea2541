# Webhook ingestion benchmark server (driven by wrk from tests/bench/run.sh).
add_executable(bench_webhooks "${CMAKE_CURRENT_LIST_DIR}/bench_webhooks.cpp")
target_link_libraries(bench_webhooks PRIVATE sluice-host Qt5::Network Qt5::Sql)
