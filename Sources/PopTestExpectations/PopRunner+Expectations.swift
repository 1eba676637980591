import PopTestSupport
import TestProcesses
import Testing

extension PopRunner {
    /// Runs `pop ARGS` and records a test issue unless it exits 0.
    @discardableResult
    public func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> CommandResult {
        try await ok(arguments, sourceLocation: sourceLocation)
    }

    /// Runs `pop ARGS` and records a test issue unless it exits 0.
    @discardableResult
    public func ok(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> CommandResult {
        let result = try await run(arguments)
        #expect(result.status == 0, "expected success:\n\(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Like ``ok(_:sourceLocation:)-([String],_)``, but ends the test when the command fails (later steps depend on it).
    @discardableResult
    public func require(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> CommandResult {
        try await require(arguments, sourceLocation: sourceLocation)
    }

    /// Like ``ok(_:sourceLocation:)-([String],_)``, but ends the test when the command fails (later steps depend on it).
    @discardableResult
    public func require(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> CommandResult {
        let result = try await run(arguments)
        try #require(result.status == 0, "expected success:\n\(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs `pop ARGS` and records a test issue unless it exits with `status` and its standard error mentions every
    /// one of `words` (case-insensitively).
    @discardableResult
    public func fails(
        _ status: Int32, _ arguments: [String], mentioning words: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> CommandResult {
        let result = try await run(arguments)
        #expect(result.status == status, "expected exit \(status):\n\(result)", sourceLocation: sourceLocation)
        for word in words {
            #expect(
                result.stderr.localizedCaseInsensitiveContains(word), "expected '\(word)' on standard error:\n\(result)",
                sourceLocation: sourceLocation)
        }
        return result
    }
}
