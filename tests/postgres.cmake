# A real PostgreSQL server for the test run, as the CTest fixture "postgres".
#
# postgres-start runs tests/support/pg-test-server.sh before the first test that needs it,
# postgres-stop after the last. A test opts in with sluice_require_postgres(<test>) and
# finds the server in the file named by $SLUICE_TEST_PG_CONNINFO (KEY=VALUE lines:
# host, port, dbname, user, socket, password_user, password_file).

set(SLUICE_TEST_PG_DIR "${CMAKE_BINARY_DIR}/test-postgres")

add_test(NAME postgres-start
         COMMAND sh "${CMAKE_CURRENT_LIST_DIR}/support/pg-test-server.sh" start "${SLUICE_TEST_PG_DIR}")
set_tests_properties(postgres-start PROPERTIES FIXTURES_SETUP postgres TIMEOUT 180)

add_test(NAME postgres-stop
         COMMAND sh "${CMAKE_CURRENT_LIST_DIR}/support/pg-test-server.sh" stop "${SLUICE_TEST_PG_DIR}")
set_tests_properties(postgres-stop PROPERTIES FIXTURES_CLEANUP postgres TIMEOUT 120)

# sluice_require_postgres(<test>): <test> runs after postgres-start and gets the conninfo
# path in its environment, in addition to the environment it already has.
function(sluice_require_postgres test)
    set_property(TEST ${test} APPEND PROPERTY FIXTURES_REQUIRED postgres)
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT
                 "SLUICE_TEST_PG_CONNINFO=${CMAKE_BINARY_DIR}/test-postgres/conninfo")
endfunction()
