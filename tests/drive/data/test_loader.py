"""The device-resident loader: coverage, repeatability, normalisation, crop/flip, formats."""

import pytest
import torch
import torch.nn.functional as F

from drive.config import DataConfig
from drive.data import ImageData, make_loaders
from drive.data.augment import crop_flip, derive_seed
from drive.errors import DataError

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def make_data(n=37, size=8, low=0, high=256, **kwargs) -> ImageData:
    """Labels are the sample indices, so a batch's y says which images it holds."""
    g = torch.Generator().manual_seed(1)
    images = torch.randint(low, high, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageData(images, torch.arange(n), images[:11].clone(), torch.arange(11), num_classes=n,
                     mean=MEAN, std=STD, **kwargs)


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images.double() / 255 - torch.tensor(MEAN).view(-1, 1, 1).double()) \
        / torch.tensor(STD).view(-1, 1, 1).double()


def denormalise(x: torch.Tensor) -> torch.Tensor:
    raw = (x.double() * torch.tensor(STD).view(-1, 1, 1) + torch.tensor(MEAN).view(-1, 1, 1)) * 255
    return raw.round().to(torch.uint8)


def epoch(loader, e=0):
    loader.set_epoch(e)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def loaders(data, batch_size=8, seed=0, **cfg):
    return make_loaders(data, DataConfig(**cfg), batch_size, 5, torch.device("cpu"), seed)


def test_every_sample_once_per_epoch_and_last_batch_smaller():
    train, _ = loaders(make_data())
    assert len(train) == 5 and train.num_samples == 37
    sizes = [len(y) for _, y in train]
    assert sizes == [8, 8, 8, 8, 5]
    for e in (0, 1, -3):
        _, y = epoch(train, e)
        assert sorted(y.tolist()) == list(range(37))
        assert y.dtype == torch.int64


@pytest.mark.parametrize("chunk_bytes", [None, 3 * 8 * 8 * 4 * 16])  # one chunk; chunks of 2 batches
def test_drop_last_drops_only_the_partial_last_batch(chunk_bytes):
    from drive.data.loader import ImageLoader, steps_per_epoch

    data = make_data()
    train = make_loaders(data, DataConfig(), 8, 5, torch.device("cpu"), 0, drop_last=True)[0]
    if chunk_bytes is not None:
        train = ImageLoader(data.train_images, data.train_labels, train.normalizer, 8,
                            torch.device("cpu"), shuffle=True, chunk_bytes=chunk_bytes, drop_last=True)
    assert len(train) == 4 == steps_per_epoch(37, 8, drop_last=True)
    assert [len(y) for _, y in train] == [8, 8, 8, 8]
    kept = epoch(train, 3)[1].tolist()  # a different 32 of the 37 each epoch (shuffled first)
    assert len(set(kept)) == 32 and kept != epoch(train, 4)[1].tolist()
    assert steps_per_epoch(37, 8) == 5 and steps_per_epoch(7, 8, drop_last=True) == 0


def test_order_is_a_function_of_seed_and_epoch():
    data = make_data()
    a, _ = loaders(data, augment=True, crop_padding=2, flip=True)
    b, _ = loaders(data, augment=True, crop_padding=2, flip=True)
    c, _ = loaders(data, seed=1, augment=True, crop_padding=2, flip=True)
    xa, ya = epoch(a, 5)
    epoch(b, 4)  # what b did before does not matter
    xb, yb = epoch(b, 5)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(ya, epoch(a, 6)[1])
    assert not torch.equal(ya, epoch(a, -5)[1])
    assert not torch.equal(ya, epoch(c, 5)[1])
    assert not torch.equal(ya, torch.arange(37))


def test_derive_seed_is_nonnegative_and_distinct():
    seeds = {derive_seed(s, e) for s in (0, 1, 2**40) for e in range(-3, 4)}
    assert len(seeds) == 21 and all(0 <= s < 2**63 for s in seeds)


def test_normalisation_of_a_constant_image():
    images = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)
    data = ImageData(images, torch.tensor([0, 1]), images, torch.tensor([0, 1]), num_classes=2,
                     mean=MEAN, std=STD)
    x, _ = epoch(loaders(data)[0])
    expected = (128 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, expected.view(1, 3, 1, 1).expand(2, 3, 4, 4), rtol=0, atol=1e-5)


def test_without_augmentation_batches_are_the_normalised_images():
    data = make_data(augment=True, crop_padding=2, flip=True)
    train, _ = loaders(data, augment=False)
    x, y = epoch(train, 3)
    torch.testing.assert_close(x.double(), normalise(data.train_images[y]), rtol=0, atol=1e-5)


def test_test_loader_keeps_order_and_does_not_augment():
    data = make_data(augment=True, crop_padding=2, flip=True)
    _, test = loaders(data)
    assert len(test) == 3 and test.num_samples == 11
    for e in (0, 7):
        x, y = epoch(test, e)
        assert torch.equal(y, torch.arange(11))
        torch.testing.assert_close(x.double(), normalise(data.test_images), rtol=0, atol=1e-5)


def reference_crop_flip(image, dy, dx, flip, padding, pad_mode):
    """Slow per-image reference: pad, cut the window, mirror."""
    mode = "reflect" if pad_mode == "reflect" else "constant"
    padded = F.pad(image[None].float(), (padding,) * 4, mode=mode)[0]
    h, w = image.shape[1:]
    window = padded[:, dy:dy + h, dx:dx + w]
    return (window.flip(-1) if flip else window).to(image.dtype)


@pytest.mark.parametrize("pad_mode", ["reflect", "zeros"])
def test_crop_flip_matches_per_image_reference(pad_mode):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (16, 3, 7, 9), generator=g, dtype=torch.uint8)
    padding = 3
    shifts = torch.randint(0, 2 * padding + 1, (16, 2), generator=g)
    shifts[:4] = torch.tensor([[0, 0], [6, 6], [0, 6], [3, 3]])  # the extreme windows
    flips = torch.rand(16, generator=g) < 0.5
    out = crop_flip(x, padding, pad_mode, shifts, flips)
    for i in range(16):
        ref = reference_crop_flip(x[i], *shifts[i].tolist(), bool(flips[i]), padding, pad_mode)
        assert torch.equal(out[i], ref), i
    assert (out == 0).any() == (pad_mode == "zeros")  # x has no zero, only padding can bring one


def test_flip_alone_mirrors_exactly():
    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.uint8).view(2, 1, 3, 4)
    out = crop_flip(x, flips=torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


@pytest.mark.parametrize("pad_mode", ["reflect", "zeros"])
def test_loader_crops_are_windows_of_the_padded_images(pad_mode):
    padding = 2
    data = make_data(n=12, size=6, low=1, augment=True, crop_padding=padding, flip=True)
    x, y = epoch(loaders(data, pad_mode=pad_mode)[0], 1)
    raw = denormalise(x)
    unchanged = 0
    for out, i in zip(raw, y.tolist()):
        image = data.train_images[i]
        offsets = range(2 * padding + 1)
        candidates = [reference_crop_flip(image, dy, dx, f, padding, pad_mode)
                      for dy in offsets for dx in offsets for f in (False, True)]
        assert any(torch.equal(out, c) for c in candidates), i
        unchanged += torch.equal(out, image)
    assert unchanged < 6  # augmentation happened
    assert (raw == 0).any() == (pad_mode == "zeros")


def test_dataset_default_augmentation_and_overrides():
    data = make_data(augment=True, crop_padding=3, flip=False)
    assert data.augmentation(DataConfig()) == (3, False)
    assert data.augmentation(DataConfig(crop_padding=1, flip=True)) == (1, True)
    assert data.augmentation(DataConfig(augment=False)) == (0, False)
    assert make_data().augmentation(DataConfig()) == (0, False)
    train, _ = loaders(data)
    assert (train.crop_padding, train.flip) == (3, False)


def test_reflect_padding_must_be_smaller_than_the_image():
    with pytest.raises(DataError, match="data.crop_padding"):
        loaders(make_data(size=4), augment=True, crop_padding=4)
    loaders(make_data(size=4), augment=True, crop_padding=4, pad_mode="zeros")


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last(channels_last):
    train, test = make_loaders(make_data(augment=True, crop_padding=1, flip=True), DataConfig(), 8, 8,
                               torch.device("cpu"), 0, channels_last=channels_last)
    for loader in (train, test):
        x, _ = next(iter(loader))
        assert x.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert x.is_contiguous() != channels_last


def test_on_device_false_gives_the_same_batches():
    data = make_data(augment=True, crop_padding=2, flip=True)
    a = epoch(loaders(data, on_device=True)[0], 2)
    b = epoch(loaders(data, on_device=False)[0], 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    data = make_data(augment=True, crop_padding=2, flip=True)
    cpu = epoch(loaders(data)[0], 2)
    train, _ = make_loaders(data, DataConfig(), 8, 5, torch.device("cuda"), 0, channels_last=True)
    x, y = epoch(train, 2)
    assert x.device.type == "cuda" and y.device.type == "cuda"
    torch.testing.assert_close(x.cpu(), cpu[0], rtol=0, atol=1e-5)
    assert torch.equal(y.cpu(), cpu[1])


def test_image_data_checks_its_tensors():
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    for bad in (images.double(), images.int(), images[:, 0, 0]):  # other dtypes, (N, L) without C
        with pytest.raises(DataError, match=r"uint8 or float32 \(N, C, H, W\) or \(N, C, L\)"):
            ImageData(bad, torch.zeros(4, dtype=torch.long), bad, torch.zeros(4, dtype=torch.long),
                      num_classes=2, mean=(0.5,), std=(0.5,))
    with pytest.raises(DataError, match="differ in dtype"):
        ImageData(images.float(), torch.zeros(4, dtype=torch.long), images, torch.zeros(4, dtype=torch.long),
                  num_classes=2, mean=(0.5,), std=(0.5,))
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        ImageData(images, torch.full((4,), 2), images, torch.zeros(4, dtype=torch.long),
                  num_classes=2, mean=(0.5,), std=(0.5,))
    with pytest.raises(DataError, match="mean and std"):
        ImageData(images, torch.zeros(4, dtype=torch.long), images, torch.zeros(4, dtype=torch.long),
                  num_classes=2, mean=(0.5, 0.5, 0.5), std=(0.5,) * 3)


# ---- float samples and 1-D signals ------------------------------------------------------------

def make_signals(n=20, length=12, channels=2, **kwargs) -> ImageData:
    """float32 (N, C, L) signals; labels are the sample indices."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, channels, length, generator=g) * 3 + 1
    return ImageData(x, torch.arange(n), x[:7].clone(), torch.arange(7), num_classes=n,
                     mean=(1.0, 0.5), std=(3.0, 2.0), **kwargs)


def reference_shift_flip(signal, shift, flip, padding, pad_mode):
    mode = "reflect" if pad_mode == "reflect" else "constant"
    padded = F.pad(signal[None], (padding, padding), mode=mode)[0]
    window = padded[:, shift:shift + signal.shape[-1]]
    return window.flip(-1) if flip else window


def test_float_signals_are_normalised_in_their_own_units_without_touching_the_data():
    data = make_signals()
    stored = data.train_images.clone()
    train, test = make_loaders(data, DataConfig(), 8, 5, torch.device("cpu"), 0, channels_last=True)
    x, y = epoch(test)
    expected = (data.test_images - torch.tensor([1.0, 0.5]).view(-1, 1)) / torch.tensor([3.0, 2.0]).view(-1, 1)
    assert x.shape == (7, 2, 12) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x, expected)
    x, y = epoch(train, 1)
    assert sorted(y.tolist()) == list(range(20)) and y.tolist() != list(range(20))
    torch.testing.assert_close(x, (data.train_images[y] - torch.tensor([1.0, 0.5]).view(-1, 1))
                               / torch.tensor([3.0, 2.0]).view(-1, 1))
    assert torch.equal(data.train_images, stored) and torch.equal(data.test_images, stored[:7])


def test_uint8_signals_are_scaled_like_images():
    x = torch.arange(2 * 1 * 6, dtype=torch.uint8).view(2, 1, 6) * 20
    data = ImageData(x, torch.arange(2), x, torch.arange(2), num_classes=2, mean=(0.5,), std=(0.25,))
    out, _ = epoch(make_loaders(data, DataConfig(), 2, 2, torch.device("cpu"), 0)[1])
    torch.testing.assert_close(out, (x.float() / 255 - 0.5) / 0.25)


@pytest.mark.parametrize("pad_mode", ["reflect", "zeros"])
def test_crop_flip_of_signals_matches_per_signal_reference(pad_mode):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 2, 9, generator=g) + 1  # no zero: only zero padding can bring one
    padding = 3
    shifts = torch.randint(0, 2 * padding + 1, (10, 2), generator=g)
    shifts[:2, 1] = torch.tensor([0, 6])  # the extreme windows; the row offset is ignored
    flips = torch.rand(10, generator=g) < 0.5
    out = crop_flip(x, padding, pad_mode, shifts, flips)
    for i in range(10):
        ref = reference_shift_flip(x[i], int(shifts[i, 1]), bool(flips[i]), padding, pad_mode)
        assert torch.equal(out[i], ref), i
    assert (out == 0).any() == (pad_mode == "zeros")


def test_signal_augmentation_is_a_function_of_seed_and_epoch():
    data = make_signals(augment=True, crop_padding=2, flip=True)
    a, b = epoch(loaders(data)[0], 4), epoch(loaders(data)[0], 4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = epoch(loaders(data)[0], 5)
    assert not torch.equal(a[0], c[0])
    normalised = (data.train_images - torch.tensor([1.0, 0.5]).view(-1, 1)) / torch.tensor([3.0, 2.0]).view(-1, 1)
    shifted = 0
    for out, i in zip(a[0], a[1].tolist()):
        candidates = [reference_shift_flip(normalised[i], s, f, 2, "reflect") for s in range(5) for f in (0, 1)]
        assert any(torch.allclose(out, ref, atol=1e-6) for ref in candidates), i
        shifted += not torch.allclose(out, normalised[i], atol=1e-6)
    assert shifted > 10
    with pytest.raises(DataError, match=r"data.crop_padding: must be smaller than the sample side \(12\)"):
        loaders(data, crop_padding=12)


def batch_by_batch(loader, e):
    """The batches as augmenting each batch alone gives them (the loader before whole-epoch
    augmentation): the same plan of the epoch, cropped, flipped and normalised batch by batch."""
    loader.set_epoch(e)
    order, shifts, flips = loader._plan()
    for start in range(0, loader.num_samples, loader.batch_size):
        index = order[start:start + loader.batch_size]
        x = crop_flip(loader.images[index], loader.crop_padding, loader.pad_mode,
                      None if shifts is None else shifts[start:start + loader.batch_size],
                      None if flips is None else flips[start:start + loader.batch_size])
        yield loader.normalizer(x), loader.labels[index]


@pytest.mark.parametrize("chunk", [None, 16])  # the whole epoch at once; chunks of 2 batches
@pytest.mark.parametrize("kind,pad_mode", [("images", "reflect"), ("images", "zeros"), ("signals", "reflect")])
def test_whole_epoch_augmentation_gives_the_batches_of_batch_by_batch_augmentation(chunk, kind, pad_mode):
    data = (make_data(augment=True, crop_padding=2, flip=True) if kind == "images"
            else make_signals(augment=True, crop_padding=2, flip=True))
    train = make_loaders(data, DataConfig(pad_mode=pad_mode), 8, 5, torch.device("cpu"), 3,
                         channels_last=True)[0]
    assert train.chunk >= train.num_samples
    if chunk is not None:
        train.chunk = chunk
    for e in (0, 7):
        got = list(iter_epoch(train, e))
        want = list(batch_by_batch(train, e))
        assert len(got) == len(want) == len(train)
        for (x, y), (x_ref, y_ref) in zip(got, want):
            assert torch.equal(y, y_ref) and torch.equal(x, x_ref)
            assert x.stride() == x_ref.stride()


def iter_epoch(loader, e):
    loader.set_epoch(e)
    return iter(loader)


def test_chunks_are_whole_batches_and_the_whole_epoch_by_default():
    data = make_data(n=1000)
    train = make_loaders(data, DataConfig(), 64, 5, torch.device("cpu"), 0)[0]
    assert train.chunk >= 1000 and train.chunk % 64 == 0
    from drive.data.loader import ImageLoader

    small = ImageLoader(data.train_images, data.train_labels, train.normalizer, 64, torch.device("cpu"),
                        chunk_bytes=3 * 8 * 8 * 4 * 200)
    assert small.chunk == 192 and [len(y) for _, y in small][-2:] == [64, 1000 - 15 * 64]


def test_fused_normalisation_and_bf16_batches():
    """The one-kernel normalisation (CUDA's default) equals the stepwise one, also into a
    channels_last bf16 output (CUDA under bf16 autocast)."""
    from drive.data.augment import Normalizer

    x = make_data().train_images
    cpu = torch.device("cpu")
    stepwise = Normalizer(MEAN, STD, cpu, channels_last=True, fused=False)(x)
    fused = Normalizer(MEAN, STD, cpu, channels_last=True, fused=True)(x)
    assert fused.is_contiguous(memory_format=torch.channels_last) and fused.dtype == torch.float32
    torch.testing.assert_close(fused, stepwise, rtol=0, atol=1e-6)
    torch.testing.assert_close(stepwise, normalise(x).float())
    for fuse in (False, True):
        half = Normalizer(MEAN, STD, cpu, channels_last=True, fused=fuse, dtype=torch.bfloat16)(x)
        assert half.dtype == torch.bfloat16 and half.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(half, stepwise.to(torch.bfloat16))
    train, test = make_loaders(make_data(augment=True, crop_padding=2, flip=True), DataConfig(), 8, 5, cpu, 0,
                               channels_last=True, dtype=torch.bfloat16)
    full, _ = make_loaders(make_data(augment=True, crop_padding=2, flip=True), DataConfig(), 8, 5, cpu, 0,
                           channels_last=True)
    for e in (0, 1):
        (xb, yb), (xf, yf) = epoch(train, e), epoch(full, e)
        assert xb.dtype == torch.bfloat16 and torch.equal(yb, yf)
        torch.testing.assert_close(xb, xf.to(torch.bfloat16))
