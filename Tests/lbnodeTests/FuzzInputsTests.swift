import Foundation
import Testing

@testable import lbnode

/// Every kept fuzz input (seeds, and inputs that once crashed a target) goes through its target again.
struct FuzzInputsTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "FuzzInputs")

    @Test(arguments: FuzzTarget.allCases)
    func keptInputsRunWithoutACrash(target: FuzzTarget) throws {
        let folder = Self.directory.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        #expect(!files.isEmpty)
        for file in files {
            let bytes = try Data(contentsOf: file)
            bytes.withUnsafeBytes { target.run($0) }
        }
    }
}
