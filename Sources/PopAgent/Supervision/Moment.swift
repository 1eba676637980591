import Foundation

/// A point in time as both a monotonic instant (for intervals) and a wall-clock date (for records people read).
public struct Moment: Hashable, Sendable {
    /// The monotonic instant, used for backoff, uptime and grace periods.
    public var instant: ContinuousClock.Instant
    /// The wall-clock date, used in published records.
    public var date: Date

    /// Creates a moment from its two readings.
    public init(instant: ContinuousClock.Instant, date: Date) {
        self.instant = instant
        self.date = date
    }

    /// The current moment.
    public static func now() -> Moment {
        Moment(instant: .now, date: Date())
    }

    /// This moment moved by `duration` on both clocks.
    public func advanced(by duration: Duration) -> Moment {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return Moment(instant: instant.advanced(by: duration), date: date.addingTimeInterval(seconds))
    }
}
