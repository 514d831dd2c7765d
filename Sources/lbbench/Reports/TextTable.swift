import Foundation

/// A plain-text table with aligned columns, for every lbbench report.
struct TextTable {
    let title: String
    let header: [String]
    private(set) var rows: [[String]] = []

    init(title: String, header: [String]) {
        self.title = title
        self.header = header
    }

    mutating func add(_ row: [String]) {
        precondition(row.count == header.count, "row has \(row.count) cells, header \(header.count)")
        rows.append(row)
    }

    /// Columns padded to their widest cell; the first column is left-aligned, the others (figures) right-aligned.
    var rendered: String {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + padding : padding + cell
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        return ([title, line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// Prints `value` as sorted, indented JSON: the `--json` output of every subcommand.
func printJSON<Value: Encodable>(_ value: Value) throws {
    print(String(decoding: try jsonData(value), as: UTF8.self))
}

/// `value` as sorted, indented JSON.
func jsonData<Value: Encodable>(_ value: Value) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(value)
}
