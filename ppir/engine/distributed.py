"""Data parallelism without wrappers: gradients are averaged over ranks where the task model steps.

A GAN calls its discriminator several times per iteration and steps two optimizers, with
gradients flowing from one loss into the other network (MISF's official order even relies on
it). `paddle.DataParallel` ties its gradient all-reduce to one forward/backward pair per
wrapper; here the reduction happens explicitly, right before each optimizer step, on exactly
the gradients that step uses. One coalesced all-reduce per step: every gradient is flattened
into one buffer, summed over ranks, divided by the world size and copied back.
"""
import numpy as np
import paddle
import paddle.distributed as dist


@paddle.no_grad()
def allreduce_mean_(tensors, world_size):
    """Average `tensors` over all ranks, in place (one collective)."""
    tensors = [t for t in tensors if t is not None]
    if world_size <= 1 or not tensors:
        return

    def mean(flat):
        dist.all_reduce(flat)
        return flat / world_size

    _through_one_buffer_(tensors, mean)


def _through_one_buffer_(tensors, collective):
    """Run `collective` (float32 1-D tensor -> tensor) once on all `tensors` flattened into one
    buffer, and copy the result back into them."""
    flat = collective(paddle.concat([t.reshape([-1]).astype("float32") for t in tensors]))
    offset = 0
    for t in tensors:
        n = int(np.prod(t.shape))
        paddle.assign(flat[offset:offset + n].reshape(t.shape).astype(t.dtype), t)
        offset += n


@paddle.no_grad()
def broadcast_states_(networks, src=0):
    """Copy rank `src`'s parameters and buffers into every rank (what DataParallel did at wrap time)."""
    for net in networks:
        for tensor in net.state_dict().values():
            dist.broadcast(tensor, src=src)


def untrained_states(net):
    """The state tensors no optimizer updates: BatchNorm running statistics, spectral-norm vectors."""
    trained = {id(p) for p in net.parameters() if p.trainable}
    return [t for t in net.state_dict().values() if id(t) not in trained]


@paddle.no_grad()
def broadcast_buffers_(networks, src=0):
    """Copy rank `src`'s untrained states into every rank, in place (one collective).

    Averaged gradients keep the parameters equal, but a BatchNorm updates its running statistics
    from its own rank's batch. Following rank `src` keeps every rank equal to the state rank `src`
    saves: the statistics of its own batches only, which is what a torch DDP run with
    `broadcast_buffers=False` (CTSDG's train.py) saves from rank 0."""
    tensors = [t for net in networks for t in untrained_states(net)]
    if not tensors:
        return

    def from_src(flat):
        dist.broadcast(flat, src=src)
        return flat

    _through_one_buffer_(tensors, from_src)


def states_digest(networks):
    """Two float64 numbers per parameter and buffer (BatchNorm statistics, spectral-norm vectors
    included): enough to tell whether two ranks hold the same networks."""
    values = []
    for net in networks:
        for tensor in net.state_dict().values():
            a = tensor.numpy().astype(np.float64)
            values += [a.sum(), (a * a).sum()]
    return np.array(values)


def ranks_agree(networks, world_size):
    """True when every rank holds identical parameters and buffers (a collective call)."""
    digest = paddle.to_tensor(states_digest(networks))
    gathered = []
    dist.all_gather(gathered, digest)
    return all(np.array_equal(g.numpy(), gathered[0].numpy()) for g in gathered)


def average_logs(logged, world_size):
    """The mean over ranks of each logged float (every rank must call it at the same iteration)."""
    if world_size <= 1 or not logged:
        return logged
    keys = list(logged)  # same order on every rank: the same code logged them
    values = paddle.to_tensor([float(logged[k]) for k in keys], dtype="float64")
    dist.all_reduce(values)
    return {k: float(v) / world_size for k, v in zip(keys, values.numpy())}
