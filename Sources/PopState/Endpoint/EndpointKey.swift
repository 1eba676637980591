import Crypto
import Foundation

/// The secret that opens the agents' endpoints: 256 random bits kept in the namespace's `endpoint-key` node.
///
/// Whoever can read the namespace holds it: the node is created by `pop init` (or by an agent that finds it
/// missing) and gets the namespace's ACL, so on a protected namespace only the holders of its credentials can read it,
/// and on an open one, whoever can already run programs on every machine (docs/security.md). The key itself never
/// crosses the network: the command line signs each request with a key derived from it (``RequestSignature``), and
/// Prometheus scrapes with a token derived from it (``scrapeToken``), or with the namespace's user and password.
public struct EndpointKey: Hashable, Sendable {
    /// The key's bytes.
    let bytes: [UInt8]

    /// A new random key from the system's secure generator.
    public static func generate() -> EndpointKey {
        var generator = SystemRandomNumberGenerator()
        return EndpointKey(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The node's content: `{"key":"BASE64"}`.
    public var nodeData: [UInt8] { Array("{\"key\":\"\(Data(bytes).base64EncodedString())\"}".utf8) }

    /// Reads the node's content; nil when it is not a key.
    public init?(nodeData: [UInt8]) {
        struct Stored: Decodable { var key: String }
        guard let stored = try? JSONDecoder().decode(Stored.self, from: Data(nodeData)),
            let bytes = Data(base64Encoded: stored.key), bytes.count == 32
        else { return nil }
        self.bytes = Array(bytes)
    }

    /// A key for one purpose, derived so that no two purposes share one (HMAC-SHA256 of the purpose's name).
    func derived(_ purpose: String) -> SymmetricKey {
        SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(purpose.utf8), using: SymmetricKey(data: bytes))))
    }

    /// The bearer token that lets Prometheus scrape `/metrics` (and nothing else) on an open namespace:
    /// 43 characters of base64url, derived from the key.
    public var scrapeToken: String {
        let code = HMAC<SHA256>.authenticationCode(for: Array("pop endpoint scrape token v1".utf8), using: SymmetricKey(data: bytes))
        return Data(code).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
