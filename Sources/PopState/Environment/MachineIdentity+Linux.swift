#if os(Linux)
import Foundation

extension MachineIdentity {
    /// Where Linux keeps a stable machine id, in order of preference.
    static let systemSources = ["/etc/machine-id", "/sys/class/dmi/id/product_uuid"]

    static func readFirstLine(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let line = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first
        let trimmed = line.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return trimmed.isEmpty ? nil : trimmed
    }
}
#endif
