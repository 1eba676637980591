#if os(Linux)
import Foundation

extension MachineIdentity {
    /// Where Linux keeps a stable machine id, in order of preference.
    static let systemSources = ["/etc/machine-id", "/sys/class/dmi/id/product_uuid"]

    /// The file's first line without the blanks around it; `nil` when it cannot be read or the line is blank. Only
    /// the first 4 KiB are read: an id is far shorter.
    static func readFirstLine(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            count += got
        }
        let line = String(decoding: bytes[..<count], as: UTF8.self).split(whereSeparator: \.isNewline).first ?? ""
        let trimmed = line.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
        return trimmed.isEmpty ? nil : String(trimmed)
    }
}
#endif
