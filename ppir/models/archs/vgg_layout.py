"""torchvision's VGG layer layout by name (conv1_1, relu1_1, ..., pool5): a leaf module, so the
converter can map a port's names without importing the network (which imports the converter to
load weight files)."""

# Convs per block (torchvision cfg "D" and "E").
BLOCKS = {"VGG16": (2, 2, 3, 3, 3), "VGG19": (2, 2, 4, 4, 4)}


def layer_names(arch, blocks=5):
    """Names of the `features` layers in index order: conv1_1, relu1_1, ..., pool5 (up to the
    pool of block `blocks`)."""
    names = []
    for block, convs in enumerate(BLOCKS[arch][:blocks], 1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def blocks_in(arch, keys):
    """How many leading blocks of `arch` a state dict's `features.N.*` keys cover (5 for
    torchvision's files; 3 for CTSDG's MindSpore vgg16_feat_extr_ms.ckpt, features[:17])."""
    present = {int(k.split(".")[1]) for k in keys if k.startswith("features.")}
    blocks = 0
    for index, name in enumerate(layer_names(arch)):
        if name.startswith("conv") and index not in present:
            break
        if name.startswith("pool"):
            blocks += 1
    return blocks
