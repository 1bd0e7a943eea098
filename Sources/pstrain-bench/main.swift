// pstrain-bench: micro-benchmarks of the hot paths, run by scripts/bench.
//   pstrain-bench compute [--batch N] [--iters N]   forward+backward of the default MLP
//   pstrain-bench layers [--config FILE] [--batch N] each layer's forward and backward
//   pstrain-bench peak [--n N] [--threads T]         FP32 peak: a large square sgemm
import CBLAS
import Foundation
import CPSKernels
import CXXHash
import PSSupport
import PSNumerics
import PSCodec
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol

func seconds(_ body: () -> Void) -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
}

/// The calling thread's CPU time of `body`: robust to other load on the machine.
func cpuSeconds(_ body: () -> Void) -> Double {
    var a = timespec(), b = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a)
    body()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b)
    return Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

func benchCompute(batch: Int, iters: Int) throws {
    openblas_set_num_threads(1)
    let cfg = Config()
    let m = try Model(cfg.model, capacity: batch)
    let n = m.layout.totalCount
    let params = FloatBuffer(count: n), grads = FloatBuffer(count: n)
    m.layout.initialize(seed: 1, range: 0, n, into: params.pointer)
    let data = DataSplit.synthetic(train: 4096, test: 16, features: 784, classes: 10, seed: 1)
    let labels = UnsafeMutablePointer<UInt8>.allocate(capacity: batch)
    var gather: [Double] = [], step: [Double] = []
    for it in 0..<iters {
        let rows = ((it * batch)..<((it + 1) * batch)).map { $0 % data.train.count }
        gather.append(seconds { data.train.gather(rows, into: m.input, labels: labels) })
        step.append(seconds { _ = m.trainStep(batch: batch, labels: labels, gradScale: 1 / Float(batch), params: params.pointer, grads: grads.pointer) })
    }
    let flops = 2.0 * Double(batch) * (784 * 256 + 256 * 128 + 128 * 10) * 3 - 2.0 * Double(batch) * 784 * 256
    print(String(format: "compute  batch %d: gather %.3f ms, forward+backward %.3f ms (%.1f GFLOP/s sgemm-equivalent), %.0f samples/s per core",
                 batch, median(gather) * 1e3, median(step) * 1e3, flops / median(step) / 1e9, Double(batch) / (median(step) + median(gather))))
    // Pieces: each layer alone
    for (i, l) in m.layers.enumerated() {
        let off = 0
        _ = off
        var f: [Double] = []
        for _ in 0..<iters { f.append(seconds { l.forward(x: m.acts[i].pointer, y: m.acts[i + 1].pointer, batch: batch, params: params.pointer) }) }
        print(String(format: "  layer %d %@ forward %.3f ms", i, l.kind, median(f) * 1e3))
    }
}

/// Forward and backward of each layer of the model in a configuration file
/// (default: the default MLP), one core, with the FLOP rate of the layers
/// that multiply (dense, conv2d: 2 x multiply-adds, backward 2x forward).
func benchLayers(config path: String?, batch: Int, iters: Int) throws {
    openblas_set_num_threads(1)
    let cfg = try path.map { try Config.load(path: $0) } ?? Config()
    let m = try Model(cfg.model, capacity: batch)
    let n = m.layout.totalCount
    let params = FloatBuffer(count: n), grads = FloatBuffer(count: n)
    m.layout.initialize(seed: 1, range: 0, n, into: params.pointer)
    for i in 0..<(batch * m.inputSize) { m.input[i] = CounterRNG.uniform(seed: 3, stream: 0, index: UInt64(i)) }
    var total = 0.0, totalFlops = 0.0, executed = 0.0
    var off = 0
    print("layers   \(path ?? "default MLP"), batch \(batch), one core (median thread CPU time of \(iters))")
    for (i, l) in m.layers.enumerated() {
        let p = params.pointer + off, g = grads.pointer + off
        off += l.parameters.reduce(0) { $0 + $1.count }
        let x = m.acts[i].pointer, y = m.acts[i + 1].pointer
        let dy = FloatBuffer(count: batch * l.outputSize), dx = FloatBuffer(count: batch * l.inputSize)
        let f = median((0..<iters).map { _ in cpuSeconds { l.forward(x: x, y: y, batch: batch, params: p) } })
        let b = median((0..<iters).map { _ in cpuSeconds { l.backward(x: x, y: y, dy: dy.pointer, dx: i > 0 ? dx.pointer : nil, batch: batch, params: p, grads: g) } })
        var macs = 0.0, done = 0.0
        if let d = l as? Dense { macs = Double(d.inputSize * d.outputSize); done = macs * Double(batch) }
        if let c = l as? Conv2d { macs = Double(c.outputSize * c.inputShape[0] * c.k * c.k); done = c.forwardMultiplyAdds(batch: batch) }
        let flops = 2 * macs * Double(batch) * (i > 0 ? 3 : 2)
        total += f + b; totalFlops += flops; executed += 2 * done * (i > 0 ? 3 : 2)
        print(String(format: "  %2d %-10@ %@ -> %@  forward %8.3f ms  backward %8.3f ms%@", i, l.kind, l.inputShape.shapeText, l.outputShape.shapeText,
                     f * 1e3, b * 1e3, macs > 0 ? String(format: "  %.1f GFLOP/s", flops / (f + b) / 1e9) : ""))
    }
    print(String(format: "  total %.3f ms per step of %d rows: %.0f samples/s per core, %.1f GFLOP/s in the multiplying layers",
                 total * 1e3, batch, Double(batch) / total, totalFlops / total / 1e9))
    // GFLOP/s above count the direct convolution's multiplications (what a
    // network "costs"); Winograd layers do fewer: what the sgemms execute.
    print(String(format: "  executed %.1f MFLOP per training sample in sgemms (direct convolution: %.1f): %.1f GFLOP/s executed",
                 executed / Double(batch) / 1e6, totalFlops / Double(batch) / 1e6, executed / total / 1e9))
    benchConvAlgorithms(m, params: params, grads: grads, batch: batch, iters: iters)
}

/// conv2d's algorithms: im2col by groups of samples, Winograd by chunks (and
/// its largest differences from im2col), for comparison.
func benchConvAlgorithms(_ m: Model, params: FloatBuffer, grads: FloatBuffer, batch: Int, iters: Int) {
    var off = 0
    for (i, l) in m.layers.enumerated() {
        let p = params.pointer + off, g = grads.pointer + off
        off += l.parameters.reduce(0) { $0 + $1.count }
        guard let c = l as? Conv2d else { continue }
        let x = m.acts[i].pointer, y = m.acts[i + 1].pointer
        let dy = FloatBuffer(count: batch * l.outputSize), dx = FloatBuffer(count: batch * l.inputSize)
        for i in 0..<(batch * l.outputSize) { dy.pointer[i] = CounterRNG.uniform(seed: 5, stream: 0, index: UInt64(i)) - 0.5 }
        let chosen = c.algorithm
        func time(_ what: String) {
            let f = median((0..<iters).map { _ in cpuSeconds { l.forward(x: x, y: y, batch: batch, params: p) } })
            let b = median((0..<iters).map { _ in cpuSeconds { l.backward(x: x, y: y, dy: dy.pointer, dx: i > 0 ? dx.pointer : nil, batch: batch, params: p, grads: g) } })
            print(String(format: "  %2d conv2d %@: forward %8.3f ms  backward %8.3f ms", i, what, f * 1e3, b * 1e3))
        }
        c.algorithm = .im2col
        for group in [1, 4, Conv2d.largestGroup(c.c * c.k * c.k * c.oh * c.ow, batch), 1] {
            c.group = group
            time(String(format: "im2col, %3d sample(s) at a time", group))
        }
        if pst_wino_supported(Int32(c.k), Int32(c.stride)) != 0 {
            // Winograd against im2col on the same input: the largest differences, relative to the largest magnitude.
            let y0 = FloatBuffer(count: batch * l.outputSize), g0 = FloatBuffer(count: c.parameters.reduce(0) { $0 + $1.count })
            let dx0 = FloatBuffer(count: batch * l.inputSize)
            l.forward(x: x, y: y0.pointer, batch: batch, params: p)
            l.backward(x: x, y: y0.pointer, dy: dy.pointer, dx: dx0.pointer, batch: batch, params: p, grads: g0.pointer)
            c.algorithm = .winograd
            let yw = FloatBuffer(count: batch * l.outputSize), gw = FloatBuffer(count: g0.count), dxw = FloatBuffer(count: dx0.count)
            l.forward(x: x, y: yw.pointer, batch: batch, params: p)
            l.backward(x: x, y: yw.pointer, dy: dy.pointer, dx: dxw.pointer, batch: batch, params: p, grads: gw.pointer)
            func rel(_ a: FloatBuffer, _ b: FloatBuffer) -> Double {
                var d: Float = 0, mag: Float = 0
                for j in 0..<a.count { d = max(d, abs(a.pointer[j] - b.pointer[j])); mag = max(mag, abs(a.pointer[j])) }
                return Double(d / max(mag, .leastNormalMagnitude))
            }
            print(String(format: "  %2d conv2d winograd (%@) against im2col: output %.1e, weight gradient %.1e, input gradient %.1e of the largest magnitude",
                         i, String(cString: pst_wino_variant()), rel(y0, yw), rel(g0, gw), rel(dx0, dxw)))
            let tile = c.tile
            for m in [2, 4] where pst_wino_tile(Int32(c.k), Int32(m)) != 0 {
                c.tile = m
                for size in [8, 16, 32] {
                    c.chunk = size
                    time(String(format: "winograd F(%d,%d), %3d sample(s) a chunk", m, c.k, size))
                }
            }
            c.chunk = 8
            c.tile = tile
        }
        c.algorithm = chosen
    }
}

/// The FP32 peak this machine reaches in practice: C = A B for square n x n
/// matrices (2 n^3 FLOPs) on `threads` OpenBLAS threads, median of `iters`
/// after one warm-up product. The rate per second of CPU time (the process's,
/// all threads) is a core's rate whatever else runs on a shared machine;
/// times the cores it is the machine's peak, the denominator of "fraction
/// of peak" (docs/benchmarks.md). The rate per second of wall time is
/// printed beside it: lower when the cores were busy with something else.
func benchPeak(n: Int, iters: Int, threads: Int) {
    openblas_set_num_threads(Int32(threads))
    let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
    for i in 0..<(n * n) {
        a.pointer[i] = CounterRNG.uniform(seed: 7, stream: 1, index: UInt64(i)) - 0.5
        b.pointer[i] = CounterRNG.uniform(seed: 7, stream: 2, index: UInt64(i)) - 0.5
    }
    let N = Int32(n)
    func product() { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1, a.pointer, N, b.pointer, N, 0, c.pointer, N) }
    product()
    var wall: [Double] = [], cpu: [Double] = []
    for _ in 0..<iters {
        let c0 = cpuSeconds()
        wall.append(seconds(product))
        cpu.append(cpuSeconds() - c0)
    }
    let flop = 2 * pow(Double(n), 3), perCore = flop / median(cpu) / 1e9, cores = ProcessInfo.processInfo.activeProcessorCount
    print(String(format: "peak     sgemm %dx%dx%d, %d thread(s), OpenBLAS %@ kernels, median of %d: %.1f GFLOP/s per CPU second x %d cores "
                 + "= %.1f GFLOP/s FP32 machine peak (%.1f GFLOP/s of wall time, %.1f ms a product)",
                 n, n, n, threads, BLASInfo.coreName, iters, perCore, cores, perCore * Double(cores), flop / median(wall) / 1e9, median(wall) * 1e3))
    if let core = BLASInfo.recommendedCoreType() {
        print("peak     warning: OpenBLAS runs generic kernels on this CPU; OPENBLAS_CORETYPE=\(core) gives the real peak (pstrain launch sets it)")
    }
}

/// CPU seconds this process has used, all threads.
func cpuSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The frame checksum's candidates from libxxhash on `bytes` bytes, next to
/// memcpy: XXH64, XXH3 (64-bit, seeded) through the plain entry point and
/// through libxxhash's x86 run-time dispatch (AVX-512/AVX2/SSE2). The frame
/// checksum (Frame.swift, PSCore's xxh3) uses the fastest.
func benchMemory(bytes: Int, iters: Int) {
    let a = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    let b = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    memset(a, 1, bytes); memset(b, 2, bytes)
    var h: UInt64 = 0
    func rate(_ body: () -> Void) -> Double { Double(bytes) / median((0..<iters).map { _ in seconds(body) }) / 1e9 }
    let x64 = rate { h &+= XXH64(a, bytes, h) }
    let x3 = rate { h &+= XXH3_64bits_withSeed(a, bytes, h) }
    #if arch(x86_64)
    let x3d = rate { h &+= XXH3_64bits_withSeed_dispatch(a, bytes, h) }
    #endif
    let m = rate { memcpy(b, a, bytes); h &+= UInt64(b.load(fromByteOffset: Int(h % UInt64(bytes)), as: UInt8.self)) }
    var line = String(format: "memory   %d bytes (libxxhash %u): XXH64 %.1f GB/s, XXH3 %.1f GB/s", bytes, XXH_versionNumber(), x64, x3)
    #if arch(x86_64)
    line += String(format: ", XXH3 dispatch %.1f GB/s", x3d)
    #endif
    line += String(format: ", memcpy %.1f GB/s (%llu)", m, h & 1)
    print(line)
}

/// FP32 <-> FP16/BF16 conversions in GB/s of FP32 data, next to memcpy.
func benchConvert(count: Int, iters: Int) {
    let f = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let f2 = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let h = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
    for i in 0..<count { f[i] = (CounterRNG.uniform(seed: 1, stream: 1, index: UInt64(i)) - 0.5) * 1e-2 }
    func rate(_ body: () -> Void) -> Double { Double(count * 4) / median((0..<iters).map { _ in seconds(body) }) / 1e9 }
    let to16 = rate { pst_f32_to_f16(f, h, count) }
    let from16 = rate { pst_f16_to_f32(h, f2, count) }
    let toB = rate { pst_f32_to_bf16(f, h, count) }
    let fromB = rate { pst_bf16_to_f32(h, f2, count) }
    let plain = rate { pst_f32_to_f16_generic(f, h, count) }
    let copy = rate { memcpy(f2, f, count * 4) }
    print(String(format: "convert  %d floats (%@): f32->f16 %.1f GB/s, f16->f32 %.1f, f32->bf16 %.1f, bf16->f32 %.1f, plain-C f32->f16 %.1f, memcpy %.1f (GB/s of FP32)",
                 count, String(cString: pst_convert_variant()), to16, from16, toB, fromB, plain, copy))
}

/// The codec pipeline on a gradient-like piece: each stage's speed and size.
func benchCodec(count: Int, iters: Int) {
    let v = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let out = UnsafeMutableRawPointer.allocate(byteCount: count * 8 + 64, alignment: 64)
    let back = UnsafeMutablePointer<Float>.allocate(capacity: count)
    // Gradient-like: a heavy-tailed spread of small magnitudes.
    for i in 0..<count {
        let u = CounterRNG.uniform(seed: 5, stream: 1, index: UInt64(i))
        let w = CounterRNG.uniform(seed: 5, stream: 2, index: UInt64(i))
        v[i] = (u - 0.5) * 1e-3 * powf(10, -3 * w)
    }
    // The servers' hot path: FP32 pieces as sent by default, decoded by adding into a sum.
    do {
        var cs = CodecSettings(); cs.shuffle = false; cs.zstdLevel = 0; cs.adaptiveBypass = false
        let c = PieceCodec(settings: cs, maxElements: count)
        let e = c.encode(v, count: count, as: .fp32, sparse: true, key: 0, step: 0, into: out, capacity: count * 8 + 64)
        let add = median((0..<iters).map { _ in seconds { try! c.decode(out, length: e.length, stages: e.stages, count: count, as: .fp32, into: back, add: true) } })
        print(String(format: "codec    fp32 decode-add (a server summing a piece): %.0f MB/s", Double(count * 4) / add / 1e6))
    }
    for (name, p) in [("fp16", Precision.fp16), ("bf16", Precision.bf16)] {
        for (label, shuffle, level, topk) in [("cast only", false, 0, 0.0), ("cast+shuffle", true, 0, 0.0), ("cast+zstd1", false, 1, 0.0),
                                              ("cast+shuffle+zstd1", true, 1, 0.0), ("top-k 1%+shuffle+zstd1", true, 1, 0.01)] {
            var cs = CodecSettings(); cs.shuffle = shuffle; cs.zstdLevel = level; cs.adaptiveBypass = false; cs.topk = topk
            let c = PieceCodec(settings: cs, maxElements: count)
            var len = 0
            var stages: CodecStages = []
            let enc = median((0..<iters).map { _ in seconds {
                let e = c.encode(v, count: count, as: p, sparse: true, key: 0, step: 0, into: out, capacity: count * 8 + 64)
                len = e.length; stages = e.stages } })
            let dec = median((0..<iters).map { _ in seconds { try! c.decode(out, length: len, stages: stages, count: count, as: p, into: back, add: false) } })
            print(String(format: "codec    %@ %@: %.1f%% of FP32, encode %.0f MB/s, decode %.0f MB/s (of FP32 input)", name, label,
                         Double(len) * 100 / Double(count * 4), Double(count * 4) / enc / 1e6, Double(count * 4) / dec / 1e6))
        }
    }
}

/// Time to verify a checkpoint (SHA-256 of every file, every header) and to
/// load the whole model's weights and momentum from it: what resuming costs.
func benchCheckpointLoad(_ runDir: String, iters: Int) throws {
    let (path, m) = try CheckpointStore.choose(runDir, from: nil, warn: { print($0) })
    let cfg = try Config.parse(m.config, source: path)
    let layout = try Model(cfg.model, capacity: 1).layout
    let w = FloatBuffer(count: layout.totalCount), v = FloatBuffer(count: layout.totalCount)
    let verify = median((0..<iters).map { _ in seconds { _ = try! CheckpointStore.verify(path) } })
    let load = median((0..<iters).map { _ in seconds {
        try! CheckpointStore.loadRange(path, m, layout: layout, suffix: "", lo: 0, hi: layout.totalCount, into: w.pointer)
        try! CheckpointStore.loadRange(path, m, layout: layout, suffix: "momentum", lo: 0, hi: layout.totalCount, into: v.pointer)
    } })
    let bytes = m.files.reduce(0) { $0 + $1.bytes }
    print(String(format: "checkpoint load (%@, %.1f MB): verify %.1f ms, load weights and momentum %.1f ms", (path as NSString).lastPathComponent,
                 Double(bytes) / 1e6, verify * 1e3, load * 1e3))
}

/// Writing one step record to a run log: the per-step cost of logging on every rank.
func benchRunLog(records n: Int) throws {
    let path = NSTemporaryDirectory() + "/pstrain-bench-runlog-\(getpid()).jsonl"
    defer { unlink(path) }
    let log = try RunLog(path: path, fixed: RankStamp(run: "bench", rank: 0, role: "server", index: 0))
    let t0 = now()
    for i in 0..<n {
        log.write(ServerStepRecord(step: i, epoch: i / 468, loss: 0.4321 + Double(i) * 1e-6, fp32Bytes: 940_584, encodeS: 1.2e-4, decodeS: 2.3e-4,
                                   lr: 0.05, lossScale: 65536, skipped: 0, overflow: false, samples: 128, stepS: 2.1e-3, waitS: 1.1e-3,
                                   applyS: 4.4e-4, bytesRecv: 1_881_168, bytesSent: 1_881_168, samplesPerS: 60_952.4, paramsDigest: nil))
        if i % 64 == 63 { log.flush() }
    }
    log.flush()
    let took = now() - t0
    print(String(format: "run log: %d step records in %.3f s: %.1f us per record (encode, format, buffered write)", n, took, took / Double(n) * 1e6))
}

let args = Array(CommandLine.arguments.dropFirst())
func opt(_ name: String, _ d: Int) -> Int {
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
    return d
}
switch args.first {
case "memory":
    benchMemory(bytes: opt("--bytes", 940_584), iters: opt("--iters", 200))
case "checkpoint-load":
    try benchCheckpointLoad(args.count > 1 ? args[1] : "runs", iters: opt("--iters", 10))
case "codec":
    benchCodec(count: opt("--count", 65536), iters: opt("--iters", 50))
case "convert":
    benchConvert(count: opt("--count", 235_146), iters: opt("--iters", 200))
case "runlog":
    try benchRunLog(records: opt("--records", 20000))
case "compute":
    try benchCompute(batch: opt("--batch", 64), iters: opt("--iters", 200))
case "layers":
    var path: String? = nil
    if let i = args.firstIndex(of: "--config"), i + 1 < args.count { path = args[i + 1] }
    try benchLayers(config: path, batch: opt("--batch", 32), iters: opt("--iters", 20))
case "peak":
    benchPeak(n: opt("--n", 2048), iters: opt("--iters", 10), threads: opt("--threads", 1))
default:
    print("usage: pstrain-bench compute [--batch N] [--iters N] | layers [--config FILE] [--batch N] [--iters N] | peak [--n N] [--iters N] [--threads T] | memory [--bytes N] | convert [--count N] | codec [--count N] | checkpoint-load [RUN_DIR] | runlog [--records N]")
    exit(2)
}
