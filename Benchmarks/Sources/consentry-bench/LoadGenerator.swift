import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A small HTTP/1.1 load generator: `connections` threads, each with one keep-alive connection, sending requests
/// back to back for `seconds`. Records the latency of every completed request.
enum LoadGenerator {
    struct Result {
        var requests = 0
        var statuses: [Int: Int] = [:]
        var latencies: [Double] = []
        var seconds = 0.0
        var rate: Double { Double(requests) / seconds }
        func percentile(_ p: Double) -> Double {
            let sorted = latencies.sorted()
            return sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
    }

    /// Opens a TCP connection to 127.0.0.1:`port`.
    static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Sends one request and reads the whole response; returns the status, or nil when the connection failed.
    static func exchange(_ fd: Int32, _ request: [UInt8], buffer: inout [UInt8]) -> Int? {
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, 0) }
            guard n > 0 else { return nil }
            sent += n
        }
        var received: [UInt8] = []
        var headerEnd: Int?
        var contentLength = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            guard n > 0 else { return nil }
            received += buffer[0..<n]
            if headerEnd == nil, let range = find(received, [13, 10, 13, 10]) {
                headerEnd = range + 4
                let head = String(decoding: received[0..<range], as: UTF8.self).lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }) {
                    contentLength = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let end = headerEnd, received.count >= end + contentLength {
                let status = String(decoding: received[9..<12], as: UTF8.self)
                return Int(status)
            }
        }
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<i + needle.count]) == needle { return i }
        return nil
    }

    /// Runs the load. `request(worker, n)` builds the n-th request bytes of a worker.
    static func run(port: Int, connections: Int, seconds: Double, request: @escaping @Sendable (Int, Int) -> [UInt8]) -> Result {
        let lock = NSLock()
        nonisolated(unsafe) var total = Result()
        let deadline = Date().addingTimeInterval(seconds)
        let start = Date()
        // One thread per connection (concurrentPerform would run only as many as there are cores).
        let group = DispatchGroup()
        for worker in 0..<connections {
            group.enter()
            Thread {
                defer { group.leave() }
                work(worker)
            }.start()
        }
        @Sendable func work(_ worker: Int) {
            guard var fd = connect(port: port) else { return }
            var local = Result()
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var n = 0
            while Date() < deadline {
                let begin = DispatchTime.now().uptimeNanoseconds
                guard let status = exchange(fd, request(worker, n), buffer: &buffer) else {
                    close(fd)
                    guard let again = connect(port: port) else { break }
                    fd = again
                    continue
                }
                local.latencies.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
                local.requests += 1
                local.statuses[status, default: 0] += 1
                n += 1
            }
            close(fd)
            lock.withLock {
                total.requests += local.requests
                total.latencies += local.latencies
                total.statuses.merge(local.statuses, uniquingKeysWith: +)
            }
        }
        group.wait()
        total.seconds = Date().timeIntervalSince(start)
        return total
    }

    /// Starts the `consentry` binary built next to this one serving `vault` on a free port, without rate limits.
    /// - Returns: the process and the port it printed, or nil when it did not start.
    static func startServer(vault: String) throws -> (process: Process, port: Int)? {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("consentry")
        server.arguments = ["serve", "--vault", vault, "--port", "0", "--rate-limit", "0"]
        let out = Pipe()
        server.standardOutput = out
        server.standardError = FileHandle.nullDevice
        try server.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        guard let text = String(decoding: line, as: UTF8.self).split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines),
            let port = Int(text)
        else {
            server.terminate()
            return nil
        }
        return (server, port)
    }

    /// The n-th render request of a worker: `bench_mail` for customers cycling through the demo's ids.
    static func renderRequest(token: String, profiles: Int, worker: Int, n: Int) -> [UInt8] {
        let body =
            #"{"template":"bench_mail","subject":{"customer_id":"C\#(String(format: "%08d", (worker * 7919 + n * 13) % profiles))"},"campaign":{"name":"Winter"}}"#
        return Array(
            "POST /v1/render HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                .utf8)
    }
}
