#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PopAgent
import PopState
import Testing

/// `pop run` on the agent side: requests in the store, run on the instance, results written back.
@Suite(.serialized) struct AgentTaskTests {
    func request(
        _ task: String, _ arguments: [String] = [], machines: [MachineID], maxParallel: Int? = nil,
        timeoutMilliseconds: Int = 120_000
    ) -> TaskRequest {
        // An agent skips a request whose requester has stopped waiting (its time limit counted from its creation), so
        // a request must leave a loaded machine's agent time to notice it.
        TaskRequest(
            task: task, arguments: arguments, machines: machines, maxParallel: maxParallel, created: Date(),
            timeoutMilliseconds: timeoutMilliseconds)
    }

    @Test func aTaskRunsWithItsArgumentsAsSeparateElements() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web", greeting: "hi there"))
                _ = try await fixture.waitForRunning(web)

                let show = try await fixture.namespace.createTask(
                    web, request("show", ["a b", "$(id)", "c;d"], machines: [fixture.machine]))
                let shown = try await fixture.waitForResult(web, show)
                #expect(shown.state == .succeeded)
                #expect(shown.exitCode == 0)
                #expect(shown.output == "a b\n$(id)\nc;d\n")
                #expect(shown.finished != nil)

                let env = try await fixture.namespace.createTask(web, request("env", machines: [fixture.machine]))
                let environment = try await fixture.waitForResult(web, env)
                #expect(environment.output == "web\n\(fixture.machine)\nhi there\n")

                let fail = try await fixture.namespace.createTask(web, request("fail", machines: [fixture.machine]))
                let failed = try await fixture.waitForResult(web, fail)
                #expect(failed.state == .failed)
                #expect(failed.exitCode == 1)

                let unknown = try await fixture.namespace.createTask(web, request("nope", machines: [fixture.machine]))
                let refused = try await fixture.waitForResult(web, unknown)
                #expect(refused.state == .failed)
                #expect(refused.exitCode == nil)
                #expect(refused.error?.contains("no task 'nope'") == true)
                #expect(refused.error?.contains("show, env, fail, install") == true)
            }
        }
    }

    @Test func aRecordingTaskAppendsPackagesWithoutRestarting() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                let before = try await fixture.waitForRunning(web)

                let install = try await fixture.namespace.createTask(
                    web, request("install", ["lxml==5.3.0", "requests"], machines: [fixture.machine]))
                let result = try await fixture.waitForResult(web, install)
                #expect(result.state == .succeeded)
                #expect(result.output == "installing lxml==5.3.0\ninstalling requests\n")
                #expect(try await fixture.namespace.packages(web) == ["lxml==5.3.0", "requests"])

                // An option-looking argument is refused before anything runs.
                let sneaky = try await fixture.namespace.createTask(
                    web, request("install", ["--index-url=http://example.invalid"], machines: [fixture.machine]))
                let refused = try await fixture.waitForResult(web, sneaky)
                #expect(refused.state == .failed)
                #expect(try await fixture.namespace.packages(web) == ["lxml==5.3.0", "requests"])

                // A later change proves the agent has seen the packages node change; the instance was never restarted.
                let after = try #require(try await fixture.record(web))
                #expect(after.pid == before.pid)
                #expect(after.state == .running)
            }
        }
    }

    @Test func aTaskForAnotherMachineIsLeftAlone() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let web = try await fixture.deploy(try AgentFixture.spec("web"))
                _ = try await fixture.waitForRunning(web)
                let other = try MachineID("m2")
                let id = try await fixture.namespace.createTask(web, request("show", ["x"], machines: [other, fixture.machine]))
                let mine = try await fixture.waitForResult(web, id)
                #expect(mine.state == .succeeded)
                #expect(try await fixture.namespace.taskResults(web, id)[other] == nil)
            }
        }
    }

    @Test func oneMachineAtATime() async throws {
        let second = try MachineID("m2")
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
            try await fixture.withAgent(machine: second) { _ in
                    let web = try await fixture.deploy(
                        try AgentFixture.spec("web"), on: [fixture.machine, second])
                    _ = try await fixture.waitForRunning(web)
                    _ = try await fixture.waitForRunning(web, machine: second)
                    // The first machine in the request's order runs first; the second waits for it to finish.
                    let id = try await fixture.namespace.createTask(
                        web,
                        TaskRequest(
                            task: "show", arguments: ["x"], machines: [second, fixture.machine], maxParallel: 1, created: Date(),
                            timeoutMilliseconds: 120_000))
                    let first = try await fixture.waitForResult(web, id, machine: second)
                    let then = try await fixture.waitForResult(web, id)
                    #expect(first.state == .succeeded && then.state == .succeeded)
                    #expect(then.started >= (try #require(first.finished)))
                }
            }
        }
    }

    @Test func aTimeoutKillsTheTask() async throws {
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                var spec = try AgentFixture.spec("web")
                spec.template.tasks.append(TemplateTask(name: "hang", command: ["sleep", "{args}"]))
                let web = try await fixture.deploy(spec)
                _ = try await fixture.waitForRunning(web)
                let clock = ContinuousClock()
                let start = clock.now
                let id = try await fixture.namespace.createTask(
                    web, request("hang", ["300"], machines: [fixture.machine], timeoutMilliseconds: 8_000))
                let result = try await fixture.waitForResult(web, id)
                #expect(result.state == .failed)
                #expect(result.error?.contains("time limit") == true)
                // The result comes once the task's output ends, which takes the killed group: long before the 300 s
                // the task would sleep.
                #expect(clock.now - start < .seconds(200))
            }
        }
    }
}
