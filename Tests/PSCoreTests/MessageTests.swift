import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

/// Each control message seals into a frame and opens back to the same value;
/// a frame of another step, chunk or kind, a damaged byte, and a payload
/// value that cannot be are refused with a message naming the sender.
final class MessageTests: XCTestCase {
    func roundTrip<M: ControlMessage & Equatable>(_ m: M, step: Int = 7, index: Int = 2) throws -> M {
        let b = M.buffer()
        m.seal(into: b, step: step, index: index)
        XCTAssertEqual(b.length, FrameHeader.size + M.payloadBytes)
        return try M.open(b, length: b.length, step: step, index: index, sender: "worker 1 (rank 2)")
    }

    func testEveryMessageRoundTrips() throws {
        XCTAssertEqual(try roundTrip(StepSummary(lossSum: 12.5, samples: 64, overflow: true)), StepSummary(lossSum: 12.5, samples: 64, overflow: true))
        XCTAssertEqual(try roundTrip(StepSummary(lossSum: -0.0, samples: 0, overflow: false)), StepSummary(lossSum: -0.0, samples: 0, overflow: false))
        XCTAssertEqual(try roundTrip(OverflowVote(overflow: true, request: FrameFlags.checkpoint | FrameFlags.stop)),
                       OverflowVote(overflow: true, request: FrameFlags.checkpoint | FrameFlags.stop))
        XCTAssertEqual(try roundTrip(OverflowVote(overflow: false, request: 0, sumSquares: 0.1 + 0.2)).sumSquares.bitPattern, (0.1 + 0.2).bitPattern)
        XCTAssertEqual(try roundTrip(EvalResult(lossSum: 3.25, correct: 900, count: 1000)), EvalResult(lossSum: 3.25, correct: 900, count: 1000))
        XCTAssertEqual(try roundTrip(Goodbye()), Goodbye())
        let ok = try roundTrip(CheckpointReport(.success(CheckpointFileInfo(bytes: 123_456, sha256: String(repeating: "ab", count: 32)))))
        XCTAssertEqual(try ok.result.get(), CheckpointFileInfo(bytes: 123_456, sha256: String(repeating: "ab", count: 32)))
        let failed = try roundTrip(CheckpointReport(.failure(CheckpointFailure(message: "disk full: /tmp/x"))))
        guard case .failure(let e) = failed.result else { return XCTFail("a failure report opened as a success") }
        XCTAssertEqual(e.message, "disk full: /tmp/x")
    }

    /// Every frame kind seals and opens back to what was sent: a table of
    /// one round trip per kind, checked to cover FrameKind.allCases (a new
    /// kind without its round trip fails here). Values travel in FP16 through
    /// the codec; they are chosen exact in FP16, so they come back equal.
    func testEveryFrameKindRoundTrips() throws {
        let n = 64, codec = PieceCodec(settings: CodecSettings(), maxElements: n)
        let values = (0..<n).map { Float($0 % 17) * 0.25 - 2 }
        func viaCodec(_ seal: (FrameBuffer, EncodedPiece) -> Void, _ open: (FrameBuffer) throws -> FrameHeader) throws {
            let b = FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes(n, .fp16, CodecSettings(), sparse: false))
            let v = FloatBuffer(values), out = FloatBuffer(count: n)
            seal(b, codec.encode(v.pointer, count: n, as: .fp16, sparse: false, key: 3, step: 9, into: b.payload, capacity: b.capacity - FrameHeader.size))
            try codec.decode(b, try open(b), count: n, as: .fp16, into: out.pointer, add: false, sender: "s", what: "values")
            XCTAssertEqual(out.array, values)
        }
        var histogram = ScoreHistogram()
        histogram.add(probability: 0.75, clicked: true)
        histogram.add(probability: 0.1, clicked: false)
        let cases: [FrameKind: () throws -> Void] = [
            .parameterPiece: { try viaCodec({ ParameterPiece.seal($0, version: 9, piece: 3, count: n, precision: .fp16, encoded: $1, lossScale: 8, skipped: 1, request: 0) },
                                    { try ParameterPiece.open($0, length: $0.length, version: 9, piece: 3, count: n, precision: .fp16, sender: "s").header }) },
            .gradientPiece: { try viaCodec({ GradientPiece.seal($0, step: 9, piece: 3, count: n, precision: .fp16, encoded: $1) },
                                   { try GradientPiece.open($0, length: $0.length, step: 9, piece: 3, count: n, precision: .fp16, sender: "s") }) },
            .rowValues: { try viaCodec({ RowValues.seal($0, kind: .rowValues, step: 9, round: 1, count: n, precision: .fp16, encoded: $1) },
                                       { try RowValues.open($0, kind: .rowValues, length: $0.length, step: 9, round: 1, count: n, precision: .fp16, sender: "s") }) },
            .rowGrads: { try viaCodec({ RowValues.seal($0, kind: .rowGrads, step: 9, round: 0, count: n, precision: .fp16, encoded: $1) },
                                      { try RowValues.open($0, kind: .rowGrads, length: $0.length, step: 9, round: 0, count: n, precision: .fp16, sender: "s") }) },
            .rowRequest: {
                let rows: [[UInt64]] = [[0, 3, 900], [], [7]], bytes = RowRequest.encode(rows)
                let b = FrameBuffer(payloadCapacity: bytes.count)
                RowRequest.seal(b, bytes: bytes, step: 9, round: 0)
                XCTAssertEqual(try RowRequest.open(b, length: b.length, step: 9, round: 0, bytes: bytes.count, rows: 4,
                                                   tables: [TableSpec(rows: 1000, dim: 4), TableSpec(rows: 5, dim: 4), TableSpec(rows: 8, dim: 2)],
                                                   sender: "s"), rows)
            },
            .evalResult: { XCTAssertEqual(try self.roundTrip(EvalResult(lossSum: 3.25, correct: 900, count: 1000)), EvalResult(lossSum: 3.25, correct: 900, count: 1000)) },
            .stepSummary: { XCTAssertEqual(try self.roundTrip(StepSummary(lossSum: 1.5, samples: 8, overflow: true)), StepSummary(lossSum: 1.5, samples: 8, overflow: true)) },
            .overflowVote: { XCTAssertEqual(try self.roundTrip(OverflowVote(overflow: true, request: FrameFlags.stop)), OverflowVote(overflow: true, request: FrameFlags.stop)) },
            .checkpointReport: {
                let r = try self.roundTrip(CheckpointReport(.success(CheckpointFileInfo(bytes: 5, sha256: String(repeating: "cd", count: 32)))))
                XCTAssertEqual(try r.result.get(), CheckpointFileInfo(bytes: 5, sha256: String(repeating: "cd", count: 32)))
            },
            .goodbye: { XCTAssertEqual(try self.roundTrip(Goodbye()), Goodbye()) },
            .rowAnnounce: { XCTAssertEqual(try self.roundTrip(RowAnnounce(rows: 12, bytes: 40, rounds: 3)), RowAnnounce(rows: 12, bytes: 40, rounds: 3)) },
            .evalScores: { XCTAssertEqual(try self.roundTrip(EvalScores(histogram)), EvalScores(histogram)) },
            .pullRequest: { XCTAssertEqual(try self.roundTrip(PullRequest(.eval)), PullRequest(.eval)) },
            .assignment: { XCTAssertEqual(try self.roundTrip(Assignment(.train, step: 12, slice: 1)), Assignment(.train, step: 12, slice: 1)) },
        ]
        XCTAssertEqual(Set(cases.keys), Set(FrameKind.allCases), "a round trip for every frame kind")
        for kind in FrameKind.allCases.sorted(by: { $0.rawValue < $1.rawValue }) {
            XCTAssertNoThrow(try cases[kind]?(), "\(kind)")
        }
    }

    func testALongErrorIsCutNotOverflowed() throws {
        let long = String(repeating: "é", count: 1000)
        let r = try roundTrip(CheckpointReport(.failure(CheckpointFailure(message: long))))
        guard case .failure(let e) = r.result else { return XCTFail("expected a failure") }
        XCTAssertLessThanOrEqual(e.message.utf8.count, 399)
        XCTAssertTrue(long.hasPrefix(e.message.replacingOccurrences(of: "\u{FFFD}", with: "")))
    }

    func testWrongStepChunkOrKindIsRefused() throws {
        let b = StepSummary.buffer()
        StepSummary(lossSum: 1, samples: 2, overflow: false).seal(into: b, step: 5, index: 0)
        XCTAssertThrowsError(try StepSummary.open(b, length: b.length, step: 6, sender: "worker 0 (rank 1)")) {
            XCTAssertTrue("\($0)".contains("worker 0 (rank 1)"), "\($0)")
        }
        XCTAssertThrowsError(try StepSummary.open(b, length: b.length, step: 5, index: 1, sender: "w"))
        XCTAssertThrowsError(try EvalResult.open(b, length: b.length, step: 5, sender: "w"))
        b.payload.storeBytes(of: 0xFF, toByteOffset: 3, as: UInt8.self)
        XCTAssertThrowsError(try StepSummary.open(b, length: b.length, step: 5, sender: "w")) {
            XCTAssertTrue("\($0)".contains("checksum"), "\($0)")
        }
    }

    /// Values no honest peer sends are refused even under a valid checksum.
    func testImpossibleValuesAreRefused() {
        func payload<M: ControlMessage>(_: M.Type, _ fields: [Double]) -> UnsafeRawPointer {
            let p = UnsafeMutableRawPointer.allocate(byteCount: M.payloadBytes, alignment: 8)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: M.payloadBytes)
            for (i, f) in fields.enumerated() { p.storeBytes(of: f, toByteOffset: 8 * i, as: Double.self) }
            return UnsafeRawPointer(p)
        }
        XCTAssertThrowsError(try StepSummary.decode(from: payload(StepSummary.self, [0, -1, 0])))
        XCTAssertThrowsError(try StepSummary.decode(from: payload(StepSummary.self, [0, 1.5, 0])))
        XCTAssertThrowsError(try StepSummary.decode(from: payload(StepSummary.self, [0, .nan, 0])))
        XCTAssertThrowsError(try EvalResult.decode(from: payload(EvalResult.self, [0, 11, 10])))
        XCTAssertThrowsError(try OverflowVote.decode(from: payload(OverflowVote.self, [0, 64])))
        XCTAssertThrowsError(try OverflowVote.decode(from: payload(OverflowVote.self, [0, 0, -1])))
        XCTAssertThrowsError(try OverflowVote.decode(from: payload(OverflowVote.self, [0, 0, .nan])))
        XCTAssertThrowsError(try OverflowVote.decode(from: payload(OverflowVote.self, [1, 0, .infinity])))
        XCTAssertNoThrow(try OverflowVote.decode(from: payload(OverflowVote.self, [0, 0, 12.5])))
        XCTAssertThrowsError(try CheckpointReport.decode(from: payload(CheckpointReport.self, [1, -5])))
        XCTAssertNoThrow(try EvalResult.decode(from: payload(EvalResult.self, [0, 10, 10])))
    }

    func testParameterPieceCarriesScaleSkippedAndRequests() throws {
        let n = 100
        let codec = PieceCodec(settings: CodecSettings(), maxElements: n)
        let v = FloatBuffer((0..<n).map { Float($0) * 0.25 })
        let b = FrameBuffer(payloadCapacity: PieceCodec.maxEncodedBytes(n, .fp16, CodecSettings(), sparse: false))
        let e = codec.encode(v.pointer, count: n, as: .fp16, sparse: false, key: 3, step: 9, into: b.payload, capacity: b.capacity - FrameHeader.size)
        ParameterPiece.seal(b, version: 9, piece: 3, count: n, precision: .fp16, encoded: e, lossScale: 1024, skipped: 4, request: FrameFlags.stop)
        let got = try ParameterPiece.open(b, length: b.length, version: 9, piece: 3, count: n, precision: .fp16, sender: "server 0 (rank 0)")
        XCTAssertEqual(got.lossScale, 1024)
        XCTAssertEqual(got.skipped, 4)
        XCTAssertEqual(got.flags & FrameFlags.stop, FrameFlags.stop)
        XCTAssertThrowsError(try ParameterPiece.open(b, length: b.length, version: 10, piece: 3, count: n, precision: .fp16, sender: "s"))
        XCTAssertThrowsError(try ParameterPiece.open(b, length: b.length, version: 9, piece: 3, count: n, precision: .bf16, sender: "s"))
    }
}
