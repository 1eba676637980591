import Foundation
import Synchronization

/// Decodes service specs, decoding each distinct resolved template once.
///
/// A spec stores its whole resolved template (``ServiceSpec/template``), with placeholders rather than the service's
/// option values, so the services made from one template hold byte-identical copies of it; decoding that copy is
/// most of the cost of decoding a spec. The cache is keyed by the template's exact bytes: a template that differs in
/// any byte is decoded on its own. Anything the fast path cannot take apart is decoded whole, as before, so malformed
/// data fails with the same error. Services made from one template also share one copy of it in memory.
public final class TemplateCache: Sendable {
    /// The process's cache.
    public static let shared = TemplateCache()

    /// At most this many templates are kept; past it the cache starts again (a namespace has few templates).
    static let capacity = 64

    private let templates = Mutex<[Data: ResolvedTemplate]>([:])

    /// The fields of a spec other than its template (decoding ignores the `template` key).
    private struct Fields: Decodable {
        var name: ServiceName
        var options: [String: OptionValue]
        var requires: [String: String]?
    }

    /// Decodes a spec stored as `data`, throwing what decoding it whole throws.
    public func decodeSpec(_ data: [UInt8]) throws -> ServiceSpec {
        guard let range = TopLevelJSON.valueRange(ofKey: "template", in: data) else {
            return try PopJSON.decoder().decode(ServiceSpec.self, from: Data(data))
        }
        let bytes = Data(data[range])
        let template: ResolvedTemplate
        if let known = templates.withLock({ $0[bytes] }) {
            template = known
        } else {
            guard let decoded = try? PopJSON.decoder().decode(ResolvedTemplate.self, from: bytes) else {
                return try PopJSON.decoder().decode(ServiceSpec.self, from: Data(data))
            }
            template = decoded
            templates.withLock { cache in
                if cache.count >= Self.capacity { cache.removeAll() }
                cache[bytes] = decoded
            }
        }
        // The reader takes the other fields from the spec itself, reading the template's value as `null`.
        if let spec = Self.readFields(data, template: template, at: range) { return spec }
        // The decoder is given the spec with its template's value replaced by `null`: it parses the whole text it is
        // given, and the template is most of it.
        let decoder = PopJSON.decoder()
        var rest = Data(capacity: data.count - range.count + 4)
        rest.append(contentsOf: data[..<range.lowerBound])
        rest.append(contentsOf: "null".utf8)
        rest.append(contentsOf: data[range.upperBound...])
        guard let fields = try? decoder.decode(Fields.self, from: rest) else {
            return try decoder.decode(ServiceSpec.self, from: Data(data))
        }
        var spec = ServiceSpec(name: fields.name, template: template, options: fields.options)
        spec.requires = fields.requires
        return spec
    }
}

extension TemplateCache {
    /// The spec in `data` with `template`, whose text is at `range` in `data`, read by ``JSONObjectReader``; `nil`
    /// when the reader does not take its other fields (they are decoded as ``Fields`` then).
    static func readFields(_ data: [UInt8], template: ResolvedTemplate, at range: Range<Int>) -> ServiceSpec? {
        guard let object = JSONObjectReader(data, readingAsNull: range),
            let name = object.fields["name"].flatMap(JSONObjectReader.name) as ServiceName?,
            case .object(let optionValues)? = object.fields["options"],
            let requires = object.optional("requires", Self.readRequires)
        else { return nil }
        var options: [String: OptionValue] = [:]
        for (key, value) in optionValues {
            guard let option = OptionValue.read(value) else { return nil }
            options[key] = option
        }
        var spec = ServiceSpec(name: name, template: template, options: options)
        spec.requires = requires
        return spec
    }

    private static func readRequires(_ value: JSONObjectReader.Value) -> [String: String]? {
        guard case .object(let slots) = value else { return nil }
        var requires: [String: String] = [:]
        for (slot, service) in slots {
            guard let service = JSONObjectReader.string(service) else { return nil }
            requires[slot] = service
        }
        return requires
    }
}

/// Finds a key's value in the top-level object of a JSON text without decoding it.
enum TopLevelJSON {
    /// The byte range of the value of `key` in the top-level object of `data`; `nil` when `data` is not an object
    /// holding that key exactly once at the top level, or is not well formed as far as the scan can tell.
    static func valueRange(ofKey key: String, in data: [UInt8]) -> Range<Int>? {
        let wanted = Array(("\"" + key + "\"").utf8)
        var index = skipSpace(data, 0)
        guard index < data.count, data[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        var found: Range<Int>?
        while true {
            index = skipSpace(data, index)
            guard index < data.count else { return nil }
            if data[index] == UInt8(ascii: "}") { return found }
            // A key.
            guard let keyEnd = stringEnd(data, index) else { return nil }
            let isWanted = data[index..<keyEnd].elementsEqual(wanted)
            index = skipSpace(data, keyEnd)
            guard index < data.count, data[index] == UInt8(ascii: ":") else { return nil }
            index = skipSpace(data, index + 1)
            guard let valueEnd = valueEnd(data, index) else { return nil }
            if isWanted {
                guard found == nil else { return nil }
                found = index..<valueEnd
            }
            index = skipSpace(data, valueEnd)
            guard index < data.count else { return nil }
            if data[index] == UInt8(ascii: ",") {
                index += 1
            } else if data[index] != UInt8(ascii: "}") {
                return nil
            }
        }
    }

    /// The index after the string starting at `start` (which must be a quote).
    private static func stringEnd(_ data: [UInt8], _ start: Int) -> Int? {
        guard start < data.count, data[start] == UInt8(ascii: "\"") else { return nil }
        var index = start + 1
        while index < data.count {
            switch data[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return nil
    }

    /// The index after the value starting at `start`: a string, or an object or array (matched by depth, strings
    /// skipped), or a literal or number (up to the next delimiter).
    private static func valueEnd(_ data: [UInt8], _ start: Int) -> Int? {
        guard start < data.count else { return nil }
        switch data[start] {
        case UInt8(ascii: "\""):
            return stringEnd(data, start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var index = start
            while index < data.count {
                switch data[index] {
                case UInt8(ascii: "\""):
                    guard let end = stringEnd(data, index) else { return nil }
                    index = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default:
                    break
                }
                index += 1
            }
            return nil
        default:
            var index = start
            while index < data.count, !isDelimiter(data[index]) { index += 1 }
            return index > start ? index : nil
        }
    }

    private static func isDelimiter(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") || isSpace(byte)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private static func skipSpace(_ data: [UInt8], _ start: Int) -> Int {
        var index = start
        while index < data.count, isSpace(data[index]) { index += 1 }
        return index
    }
}
