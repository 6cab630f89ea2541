# The store: connections, migrations and tables of Sluice, on SQLite or PostgreSQL.
# Included from core/CMakeLists.txt in the scope of the sluice-host target.
target_sources(sluice-host PRIVATE
    ${CMAKE_CURRENT_LIST_DIR}/connections.cpp
    ${CMAKE_CURRENT_LIST_DIR}/connections.h
    ${CMAKE_CURRENT_LIST_DIR}/migrations.cpp
    ${CMAKE_CURRENT_LIST_DIR}/migrations.h
    ${CMAKE_CURRENT_LIST_DIR}/pluginstate.cpp
    ${CMAKE_CURRENT_LIST_DIR}/pluginstate.h
    ${CMAKE_CURRENT_LIST_DIR}/store.cpp
    ${CMAKE_CURRENT_LIST_DIR}/store.h
    ${CMAKE_CURRENT_LIST_DIR}/storelistener.cpp
    ${CMAKE_CURRENT_LIST_DIR}/storelistener.h
    ${PROJECT_SOURCE_DIR}/resources/migrations/migrations.qrc)
# Tasks, gate verdict records and the job queue (the pipeline engine's persistence).
target_sources(sluice-host PRIVATE
    ${CMAKE_CURRENT_LIST_DIR}/jobqueue.cpp
    ${CMAKE_CURRENT_LIST_DIR}/jobqueue.h
    ${CMAKE_CURRENT_LIST_DIR}/leasestore.cpp
    ${CMAKE_CURRENT_LIST_DIR}/leasestore.h
    ${CMAKE_CURRENT_LIST_DIR}/taskstore.cpp
    ${CMAKE_CURRENT_LIST_DIR}/taskstore.h
    ${CMAKE_CURRENT_LIST_DIR}/trackeroutbox.cpp
    ${CMAKE_CURRENT_LIST_DIR}/trackeroutbox.h)
