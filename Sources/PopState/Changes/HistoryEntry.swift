import Foundation

/// One spec a service has had, kept in its history (`services/<name>/history/<version>`): what it was, when, by whom
/// and through which command.
public struct HistoryEntry: Hashable, Sendable, Codable {
    /// The service's version this spec was: 0 when it was added, one more for each change since.
    public var version: Int32
    /// When it was written.
    public var time: Date
    /// Who wrote it, as `user@host`.
    public var user: String
    /// The command that wrote it (`pop config web --port 8081`), a secret's value never included.
    public var command: String
    /// The spec's configuration signature.
    public var signature: ConfigSignature
    /// The spec itself.
    public var spec: ServiceSpec

    /// Creates an entry.
    public init(version: Int32, time: Date, origin: ChangeOrigin, spec: ServiceSpec) {
        self.version = version
        self.time = time
        self.user = origin.user
        self.command = origin.command
        self.signature = spec.signature
        self.spec = spec
    }
}

/// Who changes a service's spec, and with which command: recorded in its history.
public struct ChangeOrigin: Hashable, Sendable {
    /// `user@host`.
    public var user: String
    /// The command, without any secret's value.
    public var command: String

    /// Creates an origin.
    public init(user: String, command: String) {
        self.user = user
        self.command = command
    }

    /// The user and host of this process, with `command`.
    /// The text of a command that sets `pairs` on `spec`'s service, as its history records it: a secret's value
    /// shown as `********`.
    public static func commandText(
        _ command: String, _ pairs: [(name: String, value: String)], _ spec: ServiceSpec
    ) -> String {
        let secrets = Set(spec.template.options.filter(\.secret).map(\.name))
        return ([command] + pairs.map { secrets.contains($0.name) ? "--\($0.name) ********" : "--\($0.name) \($0.value)" })
            .joined(separator: " ")
    }

    public static func thisProcess(command: String) -> ChangeOrigin {
        ChangeOrigin(user: "\(userName())@\(ProcessInfo.processInfo.hostName)", command: command)
    }

    private static func userName() -> String {
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "uid \(geteuid())"
    }
}

/// How many specs a service's history keeps: the data of its `history` node.
public struct HistorySettings: Hashable, Sendable, Codable {
    /// How many specs are kept by default.
    public static let defaultLimit = 20
    /// The most a history may keep.
    public static let maximumLimit = 1000

    /// How many specs are kept (the current one included); older ones are deleted with the change that adds one.
    public var limit: Int

    /// Settings keeping `limit` specs; `.invalidInput` outside 1 to ``maximumLimit``.
    public init(limit: Int = HistorySettings.defaultLimit) throws(PopError) {
        guard (1...Self.maximumLimit).contains(limit) else {
            throw PopError(
                .invalidInput, "A history keeps 1 to \(Self.maximumLimit) specs, not \(limit).",
                hint: "For example --history-limit 20 (the default).")
        }
        self.limit = limit
    }
}

/// A service's spec with its history: what `--plan`, `--if-version`, `pop history` and `pop rollback` read.
public struct ServiceHistory: Hashable, Sendable {
    /// The current spec with its node version (for compare-and-set).
    public var current: VersionedService
    /// The versions the history holds, oldest first.
    public var versions: [Int32]
    /// How many specs it keeps.
    public var settings: HistorySettings
    /// Whether the `history` node exists (a service added by an earlier release has none until its first change).
    public var exists: Bool
    /// When the current spec was written.
    public var modified: Date

    /// The service's version: the newest entry's, or, for a service without history, its node's.
    public var version: Int32 { versions.last ?? current.version }

    /// The version the next change gets.
    public var nextVersion: Int32 { version + 1 }

    /// The versions deleted when a change adds one more.
    public var evictedByNextChange: [Int32] {
        Array(versions.prefix(max(0, versions.count + 1 - settings.limit)))
    }
}

extension HistoryEntry {
    /// The node name of `version`: ten digits, so that names sort as versions do.
    public static func nodeName(_ version: Int32) -> String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 10 - digits.count)) + digits
    }

    /// The version a node name stands for; nil when it is not one.
    public static func version(ofNodeName name: String) -> Int32? {
        guard name.count == 10, name.allSatisfy(\.isASCII), name.allSatisfy(\.isNumber) else { return nil }
        return Int32(name)
    }
}
