import ConsentryCore
public import ConsentryGate
import ConsentryPersonalization
import ConsentryPolicy
import ConsentryRights
public import Foundation
import HTTPTypes
public import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The request context: who the bearer token says is calling.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Who the token speaks for (`token:<name>`, its role and id): every gate operation of the request is decided and
    /// audited for it. Set by ``AuthMiddleware`` before any `/v1` route runs.
    var principal = Principal(actor: "", role: .marketer)
    /// The request's id (`X-Request-Id`, the caller's when well-formed, otherwise a new one): set by
    /// ``ProblemMiddleware`` first, carried into ``principal`` so that every audit entry of the request records it.
    var requestID: String?
    /// The actor recorded in the audit log.
    var actor: String { principal.actor }
    /// The role whose grants apply.
    var role: Role { principal.role }

    init(source: Source) { coreContext = .init(source: source) }
    var maxUploadSize: Int { Server.bodyLimit }
}

/// A token bucket per API token: `rate` requests per second on average, bursts of twice that.
final class RateLimiter: Sendable {
    let rate: Double
    private let buckets = Mutex([String: (tokens: Double, at: Double)]())

    init(rate: Double) { self.rate = rate }

    /// Whether `key` may make a request now; when not, the seconds until it may.
    func admit(_ key: String) -> Double? {
        guard rate > 0 else { return nil }
        let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        return buckets.withLock { buckets -> Double? in
            var bucket = buckets[key] ?? (2 * rate, now)
            bucket.tokens = min(2 * rate, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            defer { buckets[key] = bucket }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
            bucket.tokens -= 1
            return nil
        }
    }
}

/// Authenticates `Authorization: Bearer …` against the vault's token store (constant-time) for every `/v1` route,
/// then applies the token's rate limit.
struct AuthMiddleware: RouterMiddleware {
    let vault: Vault
    let limiter: RateLimiter

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        // A vault whose files failed their check answers every request with why, not with a verdict on the token.
        if let fault = vault.knownStorageFault { throw Problem.from(fault) }
        // The scheme name is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer`.
        guard let header = request.headers[.authorization], header.count < 200, header.utf8.count > 7,
            header.prefix(7).lowercased() == "bearer "
        else {
            throw Problem(.unauthorized, "unauthorized", "send `Authorization: Bearer <token>`; `consentry token create` makes one")
        }
        switch await vault.authenticate(token: String(header.dropFirst(7))) {
        case .success(let principal):
            if let wait = limiter.admit(principal.actor) {
                var problem = Problem(
                    .tooManyRequests, "rate_limited", "more than \(Int(limiter.rate)) requests per second for this token; retry later")
                problem.retryAfter = Int(wait.rounded(.up))
                throw problem
            }
            var context = context
            context.principal = principal
            context.principal.requestID = context.requestID
            return try await next(request, context)
        case .failure(.unavailable):
            throw Problem.from(
                vault.storageFault()
                    ?? GateError(.storage, "the token store could not be read; check the vault's disk and `consentry check`, then retry"))
        case .failure(let refusal):
            throw Problem(.unauthorized, "unauthorized", "the token is \(refusal.rawValue); create a new one with `consentry token create`")
        }
    }
}

/// Settings of the HTTP API.
public struct ServerConfiguration: Sendable {
    /// The address to listen on. The default is `127.0.0.1`.
    public var host: String
    /// The port; 0 picks a free one. The default is 8080.
    public var port: Int
    /// Requests per second per token (bursts of twice that); 0 turns the limit off. The default is 100.
    public var rateLimit: Double

    /// Creates settings; every parameter has its default.
    public init(host: String = "127.0.0.1", port: Int = 8080, rateLimit: Double = 100) {
        self.host = host
        self.port = port
        self.rateLimit = rateLimit
    }
}

/// The HTTP API (docs/api.md, `/openapi.yaml`): every route authenticates a token, and every data route goes through the gate.
public enum Server {
    /// The largest request body accepted.
    public static let bodyLimit = 256 * 1024
    /// The deepest JSON nesting accepted.
    static let depthLimit = 16

    /// The OpenAPI document served at `/openapi.yaml`.
    public static var openAPI: Data? {
        Bundle.module.url(forResource: "openapi", withExtension: "yaml").flatMap { try? Data(contentsOf: $0) }
    }

    /// The application serving `vault`: every route, middleware and the token store, without the background work of
    /// ``run(vault:configuration:onReady:)`` (policy reload, file checks). Tests drive it in-process with
    /// HummingbirdTesting; `consentry serve` runs it.
    ///
    /// ```swift
    /// let app = Server.buildApplication(vault: vault, configuration: ServerConfiguration(port: 0))
    /// try await app.test(.router) { client in … }
    /// ```
    public static func buildApplication(
        vault: Vault, configuration: ServerConfiguration = ServerConfiguration(), onReady: @escaping @Sendable (Int) -> Void = { _ in }
    ) -> some ApplicationProtocol {
        var logger = Logger(label: "consentry")
        logger.logLevel = .info
        let port = configuration.port
        return Application(
            router: router(vault, limiter: RateLimiter(rate: configuration.rateLimit)),
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "consentry"),
            onServerRunning: { channel in onReady(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// Serves `vault` until SIGINT or SIGTERM; then writes a final signed audit checkpoint.
    /// - Parameter onReady: called with the port once the server listens (the one picked when the port is 0).
    public static func run(
        vault: Vault, configuration: ServerConfiguration = ServerConfiguration(), onReady: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        var logger = Logger(label: "consentry")
        logger.logLevel = .info
        // Audit exports are streamed from private temporary files; a server stopped mid-stream leaves one behind.
        let exports = vault.directory.appendingPathComponent("exports")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: exports.path)) ?? [] where name.hasPrefix(".audit-") {
            try? FileManager.default.removeItem(at: exports.appendingPathComponent(name))
        }
        let app = buildApplication(vault: vault, configuration: configuration, onReady: onReady)
        // Edits to the vault's policy files take effect within a second, audited, without a restart; files that do not
        // load make the gate deny every request until they are fixed.
        let policyWatcher = Task.detached {
            var faultLogged = false
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                // The database files are checked even while no request writes, so that a lost WAL is found at once.
                if let fault = vault.storageFault() {
                    if !faultLogged {
                        logger.critical("the vault's files failed their check; every request is refused", metadata: ["reason": "\(fault.message)"])
                    }
                    faultLogged = true
                    continue
                }
                do throws(GateError) {
                    if let version = try vault.reloadPolicyIfChanged() {
                        let loads = (try? vault.policy.get()) != nil
                        logger.notice(
                            loads ? "policy reloaded" : "policy files do not load; the gate denies every decision",
                            metadata: ["version": "\(version)"])
                    }
                } catch {
                    logger.error("policy reload could not be audited", metadata: ["reason": "\(error.message)"])
                }
            }
        }
        defer { policyWatcher.cancel() }
        try await app.runService()
        try? vault.checkpointIfDue(force: true)
    }

    static func router(_ vault: Vault, limiter: RateLimiter) -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        let metrics = ServerMetrics()
        // Metrics see the final status, problems included, so they wrap the problem middleware.
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: ProblemMiddleware())
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.text)))
        }
        router.get("healthz") { _, _ in json(["status": "ok"]) }
        router.get("readyz") { _, _ -> Response in
            if let fault = vault.storageFault() ?? vault.diskSpaceProblem() { throw Problem.from(fault) }
            guard (try? vault.checkpointIfDue()) != nil, vault.allowedFields(for: .service) != nil else {
                throw Problem(.serviceUnavailable, "unavailable", "the vault's policy does not load or the audit log cannot be written")
            }
            return json(["status": "ready"])
        }
        router.get("openapi.yaml") { _, _ -> Response in
            guard let data = openAPI else { throw Problem(.internalServerError, "internal", "the API document is missing from the build") }
            return Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        let v1 = router.group("v1").add(middleware: AuthMiddleware(vault: vault, limiter: limiter))
        Routes(vault: vault).register(v1)
        return router
    }

    static func json(_ value: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        json(data: jsonData(value), status: status)
    }

    /// A JSON response with `data` as its body.
    static func json(data: Data, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `value` as the API's JSON: sorted keys, snake_case.
    static func jsonData(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }
}

/// A validated JSON request body: an object whose keys are all expected.
struct Body {
    let object: [String: Any]
    /// The body as received, for idempotency keys (a retry must send the same bytes).
    var raw: [UInt8] = []

    /// Reads and checks the body: content type, size, UTF-8, nesting depth, an object, and no unknown keys (so no caller
    /// can set roles, ids or consent it was not asked for).
    static func read(_ request: Request, allowed: Set<String>, required: Set<String> = []) async throws -> Body {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw Problem(.unsupportedMediaType, "unsupported_media_type", "send the body as `Content-Type: application/json`")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: Server.bodyLimit) } catch {
            throw Problem(.contentTooLarge, "too_large", "the request body is larger than \(Server.bodyLimit / 1024) KiB")
        }
        let bytes = Array(buffer.readableBytesView)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw Problem(.unprocessableContent, "validation", "the body is not valid UTF-8")
        }
        // Strict first: duplicate keys, `NaN`, out-of-range numbers and deep nesting are refused with where they are
        // (Foundation's parser keeps the last duplicate and says only that the body is not JSON).
        let parsed: StrictJSON.Value
        do { parsed = try StrictJSON.parse(bytes[...], maximumDepth: Server.depthLimit) } catch {
            throw Problem(
                .unprocessableContent, "validation", "the body is not acceptable JSON at byte \(error.column): \(error.reason)",
                pointer: error.pointer.isEmpty ? nil : error.pointer)
        }
        guard case .object = parsed, let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw Problem(.unprocessableContent, "validation", "the body must be one JSON object, such as {\"subject\": {…}}")
        }
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw Problem(
                .unprocessableContent, "validation", "unknown field `\(key.prefix(40))`; allowed: \(allowed.sorted().joined(separator: ", "))",
                pointer: "/\(key.prefix(40))")
        }
        for key in required.sorted() where object[key] == nil {
            throw Problem(.unprocessableContent, "validation", "`\(key)` is required", pointer: "/\(key)")
        }
        return Body(object: object, raw: bytes)
    }

    func string(_ key: String, max: Int = 1024) throws -> String? {
        guard let value = object[key] else { return nil }
        guard let text = value as? String, text.count <= max else {
            throw Problem(.unprocessableContent, "validation", "`\(key)` must be text of at most \(max) characters", pointer: "/\(key)")
        }
        return text
    }

    /// An ISO 8601 time, in milliseconds since 1970.
    func timestamp(_ key: String) throws -> Int64? {
        guard let text = try string(key, max: 40) else { return nil }
        guard let millis = try? Normalize.timestampMillis(text) else {
            throw Problem(.unprocessableContent, "validation", "`\(key)` must be an ISO 8601 time such as 2026-11-20T10:00:00Z", pointer: "/\(key)")
        }
        return millis
    }

    func choice<T: RawRepresentable & CaseIterable>(_ key: String, as: T.Type) throws -> T? where T.RawValue == String {
        guard let text = try string(key, max: 64) else { return nil }
        guard let value = T(rawValue: text) else {
            throw Problem(.unprocessableContent, "validation", "`\(key)` must be one of \(T.choiceList)", pointer: "/\(key)")
        }
        return value
    }

    /// `subject`: {"email"} | {"customer_id"} | {"trigger"} (exactly one).
    func subject(_ key: String = "subject") throws -> SubjectReference {
        guard let object = object[key] as? [String: Any], object.count == 1, let (name, value) = object.first else {
            throw Problem(
                .unprocessableContent, "validation", "`\(key)` is an object with exactly one of `email`, `customer_id` or `trigger`",
                pointer: "/\(key)")
        }
        switch (name, value) {
        case ("email", let text as String) where text.count <= 320: return .email(text)
        case ("customer_id", let text as String) where text.count <= 128: return .customerID(text)
        case ("trigger", let id as NSNumber): return .triggerEntry(id.int64Value)
        default:
            throw Problem(
                .unprocessableContent, "validation", "`\(key).\(name.prefix(40))` is not a valid subject reference",
                pointer: "/\(key)/\(name.prefix(40))")
        }
    }
}
