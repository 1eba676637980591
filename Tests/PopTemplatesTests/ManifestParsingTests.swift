import Foundation
import PopState
import Testing

@testable import PopTemplates

@Suite("Manifest parsing")
struct ManifestParsingTests {
    static let complete = """
        name: web
        description: A small web application.
        base: python
        options:
          port:
            type: port
            default: 8000
            help: the HTTP port
          workers:
            type: int
            default: 2
            minimum: 1
            maximum: 16
          mode:
            type: enum
            choices: [fast, safe]
            default: fast
          debug:
            type: bool
            default: no
          token:
            type: string
            required: true
            secret: true
        remove-options: [command]
        python:
          packages: [gunicorn, "flask>=3"]
          constraints: [gunicorn==23.0.0]
        setup:
          - name: migrate
            command: ["{python}", "manage.py", "migrate"]
            creates: var/migrated
            environment:
              TOKEN: "{token}"
        command: ["{venv}/bin/gunicorn", "--bind=0.0.0.0:{port}", "--workers={workers}", "app:app"]
        environment:
          APP_MODE: "{mode}"
        stop-signal: SIGINT
        stop-timeout: 20s
        health:
          http: "http://127.0.0.1:{port}/health"
          interval: 500ms
          timeout: 2
          grace-period: 1m
        tasks:
          shell:
            description: run a management command
            command: ["{python}", "manage.py", "{args}"]
        files:
          - scripts/tool.py
          - path: scripts/run.sh
            executable: false
        """

    @Test func parsesEveryField() throws {
        let folder = try TemporaryFolder()
        try folder.write("scripts/tool.py", "print('tool')\n", executable: true)
        try folder.write("scripts/run.sh", "echo run\n", executable: true)
        let manifest = try TemplateManifest.parse(
            yaml: Self.complete, file: "plugins/web/web.yaml", plugin: "web", directory: URL(fileURLWithPath: folder.path))
        #expect(manifest.name == "web")
        #expect(manifest.base?.value == "python")
        #expect(manifest.options.map(\.value.name) == ["port", "workers", "mode", "debug", "token"])
        #expect(manifest.options[0].value.defaultValue == .int(8000))
        #expect(manifest.options[0].line == 5)
        #expect(manifest.options[1].value.minimum == 1 && manifest.options[1].value.maximum == 16)
        #expect(manifest.options[2].value.choices == ["fast", "safe"])
        #expect(manifest.options[3].value.defaultValue == .bool(false))
        #expect(manifest.options[4].value.required && manifest.options[4].value.secret)
        #expect(manifest.removeOptions.map(\.value) == ["command"])
        #expect(manifest.python?.packages == ["gunicorn", "flask>=3"])
        #expect(manifest.setup.first?.value.environment == ["TOKEN": "{token}"])
        #expect(manifest.setup.first?.value.creates == "var/migrated")
        #expect(manifest.command?.value.count == 4)
        #expect(manifest.stopSignal == .int)
        #expect(manifest.stopTimeoutMilliseconds == 20_000)
        #expect(manifest.health?.value.kind == .http)
        #expect(manifest.health?.value.intervalMilliseconds == 500)
        #expect(manifest.health?.value.timeoutMilliseconds == 2000)
        #expect(manifest.health?.value.gracePeriodMilliseconds == 60_000)
        #expect(manifest.tasks.map(\.value.name) == ["shell"])
        #expect(manifest.files.map(\.value.path) == ["scripts/tool.py", "scripts/run.sh"])
        #expect(manifest.files[0].value.contents == "print('tool')\n")
        #expect(manifest.files[0].value.executable)
        #expect(!manifest.files[1].value.executable)
    }

    func error(_ yaml: String, directory: String? = nil) -> String {
        do {
            _ = try TemplateManifest.parse(
                yaml: yaml, file: "plugins/web/app.yaml", plugin: "web",
                directory: directory.map { URL(fileURLWithPath: $0) })
            return "parsed without error"
        } catch {
            return error.message
        }
    }

    @Test func errorsNameFileLineAndField() {
        let yaml = """
            name: app
            command: ["app", "--port={port}"]
            options:
              port:
                type: port
                default: 70000
            """
        #expect(error(yaml) == "plugins/web/app.yaml:6: option 'port': default 70000 is outside 1-65535")
    }

    @Test(arguments: [
        ("name: app\ncomand: [x]\n", "plugins/web/app.yaml:2: unknown field 'comand'; did you mean 'command'?"),
        ("name: app\ncommand: [x]\noptions:\n  p:\n    type: port\n    defualt: 1\n", "plugins/web/app.yaml:6: option 'p': unknown field 'defualt'; did you mean 'default'?"),
        ("name: app\ncommand: run --fast\n", "plugins/web/app.yaml:2: command: expected a list of arguments"),
        ("name: App\ncommand: [x]\n", "plugins/web/app.yaml:1: name: 'App' is not a valid template name"),
        ("command: [x]\n", "plugins/web/app.yaml:1: name: missing"),
        ("name: app\ncommand: [x]\noptions:\n  n:\n    type: integer\n", "plugins/web/app.yaml:5: option 'n': unknown type 'integer'"),
        ("name: app\ncommand: [x]\noptions:\n  n:\n    type: int\n    minimum: 5\n    maximum: 1\n", "plugins/web/app.yaml:5: option 'n': minimum 5 is greater than maximum 1"),
        ("name: app\ncommand: [x]\noptions:\n  n:\n    type: int\n    minimum: 5\n    default: 1\n", "plugins/web/app.yaml:7: option 'n': default 1 is outside at least 5"),
        ("name: app\ncommand: [x]\noptions:\n  m:\n    type: enum\n    choices: [a, b]\n    default: c\n", "plugins/web/app.yaml:7: option 'm': default 'c' is not one of the choices (a, b)"),
        ("name: app\ncommand: [x]\noptions:\n  m:\n    type: enum\n", "plugins/web/app.yaml:5: option 'm': an enum option needs 'choices'"),
        ("name: app\ncommand: [x]\noptions:\n  host:\n    type: string\n", "plugins/web/app.yaml:4: option 'host': 'host' is reserved"),
        ("name: app\ncommand: [x]\noptions:\n  Port:\n    type: port\n", "plugins/web/app.yaml:4: option 'Port': an option name uses lower-case"),
        ("name: app\ncommand: [x]\noptions:\n  p:\n    type: port\n    required: true\n    default: 80\n", "plugins/web/app.yaml:7: option 'p': has a default, so it cannot also be required"),
        ("name: app\ncommand: [x]\nstop-signal: STOP\n", "plugins/web/app.yaml:3: stop-signal: 'STOP' is not a signal pop can send"),
        ("name: app\ncommand: [x]\nstop-timeout: soon\n", "plugins/web/app.yaml:3: stop-timeout: expected a duration"),
        ("name: app\ncommand: [x]\nhealth:\n  tcp: '{port}'\n  http: 'http://x/'\n", "plugins/web/app.yaml:4: health: give either 'tcp' (a port) or 'http' (a URL), not both"),
        ("name: app\ncommand: [x]\nhealth:\n  http: 'localhost:80'\n", "plugins/web/app.yaml:4: health: 'http' must be a URL"),
        ("name: app\ncommand: [x]\nsetup:\n  - command: [x]\n", "plugins/web/app.yaml:4: setup step 1: missing 'name'"),
        ("name: app\ncommand: [x]\ntasks:\n  up:\n    command: [x]\n    records: true\n", "plugins/web/app.yaml:6: task 'up': unknown field 'records'"),
        ("name: app\ncommand: [x]\nfiles: [../etc/passwd]\n", "plugins/web/app.yaml:3: file '../etc/passwd': '../etc/passwd' must be a relative path"),
        ("name: app\ncommand: [x]\npython:\n  packages: ['--index-url=http://x']\n", "plugins/web/app.yaml:4: python packages element 1: '--index-url=http://x' is not a requirement"),
        ("name: app\ncommand: [x]\nenvironment:\n  1BAD: x\n", "plugins/web/app.yaml:4: environment: '1BAD' is not a valid environment variable name"),
        ("name: app\ncommand: [x]\ncommand: [y]\n", "plugins/web/app.yaml:2: the key 'command' appears more than once"),
        ("name: app\ncommand: [x\n", "plugins/web/app.yaml:3: not valid YAML"),
        ("", "plugins/web/app.yaml: the manifest is empty"),
    ])
    func reportsProblem(yaml: String, expected: String) {
        let message = error(yaml)
        #expect(message.hasPrefix(expected), "\(message)")
    }

    /// The parser accepts exactly the signals the agent can send: one type, so a name cannot be accepted here and
    /// refused when the instance starts.
    @Test(arguments: StopSignal.allCases)
    func everyStopSignalTheAgentSendsIsAccepted(signal: StopSignal) throws {
        for spelling in [signal.rawValue, "SIG" + signal.rawValue, signal.rawValue.lowercased()] {
            let manifest = try TemplateManifest.parse(
                yaml: "name: app\ncommand: [x]\nstop-signal: \(spelling)\n", file: "app.yaml", plugin: "web", directory: nil)
            #expect(manifest.stopSignal == signal, "\(spelling)")
        }
        #expect(error("name: app\ncommand: [x]\nstop-signal: STOP\n").hasSuffix("use one of \(StopSignal.names)"))
    }

    @Test func missingFileIsNamed() throws {
        let folder = try TemporaryFolder()
        let message = error("name: app\ncommand: [x]\nfiles:\n  - scripts/missing.py\n", directory: folder.path)
        #expect(message.hasPrefix("plugins/web/app.yaml:4: file 'scripts/missing.py': cannot read 'scripts/missing.py'"))
    }
}
