import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

/// `--plan`, `--if-version`, `pop history` and `pop rollback`, run as the built binary against both stores.
@Suite("safe changes: plans, versions, history and rollback", .timeLimit(.minutes(10)))
struct SafeChangeTests {
    static func object(_ result: CommandResult) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result)")
    }

    @Test("--plan on every command prints what would happen, exits 2 and changes nothing", arguments: StoreKind.allCases)
    func plansChangeNothing(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            let added = try await fixture.refuses(2, ["add", "web", "--template", "kit", "--plan"])
            #expect(added.stdout.contains("added from template kit"), "\(added)")
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1", "m2", "m3")
            try await pop.ok("config", "web", "--max-parallel", "2")

            let config = try await fixture.refuses(2, ["config", "web", "--port", "9000", "--token", "s3cret", "--plan"])
            #expect(config.stdout.contains("plan for web  version 0"), "\(config)")
            for machine in ["m1", "m2", "m3"] { #expect(Self.row(config, "restart", machine, "--port"), "\(config)") }
            #expect(config.stdout.contains("--port 8000 → 9000, --token changed"), "\(config)")
            #expect(config.stdout.contains("batches: 1. m1, m2; 2. m3"), "\(config)")
            #expect(!config.output.contains("s3cret"), "a secret appears in a plan:\n\(config)")

            let json = try Self.object(
                try await fixture.refuses(2, ["config", "web", "--port", "9000", "--token", "s3cret", "--plan", "--json"]))
            #expect(json["version"] as? Int == 0)
            #expect(json["changes"] as? Bool == true)
            #expect(json["batches"] as? [[String]] == [["m1", "m2"], ["m3"]])
            #expect((json["restarts"] as? [[String: String]])?.map { $0["machine"] } == ["m1", "m2", "m3"])
            #expect(json["lowestRunning"] as? Int == 0, "no instance runs without agents")

            // Nothing would change: exit 0.
            let same = try await pop.ok("config", "web", "--port", "8000", "--plan")
            #expect(same.stdout.contains("nothing would change"), "\(same)")
            #expect(try Self.object(try await pop.ok("config", "web", "--plan", "--json"))["changes"] as? Bool == false)

            let deploy = try await fixture.refuses(2, ["deploy", "web", "m4", "--plan"])
            #expect(Self.row(deploy, "start", "m4", "deployed"), "\(deploy)")
            let undeploy = try await fixture.refuses(2, ["undeploy", "web", "m3", "--plan"])
            #expect(Self.row(undeploy, "stop", "m3", "undeployed"), "\(undeploy)")
            let restart = try await fixture.refuses(2, ["restart", "web", "m2", "--plan"])
            #expect(Self.row(restart, "restart", "m2", "restart asked for"), "\(restart)")
            #expect(!restart.stdout.contains("m1"), "\(restart)")
            let remove = try await fixture.refuses(2, ["remove", "web", "--plan"])
            #expect(Self.row(remove, "stop", "m1", "service removed"), "\(remove)")
            let rollout = try await fixture.refuses(2, ["config", "web", "--max-parallel", "1", "--plan"])
            #expect(rollout.stdout.contains("no restart: configuration changes roll out 1 at a time (was 2 at a time)"), "\(rollout)")
            #expect(!Self.row(rollout, "restart", "m1"), "\(rollout)")
            // A plan of a command that would be refused is refused the same way.
            try await fixture.refuses(4, ["add", "web", "--template", "kit", "--plan"], mentioning: ["already exists"])
            try await fixture.refuses(3, ["config", "nothing", "--port", "1", "--plan"], mentioning: ["no service"])
            try await fixture.refuses(4, ["scale", "web", "2", "--plan"], mentioning: ["pinned"])
            try await fixture.refuses(4, ["deploy", "web", "--count", "2", "--plan"], mentioning: ["pinned"])
        }
    }

    @Test("--if-version applies a change only at that version; of concurrent changes exactly one wins",
        arguments: StoreKind.allCases)
    func ifVersion(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("config", "web", "--port", "9000", "--if-version", "0")
            try await fixture.refuses(4, ["config", "web", "--port", "9001", "--if-version", "0"], mentioning: ["version 1, not 0"])
            try await fixture.refuses(4, ["deploy", "web", "m1", "--if-version", "0"], mentioning: ["version 1, not 0"])
            try await fixture.refuses(4, ["rollback", "web", "--if-version", "7"], mentioning: ["version 1, not 7"])

            let results = try await withThrowingTaskGroup(of: CommandResult.self) { group in
                for port in 9100..<9106 {
                    group.addTask { try await pop.run(["config", "web", "--port", String(port), "--if-version", "1"]) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { $0.status == 0 }.count == 1, "\(results)")
            #expect(results.filter { $0.status == 4 }.count == 5, "\(results)")
            let history = try #require(
                JSONSerialization.jsonObject(with: Data(try await pop.ok("history", "web", "--json").stdout.utf8))
                    as? [[String: Any]])
            #expect(history.map { $0["version"] as? Int } == [0, 1, 2])
        }
    }

    @Test("history lists every spec with who and how; rollback brings one back as a new version; bad input changes nothing",
        arguments: StoreKind.allCases)
    func historyAndRollback(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit", "--port", "9000")
            try await pop.ok("config", "web", "--port", "9001")
            try await pop.ok("config", "web", "--port", "9002", "--token", "s3cret")
            let first = try await Self.signature(pop)

            let listed = try await pop.ok("history", "web")
            #expect(listed.stdout.contains("2 (current)"), "\(listed)")
            #expect(listed.stdout.contains("pop add web --template kit --port 9000"), "\(listed)")
            #expect(listed.stdout.contains("pop config web --port 9002 --token ********"), "\(listed)")
            #expect(listed.stdout.contains("@"), "each entry names user@host:\n\(listed)")
            #expect(!listed.output.contains("s3cret"), "a secret appears in the history:\n\(listed)")

            let diff = try await pop.ok("history", "web", "--diff", "2")
            #expect(diff.stdout.contains("against version 1"), "\(diff)")
            #expect(diff.stdout.contains("--port 9001 → 9002"), "\(diff)")
            #expect(diff.stdout.contains("--token changed"), "\(diff)")
            #expect(!diff.output.contains("s3cret"), "\(diff)")

            // Bad input: a clear error, a documented exit code, and the store as it was.
            try await fixture.refuses(3, ["rollback", "web", "--to", "42"], mentioning: ["no version 42", "versions 0 to 2"])
            try await fixture.refuses(3, ["history", "web", "--diff", "42"], mentioning: ["no version 42"])
            try await fixture.refuses(2, ["rollback", "web", "--to", "-1"], mentioning: ["--to"])
            try await fixture.refuses(2, ["config", "web", "--history-limit", "0"], mentioning: ["1 to 1000"])
            try await fixture.refuses(3, ["rollback", "nothing"], mentioning: ["no service"])

            let plan = try await fixture.refuses(2, ["rollback", "web", "--plan"])
            #expect(plan.stdout.contains("--port 9002 → 9001, --token changed"), "\(plan)")
            let rolled = try await pop.ok("rollback", "web")
            #expect(rolled.stdout.contains("rolled web back to version 1 as version 3"), "\(rolled)")
            let third = try await Self.signature(pop)
            try await pop.ok("rollback", "web", "--to", "2")
            #expect(try await Self.signature(pop) == first, "a rollback brings the spec back byte for byte")
            #expect(third != first)
            let rolledBack = try await pop.ok("history", "web")
            #expect(rolledBack.stdout.contains("pop rollback web --to 1"), "\(rolledBack)")
            #expect(rolledBack.stdout.contains("4 (current)"), "\(rolledBack)")

            // Bounded: lowering the limit keeps the newest.
            try await pop.ok("config", "web", "--history-limit", "2")
            let bounded = try #require(
                JSONSerialization.jsonObject(with: Data(try await pop.ok("history", "web", "--json").stdout.utf8))
                    as? [[String: Any]])
            #expect(bounded.map { $0["version"] as? Int } == [3, 4])

            // A backup keeps the history, and the restored service goes on from the same version.
            let backup = pop.scratch.appendingPathComponent("backup.json")
            try Data(try await pop.ok("dump", "--json").stdout.utf8).write(to: backup)
            try await pop.ok("restore", "--prefix", "/copy", backup.path)
            let copied = try await pop.ok("history", "web", "--prefix", "/copy", "--json")
            #expect(copied.stdout == (try await pop.ok("history", "web", "--json")).stdout)
            try await pop.ok("config", "web", "--prefix", "/copy", "--port", "9005", "--if-version", "4")
            #expect(try await pop.ok("config", "web", "--prefix", "/copy").stdout.contains("version 5"))
        }
    }

    /// Whether a line of the output holds `words` in this order.
    static func row(_ result: CommandResult, _ words: String...) -> Bool {
        result.stdout.split(separator: "\n").contains { line in
            var rest = line[...]
            for word in words {
                guard let found = rest.range(of: word) else { return false }
                rest = rest[found.upperBound...]
            }
            return true
        }
    }

    static func signature(_ pop: PopRunner) async throws -> String {
        let shown = try JSONSerialization.jsonObject(with: Data(try await pop.ok("config", "web", "--json").stdout.utf8))
        return try #require((shown as? [String: Any])?["signature"] as? String)
    }
}
