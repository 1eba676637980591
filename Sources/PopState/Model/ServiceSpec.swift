import Crypto
import Foundation

/// A service's desired configuration: the template resolved at `add` time plus every option's value.
///
/// It is stored whole with the service, so an agent needs no copy of the plugin that defined the template.
/// Its ``signature`` identifies the configuration; an instance running another signature is restarted.
public struct ServiceSpec: Hashable, Sendable, Codable {
    /// The service's name.
    public var name: ServiceName
    /// The resolved template.
    public var template: ResolvedTemplate
    /// Every option's value, defaults included.
    public var options: [String: OptionValue]
    /// The requirement slots bound to a service other than the one of the slot's name (slot → service); `nil` when
    /// there are none, so a spec without requirements keeps its encoding and signature.
    public var requires: [String: String]?

    /// Creates a spec.
    public init(
        name: ServiceName, template: ResolvedTemplate, options: [String: OptionValue], requires: [String: String]? = nil
    ) {
        self.name = name
        self.template = template
        self.options = options
        self.requires = requires?.isEmpty == true ? nil : requires
    }

    /// The canonical encoding the signature is computed from: JSON with sorted keys and no whitespace.
    public func canonicalEncoding() -> [UInt8] {
        // Encoding these plain value types cannot fail.
        Array(try! PopJSON.canonicalEncoder().encode(self))
    }

    /// The configuration signature: hex-encoded SHA-1 of ``canonicalEncoding()``, the bytes pop stores in the
    /// service's node (so it equals ``ConfigSignature/init(of:)`` of that node's data).
    public var signature: ConfigSignature {
        ConfigSignature(of: canonicalEncoding())
    }
}

/// A configuration signature: the hex-encoded SHA-1 digest of a canonical service spec.
public struct ConfigSignature: Hashable, Sendable, Codable, CustomStringConvertible {
    /// 40 lower-case hex digits.
    public let hex: String

    /// Wraps a hex digest, as read back from the store.
    public init(hex: String) {
        self.hex = hex
    }

    /// The signature of a stored spec: the SHA-1 of the service node's data, as written (see docs/state.md).
    public init(of storedSpec: [UInt8]) {
        self.init(digest: Insecure.SHA1.hash(data: storedSpec))
    }

    init(digest: Insecure.SHA1.Digest) {
        self.hex = String(unsafeUninitializedCapacity: Insecure.SHA1.byteCount * 2) { text in
            var count = 0
            for byte in digest {
                text[count] = Self.hexDigit(byte >> 4)
                text[count + 1] = Self.hexDigit(byte & 0x0f)
                count += 2
            }
            return count
        }
    }

    /// The lower-case hex digit of `value` (0-15), as UTF-8.
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    public init(from decoder: any Decoder) throws {
        self.hex = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }

    /// The first 8 digits, as shown in tables.
    public var short: String { String(hex.prefix(8)) }
    public var description: String { hex }
}

/// The JSON coders pop uses for every record it stores.
public enum PopJSON {
    /// The canonical encoder: sorted keys, no whitespace, slashes unescaped, dates as epoch milliseconds.
    public static func canonicalEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }

    /// The decoder matching ``canonicalEncoder()``.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }

    /// The encoder of the commands' `--json` output: sorted keys, pretty-printed, dates in ISO 8601.
    public static func outputEncoder() -> JSONEncoder {
        let encoder = canonicalEncoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// The decoder matching ``outputEncoder()``, for programs that read pop's `--json` output.
    public static func outputDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
