import Foundation
@testable import PopState
import Testing

/// Specs decoded with each distinct template decoded once decode exactly as a whole decode does, and fail as it fails.
@Suite("Template cache")
struct TemplateCacheTests {
    func template(command: [String] = ["sleep", "{seconds}"]) -> ResolvedTemplate {
        ResolvedTemplate(
            name: "t", description: "quotes \" and braces { } [ ] in a string",
            options: [TemplateOption(name: "seconds", type: .int, defaultValue: .int(5))], command: command,
            environment: ["A": "}{"])
    }

    func encoded(_ spec: ServiceSpec) throws -> [UInt8] {
        Array(try PopJSON.canonicalEncoder().encode(spec))
    }

    @Test("the template's value is found at the top level only, once, and nowhere else")
    func valueRange() throws {
        let text = #"{ "a": {"template": 1}, "template" : {"x": "}\"{", "y": [1, {"z": 2}]} , "b": true }"#
        let bytes = Array(text.utf8)
        let range = try #require(TopLevelJSON.valueRange(ofKey: "template", in: bytes))
        #expect(String(decoding: bytes[range], as: UTF8.self) == #"{"x": "}\"{", "y": [1, {"z": 2}]}"#)
        #expect(TopLevelJSON.valueRange(ofKey: "b", in: bytes).map { String(decoding: bytes[$0], as: UTF8.self) } == "true")
        #expect(TopLevelJSON.valueRange(ofKey: "missing", in: bytes) == nil)
        #expect(TopLevelJSON.valueRange(ofKey: "template", in: Array(#"{"template":1,"template":2}"#.utf8)) == nil)
        #expect(TopLevelJSON.valueRange(ofKey: "template", in: Array(#"[{"template":1}]"#.utf8)) == nil)
        #expect(TopLevelJSON.valueRange(ofKey: "template", in: Array(#"{"template":{"a":1}"#.utf8)) == nil)
        #expect(TopLevelJSON.valueRange(ofKey: "template", in: Array(#"{"template"}"#.utf8)) == nil)
    }

    @Test("specs sharing a template decode as a whole decode does, options and requirements included")
    func sameAsWholeDecode() throws {
        let cache = TemplateCache()
        var first = ServiceSpec(name: try ServiceName("one"), template: template(), options: ["seconds": .int(1)])
        first.requires = ["db": "redis"]
        let second = ServiceSpec(name: try ServiceName("two"), template: template(), options: ["seconds": .int(2)])
        let other = ServiceSpec(name: try ServiceName("three"), template: template(command: ["true"]), options: [:])
        for spec in [first, second, other, first] {
            let bytes = try encoded(spec)
            let whole = try PopJSON.decoder().decode(ServiceSpec.self, from: Data(bytes))
            let decoded = try cache.decodeSpec(bytes)
            #expect(decoded == whole)
            #expect(decoded == spec)
            #expect(decoded.canonicalEncoding() == bytes)
        }
    }

    @Test("malformed specs fail as a whole decode fails")
    func malformed() throws {
        let cache = TemplateCache()
        let good = try encoded(ServiceSpec(name: try ServiceName("one"), template: template(), options: [:]))
        _ = try cache.decodeSpec(good)
        let text = String(decoding: good, as: UTF8.self)
        let broken = [
            text.replacingOccurrences(of: #""name":"one""#, with: #""name":"Not A Name!""#),
            text.replacingOccurrences(of: #""command":["sleep","{seconds}"]"#, with: #""command":"sleep""#),
            text.replacingOccurrences(of: #""options":{}"#, with: #""options":7"#),
            String(text.dropLast()),
        ]
        for variant in broken {
            #expect(variant != text)
            let bytes = Array(variant.utf8)
            #expect(throws: (any Error).self) { try PopJSON.decoder().decode(ServiceSpec.self, from: Data(bytes)) }
            #expect(throws: (any Error).self) { try cache.decodeSpec(bytes) }
        }
    }
}
