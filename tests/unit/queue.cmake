# Tasks, gate verdict records and the job queue, on SQLite and on the PostgreSQL server of
# the "postgres" fixture.
sluice_add_qtest(tst_taskstore SOURCES tst_taskstore.cpp)
sluice_require_postgres(tst_taskstore)
sluice_add_qtest(tst_jobqueue SOURCES tst_jobqueue.cpp)
sluice_require_postgres(tst_jobqueue)
# The job reaper, leases and the reconciler: real stores, real processes.
# killedDaemonKeepsWhatItsAgentRecorded runs the real executable with the real agent plugins.
sluice_add_qtest(tst_reaper SOURCES tst_reaper.cpp teststores.h testdaemon.h LIBS Qt5::Sql sluice-daemontest TIMEOUT 400)
target_compile_definitions(tst_reaper PRIVATE SLUICE_EXECUTABLE="$<TARGET_FILE:sluice>")
sluice_require_postgres(tst_reaper)
add_dependencies(tst_reaper test_plugin_test_stage sluice sluice_stage_agent sluice_agent_process)
# `sluice retry`: the real executable unblocks a task, with and without a running daemon.
sluice_add_qtest(tst_retry SOURCES tst_retry.cpp teststores.h testdaemon.h LIBS Qt5::Sql sluice-daemontest TIMEOUT 300)
target_compile_definitions(tst_retry PRIVATE SLUICE_EXECUTABLE="$<TARGET_FILE:sluice>")
sluice_require_postgres(tst_retry)
add_dependencies(tst_retry sluice sluice_stage_command)
# Several `sluice serve` on one store (issue 15): one daemon per node name, a restart after
# kill -9, the takeover of a SIGSTOPped node's job under fencing. SQLite and PostgreSQL.
sluice_add_qtest(tst_nodes SOURCES tst_nodes.cpp teststores.h testdaemon.h LIBS Qt5::Sql Qt5::Network sluice-daemontest TIMEOUT 400)
target_compile_definitions(tst_nodes PRIVATE SLUICE_EXECUTABLE="$<TARGET_FILE:sluice>")
sluice_require_postgres(tst_nodes)
add_dependencies(tst_nodes sluice sluice_stage_command)
