import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import Testing

/// Services that depend on each other, through the built `pop` binary on the embedded store: the checks made when a
/// requirement is bound or a required service removed, and a real agent running Debian's redis-server and a Python
/// application that counts requests in it.
@Suite("relations", .serialized, .timeLimit(.minutes(10)))
struct RelationTests {
    // MARK: Guards

    @Test("bindings are checked before anything is written: missing service, wrong interface, cycle, remove")
    func bindingsAreChecked() async throws {
        try await withRelationWorld { fixture in
            let pop = fixture.pop
            // By default the slot db is bound to the service db, which does not exist yet.
            try await fixture.refuses(
                3, ["add", "app", "--template", "counter"],
                mentioning: ["'db'", "no service 'db' exists", "expected a service providing 'redis'"])
            try await pop.ok("add", "box", "--template", "plain")
            try await fixture.refuses(
                2, ["add", "app", "--template", "counter", "--requires", "db=box"],
                mentioning: ["expects a service providing 'redis'", "'box' (template plain) provides nothing"])
            try await fixture.refuses(
                2, ["add", "app", "--template", "counter", "--requires", "cache=box"],
                mentioning: ["no requirement slot 'cache'", "its slots are db"])
            try await fixture.refuses(2, ["add", "app", "--template", "counter", "--requires", "db"], mentioning: ["SLOT=SERVICE"])

            try await pop.ok("add", "db", "--template", "redis", "--port", "16379")
            try await pop.ok("add", "app", "--template", "counter")
            let described = try await pop.ok("describe", "counter")
            #expect(described.stdout.contains("REQUIRES"), "\(described)")
            #expect(
                described.stdout.split(separator: "\n").contains { $0.contains("db") && $0.contains("redis") && $0.contains("healthy") && $0.contains("wait") },
                "\(described)")
            #expect(try await pop.ok("describe", "redis").stdout.contains("Provides: redis"))

            // A required service is kept, naming its dependents, unless --force.
            try await fixture.refuses(4, ["remove", "db"], mentioning: ["required by app (slot 'db')", "--force"])
            try await pop.ok("add", "cache", "--template", "redis", "--port", "16380")
            try await fixture.refuses(
                3, ["config", "app", "--requires", "db=nothing"], mentioning: ["no service 'nothing' exists"])
            try await fixture.refuses(2, ["config", "app", "--requires", "db=box"], mentioning: ["provides nothing"])
            let rebound = try await pop.ok("config", "app", "--requires", "db=cache")
            #expect(rebound.stdout.contains("--requires db"), "\(rebound)")
            let shown = try await pop.ok("config", "app")
            #expect(shown.stdout.contains("requires db → cache (interface redis), healthy, policy wait"), "\(shown)")
            try await pop.ok("remove", "db")
            // Rolling back to the binding of the removed service is refused as binding it would be.
            try await fixture.refuses(3, ["rollback", "app"], mentioning: ["no service 'db' exists"])
            try await fixture.refuses(4, ["remove", "cache"], mentioning: ["required by app"])

            // Cycles: a -> b -> a, and a service requiring itself.
            try await pop.ok("add", "a", "--template", "node", "--requires", "next=box")
            try await pop.ok("add", "b", "--template", "node", "--requires", "next=a")
            try await fixture.refuses(
                2, ["config", "a", "--requires", "next=b"], mentioning: ["The requirements form a cycle: a -> b -> a."])
            try await fixture.refuses(
                2, ["add", "c", "--template", "node", "--requires", "next=c"], mentioning: ["cycle: c -> c"])

            try await pop.ok("remove", "cache", "--force")
            #expect(try await pop.statusReport().service("cache") == nil)
        }
    }

    // MARK: With an agent

    /// GETs `/` of the application on `port`; its body is `COUNT ADDRESSES PID`.
    static func count(_ port: Int) async throws -> (count: Int, addresses: String, pid: String) {
        let response = try await RawHTTP.get(host: "127.0.0.1", port: port, target: "/")
        let words = response.body.split(whereSeparator: \.isWhitespace).map(String.init)
        guard response.status == 200, words.count == 3, let count = Int(words[0]) else {
            throw TestFailure("the application on port \(port) answered \(response)")
        }
        return (count, words[1], words[2])
    }

    @Test("an application deployed before redis waits, starts once redis is healthy, and counts in it")
    func anApplicationWaitsForRedisThenCounts() async throws {
        try await withRelationWorld { fixture in
            let pop = fixture.pop
            let redisPort = try LoopbackHTTP.freePort()
            let appPort = try LoopbackHTTP.freePort(excluding: [redisPort])
            try await pop.ok("start")
            try await pop.ok("add", "db", "--template", "redis", "--port", String(redisPort))
            try await pop.ok("add", "app", "--template", "counter", "--port", String(appPort))
            try await pop.ok("deploy", "app")
            try await fixture.withNamespace { namespace in
                let waiting = try await namespace.waitFor("app", within: 60) { $0.state == "waiting" }
                #expect(waiting.lastError == "db: not healthy", "\(waiting)")
                #expect(waiting.pid == nil)
            }
            let status = try await pop.ok("status")
            #expect(status.stdout.contains("waiting (db: not healthy)"), "\(status)")

            try await pop.ok("deploy", "db")
            try await fixture.withNamespace { namespace in
                _ = try await namespace.waitFor("db", within: 60) { $0.state == "running" }
                _ = try await namespace.waitFor("app", within: 240) { $0.state == "running" && $0.pid != nil }
            }
            let first = try await Self.count(appPort)
            let second = try await Self.count(appPort)
            #expect(first.count == 1 && second.count == 2, "\(first) \(second)")
            #expect(first.addresses.hasSuffix(":\(redisPort)"), "the address comes from the relation data: \(first)")
            // The instance runs its spec's signature combined with its relation data, which status counts as current.
            try await pop.ok("status", "app", "--wait", "running", "--timeout", "60")

            // Redis moves to another port: the plan lists the dependent, which then restarts with the new address.
            let newPort = try LoopbackHTTP.freePort(excluding: [redisPort, appPort])
            let plan = try await fixture.refuses(2, ["config", "db", "--port", String(newPort), "--plan"])
            #expect(
                plan.stdout.split(separator: "\n").contains {
                    $0.contains("restart app") && $0.contains(fixture.localMachine)
                        && $0.contains("relation data changed: {requires.db.addresses}")
                }, "\(plan)")
            let before = try await pop.statusReport().service("app")?.instances.first
            try await pop.ok("config", "db", "--port", String(newPort))
            try await fixture.withNamespace { namespace in
                _ = try await namespace.waitFor("app", within: 120) {
                    $0.state == "running" && $0.pid != nil && $0.pid != before?.pid && $0.signature != before?.signature
                }
            }
            try await pop.ok("status", "app", "--wait", "running", "--timeout", "60")
            let third = try await Self.count(appPort)
            #expect(third.count == 3 && third.addresses.hasSuffix(":\(newPort)"), "it keeps counting in redis: \(third)")
        }
    }

    @Test("redis stopped and back: wait keeps running, stop stops and starts again, restart restarts once it is back")
    func policiesWhenRedisIsLost() async throws {
        try await withRelationWorld { fixture in
            let pop = fixture.pop
            let redisPort = try LoopbackHTTP.freePort()
            var ports = [String: Int]()
            for policy in ["wait", "stop", "restart"] {
                ports[policy] = try LoopbackHTTP.freePort(excluding: Set(ports.values).union([redisPort]))
            }
            try await pop.ok("start")
            try await pop.ok("add", "db", "--template", "redis", "--port", String(redisPort))
            try await pop.ok("deploy", "db")
            try await pop.ok("add", "app-wait", "--template", "counter", "--port", String(ports["wait"]!))
            try await pop.ok("add", "app-stop", "--template", "counter-stop", "--port", String(ports["stop"]!))
            try await pop.ok("add", "app-restart", "--template", "counter-restart", "--port", String(ports["restart"]!))
            for policy in ["wait", "stop", "restart"] { try await pop.ok("deploy", "app-\(policy)") }

            try await fixture.withNamespace { namespace in
                var before: [String: StatusReport.Instance] = [:]
                for policy in ["wait", "stop", "restart"] {
                    before[policy] = try await namespace.waitFor("app-\(policy)", within: 240) {
                        $0.state == "running" && $0.pid != nil
                    }
                    #expect(try await Self.count(ports[policy]!).count == 1)
                }

                // Redis goes away: after the debounce (1 s) the stop policy stops its instance, which then waits.
                try await pop.ok("undeploy", "db")
                let stopped = try await namespace.waitFor("app-stop", within: 60) { $0.state == "waiting" }
                #expect(stopped.lastError == "db: not healthy", "\(stopped)")
                // The others kept their processes: the debounce has run out for them as well.
                for policy in ["wait", "restart"] {
                    let now = try #require(try await namespace.report("app-\(policy)").service("app-\(policy)")?.instances.first)
                    #expect(now.state == "running" && now.pid == before[policy]!.pid, "\(policy): \(now)")
                }

                // Redis is back with its data: stop starts again, restart restarts once, wait never stopped.
                try await pop.ok("deploy", "db")
                _ = try await namespace.waitFor("app-stop", within: 120) { $0.state == "running" && $0.pid != nil }
                let oldPID = before["restart"]!.pid
                let restarted = try await namespace.waitFor("app-restart", within: 120) {
                    $0.state == "running" && $0.pid != nil && $0.pid != oldPID
                }
                #expect(restarted.lastRestart == "requirement", "\(restarted)")
                let kept = try #require(try await namespace.report("app-wait").service("app-wait")?.instances.first)
                #expect(kept.pid == before["wait"]!.pid && kept.restarts == 0, "\(kept)")
            }
            for policy in ["wait", "stop", "restart"] {
                let answer = try await Self.count(ports[policy]!)
                #expect(answer.count == 2, "\(policy) keeps counting where it was: \(answer)")
            }
        }
    }
}
