import PSCheckpoint

/// A small, valid checkpoint `step-5` of a two-tensor model (`w` [2, 3] cut
/// over two servers, `b` [2] on server 1) with one worker's residual: the
/// fixture the checkpoint tests and the manifest fuzzer craft their inputs
/// from. `weights`, `momentum` and `residual` hold 8 values each (w then b).
public func writeExampleCheckpoint(runDir: String, weights p: [Float], momentum v: [Float], residual: [Float], build: String) throws {
    precondition(p.count == 8 && v.count == 8 && residual.count == 8)
    func tensor(_ name: String, _ values: ArraySlice<Float>, _ shape: [Int]) -> Safetensors.Tensor {
        Array(values).withUnsafeBufferPointer { Safetensors.Tensor(name: name, shape: shape, floats: $0) }
    }
    let w = CheckpointWriter(runDir: runDir)
    let s0 = try w.writeRankFile(step: 5, name: "server-0.safetensors",
                                 tensors: [tensor("w", p[0..<4], [4]), tensor("w.momentum", v[0..<4], [4])], metadata: [:])
    let s1 = try w.writeRankFile(step: 5, name: "server-1.safetensors",
                                 tensors: [tensor("w", p[4..<6], [2]), tensor("w.momentum", v[4..<6], [2]),
                                           tensor("b", p[6..<8], [2]), tensor("b.momentum", v[6..<8], [2])], metadata: [:])
    let w0 = try w.writeRankFile(step: 5, name: "worker-0.safetensors", tensors: [tensor("residual", residual[...], [8])], metadata: [:])
    let m = Manifest(run: "t", step: 5, epoch: 0, epochCursor: 40, stepsPerEpoch: 10, totalSteps: 20, seed: 1, dataOrder: "", rng: "",
                     lrSchedule: "constant", learningRate: 0.1,
                     scaler: .init(scale: 65536, goodSteps: 5, hysteresisLeft: 2, skipped: 0, overflowsAtMin: 0, lastFiniteStep: 4),
                     servers: 2, workers: 1, precision: "fp16", compression: "none", build: build, configHash: "0", config: "", created: 0,
                     files: [.init(name: "server-0.safetensors", role: "server", index: 0, bytes: s0.bytes, sha256: s0.sha256),
                             .init(name: "server-1.safetensors", role: "server", index: 1, bytes: s1.bytes, sha256: s1.sha256),
                             .init(name: "worker-0.safetensors", role: "worker", index: 0, bytes: w0.bytes, sha256: w0.sha256)],
                     tensors: [.init(name: "w", shape: [2, 3], shards: [.init(file: "server-0.safetensors", start: 0, count: 4),
                                                                        .init(file: "server-1.safetensors", start: 4, count: 2)]),
                               .init(name: "b", shape: [2], shards: [.init(file: "server-1.safetensors", start: 0, count: 2)])])
    _ = try w.complete(m, keep: 3)
}
