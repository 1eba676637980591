import Foundation
import PopState
import Testing

@testable import PopUI

/// The dashboard's pure parts: when the store is followed, what a page is sent, and what a configuration change plans.
@Suite("Fleet feed, updates and plans")
struct FleetFeedTests {
    static func model(_ states: [String: String], machines: [String] = ["m1", "m2"], version: Int32 = 0) -> FleetModel {
        let spec = ServiceSpec(
            name: try! ServiceName("web"), template: ResolvedTemplate(name: "command", command: ["sleep", "1"]),
            options: [:])
        let snapshot = StatusSnapshot.assembled(
            store: "test",
            machines: machines.map {
                MachineRecord(
                    id: try! MachineID($0), hostname: "h-\($0)", addresses: [], agentVersion: "1", started: Date(timeIntervalSince1970: 1),
                    agentPID: 1)
            },
            services: [
                .assembled(
                    spec: spec, version: version, signature: spec.signature,
                    placements: states.keys.sorted().map { machine in
                        .assembled(
                            machine: try! MachineID(machine), placement: Placement(deployed: Date(timeIntervalSince1970: 1)),
                            instance: InstanceRecord(
                                machine: try! MachineID(machine), pid: 100, signature: spec.signature,
                                state: InstanceState(rawValue: states[machine]!)!, since: Date(timeIntervalSince1970: 1)))
                    })
            ])
        return FleetModel(snapshot: snapshot)
    }

    @Test("the first page starts following, the last one to leave stops it; a late read is discarded")
    func following() {
        var machine = FleetFeedStateMachine()
        #expect(machine.subscribe(1) == .startFollowing)
        #expect(machine.subscribe(2) == .waitForRead)
        let model = Self.model(["m1": "running"])
        #expect(machine.read(model) == .deliver(model, to: [1, 2]))
        #expect(machine.subscribe(3) == .deliver(model))
        #expect(machine.unsubscribe(1) == .none)
        #expect(machine.unsubscribe(1) == .none)
        #expect(machine.unsubscribe(2) == .none)
        #expect(machine.unsubscribe(3) == .stopFollowing)
        #expect(machine.state == .idle)
        #expect(machine.read(model) == .discard)
        #expect(machine.subscribe(4) == .startFollowing)
    }

    @Test("a page is sent the whole grid first, then only the rows that changed, and the whole grid when its shape changes")
    func updates() throws {
        let first = Self.model(["m1": "running", "m2": "running"])
        #expect(FleetUpdate.between(nil, first) == .full(first))
        #expect(FleetUpdate.between(first, first) == nil)
        let restarted = Self.model(["m1": "backoff", "m2": "running"])
        guard case .rows(let services, let machines, _) = try #require(FleetUpdate.between(first, restarted)) else {
            Issue.record("expected rows")
            return
        }
        #expect(services.map(\.name) == ["web"])
        #expect(services.first?.instances.first?.state == "backoff")
        #expect(machines.isEmpty)
        let grown = Self.model(["m1": "running", "m2": "running"], machines: ["m1", "m2", "m3"])
        #expect(FleetUpdate.between(first, grown) == .full(grown))
        let event = FleetUpdate.between(first, restarted)!.serverSentEvent(now: Date(timeIntervalSince1970: 2))
        #expect(event.hasPrefix("event: rows\ndata: {"))
        #expect(event.hasSuffix("}\n\n"))
        #expect(!event.dropLast(2).contains("\n\n"))
    }

    @Test("CPU and memory go to the instance its agent measured (same service, same pid); a row only those changed")
    func resources() throws {
        let model = Self.model(["m1": "running", "m2": "running"])
        #expect(model.processes.map(\.machine) == ["m1", "m2"])
        let reports = [
            "m1": ResourceReport(
                machine: "m1",
                instances: [ResourceReport.Instance(service: "web", pid: 100, cpuPercent: 12.5, memoryBytes: 4096, processes: 1)]),
            // A sample of an earlier process (another pid) is not this instance's.
            "m2": ResourceReport(
                machine: "m2",
                instances: [ResourceReport.Instance(service: "web", pid: 99, cpuPercent: 50, memoryBytes: 1, processes: 1)]),
        ]
        let sampled = model.withResources(reports)
        let instances = try #require(sampled.service("web")).instances
        #expect(instances[0].cpuPercent == 12.5 && instances[0].memoryBytes == 4096)
        #expect(instances[1].cpuPercent == nil && instances[1].memoryBytes == nil)
        guard case .rows(let services, _, _) = try #require(FleetUpdate.between(model, sampled)) else {
            Issue.record("a new sample is a row update")
            return
        }
        #expect(services.map(\.name) == ["web"])
        #expect(FleetUpdate.between(sampled, model.withResources(reports)) == nil)
        // A new read of the store keeps the newest sample.
        #expect(Self.model(["m1": "running", "m2": "running"]).withResources(reports) == sampled)
    }

    @Test("journal events carry `pop logs --json` objects: lines, lifecycle events with their reason, markers")
    func journalEvents() throws {
        var restarted = LifecycleEvent(.restarted, service: "web", time: 1_700_000_000_000_000_000, reason: .manual)
        restarted.seq = 4
        let line = JournalLine(stream: .stderr, seq: 9, time: 1_700_000_000_000_000_001, text: Array("oops \"quoted\"".utf8)[...])
        let text = AgentJournals.event(
            [.item(machine: "m2", .event(restarted)), .item(machine: "m1", .line(line)),
             .marker(machine: "m3", .unreachable("connection refused"))],
            service: "web")
        #expect(text.hasPrefix("event: journal\ndata: ["))
        #expect(text.hasSuffix("]\n\n") && !text.dropLast(2).contains("\n\n"))
        let data = String(text.split(separator: "\n")[1].dropFirst(6))
        let objects = try JSONDecoder().decode([JournalOutput].self, from: Data(data.utf8))
        #expect(objects.count == 3)
        #expect(objects[0].machine == "m2" && objects[0].kind == "restarted" && objects[0].reason == "manual")
        #expect(objects[0].summary == "restarted (manual)")
        #expect(objects[1].line == "oops \"quoted\"" && objects[1].stream == "stderr" && objects[1].service == "web")
        #expect(objects[2].marker == "unreachable" && objects[2].detail?.contains("connection refused") == true)
    }

    @Test("a plan names the changed options, hides secret values, and restarts every placed instance in order")
    func plan() throws {
        let template = ResolvedTemplate(
            name: "vault",
            options: [
                TemplateOption(name: "level", type: .int, defaultValue: .int(1)),
                TemplateOption(name: "token", type: .string, secret: true),
                TemplateOption(name: "mode", type: .string, defaultValue: .string("a")),
            ], command: ["sleep", "1"])
        let current = ServiceSpec(
            name: try ServiceName("vault"), template: template,
            options: ["level": .int(1), "token": .string("old-secret"), "mode": .string("a")])
        var proposed = current
        proposed.options["token"] = .string("new-secret")
        proposed.options["level"] = .int(2)
        let service = VersionedService(spec: current, version: 7, signature: current.signature)
        let plan = ConfigurationPlan(
            current: service, proposed: proposed, placed: [try MachineID("m2"), try MachineID("m1")],
            rollout: Rollout(maxParallel: 1))
        #expect(plan.version == 7)
        #expect(plan.changes.map(\.option) == ["level", "token"])
        #expect(plan.changes[0].before == "1" && plan.changes[0].after == "2")
        #expect(plan.changes[1].secret && plan.changes[1].before == nil && plan.changes[1].after == nil)
        #expect(plan.restarts == ["m1", "m2"])
        #expect(plan.maxParallel == 1)
        let encoded = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        #expect(!encoded.contains("new-secret") && !encoded.contains("old-secret"))
        let unchanged = ConfigurationPlan(current: service, proposed: current, placed: [try MachineID("m1")], rollout: nil)
        #expect(!unchanged.changesAnything && unchanged.restarts.isEmpty && unchanged.changes.isEmpty)
    }

    @Test("Host and Origin rules of a loopback dashboard")
    func origins() {
        let rules = RequestOrigin(listenHost: "127.0.0.1", port: 8686)
        #expect(rules.acceptsHost("127.0.0.1:8686") && rules.acceptsHost("localhost:8686") && rules.acceptsHost("[::1]:8686"))
        #expect(!rules.acceptsHost("evil.example:8686") && !rules.acceptsHost("127.0.0.1:8687") && !rules.acceptsHost(nil))
        #expect(rules.acceptsOrigin("http://127.0.0.1:8686", host: "127.0.0.1:8686"))
        #expect(!rules.acceptsOrigin("http://localhost:8686", host: "127.0.0.1:8686"))
        #expect(!rules.acceptsOrigin("http://127.0.0.1:9999", host: "127.0.0.1:8686"))
        #expect(!rules.acceptsOrigin("null", host: "127.0.0.1:8686"))
        #expect(RequestOrigin(listenHost: "0.0.0.0", port: 80).acceptsHost("anything:80"))
    }
}
