import Foundation

/// How long the slow steps took, printed at the end of a walk.
struct Timings {
    let label: String
    private var entries: [(String, Duration)] = []

    init(label: String) {
        self.label = label
    }

    mutating func record(_ step: String, since start: ContinuousClock.Instant) {
        entries.append((step, ContinuousClock.now - start))
    }

    var report: String {
        entries.map { "tutorial[\(label)]: \($0.0): \(String(format: "%.1f", Double($0.1.components.seconds) + Double($0.1.components.attoseconds) / 1e18)) s" }
            .joined(separator: "\n")
    }
}
