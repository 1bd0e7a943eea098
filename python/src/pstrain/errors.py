"""The one error type the bridge raises for bad input: a sentence naming the
file, array, layer or key, what is wrong, and what to do."""


class PstrainError(ValueError):
    """Bad input to the bridge (a data set, a model, a checkpoint, a run log)."""


def need_torch(what):
    """torch, imported when a function needs it, or a clear error."""
    try:
        import torch
    except ImportError as e:
        raise PstrainError(f"{what} needs torch: install it (Debian: apt-get install python3-torch; "
                           f"or pip install torch; in this repository: scripts/bootstrap --python)") from e
    return torch
