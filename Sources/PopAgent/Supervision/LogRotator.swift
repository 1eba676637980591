#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps log files bounded by *copy-then-truncate*, which works while the instance keeps writing.
///
/// Instances write their logs through descriptors opened with O_APPEND by the child itself; the agent holds none.
/// Renaming a log would not help, since the process would keep writing to the renamed file until it restarts. So
/// a file past its limit is copied to `NAME.1` (after `NAME.1` ... moved up to `NAME.2` ... and the oldest dropped),
/// then truncated to zero; an O_APPEND writer continues at the new end. Lines written between the copy and the
/// truncation are lost, which is the price of holding no pipes.
enum LogRotator {
    /// The log files of an instance, relative to its log folder.
    static let fileNames = ["stdout.log", "stderr.log", "setup.log"]

    /// Rotates each of the instance's log files that is past the limit; returns the paths rotated.
    @discardableResult
    static func rotateIfNeeded(in directory: String, rotation: LogRotation) -> [String] {
        var rotated: [String] = []
        for name in fileNames {
            let path = directory + "/" + name
            var info = stat()
            guard stat(path, &info) == 0, Int(info.st_size) > rotation.maximumBytes else { continue }
            if rotate(path, keep: rotation.keep) { rotated.append(path) }
        }
        return rotated
    }

    /// Shifts `path.1...path.(keep-1)` up by one, copies `path` to `path.1`, and truncates `path`.
    static func rotate(_ path: String, keep: Int) -> Bool {
        if keep > 0 {
            unlink("\(path).\(keep)")
            if keep > 1 {
                for index in stride(from: keep - 1, through: 1, by: -1) {
                    rename("\(path).\(index)", "\(path).\(index + 1)")
                }
            }
            guard copy(path, to: "\(path).1") else { return false }
        }
        return truncate(path, 0) == 0
    }

    private static func copy(_ source: String, to destination: String) -> Bool {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return false }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else { return false }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return false }
            if count == 0 { return true }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
                if result < 0 && errno == EINTR { continue }
                if result <= 0 { return false }
                written += result
            }
        }
    }
}
