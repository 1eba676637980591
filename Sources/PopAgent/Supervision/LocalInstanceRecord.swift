#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import PopState

/// What the agent remembers on disk about an instance's process, so that the next agent can adopt or stop it.
///
/// Stored as `instance.json` in the instance's state folder and replaced atomically (write a temporary file, then
/// rename), so a reader sees the old record or the new one, never half of one. It is an intent: it is written once
/// the process exists and before its program runs (the process waits at a gate meanwhile, see
/// ``ProcessSpawner/spawn(_:)``), and removed only once the process has exited and its group was killed. So at any
/// instant, every process the supervisor started is named by a record.
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

    /// Writes the record into its configuration's state folder, atomically.
    func write() throws(SupervisorError) {
        let directory = configuration.stateDirectory
        try ProcessSpawner.makeDirectory(directory)
        let path = Self.path(in: directory)
        let temporary = "\(path).\(getpid()).tmp"
        let data: Data
        do { data = try PopJSON.canonicalEncoder().encode(self) } catch {
            throw SupervisorError(.record, "Could not encode the record '\(path)': \(error).")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SupervisorError.system("write the instance record '\(temporary)'") }
        let written = data.withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == data.count else {
            unlink(temporary)
            throw SupervisorError.system("write the instance record '\(temporary)'")
        }
        guard rename(temporary, path) == 0 else {
            let error = SupervisorError.system("replace the instance record '\(path)'")
            unlink(temporary)
            throw error
        }
    }

    /// Removes the record in `stateDirectory`, if any.
    static func remove(from stateDirectory: String) {
        unlink(path(in: stateDirectory))
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif
