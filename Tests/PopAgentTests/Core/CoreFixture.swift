import Foundation
import PopState
import Testing

@testable import PopAgent

/// Values and shortcuts for driving ``AgentStateMachine`` by hand: no store, no processes, no clock.
struct CoreFixture {
    let me = try! MachineID("m1")
    let peer = try! MachineID("m0")
    let paths = try! NamespacePaths(root: "/pop")
    let now = Date(timeIntervalSince1970: 1_700_000_000)
    let web = try! ServiceName("web")
    let db = try! ServiceName("db")

    /// This agent's registration record.
    var record: MachineRecord {
        MachineRecord(
            id: me, hostname: "host-a", addresses: ["10.0.0.1"], agentVersion: "test", started: now, agentPID: 4242)
    }

    /// A core that follows what concerns this machine, as on ZooKeeper (or, with `nil`, as the store says).
    func core(followsWholeNamespace: Bool? = false) -> AgentStateMachine {
        AgentStateMachine(
            configuration: .init(
                machine: me, paths: paths, followsWholeNamespace: followsWholeNamespace,
                maximumRetryDelay: .seconds(10)))
    }

    /// A spec of `name` running `sleep`, with a `greeting` option and an `install` task that records packages.
    func spec(_ name: ServiceName, greeting: String = "hello") -> ServiceSpec {
        let template = ResolvedTemplate(
            name: "command", options: [TemplateOption(name: "greeting", type: .string, defaultValue: .string("hello"))],
            command: ["sleep", "300"], stopTimeoutMilliseconds: 2000,
            tasks: [
                TemplateTask(name: "show", command: ["printf", "%s\n", "{args}"]),
                TemplateTask(name: "install", command: ["true"], recordsPackages: true),
            ])
        return ServiceSpec(name: name, template: template, options: ["greeting": .string(greeting)])
    }

    /// What a read says about a service placed here.
    func placed(
        _ spec: ServiceSpec, generation: Int = 0, packages: [String] = [], tasks: [String] = []
    ) -> ServiceSnapshot {
        ServiceSnapshot(
            spec: .success(spec), signature: spec.signature,
            placement: .success(Placement(deployed: now, restartGeneration: generation)), packages: packages,
            tasks: tasks)
    }

    /// What a read says about a service that exists but is not placed here.
    func notPlaced(_ spec: ServiceSpec) -> ServiceSnapshot {
        ServiceSnapshot(spec: .success(spec), signature: spec.signature, placement: nil, packages: [])
    }

    /// The supervisor's report of an instance of `spec`.
    func status(
        _ spec: ServiceSpec, _ state: InstanceState = .running, pid: Int32? = 100, restarts: Int = 0
    ) -> InstanceStatus {
        InstanceStatus(
            name: spec.name, state: state, pid: pid, signature: spec.signature, since: now, started: now,
            restarts: restarts, lastError: nil)
    }

    /// The start of `spec` at `generation`.
    func start(_ spec: ServiceSpec, generation: Int = 0, packages: [String] = []) -> AgentAction {
        .launch(
            InstanceLaunch(
                desired: DesiredInstance(service: spec.name, signature: spec.signature, restartGeneration: generation),
                restart: nil, spec: spec, packages: packages))
    }

    /// The deliberate restart of `spec` at `generation` (`pop restart`).
    func restart(_ spec: ServiceSpec, generation: Int) -> AgentAction {
        .launch(
            InstanceLaunch(
                desired: DesiredInstance(service: spec.name, signature: spec.signature, restartGeneration: generation),
                restart: .restartRequested(generation: generation), spec: spec, packages: []))
    }

    /// The restart of `old` into the changed spec `new`.
    func restart(_ old: ServiceSpec, into new: ServiceSpec) -> AgentAction {
        .launch(
            InstanceLaunch(
                desired: DesiredInstance(service: new.name, signature: new.signature, restartGeneration: 0),
                restart: .configurationChanged(from: old.signature, to: new.signature), spec: new, packages: []))
    }

    /// The watches a service gets when it is first listed.
    func watches(of name: ServiceName) -> Set<WatchKey> {
        [.node("/pop/services/\(name)"), .subtree("/pop/services/\(name)/machines/m1")]
    }

    /// A store change.
    func change(_ kind: NodeEvent.Kind, _ path: String) -> NodeEvent {
        NodeEvent(kind, path: path)
    }

    /// Runs the core from the start to a registered session whose first pass listed the services of `snapshots`
    /// (with any records it published written) and read them; returns the actions of that read. `supervised` are
    /// instances adopted before the start.
    func registered(
        _ core: inout AgentStateMachine, snapshots: [ServiceName: ServiceSnapshot] = [:],
        supervised: [InstanceStatus] = []
    ) -> [AgentAction] {
        for status in supervised {
            #expect(core.instanceAdopted(status, generation: 0) == [])
        }
        #expect(core.start() == [.openSession])
        _ = core.sessionOpened(isMachineLocal: false)
        #expect(core.watchesAdded(.base) == [.registerMachine])
        let registered = core.machineRegistered(record)
        #expect(registered.prefix(2) == [.reportReady(record), .listServices])
        publishAll(&core, registered)
        let names = snapshots.keys.sorted()
        let scope = Set(names).union(supervised.map(\.name)).sorted()
        let listed = core.servicesListed(names.map(\.rawValue))
        if !names.isEmpty {
            #expect(listed == [.addWatches(Set(names.flatMap { watches(of: $0) }), purpose: .services)])
            #expect(core.watchesAdded(.services) == [.readServices(scope)])
        } else {
            #expect(listed == [.readServices(scope)])
        }
        var read = snapshots
        for name in scope where read[name] == nil { read[name] = ServiceSnapshot(spec: nil, packages: []) }
        return core.servicesRead(read, at: now)
    }

    /// The same, with `specs` placed here.
    func registered(
        _ core: inout AgentStateMachine, running specs: [ServiceSpec], supervised: [InstanceStatus] = []
    ) -> [AgentAction] {
        var snapshots: [ServiceName: ServiceSnapshot] = [:]
        for spec in specs { snapshots[spec.name] = placed(spec) }
        return registered(&core, snapshots: snapshots, supervised: supervised)
    }

    /// Writes every queued record (reporting them all written) until nothing is left to publish.
    func publishAll(_ core: inout AgentStateMachine, _ actions: [AgentAction]) {
        var next = actions
        while let batch = next.lazy.compactMap({ action -> [ServiceName: RecordWrite]? in
            if case .publish(let batch) = action { return batch }
            return nil
        }).first {
            var outcomes: [ServiceName: PublishOutcome] = [:]
            for (name, write) in batch { outcomes[name] = write == .delete ? .deleted : .written }
            next = core.recordsPublished(outcomes, failure: nil)
        }
    }
}
