import Foundation
import HTTPTypes
import Hummingbird
import PopState

/// An error the dashboard answers with: an HTTP status and a JSON body saying what happened and what to do.
///
/// Its message never holds a secret: option values of secret options are masked before an error is built
/// (``DashboardActions``), and credentials are never echoed.
struct DashboardError: HTTPResponseError, Sendable {
    enum Code: Sendable {
        /// No session: log in first.
        case unauthenticated
        /// A cross-site or unverifiable request.
        case forbidden
        /// A `Host` the dashboard does not answer to (DNS rebinding).
        case wrongHost
        /// Too many failed logins lately.
        case tooManyAttempts
        /// Bad input.
        case invalidInput
        /// No such service, machine or log.
        case notFound
        /// The service changed since the page read it.
        case conflict
        /// The store failed.
        case unavailable
    }

    var code: Code
    var message: String
    var hint: String?

    init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    /// The dashboard error for a store error.
    init(_ error: PopError) {
        let code: Code =
            switch error.code {
            case .invalidInput: .invalidInput
            case .notFound, .notInitialized: .notFound
            case .conflict: .conflict
            case .permissionDenied: .forbidden
            case .storeUnreachable, .corruptState, .system: .unavailable
            }
        self.init(code, error.message, hint: error.hint)
    }

    var status: HTTPResponse.Status {
        switch code {
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .wrongHost: .misdirectedRequest
        case .tooManyAttempts: .tooManyRequests
        case .invalidInput: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .unavailable: .serviceUnavailable
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields: [String: String] = ["error": message]
        if let hint { fields["hint"] = hint }
        return JSONReply.response(fields, status: status)
    }
}

/// JSON responses, never cached.
enum JSONReply {
    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? ServerSentEvent.encoder().encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
