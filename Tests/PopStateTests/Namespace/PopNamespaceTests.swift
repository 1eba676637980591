import Foundation
import Testing
@testable import PopState

@Suite(.timeLimit(.minutes(5)))
struct PopNamespaceTests {
    static func spec(_ name: String, port: Int = 8080) throws -> ServiceSpec {
        ServiceSpec(
            name: try ServiceName(name), template: ResolvedTemplate(name: "web", command: ["serve", "{port}"]),
            options: ["port": .int(port)])
    }

    static func machine(_ id: String) throws -> MachineID { try MachineID(id) }

    /// Runs `body` with an initialized namespace on a fresh store.
    func withNamespace(
        _ kind: StoreKind, _ body: (PopNamespace, StoreFixture) async throws -> Void
    ) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let namespace = try PopNamespace(store: store)
            try await namespace.initialize(force: false)
            try await body(namespace, fixture)
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func initializeRefusesAnExistingNamespaceUnlessForced(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            try await namespace.addService(try Self.spec("web"))
            let error = await #expect(throws: PopError.self) { try await namespace.initialize(force: false) }
            #expect(error?.code == .conflict)
            #expect(error?.hint?.contains("--force") == true)
            #expect(try await namespace.services().map(\.rawValue) == ["web"])

            try await namespace.initialize(force: true)
            #expect(try await namespace.services().isEmpty)
            #expect(try await namespace.machines().isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aNestedPrefixIsCreatedWithItsParents(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let namespace = try PopNamespace(store: store, prefix: "/teams/blue/pop")
            try await namespace.initialize(force: false)
            try await namespace.addService(try Self.spec("web"))
            #expect(try await store.children("/teams/blue/pop/services") == ["web"])
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aMissingNamespaceIsNotInitialized(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            let namespace = try PopNamespace(store: store)
            for operation in [
                { try await namespace.services() as Any },
                { try await namespace.status() as Any },
                { try await namespace.addService(try Self.spec("web")) as Any },
            ] {
                let error = await #expect(throws: PopError.self) { _ = try await operation() }
                #expect(error?.code == .notInitialized)
                #expect(error?.hint?.contains("pop init") == true)
            }
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anIncompatibleLayoutIsReportedNotCrashedOn(_ kind: StoreKind) async throws {
        try await withStores(kind) { fixture in
            let store = try await fixture.open()
            try await PopNamespace(store: store).initialize(force: false)
            _ = try await store.set("/pop", data: bytes(#"{"layout":3}"#), version: nil)
            let fresh = try PopNamespace(store: store)
            let error = await #expect(throws: PopError.self) { try await fresh.services() }
            #expect(error?.code == .corruptState)
            #expect(error?.message.contains("layout version 3") == true)
            let statusError = await #expect(throws: PopError.self) { try await fresh.status() }
            #expect(statusError?.code == .corruptState)

            // The layout before assignments is refused with the way to upgrade it.
            _ = try await store.set("/pop", data: bytes(#"{"layout":1}"#), version: nil)
            let old = await #expect(throws: PopError.self) { try await PopNamespace(store: store).services() }
            #expect(old?.code == .corruptState)
            #expect(old?.message.contains("layout version 1") == true)
            #expect(old?.hint?.contains("pop restore --force") == true)

            _ = try await store.set("/pop", data: bytes("not json"), version: nil)
            let garbage = await #expect(throws: PopError.self) { try await PopNamespace(store: store).services() }
            #expect(garbage?.code == .corruptState)
            #expect(garbage?.path == "/pop")
            await store.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func servicesAreAddedReadUpdatedAndRemoved(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let web = try Self.spec("web")
            try await namespace.addService(web)
            try await namespace.addService(try Self.spec("api"))
            let duplicate = await #expect(throws: PopError.self) { try await namespace.addService(web) }
            #expect(duplicate?.code == .conflict)
            #expect(duplicate?.message.contains("'web' already exists") == true)
            #expect(try await namespace.services().map(\.rawValue) == ["api", "web"])

            let read = try await namespace.service(web.name)
            #expect(read.spec == web)
            #expect(read.version == 0)
            #expect(try await namespace.packages(web.name).isEmpty)

            // Compare-and-set: the first update wins, the second (from the same read) conflicts.
            let updated = try Self.spec("web", port: 9000)
            #expect(try await namespace.updateService(updated, expectedVersion: read.version) == 1)
            let lost = await #expect(throws: PopError.self) {
                try await namespace.updateService(try Self.spec("web", port: 9001), expectedVersion: read.version)
            }
            #expect(lost?.code == .conflict)
            #expect(try await namespace.service(web.name).spec == updated)

            try await namespace.removeService(web.name)
            let gone = await #expect(throws: PopError.self) { try await namespace.service(web.name) }
            #expect(gone?.code == .notFound)
            #expect(gone?.message.contains("no service named 'web'") == true)
            let removeAgain = await #expect(throws: PopError.self) { try await namespace.removeService(web.name) }
            #expect(removeAgain?.code == .notFound)
            #expect(try await namespace.services().map(\.rawValue) == ["api"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func removeTakesPlacementsInstancesAndTasksAlong(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, fixture in
            let web = try Self.spec("web")
            let m1 = try Self.machine("m1")
            try await namespace.addService(web)
            try await namespace.deploy(web.name, machines: [m1])
            // The agent's instance record lives in another session, as it would.
            let agentStore = try await fixture.open()
            let agent = try PopNamespace(store: agentStore)
            try await agent.publishInstance(
                InstanceRecord(machine: m1, pid: 42, signature: web.signature, state: .running, since: Date()),
                service: web.name)
            let task = try await namespace.createTask(
                web.name, TaskRequest(task: "packages", arguments: [], machines: [m1], created: Date(), timeoutMilliseconds: 1000))
            try await agent.writeTaskResult(web.name, task, TaskResult(machine: m1, state: .running, started: Date()))

            try await namespace.removeService(web.name)
            #expect(try await namespace.store.exists(namespace.paths.service(web.name)) == nil)
            #expect(try await namespace.services().isEmpty)
            await agentStore.close()
        }
    }

    /// One deploy or undeploy of many machines is one change of the placements folder (its version grows by one), not
    /// one per machine.
    @Test(arguments: StoreKind.allCases)
    func aDeployOfManyMachinesBumpsThePlacementsFolderOnce(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let web = try Self.spec("web")
            try await namespace.addService(web)
            let folder = namespace.paths.placements(web.name)
            let machines = try (1...5).map { try Self.machine("m\($0)") }
            let before = try await namespace.store.get(folder).stat.version
            #expect(try await namespace.deploy(web.name, machines: machines).count == 5)
            #expect(try await namespace.store.get(folder).stat.version == before + 1)
            #expect(try await namespace.undeploy(web.name, machines: Array(machines[1...])).count == 4)
            #expect(try await namespace.store.get(folder).stat.version == before + 2)
            #expect(try await namespace.placements(web.name).keys.sorted() == [machines[0]])
        }
    }

    /// A deploy to machines no service was placed on yet creates their assignment folders in one multi-operation; when
    /// another deploy creates some of them meanwhile, each still succeeds, and every assignment is there.
    @Test(arguments: StoreKind.allCases)
    func deploysToNewMachinesAtOnceEachCreateTheAssignmentFolders(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, fixture in
            let names = ["a", "b", "c"]
            for name in names { try await namespace.addService(try Self.spec(name)) }
            let machines = try (1...100).map { try Self.machine("m\($0)") }
            // One folder exists already.
            _ = try await namespace.deploy(try ServiceName("a"), machines: [machines[41]])
            var others: [PopNamespace] = []
            for _ in 0..<2 { others.append(try PopNamespace(store: try await fixture.open())) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (name, writer) in zip(names, [namespace] + others) {
                    group.addTask { _ = try await writer.deploy(try ServiceName(name), machines: machines) }
                }
                try await group.waitForAll()
            }
            for machine in machines {
                #expect(try await namespace.store.children(namespace.paths.assignments(machine)) == names)
            }
            for other in others { await other.store.close() }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func assignmentsFollowThePlacementsAndAnnounceRequestsAndPackages(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let store = namespace.store
            let paths = namespace.paths
            let (web, db) = (try Self.spec("web"), try Self.spec("db"))
            let (m1, m2) = (try Self.machine("m1"), try Self.machine("m2"))
            try await namespace.addService(web)
            try await namespace.addService(db)
            func assignment(_ machine: MachineID, _ name: ServiceName) async throws -> Assignment? {
                guard let node = try await store.read([.get(paths.assignment(machine, name))])[0].nodeIfExists() else {
                    return nil
                }
                return try PopJSON.decoder().decode(Assignment.self, from: Data(node.data))
            }
            try await namespace.deploy(web.name, machines: [m1, m2])
            try await namespace.deploy(db.name, machines: [m2])
            #expect(try await store.children(paths.assignments(m1)) == ["web"])
            #expect(try await store.children(paths.assignments(m2)) == ["db", "web"])
            #expect(try await assignment(m1, web.name) == Assignment())

            // A task request and new packages are announced to each machine of the service, and only to them.
            _ = try await namespace.createTask(
                web.name, TaskRequest(task: "show", arguments: [], machines: [m1, m2], created: Date(), timeoutMilliseconds: 1000))
            _ = try await namespace.appendPackages(web.name, ["lxml"])
            let packagesVersion = try await store.get(paths.packages(web.name)).stat.version
            #expect(try await assignment(m1, web.name) == Assignment(taskRequests: 1, packagesVersion: packagesVersion))
            #expect(try await assignment(m2, web.name) == Assignment(taskRequests: 1, packagesVersion: packagesVersion))
            #expect(try await assignment(m2, db.name) == Assignment())
            // Packages already listed write nothing.
            let before = try await store.get(paths.assignment(m1, web.name)).stat.version
            _ = try await namespace.appendPackages(web.name, ["lxml"])
            #expect(try await store.get(paths.assignment(m1, web.name)).stat.version == before)

            // The assignment goes with the placement, and with the service.
            try await namespace.undeploy(web.name, machines: [m1])
            #expect(try await store.children(paths.assignments(m1)) == [])
            try await namespace.removeService(db.name)
            #expect(try await store.children(paths.assignments(m2)) == ["web"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deployUndeployAndRestart(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let web = try Self.spec("web")
            let (m1, m2) = (try Self.machine("m1"), try Self.machine("m2"))
            try await namespace.addService(web)
            #expect(try await namespace.deploy(web.name, machines: [m1, m2]) == [m1, m2])
            #expect(try await namespace.deploy(web.name, machines: [m1]) == [], "placing twice is a no-op")
            var placements = try await namespace.placements(web.name)
            #expect(Set(placements.keys) == [m1, m2])
            #expect(placements[m1]?.restartGeneration == 0)

            #expect(try await namespace.restart(web.name, machines: [m2]) == [m2])
            #expect(try await namespace.restart(web.name) == [m1, m2])
            placements = try await namespace.placements(web.name)
            #expect(placements[m1]?.restartGeneration == 1)
            #expect(placements[m2]?.restartGeneration == 2)

            try await namespace.publishInstance(
                InstanceRecord(machine: m1, pid: 7, signature: web.signature, state: .running, since: Date()),
                service: web.name)
            #expect(try await namespace.undeploy(web.name, machines: [m1]) == [m1])
            #expect(Set(try await namespace.placements(web.name).keys) == [m2])
            #expect(try await namespace.instances(web.name).isEmpty)

            let missing = await #expect(throws: PopError.self) {
                try await namespace.deploy(try ServiceName("nope"), machines: [m1])
            }
            #expect(missing?.code == .notFound)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func machinesAndInstancesAreEphemeralRecords(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, fixture in
            let web = try Self.spec("web")
            let m1 = try Self.machine("m1")
            try await namespace.addService(web)
            let agentStore = try await fixture.open()
            let agent = try PopNamespace(store: agentStore)
            let record = MachineRecord(
                id: m1, hostname: "host", addresses: ["10.0.0.1"], agentVersion: "1", started: Date(timeIntervalSince1970: 1), agentPID: 99)
            try await agent.registerMachine(record)
            try await agent.registerMachine(record)  // Re-registering in the same session updates it.

            // Another agent with the same id is refused while the first one lives.
            let otherStore = try await fixture.open()
            let duplicate = await #expect(throws: PopError.self) {
                try await PopNamespace(store: otherStore).registerMachine(record)
            }
            #expect(duplicate?.code == .conflict)
            #expect(duplicate?.message.contains("pid 99") == true)

            // An instance can only be published where the service is placed.
            let instance = InstanceRecord(
                machine: m1, pid: 5, signature: web.signature, state: .starting, since: Date(timeIntervalSince1970: 3))
            let unplaced = await #expect(throws: PopError.self) { try await agent.publishInstance(instance, service: web.name) }
            #expect(unplaced?.code == .notFound)
            try await namespace.deploy(web.name, machines: [m1])
            try await agent.publishInstance(instance, service: web.name)
            var running = instance
            running.state = .running
            try await agent.publishInstance(running, service: web.name)
            #expect(try await namespace.instances(web.name) == [m1: running])
            #expect(try await namespace.machines() == [record])

            await agentStore.close()
            #expect(try await namespace.machines().isEmpty)
            #expect(try await namespace.instances(web.name).isEmpty)
            try await PopNamespace(store: otherStore).registerMachine(record)
            #expect(try await namespace.machines().map(\.id) == [m1])
            await otherStore.close()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func packagesAndTasks(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let web = try Self.spec("web")
            let m1 = try Self.machine("m1")
            try await namespace.addService(web)
            #expect(try await namespace.appendPackages(web.name, ["lxml==5.2.1"]) == ["lxml==5.2.1"])
            #expect(try await namespace.appendPackages(web.name, ["requests", "lxml==5.2.1"]) == ["lxml==5.2.1", "requests"])
            let bad = await #expect(throws: PopError.self) { try await namespace.appendPackages(web.name, ["-r/etc/passwd"]) }
            #expect(bad?.code == .invalidInput)
            #expect(try await namespace.service(web.name).spec.signature == web.signature, "packages are not in the signature")

            let request = TaskRequest(
                task: "install", arguments: ["lxml"], machines: [m1], created: Date(timeIntervalSince1970: 5), timeoutMilliseconds: 60_000)
            let first = try await namespace.createTask(web.name, request)
            let second = try await namespace.createTask(web.name, request)
            #expect(first < second)
            #expect(try await namespace.tasks(web.name) == [first, second])
            #expect(try await namespace.task(web.name, first) == request)
            let invalid = await #expect(throws: PopError.self) {
                try await namespace.createTask(
                    web.name, TaskRequest(task: "a b", arguments: [], machines: [], created: Date(), timeoutMilliseconds: 1))
            }
            #expect(invalid?.code == .invalidInput)

            var result = TaskResult(machine: m1, state: .running, started: Date(timeIntervalSince1970: 6))
            try await namespace.writeTaskResult(web.name, first, result)
            result.state = .succeeded
            result.exitCode = 0
            try await namespace.writeTaskResult(web.name, first, result)
            #expect(try await namespace.taskResults(web.name, first) == [m1: result])
            try await namespace.deleteTask(web.name, first)
            #expect(try await namespace.tasks(web.name) == [second])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func malformedNodesAreReportedWithTheirPath(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let store = namespace.store
            let web = try Self.spec("web")
            let m1 = try Self.machine("m1")
            try await namespace.addService(web)
            try await namespace.deploy(web.name, machines: [m1])

            _ = try await store.set(namespace.paths.service(web.name), data: bytes(#"{"name":"web"}"#), version: nil)
            let spec = await #expect(throws: PopError.self) { try await namespace.service(web.name) }
            #expect(spec?.code == .corruptState)
            #expect(spec?.path == "/pop/services/web")
            #expect(spec?.message.contains("/pop/services/web") == true)
            // status() reports the damaged record beside everything readable instead of failing as a whole.
            let status = try await namespace.status()
            #expect(status.services.isEmpty)
            #expect(status.problems.map(\.service) == ["web"])
            #expect(status.problems.first?.error.path == "/pop/services/web")
            #expect(status.problems.first?.error.code == .corruptState)

            _ = try await store.set(namespace.paths.service(web.name), data: web.canonicalEncoding(), version: nil)
            _ = try await store.set(namespace.paths.placement(web.name, m1), data: [0xff, 0x00], version: nil)
            let placement = await #expect(throws: PopError.self) { try await namespace.placements(web.name) }
            #expect(placement?.code == .corruptState)
            #expect(placement?.path == "/pop/services/web/machines/m1")

            _ = try await store.create("/pop/services/Bad..Name", data: [], mode: .persistent)
            let name = await #expect(throws: PopError.self) { try await namespace.services() }
            #expect(name?.code == .corruptState)
            #expect(name?.path == "/pop/services/Bad..Name")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func statusReadsEverythingInOneSnapshot(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, _ in
            let web = try Self.spec("web")
            let api = try Self.spec("api")
            let (m1, m2) = (try Self.machine("m1"), try Self.machine("m2"))
            try await namespace.addService(web)
            try await namespace.addService(api)
            try await namespace.deploy(web.name, machines: [m1, m2])
            let record = MachineRecord(
                id: m1, hostname: "h1", addresses: [], agentVersion: "1", started: Date(timeIntervalSince1970: 1), agentPID: 1)
            try await namespace.registerMachine(record)
            let instance = InstanceRecord(
                machine: m1, pid: 10, signature: web.signature, state: .running, since: Date(timeIntervalSince1970: 2))
            try await namespace.publishInstance(instance, service: web.name)

            let status = try await namespace.status()
            #expect(status.store == namespace.store.description)
            #expect(status.machines == [record])
            #expect(status.services.map(\.spec.name.rawValue) == ["api", "web"])
            let webStatus = try #require(status.services.last)
            #expect(webStatus.signature == web.signature)
            #expect(webStatus.placements.map(\.machine) == [m1, m2])
            #expect(webStatus.placements[0].instance == instance)
            #expect(webStatus.placements[1].instance == nil)
            #expect(status.services[0].placements.isEmpty)
        }
    }

    @Test func statusReadsAHundredServices() async throws {
        try await withNamespace(.embedded) { namespace, _ in
            let machine = try Self.machine("m1")
            try await namespace.registerMachine(
                MachineRecord(id: machine, hostname: "h", addresses: [], agentVersion: "1", started: Date(), agentPID: 1))
            for index in 0..<100 {
                let spec = try Self.spec("service-\(index)", port: 9000 + index)
                try await namespace.addService(spec)
                try await namespace.deploy(spec.name, machines: [machine])
                try await namespace.publishInstance(
                    InstanceRecord(machine: machine, pid: Int32(index), signature: spec.signature, state: .running, since: Date()),
                    service: spec.name)
            }
            // Its speed is measured by `pop-bench store` and `pop-bench status` (docs/benchmarks.md), not here.
            let status = try await namespace.status()
            #expect(status.services.count == 100)
            #expect(status.services.allSatisfy { $0.placements.first?.instance?.signature == $0.signature })
        }
    }
}
