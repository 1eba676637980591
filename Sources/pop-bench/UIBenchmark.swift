import ArgumentParser
import BrowserTestSupport
import Foundation
import PopState
import PopTestSupport
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// `pop-bench ui`: how fast the dashboard is interactive in a real browser with 100 services on 10 machines, and how
/// fast a change reaches the page, beside supervisord's own web page with as many programs, in the same browser.
struct UIBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Measure the dashboard in headless Chromium: interactive time with 100 services × 10 machines, and change → page latency.",
        discussion: """
            Spawns the release `pop` binary (scripts/build-release.sh) on a fresh embedded store, \
            plays the agents of the machines (it registers them and publishes a running instance of every service on \
            every machine: 1,000 cells), runs `pop ui`, and loads the page in Debian's chromium. Interactive is the \
            page's own `pop-interactive` performance mark: the grid is drawn from the first event and its buttons \
            work. The peer is supervisord's web page (inet_http_server) with as many programs, loaded in the same \
            browser (its load event: the page is drawn by the server).
            """)

    @Option(help: "Services.")
    var services = 100

    @Option(help: "Machines.")
    var machines = 10

    @Option(help: "Timed page loads (after 3 untimed ones), and timed changes.")
    var runs = 30

    @Option(help: "The pop binary (default: POP_BINARY, else the one beside this benchmark).")
    var pop: String?

    @Flag(help: "Skip supervisord's page.")
    var skipSupervisor = false

    mutating func run() async throws {
        let popPath = try pop ?? PopBinary.locate()
        let folder = URL(fileURLWithPath: NSTemporaryDirectory() + "pop-bench-ui-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        print("pop: \(popPath)")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(services) services × \(machines) machines; \(runs) runs")
        print("load average before (1, 5, 15 min): \(ProcFile.loadAverage())")

        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("POP_") }
        environment["POP_HOME"] = folder.appendingPathComponent("home").path
        environment["NO_COLOR"] = "1"
        let machineIDs = try (1...machines).map { try MachineID("m\($0)") }
        try await Spawn.check([popPath, "init"], environment: environment)
        for index in 0..<services {
            try await Spawn.check(
                [popPath, "add", "service-\(index)", "--template", "command", "--command", "sleep 1000"],
                environment: environment)
            try await Spawn.check(
                [popPath, "deploy", "service-\(index)"] + machineIDs.map(\.rawValue), environment: environment)
        }
        let namespace = try await openNamespace(
            try StoreConfiguration(host: nil, prefix: nil, environment: environment, home: try PopHome(environment: environment)))
        do {
            try await playAgents(namespace, machineIDs)
            let (pop, peer) = try await measure(popPath, environment: environment, namespace: namespace, folder: folder)
            await namespace.store.close()
            report(pop: pop, peer: peer)
            print("load average after (1, 5, 15 min): \(ProcFile.loadAverage())")
        } catch {
            await namespace.store.close()
            throw error
        }
    }

    /// Registers every machine and publishes a running instance of every service on it, as the agents would.
    private func playAgents(_ namespace: PopNamespace, _ machineIDs: [MachineID]) async throws {
        let started = Date()
        for machine in machineIDs {
            try await namespace.registerMachine(
                MachineRecord(
                    id: machine, hostname: "bench-\(machine)", addresses: ["127.0.0.1"], agentVersion: "bench",
                    started: started, agentPID: getpid()))
        }
        for index in 0..<services {
            let name = try ServiceName("service-\(index)")
            let spec = try await namespace.service(name).spec
            for (number, machine) in machineIDs.enumerated() {
                try await namespace.publishInstance(
                    InstanceRecord(
                        machine: machine, pid: Int32(100_000 + index * machines + number), signature: spec.signature,
                        state: .running, since: started, started: started),
                    service: name)
            }
        }
    }

    struct Figures {
        var interactive: Timings
        var domContentLoaded: Timings
        var change: Timings
        var firstEventBytes: Int
    }

    private func measure(
        _ popPath: String, environment: [String: String], namespace: PopNamespace, folder: URL
    ) async throws -> (Figures, Timings?) {
        let cells = services * machines
        let runs = runs
        let skipSupervisor = skipSupervisor
        let services = services
        return try await DashboardProcess.with(
            [popPath, "ui", "--listen", "127.0.0.1:0"], environment: environment, scratch: folder
        ) { dashboard in
            try await Chromium.with { browser in
                let page = try await browser.newPage(width: 1280, height: 800)
                // Logs in (the token in the address), and checks the grid.
                try await page.navigate(dashboard.address)
                try await page.waitFor(
                    "document.querySelectorAll('#grid td.state-running').length === \(cells)", timeout: .seconds(60))
                let bytes = try await page.evaluate(
                    "JSON.stringify(state.fleet).length"
                ) as? Int ?? 0
                var interactive: [Double] = []
                var loaded: [Double] = []
                var phases: [String: [Double]] = [:]
                for run in 0..<(runs + 3) {
                    try await page.navigate(dashboard.origin + "/")
                    let marks = try await page.waitFor(
                        "performance.getEntriesByName('pop-interactive').length > 0",
                        then: """
                            [performance.getEntriesByName('pop-interactive')[0].startTime,
                             performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
                             document.querySelectorAll('#grid td.state-running').length]
                            """, timeout: .seconds(30)) as? [Double] ?? []
                    guard marks.count == 3, Int(marks[2]) == cells else {
                        throw ValidationError("the page showed \(marks) instead of \(cells) running cells")
                    }
                    if run >= 3 {
                        interactive.append(marks[0])
                        loaded.append(marks[1])
                        let split = try await page.evaluate(
                            """
                            (() => { const n = performance.getEntriesByType('navigation')[0];
                              const mark = (name) => (performance.getEntriesByName(name)[0] || {}).startTime || 0;
                              return { "1 page received": n.responseEnd, "2 DOMContentLoaded": n.domContentLoadedEventEnd,
                                "3 session read": mark('pop-session'), "4 first event received": mark('pop-fleet-received'),
                                "5 grid drawn": mark('pop-interactive') }; })()
                            """) as? [String: Double] ?? [:]
                        for (phase, value) in split { phases[phase, default: []].append(value) }
                    }
                }
                // A change in the store until the page shows it: one instance gets a new pid.
                var changes: [Double] = []
                let name = try ServiceName("service-\(services / 2)")
                let spec = try await namespace.service(name).spec
                let machine = try MachineID("m1")
                for run in 0..<(runs + 3) {
                    let pid = Int32(900_000 + run)
                    let start = ContinuousClock.now
                    try await namespace.publishInstance(
                        InstanceRecord(
                            machine: machine, pid: pid, signature: spec.signature, state: .running, since: Date(),
                            started: Date()),
                        service: name)
                    try await page.waitFor(
                        "document.querySelector('.cell-button[data-service=\"\(name)\"][data-machine=\"m1\"] .pid').textContent === '\(pid)'",
                        timeout: .seconds(10))
                    if run >= 3 { changes.append(StoreBenchmark.seconds(ContinuousClock.now - start) * 1000) }
                }
                if !page.javaScriptErrors.isEmpty {
                    throw ValidationError("the page reported JavaScript errors: \(page.javaScriptErrors)")
                }
                print("where the time goes (p50, ms since navigation start):")
                for (phase, values) in phases.sorted(by: { $0.key < $1.key }) {
                    print("  \(phase.dropFirst(2)): " + String(format: "%.1f", Timings(milliseconds: values.sorted()).percentile(0.5)))
                }
                let pop = Figures(
                    interactive: Timings(milliseconds: interactive.sorted()),
                    domContentLoaded: Timings(milliseconds: loaded.sorted()),
                    change: Timings(milliseconds: changes.sorted()), firstEventBytes: bytes)
                let peer = skipSupervisor ? nil : try await SupervisorPage.measure(
                    browser: browser, programs: services, runs: runs, folder: folder.appendingPathComponent("supervisor"))
                return (pop, peer)
            }
        }
    }

    private func report(pop: Figures, peer: Timings?) {
        print("")
        print("measure                                   p50        p90        max")
        let line = { (label: String, timings: Timings) in
            print(
                label.padding(toLength: 36, withPad: " ", startingAt: 0)
                    + [0.5, 0.9, 1.0].map { String(format: "%8.1f ms", timings.percentile($0)) }.joined(separator: " "))
        }
        line("pop ui: interactive (1,000 cells)", pop.interactive)
        line("pop ui: DOMContentLoaded", pop.domContentLoaded)
        line("pop ui: store change → page", pop.change)
        if let peer { line("supervisord page: load event", peer) }
        print("the grid's model: \(pop.firstEventBytes) bytes of JSON")
        let p50 = pop.interactive.percentile(0.5)
        print("pop ui interactive p50 " + String(format: "%.1f", p50) + " ms, goal < 200 ms: " + (p50 < 200 ? "met" : "NOT met"))
        if let peer {
            print("supervisord's page p50 / pop ui p50: " + String(format: "%.2f", peer.percentile(0.5) / p50) + "×")
        }
    }
}

/// supervisord's web page (inet_http_server) with as many programs, loaded in the same browser: the peer.
enum SupervisorPage {
    static func measure(browser: Browser, programs: Int, runs: Int, folder: URL) async throws -> Timings {
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("logs"), withIntermediateDirectories: true)
        let python = try await Spawn.output(
            ["/usr/bin/env", "python3", "-c", "import sys, supervisor; print(sys.executable)"],
            environment: ProcessInfo.processInfo.environment
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        let port = try LoopbackHTTP.freePort()
        var config = """
            [inet_http_server]
            port=127.0.0.1:\(port)

            [supervisord]
            logfile=\(folder.path)/supervisord.log
            pidfile=\(folder.path)/supervisord.pid
            childlogdir=\(folder.path)/logs
            nodaemon=true

            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

            """
        for index in 0..<programs {
            config += "\n[program:service-\(index)]\ncommand=sleep 1000\nstartsecs=0\nstdout_logfile=\(folder.path)/logs/\(index).log\nredirect_stderr=true\n"
        }
        let configFile = folder.appendingPathComponent("supervisord.conf")
        try config.write(to: configFile, atomically: true, encoding: .utf8)
        let output = folder.appendingPathComponent("supervisord.out")
        let supervisord = try ChildProcess(
            [python, "-m", "supervisor.supervisord", "-c", configFile.path], environment: ProcessInfo.processInfo.environment,
            stdout: .file(output, truncate: true), stderr: .file(output))
        do {
            let page = try await browser.newPage(width: 1280, height: 800)
            // supervisord's page is drawn by the server and never pushed: load it until every program runs (bounded).
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                if (try? await page.navigate("http://127.0.0.1:\(port)/")) != nil,
                    let count = try await page.evaluate("document.querySelectorAll('td.status span.statusrunning').length") as? Int,
                    count == programs
                {
                    break
                }
                guard ContinuousClock.now < deadline else {
                    throw ValidationError("supervisord's page did not show \(programs) running programs within 60 s")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            var loads: [Double] = []
            for run in 0..<(runs + 3) {
                try await page.navigate("http://127.0.0.1:\(port)/")
                let load = try await page.evaluate("performance.getEntriesByType('navigation')[0].loadEventStart") as? Double ?? 0
                if run >= 3 { loads.append(load) }
            }
            try await page.close()
            await Spawn.stopTree(supervisord)
            return Timings(milliseconds: loads.sorted())
        } catch {
            await Spawn.stopTree(supervisord)
            throw error
        }
    }
}
