import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Request counters and a latency histogram per route, exposed in the Prometheus text format at `/metrics`.
/// Labels are route templates and status codes only: never a path with an id, never personal data.
final class ServerMetrics: Sendable {
    static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private struct State {
        var requests: [String: Int] = [:]
        var histogram: [String: [Int]] = [:]
        var sums: [String: Double] = [:]
    }

    private let state = Mutex(State())

    func record(route: String, method: String, status: Int, seconds: Double) {
        state.withLock { s in
            s.requests["\(method) \(route) \(status)", default: 0] += 1
            let key = "\(method) \(route)"
            var counts = s.histogram[key] ?? [Int](repeating: 0, count: Self.buckets.count + 1)
            let index = Self.buckets.firstIndex { seconds <= $0 } ?? Self.buckets.count
            counts[index] += 1
            s.histogram[key] = counts
            s.sums[key, default: 0] += seconds
        }
    }

    /// The exposition text.
    var text: String {
        state.withLock { s in
            var lines = [
                "# HELP consentry_http_requests_total Requests by route, method and status.", "# TYPE consentry_http_requests_total counter",
            ]
            for (key, count) in s.requests.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: " ")
                lines.append("consentry_http_requests_total{method=\"\(parts[0])\",route=\"\(parts[1])\",status=\"\(parts[2])\"} \(count)")
            }
            lines += ["# HELP consentry_http_request_duration_seconds Request latency.", "# TYPE consentry_http_request_duration_seconds histogram"]
            for (key, counts) in s.histogram.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: " ")
                let labels = "method=\"\(parts[0])\",route=\"\(parts[1])\""
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
