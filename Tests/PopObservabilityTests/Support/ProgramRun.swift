import Foundation
import TestProcesses

/// Runs a program to its end with `input` on its standard input, and returns its status and output (standard output,
/// then standard error). Argv only: no shell.
func runProgram(
    _ argv: [String], input: String = "", environment: [String: String] = ProcessInfo.processInfo.environment
) async throws -> (status: Int32, output: String) {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pop-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let result = try await CommandRunner.run(
        argv, environment: environment, scratch: scratch, timeout: .seconds(300), input: input)
    return (result.status, result.stdout + result.stderr)
}
