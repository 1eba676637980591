import Foundation
import PopTestExpectations
import PopTestSupport
import PopState
import TestProcesses
import Testing

/// Every command of the seed and what operators expect, run as the built binary against both stores.
@Suite("pop commands, end to end")
struct CommandTests {
    @Test("init creates the namespace, refuses a second time, and --force resets it", arguments: StoreKind.allCases)
    func initRefusesThenResets(kind: StoreKind) async throws {
        try await CLIFixture.with(kind, initialized: false) { fixture in
            let pop = fixture.pop
            let created = try await pop.ok("init")
            #expect(created.stdout.contains("initialized namespace /pop"))
            #expect(created.stdout.contains("store: \(kind.label)"), "every change names its store:\n\(created)")

            try await fixture.refuses(4, ["init"], mentioning: ["already exists", "--force"])

            try await pop.ok("add", "web", "--template", "kit")
            #expect(try await fixture.dump().contains("/pop/services/web"))
            let reset = try await pop.ok("init", "--force")
            #expect(reset.stdout.contains("(reset)"))
            let dump = try await fixture.dump()
            #expect(!dump.contains("/pop/services/web"), "init --force keeps a service:\n\(dump)")
            #expect(dump.contains("/pop  v0  {\"layout\":2}"), "\(dump)")

            let json = try await pop.ok("init", "--force", "--json")
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: String]
            #expect(object?["prefix"] == "/pop")
            #expect(object?["store"]?.hasPrefix(kind.label) == true)
        }
    }

    @Test("list and describe show the templates, their plugins and their options")
    func listAndDescribe() async throws {
        try await CLIFixture.with(.embedded, initialized: false) { fixture in
            let pop = fixture.pop
            let list = try await pop.ok("list")
            for template in ["command", "python", "plone", "kit"] {
                #expect(list.stdout.contains("\n\(template) "), "pop list lacks \(template):\n\(list)")
            }
            #expect(list.stdout.hasPrefix("TEMPLATE"))
            #expect(list.stdout.contains("builtin"))

            // Manifests that cannot be used are reported with their file, line and field, and left out.
            #expect(list.stderr.contains("broken.yaml:2: command: expected a list of arguments"), "\(list)")
            #expect(list.stderr.contains("typo.yaml:2: unknown field 'comand'; did you mean 'command'?"), "\(list)")
            #expect(list.stderr.contains("garbage.yaml") && list.stderr.contains("not valid YAML"), "\(list)")
            #expect(!list.stdout.contains("broken") && !list.stdout.contains("typo"))

            let listed = try await pop.ok("list", "--json")
            let rows = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: String]]
            #expect(rows?.first { $0["template"] == "kit" }?["plugin"] == "kit")
            #expect(rows?.first { $0["template"] == "plone" }?["plugin"] == "builtin")

            let plone = try await pop.ok("describe", "plone")
            #expect(plone.stdout.contains("--port"))
            #expect(plone.stdout.contains("8080"), "the seed: plone serves on 8080 by default\n\(plone)")
            #expect(plone.stdout.contains("install"), "plone inherits the python base's tasks\n\(plone)")
            #expect(!plone.stdout.contains("--command"), "plone removes the command option\n\(plone)")

            // The seed's tutorial names the template plone4.
            let plone4 = try await pop.ok("describe", "plone4")
            #expect(plone4.stdout.contains("--port") && plone4.stdout.contains("8080"))

            let kit = try await pop.ok("describe", "kit")
            #expect(kit.stdout.contains("enum(fast|safe)"))
            #expect(kit.stdout.contains("int 1-16"))
            #expect(kit.stdout.contains("echo"))

            let command = try await pop.ok("describe", "command", "--json")
            let object = try JSONSerialization.jsonObject(with: Data(command.stdout.utf8)) as? [String: Any]
            #expect(object?["name"] as? String == "command")
        }
    }

    @Test("add checks options against the template; config shows them and changes them with a new signature",
        arguments: StoreKind.allCases)
    func addAndConfig(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            // The seed's tutorial, word for word: pop add plone --template plone4 (port 8080 unless --port).
            try await pop.ok("add", "tutorial", "--template", "plone4")
            #expect(try await Self.config(pop, "tutorial").options["port"] == .int(8080))

            let added = try await pop.ok("add", "plone", "--template", "plone", "--port", "8081")
            #expect(added.stdout.contains("added service plone from template plone"))
            #expect(added.stdout.contains("store: \(kind.label)"))

            let shown = try await pop.ok("config", "plone")
            #expect(shown.stdout.contains("template plone"))
            #expect(shown.stdout.contains("--port"))
            #expect(shown.stdout.contains("8081"))
            let before = try await Self.config(pop, "plone")
            #expect(before.options["port"] == .int(8081))
            #expect(before.options["admin-password"] == .string("********") || before.options["admin-password"] == nil)

            try await pop.ok("add", "web", "--template", "kit", "--workers=4", "--mode", "safe", "--debug", "--token", "s3cret")
            let web = try await Self.config(pop, "web")
            #expect(web.options["workers"] == .int(4))
            #expect(web.options["mode"] == .string("safe"))
            #expect(web.options["debug"] == .bool(true))
            #expect(web.options["token"] == .string("********"), "a secret is never shown")
            let plain = try await pop.ok("config", "web")
            #expect(!plain.output.contains("s3cret"), "a secret is never shown:\n\(plain)")

            let changed = try await pop.ok("config", "plone", "--port", "8082")
            #expect(changed.stdout.contains("changed --port of plone"))
            let after = try await Self.config(pop, "plone")
            #expect(after.options["port"] == .int(8082))
            #expect(after.signature != before.signature, "a changed option gives a new signature")
            #expect(after.version == before.version + 1)
            #expect(changed.stdout.contains(String(before.signature.prefix(8))))
            #expect(changed.stdout.contains(String(after.signature.prefix(8))))

            let again = try await pop.ok("config", "plone", "--port", "8082")
            #expect(again.stdout.contains("nothing changed"))
            #expect(try await Self.config(pop, "plone").version == after.version)

            // The value stored is the value given: a command line with shell syntax is only text.
            let marker = FileManager.default.temporaryDirectory.appendingPathComponent("pwned-\(UUID().uuidString)").path
            let line = "touch \(marker); $(touch \(marker)) `touch \(marker)` | touch \(marker) && touch \(marker)"
            try await pop.ok("add", "literal", "--template", "command", "--command", line)
            #expect(try await Self.config(pop, "literal").options["command"] == .string(line))
            #expect(!FileManager.default.fileExists(atPath: marker), "a shell ran an option's value")
        }
    }

    @Test("deploy places a service (this machine by default), warns of unknown machines; undeploy and remove",
        arguments: StoreKind.allCases)
    func deployUndeployRemove(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")

            let deployed = try await pop.ok("deploy", "web")
            #expect(deployed.stdout.contains("deployed web to \(fixture.localMachine)"))
            #expect(deployed.stderr.contains("warning:"), "no agent runs on the local machine yet:\n\(deployed)")
            #expect(deployed.stderr.contains(fixture.localMachine))
            #expect(deployed.stdout.contains("store: \(kind.label)"))

            let store = try await fixture.openStore()
            let namespace = try PopNamespace(store: store)
            try await CLIFixture.register("m-registered", in: namespace)
            let quiet = try await pop.ok("deploy", "web", "m-registered", "m-unseen")
            #expect(!quiet.stderr.contains("m-registered"), "a registered machine needs no warning:\n\(quiet)")
            #expect(quiet.stderr.contains("m-unseen"), "an unseen machine gets a warning:\n\(quiet)")

            let twice = try await pop.ok("deploy", "web", "m-registered")
            #expect(twice.stderr.contains("already deployed"))
            let placed = try await namespace.placements(ServiceName("web"))
            #expect(Set(placed.keys.map(\.rawValue)) == [fixture.localMachine, "m-registered", "m-unseen"])

            try await pop.ok("undeploy", "web")
            try await fixture.refuses(3, ["undeploy", "web"], mentioning: ["not deployed to", fixture.localMachine])
            try await pop.ok("undeploy", "web", "m-unseen")
            #expect(try await namespace.placements(ServiceName("web")).keys.map(\.rawValue) == ["m-registered"])
            let all = try await pop.ok("undeploy", "web", "--all")
            #expect(all.stdout.contains("undeployed web from m-registered"))
            #expect(try await namespace.placements(ServiceName("web")).isEmpty)

            try await pop.ok("deploy", "web", "m-registered")
            let removed = try await pop.ok("remove", "web")
            #expect(removed.stdout.contains("removed web"))
            #expect(try await namespace.services().isEmpty)
            try await fixture.refuses(3, ["remove", "web"], mentioning: ["no service named 'web'"])
            await store.close()
        }
    }

    @Test("restart bumps each placement's restart generation", arguments: StoreKind.allCases)
    func restartBumpsGeneration(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1", "m2")
            let name = try ServiceName("web")
            let generations = { @Sendable () async throws -> [String: Int] in
                try await fixture.withNamespace { namespace in
                    Dictionary(uniqueKeysWithValues: try await namespace.placements(name).map { ($0.key.rawValue, $0.value.restartGeneration) })
                }
            }
            let start = try await generations()
            let all = try await pop.ok("restart", "web")
            #expect(all.stdout.contains("m1") && all.stdout.contains("m2"))
            let afterAll = try await generations()
            #expect(afterAll["m1"] == start["m1"]! + 1)
            #expect(afterAll["m2"] == start["m2"]! + 1)

            try await pop.ok("restart", "web", "m2")
            let afterOne = try await generations()
            #expect(afterOne["m1"] == afterAll["m1"])
            #expect(afterOne["m2"] == afterAll["m2"]! + 1)

            try await pop.ok("add", "idle", "--template", "kit")
            let nothing = try await pop.ok("restart", "idle")
            #expect(nothing.stdout.contains("not deployed anywhere"))
        }
    }

    @Test("status shows each instance's state, PID, signature, uptime, restarts and last error; --json too",
        arguments: StoreKind.allCases)
    func status(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            let empty = try await pop.ok("status")
            #expect(empty.stdout.contains("No services"))

            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("add", "idle", "--template", "kit")
            try await pop.ok("deploy", "web", "m-up", "m-down", "m-broken")

            let store = try await fixture.openStore()
            let namespace = try PopNamespace(store: store)
            let name = try ServiceName("web")
            let signature = try await namespace.service(name).spec.signature
            try await CLIFixture.register("m-up", hostname: "alpha", in: namespace)
            try await CLIFixture.register("m-broken", hostname: "beta", in: namespace)
            try await namespace.publishInstance(
                InstanceRecord(
                    machine: MachineID("m-up"), pid: 31337, signature: signature, state: .running, since: Date(),
                    started: Date(timeIntervalSinceNow: -200), restarts: 2),
                service: name)
            try await namespace.publishInstance(
                InstanceRecord(
                    machine: MachineID("m-broken"), pid: nil, signature: signature, state: .fatal, since: Date(),
                    restarts: 5, lastError: "exited with status 3"),
                service: name)

            let table = try await pop.ok("status")
            let lines = table.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("SERVICE") == true)
            let up = try #require(lines.first { $0.contains("m-up") }, "\(table)")
            #expect(up.contains("running") && up.contains("31337") && up.contains(signature.short) && up.contains("3m"))
            #expect(up.contains("alpha"))
            let broken = try #require(lines.first { $0.contains("m-broken") })
            #expect(broken.contains("fatal") && broken.contains("exited with status 3") && broken.contains("5"))
            let down = try #require(lines.first { $0.contains("m-down") })
            #expect(down.contains("down") && down.contains("unknown"), "a machine without an agent is down:\n\(table)")
            #expect(lines.contains { $0.hasPrefix("idle") && $0.contains("not deployed") })
            #expect(table.stdout.contains("2 services, 3 instances"))
            #expect(table.stdout.contains("2 machines up"))
            #expect(table.stdout.contains(kind.label))

            let only = try await pop.ok("status", "idle")
            #expect(!only.stdout.contains("m-up"))

            var report = try Self.statusJSON(try await pop.ok("status", "--json"))
            #expect(report.services.map(\.service) == ["idle", "web"])
            var rows = Dictionary(uniqueKeysWithValues: report.services[1].instances.map { ($0.machine, $0) })
            #expect(rows["m-up"]?.state == "running")
            #expect(rows["m-up"]?.pid == 31337)
            #expect(rows["m-up"]?.current == true)
            #expect(rows["m-up"]?.restarts == 2)
            #expect(rows["m-down"]?.machineUp == false)
            #expect(rows["m-down"]?.state == "unknown")
            #expect(rows["m-broken"]?.lastError == "exited with status 3")
            #expect(report.machinesUp == ["m-broken", "m-up"])

            // A configuration change makes every instance's signature stale until the agents restart them.
            try await pop.ok("config", "web", "--workers", "3")
            let stale = try await pop.ok("status", "web")
            #expect(stale.stdout.contains(signature.short + "*"), "a stale signature is marked:\n\(stale)")
            report = try Self.statusJSON(try await pop.ok("status", "web", "--json"))
            rows = Dictionary(uniqueKeysWithValues: report.services[0].instances.map { ($0.machine, $0) })
            #expect(rows["m-up"]?.current == false)
            #expect(report.services[0].signature != signature.hex)
            await store.close()
        }
    }

    @Test("status --wait running returns once every instance runs the current signature, and times out otherwise",
        arguments: StoreKind.allCases)
    func statusWait(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1")

            let timedOut = try await pop.fails(1, ["status", "--wait", "running", "--timeout", "1"], mentioning: ["timed out"])
            #expect(timedOut.elapsed < .seconds(8))

            let store = try await fixture.openStore()
            let namespace = try PopNamespace(store: store)
            try await CLIFixture.register("m1", in: namespace)
            let name = try ServiceName("web")
            let signature = try await namespace.service(name).spec.signature
            // The instance first starts, then runs: only the second satisfies the wait, which shows the running one.
            try await namespace.publishInstance(
                InstanceRecord(machine: MachineID("m1"), pid: 7, signature: signature, state: .starting, since: Date()),
                service: name)
            async let waited = pop("status", "web", "--wait", "running", "--timeout", "30")
            try await namespace.publishInstance(
                InstanceRecord(
                    machine: MachineID("m1"), pid: 7, signature: signature, state: .running, since: Date(), started: Date()),
                service: name)
            let result = try await waited
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("running"))
            #expect(result.elapsed < .seconds(20))
            await store.close()
        }
    }

    @Test("machines lists the registered agents", arguments: StoreKind.allCases)
    func machines(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            let none = try await pop.ok("machines")
            #expect(none.stderr.contains("No agent is registered"))

            let store = try await fixture.openStore()
            let namespace = try PopNamespace(store: store)
            try await CLIFixture.register(fixture.localMachine, hostname: "alpha", in: namespace)
            try await CLIFixture.register("other-machine", hostname: "beta", in: namespace)
            let table = try await pop.ok("machines")
            let local = try #require(table.stdout.split(separator: "\n").first { $0.contains(fixture.localMachine) })
            #expect(local.contains("(this)") && local.contains("alpha") && local.contains("10.0.0.7") && local.contains("0.1.0"))
            #expect(local.contains("2m"), "uptime:\n\(table)")
            let json = try await pop.ok("machines", "--json")
            let records = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(records?.compactMap { $0["hostname"] as? String }.sorted() == ["alpha", "beta"])
            await store.close()
            let gone = try await pop.ok("machines")
            #expect(!gone.stdout.contains("alpha"), "a closed session's machine is gone:\n\(gone)")
        }
    }

    @Test("run hands each argument to the task as it was given and prints every machine's result",
        arguments: StoreKind.allCases)
    func runPassesArgumentsLiterally(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1", "m2")

            let marker = FileManager.default.temporaryDirectory.appendingPathComponent("pwned-\(UUID().uuidString)").path
            let payloads = [
                "x; rm -rf \(marker)", "$(touch \(marker))", "`touch \(marker)`", "a && touch \(marker)", "| touch \(marker)",
                "'quoted' \"double\"", "--timeout", "--json", "--prefix", "/x", "", "*", "${HOME}", "line\nbreak",
            ]
            let store = try await fixture.openStore()
            let namespace = try PopNamespace(store: store)
            let name = try ServiceName("web")
            let events = try await store.watchSubtree(namespace.paths.tasks(name))
            async let ran = pop.run(["run", "--timeout", "30", "web", "echo"] + payloads)

            // Act as both machines' agents: wait for the request, check it, and answer.
            var found: (TaskID, TaskRequest)?
            for try await _ in events {
                if let id = try await namespace.tasks(name).first {
                    found = (id, try await namespace.task(name, id))
                    break
                }
            }
            let (id, request) = try #require(found)
            #expect(request.task == "echo")
            #expect(request.arguments == payloads, "each argument arrives as one element, unchanged")
            #expect(request.machines.map(\.rawValue) == ["m1", "m2"])
            for machine in ["m1", "m2"] {
                try await namespace.writeTaskResult(
                    name, id,
                    TaskResult(
                        machine: MachineID(machine), state: machine == "m1" ? .succeeded : .failed,
                        exitCode: machine == "m1" ? 0 : 3, output: "output of \(machine)\n", started: Date(),
                        finished: Date()))
            }
            let result = try await ran
            #expect(result.status == 1, "one machine failed:\n\(result)")
            #expect(result.stdout.contains("output of m1") && result.stdout.contains("output of m2"))
            #expect(result.stdout.contains("m2: exit 3"))
            #expect(result.stdout.contains("1 of 2 machines succeeded"))
            #expect(!FileManager.default.fileExists(atPath: marker), "a shell ran a task argument")
            await store.close()
        }
    }

    @Test("--version and shell completion scripts")
    func versionAndCompletion() async throws {
        try await PopRunner.with { pop in
            let version = try await pop.ok("--version")
            #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
            for shell in ["bash", "zsh", "fish"] {
                let script = try await pop.ok("--generate-completion-script", shell)
                for command in ["init", "add", "deploy", "undeploy", "status", "machines", "config", "restart", "run"] {
                    #expect(script.stdout.contains(command), "the \(shell) script lacks \(command)")
                }
                #expect(script.stdout.contains("host"))
            }
            let bash = try await pop.ok("--generate-completion-script", "bash")
            #expect(bash.stdout.contains("complete -o") || bash.stdout.contains("complete -F"))
            let help = try await pop.ok("--help")
            #expect(!help.stdout.contains("dump"), "dump is hidden from help")
            #expect(help.stdout.contains("EXIT CODES:"))
        }
    }

    @Test("dump prints every node sorted, with version and data", arguments: StoreKind.allCases)
    func dump(kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "kit")
            try await pop.ok("deploy", "web", "m1")
            try await pop.ok("config", "web", "--workers", "5")
            let text = try await pop.ok("dump")
            let paths = text.stdout.split(separator: "\n").map { String($0.prefix { $0 != " " }) }
            #expect(paths == paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            for path in ["/pop", "/pop/machines", "/pop/services", "/pop/services/web", "/pop/services/web/machines/m1",
                "/pop/services/web/tasks", "/pop/services/web/packages"] {
                #expect(paths.contains(path), "dump lacks \(path):\n\(text)")
            }
            let web = try #require(text.stdout.split(separator: "\n").first { $0.hasPrefix("/pop/services/web  ") })
            #expect(web.hasPrefix("/pop/services/web  v1  {"), "the spec was changed once:\n\(web)")
            #expect(web.contains("\"workers\":5"))
            #expect(text.stderr.contains(kind.label))

            // A subtree, JSON, binary data, and a path that is not there.
            let store = try await fixture.openStore()
            _ = try await store.create("/pop/odd", data: [0xff, 0x00, 0x41], mode: .persistent)
            _ = try await store.create("/pop/odd/ctl", data: Array("a\u{1b}[31mb".utf8), mode: .ephemeral)
            let sub = try await pop.ok("dump", "/pop/odd")
            #expect(sub.stdout == "/pop/odd  v0  base64:/wBB\n/pop/odd/ctl  v0  ephemeral  a\\u{1b}[31mb\n")
            let json = try await pop.ok("dump", "/pop/odd", "--json")
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let nodes = object?["nodes"] as? [[String: Any]]
            #expect(nodes?.first?["dataBase64"] as? String == "/wBB")
            #expect(nodes?.last?["ephemeral"] as? Bool == true)
            await store.close()
            try await pop.fails(3, ["dump", "/pop/none"], mentioning: ["/pop/none", "does not exist"])
            try await pop.fails(2, ["dump", "pop"], mentioning: ["store path"])
            try await pop.fails(8, ["dump", "--prefix", "/other"], mentioning: ["pop init"])
        }
    }

    // MARK: Helpers

    struct ConfigShown: Decodable {
        var service: String
        var template: String
        var signature: String
        var version: Int32
        var options: [String: OptionValue]
    }

    static func config(_ pop: PopRunner, _ name: String) async throws -> ConfigShown {
        let result = try await pop.ok("config", name, "--json")
        return try JSONDecoder().decode(ConfigShown.self, from: Data(result.stdout.utf8))
    }

    static func statusJSON(_ result: CommandResult) throws -> StatusReport {
        try StatusReport.decode(result.stdout)
    }
}
