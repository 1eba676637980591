import Foundation
import Synchronization

/// pop's records in a ``CoordinationStore``: typed, validated, atomic operations for the CLI and the agent.
///
/// The layout is described in docs/state.md and built by ``NamespacePaths``. Every write validates its input first
/// and is a single atomic multi-operation, so nothing half-written remains. Malformed data in a node is reported as
/// `.corruptState` naming the node; a namespace written by an incompatible layout is `.corruptState`, and a missing
/// one is `.notInitialized`.
public struct PopNamespace: Sendable {
    /// The layout version this code writes, stored in the root node as `{"layout":2}`.
    ///
    /// Version 2 added `assignments` (``Assignment``), which agents follow instead of every service. A namespace of
    /// version 1 is refused with the way to upgrade it: `pop dump --json` and `pop restore`, which writes the
    /// assignments of every placement (``layoutVersionsRestored``).
    public static let layoutVersion = 2

    /// The layout versions `pop restore` accepts in a backup: the current one, and version 1, whose assignments it
    /// derives from the placements.
    public static let layoutVersionsRestored = [1, 2]

    /// The store.
    public let store: any CoordinationStore
    /// Where each record lives.
    public let paths: NamespacePaths
    let layoutChecked: LayoutCheck

    /// A namespace at `prefix` (default `/pop`) in `store`.
    public init(store: any CoordinationStore, prefix: String = "/pop") throws(PopError) {
        self.store = store
        self.paths = try NamespacePaths(root: prefix)
        self.layoutChecked = LayoutCheck()
    }

    /// The namespace root, such as `/pop`.
    public var prefix: String { paths.root }

    /// The content of the root node.
    struct Layout: Codable, Hashable {
        var layout: Int
    }

    // MARK: Initialization

    /// Creates the namespace. Refuses (`.conflict`) when it exists, unless `force`, which deletes everything in it
    /// first (services, placements, tasks, and the machine nodes of running agents, which register again). A new
    /// endpoint key is made with it.
    public func initialize(force: Bool) async throws {
        if try await store.exists(prefix) != nil {
            guard force else {
                throw PopError(
                    .conflict, "pop's namespace \(prefix) already exists in the \(store).",
                    hint: "`pop init --force` resets it, deleting every service and placement.", path: prefix)
            }
            try await deleteSubtree(prefix)
        }
        try await createAncestors()
        _ = try await store.multi([
            .create(prefix, data: try encode(Layout(layout: Self.layoutVersion), at: prefix)),
            .create(paths.machines, data: []),
            .create(paths.services, data: []),
            .create(paths.endpointKey, data: EndpointKey.generate().nodeData),
            .create(paths.facts, data: []),
            .create(paths.assignments, data: []),
        ])
        layoutChecked.set()
    }

    /// Creates the missing folders above a nested prefix (`/a/b/pop` needs `/a` and `/a/b`), as empty persistent nodes.
    public func createAncestors() async throws {
        var parent = NodePath.parent(prefix)
        var missing: [String] = []
        while let path = parent, path != "/", try await store.exists(path) == nil {
            missing.insert(path, at: 0)
            parent = NodePath.parent(path)
        }
        for path in missing {
            do {
                _ = try await store.create(path, data: [], mode: .persistent)
            } catch let error as PopError where error.code == .conflict {
                // Created meanwhile by someone else: fine.
            }
        }
    }

    /// Checks that the namespace exists and has a layout this code understands (once per namespace value).
    public func checkLayout() async throws {
        if layoutChecked.isSet { return }
        let root: StoreNode
        do {
            root = try await store.get(prefix)
        } catch let error as PopError where error.code == .notFound {
            throw notInitialized()
        }
        try verifyLayout(root)
        layoutChecked.set()
    }

    func verifyLayout(_ root: StoreNode) throws(PopError) {
        let layout: Layout
        do {
            if let version = JSONObjectReader(root.data)?.integer("layout", as: Int.self) {
                layout = Layout(layout: version)
            } else {
                layout = try PopJSON.decoder().decode(Layout.self, from: Data(root.data))
            }
        } catch {
            throw PopError(
                .corruptState,
                "The namespace root \(prefix) in the \(store) does not hold a pop layout version; it was not written by pop, or is damaged.",
                hint: "Use another --prefix, or `pop init --force` to reset it.", path: prefix)
        }
        if layout.layout == 1 {
            throw PopError(
                .corruptState,
                "The namespace \(prefix) in the \(store) uses layout version 1, without the per-machine assignments this pop's agents follow (version \(Self.layoutVersion)).",
                hint: "Stop its agents, then upgrade it in place: `pop dump --json > backup.json` and `pop restore --force backup.json` (with this pop); then start the agents of this release.",
                path: prefix)
        }
        guard layout.layout == Self.layoutVersion else {
            throw PopError(
                .corruptState,
                "The namespace \(prefix) in the \(store) uses layout version \(layout.layout); this pop understands version \(Self.layoutVersion).",
                hint: "Use the pop release that wrote it, or `pop init --force` to reset it.", path: prefix)
        }
    }

    func notInitialized() -> PopError {
        PopError(
            .notInitialized, "pop's namespace \(prefix) does not exist in the \(store).",
            hint: "Run `pop init` to create it.", path: prefix)
    }

    // MARK: Helpers

    /// Deletes a node and everything below it in one multi-operation, retrying when someone races in a new child.
    ///
    /// `also` names further nodes (outside the subtree, without children) to delete in the same multi-operation,
    /// given the subtree's nodes.
    func deleteSubtree(
        _ path: String, attempts: Int = 8, also: (([String]) async throws -> [String])? = nil
    ) async throws {
        for attempt in 1...attempts {
            var nodes: [String] = []
            var level = [path]
            while !level.isEmpty {
                nodes.append(contentsOf: level)
                let results = try await store.read(level.map { .children($0) })
                var next: [String] = []
                for (parent, result) in zip(level, results) {
                    for name in try result.childrenIfExists() ?? [] { next.append(NodePath.join(parent, name)) }
                }
                level = next
            }
            do {
                // Deepest first, so each node is empty when it is deleted.
                let others = try await also?(nodes) ?? []
                _ = try await store.multi(nodes.reversed().map { .delete($0) } + others.map { .delete($0) })
                return
            } catch let error as PopError where error.code == .conflict || error.code == .notFound {
                if error.code == .notFound, error.operationIndex == nodes.count - 1 {
                    throw PopError(.notFound, "\(path) does not exist in the \(store).", path: path)
                }
                if attempt == attempts { throw error }
            }
        }
    }

    /// Encodes a record canonically.
    func encode<T: Encodable>(_ value: T, at path: String) throws(PopError) -> [UInt8] {
        do {
            return Array(try PopJSON.canonicalEncoder().encode(value))
        } catch {
            throw PopError(.invalidInput, "Cannot encode the record for \(path): \(error).", path: path)
        }
    }

    /// Decodes a record, reporting malformed data with the node's path.
    func decode<T: Decodable>(_ type: T.Type, _ node: StoreNode) throws(PopError) -> T {
        try decodeWithJSONDecoder(type, node)
    }

    /// Decodes a record with ``PopJSON/decoder()``.
    private func decodeWithJSONDecoder<T: Decodable>(_ type: T.Type, _ node: StoreNode) throws(PopError) -> T {
        do {
            return try PopJSON.decoder().decode(type, from: Data(node.data))
        } catch {
            throw malformed(node, type, error)
        }
    }

    /// Decodes an instance record: most nodes are read by ``JSONObjectReader``, the rest as any record.
    func decode(_ type: InstanceRecord.Type, _ node: StoreNode) throws(PopError) -> InstanceRecord {
        if let record = InstanceRecord(json: node.data) { return record }
        return try decodeWithJSONDecoder(type, node)
    }

    /// Decodes a machine record: most nodes are read by ``JSONObjectReader``, the rest as any record.
    func decode(_ type: MachineRecord.Type, _ node: StoreNode) throws(PopError) -> MachineRecord {
        if let record = MachineRecord(json: node.data) { return record }
        return try decodeWithJSONDecoder(type, node)
    }

    /// Decodes a placement: most nodes are read by ``JSONObjectReader``, the rest as any record.
    func decode(_ type: Placement.Type, _ node: StoreNode) throws(PopError) -> Placement {
        if let placement = Placement(json: node.data) { return placement }
        return try decodeWithJSONDecoder(type, node)
    }

    /// The error for a node whose data did not decode as a `type` record.
    func malformed<T>(_ node: StoreNode, _ type: T.Type, _ error: any Error) -> PopError {
        PopError(
            .corruptState,
            "The node \(node.path) in the \(store) holds malformed data (\(Self.describe(error))); expected a \(type) record.",
            hint: "Fix or delete the node (for a service, `pop remove` and `pop add` it again).", path: node.path)
    }

    /// Parses a child name as a machine id or service name, reporting a bad one with its path.
    func parseName<T>(_ name: String, under parent: String, _ parse: (String) throws(PopError) -> T) throws(PopError) -> T {
        do {
            return try parse(name)
        } catch {
            let path = NodePath.join(parent, name)
            throw PopError(
                .corruptState, "The node \(path) in the \(store) has an invalid name: \(error.message)",
                hint: "Delete the node.", path: path)
        }
    }

    /// Maps a missing parent under the namespace to `.notInitialized` or a clear `.notFound` for a service.
    func explainMissing(_ error: PopError, service name: ServiceName? = nil) async -> PopError {
        guard error.code == .notFound else { return error }
        if (try? await store.exists(prefix)) == nil { return notInitialized() }
        if let name, (try? await store.exists(paths.service(name))) == nil {
            return PopError(
                .notFound, "There is no service named '\(name)' in the \(store).",
                hint: "`pop status` lists the services.", path: paths.service(name))
        }
        return error
    }

    static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .dataCorrupted(let context):
            return context.debugDescription + Self.at(context.codingPath)
        case .keyNotFound(let key, let context):
            return "missing key '\(key.stringValue)'" + Self.at(context.codingPath)
        case .typeMismatch(let type, let context):
            return "expected \(type)" + Self.at(context.codingPath)
        case .valueNotFound(let type, let context):
            return "missing \(type)" + Self.at(context.codingPath)
        default:
            return "\(error)"
        }
    }

    private static func at(_ path: [any CodingKey]) -> String {
        path.isEmpty ? "" : " at " + path.map(\.stringValue).joined(separator: ".")
    }
}

/// Remembers that a namespace's layout was checked, shared by copies of a ``PopNamespace``.
final class LayoutCheck: Sendable {
    private let checked = Atomic<Bool>(false)
    var isSet: Bool { checked.load(ordering: .acquiring) }
    func set() { checked.store(true, ordering: .releasing) }
}
