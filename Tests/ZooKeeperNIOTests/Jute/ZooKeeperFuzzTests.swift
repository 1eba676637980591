import Foundation
import NIOCore
import TestProcesses
import Testing

@testable import ZooKeeperNIO

/// Feeds random bytes to the frame decoder and to every record reader: they must throw, never crash or hang.
///
/// The suite runs 20,000 inputs. Run a million on their own with
/// `ZOOKEEPER_FUZZ_COUNT=1000000 swift test -c release --filter ZooKeeperFuzzTests`
/// (`ZOOKEEPER_FUZZ_SEED` repeats a run).
@Suite("Decoder fuzzing")
struct ZooKeeperFuzzTests {
    static var count: Int { ProcessInfo.processInfo.environment["ZOOKEEPER_FUZZ_COUNT"].flatMap(Int.init) ?? 20_000 }

    /// Bytes that are mostly random, but often start with a plausible length or count so that decoding gets deep.
    static func input(_ generator: inout SeededGenerator) -> ByteBuffer {
        let size = Int.random(in: 0...96, using: &generator)
        var buffer = ByteBuffer()
        switch Int.random(in: 0..<4, using: &generator) {
        case 0:
            buffer.writeInteger(Int32(size))
        case 1:
            buffer.writeInteger(Int32.random(in: -2...8, using: &generator))
        default:
            break
        }
        for _ in 0..<size { buffer.writeInteger(UInt8.random(in: 0...255, using: &generator)) }
        return buffer
    }

    @Test func randomBytesNeverCrashTheDecoders() {
        let seed = ProcessInfo.processInfo.environment["ZOOKEEPER_FUZZ_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
        var generator = SeededGenerator(state: seed)
        var decoded = 0
        var refused = 0
        for _ in 0..<Self.count {
            let input = Self.input(&generator)

            // The frame decoder, in both of its states, consuming whole messages until it needs more bytes.
            for expectingConnectResponse in [true, false] {
                var decoder = ZooKeeperMessageDecoder(maxFrameSize: 64, expectingConnectResponse: expectingConnectResponse)
                var buffer = input
                do {
                    while let _ = try decoder.decode(buffer: &buffer) { decoded += 1 }
                } catch {
                    refused += 1
                }
            }

            // Every record reader the client applies to reply bodies.
            var buffer = input
            _ = try? buffer.readZooKeeperStat()
            buffer = input
            _ = try? buffer.readZooKeeperACLs()
            buffer = input
            _ = try? buffer.readJuteStringVector()
            buffer = input
            _ = try? buffer.readJuteBuffer()
            buffer = input
            _ = try? buffer.readConnectResponse()
            buffer = input
            _ = try? buffer.readWatcherEvent()
            buffer = input
            _ = try? ZooKeeperMultiResponse.decode(&buffer)
        }
        // The inputs exercised both outcomes; otherwise the generator tests nothing.
        #expect(decoded > 0, "seed \(seed)")
        #expect(refused > 0, "seed \(seed)")
    }
}
