import Foundation
import Hashing
import RouteSetup
import Synchronization

/// Runs a program to its end in a host's namespace (a process started from a thread inherits the thread's namespace),
/// or in the caller's with nil, and returns its exit status and its standard output and error; sent `stopSignal` (by
/// PID) after `timeout` seconds.
public func runToEnd(
    in namespace: NetworkNamespace?, _ executable: String, _ arguments: [String], timeout: Double,
    stopSignal: Int32 = SIGKILL
) throws -> (status: Int32, output: String) {
    let output = Pipe()
    let start = {
        Result {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = output
            process.standardError = output
            try process.run()
            return process
        }
    }
    let process = try (namespace.map { try $0.run { () throws(NetlinkError) in start() } } ?? start()).get()
    TestbedRegistry.register(child: process.processIdentifier)
    defer { TestbedRegistry.unregister(child: process.processIdentifier) }
    let timer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, stopSignal) } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    timer.cancel()
    return (process.terminationStatus, text)
}

/// wrk, the HTTP load generator (Debian's package): keep-alive connections, as many requests as they can make.
public enum Wrk {
    public static let path = "/usr/bin/wrk"

    /// What one run measured.
    public struct Result: Codable, Sendable {
        public var requests: Int
        public var requestsPerSecond: Double
        /// The 99th percentile of request latency, in milliseconds.
        public var p99Milliseconds: Double
        /// Socket errors (connect, read, write, timeout) and answers that were not 2xx or 3xx.
        public var errors: Int
        /// Which errors, as wrk says them ("connect 0, read 8, write 0, timeout 0"); nil when there were none.
        public var errorKinds: String? = nil
    }

    /// Runs wrk from `namespace` against `url` for `seconds`.
    public static func run(
        in namespace: NetworkNamespace, url: String, seconds: Int, connections: Int = 32, threads: Int = 1
    ) throws -> Result {
        let (status, output) = try runToEnd(
            in: namespace, path,
            ["-t\(threads)", "-c\(connections)", "-d\(seconds)s", "--latency", "--timeout", "2s", url],
            timeout: Double(seconds) + 15)
        guard status == 0, let result = parse(output) else {
            throw FarmError("wrk against \(url) failed (exit \(status)): \(output)")
        }
        return result
    }

    /// One wrk per URL at the same time (a client per server), `connections` each: their requests, rates and errors
    /// added up, the worst p99.
    public static func runTogether(
        in namespace: NetworkNamespace, urls: [String], seconds: Int, connections: Int
    ) throws -> Result {
        // A thread each (a dispatch queue would run only as many at once as there are CPUs).
        let results = Mutex<[Swift.Result<Result, Error>]>([])
        let done = DispatchGroup()
        for url in urls {
            done.enter()
            Thread {
                let result = Swift.Result {
                    try run(in: namespace, url: url, seconds: seconds, connections: connections)
                }
                results.withLock { $0.append(result) }
                done.leave()
            }.start()
        }
        done.wait()
        let each = try results.withLock { $0 }.map { try $0.get() }
        return Result(
            requests: each.map(\.requests).reduce(0, +), requestsPerSecond: each.map(\.requestsPerSecond).reduce(0, +),
            p99Milliseconds: each.map(\.p99Milliseconds).max() ?? 0, errors: each.map(\.errors).reduce(0, +),
            errorKinds: each.contains { $0.errorKinds != nil }
                ? each.compactMap(\.errorKinds).joined(separator: "; ") : nil)
    }

    /// Reads wrk's report: "N requests in", "Requests/sec:", the "99%" latency line, "Socket errors:" and
    /// "Non-2xx or 3xx responses:".
    static func parse(_ output: String) -> Result? {
        var result = Result(requests: 0, requestsPerSecond: 0, p99Milliseconds: 0, errors: 0)
        var sawRate = false
        for line in output.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let words = line.split(separator: " ").map(String.init)
            if line.hasPrefix("Requests/sec:"), let rate = Double(words.last ?? "") {
                result.requestsPerSecond = rate
                sawRate = true
            } else if line.contains(" requests in "), let count = Int(words[0]) {
                result.requests = count
            } else if words.first == "99%", words.count == 2 {
                result.p99Milliseconds = milliseconds(words[1]) ?? 0
            } else if line.hasPrefix("Socket errors:") {
                result.errors += words.compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }
                    .reduce(0, +)
                result.errorKinds = String(line.dropFirst("Socket errors:".count)).trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("Non-2xx or 3xx responses:"), let count = Int(words.last ?? "") {
                result.errors += count
                result.errorKinds = [result.errorKinds, "non-2xx or 3xx \(count)"].compactMap { $0 }
                    .joined(separator: ", ")
            }
        }
        return sawRate ? result : nil
    }

    /// "812.00us", "2.51ms", "1.20s" in milliseconds.
    static func milliseconds(_ text: String) -> Double? {
        for (unit, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where text.hasSuffix(unit) {
            return Double(text.dropLast(unit.count)).map { $0 * scale }
        }
        return nil
    }
}

/// iperf3 (Debian's package): bulk TCP in either direction, or UDP at a fixed rate, from a client to a server.
public enum Iperf3 {
    /// What one test measured, from iperf3's JSON report.
    public struct Result: Codable, Sendable {
        /// Bits per second the receiver got.
        public var bitsPerSecond: Double
        /// Bytes the receiver got.
        public var bytes: Double
        /// UDP: datagrams lost, in percent (0 for TCP).
        public var lostPercent: Double
        /// TCP: segments the sender retransmitted.
        public var retransmits: Int
    }

    /// Runs `iperf3 -c server` from `namespace`.
    ///
    /// - Parameters:
    ///   - download: the server sends (`-R`); otherwise the client uploads.
    ///   - udpBitsPerSecond: a UDP test at this rate; nil for TCP.
    ///   - bytes: a TCP test of this many bytes instead of `seconds`.
    public static func run(
        in namespace: NetworkNamespace, server: String, seconds: Int = 5, download: Bool = false,
        udpBitsPerSecond: Int? = nil, bytes: Int? = nil, timeout: Double? = nil
    ) throws -> Result {
        var arguments = ["-c", server, "-p", "\(ApplicationServers.iperfPort)", "-J", "--connect-timeout", "3000"]
        arguments += bytes.map { ["-n", "\($0)"] } ?? ["-t", "\(seconds)"]
        if download { arguments.append("-R") }
        if let udpBitsPerSecond { arguments += ["-u", "-b", "\(udpBitsPerSecond)"] }
        let (status, output) = try runToEnd(
            in: namespace, ApplicationServers.iperfPath, arguments, timeout: timeout ?? Double(seconds) + 15)
        guard status == 0, let result = parse(output, udp: udpBitsPerSecond != nil) else {
            throw FarmError("iperf3 \(arguments.joined(separator: " ")) failed (exit \(status)): \(output.suffix(400))")
        }
        return result
    }

    /// The receiver's side of iperf3's JSON `end` section.
    static func parse(_ output: String, udp: Bool) -> Result? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
            let end = json["end"] as? [String: Any]
        else { return nil }
        if udp {
            guard let sum = end["sum"] as? [String: Any], let rate = sum["bits_per_second"] as? Double else {
                return nil
            }
            return Result(
                bitsPerSecond: rate, bytes: sum["bytes"] as? Double ?? 0,
                lostPercent: sum["lost_percent"] as? Double ?? 0, retransmits: 0)
        }
        guard let received = end["sum_received"] as? [String: Any],
            let rate = received["bits_per_second"] as? Double
        else { return nil }
        let sent = end["sum_sent"] as? [String: Any]
        return Result(
            bitsPerSecond: rate, bytes: received["bytes"] as? Double ?? 0, lostPercent: 0,
            retransmits: sent?["retransmits"] as? Int ?? 0)
    }
}

/// Round trips of single HTTP requests on one keep-alive connection, with a pause between them: the latency a path
/// adds when it is not loaded (a ring that holds frames back until a timer fires shows here, not under wrk's load).
public enum RequestLatency {
    public struct Result: Codable, Sendable {
        public var requests: Int
        public var medianMicroseconds: Double
        public var p99Microseconds: Double
    }

    /// `requests` GETs to nginx at `address` from `namespace`, `pauseMilliseconds` apart.
    public static func measure(
        in namespace: NetworkNamespace, address: IPAddress, requests: Int = 500, pauseMilliseconds: Double = 2
    ) throws -> Result {
        let request = Array("GET / HTTP/1.1\r\nHost: vipfarm\r\n\r\n".utf8)
        let times = try namespace.run { () throws(NetlinkError) in
            Swift.Result { () throws -> [Double] in
                let connection = try StreamConnection(to: address, port: ApplicationServers.httpPort)
                var times: [Double] = []
                for _ in 0..<requests {
                    let start = ContinuousClock.now
                    // nginx's page is "server N\n": the answer is complete at its last newline after the headers.
                    guard
                        connection.exchange(
                            request,
                            until: { reply in
                                reply.last == 0x0A && String(decoding: reply, as: UTF8.self).contains("\r\n\r\nserver ")
                            }) != nil
                    else { throw FarmError("no answer from nginx at \(address)") }
                    let elapsed = (ContinuousClock.now - start).components
                    times.append(Double(elapsed.seconds) * 1e6 + Double(elapsed.attoseconds) / 1e12)
                    Thread.sleep(forTimeInterval: pauseMilliseconds / 1000)
                }
                return times.sorted()
            }
        }.get()
        return Result(
            requests: requests, medianMicroseconds: times[times.count / 2],
            p99Microseconds: times[min(times.count - 1, times.count * 99 / 100)])
    }
}
