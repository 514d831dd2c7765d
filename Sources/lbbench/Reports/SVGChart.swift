import Foundation

/// A small chart as SVG text, for `--report`: lines through points (throughput against offered load) or grouped
/// bars (interruption per trial, answers per server). No dependencies; a browser shows it.
struct SVGChart {
    enum Kind {
        /// Each series is a line through its (x, y) points, sorted by x.
        case lines
        /// Each series is one bar per category (x is the category index).
        case bars(categories: [String])
    }

    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var kind: Kind
    var series: [Series]

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    static let (width, height) = (720.0, 400.0)
    static let (left, right, top, bottom) = (80.0, 160.0, 40.0, 60.0)

    var svg: String {
        let plotWidth = Self.width - Self.left - Self.right
        let plotHeight = Self.height - Self.top - Self.bottom
        let all = series.flatMap(\.points)
        let xMax: Double
        switch kind {
        case .lines: xMax = max(all.map(\.x).max() ?? 1, 1e-9)
        case .bars(let categories): xMax = Double(max(categories.count, 1))
        }
        let yMax = Self.niceCeiling(all.map(\.y).max() ?? 1)
        let x = { (value: Double) in Self.left + value / xMax * plotWidth }
        let y = { (value: Double) in Self.top + plotHeight - value / yMax * plotHeight }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(Self.height))" \
            font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Self.width / 2)" y="20" text-anchor="middle" font-size="14">\(Self.escape(title))</text>

            """
        for step in 0...4 {  // horizontal grid and y ticks
            let value = yMax * Double(step) / 4
            out +=
                "<line x1=\"\(Self.left)\" x2=\"\(Self.left + plotWidth)\" y1=\"\(y(value))\" y2=\"\(y(value))\" "
                + "stroke=\"#ddd\"/><text x=\"\(Self.left - 6)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">"
                + "\(Self.format(value))</text>\n"
        }
        out +=
            "<line x1=\"\(Self.left)\" x2=\"\(Self.left)\" y1=\"\(Self.top)\" y2=\"\(Self.top + plotHeight)\" stroke=\"black\"/>\n"
        out +=
            "<text x=\"\(Self.left + plotWidth / 2)\" y=\"\(Self.height - 12)\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        out +=
            "<text transform=\"translate(16 \(Self.top + plotHeight / 2)) rotate(-90)\" text-anchor=\"middle\">"
            + "\(Self.escape(yLabel))</text>\n"
        switch kind {
        case .lines:
            for step in 0...4 {
                let value = xMax * Double(step) / 4
                out +=
                    "<text x=\"\(x(value))\" y=\"\(Self.top + plotHeight + 18)\" text-anchor=\"middle\">"
                    + "\(Self.format(value))</text>\n"
            }
            for (index, line) in series.enumerated() {
                let color = Self.colors[index % Self.colors.count]
                let points = line.points.sorted { $0.x < $1.x }.map { "\(x($0.x)),\(y($0.y))" }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
                for point in line.points {
                    out += "<circle cx=\"\(x(point.x))\" cy=\"\(y(point.y))\" r=\"3\" fill=\"\(color)\"/>\n"
                }
            }
        case .bars(let categories):
            let slot = plotWidth / Double(max(categories.count, 1))
            let barWidth = slot * 0.8 / Double(max(series.count, 1))
            for (index, category) in categories.enumerated() {
                out +=
                    "<text x=\"\(Self.left + slot * (Double(index) + 0.5))\" y=\"\(Self.top + plotHeight + 18)\" "
                    + "text-anchor=\"middle\">\(Self.escape(category))</text>\n"
            }
            for (index, bars) in series.enumerated() {
                let color = Self.colors[index % Self.colors.count]
                for point in bars.points {
                    let left = Self.left + slot * (point.x + 0.1) + barWidth * Double(index)
                    out +=
                        "<rect x=\"\(left)\" y=\"\(y(point.y))\" width=\"\(barWidth)\" "
                        + "height=\"\(Self.top + plotHeight - y(point.y))\" fill=\"\(color)\"/>\n"
                }
            }
        }
        for (index, line) in series.enumerated() {  // legend
            let top = Self.top + 18 * Double(index)
            out +=
                "<rect x=\"\(Self.width - Self.right + 16)\" y=\"\(top)\" width=\"12\" height=\"12\" "
                + "fill=\"\(Self.colors[index % Self.colors.count])\"/><text x=\"\(Self.width - Self.right + 34)\" "
                + "y=\"\(top + 10)\">\(Self.escape(line.name))</text>\n"
        }
        return out + "</svg>\n"
    }

    /// 1, 2 or 5 times a power of ten, at or above `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, floor(log10(value)))
        return [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= value } ?? 10 * power
    }

    static func format(_ value: Double) -> String {
        if value >= 1_000_000 { return String(format: "%.1fM", value / 1_000_000) }
        if value >= 10_000 { return String(format: "%.0fk", value / 1000) }
        return value == value.rounded() ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
