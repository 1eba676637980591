import Foundation
import Synchronization

/// Files and folders that every test of a process shares (a plugin folder, a world of bad inputs), made once and
/// removed when the process exits, as the shared ZooKeeper server is stopped then.
public enum ProcessFolders {
    private static let paths = Mutex<[String]>([])
    private static let installed = Atomic<Bool>(false)

    /// Removes `url` (a file or a folder) when the process exits; returns it.
    @discardableResult
    public static func removedAtExit(_ url: URL) -> URL {
        paths.withLock { $0.append(url.path) }
        if installed.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged {
            atexit {
                for path in ProcessFolders.paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
            }
        }
        return url
    }
}
