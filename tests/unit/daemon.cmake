# The daemon's plumbing: HTTP server, signal pipe, systemd notification, metrics.
sluice_add_qtest(tst_httpserver SOURCES tst_httpserver.cpp LIBS Qt5::Network)
sluice_add_qtest(tst_signalpipe SOURCES tst_signalpipe.cpp)
sluice_add_qtest(tst_systemdnotifier SOURCES tst_systemdnotifier.cpp)
sluice_add_qtest(tst_metrics SOURCES tst_metrics.cpp)
# Crash anywhere: the quickstart pipeline with real agents, the daemon and agents killed at
# random, the invariants checked after every restart. 30 kills here; SLUICE_CRASH_KILLS=500
# on demand (tests/bench/crash.sh).
sluice_add_qtest(tst_crashanywhere SOURCES tst_crashanywhere.cpp LIBS Qt5::Sql sluice-daemontest TIMEOUT 1200 ENV QTEST_FUNCTION_TIMEOUT=1100000)
target_compile_definitions(tst_crashanywhere PRIVATE SLUICE_EXECUTABLE="$<TARGET_FILE:sluice>"
                           SLUICE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(tst_crashanywhere sluice sluice_stage_agent sluice_agent_process sluice_stage_command sluice_gate_verdict)
# Hostile input to a real daemon (issue 16): alias bombs and non-files on SIGHUP, slow clients.
sluice_add_qtest(tst_hostileinput SOURCES tst_hostileinput.cpp LIBS Qt5::Network sluice-daemontest TIMEOUT 300)
target_compile_definitions(tst_hostileinput PRIVATE SLUICE_EXECUTABLE="$<TARGET_FILE:sluice>")
add_dependencies(tst_hostileinput sluice test_plugin_test_stage)
