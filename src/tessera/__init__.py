"""tessera: domain-adapted Vision Transformers for scientific images, with an honest transfer evaluation."""

__version__ = "0.1.0"


def load(ref, **kwargs):
    """Load an encoder (run directory, exported model directory, Hugging Face id, or ``random:NAME``).

    Returns an object with ``embed(images, readout="mean_patch", layer=-1)`` and ``tokens(images)``;
    see DESIGN.md §3.3. Imported lazily so ``import tessera`` stays light.
    """
    from tessera.models.load import load as _load

    return _load(ref, **kwargs)


__all__ = ["__version__", "load"]
