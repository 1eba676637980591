/// A string checked when it is made and kept as it was given: a service name, a machine id, a task id.
///
/// Conforming types supply the check (``init(_:)``); the conformance supplies decoding (through the same check, so a
/// damaged record cannot smuggle in an invalid name), encoding as a plain string, ordering and description.
public protocol ValidatedName: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The validated text.
    var rawValue: String { get }

    /// Validates `rawValue`, throwing a ``PopError`` with code `.invalidInput` that says what is wrong.
    init(_ rawValue: String) throws(PopError)
}

extension ValidatedName {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        do { try self.init(raw) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A validated service name: lower-case letters, digits and dashes, starting with a letter, at most 63 characters.
///
/// The rules match a DNS label, so a name can never escape its place in the store (`/`, `..`) or in a path on disk.
public struct ServiceName: ValidatedName {
    /// The validated name.
    public let rawValue: String

    /// Validates `name`, throwing a ``PopError`` with code `.invalidInput` that says what is wrong.
    public init(_ name: String) throws(PopError) {
        try NameRules.validate(name, kind: "service name", maxLength: 63, allowUpper: false, allowDotUnderscore: false)
        self.rawValue = name
    }
}

/// A validated machine id, such as the 32 hex digits of `/etc/machine-id` or a DMI product UUID.
///
/// Letters, digits, `-`, `_` and `.` are allowed (not `..`), starting with a letter or digit, at most 128 characters.
public struct MachineID: ValidatedName {
    /// The validated id.
    public let rawValue: String

    /// Validates `id`, throwing a ``PopError`` with code `.invalidInput` that says what is wrong.
    public init(_ id: String) throws(PopError) {
        try NameRules.validate(id, kind: "machine id", maxLength: 128, allowUpper: true, allowDotUnderscore: true)
        self.rawValue = id
    }
}

/// Shared checks for names that become path components in the store and on disk.
enum NameRules {
    static func validate(
        _ name: String, kind: String, maxLength: Int, allowUpper: Bool, allowDotUnderscore: Bool
    ) throws(PopError) {
        // Names are checked wherever they are read (every record a command decodes): a valid one passes in one pass
        // over its bytes, and only a name that breaks a rule goes through the checks below, which say which.
        if isValid(name, maxLength: maxLength, allowUpper: allowUpper, allowDotUnderscore: allowDotUnderscore) { return }
        try check(name, kind: kind, maxLength: maxLength, allowUpper: allowUpper, allowDotUnderscore: allowDotUnderscore)
    }

    /// The rules one by one, throwing the first one `name` breaks.
    static func check(
        _ name: String, kind: String, maxLength: Int, allowUpper: Bool, allowDotUnderscore: Bool
    ) throws(PopError) {
        let shown = printable(name)
        guard !name.isEmpty else {
            throw PopError(.invalidInput, "The \(kind) is empty.", hint: hint(kind, allowUpper, allowDotUnderscore))
        }
        guard name.utf8.count <= maxLength else {
            throw PopError(
                .invalidInput, "The \(kind) \(shown) is \(name.utf8.count) characters long; at most \(maxLength) are allowed.")
        }
        if name.contains("/") || name.contains("..") {
            throw PopError(
                .invalidInput, "The \(kind) \(shown) contains '/' or '..', which could escape its place in the store.",
                hint: hint(kind, allowUpper, allowDotUnderscore))
        }
        for scalar in name.unicodeScalars {
            let ok: Bool
            switch scalar {
            case "a"..."z", "0"..."9", "-": ok = true
            case "A"..."Z": ok = allowUpper
            case ".", "_": ok = allowDotUnderscore
            default: ok = false
            }
            if !ok {
                let what = scalar.value < 0x20 || scalar.value == 0x7f ? "a control character" : "the character '\(scalar)'"
                throw PopError(
                    .invalidInput, "The \(kind) \(shown) contains \(what), which is not allowed.",
                    hint: hint(kind, allowUpper, allowDotUnderscore))
            }
        }
        let first = name.unicodeScalars.first!
        let firstOK: Bool
        switch first {
        case "a"..."z": firstOK = true
        case "A"..."Z", "0"..."9": firstOK = allowUpper || allowDotUnderscore
        default: firstOK = false
        }
        guard firstOK else {
            throw PopError(
                .invalidInput, "The \(kind) \(shown) must start with a letter\(allowDotUnderscore ? " or digit" : "").",
                hint: hint(kind, allowUpper, allowDotUnderscore))
        }
    }

    /// Whether `name` breaks none of ``validate(_:kind:maxLength:allowUpper:allowDotUnderscore:)``'s rules. Every
    /// allowed character is ASCII, so checking bytes is checking characters.
    static func isValid(_ name: String, maxLength: Int, allowUpper: Bool, allowDotUnderscore: Bool) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, bytes.count <= maxLength else { return false }
        switch first {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): break
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard allowUpper || allowDotUnderscore else { return false }
        default: return false
        }
        var previous: UInt8 = 0
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): break
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): guard allowUpper else { return false }
            case UInt8(ascii: "."):
                guard allowDotUnderscore, previous != UInt8(ascii: ".") else { return false }
            case UInt8(ascii: "_"): guard allowDotUnderscore else { return false }
            default: return false
            }
            previous = byte
        }
        return true
    }

    static func hint(_ kind: String, _ allowUpper: Bool, _ allowDotUnderscore: Bool) -> String {
        if allowDotUnderscore {
            return "A \(kind) uses letters, digits, '-', '_' and '.', and starts with a letter or digit."
        }
        return "A \(kind) uses lower-case letters, digits and dashes, starts with a letter, and has at most 63 characters (for example 'plone' or 'web-2')."
    }

    /// Quotes a name for a message, escaping control characters so they cannot corrupt a terminal.
    static func printable(_ name: String) -> String {
        var out = "'"
        for scalar in name.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        let limited = out.count > 80 ? String(out.prefix(77)) + "..." : out
        return limited + "'"
    }
}
