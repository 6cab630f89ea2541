# Tasks, gate verdict records and the job queue, on SQLite and on the PostgreSQL server of
# the "postgres" fixture.
sluice_add_qtest(tst_taskstore SOURCES tst_taskstore.cpp)
sluice_require_postgres(tst_taskstore)
sluice_add_qtest(tst_jobqueue SOURCES tst_jobqueue.cpp)
sluice_require_postgres(tst_jobqueue)
