import Foundation
@testable import PopState
import TestProcesses
import Testing

/// The records read without `JSONDecoder` are what it decodes, and whatever it rejects the reader declines, so the
/// caller's fallback to `JSONDecoder` reports it as before.
@Suite("JSON object reader")
struct JSONObjectReaderTests {
    static let awkward = CanonicalJSONTests.awkward

    static func records() throws -> [InstanceRecord] {
        let machine = try MachineID("m-1")
        let signature = ConfigSignature(hex: String(repeating: "ab", count: 20))
        var records = [
            InstanceRecord(machine: machine, pid: nil, signature: signature, state: .waiting, since: Date(timeIntervalSince1970: 1)),
            InstanceRecord(
                machine: try MachineID("Host_2.example"), pid: Int32.max, signature: ConfigSignature(hex: Self.awkward),
                state: .backoff, since: Date(), started: Date(), restarts: Int.max, lastError: Self.awkward,
                lastRestart: .configChange),
            InstanceRecord(
                machine: machine, pid: 0, signature: signature, state: .fatal, since: Date(timeIntervalSince1970: -12.5),
                restarts: 0, lastError: "", lastRestart: .requirement),
        ]
        for (index, date) in CanonicalJSONTests.dates.enumerated() {
            let state = InstanceState.allCases[index % InstanceState.allCases.count]
            let reason = LifecycleEvent.RestartReason.allCases[index % LifecycleEvent.RestartReason.allCases.count]
            records.append(
                InstanceRecord(
                    machine: machine, pid: Int32(index), signature: signature, state: state, since: date,
                    started: index.isMultiple(of: 2) ? date : nil, restarts: index,
                    lastError: index.isMultiple(of: 3) ? "exit \(index)" : nil, lastRestart: index.isMultiple(of: 4) ? reason : nil))
        }
        return records
    }

    static func placements() throws -> [Placement] {
        [
            Placement(deployed: Date(timeIntervalSince1970: 0)),
            Placement(deployed: Date(), restartGeneration: 7, scheduled: true, rescheduledFrom: try MachineID("lost-1")),
            Placement(deployed: Date(timeIntervalSince1970: 1_764_680_123.456), restartGeneration: Int.max, scheduled: false),
        ] + CanonicalJSONTests.dates.enumerated().map { index, date in
            Placement(deployed: date, restartGeneration: index, scheduled: index.isMultiple(of: 2) ? true : nil)
        }
    }

    static func machines() throws -> [MachineRecord] {
        [
            MachineRecord(
                id: try MachineID("m-1"), hostname: "host", addresses: [], agentVersion: "0.1.0",
                started: Date(timeIntervalSince1970: 0), agentPID: 1),
            MachineRecord(
                id: try MachineID("Host_2.example"), hostname: Self.awkward, addresses: ["10.0.0.1", "fe80::1", Self.awkward],
                agentVersion: Self.awkward, started: Date(), agentPID: Int32.max, endpoint: "https://10.0.0.1:7480"),
        ] + CanonicalJSONTests.dates.enumerated().map { index, date in
            MachineRecord(
                id: try! MachineID("m-\(index)"), hostname: "h\(index)", addresses: Array(repeating: "192.0.2.\(index)", count: index % 3),
                agentVersion: "0.1.\(index)", started: date, agentPID: Int32(index), endpoint: index.isMultiple(of: 2) ? "e\(index)" : nil)
        }
    }

    @Test("machine records are read as the decoder reads them")
    func machineRecords() throws {
        for record in try Self.machines() {
            let json = Array(try PopJSON.canonicalEncoder().encode(record))
            let read = try #require(MachineRecord(json: json), "declined: \(String(decoding: json, as: UTF8.self))")
            #expect(read == (try PopJSON.decoder().decode(MachineRecord.self, from: Data(json))))
        }
    }

    @Test("instance records written by the encoder or by hand are read as the decoder reads them")
    func instanceRecords() throws {
        for record in try Self.records() {
            for json in [Array(try PopJSON.canonicalEncoder().encode(record)), record.canonicalJSON] {
                let read = try #require(InstanceRecord(json: json), "declined: \(String(decoding: json, as: UTF8.self))")
                // Equal to the decoder's result, which is the record up to its dates' sub-millisecond digits.
                #expect(read == (try PopJSON.decoder().decode(InstanceRecord.self, from: Data(json))))
            }
        }
    }

    @Test("placements are read as the decoder reads them")
    func placements() throws {
        for placement in try Self.placements() {
            let json = Array(try PopJSON.canonicalEncoder().encode(placement))
            let read = try #require(Placement(json: json), "declined: \(String(decoding: json, as: UTF8.self))")
            #expect(read == (try PopJSON.decoder().decode(Placement.self, from: Data(json))))
        }
    }

    @Test("a spec's fields are read without the decoder, options of every kind and requirements included")
    func specFields() throws {
        // A template of nested objects and arrays, which the reader skips over.
        let template = ResolvedTemplate(
            name: "t", description: "", options: [TemplateOption(name: "port", type: .port, defaultValue: .int(80))],
            command: ["true", "{port}"], environment: ["A": "{port}"], health: HealthCheck(kind: .tcp, port: "{port}"))
        var specs = [
            ServiceSpec(name: try ServiceName("a"), template: template, options: [:]),
            ServiceSpec(
                name: try ServiceName("web-2"), template: template,
                options: ["port": .int(-8080), "debug": .bool(false), "on": .bool(true), Self.awkward: .string(Self.awkward),
                          "empty": .string(""), "big": .int(Int.max), "small": .int(Int.min)]),
        ]
        specs[1].requires = ["db": "redis", "cache": "memcached"]
        for spec in specs {
            let bytes = Array(try PopJSON.canonicalEncoder().encode(spec))
            let range = try #require(TopLevelJSON.valueRange(ofKey: "template", in: bytes))
            let read = try #require(TemplateCache.readFields(bytes, template: template, at: range))
            #expect(read == spec)
            // A range that is not where a top-level value starts is declined, and the spec is decoded instead.
            for shifted in [range.lowerBound + 1..<range.upperBound, range.lowerBound - 1..<range.upperBound, 0..<range.upperBound] {
                #expect(TemplateCache.readFields(bytes, template: template, at: shifted) == nil, "\(shifted)")
            }
            #expect(read == (try PopJSON.decoder().decode(ServiceSpec.self, from: Data(bytes))))
            #expect(try TemplateCache().decodeSpec(bytes) == read)
        }
    }

    /// Pieces spliced into valid records: values of every kind the decoder takes or rejects, and broken syntax.
    static let pieces = [
        "1.0", "1e3", "-0", "01", "1.", ".5", "-", "1e", "99999999999999999999", "-9223372036854775809", "2147483648",
        "1.5", "-1", "true", "false", "null", "nul", "tru", "[]", "[1]", "{}", #"{"a":1}"#, #"{"a":{"b":1}}"#, #""""#,
        #""x""#, #""\u00e9""#, #""\ud83d\ude80""#, #""\ud83d""#, #""\ude80""#, #""\q""#, #""\u12""#, "\"\u{1}\"",
        #"["a"]"#, #"["a",1]"#, #"[["a"]]"#, #"[{}]"#, #"[null]"#, "[", #"["a",]"#, "[,]", #"[ "a" , "b" ]"#,
        #""running""#, #""crash""#, #""m-1""#, #""Not A Name!""#, "\"a\u{7f}b\"", ",", ":", "{", "}", "\"", " ", "\n",
    ]

    /// Whatever the decoder makes of a text, the reader gives the same or declines; what the decoder rejects, the
    /// reader declines. Texts: valid records with one field's value replaced, a key repeated, a byte removed,
    /// inserted or replaced (including bytes that are not UTF-8), trailing text.
    @Test("a mutated record is read as the decoder reads it, or declined; what the decoder rejects is declined")
    func mutations() throws {
        var generator = SeededGenerator(state: 20_261_202)
        let records = try Self.records().prefix(12).map { $0.canonicalJSON }
        let placements = try Self.placements().prefix(6).map { Array(try PopJSON.canonicalEncoder().encode($0)) }
        let machines = try Self.machines().prefix(6).map { Array(try PopJSON.canonicalEncoder().encode($0)) }
        var read = 0
        var declined = 0
        func check(_ bytes: [UInt8]) {
            let decodedRecord = try? PopJSON.decoder().decode(InstanceRecord.self, from: Data(bytes))
            let readRecord = InstanceRecord(json: bytes)
            let decodedPlacement = try? PopJSON.decoder().decode(Placement.self, from: Data(bytes))
            let readPlacement = Placement(json: bytes)
            let decodedMachine = try? PopJSON.decoder().decode(MachineRecord.self, from: Data(bytes))
            let readMachine = MachineRecord(json: bytes)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(readRecord == nil || readRecord == decodedRecord, "\(text)")
            #expect(readPlacement == nil || readPlacement == decodedPlacement, "\(text)")
            #expect(readMachine == nil || readMachine == decodedMachine, "\(text)")
            if readRecord != nil || readPlacement != nil || readMachine != nil { read += 1 } else { declined += 1 }
        }
        for json in records + placements + machines {
            let text = String(decoding: json, as: UTF8.self)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
            for key in object.keys {
                let value = try #require(JSONObjectReader(json)?.fields[key])
                let written: String
                switch value {
                case .string(let string): written = String(decoding: try PopJSON.canonicalEncoder().encode(string), as: UTF8.self)
                case .number(let number): written = number
                case .bool(let flag): written = flag ? "true" : "false"
                case .null: written = "null"
                case .array(let elements):
                    let strings = elements.compactMap(JSONObjectReader.string)
                    written = String(decoding: try PopJSON.canonicalEncoder().encode(strings), as: UTF8.self)
                case .object: continue
                }
                let field = "\"\(key)\":\(written)"
                #expect(text.contains(field), "\(field) in \(text)")
                for piece in Self.pieces {
                    check(Array(text.replacingOccurrences(of: field, with: "\"\(key)\":\(piece)").utf8))
                }
                check(Array(text.replacingOccurrences(of: field, with: "\(field),\(field)").utf8))
                check(Array(text.replacingOccurrences(of: field, with: " \(field) ").utf8))
            }
            for piece in Self.pieces { check(json + Array(piece.utf8)) }
            for _ in 0..<150 {
                var bytes = json
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                let byte = [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: ","),
                            UInt8(ascii: "0"), 0x01, 0x80, 0xC3, 0xFF, UInt8.random(in: 0...255, using: &generator)]
                    .randomElement(using: &generator)!
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(byte, at: at)
                default: bytes[at] = byte
                }
                check(bytes)
            }
        }
        // Both outcomes happen, so the property was tested on both sides.
        #expect(read > 100)
        #expect(declined > 1_000)
    }
}

/// The status table's figures are written as `String(format:)` writes them.
@Suite("Status figures")
struct StatusFiguresTests {
    @Test("one decimal or none, as printf rounds them, for the values a table shows")
    func asPrintf() {
        var generator = SeededGenerator(state: 7)
        var values: [Double] = [0, 0.05, 0.25, 0.5, 1.5, 2.5, 9.95, 9.96, 99.94, 99.95, 100, 512, 1023.5, 1e6, 123_456.5]
        values += (0..<2_000).map { _ in Double(Int.random(in: 0..<200_000, using: &generator)) / 8 }
        values += (0..<2_000).map { _ in Double.random(in: 0..<1_000, using: &generator) }
        for value in values {
            #expect(StatusReport.fixed(value, decimals: 0) == String(format: "%.0f", value), "\(value)")
            // printf rounds the exact binary value; `value * 10` is exact for multiples of 1/8, and elsewhere cannot
            // cross a half unless the value lies within a hair of one (0.05 is stored a hair off 0.05).
            let tenths = value * 10
            let exact = value * 8 == (value * 8).rounded()
            guard exact || abs(tenths - tenths.rounded(.down) - 0.5) > 1e-6 else { continue }
            #expect(StatusReport.fixed(value, decimals: 1) == String(format: "%.1f", value), "\(value)")
        }
    }
}
