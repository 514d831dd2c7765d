import Testing

@testable import Testbed

/// wrk's report as lbbench apps reads it: the rate, the p99, and every error with its kind.
struct WrkReportTests {
    static let report = """
        Running 5s test @ http://198.18.0.100/
          1 threads and 32 connections
          Latency Distribution
             50%  512.00us
             99%    2.51ms
          190512 requests in 5.00s, 150.12MB read
          Socket errors: connect 0, read 8, write 0, timeout 2
          Non-2xx or 3xx responses: 3
        Requests/sec:  38102.40
        Transfer/sec:     30.02MB
        """

    @Test func errorsAreCountedWithTheirKinds() throws {
        let result = try #require(Wrk.parse(Self.report))
        #expect(result.requests == 190512 && result.requestsPerSecond == 38102.40)
        #expect(result.p99Milliseconds == 2.51)
        #expect(result.errors == 13)
        #expect(result.errorKinds == "connect 0, read 8, write 0, timeout 2, non-2xx or 3xx 3")
    }

    @Test func aCleanRunHasNoErrorKinds() throws {
        let clean = Self.report.split(separator: "\n").filter { !$0.contains("errors") && !$0.contains("Non-2xx") }
        let result = try #require(Wrk.parse(clean.joined(separator: "\n")))
        #expect(result.errors == 0 && result.errorKinds == nil)
    }
}
