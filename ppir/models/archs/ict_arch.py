"""ICT: Wan et al., "High-Fidelity Pluralistic Image Completion with Transformers", ICCV 2021.

A Paddle port of the two networks of raywzy/ICT:

* `ICTTransformer` is the official `GPT(GPTConfig)` of `Transformer/models/model.py`: a
  bidirectional (BERT-mode) transformer over the s x s grid of palette tokens (s = 32 or 48) that
  predicts the 512-way colour of every missing position;
* `ICTUpsampler` is the official `InpaintGenerator_5(residual_blocks=8)` of
  `Guided_Upsample/src/networks.py`: a norm-free conv encoder / dilated-residual / decoder that
  turns the masked image plus the upsampled token prior into the full-resolution result.

Class names, constructor keywords, state-dict keys and the forward conventions are the official
ones (see docs/models/ict.md). Official behaviour kept on purpose:
* missing positions get a zero token embedding (`tok_emb(idx) * (1 - masks)`), there is no [MASK]
  token; 1 in `masks` means missing;
* the BERT loss is the cross-entropy at masked positions only, averaged over *all* tokens unless
  `dynamic_weight` (then over the masked ones);
* the upsampler has no normalisation layers and ends in `(tanh(x) + 1) / 2`, so its output is in
  [0, 1].

One difference in the state dict: every official attention layer registers a persistent
`mask` buffer, the (1, 1, block_size, block_size) lower-triangular causal mask, which is
therefore in every official checkpoint (30 or 35 copies, 21 MB each at 48 x 48). BERT mode, the
mode of every released model, never reads it, so it is not registered here: the converter drops
`blocks.N.attn.mask` (`ppir/models/convert.py`) and exported models stay free of those constants.
The causal mode builds its mask in `forward` instead.
"""
import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppir.models.archs.init import torch_default_init
from ppir.models.archs.input_checks import check_nchw
from ppir.registry import NETWORKS

__all__ = ["GELU2", "CausalSelfAttention", "Block", "ICTTransformer", "ResnetBlock_remove_IN",
           "ICTUpsampler", "transformer_num_params"]

_INIT_STD = 0.02  # `GPT._init_weights` and `BaseNetwork.init_weights(gain=0.02)`


def _normal_attr():
    return paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, _INIT_STD))


def _zeros_attr():
    return paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))


def _linear(in_features, out_features, bias=True):
    return nn.Linear(in_features, out_features, weight_attr=_normal_attr(),
                     bias_attr=_zeros_attr() if bias else False)


class GELU2(nn.Layer):
    """The sigmoid approximation of GELU used by OpenAI's iGPT: x * sigmoid(1.702 x)."""

    def forward(self, x):
        return x * F.sigmoid(1.702 * x)


class CausalSelfAttention(nn.Layer):
    """Multi-head self-attention with separate key/query/value/proj projections.

    Despite the official name it is causal only when `BERT` is False.
    """

    def __init__(self, n_embd, n_head, attn_pdrop, resid_pdrop, BERT):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.key = _linear(n_embd, n_embd)
        self.query = _linear(n_embd, n_embd)
        self.value = _linear(n_embd, n_embd)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.resid_drop = nn.Dropout(resid_pdrop)
        self.proj = _linear(n_embd, n_embd)
        self.n_head = n_head
        self.BERT = BERT

    def _heads(self, x):
        # reshape 0 = keep the batch / length dimension: both are dynamic in exported graphs.
        return x.reshape([0, 0, self.n_head, -1]).transpose([0, 2, 1, 3])

    def forward(self, x, positions=None):
        """x [B, T, C] -> [B, T, C]; with `positions` (int64 [P]) only the output rows at those
        positions, [B, P, C]: keys and values still come from every position, queries from
        those only, so each row equals the full output's row."""
        c = x.shape[-1]
        k = self._heads(self.key(x))
        v = self._heads(self.value(x))
        rows = x if positions is None else paddle.gather(x, positions, axis=1)
        q = self._heads(self.query(rows))
        att = paddle.matmul(q, k, transpose_y=True) * (1.0 / math.sqrt(c // self.n_head))
        if not self.BERT:
            keys = paddle.arange(x.shape[1], dtype="int64")
            queries = keys if positions is None else positions
            causal = keys.unsqueeze(0) <= queries.unsqueeze(1)
            att = paddle.where(causal, att, paddle.full_like(att, float("-inf")))
        att = self.attn_drop(F.softmax(att, axis=-1))
        y = paddle.matmul(att, v).transpose([0, 2, 1, 3]).reshape([0, 0, c])
        return self.resid_drop(self.proj(y))


class Block(nn.Layer):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)).

    The official code has two classes with the same keys, `Block_2` (GELU2, `use_gelu2=True`) and
    `Block` (exact GELU); `use_gelu2` picks the activation here.
    """

    def __init__(self, n_embd, n_head, attn_pdrop, resid_pdrop, BERT, use_gelu2):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop, BERT)
        self.mlp = nn.Sequential(
            _linear(n_embd, 4 * n_embd),
            GELU2() if use_gelu2 else nn.GELU(),
            _linear(4 * n_embd, n_embd),
            nn.Dropout(resid_pdrop),
        )

    def forward(self, x, positions=None):
        """x [B, T, C] -> [B, T, C], or only the rows at `positions` (int64 [P]): [B, P, C]."""
        rows = x if positions is None else paddle.gather(x, positions, axis=1)
        x = rows + self.attn(self.ln1(x), positions)
        return x + self.mlp(self.ln2(x))


@NETWORKS.register("ICTTransformer")
class ICTTransformer(nn.Layer):
    """The official `GPT(GPTConfig(...))`, constructor keywords = the GPTConfig fields.

    Defaults: `vocab_size=512` (the iGPT palette), `block_size=1024` (32 x 32, the `image_size`
    default of `main.py` / `inference.py`), `n_layer=14, n_head=8, n_embd=256` (their argparse
    defaults), dropouts 0.1 (the `GPTConfig` class attributes; `main.py` and `inference.py` pass
    0.0). `BERT`, `use_gelu2` and `dynamic_weight` have no `GPTConfig` default (omitting them
    raises AttributeError there); they default to the setting of every released model and of
    `run.py`: BERT with GELU2, loss averaged over all tokens.

    forward(idx, targets=None, masks=None) -> (logits, loss):
    idx int64 [B, T] tokens in [0, vocab_size), masks float [B, T] with 1 = missing (required in
    BERT mode), targets int64 [B, T] or None; logits [B, T, vocab_size], loss a scalar or None.
    """

    def __init__(self, vocab_size=512, block_size=1024, n_layer=14, n_head=8, n_embd=256,
                 embd_pdrop=0.1, resid_pdrop=0.1, attn_pdrop=0.1, BERT=True, use_gelu2=True,
                 dynamic_weight=False):
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.BERT, self.dynamic_weight = BERT, dynamic_weight
        if not BERT:
            # The official start token: N(0, 1) (`nn.init.normal_`), untouched by `_init_weights`.
            self.sos = self.create_parameter(
                [n_embd], attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, 1.0)))
        self.tok_emb = nn.Embedding(vocab_size, n_embd, weight_attr=_normal_attr())
        self.pos_emb = self.create_parameter([1, block_size, n_embd], attr=_zeros_attr())
        self.drop = nn.Dropout(embd_pdrop)
        self.blocks = nn.Sequential(*[
            Block(n_embd, n_head, attn_pdrop, resid_pdrop, BERT, use_gelu2)
            for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = _linear(n_embd, vocab_size, bias=False)

    def get_block_size(self):
        return self.block_size

    def _embed(self, idx, masks):
        b, t = idx.shape
        if paddle.in_dynamic_mode() and t > self.block_size:
            raise ValueError(f"ICTTransformer: sequence length {t} exceeds block_size "
                             f"{self.block_size}")
        tokens = self.tok_emb(idx)
        if self.BERT:
            if masks is None:
                raise ValueError("ICTTransformer in BERT mode needs `masks` (1 = missing)")
            masks = masks.astype(tokens.dtype)
            tokens = tokens * (1 - masks.unsqueeze(2))
        else:
            sos = paddle.expand(self.sos.reshape([1, 1, -1]), [b, 1, self.sos.shape[0]])
            tokens = paddle.concat([sos, tokens[:, :-1, :]], axis=1)
        return self.drop(tokens + self.pos_emb[:, :t, :]), masks

    def logits_at(self, idx, masks, positions):
        """The logits at `positions` only: int64 [P] -> [B, P, vocab_size], equal to
        `forward(idx, masks=masks)[0][:, positions]`.

        Sampling reads one position per forward. Every layer but the last is needed in full (its
        output feeds every key and value above it), but the last block needs its keys and values
        at all positions and its query, attention, projection, MLP, the final LayerNorm and the
        head only at `positions`: at 35 x 512 and 1024 tokens that skips ~8 of ~300 GFLOP.
        """
        x, _ = self._embed(idx, masks)
        if len(self.blocks) == 0:
            return self.head(self.ln_f(paddle.gather(x, positions, axis=1)))
        for block in list(self.blocks)[:-1]:
            x = block(x)
        return self.head(self.ln_f(self.blocks[-1](x, positions)))

    def forward(self, idx, targets=None, masks=None):
        x, masks = self._embed(idx, masks)
        x = self.ln_f(self.blocks(x))
        logits = self.head(x)

        loss = None
        if targets is not None:
            flat_logits = logits.reshape([-1, self.vocab_size])
            flat_targets = targets.reshape([-1])
            if self.BERT:
                loss = F.cross_entropy(flat_logits, flat_targets, reduction="none").reshape([-1])
                flat_masks = masks.reshape([-1])
                loss = loss * flat_masks
                loss = loss.sum() / flat_masks.sum() if self.dynamic_weight else loss.mean()
            else:
                loss = F.cross_entropy(flat_logits, flat_targets)
        return logits, loss


def transformer_num_params(vocab_size=512, block_size=1024, n_layer=14, n_embd=256, BERT=True,
                           **_):
    """Parameter count of `ICTTransformer(**kwargs)` without building it (buffers excluded).

    Per block: two LayerNorms (4d), four d x d projections with bias (4d^2 + 4d) and the MLP
    (8d^2 + 5d); around them the token embedding and the bias-free head (2 V d), the position
    embedding (T d), the final LayerNorm (2d) and, in causal mode, the start token (d).
    """
    d = n_embd
    per_block = 12 * d * d + 13 * d
    return (n_layer * per_block + 2 * vocab_size * d + block_size * d + 2 * d
            + (0 if BERT else d))


class ResnetBlock_remove_IN(nn.Layer):
    """Reflect-pad, dilated 3x3 conv, ReLU, reflect-pad, 3x3 conv, identity skip; no norm and no
    activation after the sum (the official block with its InstanceNorms removed)."""

    def __init__(self, dim, dilation=1):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Pad2D(dilation, mode="reflect"),
            nn.Conv2D(dim, dim, 3, padding=0, dilation=dilation),
            nn.ReLU(),
            nn.Pad2D(1, mode="reflect"),
            nn.Conv2D(dim, dim, 3, padding=0, dilation=1),
        )

    def forward(self, x):
        return x + self.conv_block(x)


@NETWORKS.register("ICTUpsampler")
class ICTUpsampler(nn.Layer):
    """The official `InpaintGenerator_5(residual_blocks=8, init_weights=True)`.

    Input: [B, 6, H, W] in [0, 1], the masked image with its holes set to 1 concatenated with the
    bicubic-upsampled token prior; output: [B, 3, H, W] in [0, 1]. H and W must be multiples of 4
    (two stride-2 convs undone by two stride-2 transposed convs). `init_weights=True` is the
    official N(0, 0.02) weights / zero biases; False leaves PyTorch's layer defaults.
    """

    size_multiple = 4
    in_channels = 6

    def __init__(self, residual_blocks=8, init_weights=True):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Pad2D(3, mode="reflect"),
            nn.Conv2D(6, 64, 7, padding=0),
            nn.ReLU(),
            nn.Conv2D(64, 128, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2D(128, 256, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.middle = nn.Sequential(*[ResnetBlock_remove_IN(256, 2)
                                      for _ in range(residual_blocks)])
        self.decoder = nn.Sequential(
            nn.Conv2DTranspose(256, 128, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2DTranspose(128, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Pad2D(3, mode="reflect"),
            nn.Conv2D(64, 3, 7, padding=0),
        )
        if init_weights:
            self._official_init()
        else:
            torch_default_init(self)

    def _official_init(self):
        normal = nn.initializer.Normal(0.0, _INIT_STD)
        zeros = nn.initializer.Constant(0.0)
        for layer in self.sublayers():
            if isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)):
                normal(layer.weight)
                zeros(layer.bias)

    def forward(self, x):
        # Unchecked, the official network returns a smaller image off multiples of 4 (14 -> 12).
        check_nchw("ICTUpsampler (masked image + prior)", x, self.size_multiple, self.in_channels)
        x = self.decoder(self.middle(self.encoder(x)))
        return (paddle.tanh(x) + 1) / 2
