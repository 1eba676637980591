import Foundation
import ZooKeeperNIO

/// libFuzzer's per-input callback: decodes the input as a ZooKeeper server's byte stream.
@_cdecl("LLVMFuzzerTestOneInput")
public func zooKeeperFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ZooKeeperFuzzing.decodeServerStream(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if ZOOKEEPER_FUZZ
/// libFuzzer's driver, linked in by `-sanitize=fuzzer`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif

/// Fuzzes ZooKeeperNIO's decoders (built with `-sanitize=fuzzer -DZOOKEEPER_FUZZ`, see scripts/fuzz.sh), or, in a
/// normal build, replays the inputs in the files named on the command line, such as a crash a fuzzer found.
@main
enum ZooKeeperFuzz {
    static func main() {
        #if ZOOKEEPER_FUZZ
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, zooKeeperFuzzOneInput))
        #else
        let files = CommandLine.arguments.dropFirst()
        if files.isEmpty {
            FileHandle.standardError.write(Data("usage: ZooKeeperFuzz FILE...  (replays each file as a server's byte stream)\n".utf8))
            exit(2)
        }
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("ZooKeeperFuzz: cannot read \(file)\n".utf8))
                exit(1)
            }
            bytes.withUnsafeBytes { ZooKeeperFuzzing.decodeServerStream($0) }
            print("\(file): decoded without a crash (\(bytes.count) bytes)")
        }
        #endif
    }
}
