"""Python bridge to pstrain (docs/python.md): write data sets pstrain reads,
convert torch nn.Sequential models to and from its [model] section, load its
checkpoints and exports, read its run logs. Needs numpy and safetensors;
torch for the model functions, pandas for DataFrames."""

from .checkpoint import load_normalization, load_state_dict, model_from_export
from .data import write_csv, write_npz, write_safetensors
from .errors import PstrainError
from .model import from_model_section, to_model_section
from .runlog import read_run_log

__all__ = ["PstrainError", "write_npz", "write_safetensors", "write_csv", "to_model_section", "from_model_section",
           "load_state_dict", "model_from_export", "load_normalization", "read_run_log"]
__version__ = "0.1.0"
