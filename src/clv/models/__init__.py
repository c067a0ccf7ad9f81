"""The models: BTYD purchase models (one module each, named in :mod:`clv.models.registry`),
their ensemble, and Gamma-Gamma spend.

- :mod:`~clv.models.base` — what a purchase model is, and the pattern-weighted fit they share;
- :mod:`~clv.models.beta_geo`, :mod:`~clv.models.modified_beta_geo`,
  :mod:`~clv.models.pareto_nbd` — BG/NBD, MBG/NBD, Pareto/NBD;
- :mod:`~clv.models.registry` — config names → models;
- :mod:`~clv.models.fitted`, :mod:`~clv.models.ensemble` — fitted models as JSON-able data;
- :mod:`~clv.models.fitting` — fit by name, with a retry; rebuild from JSON;
- :mod:`~clv.models.patterns` — customers as distinct ``(x, t_x, T)`` patterns;
- :mod:`~clv.models.gamma_gamma` — spend per transaction.
"""
