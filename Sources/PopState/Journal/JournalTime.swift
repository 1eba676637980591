import Foundation

/// Times as journals keep them (nanoseconds since the epoch), as `--since` takes them, and as `--json` prints them.
public enum JournalTime {
    /// Parses `--since`: a duration back from `now` (`30s`, `10m`, `2h`, `1d`, `1h30m`, `500ms`), or a time
    /// (`2025-01-31T12:34:56Z`, `2025-01-31T12:34:56.5+01:00`, `2025-01-31 12:34:56` and `2025-01-31` in local time),
    /// or seconds since the epoch (`@1738326896`). Returns nanoseconds since the epoch.
    public static func parseSince(_ text: String, now: Date = Date()) throws(PopError) -> Int64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = parseDuration(trimmed) {
            return Int64((now.timeIntervalSince1970 - seconds) * 1e9)
        }
        if trimmed.hasPrefix("@"), let seconds = Double(trimmed.dropFirst()) {
            return Int64(seconds * 1e9)
        }
        if let date = parseDate(trimmed) {
            return Int64(date.timeIntervalSince1970 * 1e9)
        }
        throw PopError(
            .invalidInput, "--since \(PopError.quoted(text)) is neither a duration nor a time.",
            hint: "Give a duration such as 30s, 10m, 2h, 1d or 1h30m, a time such as 2025-01-31T12:34:56Z or '2025-01-31 12:34:56' (local), or @SECONDS since the epoch.")
    }

    /// `1h30m` as seconds; nil when it is not a duration.
    static func parseDuration(_ text: String) -> Double? {
        var total = 0.0
        var number = ""
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while let character = rest.first {
            if character.isNumber || character == "." {
                number.append(character)
                rest = rest.dropFirst()
                continue
            }
            guard let value = Double(number) else { return nil }
            let unit: Double
            if rest.hasPrefix("ms") {
                unit = 0.001
                rest = rest.dropFirst(2)
            } else {
                switch character {
                case "s": unit = 1
                case "m": unit = 60
                case "h": unit = 3600
                case "d": unit = 86400
                default: return nil
                }
                rest = rest.dropFirst()
            }
            total += value * unit
            number = ""
        }
        return number.isEmpty ? total : nil
    }

    static func parseDate(_ text: String) -> Date? {
        let zoned = ISO8601DateFormatter()
        zoned.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = zoned.date(from: text) { return date }
        zoned.formatOptions = [.withInternetDateTime]
        if let date = zoned.date(from: text) { return date }
        let local = DateFormatter()
        local.locale = Locale(identifier: "en_US_POSIX")
        local.timeZone = TimeZone.current
        for format in ["yyyy-MM-dd HH:mm:ss.SSS", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd"] {
            local.dateFormat = format
            if let date = local.date(from: text) { return date }
        }
        return nil
    }

    /// `2025-01-31T12:34:56.123456789Z`: RFC 3339 in UTC with nanoseconds.
    public static func rfc3339(_ nanoseconds: Int64) -> String {
        let seconds = nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000
        let fraction = nanoseconds - seconds * 1_000_000_000
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var nanos = String(fraction)
        nanos = String(repeating: "0", count: 9 - nanos.count) + nanos
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)).\(nanos)Z"
    }

    /// Parses ``rfc3339(_:)``'s form back (for programs reading `--json`).
    public static func parseRFC3339(_ text: String) -> Int64? {
        guard text.count == 30, text.hasSuffix("Z"), let dot = text.firstIndex(of: ".") else { return nil }
        let whole = String(text[..<dot]) + "Z"
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        guard let date = formatter.date(from: whole), let nanos = Int64(text[text.index(after: dot)..<text.index(before: text.endIndex)])
        else { return nil }
        return Int64(date.timeIntervalSince1970.rounded()) * 1_000_000_000 + nanos
    }
}
