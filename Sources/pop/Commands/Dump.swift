import ArgumentParser
import Foundation
import PopState

/// `pop dump [PATH]`: every node under the namespace (or PATH), sorted, with its version and data as text.
///
/// For operators looking at what the store really holds, for comparing a store before and after a command, and, with
/// `--json`, for backups that `pop restore` reads back. It reads only, and works on a namespace pop cannot otherwise
/// read (a damaged record, another layout version).
struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        _superCommandName: "pop",
        abstract: "Print every node under the namespace: path, version and data, sorted by path (--json: a backup).",
        discussion: """
            One line per node: PATH, then 'v' and the data version, 'ephemeral' for a node owned by a session, and \
            the data as text. Data that is not UTF-8 is shown as 'base64:' and its Base64; control characters are \
            escaped as \\u{..}. The store is named on standard error, so standard output can be compared as is.

            With --json the output is a backup of the namespace that `pop restore FILE` reads back, on either store.
            """,
        shouldDisplay: false)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The subtree to print (default: the namespace root, --prefix).")
    var path: String?

    func run() async throws {
        try await CommandContext.with(global, requireNamespace: false) { context in
            let root = path ?? context.namespace.prefix
            try NodePath.validate(root)
            // The endpoint key is a secret of this namespace, not part of a backup (restore leaves the target's own).
            let nodes = try await Dump.nodes(under: root, in: context.store).filter {
                $0.path != context.namespace.paths.endpointKey
            }
            guard !nodes.isEmpty else {
                if root == context.namespace.prefix {
                    throw PopError(
                        .notInitialized, "pop's namespace \(root) does not exist in the \(context.store).",
                        hint: "Run `pop init` to create it.", path: root)
                }
                throw PopError(.notFound, "\(root) does not exist in the \(context.store).", path: root)
            }
            if context.json {
                try context.printJSON(
                    DumpReport(store: context.store.description, root: root, nodes: nodes.map(DumpReport.Node.init)))
                return
            }
            context.err.line(context.err.paint("store: \(context.store.description)", .dim))
            var text = ""
            for node in nodes {
                text += node.path + "  v\(node.stat.version)" + (node.stat.isEphemeral ? "  ephemeral" : "")
                let data = Dump.text(node.data)
                text += data.isEmpty ? "\n" : "  " + data + "\n"
            }
            context.out.write(text)
        }
    }

    /// Reads `root` and every node below it, a level at a time in batched reads, sorted by path.
    ///
    /// Nodes deleted while the walk runs are left out; an empty result means `root` does not exist.
    static func nodes(under root: String, in store: any CoordinationStore) async throws -> [StoreNode] {
        var nodes: [StoreNode] = []
        var level = [root]
        while !level.isEmpty {
            let results = try await store.read(level.flatMap { [ReadOperation.get($0), .children($0)] })
            var next: [String] = []
            for (index, path) in level.enumerated() {
                guard let node = try results[index * 2].nodeIfExists() else { continue }
                nodes.append(node)
                for name in try results[index * 2 + 1].childrenIfExists() ?? [] {
                    next.append(NodePath.join(path, name))
                }
            }
            level = next
        }
        return nodes.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    /// A node's data as one line of text: UTF-8 with control characters escaped, else `base64:` and its Base64.
    static func text(_ data: [UInt8]) -> String {
        guard let string = String(validating: data, as: UTF8.self) else {
            return "base64:" + Data(data).base64EncodedString()
        }
        var out = ""
        for scalar in string.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// What `pop dump --json` prints, and what `pop restore` reads: the one declaration of the backup format.
struct DumpReport: Codable {
    struct Node: Codable {
        var path: String
        var version: Int32
        var ephemeral: Bool
        /// The data as UTF-8 text, when it is valid UTF-8.
        var data: String?
        /// The data in Base64, when it is not valid UTF-8.
        var dataBase64: String?

        init(_ node: StoreNode) {
            path = node.path
            version = node.stat.version
            ephemeral = node.stat.isEphemeral
            if let text = String(validating: node.data, as: UTF8.self) {
                data = text
            } else {
                dataBase64 = Data(node.data).base64EncodedString()
            }
        }

        /// The node's data, or `nil` when the dump gives neither form (or Base64 that does not decode).
        var bytes: [UInt8]? {
            if let data { return Array(data.utf8) }
            return dataBase64.flatMap { Data(base64Encoded: $0) }.map(Array.init)
        }
    }

    /// The store the dump was taken from.
    var store: String
    /// The path that was dumped (the namespace root for a backup); absent in dumps of older releases.
    var root: String?
    var nodes: [Node]
}
