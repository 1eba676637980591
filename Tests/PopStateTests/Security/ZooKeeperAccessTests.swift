import Foundation
import Synchronization
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport
@testable import PopState

/// pop's nodes on a real ZooKeeper when the store is opened with credentials.
@Suite(.timeLimit(.minutes(5)))
struct ZooKeeperAccessTests {
    static let password = "agent-" + UUID().uuidString

    /// A fresh, open chroot on the shared server (as an operator would create one), and its connect string.
    func chroot() async throws -> (server: ZooKeeperServer, host: String) {
        let server = try await ZooKeeperServer.shared()
        let chroot = "/pop-security-" + UUID().uuidString
        let setup = try await ZooKeeperClient.connect(ZooKeeperConfiguration(connectString: server.connectString))
        _ = try await setup.create(chroot, data: [])
        await setup.close()
        return (server, server.connectString + chroot)
    }

    func configuration(_ host: String, auth: String?) throws -> StoreConfiguration {
        try StoreConfiguration(
            host: host, prefix: "/team/pop", environment: auth.map { ["POP_AUTH": $0] } ?? [:],
            home: PopHome(path: "/nonexistent"))
    }

    @Test func everyNodePopCreatesCarriesOnlyTheDigestACL() async throws {
        let (_, host) = try await chroot()
        let configuration = try configuration(host, auth: "agent:" + Self.password)
        let namespace = try await openNamespace(configuration)
        let machine = try MachineID("m1")
        let name = try ServiceName("web")
        try await namespace.initialize(force: false)
        try await namespace.addService(
            ServiceSpec(name: name, template: ResolvedTemplate(name: "web", command: ["serve"]), options: [:]))
        _ = try await namespace.deploy(name, machines: [machine])
        try await namespace.registerMachine(
            MachineRecord(id: machine, hostname: "h", addresses: [], agentVersion: "1", started: Date(), agentPID: 1))
        try await namespace.publishInstance(
            InstanceRecord(
                machine: machine, pid: 1, signature: try await namespace.service(name).spec.signature, state: .running,
                since: Date()),
            service: name)
        let task = try await namespace.createTask(
            name, TaskRequest(task: "packages", arguments: [], machines: [machine], created: Date(), timeoutMilliseconds: 1000))
        try await namespace.writeTaskResult(name, task, TaskResult(machine: machine, state: .succeeded, started: Date()))
        _ = try await namespace.appendPackages(name, ["requests"])

        // Walk everything below the chroot with the same credentials, reading each node's ACL.
        let walker = try await ZooKeeperClient.connect(
            try ZooKeeperConfiguration(connectString: host).with(
                credentials: [.digest(user: "agent", password: Self.password)]))
        let expected = ZooKeeperACL.digestAll(user: "agent", password: Self.password)
        var pending = ["/team"]
        var seen: [String] = []
        while let path = pending.popLast() {
            seen.append(path)
            let (acl, _) = try await walker.getACL(path)
            #expect(acl == expected, "\(path) has ACL \(acl)")
            pending += try await walker.getChildren(path).children.map { path + "/" + $0 }
        }
        await walker.close()
        await namespace.store.close()
        // The prefix's parent, the root, machines, services, the service, its placement, instance, tasks, task,
        // result and packages: nothing was left out of the walk.
        #expect(seen.count >= 13, "\(seen)")
        #expect(seen.contains("/team/pop/services/web/machines/m1/instance"))
        #expect(seen.contains("/team/pop/machines/m1"))
    }

    @Test func wrongOrMissingCredentialsAreRefusedAtOnceWithoutDisturbingOtherSessions() async throws {
        let (_, host) = try await chroot()
        let insider = try await openNamespace(try configuration(host, auth: "agent:" + Self.password))
        try await insider.initialize(force: false)
        let sessionID = insider.store.sessionID
        let events = Mutex<[SessionEvent]>([])
        let stream = insider.store.sessionEvents()
        let watcher = Task {
            for await event in stream { events.withLock { $0.append(event) } }
        }

        let wrongPassword = "wrong-" + UUID().uuidString
        for (auth, expectation) in [("agent:" + wrongPassword, "user 'agent'"), (nil, "no credentials")] {
            let clock = ContinuousClock()
            let start = clock.now
            let outsider = try await openNamespace(try configuration(host, auth: auth))
            do {
                try await outsider.checkLayout()
                Issue.record("an outsider read the protected namespace")
            } catch let error as PopError {
                #expect(error.code == .permissionDenied)
                #expect(error.message.contains(expectation), "\(error)")
                #expect(!error.description.contains(wrongPassword) && !error.description.contains(Self.password))
            }
            await #expect(throws: PopError.self) { try await outsider.store.set("/team/pop", data: [1], version: nil) }
            await #expect(throws: PopError.self) { _ = try await outsider.store.children("/team/pop/services") }
            await outsider.store.close()
            // A client that took the refusal for a lost connection would try again until its connect timeout (5 s)
            // for each of the three requests, then fail with another error. Refused at once, the three take well
            // under a second; the bound leaves room for a loaded machine where a connection alone took 12 s.
            #expect(clock.now - start < .seconds(30), "refusing took \(clock.now - start)")
        }

        // The insider's session and connection lived on through all of it.
        try await insider.checkLayout()
        _ = try await insider.store.get("/team/pop")
        #expect(insider.store.sessionID == sessionID)
        watcher.cancel()
        #expect(events.withLock { $0 }.allSatisfy { $0 == .connected }, "\(events.withLock { $0 })")
        await insider.store.close()
    }
}

extension ZooKeeperConfiguration {
    fileprivate func with(credentials: [ZooKeeperCredential]) -> ZooKeeperConfiguration {
        var copy = self
        copy.credentials = credentials
        return copy
    }
}
