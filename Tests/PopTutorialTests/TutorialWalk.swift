import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

/// One walk through the seed's tutorial and Scripts sections on one store, as a user would type it, checking what
/// each command prints and what really happens on the machine (an HTTP GET of Plone's page, process ids, ports).
struct TutorialWalk {
    /// A short name for the store, used in folder names and the report.
    let label: String
    /// `[]` for the embedded store, `["--host", "127.0.0.1:PORT"]` for ZooKeeper.
    let storeArguments: [String]
    /// How pop names the store in its output ("embedded store", "ZooKeeper 127.0.0.1:PORT").
    let storeDescription: String

    /// A small package that is not part of Plone's pinned set, so `install` really installs something.
    static let extraPackage = (name: "toml", version: "0.10.2")

    /// Runs the walk; whatever happens, ends every process it left behind (and waits until they are gone).
    func walk() async throws {
        let unique = UUID().uuidString.prefix(8).lowercased()
        let pop = try PopRunner(
            label: "tutorial-\(label)", environment: ["POP_MACHINE_ID": "tutorial-\(label)-\(unique)"],
            argumentsAfterCommand: storeArguments)
        var timings = Timings(label: label)
        do {
            try await steps(pop, &timings)
        } catch {
            let killed = await LeftoverProcesses.kill(home: pop.home.path)
            print("tutorial[\(label)]: failed; killed leftover processes \(killed); files kept in \(pop.base.path)")
            throw error
        }
        let leftovers = await LeftoverProcesses.kill(home: pop.home.path)
        #expect(leftovers.isEmpty, "undeploy and stop should leave no process behind, found \(leftovers)")
        print(timings.report)
        pop.removeFolder()
    }

    private func steps(_ pop: PopRunner, _ timings: inout Timings) async throws {
        // The template's default port is 8080; use it whenever it is free (it is on CI), else say which port.
        let defaultPortFree = LoopbackHTTP.isFree(port: 8080)
        let port = defaultPortFree ? 8080 : try LoopbackHTTP.freePort()
        let movedPort = try LoopbackHTTP.freePort(excluding: [port])
        if !defaultPortFree { print("tutorial[\(label)]: port 8080 is taken here; Plone uses \(port)") }

        // 1. pop init
        let initialized = try await pop.require("init")
        #expect(initialized.stdout.contains("initialized namespace /pop"), "\(initialized)")
        #expect(initialized.stdout.contains("store: \(storeDescription)"), "\(initialized)")

        // 2. pop add plone --template plone4; pop describe plone4; pop list
        try await pop.require(["add", "plone", "--template", "plone4"] + (defaultPortFree ? [] : ["--port", "\(port)"]))
        let described = try await pop.require("describe", "plone4")
        let portLine = described.stdout.split(separator: "\n").first { $0.contains("--port") }
        #expect(portLine?.contains("8080") == true, "describe shows the default port 8080:\n\(described)")
        for word in ["Plone", "--admin-user", "install", "packages"] {
            #expect(described.stdout.contains(word), "describe mentions \(word):\n\(described)")
        }
        let listed = try await pop.require("list")
        for template in ["command", "python", "plone", "plone4"] {
            #expect(
                listed.stdout.split(separator: "\n").contains { $0.split(separator: " ").first == Substring(template) },
                "list shows \(template):\n\(listed)")
        }
        let configured = try await pop.require("config", "plone")
        let configuredPort = configured.stdout.split(separator: "\n").first { $0.hasPrefix("--port") }
        #expect(configuredPort?.split(separator: " ").dropFirst().first == Substring("\(port)"), "\(configured)")

        // 3. pop start; 4. pop deploy plone
        let started = try await pop.require("start")
        #expect(started.stdout.contains("agent for machine \(pop.machine ?? "") started"), "\(started)")
        let deployed = ContinuousClock.now
        try await pop.require("deploy", "plone")

        // Plone answers with its welcome page once pip has installed it and Zope has started.
        let waited = try await pop.run(["status", "plone", "--wait", "running", "--timeout", "720"])
        timings.record("pip install and start of Plone", since: deployed)
        if waited.status != 0 { try await failWithLogs(pop, waited) }
        let page = try await LoopbackHTTP.get(port: port)
        #expect(page.status == 200)
        try #require(page.body.contains("Plone is up and running"), "the page on port \(port): \(page.body.prefix(600))")
        let running = try await instance(pop)
        try #require(running.state == "running" && running.pid != nil, "\(running)")

        // Scripts: pop run plone install PKG; pop run plone packages
        let (name, version) = Self.extraPackage
        let installStarted = Date()
        var mark = ContinuousClock.now
        let installed = try await pop.require("run", "plone", "install", "\(name)==\(version)")
        timings.record("pop run plone install \(name)==\(version)", since: mark)
        #expect(installed.stdout.contains("Successfully installed \(name)-\(version)"), "\(installed)")
        #expect(installed.stdout.contains("install: 1 of 1 machine succeeded"), "\(installed)")

        mark = ContinuousClock.now
        let packages = try await pop.require("run", "plone", "packages")
        timings.record("pop run plone packages", since: mark)
        let row = try #require(
            packages.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
                .first { $0.first == Substring(name) },
            "packages lists \(name):\n\(packages)")
        // NAME VERSION DATE TIME SOURCE...: the version, when it was installed (UTC), and where it came from.
        try #require(row.count >= 5, "\(row)")
        #expect(row[1] == Substring(version))
        let installedAt = try #require(Self.utcTime(row[2] + " " + row[3]), "install time in \(row)")
        #expect(
            installedAt >= installStarted.addingTimeInterval(-5) && installedAt <= Date().addingTimeInterval(5),
            "\(name) was installed at \(installedAt), during the install task (started \(installStarted))")
        #expect(row[4] == "index" && row.count >= 6 && row[5].hasPrefix("http"), "source of \(name): \(row)")
        #expect(
            packages.stdout.split(separator: "\n").contains { $0.hasPrefix("Products.CMFPlone ") && $0.contains("6.1.0") },
            "packages lists Products.CMFPlone 6.1.0:\n\(packages.stdout.suffix(2000))")

        // The install did not restart Plone: the same process, no restart counted, the same signature.
        let afterInstall = try await instance(pop)
        #expect(afterInstall.pid == running.pid, "installing a package restarted the instance")
        #expect(afterInstall.started == running.started && afterInstall.restarts == running.restarts)
        #expect(afterInstall.signature == running.signature && afterInstall.state == "running")

        // What a user gets wrong: an unknown task lists the tasks; a shell-looking argument is one literal requirement.
        let unknown = try await pop.run(["run", "plone", "nosuchtask"])
        #expect(unknown.status == 3, "\(unknown)")
        #expect(unknown.stderr.contains("no task 'nosuchtask'") && unknown.stderr.contains("install, packages"), "\(unknown)")
        let canary = pop.base.appendingPathComponent("canary")
        let hostile = "x; touch \(canary.path)"
        let refused = try await pop.run(["run", "plone", "install", hostile])
        #expect(refused.status == 1, "\(refused)")
        // pip itself refuses it: what follows the ';' is read as an environment marker, and is not a valid one.
        #expect(refused.stdout.contains("Invalid"), "pip refused the requirement:\n\(refused)")
        #expect(refused.stdout.contains("touch \(canary.path)"), "pip got the argument as is:\n\(refused)")
        #expect(!FileManager.default.fileExists(atPath: canary.path), "nothing was executed")
        #expect(try await instance(pop).pid == running.pid)

        // pop config plone --port OTHER: a new signature, Plone moves, the old port is closed.
        mark = ContinuousClock.now
        let changed = try await pop.require("config", "plone", "--port", "\(movedPort)")
        let oldSignature = try #require(running.signature)
        #expect(changed.stdout.contains("signature \(oldSignature.prefix(8)) → "), "\(changed)")
        let rewaited = try await pop.run(["status", "plone", "--wait", "running", "--timeout", "300"])
        timings.record("pop config plone --port \(movedPort) until running", since: mark)
        if rewaited.status != 0 { try await failWithLogs(pop, rewaited) }
        let moved = try await instance(pop)
        #expect(moved.signature != nil && moved.signature != oldSignature && moved.current == true, "\(moved)")
        #expect(moved.pid != running.pid, "\(moved)")
        let movedPage = try await LoopbackHTTP.get(port: movedPort)
        #expect(movedPage.status == 200 && movedPage.body.contains("Plone is up and running"), "\(movedPage.body.prefix(600))")
        #expect(!LoopbackHTTP.accepts(port: port), "nothing listens on the old port \(port) any more")
        // The package recorded by `install` is in the environment after the restart too.
        let kept = try await pop.require("run", "plone", "packages", name)
        #expect(kept.stdout.contains(version), "\(kept)")

        // The instance's output, each line with its machine and stream: the server said it started, twice.
        let logs = try await pop.require("logs", "plone", "-n", "100000")
        #expect(logs.stdout.components(separatedBy: " out| Starting server in PID").count - 1 >= 2, "\(logs.stdout.suffix(3000))")
        let setup = try await pop.require("logs", "plone", "--setup", "-n", "100000")
        #expect(setup.stdout.contains("Successfully installed"), "the setup log shows pip's work:\n\(setup)")
        #expect(setup.stdout.contains("Instance created in"), "the setup log shows the instance step:\n\(setup)")
        #expect(
            setup.stdout.contains("Instance configuration updated in") && setup.stdout.contains("(port \(movedPort))"),
            "the instance step ran again for the new port:\n\(setup)")
        // pip ran once: neither a second setup step at the first start nor the restart went over Plone again.
        #expect(
            !setup.stdout.contains("Requirement already satisfied: Products.CMFPlone"),
            "pip ran again over every requirement:\n\(setup.stdout.suffix(3000))")

        // The end: take Plone off this machine, wait for its process to exit, stop the agent.
        let pid = try #require(moved.pid)
        try await pop.require("undeploy", "plone")
        #expect(await Processes.waitForExit([pid], timeout: .seconds(60)), "Plone (pid \(pid)) stopped after undeploy")
        let stopped = try await pop.require("stop")
        #expect(stopped.stdout.contains("stopped"), "\(stopped)")
    }

    /// This machine's instance of plone, as `pop status --json` reports it.
    private func instance(_ pop: PopRunner) async throws -> StatusReport.Instance {
        let status = try await pop.statusReport(["plone"])
        let service = try #require(status.service("plone"), "\(status)")
        return try #require(service.instances.first { $0.machine == pop.machine }, "\(status)")
    }

    /// Ends the test with the failed wait's output and the end of the instance's setup and output logs.
    private func failWithLogs(_ pop: PopRunner, _ waited: CommandResult) async throws -> Never {
        let setup = try await pop.run(["logs", "plone", "--setup", "-n", "60"])
        let output = try await pop.run(["logs", "plone", "-n", "60"])
        let agent = (try? String(contentsOf: pop.home.appendingPathComponent("machines/\(pop.machine ?? "")/agent.log"), encoding: .utf8)) ?? ""
        Issue.record("\(waited)\n--- setup log\n\(setup.stdout)\(setup.stderr)\n--- instance log\n\(output.stdout)\n--- agent log\n\(agent.suffix(4000))")
        throw TutorialFailure(description: "Plone did not reach running on the \(label) store")
    }

    /// `2025-01-31 12:34:56` in UTC.
    static func utcTime(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.date(from: text)
    }
}

/// A walk that cannot go on.
struct TutorialFailure: Error, CustomStringConvertible {
    var description: String
}
