"""nasflow.data: datasets, splits, random labels, the on-device loader."""

import numpy as np
import pytest
import torch

from nasflow.data import DeviceLoader, load_dataset, random_labels
from nasflow.errors import DataError, ParamsError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_shapes_ranges_classes(digits):
    s = digits
    assert s.x_train.shape == (1347, 3, 16, 16) and s.x_eval.shape == (450, 3, 16, 16)
    assert s.x_train.dtype == torch.uint8 and s.y_train.dtype == torch.int64
    assert s.num_classes == 10 and s.eval_split == "test"
    assert set(s.y_train.tolist()) == set(range(10)) and set(s.y_eval.tolist()) == set(range(10))
    assert int(s.x_train.max()) == 255 and int(s.x_train.min()) == 0
    assert torch.equal(s.x_train[:, 0], s.x_train[:, 2])  # grey replicated to 3 channels
    assert len(s.mean) == 3 and all(0 < m < 1 for m in s.mean) and all(0 < v < 1 for v in s.std)
    # stratified: every class has 44-46 of the 450 test images
    counts = torch.bincount(s.y_eval, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47


def test_digits_valid_split_and_seed(digits):
    v = load_dataset("digits", eval_split="valid")
    assert len(v.y_train) + len(v.y_eval) == 1347 and v.eval_split == "valid"
    v2 = load_dataset("digits", eval_split="valid")
    assert torch.equal(v.x_train, v2.x_train)
    v3 = load_dataset("digits", eval_split="valid", split_seed=1)
    assert not torch.equal(v.y_train, v3.y_train)
    # the test split does not move with split_seed
    assert torch.equal(load_dataset("digits", split_seed=5).x_eval, digits.x_eval)


def test_subset_is_seeded_and_bounded():
    a = load_dataset("digits", subset=100)
    b = load_dataset("digits", subset=100)
    assert a.x_train.shape[0] == 100 and a.x_eval.shape[0] == 100
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_eval, b.y_eval)


def test_unknown_names_are_params_errors():
    with pytest.raises(ParamsError, match="mnist"):
        load_dataset("mnist")
    with pytest.raises(ParamsError, match="eval_split"):
        load_dataset("digits", eval_split="train")
    with pytest.raises(ParamsError, match="path"):
        load_dataset("npz")


def _write_npz(path, n_train=40, n_test=20, size=8, **override):
    rng = np.random.RandomState(0)
    arrays = dict(x_train=rng.randint(0, 256, (n_train, size, size, 3)).astype(np.uint8),
                  y_train=np.arange(n_train) % 4, x_test=rng.randint(0, 256, (n_test, size, size, 3))
                  .astype(np.uint8), y_test=np.arange(n_test) % 4)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_npz_roundtrip(tmp_path):
    p = tmp_path / "tiny.npz"
    arr = _write_npz(p)
    s = load_dataset("npz", path=p)
    assert s.x_train.shape == (40, 3, 8, 8) and s.num_classes == 4
    assert torch.equal(s.x_train, torch.from_numpy(arr["x_train"]).permute(0, 3, 1, 2))
    assert torch.equal(s.y_eval, torch.from_numpy(arr["y_test"]))
    expect = arr["x_train"].reshape(-1, 3).astype(np.float64).mean(0) / 255
    assert np.allclose(s.mean, expect)
    v = load_dataset("npz", path=p, eval_split="valid")
    assert len(v.y_train) == 20 and len(v.y_eval) == 20
    assert torch.bincount(v.y_eval).tolist() == [5, 5, 5, 5]  # stratified halves


@pytest.mark.parametrize("problem,match", [
    ("missing", "no such"),
    ("corrupt", "not a readable"),
    ("truncated", "not a readable"),
    ("no_key", "y_test"),
    ("bad_shape", "x_train has shape"),
    ("bad_dtype", "dtype"),
    ("bad_labels", "y_train"),
])
def test_npz_problems_are_data_errors(tmp_path, problem, match):
    p = tmp_path / "bad.npz"
    if problem == "corrupt":
        p.write_bytes(b"this is not a zip file at all")
    elif problem == "truncated":
        _write_npz(p)
        p.write_bytes(p.read_bytes()[:300])
    elif problem == "no_key":
        _write_npz(p, y_test=None)
    elif problem == "bad_shape":
        _write_npz(p, x_train=np.zeros((40, 8, 8), np.uint8))
    elif problem == "bad_dtype":
        _write_npz(p, x_train=np.zeros((40, 8, 8, 3), np.float32))
    elif problem == "bad_labels":
        _write_npz(p, y_train=np.arange(39))
    with pytest.raises(DataError, match=match) as e:
        load_dataset("npz", path=p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_cifar_without_download_names_root(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path)):
        load_dataset("cifar10", root=tmp_path, download=False)
    with pytest.raises(DataError, match="ImageNet16"):
        load_dataset("imagenet16-120", root=tmp_path)


def test_shared_cifar10_npz(shared_data):
    p = shared_data / "cifar10.npz"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    s = load_dataset("npz", path=p, subset=500)
    assert s.x_train.shape == (500, 3, 32, 32) and s.num_classes == 10 and s.x_eval.shape[0] == 500
    assert 0.40 < s.mean[0] < 0.58 and 0.18 < s.std[0] < 0.32  # a subset's statistics, roughly CIFAR's


def test_random_labels_fixed_and_seeded():
    a, b = random_labels(1000, 10, seed=3), random_labels(1000, 10, seed=3)
    assert a.dtype == torch.int64 and torch.equal(a, b)
    assert not torch.equal(a, random_labels(1000, 10, seed=4))
    np.random.seed(3)
    assert a.tolist() == np.random.randint(0, 10, 1000).tolist()  # RLNAS' draw
    assert set(a.tolist()) == set(range(10))


# ---------------------------------------------------------------------------------------- DeviceLoader

def _loader(x, y, **kw):
    args = dict(batch_size=8, device="cpu", image_size=x.shape[-1], train=True, mean=(0.5,) * 3,
                std=(0.25,) * 3, seed=0)
    args.update(kw)
    return DeviceLoader(x, y, **args)


def test_loader_shapes_and_eval_order(digits):
    s = digits
    tr = _loader(s.x_train, s.y_train, batch_size=128, image_size=32, mean=s.mean, std=s.std)
    xs = list(tr)
    assert len(xs) == len(tr) == 11
    assert xs[0][0].shape == (128, 3, 32, 32) and xs[0][0].dtype == torch.float32
    assert sum(len(y) for _, y in xs) == 1347
    ev = _loader(s.x_eval, s.y_eval, batch_size=100, image_size=16, train=False, mean=s.mean, std=s.std)
    ys = torch.cat([y for _, y in ev])
    assert torch.equal(ys, s.y_eval)  # sequential, whole split
    x0 = next(iter(ev))[0][0]
    expect = (s.x_eval[0].float() / 255 - torch.tensor(s.mean).view(3, 1, 1)) / torch.tensor(s.std).view(3, 1, 1)
    assert torch.allclose(x0, expect, atol=1e-5)


def test_loader_downscale_uses_antialias():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    x[:, :, ::2, ::2] = 255  # a one-pixel checkerboard averages to 1/4 grey when shrunk properly
    ev = _loader(x, torch.zeros(2, dtype=torch.long), image_size=16, train=False, mean=(0,) * 3, std=(1,) * 3)
    xb = next(iter(ev))[0][:, :, 1:-1, 1:-1]  # away from the border, where the filter is cut
    assert torch.allclose(xb, torch.full_like(xb, 0.25), atol=0.01)


def test_loader_deterministic_per_seed_and_epoch(digits):
    s = digits
    a = _loader(s.x_train, s.y_train, cutout=4, seed=1)
    b = _loader(s.x_train, s.y_train, cutout=4, seed=1)
    e0a, e0b = next(iter(a)), next(iter(b))
    assert torch.equal(e0a[0], e0b[0]) and torch.equal(e0a[1], e0b[1])
    e1a = next(iter(a))  # the next pass is epoch 1: a different stream
    assert not torch.equal(e1a[1], e0a[1])
    b.set_epoch(1)  # resume at epoch 1 directly
    assert torch.equal(next(iter(b))[0], e1a[0])
    c = _loader(s.x_train, s.y_train, cutout=4, seed=2)
    assert not torch.equal(next(iter(c))[1], e0a[1])


def test_loader_crop_translates_and_flip_mirrors():
    n, size, pad = 256, 8, 2
    # image i holds a ramp: value = column index; a crop offset shifts it, a flip reverses it
    ramp = torch.arange(size, dtype=torch.uint8).mul(20).add(40)
    x = ramp.view(1, 1, 1, size).expand(n, 3, size, size).contiguous()
    y = torch.arange(n)
    ld = _loader(x, y, batch_size=n, image_size=size, crop_padding=pad, mean=(0,) * 3, std=(1,) * 3)
    xb, yb = next(iter(ld))
    xb = (xb * 255).round()  # back to grey levels
    assert torch.equal(torch.sort(yb).values, y)  # a permutation of the split
    rows = xb[:, 0, size // 2]  # middle row, in raw grey levels (black border = 0)
    shifts, flips = set(), set()
    for r in rows:
        inside = r[r > 0]
        d = torch.diff(inside)
        assert len(inside) >= size - pad and (torch.all(d == 20) or torch.all(d == -20))
        flips.add(bool(d[0] < 0))
        first = int((r > 0).nonzero()[0])
        shifts.add((first, int(inside[0])))
    assert flips == {True, False}
    assert len(shifts) >= 2 * pad + 1  # several offsets used
    # vertical crop: some images start with a black top row, some end with one
    top_black = (xb[:, 0, 0, :] == 0).all(1)
    bottom_black = (xb[:, 0, -1, :] == 0).all(1)
    assert top_black.any() and bottom_black.any() and not (top_black & bottom_black).any()
    # no augmentation at all: identical to eval
    plain = _loader(x, y, batch_size=n, image_size=size, crop_padding=0, flip=False, mean=(0,) * 3,
                    std=(1,) * 3)
    xp, yp = next(iter(plain))
    assert torch.allclose(xp * 255, x[yp].float(), atol=1e-3)


def test_loader_cutout_zeroes_a_square():
    x = torch.full((64, 3, 16, 16), 200, dtype=torch.uint8)
    ld = _loader(x, torch.zeros(64, dtype=torch.long), batch_size=64, image_size=16, crop_padding=0,
                 flip=False, cutout=6, mean=(0,) * 3, std=(1,) * 3)
    xb, _ = next(iter(ld))
    zeros = (xb[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 36 and zeros.min() >= 9  # a full 6x6 square, or clipped at a border
    assert torch.equal(xb[:, 0] == 0, xb[:, 2] == 0)  # same square in every channel


def test_loader_drops_a_single_image_last_batch():
    x = torch.zeros(17, 3, 8, 8, dtype=torch.uint8)
    ld = _loader(x, torch.zeros(17, dtype=torch.long), batch_size=8)
    assert [len(y) for _, y in ld] == [8, 8]
    ev = _loader(x, torch.zeros(17, dtype=torch.long), batch_size=8, train=False)
    assert [len(y) for _, y in ev] == [8, 8, 1]


def test_loader_channels_last_is_the_same_batch(digits):
    s = digits
    a = _loader(s.x_train, s.y_train, cutout=4, channels_last=False)
    b = _loader(s.x_train, s.y_train, cutout=4, channels_last=True)
    (xa, ya), (xb, yb) = next(iter(a)), next(iter(b))
    assert xa.is_contiguous() and xb.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ------------------------------------------------------------------------- augment order (BPE vs NB201)

def _images(n=64, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_crop_then_resize_shapes_and_padding():
    x, y = _images(), torch.arange(64)
    ld = _loader(x, y, batch_size=16, image_size=16, augment_order="crop_then_resize", cutout=4)
    assert ld.pad == 4 and tuple(ld.x.shape) == (64, 40, 40, 3)  # padded at the native 32 px: pad 32 // 8
    xs = list(ld)
    assert len(xs) == 4 and all(xb.shape == (16, 3, 16, 16) and xb.dtype == torch.float32 for xb, _ in xs)
    assert xs[0][0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(torch.sort(torch.cat([yb for _, yb in xs])).values, y)
    nb201 = _loader(x, y, batch_size=16, image_size=16)
    assert nb201.pad == 2 and tuple(nb201.x.shape) == (64, 20, 20, 3)  # resized first: pad 16 // 8
    ev = _loader(x, y, batch_size=16, image_size=16, train=False, augment_order="crop_then_resize")
    ev_plain = _loader(x, y, batch_size=16, image_size=16, train=False)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(ev, ev_plain))  # evaluation: resized only
    with pytest.raises(ParamsError, match="augment_order"):
        _loader(x, y, image_size=16, augment_order="resize_first")


def test_crop_then_resize_deterministic_per_seed():
    x, y = _images(), torch.arange(64)
    a = _loader(x, y, batch_size=64, image_size=16, augment_order="crop_then_resize", seed=3)
    b = _loader(x, y, batch_size=64, image_size=16, augment_order="crop_then_resize", seed=3)
    c = _loader(x, y, batch_size=64, image_size=16, augment_order="crop_then_resize", seed=4)
    (xa, ya), (xb, yb), (xc, _) = next(iter(a)), next(iter(b)), next(iter(c))
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and not torch.equal(xa, xc)
    b.set_epoch(0)
    assert torch.equal(next(iter(b))[0], xa)


def test_crop_then_resize_without_crop_or_flip_is_a_plain_resize():
    x, y = _images(), torch.arange(64)
    ld = _loader(x, y, batch_size=64, image_size=16, augment_order="crop_then_resize", crop_padding=0,
                 flip=False)
    xb, yb = next(iter(ld))
    ev = _loader(x, y, batch_size=64, image_size=16, train=False)  # resized once, in order
    xe = next(iter(ev))[0]
    assert torch.allclose(xb, xe[yb], atol=1e-6)


def test_crop_then_resize_is_crop_flip_then_resize_per_image():
    """The batched pipeline equals the per-image one (pad, crop at 32, flip, then resize), with the loader's draws."""
    import torch.nn.functional as F

    x, y = _images(32), torch.arange(32)
    ld = _loader(x, y, batch_size=32, image_size=16, augment_order="crop_then_resize", mean=(0,) * 3, std=(1,) * 3,
                 seed=5)
    xb, yb = next(iter(ld))
    g = torch.Generator().manual_seed(5 * 1000 + 0)  # the loader's draws for epoch 0, in its order
    perm = torch.randperm(32, generator=g)
    oy, ox = torch.randint(0, 9, (32,), generator=g), torch.randint(0, 9, (32,), generator=g)
    fl = torch.randint(0, 2, (32,), generator=g).bool()
    assert torch.equal(perm, yb)
    for k in range(32):
        im = F.pad(x[perm[k]].float() / 255, (4, 4, 4, 4))[:, oy[k]:oy[k] + 32, ox[k]:ox[k] + 32]
        im = im.flip(-1) if fl[k] else im
        ref = F.interpolate(im[None], size=(16, 16), mode="bilinear", align_corners=False, antialias=True)[0]
        assert torch.allclose(xb[k], ref, atol=1e-5)
    assert fl.any() and not fl.all() and len(set(oy.tolist())) > 3


def test_both_orders_agree_at_the_native_size():
    x, y = _images(size=16), torch.arange(64)
    for kw in ({}, {"cutout": 4}, {"crop_padding": 0, "flip": False}):
        a = _loader(x, y, batch_size=20, image_size=16, seed=2, **kw)
        b = _loader(x, y, batch_size=20, image_size=16, seed=2, augment_order="crop_then_resize", **kw)
        assert a.pad == b.pad
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
