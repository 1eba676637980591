import Foundation
import Testing
@testable import PopState

@Suite struct EnvironmentTests {
    @Test func popHomeComesFromPopHomeThenXDGThenHome() throws {
        #expect(try PopHome(environment: ["POP_HOME": "/srv/pop/", "HOME": "/root"]).path == "/srv/pop")
        #expect(try PopHome(environment: ["XDG_STATE_HOME": "/x/state", "HOME": "/root"]).path == "/x/state/pop")
        #expect(try PopHome(environment: ["HOME": "/home/ann"]).path == "/home/ann/.local/state/pop")
        #expect(throws: PopError.self) { try PopHome(environment: ["POP_HOME": "relative"]) }
        #expect(throws: PopError.self) { try PopHome(environment: [:]) }
    }

    @Test func popHomePaths() throws {
        let home = PopHome(path: "/h")
        let machine = try MachineID("m1")
        #expect(home.storeFile == "/h/store.sqlite")
        #expect(home.agentPIDFile(machine) == "/h/machines/m1/agent.pid")
        #expect(home.instanceFolder(machine, try ServiceName("web")) == "/h/machines/m1/instances/web")
    }

    @Test func machineIdentityPrefersTheOverrideAndValidatesIt() throws {
        #expect(try MachineIdentity.current(environment: ["POP_MACHINE_ID": "agent-2"]).rawValue == "agent-2")
        let error = #expect(throws: PopError.self) {
            try MachineIdentity.current(environment: ["POP_MACHINE_ID": "../etc"])
        }
        #expect(error?.message.contains("POP_MACHINE_ID") == true)
    }

    @Test func machineIdentityReadsTheSystemId() throws {
        let expected = try String(contentsOfFile: "/etc/machine-id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try MachineIdentity.current(environment: [:]).rawValue == expected)
    }

    @Test func aSystemIdFileIsReadToItsFirstLineWithoutBlanks() throws {
        let folder = try TemporaryFolder.make()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cases: [(String, String?)] = [
            ("0123abcd\n", "0123abcd"), ("  \t0123abcd \t\r\nsecond\n", "0123abcd"), ("abc", "abc"), ("", nil),
            ("\n\nlater\n", "later"), (" \t \n", nil), ("\u{2003}id\u{00A0}\n", "id"),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            let path = folder + "/id-\(index)"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(MachineIdentity.readFirstLine(path) == expected, "\(text.debugDescription)")
        }
        #expect(MachineIdentity.readFirstLine(folder + "/missing") == nil)
        #expect(MachineIdentity.readFirstLine(folder) == nil, "a folder")
    }

    @Test func storeConfigurationDefaultsToTheEmbeddedStore() throws {
        let home = PopHome(path: "/h")
        let embedded = try StoreConfiguration(host: nil, prefix: nil, environment: [:], home: home)
        #expect(embedded.kind == .embedded(folder: "/h"))
        #expect(embedded.prefix == "/pop")
        #expect(embedded.description == "embedded store /h/store.sqlite prefix /pop")
    }

    @Test func storeConfigurationParsesHostLists() throws {
        let home = PopHome(path: "/h")
        let fromEnvironment = try StoreConfiguration(
            host: nil, prefix: "/team", environment: ["POP_HOST": "zk1,zk2:2182,[::1]:2183/chroot"], home: home)
        #expect(
            fromEnvironment.kind
                == .zooKeeper(
                    servers: [.init(host: "zk1", port: 2181), .init(host: "zk2", port: 2182), .init(host: "::1", port: 2183)],
                    chroot: "/chroot"))
        #expect(fromEnvironment.prefix == "/team")
        let flagWins = try StoreConfiguration(
            host: "127.0.0.1:2181", prefix: nil, environment: ["POP_HOST": "other"], home: home)
        #expect(flagWins.kind == .zooKeeper(servers: [.init(host: "127.0.0.1", port: 2181)], chroot: nil))
        #expect(flagWins.description == "ZooKeeper 127.0.0.1:2181 prefix /pop")
        for bad in ["zk1:0", "zk1:99999", "zk1:x", ",zk1", "zk1/a//b"] {
            #expect(throws: PopError.self, "\(bad)") {
                try StoreConfiguration(host: bad, prefix: nil, environment: [:], home: home)
            }
        }
        #expect(throws: PopError.self) {
            try StoreConfiguration(host: nil, prefix: "pop", environment: [:], home: home)
        }
    }

    @Test func openingAnUnreachableZooKeeperFailsClearlyWithinTheConnectTimeout() async throws {
        // Port 1 on loopback: nothing listens there, so every connect is refused.
        let configuration = try StoreConfiguration(kind: .zooKeeper(servers: [.init(host: "127.0.0.1", port: 1)], chroot: nil))
        let started = ContinuousClock.now
        let error = await #expect(throws: PopError.self) {
            _ = try await openStore(configuration, connectTimeout: .seconds(2))
        }
        #expect(error?.code == .storeUnreachable)
        #expect(error?.message.contains("127.0.0.1:1") == true, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(10), "a refused connect must not hang")
    }
}
