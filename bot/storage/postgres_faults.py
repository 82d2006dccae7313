"""Why a PostgreSQL database cannot be reached, said in one line a person can act on.

libpq's words name the socket or the host but not which setting to change. The line names
the database as host, port, database and user, never the password, and says what to check.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

__all__ = ["describe", "explain_connect_failure"]

_WHERE = "check BOT_DATABASE_URL"


def describe(url: str) -> str:
    """``db@host:port as user``, without the password (also for a URL that does not parse)."""
    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "(BOT_DATABASE_URL does not parse)"
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "5432")
    where = f"{host}:{port}" if not host.startswith("/") else f"the socket in {host}"
    user = f" as {parts['user']}" if parts.get("user") else ""
    return f"{parts.get('dbname') or '(default)'} on {where}{user}"


def explain_connect_failure(url: str, exc: BaseException) -> str:
    """``cannot reach the PostgreSQL database <db> on <host>: <reason>; <what to do>``."""
    try:
        conninfo_to_dict(url)
    except Exception:
        return ("BOT_DATABASE_URL is not a PostgreSQL address; write it as "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else type(exc).__name__
    lowered = detail.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        fix = f"{_WHERE}: the user name or password is wrong"
    elif "does not exist" in lowered and "database" in lowered:
        fix = "create the database (createdb NAME) or " + _WHERE
    elif "permission denied" in lowered:
        fix = "grant the user CONNECT and CREATE on the database, or " + _WHERE
    else:
        fix = f"check that the server runs and accepts connections from here, or {_WHERE}"
    # libpq repeats the password nowhere, but a URL in the message would: drop it if it does.
    for secret in _secrets(url):
        detail = detail.replace(secret, "***")
    return f"cannot reach the PostgreSQL database {describe(url)}: {detail}; {fix}"


def _secrets(url: str) -> list[str]:
    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:
        return []
    return [str(password)] if password else []
