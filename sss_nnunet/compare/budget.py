"""One training budget for every compared trainer, stock nnU-Net trainers included.

``sss-nnunet compare`` writes, for each trainer ``T`` it compares, a two-line module
``OUT/budget_trainers/T/sss_compare_T.py`` that calls :func:`budget_subclass`: it finds ``T``
with nnU-Net's own lookup (nnunetv2's trainers, then the folders of ``nnUNet_extTrainer``) and
returns ``T_budget(BudgetMixin, T)``. The folder is put on ``nnUNet_extTrainer`` of the
``nnUNetv2_train`` / ``nnUNetv2_predict`` child processes only; nnU-Net's files are never edited.

What the budget fixes (:class:`Budget`): the number of epochs, training iterations per epoch
and validation iterations per epoch, and optionally one batch size for every trainer (nnU-Net's
ResEnc presets plan batches of up to 100 % of a small dataset, 20x the default plans' batch on the
synthetic sets); the patch size stays that of the plans. With the recipe
``own`` each trainer keeps its own optimiser and learning-rate schedule, run over the budget's
epochs; with ``sss`` or ``nnunet`` (:mod:`sss_nnunet.trainers.recipes`) the generated subclass's
``configure_optimizers`` returns that recipe's optimiser and schedule instead, whatever the trainer.
A trainer that builds its optimiser elsewhere is refused (:func:`check_optimizer`).

Seeding (``SSS_COMPARE_SEED``, default 0), done in ``initialize`` before the network is built:
``random``, ``numpy`` and ``torch`` (CPU and CUDA) in the training process, so weight
initialisation and everything drawn there is reproducible; the data-augmentation workers
(``nnUNet_n_proc_DA`` > 0) get seeds ``1000 * seed + worker + 1`` for numpy and torch.
Not deterministic with workers: the order in which the workers' batches arrive depends on timing.
With ``nnUNet_n_proc_DA=0`` (``compare --deterministic``) loading and augmentation run in the
training process and a CPU run repeats exactly; CUDA kernels (cuDNN autotuning, atomics) may
still differ run to run.

Measurements written to ``compare_stats.json`` in the fold folder at the end of training:
parameters, seconds per training iteration (the training part of each epoch, data waiting
included, validation excluded), peak memory (CPU: maximum resident set size of the training
process, dataloader workers excluded; CUDA: ``torch.cuda.max_memory_allocated``) and nnU-Net's
per-epoch curves. nnU-Net's final validation of the fold after training is skipped (compare
scores the held-out test cases instead); ``nnUNetv2_train ... --val`` still runs it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import random
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass

SEED_ENV = "SSS_COMPARE_SEED"
STATS_FILE = "compare_stats.json"
SUFFIX = "_budget"
EXT_ENV = "nnUNet_extTrainer"
CURVES = ("train_losses", "val_losses", "mean_fg_dice", "ema_fg_dice", "lrs", "epoch_start_timestamps",
          "epoch_end_timestamps")


@dataclass(frozen=True)
class Budget:
    """``epochs`` x ``iterations_per_epoch`` training iterations, ``val_iterations_per_epoch`` per epoch."""

    epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    batch_size: int | None = None  # None: each trainer's plans' batch size

    @property
    def iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch

    @classmethod
    def split(cls, iterations: int, per_epoch: int, val_iterations: int, batch_size: int | None = None) -> Budget:
        """At least ``iterations`` training iterations in equal epochs of at most ``per_epoch``:
        ``epochs = ceil(iterations / per_epoch)``, then ``ceil(iterations / epochs)`` per epoch
        (e.g. 310 with 25 per epoch -> 13 x 24 = 312)."""
        if iterations < 1 or per_epoch < 1 or val_iterations < 1:
            raise ValueError("iterations, iterations per epoch and validation iterations must be >= 1")
        if batch_size is not None and batch_size < 1:
            raise ValueError("the batch size must be >= 1")
        epochs = math.ceil(iterations / per_epoch)
        return cls(epochs, math.ceil(iterations / epochs), val_iterations, batch_size)

    def describe(self) -> str:
        batch = f", batch {self.batch_size} for every trainer" if self.batch_size else ""
        return (f"{self.iterations} training iterations ({self.epochs} epochs x {self.iterations_per_epoch}), "
                f"{self.val_iterations_per_epoch} validation iterations per epoch{batch}")

    def as_dict(self) -> dict:
        d = {**asdict(self), "iterations": self.iterations}
        if self.batch_size is None:  # results written before the option existed stay comparable
            del d["batch_size"]
        return d


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global generator and torch (CPU and all CUDA devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (nnU-Net draws from the global generator)
    torch.manual_seed(seed)


def _excluding(value: str | None, folders: list[str]) -> str:
    drop = {os.path.abspath(f) for f in folders}
    return os.pathsep.join(p for p in (value or "").split(os.pathsep) if p and os.path.abspath(p) not in drop)


def find_trainer(name: str, exclude: list[str] = ()) -> type:
    """The trainer class nnU-Net's ``nnUNetv2_train -tr name`` would use (nnunetv2's trainers,
    then ``nnUNet_extTrainer``; ``exclude``: folders to leave out). ``LookupError`` if there is none.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    old = os.environ.get(EXT_ENV)
    if old is not None:
        os.environ[EXT_ENV] = _excluding(old, list(exclude))
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # import-time deprecation noise of the searched modules
            return recursive_find_trainer_class_by_name(name)
    except (RuntimeError, AssertionError) as e:
        raise LookupError(f"nnU-Net finds no trainer '{name}' ({str(e).splitlines()[0][:200]})") from None
    finally:
        if old is not None:
            os.environ[EXT_ENV] = old


class BudgetMixin:
    """Mixed in before a trainer class: applies ``budget`` and the seed, measures, records.

    Defines no ``__init__``: nnU-Net records the trainer's ``__init__`` arguments by name.
    """

    budget: dict = {}
    recipe: str | None = None  # a name in sss_nnunet.trainers.recipes; None: the trainer's own

    def initialize(self):
        if not self.was_initialized:
            b = self.budget
            self.num_epochs = b["epochs"]
            self.num_iterations_per_epoch = b["iterations_per_epoch"]
            self.num_val_iterations_per_epoch = b["val_iterations_per_epoch"]
            if b.get("batch_size"):  # before nnU-Net's initialize splits the batch over DDP ranks
                self.configuration_manager.configuration["batch_size"] = b["batch_size"]
                self.batch_size = b["batch_size"]
            self.save_every = max(1, min(self.save_every, b["epochs"]))
            self.compare_seed = int(os.environ.get(SEED_ENV, "0"))
            seed_everything(self.compare_seed)
            self._compare_train_seconds = []
            if self.recipe is not None:
                from sss_nnunet.trainers.recipes import get_recipe

                r = get_recipe(self.recipe)
                self.initial_lr, self.weight_decay = r.lr, r.weight_decay  # what nnU-Net logs
            self.print_to_log_file(f"sss-nnunet compare budget: {b} (plans' patch and batch), seed "
                                   f"{self.compare_seed}", also_print_to_console=True)
        super().initialize()

    def configure_optimizers(self):
        """The recipe's optimiser and schedule (the trainer's own for ``recipe=None``)."""
        if self.recipe is None:
            optimizer, scheduler = super().configure_optimizers()
        else:
            from sss_nnunet.trainers.recipes import get_recipe

            optimizer, scheduler = get_recipe(self.recipe).build(self.network, self.num_epochs)
        self._compare_optimizer = optimizer
        return optimizer, scheduler

    def on_train_start(self):
        super().on_train_start()
        if self.recipe is not None:
            check_optimizer(self)

    def get_dataloaders(self):
        """nnU-Net's loaders, with seeded augmentation workers (see the module docstring)."""
        import importlib

        module = importlib.import_module("nnunetv2.training.nnUNetTrainer.nnUNetTrainer")
        original = module.NonDetMultiThreadedAugmenter
        base = 1000 * getattr(self, "compare_seed", 0)

        def seeded(*args, num_processes: int, seeds=None, **kwargs):
            seeds = [base + k + 1 for k in range(num_processes)]
            return original(*args, num_processes=num_processes, seeds=seeds, **kwargs)

        module.NonDetMultiThreadedAugmenter = seeded
        try:
            return super().get_dataloaders()
        finally:
            module.NonDetMultiThreadedAugmenter = original

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._compare_t0 = time.perf_counter()

    def on_train_epoch_end(self, train_outputs):
        self._compare_train_seconds.append(time.perf_counter() - self._compare_t0)
        super().on_train_epoch_end(train_outputs)

    def on_train_end(self):
        super().on_train_end()
        self._compare_trained = True
        if self.local_rank == 0:
            self._write_compare_stats()

    def perform_actual_validation(self, save_probabilities: bool = False):
        if getattr(self, "_compare_trained", False):
            self.print_to_log_file("sss-nnunet compare: final validation of the fold skipped (the held-out test "
                                   "cases are scored instead); run nnUNetv2_train ... --val for it")
            return
        super().perform_actual_validation(save_probabilities)

    def _write_compare_stats(self) -> None:
        import torch

        from sss_nnunet.io import atomic_write_json

        per_iteration = [s / self.num_iterations_per_epoch for s in self._compare_train_seconds]
        if self.device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(self.device), "cuda_max_allocated"
        else:
            import resource

            peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu_max_rss"
        curves = {}
        for key in CURVES:
            with contextlib.suppress(Exception):
                curves[key] = [None if v is None else float(v) for v in self.logger.get_value(key, step=None)]
        atomic_write_json(os.path.join(self.output_folder, STATS_FILE), {
            "trainer": type(self).__name__,
            "base_trainer": type(self).__mro__[2].__name__,
            "budget": dict(self.budget),
            "seed": self.compare_seed,
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
            "da_workers": os.environ.get("nnUNet_n_proc_DA"),
            "patch_size": [int(p) for p in self.configuration_manager.patch_size],
            "batch_size": int(self.batch_size),
            "parameters": int(sum(p.numel() for p in self.network.parameters())),
            "recipe_name": self.recipe or "own",
            "recipe": describe_recipe(self),
            "train_seconds_per_epoch": self._compare_train_seconds,
            "seconds_per_iteration": statistics.median(per_iteration) if per_iteration else None,
            "seconds_per_iteration_mean": statistics.fmean(per_iteration) if per_iteration else None,
            "peak_memory_bytes": int(peak),
            "peak_memory_kind": kind,
            "curves": curves,
        })


def check_optimizer(trainer) -> None:
    """The optimiser the trainer trains with must be the one ``configure_optimizers`` returned
    (else a recipe could not replace it): ``RuntimeError`` naming the trainer otherwise."""
    if getattr(trainer, "optimizer", None) is None or trainer.optimizer is not getattr(trainer, "_compare_optimizer",
                                                                                      None):
        base = type(trainer).__mro__[2].__name__
        raise RuntimeError(f"trainer {base} does not build its optimiser in configure_optimizers (it uses "
                           f"{type(getattr(trainer, 'optimizer', None)).__name__}): a --recipe cannot replace it")


def describe_recipe(trainer) -> dict:
    """Optimiser class and arguments, schedule, warm-up and gradient clipping of a built trainer."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from sss_nnunet.trainers.recipes import describe_optimizer

    owner = next(c for c in type(trainer).__mro__ if "train_step" in c.__dict__)
    clip = ("clip_grad_norm 12 (nnU-Net's train_step)" if owner is nnUNetTrainer
            else f"the trainer's own train_step ({owner.__name__})")
    return describe_optimizer(trainer.optimizer, trainer.lr_scheduler, clip)


def budget_class_name(base_name: str, recipe: str | None = None) -> str:
    """``T_budget`` (the trainer's own recipe) or ``T_<recipe>Recipe_budget``."""
    return base_name + (f"_{recipe}Recipe" if recipe else "") + SUFFIX


def make_budget_class(base: type, budget: dict, recipe: str | None = None, module: str = __name__) -> type:
    """``BudgetMixin`` before ``base`` with ``budget`` and ``recipe``, named :func:`budget_class_name`."""
    return type(budget_class_name(base.__name__, recipe), (BudgetMixin, base), {
        "budget": dict(budget), "recipe": recipe, "__module__": module,
        "__doc__": f"{base.__name__} under the sss-nnunet compare budget {budget}, recipe {recipe or 'own'}.",
    })


def budget_subclass(base_name: str, budget: dict, module: str, module_file: str, recipe: str | None = None) -> type:
    """``<base_name>[_<recipe>Recipe]_budget``: ``BudgetMixin`` before the trainer nnU-Net finds as
    ``base_name``, with ``budget`` (:meth:`Budget.as_dict`) and ``recipe`` (None: the trainer's own).
    Called by the generated module ``module`` (whose folder ``module_file`` is left out of the lookup)."""
    base = find_trainer(base_name, exclude=[os.path.dirname(os.path.abspath(module_file))])
    cls = make_budget_class(base, budget, recipe, module)
    sys.modules[module].__dict__.setdefault(cls.__name__, cls)
    return cls


def module_source(base_name: str, budget: Budget, recipe: str | None = None) -> str:
    """Text of the generated module that defines :func:`budget_class_name` ``(base_name, recipe)``."""
    return (f'"""Generated by `sss-nnunet compare`: {base_name} with the budget {budget.describe()}, '
            f'recipe {recipe or "own"}.\nFound by nnU-Net through nnUNet_extTrainer; see sss_nnunet.compare.budget."""'
            f"\n\nfrom sss_nnunet.compare.budget import budget_subclass\n\n"
            f"{budget_class_name(base_name, recipe)} = budget_subclass({base_name!r}, {budget.as_dict()!r}, "
            f"__name__, __file__, recipe={recipe!r})\n")
