"""Python bridge to pstrain (docs/python.md): write data sets pstrain reads,
convert torch nn.Sequential models to and from its [model] section, load its
checkpoints and exports (as a model that applies the run's input
normalisation, Normalize), read its run logs; the CTR model (CTRModel), its
data readers and metrics. Needs numpy and safetensors; torch for the model
functions, pandas for DataFrames."""

from .ctr import auc, bucket, log_loss, read_criteo, read_ctr, read_libsvm
from .checkpoint import load_normalization, load_state_dict, model_from_export
from .data import read_idx, write_csv, write_npz, write_safetensors
from .errors import PstrainError
from .model import from_model_section, to_model_section
from .runlog import read_run_log

__all__ = ["PstrainError", "read_idx", "write_npz", "write_safetensors", "write_csv", "to_model_section", "from_model_section",
           "load_state_dict", "model_from_export", "load_normalization", "read_run_log",
           "Normalize", "CTRModel", "ctr_model_from_section", "read_criteo", "read_libsvm", "read_ctr", "bucket", "auc", "log_loss"]
__version__ = "0.1.0"


def __getattr__(name):
    """Normalize, CTRModel and ctr_model_from_section import torch: only when asked for."""
    if name == "Normalize":
        from .normalize import Normalize
        return Normalize
    if name in ("CTRModel", "ctr_model_from_section"):
        from . import ctr_model
        return getattr(ctr_model, name)
    raise AttributeError(f"module 'pstrain' has no attribute {name!r}")
