"""Exponential moving average of the network weights (optional, `EMA.enable`)."""
import contextlib

import paddle


class ModelEMA:
    """shadow = decay * shadow + (1 - decay) * weights, after every optimizer step."""

    def __init__(self, net, decay=0.999):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @paddle.no_grad()
    def update(self, net):
        for k, v in net.state_dict().items():
            if paddle.is_floating_point(v):
                self.shadow[k].set_value(self.decay * self.shadow[k] + (1.0 - self.decay) * v.detach())
            else:
                self.shadow[k].set_value(v)

    def state_dict(self):
        return self.shadow

    def set_state_dict(self, state):
        for k, v in state.items():
            self.shadow[k].set_value(v)

    @contextlib.contextmanager
    def applied(self, net):
        """Swap the averaged weights into `net` for the duration of the block."""
        backup = {k: v.detach().clone() for k, v in net.state_dict().items()}
        net.set_state_dict(self.shadow)
        try:
            yield
        finally:
            net.set_state_dict(backup)
