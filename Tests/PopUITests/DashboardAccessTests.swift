import BrowserTestSupport
import Foundation
import PopState
import PopTestSupport
import TestProcesses
import Testing
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Who gets into the dashboard, what a forged request gets, and that secrets never reach the page, its event stream
/// or the server's output: requests written byte for byte against a real `pop ui`.
@Suite("Dashboard access")
struct DashboardAccessTests {
    static let password = "correct-horse-battery-staple-42"
    static let secret = "s3cr3t-option-VALUE-7"
    static let newSecret = "n3w-secret-VALUE-9"

    /// A template with a secret option.
    static func writeSecretPlugin(in folder: URL) throws -> URL {
        let plugin = folder.appendingPathComponent("plugins/vault")
        try FileManager.default.createDirectory(at: plugin, withIntermediateDirectories: true)
        try """
            name: vault
            description: A service with a secret option.
            options:
              token:
                type: string
                required: true
                secret: true
                help: the secret
              level:
                type: int
                default: 1
                help: a plain option
            command: ["sleep", "100000"]
            environment:
              TOKEN: "{token}"

            """.write(to: plugin.appendingPathComponent("vault.yaml"), atomically: true, encoding: .utf8)
        return plugin.deletingLastPathComponent()
    }

    @Test("a protected namespace: its user and password, checked against its digest; CSRF and Host checks; no secret anywhere; no watch without a page")
    func protectedNamespace() async throws {
        try await withZooKeeperServer { server in
            let pop = try PopRunner(
                label: "ui-auth",
                environment: [
                    "POP_HOST": server.connectString, "POP_AUTH": "ops:\(Self.password)", "POP_MACHINE_ID": "m1",
                ])
            defer { pop.removeFolder() }
            let plugins = try Self.writeSecretPlugin(in: pop.scratch)
            try await pop.run(["init", "--auth", "ops"]).check()
            try await pop.run(["add", "vault", "--template", "vault", "--token", Self.secret], extraEnvironment: ["POP_PLUGIN_PATH": plugins.path]).check()
            try await pop.run(["deploy", "vault", "m1"]).check()

            let argv = [try PopRunner.binary(), "ui", "--listen", "127.0.0.1:0"]
            let output = try await DashboardProcess.with(argv, environment: pop.processEnvironment(), scratch: pop.scratch) {
                dashboard in
                #expect(dashboard.token == nil, "a protected namespace needs no token: \(dashboard.address)")
                let port = dashboard.port
                let origin = dashboard.origin

                let anonymous = try await RawHTTP.request(port: port, path: "/api/session")
                #expect(anonymous.status == 200)
                #expect(anonymous.body.contains(#""loginWith":"password""#))
                #expect(anonymous.body.contains(#""authenticated":false"#))
                #expect(try await RawHTTP.request(port: port, path: "/api/events").status == 401)
                #expect(try await RawHTTP.request(port: port, path: "/api/services/vault").status == 401)

                let json = ["Content-Type": "application/json", "Origin": origin]
                let wrong = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/login", headers: json,
                    body: #"{"user":"ops","password":"wrong-password"}"#)
                #expect(wrong.status == 401)
                #expect(wrong.header("Set-Cookie") == nil)
                let otherUser = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/login", headers: json,
                    body: #"{"user":"eve","password":"\#(Self.password)"}"#)
                #expect(otherUser.status == 401)
                let crossSiteLogin = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/login",
                    headers: ["Content-Type": "application/json", "Origin": "http://evil.example"],
                    body: #"{"user":"ops","password":"\#(Self.password)"}"#)
                #expect(crossSiteLogin.status == 403)

                let login = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/login", headers: json,
                    body: #"{"user":"ops","password":"\#(Self.password)"}"#)
                #expect(login.status == 200)
                let setCookie = try #require(login.header("Set-Cookie"))
                #expect(setCookie.contains("HttpOnly"))
                #expect(setCookie.contains("SameSite=Strict"))
                let cookie = String(setCookie.prefix { $0 != ";" })
                let csrf = try #require(Self.field("csrf", in: login.body))
                let session = ["Cookie": cookie]

                // The service view: the secret's value is not there, only that it is set.
                let details = try await RawHTTP.request(port: port, path: "/api/services/vault", headers: session)
                #expect(details.status == 200)
                #expect(details.body.contains(#""name":"token""#))
                #expect(!details.body.contains(Self.secret))

                // The event stream: the grid, no option values at all.
                let stream = try await RawHTTP.request(
                    port: port, path: "/api/events", headers: session, until: "\"problems\"", timeout: 15)
                #expect(stream.status == 200)
                #expect(stream.body.contains("event: fleet"))
                #expect(stream.body.contains(#""name":"vault""#))
                #expect(!stream.body.contains(Self.secret))

                // State changes need this page's origin and the session's CSRF token; the Host must be the dashboard's.
                let restartPath = "/api/services/vault/restart"
                let noToken = try await RawHTTP.request(
                    port: port, method: "POST", path: restartPath, headers: session.merging(json) { $1 }, body: "{}")
                #expect(noToken.status == 403)
                let crossSite = try await RawHTTP.request(
                    port: port, method: "POST", path: restartPath,
                    headers: session.merging(["Content-Type": "application/json", "Origin": "http://127.0.0.1:1", "X-Pop-CSRF": csrf]) { $1 },
                    body: "{}")
                #expect(crossSite.status == 403)
                let rebound = try await RawHTTP.request(
                    port: port, path: "/api/session", headers: session.merging(["Host": "evil.example:\(port)"]) { $1 })
                #expect(rebound.status == 421)
                let withToken = session.merging(json) { $1 }.merging(["X-Pop-CSRF": csrf]) { $1 }
                let restarted = try await RawHTTP.request(
                    port: port, method: "POST", path: restartPath, headers: withToken, body: "{}")
                #expect(restarted.status == 200, "\(restarted)")

                // A new secret: the plan says only that it changes; applying it changes the signature.
                let before = try await pop.statusReport().service("vault")
                let plan = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/services/vault/plan", headers: withToken,
                    body: #"{"options":{"token":"\#(Self.newSecret)","level":"2"}}"#)
                #expect(plan.status == 200, "\(plan)")
                #expect(plan.body.contains(#""secret":true"#))
                #expect(plan.body.contains(#""after":"2""#))
                #expect(plan.body.contains(#""restarts":["m1"]"#))
                #expect(!plan.body.contains(Self.newSecret) && !plan.body.contains(Self.secret))
                let version = try #require(before?.version)
                let stale = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/services/vault/config", headers: withToken,
                    body: #"{"options":{"token":"\#(Self.newSecret)"},"version":\#(version + 1)}"#)
                #expect(stale.status == 409)
                #expect(try await pop.statusReport().service("vault")?.signature == before?.signature)
                let applied = try await RawHTTP.request(
                    port: port, method: "POST", path: "/api/services/vault/config", headers: withToken,
                    body: #"{"options":{"token":"\#(Self.newSecret)","level":"2"},"version":\#(version)}"#)
                #expect(applied.status == 200, "\(applied)")
                #expect(!applied.body.contains(Self.newSecret))
                let after = try await pop.statusReport().service("vault")
                #expect(after?.signature != before?.signature)
                #expect(after?.version == version + 1)

                // A page open: the dashboard watches the namespace; none open: it holds no watch on the server.
                let (watching, _) = try await RawHTTP.whileOpen(port: port, path: "/api/events", headers: session) {
                    try await Self.watchCount(server, until: { $0 > 0 })
                }
                #expect(watching, "no watch while a page is open")
                #expect(try await Self.watchCount(server, until: { $0 == 0 }), "the dashboard still holds watches with no page open")
                // A service's events followed: the reader watches the service's placements and the machines while
                // the view is open, and nothing once it closes.
                let (following, followed) = try await RawHTTP.whileOpen(
                    port: port, path: "/api/services/vault/events", headers: session, until: "event: journal"
                ) {
                    try await Self.watchCount(server, until: { $0 > 0 })
                }
                #expect(following, "no watch while the events are followed")
                #expect(followed.status == 200 && followed.body.contains("event: journal"), "\(followed)")
                #expect(
                    try await Self.watchCount(server, until: { $0 == 0 }), "the events' reader still holds watches with no view open")
                return try String(contentsOf: dashboard.errorLog, encoding: .utf8)
            }
            #expect(!output.contains(Self.secret) && !output.contains(Self.newSecret) && !output.contains(Self.password))
        }
    }

    @Test("an open namespace: a random token printed at start, and nothing without it; an instance's log and events")
    func openNamespace() async throws {
        let pop = try PopRunner(label: "ui-token", environment: ["POP_MACHINE_ID": "m1"])
        defer { pop.removeFolder() }
        try await pop.run(["init"]).check()
        try await pop.run([
            "add", "talker", "--template", "command", "--command",
            "python3 -u -c \"import time; print('first-line'); time.sleep(100000)\"",
        ]).check()
        try await pop.run(["deploy", "talker", "m1"]).check()
        // The agent, stopping its instance when it exits.
        let agentLog = pop.scratch.appendingPathComponent("agent.log")
        let agent = try ChildProcess(
            [try PopRunner.binary(), "fg", "--stop-instances-on-exit"], environment: pop.processEnvironment(),
            stdout: .file(agentLog), stderr: .file(agentLog))
        defer { agent.signalGroup(SIGKILL) }
        try await pop.run(["status", "talker", "--wait", "running", "--timeout", "60"]).check()

        let argv = [try PopRunner.binary(), "ui", "--listen", "127.0.0.1:0"]
        try await DashboardProcess.with(argv, environment: pop.processEnvironment(), scratch: pop.scratch) { dashboard in
            let token = try #require(dashboard.token)
            #expect(token.count == 32)
            let port = dashboard.port
            let json = ["Content-Type": "application/json", "Origin": dashboard.origin]
            let session = try await RawHTTP.request(port: port, path: "/api/session")
            #expect(session.body.contains(#""loginWith":"token""#))
            #expect(try await RawHTTP.request(port: port, path: "/api/services/talker/machines/m1/log").status == 401)
            let wrong = try await RawHTTP.request(
                port: port, method: "POST", path: "/api/login", headers: json, body: #"{"token":"\#(String(token.reversed()))"}"#)
            #expect(wrong.status == 401)
            let right = try await RawHTTP.request(
                port: port, method: "POST", path: "/api/login", headers: json, body: #"{"token":"\#(token)"}"#)
            #expect(right.status == 200)
            let setCookie = try #require(right.header("Set-Cookie"))
            #expect(setCookie.hasPrefix("pop_ui_\(port)="))
            let cookie = ["Cookie": String(setCookie.prefix { $0 != ";" })]

            // The instance's log, from its journal: its last lines at once, as `pop logs --json` objects.
            let log = try await RawHTTP.request(
                port: port, path: "/api/services/talker/machines/m1/log", headers: cookie, until: "first-line", timeout: 30)
            #expect(log.status == 200)
            #expect(log.header("Content-Type")?.hasPrefix("text/event-stream") == true)
            #expect(log.body.contains("event: journal") && log.body.contains(#""line":"first-line""#))
            #expect(log.body.contains(#""stream":"stdout""#) && log.body.contains(#""machine":"m1""#))
            // Its lifecycle events: it started.
            let events = try await RawHTTP.request(
                port: port, path: "/api/services/talker/events", headers: cookie, until: #""kind":"started""#, timeout: 30)
            #expect(events.status == 200 && events.body.contains(#""kind":"started""#), "\(events.body)")
            // A machine the service is not deployed on has no log of it: a clear refusal.
            let elsewhere = try await RawHTTP.request(port: port, path: "/api/services/talker/machines/m9/log", headers: cookie)
            #expect(elsewhere.status == 404 && elsewhere.body.contains("not deployed on machine m9"), "\(elsewhere.body)")
            let unknown = try await RawHTTP.request(port: port, path: "/api/services/nothing/events", headers: cookie)
            #expect(unknown.status == 404, "\(unknown.body)")
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(30)) == 0)
    }

    @Test("bad --listen values are refused with exit 2 before anything starts; a port in use exits 4")
    func badListen() async throws {
        let pop = try PopRunner(label: "ui-listen")
        defer { pop.removeFolder() }
        for value in ["127.0.0.1", "127.0.0.1:70000", ":8686", "127.0.0.1:http"] {
            let result = try await pop.run(["ui", "--listen", value])
            #expect(result.status == PopExitCode.usage.rawValue, "\(value): \(result)")
            #expect(result.stderr.contains("--listen"))
        }
        try await pop.run(["init"]).check()
        let taken = try await RawHTTP.listening { port in try await pop.run(["ui", "--listen", "127.0.0.1:\(port)"]) }
        #expect(taken.status == PopExitCode.conflict.rawValue, "\(taken)")
        #expect(taken.stderr.contains("in use"))
    }

    /// The value of a string field in a JSON object's text.
    static func field(_ name: String, in json: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        return object[name] as? String
    }

    /// Waits until the server's watch count satisfies `done`; the server offers no event for that, so its count is
    /// read again every 100 ms, for at most 10 s.
    static func watchCount(_ server: ZooKeeperServer, until done: (Int) -> Bool) async throws -> Bool {
        // The server tells no one when its watch count changes: asked every 100 ms, for up to a minute.
        for _ in 0..<600 {
            // A loaded machine's JVM may take seconds to answer; the loop's minute is the bound.
            let mntr = try await server.fourLetterWord("mntr", timeout: .seconds(20))
            let line = mntr.split(separator: "\n").first { $0.hasPrefix("zk_watch_count") }
            if let count = line.flatMap({ Int($0.split(separator: "\t").last ?? "") }), done(count) { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}
