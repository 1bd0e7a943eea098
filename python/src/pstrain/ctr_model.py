"""The click-through-rate model of a [model] section with tables, in torch
(docs/python.md, "CTR"; the spec of issue 13): one nn.EmbeddingBag(rows,
dim, mode, sparse=True) per table, the MLP of model.layers on [dense
features, field 0's bag, field 1's bag, ...] (or the fields each table
names, table by table: model.tables[i].fields), one logit per row, and with
interaction = "fm" DeepFM's second-order term added to the logit.

State-dict names are pstrain's tensor names: embeddings.<i>.weight
[rows, dim], layers.<j>.weight / .bias."""

import torch
from torch import nn

from . import ctr
from . import layers as L
from .errors import PstrainError
from .model import build_sequential

INIT_RANGE = 0.05


class CTRModel(nn.Module):
    """tables: normalized table entries (ctr.parse_tables); layers: normalized
    layer entries (layers.normalize); dense: dense features per row;
    interaction: "none" or "fm". Table rows start uniform(-0.05, 0.05)
    (torch's generator: not pstrain's counter RNG), dense layers with
    nn.Linear's default initialisation."""

    def __init__(self, tables, layers, interaction="none", dense=0):
        super().__init__()
        self.tables, self.interaction, self.dense = list(tables), interaction, dense
        self.features = ctr.features_of(self.tables)
        self.embeddings = nn.ModuleList(nn.EmbeddingBag(t["rows"], t["dim"], mode=t["mode"], sparse=True)
                                        for t in tables)
        for e in self.embeddings:
            nn.init.uniform_(e.weight, -INIT_RANGE, INIT_RANGE)
        width = dense + sum(self.tables[t]["dim"] for _, t in self.features)
        shape = (width,)
        for i, e in enumerate(layers):
            shape = L.output_shape(e, shape, i)
        if shape != (1,):
            raise PstrainError(f"model.layers ends with {shape[0]} outputs; a CTR model gives one logit per row "
                               f"(end with {{ type = \"dense\", units = 1 }})")
        self.layers = build_sequential(layers, (width,))

    def forward(self, dense, ids, offsets, weights=None):
        """dense: (B, dense) float32; ids[f], offsets[f]: field f's bags as
        nn.EmbeddingBag's 1-D input and offsets (table rows: CTRData.rows_of);
        weights[f]: None or one weight per id (mode "sum" only). Each
        feature's bag (`features`: (field, table) pairs) follows the dense
        features, in order. Returns (B,) logits."""
        weights = weights or [None] * len(ids)
        bags = [self.embeddings[t](ids[f], offsets[f], per_sample_weights=weights[f]) for f, t in self.features]
        logit = self.layers(torch.cat([dense] + bags, 1)).squeeze(1)
        if self.interaction == "fm":
            v = torch.stack(bags, 1)
            logit = logit + 0.5 * (v.sum(1) ** 2 - (v ** 2).sum(1)).sum(1)
        return logit

    def sparse_parameters(self):
        return [e.weight for e in self.embeddings]

    def dense_parameters(self):
        return list(self.layers.parameters())


def ctr_model_from_section(model_section):
    """The CTRModel of a [model] section (a dict: the section or a whole
    parsed configuration, or TOML text), torch's initial weights: load a
    state_dict into it (load_state_dict(path, names="pstrain")) for pstrain's."""
    import tomllib
    doc = model_section
    if isinstance(doc, str):
        try:
            doc = tomllib.loads(doc)
        except tomllib.TOMLDecodeError as e:
            raise PstrainError(f"the model section is not valid TOML: {e}") from e
    model = doc.get("model", doc)
    if "tables" not in model:
        raise PstrainError("the model section has no 'tables': a CTR model has model.tables "
                           "(from_model_section builds the other models)")
    tables = ctr.parse_tables(model)
    if not isinstance(model.get("layers"), list):
        raise PstrainError("model.layers must be an array of layer tables")
    entries = [L.normalize(e, i) for i, e in enumerate(model["layers"])]
    return CTRModel(tables, entries, ctr.interaction_of(model, tables), ctr.dense_count(model))
