#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// This host's name and network addresses, for the machine record.
enum MachineAddresses {
    /// The host name.
    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The addresses of the interfaces that are up, non-loopback first (IPv4 before IPv6 within each group).
    static func current() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var entries: [(loopback: Bool, v6: Bool, text: String)] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            let flags = Int32(entry.pointee.ifa_flags)
            guard flags & Int32(IFF_UP) != 0 else { continue }
            let loopback = flags & Int32(IFF_LOOPBACK) != 0
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                var ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                guard inet_ntop(AF_INET, &ipv4, &buffer, socklen_t(buffer.count)) != nil else { continue }
                entries.append((loopback, false, String(cString: buffer)))
            case AF_INET6:
                var ipv6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                guard inet_ntop(AF_INET6, &ipv6, &buffer, socklen_t(buffer.count)) != nil else { continue }
                entries.append((loopback, true, String(cString: buffer)))
            default:
                continue
            }
        }
        var seen: Set<String> = []
        return entries.sorted { ($0.loopback ? 1 : 0, $0.v6 ? 1 : 0) < ($1.loopback ? 1 : 0, $1.v6 ? 1 : 0) }
            .map(\.text).filter { seen.insert($0).inserted }
    }
}
