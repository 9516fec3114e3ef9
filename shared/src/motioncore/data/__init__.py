"""Built-in dataset caches shared by every package (build once, atomic rename, spec marker)."""

from motioncore.data.cache import BuiltinData, build_once, is_built, source_fingerprint

__all__ = ["BuiltinData", "build_once", "is_built", "source_fingerprint"]
