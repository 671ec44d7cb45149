"""Reading and writing rnnkit files: safe (never pickled) arrays + metadata, atomic writes.

Interop lives beside it and imports its optional dependency only when called:
rnnkit.io.keras (from_keras, to_keras), rnnkit.io.onnx (export_onnx, import_onnx, run_pipeline) and rnnkit.io.torch_files
(load_torch_file, save_torch_file, to_torch_state_dict, from_torch_state_dict).
"""
from .safe import FORMAT_VERSION, atomic_write_bytes, atomic_write_text, load_arrays, save_arrays

__all__ = ["FORMAT_VERSION", "atomic_write_bytes", "atomic_write_text", "load_arrays", "save_arrays"]
