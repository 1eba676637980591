import Foundation
import PopState

/// Prints the merged stream of ``FleetReader``: each line prefixed with its machine and stream, events and markers
/// between them, or one ``JournalOutput`` object per line with `--json`. Bytes are gathered and written in large
/// pieces (standard output is the bottleneck of a fast reader).
public struct FleetPrinter {
    /// How to print.
    public struct Style: Sendable {
        public var json = false
        public var color = false
        public var timestamps = false
        /// The service the lines belong to (for `--json`).
        public var service: String?

        public init(json: Bool = false, color: Bool = false, timestamps: Bool = false, service: String? = nil) {
            self.json = json
            self.color = color
            self.timestamps = timestamps
            self.service = service
        }
    }

    private let style: Style
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var prefixes: [String: [UInt8]] = [:]
    private var width = 0
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// A printer writing to `fd`, its machine column as wide as the longest of `machines`.
    public init(style: Style, machines: [String], fd: Int32 = 1) {
        self.style = style
        self.fd = fd
        width = machines.map { Self.short($0).count }.max() ?? 0
        buffer.reserveCapacity(1 << 17)
    }

    /// Adds outputs to the buffer, writing it out when large; false once the reader has gone (a closed pipe).
    public mutating func print(_ outputs: [FleetMerge.Output]) -> Bool {
        for output in outputs {
            switch output {
            case .item(let machine, .line(let line)):
                if style.json {
                    appendJSON(JournalOutput(line: line, machine: machine, service: style.service))
                } else {
                    appendPrefix(machine, line.stream.label, time: line.time)
                    buffer.append(contentsOf: line.text)
                    buffer.append(10)
                }
            case .item(let machine, .event(let event)):
                if style.json {
                    appendJSON(JournalOutput(event: event, machine: machine))
                } else {
                    appendPrefix(machine, "event", time: event.time)
                    let text = (event.service.map { $0 + ": " } ?? "") + event.summary
                    buffer.append(contentsOf: Array(paint(text, "33").utf8))
                    buffer.append(10)
                }
            case .marker(let machine, let marker):
                let (name, detail) = Self.describe(marker)
                if style.json {
                    appendJSON(JournalOutput(marker: name, detail: detail, machine: machine, time: Self.now()))
                } else {
                    appendPrefix(machine, "-----", time: nil)
                    buffer.append(contentsOf: Array(paint(name + (detail.map { ": " + $0 } ?? ""), "35").utf8))
                    buffer.append(10)
                }
            }
            if buffer.count >= 1 << 16, !flush() { return false }
        }
        return true
    }

    /// Writes out what is gathered; false when the reader has gone.
    public mutating func flush() -> Bool {
        var offset = 0
        defer { buffer.removeAll(keepingCapacity: true) }
        while offset < buffer.count {
            let written = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    /// A marker's name and detail, as printed.
    public static func describe(_ marker: FleetMerge.Marker) -> (String, String?) {
        switch marker {
        case .joined: ("joined", "it runs the service now; its lines follow")
        case .left: ("left", "it no longer runs the service")
        case .unreachable(let reason): ("unreachable", reason + "; its lines will follow when it is back")
        case .back: ("back", "resuming where its lines stopped")
        case .gap(let key, let range):
            ("gap", "\(range.lowerBound == range.upperBound ? "line \(range.lowerBound)" : "lines \(range.lowerBound)-\(range.upperBound)") of \(key.stream?.rawValue ?? "events") were rotated away before they could be read")
        }
    }

    private mutating func appendPrefix(_ machine: String, _ label: String, time: Int64?) {
        if style.timestamps, let time {
            buffer.append(contentsOf: Array(paint(JournalTime.rfc3339(time), "2").utf8))
            buffer.append(32)
        }
        let key = machine + "\u{0}" + label
        if let prefix = prefixes[key] {
            buffer.append(contentsOf: prefix)
            return
        }
        let short = Self.short(machine)
        let padded = short + String(repeating: " ", count: max(0, width - short.count))
        let prefix = Array((paint(padded, "36") + " " + paint(label + "|", "2") + " ").utf8)
        prefixes[key] = prefix
        buffer.append(contentsOf: prefix)
    }

    private mutating func appendJSON(_ output: JournalOutput) {
        if let data = try? encoder.encode(output) {
            buffer.append(contentsOf: data)
            buffer.append(10)
        }
    }

    private func paint(_ text: String, _ code: String) -> String {
        style.color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    /// A machine id as tables show it: a long hexadecimal id (from /etc/machine-id or a DMI UUID) cut to its first
    /// 12 digits, as git shortens hashes; a name someone chose is shown whole. The id's bytes are compared with ASCII
    /// directly: asking each scalar for its Unicode properties costs a table lookup per character and row.
    public static func short(_ id: String) -> String {
        let hex = id.utf8.allSatisfy { byte in
            byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
        return hex && id.utf8.count > 12 ? String(decoding: id.utf8.prefix(12), as: UTF8.self) : id
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000_000) }
}
