import Foundation

/// Writes a flat JSON object whose keys the caller gives in sorted order, as ``PopJSON/canonicalEncoder()`` would:
/// no whitespace, strings escaped as it escapes them, absent (`nil`) fields left out. For the few records the agent
/// writes at every instance's start, where the encoder's generic machinery is most of the cost.
public struct JSONObjectWriter: Sendable {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]

    public init() {}

    /// A string field.
    public mutating func field(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        self.key(key)
        Self.appendString(value, to: &bytes)
    }

    /// A signed integer field.
    public mutating func field(_ key: StaticString, _ value: Int64?) {
        guard let value else { return }
        self.key(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// An unsigned integer field.
    public mutating func field(_ key: StaticString, _ value: UInt64?) {
        guard let value else { return }
        self.key(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A Boolean field.
    public mutating func field(_ key: StaticString, _ value: Bool?) {
        guard let value else { return }
        self.key(key)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A date field in epoch milliseconds, written as the canonical encoder writes them: the number with its
    /// fraction when it has one.
    public mutating func field(_ key: StaticString, _ value: Date?) {
        guard let value else { return }
        self.key(key)
        var text = (1000.0 * value.timeIntervalSince1970).description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    /// A field whose value is already JSON (a nested object the canonical encoder wrote).
    public mutating func field(_ key: StaticString, json value: [UInt8]) {
        self.key(key)
        bytes.append(contentsOf: value)
    }

    /// The object, closed.
    public consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func key(_ key: StaticString) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    /// `text` as a JSON string literal, escaped as the canonical encoder escapes it: the quote, the backslash and the
    /// control characters, the common ones by their short escapes; everything else as its UTF-8 bytes.
    private static func appendString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), byte]
            case 0x08: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0C: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
