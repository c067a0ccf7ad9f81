"""Score quantities stay finite and right for the heaviest buyers (x up to 10⁴, T up to 10⁴).

References are evaluated independently in high precision with mpmath: the published closed forms
for P(alive) and expected purchases, and for Pareto/NBD's P(no purchase) the posterior expectation
``1 − ∫₀ᵗ E[λ e^(−λu)] E[e^(−μu)] du`` by quadrature — a different route from the likelihood ratio
that clv evaluates.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.models.fitted import PurchaseModel

mp.mp.dps = 40

#: Published CDNOW-sample parameters (DOMAIN.md §2) and an MBG/NBD fit on the same data.
PARAMS = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "mbgnbd": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
    "pareto": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    # α > β exercises the other branch of Pareto/NBD's hypergeometric term
    "pareto_alpha_above_beta": {"r": 0.8, "alpha": 14.0, "s": 1.3, "beta": 6.0},
}

#: (x, t_x, T): the CDNOW heavy buyer 14048, very old and very heavy customers, long silences.
HISTORIES = [
    (0, 0.0, 1e4),
    (1, 5.0, 1e4),
    (170, 70.86, 70.86),
    (170, 20.0, 70.86),
    (1000, 1e4, 1e4),
    (10_000, 1e4, 1e4),
    (10_000, 9_000.0, 1e4),
    (10_000, 10.0, 1e4),
    (3, 0.5, 0.5),
]


def _kind(name: str) -> str:
    return "pareto" if name.startswith("pareto") else name


def _mp_bg(p: dict[str, float], modified: bool, t: float, x: float, t_x: float, T: float):
    r, alpha, a, b = (mp.mpf(p[k]) for k in ("r", "alpha", "a", "b"))
    x, t_x, T, t = mp.mpf(x), mp.mpf(t_x), mp.mpf(T), mp.mpf(t)
    m = 1 if modified else 0
    if modified:
        odds = a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    else:
        odds = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0
    alive = 1 / (1 + odds)
    c = a + b + x - 1 + m
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * mp.hyp2f1(
        r + x, b + x + m, c, z, maxterms=10**6
    )
    expected = alive * c / (a - 1) * bracket
    silent = (1 - alive) + alive * ((alpha + T) / (alpha + T + t)) ** (r + x)
    return alive, expected, silent


def _mp_pareto(p: dict[str, float], t: float, x: float, t_x: float, T: float):
    r, alpha, s, beta = (mp.mpf(p[k]) for k in ("r", "alpha", "s", "beta"))
    x, t_x, T, t = mp.mpf(x), mp.mpf(t_x), mp.mpf(T), mp.mpf(t)
    high, second = (beta, r + x) if alpha < beta else (alpha, s + 1)
    gap = abs(alpha - beta)

    def term(u):
        f = mp.hyp2f1(r + s + x, second, r + s + x + 1, gap / (high + u), maxterms=10**6)
        return f / (high + u) ** (r + s + x)

    a0 = term(t_x) - term(T)
    alive = 1 / (1 + s / (r + s + x) * (alpha + T) ** (r + x) * (beta + T) ** s * a0)
    expected = (
        alive
        * (r + x)
        * (beta + T)
        / ((alpha + T) * (s - 1))
        * (1 - ((beta + T) / (beta + T + t)) ** (s - 1))
    )
    ra, aa, ba = r + x, alpha + T, beta + T  # posterior Gamma shapes/rates given alive at T
    integral = mp.quad(
        lambda u: ra / aa * (aa / (aa + u)) ** (ra + 1) * (ba / (ba + u)) ** s,
        [0, min(t, aa / ra), t],
    )
    silent = (1 - alive) + alive * (1 - integral)
    return alive, expected, silent


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize(("x", "t_x", "T"), HISTORIES)
def test_extreme_histories_match_high_precision(name: str, x: float, t_x: float, T: float) -> None:
    kind, params, t = _kind(name), PARAMS[name], 52.0
    model = PurchaseModel(kind, params, "week")
    ours = (
        model.p_alive(x, t_x, T),
        model.expected_purchases(t, x, t_x, T),
        model.p_no_purchase(t, x, t_x, T),
    )
    if kind == "pareto":
        ref = _mp_pareto(params, t, x, t_x, T)
    else:
        ref = _mp_bg(params, kind == "mbgnbd", t, x, t_x, T)
    for what, value, expected in zip(("P(alive)", "E[X]", "P(X=0)"), ours, ref, strict=True):
        value = float(np.asarray(value).reshape(-1)[0])
        assert np.isfinite(value), f"{what} is not finite for {(x, t_x, T)}"
        assert value == pytest.approx(float(expected), rel=1e-8, abs=1e-300), what


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(PARAMS)),
    x=st.integers(0, 10_000),
    T=st.floats(1e-3, 1e4),
    share=st.floats(0.0, 1.0),
    t=st.floats(1e-3, 1e3),
)
def test_score_quantities_are_finite_and_coherent(
    name: str, x: int, T: float, share: float, t: float
) -> None:
    t_x = share * T if x > 0 else 0.0
    model = PurchaseModel(_kind(name), PARAMS[name], "week")
    alive = model.p_alive(x, t_x, T)
    expected = model.expected_purchases(t, x, t_x, T)
    silent = model.p_no_purchase(t, x, t_x, T)
    longer = model.expected_purchases(2 * t, x, t_x, T)
    assert np.all(np.isfinite([alive, expected, silent, longer]))
    assert 0.0 <= alive <= 1.0 and 0.0 <= silent <= 1.0
    assert 0.0 <= expected <= longer * (1 + 1e-12)
    # a customer who is gone makes no purchase: P(no purchase) ≥ 1 − P(alive)
    assert silent >= 1.0 - alive - 1e-9
    # a longer window can only make "no purchase" less likely
    assert model.p_no_purchase(2 * t, x, t_x, T) <= silent + 1e-12
