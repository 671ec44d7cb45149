"""The four architectures, and `build(config)` that rebuilds any registered module from its config().

    ManyToMany      N -> N   an output at every step (tagging, char-level language model)
    ManyToOne       N -> 1   one output per sequence (classification, regression)
    OneToMany       1 -> N   a sequence generated from one vector
    EncoderDecoder  N -> M   seq2seq with a context: last state, a transform of it, or attention
"""
import importlib

from ..errors import InputError

# type name -> module that defines it (imported on first use)
REGISTRY = {
    "RNN": "rnnkit.layers.stack", "LSTM": "rnnkit.layers.stack", "GRU": "rnnkit.layers.stack",
    "Linear": "rnnkit.layers.basic", "Embedding": "rnnkit.layers.basic",
    "MinGRU": "rnnkit.layers.minimal", "MinLSTM": "rnnkit.layers.minimal",
    "CellRNN": "rnnkit.layers.plugin", "EmbeddingDropout": "rnnkit.layers.embedding_dropout",
    "ManyToMany": "rnnkit.models.many_to_many", "ManyToOne": "rnnkit.models.many_to_one",
    "OneToMany": "rnnkit.models.one_to_many", "EncoderDecoder": "rnnkit.models.seq2seq",
}


def model_class(name):
    """The class registered under `name`."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise InputError(f"config['type']: expected one of {sorted(REGISTRY)}, got {name!r}")
    return getattr(importlib.import_module(REGISTRY[name]), name)


def build(config):
    """Rebuild a module from its config(): {"type": name, **constructor arguments}."""
    if not isinstance(config, dict) or "type" not in config:
        raise InputError(f"config: expected a dict with a 'type' key, got {config!r:.200}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    try:
        return model_class(config["type"])(**kwargs)
    except TypeError as e:
        raise InputError(f"config: arguments do not fit {config['type']}: {e}") from None


def __getattr__(name):
    if name in REGISTRY and REGISTRY[name].startswith("rnnkit.models"):
        return model_class(name)
    raise AttributeError(name)
