import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

/// Deploying by count, machine labels, drain and `pop scale` with the real binary: what is refused (and changes
/// nothing), and what the one agent of the embedded store schedules.
@Suite(.timeLimit(.minutes(10)))
struct SchedulingCommandTests {
    @Test("bad counts, labels and mixes of pinned and counted deployments are refused and change nothing",
        arguments: StoreKind.allCases)
    func badInput(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 1000")
            try await pop.ok("add", "pinned", "--template", "command", "--command", "sleep 1000")
            try await pop.ok("deploy", "pinned", "m1")
            try await pop.ok("deploy", "web", "--count", "2")
            try await fixture.refuses(2, ["deploy", "web", "--count", "0"], mentioning: ["count 0", "1 to 10000"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "10001"], mentioning: ["10001", "1 to 10000"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "-3"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "2", "--label", "zone"], mentioning: ["KEY=VALUE"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "2", "--label", "Zone=a"], mentioning: ["label key"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "2", "--label", "zone=a;b"], mentioning: ["not allowed"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "2", "m1"], mentioning: ["not both"])
            try await fixture.refuses(2, ["deploy", "web", "m1", "--label", "zone=a"], mentioning: ["with --count"])
            try await fixture.refuses(2, ["deploy", "web", "--count", "2", "--reschedule-after", "-1"], mentioning: ["reschedule-after"])
            try await fixture.refuses(4, ["deploy", "pinned", "--count", "2"], mentioning: ["pinned to m1", "undeploy"])
            try await fixture.refuses(4, ["deploy", "web", "m1"], mentioning: ["deployed by count", "pop scale"])
            try await fixture.refuses(4, ["undeploy", "web", "m1"], mentioning: ["deployed by count"])
            try await fixture.refuses(4, ["scale", "pinned", "3"], mentioning: ["pinned"])
            try await fixture.refuses(2, ["scale", "web", "0"], mentioning: ["count 0"])
            try await fixture.refuses(3, ["scale", "nosuch", "2"], mentioning: ["no service named 'nosuch'"])
            try await fixture.refuses(2, ["machines", "label", "m1", "zone"], mentioning: ["KEY=VALUE"])
            try await fixture.refuses(2, ["machines", "label", "m1"], mentioning: ["KEY=VALUE"])
            try await fixture.refuses(2, ["machines", "label", "../m", "zone=a"], mentioning: ["machine id"])
            try await fixture.refuses(2, ["machines", "frobnicate"], mentioning: ["Unknown action"])
            try await fixture.refuses(2, ["drain", "m/1"], mentioning: ["machine id"])
        }
    }

    @Test("labels are kept per machine, shown by `pop machines`, and removed by unlabel", arguments: StoreKind.allCases)
    func labels(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("machines", "label", "m1", "zone=a", "disk=ssd")
            try await pop.ok("machines", "label", "m1", "zone=b")
            try await pop.ok("drain", "m2")
            let table = try await pop.ok("machines").stdout
            #expect(table.contains("disk=ssd,zone=b"), "\(table)")
            #expect(table.contains("(drained)"), "\(table)")
            try await pop.ok("machines", "unlabel", "m1", "disk")
            let json = try await pop.ok("machines", "--json").stdout
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
            let m1 = try #require(entries.first { $0["id"] as? String == "m1" })
            #expect(m1["labels"] as? [String: String] == ["zone": "b"], "\(json)")
            #expect(m1["registered"] as? Bool == false)
            let m2 = try #require(entries.first { $0["id"] as? String == "m2" })
            #expect(m2["drained"] as? Bool == true, "\(json)")
            try await pop.ok("undrain", "m2")
            #expect(!(try await pop.ok("machines").stdout.contains("drained")))
        }
    }

    @Test("on the embedded store the one agent schedules: labels restrict, status counts and says why")
    func embeddedAgentSchedules() async throws {
        try await CLIFixture.with(.embedded) { fixture in
            let pop = fixture.pop
            let local = fixture.localMachine
            try await pop.ok("start", "--label", "zone=a")
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 1000")
            try await pop.ok("add", "elsewhere", "--template", "command", "--command", "sleep 1000")
            try await pop.ok("deploy", "web", "--count", "1", "--label", "zone=a")
            try await pop.ok("deploy", "elsewhere", "--count", "1", "--label", "zone=b")
            try await pop.ok("status", "web", "--wait", "running", "--timeout", "60")
            var report = try StatusReport.decode(try await pop.ok("status", "--json").stdout)
            let web = try #require(report.service("web"))
            #expect(web.instances.map(\.machine) == [local])
            #expect(web.desired == 1 && web.running == 1 && web.reason == nil, "\(web)")
            let elsewhere = try #require(report.service("elsewhere"))
            #expect(elsewhere.instances.isEmpty)
            #expect(elsewhere.reason == "0 of 1: only 0 eligible machines with zone=b", "\(elsewhere)")

            // More than the eligible machines: as many as it can, and why.
            try await pop.ok("scale", "web", "3")
            report = try StatusReport.decode(try await pop.ok("status", "--json").stdout)
            #expect(report.service("web")?.reason == "1 of 3: only 1 eligible machine with zone=a")
            let table = try await pop.ok("status").stdout
            #expect(table.contains("web: 1 of 3 running; 1 of 3: only 1 eligible machine with zone=a"), "\(table)")

            // Drained, the only machine keeps its instance: there is nowhere to start the replacement first.
            try await pop.ok("drain", local)
            try await pop.ok("scale", "web", "1")
            report = try StatusReport.decode(try await pop.ok("status", "--json").stdout)
            #expect(report.service("web")?.instances.map(\.machine) == [local])
            #expect(report.service("web")?.reason == "0 of 1: only 0 eligible machines with zone=a")
            try await pop.ok("undrain", local)

            // Relabelled, the machine takes `elsewhere` (the scheduler is woken by the label change).
            try await pop.ok("machines", "label", local, "zone=b")
            try await pop.ok("status", "elsewhere", "--wait", "running", "--timeout", "60")
            try await pop.ok("undeploy", "web", "--all")
            report = try StatusReport.decode(try await pop.ok("status", "--json").stdout)
            #expect(report.service("web")?.instances.isEmpty == true && report.service("web")?.desired == nil)
        }
    }
}
