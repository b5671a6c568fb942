import ConsentryGate
import Foundation
public import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// An RFC 9457 problem: a stable type, a status, and a detail that says what to fix (never personal data).
public struct Problem: Error, Sendable {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// A stable short type, such as `unauthorized` or `validation`; the `type` URI ends in it.
    public var type: String
    /// What went wrong and how to fix it.
    public var detail: String
    /// The JSON pointer of the field at fault, for validation errors.
    public var pointer: String?
    /// Reason codes of a gate decision.
    public var reasons: [String] = []
    /// Seconds to wait before retrying (429).
    public var retryAfter: Int?

    /// Creates a problem.
    public init(_ status: HTTPResponse.Status, _ type: String, _ detail: String, pointer: String? = nil, reasons: [String] = []) {
        self.status = status
        self.type = type
        self.detail = detail
        self.pointer = pointer
        self.reasons = reasons
    }

    /// The titles of the types.
    static let titles: [String: String] = [
        "unauthorized": "Authentication required", "forbidden": "Denied by the policy gate", "not_found": "Not found",
        "too_large": "Request body too large", "unsupported_media_type": "Unsupported content type", "validation": "Invalid request",
        "conflict": "Conflict", "unavailable": "Service unavailable", "internal": "Internal error", "method_not_allowed": "Method not allowed",
        "rate_limited": "Too many requests",
    ]

    /// The problem as a response with `application/problem+json`.
    func response(requestID: String) -> Response {
        // Members in sorted order, like every other response of the API.
        var body = JSONObjectWriter()
        body.member("detail", detail)
        if let pointer { body.member("pointer", pointer) }
        if !reasons.isEmpty { body.member("reasons", reasons) }
        body.member("request_id", requestID)
        body.member("status", Int64(status.code))
        body.member("title", Self.titles[type] ?? "Error")
        body.member("type", "https://consentry.dev/problems/\(type)")
        var headers: HTTPFields = [.contentType: "application/problem+json", ProblemMiddleware<ServerContext>.header: requestID]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"consentry\"" }
        if let retryAfter { headers[.retryAfter] = String(max(1, retryAfter)) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body.buffer()))
    }

    /// Maps a vault error to a problem.
    static func from(_ error: GateError) -> Problem {
        switch error.code {
        case .denied: Problem(.forbidden, "forbidden", error.message)
        case .notFound: Problem(.notFound, "not_found", error.message)
        case .invalidInput: Problem(.unprocessableContent, "validation", error.message)
        case .alreadyExists: Problem(.conflict, "conflict", error.message)
        case .policy, .storage, .key, .incompatible: Problem(.serviceUnavailable, "unavailable", error.message)
        case .integrity: Problem(.internalServerError, "internal", error.message)
        }
    }
}

/// A request context that carries the request's id to the operations it runs.
protocol RequestIdentifying: RequestContext {
    /// The request's id, set by ``ProblemMiddleware``.
    var requestID: String? { get set }
}

extension ServerContext: RequestIdentifying {}

/// Turns every error into a problem response, so no stack trace or framework message reaches a caller.
struct ProblemMiddleware<Context: RequestIdentifying>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Every request gets an id (`X-Request-Id`, kept if the caller sent a well-formed one) for logs and problems.
        let given = request.headers[Self.header]
        let requestID =
            given.flatMap { $0.count <= 64 && !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } ? $0 : nil }
            ?? Self.newRequestID()
        var context = context
        context.requestID = requestID
        do {
            var response = try await next(request, context)
            response.headers[Self.header] = requestID
            return response
        } catch let problem as Problem {
            return problem.response(requestID: requestID)
        } catch let error as GateError {
            return Problem.from(error).response(requestID: requestID)
        } catch let error as any HTTPResponseError {
            let status = error.status
            let type: String
            switch status {
            case .notFound: type = "not_found"
            case .contentTooLarge: type = "too_large"
            case .methodNotAllowed: type = "method_not_allowed"
            case .unauthorized: type = "unauthorized"
            default: type = status.code >= 500 ? "internal" : "validation"
            }
            let detail =
                status == .contentTooLarge
                ? "the request body is larger than \(Server.bodyLimit / 1024) KiB"
                : status == .notFound ? "no such endpoint; see /openapi.yaml" : status.reasonPhrase
            return Problem(status, type, detail).response(requestID: requestID)
        } catch {
            context.logger.error(
                "request failed", metadata: ["request_id": .string(requestID), "error_type": .string(String(describing: type(of: error)))])
            return Problem(.internalServerError, "internal", "the request failed inside the server; nothing was changed by the failing step")
                .response(requestID: requestID)
        }
    }

    static var header: HTTPField.Name { HTTPField.Name("X-Request-Id")! }

    /// A random id in the UUID layout (32 lower-case hex digits) from the system's generator (`getrandom`):
    /// Foundation's `UUID()` opens, reads and closes `/dev/urandom` for every id, which showed in profiles of the API.
    static func newRequestID() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = (generator.next(), generator.next())
        let hex = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 36) { out in
            var i = 0
            withUnsafeBytes(of: &bytes) { raw in
                for (n, byte) in raw.enumerated() {
                    if n == 4 || n == 6 || n == 8 || n == 10 {
                        out[i] = UInt8(ascii: "-")
                        i += 1
                    }
                    out[i] = hex[Int(byte >> 4)]
                    out[i + 1] = hex[Int(byte & 15)]
                    i += 2
                }
            }
            return i
        }
    }
}
