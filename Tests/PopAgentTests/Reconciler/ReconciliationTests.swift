import PopAgent
import PopState
import Testing

@Suite struct ReconciliationTests {
    let web = try! ServiceName("web")
    let db = try! ServiceName("db")
    let old = ConfigSignature(hex: String(repeating: "a", count: 40))
    let new = ConfigSignature(hex: String(repeating: "b", count: 40))

    @Test func startsWhatIsPlacedAndMissing() {
        let desired = DesiredInstance(service: web, signature: new, restartGeneration: 0)
        let actions = Reconciliation.plan(desired: [web: desired], actual: [:])
        #expect(actions == [.start(desired)])
    }

    @Test func stopsWhatIsNoLongerPlaced() {
        let actual = ActualInstance(service: db, signature: old, restartGeneration: 0)
        #expect(Reconciliation.plan(desired: [:], actual: [db: actual]) == [.stop(db)])
    }

    @Test func leavesAStoppedUnplacedInstanceAlone() {
        let actual = ActualInstance(service: db, signature: old, restartGeneration: 0, isStopped: true)
        #expect(Reconciliation.plan(desired: [:], actual: [db: actual]).isEmpty)
    }

    @Test func restartsOnSignatureChange() {
        let desired = DesiredInstance(service: web, signature: new, restartGeneration: 0)
        let actual = ActualInstance(service: web, signature: old, restartGeneration: 0)
        #expect(
            Reconciliation.plan(desired: [web: desired], actual: [web: actual])
                == [.restart(desired, because: .configurationChanged(from: old, to: new))])
    }

    @Test func restartsOnRestartGeneration() {
        let desired = DesiredInstance(service: web, signature: new, restartGeneration: 3)
        let actual = ActualInstance(service: web, signature: new, restartGeneration: 2)
        #expect(
            Reconciliation.plan(desired: [web: desired], actual: [web: actual])
                == [.restart(desired, because: .restartRequested(generation: 3))])
    }

    @Test func doesNothingWhenConverged() {
        let desired = DesiredInstance(service: web, signature: new, restartGeneration: 1)
        let actual = ActualInstance(service: web, signature: new, restartGeneration: 1)
        #expect(Reconciliation.plan(desired: [web: desired], actual: [web: actual]).isEmpty)
    }

    @Test func startsAStoppedInstanceThatIsStillPlaced() {
        let desired = DesiredInstance(service: web, signature: new, restartGeneration: 0)
        let actual = ActualInstance(service: web, signature: new, restartGeneration: 0, isStopped: true)
        #expect(Reconciliation.plan(desired: [web: desired], actual: [web: actual]) == [.start(desired)])
    }

    @Test func leavesUnreadableServicesAlone() {
        let actual = ActualInstance(service: web, signature: old, restartGeneration: 0)
        #expect(Reconciliation.plan(desired: [:], actual: [web: actual], unreadable: [web]).isEmpty)
    }

    @Test func looksOnlyAtTheScope() {
        let desiredWeb = DesiredInstance(service: web, signature: new, restartGeneration: 0)
        let desiredDB = DesiredInstance(service: db, signature: new, restartGeneration: 0)
        let actions = Reconciliation.plan(desired: [web: desiredWeb, db: desiredDB], actual: [:], scope: [db])
        #expect(actions == [.start(desiredDB)])
    }

    @Test func ordersActionsByService() {
        let desiredWeb = DesiredInstance(service: web, signature: new, restartGeneration: 0)
        let actual = ActualInstance(service: db, signature: old, restartGeneration: 0)
        #expect(
            Reconciliation.plan(desired: [web: desiredWeb], actual: [db: actual]) == [.stop(db), .start(desiredWeb)])
    }
}

@Suite struct StoreChangeTests {
    let me = try! MachineID("m1")
    let services = "/pop/services"

    @Test func classifiesEvents() throws {
        let web = try ServiceName("web")
        func classify(_ path: String, _ kind: NodeEvent.Kind = .dataChanged) -> StoreChange? {
            StoreChange.classify(
                NodeEvent(kind, path: path), servicesPath: services, assignmentsPath: "/pop/assignments/m1", machine: me)
        }
        #expect(classify("/pop/services", .childrenChanged) == .serviceList)
        #expect(classify("/pop/services", .created) == .everything)
        #expect(classify("/pop/services", .deleted) == .everything)
        #expect(classify("/pop/services/web") == .service(web))
        #expect(classify("/pop/services/web", .created) == .service(web))
        #expect(classify("/pop/services/web", .deleted) == .service(web))
        #expect(classify("/pop/services/web", .childrenChanged) == nil)
        #expect(classify("/pop/services/web/packages") == .packages(web))
        #expect(classify("/pop/services/web/packages", .created) == .packages(web))
        #expect(classify("/pop/services/web/machines") == nil)
        #expect(classify("/pop/services/web/machines/m1", .created) == .placement(web))
        #expect(classify("/pop/services/web/machines/m1") == .placement(web))
        #expect(classify("/pop/services/web/machines/m1", .childrenChanged) == nil)
        #expect(classify("/pop/services/web/machines/m2") == nil)
        #expect(classify("/pop/services/web/machines/m1/instance", .deleted) == .instanceRecord(web))
        #expect(classify("/pop/services/web/machines/m1/instance", .created) == nil)
        #expect(classify("/pop/services/web/machines/m1/instance") == nil)
        #expect(classify("/pop/services/web/machines/m2/instance", .deleted) == nil)
        #expect(classify("/pop/services/web/tasks") == nil)
        #expect(classify("/pop/services/web/tasks/task-0000000001", .created) == .task(web, "task-0000000001"))
        #expect(classify("/pop/services/web/tasks/task-0000000001/m2", .created) == .task(web, "task-0000000001"))
        #expect(classify("/pop/services/Bad_Name") == nil)
        #expect(classify("/pop/machines/m1") == nil)
        // This machine's assignments: one appearing or going says which service is placed here or taken off; a set
        // announces something about the service. Another machine's assignments never reach this agent.
        #expect(classify("/pop/assignments/m1/web", .created) == .assigned(web))
        #expect(classify("/pop/assignments/m1/web", .deleted) == .unassigned(web))
        #expect(classify("/pop/assignments/m1/web") == .service(web))
        #expect(classify("/pop/assignments/m1", .created) == .serviceList)
        #expect(classify("/pop/assignments/m1/Bad_Name") == nil)
        #expect(classify("/pop/assignments/m2/web") == nil)
    }

    @Test func coalescesABurst() throws {
        let web = try ServiceName("web")
        var pending = PendingChanges()
        #expect(pending.isEmpty)
        for _ in 0..<100 { pending.add(.placement(web)) }
        pending.add(.service(web))
        pending.add(.task(web, "task-0000000001"))
        pending.add(.task(web, "task-0000000001"))
        #expect(pending.services == [web])
        #expect(pending.tasks == [web: ["task-0000000001"]])
        #expect(!pending.everything && !pending.serviceList)
        pending.add(.serviceList)
        #expect(pending.serviceList)
        var other = PendingChanges(everything: true)
        other.merge(pending)
        #expect(other.everything && other.services == [web])
    }

    /// Assignments that come and go say which services are placed here, so the last list need not be read again;
    /// the last event of a service wins, and a list to read, or an older pass's assignments, make it read again.
    @Test func assignmentsThatComeAndGoMakeTheListKnown() throws {
        let web = try ServiceName("web")
        let db = try ServiceName("db")
        let cache = try ServiceName("cache")
        var pending = PendingChanges()
        #expect(pending.knownServices(after: [db]) == nil, "nothing changed: no list to know")
        pending.add(.assigned(web))
        pending.add(.unassigned(db))
        pending.add(.unassigned(cache))
        pending.add(.assigned(cache))
        #expect(!pending.isEmpty && pending.services == [web, db, cache])
        #expect(pending.knownServices(after: [db]) == [web, cache])
        pending.add(.unassigned(web))
        #expect(pending.knownServices(after: [db]) == [cache])
        // A failed pass's assignments are older than these: they are not ordered with them.
        var later = PendingChanges()
        later.add(.assigned(db))
        later.merge(pending)
        #expect(later.serviceList && later.knownServices(after: [db]) == nil)
        pending.add(.serviceList)
        #expect(pending.knownServices(after: [db]) == nil)
    }
}
