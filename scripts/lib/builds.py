"""What scripts/digest-matrix and scripts/bench-compare share: a release
build of a tree, another commit checked out in a worktree for the time of a
comparison, and a run log's records of one event."""
import contextlib, json, os, subprocess


def release_build(tree, scratch=None):
    """`swift build -c release` in `tree`; returns the folder of the executables."""
    cmd = ["swift", "build", "-c", "release"] + (["--scratch-path", scratch] if scratch else [])
    subprocess.run(cmd, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return subprocess.run(cmd + ["--show-bin-path"], cwd=tree, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def worktree(root, ref, path):
    """Commit `ref` of the repository at `root`, checked out (detached) at `path`; removed afterwards."""
    subprocess.run(["git", "worktree", "remove", "--force", path], cwd=root, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", path, ref], cwd=root, check=True, stdout=subprocess.DEVNULL)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", path], cwd=root, capture_output=True)


def records(path, event):
    """The records of `event` in a JSON-lines log (none when the file is missing; unparsable lines skipped)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("event") == event:
                out.append(r)
    return out
