# The daemon's plumbing: HTTP server, signal pipe, systemd notification, metrics.
sluice_add_qtest(tst_httpserver SOURCES tst_httpserver.cpp LIBS Qt5::Network)
sluice_add_qtest(tst_signalpipe SOURCES tst_signalpipe.cpp)
sluice_add_qtest(tst_systemdnotifier SOURCES tst_systemdnotifier.cpp)
sluice_add_qtest(tst_metrics SOURCES tst_metrics.cpp)
