import Foundation
import PopTestExpectations
import PopTestSupport
import PopState
import Synchronization
import TestProcesses
import Testing

/// One command that must be refused: its exit status, words its message must hold, and nothing written.
struct BadInput: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var status: Int32
    var words: [String]
    var environment: [String: String] = [:]

    init(_ status: Int32, _ arguments: [String], _ words: [String] = [], environment: [String: String] = [:]) {
        self.arguments = arguments
        self.status = status
        self.words = words
        self.environment = environment
    }

    var testDescription: String {
        arguments.map(CommandResult.quoted).joined(separator: " ")
            + (environment.isEmpty ? "" : " with " + environment.map { "\($0.key)=\(CommandResult.quoted($0.value))" }.joined(separator: " "))
    }

    /// A file a shell would create if any of these commands reached one.
    static let marker = FileManager.default.temporaryDirectory.appendingPathComponent("pwned-\(UUID().uuidString)").path

    static let usage = PopExitCode.usage.rawValue
    static let notFound = PopExitCode.notFound.rawValue
    static let conflict = PopExitCode.conflict.rawValue

    /// Hostile and malformed input for every command.
    static let all: [BadInput] = names + templates + options + unknowns + commandLine + environmentCases

    static let names: [BadInput] = [
        BadInput(usage, ["add", "../x", "--template", "kit"], ["service name", "'/' or '..'"]),
        BadInput(usage, ["add", "a/b", "--template", "kit"], ["service name", "'/' or '..'"]),
        BadInput(usage, ["add", "..", "--template", "kit"], ["'/' or '..'"]),
        BadInput(usage, ["add", "", "--template", "kit"], ["service name is empty"]),
        BadInput(usage, ["add", String(repeating: "a", count: 64), "--template", "kit"], ["64 characters", "at most 63"]),
        BadInput(usage, ["add", String(repeating: "b", count: 5000), "--template", "kit"], ["at most 63"]),
        BadInput(usage, ["add", "café", "--template", "kit"], ["'é'", "not allowed"]),
        BadInput(usage, ["add", "ser\u{200B}vice", "--template", "kit"], ["not allowed"]),
        BadInput(usage, ["add", "we\u{7}b", "--template", "kit"], ["control character"]),
        BadInput(usage, ["add", "web\u{1B}[31m", "--template", "kit"], ["control character"]),
        BadInput(usage, ["add", "web\n", "--template", "kit"], ["control character"]),
        BadInput(usage, ["add", "--template", "kit", "--", "-web"], ["must start with a letter"]),
        BadInput(usage, ["add", "-web", "--template", "kit"], ["missing", "<name>"]),
        BadInput(usage, ["add", "Web", "--template", "kit"], ["'W'"]),
        BadInput(usage, ["add", "1web", "--template", "kit"], ["must start with a letter"]),
        BadInput(usage, ["add", "x;touch \(marker)", "--template", "kit"], ["service name"]),
        BadInput(usage, ["add", "$(id)", "--template", "kit"], ["'$'"]),
        BadInput(usage, ["add", "`id`", "--template", "kit"], ["'`'"]),
        BadInput(usage, ["add", "web web", "--template", "kit"], ["' '"]),
        BadInput(conflict, ["add", "web", "--template", "kit"], ["already exists", "'web'"]),
        BadInput(usage, ["deploy", "../x"], ["service name"]),
        BadInput(usage, ["deploy", "web", "../m"], ["machine id", "'/' or '..'"]),
        BadInput(usage, ["deploy", "web", "m/1"], ["machine id"]),
        BadInput(usage, ["deploy", "web", ""], ["machine id is empty"]),
        BadInput(usage, ["deploy", "web", "m\t1"], ["control character"]),
        BadInput(usage, ["deploy", "web", "m1", "$(touch \(marker))"], ["machine id"]),
        BadInput(usage, ["deploy", "web", String(repeating: "m", count: 129)], ["at most 128"]),
        BadInput(usage, ["remove", "a/b"], ["service name"]),
        BadInput(usage, ["restart", "web", "bad/machine"], ["machine id"]),
        BadInput(usage, ["status", "Bad"], ["service name"]),
        BadInput(usage, ["config", "../../etc"], ["service name"]),
        BadInput(usage, ["undeploy", "web", "../m"], ["machine id"]),
    ]

    static let templates: [BadInput] = [
        BadInput(notFound, ["add", "x", "--template", "nosuch"], ["no template named 'nosuch'", "kit"]),
        BadInput(notFound, ["add", "x", "--template", "../kit"], ["no template named"]),
        BadInput(notFound, ["add", "x", "--template", "$(touch \(marker))"], ["no template named"]),
        BadInput(notFound, ["describe", "nosuch"], ["no template named 'nosuch'"]),
        BadInput(notFound, ["describe", "../../etc/passwd"], ["no template named"]),
        BadInput(notFound, ["add", "x", "--template", "comand"], ["did you mean 'command'"]),
        BadInput(notFound, ["add", "x", "--template", "broken"], ["no template named 'broken'"]),
        BadInput(notFound, ["add", "x", "--template", "typo"], ["no template named 'typo'"]),
        BadInput(notFound, ["describe", "garbage"], ["no template named 'garbage'"]),
    ]

    static let options: [BadInput] = [
        BadInput(usage, ["add", "x", "--template", "command"], ["needs --command"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--port", "abc"], ["--port", "1-65535", "abc"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--port", "0"], ["--port", "1-65535"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--port", "65536"], ["--port", "1-65535"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--port", "-1"], ["--port", "1-65535"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--port", "80; touch \(marker)"], ["--port"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--workers", "0"], ["--workers", "1"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--workers", "17"], ["--workers", "16"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--workers", "two"], ["--workers", "two"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--workers", "1.5"], ["--workers"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--workers", "99999999999999999999999"], ["--workers"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--mode", "turbo"], ["--mode", "fast", "safe"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--debug", "maybe"], ["--debug"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--bogus", "1"], ["no option --bogus", "--workers"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--prot", "1"], ["did you mean --port"]),
        BadInput(usage, ["add", "x", "--template", "kit", "--port", "1", "--port", "2"], ["more than once"]),
        BadInput(usage, ["add", "x", "--template", "kit", "stray"], ["unexpected argument 'stray'"]),
        BadInput(usage, ["add", "x"], ["--template"]),
        BadInput(usage, ["config", "web", "--port", "70000"], ["--port", "1-65535"]),
        BadInput(usage, ["config", "web", "--bogus", "1"], ["no option --bogus"]),
        BadInput(usage, ["config", "web", "--mode", "turbo"], ["fast", "safe"]),
        BadInput(usage, ["config", "web", "stray"], ["unexpected argument"]),
        BadInput(usage, ["config", "web", "--template", "command"], ["no option --template"]),
        BadInput(usage, ["status", "--wait", "bogus"], ["unknown instance state 'bogus'", "running"]),
        BadInput(usage, ["status", "--wait", ""], ["unknown instance state"]),
        BadInput(usage, ["status", "--timeout", "soon"], ["timeout"]),
        BadInput(usage, ["run", "--max-parallel", "0", "web", "echo"], ["--max-parallel"]),
        BadInput(usage, ["run", "--timeout", "0", "web", "echo"], ["--timeout"]),
        BadInput(usage, ["undeploy", "web", "m1", "--all"], ["not both"]),
    ]

    static let unknowns: [BadInput] = [
        BadInput(notFound, ["deploy", "nosuch"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["undeploy", "nosuch"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["undeploy", "web", "m-nowhere"], ["not deployed to m-nowhere"]),
        BadInput(notFound, ["remove", "nosuch"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["config", "nosuch"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["config", "nosuch", "--port", "1"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["restart", "nosuch"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["restart", "web", "m-nowhere"], ["not deployed to m-nowhere"]),
        BadInput(notFound, ["status", "nosuch"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["run", "nosuch", "echo"], ["no service named 'nosuch'"]),
        BadInput(notFound, ["run", "web", "nosuch"], ["no task 'nosuch'", "echo"]),
        BadInput(notFound, ["run", "web", "$(touch \(marker))", "`touch \(marker)`"], ["no task"]),
        BadInput(notFound, ["run", "idle", "echo", "x; touch \(marker)"], ["not deployed anywhere"]),
        BadInput(notFound, ["run", "--machine", "m-nowhere", "web", "echo"], ["not deployed to machine m-nowhere"]),
    ]

    static let commandLine: [BadInput] = [
        BadInput(usage, ["frobnicate"], ["frobnicate"]),
        BadInput(usage, ["status", "--bogus"], ["--bogus"]),
        BadInput(usage, ["deploy"], ["missing"]),
        BadInput(usage, ["machines", "extra"], ["extra"]),
        BadInput(usage, ["init", "extra"], ["extra"]),
        BadInput(usage, ["status", "--prefix", "pop"], ["store path", "must start with '/'"]),
        BadInput(usage, ["status", "--prefix", "/a//b"], ["store path"]),
        BadInput(usage, ["status", "--prefix", "/pop/../etc"], ["store path", "'..'"]),
        BadInput(usage, ["status", "--host", "h:99999"], ["1 to 65535"]),
        BadInput(usage, ["status", "--host", "a,,b"], ["empty entry"]),
        BadInput(usage, ["status", "--host", "h:2181/bad//chroot"], ["chroot"]),
        BadInput(usage, ["dump", "relative"], ["store path"]),
    ]

    static let environmentCases: [BadInput] = [
        BadInput(usage, ["status"], ["POP_HOME", "absolute"], environment: ["POP_HOME": "relative/home"]),
        BadInput(usage, ["deploy", "web"], ["machine id"], environment: ["POP_MACHINE_ID": "../x"]),
        BadInput(usage, ["status"], ["1 to 65535"], environment: ["POP_HOST": "127.0.0.1:0"]),
    ]
}

/// A store with a little state in it, shared by every bad-input case on that store kind: each case must leave it
/// exactly as the baseline dump shows.
struct BadInputWorld: Sendable {
    let fixture: CLIFixture
    let baseline: String
    /// Keeps machine m1 registered (its ephemeral node lives as long as this handle).
    let agent: any CoordinationStore

    private static let worlds = Mutex<[StoreKind: Task<BadInputWorld, any Error>]>([:])

    static func get(_ kind: StoreKind) async throws -> BadInputWorld {
        let task = worlds.withLock { worlds in
            if let task = worlds[kind] { return task }
            let task = Task { try await make(kind) }
            worlds[kind] = task
            return task
        }
        return try await task.value
    }

    private static func make(_ kind: StoreKind) async throws -> BadInputWorld {
        // One world for every case of a store kind, for the whole run: it holds a store session and files, no process.
        let fixture = try await CLIFixture.make(kind)
        ProcessFolders.removedAtExit(fixture.pop.scratch)
        let pop = fixture.pop
        try await pop.ok("add", "web", "--template", "kit")
        try await pop.ok("add", "idle", "--template", "kit")
        try await pop.ok("deploy", "web", "m1", fixture.localMachine)
        let agent = try await fixture.openStore()
        try await CLIFixture.register("m1", in: try PopNamespace(store: agent))
        return BadInputWorld(fixture: fixture, baseline: try await fixture.dump(), agent: agent)
    }
}

@Suite("bad input is refused with a clear message and its exit code, and changes nothing")
struct BadInputTests {
    @Test("the matrix has at least 40 cases") func size() {
        #expect(BadInput.all.count >= 40)
    }

    @Test(arguments: StoreKind.allCases, BadInput.all)
    func refused(kind: StoreKind, input: BadInput) async throws {
        let world = try await BadInputWorld.get(kind)
        let result = try await world.fixture.pop.run(input.arguments, extraEnvironment: input.environment)
        #expect(result.status == input.status, "expected exit \(input.status):\n\(result)")
        for word in input.words {
            #expect(result.stderr.localizedCaseInsensitiveContains(word), "expected '\(word)' on standard error:\n\(result)")
        }
        // The message is one readable error, never a crash or a raw dump, and never echoes control characters.
        #expect(!result.stderr.isEmpty)
        #expect(!result.stderr.contains("Fatal error") && !result.stderr.contains("PopError("), "\(result)")
        #expect(
            !result.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7f },
            "a control character reached the terminal:\n\(result)")
        #expect(result.stdout.isEmpty || result.status == 2 && result.stdout.contains("USAGE"), "\(result)")
        let after = try await world.fixture.dump()
        #expect(after == world.baseline, "the store changed:\n\(result)\n--- before\n\(world.baseline)--- after\n\(after)")
        #expect(!FileManager.default.fileExists(atPath: BadInput.marker), "a shell ran:\n\(result)")
    }
}
