import Foundation
import PopState
import PopTestSupport
import TestProcesses
import Testing

extension PopClusterSuite {
    /// Services that depend on each other across machines: Debian's redis-server on one machine, the counting Python
    /// application on another, reaching it through its relation data.
    @Suite struct ClusterRelationTests {
        static let redisPort = 6379
        static let appPort = 8000

        /// The instance of `service` in `snapshot` on `machine`, with its signature.
        static func instance(_ snapshot: StatusSnapshot, _ service: String) -> StatusSnapshot.PlacementStatus? {
            snapshot.services.first { $0.spec.name.rawValue == service }?.placements.first
        }

        /// Whether `app`'s instance runs the signature its relation data calls for now.
        static func appIsCurrent(_ snapshot: StatusSnapshot) -> Bool {
            guard let app = snapshot.services.first(where: { $0.spec.name.rawValue == "app" }),
                let instance = app.placements.first?.instance
            else { return false }
            return instance.state == .running && instance.signature == snapshot.instanceSignature(of: app)
        }

        /// GETs `/` of the application at `address`: `COUNT ADDRESSES PID`.
        static func count(at address: String) async throws -> (count: Int, addresses: String) {
            let response = try await RawHTTP.get(host: address, port: appPort, target: "/")
            let words = response.body.split(whereSeparator: \.isWhitespace).map(String.init)
            guard response.status == 200, words.count == 3, let count = Int(words[0]) else {
                throw ClusterError("the application at \(address) answered \(response)")
            }
            return (count, words[1])
        }

        @Test("redis moves to another machine with its data: the application restarts with the new address and keeps counting")
        func redisMoves() async throws {
            try await withCluster { cluster in
                let (m1, m2, m3) = (cluster.machines[0], cluster.machines[1], cluster.machines[2])
                let plugins = try RelationPlugin.write(under: cluster.folder)
                try await cluster.startAgents()
                try await cluster.popOK(["add", "db", "--template", "redis", "--port", String(Self.redisPort)])
                try await cluster.popOK(
                    ["add", "app", "--template", "counter", "--port", String(Self.appPort)],
                    environment: [("POP_PLUGIN_PATH", plugins.path)])
                // The application first: it waits for redis, which then starts on m1.
                try await cluster.popOK(["deploy", "app", m2.id])
                try await StoreWatcher.with(cluster) { watcher in
                    try await watcher.wait(timeout: .seconds(60), "app waits for db") {
                        Self.instance($0, "app")?.instance?.state == .waiting
                    }
                    try await cluster.popOK(["deploy", "db", m1.id])
                    try await watcher.wait(timeout: .seconds(240), "app runs") { Self.appIsCurrent($0) }
                    let first = try await Self.count(at: m2.address)
                    #expect(first == (1, "\(m1.address):\(Self.redisPort)"), "\(first)")
                    #expect(try await Self.count(at: m2.address).count == 2)
                    let before = try #require(Self.instance(try await watcher.namespace.status(), "app")?.instance)

                    // Move redis with its data: stop it on m1, copy its folder's append-only files to m3, start it there.
                    try await cluster.popOK(["undeploy", "db", m1.id])
                    try await watcher.wait(timeout: .seconds(60), "db is gone from m1") { Self.instance($0, "db") == nil }
                    let db = try ServiceName("db")
                    let from = PopHome(path: m1.home.path).instanceFolder(try MachineID(m1.id), db)
                    let to = PopHome(path: m3.home.path).instanceFolder(try MachineID(m3.id), db)
                    try FileManager.default.createDirectory(atPath: to, withIntermediateDirectories: true)
                    try FileManager.default.copyItem(atPath: from + "/appendonlydir", toPath: to + "/appendonlydir")
                    try await cluster.popOK(["deploy", "db", m3.id])

                    let after = try await watcher.wait(timeout: .seconds(120), "app restarts with m3's address") { snapshot in
                        Self.appIsCurrent(snapshot) && Self.instance(snapshot, "app")?.instance?.pid != before.pid
                    }
                    let moved = try #require(Self.instance(after, "app")?.instance)
                    #expect(moved.signature != before.signature, "relation data is part of the signature")
                    #expect(moved.lastRestart == .configChange, "\(moved)")
                    let third = try await Self.count(at: m2.address)
                    #expect(third == (3, "\(m3.address):\(Self.redisPort)"), "\(third)")
                }
                let status = try await cluster.popOK(["status", "app", "--wait", "running", "--timeout", "60"])
                #expect(status.stdout.contains("running"), "\(status)")
            }
        }

        @Test("redis's machine is cut off and comes back: wait keeps running, stop stops and starts again, restart restarts once")
        func policiesWhenRedisIsCutOff() async throws {
            try await withCluster { cluster in
                let (m1, m2) = (cluster.machines[0], cluster.machines[1])
                let plugins = try RelationPlugin.write(under: cluster.folder)
                let policies = ["wait", "stop", "restart"]
                let ports = ["wait": 8001, "stop": 8002, "restart": 8003]
                try await cluster.startAgents()
                try await cluster.popOK(["add", "db", "--template", "redis", "--port", String(Self.redisPort)])
                try await cluster.popOK(["deploy", "db", m1.id])
                for policy in policies {
                    try await cluster.popOK(
                        ["add", "app-\(policy)", "--template", policy == "wait" ? "counter" : "counter-\(policy)",
                         "--port", String(ports[policy]!)],
                        environment: [("POP_PLUGIN_PATH", plugins.path)])
                    try await cluster.popOK(["deploy", "app-\(policy)", m2.id])
                }
                try await StoreWatcher.with(cluster) { watcher in
                    let running = try await watcher.wait(timeout: .seconds(240), "every application runs") { snapshot in
                        policies.allSatisfy { Self.instance(snapshot, "app-\($0)")?.instance?.state == .running }
                    }
                    let pids = Dictionary(uniqueKeysWithValues: policies.map {
                        ($0, Self.instance(running, "app-\($0)")?.instance?.pid)
                    })
                    for policy in policies {
                        let answer = try await RawHTTP.get(host: m2.address, port: ports[policy]!, target: "/")
                        #expect(answer.body.hasPrefix("1 "), "\(policy): \(answer)")
                    }

                    // m1 is cut off: once its session expires, its redis meets no condition (its machine is down).
                    try await cluster.setLink(of: m1, up: false)
                    let stopped = try await watcher.wait(timeout: .seconds(90), "app-stop waits") { snapshot in
                        Self.instance(snapshot, "app-stop")?.instance?.state == .waiting
                    }
                    #expect(Self.instance(stopped, "app-stop")?.instance?.lastError == "db: not healthy")
                    for policy in ["wait", "restart"] {
                        let now = Self.instance(stopped, "app-\(policy)")?.instance
                        #expect(now?.state == .running && now?.pid == pids[policy]!, "\(policy): \(String(describing: now))")
                    }

                    // m1 is back with redis still running: stop starts again, restart restarts once, wait is untouched.
                    try await cluster.setLink(of: m1, up: true)
                    let back = try await watcher.wait(timeout: .seconds(120), "the applications recover") { snapshot in
                        let stop = Self.instance(snapshot, "app-stop")?.instance
                        let restart = Self.instance(snapshot, "app-restart")?.instance
                        return stop?.state == .running && restart?.state == .running && restart?.pid != pids["restart"]!
                    }
                    #expect(Self.instance(back, "app-restart")?.instance?.lastRestart == .requirement)
                    let kept = Self.instance(back, "app-wait")?.instance
                    #expect(kept?.pid == pids["wait"]! && kept?.restarts == 0, "\(String(describing: kept))")
                    for policy in policies {
                        let answer = try await RawHTTP.get(host: m2.address, port: ports[policy]!, target: "/")
                        #expect(answer.body.hasPrefix("2 "), "\(policy) keeps counting in the same redis: \(answer)")
                    }
                }
            }
        }
    }
}
