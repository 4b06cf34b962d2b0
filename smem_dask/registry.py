"""Losses and penalties chosen by name: the one lookup behind :func:`smem_dask.losses.get_loss` and
:func:`smem_dask.penalties.get_penalty`, with the same clear errors. Pure Python; imports nothing of
the package (the bottom of the import order).
"""

from __future__ import annotations

__all__ = ["by_name"]


def by_name(obj, base: type, registry: dict[str, type], kind: str, kinds: str, params: dict):
    """``obj`` itself if it is an instance of ``base``, else ``registry[obj](**params)``.

    A ``ValueError`` names the parameters the class does not take, or the supported names
    (``kind`` and ``kinds`` are the singular and plural of what is chosen: "loss", "losses").
    """
    if isinstance(obj, base):
        return obj
    if isinstance(obj, str) and obj in registry:
        try:
            return registry[obj](**params)
        except TypeError as exc:
            raise ValueError(f"{kind} {obj!r} does not take the parameters {params}: {exc}") from exc
    raise ValueError(f"unknown {kind} {obj!r}; supported {kinds}: {', '.join(sorted(registry))}")
