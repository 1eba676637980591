import Foundation
@testable import PopState
import Testing

/// Binding requirement slots and the checks made before a binding is written: missing services, interfaces, cycles.
@Suite("Requirements")
struct RequirementTests {
    func template(_ name: String, requires: [String: TemplateRequirement]? = nil, provides: [String]? = nil)
        -> ResolvedTemplate
    {
        ResolvedTemplate(
            name: name, options: [TemplateOption(name: "port", type: .port, defaultValue: .int(6379), shared: true)],
            command: ["x"], requires: requires, provides: provides)
    }

    func spec(_ name: String, _ template: ResolvedTemplate, requires: [String: String] = [:]) throws -> ServiceSpec {
        var spec = ServiceSpec(name: try ServiceName(name), template: template, options: ["port": .int(6379)])
        try spec.bindRequirements(requires)
        return spec
    }

    var redis: ResolvedTemplate { template("redis", provides: ["redis"]) }
    var web: ResolvedTemplate { template("web", requires: ["db": TemplateRequirement(interface: "redis")]) }
    var node: ResolvedTemplate { template("node", requires: ["next": TemplateRequirement()]) }

    func refusal(_ body: () throws -> Void) -> PopError? {
        do {
            try body()
            return nil
        } catch {
            return error as? PopError
        }
    }

    @Test func aSlotIsBoundToTheServiceOfItsNameUnlessRebound() throws {
        let byDefault = try spec("app", web)
        #expect(byDefault.requires == nil)
        #expect(byDefault.boundRequirements.map(\.service.rawValue) == ["db"])
        var rebound = try spec("app", web, requires: ["db": "cache"])
        #expect(rebound.requires == ["db": "cache"])
        try rebound.bindRequirements(["db": "db"])
        #expect(rebound.requires == nil, "binding back to the default stores nothing")
        let unknown = refusal { _ = try spec("app", web, requires: ["dbx": "cache"]) }
        #expect(unknown?.code == .invalidInput)
        #expect(unknown?.message.contains("no requirement slot 'dbx'; its slots are db") == true, "\(String(describing: unknown))")
    }

    @Test func aMissingServiceOrTheWrongInterfaceIsRefusedNamingWhatWasExpected() throws {
        let app = try spec("app", web, requires: ["db": "cache"])
        let missing = refusal { try app.checkRequirements(against: [:]) }
        #expect(missing?.code == .notFound)
        #expect(missing?.message.contains("no service 'cache' exists; expected a service providing 'redis'") == true)
        let plain = try spec("cache", template("plain"))
        let wrong = refusal { try app.checkRequirements(against: [plain.name: plain]) }
        #expect(wrong?.code == .invalidInput)
        #expect(wrong?.message.contains("expects a service providing 'redis', but 'cache' (template plain) provides nothing") == true)
        let good = try spec("cache", redis)
        #expect(refusal { try app.checkRequirements(against: [good.name: good]) } == nil)
    }

    @Test func aCycleIsRefusedNamingIt() throws {
        let a = try spec("a", node, requires: ["next": "b"])
        let b = try spec("b", node, requires: ["next": "c"])
        let c = try spec("c", node, requires: ["next": "a"])
        let cycle = refusal { try a.checkRequirements(against: [b.name: b, c.name: c]) }
        #expect(cycle?.code == .invalidInput)
        #expect(cycle?.message == "The requirements form a cycle: a -> b -> c -> a.")
        let selfCycle = refusal { try spec("a", node, requires: ["next": "a"]).checkRequirements(against: [:]) }
        #expect(selfCycle?.message.contains("a -> a") == true)
        let leaf = try spec("c", redis)
        #expect(refusal { try a.checkRequirements(against: [b.name: b, c.name: leaf]) } == nil)
    }

    @Test func dependentsAreFoundForTheRemoveGuard() throws {
        let app = try spec("app", web, requires: ["db": "cache"])
        let other = try spec("other", web)
        let cache = try spec("cache", redis)
        let specs = [app.name: app, other.name: other, cache.name: cache]
        #expect(ServiceSpec.dependents(of: cache.name, in: specs).map { "\($0.service):\($0.slot)" } == ["app:db"])
        #expect(ServiceSpec.dependents(of: try ServiceName("db"), in: specs).map(\.service.rawValue) == ["other"])
    }

    @Test func onlySharedOptionsAreRelationData() throws {
        var secretive = template("vault", provides: ["redis"])
        secretive.options.append(TemplateOption(name: "password", type: .string, defaultValue: .string("x"), secret: true))
        var user = web
        user.command = ["x", "{requires.db.password}"]
        let app = try spec("app", user, requires: ["db": "vault"])
        let vault = try spec("vault", secretive)
        let refused = refusal { try app.checkRequirements(against: [vault.name: vault]) }
        #expect(refused?.code == .invalidInput)
        #expect(refused?.message.contains("which it does not share; shared: port") == true, "\(String(describing: refused))")
        #expect(app.relationValues([vault.name: RequiredServiceView(spec: vault)]) == ["requires.db.password": ""])
    }

    @Test func aPlanListsTheDependentsWhoseRelationDataWouldChange() throws {
        var user = web
        user.command = ["x", "{requires.db.addresses}"]
        let app = try spec("app", user)
        let db = try spec("db", redis)
        let m1 = try MachineID("m1")
        let m2 = try MachineID("m2")
        let machines = [m1, m2].map {
            MachineRecord(
                id: $0, hostname: $0.rawValue, addresses: ["10.0.0.\($0 == m1 ? 1 : 2)"], agentVersion: "test",
                started: Date(timeIntervalSince1970: 0), agentPID: 1)
        }
        let placed = Placement(deployed: Date(timeIntervalSince1970: 0), restartGeneration: 0)
        let running = { (spec: ServiceSpec, machine: MachineID) in
            StatusSnapshot.PlacementStatus(
                machine: machine, placement: placed,
                instance: InstanceRecord(
                    machine: machine, pid: 1, signature: spec.signature, state: .running, since: Date(timeIntervalSince1970: 0)))
        }
        let snapshot = StatusSnapshot(
            store: "test", machines: machines,
            services: [
                .init(spec: app, version: 0, signature: app.signature, placements: [running(app, m2)]),
                .init(spec: db, version: 0, signature: db.signature, placements: [running(db, m1), running(db, m2)]),
            ])
        var moved = try spec("db", redis)
        moved.options["port"] = .int(6380)
        // A new port changes the addresses; a machine left out changes them too; no change, nothing.
        #expect(
            snapshot.dependentRestarts(of: db.name, after: ServiceState(spec: moved, placed: [m1, m2])) == [
                .init(service: "app", machine: "m2", reason: "relation data changed: {requires.db.addresses}")
            ])
        #expect(snapshot.dependentRestarts(of: db.name, after: ServiceState(spec: db, placed: [m2])).count == 1)
        #expect(snapshot.dependentRestarts(of: db.name, after: ServiceState(spec: db, placed: [m1, m2])).isEmpty)
        // Gone everywhere: the requirement is lost, and its policy (not a restart) decides.
        #expect(snapshot.dependentRestarts(of: db.name, after: ServiceState(spec: nil)).isEmpty)
        // The instance runs its spec's signature combined with the relation data.
        #expect(
            snapshot.instanceSignature(of: snapshot.services[0])
                == app.signature.with(relations: ["requires.db.addresses": "10.0.0.1:6379,10.0.0.2:6379"]))
    }
}
