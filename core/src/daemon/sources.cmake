# The daemon's plumbing: HTTP server, signal pipe, systemd notification, metrics.
# Included from core/CMakeLists.txt in the scope of the sluice-host target.
find_package(PkgConfig REQUIRED)
pkg_check_modules(SLUICE_MHD REQUIRED IMPORTED_TARGET libmicrohttpd>=0.9.71)
pkg_check_modules(SLUICE_SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
target_sources(sluice-host PRIVATE
    ${CMAKE_CURRENT_LIST_DIR}/httpserver.cpp
    ${CMAKE_CURRENT_LIST_DIR}/httpserver.h
    ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metrics.h
    ${CMAKE_CURRENT_LIST_DIR}/signalpipe.cpp
    ${CMAKE_CURRENT_LIST_DIR}/signalpipe.h
    ${CMAKE_CURRENT_LIST_DIR}/statedirlock.cpp
    ${CMAKE_CURRENT_LIST_DIR}/statedirlock.h
    ${CMAKE_CURRENT_LIST_DIR}/systemdnotifier.cpp
    ${CMAKE_CURRENT_LIST_DIR}/systemdnotifier.h)
target_link_libraries(sluice-host PRIVATE PkgConfig::SLUICE_MHD PkgConfig::SLUICE_SYSTEMD)
