"""Root of every exception the package raises on purpose.

Subpackages define their own errors under this root (``storage.errors``, ...), each also
inheriting the matching builtin so generic handlers (``except ValueError``) still work.
"""


class EarthSignatureError(Exception):
    """Base class of all EarthSignature errors."""


class ConfigurationError(EarthSignatureError, ValueError):
    """A setting is missing, contradictory or malformed."""
