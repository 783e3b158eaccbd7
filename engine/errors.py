"""The root of every error tensorflux raises on purpose.

Each package keeps its own small `errors.py` whose classes derive from
`TensorfluxError`; messages are built from fields so callers can read both.
HTTP status codes are the gateway's business, never the core's.
"""


class TensorfluxError(Exception):
    """Base class of every deliberate tensorflux error."""
