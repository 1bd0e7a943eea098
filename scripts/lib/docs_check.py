"""Runs the commands and code blocks of the user-facing docs as a user would.

Every code block of README.md, docs/python.md and docs/models.md is one of:

- a shell block (indented, or fenced as ``sh``): every line is a command,
  run in document order in one bash session, in a scratch folder that links
  the repository's examples/, scripts/ and python/; `swift` runs in the
  repository (so `swift build` and `BIN=$(swift build ... --show-bin-path)`
  work as written);
- a ``console`` block: `$ command` lines, each followed by lines its output
  must hold (an example error message is checked against pstrain's own;
  `...` in a line stands for text that varies, such as a path);
- a ``toml file=NAME`` block: written to NAME in the scratch folder, for the
  commands after it;
- a ``python`` block: run by the Python of the docs' venv (or the tests'),
  after the Python blocks before it back to one that starts with an import
  (they build on each other, as a reader pastes them);
- or marked with an HTML comment just before it: `<!-- docs-check: output -->`
  (text a command printed, or a formula) or `<!-- docs-check: skip REASON -->`.

A block that is none of these fails the check, so a new example cannot be
left out by accident.

Commands are run as written except for what keeps the check short, each
rule printed when it applies (SHORTEN below): every launch trains one epoch,
the CNN 100 steps, a resume that extends a run goes to 2 epochs;
`make-ctr --preset bench` makes the tiny preset;
`scripts/install` installs into the check's own prefix. Options written as
`[--a X | --b Y]` run once without them and once with each alternative.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

DOCS = ["README.md", "docs/python.md", "docs/models.md"]
COMMANDS = re.compile(r"^(\$BIN/|BIN=|pstrain\b|pstrain-|scripts/|swift |python3 |/usr/bin/python3 |\.venv/bin/|pip |mpirun |cat |cp |mkdir )")

# (pattern, replacement or function, why): applied to each command, in order.
SHORTEN = [
    (re.compile(r"(\bpstrain launch\b(?!.*--dry-run)[^&;|]*?)(?=\s*(?:&&|;|\||$))"),
     lambda m: m.group(1) + " --set train.epochs=1", "every launch trains one epoch"),
    (re.compile(r"(\bpstrain launch\b[^&;|]*fashion-cnn\.toml[^&;|]*?)(?=\s*(?:&&|;|\||$))"),
     lambda m: m.group(1) + " --set train.max_steps=100", "the CNN trains 100 steps"),
    (re.compile(r"(pstrain-(?:server|worker) [^:&;|]*?)(?=\s*(?:\s:\s|&&|;|$))"),
     lambda m: m.group(1) + " --set train.epochs=1", "ranks started by hand train one epoch"),
    (re.compile(r"(\bpstrain resume\b[^&;|]*--epochs )\d+"), lambda m: m.group(1) + "2", "a resume that extends a run goes to 2 epochs"),
    (re.compile(r"--preset bench\b"), lambda m: "--preset tiny", "make-ctr writes the tiny preset"),
    (re.compile(r"^(scripts/install\b.*)$"), lambda m: m.group(1) + ' --prefix "$DOCS_PREFIX"',
     "scripts/install links into the check's own prefix"),
]
# Commands that are not run here, and why: the check runs inside scripts/test.
NOT_HERE = [
    (re.compile(r"^scripts/test\b"), "the whole test suite (this check is part of it)"),
    (re.compile(r"^scripts/demo\b"), "the demo: ../shared/tools/fresh-check --demo runs it on a fresh clone"),
    (re.compile(r"^scripts/(bench|soak|sanitize|digest-matrix)"), "a long check with its own figures (docs/benchmarks.md)"),
]
OPTIONAL = re.compile(r"\s\[(--[^\]]*)\]")


class Block:
    def __init__(self, doc, line, kind, info, lines, mark):
        self.doc, self.line, self.kind, self.info, self.lines, self.mark = doc, line, kind, info, lines, mark

    @property
    def where(self):
        return f"{self.doc}:{self.line}"


def blocks(doc, text):
    """The code blocks of a Markdown text: fenced ones and indented ones."""
    lines = text.split("\n")
    out, i, mark, in_list = [], 0, None, False
    while i < len(lines):
        l = lines[i]
        m = re.match(r"^<!-- docs-check: (output|skip)\s*(.*?)\s*-->$", l.strip())
        if m:
            mark = (m.group(1), m.group(2))
            i += 1
            continue
        if l.startswith("```"):
            info = l[3:].strip()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(Block(doc, i + 1, "fenced", info, lines[i + 1:j], mark))
            mark, i = None, j + 1
            continue
        prev_blank = i == 0 or lines[i - 1].strip() == ""
        if re.match(r"^\s*([-*]|\d+\.)\s", l):
            in_list = True
        elif l.strip() and not l.startswith(" "):
            in_list = False
        if l.startswith("    ") and l.strip() and prev_blank and not in_list:
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or (lines[j].strip() == "" and j + 1 < len(lines) and lines[j + 1].startswith("    "))):
                j += 1
            body = [x[4:] for x in lines[i:j]]
            out.append(Block(doc, i + 1, "indented", "", body, mark))
            mark, i = None, j
            continue
        if l.strip():
            mark = None
        i += 1
    return out


def commands(lines):
    """Shell lines with continuations joined and trailing comments dropped."""
    out, cur = [], ""
    for l in lines:
        if cur:
            cur += " " + l.strip()
        else:
            cur = l.strip()
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        cur = re.sub(r"\s{2,}#\s.*$|\s#\s.*$", "", cur).strip()
        if cur and not cur.startswith("#"):
            out.append(cur)
        cur = ""
    return out


def variants(cmd):
    """`a [--x 1] [--y | --z 2]`: `a`, `a --x 1`, `a --y`, `a --z 2`."""
    groups = OPTIONAL.findall(cmd)
    if not groups:
        return [cmd]
    bare = OPTIONAL.sub("", cmd)
    out = [bare]
    for g in groups:
        for alt in g.split(" | "):
            out.append(OPTIONAL.sub(lambda m: " " + alt.strip() if m.group(1) == g else "", cmd))
    return out


def shorten(cmd, notes):
    for pattern, repl, why in SHORTEN:
        new = pattern.sub(repl, cmd)
        if new != cmd:
            notes.add(why)
            cmd = new
    return cmd


class Checker:
    def __init__(self, repo, scratch, python):
        self.repo, self.scratch, self.python = repo, scratch, python
        self.failures, self.ran, self.skipped, self.notes = [], 0, [], set()
        self.env = dict(os.environ)
        self.env["DOCS_PREFIX"] = os.path.join(scratch, "prefix")
        self.env["PATH"] = os.path.join(scratch, "prefix", "bin") + ":" + self.env["PATH"]
        self.env["PSTRAIN_DOCS_REPO"] = repo
        if os.geteuid() == 0:
            # What README.md tells root to add to a hand-written mpirun, as Open MPI's environment variables.
            self.env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
            self.notes.add("mpirun by hand runs as root (OMPI_ALLOW_RUN_AS_ROOT, as README.md tells root to add)")
        if (os.cpu_count() or 1) < 3:
            self.env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
            self.notes.add("mpirun by hand may oversubscribe (OMPI_MCA_rmaps_base_oversubscribe, as README.md says)")
        self.prelude = ('swift() { (cd "$PSTRAIN_DOCS_REPO" && command swift "$@"); }\nexport -f swift\n'
                        'set -o pipefail\n')
        self.shell_state = ""   # variables the docs set (BIN=...), carried to later commands

    def bash(self, cmd, where, timeout=900):
        script = self.prelude + self.shell_state + cmd + "\n"
        t = time.time()
        p = subprocess.run(["bash", "-c", script], cwd=self.scratch, env=self.env, capture_output=True, text=True, timeout=timeout)
        print(f"docs-check: {where}: $ {cmd}  [{'ok' if p.returncode == 0 else f'exit {p.returncode}'}, {time.time() - t:.1f} s]", flush=True)
        m = re.match(r"^([A-Z_]+)=(.*)$", cmd)
        if m and p.returncode == 0:
            self.shell_state += cmd + "\n"
        return p

    def fail(self, where, why):
        print(f"docs-check: FAILED {where}: {why}", flush=True)
        self.failures.append(f"{where}: {why}")

    def shell_block(self, b):
        for cmd in commands(b.lines):
            skip = next((why for pattern, why in NOT_HERE if pattern.search(cmd)), None)
            if skip:
                self.skipped.append(f"{b.where}: {cmd} ({skip})")
                print(f"docs-check: {b.where}: not run here: {cmd} ({skip})")
                continue
            for v in variants(cmd):
                run = shorten(v, self.notes)
                p = self.bash(run, b.where)
                self.ran += 1
                if p.returncode != 0:
                    self.fail(b.where, f"`{run}` exited {p.returncode}:\n{(p.stdout + p.stderr)[-3000:]}")

    def console_block(self, b):
        cmd, want = None, []

        def finish():
            if cmd is None:
                return
            run = shorten(cmd, self.notes)
            p = self.bash(run, b.where)
            self.ran += 1
            out = p.stdout + p.stderr
            for w in want:
                # "..." in a documented line stands for text that varies (a scratch path).
                if w.strip() and not re.search(".*?".join(map(re.escape, w.strip().split("..."))), out):
                    self.fail(b.where, f"`{run}` did not print the documented line\n  {w.strip()}\nit printed:\n{out[-3000:]}")
        for l in b.lines:
            if l.startswith("$ "):
                finish()
                cmd, want = l[2:].strip(), []
            else:
                want.append(l)
        finish()

    def python_block(self, b, earlier):
        path = os.path.join(self.scratch, f"docs-{os.path.basename(b.doc)}-{b.line}.py")
        with open(path, "w") as f:
            f.write("\n\n".join("\n".join(x.lines) for x in earlier + [b]) + "\n")
        venv = os.path.join(self.scratch, ".venv", "bin", "python")
        py = venv if os.path.exists(venv) else self.python
        t = time.time()
        p = subprocess.run([py, path], cwd=self.scratch, env=self.env, capture_output=True, text=True, timeout=900)
        print(f"docs-check: {b.where}: python block ({os.path.relpath(py, self.scratch) if py == venv else py})  "
              f"[{'ok' if p.returncode == 0 else f'exit {p.returncode}'}, {time.time() - t:.1f} s]", flush=True)
        if p.stdout.strip():
            print("\n".join("    " + l for l in p.stdout.strip().split("\n")[-8:]))
        self.ran += 1
        if p.returncode != 0:
            self.fail(b.where, f"the Python block failed:\n{(p.stdout + p.stderr)[-3000:]}")

    def doc(self, name):
        text = open(os.path.join(self.repo, name)).read()
        earlier = []
        for b in blocks(name, text):
            first = next((l.strip() for l in b.lines if l.strip()), "")
            lang = b.info.split()[0] if b.info else ""
            if b.mark and b.mark[0] == "output":
                continue
            if b.mark and b.mark[0] == "skip":
                if not b.mark[1]:
                    self.fail(b.where, "a docs-check: skip mark must say why")
                self.skipped.append(f"{b.where}: block skipped ({b.mark[1]})")
                continue
            if lang == "python":
                if first.startswith(("import ", "from ")):
                    earlier = []   # a new example; a block that starts otherwise continues the one before
                self.python_block(b, earlier)
                earlier.append(b)
            elif lang == "console":
                self.console_block(b)
            elif lang == "toml" and "file=" in b.info:
                target = b.info.split("file=", 1)[1].split()[0]
                with open(os.path.join(self.scratch, target), "w") as f:
                    f.write("\n".join(b.lines) + "\n")
            elif lang in ("", "sh", "bash") and COMMANDS.match(first):
                self.shell_block(b)
            else:
                self.fail(b.where, f"a code block that is neither commands, Python, console, a toml file=, nor marked "
                                   f"<!-- docs-check: output --> or <!-- docs-check: skip REASON --> (first line: {first!r})")


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    docs = sys.argv[2:] or DOCS
    scratch = tempfile.mkdtemp(prefix="pstrain-docs-")
    for name in ["examples", "scripts", "python"]:
        os.symlink(os.path.join(repo, name), os.path.join(scratch, name))
    c = Checker(repo, scratch, python)
    t = time.time()
    # Bare `pstrain` (docs/python.md, docs/models.md) is what scripts/install puts on PATH; here into the
    # check's own prefix, from the release build (README.md's own `scripts/install` line runs again below).
    rel = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=repo, capture_output=True, text=True).stdout.strip()
    p = subprocess.run([os.path.join(repo, "scripts", "install"), "--from", rel, "--prefix", c.env["DOCS_PREFIX"]],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"docs-check: scripts/install --from {rel} failed:\n{p.stdout}{p.stderr}")
    c.notes.add("pstrain is on PATH as scripts/install puts it (from the release build, into the check's prefix)")
    try:
        for d in docs:
            c.doc(d)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for n in sorted(c.notes):
        print(f"docs-check: as run here: {n}")
    print(f"docs-check: {c.ran} command(s) and block(s) run, {len(c.skipped)} not run here, {len(c.failures)} failed, "
          f"{time.time() - t:.0f} s ({', '.join(docs)})")
    if c.failures:
        print("docs-check: FAILED:\n  " + "\n  ".join(f.split("\n")[0] for f in c.failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
