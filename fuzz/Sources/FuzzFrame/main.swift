// Frame.open then PieceCodec.decode, as a rank does with a frame from a peer
// (Training.swift: parameters on a worker, gradients on a server).
//
// Input: [ctl u8][n u16 LE][frame bytes...]
//   ctl bits 0-1: precision (0 fp32, 1 fp16, 2 bf16, 3 fp32)
//   ctl bit 2: kind grads instead of params
//   ctl bit 3: add into the output instead of overwriting it
//   ctl bit 4: set the header's encoded length to what arrived
//   ctl bit 5: set the header's checksum to the right one
//   n % 1100: the piece's element count (the codec holds 1024, so a few are too large)
// Bits 4 and 5 let mutations of the payload reach the codec past the checksum.
import FuzzSupport
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol

let maxElements = 1024
let codec = PieceCodec(settings: CodecSettings(), maxElements: maxElements)

func seeds() -> [(String, [UInt8])] {
    var out: [(String, [UInt8])] = []
    let n = 300
    let v: [Float] = (0..<n).map { (i: Int) -> Float in
        let base = Float(i % 17) * 0.25 - 1
        return i % 5 == 0 ? base : base + Float(i) * 1e-3
    }
    for (pi, p) in [Precision.fp32, .fp16, .bf16].enumerated() {
        for (si, (topk, shuffle, zstd)) in [(0.0, false, 0), (0.0, true, 0), (0.0, true, 1), (0.1, false, 0), (0.1, true, 3)].enumerated() {
            var s = CodecSettings()
            s.topk = topk; s.shuffle = shuffle; s.zstdLevel = zstd; s.adaptiveBypass = false
            let enc = PieceCodec(settings: s, maxElements: n)
            let f = FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes(n, p, s, sparse: true) + 64)
            let sparse = topk > 0
            let e = v.withUnsafeBufferPointer {
                enc.encode($0.baseAddress!, count: n, as: p, sparse: sparse, key: 3, step: 7, into: f.payload, capacity: f.capacity - 64)
            }
            let kind: FrameKind = sparse ? .gradientPiece : .parameterPiece
            f.length = Frame.seal(FrameHeader(kind: kind, step: 7, index: 3, elementType: p.elementType,
                                              rawLength: UInt64(n * p.elementType.size), encodedLength: UInt64(e.length),
                                              codec: e.stages, flags: e.flags), buffer: f.raw)
            let ctl = UInt8(pi) | (sparse ? 4 : 0) | (si % 2 == 0 ? 8 : 0)
            out.append(("p\(pi)-s\(si)", [ctl, UInt8(n & 0xff), UInt8(n >> 8)] + Array(f.sealed)))
        }
    }
    return out
}


@_cdecl("LLVMFuzzerTestOneInput")  // libFuzzer's archive references it; runFuzzer passes it too
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 3 else { return 0 }
    let ctl = data[0]
    let p: Precision = [.fp32, .fp16, .bf16, .fp32][Int(ctl & 3)]
    let n = (Int(data[1]) | Int(data[2]) << 8) % 1100
    let length = size - 3
    // The frame in an allocation of exactly its length: AddressSanitizer
    // reports any read past it.
    let frame = UnsafeMutableRawPointer.allocate(byteCount: max(length, 1), alignment: 64)
    defer { frame.deallocate() }
    frame.copyMemory(from: data + 3, byteCount: length)
    if length >= FrameHeader.size {
        if ctl & 16 != 0 { frame.storeBytes(of: UInt64(length - FrameHeader.size).littleEndian, toByteOffset: 32, as: UInt64.self) }
        if ctl & 32 != 0 {
            let sum = Frame.checksum(buffer: UnsafeRawPointer(frame), payloadLength: length - FrameHeader.size)
            frame.storeBytes(of: sum.littleEndian, toByteOffset: 56, as: UInt64.self)
        }
    }
    let expect = FrameExpectation(kind: ctl & 4 != 0 ? .gradientPiece : .parameterPiece, step: 7, index: 3,
                                  elementType: p.elementType, rawLength: n * p.elementType.size)
    guard let h = try? Frame.open(buffer: frame, length: length, expect: expect, sender: "fuzz") else { return 0 }
    let out = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
    defer { out.deallocate() }
    out.initialize(repeating: 1, count: max(n, 1))
    _ = try? codec.decode(frame + FrameHeader.size, length: Int(h.encodedLength), stages: h.codec, count: n, as: p,
                          into: out, add: ctl & 8 != 0)
    return 0
}

writeSeedsIfAsked(seeds)
runFuzzer { data, size in fuzz(data ?? emptyInput, size) }
