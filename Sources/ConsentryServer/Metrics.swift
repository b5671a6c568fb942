import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Request counters and a latency histogram per route, exposed in the Prometheus text format at `/metrics`.
/// Labels are route templates and status codes only: never a path with an id, never personal data.
final class ServerMetrics: Sendable {
    static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private struct Route: Hashable {
        var method: String
        var route: String
    }

    private struct Counted: Hashable {
        var route: Route
        var status: Int
    }

    private struct State {
        var requests: [Counted: Int] = [:]
        var histogram: [Route: [Int]] = [:]
        var sums: [Route: Double] = [:]
    }

    private let state = Mutex(State())

    func record(route: String, method: String, status: Int, seconds: Double) {
        let key = Route(method: method, route: route)
        let index = Self.buckets.firstIndex { seconds <= $0 } ?? Self.buckets.count
        state.withLock { s in
            s.requests[Counted(route: key, status: status), default: 0] += 1
            // Updated in place: copying the bucket array out and back allocated on every request.
            s.histogram[key, default: [Int](repeating: 0, count: Self.buckets.count + 1)][index] += 1
            s.sums[key, default: 0] += seconds
        }
    }

    /// The exposition text.
    var text: String {
        state.withLock { s in
            var lines = [
                "# HELP consentry_http_requests_total Requests by route, method and status.", "# TYPE consentry_http_requests_total counter",
            ]
            for (key, count) in s.requests.sorted(by: {
                ($0.key.route.method, $0.key.route.route, "\($0.key.status)") < ($1.key.route.method, $1.key.route.route, "\($1.key.status)")
            }) {
                lines.append(
                    "consentry_http_requests_total{method=\"\(key.route.method)\",route=\"\(key.route.route)\",status=\"\(key.status)\"} \(count)")
            }
            lines += ["# HELP consentry_http_request_duration_seconds Request latency.", "# TYPE consentry_http_request_duration_seconds histogram"]
            for (key, counts) in s.histogram.sorted(by: { ($0.key.method, $0.key.route) < ($1.key.method, $1.key.route) }) {
                let labels = "method=\"\(key.method)\",route=\"\(key.route)\""
                var cumulative = 0
                for (i, bound) in Self.buckets.enumerated() {
                    cumulative += counts[i]
                    lines.append("consentry_http_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)")
                }
                cumulative += counts[Self.buckets.count]
                lines.append("consentry_http_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(cumulative)")
                lines.append("consentry_http_request_duration_seconds_sum{\(labels)} \(s.sums[key] ?? 0)")
                lines.append("consentry_http_request_duration_seconds_count{\(labels)} \(cumulative)")
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}

/// Times every request and counts it under its route template.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try await next(request, context)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        metrics.record(
            route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: Int(response.status.code), seconds: seconds)
        return response
    }
}
