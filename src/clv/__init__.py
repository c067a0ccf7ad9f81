"""clv: customer lifetime value from a transaction log.

BTYD purchase models (BG/NBD, MBG/NBD, Pareto/NBD via ``lifetimes``), Gamma-Gamma spend,
discounted CLV and batch scoring. Importing this package has no side effects and imports no
heavy library; the modules below import what they need.

Modules, in the order data flows through them: ``config`` → ``data`` → ``features`` →
``btyd`` / ``spend`` → ``value`` → ``bundle`` → ``evaluation`` → ``training`` → ``predict``
→ ``cli``.
"""

__version__ = "0.1.0"
