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

/// The layer registry: entries are checked against their kind, and a model
/// is built from kinds alone.
final class LayerKindTests: XCTestCase {
    func problem(_ e: LayerEntry) -> String? {
        if case .failure(let p) = LayerKinds.check(e) { return p.text }
        return nil
    }

    func testEntriesAreCheckedAgainstTheirKind() {
        XCTAssertNil(problem(.dense(10)))
        XCTAssertNil(problem(.relu))
        XCTAssertEqual(problem(LayerEntry(type: "conv")), "has unknown type 'conv' (known: \(LayerKinds.types.joined(separator: ", ")))")
        XCTAssertEqual(problem(LayerEntry(type: "dense")), "(dense) needs a positive integer 'units'")
        XCTAssertEqual(problem(LayerEntry(type: "dense", options: ["units": 0])), "(dense) has units = 0, outside [1, 1048576]")
        XCTAssertEqual(problem(LayerEntry(type: "dense", options: ["units": 2.5])), "(dense) needs a positive integer 'units'")
        XCTAssertEqual(problem(LayerEntry(type: "dropout", options: ["p": 1.5])), "(dropout) has p = 1.5, outside [0.0, 0.99]")
        XCTAssertNil(problem(LayerEntry(type: "dropout")))
        XCTAssertNil(problem(LayerEntry(type: "conv2d", options: ["channels": 8, "kernel": 3, "padding": 1])))
        XCTAssertEqual(problem(LayerEntry(type: "dense", options: ["units": .integer(1 << 21)])), "(dense) has units = 2097152, outside [1, 1048576]")
        XCTAssertEqual(problem(LayerEntry(type: "relu", options: ["units": 3])), "has key 'units', which relu does not take (relu takes no options)")
        XCTAssertEqual(problem(LayerEntry(type: "dense", options: ["units": 3, "kernel": 5])), "has key 'kernel', which dense does not take (dense takes 'units')")
    }

    func testAnUnknownLayerIsAnErrorNotASubstitute() {
        XCTAssertThrowsError(try Model(inputSize: 4, entries: [.dense(3), LayerEntry(type: "tanhh"), .dense(2)], capacity: 1)) {
            XCTAssertTrue("\($0)".contains("model.layers[1]"), "\($0)")
        }
    }

    func testTheModelIsBuiltFromTheKinds() throws {
        let m = try Model(inputSize: 6, entries: [.dense(5), .relu, .dense(3)], capacity: 2)
        XCTAssertEqual(m.layers.map { $0.kind }, ["dense", "relu", "dense"])
        XCTAssertEqual(m.layout.tensors.map { $0.name }, ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"])
        XCTAssertEqual(m.layout.totalCount, 6 * 5 + 5 + 5 * 3 + 3)
        XCTAssertEqual(m.classes, 3)
    }
}
