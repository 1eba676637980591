import Foundation
import PopState
import TestProcesses
import Testing

/// `pop dump --json` and `pop restore FILE`: a backup of the desired state that comes back byte for byte, on both
/// stores and across them; bad backups are refused and change nothing.
@Suite(.timeLimit(.minutes(10)))
struct BackupTests {
    @Test("a backup restores the services, options, packages, rollouts and placements", arguments: StoreKind.allCases)
    func roundTrip(kind: StoreKind) async throws {
        try await CLIFixtures.with { fixtures in
            let source = try await fixtures.make(kind)
            let backup = try await populate(source)
            let target = try await fixtures.make(kind, initialized: false)
            let restored = try await target.pop.ok("restore", backup)
            #expect(restored.stdout.contains("restored 3 service(s) and 2 placement(s)"), "\(restored)")
            #expect(try await desiredState(target) == desiredState(source))
            // The specs are the same bytes, so the same signatures: no instance would restart.
            #expect(try await signatures(target) == signatures(source))
            // What agents and `pop run` write was left out.
            let dump = try await target.pop.ok("dump", "/")
            #expect(!dump.stdout.contains("ephemeral"), "\(dump)")
            #expect(!dump.stdout.contains("task-"), "\(dump)")
            try await target.pop.ok("status")
        }
    }

    @Test("a backup of the embedded store restores into ZooKeeper, and back")
    func acrossStores() async throws {
        try await CLIFixtures.with { fixtures in
            let embedded = try await fixtures.make(.embedded)
            let backup = try await populate(embedded)
            let zooKeeper = try await fixtures.make(.zooKeeper, initialized: false)
            try await zooKeeper.pop.ok("restore", backup)
            #expect(try await desiredState(zooKeeper) == desiredState(embedded))
            let second = try await backupFile(of: zooKeeper, named: "from-zookeeper.json")
            let back = try await fixtures.make(.embedded, initialized: false)
            try await back.pop.ok("restore", second)
            #expect(try await desiredState(back) == desiredState(embedded))
        }
    }

    @Test("a namespace of the layout before assignments is refused, and upgraded by dump and restore --force")
    func upgradeFromLayoutOne() async throws {
        try await CLIFixtures.with { fixtures in
            let fixture = try await fixtures.make(.embedded)
            _ = try await populate(fixture)
            let upgraded = try await desiredState(fixture)
            // What the release before assignments left: layout 1, no assignments.
            try await fixture.withNamespace { namespace in
                let store = namespace.store
                var operations: [StoreOperation] = []
                for machine in try await store.children("/pop/assignments") {
                    for service in try await store.children("/pop/assignments/\(machine)") {
                        operations.append(.delete("/pop/assignments/\(machine)/\(service)"))
                    }
                    operations.append(.delete("/pop/assignments/\(machine)"))
                }
                operations += [.delete("/pop/assignments"), .set("/pop", data: Array(#"{"layout":1}"#.utf8))]
                _ = try await store.multi(operations)
            }
            try await fixture.refuses(6, ["status"], mentioning: ["layout version 1", "pop restore --force"])
            let backup = try await backupFile(of: fixture, named: "layout-1.json")
            try await fixture.pop.ok("restore", "--force", backup)
            // Every placement has its assignment again (with nothing announced yet), under layout 2.
            let after = try await desiredState(fixture)
            #expect(Set(after.keys) == Set(upgraded.keys))
            let notAssignments = { (entry: (key: String, value: String)) in !entry.key.hasPrefix("/pop/assignments/") }
            #expect(after.filter(notAssignments) == upgraded.filter(notAssignments))
            #expect(upgraded["/pop/assignments/m1/web"] != nil && upgraded["/pop/assignments/m2/web"] != nil)
            try await fixture.pop.ok("status")
        }
    }

    @Test("an existing namespace is replaced only with --force", arguments: StoreKind.allCases)
    func existingNamespace(kind: StoreKind) async throws {
        try await CLIFixtures.with { fixtures in
            let source = try await fixtures.make(kind)
            let backup = try await populate(source)
            let target = try await fixtures.make(kind)
            try await target.pop.ok("add", "keep", "--template", "kit")
            try await target.refuses(4, ["restore", backup], mentioning: ["already exists", "--force"])
            try await target.pop.ok("restore", "--force", backup)
            #expect(try await desiredState(target) == desiredState(source))
            // Into another prefix of the same store, beside the existing namespace.
            try await target.pop.ok("restore", "--prefix", "/elsewhere/pop", backup)
            let other = try await target.pop.ok("status", "--prefix", "/elsewhere/pop", "--json")
            #expect(other.stdout.contains("\"web\""), "\(other)")
        }
    }

    @Test("bad backups are refused with a clear error and change nothing", arguments: StoreKind.allCases)
    func badBackups(kind: StoreKind) async throws {
        try await CLIFixtures.with { fixtures in
            let source = try await fixtures.make(kind)
            let backup = try await populate(source)
            let good = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: backup))) as! [String: Any]
            let nodes = good["nodes"] as! [[String: Any]]
            let target = try await fixtures.make(kind)
            try await target.pop.ok("add", "keep", "--template", "kit")
            let folder = target.pop.scratch

            func write(_ name: String, _ object: Any) throws -> String {
                let path = folder.appendingPathComponent(name).path
                try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
                return path
            }
            func replacing(_ path: String, data: String) -> [String: Any] {
                var changed = good
                changed["nodes"] = nodes.map { node in
                    guard node["path"] as? String == path else { return node }
                    var node = node
                    node["data"] = data
                    return node
                }
                return changed
            }
            let garbage = folder.appendingPathComponent("garbage.json").path
            try Data("{\"nodes\": [".utf8).write(to: URL(fileURLWithPath: garbage))
            var outside = good
            outside["nodes"] = nodes + [["path": "/elsewhere/x", "version": 0, "ephemeral": false, "data": ""]]
            var foreign = good
            foreign["nodes"] = nodes + [["path": "/pop/secrets", "version": 0, "ephemeral": false, "data": ""]]
            var truncated = good
            truncated["nodes"] = nodes.filter { $0["path"] as? String != "/pop/services/web/tasks" }
            let subtree = try await source.pop.ok("dump", "--json", "/pop/services")
            let subtreeFile = folder.appendingPathComponent("subtree.json").path
            try Data(subtree.stdout.utf8).write(to: URL(fileURLWithPath: subtreeFile))

            let cases: [(file: String, words: [String])] = [
                (garbage, ["not a pop backup", "not valid JSON"]),
                (try write("array.json", [1, 2, 3]), ["not a pop backup"]),
                (try write("layout.json", replacing("/pop", data: #"{"layout":99}"#)), ["layout version 99"]),
                (try write("root.json", replacing("/pop", data: "hello")), ["no pop layout version"]),
                (try write("spec.json", replacing("/pop/services/web", data: "{not json")), ["/pop/services/web"]),
                (try write("placement.json", replacing("/pop/services/web/machines/m1", data: #"{"deployed":"x"}"#)),
                    ["/pop/services/web/machines/m1"]),
                (try write("outside.json", outside), ["/elsewhere/x", "not under"]),
                (try write("foreign.json", foreign), ["/pop/secrets", "not part of pop's layout"]),
                (try write("truncated.json", truncated), ["incomplete", "/pop/services/web/tasks"]),
                (subtreeFile, ["no pop layout version"]),
            ]
            for (file, words) in cases {
                try await target.refuses(2, ["restore", "--force", file], mentioning: words + ["Nothing was restored"])
            }
            try await target.refuses(3, ["restore", folder.appendingPathComponent("missing.json").path], mentioning: ["no file"])
            try await target.pop.ok("status", "keep")
        }
    }

    @Test("a namespace too large for one ZooKeeper request is restored in several")
    func largeNamespaceOnZooKeeper() async throws {
        try await CLIFixtures.with { fixtures in
            let source = try await fixtures.make(.embedded)
            // 150 services of about 3 KB each: several times what one batch of the restore takes.
            let long = String(repeating: "x", count: 3000)
            try await source.pop.ok("add", "web", "--template", "command", "--command", "sleep 1")
            try await source.withNamespace { namespace in
                let template = try await namespace.service(ServiceName("web")).spec.template
                for index in 0..<150 {
                    try await namespace.addService(
                        ServiceSpec(name: try ServiceName("s\(index)"), template: template, options: ["command": .string("sleep 1 \(long)")]))
                }
            }
            let backup = try await backupFile(of: source, named: "large.json")
            let target = try await fixtures.make(.zooKeeper, initialized: false)
            try await target.pop.ok("restore", backup)
            #expect(try await desiredState(target) == desiredState(source))
        }
    }

    // MARK: Support

    /// `pop dump --json` of the fixture's namespace, written to NAME in its scratch folder; returns the file's path.
    func backupFile(of fixture: CLIFixture, named name: String) async throws -> String {
        let path = fixture.pop.scratch.appendingPathComponent(name).path
        let dumped = try await fixture.pop.ok("dump", "--json")
        try Data(dumped.stdout.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Fills a namespace with two services (options, packages, a rollout, placements on two machines), a task and a
    /// registered machine, and writes its backup; returns the backup's path.
    func populate(_ fixture: CLIFixture) async throws -> String {
        let pop = fixture.pop
        try await pop.ok("add", "web", "--template", "command", "--command", "sleep 1000")
        try await pop.ok("add", "api", "--template", "kit", "--port", "8123", "--mode", "safe", "--token", "s3cret")
        try await pop.ok("deploy", "web", "m1", "m2")
        try await pop.ok("config", "api", "--workers", "3")
        try await pop.ok("config", "web", "--max-parallel", "1")
        // Deployed by count, with machine labels and a drained machine (persistent facts).
        try await pop.ok("add", "batch", "--template", "command", "--command", "sleep 1000")
        try await pop.ok("deploy", "batch", "--count", "2", "--label", "zone=a", "--spread", "rack", "--reschedule-after", "12")
        try await pop.ok("machines", "label", "m1", "zone=a", "rack=r1")
        try await pop.ok("drain", "m2")
        let store = try await fixture.openStore()
        let namespace = try PopNamespace(store: store)
        _ = try await namespace.appendPackages(try ServiceName("api"), ["toml==0.10.2"])
        _ = try await namespace.createTask(
            try ServiceName("web"),
            TaskRequest(task: "echo", arguments: [], machines: [try MachineID("m1")], created: Date(), timeoutMilliseconds: 1000))
        try await CLIFixture.register("m1", in: namespace)
        let path = pop.scratch.appendingPathComponent("backup-\(UUID().uuidString).json").path
        let dumped = try await pop.ok("dump", "--json")
        await store.close()
        try Data(dumped.stdout.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every persistent node but task records, with its data: what a restore must bring back.
    func desiredState(_ fixture: CLIFixture) async throws -> [String: String] {
        let result = try await fixture.pop.ok("dump", "--json")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        var state: [String: String] = [:]
        for node in object["nodes"] as! [[String: Any]] {
            let path = node["path"] as! String
            guard node["ephemeral"] as? Bool == false, !path.contains("/tasks/") else { continue }
            state[path] = (node["data"] as? String) ?? (node["dataBase64"] as? String) ?? ""
        }
        return state
    }

    func signatures(_ fixture: CLIFixture) async throws -> [String: String] {
        let result = try await fixture.pop.ok("status", "--json")
        let status = try JSONDecoder().decode(StatusReport.self, from: Data(result.stdout.utf8))
        return Dictionary(uniqueKeysWithValues: status.services.map { ($0.service, $0.signature) })
    }
}
