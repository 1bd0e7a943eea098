import Foundation
import PSSupport

/// The launcher's terminal. On a terminal, server 0's periodic progress
/// lines are redrawn in place as a bar with epoch, step, loss, samples per
/// second and ETA, and every other line (epoch results, checkpoints,
/// errors) is printed above it; otherwise lines pass through as they come.
final class Screen: @unchecked Sendable {
    let tty: Bool
    let lock = NSLock()
    var live = false

    init(tty: Bool) { self.tty = tty }

    /// "[######------] " for "step X/Y" in a progress line.
    static func bar(_ line: String) -> String {
        guard let r = line.range(of: #"step (\d+)/(\d+)"#, options: .regularExpression) else { return "" }
        let nums = line[r].dropFirst(5).split(separator: "/").compactMap { Double($0) }
        guard nums.count == 2, nums[1] > 0 else { return "" }
        let width = 24, fill = Int((nums[0] / nums[1] * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: fill) + String(repeating: "-", count: width - fill) + "] "
    }

    func out(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        let periodic = line.hasPrefix("epoch ") && !line.contains("test accuracy")
        if tty && periodic {
            Console.out("\r\u{1B}[K" + Screen.bar(line) + line)
            live = true
            return
        }
        if live { Console.out("\r\u{1B}[K"); live = false }
        Console.out(line + "\n")
    }

    func err(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        if live { Console.out("\r\u{1B}[K"); live = false }
        Console.err(line + "\n")
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if live { Console.out("\n"); live = false }
    }
}
