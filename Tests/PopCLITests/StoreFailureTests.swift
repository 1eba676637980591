import Foundation
import PopTestExpectations
import PopTestSupport
import PopState
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A store pop cannot use: damaged records, another layout, no namespace, or no answer at all.
@Suite("a store pop cannot read is reported, never crashes pop, and is left as it was")
struct StoreFailureTests {
    /// Garbage a damaged or foreign writer could leave in a node.
    static let garbage: [(label: String, bytes: [UInt8])] = [
        ("not JSON", Array("{not json".utf8)),
        ("binary", [0xff, 0xfe, 0x00, 0x01, 0x80]),
        ("empty", []),
        ("wrong type", Array("[1,2,3]".utf8)),
        ("null", Array("null".utf8)),
    ]

    @Test("a malformed service spec: status and config name the node and exit 6; other commands too",
        arguments: StoreKind.allCases)
    func malformedService(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "good", "--template", "kit")
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1")
            let store = try await fixture.openStore()
            let specPath = "/pop/services/web"
            let real = try await store.get(specPath).data
            let cases = Self.garbage + [("truncated", Array(real.prefix(real.count / 2)))]
            for (label, bytes) in cases {
                _ = try await store.set(specPath, data: bytes, version: nil)
                for arguments in [["status"], ["status", "--json"], ["status", "web"], ["config", "web"], ["config", "web", "--workers", "3"],
                    ["deploy", "web", "m2"], ["run", "web", "echo"]] {
                    let result = try await fixture.refuses(6, arguments, mentioning: [specPath, "malformed"])
                    #expect(result.stderr.contains("hint:"), "\(label): \(result)")
                }
            }
            // Commands that do not read the damaged spec still work.
            try await pop.ok("config", "good")
            try await pop.ok("machines")
            // pop remove is how an operator gets rid of a damaged service.
            try await pop.ok("remove", "web")
            try await pop.ok("status")
            await store.close()
        }
    }

    @Test("status still shows the healthy services when one service's record is damaged", arguments: StoreKind.allCases)
    func statusShowsTheRestBesideADamagedService(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "good", "--template", "kit")
            try await pop.ok("add", "web", "--template", "kit")
            let store = try await fixture.openStore()
            _ = try await store.set("/pop/services/web", data: Array("{not json".utf8), version: nil)
            let result = try await fixture.refuses(6, ["status"], mentioning: ["/pop/services/web"])
            // An operator running `pop status` during an incident wants every readable service listed, and the
            // damaged one marked, not one error instead of the table (PopNamespace.status stops at the first bad node).
            #expect(result.stdout.contains("good"), "the healthy service is not shown:\n\(result)")
            #expect(result.stdout.contains("web"), "the damaged service is not marked:\n\(result)")
            await store.close()
        }
    }

    @Test("malformed placement, instance, machine records and invalid node names are reported with their path",
        arguments: StoreKind.allCases)
    func malformedRecordsBelowAService(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1")
            let store = try await fixture.openStore()

            let placement = "/pop/services/web/machines/m1"
            let good = try await store.get(placement).data
            _ = try await store.set(placement, data: Array("{\"deployed\":\"yesterday\"}".utf8), version: nil)
            try await fixture.refuses(6, ["status"], mentioning: [placement])
            try await fixture.refuses(6, ["restart", "web"], mentioning: [placement])
            _ = try await store.set(placement, data: good, version: nil)

            let instance = placement + "/instance"
            _ = try await store.create(instance, data: Array("{\"pid\":\"many\"}".utf8), mode: .ephemeral)
            try await fixture.refuses(6, ["status"], mentioning: [instance])
            try await store.delete(instance, version: nil)

            let machine = "/pop/machines/m1"
            _ = try await store.create(machine, data: [0x00, 0x01], mode: .ephemeral)
            try await fixture.refuses(6, ["status"], mentioning: [machine])
            try await fixture.refuses(6, ["machines"], mentioning: [machine])
            try await store.delete(machine, version: nil)

            let badName = "/pop/services/Bad..Name"
            _ = try await store.create(badName, data: [], mode: .persistent)
            try await fixture.refuses(6, ["status"], mentioning: [badName, "invalid name"])
            try await store.delete(badName, version: nil)

            let badMachine = "/pop/machines/bad machine"
            _ = try await store.create(badMachine, data: [], mode: .ephemeral)
            try await fixture.refuses(6, ["machines"], mentioning: [badMachine])
            try await store.delete(badMachine, version: nil)

            // Back to a sound store, status works again.
            try await pop.ok("status")
            await store.close()
        }
    }

    @Test("a namespace of another layout version or not written by pop: exit 6 and nothing written",
        arguments: StoreKind.allCases)
    func incompatibleLayout(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            try await fixture.pop.ok("add", "web", "--template", "kit")
            let store = try await fixture.openStore()
            let commands: [[String]] = [
                ["status"], ["add", "new", "--template", "kit"], ["deploy", "web"], ["config", "web"], ["remove", "web"],
                ["machines"], ["restart", "web"], ["undeploy", "web", "--all"], ["run", "web", "echo"], ["init"],
            ]
            _ = try await store.set("/pop", data: Array("{\"layout\":99}".utf8), version: nil)
            for arguments in commands {
                let status: Int32 = arguments == ["init"] ? 4 : 6
                let words = arguments == ["init"] ? ["already exists"] : ["layout version 99", "understands version 2"]
                try await fixture.refuses(status, arguments, mentioning: words)
            }
            _ = try await store.set("/pop", data: Array("hello".utf8), version: nil)
            for arguments in commands where arguments != ["init"] {
                try await fixture.refuses(6, arguments, mentioning: ["/pop", "not written by pop"])
            }
            // --force is the documented way out.
            try await fixture.pop.ok("init", "--force")
            try await fixture.pop.ok("status")
            await store.close()
        }
    }

    @Test("no namespace yet: every command but init says to run `pop init`, exit 8", arguments: StoreKind.allCases)
    func notInitialized(kind: StoreKind) async throws {
        try await CLIFixture.with(kind, initialized: false) { fixture in
            let commands: [[String]] = [
                ["status"], ["status", "web"], ["add", "web", "--template", "kit"], ["deploy", "web"], ["undeploy", "web"],
                ["remove", "web"], ["config", "web"], ["config", "web", "--port", "1"], ["restart", "web"], ["machines"],
                ["run", "web", "echo"], ["status", "--wait", "running", "--timeout", "1"],
            ]
            for arguments in commands {
                try await fixture.refuses(8, arguments, mentioning: ["does not exist", "pop init"])
            }
            // Another prefix in an initialized store is just as empty.
            try await fixture.pop.ok("init")
            try await fixture.refuses(8, ["status", "--prefix", "/elsewhere"], mentioning: ["/elsewhere", "pop init"])
        }
    }

    @Test("an unreachable ZooKeeper fails within pop's connect timeout with exit 5 and a clear message")
    func unreachable() async throws {
        let closed = try Self.closedPort()
        let listener = try SilentListener()
        defer { listener.close() }
        try await PopRunner.with(environment: ["POP_MACHINE_ID": "m1"]) { pop in
            let hosts = [
                ("nothing listens", "127.0.0.1:\(closed)"),
                ("a server that never answers", "127.0.0.1:\(listener.port)"),
                ("two dead members", "127.0.0.1:\(closed),127.0.0.1:\(listener.port)"),
            ]
            // What the machine adds to any command now: a command that only starts and exits, run beside the others.
            async let started = pop.run(["--version"])
            let results = try await withThrowingTaskGroup(of: (String, CommandResult, Duration).self) { group in
                for (label, host) in hosts {
                    for arguments in [["status"], ["init"], ["add", "web", "--template", "command", "--command", "sleep 1"], ["machines"]] {
                        group.addTask {
                            let start = ContinuousClock.now
                            let result = try await pop.run(arguments + ["--host", host])
                            return (label, result, ContinuousClock.now - start)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let overhead = try await started.elapsed
            // pop waits its own connect timeout, then gives up: the bound is that timeout plus what starting and ending a
            // process costs on this machine now, with room to spare. Each run's time is the program's own (from its
            // start to its exit), not the test's, whose tasks may wait for a thread of a loaded pool.
            let timeout = StoreConfiguration.connectTimeout
            let bound = timeout + .seconds(2) + overhead * 4
            for (label, result, _) in results {
                #expect(result.status == 5, "\(label):\n\(result)")
                #expect(result.stderr.localizedCaseInsensitiveContains("unreachable")
                    || result.stderr.localizedCaseInsensitiveContains("could not")
                    || result.stderr.localizedCaseInsensitiveContains("no ZooKeeper server"), "\(label):\n\(result)")
                #expect(result.stderr.contains("127.0.0.1"), "the message names the host:\n\(result)")
                #expect(result.elapsed >= timeout - .milliseconds(100), "\(label): gave up before its timeout:\n\(result)")
                #expect(result.elapsed < bound, "\(label): took \(result.elapsed), bound \(bound):\n\(result)")
            }
            // For the record: what the test's own tasks saw includes their wait for a thread of the pool, which the
            // suite's load lengthens and pop does not control.
            let slowest = results.map(\.1.elapsed).max() ?? .zero
            let slowestSeen = results.map(\.2).max() ?? .zero
            print(
                "unreachable ZooKeeper: \(results.count) commands, slowest \(slowest) (as the test's tasks saw it: "
                    + "\(slowestSeen)), bound \(bound) (start and exit: \(overhead))")
            // Nothing fell back to the embedded store.
            #expect(!FileManager.default.fileExists(atPath: pop.home.appendingPathComponent("store.sqlite").path))
        }
    }

    /// A loopback port nothing listens on (bound, then closed).
    static func closedPort() throws -> Int {
        let listener = try SilentListener()
        let port = listener.port
        listener.close()
        return port
    }
}

/// A TCP socket that accepts connections (in the kernel's backlog) and never answers: a hung server.
final class SilentListener: Sendable {
    let descriptor: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() {
        Glibc.close(descriptor)
    }
}
