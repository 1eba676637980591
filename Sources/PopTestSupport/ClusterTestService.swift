import Foundation

/// A tiny TCP service for cluster scenarios, run by the `command` template.
///
/// It listens on `0.0.0.0:$PORT` in its machine's namespace and answers each connection with one line,
/// `MACHINE PID TAG`, so a client knows which machine and which process it reached. It appends `up` once it
/// listens and `down` when SIGTERM arrives (before it closes its socket) to an events file shared by every machine,
/// each stamped with CLOCK_MONOTONIC, which all processes on the host share: the intervals in which instances were
/// down can then be compared exactly, with no sampling.
public enum ClusterTestService {
    /// The Python program.
    public static let script = #"""
        import os, signal, socket, sys, time
        events, tag = sys.argv[1], sys.argv[2]
        machine = os.environ.get("POP_MACHINE", "?")
        def record(what):
            with open(events, "a") as f:
                f.write(f"{time.monotonic_ns()} {what} {machine} {os.getpid()} {tag}\n")
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", int(os.environ["PORT"])))
        server.listen(64)
        def stop(signum, frame):
            record("down")
            server.close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        record("up")
        while True:
            connection, _ = server.accept()
            connection.sendall(f"{machine} {os.getpid()} {tag}\n".encode())
            connection.close()
        """#

    /// The template's name in the plugin ``writePlugin(in:)`` writes.
    public static let templateName = "cluster-probe"

    /// Writes a plugin holding the `cluster-probe` template into `folder` and returns the plugin's folder, for
    /// `POP_PLUGIN_PATH`.
    ///
    /// Options: `--events FILE` (required), `--port` (default 7000), `--tag` (default `v1`), and `--o1` … `--o5`
    /// (default `-`), which only change the signature. Task `hello [ARGS]` prints the machine and its arguments.
    public static func writePlugin(in folder: URL) throws -> URL {
        let plugin = folder.appendingPathComponent(templateName)
        try FileManager.default.createDirectory(at: plugin.appendingPathComponent("scripts"), withIntermediateDirectories: true)
        try script.write(to: plugin.appendingPathComponent("scripts/service.py"), atomically: true, encoding: .utf8)
        try manifest.write(to: plugin.appendingPathComponent("\(templateName).yaml"), atomically: true, encoding: .utf8)
        return plugin
    }

    /// The argv that runs the service directly (without an agent), from a plugin written by ``writePlugin(in:)``.
    public static func argv(plugin: URL, events: URL, tag: String) -> [String] {
        ["python3", plugin.appendingPathComponent("scripts/service.py").path, events.path, tag]
    }

    static let manifest = """
        name: \(templateName)
        description: A tiny TCP service for cluster tests; answers each connection with its machine, pid and tag.
        options:
          events:
            type: string
            required: true
            help: the file every instance appends its up and down events to
          port:
            type: port
            default: 7000
            help: the TCP port
          tag:
            type: string
            default: v1
            help: a label the service answers with
        \((1...5).map { "  o\($0):\n    type: string\n    default: \"-\"\n    help: changes only the signature\n" }.joined())command: ["python3", "{instance_dir}/scripts/service.py", "{events}", "{tag}"]
        environment:
          PORT: "{port}"
        stop-signal: TERM
        stop-timeout: 5s
        health:
          tcp: "{port}"
          interval: 200ms
          timeout: 1s
          grace-period: 30s
        tasks:
          hello:
            description: prints the machine and the arguments
            command: ["python3", "-c", "import os, sys; print('hello from', os.environ['POP_MACHINE'], *sys.argv[1:])", "{args}"]
        files:
          - scripts/service.py

        """

    /// One line of the events file.
    public struct Event: Sendable, Hashable {
        /// CLOCK_MONOTONIC in nanoseconds.
        public var time: UInt64
        /// `up` or `down`.
        public var kind: String
        /// The machine id.
        public var machine: String
        /// The process id.
        public var pid: Int32
        /// The tag the service was started with.
        public var tag: String
    }

    /// The events recorded so far, in time order.
    public static func events(_ file: URL) -> [Event] {
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 5, let time = UInt64(fields[0]), let pid = Int32(fields[3]) else { return nil }
            return Event(time: time, kind: fields[1], machine: fields[2], pid: pid, tag: fields[4])
        }.sorted { $0.time < $1.time }
    }

    /// The largest number of machines that were down at the same moment, replaying the events in time order.
    ///
    /// A machine is down from a `down` until its next `up`.
    public static func mostDownAtOnce(_ events: [Event]) -> Int {
        var down = Set<String>()
        var most = 0
        for event in events {
            if event.kind == "down" { down.insert(event.machine) } else { down.remove(event.machine) }
            most = max(most, down.count)
        }
        return most
    }
}
