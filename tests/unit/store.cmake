# The store, on SQLite and on the PostgreSQL server of the "postgres" fixture.
sluice_add_qtest(tst_store SOURCES tst_store.cpp LIBS Qt5::Network)
sluice_require_postgres(tst_store)
