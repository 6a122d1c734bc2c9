"""The input check every fully convolutional network runs before its forward."""
import paddle


def check_nchw(name, x, size_multiple, channels=None):
    """Raise ValueError unless `x` is NCHW (with `channels` channels, if given) and H, W are
    multiples of `size_multiple`; the message names the network, the shape and the padded size.

    Only in dygraph: under to_static with an InputSpec such as [None, C, None, None] the sizes
    are -1.
    """
    if not paddle.in_dynamic_mode():
        return
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        wanted = f" with {channels} channels" if channels is not None else ""
        raise ValueError(f"{name} expects an NCHW tensor{wanted}, got shape {list(x.shape)}")
    h, w = x.shape[2], x.shape[3]
    m = size_multiple
    if h % m or w % m:
        raise ValueError(
            f"{name} needs H and W to be multiples of {m}, got {h}x{w} "
            f"(pad the input, e.g. reflect-pad to {-(-h // m) * m}x{-(-w // m) * m})")
