import CPopAgentLinux
import Foundation
import Glibc

/// Runs a program to its end with `input` on its standard input, and returns its status and combined output.
/// Argv only: no shell.
func runProgram(_ argv: [String], input: String = "", environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (status: Int32, output: String) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pop-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let inputFile = folder.appendingPathComponent("input").path
    let outputFile = folder.appendingPathComponent("output").path
    try input.write(toFile: inputFile, atomically: false, encoding: .utf8)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inputFile, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    cpop_spawn_add_closefrom(&actions, 3)
    let argvPointers = argv.map { strdup($0) } + [nil]
    defer { for pointer in argvPointers { free(pointer) } }
    let environmentPointers = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for pointer in environmentPointers { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawnp(&pid, argv[0], &actions, nil, argvPointers, environmentPointers)
    guard result == 0 else { throw RawHTTP.Failure(description: "cannot run \(argv[0]): \(String(cString: strerror(result)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? ""
    return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
}
