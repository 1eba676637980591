import Foundation
import PopState
import Testing

@testable import PopAgent

/// The endpoint's frames, request signatures and access rules, without a server.
@Suite struct EndpointWireTests {
    static let web = try! ServiceName("web")

    static let frames: [JournalFrame] = [
        .identity(JournalKey(stream: .stdout, service: web), 0xdead_beef),
        .line(JournalLine(stream: .stdout, seq: 1, time: 1_700_000_000_123_456_789, text: Array("hello".utf8)[...])),
        .line(JournalLine(stream: .stderr, seq: 7, time: -5, text: Array("with\tbytes \u{1}\r and more ".utf8)[...])),
        .line(JournalLine(stream: .setup, seq: 8, time: 3, text: [][...])),
        .event(LifecycleEvent(.restarted, service: "web", time: 42, reason: .configChange)),
        .gap(JournalKey(stream: nil, service: nil), 3...9),
        .watermark(1_700_000_000_999_999_999),
        .failure("disk gone"),
        .end,
    ]

    func describe(_ frames: [JournalFrame]) -> [String] {
        frames.map { frame in
            switch frame {
            case .line(let line): "line \(line.stream) \(line.seq) \(line.time) \(Array(line.text))"
            case .event(let event): "event \(event.kind) \(event.reason?.rawValue ?? "") \(event.time)"
            case .identity(let key, let id): "identity \(key) \(id)"
            case .gap(let key, let range): "gap \(key) \(range)"
            case .watermark(let time): "watermark \(time)"
            case .end: "end"
            case .failure(let message): "failure \(message)"
            }
        }
    }

    @Test func responsesAreDatedInTheFormatOfRFC9110() {
        #expect(HTTPDate.format(secondsSinceEpoch: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(secondsSinceEpoch: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(secondsSinceEpoch: 1_796_000_000) == "Mon, 30 Nov 2026 00:53:20 GMT")
    }

    @Test func framesSurviveAnyCutting() throws {
        var bytes: [UInt8] = []
        for frame in Self.frames { frame.encode(into: &bytes) }
        let expected = describe(Self.frames)
        // Whole, one byte at a time, and cut at every place.
        var whole = JournalFrameDecoder()
        #expect(describe(try whole.decode(bytes)) == expected)
        var single = JournalFrameDecoder()
        var pieces: [JournalFrame] = []
        for byte in bytes { pieces += try single.decode([byte]) }
        #expect(describe(pieces) == expected)
        for cut in 0...bytes.count {
            var decoder = JournalFrameDecoder()
            let decoded = try decoder.decode(bytes[..<cut]) + decoder.decode(bytes[cut...])
            #expect(describe(decoded) == expected, "cut at \(cut)")
            #expect(!decoder.hasPartialFrame)
        }
    }

    @Test func malformedFramesAreRefused() {
        for text in ["q 1\n", "o 1 2\nx", "o a 2 3\nabc", "g stdout:web 9 3\n", "i nowhere 12\n"] {
            var decoder = JournalFrameDecoder()
            #expect(throws: PopError.self, "\(text)") { _ = try decoder.decode(Array(text.utf8)) }
        }
    }

    @Test func aSignatureOpensOnlyItsOwnRequestOnce() async {
        let key = EndpointKey.generate()
        let access = EndpointAccess(credentials: nil, key: key, refresh: { nil })
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let target = "/logs?service=web&streams=stdout%2Cstderr"
        let header = RequestSignature.authorization(method: "GET", target: target, key: key)
        #expect(await access.allows(method: "GET", target: target, authorization: header, now: now))
        // The same request again (a replay) is refused, and so is any change to it.
        #expect(await !access.allows(method: "GET", target: target, authorization: header, now: now))
        let fresh = { RequestSignature.authorization(method: "GET", target: target, key: key) }
        #expect(await !access.allows(method: "GET", target: target + "&follow=1", authorization: fresh(), now: now))
        #expect(await !access.allows(method: "POST", target: target, authorization: fresh(), now: now))
        let other = RequestSignature.authorization(method: "GET", target: target, key: EndpointKey.generate())
        #expect(await !access.allows(method: "GET", target: target, authorization: other, now: now))
        // Too old, or from the future beyond the window.
        let old = RequestSignature.authorization(
            method: "GET", target: target, key: key, milliseconds: now - RequestSignature.window - 1, nonce: "00112233445566778899aabbccddeeff")
        #expect(await !access.allows(method: "GET", target: target, authorization: old, now: now))
        // Tampered signature.
        var tampered = fresh()
        tampered.removeLast(3)
        tampered += "AA="
        #expect(await !access.allows(method: "GET", target: target, authorization: tampered, now: now))
        #expect(await !access.allows(method: "GET", target: target, authorization: nil, now: now))
        #expect(await !access.allows(method: "GET", target: target, authorization: "Pop-HMAC-SHA256 garbage", now: now))
    }

    @Test func prometheusGetsInOnlyAtMetrics() async throws {
        let key = EndpointKey.generate()
        let credentials = try StoreCredentials(user: "ops", password: "s3cret:pw", source: "test")
        let access = EndpointAccess(credentials: credentials, key: key, refresh: { nil })
        let basic = "Basic " + Data("ops:s3cret:pw".utf8).base64EncodedString()
        let bearer = "Bearer " + key.scrapeToken
        #expect(await access.allows(method: "GET", target: "/metrics", authorization: basic))
        #expect(await access.allows(method: "GET", target: "/metrics", authorization: bearer))
        #expect(await !access.allows(method: "GET", target: "/logs?service=web", authorization: basic))
        #expect(await !access.allows(method: "GET", target: "/resources", authorization: bearer))
        #expect(await !access.allows(method: "GET", target: "/metrics", authorization: "Basic " + Data("ops:wrong".utf8).base64EncodedString()))
        #expect(await !access.allows(method: "GET", target: "/metrics", authorization: "Bearer " + EndpointKey.generate().scrapeToken))
        // Without credentials (an open namespace), Basic opens nothing.
        let open = EndpointAccess(credentials: nil, key: key, refresh: { nil })
        #expect(await !open.allows(method: "GET", target: "/metrics", authorization: basic))
        #expect(await open.allows(method: "GET", target: "/metrics", authorization: bearer))
    }

    @Test func aReplacedKeyIsReadAgain() async {
        let old = EndpointKey.generate()
        let new = EndpointKey.generate()
        let access = EndpointAccess(credentials: nil, key: old, refresh: { new })
        let target = "/events"
        #expect(await access.allows(method: "GET", target: target, authorization: RequestSignature.authorization(method: "GET", target: target, key: new)))
        #expect(await !access.allows(method: "GET", target: target, authorization: RequestSignature.authorization(method: "GET", target: target, key: old)))
    }

    @Test func keysAndAddressesReadBack() throws {
        let key = EndpointKey.generate()
        #expect(EndpointKey(nodeData: key.nodeData) == key)
        #expect(EndpointKey(nodeData: Array("{\"key\":\"short\"}".utf8)) == nil)
        #expect(key.scrapeToken.count == 43 && key.scrapeToken != EndpointKey.generate().scrapeToken)
        for text in ["http://10.0.0.2:7676", "https://host.example:443", "http://[fe80::1]:80", "unix:///var/lib/pop/agent.sock"] {
            #expect(EndpointAddress(text)?.description == text)
        }
        #expect(EndpointAddress("ftp://x:1") == nil)
        #expect(EndpointAddress.hostAndPort(":7676", defaultPort: nil)! == ("0.0.0.0", 7676))
        #expect(EndpointAddress.hostAndPort("127.0.0.1", defaultPort: 7676)! == ("127.0.0.1", 7676))
        #expect(EndpointAddress.hostAndPort("1.2.3.4:99999", defaultPort: nil) == nil)
    }

    @Test func sinceAndTimesParse() throws {
        let now = Date(timeIntervalSince1970: 1_000_000)
        #expect(try JournalTime.parseSince("10m", now: now) == Int64(1_000_000 - 600) * 1_000_000_000)
        #expect(try JournalTime.parseSince("1h30m", now: now) == Int64(1_000_000 - 5400) * 1_000_000_000)
        #expect(try JournalTime.parseSince("2025-01-31T12:34:56Z") == 1_738_326_896 * 1_000_000_000)
        #expect(try JournalTime.parseSince("@1738326896") == 1_738_326_896 * 1_000_000_000)
        for bad in ["", "10x", "yesterday", "2025-13-45", "m10"] {
            #expect(throws: PopError.self, "\(bad)") { _ = try JournalTime.parseSince(bad) }
        }
        let time: Int64 = 1_738_326_896_123_456_789
        #expect(JournalTime.rfc3339(time) == "2025-01-31T12:34:56.123456789Z")
        #expect(JournalTime.parseRFC3339(JournalTime.rfc3339(time)) == time)
        #expect(JournalTime.rfc3339(0) == "1970-01-01T00:00:00.000000000Z")
    }
}
