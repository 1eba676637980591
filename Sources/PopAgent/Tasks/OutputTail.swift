/// The last `limit` bytes of a stream of output: a task's result keeps the end, where the errors usually are.
public struct OutputTail: Hashable, Sendable {
    /// How many bytes are kept.
    public let limit: Int
    private var bytes: [UInt8] = []
    /// How many bytes were dropped from the front.
    public private(set) var droppedBytes: Int = 0

    /// Creates an empty tail keeping at most `limit` bytes.
    public init(limit: Int = 64 * 1024) {
        precondition(limit > 0, "an output tail keeps at least one byte")
        self.limit = limit
    }

    /// Appends bytes, dropping the oldest beyond the limit.
    public mutating func append(_ chunk: some Collection<UInt8>) {
        if chunk.count >= limit {
            droppedBytes += bytes.count + chunk.count - limit
            bytes = Array(chunk.suffix(limit))
            return
        }
        bytes.append(contentsOf: chunk)
        let excess = bytes.count - limit
        if excess > 0 {
            bytes.removeFirst(excess)
            droppedBytes += excess
        }
    }

    /// The kept bytes.
    public var contents: [UInt8] { bytes }

    /// The kept output as text, starting at a whole character, with a note when the start was cut.
    public var text: String {
        var kept = bytes[...]
        if droppedBytes > 0 {
            // Skip UTF-8 continuation bytes so the text does not start in the middle of a character.
            while let first = kept.first, first & 0xC0 == 0x80 { kept = kept.dropFirst() }
        }
        let body = String(decoding: kept, as: UTF8.self)
        return droppedBytes > 0 ? "[... \(droppedBytes) earlier bytes not kept ...]\n" + body : body
    }
}
