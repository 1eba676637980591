import Foundation

/// A line or a lifecycle event, as journals deliver them.
public enum JournalItem: Sendable {
    case line(JournalLine)
    case event(LifecycleEvent)

    /// When it was written, in nanoseconds since the epoch.
    public var time: Int64 {
        switch self {
        case .line(let line): line.time
        case .event(let event): event.time
        }
    }
}

/// One unit of what an agent's endpoint sends for `/logs` and `/events` (docs/observability.md, The wire).
///
/// Frames are text headers followed by raw bytes, so that a line's bytes are copied, never escaped:
///
/// ```
/// o SEQ TIME LENGTH\n BYTES      a line of stdout (e for stderr, s for setup); TIME in ns since the epoch
/// v LENGTH\n JSON               a lifecycle event (LifecycleEvent as JSON)
/// i KEY ID\n                     the journal KEY (stdout:web, events:web, events:) has the id ID (hex)
/// g KEY FIRST LAST\n             lines (or events) FIRST...LAST of KEY are gone (rotated away)
/// w TIME\n                       every line and event written up to TIME has been sent (a watermark)
/// z\n                            the end (the request did not follow)
/// x LENGTH\n MESSAGE             the agent could not go on
/// ```
public enum JournalFrame: Sendable {
    case line(JournalLine)
    case event(LifecycleEvent)
    case identity(JournalKey, UInt64)
    case gap(JournalKey, ClosedRange<UInt64>)
    case watermark(Int64)
    case end
    case failure(String)

    /// Appends the frame's bytes to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .line(let line):
            buffer.append(line.stream.letter)
            buffer.append(32)
            Self.appendNumber(line.seq, to: &buffer)
            buffer.append(32)
            Self.appendNumber(line.time, to: &buffer)
            buffer.append(32)
            Self.appendNumber(line.text.count, to: &buffer)
            buffer.append(10)
            buffer.append(contentsOf: line.text)
        case .event(let event):
            let json = (try? JournalFrame.eventEncoder.encode(event)).map(Array.init) ?? Array("{}".utf8)
            buffer.append(UInt8(ascii: "v"))
            buffer.append(32)
            Self.appendNumber(json.count, to: &buffer)
            buffer.append(10)
            buffer.append(contentsOf: json)
        case .identity(let key, let id):
            buffer.append(contentsOf: Array("i \(key.rawValue) \(String(id, radix: 16))\n".utf8))
        case .gap(let key, let range):
            buffer.append(contentsOf: Array("g \(key.rawValue) \(range.lowerBound) \(range.upperBound)\n".utf8))
        case .watermark(let time):
            buffer.append(UInt8(ascii: "w"))
            buffer.append(32)
            Self.appendNumber(time, to: &buffer)
            buffer.append(10)
        case .end:
            buffer.append(contentsOf: [UInt8(ascii: "z"), 10])
        case .failure(let message):
            let bytes = Array(message.utf8)
            buffer.append(contentsOf: Array("x \(bytes.count)\n".utf8))
            buffer.append(contentsOf: bytes)
        }
    }

    static let eventEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Appends the decimal digits of `value`.
    static func appendNumber<T: BinaryInteger>(_ value: T, to buffer: inout [UInt8]) {
        if value < 0 {
            buffer.append(UInt8(ascii: "-"))
            appendNumber(UInt64(-Int64(value)), to: &buffer)
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = UInt64(value)
        withUnsafeMutableBytes(of: &digits) { digits in
            repeat {
                digits[19 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            buffer.append(contentsOf: digits[(20 - count)...])
        }
    }
}

/// Cuts a byte stream into ``JournalFrame``s, as they arrive in pieces of any size.
public struct JournalFrameDecoder: Sendable {
    private var pending: [UInt8] = []

    /// A decoder with nothing pending.
    public init() {}

    /// Whether bytes of an unfinished frame are waiting for the rest.
    public var hasPartialFrame: Bool { !pending.isEmpty }

    /// Adds `bytes` and returns every frame now complete. Lines refer to the bytes they arrived in (no copy).
    public mutating func decode(_ bytes: some Collection<UInt8>) throws(PopError) -> [JournalFrame] {
        pending.append(contentsOf: bytes)
        let buffer = pending
        var frames: [JournalFrame] = []
        var at = 0
        while at < buffer.count {
            guard let header = buffer[at...].firstIndex(of: 10) else { break }
            let fields = buffer[at..<header].split(separator: 32, omittingEmptySubsequences: false)
            guard let kind = fields.first, kind.count == 1 else { throw Self.malformed() }
            let letter = kind[kind.startIndex]
            let body = header + 1
            switch letter {
            case UInt8(ascii: "o"), UInt8(ascii: "e"), UInt8(ascii: "s"):
                guard fields.count == 4, let stream = LogStreamKind(letter: letter),
                    let seq = Self.number(fields[1]).map(UInt64.init), let time = Self.signedNumber(fields[2]),
                    let length = Self.number(fields[3])
                else { throw Self.malformed() }
                guard buffer.count - body >= length else { return keep(buffer, from: at, frames) }
                frames.append(.line(JournalLine(stream: stream, seq: seq, time: time, text: buffer[body..<(body + length)])))
                at = body + length
            case UInt8(ascii: "v"), UInt8(ascii: "x"):
                guard fields.count == 2, let length = Self.number(fields[1]) else { throw Self.malformed() }
                guard buffer.count - body >= length else { return keep(buffer, from: at, frames) }
                let payload = buffer[body..<(body + length)]
                if letter == UInt8(ascii: "x") {
                    frames.append(.failure(String(decoding: payload, as: UTF8.self)))
                } else {
                    guard let event = try? JSONDecoder().decode(LifecycleEvent.self, from: Data(payload)) else {
                        throw Self.malformed()
                    }
                    frames.append(.event(event))
                }
                at = body + length
            case UInt8(ascii: "i"):
                guard fields.count == 3, let key = JournalKey(rawValue: String(decoding: fields[1], as: UTF8.self)),
                    let id = UInt64(String(decoding: fields[2], as: UTF8.self), radix: 16)
                else { throw Self.malformed() }
                frames.append(.identity(key, id))
                at = body
            case UInt8(ascii: "g"):
                guard fields.count == 4, let key = JournalKey(rawValue: String(decoding: fields[1], as: UTF8.self)),
                    let first = Self.number(fields[2]), let last = Self.number(fields[3]), first <= last
                else { throw Self.malformed() }
                frames.append(.gap(key, UInt64(first)...UInt64(last)))
                at = body
            case UInt8(ascii: "w"):
                guard fields.count == 2, let time = Self.signedNumber(fields[1]) else { throw Self.malformed() }
                frames.append(.watermark(time))
                at = body
            case UInt8(ascii: "z"):
                frames.append(.end)
                at = body
            default:
                throw Self.malformed()
            }
        }
        return keep(buffer, from: at, frames)
    }

    private mutating func keep(_ buffer: [UInt8], from at: Int, _ frames: [JournalFrame]) -> [JournalFrame] {
        pending = at < buffer.count ? Array(buffer[at...]) : []
        return frames
    }

    private static func malformed() -> PopError {
        PopError(.corruptState, "An agent's endpoint sent a malformed journal frame.")
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= 48 && digit <= 57 else { return nil }
            value = value * 10 + Int(digit - 48)
        }
        return value
    }

    private static func signedNumber(_ digits: ArraySlice<UInt8>) -> Int64? {
        if digits.first == UInt8(ascii: "-") { return number(digits.dropFirst()).map { -Int64($0) } }
        return number(digits).map(Int64.init)
    }
}
