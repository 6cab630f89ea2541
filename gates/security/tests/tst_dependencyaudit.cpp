// SPDX-License-Identifier: Apache-2.0
// The auditor adapters' output parsers and the audit's classification, on the recorded
// reports in data/ and on malformed shapes.
#include "dependencyaudit.h"

#include <QFile>
#include <QTest>

using namespace Sluice;
using namespace Sluice::Security;

namespace {
QByteArray recorded(const char *name)
{
    QFile f(QStringLiteral(SECURITY_TEST_DIR "/data/") + QLatin1String(name));
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
} // namespace

class tst_DependencyAudit : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void osvScanner();
    void pipAudit();
    void npmAudit();
    void malformed_data();
    void malformed();
    void classification();
    void severityNames();
};

void tst_DependencyAudit::osvScanner()
{
    auto v = parseOsvScannerJson(recorded("osv-scanner-high.json"));
    QVERIFY2(v, qPrintable(v ? QString() : v.error().message));
    QCOMPARE(v->size(), 2); // one per group: GHSA + PYSEC of jinja2 are one vulnerability
    QCOMPARE(v->at(0).package, QStringLiteral("jinja2"));
    QCOMPARE(v->at(0).version, QStringLiteral("2.4.1"));
    QCOMPARE(v->at(0).id, QStringLiteral("GHSA-462w-v97r-4m45"));
    QVERIFY(v->at(0).aliases.contains(QStringLiteral("CVE-2019-10906")));
    QVERIFY(v->at(0).aliases.contains(QStringLiteral("PYSEC-2019-217")));
    QCOMPARE(v->at(0).severity, Severity::High); // max_severity 8.6
    QCOMPARE(v->at(0).fixedIn, QStringLiteral("2.10.1"));
    QCOMPARE(v->at(0).source, QStringLiteral("/src/project/requirements.txt"));
    QCOMPARE(v->at(1).severity, Severity::Medium); // 5.6
    auto clean = parseOsvScannerJson(recorded("osv-scanner-clean.json"));
    QVERIFY(clean && clean->isEmpty());
}

void tst_DependencyAudit::pipAudit()
{
    auto v = parsePipAuditJson(recorded("pip-audit-vulns.json"));
    QVERIFY2(v, qPrintable(v ? QString() : v.error().message));
    QCOMPARE(v->size(), 2);
    QCOMPARE(v->at(0).id, QStringLiteral("PYSEC-2019-217"));
    QCOMPARE(v->at(0).severity, Severity::Unknown);
    QCOMPARE(v->at(0).fixedIn, QStringLiteral("2.10.1"));
    // pip-audit before 2.0 printed a bare list.
    auto old = parsePipAuditJson(R"([{"name": "a", "version": "1", "vulns": [{"id": "PYSEC-1", "fix_versions": []}]}])");
    QVERIFY(old && old->size() == 1);
}

void tst_DependencyAudit::npmAudit()
{
    auto v = parseNpmAuditJson(recorded("npm-audit-critical.json"));
    QVERIFY2(v, qPrintable(v ? QString() : v.error().message));
    QCOMPARE(v->size(), 1); // mkdirp is vulnerable only through minimist's advisory
    QCOMPARE(v->at(0).id, QStringLiteral("GHSA-xvch-5gv4-984h"));
    QCOMPARE(v->at(0).package, QStringLiteral("minimist"));
    QCOMPARE(v->at(0).severity, Severity::Critical);
    auto error = parseNpmAuditJson(recorded("npm-audit-error.json"));
    QVERIFY(!error);
    QVERIFY(error.error().message.contains(QLatin1String("ENOLOCK")));
}

void tst_DependencyAudit::malformed_data()
{
    QTest::addColumn<int>("tool");
    QTest::addColumn<QByteArray>("json");
    QTest::newRow("osv-not-json") << 0 << QByteArray("Scanning dir .\n");
    QTest::newRow("osv-no-results") << 0 << QByteArray("{\"packages\": []}");
    QTest::newRow("osv-group-without-ids") << 0
        << QByteArray("{\"results\":[{\"packages\":[{\"package\":{\"name\":\"a\"},\"groups\":[{\"ids\":[]}]}]}]}");
    QTest::newRow("pip-object-without-dependencies") << 1 << QByteArray("{\"fixes\": []}");
    QTest::newRow("pip-vuln-without-id") << 1 << QByteArray("{\"dependencies\":[{\"name\":\"a\",\"vulns\":[{\"fix_versions\":[]}]}]}");
    QTest::newRow("npm-v1-report") << 2 << QByteArray("{\"advisories\": {}, \"metadata\": {}}");
    QTest::newRow("npm-array") << 2 << QByteArray("[]");
}

void tst_DependencyAudit::malformed()
{
    QFETCH(int, tool);
    QFETCH(QByteArray, json);
    const auto parsed = tool == 0 ? parseOsvScannerJson(json) : tool == 1 ? parsePipAuditJson(json) : parseNpmAuditJson(json);
    QVERIFY(!parsed);
    QCOMPARE(parsed.error().code, ErrorCode::Malformed);
}

void tst_DependencyAudit::classification()
{
    AuditorRun run;
    run.status = AuditorRun::Status::Ok;
    auto vuln = [](const char *id, Severity s, QStringList aliases = {}) {
        Vulnerability v;
        v.id = QString::fromUtf8(id);
        v.severity = s;
        v.aliases = aliases;
        return v;
    };
    run.vulnerabilities = {vuln("A", Severity::Critical), vuln("B", Severity::High), vuln("C", Severity::Medium),
                           vuln("D", Severity::Unknown), vuln("E", Severity::High, {QStringLiteral("CVE-1")}),
                           vuln("F", Severity::High)};
    AuditorRun degraded;
    degraded.status = AuditorRun::Status::Degraded;
    const QDate today(2026, 6, 1);
    const QList<AuditIgnore> ignores{{QStringLiteral("CVE-1"), QStringLiteral("r"), QDate(2026, 6, 1)},  // last day: holds
                                     {QStringLiteral("F"), QStringLiteral("r"), QDate(2026, 5, 31)}}; // expired
    const AuditVerdict high = judgeAudit({run, degraded}, Severity::High, ignores, today);
    QCOMPARE(high.blocking.size(), 3); // A, B, F (expired ignore)
    QCOMPARE(high.warnings.size(), 2); // C, D
    QCOMPARE(high.ignored.size(), 1);  // E through its alias
    QCOMPARE(high.degraded, 1);
    QVERIFY(high.blocking.last().note.startsWith(QLatin1String("ignore expired on 2026-05-31")));
    const AuditVerdict critical = judgeAudit({run}, Severity::Critical, {}, today);
    QCOMPARE(critical.blocking.size(), 1);
    QCOMPARE(critical.warnings.size(), 5);
    const AuditVerdict low = judgeAudit({run}, Severity::Low, {}, today);
    QCOMPARE(low.blocking.size(), 5); // UNKNOWN never blocks
}

void tst_DependencyAudit::severityNames()
{
    QCOMPARE(severityFromName(QStringLiteral("moderate")), std::optional<Severity>(Severity::Medium));
    QCOMPARE(severityFromName(QStringLiteral("info")), std::optional<Severity>(Severity::Low));
    QVERIFY(!severityFromName(QStringLiteral("severe")));
    QCOMPARE(severityFromScore(9.0), Severity::Critical);
    QCOMPARE(severityFromScore(6.9), Severity::Medium);
    QCOMPARE(severityFromScore(0), Severity::Unknown);
}

QTEST_GUILESS_MAIN(tst_DependencyAudit)
#include "tst_dependencyaudit.moc"
