/// A watched store path, and whether its whole subtree is followed.
struct WatchKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The path.
    var path: String
    /// Whether everything below the path is followed too.
    var subtree: Bool

    /// A watch of one node (its data, its creation and deletion, its children coming and going).
    static func node(_ path: String) -> WatchKey { WatchKey(path: path, subtree: false) }

    /// A watch of a node and everything below it.
    static func subtree(_ path: String) -> WatchKey { WatchKey(path: path, subtree: true) }

    /// `PATH` for a node, `PATH/**` for a subtree.
    var description: String { subtree ? "\(path)/**" : path }

    static func < (lhs: WatchKey, rhs: WatchKey) -> Bool {
        (lhs.path, lhs.subtree ? 1 : 0) < (rhs.path, rhs.subtree ? 1 : 0)
    }
}
