"""tessera.models: ViT-MAE / DINOv2 encoders with register tokens, input adapter, heads, export and load.

``build_pretrain_model(cfg)`` builds the pretraining model; ``load(ref)`` returns the feature interface
(:class:`~tessera.models.encoder.Encoder`) used by evaluation. Imports are light until these are used.
"""

from tessera.models.config import ModelConfig
from tessera.models.presets import MODEL_PRESETS


def build_pretrain_model(cfg, branches=None):
    """See :func:`tessera.models.pretrain_model.build_pretrain_model`."""
    from tessera.models.pretrain_model import build_pretrain_model as _build

    return _build(cfg, branches=branches)


__all__ = ["ModelConfig", "MODEL_PRESETS", "build_pretrain_model"]
