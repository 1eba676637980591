// A separate process for the state tests: it opens the embedded store in a folder and acts on it, printing one
// line per result so the test can follow it.
//
//   PopStateProbe ephemeral FOLDER PATH          create an ephemeral node, print "ready", then "alive" each fifth
//                                                of the session timeout while the node is there, until killed
//   PopStateProbe sequential FOLDER PREFIX COUNT create COUNT persistent-sequential nodes, print each path
//   PopStateProbe watch FOLDER ROOT COUNT        follow ROOT, print "ready", then "kind path" for COUNT events
//   PopStateProbe set FOLDER PATH COUNT          set PATH's data COUNT times, print "done"
//
// POP_PROBE_SESSION_MS sets the session timeout (default 10000).
import Foundation
import PopState

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else { fail("usage: PopStateProbe COMMAND FOLDER ARGS...") }
let command = arguments[1]
let folder = arguments[2]
let timeout = Int(ProcessInfo.processInfo.environment["POP_PROBE_SESSION_MS"] ?? "") ?? 10_000

do {
    let store = try await EmbeddedStore.open(
        folder: folder, options: .init(sessionTimeout: .milliseconds(timeout)))
    switch command {
    case "ephemeral":
        let path = try await store.create(arguments[3], data: Array("probe".utf8), mode: .ephemeral)
        say("ready \(path) \(store.sessionID)")
        // Each line says the session was alive and its node there at that moment, for a test to count.
        while true {
            try await Task.sleep(for: .milliseconds(timeout / 5))
            guard try await store.exists(path) != nil else { fail("the ephemeral node \(path) is gone") }
            say("alive")
        }
    case "sequential":
        guard arguments.count == 5, let count = Int(arguments[4]) else { fail("sequential FOLDER PREFIX COUNT") }
        for _ in 0..<count {
            say(try await store.create(arguments[3], data: [], mode: .persistentSequential))
        }
    case "watch":
        guard arguments.count == 5, let count = Int(arguments[4]) else { fail("watch FOLDER ROOT COUNT") }
        let events = try await store.watchSubtree(arguments[3])
        say("ready")
        var seen = 0
        for try await event in events {
            say("\(event.kind.rawValue) \(event.path)")
            seen += 1
            if seen == count { break }
        }
    case "set":
        guard arguments.count == 5, let count = Int(arguments[4]) else { fail("set FOLDER PATH COUNT") }
        for index in 0..<count {
            _ = try await store.set(arguments[3], data: Array(String(index).utf8), version: nil)
        }
        say("done")
    default:
        fail("unknown command \(command)")
    }
    await store.close()
} catch {
    fail("\(error)")
}
