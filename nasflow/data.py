"""Datasets, splits, random labels and an on-device loader.

Every dataset becomes one `Splits`: uint8 NCHW image tensors plus int64 labels for a training split and an
evaluation split. `DeviceLoader` then moves a split to the device once, resizes and normalises it once, and
augments whole batches on the device (random crop by index arithmetic, horizontal flip, cutout) from a
generator seeded per epoch -- no DataLoader, no workers, no per-image Python, no host sync per step.

Splits (NAS-Bench-201's protocol where it has one):

| name            | train                         | eval_split="valid"           | eval_split="test"        |
|-----------------|-------------------------------|------------------------------|--------------------------|
| digits          | 1,347 (stratified, seeded)    | half of those 1,347          | the other 450            |
| cifar10         | 50k train                     | seeded stratified 25k/25k    | 10k test                 |
| cifar10-valid   | 25k half of train (seeded)    | the other 25k half           | 10k test                 |
| cifar100        | 50k train                     | 5k "x-valid" half of test    | 5k "x-test" half of test |
| imagenet16-120  | 151,700 train (labels 1..120) | 3k "x-valid" half of val     | 3k "x-test" half of val  |
| npz             | x_train/y_train               | seeded stratified half/half  | x_test/y_test            |
| imagenet        | path/train/<class>/...        | seeded stratified half/half  | path/val/<class>/...     |

`imagenet` is any ImageFolder tree (torchvision; classes = the sorted subfolder names of train/, which val/
must match), each image resized (shorter side) and center-cropped to `image_size` when it is read, so the
whole split is held as one uint8 tensor at that size (the full ImageNet at 224 px does not fit in memory:
use `subset` or a smaller tree); normalised with the usual ImageNet mean/std.

When eval_split="valid" the training split is the *first* half of the seeded split (for digits, cifar10
and npz the valid half is taken from the training images, as cifar10-valid does). NB201 ships fixed split
files for cifar10-valid / cifar100 / ImageNet16-120; ours are seeded stratified splits of the same sizes
(`split_seed`), not the same image indices.
"""

from __future__ import annotations

import copy
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasflow.errors import DataError, ParamsError, one_line

DATASETS = ("digits", "cifar10", "cifar10-valid", "cifar100", "imagenet16-120", "imagenet", "npz")
EVAL_SPLITS = ("valid", "test")

# NAS-Bench-201 (ADL get_dataset_with_transform.py) normalisation constants, in [0,1] units.
CIFAR10_MEAN = tuple(v / 255 for v in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(v / 255 for v in (63.0, 62.1, 66.7))
CIFAR100_MEAN = tuple(v / 255 for v in (129.3, 124.1, 112.4))
CIFAR100_STD = tuple(v / 255 for v in (68.2, 65.4, 70.4))
IMAGENET16_MEAN = tuple(v / 255 for v in (122.68, 116.66, 104.01))
IMAGENET16_STD = tuple(v / 255 for v in (63.22, 61.26, 65.09))
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Splits:
    """A training split and an evaluation split, images uint8 [N,3,H,W], labels int64 [N]."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    num_classes: int
    mean: tuple
    std: tuple
    name: str
    eval_split: str

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    def __repr__(self) -> str:  # keep tensors out of logs
        return (f"Splits({self.name}, train={tuple(self.x_train.shape)}, {self.eval_split}="
                f"{tuple(self.x_eval.shape)}, classes={self.num_classes})")


# --------------------------------------------------------------------------------------------- helpers

def _stratified_split(y: np.ndarray, n_second, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, second) of a seeded stratified split; `n_second` images (int) or a fraction."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None  # tiny/odd data: fall back to plain shuffle
    first, second = train_test_split(idx, test_size=n_second, stratify=stratify, random_state=seed)
    return np.sort(first), np.sort(second)


def _hwc_to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y, dtype=np.int64))


def _mean_std(x: torch.Tensor) -> tuple[tuple, tuple]:
    """Per-channel mean and std in [0,1] units of uint8 NCHW images (float64 sums, chunked)."""
    c = x.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for chunk in torch.split(x, 8192):
        f = chunk.to(torch.float64) / 255.0
        s += f.sum(dim=(0, 2, 3))
        s2 += (f * f).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _take(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    return x[t].contiguous(), y[t].contiguous()


# -------------------------------------------------------------------------------------------- readers

def _read_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)  # [N,1,8,8]
    img = F.interpolate(img, size=(16, 16), mode="bilinear", align_corners=False)
    img = img.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = d.target.astype(np.int64)
    first, second = _stratified_split(y, 450, seed=0)  # the test split is fixed (seed 0), like a file
    yt = _labels(y)
    x_tr, y_tr = _take(img, yt, first)
    x_te, y_te = _take(img, yt, second)
    return x_tr, y_tr, x_te, y_te


def _read_torchvision(name: str, root: str, download: bool):
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    what = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    out = []
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=download)
        except Exception as e:  # RuntimeError (missing/corrupt), URLError/OSError (no network), ...
            how = "download failed" if download else "download disabled"
            raise DataError(f"{what} not found under '{root}' ({how}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
        out += [_hwc_to_tensor(np.asarray(ds.data, dtype=np.uint8)), _labels(ds.targets)]
    return tuple(out)


def _latin1_encode(text, encoding="utf-8"):
    """`_codecs.encode` as Python 3 writes bytes into a protocol-2 pickle (latin-1 only, nothing else)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin-1")


def _imagenet16_globals() -> dict:
    """The only globals an ImageNet16 pickle (a dict of a uint8 array and a list of labels) refers to."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # written by numpy 1.x / 2.x
        allowed[module, "_reconstruct"] = multiarray._reconstruct
        allowed[module, "scalar"] = multiarray.scalar
        allowed[module.replace("multiarray", "numeric"), "_frombuffer"] = numeric._frombuffer  # protocol 5
    return allowed


class _ImageNet16Unpickler(pickle.Unpickler):
    """pickle.load for files from third-party mirrors: the arrays, lists and dicts of the ImageNet16 format
    only. Any other global (os.system, builtins.eval, ...) is refused before it is looked up, so a pickle that
    tries to run code raises DataError instead."""

    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")
        self.path = path
        self.allowed = _imagenet16_globals()

    def find_class(self, module, name):
        try:
            return self.allowed[module, name]
        except KeyError:
            raise DataError(f"{self.path}: refuses to load: the pickle references {module}.{name} "
                            "(not part of the ImageNet16 format)") from None


def _read_imagenet16(root: str):
    base = Path(root) / "ImageNet16"
    files_train = [base / f"train_data_batch_{i}" for i in range(1, 11)]
    file_val = base / "val_data"
    missing = [p.name for p in files_train + [file_val] if not p.is_file()]
    if missing:
        raise DataError(f"ImageNet16 pickles missing under '{base}': {', '.join(missing)} "
                        "(supply NAS-Bench-201's ImageNet16 files; they cannot be downloaded)")

    def read(paths):
        xs, ys = [], []
        for p in paths:
            try:
                with open(p, "rb") as f:
                    entry = _ImageNet16Unpickler(f, p).load()
                x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 16, 16)
                y = np.asarray(entry["labels"], dtype=np.int64)
                if y.ndim != 1 or len(y) != len(x):
                    raise ValueError(f"{len(x)} images but labels of shape {y.shape}")
            except DataError:
                raise
            except Exception as e:
                raise DataError(f"{p}: not a readable ImageNet16 pickle ({type(e).__name__})") from None
            keep = (y >= 1) & (y <= 120)  # ImageNet16-120: the first 120 classes, labels 1..120
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    x_tr, y_tr = read(files_train)
    x_te, y_te = read([file_val])
    return x_tr, y_tr, x_te, y_te


def _read_image_folder(path, image_size: int | None):
    """An ImageFolder tree path/train/<class>/..., path/val/<class>/... as uint8 tensors at image_size."""
    import torchvision
    from torchvision.transforms import CenterCrop, Compose, PILToTensor, Resize

    if path is None:
        raise ParamsError("data.path: dataset 'imagenet' needs the root of an ImageFolder tree (train/, val/)")
    if image_size is None or image_size < 1:
        raise ParamsError(f"imagenet: the images are resized when read: need a positive image_size, got {image_size!r}")
    base = Path(path)
    to_tensor = Compose([Resize(image_size), CenterCrop(image_size), PILToTensor()])
    out, classes = [], None
    for split in ("train", "val"):
        if not (base / split).is_dir():
            raise DataError(f"{base / split}: no such folder "
                            f"(imagenet needs {base}/train/<class>/ and {base}/val/<class>/)")
        try:
            ds = torchvision.datasets.ImageFolder(str(base / split))
        except (FileNotFoundError, OSError) as e:  # no class folders / no images
            raise DataError(f"{base / split}: not an ImageFolder tree "
                            f"({type(e).__name__}: {one_line(str(e))})") from None
        if classes is None:
            classes = ds.classes
        elif ds.classes != classes:
            raise DataError(f"{base / split}: its classes differ from {base / 'train'}'s "
                            f"({len(ds.classes)} vs {len(classes)} classes)")
        xs = []
        for file, _ in ds.samples:
            try:
                xs.append(to_tensor(ds.loader(file)))
            except Exception as e:  # PIL.UnidentifiedImageError, OSError, ...: a broken image
                raise DataError(f"{file}: not a readable image ({type(e).__name__})") from None
        out += [torch.stack(xs), _labels(ds.targets)]
    return tuple(out), len(classes)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path):
    if path is None:
        raise ParamsError("data.path: dataset 'npz' needs the path of an .npz file")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such .npz file")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{p}: missing array(s) {', '.join(missing)} (need {', '.join(NPZ_KEYS)})")
            arrays = {k: z[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except Exception as e:  # BadZipFile, zlib.error, ValueError, OSError, EOFError, ...: a corrupt file
        raise DataError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None

    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[1] != x.shape[2]:
            raise DataError(f"{p}: x_{split} has shape {x.shape}; expected (N, H, W, 3) square uint8 images")
        if x.dtype != np.uint8:
            raise DataError(f"{p}: x_{split} has dtype {x.dtype}; expected uint8")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{p}: y_{split} has shape {y.shape} dtype {y.dtype}; "
                            f"expected ({len(x)},) integer labels")
        if len(y) and y.min() < 0:
            raise DataError(f"{p}: y_{split} has negative labels")
        if len(x) == 0:
            raise DataError(f"{p}: x_{split} is empty")
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        out += [_hwc_to_tensor(x), _labels(y)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"{p}: x_train images {tuple(out[0].shape[2:])} and x_test images "
                        f"{tuple(out[2].shape[2:])} differ in size")
    return tuple(out)


# ------------------------------------------------------------------------------------------ load_dataset

def load_dataset(name: str, *, root="data", path=None, download: bool = True, split_seed: int = 0,
                 eval_split: str = "test", subset: int | None = None, image_size: int | None = None) -> Splits:
    """Read dataset `name` (see the module docstring for the splits) into a `Splits`. `image_size`: the size
    imagenet's images are resized to when read (the other datasets ignore it: `DeviceLoader` resizes)."""
    if name not in DATASETS:
        raise ParamsError(f"data.dataset: unknown dataset '{name}' (choose from {', '.join(DATASETS)})")
    if eval_split not in EVAL_SPLITS:
        raise ParamsError(f"eval_split: '{eval_split}' is not one of {', '.join(EVAL_SPLITS)}")
    if subset is not None and (not isinstance(subset, (int, np.integer)) or subset < 1):
        raise ParamsError(f"subset: expected a positive integer, got {subset!r}")

    mean = std = None
    if name == "digits":
        x_tr, y_tr, x_te, y_te = _read_digits()
        num_classes = 10
    elif name in ("cifar10", "cifar10-valid", "cifar100"):
        x_tr, y_tr, x_te, y_te = _read_torchvision("cifar100" if name == "cifar100" else "cifar10",
                                                   root, download)
        num_classes = 100 if name == "cifar100" else 10
        mean, std = (CIFAR100_MEAN, CIFAR100_STD) if name == "cifar100" else (CIFAR10_MEAN, CIFAR10_STD)
    elif name == "imagenet16-120":
        x_tr, y_tr, x_te, y_te = _read_imagenet16(root)
        num_classes = 120
        mean, std = IMAGENET16_MEAN, IMAGENET16_STD
    elif name == "imagenet":
        (x_tr, y_tr, x_te, y_te), num_classes = _read_image_folder(path, image_size)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:  # npz
        x_tr, y_tr, x_te, y_te = _read_npz(path)
        num_classes = int(max(int(y_tr.max()), int(y_te.max())) + 1)

    if name in ("cifar100", "imagenet16-120"):
        # NB201 halves the test set into x-valid / x-test; the training set stays whole.
        a, b = _stratified_split(y_te.numpy(), 0.5, split_seed)
        x_ev, y_ev = _take(x_te, y_te, a if eval_split == "valid" else b)
    elif name == "cifar10-valid" or eval_split == "valid":
        a, b = _stratified_split(y_tr.numpy(), 0.5, split_seed)
        if eval_split == "valid":
            x_ev, y_ev = _take(x_tr, y_tr, b)
        else:
            x_ev, y_ev = x_te, y_te
        x_tr, y_tr = _take(x_tr, y_tr, a)
    else:
        x_ev, y_ev = x_te, y_te

    if subset is not None:
        rng = np.random.RandomState(split_seed)
        x_tr, y_tr = _take(x_tr, y_tr, rng.permutation(len(y_tr))[:subset])
        x_ev, y_ev = _take(x_ev, y_ev, rng.permutation(len(y_ev))[:subset])

    if mean is None:
        mean, std = _mean_std(x_tr)
    return Splits(x_train=x_tr, y_train=y_tr, x_eval=x_ev, y_eval=y_ev, num_classes=num_classes,
                  mean=tuple(mean), std=tuple(std), name=name, eval_split=eval_split)


def random_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    """RLNAS random labels: `np.random.seed(seed); randint(0, num_classes, n)`, drawn once and fixed."""
    return torch.from_numpy(np.random.RandomState(seed).randint(0, num_classes, n).astype(np.int64))


# ------------------------------------------------------------------------------------------ DeviceLoader

AUGMENT_ORDERS = ("resize_then_crop", "crop_then_resize")


def _resize(xb: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear resize of an [B, C, H, W] float batch, antialiased when shrinking (as PIL's bilinear
    filter, which torchvision's Resize applies to PIL images)."""
    return F.interpolate(xb, size=(h, w), mode="bilinear", align_corners=False,
                         antialias=(h < xb.shape[-2] or w < xb.shape[-1]))


class DeviceLoader:
    """Iterate one split as (images, labels) batches that live on `device`.

    At construction the uint8 images move to the device once, are resized once to `image_size` (bilinear,
    antialiased when shrinking), normalised once to float32 and, for training, padded once by
    `crop_padding` (zero = black pixels, as torchvision's RandomCrop(padding=p) does). They are kept NHWC,
    so a batch is a channels_last view for free (copied to contiguous NCHW when `channels_last` is False).

    Each pass (`iter(loader)`) uses a generator seeded with `seed * 1000 + epoch` and draws everything for
    the epoch up front: a permutation (train) and, per image, a crop offset, a flip bit and a cutout
    centre. A batch is then a single gather `xp[i, oy + r, ox + c (mirrored if flipped)]` -- crop and flip
    in one indexing op -- and a cutout mask product. `set_epoch(e)` selects the pass; it advances by one
    after each pass, so the stream is reproducible and resumable at any epoch boundary.

    `augment_order` says where the resize sits in the training pipeline:
    - "resize_then_crop" (NB201's protocol, the default): resize once to `image_size`, then crop at
      `image_size` from a border of `crop_padding` (default `image_size // 8`: 4 at 32 px, 2 at 16 px);
    - "crop_then_resize" (BPE's `RandomCrop(32, padding=4)`, flip, then `Resize(image_size)`): the padded
      images stay at their native size H (default padding `H // 8`), the crop + flip gather is taken at H,
      and each batch is then resized to `image_size` on the device (the same bilinear filter, antialiased
      when shrinking; one `F.interpolate` per batch). Cutout comes after the resize, as in BPE.
    At `image_size` == H the two orders are the same pipeline and draw the same random numbers, so they
    give identical batches. Evaluation images are only resized, whatever the order.

    train=False: sequential batches, no augmentation. A final training batch of a single image is
    dropped (BatchNorm cannot train on it).
    """

    def __init__(self, x_uint8: torch.Tensor, y: torch.Tensor, *, batch_size: int, device, image_size: int,
                 train: bool, mean, std, crop_padding: int | None = None, flip: bool = True,
                 cutout: int = 0, seed: int = 0, drop_last: bool = False,
                 channels_last: bool = True, augment_order: str = "resize_then_crop"):
        if x_uint8.dim() != 4 or x_uint8.dtype != torch.uint8:
            raise DataError(f"DeviceLoader: expected uint8 images [N,C,H,W], got {x_uint8.dtype} "
                            f"{tuple(x_uint8.shape)}")
        if len(y) != len(x_uint8):
            raise DataError(f"DeviceLoader: {len(x_uint8)} images but {len(y)} labels")
        if batch_size < 1 or image_size < 1:
            raise ParamsError(f"batch_size/image_size must be positive (got {batch_size}, {image_size})")
        if augment_order not in AUGMENT_ORDERS:
            raise ParamsError(f"augment_order: expected one of {', '.join(AUGMENT_ORDERS)} (got {augment_order!r})")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.image_size = int(image_size)
        self.train = bool(train)
        self.augment_order = augment_order
        h, w = x_uint8.shape[-2:]
        # crop_then_resize: crop at the native size, resize each batch afterwards (training only)
        self.resize_after = self.train and augment_order == "crop_then_resize" and (h, w) != (image_size,) * 2
        self.crop = (int(h), int(w)) if self.resize_after else (self.image_size, self.image_size)
        self.flip = bool(flip) and self.train
        self.cutout = int(cutout) if self.train else 0
        base = min(self.crop) if augment_order == "crop_then_resize" else self.image_size
        self.pad = (base // 8 if crop_padding is None else int(crop_padding)) if self.train else 0
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.channels_last = bool(channels_last)
        self.epoch = 0
        self.n = len(x_uint8)
        self.y = torch.as_tensor(y, dtype=torch.int64).to(self.device)
        self.x = self._prepare(x_uint8, mean, std)  # [N, Hc+2p, Wc+2p, C] float32, NHWC (Hc, Wc = crop)
        ch, cw = self.crop
        self._ar_h = torch.arange(ch, device=self.device)
        self._ar_w = torch.arange(cw, device=self.device)
        self._ar_w_flip = cw - 1 - self._ar_w
        self._ar = torch.arange(self.image_size, device=self.device)  # output rows / cols (cutout)

    def with_seed(self, seed: int) -> "DeviceLoader":
        """The same split with another seed (its own data order and augmentation), sharing this loader's images on
        the device: how the models of a pack each draw their own batches from one copy of the data."""
        other = copy.copy(self)
        other.seed, other.epoch = int(seed), 0
        return other

    def _prepare(self, x_uint8, mean, std) -> torch.Tensor:
        n, c, h, w = x_uint8.shape
        (ch, cw), p = self.crop, self.pad
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        out = torch.empty((n, ch + 2 * p, cw + 2 * p, c), dtype=torch.float32, device=self.device)
        for start in range(0, n, 4096):  # chunked: bounded peak memory for 50k-image splits
            xb = x_uint8[start:start + 4096].to(self.device, non_blocking=True).float().div_(255.0)
            if (h, w) != (ch, cw):
                xb = _resize(xb, ch, cw)
            if p:
                xb = F.pad(xb, (p, p, p, p), value=0.0)  # black border, like RandomCrop(padding=p)
            out[start:start + len(xb)] = ((xb - mean_t) / std_t).permute(0, 2, 3, 1)
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = self._n_used()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _n_used(self) -> int:
        if self.train and not self.drop_last and self.n % self.batch_size == 1 and self.n > 1:
            return self.n - 1
        return self.n

    def _layout(self, xb: torch.Tensor) -> torch.Tensor:
        xb = xb.permute(0, 3, 1, 2)  # NHWC storage -> NCHW shape, channels_last strides
        return xb if self.channels_last else xb.contiguous()

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        n_used, bs = self._n_used(), self.batch_size
        n_batches = len(self)
        if not self.train:
            for b in range(n_batches):
                sl = slice(b * bs, min((b + 1) * bs, n_used))
                yield self._layout(self.x[sl]), self.y[sl]
            return

        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed * 1000 + epoch)
        dev, n, s, p = self.device, self.n, self.image_size, self.pad
        perm = torch.randperm(n, generator=g, device=dev)
        oy = torch.randint(0, 2 * p + 1, (n,), generator=g, device=dev)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=g, device=dev)
        fl = (torch.randint(0, 2, (n,), generator=g, device=dev).bool() if self.flip
              else torch.zeros(n, dtype=torch.bool, device=dev))
        if self.cutout > 0:  # NB201/DARTS cutout: centre anywhere, square clipped at the border
            cy = torch.randint(0, s, (n,), generator=g, device=dev)
            cx = torch.randint(0, s, (n,), generator=g, device=dev)
        half = self.cutout // 2
        for b in range(n_batches):
            j = slice(b * bs, min((b + 1) * bs, n_used))
            idx = perm[j]
            rows = oy[j, None] + self._ar_h                                         # [B, Hc]
            cols = ox[j, None] + torch.where(fl[j, None], self._ar_w_flip, self._ar_w)  # [B, Wc]
            xb = self.x[idx[:, None, None], rows[:, :, None], cols[:, None, :]]    # [B, Hc, Wc, C]
            if self.resize_after:  # crop_then_resize: the cropped, flipped batch -> image_size
                xb = _resize(xb.permute(0, 3, 1, 2), s, s).permute(0, 2, 3, 1).contiguous()  # [B, S, S, C]
            if self.cutout > 0:
                # zeroed square: rows cy-half .. cy+half-1, cols likewise (clipped by the image)
                iny = (self._ar[None] >= cy[j, None] - half) & (self._ar[None] < cy[j, None] + half)
                inx = (self._ar[None] >= cx[j, None] - half) & (self._ar[None] < cx[j, None] + half)
                keep = ~(iny[:, :, None] & inx[:, None, :])                   # [B, S, S]
                xb = xb * keep[..., None]
            yield self._layout(xb), self.y[idx]
