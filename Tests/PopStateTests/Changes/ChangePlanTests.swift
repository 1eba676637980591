import Testing
@testable import PopState

@Suite
struct ChangePlanTests {
    static let template = ResolvedTemplate(
        name: "web",
        options: [
            TemplateOption(name: "port", type: .port, defaultValue: .int(8080)),
            TemplateOption(name: "token", type: .string, defaultValue: .string(""), secret: true),
        ],
        command: ["serve", "{port}"])

    static func spec(port: Int = 8080, token: String = "") throws -> ServiceSpec {
        ServiceSpec(
            name: try ServiceName("web"), template: template, options: ["port": .int(port), "token": .string(token)])
    }

    static func machines(_ ids: String...) throws -> Set<MachineID> { Set(try ids.map(MachineID.init)) }

    @Test func aConfigurationChangeRestartsEveryMachineInBatchesWithTheSecretOnlyMarkedChanged() throws {
        let placed = try Self.machines("m1", "m2", "m3")
        let before = ServiceState(spec: try Self.spec(), placed: placed, rollout: Rollout(maxParallel: 2))
        var after = before
        after.spec = try Self.spec(port: 8081, token: "s3cret")
        let plan = ChangePlan(service: try ServiceName("web"), version: 4, before: before, after: after, running: placed)
        let why = "options changed: --port 8080 → 8081, --token changed"
        #expect(
            plan
                == ChangePlan.expected(
                    version: 4, before: try Self.spec(), after: try Self.spec(port: 8081, token: "s3cret"),
                    options: [
                        .init(option: "port", secret: false, before: "8080", after: "8081"),
                        .init(option: "token", secret: true, before: nil, after: nil),
                    ],
                    restarts: [("m1", why), ("m2", why), ("m3", why)], batches: [["m1", "m2"], ["m3"]], runningNow: 3,
                    lowestRunning: 1))
        #expect(plan.changesAnything)
        #expect(!"\(plan)".contains("s3cret"))
    }

    @Test func theLowestNumberRunningCountsOnlyRunningInstancesInTheWorstBatch() throws {
        let placed = try Self.machines("m1", "m2", "m3", "m4")
        let before = ServiceState(spec: try Self.spec(), placed: placed, rollout: Rollout(maxParallel: 1))
        var after = before
        after.spec = try Self.spec(port: 9000)
        // m4 is not running (its agent is down): it does not count, and the worst batch takes one running instance.
        let plan = ChangePlan(
            service: try ServiceName("web"), version: 0, before: before, after: after,
            running: try Self.machines("m1", "m2", "m3"))
        #expect(plan.batches == [["m1"], ["m2"], ["m3"], ["m4"]])
        #expect(plan.runningNow == 3)
        #expect(plan.lowestRunning == 2)

        var allAtOnce = after
        allAtOnce.rollout = nil
        let unpaced = ChangePlan(
            service: try ServiceName("web"), version: 0, before: ServiceState(spec: try Self.spec(), placed: placed),
            after: allAtOnce, running: placed)
        #expect(unpaced.batches == [["m1", "m2", "m3", "m4"]])

        var canary = after
        canary.rollout = Rollout(maxParallel: 2, canary: 1)
        let canaried = ChangePlan(
            service: try ServiceName("web"), version: 0, before: ServiceState(spec: try Self.spec(), placed: placed),
            after: canary, running: placed)
        #expect(canaried.batches == [["m1"], ["m2", "m3"], ["m4"]])
        #expect(canaried.lowestRunning == 2)
        #expect(unpaced.lowestRunning == 0)
    }

    @Test func anUnchangedSpecChangesNothing() throws {
        let state = ServiceState(spec: try Self.spec(), placed: try Self.machines("m1"))
        let plan = ChangePlan(service: try ServiceName("web"), version: 2, before: state, after: state, running: [])
        #expect(!plan.changesAnything)
        #expect(plan.restarts.isEmpty && plan.batches.isEmpty && plan.withoutRestart.isEmpty)
    }

    @Test func aRolloutOrHistorySettingNeedsNoRestart() throws {
        let placed = try Self.machines("m1", "m2")
        let before = ServiceState(spec: try Self.spec(), placed: placed, historyLimit: 20)
        var after = before
        after.rollout = Rollout(maxParallel: 1)
        after.historyLimit = 5
        let plan = ChangePlan(service: try ServiceName("web"), version: 2, before: before, after: after, running: placed)
        #expect(plan.restarts.isEmpty)
        #expect(
            plan.withoutRestart == [
                "configuration changes roll out 1 at a time (was all at once)", "history keeps the last 5 specs",
            ])
        #expect(plan.lowestRunning == 2)
        #expect(plan.changesAnything)
    }

    @Test func deployUndeployRestartAndRemove() throws {
        let name = try ServiceName("web")
        let before = ServiceState(spec: try Self.spec(), placed: try Self.machines("m1", "m2"))
        let running = try Self.machines("m1", "m2")

        var deployed = before
        deployed.placed.formUnion(try Self.machines("m3"))
        let deploy = ChangePlan(service: name, version: 1, before: before, after: deployed, running: running)
        #expect(deploy.starts == [.init(machine: "m3", reason: "deployed")])
        #expect(deploy.restarts.isEmpty && deploy.stops.isEmpty)
        #expect(deploy.lowestRunning == 2)

        var undeployed = before
        undeployed.placed = try Self.machines("m1")
        let undeploy = ChangePlan(service: name, version: 1, before: before, after: undeployed, running: running)
        #expect(undeploy.stops == [.init(machine: "m2", reason: "undeployed")])
        #expect(undeploy.lowestRunning == 1)

        var restarted = before
        restarted.restartAsked = try Self.machines("m1", "m2")
        let restart = ChangePlan(service: name, version: 1, before: before, after: restarted, running: running)
        #expect(restart.restarts.map(\.reason) == ["restart asked for", "restart asked for"])
        #expect(restart.batches == [["m1", "m2"]])
        #expect(restart.lowestRunning == 0)

        let remove = ChangePlan(service: name, version: 1, before: before, after: ServiceState(spec: nil), running: running)
        #expect(remove.stops.map(\.reason) == ["service removed", "service removed"])
        #expect(remove.signatureAfter == nil)
        #expect(remove.lowestRunning == 0)

        let add = ChangePlan(
            service: name, version: nil, before: ServiceState(spec: nil), after: ServiceState(spec: try Self.spec()),
            running: [])
        #expect(add.withoutRestart == ["service web added from template web"])
        #expect(add.starts.isEmpty && add.changesAnything)
    }

    @Test func scalingByCountNamesWhatTheSchedulerDoes() throws {
        let name = try ServiceName("web")
        let placed = try Self.machines("m1", "m2", "m3")
        let before = ServiceState(spec: try Self.spec(), placed: placed, count: 3)
        var after = before
        after.count = 1
        let plan = ChangePlan(service: name, version: 1, before: before, after: after, running: placed)
        #expect(plan.withoutRestart == ["count 3 → 1: the scheduler stops 2"])
        #expect(plan.lowestRunning == 1)
    }
}

extension ChangePlan {
    /// A plan written out field by field, for comparing with `==`.
    static func expected(
        version: Int32?, before: ServiceSpec, after: ServiceSpec, options: [ConfigurationPlan.OptionChange],
        restarts: [(String, String)], batches: [[String]], runningNow: Int, lowestRunning: Int
    ) -> ChangePlan {
        var plan = ChangePlan(
            service: before.name, version: version, before: ServiceState(spec: before), after: ServiceState(spec: before),
            running: [])
        plan.signatureAfter = after.signature.hex
        plan.options = options
        plan.restarts = restarts.map { InstanceChange(machine: $0.0, reason: $0.1) }
        plan.batches = batches
        plan.runningNow = runningNow
        plan.lowestRunning = lowestRunning
        return plan
    }
}
