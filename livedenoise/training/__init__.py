"""Training: pretraining pairs, the training loop, and fine-tuning a backbone to a new experiment."""

from livedenoise.training.batches import TILE, Batch, Batches, BatchPlan, PairSource
from livedenoise.training.evaluate import denoise, mean_quality
from livedenoise.training.finetune import (
    FinetuneReport,
    FinetuneSettings,
    finetune_folder,
    finetune_noisy,
    finetune_pairs,
    split_rows,
)
from livedenoise.training.loop import (
    LoopSettings,
    SettingsError,
    TrainingError,
    TrainResult,
    pick_device,
    train,
)
from livedenoise.training.losses import LossWeights, ssim
from livedenoise.training.normalize import TRAINED_NORMALIZATION, fit_normalization
from livedenoise.training.pairs import ImagePair, PairsError, load_noisy, load_pairs, read_frames
from livedenoise.training.synth import NoiseLevels, SynthSource, microscope_pairs

__all__ = [
    "TILE",
    "TRAINED_NORMALIZATION",
    "Batch",
    "BatchPlan",
    "Batches",
    "FinetuneReport",
    "FinetuneSettings",
    "ImagePair",
    "LoopSettings",
    "LossWeights",
    "NoiseLevels",
    "PairSource",
    "PairsError",
    "SettingsError",
    "SynthSource",
    "TrainResult",
    "TrainingError",
    "denoise",
    "finetune_folder",
    "finetune_noisy",
    "finetune_pairs",
    "fit_normalization",
    "load_noisy",
    "load_pairs",
    "mean_quality",
    "microscope_pairs",
    "pick_device",
    "read_frames",
    "split_rows",
    "ssim",
    "train",
]
