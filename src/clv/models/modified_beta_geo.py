"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD with a chance of dropping out at the
first purchase too, so a customer without repeat purchases is not certainly alive.

Its likelihood and scores are BG/NBD's with the dropout shifted by one purchase
(:mod:`clv.models.beta_geo`, ``modified``).
"""

from __future__ import annotations

from typing import ClassVar

from clv.models.beta_geo import BetaGeo


class ModifiedBetaGeo(BetaGeo):
    """MBG/NBD: BG/NBD whose customers may drop out at time 0 as well."""

    kind: ClassVar[str] = "mbgnbd"
    name: ClassVar[str] = "MBG/NBD"
    lifetimes_fitter: ClassVar[str] = "ModifiedBetaGeoFitter"
    modified: ClassVar[bool] = True
