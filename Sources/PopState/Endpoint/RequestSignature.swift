import Crypto
import Foundation

/// How the command line proves to an agent's endpoint that it holds the namespace's endpoint key, without sending it.
///
/// The request carries `Authorization: Pop-HMAC-SHA256 t=MILLISECONDS,n=NONCE,s=SIGNATURE`, where SIGNATURE is the
/// base64 of HMAC-SHA256 over
///
/// ```
/// pop endpoint request v1\n METHOD\n TARGET\n MILLISECONDS\n NONCE
/// ```
///
/// keyed with a key derived from the ``EndpointKey`` for this one purpose. TARGET is the path and query exactly as
/// sent. The agent accepts a request whose time is within ``window`` of its own clock and whose nonce it has not seen
/// within that window, so a captured request cannot be replayed, and a signature says nothing about the key.
public enum RequestSignature {
    /// The authorization scheme's name.
    public static let scheme = "Pop-HMAC-SHA256"
    /// How far a request's time may be from the agent's clock (machines' clocks differ a little).
    public static let window: Int64 = 120_000

    /// The header value signing `method` and `target` now, with a fresh nonce.
    public static func authorization(method: String, target: String, key: EndpointKey) -> String {
        var generator = SystemRandomNumberGenerator()
        let nonce = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        return authorization(
            method: method, target: target, key: key, milliseconds: Int64(Date().timeIntervalSince1970 * 1000),
            nonce: nonce)
    }

    /// The header value signing `method` and `target` at `milliseconds` with `nonce`.
    public static func authorization(method: String, target: String, key: EndpointKey, milliseconds: Int64, nonce: String) -> String {
        "\(scheme) t=\(milliseconds),n=\(nonce),s=\(signature(method: method, target: target, key: key, milliseconds: milliseconds, nonce: nonce))"
    }

    /// A header's claims, once its signature checked out.
    public struct Claims: Hashable, Sendable {
        /// When the request was signed, in milliseconds since the epoch.
        public var milliseconds: Int64
        /// Its nonce.
        public var nonce: String
    }

    /// The claims of `header` if it signs `method` and `target` with `key` within ``window`` of `now` (milliseconds);
    /// nil otherwise. The comparison takes the same time wherever the signatures differ.
    public static func verify(
        _ header: String, method: String, target: String, key: EndpointKey, now: Int64
    ) -> Claims? {
        guard header.hasPrefix(scheme + " ") else { return nil }
        var fields: [String: String] = [:]
        for part in header.dropFirst(scheme.count + 1).split(separator: ",") {
            guard let equals = part.firstIndex(of: "=") else { return nil }
            fields[String(part[..<equals]).trimmingCharacters(in: .whitespaces)] = String(part[part.index(after: equals)...])
        }
        guard let time = fields["t"].flatMap({ Int64($0) }), let nonce = fields["n"], let offered = fields["s"],
            nonce.count >= 16, nonce.count <= 64, nonce.allSatisfy({ $0.isHexDigit }), abs(now - time) <= window,
            let offeredBytes = Data(base64Encoded: offered)
        else { return nil }
        // HMAC's own check compares in constant time.
        guard
            HMAC<SHA256>.isValidAuthenticationCode(
                Array(offeredBytes), authenticating: message(method: method, target: target, milliseconds: time, nonce: nonce),
                using: key.derived(purpose))
        else { return nil }
        return Claims(milliseconds: time, nonce: nonce)
    }

    static let purpose = "pop endpoint request key v1"

    static func signature(method: String, target: String, key: EndpointKey, milliseconds: Int64, nonce: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: message(method: method, target: target, milliseconds: milliseconds, nonce: nonce), using: key.derived(purpose))
        return Data(code).base64EncodedString()
    }

    static func message(method: String, target: String, milliseconds: Int64, nonce: String) -> [UInt8] {
        Array("pop endpoint request v1\n\(method)\n\(target)\n\(milliseconds)\n\(nonce)".utf8)
    }
}
