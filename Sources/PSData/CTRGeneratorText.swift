import Foundation

/// The text a synthetic click log is written as: its Criteo lines,
/// planted.json and ctr.toml.
enum CTRGeneratorText {
    static let hexDigits = Array("0123456789abcdef".utf8)

    /// `row` as one Criteo line (label, I1..I13, C1..C26, tabs, "\n").
    static func line(click: Bool, _ row: CTRPlanted.Row, perm: [[UInt32]], into b: inout [UInt8]) {
        b.removeAll(keepingCapacity: true)
        b.append(click ? 0x31 : 0x30)
        for v in row.ints {
            b.append(0x09)
            if let v { decimal(v, into: &b) }
        }
        for (f, rank) in row.ranks.enumerated() {
            b.append(0x09)
            if rank >= 0 { hex(UInt64(perm[f][rank]), into: &b) }
        }
        b.append(0x0A)
    }

    static func decimal(_ v: Int64, into b: inout [UInt8]) {
        if v < 0 { b.append(0x2D) }
        var m = v.magnitude
        let start = b.count
        repeat { b.append(UInt8(m % 10) + 0x30); m /= 10 } while m > 0
        b[start..<b.count].reverse()
    }

    /// Lowercase hexadecimal without leading zeros ("0" for 0).
    static func hex(_ v: UInt64, into b: inout [UInt8]) {
        var shift = 60
        while shift > 0 && (v >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
        while shift >= 0 { b.append(hexDigits[Int((v >> UInt64(shift)) & 0xF)]); shift -= 4 }
    }

    /// DIR/planted.json: the options, the planted model's shape and what it
    /// scores on the test rows (the best a learner can expect).
    static func planted(_ o: CTRGeneratorOptions, _ m: CTRPlanted, _ s: CTRPlantedSummary) -> String {
        let pairs = m.pairs.map { "[\($0.0), \($0.1)]" }.joined(separator: ", ")
        return """
        {
          "what": "a SYNTHETIC click log in the Criteo format, written by pstrain data make-ctr from a planted model (docs/formats.md)",
          "seed": \(o.seed),
          "train_rows": \(o.trainRows),
          "test_rows": \(o.testRows),
          "vocabularies": [\(o.vocabularies.map(String.init).joined(separator: ", "))],
          "total_ids": \(o.vocabularies.reduce(0, +)),
          "zipf": \(o.zipf),
          "missing": \(o.missing),
          "interaction_dim": \(o.dim),
          "pairs": [\(pairs)],
          "scales": {"w": \(CTRPlanted.wScale), "v": \(CTRPlanted.vScale), "u": \(CTRPlanted.uScale)},
          "bias": \(s.bias),
          "train_click_rate": \(s.trainClickRate),
          "test_click_rate": \(s.testClickRate),
          "planted_test_auc": \(s.testAUC),
          "planted_test_log_loss": \(s.testLogLoss),
          "files": {"train": "train.tsv", "test": "test.tsv", "config": "ctr.toml"}
        }

        """
    }

    /// DIR/ctr.toml: a model with one table per field (rows = its
    /// vocabulary, no hashing needed: the ids are < rows) that trains on the files.
    static func config(_ o: CTRGeneratorOptions, dir path: String) -> String {
        let dir = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let tables = o.vocabularies.map { "  { type = \"embedding_bag\", rows = \($0), dim = \(o.tableDim), mode = \"sum\", hash = false }," }
        return """
        # A SYNTHETIC click log written by
        #   pstrain data make-ctr --out \(dir) --seed \(o.seed) --train-rows \(o.trainRows) --test-rows \(o.testRows)
        # (planted.json beside this file has the planted model's test AUC and
        # log loss: what is achievable). Train with
        #   pstrain launch --config \(dir)/ctr.toml --workers 2 --servers 2

        [model]
        input = [\(Criteo.denseCount)]
        loss = "bce"
        interaction = "none"
        tables = [
        \(tables.joined(separator: "\n"))
        ]
        layers = [
          { type = "dense", units = 64 },
          { type = "relu" },
          { type = "dense", units = 32 },
          { type = "relu" },
          { type = "dense", units = 1 },
        ]

        [data]
        format = "criteo"
        train = "\(dir)/train.tsv"
        test = "\(dir)/test.tsv"

        [train]
        epochs = 1
        batch_size = 1024
        lr = 0.01
        lr_schedule = "constant"
        optimizer = "adagrad"
        sparse_optimizer = "adagrad"
        sparse_lr = 0.05

        [run]
        # W=2 S=2 is four ranks: on a machine with fewer cores a waiting rank
        # naps (20 us) instead of yielding, so the computing ranks get the cores.
        poll = "sleep"

        """
    }
}
