import Foundation

/// A data-set file's samples as it stores them: the features `x` (the first
/// axis counts the samples; a sample's shape is the rest) and one label per
/// sample, already checked (each below 256) and held as bytes. `source`
/// names the file in messages; `columns` are a CSV file's feature columns.
public final class Samples {
    public let x: ArrayView
    public let labels: [UInt8]
    public let source: String
    /// The file that holds the labels (IDX keeps them in a file of their own).
    public let labelsSource: String
    public let columns: [String]?

    public init(x: ArrayView, labels: [UInt8], source: String, labelsSource: String? = nil, columns: [String]? = nil) {
        precondition(labels.count == x.rows, "one label per sample")
        self.x = x; self.labels = labels; self.source = source; self.labelsSource = labelsSource ?? source; self.columns = columns
    }

    public var count: Int { x.rows }
    /// A sample's shape: x's shape without the first axis.
    public var shape: [Int] { Array(x.shape.dropFirst()) }
    /// Elements per sample.
    public var features: Int { x.rowElements }
    /// Byte features are read as x / 255 (as torchvision's ToTensor does).
    public var byteScaled: Bool { x.type == .uint8 }

    /// Samples of `features` bytes each, with their shape, held in memory.
    public convenience init(bytes: [UInt8], shape: [Int], labels: [UInt8], source: String) {
        let block = MemoryBlock(copying: bytes)
        self.init(x: ArrayView(base: UnsafeRawPointer(block.pointer), type: .uint8, shape: [labels.count] + shape, owner: block),
                  labels: labels, source: source)
    }
}
