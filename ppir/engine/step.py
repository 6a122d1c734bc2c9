"""What a task model's `train_step` uses to update its networks, whatever the precision or the
number of processes.

    def train_step(self, batch, step):
        with step.autocast():
            loss = ...
        step.backward(loss)
        if not step.step("generator"):    # averaged over ranks, unscaled, checked, stepped
            return None                   # skipped: non-finite gradients
        return {"loss": float(loss)}

`step.step(name)` averages the gradients of network `name` over the ranks (one collective),
unscales them (AMP), checks that they and every loss backpropagated since the last step are
finite, and only then runs that network's optimizer; the network's gradients are cleared either
way. This is the one place where non-finite values of a training step are caught, for every
task model: a model's losses must only let NaN through (ppir.losses.gan_loss.binary_cross_entropy),
never raise on it. Gradients reach a network from every loss that
depends on it until they are cleared, so an official update order in which one network's step
also carries another loss's gradient (MISF) is written as that order, with `zero_grad` where
the official code zeroes.
"""
from ppir.engine.amp import all_finite
from ppir.engine.distributed import allreduce_mean_


class TrainStep:
    def __init__(self, networks, optimizers, amp, world_size=1, iteration=0, schedulers=None):
        self.networks = networks
        self.optimizers = optimizers
        # Per-network LR schedules, for a model whose schedule follows its own clock (ICT's tokens).
        self.schedulers = schedulers or {}
        self.amp = amp
        self.world_size = world_size
        self.iteration = iteration
        self._losses = []  # backpropagated since the last step()

    def autocast(self):
        return self.amp.autocast()

    def backward(self, loss):
        self._losses.append(loss.detach())
        self.amp.backward(loss)

    def _params(self, name):
        return [p for p in self.networks[name].parameters() if not p.stop_gradient]

    def zero_grad(self, *names):
        for name in names or tuple(self.optimizers):
            self.optimizers[name].clear_grad()

    def step(self, name):
        """Average, unscale and check the gradients of `name`; step its optimizer when they are
        finite. Returns whether it stepped."""
        params = self._params(name)
        allreduce_mean_([p.grad for p in params], self.world_size)
        finite = self.amp.unscale_and_check(params)
        finite = all_finite(self._losses) and finite
        self._losses = []
        if finite:
            self.optimizers[name].step()
        self.optimizers[name].clear_grad()
        return finite
