// swift-tools-version:6.0
// Fuzz targets for pstrain's parsers of untrusted bytes (docs/fuzzing.md).
// A separate package so that `swift build` and `swift test` at the root never
// build them. Built and run by scripts/fuzz, in debug configuration (PSCore
// compiled with -enable-testing and with Swift's overflow and bounds checks)
// with -O -sanitize=fuzzer,address added on the command line. Each target is
// one libFuzzer harness: a main.swift that sets up, then hands its test
// function to libFuzzer's driver (LLVMFuzzerRunDriver; SwiftPM links an
// executable's main to its top-level code, so libFuzzer's main is not used).
import PackageDescription

func harness(_ name: String, _ module: String, inspect: Bool = false, testSupport: Bool = false) -> Target {
    .executableTarget(name: module, dependencies: ["FuzzSupport", .product(name: "PSCore", package: "pstrain")]
                          + (inspect ? [.product(name: "PSInspect", package: "pstrain")] : [])
                          + (testSupport ? [.product(name: "PSTestSupport", package: "pstrain")] : []),
                      path: "Sources/\(module)")
}

let package = Package(
    name: "pstrain-fuzz",
    products: [
        .executable(name: "fuzz-frame", targets: ["FuzzFrame"]),
        .executable(name: "fuzz-safetensors", targets: ["FuzzSafetensors"]),
        .executable(name: "fuzz-manifest", targets: ["FuzzManifest"]),
        .executable(name: "fuzz-config", targets: ["FuzzConfig"]),
        .executable(name: "fuzz-idx", targets: ["FuzzIDX"]),
        .executable(name: "fuzz-data", targets: ["FuzzData"]),
        .executable(name: "fuzz-ctr", targets: ["FuzzCTR"]),
        .executable(name: "fuzz-rows", targets: ["FuzzRows"]),
        .executable(name: "fuzz-cache", targets: ["FuzzCache"]),
        .executable(name: "fuzz-inspect", targets: ["FuzzInspect"]),
    ],
    dependencies: [.package(name: "pstrain", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "PSCore", package: "pstrain")], path: "Sources/FuzzSupport"),
        harness("fuzz-frame", "FuzzFrame"),
        harness("fuzz-safetensors", "FuzzSafetensors"),
        harness("fuzz-manifest", "FuzzManifest", testSupport: true),   // the checkpoint fixture
        harness("fuzz-config", "FuzzConfig"),
        harness("fuzz-idx", "FuzzIDX"),
        harness("fuzz-data", "FuzzData"),
        harness("fuzz-ctr", "FuzzCTR"),
        harness("fuzz-rows", "FuzzRows"),
        harness("fuzz-cache", "FuzzCache"),
        harness("fuzz-inspect", "FuzzInspect", inspect: true),
    ],
    swiftLanguageModes: [.v5]
)
