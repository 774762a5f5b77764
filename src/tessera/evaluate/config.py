"""Typed configuration of ``tessera evaluate`` (seed 000 §9 defaults).

Resolved with ``tessera.config.resolve_config(EvalConfig, source, overrides, section="evaluate")`` and
saved next to the results, so every number can be traced back to the exact protocol that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.errors import ConfigError

READOUT_CHOICES = ("auto", "mean_patch", "cls", "mean_patch+cls")


@dataclass
class LinearConfig:
    """Strict linear probe on frozen features (seed 000 §9.2)."""

    epochs: int = 20
    lr: float = 5e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    batch_size: int = 256
    # Not seed 000's strict probe: z-score each feature with the training fold's mean/std first (MAE's linear
    # probe does this with a BatchNorm without affine). The classifier stays linear in the features.
    standardize: bool = False


@dataclass
class FinetuneConfig:
    """Full fine-tuning with layer-wise lr decay (seed 000 §9.3)."""

    epochs: int = 20
    lr: float = 5e-4
    head_lr_mult: float = 10.0
    layer_decay: float = 0.65
    weight_decay: float = 0.05
    warmup_ratio: float = 0.2
    grad_clip: float = 1.0
    batch_size: int = 256
    dropout: float = 0.0
    bf16_cuda: bool = True


@dataclass
class KnnConfig:
    """Weighted k-NN on l2-normalized features (DINO-style votes)."""

    k: int = 20
    temperature: float = 0.07
    standardize: bool = False  # z-score with the training fold's mean/std before l2-normalizing (not DINO's k-NN)


@dataclass
class LogisticConfig:
    """The converged linear probe (issue 11; CLIP's linear-probe protocol): fold-standardized features,
    multinomial logistic regression (scikit-learn, L-BFGS) run to convergence, balanced class weights.

    The L2 strength is chosen per outer fold by an inner stratified CV over ``n_values`` log-spaced values
    from ``strength_min`` to ``strength_max``. scikit-learn's ``C`` is the INVERSE strength (its loss is
    C * sum(cross-entropy) + ||w||^2 / 2, so strength lambda = 1 / C); the grid is symmetric in log space, so the
    13 C values are the 13 strengths' inverses and ``C`` is what the results record.
    """

    max_iter: int = 10000  # L-BFGS iterations; a fit that stops here is reported (per_fold[*].converged)
    tol: float = 1e-4
    inner_folds: int = 3
    strength_min: float = 1e-4
    strength_max: float = 1e4
    n_values: int = 13
    cv_scoring: str = "log_loss"  # "log_loss" (class-balanced) | "macro_f1": what the inner CV maximizes
    d4: str = "average"  # "average": each image's feature = mean over the 8 D4 transforms (train and test);
    #                      "augment": 8 training rows per image (one per transform), test on the identity;
    #                      "none": the identity transform only


@dataclass
class RidgeConfig:
    """Ridge probe for ``target`` regression: fold-standardized features and target, alpha (the L2 strength
    itself, scikit-learn's ``alpha``) chosen by an inner K-fold CV over the same log grid as ``logistic``."""

    inner_folds: int = 3
    strength_min: float = 1e-4
    strength_max: float = 1e4
    n_values: int = 13


@dataclass
class RetrievalConfig:
    """Cross-survey match retrieval (paired sets: ``frdeep-pairs:``, ``frdeep-cross:``) and label retrieval."""

    ks: list[int] = field(default_factory=lambda: [1, 5, 10])  # recall@k and precision@k
    bootstrap: int = 1000  # resamples of the queries for the std
    center: bool = True  # subtract each image set's own feature mean before the cosine (no labels, no matches)
    common_field: bool = True  # frdeep-pairs: cut both images to their common sky field (WCS) before embedding


@dataclass
class LabelEfficiencyConfig:
    """Logistic and k-NN with few training labels per class (issue 11): ``shots`` per class (0 = all),
    ``draws`` random subsets inside each training fold."""

    enabled: bool = False
    shots: list[int] = field(default_factory=lambda: [5, 10, 25, 50, 0])
    draws: int = 5


@dataclass
class DiagnosticsConfig:
    """Dense-feature health (seed 002 §2, §8): token norms, high-norm outliers, CLS-patch drift, rank, attention."""

    enabled: bool = False
    max_images: int = 128  # a seeded subset of the evaluation images
    outlier_factor: float = 10.0  # a patch token is an outlier when its norm > factor x the median norm
    source_level: float = 0.1  # a patch is "source" when its mean [0, 1] intensity exceeds this
    attention_images: int = 4


@dataclass
class SegmentationConfig:
    """The dense probe (evaluate/segmentation.py; issue 20): wall mask per patch from frozen patch tokens."""

    mask_column: str = "mask"
    patch_fraction: float = 0.25  # a patch is foreground when at least this fraction of its pixels is
    C: float = 1.0  # inverse L2 strength of the logistic probe (scikit-learn's C)
    max_train_patches: int = 20000  # seeded subsample of the training patches of a fold (memory and time)
    balanced: bool = True  # class-balanced loss: walls are a few percent of the patches

    def validate(self, prefix: str = "segmentation") -> None:
        if not 0.0 < self.patch_fraction <= 1.0:
            raise ConfigError(f"config key '{prefix}.patch_fraction': must be in (0, 1], got {self.patch_fraction}")
        if not self.C > 0:
            raise ConfigError(f"config key '{prefix}.C': must be > 0, got {self.C}")
        if self.max_train_patches < 10:
            raise ConfigError(f"config key '{prefix}.max_train_patches': must be >= 10")


@dataclass
class EvalConfig:
    """Everything that defines an evaluation; defaults follow seed 000 §9.1."""

    folds: int = 3
    seed: int = 0
    readout: str = "auto"  # "auto" = the encoder's default_readout if it has one, else mean_patch (§10.1)
    layer: int = -1  # block whose output is read out (-1 = last, seed 000 Eq. 17)
    sweep_layers: bool = False  # probe every block and plot macro-F1 against depth
    hdu: int | None = None  # FITS HDU to read (None = first image HDU)
    max_per_class: int | None = None  # seeded subset per class (quick runs); None = all
    # Exclude images with more than this fraction of blanked (NaN) pixels, as ingest's key of the same name (issue
    # 17); None = keep every image with finite pixels (ZScale on them, blanks 0). CSV/folder sets and frdeep: only.
    max_nan_fraction: float | None = None
    # Per-image normalization of CSV/folder sets: "zscale" (seed 000 §4.1) or "minmax", the linear stretch for
    # images whose brightness profile is the signal (strong lenses, issue 16; corpus.normalize.minmax_normalize).
    stretch: str = "zscale"
    extract_batch_size: int = 64
    cache_dir: str | None = None  # None = OUT/cache
    device: str | None = None  # None = the encoder's device
    progress: bool = True
    linear: LinearConfig = field(default_factory=LinearConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    target: str | None = None  # a metadata column: regression (knn, ridge) instead of classification
    concat_last: int = 1  # concatenate the readouts of the last K blocks ending at `layer` (DINO: K = 4)
    # Cut every evaluation image to its central N x N pixels before the encoder's resize (centred sources in a wide
    # field, e.g. FIRST's 300 px cutouts whose median source spans ~60 px); None = the whole image.
    center_crop: int | None = None
    max_folds: int | None = None  # evaluate only the first N folds (timing runs); None = all
    logistic: LogisticConfig = field(default_factory=LogisticConfig)
    ridge: RidgeConfig = field(default_factory=RidgeConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    label_efficiency: LabelEfficiencyConfig = field(default_factory=LabelEfficiencyConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)

    def validate(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"config key 'folds': need at least 2 folds, got {self.folds}")
        if self.readout not in READOUT_CHOICES:
            raise ConfigError(f"config key 'readout': {self.readout!r} is not one of "
                              f"{', '.join(map(repr, READOUT_CHOICES))}")
        if self.concat_last < 1:
            raise ConfigError(f"config key 'concat_last': must be >= 1, got {self.concat_last}")
        if self.center_crop is not None and self.center_crop < 8:
            raise ConfigError(f"config key 'center_crop': must be >= 8 pixels or null, got {self.center_crop}")
        if self.max_folds is not None and not 1 <= self.max_folds <= self.folds:
            raise ConfigError(f"config key 'max_folds': must be in 1..folds ({self.folds}), got {self.max_folds}")
        if self.target is not None and not str(self.target).strip():
            raise ConfigError("config key 'target': empty column name")
        self._validate_new_sections()
        self.segmentation.validate("segmentation")
        if self.max_per_class is not None and self.max_per_class < self.folds:
            raise ConfigError(f"config key 'max_per_class': must be >= folds ({self.folds}), got {self.max_per_class}")
        if self.max_nan_fraction is not None and not 0.0 <= self.max_nan_fraction < 1.0:
            raise ConfigError(f"config key 'max_nan_fraction': must be in [0, 1) or null, got {self.max_nan_fraction}")
        if self.extract_batch_size < 1:
            raise ConfigError("config key 'extract_batch_size': must be >= 1")
        if self.stretch not in ("zscale", "minmax"):
            raise ConfigError(f"config key 'stretch': {self.stretch!r} is not one of 'zscale', 'minmax'")
        for name, sub in (("linear", self.linear), ("finetune", self.finetune)):
            if sub.epochs < 1:
                raise ConfigError(f"config key '{name}.epochs': must be >= 1, got {sub.epochs}")
            if sub.batch_size < 1:
                raise ConfigError(f"config key '{name}.batch_size': must be >= 1, got {sub.batch_size}")
            if not 0.0 <= sub.warmup_ratio < 1.0:
                raise ConfigError(f"config key '{name}.warmup_ratio': must be in [0, 1), got {sub.warmup_ratio}")
        if not 0.0 < self.finetune.layer_decay <= 1.0:
            raise ConfigError(f"config key 'finetune.layer_decay': must be in (0, 1], got {self.finetune.layer_decay}")
        if not 0.0 <= self.finetune.dropout < 1.0:
            raise ConfigError(f"config key 'finetune.dropout': must be in [0, 1), got {self.finetune.dropout}")
        if self.knn.k < 1:
            raise ConfigError(f"config key 'knn.k': must be >= 1, got {self.knn.k}")
        if self.knn.temperature <= 0:
            raise ConfigError(f"config key 'knn.temperature': must be > 0, got {self.knn.temperature}")

    def _validate_new_sections(self) -> None:
        lg, rd, rt, le, dg = self.logistic, self.ridge, self.retrieval, self.label_efficiency, self.diagnostics
        if lg.d4 not in ("average", "augment", "none"):
            raise ConfigError(f"config key 'logistic.d4': {lg.d4!r} is not one of 'average', 'augment', 'none'")
        if lg.cv_scoring not in ("log_loss", "macro_f1"):
            raise ConfigError(f"config key 'logistic.cv_scoring': {lg.cv_scoring!r} is not one of 'log_loss', "
                              "'macro_f1'")
        if lg.max_iter < 1:
            raise ConfigError(f"config key 'logistic.max_iter': must be >= 1, got {lg.max_iter}")
        for name, sub in (("logistic", lg), ("ridge", rd)):
            if sub.inner_folds < 2:
                raise ConfigError(f"config key '{name}.inner_folds': must be >= 2, got {sub.inner_folds}")
            if not 0 < sub.strength_min <= sub.strength_max:
                raise ConfigError(f"config key '{name}.strength_min': need 0 < strength_min <= strength_max")
            if sub.n_values < 1:
                raise ConfigError(f"config key '{name}.n_values': must be >= 1, got {sub.n_values}")
        if not rt.ks or any(k < 1 for k in rt.ks):
            raise ConfigError(f"config key 'retrieval.ks': need positive integers, got {rt.ks}")
        if rt.bootstrap < 0:
            raise ConfigError(f"config key 'retrieval.bootstrap': must be >= 0, got {rt.bootstrap}")
        if not le.shots or any(n < 0 for n in le.shots):
            raise ConfigError(f"config key 'label_efficiency.shots': need integers >= 0 (0 = all), got {le.shots}")
        if le.draws < 1:
            raise ConfigError(f"config key 'label_efficiency.draws': must be >= 1, got {le.draws}")
        if dg.max_images < 1 or dg.attention_images < 0 or dg.outlier_factor <= 1.0:
            raise ConfigError("config key 'diagnostics': need max_images >= 1, attention_images >= 0, outlier_factor > "
                              "1")
