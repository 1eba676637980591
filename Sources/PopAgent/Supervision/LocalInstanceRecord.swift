#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import PopState

/// What the agent remembers on disk about an instance's process, so that the next agent can adopt or stop it.
///
/// Stored as `instance.json` in the instance's state folder. It is an intent: it is written once the process exists
/// and before its program runs (the process waits at a gate meanwhile, see ``ProcessSpawner/spawn(_:)``), and removed
/// only once the process has exited and its group was killed. So at any instant, every process the supervisor
/// started is named by a record.
///
/// The file is rewritten in place with a single write, not replaced through a new file and a rename: on ext4 each
/// rename over a file allocated a new inode, freed the old one and forced the new data to disk, which cost a crash
/// storm most of the agent's CPU. A process killed in the middle of a write(2) either did it or did not, so a record
/// is torn only when the agent died between that write and the truncation to its length; the extra bytes make it
/// unreadable, and an unreadable record names no process: the agent died before opening the gate, so the recorded
/// process never ran its program, and the one recorded before it had exited and been reaped.
struct LocalInstanceRecord: Hashable, Sendable, Codable {
    /// The configuration the process runs.
    var configuration: InstanceConfiguration
    /// The process id.
    var pid: Int32
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
    var processStartTime: UInt64
    /// The process group (the pid itself, as each instance leads its own session).
    var processGroup: Int32
    /// When the process started.
    var started: Date
    /// Unexpected exits since the last deliberate (re)start.
    var restarts: Int
    /// The setup step the process runs, or `nil` for the instance's command. A setup step is never adopted: the next
    /// agent kills it and starts the instance afresh.
    var setupStep: String? = nil
    /// Why the command was last started again, so that a later agent still knows.
    var lastRestart: LifecycleEvent.RestartReason? = nil

    /// The record's file name in the state folder.
    static let fileName = "instance.json"

    /// The path of the record in `stateDirectory`.
    static func path(in stateDirectory: String) -> String {
        stateDirectory + "/" + fileName
    }

    /// Reads the record in `stateDirectory`; `nil` when there is none.
    static func read(from stateDirectory: String) throws(SupervisorError) -> LocalInstanceRecord? {
        let path = path(in: stateDirectory)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try PopJSON.decoder().decode(LocalInstanceRecord.self, from: data)
        } catch {
            throw SupervisorError(
                .record, "The instance record '\(path)' cannot be read: \(error).",
                hint: "Remove the file; the instance will then be started afresh instead of adopted.")
        }
    }

    /// The configuration as the record holds it (most of the record).
    static func encodedConfiguration(_ configuration: InstanceConfiguration) throws(SupervisorError) -> [UInt8] {
        do { return Array(try PopJSON.canonicalEncoder().encode(configuration)) } catch {
            throw SupervisorError(.record, "Could not encode the configuration of '\(configuration.name)': \(error).")
        }
    }

    /// The record as canonical JSON (sorted keys, dates in epoch milliseconds), around the configuration's JSON.
    func encoded(configurationJSON: [UInt8]) -> [UInt8] {
        var json = JSONObjectWriter()
        json.field("configuration", json: configurationJSON)
        json.field("lastRestart", lastRestart?.rawValue)
        json.field("pid", Int64(pid))
        json.field("processGroup", Int64(processGroup))
        json.field("processStartTime", processStartTime)
        json.field("restarts", Int64(restarts))
        json.field("setupStep", setupStep)
        json.field("started", Int64((started.timeIntervalSince1970 * 1000).rounded()))
        return json.finish()
    }

    /// Writes the record into its configuration's state folder, in place (see the type's discussion).
    /// `configurationJSON` is ``encodedConfiguration(_:)`` of the record's configuration, when the caller keeps it.
    func write(configurationJSON known: [UInt8]? = nil) throws(SupervisorError) {
        let directory = configuration.stateDirectory
        let path = Self.path(in: directory)
        let configurationJSON: [UInt8]
        if let known { configurationJSON = known } else { configurationJSON = try Self.encodedConfiguration(configuration) }
        let data = encoded(configurationJSON: configurationJSON)
        var fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            try ProcessSpawner.makeDirectory(directory)
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        }
        guard fd >= 0 else { throw SupervisorError.system("write the instance record '\(path)'") }
        defer { close(fd) }
        let written = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == data.count, ftruncate(fd, off_t(data.count)) == 0 else {
            throw SupervisorError.system("write the instance record '\(path)'")
        }
    }

    /// Removes the record in `stateDirectory`, if any.
    static func remove(from stateDirectory: String) {
        unlink(path(in: stateDirectory))
    }
}
