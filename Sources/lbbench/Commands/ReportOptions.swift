import ArgumentParser
import Foundation

/// `--json` and `--report DIR`, shared by every subcommand that measures.
struct ReportOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Also write a Markdown summary, the JSON and SVG charts into this directory.")
    var report: String?

    /// Prints the table (or the JSON) and, with `--report`, writes `<name>.md`, `<name>.json` and one SVG per chart.
    func emit<Value: Encodable>(
        _ name: String, title: String, table: String, value: Value, charts: [String: SVGChart] = [:]
    ) throws {
        if json {
            try printJSON(value)
        } else {
            print(table)
        }
        guard let report else { return }
        do {
            try FileManager.default.createDirectory(atPath: report, withIntermediateDirectories: true)
            try jsonData(value).write(to: URL(fileURLWithPath: "\(report)/\(name).json"))
            var markdown = "# \(title)\n\n\(Self.machineLine)\n\n```\n\(table)\n```\n"
            for (chartName, chart) in charts.sorted(by: { $0.key < $1.key }) {
                let file = "\(name)-\(chartName).svg"
                try chart.svg.write(toFile: "\(report)/\(file)", atomically: true, encoding: .utf8)
                markdown += "\n![\(chart.title)](\(file))\n"
            }
            markdown += "\nThe figures, in full: [\(name).json](\(name).json).\n"
            try markdown.write(toFile: "\(report)/\(name).md", atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("lbbench: report written to \(report)/\(name).md\n".utf8))
        } catch {
            throw ValidationError("cannot write the report into \(report): \(error)")
        }
    }

    /// The machine the figures come from: CPU model, cores, kernel, date.
    static var machineLine: String {
        let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "Machine: \(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, Linux \(release); "
            + "\(Date().formatted(.iso8601))."
    }
}
