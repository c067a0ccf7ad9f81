"""Connection URIs: telling one from a file path, and echoing one without its secrets."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlparse

#: Schemes of a PostgreSQL connection URI (libpq's).
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Query parameters of a URI that carry a secret.
SECRET_PARAMS = frozenset({"password", "sslpassword"})


def is_postgres(source: object) -> bool:
    """Whether ``source`` is a PostgreSQL URI (``postgresql://…`` or ``postgres://…``)."""
    return str(source).split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in str(source)


def redact(uri: str) -> str:
    """``uri`` without a password, in its user part or its query.

    >>> redact("postgresql://ann:secret@db:5432/mlflow")
    'postgresql://ann:***@db:5432/mlflow'
    >>> redact("postgresql://ann@db/shop?password=secret&sslmode=require")
    'postgresql://ann@db/shop?password=***&sslmode=require'
    """
    parsed = urlparse(uri)
    if parsed.password:
        parsed = parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@"))
    if parsed.query:
        pairs = parse_qsl(parsed.query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            hidden = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
            parsed = parsed._replace(query=urlencode(hidden, safe="*"))
    return parsed.geturl()


def has_secret(uri: str) -> bool:
    """Whether ``uri`` carries a password (which :func:`redact` would hide)."""
    return redact(uri) != uri
