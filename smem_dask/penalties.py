r"""Penalties P(β) and their two treatments on the p×p M-step system (see docs/method.md,
"Penalties and the M-step").

The objective adds α·P(β) (docs/method.md, "The objective"); the intercept is never penalized and
never reaches a penalty.
Each M-step minimizes the quadratic majorizer of the loss plus the penalty,

    Q(β) = ½ βᵀ A β − bᵀ β + W·α·P(β_pen),     A = Xᵀ S Ω X,  b = Xᵀ S u,

in one of two ways, chosen by ``penalty_solver``:

* ``"em"`` — the paper's parameter weights: P is majorized at the current β by ½ Σ d_j β_j² with
  d_j = g'(|β_j|)/|β_j| (for P = Σ g(|β_j|)), and the M-step is one linear solve. Valid whenever g is
  concave in β² (every penalty here); EM weights never produce exact zeros. |β_j| is clamped below
  at ``EM_EPS``·max(1, ‖β‖∞) so that d stays finite.
* ``"exact"`` — minimize Q itself, with the penalty as it is, by (block) coordinate descent on the
  p×p Gram warm-started at the expansion point: exact zeros, no data pass. Available where
  ``has_exact``.

Either way Q decreases from the warm start, so EM stays monotone. No dask, no X here.

This module is the registry (:data:`PENALTIES`, :func:`get_penalty`); every
penalty name stays importable from here. The code lives in:

* :mod:`smem_dask.penalty_base` — the :class:`Penalty` interface, ``EM_EPS`` and :func:`em_floor`;
* :mod:`smem_dask.convex_penalties` — ``L2``, ``ElasticNet``, ``L1``, ``Group`` (with conjugates);
* :mod:`smem_dask.nonconvex_penalties` — ``Bridge``, ``SCAD``, ``MCP``, ``Log`` (Σ ρ(|β_j|), EM only);
* :mod:`smem_dask.exact_solvers` — the exact M-step solvers (active set, group block descent).
"""

from __future__ import annotations

from .convex_penalties import L1, L2, ElasticNet, Group
from .exact_solvers import (  # noqa: F401 (private helpers, still importable from here)
    _active_set_elastic_net,
    _block_coordinate_descent,
    _group_change,
    _group_prox,
    _group_residual,
    _group_scale,
    _newton_on_active_groups,
    _quadratic_change,
    _solve_sym,
)
from .nonconvex_penalties import MCP, SCAD, Bridge, Log, _SeparableConcave  # noqa: F401
from .penalty_base import EM_EPS, Penalty, _clamped_abs, _unit_box_scale, em_floor  # noqa: F401
from .registry import by_name

__all__ = [
    "EM_EPS",
    "em_floor",
    "MCP",
    "PENALTIES",
    "SCAD",
    "Bridge",
    "ElasticNet",
    "Group",
    "L1",
    "L2",
    "Log",
    "Penalty",
    "get_penalty",
]


PENALTIES: dict[str, type[Penalty]] = {
    cls.name: cls for cls in (L2, L1, ElasticNet, Group, Bridge, SCAD, MCP, Log)
}


def get_penalty(penalty: str | Penalty, **params) -> Penalty:
    """A penalty object from its name (with its parameters) or an instance; clear errors."""
    return by_name(penalty, Penalty, PENALTIES, "penalty", "penalties", params)
