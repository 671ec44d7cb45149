"""Reading and writing rnnkit files: safe (never pickled) arrays + metadata, atomic writes."""
from .safe import FORMAT_VERSION, atomic_write_bytes, atomic_write_text, load_arrays, save_arrays

__all__ = ["FORMAT_VERSION", "atomic_write_bytes", "atomic_write_text", "load_arrays", "save_arrays"]
