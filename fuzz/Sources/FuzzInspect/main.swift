// `pstrain inspect` on crafted logs (issue 20: huge integers and losses of
// +-1e308 crashed it): the input is split at its first two NUL bytes into
// logs/server-0.jsonl, logs/worker-0.jsonl and events.jsonl of a run
// directory, which is read as inspect reads it (RunReport); the summary, its
// text, two runs side by side, the HTML report, the Chrome trace (encoded
// as JSON) and the summary's JSON must all be made without a trap.
import Foundation
import FuzzSupport
@testable import PSSupport
@testable import PSRunLog
@testable import PSInspect

let dir = makeTempDir("inspect")

func seeds() -> [(String, [UInt8])] {
    let stamp = #""run":"f","rank":0,"role":"server","index":0,"t":1.5"#
    let server = [
        #"{"event":"hello",\#(stamp),"pid":1,"host":"h","world":3,"servers":1,"workers":2,"build":"b","config_hash":"c"}"#,
        #"{"event":"start",\#(stamp),"steps":10,"steps_per_epoch":5,"params":100,"shard":[0,100],"optimizer":"sgd","precision":"fp32","compression":"none","model":"mlp","batch_size":8}"#,
        #"{"event":"step",\#(stamp),"step":0,"epoch":0,"loss":1e308,"lr":0.1,"loss_scale":1,"skipped":0,"overflow":false,"samples":9223372036854775807,"step_s":0.01,"wait_s":0,"apply_s":0,"bytes_recv":9223372036854775807,"bytes_sent":1}"#,
        #"{"event":"step",\#(stamp),"step":9223372036854775807,"epoch":0,"loss":-1e308,"lr":0.1,"loss_scale":1,"skipped":0,"overflow":false,"samples":9223372036854775807,"step_s":1e308,"wait_s":0,"apply_s":0,"bytes_recv":1,"bytes_sent":9223372036854775807}"#,
        #"{"event":"eval",\#(stamp),"epoch":0,"step":5,"test_accuracy":0.5,"test_loss":1e308}"#,
    ].joined(separator: "\n")
    let worker = #"{"event":"step","run":"f","rank":1,"role":"worker","index":0,"t":2,"step":0,"loss":1e308,"samples":4,"step_s":0.01,"compute_s":0.005,"wait_s":0,"encode_s":0,"decode_s":0,"bytes_sent":9223372036854775807,"bytes_recv":9223372036854775807,"fp32_bytes":9223372036854775807,"rows_pulled":9223372036854775807,"row_id_bytes":9223372036854775807}"#
    let events = #"{"event":"launch","t":0,"run":"f","attempt":1,"command":"x"}"#
    return [("crafted", Array(server.utf8) + [0] + Array(worker.utf8) + [0] + Array(events.utf8)),
            ("empty", [])]
}

@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let parts = UnsafeBufferPointer(start: data, count: size).split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
    let files = [dir + "/logs/server-0.jsonl", dir + "/logs/worker-0.jsonl", dir + "/events.jsonl"]
    for (k, f) in files.enumerated() {
        let bytes = k < parts.count ? Array(parts[k]) : []
        bytes.withUnsafeBufferPointer { writeFile(f, $0) }
    }
    guard let report = try? RunReport(dir: dir) else { return 0 }
    let s = report.summary()
    _ = SummaryText.text(s)
    _ = SummaryText.compare(s, s)
    _ = HTMLReport.render(report)
    _ = try? JSONEncoder().encode(report.chromeTrace())
    _ = try? JSONEncoder().encode(s)
    return 0
}

try? FileManager.default.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
atexit { try? FileManager.default.removeItem(atPath: dir) }
writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
