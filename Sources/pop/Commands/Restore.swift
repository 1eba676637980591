import ArgumentParser
import Foundation
import PopState

/// `pop restore FILE`: puts back the desired state a `pop dump --json` backup holds.
///
/// The whole file is checked before the store is touched, and the namespace is written in one atomic multi-operation
/// (on ZooKeeper, in several when it is too large for one, undone again if one fails), so a refused or failed restore
/// leaves the store as it was.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        _superCommandName: "pop",
        abstract: "Put back pop's namespace from a JSON backup: services, options, packages, placements.",
        discussion: """
            The backup is what `pop dump --json` prints. It may come from either store and go to either (--host, --prefix choose where it goes). Only the \
            desired state is restored: machine registrations and instance records belong to running agents, which \
            write them again, and `pop run` task records are history. A service's stored spec is restored byte for \
            byte, so its signature is unchanged and no instance restarts because of a restore.

            An existing namespace is replaced only with --force.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Replace an existing namespace: everything in it is deleted first (running agents register again).")
    var force = false

    @Argument(help: "The file `pop dump --json` wrote, or - for standard input.")
    var file: String

    func run() async throws {
        let report = try Self.load(file)
        try NodePath.validate(global.prefix)
        let plan = try RestorePlan(report, file: file, into: global.prefix)
        try await CommandContext.with(global, requireNamespace: false) { context in
            let existing = try await Dump.nodes(under: plan.prefix, in: context.store)
            if !existing.isEmpty, !force {
                throw PopError(
                    .conflict, "pop's namespace \(plan.prefix) already exists in the \(context.store); nothing was restored.",
                    hint: "`pop restore --force \(file)` replaces it (its services and placements are deleted), or restore into another --prefix.",
                    path: plan.prefix)
            }
            try await plan.apply(to: context.namespace, replacing: existing)
            if context.json {
                try context.printJSON(plan.summary)
                return
            }
            var message = "restored \(plan.summary.services) service(s) and \(plan.summary.placements) placement(s) from \(file) into \(plan.prefix)"
            if plan.summary.skipped > 0 {
                message += " (left out \(plan.summary.skipped) machine, instance and task record(s), which agents and `pop run` write)"
            }
            context.done(message)
        }
    }

    /// Reads and decodes the backup; a file that is missing or is not a dump is refused before the store is opened.
    static func load(_ file: String) throws(PopError) -> DumpReport {
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard FileManager.default.fileExists(atPath: file) else {
                throw PopError(.notFound, "There is no file \(file).", hint: "Give the file `pop dump --json` wrote.")
            }
            guard let contents = FileManager.default.contents(atPath: file) else {
                throw PopError(.permissionDenied, "The file \(file) cannot be read.", hint: "Check its permissions.")
            }
            data = contents
        }
        do {
            return try JSONDecoder().decode(DumpReport.self, from: data)
        } catch {
            throw PopError(
                .invalidInput, "\(file) is not a pop backup: \(Self.reason(error)). Nothing was restored.",
                hint: "Make a backup with `pop dump --json > FILE`.")
        }
    }

    /// A decoding error in a few words.
    static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty:
            return "it is not valid JSON"
        case DecodingError.keyNotFound(let key, let context):
            return "\(where_(context))it has no \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            return "\(where_(context))\(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    private static func where_(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
        return path.isEmpty ? "" : "at \(path): "
    }
}

/// What a restore writes: the backup's desired state, checked and moved under the target prefix, parents first.
struct RestorePlan: Sendable {
    /// What `pop restore --json` prints.
    struct Summary: Codable, Sendable {
        var prefix: String
        var services: Int
        var placements: Int
        /// Nodes written.
        var nodes: Int
        /// Nodes of the backup left out: machine registrations, instance records, task requests and results.
        var skipped: Int
    }

    let prefix: String
    /// The nodes to create, each after its parent.
    let nodes: [(path: String, data: [UInt8])]
    let summary: Summary

    /// Checks every node of `report` against pop's layout and moves it from the backup's root to `prefix`.
    ///
    /// Refused with `.invalidInput`, naming the node: a path outside the backup's root or not in pop's layout, data
    /// that is not the record its place holds, a layout version this pop does not write, a service without its
    /// `machines`, `tasks` or `packages` node (a truncated backup).
    init(_ report: DumpReport, file: String, into prefix: String) throws(PopError) {
        guard !report.nodes.isEmpty else {
            throw Self.invalid(file, "it holds no nodes")
        }
        let root = report.root ?? report.nodes.map(\.path).min { $0.count < $1.count }!
        try Self.check(file, NodePath.validate(root))
        var byRelative: [[String]: [UInt8]] = [:]
        var skipped = 0
        var services: Set<ServiceName> = []
        var placements = 0
        var assigned: [(MachineID, String)] = []
        var backedUp: [[String]: [UInt8]] = [:]
        for node in report.nodes {
            try Self.check(file, NodePath.validate(node.path))
            let relative: [String]
            if node.path == root {
                relative = []
            } else if node.path.hasPrefix(root == "/" ? "/" : root + "/") {
                relative = node.path.dropFirst(root == "/" ? 1 : root.count + 1).split(separator: "/").map(String.init)
            } else {
                throw Self.invalid(file, "its node \(node.path) is not under the backup's root \(root)")
            }
            guard let data = node.bytes else {
                throw Self.invalid(file, "its node \(node.path) has neither \"data\" nor valid \"dataBase64\"")
            }
            guard byRelative[relative] == nil else {
                throw Self.invalid(file, "it holds the node \(node.path) twice")
            }
            switch relative.count {
            case 0:
                try Self.checkLayout(data, file: file, root: root)
            case 1 where relative[0] == "machines" || relative[0] == "services" || relative[0] == "facts":
                break
            case 3 where relative[0] == "assignments":
                // Kept for the placement it belongs to, if the backup has it (written below).
                _ = try Self.decode(Assignment.self, data, node.path, file)
                backedUp[relative] = data
                continue
            case 1...2 where relative[0] == "assignments":
                continue  // Derived from the placements below, so they always agree.
            case 1 where relative[0] == "endpoint-key":
                // The target keeps its own key (pop dump leaves it out).
                skipped += 1
                continue
            case 1 where relative[0] == "election":
                skipped += 1
                continue
            case 2 where relative[0] == "machines" || relative[0] == "election":
                skipped += 1
                continue
            case 2 where relative[0] == "facts":
                _ = try Self.check(file, MachineID(relative[1]))
                _ = try Self.decode(MachineFacts.self, data, node.path, file)
            case 2 where relative[0] == "services":
                let name = try Self.check(file, ServiceName(relative[1]))
                let spec = try Self.decode(ServiceSpec.self, data, node.path, file)
                guard spec.name == name else {
                    throw Self.invalid(file, "its node \(node.path) holds the spec of the service '\(spec.name)'")
                }
                services.insert(name)
            case 3 where relative[0] == "services" && (relative[2] == "machines" || relative[2] == "tasks"):
                break
            case 3 where relative[0] == "services" && relative[2] == "packages":
                _ = try Self.decode([String].self, data, node.path, file)
            case 3 where relative[0] == "services" && relative[2] == "rollout":
                _ = try Self.decode(Rollout.self, data, node.path, file)
            case 3 where relative[0] == "services" && relative[2] == "rollout-state":
                _ = try Self.decode(RolloutState.self, data, node.path, file)
            case 3 where relative[0] == "services" && relative[2] == "history":
                _ = try Self.decode(HistorySettings.self, data, node.path, file)
            case 4 where relative[0] == "services" && relative[2] == "history":
                let entry = try Self.decode(HistoryEntry.self, data, node.path, file)
                guard HistoryEntry.version(ofNodeName: relative[3]) == entry.version, entry.spec.name.rawValue == relative[1]
                else {
                    throw Self.invalid(file, "its node \(node.path) holds the history entry of another version or service")
                }
            case 3 where relative[0] == "services" && relative[2] == "scheduling":
                _ = try Self.decode(SchedulingPolicy.self, data, node.path, file)
            case 4 where relative[0] == "services" && relative[2] == "machines":
                let machine = try Self.check(file, MachineID(relative[3]))
                _ = try Self.decode(Placement.self, data, node.path, file)
                placements += 1
                assigned.append((machine, relative[1]))
            case 5 where relative[0] == "services" && relative[2] == "machines" && relative[4] == "instance":
                skipped += 1
                continue
            case 4... where relative[0] == "services" && relative[2] == "tasks":
                skipped += 1
                continue
            default:
                throw Self.invalid(file, "its node \(node.path) is not part of pop's layout \(PopNamespace.layoutVersion)")
            }
            byRelative[relative] = data
        }
        guard byRelative[[]] != nil else {
            throw Self.invalid(file, "it has no node for its root \(root) (dump the namespace root: `pop dump --json` without a PATH)")
        }
        var required = [["machines"], ["services"]]
        for name in services {
            required += [["services", name.rawValue, "machines"], ["services", name.rawValue, "tasks"], ["services", name.rawValue, "packages"]]
        }
        for relative in required where byRelative[relative] == nil {
            throw Self.invalid(
                file, "it is incomplete: it has no node \(NodePath.join(root, relative.joined(separator: "/")))")
        }
        // Every node's parent is written before it: a placement's parent `machines` belongs to a service that exists.
        if byRelative.keys.contains(where: { $0.first == "facts" && $0.count == 2 }), byRelative[["facts"]] == nil {
            throw Self.invalid(file, "it is incomplete: it has no node \(NodePath.join(root, "facts"))")
        }
        for relative in byRelative.keys where relative.count == 4 && relative[2] == "history" && byRelative[Array(relative.prefix(3))] == nil {
            throw Self.invalid(
                file, "it is incomplete: it has no node \(NodePath.join(root, relative.prefix(3).joined(separator: "/")))")
        }
        for relative in byRelative.keys where relative.count >= 3 && relative[0] == "services" && !services.contains(where: { $0.rawValue == relative[1] }) {
            throw Self.invalid(
                file, "its node \(NodePath.join(root, relative.joined(separator: "/"))) belongs to no service in the backup")
        }
        // The root records the layout written (a backup of layout 1 is upgraded), and every placement gets its
        // machine's assignment: the backup's, or a new one.
        byRelative[[]] = Array(#"{"layout":\#(PopNamespace.layoutVersion)}"#.utf8)
        byRelative[["assignments"]] = []
        let assignment = Array(#"{"packagesVersion":0,"taskRequests":0}"#.utf8)
        for (machine, service) in assigned {
            byRelative[["assignments", machine.rawValue]] = []
            let relative = ["assignments", machine.rawValue, service]
            byRelative[relative] = backedUp[relative] ?? assignment
        }
        let ordered = byRelative.sorted { lhs, rhs in
            lhs.key.count != rhs.key.count ? lhs.key.count < rhs.key.count : lhs.key.lexicographicallyPrecedes(rhs.key)
        }
        self.prefix = prefix
        self.nodes = ordered.map { (relative, data) in
            (relative.isEmpty ? prefix : NodePath.join(prefix, relative.joined(separator: "/")), data)
        }
        self.summary = Summary(
            prefix: prefix, services: services.count, placements: placements, nodes: ordered.count, skipped: skipped)
    }

    /// Writes the plan, first deleting `existing` (the namespace being replaced, deepest first).
    ///
    /// The embedded store takes any number of operations in one transaction; ZooKeeper limits a request's size, so a
    /// large namespace goes in several multi-operations, and the nodes created before one fails are deleted again.
    func apply(to namespace: PopNamespace, replacing existing: [StoreNode]) async throws {
        let store = namespace.store
        try await namespace.createAncestors()
        let deletes = existing.map(\.path).sorted { $0.count > $1.count }.map { StoreOperation.delete($0, version: nil) }
        let creates = nodes.map { StoreOperation.create($0.path, data: $0.data, mode: .persistent) }
        let batches = Self.batches(deletes + creates, oneBatch: store.isMachineLocal)
        if batches.count == 1 {
            do {
                _ = try await store.multi(batches[0])
            } catch let error as PopError where error.code == .conflict || error.code == .notFound {
                throw PopError(
                    .conflict,
                    "The namespace \(prefix) changed while it was being restored (\(error.message)); nothing was changed.",
                    hint: "Run the restore again.", path: error.path)
            }
            return
        }
        var created: [String] = []
        for batch in batches {
            do {
                _ = try await store.multi(batch)
                for case .create(let path, _, _) in batch { created.append(path) }
            } catch {
                let undo = created.reversed().map { StoreOperation.delete($0, version: nil) }
                for batch in Self.batches(Array(undo), oneBatch: false) { _ = try? await store.multi(batch) }
                let replaced = existing.isEmpty ? "" : " The namespace it replaced was already deleted."
                throw PopError(
                    .system,
                    "Restoring \(prefix) failed after \(created.count) of \(nodes.count) nodes: \(error). The nodes it had written were deleted again.\(replaced)",
                    hint: "Fix the cause and run the restore again.", path: prefix)
            }
        }
    }

    /// Splits operations into multi-operations ZooKeeper accepts (it refuses requests over about 1 MB).
    static func batches(_ operations: [StoreOperation], oneBatch: Bool) -> [[StoreOperation]] {
        if oneBatch || operations.isEmpty { return [operations] }
        let limit = 256 * 1024
        var batches: [[StoreOperation]] = [[]]
        var size = 0
        for operation in operations {
            let cost: Int
            switch operation {
            case .create(let path, let data, _), .set(let path, let data, _): cost = 64 + path.utf8.count + data.count
            case .delete(let path, _), .check(let path, _): cost = 64 + path.utf8.count
            }
            if size + cost > limit, !batches[batches.count - 1].isEmpty {
                batches.append([])
                size = 0
            }
            batches[batches.count - 1].append(operation)
            size += cost
        }
        return batches
    }

    private static func checkLayout(_ data: [UInt8], file: String, root: String) throws(PopError) {
        struct Layout: Decodable { var layout: Int }
        guard let layout = try? JSONDecoder().decode(Layout.self, from: Data(data)) else {
            throw invalid(
                file, "its root \(root) holds no pop layout version, so it is not a backup of a pop namespace (dump the namespace root: `pop dump --json` without a PATH)")
        }
        guard PopNamespace.layoutVersionsRestored.contains(layout.layout) else {
            throw invalid(
                file, "it holds layout version \(layout.layout); this pop restores layout versions \(PopNamespace.layoutVersionsRestored.map(String.init).joined(separator: " and "))")
        }
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ data: [UInt8], _ path: String, _ file: String) throws(PopError) -> T {
        do {
            return try PopJSON.decoder().decode(type, from: Data(data))
        } catch {
            throw invalid(file, "its node \(path) does not hold what pop keeps there (\(Restore.reason(error)))")
        }
    }

    /// Runs a validation, reporting its error as a problem of the backup file.
    @discardableResult
    private static func check<T>(_ file: String, _ body: @autoclosure () throws(PopError) -> T) throws(PopError) -> T {
        do {
            return try body()
        } catch {
            throw invalid(file, error.message)
        }
    }

    private static func invalid(_ file: String, _ reason: String) -> PopError {
        PopError(
            .invalidInput, "\(file) cannot be restored: \(reason). Nothing was restored.",
            hint: "Restore a backup made with `pop dump --json > FILE`, unchanged.")
    }
}
