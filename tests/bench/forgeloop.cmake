# Reaction latency of the forge loop (webhooks vs poll only, same run), on demand:
# bin/bench_forgeloop [tasks] [retry_after seconds].
add_executable(bench_forgeloop "${CMAKE_CURRENT_LIST_DIR}/bench_forgeloop.cpp")
target_link_libraries(bench_forgeloop PRIVATE sluice-core sluice-testsupport sluice-fakeforge sluice-daemontest Qt5::Network Qt5::Sql)
target_compile_definitions(bench_forgeloop PRIVATE
    SLUICE_EXECUTABLE="$<TARGET_FILE:sluice>"
    GITEA_PLUGIN_FILE="$<TARGET_FILE:sluice_forge_gitea>"
    COMMAND_PLUGIN_FILE="$<TARGET_FILE:sluice_stage_command>"
    CI_PLUGIN_FILE="$<TARGET_FILE:sluice_gate_ci>")
add_dependencies(bench_forgeloop sluice sluice_forge_gitea sluice_stage_command sluice_gate_ci)
