"""Synchronous data parallelism over MPI (mpi4py): the same model trained on N processes.

Every rank holds the whole model and draws the same global batch (the batch iterator is seeded
identically everywhere); rank r computes the objective on its contiguous share of the batch
(ShardedData), and the gradients are averaged before an identical optimizer step on every rank:

    g = Σ_r n_r g_r / Σ_r n_r        n_r: items (tokens, sequences) on rank r, g_r = ∇ (L_r / n_r)

which is exactly the gradient of the whole batch's mean loss, so N ranks with B/N each follow the
same weights as one rank with B (to float rounding).

Communication overlaps the backward pass: each top-level child module's gradients form a bucket
(one contiguous buffer), and a non-blocking Iallreduce of the bucket starts as soon as that
child's backward returns (the readout's while the recurrent layers still run). Overlap needs
every rank to hold the same number of items (then Σ g_r / N is the weighted mean above) and each
child's backward to run once per step with no parameters shared between children; otherwise the
step falls back to one blocking Allreduce of the n_r-weighted gradients in one buffer.

Rank 0 alone writes logs, plots and checkpoints; every rank reads them to resume, with any N.
The data position in a checkpoint is global, and a carried TBPTT state (arrays with the batch on
axis 1, PyTorch's state layout) is gathered to rank 0 to be saved and split again on resume.
"""
import numpy as np

from .errors import InputError


def mpi_world_size():
    """The number of ranks mpiexec started (1 outside MPI), read from the environment without importing MPI."""
    import os
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def _comm(comm):
    if comm is not None:
        return comm
    try:
        from mpi4py import MPI
    except ImportError:
        raise InputError("parallel: data-parallel training needs mpi4py "
                         "(pip install 'rnnkit[mpi]', i.e. mpi4py and mpich)") from None
    return MPI.COMM_WORLD


def split(n, size, rank):
    """The [start, stop) of rank's contiguous share of n items (np.array_split's rule)."""
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


class ShardedData:
    """A batch source whose next_batch() is this rank's share of the global batch; position stays global."""

    def __init__(self, data, size, rank):
        self.data, self.size, self.rank = data, size, rank
        if hasattr(data, "make_batch") and hasattr(data.it, "batch_size"):
            if data.it.batch_size < size:
                raise InputError(f"batch size: expected at least one item per rank ({size} ranks), "
                                 f"got {data.it.batch_size}")

    def __len__(self):
        return len(self.data)

    epoch = property(lambda self: self.data.epoch)
    index = property(lambda self: self.data.index)

    def state(self):
        return self.data.state()

    def set_state(self, state):
        self.data.set_state(state)

    def eval_batches(self):
        return self.data.eval_batches()

    def next_batch(self):
        """This rank's share: the index shard of a Batches, or the lane shard of a stream window."""
        d = self.data
        if hasattr(d, "make_batch"):                          # Batches: shard the indices
            idx = d.it.next_batch()
            a, b = split(len(idx), self.size, self.rank)
            return d.make_batch(idx[a:b])
        batch = d.next_batch()                                # StreamWindows: shard the lanes
        a, b = split(batch["x"].shape[1], self.size, self.rank)
        return {k: v[:, a:b] for k, v in batch.items()}


class DataParallel:
    """Gradient averaging, sharding and agreement between the ranks of an MPI communicator."""

    def __init__(self, comm=None):
        self.comm = _comm(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.buckets, self.requests, self.calls, self.overlap = [], [], {}, True
        self.overlapped_steps = 0             # steps whose buckets were reduced during backward

    @property
    def is_root(self):
        return self.rank == 0

    # -- buckets and overlap ----------------------------------------------------------------------
    def attach(self, model):
        """One bucket per top-level child with parameters; hook each child's backward to start its Iallreduce."""
        owners, self.buckets = {}, []
        children = list(model.children.items()) or [("", model)]
        for name, child in children:
            grads = [g for _, _, g in child.named_parameters()]
            if not grads:
                continue
            for g in grads:
                if owners.setdefault(id(g), name) != name:
                    self.overlap = False              # shared parameters: one bucket after backward
            dtype = grads[0].dtype
            self.buckets.append((name, child, grads, np.empty(sum(g.size for g in grads), dtype)))
        self.params = [g for _, _, g in model.named_parameters()]
        self.flat = np.empty(sum(g.size for g in self.params), self.params[0].dtype if self.params else np.float32)
        if self.overlap and self.size > 1:
            for i, (name, child, _, _) in enumerate(self.buckets):
                child.backward = self._hooked(child.backward, i)

    def _hooked(self, backward, i):
        def run(*args, **kwargs):
            out = backward(*args, **kwargs)
            self.calls[i] = self.calls.get(i, 0) + 1
            if self.overlap and self.calls[i] == 1:
                _, _, grads, buf = self.buckets[i]
                pack(grads, buf)
                self.requests.append((i, self.comm.Iallreduce(_inplace(), buf)))
            return out
        return run

    def reduce(self, loss_sum, count, metrics):
        """Average gradients across ranks; return the global loss_sum, count and summed metrics."""
        counts = self.comm.allgather(int(count))
        totals = self.comm.allreduce(np.array([float(loss_sum)] + [float(metrics[k]) for k in sorted(metrics)]))
        requests, self.requests, calls, self.calls = self.requests, [], self.calls, {}
        for _, req in requests:
            req.Wait()
        overlapped = (len(requests) == len(self.buckets) and all(c == 1 for c in calls.values())
                      and len(set(counts)) == 1)
        if overlapped:
            self.overlapped_steps += 1
            for _, (_, _, grads, buf) in zip(requests, self.buckets):
                unpack(buf / self.size, grads)
        elif self.size > 1:
            self.overlap = self.overlap and all(c == 1 for c in calls.values())
            total = max(sum(counts), 1)
            pack(self.params, self.flat)
            self.flat *= count / total
            self.comm.Allreduce(_inplace(), self.flat)
            unpack(self.flat, self.params)
        merged = {k: _number(metrics[k], v) for k, v in zip(sorted(metrics), totals[1:])}
        return float(totals[0]), sum(counts), merged

    # -- agreement, carried state -----------------------------------------------------------------
    def first(self, value):
        """The first non-None value over the ranks (rank order), the same on every rank."""
        return next((v for v in self.comm.allgather(value) if v is not None), None)

    def gather_carry(self, carry):
        """The whole batch's carried state on every rank (arrays joined on axis 1)."""
        return _map(carry, lambda a: np.concatenate(self.comm.allgather(a), axis=1))

    def split_carry(self, carry):
        """This rank's lanes of a whole-batch carried state."""
        def take(a):
            lo, hi = split(a.shape[1], self.size, self.rank)
            return a[:, lo:hi].copy()
        return _map(carry, take)

    def sum_eval(self, loss_sum, count, totals):
        """Add an evaluation's sums over the ranks."""
        keys = sorted(totals)
        v = self.comm.allreduce(np.array([loss_sum, count] + [float(totals[k]) for k in keys]))
        return float(v[0]), int(round(v[1])), {k: _number(totals[k], x) for k, x in zip(keys, v[2:])}

    def abort(self, code=1):
        """Take the whole job down (a rank that fails must not leave the others waiting)."""
        self.comm.Abort(code)


def _inplace():
    from mpi4py import MPI
    return MPI.IN_PLACE


def _number(like, x):
    return int(round(x)) if isinstance(like, (int, np.integer)) else float(x)


def pack(arrays, buf):
    """Copy arrays into one contiguous buffer."""
    i = 0
    for a in arrays:
        buf[i:i + a.size] = a.ravel()
        i += a.size


def unpack(buf, arrays):
    """Copy a contiguous buffer back into arrays, in place."""
    i = 0
    for a in arrays:
        a[...] = buf[i:i + a.size].reshape(a.shape)
        i += a.size


def _map(state, fn):
    if state is None:
        return None
    if isinstance(state, np.ndarray):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(_map(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: _map(v, fn) for k, v in state.items()}
    return state
