#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PopState

/// The instance's folder on disk: created private to its owner, with the template's files written into it.
enum InstanceFolder {
    /// Creates the folder (and its state folder) and writes the blueprint's files, replacing older copies.
    static func prepare(_ blueprint: InstanceBlueprint, stateDirectory: String) throws(PopError) {
        try PrivateFiles.ensureFolder(blueprint.directory)
        try PrivateFiles.ensureFolder(stateDirectory)
        for file in blueprint.files {
            let path = blueprint.directory + "/" + file.path
            let folder = (path as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(
                    atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try Data(file.contents.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
                try FileManager.default.setAttributes(
                    [.posixPermissions: file.executable ? 0o700 : 0o600], ofItemAtPath: path)
            } catch {
                throw PopError(
                    .system, "Could not write the file \(path) of service '\(blueprint.service)': \(error).")
            }
        }
    }
}

/// The restart generation an instance was started at, kept beside the supervisor's record so that an adopted
/// instance is restarted when `pop restart` was asked while no agent ran.
enum PlacementMemory {
    private static func path(_ stateDirectory: String) -> String { stateDirectory + "/restart-generation" }

    /// Remembers `generation` (generation 0, the usual one, is remembered by having no file).
    static func write(_ generation: Int, to stateDirectory: String) throws(PopError) {
        if generation == 0 {
            remove(from: stateDirectory)
            return
        }
        do {
            try Data("\(generation)\n".utf8).write(to: URL(fileURLWithPath: path(stateDirectory)), options: .atomic)
        } catch {
            throw PopError(.system, "Could not write \(path(stateDirectory)): \(error).")
        }
    }

    /// The remembered generation (0 when none is).
    static func read(_ stateDirectory: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path(stateDirectory)) else { return 0 }
        return Int(String(decoding: data, as: UTF8.self).filter(\.isNumber)) ?? 0
    }

    /// Forgets the generation.
    static func remove(from stateDirectory: String) {
        unlink(path(stateDirectory))
    }
}
