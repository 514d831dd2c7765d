import Foundation
import RouteSetup
import Testing

@testable import Testbed
@testable import lbbench

/// An interrupted benchmark leaves no testbed behind.
@Suite(privileged)
struct InterruptTests {
    @Test func ctrlCRemovesTheTestbedOfARunningBenchmark() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("lbbench")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["engine", "--seconds", "30", "--rates", "1000"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait for the first testbed to be announced on stderr.
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while !text.contains(" is up"), Date() < deadline {
            text += String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
        }
        let id = try #require(
            text.split(separator: "\n").first { $0.contains(" is up") }?
                .split(separator: " ").dropFirst(3).first.map(String.init))
        #expect(NetworkNamespace.all().contains { $0.hasPrefix("\(VirtualNetwork.namePrefix)\(id)-") })
        process.interrupt()  // SIGINT to this child, by its PID
        process.waitUntilExit()
        let rest = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 128 + SIGINT, "\(text)\(rest)")
        #expect(!NetworkNamespace.all().contains { $0.hasPrefix("\(VirtualNetwork.namePrefix)\(id)-") })
    }
}
