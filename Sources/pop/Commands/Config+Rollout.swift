import ArgumentParser
import Foundation
import PopState

/// `pop config`'s canary options and `--wait`.
struct RolloutOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A new signature goes first to this many machines (the first in machine-id order); 0: no canary (kept).",
            valueName: "n"))
    var canary: Int?

    @Option(
        name: .customLong("healthy-time"),
        help: ArgumentHelp("How long a restarted instance must run (and pass its check) to count as healthy, e.g. 10s (kept).", valueName: "duration"))
    var healthyTime: String?

    @Option(
        name: .customLong("healthy-deadline"),
        help: ArgumentHelp("How long a batch has to become healthy, e.g. 2m; past it the batch failed (kept).", valueName: "duration"))
    var healthyDeadline: String?

    @Flag(
        name: .customLong("auto-revert"), inversion: .prefixedNo,
        help: "When a batch fails, bring back at once the last signature healthy everywhere (kept).")
    var autoRevert: Bool?

    @Flag(name: .long, help: "Wait until the rollout completed (exit 0) or was reverted (exit 1, with the reason).")
    var wait = false

    @Option(name: .long, help: ArgumentHelp("With --wait: give up after this many seconds (exit 1; default 600).", valueName: "seconds"))
    var timeout: Double = 600

    /// Whether any option of the rollout policy is given.
    var given: Bool { canary != nil || healthyTime != nil || healthyDeadline != nil || autoRevert != nil }

    /// The service's rollout policy with the options given (and `maxParallel`) applied; nil when none is given.
    /// Refuses (exit 2) a negative or malformed duration and a canary count above the machines the service runs on.
    func merged(
        _ service: ServiceName, maxParallel: Int?, _ context: CommandContext
    ) async throws -> Rollout? {
        guard given || maxParallel != nil else { return nil }
        if let canary, canary < 0 { throw PopError(.invalidInput, "--canary must be 0 (no canary) or more, not \(canary).") }
        let healthy = try healthyTime.map { try Self.milliseconds($0, option: "--healthy-time") }
        let deadline = try healthyDeadline.map { try Self.milliseconds($0, option: "--healthy-deadline") }
        var rollout = try await context.namespace.rollout(service) ?? Rollout(maxParallel: nil)
        if let maxParallel { rollout.maxParallel = maxParallel == 0 ? nil : maxParallel }
        if let canary { rollout.canary = canary == 0 ? nil : canary }
        if let healthy { rollout.healthyTimeMilliseconds = healthy }
        if let deadline { rollout.healthyDeadlineMilliseconds = deadline }
        if let autoRevert { rollout.autoRevert = autoRevert }
        if let canary, canary > 0 {
            let counted = try await context.namespace.schedulingPolicy(service)?.policy.count
            var machines = counted ?? 0
            if counted == nil { machines = try await context.namespace.placements(service).count }
            guard canary <= machines else {
                throw PopError(
                    .invalidInput,
                    "--canary \(canary) is more than the \(machines) machine\(machines == 1 ? "" : "s") \(service) runs on. Nothing was changed.",
                    hint: "Give at most \(machines), or deploy \(service) to more machines first.")
            }
        }
        return rollout
    }

    /// A duration such as `10s`, `2m`, `500ms`, `1h` or `30` (seconds), in milliseconds; exit 2 when it is negative or
    /// not a duration.
    static func milliseconds(_ text: String, option: String) throws(PopError) -> Int {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        let unit = units.first { text.hasSuffix($0.0) && Double(text.dropLast($0.0.count)) != nil } ?? ("", 1000)
        guard let value = Double(text.dropLast(unit.0.count)), value.isFinite else {
            throw PopError(.invalidInput, "\(option) \(text) is not a duration.", hint: "For example \(option) 10s, 2m or 500ms.")
        }
        guard value >= 0, value * unit.1 <= 86_400_000 else {
            throw PopError(.invalidInput, "\(option) \(text) is out of range: give 0 to 24h.", hint: "For example \(option) 10s.")
        }
        return Int((value * unit.1).rounded())
    }

    /// How a rollout waited for with `--wait` ended.
    enum Outcome: Sendable, Equatable {
        case completed
        case reverted(String)
        case superseded
    }

    /// Waits (woken by changes under the service) until the rollout of `signature` completed (every placed machine
    /// with a registered agent runs it), was reverted, or was superseded by another change; exit 1 unless completed.
    func waitForRollout(_ service: ServiceName, _ signature: ConfigSignature, _ context: CommandContext) async throws {
        let namespace = context.namespace
        let outcome = try await namespace.read(
            { try await Self.outcome(service, signature, namespace) }, until: { $0 != nil },
            wokenByChangesUnder: namespace.paths.service(service),
            deadline: .now + .milliseconds(Int(max(0, min(timeout, 86_400)) * 1000)))
        switch outcome ?? nil {
        case .completed?:
            context.done("the rollout of \(signature.short) to \(service) completed")
        case .reverted(let reason)?:
            context.err.line(context.err.paint("reverted:", .red) + " the rollout of \(signature.short) to \(service) failed and was reverted: \(reason)")
            throw ExitCode(1)
        case .superseded?:
            context.err.line("the rollout of \(signature.short) to \(service) was superseded by a newer change")
            throw ExitCode(1)
        case nil:
            throw PopError(
                .system, "The rollout of \(signature.short) to \(service) did not complete within \(timeout) s.",
                hint: "`pop status \(service)` shows where it stands.")
        }
    }

    static func outcome(
        _ service: ServiceName, _ signature: ConfigSignature, _ namespace: PopNamespace
    ) async throws -> Outcome? {
        let current = try await namespace.service(service)
        if current.signature != signature {
            if let state = try await namespace.rolloutState(service)?.state, state.phase == .reverted,
                state.signature == current.signature
            {
                return .reverted(state.reason ?? "a batch failed")
            }
            return .superseded
        }
        let registered = Set(try await namespace.machines().map(\.id))
        let placed = try await namespace.placements(service).keys.filter { registered.contains($0) }
        let records = try await namespace.instances(service)
        let done = placed.allSatisfy { records[$0]?.signature == signature && records[$0]?.state == .running }
        return done ? .completed : nil
    }
}
