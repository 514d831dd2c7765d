import Foundation
import Yams

/// Walks a YAML document with the key path and line of every value, so that errors name both. Unknown keys are
/// refused (a typo must not silently fall back to a default).
struct ConfigReader {
    let file: String

    /// A mapping being read: its keys, and the keys already taken (to refuse the others).
    struct Section {
        let path: String
        let line: Int
        let pairs: [(key: String, value: Yams.Node, line: Int)]

        func value(_ key: String) -> Yams.Node? { pairs.first { $0.key == key }?.value }
        func line(of key: String) -> Int { pairs.first { $0.key == key }?.line ?? line }
        func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    func error(_ key: String, _ line: Int, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line, key: key, message: message)
    }

    /// The top-level mapping of `text`.
    func document(_ text: String) throws -> Section {
        let node: Yams.Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(file: file, line: 0, key: "", message: "not valid YAML: \(error)")
        }
        guard let node else { throw error("", 0, "the file is empty") }
        return try section(node, path: "")
    }

    func section(_ node: Yams.Node, path: String) throws -> Section {
        guard let mapping = node.mapping else { throw error(path, Self.line(node), "must be a mapping of keys") }
        var pairs: [(String, Yams.Node, Int)] = []
        for (key, value) in mapping {
            guard let name = key.string else { throw error(path, Self.line(key), "keys must be strings") }
            if pairs.contains(where: { $0.0 == name }) {
                throw error(path.isEmpty ? name : "\(path).\(name)", Self.line(key), "appears twice")
            }
            pairs.append((name, value, Self.line(key)))
        }
        return Section(path: path, line: Self.line(node), pairs: pairs)
    }

    /// Refuses keys of `section` that are not in `known`.
    func rejectUnknown(_ section: Section, known: Set<String>) throws {
        for pair in section.pairs where !known.contains(pair.key) {
            throw error(
                section.child(pair.key), pair.line,
                "unknown key (known here: \(known.sorted().joined(separator: ", ")))")
        }
    }

    func subsection(_ section: Section, _ key: String, required: Bool = true) throws -> Section? {
        guard let value = section.value(key) else {
            if required { throw error(section.child(key), section.line, "missing") }
            return nil
        }
        return try self.section(value, path: section.child(key))
    }

    func string(_ section: Section, _ key: String, default fallback: String? = nil) throws -> String {
        guard let value = section.value(key) else {
            if let fallback { return fallback }
            throw error(section.child(key), section.line, "missing")
        }
        guard value.scalar != nil, let text = value.string, !text.isEmpty else {
            throw error(section.child(key), section.line(of: key), "must be a non-empty string")
        }
        return text
    }

    func integer(_ section: Section, _ key: String, in range: ClosedRange<Int>, default fallback: Int? = nil) throws
        -> Int
    {
        guard let value = section.value(key) else {
            if let fallback { return fallback }
            throw error(section.child(key), section.line, "missing")
        }
        guard let number = value.int, range.contains(number) else {
            throw error(
                section.child(key), section.line(of: key),
                "'\(value.string ?? "?")' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// One of `T`'s cases (by its raw value), or `fallback` when the key is absent.
    func choice<T: RawRepresentable & CaseIterable>(_ section: Section, _ key: String, default fallback: T) throws -> T
    where T.RawValue == String {
        T(rawValue: try choice(section, key, among: T.allCases.map(\.rawValue), default: fallback.rawValue))!
    }

    /// The value of `key` among `values` (by their descriptions), or `fallback` when the key is absent.
    func choice<T: CustomStringConvertible>(_ section: Section, _ key: String, among values: [T], default fallback: T)
        throws -> T
    {
        guard section.value(key) != nil else { return fallback }
        let text = try string(section, key)
        guard let value = values.first(where: { $0.description == text }) else {
            throw error(
                section.child(key), section.line(of: key),
                "'\(text)' is not one of \(values.map(\.description).joined(separator: ", "))")
        }
        return value
    }

    func list(_ section: Section, _ key: String) throws -> [(node: Yams.Node, path: String)] {
        guard let value = section.value(key) else { return [] }
        guard let sequence = value.sequence else {
            throw error(section.child(key), section.line(of: key), "must be a list")
        }
        return sequence.enumerated().map { ($0.element, "\(section.child(key))[\($0.offset)]") }
    }

    /// Yams marks count lines from 1.
    static func line(_ node: Yams.Node) -> Int { node.mark?.line ?? 0 }
}
