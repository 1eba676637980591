import NIOCore

/// Jute, ZooKeeper's serialization: big-endian integers, length-prefixed strings and buffers (-1 is null),
/// count-prefixed vectors.
extension ByteBuffer {
    @inlinable
    mutating func writeJuteBool(_ value: Bool) {
        self.writeInteger(value ? UInt8(1) : UInt8(0))
    }

    @inlinable
    mutating func writeJuteString(_ value: String) {
        let lengthIndex = self.writerIndex
        self.writeInteger(Int32(0))
        let written = self.writeString(value)
        self.setInteger(Int32(written), at: lengthIndex)
    }

    @inlinable
    mutating func writeJuteBuffer(_ value: [UInt8]) {
        self.writeInteger(Int32(value.count))
        self.writeBytes(value)
    }

    @inlinable
    mutating func writeJuteStringVector(_ values: [String]) {
        self.writeInteger(Int32(values.count))
        for value in values { self.writeJuteString(value) }
    }

    mutating func readJuteInt() throws(JuteDecodingError) -> Int32 {
        guard let value = self.readInteger(as: Int32.self) else { throw JuteDecodingError.truncated }
        return value
    }

    mutating func readJuteLong() throws(JuteDecodingError) -> Int64 {
        guard let value = self.readInteger(as: Int64.self) else { throw JuteDecodingError.truncated }
        return value
    }

    mutating func readJuteBool() throws(JuteDecodingError) -> Bool {
        guard let value = self.readInteger(as: UInt8.self) else { throw JuteDecodingError.truncated }
        return value != 0
    }

    /// Reads a length-prefixed byte buffer; a null buffer (-1) reads as empty.
    mutating func readJuteBuffer() throws(JuteDecodingError) -> [UInt8] {
        let length = try self.readJuteInt()
        if length < 0 { return [] }
        guard let bytes = self.readBytes(length: Int(length)) else { throw JuteDecodingError.truncated }
        return bytes
    }

    /// Reads a length-prefixed UTF-8 string; a null string (-1) reads as empty.
    mutating func readJuteString() throws(JuteDecodingError) -> String {
        let length = try self.readJuteInt()
        if length < 0 { return "" }
        guard let string = self.readString(length: Int(length)) else { throw JuteDecodingError.truncated }
        return string
    }

    /// Reads a vector's element count, checking it against the bytes left (each element needs at least
    /// `minimumElementSize` bytes) so a hostile count cannot make the client allocate without bound.
    mutating func readJuteVectorCount(minimumElementSize: Int) throws(JuteDecodingError) -> Int {
        let count = try self.readJuteInt()
        if count < 0 { return 0 }
        guard Int(count) * minimumElementSize <= self.readableBytes else { throw JuteDecodingError.truncated }
        return Int(count)
    }

    mutating func readJuteStringVector() throws(JuteDecodingError) -> [String] {
        let count = try self.readJuteVectorCount(minimumElementSize: 4)
        var result: [String] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try self.readJuteString()) }
        return result
    }
}

/// A record that did not decode: the frame ended early or held a value the protocol does not allow.
enum JuteDecodingError: Error, Hashable {
    case truncated
    case invalidValue(String)

    func zooKeeperError(path: String? = nil) -> ZooKeeperError {
        switch self {
        case .truncated:
            ZooKeeperError(code: .protocolError, path: path, message: "the server sent a truncated record" + (path.map { " for \($0)" } ?? ""))
        case .invalidValue(let what):
            ZooKeeperError(code: .protocolError, path: path, message: "the server sent an invalid record: \(what)")
        }
    }
}
