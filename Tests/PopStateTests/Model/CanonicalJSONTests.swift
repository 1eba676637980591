import Foundation
import PopState
import Testing

/// The JSON the agent writes by hand for its journal's events and its instance records is the canonical encoder's,
/// byte for byte.
struct CanonicalJSONTests {
    static let awkward = "a \"quoted\" \\ path/with/slashes\n\ttab\r\u{8}\u{c}\u{1}\u{1f}\u{7f} é ✓ 🚀 \u{2028}"

    static let events: [LifecycleEvent] = {
        var full = LifecycleEvent(
            .taskFinished, service: "web", time: 1_764_000_000_123, pid: 4242, signature: "ab12",
            exitCode: -3, signal: 9, reason: .configChange, healthy: false, delayMilliseconds: 1500,
            task: "install", taskID: "t-1", succeeded: true, version: "1.2.3", detail: awkward)
        full.seq = UInt64.max
        var least = LifecycleEvent(.agentStarted, service: nil)
        least.seq = 0
        return [
            full, least,
            LifecycleEvent(.started, service: "db", time: 1, pid: 7, signature: "ff"),
            LifecycleEvent(.exited, service: "db", time: 2, pid: 7, signal: 15),
            LifecycleEvent(.health, service: "db", time: Int64.min, healthy: true, detail: ""),
            LifecycleEvent(.backoff, service: "db", time: Int64.max, delayMilliseconds: 0, detail: awkward),
        ]
    }()

    @Test(arguments: events)
    func aLifecycleEventIsWhatTheEncoderWrites(_ event: LifecycleEvent) throws {
        let expected = try PopJSON.canonicalEncoder().encode(event)
        #expect(String(decoding: event.canonicalJSON, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(try PopJSON.decoder().decode(LifecycleEvent.self, from: Data(event.canonicalJSON)) == event)
    }

    /// The writers name their fields one by one, so a field added to a type would be left out of its JSON without
    /// any byte comparison noticing (it is absent from the fixtures): each writer must write as many fields as its
    /// type stores, for a value with every field set.
    @Test func theWritersWriteEveryStoredField() throws {
        let event = try #require(Self.events.first)
        let record = InstanceRecord(
            machine: try MachineID("m-1"), pid: 1, signature: ConfigSignature(hex: String(repeating: "0", count: 40)),
            state: .running, since: Date(), started: Date(), restarts: 1, lastError: "e", lastRestart: .crash)
        for (value, json) in [(event as Any, event.canonicalJSON), (record as Any, record.canonicalJSON)] {
            let stored = Mirror(reflecting: value).children.count
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
            #expect(object.count == stored, "\(type(of: value)): \(object.keys.sorted())")
        }
    }

    @Test func everyControlCharacterRoundTrips() throws {
        let text = String(decoding: (0..<0x80).map { UInt8($0) }, as: UTF8.self)
        let event = LifecycleEvent(.fatal, service: "x", time: 3, detail: text)
        #expect(event.canonicalJSON == Array(try PopJSON.canonicalEncoder().encode(event)))
        #expect(try PopJSON.decoder().decode(LifecycleEvent.self, from: Data(event.canonicalJSON)).detail == text)
    }

    static let dates: [Date] = [
        Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_764_680_123.456), Date(timeIntervalSince1970: 1_764_680_123),
        Date(timeIntervalSince1970: -12.5), Date(timeIntervalSince1970: 4_102_444_800.000_001), Date(timeIntervalSinceReferenceDate: 0),
    ] + (0..<200).map { _ in Date(timeIntervalSince1970: Double.random(in: 0..<5_000_000_000)) } + [Date()]

    @Test func anInstanceRecordIsWhatTheEncoderWrites() throws {
        let machine = try MachineID("m-1")
        let signature = ConfigSignature(hex: String(repeating: "ab", count: 20))
        var records = [
            InstanceRecord(machine: machine, pid: nil, signature: signature, state: .waiting, since: Date(timeIntervalSince1970: 1)),
            InstanceRecord(
                machine: machine, pid: 99, signature: signature, state: .backoff, since: Date(), started: Date(),
                restarts: 12, lastError: Self.awkward, lastRestart: .configChange),
        ]
        for (index, date) in Self.dates.enumerated() {
            let state = InstanceState.allCases[index % InstanceState.allCases.count]
            records.append(
                InstanceRecord(
                    machine: machine, pid: Int32(index), signature: signature, state: state, since: date,
                    started: index.isMultiple(of: 2) ? date : nil, restarts: index))
        }
        let encoder = PopJSON.canonicalEncoder()
        for record in records {
            let expected = try encoder.encode(record)
            #expect(String(decoding: record.canonicalJSON, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            let decoder = PopJSON.decoder()
            #expect(
                try decoder.decode(InstanceRecord.self, from: Data(record.canonicalJSON))
                    == decoder.decode(InstanceRecord.self, from: expected))
        }
    }
}
