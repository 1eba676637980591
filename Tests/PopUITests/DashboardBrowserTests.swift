import BrowserTestSupport
import Foundation
import Hummingbird
import PopState
import PopTestSupport
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The dashboard in a real browser (Debian's headless Chromium, driven through its DevTools protocol) against a
/// 3-machine cluster with two services.
@Suite("Dashboard in a browser", .serialized)
struct DashboardBrowserTests {
    @Test(
        "the grid, CPU and memory, a killed instance coming back, restart from the page, another machine's log live, the events, no JavaScript error, both screen sizes"
    )
    func grid() async throws {
        try await withCluster { cluster in
            let plugin = try ClusterTestService.writePlugin(in: cluster.folder)
            let events = cluster.folder.appendingPathComponent("events.log")
            try await cluster.startAgents()
            try await cluster.popOK(
                ["add", "web", "--template", ClusterTestService.templateName, "--events", events.path],
                environment: [("POP_PLUGIN_PATH", plugin.deletingLastPathComponent().path)])
            // worker prints each line appended to its input file: a line written while the page looks at its log.
            let input = cluster.folder.appendingPathComponent("worker-input")
            try Data().write(to: input)
            let command = "tail -n 0 -F \(input.path)"
            try await cluster.popOK(["add", "worker", "--template", "command", "--command", command])
            try await cluster.popOK(["deploy", "web", "m1", "m2", "m3"])
            try await cluster.popOK(["deploy", "worker", "m1", "m2"])
            try await cluster.popOK(["status", "--wait", "running", "--timeout", "60"], timeout: .seconds(90))

            let artifacts = try TestArtifacts.folder()
            print("dashboard screenshots: \(artifacts.path)")
            let argv = cluster.operatorMachine.argv([cluster.popBinary, "ui", "--listen", "127.0.0.1:0"])
            try await DashboardProcess.with(argv, environment: CommandRunner.baseEnvironment(), scratch: cluster.folder) {
                dashboard in
                try await Chromium.with { browser in
                    let page = try await browser.newPage(width: 1280, height: 800)
                    try await page.navigate(dashboard.address)
                    // 5 instances, all running.
                    try await page.waitFor(
                        "document.querySelectorAll('#grid td.state-running').length === 5", timeout: .seconds(60))

                    // The grid is what `pop status` says.
                    let report = try StatusReport.decode(try await cluster.popOK(["status", "--json"]).stdout)
                    let grid = try await page.evaluate(GridReader.script)
                    #expect(GridReader.cells(grid) == GridReader.cells(report))
                    let shape = grid as? [String: Any]
                    #expect(shape?["machines"] as? [String] == ["m1", "m2", "m3"])
                    #expect(shape?["caption"] as? String == "Instances: services × machines")
                    #expect(shape?["columnHeaders"] as? Int == 4)
                    #expect(shape?["rowHeaders"] as? Int == 2)
                    // CPU and memory from the agents: every running cell shows figures, not dashes.
                    let sampled = try await page.waitFor(
                        """
                        Array.from(document.querySelectorAll('#grid td.state-running .cell-button'))
                          .every((c) => /CPU \\d+\\.\\d% · mem \\d/.test(c.textContent))
                        """,
                        then: "document.querySelector('.cell-button[data-service=\"web\"][data-machine=\"m3\"]').textContent",
                        timeout: .seconds(60)) as? String
                    print("web on m3 as shown: \(sampled ?? "?")")
                    try await page.screenshot(to: artifacts.appendingPathComponent("grid-1280x800.png"))

                    // A killed instance goes through a state other than running and runs again, without a reload.
                    let before = report.service("web")?.instances.first { $0.machine == "m2" }?.pid
                    let killedPID = try #require(before)
                    try await page.evaluate(
                        """
                        (() => { window.seenStates = []; window.pageLoads = performance.getEntriesByType("navigation").length;
                          const cell = () => document.querySelector('.cell-button[data-service="web"][data-machine="m2"]');
                          new MutationObserver(() => { const c = cell(); if (c) window.seenStates.push(c.querySelector(".state").textContent); })
                            .observe(document.getElementById("grid"), { subtree: true, childList: true, characterData: true });
                          window.markerBeforeKill = true; })()
                        """)
                    let killed = ContinuousClock.now
                    #expect(kill(killedPID, SIGKILL) == 0)
                    let back = try await page.waitFor(
                        """
                        (() => { const c = document.querySelector('.cell-button[data-service="web"][data-machine="m2"]');
                          return c && c.querySelector(".state").textContent === "running"
                            && c.querySelector(".pid").textContent !== "\(killedPID)"; })()
                        """, then: "window.seenStates", timeout: .seconds(10))
                    let elapsed = ContinuousClock.now - killed
                    let states = back as? [String] ?? []
                    print("web on m2 after SIGKILL: \(states) in \(elapsed)")
                    #expect(states.contains { $0 != "running" }, "the page never showed the instance as not running: \(states)")
                    #expect(states.last == "running")
                    #expect(try await page.evaluate("window.markerBeforeKill === true") as? Bool == true, "the page reloaded")

                    // Restart from the page, with the keyboard to open the instance and the mouse to confirm.
                    let workerBefore = try #require(
                        try await self.pid(cluster, service: "worker", machine: "m1"))
                    try await page.evaluate(
                        "document.querySelector('.cell-button[data-service=\"worker\"][data-machine=\"m1\"]').focus()")
                    try await page.press("Enter", keyCode: 13)
                    try await page.waitFor(
                        "document.activeElement && document.activeElement.id === 'details-title'", timeout: .seconds(30))
                    try await page.click("#restart-instance")
                    try await page.waitFor("document.getElementById('confirm').open", timeout: .seconds(30))
                    #expect(try await self.pid(cluster, service: "worker", machine: "m1") == workerBefore)
                    try await page.click("#confirm-ok")
                    let shown = try await page.waitFor(
                        """
                        (() => { const c = document.querySelector('.cell-button[data-service="worker"][data-machine="m1"]');
                          return c && c.querySelector(".state").textContent === "running"
                            && c.querySelector(".pid").textContent !== "\(workerBefore)"; })()
                        """,
                        then: "document.querySelector('.cell-button[data-service=\"worker\"][data-machine=\"m1\"] .pid').textContent",
                        timeout: .seconds(30)) as? String
                    let workerAfter = try await self.pid(cluster, service: "worker", machine: "m1")
                    #expect(workerAfter != workerBefore)
                    #expect(shown == workerAfter.map(String.init))
                    try await page.screenshot(to: artifacts.appendingPathComponent("instance-1280x800.png"))

                    // Another machine's instance: its log through its agent's endpoint, with a line written after
                    // the view opened.
                    try await page.evaluate("document.getElementById('details-close').click()")
                    try await page.click(
                        ".cell-button[data-service=\"worker\"][data-machine=\"m2\"]",
                        until: "document.getElementById('details-title').textContent === 'worker on m2'", timeout: .seconds(30))
                    try await page.waitFor(
                        "(document.getElementById('log-note') || {}).textContent === 'Following the log as it is written.'",
                        timeout: .seconds(30))
                    let marker = "written-after-open-\(UInt32.random(in: 0...UInt32.max))"
                    let handle = try FileHandle(forWritingTo: input)
                    try handle.seekToEnd()
                    try handle.write(contentsOf: Data((marker + "\n").utf8))
                    try handle.close()
                    let logText: String
                    do {
                        logText = try await page.waitFor(
                            "document.getElementById('log').textContent.includes('\(marker)')",
                            then: "document.getElementById('log').textContent", timeout: .seconds(60)) as? String ?? ""
                    } catch {
                        // What the page and `pop logs` say, to tell where the line stopped.
                        let note = try? await page.evaluate("(document.getElementById('log-note') || {}).textContent")
                        let shown = try? await page.evaluate("(document.getElementById('log') || {}).textContent")
                        let logs = try? await cluster.pop(["logs", "worker", "-n", "5"])
                        let errorText = (try? String(contentsOf: dashboard.errorLog, encoding: .utf8)) ?? ""
                        let errorTail = errorText.split(separator: "\n").suffix(20).joined(separator: "\n")
                        Issue.record(
                            """
                            The line written to worker's input never showed: \(error)
                            log note: \(note.map { "\($0)" } ?? "?")
                            log shown: \(shown.map { "\($0)" } ?? "?")
                            pop logs worker -n 5: \(logs.map { "\($0.stdout)\($0.stderr)" } ?? "?")
                            pop ui's standard error: \(errorTail)
                            """)
                        throw error
                    }
                    #expect(logText.contains(marker))

                    // The service's events, from every machine: the restart of worker on m1 with its reason.
                    try await page.click("#open-service")
                    let restartEvent = try await page.waitFor(
                        """
                        Array.from(document.querySelectorAll('#events li')).some((e) =>
                          e.dataset.machine === 'm1' && e.dataset.kind === 'restarted' && e.dataset.reason === 'manual')
                        """,
                        then: """
                        Array.from(document.querySelectorAll('#events li')).find((e) =>
                          e.dataset.kind === 'restarted' && e.dataset.reason === 'manual').textContent
                        """, timeout: .seconds(30)) as? String ?? ""
                    #expect(restartEvent.contains("m1: restarted (manual)"), "\(restartEvent)")

                    // A page of another origin on the same host (the same *site*, so the SameSite cookie is sent)
                    // submits a form that would restart worker on m1: refused, and nothing restarts.
                    let refused = try await ForgedPage.serve(target: dashboard.origin + "/api/services/worker/restart") {
                        attacker in
                        let forged = try await browser.newPage(width: 800, height: 600)
                        try await forged.navigate(attacker)
                        let text = try await forged.waitFor(
                            "document.body && document.body.innerText.includes('cross-site')",
                            then: "document.body.innerText", timeout: .seconds(30)) as? String
                        try await forged.close()
                        return text ?? ""
                    }
                    #expect(refused.contains("Refused a cross-site request"), "\(refused)")
                    #expect(try await self.pid(cluster, service: "worker", machine: "m1") == workerAfter)

                    // A configuration change from the service view: the plan first, then Apply and Confirm; every
                    // instance of the service restarts into the new signature.
                    let oldSignature = try #require(try await self.signature(cluster, service: "worker"))
                    let view = try await page.click(
                        ".service-button[data-service=\"worker\"]",
                        until: "document.getElementById('option-command') !== null || document.querySelector('#details-body .error') !== null",
                        then: "document.getElementById('details-body').innerText", timeout: .seconds(60)) as? String ?? ""
                    try #require(try await page.evaluate("document.getElementById('option-command') !== null") as? Bool == true, "\(view)")
                    let newCommand = command + " -s 2"
                    // The plan area says what came of the submission: the plan, an error, or that nothing changed,
                    // which can only mean the view was drawn anew between the typing and the submission: then the
                    // value is entered and submitted again. A failure shows what the plan area said.
                    var plan = ""
                    for _ in 1...3 {
                        try await page.waitFor("document.getElementById('option-command') !== null", timeout: .seconds(60))
                        try await page.evaluate(
                            "(() => { document.getElementById('option-command').value = '\(newCommand)'; document.getElementById('plan').innerHTML = ''; })()")
                        try await page.click("#config-form button[type=submit]")
                        plan = try await page.waitFor(
                            "document.getElementById('plan') !== null && document.getElementById('plan').innerText.trim() !== ''",
                            then: "document.getElementById('plan').innerText", timeout: .seconds(60)) as? String ?? ""
                        if !plan.contains("Nothing is changed yet") { break }
                    }
                    try #require(try await page.evaluate("document.getElementById('apply-plan') !== null") as? Bool == true, "\(plan)")
                    #expect(plan.contains("--command") && plan.contains(command) && plan.contains(newCommand), "\(plan)")
                    #expect(plan.contains("2 instance(s) restart") && plan.contains("m1, m2"), "\(plan)")
                    #expect(try await self.signature(cluster, service: "worker") == oldSignature, "the plan changed something")
                    try await page.click("#apply-plan")
                    try await page.waitFor("document.getElementById('confirm').open", timeout: .seconds(30))
                    try await page.click("#confirm-ok")
                    let newSignature = try await page.waitFor(
                        """
                        (() => { const row = document.querySelector('tr[data-service="worker"]');
                          return row && !row.querySelector('.template').textContent.includes('\(oldSignature.prefix(8))')
                            && row.querySelectorAll('td.state-running').length === 2 && row.querySelectorAll('.old-mark').length === 0; })()
                        """, then: "document.querySelector('tr[data-service=\"worker\"] .template').textContent",
                        timeout: .seconds(60)) as? String ?? ""
                    let stored = try #require(try await self.signature(cluster, service: "worker"))
                    #expect(stored != oldSignature)
                    #expect(newSignature.contains(String(stored.prefix(8))), "\(newSignature) vs \(stored)")
                    // The change is the newest entry of the service's history, with the command it stands for and
                    // what it changed.
                    try await page.evaluate("document.getElementById('details-close').click()")
                    let history = try await page.click(
                        ".service-button[data-service=\"worker\"]",
                        until: "document.querySelector('#history tbody tr') !== null",
                        then: "Array.from(document.querySelectorAll('#history tbody tr')).map((row) => row.innerText)",
                        timeout: .seconds(60)) as? [String] ?? []
                    #expect(history.count >= 2, "\(history)")
                    let newest = history.first ?? ""
                    #expect(newest.contains("(current)") && newest.contains("(from the dashboard)"), "\(history)")
                    #expect(newest.contains("--command \(newCommand)") && newest.contains(String(stored.prefix(8))), "\(history)")
                    #expect(history.dropFirst().allSatisfy { !$0.contains("(current)") }, "\(history)")
                    try await page.screenshot(to: artifacts.appendingPathComponent("service-1280x800.png"))
                    try await page.evaluate("document.getElementById('details-close').click()")
                    try await page.evaluate(
                        "document.querySelector('.cell-button[data-service=\"worker\"][data-machine=\"m1\"]').click()")

                    // A phone: the page fits the width (the grid scrolls in its own region), the text stays readable,
                    // with the instance view open and with the grid alone.
                    try await page.setViewport(width: 390, height: 844, mobile: true)
                    try await self.expectFits(page, width: 390)
                    try await page.screenshot(to: artifacts.appendingPathComponent("instance-390x844.png"))
                    try await page.evaluate("document.getElementById('details-close').click()")
                    try await page.navigate(dashboard.origin + "/")
                    try await page.waitFor(
                        "document.querySelectorAll('#grid td.state-running').length === 5", timeout: .seconds(60))
                    try await self.expectFits(page, width: 390)
                    try await page.screenshot(to: artifacts.appendingPathComponent("grid-390x844.png"))

                    #expect(
                        page.javaScriptErrors == [],
                        "JavaScript errors: \(page.javaScriptErrors); loads the host's network changes interrupted: \(page.loadsInterruptedByNetworkChanges)")
                }
            }
        }
    }

    /// Serves, on another port of 127.0.0.1, a page that posts a form to `target` as soon as it loads: what a hostile
    /// page in the operator's browser could do.
    enum ForgedPage {
        static func serve<T: Sendable>(target: String, _ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
            let html = """
                <!doctype html><html><body>
                <form id="f" method="post" action="\(target)" enctype="text/plain">
                <input type="hidden" name='{"machines":null,"x":"' value='"}'></form>
                <script>document.getElementById("f").submit();</script></body></html>
                """
            let router = Router()
            router.get("/") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
            }
            let (ports, portContinuation) = AsyncStream<Int>.makeStream()
            let application = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { channel in
                    portContinuation.yield(channel.localAddress?.port ?? 0)
                    portContinuation.finish()
                })
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await application.run()
                    return nil
                }
                defer { group.cancelAll() }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { throw ClusterError("the forged page's server did not start") }
                return try await body("http://127.0.0.1:\(port)/")
            }
        }
    }

    /// The page is no wider than `width` and its cells' text is at least 12 px.
    private func expectFits(_ page: BrowserPage, width: Int) async throws {
        let fit = try await page.evaluate(
            """
            ({ page: document.documentElement.scrollWidth,
               font: parseFloat(getComputedStyle(document.querySelector('.cell-button')).fontSize),
               wide: Array.from(document.querySelectorAll("body *")).filter((e) => e.getBoundingClientRect().right > \(width + 1)
                 && !e.closest(".grid-scroll")).map((e) => e.tagName + "#" + e.id + "." + e.className).slice(0, 10) })
            """) as? [String: Any]
        #expect((fit?["page"] as? Int ?? 9999) <= width, "wider than \(width) px: \(fit?["wide"] ?? "?")")
        #expect((fit?["font"] as? Double ?? 0) >= 12)
    }

    private func signature(_ cluster: Cluster, service: String) async throws -> String? {
        try StatusReport.decode(try await cluster.popOK(["status", "--json"]).stdout).service(service)?.signature
    }

    private func pid(_ cluster: Cluster, service: String, machine: String) async throws -> Int32? {
        let report = try StatusReport.decode(try await cluster.popOK(["status", "--json"]).stdout)
        return report.service(service)?.instances.first { $0.machine == machine }?.pid
    }
}
