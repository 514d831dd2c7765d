import Foundation
import Hashing
import Testbed

/// `lbbench pps --vip ADDR` on a client of a real farm (servers running `lbnode run` and `lbbench serve`): UDP
/// requests from many client flows at a paced rate, every reply counted per server by the ID the echo application
/// puts in front; the same search as on the testbed (overload, then the highest rate with loss under the limit).
/// A request and its reply make one round trip: the rate is of requests answered.
struct RealHostThroughput {
    var vip: IPAddress
    var interface: String?
    var frameSizes: [Int]
    var seconds: Double
    var repetitions: Int
    var steps: Int
    var flows = 256
    var progress: (String) -> Void

    /// One paced trial: requests sent, answers by server.
    struct Trial: Codable {
        var offeredRate: Double
        var sent: Int
        var answeredPerServer: [String: Int]
        var answered: Int { answeredPerServer.values.reduce(0, +) }
        var passed: Bool { sent > 0 && Double(sent - answered) < Double(sent) * ThroughputBenchmark.lossLimit }
    }

    struct Search: Codable {
        var frameBytes: Int
        var repetition: Int
        var zeroLossRate: Double
        var overloadOffered: Double
        var overloadAnswered: Double
        var trials: [Trial]
    }

    struct Report: Codable {
        var vip: String
        var flows: Int
        var seconds: Double
        var searches: [Search]

        var table: String {
            var table = TextTable(
                title: "Throughput of the farm at \(vip): \(flows) UDP client flows, \(seconds) s trials, answers with "
                    + "loss under \(ThroughputBenchmark.lossLimit * 100) %; min / median / max",
                header: ["frame", "zero-loss answers/s", "overload answers/s", "answers per server at zero loss"])
            for frameBytes in Set(searches.map(\.frameBytes)).sorted() {
                let of = searches.filter { $0.frameBytes == frameBytes }
                let best = of.max { $0.zeroLossRate < $1.zeroLossRate }
                let split =
                    best?.trials.last { $0.passed }?.answeredPerServer.sorted { $0.key < $1.key }
                    .map { "\($0.key): \($0.value)" }.joined(separator: ", ") ?? "-"
                table.add([
                    "\(frameBytes) B", ThroughputReport.Spread(of.map(\.zeroLossRate)).text,
                    ThroughputReport.Spread(of.map(\.overloadAnswered)).text, split,
                ])
            }
            return table.rendered
        }
    }

    func run() throws -> Report {
        var searches: [Search] = []
        for frameBytes in frameSizes {
            for repetition in 1...repetitions {
                searches.append(try search(frameBytes: frameBytes, repetition: repetition))
            }
        }
        return Report(vip: "\(vip)", flows: flows, seconds: seconds, searches: searches)
    }

    func search(frameBytes: Int, repetition: Int) throws -> Search {
        let overload = try trial(rate: nil, frameBytes: frameBytes)
        progress(
            "\(frameBytes) B, run \(repetition): overload \(Int(overload.offeredRate)) sent/s, \(overload.answered) answered"
        )
        guard overload.answered > 0 else {
            throw FarmError(
                "no answer from \(vip) port \(VirtualFarm.echoPort): is `lbbench serve` running on the servers?")
        }
        var trials = [overload]
        var low = 0.0
        var high = overload.offeredRate
        var best: Trial? = overload.passed ? overload : nil
        if best == nil {
            for _ in 0..<steps {
                let rate = (low + high) / 2
                let trial = try self.trial(rate: rate, frameBytes: frameBytes)
                trials.append(trial)
                progress("\(frameBytes) B: \(Int(rate)) offered, \(trial.sent - trial.answered) lost")
                if trial.passed {
                    low = rate
                    best = trial
                } else {
                    high = rate
                }
            }
        }
        return Search(
            frameBytes: frameBytes, repetition: repetition,
            zeroLossRate: best.map { Double($0.answered) / seconds } ?? 0, overloadOffered: overload.offeredRate,
            overloadAnswered: Double(overload.answered) / seconds, trials: trials)
    }

    /// Sends for `seconds` at `rate` requests per second (nil: as fast as the sender goes).
    func trial(rate: Double?, frameBytes: Int) throws -> Trial {
        let interval = rate.map { Double(flows) * 1000 / $0 } ?? 0.000_001
        let headers = vip.isIPv4 ? 46 : 66  // Ethernet + FCS, IP, UDP
        let probe = try FlowProbe(
            vip: vip, port: VirtualFarm.echoPort, udp: flows, tcp: 0, firstPort: 40000, intervalMilliseconds: interval,
            interface: interface, udpRequestBytes: frameBytes - headers)
        probe.start()
        Thread.sleep(forTimeInterval: seconds)
        probe.stop(lingerMilliseconds: 300)
        var perServer: [String: Int] = [:]
        for record in probe.records {
            var seen = Set<UInt32>()
            for reply in record.replies where seen.insert(reply.sequence).inserted {
                perServer["\(reply.server)", default: 0] += 1
            }
        }
        let sent = probe.records.map(\.sent).reduce(0, +)
        return Trial(offeredRate: Double(sent) / seconds, sent: sent, answeredPerServer: perServer)
    }
}
