"""The char-level LM of benchmarks/bench_charlm.py, built twice: its data windows and its two trainers.

    load_ids, windows                  the text as ids; endless (x (T, B), y (T, B)) TBPTT windows
    RnnkitTrainer(V, a).step(x, y)     rnnkit: zero_grad, objective (carried state), clip, Adam
    torch_trainer(torch, V, a, rk)     the idiomatic PyTorch step, from rnnkit model rk's weights

`a` is bench_charlm's parsed arguments (batch, seq_len, hidden, embed, layers).
"""
import os

import numpy as np

LR, CLIP, V_RANDOM = 2e-3, 5.0, 65      # Adam's learning rate, clip_grad_norm's max norm, random vocab


# -- data -----------------------------------------------------------------------------------------
def load_ids(path, n_random=200_000):
    """(ids (N,), V, source): the characters of `path` as ids, or N random ids in [0, 65) without it."""
    if path and os.path.exists(path):
        from rnnkit.data import Vocab
        from rnnkit.data.corpus import read_text
        text = read_text(path)
        vocab = Vocab.from_texts([text], pad=None, unk=None, bos=None, eos=None)
        return vocab.encode(text), len(vocab), path                          # (N,)
    ids = np.random.default_rng(0).integers(0, V_RANDOM, n_random)           # (N,)
    return ids, V_RANDOM, f"random ids, V={V_RANDOM}"


def windows(ids, a):
    """Endless (x (T, B), y (T, B)) windows of the stream, in order; ragged last windows are skipped."""
    from rnnkit.data import StreamBatches
    s = StreamBatches(ids, a.batch, a.seq_len)
    while True:
        x, y = s.next_batch()
        if len(x) == a.seq_len:
            yield x, y


# -- the two trainers: step(x, y) -> loss ----------------------------------------------------------
class RnnkitTrainer:
    """One rnnkit step the way fit does it: zero_grad, objective (with the carried state), clip, Adam."""

    def __init__(self, V, a, hidden=None):
        from rnnkit import optim
        from rnnkit.batches import detach_state
        from rnnkit.models.many_to_many import ManyToMany
        self.model = ManyToMany(vocab_size=V, embedding_dim=a.embed, cell="lstm",
                                hidden_size=hidden or a.hidden, num_layers=a.layers)
        self.opt = optim.Adam(self.model, lr=LR)
        self.clip = lambda: optim.clip_grad_norm(self.model, CLIP)
        self.carry, self.detach = None, detach_state       # the carried state, copied as fit does

    def step(self, x, y):
        """Train on x (T, B) -> y (T, B); the mean loss."""
        self.model.zero_grad()
        loss_sum, count, _, state = self.model.objective({"x": x, "y": y}, self.carry)
        self.clip()
        self.opt.step()
        self.carry = self.detach(state)
        return loss_sum / count


def torch_model(torch, V, a, hidden=None):
    """nn.Embedding -> nn.LSTM(num_layers) -> nn.Linear, time-major."""
    nn = torch.nn

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, a.embed)
            self.lstm = nn.LSTM(a.embed, hidden or a.hidden, num_layers=a.layers)
            self.out = nn.Linear(hidden or a.hidden, V)

        def forward(self, x, state=None):
            h, state = self.lstm(self.embed(x), state)                       # (T, B, H)
            return self.out(h), state                                        # (T, B, V)

    return CharLM()


def copy_weights(torch, tm, rk):
    """Load rnnkit model rk's weights into the PyTorch model tm."""
    sd = {f"lstm.{k}": v for k, v in rk.rnn.torch_state_dict().items()}
    sd.update({"embed.weight": rk.input.embed.params["W"], "out.weight": rk.out.params["W_y"].T,
               "out.bias": rk.out.params["b_y"]})
    tm.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})


def torch_trainer(torch, V, a, rk=None, hidden=None):
    """step(x, y) -> loss: the idiomatic PyTorch step, from rnnkit model rk's weights when given."""
    F = torch.nn.functional
    model = torch_model(torch, V, a, hidden)
    if rk is not None:
        copy_weights(torch, model, rk)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    carry = [None]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        logits, state = model(torch.from_numpy(x), carry[0])                 # (T, B, V)
        loss = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        carry[0] = tuple(s.detach() for s in state)
        return loss.item()

    return step


def import_torch(want, threads):
    """torch with `threads` threads, or None when not wanted or not installed."""
    from rnnkit.bench import _import_torch
    return _import_torch(want, threads)
