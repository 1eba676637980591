import Foundation

/// Reads the records pop reads most often (instance records, placements, machine records, a spec's fields other than
/// its template) without Foundation's generic `JSONDecoder`, whose machinery is most of the cost of decoding such
/// small objects.
///
/// It takes only a narrow, strictly checked form: one JSON object whose values are strings, integers, numbers,
/// `true`, `false`, `null`, or objects and arrays holding only those; every key once. Anything else (a deeper object
/// or array, a repeated key, malformed text, a value of the wrong kind for its field) makes the typed readers return
/// `nil`, and the caller decodes the bytes with `JSONDecoder` as before, so malformed data fails with the same error.
/// For what it takes, the result is the value `JSONDecoder` gives (`JSONObjectReaderTests`).
struct JSONObjectReader: Sendable {
    /// A field's value.
    enum Value: Hashable, Sendable {
        case string(String)
        /// A number, as written (checked against JSON's grammar).
        case number(String)
        case bool(Bool)
        case null
        /// An object of scalar values.
        case object([String: Value])
        /// An array of scalar values.
        case array([Value])
    }

    /// The object's fields.
    let fields: [String: Value]

    /// Reads `bytes`; `nil` when they are not an object of the form above.
    init?(_ bytes: some Collection<UInt8>) {
        var parser = Parser(bytes: Array(bytes))
        guard let fields = parser.document() else { return nil }
        self.fields = fields
    }

    /// Reads `bytes` with the value that spans `skipped` read as `null`, whatever it holds (a spec's template, which
    /// is read on its own); `nil` when they are not an object of the form above, or `skipped` is not where a value of
    /// the top-level object starts.
    init?(_ bytes: [UInt8], readingAsNull skipped: Range<Int>) {
        var parser = Parser(bytes: bytes, skipped: skipped)
        guard let fields = parser.document(), parser.skippedRead else { return nil }
        self.fields = fields
    }

    /// A required string field.
    func string(_ key: String) -> String? {
        guard case .string(let value)? = fields[key] else { return nil }
        return value
    }

    /// An optional field: `.some(nil)` when absent or `null`, `nil` when present with another kind of value.
    func optional<T>(_ key: String, _ read: (Value) -> T?) -> T?? {
        guard let value = fields[key], value != .null else { return .some(nil) }
        guard let read = read(value) else { return nil }
        return .some(read)
    }

    /// A required integer field of type `T`.
    func integer<T: FixedWidthInteger>(_ key: String, as type: T.Type = T.self) -> T? {
        fields[key].flatMap { Self.integer($0) }
    }

    /// A required date field in epoch milliseconds, as ``PopJSON/decoder()`` reads one.
    func date(_ key: String) -> Date? {
        fields[key].flatMap(Self.date)
    }

    /// An array of strings.
    static func strings(_ value: Value) -> [String]? {
        guard case .array(let elements) = value else { return nil }
        var strings: [String] = []
        strings.reserveCapacity(elements.count)
        for element in elements {
            guard case .string(let text) = element else { return nil }
            strings.append(text)
        }
        return strings
    }

    /// A string value.
    static func string(_ value: Value) -> String? {
        guard case .string(let text) = value else { return nil }
        return text
    }

    /// An integer value: a number written without fraction or exponent that fits `T`.
    static func integer<T: FixedWidthInteger>(_ value: Value) -> T? {
        guard case .number(let text) = value, !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else {
            return nil
        }
        return T(text)
    }

    /// A Boolean value.
    static func bool(_ value: Value) -> Bool? {
        guard case .bool(let flag) = value else { return nil }
        return flag
    }

    /// A date in epoch milliseconds: the number as a `Double`, divided by 1,000, as the decoder's
    /// `millisecondsSince1970` strategy does.
    static func date(_ value: Value) -> Date? {
        guard case .number(let text) = value, let milliseconds = Double(text), milliseconds.isFinite else { return nil }
        return Date(timeIntervalSince1970: milliseconds / 1000.0)
    }

    /// A string-valued enumeration.
    static func raw<T: RawRepresentable<String>>(_ value: Value) -> T? {
        string(value).flatMap(T.init(rawValue:))
    }

    /// A validated name (whose check throws; a name that fails it is left to the decoder, which reports it).
    static func name<T: ValidatedName>(_ value: Value) -> T? {
        string(value).flatMap { try? T($0) }
    }

    /// The parser: strict JSON, as RFC 8259 writes it, for the subset above.
    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        /// A value read as `null` without being parsed, and whether it was met.
        let skipped: Range<Int>?
        var skippedRead = false

        init(bytes: [UInt8], skipped: Range<Int>? = nil) {
            self.bytes = bytes
            self.skipped = skipped
        }

        mutating func document() -> [String: Value]? {
            skipSpace()
            guard let object = object(depth: 0) else { return nil }
            skipSpace()
            guard index == bytes.count else { return nil }
            return object
        }

        private mutating func object(depth: Int) -> [String: Value]? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var fields: [String: Value] = [:]
            skipSpace()
            if take(UInt8(ascii: "}")) { return fields }
            while true {
                skipSpace()
                guard let key = string() else { return nil }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                guard let value = value(depth: depth), fields.updateValue(value, forKey: key) == nil else { return nil }
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "}")) ? fields : nil
            }
        }

        private mutating func value(depth: Int) -> Value? {
            guard index < bytes.count else { return nil }
            if let skipped, index == skipped.lowerBound {
                guard depth == 0, skipped.upperBound <= bytes.count else { return nil }
                index = skipped.upperBound
                skippedRead = true
                return .null
            }
            switch bytes[index] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "{"):
                guard depth == 0 else { return nil }
                return object(depth: 1).map(Value.object)
            case UInt8(ascii: "["):
                guard depth == 0 else { return nil }
                return array().map(Value.array)
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number().map(Value.number)
            default: return nil
            }
        }

        /// An array of scalar values.
        private mutating func array() -> [Value]? {
            guard take(UInt8(ascii: "[")) else { return nil }
            var elements: [Value] = []
            skipSpace()
            if take(UInt8(ascii: "]")) { return elements }
            while true {
                skipSpace()
                guard let element = value(depth: 1) else { return nil }
                elements.append(element)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "]")) ? elements : nil
            }
        }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
        private mutating func number() -> String? {
            let start = index
            _ = take(UInt8(ascii: "-"))
            if take(UInt8(ascii: "0")) {
                guard !peekDigit() else { return nil }
            } else {
                guard digits() else { return nil }
            }
            if take(UInt8(ascii: ".")) {
                guard digits() else { return nil }
            }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard digits() else { return nil }
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        private mutating func digits() -> Bool {
            let start = index
            while peekDigit() { index += 1 }
            return index > start
        }

        private func peekDigit() -> Bool {
            index < bytes.count && bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")
        }

        /// A string: valid UTF-8, no raw control character, only JSON's escapes, surrogates only in pairs.
        private mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            // The common case: nothing to unescape.
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"),
                bytes[index] >= 0x20
            {
                index += 1
            }
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                return String(validating: bytes[start..<(index - 1)], as: UTF8.self)
            }
            var text = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(validating: text, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
                    case UInt8(ascii: "b"): text.append(0x08)
                    case UInt8(ascii: "f"): text.append(0x0C)
                    case UInt8(ascii: "n"): text.append(0x0A)
                    case UInt8(ascii: "r"): text.append(0x0D)
                    case UInt8(ascii: "t"): text.append(0x09)
                    case UInt8(ascii: "u"):
                        guard let scalar = unicodeEscape() else { return nil }
                        text.append(contentsOf: String(Character(scalar)).utf8)
                    default: return nil
                    }
                case 0..<0x20:
                    return nil
                default:
                    text.append(byte)
                }
            }
            return nil
        }

        /// After `\u`: four hex digits, and for a high surrogate the `\uXXXX` of its low one.
        private mutating func unicodeEscape() -> Unicode.Scalar? {
            guard let first = hex4() else { return nil }
            switch first {
            case 0xD800...0xDBFF:
                guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let second = hex4(), (0xDC00...0xDFFF).contains(second)
                else { return nil }
                return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            case 0xDC00...0xDFFF:
                return nil
            default:
                return Unicode.Scalar(first)
            }
        }

        private mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for byte in bytes[index..<(index + 4)] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            let matches = word.withUTF8Buffer { bytes[index..<(index + count)].elementsEqual($0) }
            if matches { index += count }
            return matches
        }

        private mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        private mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }
    }
}
