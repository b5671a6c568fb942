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
        /// Adds another run's counts, latencies and time.
        mutating func merge(_ other: Result) {
            requests += other.requests
            statuses.merge(other.statuses, uniquingKeysWith: +)
            latencies += other.latencies
            seconds += other.seconds
        }
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

    /// Sends one request and reads the whole response into `received` (reused between calls, so that the client
    /// spends as little as it can per request); returns the status, or nil when the connection failed.
    static func exchange(_ fd: Int32, _ request: [UInt8], buffer: inout [UInt8], received: inout [UInt8]) -> Int? {
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, 0) }
            guard n > 0 else { return nil }
            sent += n
        }
        received.removeAll(keepingCapacity: true)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            guard n > 0 else { return nil }
            received.append(contentsOf: buffer[0..<n])
            if headerEnd == nil, let end = headEnd(received) {
                headerEnd = end
                contentLength = Self.contentLength(received[0..<end])
            }
            if let end = headerEnd, received.count >= end + contentLength, received.count >= 12 {
                return (9..<12).reduce(0) { $0 * 10 + Int(received[$1]) - 48 }
            }
        }
    }

    /// The offset just past the blank line that ends the head, if it arrived.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
        return nil
    }

    /// The value of the `Content-Length` header in `head` (0 when absent), matched without regard to case.
    static func contentLength(_ head: ArraySlice<UInt8>) -> Int {
        let name = Array("content-length:".utf8)
        var lineStart = head.startIndex
        while lineStart < head.endIndex {
            let lineEnd = head[lineStart...].firstIndex(of: 13) ?? head.endIndex
            if lineEnd - lineStart > name.count, zip(head[lineStart..<lineStart + name.count], name).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 }) {
                return head[(lineStart + name.count)..<lineEnd].reduce(0) { $1 >= 48 && $1 <= 57 ? $0 * 10 + Int($1) - 48 : $0 }
            }
            lineStart = lineEnd + 2
        }
        return 0
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
            var received: [UInt8] = []
            received.reserveCapacity(64 * 1024)
            var n = 0
            while Date() < deadline {
                let begin = DispatchTime.now().uptimeNanoseconds
                guard let status = exchange(fd, request(worker, n), buffer: &buffer, received: &received) else {
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

    /// Render requests for `bench_mail`, cycling through the demo's customers. Each is the same bytes but for the
    /// eight digits of the customer id, written into a copy of one prepared request: building them costs the client
    /// about what the static request costs it, so the two loads compare the server's work.
    struct RenderRequests: Sendable {
        let template: [UInt8]
        let digits: Int
        let profiles: Int

        init(token: String, profiles: Int) {
            let body = #"{"template":"bench_mail","subject":{"customer_id":"C00000000"},"campaign":{"name":"Winter"}}"#
            let text =
                "POST /v1/render HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let bytes = Array(text.utf8), marker = Array(#""customer_id":"C"#.utf8)
            template = bytes
            digits = (0...(bytes.count - marker.count)).first { Array(bytes[$0..<$0 + marker.count]) == marker }! + marker.count
            self.profiles = profiles
        }

        /// The n-th request of a worker.
        func request(worker: Int, n: Int) -> [UInt8] {
            var bytes = template
            var id = (worker * 7919 + n * 13) % profiles
            for i in (0..<8).reversed() {
                bytes[digits + i] = UInt8(48 + id % 10)
                id /= 10
            }
            return bytes
        }
    }

    /// Static and gated loads measured in alternating rounds of `seconds` each, so that a slow spell of the machine
    /// weighs on both alike. `ratios` holds each round's render rate over its static rate.
    static func compare(
        port: Int, rounds: Int, seconds: Double, staticRequest: [UInt8], render: RenderRequests
    ) -> (staticLoad: Result, renderLoad: Result, ratios: [Double]) {
        var staticTotal = Result(), renderTotal = Result(), ratios: [Double] = []
        var offset = 0
        for _ in 0..<rounds {
            let staticRound = run(port: port, connections: 50, seconds: seconds) { _, _ in staticRequest }
            let base = offset
            let renderRound = run(port: port, connections: 50, seconds: seconds) { worker, n in render.request(worker: worker, n: base + n) }
            // The next round goes on with later customers instead of repeating the same ones.
            offset += renderRound.requests
            ratios.append(renderRound.rate / staticRound.rate)
            staticTotal.merge(staticRound)
            renderTotal.merge(renderRound)
        }
        return (staticTotal, renderTotal, ratios)
    }
}
